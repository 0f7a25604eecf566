//! The input gradient of a strided convolution: one stride-1 forward
//! convolution of the output gradient per phase of the input, each phase
//! then put in place.

use super::forward::pack_tile;
use super::plan::Plan;
use super::{f32s_mut, Simd};
use crate::conv::Geometry;
use crate::scratch::with_scratch;
use wengert_core::Float;

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
