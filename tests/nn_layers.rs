//! Layers: batch-norm statistics (and the moments a convolution gathers
//! for them), dropout, names and freezing.

use wengert::core::{Tape, Tensor};
use wengert::nn::layer::{BatchNorm2d, Conv2d, Dropout, Linear, Sequential};
use wengert::nn::{Module, Step, Visit};
use wengert::ops::isa::{self, Isa};
use wengert::ops::Conv2dOptions;

#[test]
fn batch_norm_updates_running_statistics_like_pytorch() {
    let mut bn = BatchNorm2d::<f64>::new(2);
    // Channel 0 holds 1..4, channel 1 holds 10, 20, 30, 40 (N = 2, H·W = 2).
    let x = Tensor::from_vec(vec![1., 2., 10., 20., 3., 4., 30., 40.], [2, 2, 1, 2]).unwrap();
    let tape = Tape::new();
    let y = bn.forward(&mut Step::train(&tape, 0), tape.constant(x.clone())).unwrap().value().unwrap();
    // Mean 2.5 and 25; unbiased variances 5/3 and 500/3; momentum 0.1.
    let rm = bn.running_mean.to_vec();
    let rv = bn.running_var.to_vec();
    assert!((rm[0] - 0.25).abs() < 1e-12 && (rm[1] - 2.5).abs() < 1e-12, "{rm:?}");
    assert!(
        (rv[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-12 && (rv[1] - (0.9 + 0.1 * 500.0 / 3.0)).abs() < 1e-9,
        "{rv:?}"
    );
    assert_eq!(bn.num_batches_tracked, 1);
    // The training output uses the biased batch variance (1.25).
    assert!((y.data()[0] - (1.0 - 2.5) / (1.25f64 + 1e-5).sqrt()).abs() < 1e-12);
    // An evaluation step uses the running statistics and changes nothing.
    let before = bn.running_mean.clone();
    let y = bn.forward(&mut Step::eval(&tape), tape.constant(x)).unwrap().value().unwrap();
    assert!((y.data()[0] - (1.0 - 0.25) / (rv[0] + 1e-5).sqrt()).abs() < 1e-12);
    assert_eq!(bn.running_mean, before);
    assert_eq!(bn.num_batches_tracked, 1);
    let e = bn.forward(&mut Step::train(&tape, 0), tape.constant(Tensor::ones([1, 2, 1, 1]))).unwrap_err();
    assert!(e.to_string().contains("1 value(s) per channel; training needs at least two"), "{e}");
}

#[test]
fn dropout_is_seeded_scaled_and_off_in_evaluation() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(Tensor::ones([10_000]));
    let mut d = Dropout { p: 0.25 };
    let a = d.forward(&mut Step::train(&tape, 7), x).unwrap().value().unwrap();
    let b = d.forward(&mut Step::train(&tape, 7), x).unwrap().value().unwrap();
    let c = d.forward(&mut Step::train(&tape, 8), x).unwrap().value().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let zeros = a.data().iter().filter(|&&v| v == 0.0).count();
    assert!((2300..2700).contains(&zeros), "{zeros} zeros");
    assert!(a.data().iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-12));
    let e = d.forward(&mut Step::eval(&tape), x).unwrap().value().unwrap();
    assert_eq!(e, x.value().unwrap());
    assert!(Dropout { p: 1.0 }.forward(&mut Step::train(&tape, 0), x).is_err());
}

#[test]
fn names_follow_the_state_dict_layout() {
    let mut rng = wengert::core::rng(0);
    let inner = Sequential::<f32>::new().push_named("bn1", BatchNorm2d::new(3));
    let net = Sequential::new()
        .push_named("layer1", Sequential::new().push_named("0", inner))
        .push_named("fc", Linear::new(3, 2, false, &mut rng).unwrap());
    assert_eq!(
        net.state_names(),
        [
            "layer1.0.bn1.weight",
            "layer1.0.bn1.bias",
            "layer1.0.bn1.running_mean",
            "layer1.0.bn1.running_var",
            "layer1.0.bn1.num_batches_tracked",
            "fc.weight"
        ]
    );
    assert_eq!(net.num_parameters(), 3 + 3 + 6);
}

/// A convolution asked for its output's row moments offers them where its
/// kernel gathers them (f32 on an x86 vector level), for that output only,
/// and only when asked in a training step.
#[test]
fn a_convolution_offers_row_moments_when_asked() {
    let mut rng = wengert::core::rng(3);
    let mut conv = Conv2d::<f32>::new(4, 8, 3, Conv2dOptions::square(1, 1), false, &mut rng).unwrap();
    let tape = Tape::new();
    let x = tape
        .constant(Tensor::from_vec((0..2 * 4 * 36).map(|i| (i % 11) as f32 - 5.0).collect(), [2, 4, 6, 6]).unwrap());
    let mut step = Step::train(&tape, 0);
    assert!(!step.moments_wanted());
    let y = conv.forward(&mut step, x).unwrap();
    assert!(step.take_moments(y).is_none(), "not asked");
    step.want_moments(true);
    let y = conv.forward(&mut step, x).unwrap();
    assert!(step.take_moments(x).is_none(), "moments of the output only");
    assert_eq!(step.take_moments(y).is_some(), isa::active() != Isa::Generic);
    assert!(step.take_moments(y).is_none(), "taken once");
    let mut eval = Step::eval(&tape);
    eval.want_moments(true);
    assert!(!eval.moments_wanted(), "evaluation uses running statistics");
}

/// conv → batch norm + ReLU → conv → batch norm in a `Sequential` (which
/// hands each batch norm its convolution's moments) against the same
/// layers called one by one (which does not): the same outputs, gradients
/// and running statistics, to the bit.
#[test]
fn sequential_batch_norms_of_gathered_moments_match_the_layers_alone() {
    let build = || {
        let mut rng = wengert::core::rng(7);
        let c1 = Conv2d::<f32>::new(3, 8, 3, Conv2dOptions::square(1, 1), false, &mut rng).unwrap();
        let c2 = Conv2d::<f32>::new(8, 16, 3, Conv2dOptions::square(2, 1), false, &mut rng).unwrap();
        (c1, BatchNorm2d::<f32>::new(8).with_relu(), c2, BatchNorm2d::<f32>::new(16))
    };
    let x =
        Tensor::from_vec((0..3 * 3 * 64).map(|i| ((i * 37) % 19) as f32 / 4.0 - 2.0).collect(), [3, 3, 8, 8]).unwrap();
    let bits = |t: &Tensor<f32>| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    // Sequential.
    let (c1, b1, c2, b2) = build();
    let (w1, w2) = (c1.weight.clone(), c2.weight.clone());
    let mut seq = Sequential::new().push(c1).push(b1).push(c2).push(b2);
    let tape = Tape::new();
    let mut step = Step::train(&tape, 0);
    let y = seq.forward(&mut step, tape.constant(x.clone())).unwrap();
    let out = bits(&y.value().unwrap());
    let grads = step.backward(y.mul(y).unwrap().sum_all().unwrap()).unwrap();
    let with = (out, bits(grads.get(&w1).unwrap()), bits(grads.get(&w2).unwrap()));
    let mut stats = Vec::new();
    seq.visit("", &mut |name, s| {
        if let wengert::nn::StateRef::Buffer(t) = s {
            stats.push((name, bits(t)));
        }
    });
    // One by one.
    let (mut c1, mut b1, mut c2, mut b2) = build();
    let tape = Tape::new();
    let mut step = Step::train(&tape, 0);
    let h = c1.forward(&mut step, tape.constant(x)).unwrap();
    let h = b1.forward(&mut step, h).unwrap();
    let h = c2.forward(&mut step, h).unwrap();
    let y = b2.forward(&mut step, h).unwrap();
    let out = bits(&y.value().unwrap());
    let grads = step.backward(y.mul(y).unwrap().sum_all().unwrap()).unwrap();
    let alone = (out, bits(grads.get(&c1.weight).unwrap()), bits(grads.get(&c2.weight).unwrap()));
    assert!(with == alone, "outputs or gradients differ");
    let running = [&b1.running_mean, &b1.running_var, &b2.running_mean, &b2.running_var];
    let alone_stats: Vec<Vec<u32>> = running.iter().map(|t| bits(t)).collect();
    let with_stats: Vec<Vec<u32>> =
        stats.iter().filter(|(n, _)| n.contains("running")).map(|(_, b)| b.clone()).collect();
    assert_eq!(with_stats, alone_stats);
}

/// Records whether the step asked it for its output's moments.
struct Probe(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Module<f32> for Probe {
    fn forward<'t>(
        &mut self,
        step: &mut Step<'t, f32>,
        x: wengert::core::Var<'t, f32>,
    ) -> wengert::core::Result<wengert::core::Var<'t, f32>> {
        self.0.store(step.moments_wanted(), std::sync::atomic::Ordering::Relaxed);
        Ok(x)
    }
}

impl Visit<f32> for Probe {
    fn visit(&self, _: &str, _: &mut dyn FnMut(String, wengert::nn::StateRef<'_, f32>)) {}
    fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(String, wengert::nn::StateMut<'_, f32>)) {}
}

/// A `Sequential` asks a layer for its output's moments exactly when a
/// batch norm (or a sequence that starts with one) comes next, and passes
/// its own caller's request on to its last layer.
#[test]
fn sequential_asks_for_moments_before_a_batch_norm() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let asked = |seq: &mut Sequential<f32>, flag: &AtomicBool, outer: bool| {
        let tape = Tape::new();
        let mut step = Step::train(&tape, 0);
        step.want_moments(outer);
        seq.forward(&mut step, tape.constant(Tensor::ones([2, 2, 2, 2]))).unwrap();
        flag.load(Ordering::Relaxed)
    };
    let flag = Arc::new(AtomicBool::new(false));
    let mut before_bn = Sequential::new().push(Probe(flag.clone())).push(BatchNorm2d::new(2));
    assert!(asked(&mut before_bn, &flag, false));
    let mut before_nested = Sequential::new()
        .push(Probe(flag.clone()))
        .push(Sequential::new().push(BatchNorm2d::new(2)).push(Dropout { p: 0.0 }));
    assert!(asked(&mut before_nested, &flag, false));
    let mut before_dropout = Sequential::new().push(Probe(flag.clone())).push(Dropout { p: 0.0 });
    assert!(!asked(&mut before_dropout, &flag, false));
    let mut last = Sequential::new().push(Probe(flag.clone()));
    assert!(asked(&mut last, &flag, true) && !asked(&mut last, &flag, false));
}

/// A batch norm whose γ and β are frozen normalises with its running
/// statistics in a training step, as in evaluation, and leaves them and
/// its batch count unchanged; the gradient still reaches its input.
#[test]
fn a_frozen_batch_norm_keeps_its_running_statistics() {
    let x = Tensor::<f64>::from_fn([4, 2, 3, 3], |i| ((i * 37) % 11) as f64 - 4.0);
    let mut bn = BatchNorm2d::<f64>::new(2);
    bn.running_mean = Tensor::from_vec(vec![0.5, -1.0], [2]).unwrap();
    bn.running_var = Tensor::from_vec(vec![2.0, 0.5], [2]).unwrap();
    let eval = {
        let tape = Tape::new();
        bn.clone().forward(&mut Step::eval(&tape), tape.constant(x.clone())).unwrap().value().unwrap()
    };
    let frozen = bn.set_frozen(&|_| true);
    assert_eq!(frozen, 4);
    let tape = Tape::new();
    let input = tape.leaf(x.clone());
    let y = bn.forward(&mut Step::train(&tape, 0), input).unwrap();
    assert_eq!(y.value().unwrap(), eval);
    assert_eq!(bn.running_mean.data(), &[0.5, -1.0]);
    assert_eq!(bn.running_var.data(), &[2.0, 0.5]);
    assert_eq!(bn.num_batches_tracked, 0);
    let g = tape.backward(y.sum_all().unwrap()).unwrap();
    assert!(g.get(input).unwrap().data().iter().all(|v| v.abs() > 0.0));
    // Unfrozen, it trains on the batch's statistics again.
    bn.set_frozen(&|_| false);
    let tape = Tape::new();
    bn.forward(&mut Step::train(&tape, 0), tape.constant(x)).unwrap();
    assert_eq!(bn.num_batches_tracked, 1);
}
