//! `wengert summary MODEL [--input C,H,W] [--classes K]`.

use std::process::ExitCode;
use wengert::core::{Error, Result};
use wengert::nn::Module;
use wengert::resnet::googlenet::GoogLeNet;
use wengert::resnet::sequence::SequenceClassifier;
use wengert::resnet::zoo::{defaults, ResNet, Spec};

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
pub fn run(model: &str, input: Option<&str>, classes: Option<usize>, aux: bool) -> Result<ExitCode> {
    let model = if aux && model == "googlenet" { "googlenet_aux" } else { model };
    let (default_input, default_classes) = defaults(model)?;
    let input = input.map(parse_input).transpose()?.unwrap_or(default_input);
    let classes = classes.unwrap_or(default_classes);
    let rng = &mut wengert::core::rng(0);
    let (summary, parameters) = match model {
        "googlenet" | "googlenet_aux" => {
            let net = GoogLeNet::<f32>::new(input.0, classes, model == "googlenet_aux", rng)?;
            (net.summary(input)?, net.num_parameters())
        }
        "rnn" | "lstm" | "residual_rnn" => {
            let net = SequenceClassifier::<f32>::by_name(model, input.0 * input.2, classes, rng)?;
            (net.summary(input), net.num_parameters())
        }
        _ => {
            let net = ResNet::<f32>::new(&Spec::by_name(model)?, input.0, classes, rng)?;
            (net.summary(input)?, net.num_parameters())
        }
    };
    out!("{model}: input {}×{}×{}, {classes} classes\n", input.0, input.1, input.2);
    out!("{:<24} {:>18}", "layer", "output (C×H×W)");
    for (name, [c, h, w]) in summary.rows {
        out!("{name:<24} {:>18}", format!("{c}×{h}×{w}"));
    }
    out!("\nparameters: {parameters}");
    out!("multiply-adds: {}", summary.macs);
    Ok(ExitCode::SUCCESS)
}
