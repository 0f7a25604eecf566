//! Property tests (f64): every op of the ops crate against the core's
//! numerical gradient check, over random shapes and attributes.

// Several checks reuse one input; `&[x.clone()]` reads better here than `slice::from_ref(&x)`.
#![allow(clippy::cloned_ref_to_slice_refs)]

use proptest::prelude::*;
use wengert::core::testing::{any_tensor, assert_gradients, tensor};
use wengert::core::Tensor;
use wengert::ops::{self, Conv2dOptions, ConvTranspose2dOptions, Pool2d};

/// A random conv geometry: (x, w, b, options), sized so the kernel fits.
fn conv_case() -> impl Strategy<Value = (Tensor<f64>, Tensor<f64>, Tensor<f64>, Conv2dOptions)> {
    (
        1usize..=2,
        1usize..=2,
        1usize..=2,
        1usize..=2,
        [1usize..=3, 1usize..=3],
        [1usize..=3, 1usize..=3],
        [1usize..=2, 1usize..=2],
    )
        .prop_flat_map(|(n, groups, cg, og, k, stride, dil)| {
            let pads = [0..k[0], 0..k[1]];
            let extra = [0usize..4, 0usize..4];
            (Just((n, groups, cg, og, k, stride, dil)), pads, extra)
        })
        .prop_flat_map(|((n, groups, cg, og, k, stride, dil), pad, extra)| {
            let size = |a: usize| (dil[a] * (k[a] - 1) + 1).saturating_sub(2 * pad[a]).max(1) + extra[a];
            let (h, w) = (size(0), size(1));
            let opts =
                Conv2dOptions::default().with_stride(stride).with_padding(pad).with_dilation(dil).with_groups(groups);
            (
                tensor(vec![n, groups * cg, h, w], -1.0, 1.0),
                tensor(vec![groups * og, cg, k[0], k[1]], -1.0, 1.0),
                tensor(vec![groups * og], -1.0, 1.0),
                Just(opts),
            )
        })
}

/// Distinct, well-separated values (max-pool gradients need no ties).
fn distinct(shape: &[usize], seed: u64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let mut order: Vec<usize> = (0..n).collect();
    let mut s = seed | 1;
    for i in (1..n).rev() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (s >> 33) as usize % (i + 1));
    }
    Tensor::from_vec(order.iter().map(|&v| v as f64 * 0.1 - 1.0).collect(), shape.to_vec()).unwrap()
}

fn pool_case() -> impl Strategy<Value = (Vec<usize>, Pool2d)> {
    ([1usize..=3, 1usize..=3], [1usize..=3, 1usize..=3], any::<bool>(), 1usize..=2, 1usize..=2)
        .prop_flat_map(|(k, s, ceil, n, c)| {
            ([0..=k[0] / 2, 0..=k[1] / 2], Just((k, s, ceil, n, c)), [0usize..4, 0usize..4])
        })
        .prop_map(|(p, (k, s, ceil, n, c), extra)| {
            let dims = vec![n, c, (k[0] - 2 * p[0]).max(1) + extra[0], (k[1] - 2 * p[1]).max(1) + extra[1]];
            (dims, Pool2d::new(1, 1).with_kernel(k).with_stride(s).with_padding(p).with_ceil_mode(ceil))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn conv2d_gradients((x, w, b, o) in conv_case()) {
        assert_gradients(|_, v| ops::conv2d(v[0], v[1], Some(v[2]), &o), &[x, w, b])?;
    }

    #[test]
    fn conv_transpose2d_gradients((x, w, b, o) in conv_case(), op in [0usize..3, 0usize..3]) {
        // Reuse the conv geometry: x plays the conv's output side.
        let output_padding = [op[0] % o.stride[0].max(o.dilation[0]), op[1] % o.stride[1].max(o.dilation[1])];
        let t = ConvTranspose2dOptions::default()
            .with_stride(o.stride)
            .with_padding([0, 0])
            .with_output_padding(output_padding)
            .with_dilation(o.dilation)
            .with_groups(o.groups);
        // conv_transpose weights are [in, out/groups, kh, kw]: x has groups·cg channels.
        let wt = Tensor::from_fn([x.dims()[1], w.dims()[0] / o.groups, w.dims()[2], w.dims()[3]], |i| ((i * 37) % 11) as f64 * 0.1 - 0.5);
        let bt = Tensor::from_fn([w.dims()[0]], |i| i as f64 * 0.1);
        let _ = (w, b);
        assert_gradients(|_, v| ops::conv_transpose2d(v[0], v[1], Some(v[2]), &t), &[x, wt, bt])?;
    }

    #[test]
    fn pooling_gradients((dims, p) in pool_case(), seed in any::<u64>(), include_pad in any::<bool>()) {
        let x = distinct(&dims, seed);
        assert_gradients(|_, v| ops::max_pool2d(v[0], &p), &[x.clone()])?;
        assert_gradients(|_, v| ops::avg_pool2d(v[0], &p, include_pad), &[x.clone()])?;
        assert_gradients(|_, v| ops::global_avg_pool2d(v[0]), &[x])?;
    }

    /// Max-pooling's value and gradient route by its definition, where
    /// ties and NaNs make the choice matter: the window's first maximum
    /// in row-major order, and a NaN over any number (the first NaN of a
    /// row, a later row's over an earlier one's).
    #[test]
    fn max_pool_routes_to_its_definition((dims, p) in pool_case(), picks in proptest::collection::vec(0usize..5, 64)) {
        let levels = [0.0, 1.0, 1.0, 2.0, f64::NAN];
        let x = Tensor::from_fn(dims.as_slice(), |i| levels[picks[i % picks.len()]]);
        let tape = wengert::core::Tape::new();
        let xv = tape.leaf(x.clone());
        let y = ops::max_pool2d(xv, &p).unwrap();
        let (yd, yv) = (y.shape().dims().to_vec(), y.value().unwrap());
        let grads = tape.backward(y.sum_all().unwrap()).unwrap();
        let grad = grads.get(xv).unwrap();
        let (h, w) = (dims[2], dims[3]);
        let span = |o: usize, a: usize, n: usize| {
            let start = (o * p.stride[a]) as isize - p.padding[a] as isize;
            (start.max(0) as usize, ((start + p.kernel[a] as isize).min(n as isize)).max(0) as usize)
        };
        let mut want_grad = vec![0.0; x.numel()];
        for plane in 0..dims[0] * dims[1] {
            for oy in 0..yd[2] {
                for ox in 0..yd[3] {
                    let ((y0, y1), (x0, x1)) = (span(oy, 0, h), span(ox, 1, w));
                    let (mut best, mut at) = (f64::NEG_INFINITY, y0 * w + x0);
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            let v = x.data()[plane * h * w + iy * w + ix];
                            if v > best || v.is_nan() {
                                (best, at) = (v, iy * w + ix);
                                if v.is_nan() {
                                    break;
                                }
                            }
                        }
                    }
                    let got = yv.data()[(plane * yd[2] + oy) * yd[3] + ox];
                    prop_assert!(got == best || (got.is_nan() && best.is_nan()), "{p:?} {dims:?}: {got} vs {best}");
                    want_grad[plane * h * w + at] += 1.0;
                }
            }
        }
        prop_assert_eq!(grad.data(), want_grad.as_slice(), "{:?} {:?}", p, dims);
    }

    #[test]
    fn matmul_and_linear(b1 in 1usize..3, b2 in 1usize..3, m in 1usize..4, k in 1usize..4, n in 1usize..4, bcast in any::<bool>()) {
        let a = Tensor::from_fn([b1, b2, m, k], |i| (i as f64 * 0.37).sin());
        let bdims: Vec<usize> = if bcast { vec![k, n] } else { vec![b2, k, n] };
        let b = Tensor::from_fn(bdims, |i| (i as f64 * 0.91).cos());
        assert_gradients(|_, v| ops::matmul(v[0], v[1]), &[a.clone(), b])?;
        let w = Tensor::from_fn([n, k], |i| (i as f64 * 0.53).sin());
        let bias = Tensor::from_fn([n], |i| i as f64 * 0.1);
        assert_gradients(|_, v| ops::linear(v[0], v[1], Some(v[2])), &[a, w, bias])?;
    }

    #[test]
    fn normalisation(n in 1usize..4, c in 1usize..4, h in 1usize..4, w in 1usize..4) {
        prop_assume!(n * h * w >= 2);
        let x = Tensor::from_fn([n, c, h, w], |i| (i as f64 * 1.7).sin() * 2.0 + 0.5);
        let g = Tensor::from_fn([c], |i| 1.0 + i as f64 * 0.3);
        let b = Tensor::from_fn([c], |i| i as f64 * -0.2);
        assert_gradients(|_, v| Ok(ops::batch_norm_train(v[0], Some(v[1]), Some(v[2]), 1e-5)?.0), &[x.clone(), g.clone(), b.clone()])?;
        let rm = Tensor::from_fn([c], |i| i as f64 * 0.1);
        let rv = Tensor::from_fn([c], |i| 0.5 + i as f64);
        assert_gradients(|_, v| ops::batch_norm_eval(v[0], Some(v[1]), Some(v[2]), &rm, &rv, 1e-5), &[x.clone(), g, b])?;
        prop_assume!(h * w >= 2);
        let lw = Tensor::from_fn([h, w], |i| 1.0 - i as f64 * 0.1);
        let lb = Tensor::from_fn([h, w], |i| i as f64 * 0.05);
        assert_gradients(|_, v| ops::layer_norm(v[0], &[h, w], Some(v[1]), Some(v[2]), 1e-5), &[x, lw, lb])?;
    }

    #[test]
    fn activations(x in any_tensor(3, 4)) {
        // Keep away from the kinks of relu and leaky_relu.
        let away = x.map(|v| if v.abs() < 0.01 { v + 0.05 } else { v });
        assert_gradients(|_, v| ops::relu(v[0]), &[away.clone()])?;
        assert_gradients(|_, v| ops::leaky_relu(v[0], 0.1), &[away])?;
        assert_gradients(|_, v| ops::sigmoid(v[0]), &[x.clone()])?;
        assert_gradients(|_, v| ops::tanh(v[0]), &[x.clone()])?;
        assert_gradients(|_, v| ops::gelu(v[0]), &[x.clone()])?;
        assert_gradients(|_, v| ops::gelu_tanh(v[0]), &[x.clone()])?;
        assert_gradients(|_, v| ops::softplus(v[0]), &[x.clone()])?;
        assert_gradients(|_, v| ops::silu(v[0]), &[x.clone()])?;
        assert_gradients(|_, v| ops::erf(v[0]), &[x])?;
    }

    #[test]
    fn softmax_and_losses(x in any_tensor(3, 5), seed in any::<u64>()) {
        let dim = (seed % x.rank() as u64) as isize;
        assert_gradients(|_, v| ops::softmax(v[0], dim), &[x.clone()])?;
        assert_gradients(|_, v| ops::log_softmax(v[0], dim), &[x.clone()])?;
        let n = x.dims()[0];
        let c = x.numel() / n;
        let logits = x.reshape([n, c]).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| (seed as usize / (i + 1)) % c).collect();
        assert_gradients(|_, v| ops::cross_entropy(v[0], &labels), &[logits])?;
        let t = x.map(|v| v * 0.5 - 0.2);
        assert_gradients(|_, v| ops::mse_loss(v[0], v[1]), &[x, t])?;
    }
}
