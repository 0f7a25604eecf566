//! `wengert summary MODEL [--input C,H,W] [--classes K]`.

use std::process::ExitCode;
use wengert::core::{Error, Result};
use wengert::nn::Module;
use wengert::resnet::zoo::{ResNet, Spec};

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

/// Prints the layers with their output shapes, then `parameters: N` and
/// `multiply-adds: N` for one image.
pub fn run(model: &str, input: Option<&str>, classes: Option<usize>) -> Result<ExitCode> {
    let spec = Spec::by_name(model)?;
    let (default_input, default_classes) = spec.defaults();
    let input = input.map(parse_input).transpose()?.unwrap_or(default_input);
    let classes = classes.unwrap_or(default_classes);
    let net = ResNet::<f32>::new(&spec, input.0, classes, &mut wengert::core::rng(0))?;
    let summary = net.summary(input)?;
    println!("{model}: input {}×{}×{}, {classes} classes\n", input.0, input.1, input.2);
    println!("{:<24} {:>18}", "layer", "output (C×H×W)");
    for (name, [c, h, w]) in summary.rows {
        println!("{name:<24} {:>18}", format!("{c}×{h}×{w}"));
    }
    println!("\nparameters: {}", net.num_parameters());
    println!("multiply-adds: {}", summary.macs);
    Ok(ExitCode::SUCCESS)
}
