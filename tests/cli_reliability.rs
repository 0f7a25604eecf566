//! The command line under hostile input: empty or mismatched data, odd
//! flags, a learning rate that blows up, Ctrl-C mid-epoch, a failed write
//! between the checkpoint's two files, an output that names an input. Each
//! must end in a clear error or a clean stop, with no good file lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use wengert::nn::checkpoint::{read_metadata, read_tensors, save_model, write_tensors};
use wengert::resnet::zoo::ResNet;

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wengert-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An uncompressed IDX file of unsigned bytes.
fn idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

/// An MNIST-style folder of `train` and `test` images of `rows × cols`
/// (test images of `test_size` when given), each class a brightness.
fn tiny_mnist(dir: &Path, train: u32, test: u32, (rows, cols): (u32, u32), test_size: Option<(u32, u32)>) {
    let write = |prefix: &str, n: u32, (r, c): (u32, u32)| {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let pixels: Vec<u8> = labels.iter().flat_map(|&l| std::iter::repeat_n(l * 25, (r * c) as usize)).collect();
        idx(&dir.join(format!("{prefix}-images-idx3-ubyte")), &[n, r, c], &pixels);
        idx(&dir.join(format!("{prefix}-labels-idx1-ubyte")), &[n], &labels);
    };
    write("train", train, (rows, cols));
    write("t10k", test, test_size.unwrap_or((rows, cols)));
}

fn wengert() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wengert"))
}

/// `wengert train` on `data` into `out` with extra arguments; ResNet-8,
/// batch 16 and one thread unless `extra` says otherwise.
fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = wengert();
    cmd.arg("train");
    for (flag, value) in [("--model", "resnet8"), ("--batch-size", "16"), ("--threads", "1")] {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    cmd.arg("--data-dir").arg(data).arg("--out").arg(out).args(extra).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn iteration(out: &Path) -> usize {
    read_metadata(&out.join("checkpoint.safetensors")).unwrap()["position.iteration"].parse().unwrap()
}

#[test]
fn an_empty_training_set_is_an_error_not_an_endless_loop() {
    let dir = scratch("empty");
    tiny_mnist(&dir, 0, 4, (8, 8), None);
    let o = train(&dir, &dir.join("out"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("the training set has no images"), "{}", stderr(&o));
    assert!(!dir.join("out/model.safetensors").exists());
    tiny_mnist(&dir, 32, 4, (8, 8), None);
    let o = train(&dir, &dir.join("out"), &["--limit", "0"]);
    assert!(stderr(&o).contains("--limit: must be at least 1"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_data_is_named_before_training() {
    let dir = scratch("data");
    tiny_mnist(&dir, 32, 0, (8, 8), None);
    let o = train(&dir, &dir.join("out"), &[]);
    assert!(stderr(&o).contains("the test set has no images"), "{}", stderr(&o));
    tiny_mnist(&dir, 32, 8, (8, 8), Some((6, 6)));
    let o = train(&dir, &dir.join("out"), &[]);
    assert!(
        stderr(&o).contains("training images are (1, 8, 8) (C, H, W) but test images are (1, 6, 6)"),
        "{}",
        stderr(&o)
    );
    tiny_mnist(&dir, 32, 8, (0, 0), None);
    let o = train(&dir, &dir.join("out"), &[]);
    let e = stderr(&o);
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("rows, cols ≥ 1"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn options_out_of_range_are_refused_before_any_work() {
    let dir = scratch("flags");
    tiny_mnist(&dir, 32, 8, (8, 8), None);
    let out = dir.join("out");
    for (flag, value, says) in [
        ("--lr", "nan", "--lr: must be finite and positive, got NaN"),
        ("--lr", "inf", "--lr: must be finite and positive, got inf"),
        ("--lr", "-1", "--lr: must be finite and positive, got -1"),
        ("--weight-decay", "nan", "--weight-decay: must be finite and non-negative"),
        ("--clip", "-2", "--clip: must be finite and non-negative"),
        ("--threads", "0", "--threads: must be between 1 and"),
        ("--threads", "100000", "--threads: must be between 1 and"),
        ("--batch-size", "0", "--batch-size: must be at least 1"),
        ("--epochs", "0", "--epochs: must be at least 1"),
    ] {
        let o = train(&dir, &out, &[flag, value]);
        assert!(!o.status.success(), "{flag} {value} was accepted");
        assert!(stderr(&o).contains(says), "{flag} {value}: {}", stderr(&o));
        assert!(!String::from_utf8_lossy(&o.stdout).contains("checkpoint:"), "{flag} {value} printed a checkpoint");
    }
    // An output folder that cannot be made is found before the first step.
    std::fs::write(dir.join("a-file"), b"x").unwrap();
    let o = train(&dir, &dir.join("a-file/out"), &[]);
    assert!(stderr(&o).contains("--out"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_learning_rate_that_blows_up_never_replaces_a_good_checkpoint() {
    let dir = scratch("nan");
    tiny_mnist(&dir, 64, 16, (8, 8), None);
    let out = dir.join("out");
    let o = train(&dir, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let good = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    let good_model = std::fs::read(out.join("model.safetensors")).unwrap();
    // Started afresh over the good run (as --overwrite allows), a run that
    // blows up must still leave the good checkpoint in place.
    let o = train(&dir, &out, &["--lr", "1e38", "--overwrite"]);
    assert!(!o.status.success(), "a run whose weights overflow succeeded");
    let e = stderr(&o);
    assert!(e.contains("iteration") && (e.contains("NaN") || e.contains("inf")), "{e}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("test accuracy"), "accuracy of a broken model was reported");
    assert_eq!(std::fs::read(out.join("checkpoint.safetensors")).unwrap(), good);
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), good_model);
    // 1e30 once saved NaN weights with status 0. Now it either stops with
    // the good checkpoint kept, or trains to weights that are all finite.
    let o = train(&dir, &out, &["--lr", "1e30", "--overwrite"]);
    if o.status.success() {
        let mut net = ResNet::<f32>::by_name("resnet8", 1, 10, &mut wengert::core::rng(0)).unwrap();
        wengert::nn::checkpoint::load_model(&mut net, &out.join("checkpoint.safetensors"), false).unwrap();
        let bad = wengert::train::train::first_non_finite(&net);
        assert!(bad.is_none(), "a run with --lr 1e30 saved non-finite weights: {bad:?}");
    } else {
        assert_eq!(std::fs::read(out.join("checkpoint.safetensors")).unwrap(), good);
    }
    // With anomaly detection the error names the first op that made a NaN
    // or an infinity, and where it was recorded.
    let o = train(&dir, &out, &["--lr", "1e38", "--detect-anomaly", "--overwrite"]);
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("recorded in"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_failed_write_between_the_two_files_leaves_a_consistent_checkpoint() {
    let dir = scratch("parts");
    tiny_mnist(&dir, 64, 16, (8, 8), None);
    let out = dir.join("out");
    // model.safetensors cannot be replaced: a folder stands in its place.
    std::fs::create_dir_all(out.join("model.safetensors")).unwrap();
    let o = train(&dir, &out, &["--epochs", "2"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("model.safetensors"), "{}", stderr(&o));
    // The whole state of epoch 1 is in the one checkpoint file ...
    assert_eq!(iteration(&out), 4);
    std::fs::remove_dir(out.join("model.safetensors")).unwrap();
    // ... and the run resumes from it at epoch 2, not epoch 1 again.
    let o = train(&dir, &out, &["--epochs", "2", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(said.contains("at iteration 4") && said.contains("epoch 2:") && !said.contains("epoch 1:"), "{said}");
    assert_eq!(iteration(&out), 8);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resuming_with_other_settings_says_what_differs() {
    let dir = scratch("resume");
    tiny_mnist(&dir, 64, 16, (8, 8), None);
    let out = dir.join("out");
    assert!(train(&dir, &out, &[]).status.success());
    let o = train(&dir, &out, &["--resume", "--epochs", "2", "--batch-size", "32"]);
    let e = stderr(&o);
    assert!(e.contains("batch_size 16 (now 32)") && e.contains("batches_per_epoch 4 (now 2)"), "{e}");
    let o = train(&dir, &out, &["--resume", "--epochs", "2", "--optimizer", "adam"]);
    assert!(stderr(&o).contains("optimizer sgd (now adam)"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

/// Ctrl-C, as a real SIGINT, stops the run after the step in progress and
/// saves where it was; `--resume` goes on from there.
#[test]
fn ctrl_c_stops_within_a_step_and_saves() {
    let dir = scratch("sigint");
    tiny_mnist(&dir, 40_000, 16, (8, 8), None);
    let out = dir.join("out");
    let mut child = wengert()
        .args(["train", "--model", "resnet8", "--batch-size", "1", "--threads", "1"])
        .arg("--data-dir")
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let kill = Command::new("sh").arg("-c").arg(format!("kill -INT {}", child.id())).status().unwrap();
    assert!(kill.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "still running a minute after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let stopped_at = iteration(&out);
    assert!(stopped_at > 0 && stopped_at < 40_000, "stopped at iteration {stopped_at}");
    assert!(out.join("steps.csv").exists() == (stopped_at >= 10));
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--recipe he2016-cifar` trains with the paper's settings: seen in the
/// checkpoint that Ctrl-C leaves (the whole recipe is 64k iterations).
#[test]
fn the_he2016_recipe_sets_the_papers_settings() {
    let dir = scratch("recipe");
    tiny_mnist(&dir, 512, 16, (8, 8), None);
    let out = dir.join("out");
    let mut child = wengert()
        .args(["train", "--model", "resnet8", "--recipe", "he2016-cifar", "--threads", "1", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let meta = read_metadata(&out.join("checkpoint.safetensors")).unwrap();
    for (key, want) in [
        ("setting.batch_size", "128"),
        ("setting.lr", "0.1"),
        ("setting.momentum", "0.9"),
        ("setting.weight_decay", "0.0001"),
        ("setting.warmup", "0"),
        ("setting.pad", "4"),
        ("setting.decay", "Steps { milestones: [32000, 48000], gamma: 0.1 }"),
        ("run.epochs", "16000"), // 64k iterations of 4 batches an epoch
    ] {
        assert_eq!(meta.get(key).map(String::as_str), Some(want), "{key}");
    }
    // The recipe sets what it sets: the options it fixes cannot be given too.
    let o = wengert().args(["train", "--recipe", "he2016-cifar", "--lr", "0.2"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with '--lr <LR>'"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn predict_never_overwrites_its_inputs_and_blames_the_right_thing() {
    let dir = scratch("predict");
    let net = ResNet::<f32>::by_name("resnet8", 1, 10, &mut wengert::core::rng(0)).unwrap();
    let weights = dir.join("w.safetensors");
    save_model(&net, &weights).unwrap();
    let input = dir.join("in.safetensors");
    let x = wengert::core::Tensor::<f32>::zeros([1, 1, 8, 8]);
    write_tensors(&BTreeMap::from([("input".to_string(), x)]), &input).unwrap();
    let before = (std::fs::read(&weights).unwrap(), std::fs::read(&input).unwrap());
    let predict = |input: &Path, output: &Path| {
        wengert()
            .args(["predict", "--model", "resnet8", "--classes", "10"])
            .arg("--weights")
            .arg(&weights)
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(output)
            .output()
            .unwrap()
    };
    for output in [&weights, &input, &dir.join("./w.safetensors")] {
        let o = predict(&input, output);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("writing it would destroy that file"), "{}", stderr(&o));
    }
    assert_eq!((std::fs::read(&weights).unwrap(), std::fs::read(&input).unwrap()), before);
    // Three channels into a one-channel model: the input is at fault, not the file.
    let rgb = dir.join("rgb.safetensors");
    write_tensors(&BTreeMap::from([("input".to_string(), wengert::core::Tensor::<f32>::zeros([1, 3, 8, 8]))]), &rgb)
        .unwrap();
    let o = predict(&rgb, &dir.join("out.safetensors"));
    assert!(stderr(&o).contains("the input has 3 channels but the model in"), "{}", stderr(&o));
    // NaN in, NaN out: relu passes NaN on, as PyTorch's does.
    let nan = dir.join("nan.safetensors");
    write_tensors(
        &BTreeMap::from([("input".to_string(), wengert::core::Tensor::<f32>::full([1, 1, 8, 8], f32::NAN))]),
        &nan,
    )
    .unwrap();
    let o = predict(&nan, &dir.join("out.safetensors"));
    assert!(o.status.success(), "{}", stderr(&o));
    let logits = read_tensors::<f32>(&dir.join("out.safetensors")).unwrap().remove("logits").unwrap();
    assert!(logits.data().iter().all(|v| v.is_nan()), "{logits:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_checkpoint_of_another_model_is_named_in_a_line() {
    let dir = scratch("other");
    tiny_mnist(&dir, 32, 16, (8, 8), None);
    let out = dir.join("out");
    assert!(train(&dir, &out, &["--model", "resnet20"]).status.success());
    let o = wengert()
        .args(["eval", "--model", "resnet8"])
        .arg("--checkpoint")
        .arg(out.join("model.safetensors"))
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(e.contains("holds a resnet20, not a resnet8: pass --model resnet20"), "{e}");
    assert!(e.len() < 300, "{} bytes: {e}", e.len());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_second_run_never_replaces_the_first_unless_asked() {
    let dir = scratch("second-run");
    tiny_mnist(&dir, 64, 16, (8, 8), None);
    let out = dir.join("out");
    assert!(train(&dir, &out, &[]).status.success());
    let first = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    let o = train(&dir, &out, &["--seed", "1"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--out") && e.contains("--resume") && e.contains("--overwrite"), "{e}");
    assert_eq!(std::fs::read(out.join("checkpoint.safetensors")).unwrap(), first, "the first run's checkpoint stays");
    // A temporary file that a killed writer left (its process long gone)
    // is cleared by the next write of the same file.
    let stale = out.join(".checkpoint.safetensors.tmp-999999999");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let o = train(&dir, &out, &["--seed", "1", "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(out.join("checkpoint.safetensors")).unwrap(), first, "replaced, as asked");
    assert!(!stale.exists(), "the stale temporary file is gone");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_epoch_whose_checkpoint_fails_writes_no_other_file() {
    let dir = scratch("no-mixed-folder");
    tiny_mnist(&dir, 64, 16, (8, 8), None);
    let out = dir.join("out");
    // The checkpoint cannot be written: a folder stands in its place.
    std::fs::create_dir_all(out.join("checkpoint.safetensors")).unwrap();
    let o = train(&dir, &out, &["--overwrite"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("checkpoint.safetensors"), "{}", stderr(&o));
    for name in ["confusion.png", "curves.png", "metrics.csv", "model.safetensors"] {
        assert!(!out.join(name).exists(), "{name} was written although the checkpoint was not");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A folder of images, `train/<class>/` and `val/<class>/`, three RGB
/// images of 12 × 10 a class.
fn image_folder(dir: &Path, classes: &[&str]) {
    for split in ["train", "val"] {
        for (k, class) in classes.iter().enumerate() {
            let d = dir.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..3u32 {
                let img = image::RgbImage::from_fn(12, 10, |x, y| {
                    image::Rgb([(k * 80) as u8, (x * 20) as u8, (y + i) as u8])
                });
                img.save(d.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

/// `wengert COMMAND` with `args`, and each of `defaults` that `args` does not give.
fn command(name: &str, defaults: &[(&str, String)], args: &[String]) -> Output {
    let mut cmd = wengert();
    cmd.arg(name);
    for (flag, value) in defaults {
        if !args.iter().any(|a| a == flag) {
            cmd.arg(flag).arg(value);
        }
    }
    cmd.args(args).output().unwrap()
}

/// Every option of `train`, `eval`, `predict` and `export` given a value out of its
/// range, a path that is not there, or one that conflicts: each is refused,
/// and the message names the option as the user typed it.
#[test]
fn every_option_out_of_range_is_named_as_typed() {
    let dir = scratch("every-option");
    let (mnist, folder) = (dir.join("mnist"), dir.join("folder"));
    std::fs::create_dir_all(&mnist).unwrap();
    tiny_mnist(&mnist, 32, 8, (8, 8), None);
    image_folder(&folder, &["a", "b"]);
    let out = dir.join("out");
    let missing = dir.join("missing");
    let a_file = mnist.join("train-images-idx3-ubyte");
    let s = |p: &Path| p.display().to_string();
    let huge = u64::MAX.to_string();
    // (option named, arguments after `train --data-dir MNIST --out OUT` unless the data is given)
    let train_cases: Vec<(&str, Vec<String>)> = vec![
        ("--lr", vec!["--lr".into(), "nan".into()]),
        ("--weight-decay", vec!["--weight-decay".into(), "-1".into()]),
        ("--clip", vec!["--clip".into(), "inf".into()]),
        ("--threads", vec!["--threads".into(), "0".into()]),
        ("--batch-size", vec!["--batch-size".into(), "0".into()]),
        ("--epochs", vec!["--epochs".into(), "0".into()]),
        ("--limit", vec!["--limit".into(), "0".into()]),
        ("--bucket-kib", vec!["--bucket-kib".into(), huge.clone()]),
        ("--pad", vec!["--pad".into(), "1000".into()]),
        ("--crop-scale", vec!["--crop-scale".into(), "2".into()]),
        ("--crop-scale", vec!["--crop-scale".into(), "nan".into()]),
        ("--crop-scale", vec!["--crop-scale".into(), "0.5".into(), "--pad".into(), "2".into()]),
        ("--mean", vec!["--mean".into(), "nan".into(), "--std".into(), "1".into()]),
        ("--mean", vec!["--mean".into(), "0,0".into(), "--std".into(), "1,1".into()]),
        ("--std", vec!["--mean".into(), "0".into(), "--std".into(), "0".into()]),
        ("--image-size", vec!["--image-size".into(), "16".into()]),
        ("--resume", vec!["--resume".into()]),
        ("--data-dir", vec!["--data-dir".into(), s(&missing)]),
        ("--data-dir", vec!["--data-dir".into(), s(&a_file)]),
        ("--out", vec!["--out".into(), s(&a_file)]),
        ("--model", vec!["--model".into(), "resnet7".into()]),
        ("--optimizer", vec!["--optimizer".into(), "rmsprop".into()]),
        ("--image-size", vec!["--data-dir".into(), s(&folder), "--image-size".into(), "0".into()]),
        ("--image-size", vec!["--data-dir".into(), s(&folder), "--image-size".into(), "20000".into()]),
        ("--decode", vec!["--data-dir".into(), s(&folder), "--decode".into(), "never".into()]),
        (
            "--batch-size",
            vec![
                "--data-dir".into(),
                s(&folder),
                "--image-size".into(),
                "16384".into(),
                "--batch-size".into(),
                "2".into(),
            ],
        ),
    ];
    for (option, args) in &train_cases {
        let defaults = [
            ("--model", s(Path::new("resnet8"))),
            ("--threads", "1".into()),
            ("--batch-size", "16".into()),
            ("--data-dir", s(&mnist)),
            ("--out", s(&out)),
        ];
        let o = command("train", &defaults, args);
        let err = stderr(&o);
        assert!(!o.status.success(), "train {args:?} was accepted");
        assert!(err.contains(option), "train {args:?} does not name {option}: {err}");
        assert!(!err.contains("Loader::") && !err.contains("image_size"), "train {args:?} names internals: {err}");
        assert!(!out.join("checkpoint.safetensors").exists(), "train {args:?} trained");
    }

    // A model of two grey classes to evaluate and predict with.
    let model_dir = dir.join("model");
    let o = train(&mnist, &model_dir, &["--limit", "16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = model_dir.join("model.safetensors");
    let eval_cases: Vec<(&str, Vec<String>)> = vec![
        ("--checkpoint", vec!["--checkpoint".into(), s(&missing)]),
        ("--checkpoint", vec!["--checkpoint".into(), s(&mnist)]),
        ("--data-dir", vec!["--checkpoint".into(), s(&model), "--data-dir".into(), s(&missing)]),
        ("--image-size", vec!["--checkpoint".into(), s(&model), "--image-size".into(), "0".into()]),
        // A grey model on colour images.
        (
            "--data-dir",
            vec!["--checkpoint".into(), s(&model), "--data-dir".into(), s(&folder), "--image-size".into(), "8".into()],
        ),
        ("--model", vec!["--checkpoint".into(), s(&model), "--model".into(), "resnet20".into()]),
    ];
    for (option, args) in &eval_cases {
        let o = command("eval", &[("--model", "resnet8".into()), ("--data-dir", s(&mnist))], args);
        let err = stderr(&o);
        assert!(!o.status.success(), "eval {args:?} was accepted");
        assert!(err.contains(option), "eval {args:?} does not name {option}: {err}");
        assert!(!err.contains("Loader::") && !err.contains("cross_entropy"), "eval {args:?} names internals: {err}");
    }

    let input = dir.join("input.safetensors");
    let x = wengert::Tensor::<f32>::zeros([1, 1, 8, 8]);
    write_tensors(&BTreeMap::from([("input".to_string(), x)]), &input).unwrap();
    let logits = dir.join("logits.safetensors");
    let predict_cases: Vec<(&str, Vec<String>)> = vec![
        (
            "--weights",
            vec!["--weights".into(), s(&missing), "--input".into(), s(&input), "--output".into(), s(&logits)],
        ),
        ("--input", vec!["--weights".into(), s(&model), "--input".into(), s(&missing), "--output".into(), s(&logits)]),
        ("--output", vec!["--weights".into(), s(&model), "--input".into(), s(&input), "--output".into(), s(&input)]),
        (
            "--classes",
            vec![
                "--weights".into(),
                s(&model),
                "--input".into(),
                s(&input),
                "--output".into(),
                s(&logits),
                "--classes".into(),
                "0".into(),
            ],
        ),
        ("--image", vec!["--weights".into(), s(&model), "--image".into(), s(&missing)]),
        (
            "--model",
            vec!["--model".into(), "resnet".into(), "--weights".into(), s(&model), "--image".into(), s(&missing)],
        ),
    ];
    for (option, args) in &predict_cases {
        let o = command("predict", &[("--model", "resnet8".into())], args);
        let err = stderr(&o);
        assert!(!o.status.success(), "predict {args:?} was accepted");
        assert!(err.contains(option), "predict {args:?} does not name {option}: {err}");
    }
    assert!(!logits.exists());

    let onnx = dir.join("model.onnx");
    let export_cases: Vec<(&str, Vec<String>)> = vec![
        ("--weights", vec!["--weights".into(), s(&missing), "--onnx".into(), s(&onnx)]),
        ("--weights", vec!["--weights".into(), s(&a_file), "--onnx".into(), s(&onnx)]),
        (
            "--weights",
            vec!["--weights".into(), s(&model), "--onnx".into(), s(&onnx), "--model".into(), "resnet20".into()],
        ),
        ("--onnx", vec!["--weights".into(), s(&model), "--onnx".into(), s(&model)]),
        ("--onnx", vec!["--weights".into(), s(&model), "--onnx".into(), s(&missing.join("model.onnx"))]),
        ("--onnx", vec!["--weights".into(), s(&model), "--onnx".into(), s(&dir)]),
        (
            "--image-size",
            vec!["--weights".into(), s(&model), "--onnx".into(), s(&onnx), "--image-size".into(), "0".into()],
        ),
        ("--model", vec!["--weights".into(), s(&model), "--onnx".into(), s(&onnx), "--model".into(), "rnn".into()]),
    ];
    for (option, args) in &export_cases {
        let o = command("export", &[("--model", "resnet8".into())], args);
        let err = stderr(&o);
        assert!(!o.status.success(), "export {args:?} was accepted");
        assert!(err.contains(option), "export {args:?} does not name {option}: {err}");
    }
    assert!(!onnx.exists());
    let o = command(
        "export",
        &[("--model", "resnet8".into())],
        &["--weights".into(), s(&model), "--onnx".into(), s(&onnx)],
    );
    assert!(o.status.success() && onnx.exists(), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

/// The examples, each in the user's words: what is wrong and what
/// would be accepted.
#[test]
fn errors_say_what_to_fix() {
    let dir = scratch("say-what-to-fix");
    let (mnist, folder) = (dir.join("mnist"), dir.join("folder"));
    std::fs::create_dir_all(&mnist).unwrap();
    tiny_mnist(&mnist, 32, 20, (8, 8), None);
    image_folder(&folder, &["a", "b"]);
    let o = train(&folder, &dir.join("a"), &["--crop-scale", "2"]);
    assert!(
        stderr(&o)
            .contains("train: --crop-scale: must be a fraction of the image's area in (0, 1], or 0 for off; got 2"),
        "{}",
        stderr(&o)
    );
    let o = train(&dir.join("nowhere"), &dir.join("a"), &[]);
    assert!(stderr(&o).contains("--data-dir: ") && stderr(&o).contains("nowhere does not exist"), "{}", stderr(&o));

    // A model of two classes (folder a, b) scored on ten classes of grey images.
    let two = dir.join("two");
    let o = train(&folder, &two, &["--image-size", "8", "--batch-size", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval = |data: &Path, extra: &[&str]| {
        let mut cmd = wengert();
        cmd.args(["eval", "--model", "resnet8", "--checkpoint"]).arg(two.join("model.safetensors"));
        cmd.arg("--data-dir").arg(data).args(extra).output().unwrap()
    };
    let e = stderr(&eval(&mnist, &[]));
    assert!(e.contains("eval: --data-dir: the images in") && e.contains("have 1 channel, but the model in"), "{e}");
    assert!(e.contains("was trained on images of 3 channels"), "{e}");
    // Ten classes of colour images for a model of two.
    let ten = dir.join("ten");
    image_folder(&ten, &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    let e = stderr(&eval(&ten, &[]));
    assert!(e.contains("has 10 classes (labels up to 9), but the model in") && e.contains("tells 2 apart"), "{e}");

    // A step that cannot fit says what would.
    let o = train(&folder, &dir.join("b"), &["--image-size", "16384", "--batch-size", "64"]);
    let e = stderr(&o);
    assert!(
        e.contains("train: --batch-size: a step of resnet8 with batch 6 of 3×16384×16384 images needs about"),
        "{e}"
    );
    assert!(e.contains("this machine has") && e.contains("try --batch-size"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
