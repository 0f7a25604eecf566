//! Bad input gives an error naming the op, the argument and the shapes.

use wengert::core::{Tape, Tensor};
use wengert::ops::{self, Conv2dOptions, ConvTranspose2dOptions, Pool2d};

fn msg<T>(r: wengert::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn conv_errors() {
    let t = Tape::<f32>::new();
    let x = t.leaf(Tensor::zeros([1, 3, 5, 5]));
    let o = |groups| Conv2dOptions::default().with_groups(groups);
    assert_eq!(
        msg(ops::conv2d(x, t.leaf(Tensor::zeros([4, 1, 3, 3])), None, &o(2))),
        "conv2d: groups: input channels 3 (input [1, 3, 5, 5]) are not divisible by groups 2"
    );
    assert_eq!(
        msg(ops::conv2d(x, t.leaf(Tensor::zeros([4, 3, 7, 7])), None, &o(1))),
        "conv2d: kernel [7, 7] (dilation [1, 1]) is larger than the padded input [1, 3, 5, 5] (padding [0, 0])"
    );
    assert_eq!(
        msg(ops::conv2d(x, t.leaf(Tensor::zeros([4, 3, 3, 3])), Some(t.leaf(Tensor::zeros([3]))), &o(1))),
        "conv2d: bias is [3], need [4] for 4 output channels"
    );
    assert_eq!(
        msg(ops::conv2d(x, t.leaf(Tensor::zeros([4, 3, 3, 3])), None, &Conv2dOptions::default().with_stride([0, 1]))),
        "conv2d: stride: must be positive, got [0, 1]"
    );
    assert_eq!(
        msg(ops::conv2d(t.leaf(Tensor::zeros([3, 5, 5])), t.leaf(Tensor::zeros([4, 3, 3, 3])), None, &o(1))),
        "conv2d: input is [3, 5, 5]; need rank 4 (NCHW, weights [out, in/groups, kh, kw])"
    );
    let bad_op = ConvTranspose2dOptions::default().with_stride([2, 2]).with_output_padding([2, 0]);
    assert_eq!(
        msg(ops::conv_transpose2d(x, t.leaf(Tensor::zeros([3, 2, 3, 3])), None, &bad_op)),
        "conv_transpose2d: output_padding: [2, 0] must be smaller than the stride [2, 2] or the dilation [1, 1]"
    );
}

#[test]
fn pool_errors() {
    let t = Tape::<f64>::new();
    let x = t.leaf(Tensor::zeros([1, 1, 2, 2]));
    assert_eq!(
        msg(ops::max_pool2d(x, &Pool2d::new(3, 1))),
        "max_pool2d: kernel [3, 3] is larger than the padded input [1, 1, 2, 2] (padding [0, 0], ceil_mode false)"
    );
    let p = Pool2d::new(2, 1).with_padding([2, 2]);
    assert_eq!(msg(ops::avg_pool2d(x, &p, true)), "avg_pool2d: padding: [2, 2] exceeds half the kernel [2, 2]");
    assert_eq!(
        msg(ops::global_avg_pool2d(t.leaf(Tensor::zeros([2, 2])))),
        "global_avg_pool2d: input is [2, 2]; need [N, C, H, W]"
    );
}

#[test]
fn loss_and_matmul_errors() {
    let t = Tape::<f64>::new();
    let logits = t.leaf(Tensor::zeros([2, 3]));
    assert_eq!(
        msg(ops::cross_entropy(logits, &[0, 3])),
        "cross_entropy: labels: label 3 at position 1 is outside [0, 3)"
    );
    assert_eq!(
        msg(ops::cross_entropy(logits, &[0])),
        "cross_entropy: logits are [2, 3] and there are 1 labels; need logits [N, C] with N labels"
    );
    assert_eq!(
        msg(ops::mse_loss(logits, t.leaf(Tensor::zeros([3, 2])))),
        "mse_loss: input is [2, 3], target is [3, 2]; they must match"
    );
    assert_eq!(
        msg(ops::matmul(t.leaf(Tensor::zeros([2, 3])), t.leaf(Tensor::zeros([4, 5])))),
        "matmul: inner dimensions differ: a is [2, 3], b is [4, 5]"
    );
    assert_eq!(
        msg(ops::matmul(t.leaf(Tensor::zeros([2, 2, 3])), t.leaf(Tensor::zeros([3, 3, 1])))),
        "matmul: batch dimensions do not broadcast: a is [2, 2, 3], b is [3, 3, 1]"
    );
    assert_eq!(
        msg(ops::linear(t.leaf(Tensor::zeros([2, 3])), t.leaf(Tensor::zeros([4, 2])), None)),
        "linear: x is [2, 3], weight is [4, 2]; need x [..., in] and weight [out, in]"
    );
}

#[test]
fn normalisation_errors() {
    let t = Tape::<f64>::new();
    let x = t.leaf(Tensor::zeros([2, 3, 2, 2]));
    assert_eq!(
        msg(ops::batch_norm_train(x, Some(t.leaf(Tensor::ones([4]))), None, 1e-5)),
        "batch_norm: weight is [4], input is [2, 3, 2, 2]; need weight [3]"
    );
    assert_eq!(
        msg(ops::batch_norm_eval(x, None, None, &Tensor::zeros([3]), &Tensor::full([3], -1.0), 1e-5)),
        "batch_norm: running_var: variances must be non-negative, found -1"
    );
    assert_eq!(
        msg(ops::batch_norm_train(x, None, None, f64::NAN)),
        "batch_norm: eps: must be finite and non-negative, got NaN"
    );
    assert_eq!(
        msg(ops::layer_norm(x, &[3], None, None, 1e-5)),
        "layer_norm: normalized_shape [3] is not a suffix of the input shape [2, 3, 2, 2]"
    );
}

#[test]
fn large_logits_stay_finite_and_exact() {
    let t = Tape::<f32>::new();
    let logits = t.leaf(Tensor::from_vec(vec![300.0, -300.0, 1000.0, 0.0, -5000.0, 5000.0], [3, 2]).unwrap());
    let loss = ops::cross_entropy(logits, &[1, 0, 0]).unwrap();
    // −log softmax: 600, 0, 10000: mean 3533.33…
    let v = loss.value().unwrap().item().unwrap();
    assert!((v - 10600.0 / 3.0).abs() < 1e-3, "{v}");
    let g = t.backward(loss).unwrap();
    assert!(g.get(logits).unwrap().data().iter().all(|x| x.is_finite()));
    let sm = ops::softmax(logits, 1).unwrap().value().unwrap();
    assert_eq!(sm.data(), &[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
}
