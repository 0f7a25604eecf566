//! `wengert predict`: logits for a tensor file, or the likeliest classes of
//! image files, by a model and its weights; and reading weights files for
//! the commands that take one (`eval`, `export`).

use super::existing_file;
use super::memory::eval_batch;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wengert::core::{Error, Result};
use wengert::nn::checkpoint::{load_model, read_metadata};
use wengert::resnet::registry::{Input, Model};

/// `wengert predict`: the logits of a zoo model in evaluation mode for the
/// f32 tensor `input` (NCHW) of a safetensors file, written as `logits`.
pub fn predict(model: &Model, weights: &Path, input: &Path, output: &Path, classes: Option<usize>) -> Result<ExitCode> {
    use wengert::nn::checkpoint::{read_tensors, write_tensors};
    use wengert::nn::{Module, Step};
    existing_file("predict", "--weights", weights)?;
    existing_file("predict", "--input", input)?;
    if classes == Some(0) {
        return Err(Error::argument("predict", "--classes", "must be at least 1, got 0".to_string()));
    }
    distinct_output("predict", "--output", output, &[("--weights", weights), ("--input", input)])?;
    let meta = model_metadata(model, weights)?;
    let mut tensors = read_tensors::<f32>(input)?;
    let x = tensors
        .remove("input")
        .ok_or_else(|| Error::Io { path: input.display().to_string(), detail: "no tensor named 'input'".into() })?;
    if x.rank() != 4 {
        return Err(Error::shape("predict", format!("input is {}; need [N, C, H, W]", x.shape())));
    }
    let ((_, h, w), default_classes) = model.defaults();
    // The class count the file was trained with, where it says.
    let classes = classes.or(saved_classes(&meta, weights)?).unwrap_or(default_classes);
    let d = x.dims();
    if model.input() == Input::Sequence && (d[2], d[3]) != (h, w) {
        return Err(Error::shape("predict", format!("{model} reads {h}×{w} images; the input is {}", x.shape())));
    }
    let mut net = model.build::<f32>((d[1], d[2], d[3]), classes, &mut wengert::core::rng(0))?;
    load_weights(&mut net, model, weights)?;
    let tape = wengert::core::Tape::new();
    let logits = tape.no_grad(|| net.forward(&mut Step::eval(&tape), tape.constant(x)))?.value()?;
    write_tensors(&BTreeMap::from([("logits".to_string(), logits)]), output)?;
    out!("wrote logits to {}", output.display());
    Ok(ExitCode::SUCCESS)
}

/// `wengert predict --image`: the five likeliest classes of each image
/// file, by a model that `wengert train` saved (its metadata gives the
/// input size, the normalisation and the class names).
pub fn predict_images(model: &Model, weights: &Path, images: &[PathBuf]) -> Result<ExitCode> {
    use wengert::nn::{Module, Step};
    existing_file("predict", "--weights", weights)?;
    for image in images {
        existing_file("predict", "--image", image)?;
    }
    let meta = model_metadata(model, weights)?;
    let missing = |key: &str| Error::Io {
        path: weights.display().to_string(),
        detail: format!("the model file has no '{key}' entry: predict --image needs a model `wengert train` saved"),
    };
    let shape: Vec<usize> = meta
        .get("image_shape")
        .ok_or_else(|| missing("image_shape"))?
        .split(',')
        .map(|v| v.parse().map_err(|_| bad_metadata(weights, "image_shape")))
        .collect::<Result<_>>()?;
    let [c, h, w] = shape[..] else { return Err(bad_metadata(weights, "image_shape")) };
    if h != w || !(c == 1 || c == 3) {
        return Err(Error::shape(
            "predict",
            format!("the model takes {c}×{h}×{w} inputs; images are read as 1 or 3 channels, square"),
        ));
    }
    let normalise = saved_normalisation(&meta, weights)?.ok_or_else(|| missing("normalise"))?;
    let classes = saved_classes(&meta, weights)?.ok_or_else(|| missing("classes"))?;
    let names: Vec<String> = meta.get("class_names").map_or_else(Vec::new, |n| n.lines().map(String::from).collect());
    let mut net = model.build::<f32>((c, h, w), classes, &mut wengert::core::rng(0))?;
    load_weights(&mut net, model, weights)?;
    // In batches that fit in memory, however many images are given.
    let batch = eval_batch(model, (c, h, w), classes)?;
    for paths in images.chunks(batch) {
        let x = image_batch(paths, (c, h, w), &normalise)?;
        let tape = wengert::core::Tape::new();
        let probs = tape.no_grad(|| -> Result<wengert::Tensor<f32>> {
            let logits = net.forward(&mut Step::eval(&tape), tape.constant(x))?;
            wengert::ops::softmax(logits, -1)?.value()
        })?;
        for (path, row) in paths.iter().zip(probs.data().chunks(classes)) {
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let top: Vec<String> = order
                .iter()
                .take(5)
                .map(|&k| format!("{} {:.1}%", names.get(k).cloned().unwrap_or_else(|| k.to_string()), 100.0 * row[k]))
                .collect();
            out!("{}: {}", path.display(), top.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The image files `paths` as a normalised batch `[N, C, H, W]`: each
/// resized and centre-cropped to `H × W`, grey models taking the luma.
fn image_batch(
    paths: &[PathBuf],
    (c, h, w): (usize, usize, usize),
    normalise: &[(f64, f64)],
) -> Result<wengert::Tensor<f32>> {
    let mut pixels = Vec::with_capacity(paths.len() * c * h * w);
    for path in paths {
        let (_, _, rgb) = wengert::data::read_image(path, Some(h))?;
        let plane = h * w;
        // Grey models take the luma of the colour image (ITU-R BT.601).
        let channels: Vec<Vec<f64>> = match c {
            1 => vec![(0..plane)
                .map(|i| 0.299 * rgb[i] as f64 + 0.587 * rgb[plane + i] as f64 + 0.114 * rgb[2 * plane + i] as f64)
                .collect()],
            _ => rgb.chunks(plane).map(|p| p.iter().map(|&v| v as f64).collect()).collect(),
        };
        for (plane, (mean, std)) in channels.iter().zip(normalise) {
            pixels.extend(plane.iter().map(|v| ((v / 255.0 - mean) / std) as f32));
        }
    }
    wengert::Tensor::from_vec(pixels, [paths.len(), c, h, w])
}

/// An error for a model file's metadata entry `key` that does not parse.
pub(crate) fn bad_metadata(weights: &Path, key: &str) -> Error {
    Error::Io { path: weights.display().to_string(), detail: format!("metadata '{key}' does not parse") }
}

/// The class count a model file says it was trained with, if it says.
pub(crate) fn saved_classes(meta: &BTreeMap<String, String>, weights: &Path) -> Result<Option<usize>> {
    meta.get("classes").map(|c| c.parse().map_err(|_| bad_metadata(weights, "classes"))).transpose()
}

/// The per-channel normalisation a model file says its inputs had, if it says.
pub(crate) fn saved_normalisation(meta: &BTreeMap<String, String>, weights: &Path) -> Result<Option<Vec<(f64, f64)>>> {
    let bad = || bad_metadata(weights, "normalise");
    let Some(n) = meta.get("normalise") else { return Ok(None) };
    n.split(';')
        .map(|pair| {
            let (m, s) = pair.split_once(',').ok_or_else(bad)?;
            Ok((m.parse().map_err(|_| bad())?, s.parse().map_err(|_| bad())?))
        })
        .collect::<Result<Vec<(f64, f64)>>>()
        .map(Some)
}

/// The metadata of a model file, read once; refuses a file whose metadata
/// names another model than `model`.
pub(crate) fn model_metadata(model: &Model, weights: &Path) -> Result<BTreeMap<String, String>> {
    let meta = read_metadata(weights)?;
    if let Some(held) = meta.get("model").filter(|held| **held != model.to_string()) {
        return Err(Error::Io {
            path: weights.display().to_string(),
            detail: format!("holds a {held}, not a {model}: pass --model {held}"),
        });
    }
    Ok(meta)
}

/// Loads `weights` into `net`; when the first layer's input channels
/// differ, says that the input does not fit the model, rather than blaming
/// the file.
pub(crate) fn load_weights(net: &mut dyn wengert::nn::Module<f32>, model: &Model, weights: &Path) -> Result<()> {
    use wengert::nn::StateRef;
    let Err(e) = load_model(net, weights, true) else { return Ok(()) };
    let mut first = None;
    net.visit("", &mut |name, s| {
        if let (None, StateRef::Param(p)) = (&first, s) {
            first = Some((name, p.value().dims().to_vec()));
        }
    });
    let file = wengert::nn::checkpoint::read_shapes(weights).ok();
    if let (Some((name, want)), Some(file)) = (first, file) {
        if let Some(have) = file.get(&name).cloned() {
            let only_channels = have.len() == want.len()
                && have.len() > 1
                && have[0] == want[0]
                && have[2..] == want[2..]
                && have[1] != want[1];
            if only_channels {
                return Err(Error::shape(
                    model.to_string(),
                    format!(
                        "the input has {} channels but the model in {} takes {} ({name} is {have:?})",
                        want[1],
                        weights.display(),
                        have[1]
                    ),
                ));
            }
        }
    }
    Err(e)
}

/// Refuses an output path (`command`'s option `option`) that names one of
/// the inputs: writing it would destroy the input.
pub(crate) fn distinct_output(command: &str, option: &str, output: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let resolve = |p: &Path| -> PathBuf {
        if let Ok(c) = p.canonicalize() {
            return c;
        }
        // Not there yet: resolve the folder, keep the name.
        match (p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).canonicalize(), p.file_name())
        {
            (Ok(dir), Some(name)) => dir.join(name),
            _ => p.to_path_buf(),
        }
    };
    let out = resolve(output);
    for (flag, input) in inputs {
        if resolve(input) == out {
            return Err(Error::argument(
                command,
                option,
                format!("{} is also {flag}: writing it would destroy that file", output.display()),
            ));
        }
    }
    Ok(())
}
