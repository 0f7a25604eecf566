//! Second derivatives of the ops crate: the recorded backward pass,
//! differentiated once more, against central differences of the gradient.

#![allow(clippy::cloned_ref_to_slice_refs)]

use proptest::prelude::*;
use wengert::core::testing::{assert_second_gradients, tensor};
use wengert::core::Tensor;
use wengert::ops::{self, Conv2dOptions, Pool2d};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn conv2d_second_order(
        x in tensor(vec![2, 2, 5, 4], -1.0, 1.0),
        w in tensor(vec![4, 1, 3, 2], -1.0, 1.0),
        stride in 1usize..3,
        pad in 0usize..2,
    ) {
        let o = Conv2dOptions::default()
            .with_stride([stride, 1])
            .with_padding([pad, pad])
            .with_dilation([1, 2])
            .with_groups(2);
        // Square the output so that the second derivative is not zero.
        assert_second_gradients(|_, v| { let y = ops::conv2d(v[0], v[1], None, &o)?; y.mul(y) }, &[x, w])?;
    }

    #[test]
    fn matmul_second_order(a in tensor(vec![2, 3, 4], -1.0, 1.0), b in tensor(vec![4, 2], -1.0, 1.0)) {
        assert_second_gradients(|_, v| ops::tanh(ops::matmul(v[0], v[1])?), &[a, b])?;
    }

    #[test]
    fn batch_norm_second_order(x in tensor(vec![3, 2, 2, 2], -2.0, 2.0), g in tensor(vec![2], 0.5, 1.5), b in tensor(vec![2], -1.0, 1.0)) {
        assert_second_gradients(|_, v| Ok(ops::batch_norm_train(v[0], Some(v[1]), Some(v[2]), 1e-5)?.0), &[x, g, b])?;
    }

    #[test]
    fn softmax_and_cross_entropy_second_order(x in tensor(vec![3, 4], -3.0, 3.0), seed in any::<u64>()) {
        assert_second_gradients(|_, v| ops::softmax(v[0], 1), &[x.clone()])?;
        assert_second_gradients(|_, v| ops::log_softmax(v[0], 0), &[x.clone()])?;
        let labels: Vec<usize> = (0..3).map(|i| (seed as usize >> (4 * i)) % 4).collect();
        assert_second_gradients(|_, v| ops::cross_entropy(v[0], &labels), &[x])?;
    }

    #[test]
    fn activations_and_pools_second_order(x in tensor(vec![1, 2, 4, 4], -2.0, 2.0)) {
        for f in [ops::sigmoid, ops::tanh, ops::gelu, ops::gelu_tanh, ops::softplus, ops::silu] {
            assert_second_gradients(|_, v| f(v[0]), &[x.clone()])?;
        }
        let p = Pool2d::new(3, 1).with_stride([2, 1]).with_padding([1, 1]).with_ceil_mode(true);
        assert_second_gradients(|_, v| { let y = ops::avg_pool2d(v[0], &p, false)?; y.mul(y) }, &[x.clone()])?;
        let distinct = Tensor::from_fn([1, 2, 4, 4], |i| ((i * 7) % 32) as f64 * 0.1);
        assert_second_gradients(|_, v| { let y = ops::max_pool2d(v[0], &p)?; y.mul(y) }, &[distinct])?;
        let lw = Tensor::from_fn([4], |i| 1.0 + i as f64 * 0.1);
        assert_second_gradients(|_, v| ops::layer_norm(v[0], &[4], Some(v[1]), None, 1e-5), &[x, lw])?;
    }
}
