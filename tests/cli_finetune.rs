//! Fine-tuning from the command line: `wengert train --init-from` with
//! weights in torchvision's names (a state dict saved as safetensors, no
//! metadata) or a Wengert model file, the classifier replaced for the
//! folder's classes, `--freeze backbone` and `--backbone-lr-scale`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wengert::nn::checkpoint::save_model;
use wengert::resnet::zoo::ResNet;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wengert-finetune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `train/<class>/` and `val/<class>/`, four RGB images of 12 × 12 a class
/// and split (the same images in both, so that the test set is the
/// training set), each class a hue. Each image is its own mirror image, so
/// that the random flips of training change nothing.
fn folder(dir: &Path, classes: usize) {
    for split in ["train", "val"] {
        for k in 0..classes {
            let d = dir.join(split).join(format!("class{k}"));
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..4u32 {
                let img = image::RgbImage::from_fn(12, 12, |x, y| {
                    image::Rgb([(k * 90) as u8, (x.min(11 - x) * 20 + i) as u8, (y * 20) as u8])
                });
                img.save(d.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

/// ResNet-8 weights for 10 classes in torchvision's names, as
/// `safetensors.torch.save_file(model.state_dict(), …)` writes them: no
/// metadata.
fn torchvision_weights(path: &Path) {
    let net = ResNet::<f32>::by_name("resnet8", 3, 10, &mut wengert::core::rng(42)).unwrap();
    save_model(&net, path).unwrap();
}

fn wengert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wengert")).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `wengert train` of ResNet-8 on `data`, one thread, no augmentation, the
/// whole set in one batch (12 images), so that a run is one step.
fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--model", "resnet8", "--threads", "1", "--image-size", "12", "--batch-size", "12"];
    args.extend([
        "--pad",
        "0",
        "--crop-scale",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    args.extend(extra);
    wengert(&args)
}

/// Every tensor of a safetensors file as its shape and raw bytes (floats
/// and the batch norms' i64 counters alike).
fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors().into_iter().map(|(n, v)| (n, (v.shape().to_vec(), v.data().to_vec()))).collect()
}

/// Writes tensors of `(shape, bytes)`, floats but for the batch norms'
/// counters, as a safetensors file.
fn write(tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>, path: &Path) {
    use safetensors::{tensor::TensorView, Dtype};
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, (shape, bytes))| {
            let dtype = if n.ends_with("num_batches_tracked") { Dtype::I64 } else { Dtype::F32 };
            (n.clone(), TensorView::new(dtype, shape.clone(), bytes).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A tensor's f32 values from its raw bytes.
fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn a_frozen_backbone_is_bitwise_unchanged_and_the_classifier_fits_the_folder() {
    let dir = scratch("frozen");
    let data = dir.join("data");
    folder(&data, 3);
    let weights = dir.join("resnet8-torchvision.safetensors");
    torchvision_weights(&weights);
    let w = weights.to_str().unwrap();
    let out = dir.join("run");
    let o = train(&data, &out, &["--init-from", w, "--freeze", "backbone", "--epochs", "2"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("fc: 10 → 3 classes, initialised afresh"), "{stdout}");
    assert!(stdout.contains("normalising with ImageNet's mean"), "{stdout}");
    assert!(stdout.contains("training fc alone"), "{stdout}");
    let (before, after) = (tensors(&weights), tensors(&out.join("model.safetensors")));
    let mut compared = 0;
    for (name, t) in &before {
        if name.starts_with("fc.") {
            continue;
        }
        // Parameters, running statistics and batch counts alike.
        let a = after.get(name).unwrap_or_else(|| panic!("{name} is missing after training"));
        assert!(a == t, "{name} moved");
        compared += 1;
    }
    assert!(compared > 40, "{compared} backbone tensors");
    assert_eq!(after["fc.weight"].0, [3, 64]);
    assert_eq!(after["fc.bias"].0, [3]);
    // The classifier did train: one epoch leaves it elsewhere than two.
    let first = dir.join("one-epoch");
    let o = train(&data, &first, &["--init-from", w, "--freeze", "backbone", "--epochs", "1"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_ne!(tensors(&first.join("model.safetensors"))["fc.weight"].1, after["fc.weight"].1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_backbone_at_a_tenth_of_the_rate_moves_a_tenth_as_far() {
    let dir = scratch("lr-scale");
    let data = dir.join("data");
    folder(&data, 3);
    let weights = dir.join("w.safetensors");
    torchvision_weights(&weights);
    let w = weights.to_str().unwrap();
    let moved = |scale: &str| -> BTreeMap<String, f64> {
        let out = dir.join(format!("run-{scale}"));
        let o = train(&data, &out, &["--init-from", w, "--backbone-lr-scale", scale]);
        assert!(o.status.success(), "{}", text(&o).1);
        let (before, after) = (tensors(&weights), tensors(&out.join("model.safetensors")));
        let mut out = BTreeMap::new();
        for (name, (shape, t)) in &before {
            if name.ends_with("weight") && !name.starts_with("fc.") && shape.len() == 4 {
                let (a, b) = (floats(&after[name].1), floats(t));
                let d: f64 = a.iter().zip(&b).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
                out.insert(name.clone(), d.sqrt());
            }
        }
        out
    };
    let (tenth, full) = (moved("0.1"), moved("1"));
    for (name, far) in &full {
        assert!(*far > 0.0, "{name} did not move at the full rate");
        let ratio = tenth[name] / far;
        // One SGD step from the same state: the update is lr × scale × d.
        assert!((ratio - 0.1).abs() < 1e-3, "{name}: moved {ratio} as far");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn starting_from_a_checkpoint_loads_its_weights() {
    let dir = scratch("same-loss");
    let data = dir.join("data");
    folder(&data, 3);
    let first = dir.join("first");
    let o = train(&data, &first, &["--epochs", "3"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let model = first.join("model.safetensors");
    // The checkpoint's own evaluation, on the test set (the training set).
    let o = wengert(&[
        "eval",
        "--model",
        "resnet8",
        "--checkpoint",
        model.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let eval_loss: f64 = stdout.lines().find_map(|l| l.strip_prefix("test loss: ")).unwrap().parse().unwrap();
    // One step from it, with the batch norms on their running statistics
    // (a frozen backbone) as evaluation has them: the step's loss is the
    // evaluation's, since the weights are the checkpoint's.
    let second = dir.join("second");
    let o = train(&data, &second, &["--init-from", model.to_str().unwrap(), "--freeze", "backbone"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("normalising as"), "{stdout}");
    assert!(!stdout.contains("initialised afresh"), "{stdout}");
    let metrics = std::fs::read_to_string(second.join("metrics.csv")).unwrap();
    let row: Vec<&str> = metrics.lines().nth(1).unwrap().split(',').collect();
    let step_loss: f64 = row[1].parse().unwrap();
    // eval prints four decimals.
    assert!((step_loss - eval_loss).abs() <= 6e-5, "first step {step_loss}, evaluation {eval_loss}");
    // A fresh model's loss is far from it: the test can tell.
    let fresh = dir.join("fresh");
    let o = train(&data, &fresh, &["--freeze", "backbone"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let metrics = std::fs::read_to_string(fresh.join("metrics.csv")).unwrap();
    let fresh_loss: f64 = metrics.lines().nth(1).unwrap().split(',').nth(1).unwrap().parse().unwrap();
    assert!((fresh_loss - eval_loss).abs() > 1e-3, "{fresh_loss} {eval_loss}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn weights_that_do_not_fit_are_refused_before_training() {
    let dir = scratch("refused");
    let data = dir.join("data");
    folder(&data, 3);
    let weights = dir.join("w.safetensors");
    torchvision_weights(&weights);
    let w = weights.to_str().unwrap();
    let out = dir.join("out");
    let refused = |extra: &[&str], says: &str| {
        let o = train(&data, &out, extra);
        let (_, stderr) = text(&o);
        assert!(!o.status.success(), "{extra:?} was accepted");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(!out.join("checkpoint.safetensors").exists(), "{extra:?} trained");
    };
    // Another model's weights, told from the names and shapes alone.
    let o = wengert(&[
        "train",
        "--model",
        "resnet20",
        "--image-size",
        "12",
        "--data-dir",
        data.to_str().unwrap(),
        "--init-from",
        w,
    ]);
    let says = "holds a resnet8 or plain8, not a resnet20: pass --model resnet8";
    assert!(!o.status.success() && text(&o).1.contains(says), "{}", text(&o).1);
    // A truncated file, a file of random bytes.
    let bytes = std::fs::read(&weights).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    refused(&["--init-from", cut.to_str().unwrap()], "--init-from");
    let noise = dir.join("noise.safetensors");
    std::fs::write(&noise, (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>())
        .unwrap();
    refused(&["--init-from", noise.to_str().unwrap()], "--init-from");
    refused(&["--init-from", dir.join("none.safetensors").to_str().unwrap()], "--init-from: ");
    // A tensor of another shape, outside the classifier.
    let mut t = tensors(&weights);
    t.insert("layer1.0.conv1.weight".into(), (vec![16, 16, 1, 1], vec![0; 16 * 16 * 4]));
    t.insert("extra.weight".into(), (vec![2], vec![0; 8]));
    let odd = dir.join("odd.safetensors");
    write(&t, &odd);
    refused(&["--init-from", odd.to_str().unwrap()], "shape or dtype differs: layer1.0.conv1.weight");
    refused(&["--init-from", odd.to_str().unwrap()], "not in the model: extra.weight");
    // Learning-rate scales out of range, and one that contradicts --freeze.
    for (scale, says) in
        [("-1", "must be finite and at least 0"), ("nan", "must be finite"), ("0", "use --freeze backbone")]
    {
        refused(&["--init-from", w, "--backbone-lr-scale", scale], says);
    }
    refused(&["--init-from", w, "--backbone-lr-scale", "0.1", "--freeze", "backbone"], "--backbone-lr-scale");
    // --init-partial loads what fits and says what it skipped.
    let o = train(&data, &out, &["--init-from", odd.to_str().unwrap(), "--init-partial"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("initialised afresh (--init-partial): layer1.0.conv1.weight"), "{stdout}");
    assert!(stdout.contains("not in the model, skipped (--init-partial): extra.weight"), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}
