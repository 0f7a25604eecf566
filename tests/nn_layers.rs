//! Layers: batch-norm statistics, dropout, names and freezing.

use wengert::core::{Tape, Tensor};
use wengert::nn::layer::{BatchNorm2d, Dropout, Linear, Sequential};
use wengert::nn::{Module, Step};

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
