//! The experiment commands end to end: tables on stdout, CSV and PNG files
//! in the output folder, clear errors for bad arguments.

use std::process::Command;

fn wengert(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wengert")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn gradflow_writes_its_table_and_files() {
    let dir = std::env::temp_dir().join(format!("wengert-gradflow-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let (ok, out, err) = wengert(&["gradflow", "--depths", "4,8", "--out", d]);
    assert!(ok, "{err}");
    assert!(out.contains("residual+BN") && out.lines().any(|l| l.trim_start().starts_with("8 ")), "{out}");
    let csv = std::fs::read_to_string(dir.join("gradflow.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 4);
    assert!(std::fs::read(dir.join("gradflow.png")).unwrap().starts_with(b"\x89PNG"));

    let (ok, out, err) = wengert(&["gradflow", "--rnn", "--steps", "5,20", "--out", d]);
    assert!(ok, "{err}");
    assert!(out.contains("residual_rnn"), "{out}");
    let csv = std::fs::read_to_string(dir.join("gradflow_rnn.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3);
    assert!(dir.join("gradflow_rnn.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();

    let (ok, _, err) = wengert(&["gradflow", "--depths", "8,7"]);
    assert!(!ok && err.contains("--depths") && err.contains("7 is odd"), "{err}");
    let (ok, _, err) = wengert(&["gradflow", "--depths", "8,x"]);
    assert!(!ok && err.contains("'8,x' is not a list of positive integers"), "{err}");
}

#[test]
fn summary_knows_googlenet_and_the_recurrent_models() {
    let (ok, out, _) = wengert(&["summary", "googlenet"]);
    assert!(ok && out.contains("parameters: 6624904"), "{out}");
    let (ok, out, _) = wengert(&["summary", "googlenet", "--aux"]);
    assert!(ok && out.contains("parameters: 13004888"), "{out}");
    let (ok, out, _) = wengert(&["summary", "preact_resnet1001"]);
    assert!(ok && out.contains("parameters: 10327706"), "{out}");
    let (ok, out, _) = wengert(&["summary", "lstm"]);
    // 4·128·(28 + 128) + 2·4·128 weights and biases, then the 128 → 10 head.
    assert!(ok && out.contains(&format!("parameters: {}", 4 * 128 * (28 + 128) + 8 * 128 + 128 * 10 + 10)), "{out}");
}

#[test]
fn train_writes_checkpoint_metrics_and_curves_then_eval_reads_them() {
    let dir = std::env::temp_dir().join(format!("wengert-train-cli-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let (ok, out, err) = wengert(&["train", "--model", "rnn", "--limit", "640", "--out", d]);
    assert!(ok, "{err}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("test accuracy: ") && last.ends_with('%'), "{out}");
    for f in [
        "model.safetensors",
        "checkpoint.safetensors",
        "metrics.csv",
        "steps.csv",
        "curves.png",
        "confusion.csv",
        "confusion.png",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // Ten classes: the epoch's line gives top-5 accuracy too, and the
    // confusion matrix counts every test image once.
    assert!(out.contains("(top-5 "), "{out}");
    let confusion = std::fs::read_to_string(dir.join("confusion.csv")).unwrap();
    assert_eq!(confusion.lines().next(), Some("truth\\predicted,0,1,2,3,4,5,6,7,8,9"));
    let counted: u64 =
        confusion.lines().skip(1).flat_map(|l| l.split(',').skip(1)).map(|v| v.parse::<u64>().unwrap()).sum();
    assert_eq!(counted, 10_000);
    let steps = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().next(), Some("iteration,train_loss,train_error_percent"));
    assert_eq!(steps.lines().count(), 1 + 1, "one row per 10 of the 10 iterations");
    let checkpoint = dir.join("model.safetensors");
    let (ok, eval_out, err) = wengert(&["eval", "--model", "rnn", "--checkpoint", checkpoint.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(eval_out.lines().last(), Some(last), "eval reproduces the final accuracy");
    assert!(eval_out.contains("class      accuracy  images") && eval_out.contains("top-5 accuracy: "), "{eval_out}");
    let (ok, _, err) = wengert(&["train", "--model", "gru", "--limit", "64", "--out", d]);
    assert!(!ok && err.contains("unknown model 'gru'"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_closed_output_pipe_ends_the_program_quietly() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wengert"))
        .args(["summary", "resnet1202"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the program has started writing (as
    // `| head -0` would): its first write fails with a broken pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{:?}: {stderr}", out.status);
}

#[test]
fn summary_lists_every_model_and_each_summarises() {
    let (ok, out, _) = wengert(&["summary", "--list"]);
    assert!(ok);
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names, wengert::resnet::registry::Model::catalogue());
    for name in names {
        let (ok, out, err) = wengert(&["summary", name]);
        assert!(ok && out.starts_with(&format!("{name}: input")) && out.contains("parameters: "), "{name}: {err}");
    }
    // A typo gets the nearest name, from the one registry.
    let (ok, _, err) = wengert(&["train", "--model", "resnet2O"]);
    assert!(!ok && err.contains("unknown model 'resnet2O'; did you mean 'resnet20'?"), "{err}");
    let (ok, _, err) = wengert(&["eval", "--checkpoint", "x", "--dataset", "fashion_mnist"]);
    assert!(!ok && err.contains("did you mean 'fashion-mnist'?"), "{err}");
}

/// Writes a CIFAR-10 folder in the dataset's binary format: `per_file`
/// records in each of the five training files and the test file. Class `k`
/// is an image whose channel `k % 3` is bright, with noise.
fn write_cifar10(dir: &std::path::Path, per_file: usize) {
    let mut seed = 1u32;
    let mut noise = || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 27) as u8
    };
    let mut file = |name: &str, offset: usize| {
        let mut bytes = Vec::new();
        for i in 0..per_file {
            let label = ((i + offset) % 3) as u8;
            bytes.push(label);
            for c in 0..3 {
                let base = if c == label as usize { 200 } else { 40 };
                bytes.extend((0..1024).map(|_| base + noise()));
            }
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for i in 1..=5 {
        file(&format!("data_batch_{i}.bin"), i);
    }
    file("test_batch.bin", 0);
}

#[test]
fn train_and_eval_read_a_cifar10_folder() {
    let root = std::env::temp_dir().join(format!("wengert-cifar-cli-{}", std::process::id()));
    let data = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&data).unwrap();
    write_cifar10(&data, 24);
    let out = root.join("run");
    let (d, o) = (root.to_str().unwrap(), out.to_str().unwrap());
    let args = ["train", "--model", "resnet8", "--data-dir", d, "--batch-size", "20", "--epochs", "2", "--out", o];
    let (ok, stdout, err) = wengert(&args);
    assert!(ok, "{err}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("test accuracy: "), "{stdout}");
    // Colour images: three classes found, each channel normalised with the
    // training set's own statistics, all saved with the model.
    let meta = wengert::nn::checkpoint::read_metadata(&out.join("model.safetensors")).unwrap();
    assert_eq!(meta.get("classes").map(String::as_str), Some("3"));
    assert_eq!(meta.get("normalise").unwrap().split(';').count(), 3);
    let shapes = wengert::nn::checkpoint::read_shapes(&out.join("model.safetensors")).unwrap();
    assert_eq!(shapes["conv1.weight"], [16, 3, 3, 3]);
    assert_eq!(shapes["fc.weight"], [3, 64]);
    let model = out.join("model.safetensors");
    let (ok, eval_out, err) =
        wengert(&["eval", "--model", "resnet8", "--checkpoint", model.to_str().unwrap(), "--data-dir", d]);
    assert!(ok, "{err}");
    assert_eq!(eval_out.lines().last(), Some(last), "eval reproduces the final accuracy");
    // A damaged file is named.
    std::fs::write(data.join("data_batch_2.bin"), [0u8; 100]).unwrap();
    let (ok, _, err) = wengert(&[&args[..], &["--overwrite"]].concat());
    assert!(!ok && err.contains("data_batch_2.bin: 100 bytes is not a whole number of 3073-byte records"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn train_reads_a_cifar100_folder_with_its_fine_labels() {
    let root = std::env::temp_dir().join(format!("wengert-cifar100-cli-{}", std::process::id()));
    let data = root.join("cifar-100-binary");
    std::fs::create_dir_all(&data).unwrap();
    // Records of a coarse label, a fine label (0, 50 or 99), and the image.
    for (name, n) in [("train.bin", 30), ("test.bin", 9)] {
        let mut bytes = Vec::new();
        for i in 0..n {
            let fine = [0u8, 50, 99][i % 3];
            bytes.extend([fine / 5, fine]);
            bytes.extend((0..3072).map(|p| if p / 1024 == i % 3 { 220u8 } else { (p % 50) as u8 }));
        }
        std::fs::write(data.join(name), bytes).unwrap();
    }
    let out = root.join("run");
    let (d, o) = (root.to_str().unwrap(), out.to_str().unwrap());
    let (ok, stdout, err) =
        wengert(&["train", "--model", "resnet8", "--data-dir", d, "--batch-size", "10", "--out", o]);
    assert!(ok, "{err}");
    assert!(stdout.lines().last().unwrap_or_default().starts_with("test accuracy: "), "{stdout}");
    // The fine labels reach 99: a hundred classes, and top-5 in each epoch's line.
    let shapes = wengert::nn::checkpoint::read_shapes(&out.join("model.safetensors")).unwrap();
    assert_eq!(shapes["fc.weight"], [100, 64]);
    assert!(stdout.contains("top-5"), "{stdout}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// Writes `train.safetensors` and `test.safetensors` of `n` images each,
/// 8×8 RGB channels last with no `layout` entry (the shape says it): class
/// `k` is bright in channel `k`, with noise; pixels as `U8` (0–255), or as
/// `F32` in `[-1, 1]`.
fn write_arrays(dir: &std::path::Path, n: usize, float: bool) {
    use safetensors::{tensor::TensorView, Dtype};
    std::fs::create_dir_all(dir).unwrap();
    for (split, offset) in [("train", 0), ("test", 1)] {
        let labels: Vec<i64> = (0..n).map(|i| ((i + offset) % 3) as i64).collect();
        let pixels: Vec<f32> = (0..n * 64 * 3)
            .map(|j| {
                let (i, c) = (j / 192, j % 3);
                let noise = ((j * 2_654_435_761) >> 9) % 60;
                (if c as i64 == labels[i] { 180.0 } else { 30.0 } + noise as f32) / 255.0
            })
            .collect();
        let bytes: Vec<u8> = if float {
            pixels.iter().flat_map(|p| (p * 2.0 - 1.0).to_le_bytes()).collect()
        } else {
            pixels.iter().map(|p| (p * 255.0) as u8).collect()
        };
        let label_bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        let dtype = if float { Dtype::F32 } else { Dtype::U8 };
        let tensors = [
            ("images", TensorView::new(dtype, vec![n, 8, 8, 3], &bytes).unwrap()),
            ("labels", TensorView::new(Dtype::I64, vec![n], &label_bytes).unwrap()),
        ];
        let file = safetensors::serialize(tensors, None).unwrap();
        std::fs::write(dir.join(format!("{split}.safetensors")), file).unwrap();
    }
}

#[test]
fn train_and_eval_read_array_files_of_bytes_or_floats() {
    let root = std::env::temp_dir().join(format!("wengert-arrays-cli-{}", std::process::id()));
    for float in [false, true] {
        let data = root.join(if float { "f32" } else { "u8" });
        write_arrays(&data, 60, float);
        let out = data.join("run");
        let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
        let mut args = vec!["train", "--model", "resnet8", "--data-dir", d, "--batch-size", "12", "--epochs", "2"];
        args.extend(["--lr", "0.05", "--out", o]);
        // Floats in [-1, 1] normalised as given; bytes by their measured statistics.
        if float {
            args.extend(["--mean", "0", "--std", "0.5"]);
        }
        let (ok, stdout, err) = wengert(&args);
        assert!(ok, "{err}");
        assert_eq!(stdout.lines().last(), Some("test accuracy: 100.00%"), "{stdout}");
        let meta = wengert::nn::checkpoint::read_metadata(&out.join("model.safetensors")).unwrap();
        assert_eq!(meta["image_shape"], "3,8,8");
        let normalise = &meta["normalise"];
        if float {
            assert_eq!(normalise, "0,0.5;0,0.5;0,0.5");
        } else {
            // A third of each channel's pixels are bright: a mean near (⅓·180 + ⅔·30 + 30 of noise) / 255.
            let means: Vec<f64> = normalise.split(';').map(|p| p.split(',').next().unwrap().parse().unwrap()).collect();
            assert!(means.iter().all(|m| (m - 0.431).abs() < 0.01), "{normalise}");
        }
        let model = out.join("model.safetensors");
        let eval = ["eval", "--model", "resnet8", "--checkpoint", model.to_str().unwrap(), "--data-dir", d];
        let (ok, eval_out, err) = wengert(&eval);
        assert!(ok, "{err}");
        assert_eq!(eval_out.lines().last(), Some("test accuracy: 100.00%"));
    }
    // A --mean with neither one value nor one per channel is refused.
    let d = root.join("f32");
    let (ok, _, err) = wengert(&["train", "--data-dir", d.to_str().unwrap(), "--mean", "0,0", "--std", "1"]);
    assert!(!ok && err.contains("--mean: 2 values for images of 3 channels"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// An image folder of three solid-colour classes (red, green, blue), with
/// a little noise, half PNG and half JPEG, in sizes that differ.
fn write_image_folder(root: &std::path::Path, per_class: usize) {
    let colours = [("blue", [0u8, 0, 220]), ("green", [0, 200, 0]), ("red", [230, 0, 0])];
    for split in ["train", "val"] {
        for (name, rgb) in colours {
            let dir = root.join(split).join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                let (w, h) = (12 + i as u32 % 3, 10 + i as u32 % 4);
                let img = image::RgbImage::from_fn(w, h, |x, y| {
                    let n = ((x * 7 + y * 13 + i as u32 * 5) % 40) as u8;
                    image::Rgb(rgb.map(|v| v.saturating_add(n)))
                });
                let file = dir.join(format!("{i}.{}", if i % 2 == 0 { "png" } else { "jpg" }));
                img.save(&file).unwrap();
            }
        }
    }
}

#[test]
fn train_eval_and_predict_on_a_folder_of_images() {
    let root = std::env::temp_dir().join(format!("wengert-images-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    write_image_folder(&root, 12);
    let out = root.join("run");
    let (d, o) = (root.to_str().unwrap(), out.to_str().unwrap());
    // The images differ in size: without --image-size that is an error naming a file.
    let (ok, _, err) = wengert(&["train", "--model", "resnet8", "--data-dir", d, "--out", o]);
    assert!(!ok && err.contains("pass --image-size N to resize and crop every image"), "{err}");
    let args = [
        "train",
        "--model",
        "resnet8",
        "--data-dir",
        d,
        "--image-size",
        "8",
        "--batch-size",
        "12",
        "--epochs",
        "3",
        "--lr",
        "0.05",
        "--out",
        o,
    ];
    let (ok, stdout, err) = wengert(&args);
    assert!(ok, "{err}");
    assert_eq!(stdout.lines().last(), Some("test accuracy: 100.00%"), "{stdout}");
    let model = out.join("model.safetensors");
    let meta = wengert::nn::checkpoint::read_metadata(&model).unwrap();
    assert_eq!(meta["class_names"], "blue\ngreen\nred");
    assert_eq!(meta["image_shape"], "3,8,8");
    let confusion = std::fs::read_to_string(out.join("confusion.csv")).unwrap();
    assert_eq!(confusion, "truth\\predicted,blue,green,red\nblue,12,0,0\ngreen,0,12,0\nred,0,0,12\n");
    // Folders of images train on random resized crops by default.
    let settings = wengert::nn::checkpoint::read_metadata(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(settings["setting.crop_scale"], "0.08");
    // Decoded as each batch is built, from the files, it learns as well.
    let streamed = root.join("streamed");
    let mut each = args.to_vec();
    each.extend(["--decode", "each-batch"]);
    let at = each.iter().position(|a| *a == "--out").unwrap() + 1;
    each[at] = streamed.to_str().unwrap();
    let (ok, stdout, err) = wengert(&each);
    assert!(ok, "{err}");
    assert_eq!(stdout.lines().last(), Some("test accuracy: 100.00%"), "{stdout}");
    let m = model.to_str().unwrap();
    // eval resizes as training did, from the model file.
    let (ok, eval_out, err) = wengert(&["eval", "--model", "resnet8", "--checkpoint", m, "--data-dir", d]);
    assert!(ok, "{err}");
    assert_eq!(eval_out.lines().last(), Some("test accuracy: 100.00%"));
    // predict names each image's class first, by the folder's name.
    let pictures: Vec<String> = ["red/1.jpg", "green/2.png", "blue/3.jpg"]
        .iter()
        .map(|f| root.join("val").join(f).to_str().unwrap().to_string())
        .collect();
    let mut predict = vec!["predict", "--model", "resnet8", "--weights", m, "--image"];
    predict.extend(pictures.iter().map(String::as_str));
    let (ok, said, err) = wengert(&predict);
    assert!(ok, "{err}");
    let firsts: Vec<&str> = said.lines().map(|l| l.split(": ").nth(1).unwrap().split(' ').next().unwrap()).collect();
    assert_eq!(firsts, ["red", "green", "blue"], "{said}");
    assert!(said.lines().all(|l| l.matches('%').count() == 3), "three classes, each with its probability: {said}");
    // Bad data is named: an image that does not decode, a class with no images.
    let args = [&args[..], &["--overwrite"]].concat();
    std::fs::write(root.join("train/red/5.png"), b"not a png").unwrap();
    let (ok, _, err) = wengert(&args);
    assert!(!ok && err.contains("red/5.png: cannot decode the image"), "{err}");
    std::fs::remove_file(root.join("train/red/5.png")).unwrap();
    std::fs::create_dir_all(root.join("train/yellow")).unwrap();
    let (ok, _, err) = wengert(&args);
    assert!(!ok && err.contains("yellow: this class folder holds no .png, .jpg or .jpeg images"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bench_profile_tables_a_training_step_op_by_op() {
    let (ok, out, err) = wengert(&["bench", "--profile", "resnet8", "--batch", "2", "--steps", "1"]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("resnet8_b2_train_step: 1 steps of 2 images, "), "{out}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let row = |name: &str| rows.iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("no {name} row: {out}"));
    // ResNet-8: the stem and two convolutions in each of three blocks, each
    // followed by batch norm, fused with the ReLU after it in the stem and
    // after each block's first; each block ends with its sum and ReLU as
    // one op. Every one once forward and once backward.
    for (op, calls) in [("batch_norm_relu", "4.0"), ("batch_norm", "3.0"), ("add_relu", "3.0")] {
        assert_eq!((row(op)[2], row(op)[4]), (calls, calls), "{op}: {out}");
    }
    assert!(!rows.iter().any(|r| r[0] == "relu"), "every ReLU is fused: {out}");
    // A row per convolution layer (six shapes: the stem, two in each stage,
    // and the two strided ones), each naming its shapes and plan; seven
    // convolutions in all, each once forward and once backward.
    let convs: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == "conv2d").collect();
    assert_eq!(convs.len(), 6, "{out}");
    let calls = |i: usize| convs.iter().map(|r| r[i].parse::<f64>().unwrap()).sum::<f64>();
    assert_eq!((calls(2), calls(4)), (7.0, 7.0), "{out}");
    for r in &convs {
        // Convolutions count their multiply-adds: GFLOPS both ways.
        let gflops: Vec<f64> = r[6..8].iter().map(|g| g.parse().unwrap()).collect();
        assert!(gflops.iter().all(|&g| g > 0.0), "{out}");
        let detail = r[8..].join(" ");
        assert!(detail.contains(" n2: fwd ") && detail.contains(", dx ") && detail.contains(", dw "), "{out}");
    }
    assert!(out.contains("16→32 3×3/2 32×32→16×16 n2: fwd "), "{out}");
    let shares: f64 = rows
        .iter()
        .filter_map(|r| r.iter().find(|c| c.ends_with('%')))
        .map(|c| c.trim_end_matches('%').parse::<f64>().unwrap())
        .sum();
    assert!((shares - 100.0).abs() < 0.5, "the op rows and the time outside ops make the step: {shares}");
    assert!(out.contains("\npage faults: "), "{out}");
    // The convolutions' rate against the machine's peak, measured in the
    // instruction set the kernels run.
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("convolutions: ") && last.contains(" GFLOPS"), "{out}");
    if wengert::ops::isa::active() != wengert::ops::isa::Isa::Generic {
        let share: f64 = last.split(" per cent").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
        assert!(share > 0.0 && share <= 100.0, "{out}");
        assert!(last.contains(&format!("of {} multiply-adds)", wengert::ops::isa::active().name())), "{out}");
    }
    let (ok, _, err) = wengert(&["bench", "--batch", "2"]);
    assert!(!ok && err.contains("--batch and --recompute go with --mem or --profile"), "{err}");
}
