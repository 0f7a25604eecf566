//! `wengert summary MODEL [--input C,H,W] [--classes K]` and `wengert summary --list`.

use std::process::ExitCode;
use wengert::core::memory::human;
use wengert::core::{Error, Result};
use wengert::resnet::registry::Model;

/// Parses `C,H,W`.
fn parse_input(s: &str) -> Result<(usize, usize, usize)> {
    let v: Vec<usize> =
        s.split(',').map(|p| p.trim().parse()).collect::<std::result::Result<_, _>>().map_err(|_| bad(s))?;
    match v.as_slice() {
        [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok((*c, *h, *w)),
        _ => Err(bad(s)),
    }
}

fn bad(s: &str) -> Error {
    Error::argument("summary", "--input", format!("'{s}' is not C,H,W with three positive integers"))
}

/// Prints the layers with their output shapes, then `parameters: N`,
/// `multiply-adds: N` for one image, and the estimated peak memory of
/// training with `batch` images a step.
pub fn run(model: Model, input: Option<&str>, classes: Option<usize>, aux: bool, batch: usize) -> Result<ExitCode> {
    let model = match model {
        Model::GoogLeNet { .. } if aux => Model::GoogLeNet { aux: true },
        m => m,
    };
    let (default_input, default_classes) = model.defaults();
    let input = input.map(parse_input).transpose()?.unwrap_or(default_input);
    let classes = classes.unwrap_or(default_classes);
    let (summary, parameters) = model.summary(input, classes)?;
    let training = summary.training_bytes(batch, parameters);
    out!("{model}: input {}×{}×{}, {classes} classes\n", input.0, input.1, input.2);
    out!("{:<24} {:>18}", "layer", "output (C×H×W)");
    for (name, [c, h, w]) in &summary.rows {
        out!("{name:<24} {:>18}", format!("{c}×{h}×{w}"));
    }
    out!("\nparameters: {parameters}");
    out!("multiply-adds: {}", summary.macs);
    out!("training memory at batch {batch}: about {} (estimated)", human(training));
    Ok(ExitCode::SUCCESS)
}

/// Prints every model of the registry's catalogue, one a line.
pub fn list() -> Result<ExitCode> {
    for name in Model::catalogue() {
        out!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}
