//! The input gradient of a strided convolution: one stride-1 forward
//! convolution of the output gradient per phase of the input, each phase
//! then put in place. The phases run the pixel-vector kernel
//! ([`input_grad_phases`]) or, on AVX2, the kernel with input channels in
//! the lanes ([`input_grad_outer`]).

use super::forward::{outer_offsets, outer_planes, pack_tile, OuterTaps, Units, OUTER_RUN};
use super::plan::{Padded, Plan};
use super::{f32s_mut, Simd};
use crate::conv::Geometry;
use crate::scratch::with_scratch;
use wengert_core::Float;

/// A tap of the kernel that reaches a phase of the input: the phase's
/// pixel `(a, b)` takes the output gradient at `(a + dy, b + dx)` times
/// the weight at kernel position `position` (`ky·kw + kx`).
struct PhaseTap {
    dy: isize,
    dx: isize,
    position: usize,
}

/// Per phase `(ry, rx)` of the input (the pixels `(sy·a + ry, sx·b +
/// rx)`, phase `ry·sx + rx`), the taps that reach it, in kernel order:
/// tap `(ky, kx)` where `sy` divides `ry + ph − ky·dh` (and the same
/// across). A 3×3/2 kernel gives its phases 1, 2, 2 and 4 taps; a 1×1/2
/// kernel's odd phases have none.
fn phase_taps(g: &Geometry) -> Vec<Vec<PhaseTap>> {
    let [sy, sx] = g.stride;
    (0..sy * sx)
        .map(|phase| {
            let (ry, rx) = (phase / sx, phase % sx);
            let mut taps = Vec::new();
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let at_y = (ry + g.pad[0]) as isize - (ky * g.dil[0]) as isize;
                    let at_x = (rx + g.pad[1]) as isize - (kx * g.dil[1]) as isize;
                    if at_y.rem_euclid(sy as isize) == 0 && at_x.rem_euclid(sx as isize) == 0 {
                        taps.push(PhaseTap {
                            dy: at_y / sy as isize,
                            dx: at_x / sx as isize,
                            position: ky * g.kw + kx,
                        });
                    }
                }
            }
            taps
        })
        .collect()
}

/// Every phase's weights for every tile of `O` of dx's channels, packed as
/// the forward kernels read them: the tile's "output" channels are dx's
/// channels, its "input" channels gy's.
fn pack_phases<const O: usize>(g: &Geometry, w: &[f32], phases: &[Vec<PhaseTap>]) -> Vec<Vec<f32>> {
    let (tiles, kk) = (g.c_in / O, g.kh * g.kw);
    phases
        .iter()
        .map(|taps| {
            let ne = g.c_out * taps.len();
            let mut wp = vec![0f32; tiles * ne * O];
            // A phase no tap reaches packs nothing.
            for (tile, wt) in wp.chunks_exact_mut((ne * O).max(1)).enumerate() {
                pack_tile::<O>(wt, g.c_out, taps.len(), |c, o, t| {
                    w[(o * g.c_in + tile * O + c) * kk + taps[t].position]
                });
            }
            wp
        })
        .collect()
}

/// Puts `O` channels of dx in place, `dx` their `O` planes of `H × W`, from
/// `all`, their phases `[phase][channel][P]`.
///
/// # Safety
/// The CPU supports `S`'s instructions.
unsafe fn place_phases<S: Simd, const O: usize>(g: &Geometry, all: &[f32], dx: &mut [f32]) {
    let ([sy, sx], p) = (g.stride, g.oh * g.ow);
    assert!(all.len() >= sy * sx * O * p && g.h == g.oh * sy && g.w == g.ow * sx);
    for (i, dst) in dx.chunks_exact_mut(g.h * g.w).take(O).enumerate() {
        for (r, row) in dst.chunks_exact_mut(g.w).enumerate() {
            let (a, ry) = (r / sy, r % sy);
            let phase_row = |rx: usize| &all[((ry * sx + rx) * O + i) * p + a * g.ow..][..g.ow];
            if sx == 2 {
                // SAFETY: the two phase rows hold OW floats each, `row`
                // the W = 2·OW of one row of dx; the CPU supports S (the
                // caller's promise).
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
}

/// # Safety
/// The CPU supports `S`'s instructions; `g` has one group, `H = OH·sy`,
/// `W = OW·sx`, and `O` divides `c_in`.
pub(super) unsafe fn input_grad_phases<S: Simd, T: Float, const O: usize>(
    g: &Geometry,
    gy: &[f32],
    w: &[f32],
) -> Vec<T> {
    let ([sy, sx], p, kk) = (g.stride, g.oh * g.ow, g.kh * g.kw);
    assert!(gy.len() >= g.n * g.c_out * p && w.len() >= g.c_out * g.c_in * kk);
    let phases = phase_taps(g);
    // Per phase, its plan over gy's planes.
    let plans: Vec<Plan<S>> = phases
        .iter()
        .map(|taps| {
            let shifts: Vec<(isize, isize, isize)> = taps.iter().map(|t| (0, t.dy, t.dx)).collect();
            Plan::from_taps(g.oh, g.ow, g.c_out, p as isize, &shifts)
        })
        .collect();
    let packed = pack_phases::<O>(g, w, &phases);
    let tiles = g.c_in / O;
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
            for (out, ((plan, taps), wp)) in all.chunks_exact_mut(O * p).zip(plans.iter().zip(&phases).zip(&packed)) {
                if taps.is_empty() {
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
            // SAFETY: the CPU supports S (the caller's promise).
            unsafe { place_phases::<S, O>(g, all, dxb) };
        });
    })
}

/// The input gradient of a strided convolution with `O = 2·lanes` of dx's
/// channels in the vector lanes: each phase by [`outer_planes`], the
/// forward kernel AVX2 runs, whose tiles load 8 values per 12
/// multiply-adds where the pixel-vector tiles of [`input_grad_phases`]
/// load 9 per 8.
///
/// Each unit ([`Units`]) copies its image's output gradient once into
/// zero-bordered planes wide enough for every phase's taps, so that every
/// phase reads inside them and no load needs a mask. The sums run in the
/// pixel-vector kernel's order, so the two give the same floats.
///
/// # Safety
/// The CPU supports `S`'s instructions; `g` has one group, `H = OH·sy`,
/// `W = OW·sx`, `O = 2·S::LANES` and `O` divides `c_in`.
pub(super) unsafe fn input_grad_outer<S: Simd, T: Float, const O: usize>(
    g: &Geometry,
    gy: &[f32],
    w: &[f32],
) -> Vec<T> {
    let ([sy, sx], p, kk) = (g.stride, g.oh * g.ow, g.kh * g.kw);
    assert!(g.groups == 1 && O == 2 * S::LANES && g.c_in.is_multiple_of(O));
    assert!(g.h == g.oh * sy && g.w == g.ow * sx);
    assert!(gy.len() >= g.n * g.c_out * p && w.len() >= g.c_out * g.c_in * kk);
    let phases = phase_taps(g);
    // The bordered planes: gy's pixel (a, b) at (a + top, b + left), with
    // room for every tap's shift on every side.
    let shifts = || phases.iter().flatten();
    let border = |v: Option<isize>| v.unwrap_or(0).max(0) as usize;
    let (top, bottom) = (border(shifts().map(|t| -t.dy).max()), border(shifts().map(|t| t.dy).max()));
    let (left, right) = (border(shifts().map(|t| -t.dx).max()), border(shifts().map(|t| t.dx).max()));
    let bordered = Padded { rows: g.oh + top + bottom, cols: g.ow + left + right };
    let (cols, plane) = (bordered.cols, bordered.plane());
    // Per phase, each tap's offset in a bordered plane from the pixel it
    // serves: (a + dy + top, b + dx + left) lies inside for a < OH, b < OW.
    let offsets_of_taps: Vec<Vec<usize>> = phases
        .iter()
        .map(|taps| {
            taps.iter().map(|t| (t.dy + top as isize) as usize * cols + (t.dx + left as isize) as usize).collect()
        })
        .collect();
    let offsets = outer_offsets(g.oh, g.ow, [1, 1], cols);
    let packed = pack_phases::<O>(g, w, &phases);
    let tiles = g.c_in / O;
    let (hw, img) = (g.h * g.w, g.c_out * p);
    let units = Units::new(g.n, tiles);
    wengert_core::buffer::build_par(g.n * tiles * O * hw, units.tiles * O * hw, units.per_task, |u, dxb: &mut [T]| {
        let dxb = f32s_mut(dxb).expect("T is f32");
        let (n, t0) = units.first(u);
        let gyn = &gy[n * img..][..img];
        with_scratch(g.c_out * plane + OUTER_RUN * O + sy * sx * O * p, |buf: &mut [f32]| {
            let (xt, rest) = buf.split_at_mut(g.c_out * plane);
            // Every phase of a tile's O channels, [phase][channel][P].
            let (sums, all) = rest.split_at_mut(OUTER_RUN * O);
            xt.fill(0.0);
            bordered.copy_at(g.oh, g.ow, [top, left], gyn, xt);
            for (tile, dxt) in (t0..).zip(dxb.chunks_exact_mut(O * hw)) {
                let phases = phases.iter().zip(&offsets_of_taps).zip(&packed);
                for (out, ((taps, at), wp)) in all.chunks_exact_mut(O * p).zip(phases) {
                    if taps.is_empty() {
                        out.fill(0.0);
                        continue;
                    }
                    let ne = g.c_out * taps.len();
                    let shape = OuterTaps { taps: at, plane, cg: g.c_out };
                    // SAFETY: every pixel's offset plus every tap's lies
                    // inside a bordered plane (above), xt holds c_out of
                    // them, and the slice is this tile's packed weights;
                    // the CPU supports S (the caller's promise).
                    unsafe { outer_planes::<S, O>(xt, &offsets, &wp[tile * ne * O..][..ne * O], &shape, sums, out) };
                }
                // SAFETY: the CPU supports S (the caller's promise).
                unsafe { place_phases::<S, O>(g, all, dxt) };
            }
        });
    })
}
