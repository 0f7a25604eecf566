//! The weight gradient's three kernels: output channels in the lanes
//! ([`weight_grad_outer`]), one vector of them under a 3×3 kernel
//! ([`weight_grad_taps`]), or tiles of channels × weight positions summed
//! over pixel vectors ([`weight_grad_with`]). Each cuts the batch into a
//! fixed number of chunks added in order, whatever the thread count.

use super::plan::{with_input, Padded, Plan};
use super::{Simd, CHANNEL_TILE, WGRAD_CHUNKS, WGRAD_VECTORS};
use crate::conv::Geometry;
use crate::scratch::with_scratch;
use rayon::prelude::*;
use wengert_core::Float;

/// Whether the weight gradient takes [`weight_grad_outer`]: one group, and
/// output channels a multiple of two vectors.
pub(super) fn outer_applies<S: Simd>(g: &Geometry) -> bool {
    g.groups == 1 && g.c_out.is_multiple_of(2 * S::LANES)
}

/// Bytes of transposed output gradient [`weight_grad_outer`] takes through
/// all its tiles at a time (a band of whole output rows, at least one).
const OUTER_BAND_BYTES: usize = 24 * 1024;

/// The shape of one [`wgrad_outer`] call's operands: strides in floats.
pub(super) struct OuterShape {
    /// Output rows (of the band) and columns.
    pub(super) oh: usize,
    pub(super) ow: usize,
    /// From one pixel of the transposed output gradient to the next (its
    /// channels, `C_out`).
    pub(super) gy_pixel: usize,
    /// From one output pixel's input to the next (the stride along the
    /// rows), from one output row's to the next (the stride times a padded
    /// row), and from one channel's padded plane to the next.
    pub(super) x_step: usize,
    pub(super) x_row: usize,
    pub(super) x_channel: usize,
    /// From one input channel's row of the transposed gradient to the next.
    pub(super) dw_channel: usize,
}

/// The weight gradient with output channels in the vector lanes: `dwᵀ[c]
/// [tap][o] = Σₙ Σ_q x[n][c][q + tap]·gy[n][o][q]`, each step one
/// broadcast input value times whole vectors of output channels.
///
/// [`weight_grad_with`] puts pixels in the lanes: a step loads an input
/// vector per tap and an output-gradient vector per channel, 10 loads for
/// 16 multiply-adds, and each weight ends in a horizontal sum. Here the
/// output gradient is transposed per image (`[pixel][o]`), the input
/// copied with zero padding around each plane (so that every tap of every
/// output pixel reads inside it), and a step of the `CT × OV`-vector
/// tile loads `OV` gradient vectors and broadcasts `CT` inputs: 8 (or 10)
/// loads for 16 multiply-adds, no masks, no horizontal sums, any stride.
/// Images are cut into [`WGRAD_CHUNKS`] chunks as there, so the result does
/// not depend on the thread count.
///
/// # Safety
/// The CPU supports `S`'s instructions; [`outer_applies`] holds.
pub(super) unsafe fn weight_grad_outer<S: Simd, T: Float>(g: &Geometry, x: &[f32], gy: &[f32]) -> Vec<T> {
    let lanes = S::LANES;
    // Four vectors of channels × 4 inputs, or two × 8: 16 accumulators.
    // (One × 16, for 16 channels on AVX-512, would take 17 loads per 16
    // multiply-adds: the pixel-vector kernel serves those layers.) With 16
    // registers, two × 6: 12 accumulators, 2 gradient vectors and an input.
    // These are the most input channels a tile takes: the channels are
    // cut into as few tiles as that allows, as even as can be (16 into 6,
    // 5 and 5), so that no tile multiplies channels of zeros.
    let (ov, most) = if S::REGISTERS < 32 {
        (2, 6)
    } else if g.c_out.is_multiple_of(4 * lanes) {
        (4, 4)
    } else {
        (2, 8)
    };
    let taps = g.kh * g.kw;
    let (p, hw) = (g.oh * g.ow, g.h * g.w);
    let ([sy, sx], [dil_y, dil_x]) = (g.stride, g.dil);
    let padded = Padded::new(g);
    let cols = padded.cols;
    let tiles = g.c_in.div_ceil(most);
    let start = |i: usize| i * g.c_in / tiles;
    // (first channel, channels) of each tile.
    let channel_tiles: Vec<(usize, usize)> = (0..tiles).map(|i| (start(i), start(i + 1) - start(i))).collect();
    let wlen = g.c_in * taps * g.c_out;
    let chunk = g.n.div_ceil(g.n.min(WGRAD_CHUNKS));
    let chunks = g.n.div_ceil(chunk);
    assert!(x.len() >= g.n * g.c_in * hw && gy.len() >= g.n * g.c_out * p);
    let plane = padded.plane();
    // gather_planes indexes the planes with i32 offsets.
    assert!(p * lanes <= i32::MAX as usize);
    // Output rows per band: every tile of the image reads the band's
    // transposed output gradient, which stays in the first-level cache
    // (a large layer's, transposed whole, would be read from the
    // third-level cache by every tile).
    let band = (OUTER_BAND_BYTES / (g.ow * g.c_out * 4).max(1)).clamp(1, g.oh.max(1));
    let shape = OuterShape {
        oh: g.oh,
        ow: g.ow,
        gy_pixel: g.c_out,
        x_step: sx,
        x_row: sy * cols,
        x_channel: plane,
        dw_channel: taps * g.c_out,
    };
    with_scratch(chunks * wlen, |partials: &mut [f32]| {
        partials.par_chunks_mut(wlen).enumerate().for_each(|(ci, dwt)| {
            dwt.fill(0.0);
            let (gy_len, x_len) = (band * g.ow * g.c_out, g.c_in * plane);
            with_scratch(gy_len + x_len + 16, |buf: &mut [f32]| {
                let at = buf.as_ptr().align_offset(64).min(16);
                let (gyt, xt) = buf[at..at + gy_len + x_len].split_at_mut(gy_len);
                // The padding stays zero; each image overwrites the inside.
                xt.fill(0.0);
                for n in ci * chunk..((ci + 1) * chunk).min(g.n) {
                    padded.copy_inside(g, &x[n * g.c_in * hw..][..g.c_in * hw], xt);
                    let gyn = &gy[n * g.c_out * p..][..g.c_out * p];
                    for r0 in (0..g.oh).step_by(band) {
                        let r1 = (r0 + band).min(g.oh);
                        let bp = (r1 - r0) * g.ow;
                        for ob in (0..g.c_out).step_by(lanes) {
                            // SAFETY: reads gyn[(ob + l)·p + r0·OW + q] for l <
                            // lanes (ob + lanes ≤ C_out, a multiple of lanes)
                            // and q < bp (r1 ≤ OH), and writes gyt[q·C_out +
                            // ob + l], inside its bp·C_out floats.
                            unsafe {
                                S::gather_planes(
                                    gyn.as_ptr().add(ob * p + r0 * g.ow),
                                    p,
                                    gyt.as_mut_ptr().add(ob),
                                    g.c_out,
                                    bp,
                                )
                            };
                        }
                        let shape = OuterShape { oh: r1 - r0, ..shape };
                        for &(cb, ct) in &channel_tiles {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let tap = ky * g.kw + kx;
                                    let xo = cb * plane + (r0 * sy + ky * dil_y) * cols + kx * dil_x;
                                    for ob in (0..g.c_out).step_by(ov * lanes) {
                                        let dwo = (cb * taps + tap) * g.c_out + ob;
                                        // SAFETY: the tile reads gyt[q][ob..ob + ov·lanes]
                                        // for the band's q < (r1 − r0)·OW, xt[c][oy·sy +
                                        // ky·dh][ox·sx + kx·dw] for oy in r0..r1 and c in
                                        // cb..cb + ct ≤ c_in, inside each plane (rows ×
                                        // cols), and reads and writes dwt[cb + i][tap]
                                        // [ob..ob + ov·lanes] for i < ct: all inside the
                                        // buffers.
                                        unsafe {
                                            let (gp, xp, dp) =
                                                (gyt.as_ptr().add(ob), xt.as_ptr().add(xo), dwt.as_mut_ptr().add(dwo));
                                            macro_rules! tile {
                                                ($(($o:literal, $c:literal)),*) => {
                                                    match (ov, ct) {
                                                        $(($o, $c) => S::wgrad_outer::<$o, $c>(gp, xp, dp, &shape),)*
                                                        _ => unreachable!("a tile of {ov} vectors × {ct} channels"),
                                                    }
                                                };
                                            }
                                            tile!(
                                                (4, 4),
                                                (4, 3),
                                                (4, 2),
                                                (4, 1),
                                                (2, 8),
                                                (2, 7),
                                                (2, 6),
                                                (2, 5),
                                                (2, 4),
                                                (2, 3),
                                                (2, 2),
                                                (2, 1)
                                            )
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            });
        });
        sum_transposed(g, partials, wlen)
    })
}

/// Whether the weight gradient takes [`weight_grad_taps`]: one group, stride
/// one, a 3×3 kernel, and the output channels one vector.
pub(super) fn taps_applies<S: Simd>(g: &Geometry) -> bool {
    g.groups == 1 && g.stride == [1, 1] && g.c_out == S::LANES && g.kh * g.kw == TAPS
}

/// The kernel positions [`weight_grad_taps`] takes: 3×3.
const TAPS: usize = 9;

/// Pixels [`wgrad_taps`] sums in registers before it adds the sums to the
/// weight gradient (whole rows, at least one).
const RUN_PIXELS: usize = 256;

/// The shape of one [`wgrad_taps`] call's operands: sizes and strides in
/// floats.
pub(super) struct TapsShape {
    /// Input rows and columns.
    pub(super) h: usize,
    pub(super) w: usize,
    /// From one input channel's plane to the next.
    pub(super) x_channel: usize,
    /// From one row of the padded, transposed output gradient to the next.
    pub(super) gy_row: usize,
    /// From the output gradient that input pixel `(iy, ix)`'s tap `(0, 0)`
    /// reads to the one that tap `t` reads (each at most zero).
    pub(super) tap: [isize; TAPS],
}

/// The weight gradient of a convolution with one vector of output channels
/// (16 on AVX-512), stride one: `dwᵀ[c][tap][o] = Σₙ Σ_p x[n][c][p]·
/// gy[n][o][p − tap]`, each input value broadcast once and multiplied by
/// the output-gradient vectors of all nine taps.
///
/// [`weight_grad_outer`] broadcasts an input value per (channel, tap) and
/// multiplies it by vectors of output channels; with one vector of them,
/// each multiply-add costs a load. Here an input pixel of `CT` channels
/// feeds `CT × 9` accumulators: 3 broadcasts and 9 gradient loads for 27
/// multiply-adds. The output gradient is transposed per image into a
/// zero-bordered plane (`[row][column][o]`), so every tap of every input
/// pixel reads inside it and the sums need no masks. Images are cut into
/// [`WGRAD_CHUNKS`] chunks as there.
///
/// # Safety
/// The CPU supports `S`'s instructions; [`taps_applies`] holds.
pub(super) unsafe fn weight_grad_taps<S: Simd, T: Float>(g: &Geometry, x: &[f32], gy: &[f32]) -> Vec<T> {
    let lanes = S::LANES;
    let hw = g.h * g.w;
    assert!(x.len() >= g.n * g.c_in * hw && gy.len() >= g.n * lanes * hw);
    // gather_planes indexes the planes with i32 offsets.
    assert!(hw * lanes <= i32::MAX as usize);
    // The bordered plane: output pixel (oy, ox) at (oy + by, ox + bx); input
    // pixel (iy, ix)'s tap (ky, kx) reads (iy + by + ph − ky·dh, …), which
    // stays inside for every tap since stride one makes OH = H.
    let [dil_y, dil_x] = g.dil;
    let (by, bx) = ((g.kh - 1) * dil_y - g.pad[0], (g.kw - 1) * dil_x - g.pad[1]);
    let (rows, cols) = (g.oh + (g.kh - 1) * dil_y, g.ow + (g.kw - 1) * dil_x);
    let shape = TapsShape {
        h: g.h,
        w: g.w,
        x_channel: hw,
        gy_row: cols * lanes,
        tap: std::array::from_fn(|t| -((((t / g.kw) * dil_y * cols + (t % g.kw) * dil_x) * lanes) as isize)),
    };
    // Where input pixel (0, 0)'s tap (0, 0) reads.
    let origin = ((g.kh - 1) * dil_y * cols + (g.kw - 1) * dil_x) * lanes;
    let wlen = g.c_in * TAPS * lanes;
    let chunk = g.n.div_ceil(g.n.min(WGRAD_CHUNKS));
    let chunks = g.n.div_ceil(chunk);
    let p = g.oh * g.ow;
    with_scratch(chunks * wlen, |partials: &mut [f32]| {
        partials.par_chunks_mut(wlen).enumerate().for_each(|(ci, dwt)| {
            dwt.fill(0.0);
            let gy_len = rows * cols * lanes;
            with_scratch(gy_len + 16, |buf: &mut [f32]| {
                let at = buf.as_ptr().align_offset(64).min(16);
                let gyt = &mut buf[at..at + gy_len];
                // The border stays zero; each image overwrites the inside.
                gyt.fill(0.0);
                for n in ci * chunk..((ci + 1) * chunk).min(g.n) {
                    let gyn = &gy[n * lanes * p..][..lanes * p];
                    for oy in 0..g.oh {
                        let dst = &mut gyt[((oy + by) * cols + bx) * lanes..][..g.ow * lanes];
                        // SAFETY: reads gyn[o·p + oy·OW + ox] for o < lanes,
                        // ox < OW, and writes the OW·lanes floats of dst.
                        unsafe { S::gather_planes(gyn.as_ptr().add(oy * g.ow), p, dst.as_mut_ptr(), lanes, g.ow) };
                    }
                    let xn = &x[n * g.c_in * hw..][..g.c_in * hw];
                    let mut c = 0;
                    while c < g.c_in {
                        let ct = (g.c_in - c).min(3);
                        // SAFETY: the tile reads x[c..c + ct] (planes of
                        // this image), gyt at origin + (iy·cols + ix)·lanes
                        // + tap[t] for iy < H, ix < W, each inside the rows ×
                        // cols plane (see above), and reads and writes
                        // dwt[c + i][t][..lanes] for i < ct, t < 9: all
                        // inside the buffers.
                        unsafe {
                            let (xp, gp, dp) = (
                                xn.as_ptr().add(c * hw),
                                gyt.as_ptr().add(origin),
                                dwt.as_mut_ptr().add(c * TAPS * lanes),
                            );
                            match ct {
                                3 => S::wgrad_taps::<3>(xp, gp, dp, &shape),
                                2 => S::wgrad_taps::<2>(xp, gp, dp, &shape),
                                _ => S::wgrad_taps::<1>(xp, gp, dp, &shape),
                            }
                        }
                        c += ct;
                    }
                }
            });
        });
        sum_transposed(g, partials, wlen)
    })
}

/// Adds to `dw[c][t][..lanes]` (`c < CT`, `t < 9`) the sum over the input
/// pixels `(iy, ix)` of `x[c][iy][ix]` times the output-gradient vector
/// that pixel's tap `t` reads: `gy` is the bordered plane
/// [`weight_grad_taps`] packs, from where pixel (0, 0)'s tap (0, 0) reads,
/// and tap `t` reads `tap[t]` floats from there.
///
/// # Safety
/// The CPU supports `S`; `x` has `CT` planes of `h·w` floats `x_channel`
/// apart, `gy` a vector at every pixel's every tap, and `dw` `CT·9`
/// vectors.
#[inline(always)]
pub(super) unsafe fn wgrad_taps<S: Simd, const CT: usize>(
    x: *const f32,
    gy: *const f32,
    dw: *mut f32,
    shape: &TapsShape,
) {
    let lanes = S::LANES;
    // Rows per run: each run's sums start from zero and are added to `dw`
    // at its end, so that no running sum takes more than about RUN_PIXELS
    // terms (rounding grows with a sum's length).
    let band = (RUN_PIXELS / shape.w.max(1)).max(1);
    // SAFETY: the caller's contract bounds every pointer below.
    unsafe {
        for r0 in (0..shape.h).step_by(band) {
            let mut acc = [[S::zero(); TAPS]; CT];
            for iy in r0..(r0 + band).min(shape.h) {
                let mut xp = x.add(iy * shape.w);
                let mut gp = gy.add(iy * shape.gy_row);
                for _ in 0..shape.w {
                    let xs: [S::V; CT] = std::array::from_fn(|c| S::splat(xp.add(c * shape.x_channel)));
                    for (t, &off) in shape.tap.iter().enumerate() {
                        let gv = S::loadu(gp.offset(off));
                        for (acc, &xs) in acc.iter_mut().zip(&xs) {
                            acc[t] = S::fma(xs, gv, acc[t]);
                        }
                    }
                    xp = xp.add(1);
                    gp = gp.add(lanes);
                }
            }
            for (c, acc) in acc.iter().enumerate() {
                for (t, &a) in acc.iter().enumerate() {
                    let d = dw.add((c * TAPS + t) * lanes);
                    S::storeu(d, S::add(S::loadu(d), a));
                }
            }
        }
    }
}

/// `dw[o][c][tap]`: the chunks' partial sums `dwᵀ[c][tap][o]` (`wlen`
/// floats each) added in order into the first, then transposed once.
fn sum_transposed<T: Float>(g: &Geometry, partials: &mut [f32], wlen: usize) -> Vec<T> {
    let taps = g.kh * g.kw;
    let (first, rest) = partials.split_at_mut(wlen);
    for part in rest.chunks_exact(wlen) {
        first.iter_mut().zip(part).for_each(|(d, &s)| *d += s);
    }
    let mut dw = wengert_core::buffer::zeroed::<T>(g.c_out * g.c_in * taps);
    for (ct_row, row) in first.chunks_exact(g.c_out).take(g.c_in * taps).enumerate() {
        for (o, &v) in row.iter().enumerate() {
            dw[o * g.c_in * taps + ct_row] = T::of(v as f64);
        }
    }
    dw
}

/// Adds to `dw[c][o]` (`c < CT`, `o < OV·lanes`, rows `shape.dw_channel`
/// apart) the sum over the output pixels `q = (oy, ox)` of `x[c][oy·sy]
/// [ox·sx]·gy[q][o]`, `gy` transposed and `x` padded as [`weight_grad_outer`]
/// packs them.
///
/// # Safety
/// The CPU supports `S`; `gy` has `OV·lanes` floats at each of the `oh·ow`
/// pixels, `x` a float at each `(oy·sy, ox·sx)` of `CT` planes, and `dw`
/// `OV·lanes` floats at each of `CT` rows.
#[inline(always)]
pub(super) unsafe fn wgrad_outer<S: Simd, const OV: usize, const CT: usize>(
    gy: *const f32,
    x: *const f32,
    dw: *mut f32,
    shape: &OuterShape,
) {
    let lanes = S::LANES;
    // SAFETY: the caller's contract bounds every pointer below.
    unsafe {
        // The sums start from zero and are added to `dw` at the end: a
        // band's pixels are a run of the sum, not the whole chunk.
        let mut acc = [[S::zero(); OV]; CT];
        let mut gp = gy;
        for oy in 0..shape.oh {
            let mut xp = x.add(oy * shape.x_row);
            for _ in 0..shape.ow {
                let gv: [S::V; OV] = std::array::from_fn(|v| S::loadu(gp.add(v * lanes)));
                for (c, acc) in acc.iter_mut().enumerate() {
                    let xs = S::splat(xp.add(c * shape.x_channel));
                    for v in 0..OV {
                        acc[v] = S::fma(xs, gv[v], acc[v]);
                    }
                }
                gp = gp.add(shape.gy_pixel);
                xp = xp.add(shape.x_step);
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            for (v, &a) in acc.iter().enumerate() {
                let d = dw.add(c * shape.dw_channel + v * lanes);
                S::storeu(d, S::add(S::loadu(d), a));
            }
        }
    }
}

/// # Safety
/// The CPU supports `S`'s instructions.
pub(super) unsafe fn weight_grad_with<S: Simd, T: Float, const O: usize, const TT: usize>(
    g: &Geometry,
    x: &[f32],
    gy: &[f32],
) -> Vec<T> {
    let plan = Plan::<S>::new(g);
    let wlen = g.c_out * plan.ne;
    let block = WGRAD_VECTORS.div_ceil(plan.nv).clamp(1, g.n);
    let chunk = g.n.div_ceil(g.n.div_ceil(block).min(WGRAD_CHUNKS)).max(block);
    let chunks = g.n.div_ceil(chunk);
    with_input::<S, _>(g, x, chunks * wlen, |partials, x| {
        partials.par_chunks_mut(wlen).enumerate().for_each(|(ci, dw)| {
            dw.fill(0.0);
            let (n0, n1) = (ci * chunk, ((ci + 1) * chunk).min(g.n));
            let packed_len = block * O * plan.nv * S::LANES;
            with_scratch(packed_len + 16, |buf: &mut [f32]| {
                let at = buf.as_ptr().align_offset(64).min(16);
                let packed = &mut buf[at..at + packed_len];
                for b0 in (n0..n1).step_by(block) {
                    let nb = block.min(n1 - b0);
                    // SAFETY: `weight_grad` called this for the active
                    // instruction set; b0 + nb ≤ n1 ≤ g.n.
                    unsafe { S::weight_grad_block::<O, TT>(&plan, g, x, gy, b0, nb, packed, dw) };
                }
            });
        });
        let mut dw = wengert_core::buffer::zeroed::<T>(wlen);
        for part in partials.chunks_exact(wlen) {
            dw.iter_mut().zip(part).for_each(|(d, &s)| *d += T::of(s as f64));
        }
        dw
    })
}

/// Adds the weight gradient of images `b0..b0 + nb` into `dw`. `packed` is
/// scratch space for `nb·O` planes of whole vectors.
///
/// # Safety
/// The CPU supports `S`'s instructions; `x` and `gy` are `g`'s input and
/// output gradient, `b0 + nb ≤ g.n`, `dw` is `g`'s weight size.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn weight_grad_block<S: Simd, const O: usize, const TT: usize>(
    plan: &Plan<S>,
    g: &Geometry,
    x: &[f32],
    gy: &[f32],
    b0: usize,
    nb: usize,
    packed: &mut [f32],
    dw: &mut [f32],
) {
    let (cg, og, p) = (g.cg(), g.og(), plan.p);
    let (img, group) = (g.c_in * g.h * g.w, cg * g.h * g.w);
    assert!((b0 + nb) * img <= x.len() && (b0 + nb) * g.c_out * p <= gy.len());
    assert_eq!(dw.len(), g.c_out * plan.ne);
    // Tiles of up to three (channel, tap) pairs.
    assert!((1..=3).contains(&TT));
    let mut sums = [0f32; 3 * CHANNEL_TILE];
    // The tile's output gradients, copied once into whole aligned vectors
    // (zero past each plane's end) and then read `cg·nt / TT` times: loads
    // that straddle two cache lines would halve the loads' throughput.
    let stride = plan.nv * S::LANES;
    let packed = &mut packed[..nb * O * stride];
    for tile in 0..g.c_out / O {
        let grp = tile * O / og;
        // [vector j][image][channel o][lane]: the O vectors one step of
        // the tile reads lie side by side, one pointer and constant offsets
        // away (eight pointers, one per plane, spilled out of registers),
        // and the steps over the images at one `j` follow each other.
        let lanes = S::LANES;
        for (i, o) in (0..nb).flat_map(|i| (0..O).map(move |o| (i, o))) {
            let src = &gy[((b0 + i) * g.c_out + tile * O + o) * p..][..p];
            for j in 0..plan.nv {
                let dst = &mut packed[((j * nb + i) * O + o) * lanes..][..lanes];
                let from = (j * lanes).min(p);
                let n = lanes.min(p - from);
                dst[..n].copy_from_slice(&src[from..from + n]);
                dst[n..].fill(0.0);
            }
        }
        let gyp = packed.as_ptr();
        let xp = x[b0 * img + grp * group..].as_ptr();
        // The weights of one output channel, (input channel, tap) pairs
        // flattened, in tiles of TT pairs: a 1×1 kernel's tile spans TT
        // input channels, a 3×3 kernel's may cross from one to the next.
        let pairs = plan.ne;
        // Runs of about WGRAD_VECTORS vectors (every image's vectors
        // `j0..j1`), so that the run's output gradients stay in the
        // first-level cache however large the image.
        let per_run = (WGRAD_VECTORS / nb).max(1);
        for j0 in (0..plan.nv).step_by(per_run) {
            let span = (j0, (j0 + per_run).min(plan.nv));
            let mut k0 = 0;
            while k0 < pairs {
                let tt = TT.min(pairs - k0);
                let sums = &mut sums[..O * tt];
                // SAFETY: as this function's; the asserts above bound every
                // image's planes, the span lies in the planes' vectors, and
                // k0 + tt ≤ cg·nt.
                unsafe {
                    match tt {
                        3 => S::wgrad_tile::<O, 3>(plan, g, xp, gyp, nb, span, k0, sums),
                        2 => S::wgrad_tile::<O, 2>(plan, g, xp, gyp, nb, span, k0, sums),
                        _ => S::wgrad_tile::<O, 1>(plan, g, xp, gyp, nb, span, k0, sums),
                    }
                }
                for (o, row) in sums.chunks_exact(tt).enumerate() {
                    let at = (tile * O + o) * pairs + k0;
                    dw[at..at + tt].iter_mut().zip(row).for_each(|(d, &s)| *d += s);
                }
                k0 += tt;
            }
        }
    }
}

/// Sums over vectors `j0..j1` of images `0..nb` of a block of `gy`'s
/// channels `0..O` times the input of weights `k0..k0 + TT`:
/// `sums[o·TT + k]`.
///
/// Vectors outside, images inside: at one `j` every load takes the same
/// masks and the pointers step by constants.
///
/// # Safety
/// As [`weight_grad_block`]; `x` points at the group's first input plane
/// of the block's first image, `gy` at the block's packed output
/// gradients, `[nv][nb][O][lanes]`, and `j1 ≤ nv`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn wgrad_tile<S: Simd, const O: usize, const TT: usize>(
    plan: &Plan<S>,
    g: &Geometry,
    x: *const f32,
    gy: *const f32,
    nb: usize,
    (j0, j1): (usize, usize),
    k0: usize,
    sums: &mut [f32],
) {
    debug_assert_eq!(sums.len(), O * TT);
    let (img, ns, lanes) = (g.c_in * g.h * g.w, plan.ns, S::LANES);
    // SAFETY: input loads read the lanes of `masks[j][t]`, inside the plane
    // (see `forward_tile`); output-gradient loads read whole vectors of the
    // packed planes, `nv·nb·O·lanes` long. The caller bounds the images.
    // The CPU supports `S`.
    unsafe {
        let mut acc = [[S::zero(); TT]; O];
        for j in j0..j1 {
            let m: [S::M; TT] = std::array::from_fn(|k| *plan.masks.get_unchecked(j * ns + plan.shift[k0 + k]));
            let mut xp: [*const f32; TT] =
                std::array::from_fn(|k| x.wrapping_offset(plan.entries[k0 + k] + (j * lanes) as isize));
            let mut gp = gy.add(j * nb * O * lanes);
            for _ in 0..nb {
                let mut xv = [S::zero(); TT];
                for k in 0..TT {
                    xv[k] = S::load(m[k], xp[k]);
                    xp[k] = xp[k].wrapping_add(img);
                }
                for (o, acc) in acc.iter_mut().enumerate() {
                    let gv = S::loadu(gp.add(o * lanes));
                    for k in 0..TT {
                        acc[k] = S::fma(gv, xv[k], acc[k]);
                    }
                }
                gp = gp.add(O * lanes);
            }
        }
        for o in 0..O {
            for k in 0..TT {
                sums[o * TT + k] = S::sum(acc[o][k]);
            }
        }
    }
}
