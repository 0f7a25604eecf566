//! ONNX export checked by an independent runtime: every block kind and
//! shortcut of the zoo, exported with [`to_onnx`], loaded by tract (a
//! pure-Rust ONNX runtime that shares no code with Wengert), and run on
//! random inputs at batch 1 and 3; its logits must match Wengert's
//! evaluation-mode forward pass to within float32 rounding (1e-4 of the
//! largest logit). The weights and the batch norms' running statistics are
//! random, so that every tensor the graph reads matters.

use rand::{Rng, SeedableRng};
use tract_onnx::prelude::*;
use wengert::core::Tape;
use wengert::nn::{Module, StateMut, Step};
use wengert::resnet::block::{Kind, Shortcut};
use wengert::resnet::googlenet::GoogLeNet;
use wengert::resnet::onnx::{model_to_onnx, to_onnx, Export};
use wengert::resnet::registry::Model;
use wengert::resnet::zoo::{ResNet, Spec};

/// Random batch-norm scales and shifts, running statistics of a
/// trained-looking spread, and a random classifier; the convolutions keep
/// their (random) initial weights.
fn randomise(net: &mut dyn Module<f32>, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    net.visit_mut("", &mut |name, s| {
        let range = match name.rsplit('.').next().unwrap_or("") {
            "running_var" => 0.5..2.0,
            "running_mean" | "bias" => -0.2..0.2,
            "weight" if name.starts_with("fc.") => -0.5..0.5,
            "weight" if name.contains("bn") || name.contains("downsample.1") => 0.5..1.5,
            _ => return,
        };
        match s {
            StateMut::Param(p) => {
                p.value_mut().data_mut().iter_mut().for_each(|v| *v = rng.random_range(range.clone()))
            }
            StateMut::Buffer(b) => b.data_mut().iter_mut().for_each(|v| *v = rng.random_range(range.clone())),
            StateMut::Count(_) => {}
        }
    });
}

/// Wengert's logits in evaluation mode.
fn wengert_logits(net: &mut dyn Module<f32>, x: &wengert::Tensor<f32>) -> Vec<f32> {
    let tape = Tape::new();
    let y = tape.no_grad(|| net.forward(&mut Step::eval(&tape), tape.constant(x.clone()))).unwrap();
    y.value().unwrap().data().to_vec()
}

/// tract's logits for the exported graph.
fn tract_logits(bytes: &[u8], x: &wengert::Tensor<f32>) -> Vec<f32> {
    let d = x.dims().to_vec();
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, f32::fact([d[0], d[1], d[2], d[3]]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::Array4::from_shape_vec((d[0], d[1], d[2], d[3]), x.data().to_vec()).unwrap();
    let out = model.run(tvec!(Tensor::from(input).into())).unwrap();
    out[0].to_array_view::<f32>().unwrap().iter().copied().collect()
}

/// `net` (7 classes, randomised) exported for `input` and run by tract at
/// batch 1 and 3: its logits against Wengert's.
fn check<M: Module<f32> + Export>(name: &str, mut net: M, input: (usize, usize, usize)) {
    randomise(&mut net, 2);
    let bytes = to_onnx(&net, input, &[("class_names".into(), "a\nb".into())]).unwrap();
    for n in [1, 3] {
        let x =
            wengert::Tensor::<f32>::normal([n, input.0, input.1, input.2], 0.0, 1.0, &mut wengert::core::rng(n as u64))
                .unwrap();
        let (ours, theirs) = (wengert_logits(&mut net, &x), tract_logits(&bytes, &x));
        assert_eq!(ours.len(), n * 7, "{name}");
        assert_close(&ours, &theirs, &format!("{name} at batch {n}"));
    }
}

/// Wengert's logits against tract's: as many, and each within 1e-4 of the
/// largest (float32 rounding, summed over a network's layers).
fn assert_close(ours: &[f32], theirs: &[f32], what: &str) {
    assert_eq!(theirs.len(), ours.len(), "{what}: tract gave {} logits", theirs.len());
    let largest = ours.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in ours.iter().zip(theirs) {
        assert!((a - b).abs() <= 1e-4 * largest, "{what}: {a} against tract's {b} (largest {largest})");
    }
}

fn check_spec(spec: &Spec, input: (usize, usize, usize)) {
    check(&spec.name, ResNet::<f32>::new(spec, input.0, 7, &mut wengert::core::rng(1)).unwrap(), input);
}

#[test]
fn the_zoo_models_run_alike_in_tract() {
    for name in ["resnet8", "plain8", "preact_resnet11", "resnet18", "resnet50"] {
        let spec = Spec::by_name(name).unwrap();
        // ImageNet models at 64 × 64: every layer at a quarter of the work.
        let input = if spec.family == wengert::resnet::zoo::Family::ImageNet { (3, 64, 64) } else { (3, 32, 32) };
        check_spec(&spec, input);
    }
}

/// GoogLeNet: ceil-mode pooling, the four branches concatenated, batch
/// norm with ε = 0.001; its auxiliary classifiers (training only) are not
/// in the graph even when the network has them.
#[test]
fn googlenet_runs_alike_in_tract() {
    for aux in [false, true] {
        let net = GoogLeNet::<f32>::new(3, 7, aux, &mut wengert::core::rng(1)).unwrap();
        // 72 × 72: the ceil-mode pools keep a partial last window (35 → 17 → 9 → 5 → 3).
        check("googlenet", net, (3, 72, 72));
    }
}

/// Every block kind with every shortcut the zoo builds it with.
#[test]
fn every_block_kind_and_shortcut_runs_alike_in_tract() {
    for kind in [Kind::Basic, Kind::Bottleneck, Kind::PreAct, Kind::PreActBottleneck] {
        for shortcut in [Shortcut::ZeroPad, Shortcut::Projection] {
            let mut spec = Spec::by_name("resnet8").unwrap();
            spec.kind = kind;
            spec.shortcut = shortcut;
            spec.name = format!("{kind:?} with {shortcut:?}");
            check_spec(&spec, (2, 16, 16));
        }
    }
}

#[test]
fn the_class_names_and_the_model_travel_in_the_metadata() {
    let net = ResNet::<f32>::by_name("resnet8", 3, 2, &mut wengert::core::rng(0)).unwrap();
    let bytes = to_onnx(&net, (3, 32, 32), &[("class_names".into(), "cat\ndog".into())]).unwrap();
    let model = tract_onnx::onnx().proto_model_for_read(&mut &bytes[..]).unwrap();
    let meta: Vec<(String, String)> = model.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
    assert!(meta.contains(&("model".into(), "resnet8".into())), "{meta:?}");
    assert!(meta.contains(&("class_names".into(), "cat\ndog".into())), "{meta:?}");
    let graph = model.graph.unwrap();
    let input = &graph.input[0];
    let shape = match &input.r#type.as_ref().unwrap().value {
        Some(tract_onnx::pb::type_proto::Value::TensorType(t)) => t.shape.clone().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(&shape.dim[0].value, Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimParam(p)) if p == "N")
    );
}

/// The command line's path: a boxed network of a [`Model`] exports the
/// same bytes as the typed one; a recurrent classifier, an input the
/// network cannot take, and a state without a tensor the architecture
/// needs are errors that say so.
#[test]
fn model_export_matches_and_refuses_what_it_cannot_write() {
    let model: Model = "resnet8".parse().unwrap();
    let typed = ResNet::<f32>::by_name("resnet8", 3, 4, &mut wengert::core::rng(3)).unwrap();
    let boxed = model.build::<f32>((3, 32, 32), 4, &mut wengert::core::rng(3)).unwrap();
    let meta = [("classes".to_string(), "4".to_string())];
    assert_eq!(
        model_to_onnx(&model, boxed.as_ref(), (3, 32, 32), &meta).unwrap(),
        typed.to_onnx((3, 32, 32), &meta).unwrap()
    );

    let lstm: Model = "lstm".parse().unwrap();
    let net = lstm.build::<f32>((1, 28, 28), 10, &mut wengert::core::rng(0)).unwrap();
    let e = model_to_onnx(&lstm, net.as_ref(), (1, 28, 28), &[]).unwrap_err().to_string();
    assert!(e.contains("lstm") && e.contains("recurrent"), "{e}");

    let e = typed.to_onnx((3, 0, 32), &[]).unwrap_err().to_string();
    assert!(e.contains("0"), "{e}");

    // resnet18's state read as resnet34: layer1.2 is missing.
    let resnet34: Model = "resnet34".parse().unwrap();
    let resnet18 = ResNet::<f32>::by_name("resnet18", 3, 4, &mut wengert::core::rng(0)).unwrap();
    let e = model_to_onnx(&resnet34, &resnet18, (3, 64, 64), &[]).unwrap_err().to_string();
    assert!(e.contains("layer1.2.conv2.weight") && e.contains("needs"), "{e}");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wengert-onnx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wengert(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wengert")).args(args).output().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `wengert export` of a model file as `wengert train` writes one (model
/// name, input size and class names in its metadata): tract's logits on
/// the ONNX file match `wengert predict`'s on the same weights, and the
/// class names travel.
#[test]
fn the_exported_file_runs_as_wengert_predict_does() {
    use wengert::nn::checkpoint::{read_tensors, save_model_with, write_tensors};
    let dir = scratch("predict");
    let mut net = ResNet::<f32>::by_name("resnet8", 3, 7, &mut wengert::core::rng(5)).unwrap();
    randomise(&mut net, 6);
    let weights = dir.join("model.safetensors");
    let meta = std::collections::BTreeMap::from([
        ("model".to_string(), "resnet8".to_string()),
        ("image_shape".to_string(), "3,20,20".to_string()),
        ("classes".to_string(), "7".to_string()),
        ("class_names".to_string(), "a\nb\nc\nd\ne\nf\ng".to_string()),
    ]);
    save_model_with(&net, &meta, &weights).unwrap();
    let onnx = dir.join("model.onnx");
    let w = weights.to_str().unwrap();
    let o = wengert(&["export", "--onnx", onnx.to_str().unwrap(), "--model", "resnet8", "--weights", w]);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("[N, 3, 20, 20]") && said.contains("[N, 7]"), "{said}");

    let x = wengert::Tensor::<f32>::normal([3, 3, 20, 20], 0.0, 1.0, &mut wengert::core::rng(9)).unwrap();
    let (input, output) = (dir.join("x.safetensors"), dir.join("y.safetensors"));
    write_tensors(&std::collections::BTreeMap::from([("input".to_string(), x.clone())]), &input).unwrap();
    let o = wengert(&[
        "predict",
        "--model",
        "resnet8",
        "--weights",
        w,
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let predicted = read_tensors::<f32>(&output).unwrap().remove("logits").unwrap().data().to_vec();
    let bytes = std::fs::read(&onnx).unwrap();
    let theirs = tract_logits(&bytes, &x);
    assert_close(&predicted, &theirs, "wengert predict");
    let model = tract_onnx::onnx().proto_model_for_read(&mut &bytes[..]).unwrap();
    assert!(model.metadata_props.iter().any(|e| e.key == "class_names" && e.value.starts_with("a\nb\n")));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Torchvision-named weights (no metadata): the input size defaults to
/// the family's or `--image-size`, and weights of another model are named.
/// An export that fails leaves the file already at `--onnx` untouched and
/// no temporary file beside it; one that succeeds replaces it.
#[test]
fn export_over_an_existing_file_is_atomic_and_errors_name_the_option() {
    use wengert::nn::checkpoint::save_model;
    let dir = scratch("atomic");
    let net = ResNet::<f32>::by_name("resnet18", 3, 5, &mut wengert::core::rng(0)).unwrap();
    let weights = dir.join("resnet18.safetensors");
    save_model(&net, &weights).unwrap();
    let w = weights.to_str().unwrap();
    let onnx = dir.join("out.onnx");
    let o = onnx.to_str().unwrap();
    std::fs::write(&onnx, b"an earlier export").unwrap();
    let listing = || {
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };

    std::fs::write(dir.join("junk.bin"), [7u8; 100]).unwrap();
    let junk = dir.join("junk.bin");
    let junk = junk.to_str().unwrap();
    let failures: [(&[&str], &[&str]); 5] = [
        (&["--model", "resnet34", "--weights", w], &["--weights", "holds a resnet18", "--model resnet18"]),
        (&["--model", "lstm", "--weights", w], &["--model", "recurrent"]),
        (&["--model", "resnet18", "--weights", w, "--image-size", "0"], &["--image-size", "at least 1"]),
        (&["--model", "resnet18", "--weights", junk], &["--weights", "junk.bin"]),
        (&["--model", "resnet18", "--weights", "no-such.safetensors"], &["--weights", "does not exist"]),
    ];
    for (args, said) in failures {
        let mut all = vec!["export", "--onnx", o];
        all.extend(args);
        let out = wengert(&all);
        let e = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(said.iter().all(|s| e.contains(s)), "{args:?}: {e}");
        assert_eq!(std::fs::read(&onnx).unwrap(), b"an earlier export", "{args:?}");
        assert_eq!(listing(), ["junk.bin", "out.onnx", "resnet18.safetensors"], "{args:?}");
    }
    let missing = dir.join("no-such-folder").join("out.onnx");
    let out = wengert(&["export", "--onnx", missing.to_str().unwrap(), "--model", "resnet18", "--weights", w]);
    assert!(stderr(&out).contains("--onnx") && stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = wengert(&["export", "--onnx", w, "--model", "resnet18", "--weights", w]);
    assert!(stderr(&out).contains("--onnx") && stderr(&out).contains("destroy"), "{}", stderr(&out));

    let out = wengert(&["export", "--onnx", o, "--model", "resnet18", "--weights", w, "--image-size", "64"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(listing(), ["junk.bin", "out.onnx", "resnet18.safetensors"]);
    let x = wengert::Tensor::<f32>::normal([1, 3, 64, 64], 0.0, 1.0, &mut wengert::core::rng(1)).unwrap();
    let mut net = net;
    let (ours, theirs) = (wengert_logits(&mut net, &x), tract_logits(&std::fs::read(&onnx).unwrap(), &x));
    assert_close(&ours, &theirs, "resnet18 exported by the command line");
    let _ = std::fs::remove_dir_all(&dir);
}
