//! The kernels against the convolution by its definition, in f64, on every
//! instruction set the CPU has.

use super::*;
use crate::conv::{conv_geometry, Conv2dOptions};

/// Geometries the direct path takes: 3×3, 1×1, 5×5 and dilated "same"
/// kernels, odd and tiny images, one image, groups, few input channels,
/// strided ones (3×3/2, 1×1/2, 7×7/2, 3×3/3, 2×1 strides), large
/// batches of small planes, and layers wider than one pass of the forward
/// kernel takes.
fn geometries() -> Vec<Geometry> {
    // (x, w, padding, dilation, groups, stride)
    type Case = ([usize; 4], [usize; 4], [usize; 2], [usize; 2], usize, [usize; 2]);
    let cases: [Case; 41] = [
        ([2, 16, 32, 32], [16, 16, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        ([3, 8, 7, 5], [16, 8, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        ([1, 3, 9, 9], [8, 3, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        ([2, 16, 14, 14], [24, 16, 1, 1], [0, 0], [1, 1], 1, [1, 1]),
        ([2, 4, 6, 11], [8, 4, 5, 5], [2, 2], [1, 1], 1, [1, 1]),
        ([2, 4, 9, 9], [8, 4, 3, 3], [2, 2], [2, 2], 1, [1, 1]),
        ([2, 6, 5, 5], [16, 3, 3, 3], [1, 1], [1, 1], 2, [1, 1]),
        ([5, 2, 1, 1], [8, 2, 1, 1], [0, 0], [1, 1], 1, [1, 1]),
        ([2, 2, 1, 17], [8, 2, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        ([3, 4, 8, 8], [64, 4, 3, 1], [1, 0], [1, 1], 1, [1, 1]),
        ([2, 8, 16, 16], [16, 8, 3, 3], [1, 1], [1, 1], 1, [2, 2]),
        ([2, 8, 10, 6], [8, 8, 1, 1], [0, 0], [1, 1], 1, [2, 2]),
        ([1, 3, 14, 14], [8, 3, 7, 7], [3, 3], [1, 1], 1, [2, 2]),
        ([2, 4, 9, 9], [16, 2, 3, 3], [1, 1], [1, 1], 2, [3, 3]),
        ([2, 4, 8, 6], [8, 4, 3, 3], [1, 1], [1, 1], 1, [2, 1]),
        // One vector of output channels (on AVX-512): 3×3, dilated,
        // 9×1, one row.
        ([2, 5, 9, 7], [16, 5, 3, 3], [2, 2], [2, 2], 1, [1, 1]),
        ([2, 3, 12, 5], [16, 3, 9, 1], [4, 0], [1, 1], 1, [1, 1]),
        ([3, 7, 1, 17], [16, 7, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        ([9, 3, 6, 6], [16, 3, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        // Strided input gradients by phases: rows of whole vectors and
        // a tail, 32 channels, dilated, 3×3/3.
        ([2, 8, 40, 36], [16, 8, 3, 3], [1, 1], [1, 1], 1, [2, 2]),
        ([2, 16, 12, 10], [32, 16, 3, 3], [1, 1], [1, 1], 1, [2, 2]),
        ([2, 8, 12, 12], [16, 8, 3, 3], [2, 2], [2, 2], 1, [2, 2]),
        ([1, 8, 9, 9], [8, 8, 3, 3], [1, 1], [1, 1], 1, [3, 3]),
        // Strided input gradients with dx's channels a multiple of two
        // vectors (the kernel with channels in the lanes): 3×3/2 (with
        // images enough that a unit takes an image's two tiles), 1×1/2
        // (phases no tap reaches), 7×7/2 (taps shifted both ways),
        // dilated, 3×3/3.
        ([3, 32, 8, 6], [16, 32, 3, 3], [1, 1], [1, 1], 1, [2, 2]),
        ([9, 32, 6, 6], [16, 32, 3, 3], [1, 1], [1, 1], 1, [2, 2]),
        ([2, 16, 10, 6], [8, 16, 1, 1], [0, 0], [1, 1], 1, [2, 2]),
        ([1, 16, 14, 14], [8, 16, 7, 7], [3, 3], [1, 1], 1, [2, 2]),
        ([2, 16, 12, 12], [16, 16, 3, 3], [2, 2], [2, 2], 1, [2, 2]),
        ([1, 16, 9, 9], [8, 16, 3, 3], [1, 1], [1, 1], 1, [3, 3]),
        // Several tiles of output channels per image, with images enough
        // that the forward kernel with channels in the lanes takes an
        // image's tiles together.
        ([5, 8, 6, 6], [64, 8, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        // Strided, with two vectors of output channels (AVX2): 7×7/2 on
        // three channels, as a stem, and 3×3/3.
        ([1, 3, 14, 14], [16, 3, 7, 7], [3, 3], [1, 1], 1, [2, 2]),
        ([2, 8, 9, 9], [16, 8, 3, 3], [1, 1], [1, 1], 1, [3, 3]),
        // Input channels the weight gradient with channels in the lanes
        // cuts into tiles of every width: one channel, and 13 (5 + 4 + 4
        // on AVX2, 7 + 6 on AVX-512).
        ([2, 1, 5, 7], [16, 1, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        ([2, 13, 6, 6], [32, 13, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        // Large batches of small planes.
        ([200, 4, 5, 5], [8, 4, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        ([200, 4, 6, 6], [16, 4, 3, 3], [1, 1], [1, 1], 1, [2, 2]),
        // More weights per output channel than one pass holds: chunks of
        // input channels, the last one partial (64 + 3; 64 + 64 + 8;
        // 5×5: 16 + 8), strided, and an input gradient by phases whose
        // four-tap phase takes 160 channels in two chunks.
        ([1, 67, 7, 5], [16, 67, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        ([2, 136, 6, 6], [8, 136, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
        ([1, 24, 6, 7], [8, 24, 5, 5], [2, 2], [1, 1], 1, [1, 1]),
        ([1, 72, 10, 10], [16, 72, 3, 3], [1, 1], [1, 1], 1, [2, 2]),
        ([1, 16, 8, 8], [160, 16, 3, 3], [1, 1], [1, 1], 1, [2, 2]),
    ];
    cases
        .into_iter()
        .map(|(x, w, padding, dilation, groups, stride)| {
            let o = Conv2dOptions { stride, padding, dilation, groups };
            let g = conv_geometry(&x, &w, &o).unwrap();
            assert!(g.h == g.oh * stride[0] && g.w == g.ow * stride[1] && g.og().is_multiple_of(CHANNEL_TILE));
            g
        })
        .collect()
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i + seed) * 7919 % 211) as f32 / 105.0 - 1.0).collect()
}

/// The three products of a convolution by their definition, in f64:
/// the output, the input gradient and the weight gradient, each term
/// added where it belongs.
fn by_definition(g: &Geometry, x: &[f64], w: &[f64], gy: &[f64]) -> [Vec<f64>; 3] {
    let (cg, og) = (g.cg(), g.og());
    let mut y = vec![0.0; g.n * g.c_out * g.oh * g.ow];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    for n in 0..g.n {
        for co in 0..g.c_out {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let yi = ((n * g.c_out + co) * g.oh + oy) * g.ow + ox;
                    for c in 0..cg {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.stride[0] + ky * g.dil[0]).checked_sub(g.pad[0]);
                                let ix = (ox * g.stride[1] + kx * g.dil[1]).checked_sub(g.pad[1]);
                                let (Some(iy), Some(ix)) = (iy, ix) else { continue };
                                if iy >= g.h || ix >= g.w {
                                    continue;
                                }
                                let xi = ((n * g.c_in + co / og * cg + c) * g.h + iy) * g.w + ix;
                                let wi = ((co * cg + c) * g.kh + ky) * g.kw + kx;
                                y[yi] += x[xi] * w[wi];
                                dx[xi] += gy[yi] * w[wi];
                                dw[wi] += x[xi] * gy[yi];
                            }
                        }
                    }
                }
            }
        }
    }
    [y, dx, dw]
}

/// The direct kernels on every instruction set this CPU has, against
/// the definition in f64 on the same values, within f32 rounding of
/// the sums of |terms|.
fn check<S: Simd, const WO: usize, const TT: usize>() {
    // The forward tiles hold 8 output channels on every instruction set;
    // the weight gradient's tiles `WO`.
    const O: usize = CHANNEL_TILE;
    for g in geometries() {
        let x = values(g.n * g.c_in * g.h * g.w, 1);
        let w = values(g.c_out * g.k(), 2);
        let gy = values(g.n * g.c_out * g.oh * g.ow, 3);
        let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        let abs = |v: &[f32]| v.iter().map(|&a| a.abs() as f64).collect::<Vec<f64>>();
        let [want_y, want_dx, want_dw] = by_definition(&g, &wide(&x), &wide(&w), &wide(&gy));
        let [bound_y, bound_dx, bound_dw] = by_definition(&g, &abs(&x), &abs(&w), &abs(&gy));
        // SAFETY: each caller checked that the CPU has S.
        let y: Vec<f32> = unsafe { forward_with::<S, f32, O>(&g, &x, &w, None) };
        for ((a, b), m) in y.iter().zip(&want_y).zip(&bound_y) {
            assert!((*a as f64 - b).abs() <= 1e-6 * m + 1e-30, "forward {g:?}: {a} vs {b}");
        }
        if forward::outer_fits::<S>(&g) {
            // The same sums in the same order as the pixel-vector tiles.
            // SAFETY: as above; outer_fits holds and O is two vectors.
            let lanes: Vec<f32> = match S::LANES {
                8 => unsafe { forward_outer_with::<S, f32, 16>(&g, &x, &w, None) },
                _ => unsafe { forward_outer_with::<S, f32, 32>(&g, &x, &w, None) },
            };
            assert!(lanes.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()), "forward, channel lanes {g:?}");
        }
        if g.stride != [1, 1] && g.groups == 1 && g.c_in.is_multiple_of(O) {
            let dx: Vec<f32> = unsafe { input_grad_phases::<S, f32, O>(&g, &gy, &w) };
            for ((a, b), m) in dx.iter().zip(&want_dx).zip(&bound_dx) {
                assert!((*a as f64 - b).abs() <= 1e-6 * m + 1e-30, "input grad {g:?}: {a} vs {b}");
            }
            if g.c_in.is_multiple_of(2 * S::LANES) {
                // The same sums in the same order with dx's channels in
                // the lanes.
                // SAFETY: as above; two vectors divide c_in.
                let lanes: Vec<f32> = match S::LANES {
                    8 => unsafe { input_grad_outer::<S, f32, 16>(&g, &gy, &w) },
                    _ => unsafe { input_grad_outer::<S, f32, 32>(&g, &gy, &w) },
                };
                let same = lanes.iter().zip(&dx).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "input grad, channel lanes {g:?}");
            }
        }
        // Every weight-gradient kernel that takes this geometry.
        let mut kernels: Vec<(&str, Vec<f32>)> =
            vec![("pixel lanes", unsafe { weight_grad_with::<S, f32, WO, TT>(&g, &x, &gy) })];
        if outer_applies::<S>(&g) {
            kernels.push(("channel lanes", unsafe { weight_grad_outer::<S, f32>(&g, &x, &gy) }));
        }
        if taps_applies::<S>(&g) {
            kernels.push(("taps", unsafe { weight_grad_taps::<S, f32>(&g, &x, &gy) }));
        }
        for (name, dw) in kernels {
            for ((a, b), m) in dw.iter().zip(&want_dw).zip(&bound_dw) {
                assert!(
                    (*a as f64 - b).abs() <= 1e-6 * m + 1e-30,
                    "weight grad ({name}) {g:?}: {a} vs {b} (Σ|terms| {m}, ratio {})",
                    (*a as f64 - b).abs() / m
                );
            }
        }
    }
}

#[test]
fn avx512_matches_the_unfolding() {
    if isa::detected() >= Isa::Avx512 {
        check::<Avx512, 8, 3>();
    }
}

#[test]
fn avx2_matches_the_unfolding() {
    if isa::detected() >= Isa::Avx2 {
        check::<Avx2, 4, 2>();
    }
}

/// The vector (de)interleaves on every instruction set this CPU has
/// against their definitions, at every length from 0 to past two
/// vectors (whole vectors, a tail, a tail alone), leaving the floats
/// past the `n` pairs as they were.
#[test]
fn interleaves_match_their_definition() {
    fn check<S: Simd>() {
        for n in 0..40 {
            let src = values(2 * n + 3, 5);
            let (mut even, mut odd) = (vec![7f32; n + 3], vec![7f32; n + 3]);
            // SAFETY: the caller checked the CPU; src holds 2n floats,
            // even and odd n.
            unsafe { S::deinterleave(src.as_ptr(), even.as_mut_ptr(), odd.as_mut_ptr(), n) };
            for i in 0..n {
                assert_eq!((even[i], odd[i]), (src[2 * i], src[2 * i + 1]), "deinterleave n={n} i={i}");
            }
            assert!(even[n..].iter().chain(&odd[n..]).all(|&v| v == 7.0), "deinterleave n={n} wrote past");
            let mut dst = vec![7f32; 2 * n + 3];
            // SAFETY: as above, dst holds 2n floats.
            unsafe { S::interleave(even.as_ptr(), odd.as_ptr(), dst.as_mut_ptr(), n) };
            assert_eq!(dst[..2 * n], src[..2 * n], "interleave n={n}");
            assert!(dst[2 * n..].iter().all(|&v| v == 7.0), "interleave n={n} wrote past");
        }
    }
    if isa::detected() >= Isa::Avx512 {
        check::<Avx512>();
    }
    if isa::detected() >= Isa::Avx2 {
        check::<Avx2>();
    }
}

/// The transpositions between planes and runs on every instruction set
/// this CPU has against their definitions, at every length from 0 to past
/// two blocks of eight, leaving the floats past each plane's (or run's)
/// `n` as they were.
#[test]
fn transpositions_match_their_definitions() {
    fn check<S: Simd>() {
        let (lanes, step) = (S::LANES, S::LANES + 3);
        for n in 0..40 {
            let plane = n + 2;
            let src = values(n * step + 1, 5);
            let mut dst = vec![7f32; lanes * plane];
            // SAFETY: the caller checked the CPU; src holds n runs of
            // `step`, dst `lanes` planes of n + 2.
            unsafe { S::scatter_planes(src.as_ptr(), step, dst.as_mut_ptr(), plane, n) };
            for l in 0..lanes {
                for i in 0..plane {
                    let want = if i < n { src[i * step + l] } else { 7.0 };
                    assert_eq!(dst[l * plane + i], want, "scatter n={n} lane {l} pixel {i}");
                }
            }
            let mut runs = vec![7f32; n * step + 1];
            // SAFETY: as above, the other way round.
            unsafe { S::gather_planes(dst.as_ptr(), plane, runs.as_mut_ptr(), step, n) };
            for (i, &v) in runs.iter().enumerate() {
                let want = if i % step < lanes && i < n * step { src[i] } else { 7.0 };
                assert_eq!(v, want, "gather n={n} float {i}");
            }
        }
    }
    if isa::detected() >= Isa::Avx512 {
        check::<Avx512>();
    }
    if isa::detected() >= Isa::Avx2 {
        check::<Avx2>();
    }
}

/// Non-finite values stay where they are: a NaN or infinity in the
/// output gradient of one image never leaks through a masked lane.
#[test]
fn masked_lanes_read_nothing() {
    if isa::detected() < Isa::Avx512 {
        return;
    }
    let o = Conv2dOptions { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 };
    let g = conv_geometry(&[2, 8, 5, 3], &[8, 8, 3, 3], &o).unwrap();
    let x = values(2 * 8 * 15, 1);
    let mut gy = values(2 * 8 * 15, 3);
    // Image 1's gradient is infinite; image 0's weight gradient alone
    // must come out finite when image 1 is left out of the sum.
    gy[8 * 15..].fill(f32::INFINITY);
    let plan = Plan::<Avx512>::new(&g);
    let mut dw = vec![0f32; 8 * 8 * 9];
    // SAFETY: the CPU has AVX-512 (checked above); one image of two.
    let mut packed = vec![0f32; 8 * plan.nv * 16];
    unsafe { Avx512::weight_grad_block::<8, 2>(&plan, &g, &x, &gy, 0, 1, &mut packed, &mut dw) };
    assert!(dw.iter().all(|v| v.is_finite()));
}
