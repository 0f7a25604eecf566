//! Layers: batch-norm statistics (and the fused convolution and batch norm
//! that share them), dropout, names and freezing.

use wengert::core::{Tape, Tensor};
use wengert::nn::layer::{BatchNorm2d, ConvBn2d, Dropout, Linear, Sequential};
use wengert::nn::{Module, Step, Visit};
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

/// conv → batch norm + ReLU → conv/2 → batch norm as two `ConvBn2d`
/// layers in a `Sequential` (each batch norm merging the moments its
/// convolution's kernel gathered) against the same four layers called one
/// by one (each batch norm reading its input): the same outputs, gradients
/// and running statistics, to the bit, in training and then in evaluation.
#[test]
fn conv_bn_layers_match_the_layers_alone() {
    let build = || {
        let mut rng = wengert::core::rng(7);
        let a = ConvBn2d::<f32>::new(3, 8, 3, Conv2dOptions::square(1, 1), &mut rng).unwrap().with_relu();
        let b = ConvBn2d::<f32>::new(8, 16, 3, Conv2dOptions::square(2, 1), &mut rng).unwrap();
        (a, b)
    };
    let x =
        Tensor::from_vec((0..3 * 3 * 64).map(|i| ((i * 37) % 19) as f32 / 4.0 - 2.0).collect(), [3, 3, 8, 8]).unwrap();
    let bits = |t: &Tensor<f32>| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    type Bits = Vec<u32>;
    /// One training step of `f` on `x`: the output's bits, and those of the
    /// gradients of `w`.
    fn run(
        x: &Tensor<f32>,
        mut f: impl for<'t> FnMut(&mut Step<'t, f32>, wengert::core::Var<'t, f32>) -> wengert::core::Var<'t, f32>,
        w: [&wengert::nn::Param<f32>; 2],
    ) -> (Bits, Bits, Bits) {
        let bits = |t: &Tensor<f32>| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let tape = Tape::new();
        let mut step = Step::train(&tape, 0);
        let y = f(&mut step, tape.constant(x.clone()));
        let out = bits(&y.value().unwrap());
        let grads = step.backward(y.mul(y).unwrap().sum_all().unwrap()).unwrap();
        (out, bits(grads.get(w[0]).unwrap()), bits(grads.get(w[1]).unwrap()))
    }
    // Fused, in a Sequential.
    let (a, b) = build();
    let (wa, wb) = (a.conv.weight.clone(), b.conv.weight.clone());
    let mut seq = Sequential::new().push(a).push(b);
    let fused = run(&x, |step, x| seq.forward(step, x).unwrap(), [&wa, &wb]);
    // The four layers one by one.
    let (mut a, mut b) = build();
    let (wa, wb) = (a.conv.weight.clone(), b.conv.weight.clone());
    let alone = run(
        &x,
        |step, x| {
            let h = a.conv.forward(step, x).unwrap();
            let h = a.bn.forward(step, h).unwrap();
            let h = b.conv.forward(step, h).unwrap();
            b.bn.forward(step, h).unwrap()
        },
        [&wa, &wb],
    );
    assert!(fused == alone, "outputs or gradients differ");
    let mut stats = Vec::new();
    seq.visit("", &mut |name, s| {
        if let wengert::nn::StateRef::Buffer(t) = s {
            stats.push((name, bits(t)));
        }
    });
    let running = [&a.bn.running_mean, &a.bn.running_var, &b.bn.running_mean, &b.bn.running_var];
    let alone_stats: Vec<Vec<u32>> = running.iter().map(|t| bits(t)).collect();
    let fused_stats: Vec<Vec<u32>> =
        stats.iter().filter(|(n, _)| n.contains("running")).map(|(_, b)| b.clone()).collect();
    assert_eq!(fused_stats, alone_stats);
    assert_eq!(stats[0].0, "0.bn.running_mean");
    // Evaluation: the running statistics, fused or not.
    let tape = Tape::new();
    let y = seq.forward(&mut Step::eval(&tape), tape.constant(x.clone())).unwrap();
    let h = a.conv.forward(&mut Step::eval(&tape), tape.constant(x.clone())).unwrap();
    let h = a.bn.forward(&mut Step::eval(&tape), h).unwrap();
    let h = b.conv.forward(&mut Step::eval(&tape), h).unwrap();
    let z = b.bn.forward(&mut Step::eval(&tape), h).unwrap();
    assert_eq!(bits(&y.value().unwrap()), bits(&z.value().unwrap()));
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
