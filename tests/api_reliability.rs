//! Regression tests for the library under hostile calls: each was a panic,
//! a silently wrong result or lost work before, and is now a typed error
//! naming the op and what was wrong, or the right result.

use std::path::{Path, PathBuf};
use wengert::core::ops::binary::{Binary, BinaryKind};
use wengert::core::ops::layout::{BroadcastTo, Permute};
use wengert::core::ops::unary::Unary;
use wengert::core::{smallvec::smallvec, Error, Shape, Tape, Tensor};
use wengert::data::{Dataset, Loader};
use wengert::nn::checkpoint::{load_model, save_checkpoint, save_model_with};
use wengert::nn::optim::{Adam, OptimState, Optimizer};
use wengert::nn::{Module, Step, Visit};
use wengert::ops::{self as ops, matmul::MatMul, Conv2dOptions, ConvTranspose2dOptions, Pool2d};
use wengert::resnet::block::{Block, Kind, Shortcut};
use wengert::resnet::zoo::ResNet;
use wengert::train::train::{Config, Trainer};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wengert-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_variable_of_another_tape_is_refused_everywhere() {
    let (a, b) = (Tape::<f64>::new(), Tape::<f64>::new());
    let x = a.leaf(Tensor::scalar(2.0));
    let y = b.leaf(Tensor::scalar(3.0));
    let z = b.leaf(Tensor::scalar(4.0));
    let ya = x.mul(x).unwrap();
    assert!(matches!(b.backward(ya), Err(Error::ForeignVar { .. })));
    assert!(matches!(b.grad(ya, &[y], None), Err(Error::ForeignVar { .. })));
    assert!(matches!(a.grad(ya, &[z], None), Err(Error::ForeignVar { .. })));
    // Gradients of tape a, asked about entry #0 of tape b (x is #0 of a).
    let grads = a.backward(x.mul(x).unwrap()).unwrap();
    assert_eq!(grads.get(x).unwrap().item().unwrap(), 4.0);
    assert!(grads.get(y).is_none(), "a foreign variable read another's gradient");
    assert!(matches!(grads.try_get(y), Err(Error::ForeignVar { .. })));
    // The same tape after `clear` is another step: old gradients don't apply.
    let mut c = Tape::<f64>::new();
    let old = {
        let w = c.leaf(Tensor::scalar(1.0));
        c.backward(w.mul_scalar(5.0).unwrap()).unwrap()
    };
    c.clear();
    let w2 = c.leaf(Tensor::scalar(1.0));
    assert!(old.get(w2).is_none());
}

#[test]
fn library_ops_check_their_arity_and_attributes() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::zeros([2, 3]));
    let e = tape.apply(Binary(BinaryKind::Add), &[x]).unwrap_err().to_string();
    assert_eq!(e, "add: inputs: takes 2 inputs, got 1");
    assert!(tape.apply(Unary::Exp, &[x, x]).is_err());
    assert!(tape.apply(MatMul::default(), &[x]).is_err());
    assert!(tape.apply(Permute(smallvec![0, 0]), &[x]).is_err());
    assert!(tape.apply(Permute(smallvec![1]), &[x]).is_err(), "a short permutation truncated the tensor");
    assert!(tape.apply(Permute(smallvec![0, 7]), &[x]).is_err());
    let e = tape.apply(BroadcastTo(Shape::new(&[4, 4])), &[x]).unwrap_err().to_string();
    assert_eq!(e, "broadcast_to: cannot broadcast [2, 3] to [4, 4]");
    assert!(tape.apply(BroadcastTo(Shape::new(&[3])), &[x]).is_err());
}

#[test]
fn shape_arithmetic_never_wraps() {
    let huge = Shape::new(&[1 << 32, 1 << 32]);
    assert_eq!(huge.numel(), usize::MAX, "the element count wrapped");
    assert!(huge.checked_numel("t").is_err());
    assert!(Tensor::<f32>::from_vec(vec![], [1usize << 32, 1 << 32]).is_err());
    let tape = Tape::<f32>::new();
    let x = tape.leaf(Tensor::zeros([1]));
    assert!(x.broadcast_to(&[usize::MAX, 2]).is_err());
    assert!(x.reshape(&[usize::MAX, 0, 2]).is_err());
}

#[test]
fn zero_size_images_kernels_and_output_channels_are_errors() {
    let tape = Tape::<f32>::new();
    let v = |dims: &[usize]| tape.leaf(Tensor::zeros(Shape::new(dims)));
    let o = Conv2dOptions::default().with_padding([1, 1]);
    let e = ops::conv2d(v(&[1, 2, 4, 4]), v(&[0, 2, 3, 3]), None, &o).unwrap_err().to_string();
    assert_eq!(
        e,
        "conv2d: weight is [0, 2, 3, 3]: axis 0 is 0; every extent must be at least 1 (only axes [1] may be 0)"
    );
    assert!(ops::conv2d(v(&[1, 2, 4, 4]), v(&[2, 2, 0, 3]), None, &o).is_err());
    assert!(ops::conv2d(v(&[1, 2, 4, 0]), v(&[2, 2, 3, 3]), None, &o).is_err());
    // No input channels with a weight that expects some: a shape error.
    assert!(ops::conv2d(v(&[1, 0, 4, 4]), v(&[2, 2, 3, 3]), None, &o).is_err());
    let t = ConvTranspose2dOptions::default();
    assert!(ops::conv_transpose2d(v(&[1, 2, 0, 4]), v(&[2, 2, 3, 3]), None, &t).is_err());
    assert!(ops::conv_transpose2d(v(&[1, 2, 4, 4]), v(&[2, 0, 3, 3]), None, &t).is_err());
    // PyTorch refuses a transposed convolution of no input channels too.
    assert!(ops::conv_transpose2d(v(&[1, 0, 4, 4]), v(&[0, 2, 3, 3]), None, &t).is_err());
    let pool = Pool2d::new(2, 2).with_padding([1, 1]);
    let e = ops::max_pool2d(v(&[1, 1, 0, 0]), &pool).unwrap_err().to_string();
    assert_eq!(e, "max_pool2d: input is [1, 1, 0, 0]: C, H and W must be at least 1");
    assert!(ops::avg_pool2d(v(&[1, 1, 0, 0]), &pool, true).is_err());
    assert!(ops::max_pool2d(v(&[1, 0, 2, 2]), &pool).is_err());
    assert!(ops::global_avg_pool2d(v(&[1, 1, 0, 0])).is_err());
    // An empty batch is fine, as in PyTorch, and so is its backward.
    let y = ops::max_pool2d(v(&[0, 1, 2, 2]), &pool).unwrap();
    assert_eq!(y.shape().dims(), &[0, 1, 2, 2]);
    tape.backward_with(y, wengert::core::BackwardOptions::default().with_seed(Tensor::zeros([0, 1, 2, 2]))).unwrap();
}

/// What PyTorch 2.x gives (`F.conv2d(torch.zeros(0, 2, 2, 7), w, b)`): an
/// empty batch convolves to an empty batch, and its gradients are zero.
#[test]
fn an_empty_batch_convolves_to_an_empty_batch() {
    let tape = Tape::<f64>::new();
    let w = tape.leaf(Tensor::normal([3, 2, 1, 3], 0.0, 1.0, &mut wengert::core::rng(1)).unwrap());
    let b = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap());
    let x = tape.leaf(Tensor::zeros([0, 2, 2, 7]));
    let y = ops::conv2d(x, w, Some(b), &Conv2dOptions::default()).unwrap();
    assert_eq!(y.shape().dims(), &[0, 3, 2, 5]);
    let g = tape.backward(y.sum_all().unwrap()).unwrap();
    assert_eq!(g.get(x).unwrap().dims(), &[0, 2, 2, 7]);
    assert!(g.get(w).unwrap().data().iter().all(|v| *v == 0.0));
    assert_eq!(g.get(b).unwrap().data(), &[0.0; 3]);
    // The transposed convolution likewise: [0, 3, 4, 9] as in PyTorch.
    let wt = tape.leaf(Tensor::ones([2, 3, 3, 3]));
    let y = ops::conv_transpose2d(x, wt, None, &ConvTranspose2dOptions::default()).unwrap();
    assert_eq!(y.shape().dims(), &[0, 3, 4, 9]);
    let g = tape.backward(y.sum_all().unwrap()).unwrap();
    assert!(g.get(wt).unwrap().data().iter().all(|v| *v == 0.0));
}

/// A convolution over no input channels sums nothing: its output is the
/// bias alone, and the bias's gradient is the output gradient's sum.
/// (PyTorch 2.x returns `[2, 0, 2, 2]` here, dropping the weight's three
/// output channels; Wengert keeps them, as the definition does.)
#[test]
fn no_input_channels_convolve_to_the_bias() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::zeros([2, 0, 4, 4]));
    let w = tape.leaf(Tensor::zeros([3, 0, 3, 3]));
    let b = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap());
    let y = ops::conv2d(x, w, Some(b), &Conv2dOptions::default()).unwrap();
    assert_eq!(y.shape().dims(), &[2, 3, 2, 2]);
    let v = y.value().unwrap();
    for c in 0..3 {
        assert!((0..2).all(|n| v.get(&[n, c, 1, 0]).unwrap() == (c + 1) as f64));
    }
    let g = tape.backward(y.sum_all().unwrap()).unwrap();
    assert_eq!(g.get(x).unwrap().dims(), &[2, 0, 4, 4]);
    assert_eq!(g.get(w).unwrap().dims(), &[3, 0, 3, 3]);
    assert_eq!(g.get(b).unwrap().data(), &[8.0; 3], "2 images × 2 × 2 positions");
}

#[test]
fn relu_passes_nan_on() {
    let tape = Tape::<f32>::new();
    let x = tape.leaf(Tensor::from_vec(vec![f32::NAN, -1.0, 2.0], [3]).unwrap());
    let y = ops::relu(x).unwrap().value().unwrap();
    assert!(y.data()[0].is_nan());
    assert_eq!(&y.data()[1..], &[0.0, 2.0]);
    assert!(ops::leaky_relu(x, 0.1).unwrap().value().unwrap().data()[0].is_nan());
}

#[test]
fn constructors_check_their_invariants() {
    let e = Block::<f32>::new(Kind::Basic, 16, 16, 0, Shortcut::Projection, &mut wengert::core::rng(0));
    assert!(e.err().unwrap().to_string().contains("stride 0"));
    assert!(Dataset::new(vec![0; 10], vec![1, 2], 4, 4).is_err(), "images shorter than their labels");
    let data = Dataset::new(vec![0; 16], vec![1], 4, 4).unwrap();
    assert!(Loader::new(data, 0, 0).is_err());
    let model = ResNet::<f32>::by_name("resnet8", 1, 10, &mut wengert::core::rng(0)).unwrap();
    let config = Config::default().with_lr(f64::NAN);
    assert!(Trainer::with_batches(model, config, 1).err().unwrap().to_string().contains("lr"));
    let model = ResNet::<f32>::by_name("resnet8", 1, 10, &mut wengert::core::rng(0)).unwrap();
    let config = Config::default();
    assert!(Trainer::with_batches(model, config, 0).is_err(), "a trainer with no batches would loop forever");
}

/// A ResNet-8 trainer on `n` grey 8×8 images, batch 4.
fn trainer(lr: f64, n: usize) -> (Trainer, Loader) {
    let data = Dataset::new(
        (0..n * 64).map(|i| (i * 7 % 256) as u8).collect(),
        (0..n).map(|i| (i % 10) as u8).collect(),
        8,
        8,
    )
    .unwrap();
    let loader = Loader::new(data, 4, 0).unwrap();
    let model = ResNet::<f32>::by_name("resnet8", 1, 10, &mut wengert::core::rng(0)).unwrap();
    let config = Config::default().with_epochs(2).with_lr(lr).with_weight_decay(0.0).with_warmup(0);
    (Trainer::new(model, config, &loader).unwrap(), loader)
}

#[test]
fn non_finite_weights_are_never_saved() {
    let dir = scratch("nan-save");
    let (mut t, data) = trainer(0.1, 8);
    t.epoch(&data, |_, _| {}).unwrap();
    t.save(&dir).unwrap();
    let good = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    // Poison one weight, as an update that overflowed would.
    t.model.visit_mut("", &mut |name, s| {
        if let (true, wengert::nn::StateMut::Param(p)) = (name == "fc.weight", s) {
            p.value_mut().data_mut()[0] = f32::NAN;
        }
    });
    let e = t.save(&dir).unwrap_err().to_string();
    assert!(e.contains("fc.weight holds NaN or infinity at iteration 2"), "{e}");
    assert_eq!(std::fs::read(dir.join("checkpoint.safetensors")).unwrap(), good);
    // The step after such an update is refused too, naming the iteration.
    let (mut t, data) = trainer(1e38, 8);
    let e = t.epoch(&data, |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("iteration"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_misshaped_optimiser_state_is_an_error_not_a_panic_or_a_partial_update() {
    let dir = scratch("state");
    let (t, _) = trainer(0.1, 8);
    let bad = OptimState { tensors: vec![("fc.weight.momentum_buffer".into(), Tensor::zeros([3]))], steps: 1 };
    let mut meta = std::collections::BTreeMap::new();
    for (k, v) in [
        ("position.iteration", "2"),
        ("setting.optimizer", "sgd"),
        ("setting.batches_per_epoch", "2"),
        ("setting.seed", "0"),
        ("setting.lr", "0.1"),
        ("setting.momentum", "0.9"),
        ("setting.weight_decay", "0"),
        ("setting.warmup", "0"),
        ("setting.clip", "None"),
    ] {
        meta.insert(k.to_string(), v.to_string());
    }
    save_checkpoint(&t.model, &bad, &meta, &dir.join("checkpoint.safetensors")).unwrap();
    let (mut fresh, _) = trainer(0.1, 8);
    let e = fresh.resume(&dir).unwrap_err().to_string();
    assert!(e.contains("fc.weight.momentum_buffer has shape [3], the parameter has [10, 64]"), "{e}");
    // Adam given mis-shaped moments refuses to step rather than update part of a weight.
    let (mut t, data) = trainer(0.1, 8);
    let mut adam = Adam::<f32>::new(0.0);
    adam.load_state(OptimState { tensors: vec![("fc.weight.exp_avg".into(), Tensor::zeros([2, 2]))], steps: 1 })
        .unwrap();
    let tape = Tape::new();
    let batch = data.batch::<f32>(0, 0).unwrap();
    let mut step = Step::train(&tape, 0);
    let logits = t.model.forward(&mut step, tape.constant(batch.images)).unwrap();
    let grads = step.backward(ops::cross_entropy(logits, &batch.labels).unwrap()).unwrap();
    let e = adam.step(&mut t.model, &grads, 0.1).unwrap_err().to_string();
    assert!(e.contains("fc.weight.exp_avg has shape [2, 2], its parameter has shape [10, 64]"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resuming_with_another_optimiser_or_batch_count_says_what_differs() {
    let dir = scratch("settings");
    let (mut t, data) = trainer(0.1, 8);
    t.epoch(&data, |_, _| {}).unwrap();
    t.save(&dir).unwrap();
    let (mut other, _) = trainer(0.1, 8);
    other.set_optimizer(Box::new(Adam::new(0.0)));
    let e = other.resume(&dir).unwrap_err().to_string();
    assert!(e.contains("optimizer sgd (now adam)"), "{e}");
    let (mut other, _) = trainer(0.1, 12);
    let e = other.resume(&dir).unwrap_err().to_string();
    assert!(e.contains("batches_per_epoch 2 (now 3)"), "{e}");
    let (mut same, _) = trainer(0.1, 8);
    same.resume(&dir).unwrap();
    assert_eq!(same.position(), (1, 0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn loading_another_model_says_which_in_one_line() {
    let dir = scratch("other-model");
    let big = ResNet::<f32>::by_name("resnet20", 1, 10, &mut wengert::core::rng(0)).unwrap();
    let meta = std::collections::BTreeMap::from([("model".to_string(), "resnet20".to_string())]);
    save_model_with(&big, &meta, &dir.join("m.safetensors")).unwrap();
    let mut small = ResNet::<f32>::by_name("resnet8", 1, 10, &mut wengert::core::rng(0)).unwrap();
    let e = load_model(&mut small, &dir.join("m.safetensors"), true).unwrap_err().to_string();
    assert!(e.contains("the file holds a resnet20"), "{e}");
    assert!(e.contains("more"), "{e}");
    assert!(e.len() < 600, "{} bytes: {e}", e.len());
    std::fs::remove_dir_all(dir).unwrap();
}

fn case(dir: &Path, name: &str, body: &str) -> wengert::conformance::CaseResult {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, body).unwrap();
    wengert::conformance::run_file(&p, wengert::core::DType::F64)
}

#[test]
fn the_conformance_runner_fails_malformed_cases_without_panicking() {
    let dir = scratch("cases");
    let tol = r#""tol": {"rtol": 1e-9, "atol": 1e-9}"#;
    // Expected output shorter than its shape: once this passed.
    let short = format!(
        r#"{{"name": "short", "op": "neg", "inputs": [{{"name": "x", "shape": [2], "data": [1, 2]}}],
            "output": {{"shape": [2], "data": [-1]}}, "cotangent": {{"shape": [2], "data": [1, 1]}},
            "grads": [{{"name": "x", "shape": [2], "data": [-1, -1]}}], {tol}}}"#
    );
    let r = case(&dir, "short", &short);
    assert!(r.failure.as_deref().is_some_and(|f| f.contains("malformed")), "{r}");
    // A block case whose input is not an image batch: once this panicked.
    let block = format!(
        r#"{{"name": "flat", "op": "basic_block", "inputs": [{{"name": "x", "shape": [], "data": [1]}},
            {{"name": "conv1.weight", "shape": [], "data": [1]}}],
            "output": {{"shape": [], "data": [1]}}, "cotangent": {{"shape": [], "data": [1]}}, "grads": [], {tol}}}"#
    );
    let r = case(&dir, "flat", &block);
    assert!(r.failure.as_deref().is_some_and(|f| f.contains("need rank 4")), "{r}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn anomaly_detection_names_the_first_non_finite_op_and_where_it_was_recorded() {
    let tape = Tape::<f64>::new();
    assert!(!tape.is_detect_anomaly());
    let x = tape.leaf(Tensor::from_vec(vec![0.0, 4.0], [2]).unwrap());
    // Off: log(0) = -inf is an ordinary value.
    assert!(x.log().is_ok());
    tape.set_detect_anomaly(true);
    let e = x.log().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Anomaly { .. }), "{msg}");
    assert!(msg.starts_with("log: output holds -inf at flat index 0 of [2]"), "{msg}");
    assert!(msg.contains("input shapes [[2]]") && msg.contains("every input was finite"), "{msg}");
    assert!(msg.contains("api_reliability.rs"), "no recording site in: {msg}");
    // Backward: sqrt is finite at 0, its derivative 1/(2√x) is not.
    let y = x.sqrt().unwrap().sum_all().unwrap();
    let e = tape.backward(y).unwrap_err().to_string();
    assert!(e.starts_with("sqrt: backward: the gradient for input 0 holds inf at flat index 0 of [2]"), "{e}");
    assert!(e.contains("incoming gradient finite") && e.contains("api_reliability.rs"), "{e}");
}

/// The second round of hostile calls: each of these panicked on overflow or
/// gave a silently wrong result, and is now an error naming what to fix.
#[test]
fn sizes_and_hyper_parameters_out_of_range_are_errors() {
    let msg = |e: Error| e.to_string();
    // A range whose length passes memory's address range, not 0 elements.
    let e = msg(Tensor::<f64>::arange(0.0, 1e20, 1.0).unwrap_err());
    assert!(e.contains("arange") && e.contains("1e20"), "{e}");
    assert_eq!(Tensor::<f64>::arange(0.0, 3.0, 1.0).unwrap().data(), &[0.0, 1.0, 2.0]);
    // A negative standard deviation.
    let e = msg(Tensor::<f32>::normal([2], 0.0, -1.0, &mut wengert::core::rng(0)).unwrap_err());
    assert!(e.contains("std"), "{e}");
    // A gradient check with a zero step would divide by zero and fail.
    let opts = wengert::core::gradcheck::GradCheck::default().with_eps(0.0);
    let e = wengert::core::gradcheck::check_gradients(|_, x| x[0].mul(x[0]), &[Tensor::scalar(1.0)], &opts);
    assert!(msg(e.unwrap_err()).contains("eps"));
    // One value per channel with eps 0: 0 / 0.
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0], [1, 2, 1, 1]).unwrap());
    let e = msg(ops::batch_norm_train(x, None, None, 0.0).unwrap_err());
    assert!(e.contains("eps"), "{e}");
    assert!(ops::batch_norm_train(x, None, None, 1e-5).is_ok(), "with eps the same input normalises to 0");
}

#[test]
fn batch_norm_refuses_a_momentum_or_running_buffers_that_do_not_fit() {
    use wengert::nn::layer::BatchNorm2d;
    let input = || Tensor::<f64>::normal([4, 3, 2, 2], 0.0, 1.0, &mut wengert::core::rng(0)).unwrap();
    let mut bn = BatchNorm2d::<f64>::new(3);
    bn.momentum = f64::NAN;
    let tape = Tape::new();
    let e = bn.forward(&mut Step::train(&tape, 0), tape.constant(input())).unwrap_err().to_string();
    assert!(e.contains("momentum"), "{e}");
    let mut bn = BatchNorm2d::<f64>::new(3);
    bn.running_mean = Tensor::zeros([5]);
    let tape = Tape::new();
    let e = bn.forward(&mut Step::train(&tape, 0), tape.constant(input())).unwrap_err().to_string();
    assert!(e.contains("running_mean"), "{e}");
    assert_eq!(bn.running_mean.dims(), &[5], "a refused update leaves the buffer as it was");
}

#[test]
fn models_and_loaders_refuse_sizes_past_their_range() {
    use wengert::resnet::registry::Model;
    use wengert::resnet::zoo::Spec;
    // A depth no machine trains, and a Spec with more stages than widths.
    let e = "resnet18446744073709551614".parse::<Model>().unwrap_err().to_string();
    assert!(e.contains("limit"), "{e}");
    let five = Spec { blocks: vec![1; 5], ..Spec::by_name("resnet20").unwrap() };
    let e = ResNet::<f32>::new(&five, 3, 10, &mut wengert::core::rng(0)).err().unwrap().to_string();
    assert!(e.contains("5 stages"), "{e}");
    // Summaries and builds of empty or vast images.
    let m: Model = "resnet20".parse().unwrap();
    for input in [(3, 0, 0), (3, 1 << 32, 1 << 32)] {
        let e = m.summary(input, 10).unwrap_err().to_string();
        assert!(e.contains("every extent"), "{input:?}: {e}");
    }
    let lstm: Model = "lstm".parse().unwrap();
    assert!(lstm.build::<f32>((1 << 32, 1, 1 << 32), 10, &mut wengert::core::rng(0)).is_err());
    let block = Block::<f32>::new(Kind::Basic, 4, 4, 1, Shortcut::Identity, &mut wengert::core::rng(0)).unwrap();
    assert!(block.shape_and_macs((4, 0, 0)).is_err());
    assert_eq!(block.shape_and_macs((4, 8, 8)).unwrap(), ((4, 8, 8), 2 * 4 * 4 * 9 * 64));
    // A batch past the epoch's end.
    let data = Dataset::new(vec![0; 5 * 16], vec![0, 1, 0, 1, 0], 4, 4).unwrap();
    let loader = Loader::new(data, 2, 0).unwrap();
    assert_eq!(loader.batches(), 3);
    assert_eq!(loader.batch::<f32>(0, 2).unwrap().labels.len(), 1);
    for b in [3, usize::MAX] {
        let e = loader.batch::<f32>(0, b).err().unwrap().to_string();
        assert!(e.contains("3 batches"), "{e}");
    }
}
