//! Every convolution kernel path agrees with the reference: on each
//! instruction set this CPU has (the direct AVX-512 and AVX2 kernels and
//! the portable path), `f32` convolutions and both their gradients match the
//! same convolution in `f64` to `f32` rounding, over random geometry: odd
//! sizes, stride larger than the kernel, dilation, groups, one image,
//! channel counts around the kernels' blocks and past one pass of them,
//! and the "same" stride-1 shapes the direct kernels take.
//!
//! One test in its own binary: it moves the process-wide instruction-set
//! ceiling, which no other test here reads.

use proptest::prelude::*;
use wengert::core::{Tape, Tensor};
use wengert::ops::isa::{self, Isa};
use wengert::ops::{conv2d, Conv2dOptions};

/// A geometry and its data: x, w, and the upstream gradient's seed.
#[derive(Clone, Debug)]
struct Case {
    x: Vec<usize>,
    w: Vec<usize>,
    opts: Conv2dOptions,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=3,
        1usize..=2,
        // Input channels around the kernels' blocks of 8, and 67: more
        // than the 64 channels of 3×3 weights one pass of the forward
        // kernel holds, so it takes them in two chunks, the second partial.
        prop_oneof![1usize..=5, Just(7), Just(9), Just(17), Just(33), Just(67)],
        // 16, 32 and 64 output channels reach the weight gradient's
        // kernels with channels in the lanes (one, two and four vectors on
        // AVX-512); the one-vector kernel takes 3×3 kernels only.
        prop_oneof![Just(8usize), Just(16), Just(32), Just(64), 1usize..=6],
        prop_oneof![Just([3usize, 3]), [1usize..=5, 1usize..=5]],
        [1usize..=2, 1usize..=2],
        any::<bool>(),
        [1usize..=3, 1usize..=3],
        [0usize..=3, 0usize..=3],
        [1usize..=19, 1usize..=19],
        any::<u64>(),
    )
        .prop_map(|(n, groups, cg, og, k, dil, same, stride, pad, hw, seed)| {
            // Half the cases are "same" convolutions on images whose sides
            // the stride divides (the direct kernels' shapes, when the
            // kernel span is even); the rest are anything whose kernel fits
            // the padded input.
            let span = [dil[0] * (k[0] - 1), dil[1] * (k[1] - 1)];
            let same = same && span[0] % 2 == 0 && span[1] % 2 == 0;
            let padding = if same { [span[0] / 2, span[1] / 2] } else { pad };
            let size = |a: usize| {
                let h = hw[a].max((span[a] + 1).saturating_sub(2 * padding[a])).max(1);
                if same {
                    h.next_multiple_of(stride[a])
                } else {
                    h
                }
            };
            Case {
                x: vec![n, groups * cg, size(0), size(1)],
                w: vec![groups * og, cg, k[0], k[1]],
                opts: Conv2dOptions::default()
                    .with_stride(stride)
                    .with_padding(padding)
                    .with_dilation(dil)
                    .with_groups(groups),
                seed,
            }
        })
}

/// Values in [-1, 1) from a seed.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// `y = conv2d(x, w)` and the gradients of `Σ y ⊙ g` to `x` and `w`.
fn run<T: wengert::core::Float>(c: &Case, x: &[f64], w: &[f64], g: &[f64]) -> [Vec<f64>; 3] {
    let t = |v: &[f64], dims: &[usize]| Tensor::from_vec(v.iter().map(|&a| T::of(a)).collect(), dims.to_vec()).unwrap();
    let tape = Tape::<T>::new();
    let (xv, wv) = (tape.leaf(t(x, &c.x)), tape.leaf(t(w, &c.w)));
    let y = conv2d(xv, wv, None, &c.opts).unwrap();
    let gv = tape.constant(t(g, &y.shape()));
    let wide = |v: &Tensor<T>| v.data().iter().map(|a| a.as_f64()).collect::<Vec<f64>>();
    // The backward pass frees what it no longer needs: read y first.
    let yv = wide(&y.value().unwrap());
    let grads = tape.backward(y.mul(gv).unwrap().sum_all().unwrap()).unwrap();
    [yv, wide(grads.get(xv).unwrap()), wide(grads.get(wv).unwrap())]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn every_path_matches_the_f64_reference(c in case()) {
        let tape = Tape::<f64>::new();
        let y_dims = conv2d(tape.constant(Tensor::zeros(c.x.clone())), tape.constant(Tensor::zeros(c.w.clone())), None, &c.opts)
            .unwrap()
            .shape()
            .dims()
            .to_vec();
        let count = |d: &[usize]| d.iter().product::<usize>();
        let (x, w, g) = (values(count(&c.x), c.seed), values(count(&c.w), c.seed ^ 1), values(count(&y_dims), c.seed ^ 2));
        let want = run::<f64>(&c, &x, &w, &g);
        // Σ|terms| of every output: the same maps on absolute values.
        let abs = |v: &[f64]| v.iter().map(|a| a.abs()).collect::<Vec<f64>>();
        let bound = run::<f64>(&c, &abs(&x), &abs(&w), &abs(&g));
        let best = isa::detected();
        for level in Isa::ALL.into_iter().filter(|&l| l <= best) {
            isa::set_ceiling(level);
            let got = run::<f32>(&c, &x, &w, &g);
            for (what, ((got, want), bound)) in ["y", "dx", "dw"].iter().zip(got.iter().zip(&want).zip(&bound)) {
                for ((a, b), m) in got.iter().zip(want).zip(bound) {
                    // f32 rounding of the inputs and of each partial sum.
                    prop_assert!((a - b).abs() <= 1e-5 * m + 1e-30, "{}: {what} {a} vs {b} (Σ|terms| {m}) on {c:?}", level.name());
                }
            }
        }
        isa::set_ceiling(best);
    }
}
