//! Checkpoints: round trips, every kind of bad file, resuming, and a
//! checkpoint written by PyTorch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wengert::core::{Tape, Tensor};
use wengert::nn::checkpoint::{
    load_model, load_training_state, read_tensors, save_model, save_training_state, write_tensors,
};
use wengert::nn::layer::{Activation, BatchNorm2d, Conv2d, Flatten, GlobalAvgPool2d, Linear, Sequential};
use wengert::nn::optim::{Optimizer, Sgd};
use wengert::nn::{Module, Step};
use wengert::ops::Conv2dOptions;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wengert-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The same small network as tests/fixtures/make_torch_fixture.py, with
/// torchvision-style names.
fn small(seed: u64) -> Sequential<f32> {
    let mut rng = wengert::core::rng(seed);
    let block = Sequential::new()
        .push_named("conv1", Conv2d::new(4, 4, 3, Conv2dOptions::square(1, 1), false, &mut rng).unwrap())
        .push_named("bn1", BatchNorm2d::new(4))
        .push_named("relu", Activation::Relu);
    Sequential::new()
        .push_named("conv1", Conv2d::new(3, 4, 3, Conv2dOptions::square(2, 1), false, &mut rng).unwrap())
        .push_named("bn1", BatchNorm2d::new(4))
        .push_named("relu", Activation::Relu)
        .push_named("layer1", Sequential::new().push_named("0", block))
        .push_named("pool", GlobalAvgPool2d)
        .push_named("flatten", Flatten)
        .push_named("fc", Linear::new(4, 5, true, &mut rng).unwrap())
}

fn state(m: &dyn Module<f32>) -> Vec<(String, Vec<f32>)> {
    let mut v = Vec::new();
    m.visit("", &mut |n, s| {
        let data = match s {
            wengert::nn::StateRef::Param(p) => p.value().to_vec(),
            wengert::nn::StateRef::Buffer(b) => b.to_vec(),
            wengert::nn::StateRef::Count(c) => vec![*c as f32],
        };
        v.push((n, data));
    });
    v
}

/// One SGD training step on fixed random data.
fn train_step(m: &mut Sequential<f32>, opt: &mut Sgd<f32>, i: u64) {
    let mut rng = wengert::core::rng(100 + i);
    let x = Tensor::normal([4, 3, 8, 8], 0.0, 1.0, &mut rng).unwrap();
    let tape = Tape::new();
    let grads = {
        let mut step = Step::train(&tape, i);
        let y = m.forward(&mut step, tape.constant(x)).unwrap();
        let loss = wengert::ops::cross_entropy(y, &[0, 1, 2, 3]).unwrap();
        step.backward(loss).unwrap()
    };
    opt.step(m, &grads, 0.1).unwrap();
}

#[test]
fn save_then_load_is_bit_for_bit() {
    let d = dir("roundtrip");
    let mut a = small(1);
    train_step(&mut a, &mut Sgd::new(0.9, 1e-4), 0);
    save_model(&a, &d.join("m.safetensors")).unwrap();
    let mut b = small(2);
    assert_ne!(state(&a), state(&b));
    let report = load_model(&mut b, &d.join("m.safetensors"), true).unwrap();
    assert!(report.skipped.is_empty());
    assert_eq!(state(&a), state(&b));
    assert!(std::fs::read_dir(&d).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp-")));
    std::fs::remove_dir_all(d).unwrap();
}

fn error_of(m: &mut Sequential<f32>, p: &Path, strict: bool) -> String {
    load_model(m, p, strict).unwrap_err().to_string()
}

#[test]
fn bad_checkpoints_are_reported_by_name() {
    let d = dir("bad");
    let good = d.join("good.safetensors");
    save_model(&small(1), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = d.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = error_of(&mut small(1), &truncated, true);
    assert!(e.contains("truncated.safetensors") && e.contains("not a valid safetensors file"), "{e}");

    let garbage = d.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a checkpoint at all").unwrap();
    assert!(error_of(&mut small(1), &garbage, true).contains("not a valid safetensors file"));

    // A model with an extra layer: its names are missing from the file.
    let mut bigger = small(1).push_named("head", Linear::new(5, 2, true, &mut wengert::core::rng(0)).unwrap());
    let e = error_of(&mut bigger, &good, true);
    assert!(e.contains("missing from the file: head.bias, head.weight"), "{e}");

    // A smaller model: the file has names the model lacks.
    let mut rng = wengert::core::rng(0);
    let mut tiny = Sequential::new().push_named("fc", Linear::new(4, 5, true, &mut rng).unwrap());
    let e = error_of(&mut tiny, &good, true);
    assert!(e.contains("not in the model: bn1.bias, bn1.num_batches_tracked"), "{e}");
    let report = load_model(&mut tiny, &good, false).unwrap();
    assert_eq!(report.skipped.len(), 12);
    assert!(report.skipped.contains(&"layer1.0.conv1.weight".to_string()));

    // Shapes that differ.
    let mut wide = Sequential::new().push_named("fc", Linear::new(4, 6, true, &mut rng).unwrap());
    let e = error_of(&mut wide, &good, false);
    assert!(e.contains("fc.bias: file has F32 [5], model has F32 [6]"), "{e}");

    // A dtype that differs: an f64 model reading an f32 file.
    let mut double = Sequential::<f64>::new().push_named("fc", Linear::new(4, 5, true, &mut rng).unwrap());
    let e = load_model(&mut double, &good, false).unwrap_err().to_string();
    assert!(e.contains("fc.weight: file has F32 [5, 4], model has F64 [5, 4]"), "{e}");

    // Nothing was changed by the failed loads.
    let before = state(&small(1));
    let mut m = small(1);
    let _ = load_model(&mut m, &truncated, true);
    assert_eq!(state(&m), before);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_failed_write_leaves_the_old_checkpoint() {
    let d = dir("atomic");
    let path = d.join("m.safetensors");
    save_model(&small(1), &path).unwrap();
    let before = std::fs::read(&path).unwrap();
    // Writing into a folder that does not exist fails before touching `path`.
    assert!(save_model(&small(2), &d.join("no/such/folder/m.safetensors")).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_resumed_run_matches_an_uninterrupted_one() {
    let d = dir("resume");
    let mut straight = small(3);
    let mut opt = Sgd::new(0.9, 5e-4);
    for i in 0..4 {
        train_step(&mut straight, &mut opt, i);
    }

    let mut first = small(3);
    let mut opt1 = Sgd::new(0.9, 5e-4);
    for i in 0..2 {
        train_step(&mut first, &mut opt1, i);
    }
    save_model(&first, &d.join("m.safetensors")).unwrap();
    let position = BTreeMap::from([("iteration".to_string(), "2".to_string())]);
    save_training_state(&opt1.state(), &position, &d.join("opt.safetensors")).unwrap();
    drop((first, opt1));

    let mut resumed = small(99);
    load_model(&mut resumed, &d.join("m.safetensors"), true).unwrap();
    let (opt_state, pos) = load_training_state::<f32>(&d.join("opt.safetensors")).unwrap();
    let mut opt2 = Sgd::new(0.9, 5e-4);
    opt2.load_state(opt_state).unwrap();
    let start: u64 = pos["iteration"].parse().unwrap();
    for i in start..4 {
        train_step(&mut resumed, &mut opt2, i);
    }
    assert_eq!(state(&resumed), state(&straight));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_pytorch_checkpoint_loads_without_renaming_and_gives_its_outputs() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut m = small(0);
    let report = load_model(&mut m, &fixtures.join("torch_small.safetensors"), true).unwrap();
    assert!(report.skipped.is_empty());
    // Compare with PyTorch's eval-mode output on the same input.
    let io = read_tensors::<f32>(&fixtures.join("torch_small_io.safetensors")).unwrap();
    let tape = Tape::new();
    let y = m.forward(&mut Step::eval(&tape), tape.constant(io["x"].clone())).unwrap().value().unwrap();
    let want = &io["y"];
    assert_eq!(y.dims(), want.dims());
    for (a, b) in y.data().iter().zip(want.data()) {
        assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{y:?} vs {want:?}");
    }
}

#[test]
fn named_tensors_round_trip_and_reject_other_dtypes() {
    let d = dir("tensors");
    let p = d.join("t.safetensors");
    let t = BTreeMap::from([("input".to_string(), Tensor::<f32>::from_fn([2, 3], |i| i as f32 * 0.5))]);
    write_tensors(&t, &p).unwrap();
    assert_eq!(read_tensors::<f32>(&p).unwrap(), t);
    let e = read_tensors::<f64>(&p).unwrap_err().to_string();
    assert!(e.contains("input is F32, expected F64"), "{e}");
    std::fs::remove_dir_all(d).unwrap();
}
