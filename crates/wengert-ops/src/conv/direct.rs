//! Direct convolution for `f32`: no unfolding, register-blocked micro-kernels.
//!
//! Applies to the convolutions CIFAR ResNets spend their time in ([`applies`]):
//! input sides `stride` times the output's (every "same" stride-1 kernel:
//! 3×3 with padding 1, 1×1, any dilation; and 3×3/2, 1×1/2, 7×7/2 on even
//! sizes), output channels per group a multiple of 8, and a size whose
//! tiles stay in cache. Everything else takes the im2col path in
//! `kernel.rs`.
//!
//! The activations stay NCHW. At stride 1 with `OW = W`, output pixel `q`
//! (flattened `oy·W + ox`) reads input pixel `q + (ky·dh − ph)·W + (kx·dw −
//! pw)` for tap `(ky, kx)`: a constant offset per tap. So a vector of
//! consecutive output pixels reads a vector of consecutive input pixels, one
//! unaligned load per tap, with a lane mask that zeroes the lanes whose
//! input falls in the padding (or wraps to the next row). A strided
//! convolution reads its input split into phases ([`phase_split`]) the same
//! way. The offsets and masks depend only on the geometry and are computed
//! once per call ([`Plan`]).
//!
//! The forward micro-kernel holds `O` output channels × `V` pixel vectors
//! in registers (8 × 3 on AVX-512: 24 accumulators), and for each weight
//! position loads `V` input vectors and broadcasts `O` weights: 24 fused
//! multiply-adds per 11 loads. It writes each output once. The input
//! gradient of a stride-1 convolution is a forward convolution with flipped
//! weights and takes the same kernel (no col2im); a strided one's is one
//! such convolution per phase of the input ([`input_grad`]). The weight
//! gradient puts output channels in the lanes where there are at least two
//! vectors of them and one group ([`weight_grad_outer`]: the output
//! gradient transposed per image, the input zero-padded, each step one
//! broadcast input times whole vectors of channels, at any stride), or
//! exactly one vector of them under a 3×3 kernel at stride 1
//! ([`weight_grad_taps`]: each input value times the gradient vectors of
//! all nine taps); otherwise its
//! micro-kernel holds `O` output channels × `TT` weight positions, and
//! reduces over runs of pixel vectors in registers before one horizontal
//! sum per weight. Either way the batch is cut into a fixed number of
//! chunks whose partial sums are added in order, so the result does not
//! depend on the thread count.
//!
//! One generic body per kernel, compiled once per instruction set through
//! the [`Simd`] trait inside a `#[target_feature]` function: AVX-512 (16
//! lanes, 32 registers, tiles of 8 channels) and AVX2 + FMA (8 lanes, 16
//! registers, tiles of 4). [`crate::isa::active`] picks one at run time.

use super::Geometry;
use crate::isa::{self, Isa};
use crate::scratch::with_scratch;
use rayon::prelude::*;
use wengert_core::{DType, Float};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// The largest output-channel tile of any kernel: the fast path needs the
/// output channels of a group to be a multiple of it.
const CHANNEL_TILE: usize = 8;

/// Input channels the forward kernel takes through every tap before it
/// moves on: within a block it walks the channels at each tap, so a tap's
/// masks load once per block; across blocks, the channels a tap reads
/// stay few. All of a layer's channels at once measured slower in a
/// training step: planes a multiple of 4 KiB apart fall in the same sets
/// of the first-level cache, and sixteen of them (a CIFAR ResNet's 32×32
/// layers) evict each other between taps.
const CHANNEL_BLOCK: usize = 8;

/// Pixel vectors each weight-gradient tile sums over before its horizontal
/// sums: enough to amortise them, few enough that the tile's output
/// gradients stay in the first-level cache.
const WGRAD_VECTORS: usize = 64;

/// Partial sums of the weight gradient: the batch is cut into at most this
/// many chunks, whatever the thread count, and their sums added in order.
const WGRAD_CHUNKS: usize = 8;

/// The most bytes of one image's input (per group) the direct path takes.
/// Its kernels read an image's input once per tile of 8 output channels,
/// from the second-level cache while it fits there; past it the reads
/// come from memory, and unfolding plus `gemm`'s cache-blocked products
/// run faster (`docs/architecture.md` gives the measurement).
const MAX_IMAGE_BYTES: usize = 1 << 20;

/// The most weights per output channel (`cg·kh·kw`) the direct path takes.
/// A tile's packed weights (8 channels' worth) are read once per pixel
/// tile and must stay in the first-level cache: the kernels do not block
/// over input channels. At 576 (64 channels of 3×3, 18 KiB a tile) they
/// do; wider layers ran slower on the direct path than unfolded
/// (`docs/architecture.md`, "How a convolution runs").
const MAX_WEIGHTS: usize = 576;

/// Whether the direct path computes this convolution (for `f32`).
pub(super) fn applies(g: &Geometry) -> bool {
    g.cg() * g.kh * g.kw <= MAX_WEIGHTS
        && g.cg() * g.h * g.w * std::mem::size_of::<f32>() <= MAX_IMAGE_BYTES
        && g.h == g.oh * g.stride[0]
        && g.w == g.ow * g.stride[1]
        && g.og().is_multiple_of(CHANNEL_TILE)
        && isa::active() > Isa::Generic
}

/// Runs `f` with `extra` floats of this thread's scratch and the input as
/// the kernels read it: `x` itself at stride 1, otherwise split into phases
/// ([`phase_split`]) in the same scratch. Scratch, not a fresh allocation:
/// buffers this large are faulted in anew on every call.
fn with_input<S: Simd, R>(g: &Geometry, x: &[f32], extra: usize, f: impl FnOnce(&mut [f32], &[f32]) -> R) -> R {
    let strided = g.stride != [1, 1];
    with_scratch(extra + if strided { x.len() } else { 0 }, |buf: &mut [f32]| {
        let (scratch, phases) = buf.split_at_mut(extra);
        if strided {
            phase_split::<S>(g, x, phases);
            f(scratch, phases)
        } else {
            f(scratch, x)
        }
    })
}

/// Splits each plane of `x` into its `sy·sx` phases, `out[n][c][ry][rx]
/// [by][bx] = x[n][c][by·sy + ry][bx·sx + rx]`, each phase `OH × OW` (the
/// direct path needs `H = OH·sy`, `W = OW·sx`). A stride-`s` convolution
/// of `x` is then a stride-1 one over the phases: output `(oy, ox)` reads
/// tap `(ky, kx)` from phase `((ky·dh − ph) mod sy, …)` at `(oy + ⌊(ky·dh −
/// ph) / sy⌋, …)`, a constant offset again.
fn phase_split<S: Simd>(g: &Geometry, x: &[f32], out: &mut [f32]) {
    let ([sy, sx], oh, ow, w) = (g.stride, g.oh, g.ow, g.w);
    out.par_chunks_mut(g.h * w).zip(x.par_chunks(g.h * w)).for_each(|(dst, src)| {
        if sx == 2 {
            // Each input row is the rows of its two phases, interleaved.
            let (p, row) = (oh * ow, ow);
            for by in 0..oh {
                for ry in 0..sy {
                    let from = &src[(by * sy + ry) * w..][..w];
                    let at = (ry * sx * p) + by * row;
                    let (even, odd) = dst[at..].split_at_mut(p);
                    // SAFETY: `from` holds the 2·OW floats (W = 2·OW) of
                    // one row, `even` and `odd` the OW of a phase row.
                    unsafe { S::deinterleave(from.as_ptr(), even.as_mut_ptr(), odd.as_mut_ptr(), ow) };
                }
            }
            return;
        }
        for (phase, plane) in dst.chunks_exact_mut(oh * ow).enumerate() {
            let (ry, rx) = (phase / sx, phase % sx);
            for (by, row) in plane.chunks_exact_mut(ow).enumerate() {
                let from = &src[(by * sy + ry) * w..][..w];
                for (bx, v) in row.iter_mut().enumerate() {
                    *v = from[bx * sx + rx];
                }
            }
        }
    });
}

/// `x` as `f32`, when `T` is `f32`.
fn f32s<T: Float>(x: &[T]) -> Option<&[f32]> {
    // SAFETY: `Float` is sealed to f32 and f64, and DTYPE names the type, so
    // when it says F32, T is f32 and the cast is the identity.
    (T::DTYPE == DType::F32).then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len()) })
}

/// `x` as `f32`, mutably, when `T` is `f32`.
fn f32s_mut<T: Float>(x: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: as in `f32s`; the borrow of `x` moves into the result.
    (T::DTYPE == DType::F32).then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<f32>(), x.len()) })
}

/// What every tile of one geometry shares: where each weight's input lies
/// and the lane masks of every pixel vector.
///
/// Entry `e` is weight `(c, ky, kx)` of an output channel, in the weights'
/// order: its input for output pixel `q` is `x_group[entries[e] + q]`
/// (`x` split into phases when strided), valid in the lanes of
/// `masks[j][shift[e]]`. Weights that read at the same offset from their
/// plane share a mask: a stride-1 3×3 kernel has 9, a stride-2 one 4.
struct Plan<S: Simd> {
    /// Output pixels per plane, `OH·OW` (also the size of a phase).
    p: usize,
    /// Pixel vectors per plane, `⌈P / lanes⌉`.
    nv: usize,
    /// Weights per output channel, `cg·kh·kw`.
    ne: usize,
    /// Offset of each weight's input from the group's first plane.
    entries: Vec<isize>,
    /// Which mask each weight's loads take.
    shift: Vec<usize>,
    /// Per tap `(ky, kx)`: its input's offset from its channel's first
    /// plane, and its mask; the forward kernel's order.
    taps: Vec<(isize, usize)>,
    /// Floats from one input channel's planes (or phases) to the next.
    channel: isize,
    /// Distinct masks per vector.
    ns: usize,
    /// `[nv][ns]`: the lanes of vector `j` whose input lies in the image.
    /// Every other lane's address may lie outside the plane.
    masks: Vec<S::M>,
    /// `[nv]`: the lanes of vector `j` that are pixels of the plane.
    inside: Vec<S::M>,
}

impl<S: Simd> Plan<S> {
    fn new(g: &Geometry) -> Self {
        let [sy, sx] = g.stride;
        let p = g.oh * g.ow;
        // Per tap: its phase and its (row, column) shift within the phase.
        let split = |k: usize, d: usize, pad: usize, s: usize| {
            let at = (k * d) as isize - pad as isize;
            (at.rem_euclid(s as isize) as usize, at.div_euclid(s as isize))
        };
        let mut taps = Vec::with_capacity(g.kh * g.kw);
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let ((ry, ay), (rx, ax)) = (split(ky, g.dil[0], g.pad[0], sy), split(kx, g.dil[1], g.pad[1], sx));
                taps.push((((ry * sx + rx) * p) as isize, ay, ax));
            }
        }
        Self::from_taps(g.oh, g.ow, g.cg(), (sy * sx * p) as isize, &taps)
    }

    /// The plan of an `OH × OW` output over input planes of the same size
    /// (or phases of them), `channel` floats apart, `cg` of them: tap `t`
    /// reads output pixel `(oy, ox)`'s input at `(oy + ay, ox + ax)` of the
    /// plane that starts `base` floats into its channel, `taps[t] = (base,
    /// ay, ax)`, and zero where that falls outside the plane.
    fn from_taps(oh: usize, ow: usize, cg: usize, channel: isize, tap_shifts: &[(isize, isize, isize)]) -> Self {
        let (p, lanes) = (oh * ow, S::LANES);
        let (oh, ow) = (oh as isize, ow as isize);
        let nv = p.div_ceil(lanes);
        // Per tap: its offset within a channel's planes, and its mask.
        let mut shifts: Vec<(isize, isize)> = Vec::new();
        let mut taps: Vec<(isize, usize)> = Vec::new();
        for &(base, ay, ax) in tap_shifts {
            let si = shifts.iter().position(|&v| v == (ay, ax)).unwrap_or_else(|| {
                shifts.push((ay, ax));
                shifts.len() - 1
            });
            taps.push((base + ay * ow + ax, si));
        }
        let (entries, shift) =
            (0..cg as isize).flat_map(|c| taps.iter().map(move |&(off, si)| (c * channel + off, si))).unzip();
        let bits = |j: usize, keep: &dyn Fn(isize, isize) -> bool| {
            (0..lanes).filter(|l| j * lanes + l < p).fold(0u32, |m, l| {
                let q = (j * lanes + l) as isize;
                if keep(q / ow, q % ow) {
                    m | 1 << l
                } else {
                    m
                }
            })
        };
        let mut masks = Vec::with_capacity(nv * shifts.len());
        for j in 0..nv {
            for &(ay, ax) in &shifts {
                let m = bits(j, &|oy, ox| (0..oh).contains(&(oy + ay)) && (0..ow).contains(&(ox + ax)));
                masks.push(S::mask(m));
            }
        }
        let inside = (0..nv).map(|j| S::mask(bits(j, &|_, _| true))).collect();
        Plan { p, nv, ne: cg * taps.len(), entries, shift, taps, channel, ns: shifts.len(), masks, inside }
    }
}

/// `y = conv2d(x, w)` on the direct path, or `None` when it does not apply
/// (see [`applies`]) or `T` is not `f32`.
pub(super) fn forward<T: Float>(g: &Geometry, x: &[T], w: &[T]) -> Option<Vec<T>> {
    forward_gathering(g, x, w, None)
}

/// [`forward`], and with it the mean and the sum of squared deviations of
/// every output row (`[N·C_out]`, image-major, the two side by side), each
/// taken as soon as its tile is written, while it is in cache: what batch
/// norm reads its input for ([`crate::norm::row_moments`], so the same
/// values to the bit). The moments' buffer comes from the tensor pool.
pub(super) fn forward_moments<T: Float>(g: &Geometry, x: &[T], w: &[T]) -> Option<(Vec<T>, Vec<f64>)> {
    if T::DTYPE != DType::F32 || !applies(g) {
        return None;
    }
    let mut rows = wengert_core::buffer::zeroed::<f64>(2 * g.n * g.c_out);
    let y = forward_gathering(g, x, w, Some(RowsOut { at: rows.as_mut_ptr(), len: rows.len() }))?;
    Some((y, rows))
}

/// Where [`forward_with`] puts each output row's moments: `len` floats at
/// `at`, row `r`'s mean at `2r` and sum of squared deviations at `2r + 1`.
/// Every unit writes the rows of its own image and channels, so no two
/// threads touch the same float.
#[derive(Clone, Copy)]
struct RowsOut {
    at: *mut f64,
    len: usize,
}

// SAFETY: the units that share a `RowsOut` write disjoint rows (see
// `RowsOut::put`), and its owner reads them only after every unit is done.
unsafe impl Send for RowsOut {}
// SAFETY: as for `Send`.
unsafe impl Sync for RowsOut {}

impl RowsOut {
    /// Stores row `r`'s moments.
    ///
    /// # Safety
    /// `at` is valid for `len` floats for as long as this runs, and no other
    /// thread reads or writes row `r` meanwhile.
    unsafe fn put(self, r: usize, (mean, m2): (f64, f64)) {
        assert!(2 * r + 1 < self.len, "row {r} of {}", self.len / 2);
        // SAFETY: in bounds (checked above), and this thread's alone (the
        // caller's promise).
        unsafe {
            *self.at.add(2 * r) = mean;
            *self.at.add(2 * r + 1) = m2;
        }
    }
}

/// [`forward`], putting each output row's moments into `rows` when given.
fn forward_gathering<T: Float>(g: &Geometry, x: &[T], w: &[T], rows: Option<RowsOut>) -> Option<Vec<T>> {
    let (x, w) = (f32s(x)?, f32s(w)?);
    if !applies(g) {
        return None;
    }
    // SAFETY: `active` never names a level the CPU lacks.
    match isa::active() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(unsafe { forward_with::<Avx512, T, 8>(g, x, w, rows) }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(unsafe { forward_with::<Avx2, T, 4>(g, x, w, rows) }),
        _ => None,
    }
}

/// `dw = Σₙ gy[n] ⋆ x[n]` on the direct path, or `None` as for [`forward`],
/// and for 1×1 stride-1 convolutions that keep or widen the channels: for
/// those, a product per block of images (the pixels its inner axis) is
/// faster than the direct kernels, whose tiles then hold few weights per
/// pixel vector. Narrowing ones (64→16) run faster direct, and stay
/// there. `docs/architecture.md` gives the measurements.
pub(super) fn weight_grad<T: Float>(g: &Geometry, x: &[T], gy: &[T]) -> Option<Vec<T>> {
    let (x, gy) = (f32s(x)?, f32s(gy)?);
    if !applies(g) || (g.is_pointwise() && g.og() >= g.cg()) {
        return None;
    }
    // SAFETY: `active` never names a level the CPU lacks.
    match isa::active() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if taps_applies::<Avx512>(g) => Some(unsafe { weight_grad_taps::<Avx512, T>(g, x, gy) }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if outer_applies::<Avx512>(g) => Some(unsafe { weight_grad_outer::<Avx512, T>(g, x, gy) }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(unsafe { weight_grad_with::<Avx512, T, 8, 2>(g, x, gy) }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if outer_applies::<Avx2>(g) => Some(unsafe { weight_grad_outer::<Avx2, T>(g, x, gy) }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(unsafe { weight_grad_with::<Avx2, T, 4, 2>(g, x, gy) }),
        _ => None,
    }
}

/// Whether the weight gradient takes [`weight_grad_outer`]: one group, and
/// output channels a multiple of two vectors.
fn outer_applies<S: Simd>(g: &Geometry) -> bool {
    g.groups == 1 && g.c_out.is_multiple_of(2 * S::LANES)
}

/// Bytes of transposed output gradient [`weight_grad_outer`] takes through
/// all its tiles at a time (a band of whole output rows, at least one).
const OUTER_BAND_BYTES: usize = 24 * 1024;

/// The shape of one [`wgrad_outer`] call's operands: strides in floats.
struct OuterShape {
    /// Output rows (of the band) and columns.
    oh: usize,
    ow: usize,
    /// From one pixel of the transposed output gradient to the next (its
    /// channels, `C_out`).
    gy_pixel: usize,
    /// From one output pixel's input to the next (the stride along the
    /// rows), from one output row's to the next (the stride times a padded
    /// row), and from one channel's padded plane to the next.
    x_step: usize,
    x_row: usize,
    x_channel: usize,
    /// From one input channel's row of the transposed gradient to the next.
    dw_channel: usize,
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
unsafe fn weight_grad_outer<S: Simd, T: Float>(g: &Geometry, x: &[f32], gy: &[f32]) -> Vec<T> {
    let lanes = S::LANES;
    // Four vectors of channels × 4 inputs, or two × 8: 16 accumulators.
    // (One × 16, for 16 channels on AVX-512, would take 17 loads per 16
    // multiply-adds: the pixel-vector kernel serves those layers.)
    let (ov, ct) = if g.c_out.is_multiple_of(4 * lanes) { (4, 4) } else { (2, 8) };
    let taps = g.kh * g.kw;
    let (p, hw) = (g.oh * g.ow, g.h * g.w);
    // The padded plane: every input pixel that some output pixel's tap
    // reads, at (iy + ph, ix + pw).
    let ([sy, sx], [dil_y, dil_x]) = (g.stride, g.dil);
    let rows = g.oh.saturating_sub(1) * sy + (g.kh - 1) * dil_y + 1;
    let cols = g.ow.saturating_sub(1) * sx + (g.kw - 1) * dil_x + 1;
    let cpad = g.c_in.next_multiple_of(ct);
    let wlen = cpad * taps * g.c_out;
    let chunk = g.n.div_ceil(g.n.min(WGRAD_CHUNKS));
    let chunks = g.n.div_ceil(chunk);
    assert!(x.len() >= g.n * g.c_in * hw && gy.len() >= g.n * g.c_out * p);
    let plane = rows * cols;
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
            let (gy_len, x_len) = (band * g.ow * g.c_out, cpad * plane);
            with_scratch(gy_len + x_len + 16, |buf: &mut [f32]| {
                let at = buf.as_ptr().align_offset(64).min(16);
                let (gyt, xt) = buf[at..at + gy_len + x_len].split_at_mut(gy_len);
                // The padding (and the channels past c_in) stay zero; each
                // image overwrites the inside.
                xt.fill(0.0);
                for n in ci * chunk..((ci + 1) * chunk).min(g.n) {
                    // Columns of each row inside the plane (all of them on the
                    // direct path's geometries, whose padding is under half
                    // the kernel's span).
                    let width = g.w.min(cols.saturating_sub(g.pad[1]));
                    for (src, dst) in
                        x[n * g.c_in * hw..][..g.c_in * hw].chunks_exact(hw).zip(xt.chunks_exact_mut(plane))
                    {
                        let inside = if width > 0 { rows.saturating_sub(g.pad[0]) } else { 0 };
                        for (iy, row) in src.chunks_exact(g.w).enumerate().take(inside) {
                            let r = iy + g.pad[0];
                            dst[r * cols + g.pad[1]..][..width].copy_from_slice(&row[..width]);
                        }
                    }
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
                        for cb in (0..cpad).step_by(ct) {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let tap = ky * g.kw + kx;
                                    let xo = cb * plane + (r0 * sy + ky * dil_y) * cols + kx * dil_x;
                                    for ob in (0..g.c_out).step_by(ov * lanes) {
                                        let dwo = (cb * taps + tap) * g.c_out + ob;
                                        // SAFETY: the tile reads gyt[q][ob..ob + ov·lanes]
                                        // for the band's q < (r1 − r0)·OW, xt[c][oy·sy +
                                        // ky·dh][ox·sx + kx·dw] for oy in r0..r1 and c in
                                        // cb..cb + ct ≤ cpad, inside each plane (rows ×
                                        // cols), and reads and writes dwt[cb + i][tap]
                                        // [ob..ob + ov·lanes] for i < ct: all inside the
                                        // buffers.
                                        unsafe {
                                            let (gp, xp, dp) =
                                                (gyt.as_ptr().add(ob), xt.as_ptr().add(xo), dwt.as_mut_ptr().add(dwo));
                                            if ov == 4 {
                                                S::wgrad_outer::<4, 4>(gp, xp, dp, &shape);
                                            } else {
                                                S::wgrad_outer::<2, 8>(gp, xp, dp, &shape);
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            });
        });
        // The channels past c_in (cpad) are zero rows past the ones read.
        sum_transposed(g, partials, wlen)
    })
}

/// Whether the weight gradient takes [`weight_grad_taps`]: one group, stride
/// one, a 3×3 kernel, and the output channels one vector.
fn taps_applies<S: Simd>(g: &Geometry) -> bool {
    g.groups == 1 && g.stride == [1, 1] && g.c_out == S::LANES && g.kh * g.kw == TAPS
}

/// The kernel positions [`weight_grad_taps`] takes: 3×3.
const TAPS: usize = 9;

/// Pixels [`wgrad_taps`] sums in registers before it adds the sums to the
/// weight gradient (whole rows, at least one).
const RUN_PIXELS: usize = 256;

/// The shape of one [`wgrad_taps`] call's operands: sizes and strides in
/// floats.
struct TapsShape {
    /// Input rows and columns.
    h: usize,
    w: usize,
    /// From one input channel's plane to the next.
    x_channel: usize,
    /// From one row of the padded, transposed output gradient to the next.
    gy_row: usize,
    /// From the output gradient that input pixel `(iy, ix)`'s tap `(0, 0)`
    /// reads to the one that tap `t` reads (each at most zero).
    tap: [isize; TAPS],
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
unsafe fn weight_grad_taps<S: Simd, T: Float>(g: &Geometry, x: &[f32], gy: &[f32]) -> Vec<T> {
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
unsafe fn wgrad_taps<S: Simd, const CT: usize>(x: *const f32, gy: *const f32, dw: *mut f32, shape: &TapsShape) {
    let lanes = S::LANES;
    let all = S::mask(u32::MAX >> (32 - lanes));
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
                    S::store(all, d, S::add(S::loadu(d), a));
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
unsafe fn wgrad_outer<S: Simd, const OV: usize, const CT: usize>(
    gy: *const f32,
    x: *const f32,
    dw: *mut f32,
    shape: &OuterShape,
) {
    let lanes = S::LANES;
    let all = S::mask(u32::MAX >> (32 - lanes));
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
                S::store(all, d, S::add(S::loadu(d), a));
            }
        }
    }
}

/// # Safety
/// The CPU supports `S`'s instructions.
unsafe fn forward_with<S: Simd, T: Float, const O: usize>(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    rows: Option<RowsOut>,
) -> Vec<T> {
    let plan = Plan::<S>::new(g);
    let (cg, og, p, ne) = (g.cg(), g.og(), plan.p, plan.ne);
    let (img, group) = (g.c_in * g.h * g.w, cg * g.h * g.w);
    let tiles = g.c_out / O;
    // Weights packed tile by tile as [tile][channel block][tap][channel][O]:
    // a tile reads them in order, O consecutive values per broadcast step.
    let nt = plan.taps.len();
    with_input::<S, _>(g, x, w.len(), |wp, x| {
        for (tile, wt) in wp.chunks_exact_mut(ne * O).enumerate() {
            pack_tile::<O>(wt, cg, nt, |o, c, t| w[((tile * O + o) * cg + c) * nt + t]);
        }
        let wp = &*wp;
        let units = g.n * tiles;
        let per_task = units.div_ceil(rayon::current_num_threads());
        wengert_core::buffer::build_par(units * O * p, O * p, per_task, |u, yb: &mut [T]| {
            let yb = f32s_mut(yb).expect("T is f32");
            let (n, tile) = (u / tiles, u % tiles);
            let grp = tile * O / og;
            let xg = &x[n * img + grp * group..][..group];
            // SAFETY: `forward` called this for the active instruction set,
            // which the CPU supports; `xg` is the group's input planes of
            // one image, `yb` its `O` output planes, `wp` holds every
            // tile's packed weights.
            unsafe { S::forward_unit::<O>(&plan, xg.as_ptr(), yb.as_mut_ptr(), &wp[tile * ne * O..][..ne * O]) };
            if let Some(rows) = rows {
                for (o, plane) in yb.chunks_exact(p).enumerate() {
                    // SAFETY: `forward_moments` holds the buffer until every
                    // unit is done, and row (n, tile·O + o) is this unit's.
                    unsafe { rows.put(n * g.c_out + tile * O + o, crate::norm::row_moments(plane)) };
                }
            }
        })
    })
}

/// Packs one tile's weights for [`forward_tile`]: `[channel block][tap]
/// [channel][O]`, `weight(o, c, t)` the weight of the tile's output channel
/// `o` for input channel `c < cg` at tap `t < nt`.
fn pack_tile<const O: usize>(wt: &mut [f32], cg: usize, nt: usize, weight: impl Fn(usize, usize, usize) -> f32) {
    for o in 0..O {
        for c in 0..cg {
            // Channel c is number c % CB of its block, which starts at
            // (c − c % CB)·nt and holds min(CB, cg − start) channels.
            let (c0, k) = (c - c % CHANNEL_BLOCK, c % CHANNEL_BLOCK);
            let cn = CHANNEL_BLOCK.min(cg - c0);
            for t in 0..nt {
                wt[((c0 * nt) + t * cn + k) * O + o] = weight(o, c, t);
            }
        }
    }
}

/// `dx = conv2dᵀ(gy, w)` of a strided convolution on the direct path, or
/// `None` when it does not apply: one group, input channels a multiple of
/// the channel tile, and [`applies`] with the output gradient as input.
///
/// Each phase `(ry, rx)` of `dx` (the pixels `(sy·a + ry, sx·b + rx)`) is
/// a stride-1 convolution of `gy`: pixel `(a, b)` takes tap `(ky, kx)`
/// where `sy` divides `ry + ph − ky·dh` (and the same across), from `gy`
/// at `(a + (ry + ph − ky·dh)/sy, …)`. A 3×3/2 kernel gives its phases 1,
/// 2, 2 and 4 taps. So the forward kernel computes every phase with no
/// unfolding and no col2im, and each phase is scattered into place once.
pub(super) fn input_grad<T: Float>(g: &Geometry, gy: &[T], w: &[T]) -> Option<Vec<T>> {
    let (gy, w) = (f32s(gy)?, f32s(w)?);
    let most_taps = g.kh.div_ceil(g.stride[0]) * g.kw.div_ceil(g.stride[1]);
    let fits = g.c_out * most_taps <= MAX_WEIGHTS && g.c_out * g.oh * g.ow * 4 <= MAX_IMAGE_BYTES;
    if g.stride == [1, 1] || g.groups != 1 || !g.c_in.is_multiple_of(CHANNEL_TILE) || !fits || !applies(g) {
        return None;
    }
    // SAFETY: `active` never names a level the CPU lacks.
    match isa::active() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(unsafe { input_grad_phases::<Avx512, T, 8>(g, gy, w) }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(unsafe { input_grad_phases::<Avx2, T, 4>(g, gy, w) }),
        _ => None,
    }
}

/// # Safety
/// The CPU supports `S`'s instructions; `g` has one group, `H = OH·sy`,
/// `W = OW·sx`, and `O` divides `c_in`.
unsafe fn input_grad_phases<S: Simd, T: Float, const O: usize>(g: &Geometry, gy: &[f32], w: &[f32]) -> Vec<T> {
    let ([sy, sx], p, kk) = (g.stride, g.oh * g.ow, g.kh * g.kw);
    assert!(gy.len() >= g.n * g.c_out * p && w.len() >= g.c_out * g.c_in * kk);
    // Per phase: its plan over gy's planes, and the kernel position of
    // each of its taps.
    let phases: Vec<(Plan<S>, Vec<usize>)> = (0..sy * sx)
        .map(|phase| {
            let (ry, rx) = (phase / sx, phase % sx);
            let mut shifts = Vec::new();
            let mut positions = Vec::new();
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let at_y = (ry + g.pad[0]) as isize - (ky * g.dil[0]) as isize;
                    let at_x = (rx + g.pad[1]) as isize - (kx * g.dil[1]) as isize;
                    if at_y.rem_euclid(sy as isize) == 0 && at_x.rem_euclid(sx as isize) == 0 {
                        shifts.push((0, at_y / sy as isize, at_x / sx as isize));
                        positions.push(ky * g.kw + kx);
                    }
                }
            }
            (Plan::from_taps(g.oh, g.ow, g.c_out, p as isize, &shifts), positions)
        })
        .collect();
    let tiles = g.c_in / O;
    // Per phase, every tile's weights packed as the forward kernel reads
    // them: the tile's "output" channels are dx's channels, its "input"
    // channels gy's.
    let packed: Vec<Vec<f32>> = phases
        .iter()
        .map(|(plan, positions)| {
            let mut wp = vec![0f32; tiles * plan.ne * O];
            // A phase no tap reaches (1×1/2's odd pixels) packs nothing.
            for (tile, wt) in wp.chunks_exact_mut((plan.ne * O).max(1)).enumerate() {
                pack_tile::<O>(wt, g.c_out, positions.len(), |c, o, t| {
                    w[(o * g.c_in + tile * O + c) * kk + positions[t]]
                });
            }
            wp
        })
        .collect();
    let (hw, img) = (g.h * g.w, g.c_out * p);
    let units = g.n * tiles;
    let per_task = units.div_ceil(rayon::current_num_threads());
    wengert_core::buffer::build_par(units * O * hw, O * hw, per_task, |u, dxb: &mut [T]| {
        let dxb = f32s_mut(dxb).expect("T is f32");
        let (n, tile) = (u / tiles, u % tiles);
        let gyn = &gy[n * img..][..img];
        // Every phase of the O channels, [phase][channel][P], then put in
        // place.
        with_scratch(sy * sx * O * p, |all: &mut [f32]| {
            for (out, ((plan, positions), wp)) in all.chunks_exact_mut(O * p).zip(phases.iter().zip(&packed)) {
                if positions.is_empty() {
                    out.fill(0.0);
                } else {
                    // SAFETY: `input_grad` called this for the active
                    // instruction set; `gyn` is one image's output gradient
                    // (c_out planes of P, the plan's channels), `out` O
                    // planes of P, `wp` every tile's packed weights.
                    unsafe {
                        S::forward_unit::<O>(
                            plan,
                            gyn.as_ptr(),
                            out.as_mut_ptr(),
                            &wp[tile * plan.ne * O..][..plan.ne * O],
                        )
                    };
                }
            }
            for (i, dst) in dxb.chunks_exact_mut(hw).enumerate() {
                for (r, row) in dst.chunks_exact_mut(g.w).enumerate() {
                    let (a, ry) = (r / sy, r % sy);
                    let phase_row = |rx: usize| &all[((ry * sx + rx) * O + i) * p + a * g.ow..][..g.ow];
                    if sx == 2 {
                        // SAFETY: the two phase rows hold OW floats each,
                        // `row` the W = 2·OW of one row of dx.
                        unsafe { S::interleave(phase_row(0).as_ptr(), phase_row(1).as_ptr(), row.as_mut_ptr(), g.ow) };
                    } else {
                        for rx in 0..sx {
                            for (b, &v) in phase_row(rx).iter().enumerate() {
                                row[b * sx + rx] = v;
                            }
                        }
                    }
                }
            }
        });
    })
}

/// One tile of output channels of one image: every pixel vector, in tiles
/// of up to three vectors.
///
/// Runs of vectors that cross into the next image (so that a plane of four
/// vectors, a CIFAR ResNet's 8×8 layers, gets full tiles of three) sped
/// up one convolution alone but slowed a ResNet-20 training step, and were
/// taken out.
///
/// # Safety
/// The CPU supports `S`'s instructions; `x` points at a group's input
/// planes (phases, when strided), `y` at `O·P` floats the caller may
/// write; `wt` holds the tile's packed weights (`ne·O`).
#[inline(always)]
unsafe fn forward_unit<S: Simd, const O: usize>(plan: &Plan<S>, x: *const f32, y: *mut f32, wt: &[f32]) {
    debug_assert!(wt.len() == plan.ne * O);
    let mut j = 0;
    while j < plan.nv {
        // Threes, but 2 + 2 rather than 3 + 1 at the end.
        let v = match plan.nv - j {
            1 => 1,
            2 | 4 => 2,
            _ => 3,
        };
        // SAFETY: as this function's; j + v ≤ nv.
        unsafe {
            match v {
                3 => forward_tile::<S, O, 3>(plan, x, y, j, wt),
                2 => forward_tile::<S, O, 2>(plan, x, y, j, wt),
                _ => forward_tile::<S, O, 1>(plan, x, y, j, wt),
            }
        }
        j += v;
    }
}

/// Output channels `0..O` × pixel vectors `j0..j0 + V`, summed over every
/// input channel and tap in registers, then stored once.
///
/// Blocks of [`CHANNEL_BLOCK`] input channels, then taps, then the
/// block's channels: within a tap every load takes the same masks and the
/// input and weight pointers step by constants, so the inner loop is the
/// loads and the multiply-adds alone.
///
/// # Safety
/// As [`forward_unit`], and `j0 + V ≤ nv`.
#[inline(always)]
unsafe fn forward_tile<S: Simd, const O: usize, const V: usize>(
    plan: &Plan<S>,
    x: *const f32,
    y: *mut f32,
    j0: usize,
    wt: &[f32],
) {
    let (p, ns, lanes, cg) = (plan.p, plan.ns, S::LANES, plan.ne / plan.taps.len());
    // SAFETY (for every load and store below): a load of channel `c` at
    // tap offset `at` reads `x[c·channel + at + j·lanes + l]` for the lanes
    // `l` of `masks[j][si]`, pixels whose input lies inside that channel's
    // plane (Plan::new), so inside the image's input; masked lanes are
    // neither read nor faulted on, which is why the address is formed with
    // `wrapping_offset` and may point outside. A store writes the lanes of
    // `inside[j]`, pixels `< P` of plane `o < O`, inside `y`. Weight reads
    // index `wt` below `ne·O` (`taps · cg · O`). The CPU supports `S`.
    unsafe {
        let mut acc = [[S::zero(); V]; O];
        let mut wv = wt.as_ptr();
        for c0 in (0..cg).step_by(CHANNEL_BLOCK) {
            let cn = CHANNEL_BLOCK.min(cg - c0);
            for &(at, si) in &plan.taps {
                let m: [S::M; V] = std::array::from_fn(|v| *plan.masks.get_unchecked((j0 + v) * ns + si));
                let mut xp = x.wrapping_offset(c0 as isize * plan.channel + at + (j0 * lanes) as isize);
                for _ in 0..cn {
                    let mut xv = [S::zero(); V];
                    for (v, xv) in xv.iter_mut().enumerate() {
                        *xv = S::load(m[v], xp.wrapping_add(v * lanes));
                    }
                    for (o, acc) in acc.iter_mut().enumerate() {
                        let b = S::splat(wv.add(o));
                        for v in 0..V {
                            acc[v] = S::fma(b, xv[v], acc[v]);
                        }
                    }
                    xp = xp.wrapping_offset(plan.channel);
                    wv = wv.add(O);
                }
            }
        }
        for (o, acc) in acc.iter().enumerate() {
            for (v, &a) in acc.iter().enumerate() {
                let j = j0 + v;
                S::store(plan.inside[j], y.add(o * p + j * lanes), a);
            }
        }
    }
}

/// # Safety
/// The CPU supports `S`'s instructions.
unsafe fn weight_grad_with<S: Simd, T: Float, const O: usize, const TT: usize>(
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
unsafe fn weight_grad_block<S: Simd, const O: usize, const TT: usize>(
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
unsafe fn wgrad_tile<S: Simd, const O: usize, const TT: usize>(
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

/// One instruction set: vectors of `LANES` `f32`, lane masks, and the
/// kernels compiled for it.
///
/// # Safety
/// Every method but `mask` needs a CPU with the instruction set, and
/// pointers to memory the caller may read (or write) at every lane the
/// method touches: all `LANES` for `loadu`, one for `splat`, the mask's
/// for `load` (which gives zero in the others and neither reads nor
/// faults on them) and `store`.
trait Simd: Sized + 'static {
    /// `f32` lanes per vector.
    const LANES: usize;
    /// A vector.
    type V: Copy;
    /// A lane mask.
    type M: Copy + Send + Sync;

    /// The mask of the lanes whose bit is set in `bits`.
    fn mask(bits: u32) -> Self::M;
    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// `m`'s lanes from `p`, zero elsewhere.
    unsafe fn load(m: Self::M, p: *const f32) -> Self::V;
    /// `LANES` values from `p`.
    unsafe fn loadu(p: *const f32) -> Self::V;
    /// `*p` in every lane.
    unsafe fn splat(p: *const f32) -> Self::V;
    /// `a·b + c`, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `v`'s lanes in `m` to `p`.
    unsafe fn store(m: Self::M, p: *mut f32, v: Self::V);
    /// `a + b`, lane by lane.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `even[i] = src[2i]`, `odd[i] = src[2i + 1]` for `i < n`.
    unsafe fn deinterleave(src: *const f32, even: *mut f32, odd: *mut f32, n: usize) {
        // SAFETY: the caller's.
        unsafe { pairs(0..n, |i| (src.add(2 * i), even.add(i), src.add(2 * i + 1), odd.add(i))) }
    }
    /// `dst[2i] = even[i]`, `dst[2i + 1] = odd[i]` for `i < n`.
    unsafe fn interleave(even: *const f32, odd: *const f32, dst: *mut f32, n: usize) {
        // SAFETY: the caller's.
        unsafe { pairs(0..n, |i| (even.add(i), dst.add(2 * i), odd.add(i), dst.add(2 * i + 1))) }
    }
    /// The sum of the lanes.
    unsafe fn sum(v: Self::V) -> f32;
    /// `dst[i·step + l] = src[l·plane + i]` for `i < n`, `l < LANES`: `n`
    /// columns of `LANES` planes, transposed, column `i` to the `LANES`
    /// floats at `dst[i·step]`. `plane·LANES` fits an `i32`.
    unsafe fn gather_planes(src: *const f32, plane: usize, dst: *mut f32, step: usize, n: usize);

    /// [`forward_unit`] compiled for this instruction set.
    unsafe fn forward_unit<const O: usize>(plan: &Plan<Self>, x: *const f32, y: *mut f32, wt: &[f32]);
    /// [`wgrad_tile`] compiled for this instruction set, as a function of
    /// its own: inlined into its caller, its 24 accumulators were spilled.
    #[allow(clippy::too_many_arguments)]
    unsafe fn wgrad_tile<const O: usize, const TT: usize>(
        plan: &Plan<Self>,
        g: &Geometry,
        x: *const f32,
        gy: *const f32,
        nb: usize,
        span: (usize, usize),
        k0: usize,
        sums: &mut [f32],
    );
    /// [`wgrad_outer`] compiled for this instruction set.
    unsafe fn wgrad_outer<const OV: usize, const CT: usize>(
        gy: *const f32,
        x: *const f32,
        dw: *mut f32,
        shape: &OuterShape,
    );
    /// [`wgrad_taps`] compiled for this instruction set.
    unsafe fn wgrad_taps<const CT: usize>(x: *const f32, gy: *const f32, dw: *mut f32, shape: &TapsShape);
    /// [`weight_grad_block`] compiled for this instruction set.
    #[allow(clippy::too_many_arguments)]
    unsafe fn weight_grad_block<const O: usize, const TT: usize>(
        plan: &Plan<Self>,
        g: &Geometry,
        x: &[f32],
        gy: &[f32],
        b0: usize,
        nb: usize,
        packed: &mut [f32],
        dw: &mut [f32],
    );
}

/// For each `i` of `range`, copies two floats: `at(i) = (from, to, from′,
/// to′)`, `*to = *from` and `*to′ = *from′` (the scalar (de)interleaves).
///
/// # Safety
/// Every pointer `at` gives may be read (`from`) or written (`to`).
#[inline(always)]
unsafe fn pairs(range: std::ops::Range<usize>, at: impl Fn(usize) -> (*const f32, *mut f32, *const f32, *mut f32)) {
    for i in range {
        let (a, to_a, b, to_b) = at(i);
        // SAFETY: the caller's.
        unsafe {
            *to_a = *a;
            *to_b = *b;
        }
    }
}

/// The kernels of [`Simd`], compiled for one instruction set: each wraps
/// its generic body in a function with that set's `target_feature`, so the
/// body's intrinsics inline into it.
#[cfg(target_arch = "x86_64")]
macro_rules! kernels_for {
    // SAFETY (every `unsafe` block it expands to): each wrapper is an
    // `unsafe fn` with its generic body's contract, which it passes on.
    ($features:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn forward_unit<const O: usize>(plan: &Plan<Self>, x: *const f32, y: *mut f32, wt: &[f32]) {
            unsafe { forward_unit::<Self, O>(plan, x, y, wt) }
        }
        #[target_feature(enable = $features)]
        #[inline(never)]
        unsafe fn wgrad_tile<const O: usize, const TT: usize>(
            plan: &Plan<Self>,
            g: &Geometry,
            x: *const f32,
            gy: *const f32,
            nb: usize,
            span: (usize, usize),
            k0: usize,
            sums: &mut [f32],
        ) {
            unsafe { wgrad_tile::<Self, O, TT>(plan, g, x, gy, nb, span, k0, sums) }
        }
        #[target_feature(enable = $features)]
        unsafe fn wgrad_outer<const OV: usize, const CT: usize>(
            gy: *const f32,
            x: *const f32,
            dw: *mut f32,
            shape: &OuterShape,
        ) {
            unsafe { wgrad_outer::<Self, OV, CT>(gy, x, dw, shape) }
        }
        #[target_feature(enable = $features)]
        unsafe fn wgrad_taps<const CT: usize>(x: *const f32, gy: *const f32, dw: *mut f32, shape: &TapsShape) {
            unsafe { wgrad_taps::<Self, CT>(x, gy, dw, shape) }
        }
        #[target_feature(enable = $features)]
        unsafe fn weight_grad_block<const O: usize, const TT: usize>(
            plan: &Plan<Self>,
            g: &Geometry,
            x: &[f32],
            gy: &[f32],
            b0: usize,
            nb: usize,
            packed: &mut [f32],
            dw: &mut [f32],
        ) {
            unsafe { weight_grad_block::<Self, O, TT>(plan, g, x, gy, b0, nb, packed, dw) }
        }
    };
}

/// The mask of the first `n` of 16 lanes (all of them from 16 on).
#[cfg(target_arch = "x86_64")]
fn pair_mask(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        (1u16 << n) - 1
    }
}

/// AVX-512F: 16 lanes, 32 registers.
#[cfg(target_arch = "x86_64")]
struct Avx512;

// SAFETY (every `unsafe` block in this impl): each method is an `unsafe
// fn` whose caller guarantees the trait's contract: the CPU has AVX-512F,
// and every lane a load or store touches (all of them, or the mask's) lies
// inside memory the caller may read or write. The blocks only call the
// intrinsic that does what the method says.
#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;
    type M = u16;

    fn mask(bits: u32) -> u16 {
        bits as u16
    }
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(m: u16, p: *const f32) -> __m512 {
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn loadu(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m512 {
        unsafe { _mm512_set1_ps(*p) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn store(m: u16, p: *mut f32, v: __m512) {
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn deinterleave(src: *const f32, even: *mut f32, odd: *mut f32, n: usize) {
        let lo = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let hi = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        // 16 pairs a step; the last step's lanes past the n-th pair are
        // masked off, neither read nor written (rows of 8 and 4 pairs,
        // CIFAR's 16- and 8-wide planes, are all such a step). Addresses
        // past those lanes are formed with `wrapping_add`: they may lie
        // outside the buffers, and only masked-off lanes use them.
        for i in (0..n).step_by(16) {
            let left = n - i;
            let (ma, mb, m) = (pair_mask(2 * left), pair_mask(2 * left.saturating_sub(8)), pair_mask(left));
            unsafe {
                let a = _mm512_maskz_loadu_ps(ma, src.wrapping_add(2 * i));
                let b = _mm512_maskz_loadu_ps(mb, src.wrapping_add(2 * i + 16));
                _mm512_mask_storeu_ps(even.wrapping_add(i), m, _mm512_permutex2var_ps(a, lo, b));
                _mm512_mask_storeu_ps(odd.wrapping_add(i), m, _mm512_permutex2var_ps(a, hi, b));
            }
        }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn interleave(even: *const f32, odd: *const f32, dst: *mut f32, n: usize) {
        let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        // As in `deinterleave`: 16 pairs a step, the last one masked.
        for i in (0..n).step_by(16) {
            let left = n - i;
            let (m, ma, mb) = (pair_mask(left), pair_mask(2 * left), pair_mask(2 * left.saturating_sub(8)));
            unsafe {
                let (a, b) =
                    (_mm512_maskz_loadu_ps(m, even.wrapping_add(i)), _mm512_maskz_loadu_ps(m, odd.wrapping_add(i)));
                _mm512_mask_storeu_ps(dst.wrapping_add(2 * i), ma, _mm512_permutex2var_ps(a, lo, b));
                _mm512_mask_storeu_ps(dst.wrapping_add(2 * i + 16), mb, _mm512_permutex2var_ps(a, hi, b));
            }
        }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn gather_planes(src: *const f32, plane: usize, dst: *mut f32, step: usize, n: usize) {
        debug_assert!(plane * 16 <= i32::MAX as usize);
        let idx = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(plane as i32),
        );
        for i in 0..n {
            unsafe { _mm512_storeu_ps(dst.add(i * step), _mm512_i32gather_ps::<4>(idx, src.add(i))) };
        }
    }
    kernels_for!("avx512f");
}

/// AVX2 with FMA: 8 lanes, 16 registers.
#[cfg(target_arch = "x86_64")]
struct Avx2;

// SAFETY: as for `Avx512`'s impl, with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;
    type M = __m256i;

    fn mask(bits: u32) -> __m256i {
        let lanes: [i32; 8] = std::array::from_fn(|l| if bits >> l & 1 == 1 { -1 } else { 0 });
        // SAFETY: eight i32 are the 32 bytes of a __m256i, and every bit
        // pattern is a valid one.
        unsafe { std::mem::transmute::<[i32; 8], __m256i>(lanes) }
    }
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(m: __m256i, p: *const f32) -> __m256 {
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn loadu(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        unsafe { _mm256_broadcast_ss(&*p) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn store(m: __m256i, p: *mut f32, v: __m256) {
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sum(v: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
        }
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gather_planes(src: *const f32, plane: usize, dst: *mut f32, step: usize, n: usize) {
        debug_assert!(plane * 8 <= i32::MAX as usize);
        let idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(plane as i32));
        for i in 0..n {
            unsafe { _mm256_storeu_ps(dst.add(i * step), _mm256_i32gather_ps::<4>(src.add(i), idx)) };
        }
    }
    kernels_for!("avx2,fma");
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::conv::{conv_geometry, Conv2dOptions};

    /// Geometries the direct path takes: 3×3, 1×1, 5×5 and dilated "same"
    /// kernels, odd and tiny images, one image, groups, few input channels,
    /// strided ones (3×3/2, 1×1/2, 7×7/2, 3×3/3, 2×1 strides), and large
    /// batches of small planes.
    fn geometries() -> Vec<Geometry> {
        // (x, w, padding, dilation, groups, stride)
        type Case = ([usize; 4], [usize; 4], [usize; 2], [usize; 2], usize, [usize; 2]);
        let cases: [Case; 25] = [
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
            // Large batches of small planes.
            ([200, 4, 5, 5], [8, 4, 3, 3], [1, 1], [1, 1], 1, [1, 1]),
            ([200, 4, 6, 6], [16, 4, 3, 3], [1, 1], [1, 1], 1, [2, 2]),
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
    fn check<S: Simd, const O: usize, const TT: usize>() {
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
            if g.stride != [1, 1] && g.groups == 1 && g.c_in.is_multiple_of(O) {
                let dx: Vec<f32> = unsafe { input_grad_phases::<S, f32, O>(&g, &gy, &w) };
                for ((a, b), m) in dx.iter().zip(&want_dx).zip(&bound_dx) {
                    assert!((*a as f64 - b).abs() <= 1e-6 * m + 1e-30, "input grad {g:?}: {a} vs {b}");
                }
            }
            // Every weight-gradient kernel that takes this geometry.
            let mut kernels: Vec<(&str, Vec<f32>)> =
                vec![("pixel lanes", unsafe { weight_grad_with::<S, f32, O, TT>(&g, &x, &gy) })];
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
}
