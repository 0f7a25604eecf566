//! Convolution kernels: each product runs the algorithm the plan names
//! (`plan.rs`): the direct path (`direct/`), or im2col + GEMM, parallel
//! over the batch.
//!
//! For one image and one group, the conv is a matrix product
//! `Y (og × OH·OW) = W (og × K) · cols (K × OH·OW)` with `K = cg·kh·kw` and
//! `cols` the unfolded input (im2col). The input gradient is
//! `col2im(Wᵀ · G)` and the weight gradient `Σₙ G · colsᵀ`. A 1×1 conv with
//! stride 1 and no padding needs no unfolding: the image is its own `cols`.

use super::direct;
use super::plan;
use super::Geometry;
use crate::gemm::{matmul_into, Mat};
use crate::scratch::with_scratch;
use rayon::prelude::*;
use wengert_core::Float;

/// The output positions `[lo, hi)` along one axis whose input position
/// `o·s + k·d − p` falls inside `[0, n)`.
#[inline]
fn valid_range(k_off: usize, s: usize, p: usize, n: usize, out: usize) -> (usize, usize) {
    // o·s + k_off − p ≥ 0  ⇔  o ≥ ceil((p − k_off) / s)
    let lo = if p > k_off { (p - k_off).div_ceil(s) } else { 0 };
    // o·s + k_off − p ≤ n − 1  ⇔  o ≤ (n − 1 + p − k_off) / s
    let hi = if n + p > k_off { ((n - 1 + p - k_off) / s + 1).min(out) } else { 0 };
    (lo.min(out), hi.max(lo.min(out)))
}

/// Unfolds one group of one image (`cg × H × W`) into columns
/// `[col0, col0 + OH·OW)` of `cols`, a `K × ld` row-major buffer.
fn im2col<T: Float>(g: &Geometry, x: &[T], cols: &mut [T], ld: usize, col0: usize) {
    let (h, w, oh, ow) = (g.h, g.w, g.oh, g.ow);
    let [sh, sw] = g.stride;
    let [ph, pw] = g.pad;
    let [dh, dw] = g.dil;
    let mut r = 0;
    for c in 0..g.cg() {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..g.kh {
            let (y_lo, y_hi) = valid_range(ky * dh, sh, ph, h, oh);
            for kx in 0..g.kw {
                let (x_lo, x_hi) = valid_range(kx * dw, sw, pw, w, ow);
                let row = &mut cols[r * ld + col0..r * ld + col0 + oh * ow];
                r += 1;
                row[..y_lo * ow].fill(T::zero());
                row[y_hi * ow..].fill(T::zero());
                if sh == 1 && sw == 1 && dw == 1 && ow == w && y_hi > y_lo && x_hi > x_lo {
                    // "Same" padding at stride 1: the row is the plane
                    // shifted by a constant offset, so one copy does every
                    // output row, and the positions that wrapped around a
                    // row's end are padding, zeroed after.
                    let (iy0, ix0) = (y_lo + ky * dh - ph, x_lo + kx - pw);
                    let len = (y_hi - y_lo - 1) * w + (x_hi - x_lo);
                    row[y_lo * w + x_lo..][..len].copy_from_slice(&plane[iy0 * w + ix0..][..len]);
                    for dst in row[y_lo * w..y_hi * w].chunks_exact_mut(w) {
                        dst[..x_lo].fill(T::zero());
                        dst[x_hi..].fill(T::zero());
                    }
                    continue;
                }
                for oy in y_lo..y_hi {
                    let iy = oy * sh + ky * dh - ph;
                    let src = &plane[iy * w..(iy + 1) * w];
                    let dst = &mut row[oy * ow..(oy + 1) * ow];
                    dst[..x_lo].fill(T::zero());
                    dst[x_hi..].fill(T::zero());
                    if x_hi > x_lo {
                        let ix0 = x_lo * sw + kx * dw - pw;
                        if sw == 1 {
                            dst[x_lo..x_hi].copy_from_slice(&src[ix0..ix0 + (x_hi - x_lo)]);
                        } else {
                            for (j, d) in dst[x_lo..x_hi].iter_mut().enumerate() {
                                *d = src[ix0 + j * sw];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Folds `cols` (`K × OH·OW`) back into one group of one image, adding.
fn col2im<T: Float>(g: &Geometry, cols: &[T], x: &mut [T]) {
    let (h, w, oh, ow) = (g.h, g.w, g.oh, g.ow);
    let [sh, sw] = g.stride;
    let [ph, pw] = g.pad;
    let [dh, dw] = g.dil;
    let mut rows = cols.chunks(oh * ow);
    for c in 0..g.cg() {
        let plane = &mut x[c * h * w..(c + 1) * h * w];
        for ky in 0..g.kh {
            let (y_lo, y_hi) = valid_range(ky * dh, sh, ph, h, oh);
            for kx in 0..g.kw {
                let (x_lo, x_hi) = valid_range(kx * dw, sw, pw, w, ow);
                let row = rows.next().expect("cols has K rows");
                if x_hi <= x_lo {
                    // No output column of this tap lands inside the input
                    // (and x_lo·s + k·d − p may not even be a valid index).
                    continue;
                }
                for oy in y_lo..y_hi {
                    let iy = oy * sh + ky * dh - ph;
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    let src = &row[oy * ow + x_lo..oy * ow + x_hi];
                    let ix0 = x_lo * sw + kx * dw - pw;
                    if sw == 1 {
                        dst[ix0..ix0 + src.len()].iter_mut().zip(src).for_each(|(d, &s)| *d += s);
                    } else {
                        for (j, &s) in src.iter().enumerate() {
                            dst[ix0 + j * sw] += s;
                        }
                    }
                }
            }
        }
    }
}

/// Whether the products should use gemm's own threads (few images) rather
/// than one run of images per thread.
fn gemm_threads(g: &Geometry) -> bool {
    g.n < rayon::current_num_threads()
}

/// The GEMM's column count worth aiming for: below a few hundred columns
/// `gemm` spends more time packing than multiplying.
const TARGET_COLUMNS: usize = 256;

/// Images unfolded side by side into one GEMM: enough to reach
/// [`TARGET_COLUMNS`] on small images, one image on large ones, and never
/// more than a thread's share of the batch, which is cut into equal blocks
/// so that every thread gets the same number of images: with unequal
/// blocks, the thread with the most images sets the layer's time.
fn block_images(g: &Geometry) -> usize {
    let share = g.n.div_ceil(rayon::current_num_threads()).max(1);
    let want = TARGET_COLUMNS.div_ceil(g.oh * g.ow).clamp(1, share);
    share.div_ceil(share.div_ceil(want))
}

/// Blocks per parallel task: one contiguous run per thread, so that each task
/// allocates its buffers once.
fn blocks_per_task(g: &Geometry, block: usize) -> usize {
    g.n.div_ceil(block).div_ceil(rayon::current_num_threads()).max(1)
}

/// Unfolds group `grp` of images `n0 .. n0 + nb` side by side into `cols`
/// (`K × nb·P`); returns the matrix to multiply by. A pointwise conv of one
/// image needs no copy: the image is its own unfolding.
fn unfold_block<'a, T: Float>(
    g: &Geometry,
    x: &'a [T],
    n0: usize,
    nb: usize,
    grp: usize,
    cols: &'a mut [T],
) -> Mat<'a, T> {
    let (cg, k, p) = (g.cg(), g.k(), g.oh * g.ow);
    let img_in = g.c_in * g.h * g.w;
    let xg = |i: usize| &x[(n0 + i) * img_in + grp * cg * g.h * g.w..][..cg * g.h * g.w];
    if g.is_pointwise() && nb == 1 {
        return Mat::row_major(xg(0), cg, p);
    }
    let ld = nb * p;
    for i in 0..nb {
        if g.is_pointwise() {
            for c in 0..cg {
                cols[c * ld + i * p..c * ld + (i + 1) * p].copy_from_slice(&xg(i)[c * p..(c + 1) * p]);
            }
        } else {
            im2col(g, xg(i), cols, ld, i * p);
        }
    }
    Mat::row_major(&cols[..k * ld], k, ld)
}

/// `y = conv2d(x, w)`, by the algorithm the plan names.
pub(super) fn forward<T: Float>(g: &Geometry, x: &[T], w: &[T]) -> Vec<T> {
    match plan::forward_kernel(plan::forward::<T>(g)) {
        Some(kernel) => direct::forward(g, x, w, kernel),
        None => forward_im2col(g, x, |grp| row_major_weights(g, w, grp)),
    }
}

/// Group `grp`'s weights as the `og × K` matrix of its product.
fn row_major_weights<'a, T: Float>(g: &Geometry, w: &'a [T], grp: usize) -> Mat<'a, T> {
    let (og, k) = (g.og(), g.k());
    Mat::row_major(&w[grp * og * k..(grp + 1) * og * k], og, k)
}

/// `y = conv2d(x, w)` and, where the direct path runs, the moments of
/// every output row it gathered on the way (see [`direct::forward_moments`]).
pub(super) fn forward_moments<T: Float>(g: &Geometry, x: &[T], w: &[T]) -> (Vec<T>, Option<Vec<f64>>) {
    match plan::forward_kernel(plan::forward::<T>(g)) {
        Some(kernel) => {
            let (y, rows) = direct::forward_moments(g, x, w, kernel);
            (y, Some(rows))
        }
        None => (forward_im2col(g, x, |grp| row_major_weights(g, w, grp)), None),
    }
}

/// `y = conv2d(x, w)` by unfolding and GEMM (the input its own unfolding
/// where the kernel is 1×1): every geometry and type. `weights(grp)` is
/// group `grp`'s `og × K` weight matrix, a view that may be transposed.
fn forward_im2col<'w, T: Float>(g: &Geometry, x: &[T], weights: impl Fn(usize) -> Mat<'w, T> + Sync) -> Vec<T> {
    let (og, k, p) = (g.og(), g.k(), g.oh * g.ow);
    let threads = gemm_threads(g);
    let block = block_images(g);
    wengert_core::buffer::build_par(g.n * g.c_out * p, block * g.c_out * p, blocks_per_task(g, block), |b, yb| {
        let (n0, nb) = (b * block, yb.len() / (g.c_out * p));
        let ld = nb * p;
        with_scratch(k * ld + if nb > 1 { og * ld } else { 0 }, |buf: &mut [T]| {
            let (cols, out) = buf.split_at_mut(k * ld);
            for grp in 0..g.groups {
                let a = weights(grp);
                let cols = unfold_block(g, x, n0, nb, grp, cols);
                if nb == 1 {
                    matmul_into(&mut yb[grp * og * p..(grp + 1) * og * p], a, cols, false, threads);
                } else {
                    // out is og × nb·P; image i's channels are its columns i·P..(i+1)·P.
                    matmul_into(&mut out[..og * ld], a, cols, false, threads);
                    for i in 0..nb {
                        for o in 0..og {
                            let dst = &mut yb[(i * g.c_out + grp * og + o) * p..][..p];
                            dst.copy_from_slice(&out[o * ld + i * p..][..p]);
                        }
                    }
                }
            }
        });
    })
}

/// `dx = conv2dᵀ(gy, w)`: the gradient of conv2d with respect to its input,
/// which is also conv_transpose2d. At stride 1 it is a forward convolution
/// with flipped weights ([`Geometry::flipped`]), which does not
/// scatter-add its result as col2im does; otherwise the plan names the
/// direct kernel's phases or col2im.
pub(super) fn input_grad<T: Float>(g: &Geometry, gy: &[T], w: &[T]) -> Vec<T> {
    if let Some(flipped) = g.flipped() {
        return match plan::forward_kernel(plan::forward::<T>(&flipped)) {
            Some(kernel) => direct::forward(&flipped, gy, &flip_weights(g, w), kernel),
            // A 1×1 kernel flipped is the transpose of each group's
            // weights, which the product reads as a view: no copy.
            None if flipped.is_pointwise() => forward_im2col(&flipped, gy, |grp| row_major_weights(g, w, grp).t()),
            None => {
                let wf = flip_weights(g, w);
                forward_im2col(&flipped, gy, |grp| row_major_weights(&flipped, &wf, grp))
            }
        };
    }
    match plan::phases_kernel(plan::strided_input_grad::<T>(g)) {
        Some(kernel) => direct::input_grad(g, gy, w, kernel),
        None => input_grad_col2im(g, gy, w),
    }
}

/// `w′[c, o] = w[o, c]` flipped in both spatial axes: the weights of the
/// forward convolution [`Geometry::flipped`] describes.
fn flip_weights<T: Float>(g: &Geometry, w: &[T]) -> Vec<T> {
    let (cg, og, kk) = (g.cg(), g.og(), g.kh * g.kw);
    // Blocks of input channels: the block's destination rows, `og·kk`
    // apart, stay in cache while the output channels walk along them.
    const BLOCK: usize = 32;
    let mut flipped = wengert_core::buffer::stale(w.len());
    for grp in 0..g.groups {
        for c0 in (0..cg).step_by(BLOCK) {
            for o in 0..og {
                for c in c0..(c0 + BLOCK).min(cg) {
                    let src = &w[((grp * og + o) * cg + c) * kk..][..kk];
                    let dst = &mut flipped[((grp * cg + c) * og + o) * kk..][..kk];
                    for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                        *d = *s;
                    }
                }
            }
        }
    }
    flipped
}

/// The general transposed convolution: `cols = Wᵀ·gy`, then fold back.
fn input_grad_col2im<T: Float>(g: &Geometry, gy: &[T], w: &[T]) -> Vec<T> {
    let (cg, og, k, p) = (g.cg(), g.og(), g.k(), g.oh * g.ow);
    let img_in = g.c_in * g.h * g.w;
    let threads = gemm_threads(g);
    let scratch = if g.is_pointwise() { 0 } else { k * p };
    wengert_core::buffer::build_par(g.n * img_in, img_in, blocks_per_task(g, 1), |n, dx| {
        if !g.is_pointwise() {
            // col2im adds into it.
            dx.fill(T::zero());
        }
        with_scratch(scratch, |cols: &mut [T]| {
            for grp in 0..g.groups {
                let a = Mat::row_major(&w[grp * og * k..(grp + 1) * og * k], og, k).t();
                let b = Mat::row_major(&gy[(n * g.c_out + grp * og) * p..][..og * p], og, p);
                let dxg = &mut dx[grp * cg * g.h * g.w..(grp + 1) * cg * g.h * g.w];
                if g.is_pointwise() {
                    matmul_into(dxg, a, b, false, threads);
                } else {
                    matmul_into(cols, a, b, false, threads);
                    col2im(g, cols, dxg);
                }
            }
        });
    })
}

/// `dw = Σₙ gy[n] · cols(x[n])ᵀ`: the gradient of conv2d with respect to its
/// weight, by the direct kernel the plan names, else by unfolding.
pub(super) fn weight_grad<T: Float>(g: &Geometry, x: &[T], gy: &[T]) -> Vec<T> {
    match plan::weight_kernel(plan::weight_grad::<T>(g)) {
        Some(kernel) => direct::weight_grad(g, x, gy, kernel),
        None => weight_grad_gemm(g, x, gy),
    }
}

/// The weight gradient by unfolding and GEMM: every geometry and type.
/// Each thread sums its blocks of images into a private buffer; the
/// buffers are added at the end.
///
/// The sum is accumulated transposed, `dwᵀ = Σ cols · gyᵀ`, and transposed
/// once at the end, because `gemm` runs the product several times faster
/// in that orientation than `gy · colsᵀ` for the usual layer (more weights
/// per channel than output channels). Two kinds of layer run faster the
/// other way and skip the transposition: those with more output channels
/// than weights per channel (1×1 layers that widen), and gradients of a
/// million weights or more, whose transposition at the end would run from
/// memory. `docs/architecture.md` gives the measurements.
fn weight_grad_gemm<T: Float>(g: &Geometry, x: &[T], gy: &[T]) -> Vec<T> {
    let (og, k, p) = (g.og(), g.k(), g.oh * g.ow);
    let threads = gemm_threads(g);
    let wlen = g.c_out * k;
    let block = block_images(g);
    let blocks = g.n.div_ceil(block);
    // `dwt` is `dw` itself in the two cases above.
    let wide = og > k || og * k >= 1 << 20;
    // Each of rayon's splits writes its first block's sum rather than
    // adding it to zeros: a product that adds reads its destination first,
    // and a fresh buffer's pages, read before they are written, are the
    // system's shared zero page, copied and remapped page by page at the
    // first write (every thread's TLB flushed for each).
    let dwt = (0..blocks)
        .into_par_iter()
        .with_min_len(blocks_per_task(g, block))
        .fold(
            || None,
            |sum: Option<Vec<T>>, b| {
                let accumulate = sum.is_some();
                let mut dwt = sum.unwrap_or_else(|| wengert_core::buffer::stale(wlen));
                let (n0, nb) = (b * block, block.min(g.n - b * block));
                let ld = nb * p;
                with_scratch(k * ld + og * ld, |buf: &mut [T]| {
                    let (cols, gb) = buf.split_at_mut(k * ld);
                    for grp in 0..g.groups {
                        // gy of these images, og × nb·P, side by side like the columns.
                        let gmat = if nb == 1 {
                            Mat::row_major(&gy[(n0 * g.c_out + grp * og) * p..][..og * p], og, p)
                        } else {
                            for i in 0..nb {
                                for o in 0..og {
                                    gb[o * ld + i * p..][..p]
                                        .copy_from_slice(&gy[((n0 + i) * g.c_out + grp * og + o) * p..][..p]);
                                }
                            }
                            Mat::row_major(&gb[..og * ld], og, ld)
                        };
                        let a = unfold_block(g, x, n0, nb, grp, cols);
                        let dst = &mut dwt[grp * k * og..(grp + 1) * k * og];
                        if wide {
                            matmul_into(dst, gmat, a.t(), accumulate, threads);
                        } else {
                            matmul_into(dst, a, gmat.t(), accumulate, threads);
                        }
                    }
                });
                Some(dwt)
            },
        )
        .reduce(
            || None,
            |a, b| match (a, b) {
                (Some(mut a), Some(b)) => {
                    a.iter_mut().zip(&b).for_each(|(a, &b)| *a += b);
                    Some(a)
                }
                (a, None) => a,
                (None, b) => b,
            },
        )
        // No images: no block ran.
        .unwrap_or_else(|| wengert_core::buffer::zeroed(wlen));
    if wide {
        return dwt;
    }
    // Per group, dwᵀ is K × og; dw is og × K, every element written below.
    let mut dw = wengert_core::buffer::stale(wlen);
    for grp in 0..g.groups {
        let (src, dst) = (&dwt[grp * k * og..(grp + 1) * k * og], &mut dw[grp * og * k..(grp + 1) * og * k]);
        for r in 0..k {
            for o in 0..og {
                dst[o * k + r] = src[r * og + o];
            }
        }
    }
    dw
}

#[cfg(test)]
mod tests {
    use super::valid_range;
    use crate::conv::{conv_geometry, Conv2dOptions};

    /// The convolution by its definition, one output at a time.
    fn naive(x: &[f64], xd: [usize; 4], w: &[f64], wd: [usize; 4], o: &Conv2dOptions) -> Vec<f64> {
        let g = conv_geometry(&xd, &wd, o).unwrap();
        let (cg, og) = (g.cg(), g.og());
        let mut y = vec![0.0; g.n * g.c_out * g.oh * g.ow];
        for n in 0..g.n {
            for co in 0..g.c_out {
                let grp = co / og;
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut sum = 0.0;
                        for c in 0..cg {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.stride[0] + ky * g.dil[0]) as isize - g.pad[0] as isize;
                                    let ix = (ox * g.stride[1] + kx * g.dil[1]) as isize - g.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                        continue;
                                    }
                                    let ci = grp * cg + c;
                                    let xv = x[((n * g.c_in + ci) * g.h + iy as usize) * g.w + ix as usize];
                                    sum += xv * w[((co * cg + c) * g.kh + ky) * g.kw + kx];
                                }
                            }
                        }
                        y[((n * g.c_out + co) * g.oh + oy) * g.ow + ox] = sum;
                    }
                }
            }
        }
        y
    }

    /// The unfolding, with its one-copy path for "same" padding at stride
    /// 1, against the definition, over geometries that take either path:
    /// odd and even kernels, every padding that fits, dilation, stride,
    /// groups and several images per GEMM.
    #[test]
    fn forward_matches_the_definition() {
        let value = |i: usize| ((i * 7919) % 113) as f64 / 56.0 - 1.0;
        let mut checked = 0;
        for (kh, kw) in [(1, 1), (3, 3), (2, 3), (3, 1), (5, 5)] {
            for (ph, pw) in [(0, 0), (kh / 2, kw / 2), (kh - 1, kw - 1), (kh / 2, 0)] {
                for (stride, dil, groups) in
                    [([1, 1], [1, 1], 1), ([1, 1], [2, 1], 1), ([2, 1], [1, 1], 2), ([1, 2], [1, 2], 1)]
                {
                    for (h, w) in [(7, 7), (5, 9), (12, 4)] {
                        let xd = [3, 2 * groups, h, w];
                        let wd = [2 * groups, 2, kh, kw];
                        let o = Conv2dOptions { stride, padding: [ph, pw], dilation: dil, groups };
                        let Ok(g) = conv_geometry(&xd, &wd, &o) else { continue };
                        let x: Vec<f64> = (0..xd.iter().product()).map(value).collect();
                        let wt: Vec<f64> = (0..wd.iter().product()).map(|i| value(i + 5)).collect();
                        let got = super::forward(&g, &x, &wt);
                        let want = naive(&x, xd, &wt, wd, &o);
                        for (a, b) in got.iter().zip(&want) {
                            assert!((a - b).abs() < 1e-12, "{g:?}: {a} vs {b}");
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 150, "{checked} geometries");
    }

    #[test]
    fn valid_ranges_cover_exactly_the_inside() {
        // Brute force over small geometries.
        for n in 1..6 {
            for s in 1..4 {
                for p in 0..3 {
                    for k_off in 0..5 {
                        let out = 7;
                        let (lo, hi) = valid_range(k_off, s, p, n, out);
                        for o in 0..out {
                            let i = (o * s + k_off) as isize - p as isize;
                            let inside = i >= 0 && i < n as isize;
                            assert_eq!(inside, o >= lo && o < hi, "n {n} s {s} p {p} k {k_off} o {o}");
                        }
                    }
                }
            }
        }
    }
}
