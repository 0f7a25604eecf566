//! `wengert export`: a trained model written as ONNX, for runtimes where
//! Wengert does not run (ONNX Runtime, tract, TensorRT, a browser).
//!
//! The weights are a Wengert model file (`model.safetensors` of a run,
//! whose metadata gives the input size and class names) or a state dict in
//! torchvision's names. The file is written atomically: a failed export
//! leaves what was at `--onnx` as it was.

use super::existing_file;
use super::finetune::first_name;
use super::predict::{distinct_output, load_weights};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wengert::core::{Error, Result};
use wengert::nn::checkpoint::{read_metadata, read_shapes, write_atomic};
use wengert::resnet::onnx::model_to_onnx;
use wengert::resnet::registry::{identify, Input, Model};

/// `wengert export`'s options.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Where to write the ONNX file (replaced atomically if it exists).
    #[arg(long)]
    pub onnx: PathBuf,
    /// The model the weights are for (a zoo ResNet or googlenet).
    #[arg(long, value_parser = super::by_name::<Model>())]
    pub model: Model,
    /// The weights: a model.safetensors that `wengert train` wrote, or a
    /// state dict in torchvision's names.
    #[arg(long)]
    pub weights: PathBuf,
    /// Height and width of the graph's input (default: the size the model
    /// was trained at, where the weights say, else the family's: 32 or 224).
    #[arg(long)]
    pub image_size: Option<usize>,
}

/// Writes the ONNX file and says what it holds.
pub fn run(args: &ExportArgs) -> Result<ExitCode> {
    let ExportArgs { onnx, model, weights, image_size } = args;
    if model.input() == Input::Sequence {
        return Err(Error::argument(
            "export",
            "--model",
            format!("{model} is a recurrent classifier; ONNX export covers the zoo's ResNets and googlenet"),
        ));
    }
    if *image_size == Some(0) {
        return Err(Error::argument("export", "--image-size", "must be at least 1, got 0".to_string()));
    }
    existing_file("export", "--weights", weights)?;
    distinct_output("export", "--onnx", onnx, &[("--weights", weights)])?;
    writable_folder(onnx)?;
    let bad_weights = |e: Error| match e {
        Error::Io { path, detail } => Error::argument("export", "--weights", format!("{path}: {detail}")),
        e => e,
    };
    let mut meta = read_metadata(weights).map_err(bad_weights)?;
    let shapes = read_shapes(weights).map_err(bad_weights)?;
    let held = meta.get("model").cloned().or_else(|| identify(&shapes));
    if let Some(held) = held.filter(|h| !h.split(" or ").any(|h| h == model.to_string())) {
        return Err(Error::argument(
            "export",
            "--weights",
            format!("{} holds a {held}, not a {model}: pass --model {}", weights.display(), first_name(&held)),
        ));
    }
    let (c, h, w) = input_shape(model, weights, &meta, &shapes, *image_size)?;
    let classes = shapes.get("fc.weight").and_then(|s| s.first().copied()).ok_or_else(|| {
        Error::argument("export", "--weights", format!("{} has no fc.weight: not a {model}", weights.display()))
    })?;
    let mut net = model.build::<f32>((c, h, w), classes, &mut wengert::core::rng(0))?;
    load_weights(&mut net, model, weights)?;
    // The graph's input states its size; the rest of the file's metadata
    // (class names, normalisation) travels as it is.
    meta.insert("image_shape".into(), format!("{c},{h},{w}"));
    let metadata: Vec<(String, String)> = meta.into_iter().collect();
    let bytes = model_to_onnx(model, net.as_ref(), (c, h, w), &metadata)?;
    write_atomic(onnx, &bytes)?;
    out!(
        "wrote {model} as ONNX (opset {}): input [N, {c}, {h}, {w}], logits [N, {classes}], {:.1} MB, to {}",
        wengert::resnet::onnx::OPSET,
        bytes.len() as f64 / 1e6,
        onnx.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The graph's input `(c, h, w)`: channels from the first convolution,
/// the size from `--image-size`, else the size the weights were trained
/// at, else the family's default.
fn input_shape(
    model: &Model,
    weights: &Path,
    meta: &std::collections::BTreeMap<String, String>,
    shapes: &std::collections::BTreeMap<String, Vec<usize>>,
    image_size: Option<usize>,
) -> Result<(usize, usize, usize)> {
    let first = ["conv1.weight", "conv1.conv.weight"].into_iter().find_map(|n| shapes.get(n));
    let c = first.and_then(|s| s.get(1).copied()).ok_or_else(|| {
        Error::argument("export", "--weights", format!("{} has no conv1 weight: not a {model}", weights.display()))
    })?;
    let trained = meta.get("image_shape").and_then(|s| {
        let v: Vec<usize> = s.split(',').filter_map(|d| d.parse().ok()).collect();
        (v.len() == 3).then(|| (v[1], v[2]))
    });
    let ((_, dh, dw), _) = model.defaults();
    let (h, w) = image_size.map(|s| (s, s)).or(trained).unwrap_or((dh, dw));
    model.summary((c, h, w), 1).map_err(|e| {
        Error::argument("export", "--image-size", format!("{model} cannot take {c}×{h}×{w} images: {e}"))
    })?;
    Ok((c, h, w))
}

/// The folder `--onnx` goes in must exist: the export does not create
/// folders the user may have mistyped.
fn writable_folder(onnx: &Path) -> Result<()> {
    let dir = onnx.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::argument("export", "--onnx", format!("the folder {} does not exist", dir.display())));
    }
    if onnx.is_dir() {
        return Err(Error::argument("export", "--onnx", format!("{} is a folder; give a file name", onnx.display())));
    }
    Ok(())
}
