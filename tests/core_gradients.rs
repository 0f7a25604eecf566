//! Property tests: every core op's backward pass against central differences
//! in f64, over random shapes and broadcasts.

// Several checks reuse one input; `&[x.clone()]` reads better here than `slice::from_ref(&x)`.
#![allow(clippy::cloned_ref_to_slice_refs)]

use proptest::prelude::*;
use wengert::core::testing::{any_tensor, assert_gradients, assert_second_gradients, broadcastable_shapes, tensor};
use wengert::core::{Tensor, Var};

fn pair() -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>)> {
    broadcastable_shapes(4, 3).prop_flat_map(|(a, b)| (tensor(a, -2.0, 2.0), tensor(b, -2.0, 2.0)))
}

/// A tensor and a list of distinct axes of it (possibly negative).
fn with_axes() -> impl Strategy<Value = (Tensor<f64>, Vec<isize>, bool)> {
    any_tensor(4, 4).prop_flat_map(|x| {
        let r = x.rank();
        (Just(x), proptest::sample::subsequence((0..r).collect::<Vec<_>>(), 1..=r), any::<bool>(), any::<bool>())
            .prop_map(move |(x, axes, neg, keep)| {
                let axes = axes.into_iter().map(|a| if neg { a as isize - r as isize } else { a as isize }).collect();
                (x, axes, keep)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn add_sub_mul_broadcast((a, b) in pair()) {
        assert_gradients(|_, v| v[0].add(v[1]), &[a.clone(), b.clone()])?;
        assert_gradients(|_, v| v[0].sub(v[1]), &[a.clone(), b.clone()])?;
        assert_gradients(|_, v| v[0].mul(v[1]), &[a, b])?;
    }

    #[test]
    fn div_broadcast((a, b) in pair()) {
        // Keep the divisor away from zero.
        let b = b.map(|x| if x >= 0.0 { x + 0.5 } else { x - 0.5 });
        assert_gradients(|_, v| v[0].div(v[1]), &[a, b])?;
    }

    #[test]
    fn elementwise_unary(x in any_tensor(3, 4)) {
        let pos = x.map(|v| v.abs() + 0.3);
        assert_gradients(|_, v| v[0].neg(), &[x.clone()])?;
        assert_gradients(|_, v| v[0].exp(), &[x.clone()])?;
        assert_gradients(|_, v| v[0].log(), &[pos.clone()])?;
        assert_gradients(|_, v| v[0].sqrt(), &[pos.clone()])?;
        assert_gradients(|_, v| v[0].powf(2.0), &[x.clone()])?;
        assert_gradients(|_, v| v[0].powf(3.0), &[x])?;
        assert_gradients(|_, v| v[0].powf(-1.5), &[pos.clone()])?;
        assert_gradients(|_, v| v[0].powf(0.5), &[pos])?;
    }

    #[test]
    fn scalar_variants(x in any_tensor(3, 4), c in -3.0f64..3.0) {
        let c = if c.abs() < 0.1 { 0.7 } else { c };
        assert_gradients(move |_, v| v[0].add_scalar(c)?.mul_scalar(c)?.div_scalar(c)?.rsub_scalar(c), &[x])?;
    }

    #[test]
    fn sum_and_mean((x, axes, keep) in with_axes()) {
        assert_gradients(|_, v| v[0].sum(&axes, keep), &[x.clone()])?;
        assert_gradients(|_, v| v[0].mean(&axes, keep), &[x])?;
    }

    #[test]
    fn amax_without_ties((x, axes, keep) in with_axes()) {
        // Distinct values, well separated so that h does not reorder them.
        let n = x.numel();
        let x = Tensor::from_fn(x.shape().clone(), |i| ((i * 7919) % n) as f64 * 0.1 + x.data()[i] * 0.01);
        assert_gradients(|_, v| v[0].amax(&axes, keep), &[x])?;
    }

    #[test]
    fn permute_reshape_broadcast(x in any_tensor(4, 3), seed in any::<u64>()) {
        let r = x.rank();
        let mut perm: Vec<isize> = (0..r as isize).collect();
        let mut s = seed;
        for i in (1..r).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        assert_gradients(|_, v| v[0].permute(&perm), &[x.clone()])?;
        let n = x.numel();
        assert_gradients(|_, v| v[0].reshape(&[n]), &[x.clone()])?;
        let mut big = vec![2];
        big.extend_from_slice(x.dims());
        assert_gradients(|_, v| v[0].broadcast_to(&big)?.mul(v[0]), &[x])?;
    }

    #[test]
    fn slice_and_concat(x in any_tensor(3, 5), start in 0usize..3, step in 1usize..3) {
        let dim = x.rank() as isize - 1;
        let end = x.dims()[x.rank() - 1];
        let start = start.min(end - 1);
        assert_gradients(|_, v| v[0].slice(dim, start, end, step), &[x.clone()])?;
        let y = x.map(|v| v * 0.5 + 1.0);
        assert_gradients(|_, v| Var::concat(&[v[0], v[1], v[0]], 0), &[x, y])?;
    }

    #[test]
    fn sum_to_is_the_adjoint_of_broadcast((a, b) in pair()) {
        let full = wengert::core::Shape::broadcast("test", a.shape(), b.shape()).unwrap();
        let dims = full.dims().to_vec();
        assert_gradients(move |_, v| v[0].broadcast_to(&dims)?.exp()?.sum_to(&v[1].shape()), &[a, b])?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Grad-of-grad for every core op: the recorded backward pass,
    /// differentiated once more, against finite differences of the gradient.
    #[test]
    fn second_order_of_every_op((a, b) in pair(), (x, axes, keep) in with_axes()) {
        let pos = x.map(|v| v.abs() + 0.3);
        let b_away = b.map(|v| if v >= 0.0 { v + 0.5 } else { v - 0.5 });
        assert_second_gradients(|_, v| v[0].add(v[1])?.mul(v[0]), &[a.clone(), b.clone()])?;
        assert_second_gradients(|_, v| v[0].sub(v[1])?.mul(v[1]), &[a.clone(), b.clone()])?;
        assert_second_gradients(|_, v| v[0].mul(v[1]), &[a.clone(), b])?;
        assert_second_gradients(|_, v| v[0].div(v[1]), &[a, b_away])?;
        assert_second_gradients(|_, v| v[0].neg()?.exp(), &[x.clone()])?;
        assert_second_gradients(|_, v| v[0].log(), &[pos.clone()])?;
        assert_second_gradients(|_, v| v[0].sqrt(), &[pos.clone()])?;
        assert_second_gradients(|_, v| v[0].powf(3.0)?.add_scalar(1.0)?.div_scalar(2.0), &[x.clone()])?;
        assert_second_gradients(|_, v| v[0].powf(-0.5), &[pos])?;
        // Squared sums over many axes reach values in the tens of thousands,
        // where central differences of the gradient carry round-off near the
        // tolerance; the mean (sum / count) keeps the scale O(1) and still
        // exercises sum's rule.
        assert_second_gradients(|_, v| v[0].mul(v[0])?.mean(&axes, keep)?.powf(2.0), &[x.clone()])?;
        assert_second_gradients(|_, v| v[0].mean(&axes, keep)?.exp(), &[x.clone()])?;
        let n = x.numel();
        let distinct = Tensor::from_fn(x.shape().clone(), |i| ((i * 7919) % n) as f64 * 0.1);
        assert_second_gradients(|_, v| v[0].mul(v[0])?.amax(&axes, keep)?.powf(2.0), &[distinct])?;
        let r = x.rank() as isize;
        let perm: Vec<isize> = (0..r).rev().collect();
        assert_second_gradients(|_, v| v[0].permute(&perm)?.exp()?.reshape(&[n]), &[x.clone()])?;
        let last = x.dims()[x.rank() - 1];
        assert_second_gradients(
            |_, v| Var::concat(&[v[0].slice(-1, 0, last, 2)?, v[0]], -1)?.powf(2.0),
            &[x.clone()],
        )?;
        let mut big = vec![2];
        big.extend_from_slice(x.dims());
        assert_second_gradients(|_, v| v[0].broadcast_to(&big)?.powf(3.0)?.sum_to(&v[0].shape()), &[x])?;
    }
}
