//! What every kernel of one geometry shares: the input as the kernels
//! read it (split into phases when strided), and the [`Plan`] of where
//! each weight's input lies and which lanes of each pixel vector are valid.

use super::Simd;
use crate::conv::Geometry;
use crate::scratch::with_scratch;
use rayon::prelude::*;

/// Runs `f` with `extra` floats of this thread's scratch and the input as
/// the kernels read it: `x` itself at stride 1, otherwise split into phases
/// ([`phase_split`]) in the same scratch. Scratch, not a fresh allocation:
/// buffers this large are faulted in anew on every call.
pub(super) fn with_input<S: Simd, R>(
    g: &Geometry,
    x: &[f32],
    extra: usize,
    f: impl FnOnce(&mut [f32], &[f32]) -> R,
) -> R {
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
pub(super) fn phase_split<S: Simd>(g: &Geometry, x: &[f32], out: &mut [f32]) {
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

/// Input planes copied with zero padding around each, so that every tap of
/// every output pixel reads inside its plane and the kernels that
/// broadcast input values need no masks: input pixel `(iy, ix)` lies at
/// `(iy + ph, ix + pw)` of a `rows × cols` plane, and output pixel `(oy,
/// ox)`'s tap `(ky, kx)` reads `(oy·sy + ky·dh, ox·sx + kx·dw)`.
#[derive(Clone, Copy)]
pub(super) struct Padded {
    pub(super) rows: usize,
    pub(super) cols: usize,
}

impl Padded {
    pub(super) fn new(g: &Geometry) -> Self {
        let ([sy, sx], [dh, dw]) = (g.stride, g.dil);
        Padded {
            rows: g.oh.saturating_sub(1) * sy + (g.kh - 1) * dh + 1,
            cols: g.ow.saturating_sub(1) * sx + (g.kw - 1) * dw + 1,
        }
    }

    /// Floats per padded plane.
    pub(super) fn plane(self) -> usize {
        self.rows * self.cols
    }

    /// Copies the pixels of `src`'s `H × W` planes that some tap reads
    /// (all of them on the direct path's geometries, whose padding is
    /// under half the kernel's span) into `dst`'s padded planes, leaving
    /// the padding as it is.
    pub(super) fn copy_inside(self, g: &Geometry, src: &[f32], dst: &mut [f32]) {
        self.copy_at(g.h, g.w, g.pad, src, dst);
    }

    /// Copies `src`'s `h × w` planes into `dst`'s padded planes with pixel
    /// `(y, x)` at `(y + top, x + left)`, leaving the rest as it is; the
    /// pixels that fall past the padded plane's rows or columns are not
    /// copied.
    pub(super) fn copy_at(self, h: usize, w: usize, [top, left]: [usize; 2], src: &[f32], dst: &mut [f32]) {
        let width = w.min(self.cols.saturating_sub(left));
        let inside = if width > 0 { self.rows.saturating_sub(top) } else { 0 };
        for (src, dst) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(self.plane())) {
            for (y, row) in src.chunks_exact(w).enumerate().take(inside) {
                dst[(y + top) * self.cols + left..][..width].copy_from_slice(&row[..width]);
            }
        }
    }
}

/// What every tile of one geometry shares: where each weight's input lies
/// and the lane masks of every pixel vector.
///
/// Entry `e` is weight `(c, ky, kx)` of an output channel, in the weights'
/// order: its input for output pixel `q` is `x_group[entries[e] + q]`
/// (`x` split into phases when strided), valid in the lanes of
/// `masks[j][shift[e]]`. Weights that read at the same offset from their
/// plane share a mask: a stride-1 3×3 kernel has 9, a stride-2 one 4.
pub(super) struct Plan<S: Simd> {
    /// Output pixels per plane, `OH·OW` (also the size of a phase).
    pub(super) p: usize,
    /// Pixel vectors per plane, `⌈P / lanes⌉`.
    pub(super) nv: usize,
    /// Weights per output channel, `cg·kh·kw`.
    pub(super) ne: usize,
    /// Offset of each weight's input from the group's first plane.
    pub(super) entries: Vec<isize>,
    /// Which mask each weight's loads take.
    pub(super) shift: Vec<usize>,
    /// Per tap `(ky, kx)`: its input's offset from its channel's first
    /// plane, and its mask; the forward kernel's order.
    pub(super) taps: Vec<(isize, usize)>,
    /// The largest of the taps' offsets: a tile of pixel vectors reads its
    /// channels' input up to this far past its first pixel.
    pub(super) reach: isize,
    /// Floats from one input channel's planes (or phases) to the next.
    pub(super) channel: isize,
    /// Distinct masks per vector.
    pub(super) ns: usize,
    /// `[nv][ns]`: the lanes of vector `j` whose input lies in the image.
    /// Every other lane's address may lie outside the plane.
    pub(super) masks: Vec<S::M>,
    /// `[nv]`: the lanes of vector `j` that are pixels of the plane.
    pub(super) inside: Vec<S::M>,
}

impl<S: Simd> Plan<S> {
    pub(super) fn new(g: &Geometry) -> Self {
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
    pub(super) fn from_taps(
        oh: usize,
        ow: usize,
        cg: usize,
        channel: isize,
        tap_shifts: &[(isize, isize, isize)],
    ) -> Self {
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
        let reach = taps.iter().map(|t| t.0).max().unwrap_or(0);
        Plan { p, nv, ne: cg * taps.len(), entries, shift, taps, reach, channel, ns: shifts.len(), masks, inside }
    }
}
