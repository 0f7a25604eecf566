//! The forward kernel: `O` output channels × up to three pixel vectors in
//! registers, blocks of input channels through every tap, and each output
//! row's moments taken while its tile is in cache. The input gradient of a
//! strided convolution runs this kernel once per phase.

use super::plan::{with_input, Padded, Plan};
use super::{f32s_mut, fits_one_pass, Simd, CHANNEL_BLOCK, MAX_WEIGHTS};
use crate::conv::Geometry;
use crate::scratch::with_scratch;
use wengert_core::Float;

/// Where [`forward_with`] puts each output row's moments: `len` floats at
/// `at`, row `r`'s mean at `2r` and sum of squared deviations at `2r + 1`.
/// Every unit writes the rows of its own image and channels, so no two
/// threads touch the same float.
#[derive(Clone, Copy)]
pub(super) struct RowsOut {
    pub(super) at: *mut f64,
    pub(super) len: usize,
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

/// # Safety
/// The CPU supports `S`'s instructions.
pub(super) unsafe fn forward_with<S: Simd, T: Float, const O: usize>(
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
pub(super) fn pack_tile<const O: usize>(
    wt: &mut [f32],
    cg: usize,
    nt: usize,
    weight: impl Fn(usize, usize, usize) -> f32,
) {
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

/// One tile of output channels of one image: every pixel vector, in tiles
/// of up to three vectors, for each chunk of input channels in turn
/// ([`chunk_channels`]).
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
pub(super) unsafe fn forward_unit<S: Simd, const O: usize>(plan: &Plan<S>, x: *const f32, y: *mut f32, wt: &[f32]) {
    debug_assert!(wt.len() == plan.ne * O);
    let nt = plan.taps.len();
    let (cg, chunk) = (plan.ne / nt, chunk_channels(nt));
    for c_lo in (0..cg).step_by(chunk) {
        let channels = c_lo..(c_lo + chunk).min(cg);
        let mut j = 0;
        while j < plan.nv {
            // Threes, but 2 + 2 rather than 3 + 1 at the end; ones where
            // there are 16 registers: 8 × 3 accumulators would not fit, and
            // 4 × 3, with three masks and three inputs, spilled.
            let v = match plan.nv - j {
                _ if S::REGISTERS < 32 => 1,
                1 => 1,
                2 | 4 => 2,
                _ => 3,
            };
            // SAFETY: as this function's; j + v ≤ nv, `channels` lie
            // within the group's `cg`, and the chunks before this one
            // stored the tile.
            unsafe {
                match (v, c_lo > 0) {
                    (3, false) => forward_tile::<S, O, 3, false>(plan, x, y, j, wt, channels.clone()),
                    (2, false) => forward_tile::<S, O, 2, false>(plan, x, y, j, wt, channels.clone()),
                    (_, false) => forward_tile::<S, O, 1, false>(plan, x, y, j, wt, channels.clone()),
                    (3, true) => forward_tile::<S, O, 3, true>(plan, x, y, j, wt, channels.clone()),
                    (2, true) => forward_tile::<S, O, 2, true>(plan, x, y, j, wt, channels.clone()),
                    (_, true) => forward_tile::<S, O, 1, true>(plan, x, y, j, wt, channels.clone()),
                }
            }
            j += v;
        }
    }
}

/// Input channels one pass of the forward kernel takes, for `nt` taps:
/// as many whole blocks of [`CHANNEL_BLOCK`] as keep a tile's packed
/// weights within [`MAX_WEIGHTS`] per output channel (64 under a 3×3
/// kernel), so that they stay in the first-level cache while every pixel
/// vector of the plane reads them. Wider layers run one pass per chunk,
/// each adding to the output the pass before it stored; a layer whose
/// channels fit one chunk runs one pass and sums in the same order as
/// without chunks.
fn chunk_channels(nt: usize) -> usize {
    (MAX_WEIGHTS / nt.max(1) / CHANNEL_BLOCK * CHANNEL_BLOCK).max(CHANNEL_BLOCK)
}

/// Output channels `0..O` × pixel vectors `j0..j0 + V`, summed over the
/// input channels `channels` and every tap in registers, then stored once:
/// with `ADD`, added to what the output holds (a later chunk of channels).
///
/// Blocks of [`CHANNEL_BLOCK`] input channels, then taps, then the
/// block's channels: within a tap every load takes the same masks and the
/// input and weight pointers step by constants, so the inner loop is the
/// loads and the multiply-adds alone.
///
/// # Safety
/// As [`forward_unit`], `j0 + V ≤ nv`, `channels` within `0..cg` and
/// starting at a multiple of [`CHANNEL_BLOCK`], and with `ADD` the
/// output's lanes written by the chunks before.
#[inline(always)]
unsafe fn forward_tile<S: Simd, const O: usize, const V: usize, const ADD: bool>(
    plan: &Plan<S>,
    x: *const f32,
    y: *mut f32,
    j0: usize,
    wt: &[f32],
    channels: std::ops::Range<usize>,
) {
    let (p, ns, lanes, nt) = (plan.p, plan.ns, S::LANES, plan.taps.len());
    debug_assert!(channels.start.is_multiple_of(CHANNEL_BLOCK) && channels.end <= plan.ne / nt);
    // SAFETY (for every load and store below): a load of channel `c` at
    // tap offset `at` reads `x[c·channel + at + j·lanes + l]` for the lanes
    // `l` of `masks[j][si]`, pixels whose input lies inside that channel's
    // plane (Plan::new), so inside the image's input; masked lanes are
    // neither read nor faulted on, which is why the address is formed with
    // `wrapping_offset` and may point outside. A store writes the lanes of
    // `inside[j]`, pixels `< P` of plane `o < O`, inside `y`. Weight reads
    // index `wt` below `ne·O` (`taps · cg · O`): the blocks of
    // `channels` start `start · taps · O` in (`pack_tile`). With `ADD`, a tile
    // first loads the lanes of `inside[j]` the earlier ones stored. The
    // CPU supports `S`.
    unsafe {
        let mut acc = [[S::zero(); V]; O];
        if ADD {
            for (o, acc) in acc.iter_mut().enumerate() {
                for (v, a) in acc.iter_mut().enumerate() {
                    let j = j0 + v;
                    *a = S::load(plan.inside[j], y.add(o * p + j * lanes));
                }
            }
        }
        // Asks for the input lines the next tile reads first (one per
        // vector of pixels past the farthest tap of this one, in every
        // channel): in a training step a layer's input comes from memory,
        // not cache, and the tile reads one stream per channel plane. A
        // prefetch of an address past the planes reads and faults nothing.
        let ahead = plan.reach + ((j0 + V) * lanes) as isize;
        for c in channels.clone() {
            for v in 0..V {
                S::prefetch(x.wrapping_offset(c as isize * plan.channel + ahead + (v * lanes) as isize));
            }
        }
        let mut wv = wt.as_ptr().add(channels.start * nt * O);
        for c0 in channels.clone().step_by(CHANNEL_BLOCK) {
            let cn = CHANNEL_BLOCK.min(channels.end - c0);
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

/// Output pixels one [`forward_outer_tile`] call holds: with two vectors of
/// output channels, 12 accumulators, the two weight vectors and a
/// broadcast input fill AVX2's 16 registers.
const OUTER_PIXELS: usize = 6;

/// Output pixels [`forward_outer_with`] computes before it transposes
/// their sums into the output planes: whole tiles and whole blocks of
/// eight, few enough that the sums stay in the first-level cache.
pub(super) const OUTER_RUN: usize = 8 * OUTER_PIXELS;

/// Whether the forward convolution takes [`forward_outer_with`]:
/// [`outer_fits`], and either 16 registers (AVX2, where the pixel-vector
/// tiles hold one vector and load 9 values per 8 multiply-adds) or a
/// strided convolution whose weights fit one pass ([`fits_one_pass`]).
/// With 32 registers the pixel-vector tiles hold three vectors and load
/// 11 values per 24, but a strided input reaches them split into phases,
/// one more copy of it per call, where the padded copy this kernel makes
/// of each image takes the stride as it is (`docs/architecture.md` gives
/// the measurement).
pub(super) fn outer_applies<S: Simd>(g: &Geometry) -> bool {
    outer_fits::<S>(g) && (S::REGISTERS < 32 || (g.stride != [1, 1] && fits_one_pass(g)))
}

/// Whether [`forward_outer_with`] can compute this convolution: one
/// group, and output channels a multiple of two vectors (any stride: the
/// padded planes hold the input unsplit).
pub(super) fn outer_fits<S: Simd>(g: &Geometry) -> bool {
    g.groups == 1 && g.c_out.is_multiple_of(2 * S::LANES)
}

/// The forward convolution with output channels in the vector lanes: each
/// step broadcasts one input value and multiplies it by two vectors of
/// output channels' weights, `O = 2·lanes` channels × [`OUTER_PIXELS`]
/// consecutive output pixels in registers: 8 loads per 12 multiply-adds
/// and no masks, where [`forward_with`]'s tiles on AVX2 load 9 per 8.
///
/// Each unit ([`Units`]: an image's tiles of `O` output channels, or one
/// tile where the images are fewer than twice the threads) copies the
/// image's input into zero-padded planes ([`Padded`]), so that every tap
/// of every pixel reads inside them. The sums run in [`forward_tile`]'s order (blocks of
/// [`CHANNEL_BLOCK`] input channels, then taps, then the block's
/// channels), so the two kernels give the same floats. The sums of each
/// run of pixels, `[pixel][channel]`, are transposed into the output
/// planes ([`OUTER_RUN`]).
///
/// # Safety
/// The CPU supports `S`'s instructions; [`outer_fits`] holds and `O =
/// 2·S::LANES`.
pub(super) unsafe fn forward_outer_with<S: Simd, T: Float, const O: usize>(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    rows: Option<RowsOut>,
) -> Vec<T> {
    assert!(outer_fits::<S>(g) && O == 2 * S::LANES);
    let (cg, p, hw) = (g.c_in, g.oh * g.ow, g.h * g.w);
    let padded = Padded::new(g);
    let (cols, plane) = (padded.cols, padded.plane());
    let taps: Vec<usize> = (0..g.kh * g.kw).map(|t| (t / g.kw) * g.dil[0] * cols + (t % g.kw) * g.dil[1]).collect();
    let (nt, ne) = (taps.len(), cg * taps.len());
    let shape = OuterTaps { taps: &taps, plane, cg };
    assert!(x.len() >= g.n * cg * hw && w.len() >= g.c_out * ne);
    let offsets = outer_offsets(g.oh, g.ow, g.stride, cols);
    let tiles = g.c_out / O;
    let mut wp = vec![0f32; tiles * ne * O];
    for (tile, wt) in wp.chunks_exact_mut(ne * O).enumerate() {
        pack_tile::<O>(wt, cg, nt, |o, c, t| w[((tile * O + o) * cg + c) * nt + t]);
    }
    let units = Units::new(g.n, tiles);
    wengert_core::buffer::build_par(g.n * tiles * O * p, units.tiles * O * p, units.per_task, |u, yb: &mut [T]| {
        let yb = f32s_mut(yb).expect("T is f32");
        let (n, t0) = units.first(u);
        with_scratch(cg * plane + OUTER_RUN * O, |buf: &mut [f32]| {
            let (xt, sums) = buf.split_at_mut(cg * plane);
            xt.fill(0.0);
            padded.copy_inside(g, &x[n * cg * hw..][..cg * hw], xt);
            for (tile, yt) in (t0..).zip(yb.chunks_exact_mut(O * p)) {
                // SAFETY: every offset plus every tap lies inside a padded
                // plane (Padded), xt holds cg of them, wt is the tile's
                // packed weights; the CPU supports S (the caller's promise).
                unsafe { outer_planes::<S, O>(xt, &offsets, &wp[tile * ne * O..][..ne * O], &shape, sums, yt) };
            }
        });
        if let Some(rows) = rows {
            for (o, plane) in yb.chunks_exact(p).enumerate() {
                // SAFETY: as in `forward_with`: row (n, t0·O + o) is this
                // unit's.
                unsafe { rows.put(n * g.c_out + t0 * O + o, crate::norm::row_moments(plane)) };
            }
        }
    })
}

/// How the kernels with channels in the lanes share a convolution's
/// images × tiles of channels among the threads: a unit is an image's
/// tiles, or one tile where the images are too few to keep every thread
/// busy, and each unit pads its image once.
pub(super) struct Units {
    /// Tiles of one image per unit.
    pub(super) tiles: usize,
    /// Units per task of the thread pool.
    pub(super) per_task: usize,
    /// Tiles of one image in all.
    per_image: usize,
}

impl Units {
    pub(super) fn new(images: usize, per_image: usize) -> Self {
        let threads = rayon::current_num_threads();
        let tiles = if images >= 2 * threads { per_image } else { 1 };
        Units { tiles, per_task: (images * per_image / tiles).div_ceil(threads), per_image }
    }

    /// Unit `u`'s image and first tile.
    pub(super) fn first(&self, u: usize) -> (usize, usize) {
        (u * self.tiles / self.per_image, u * self.tiles % self.per_image)
    }
}

/// Each of `oh × ow` output pixels' offset in a padded plane of `cols`
/// columns, at `stride`, for [`outer_planes`]: whole tiles of
/// [`OUTER_PIXELS`], the last tile's pixels past the plane repeating its
/// last one (computed, not stored).
pub(super) fn outer_offsets(oh: usize, ow: usize, [sy, sx]: [usize; 2], cols: usize) -> Vec<usize> {
    let p = oh * ow;
    (0..p.next_multiple_of(OUTER_PIXELS)).map(|q| q.min(p - 1)).map(|q| (q / ow) * sy * cols + (q % ow) * sx).collect()
}

/// One tile's `O` output planes, `yt` (`[channel][P]`), from zero-padded
/// input planes `xt` by [`forward_outer_tile`]: output pixel `q`'s input
/// for tap `t` lies at `c·plane + offsets[q] + taps[t]`; `offsets` runs
/// past `P` to whole tiles of [`OUTER_PIXELS`] (those pixels computed, not
/// stored), `wt` holds the tile's weights packed by [`pack_tile`], and
/// `sums` is scratch for [`OUTER_RUN`] pixels of sums, transposed into
/// `yt` run by run.
///
/// # Safety
/// The CPU supports `S`'s instructions; `O = 2·S::LANES`; every
/// `offsets[q] + taps[t]` lies inside a plane of `shape.plane` floats,
/// of which `xt` holds `shape.cg`.
pub(super) unsafe fn outer_planes<S: Simd, const O: usize>(
    xt: &[f32],
    offsets: &[usize],
    wt: &[f32],
    shape: &OuterTaps,
    sums: &mut [f32],
    yt: &mut [f32],
) {
    let p = yt.len() / O;
    assert!(O == 2 * S::LANES && wt.len() == shape.cg * shape.taps.len() * O && sums.len() >= OUTER_RUN * O);
    assert!(xt.len() >= shape.cg * shape.plane && offsets.len() >= p.next_multiple_of(OUTER_PIXELS));
    for (k, run) in offsets[..p.next_multiple_of(OUTER_PIXELS)].chunks(OUTER_RUN).enumerate() {
        let q0 = k * OUTER_RUN;
        for (j, at) in run.chunks_exact(OUTER_PIXELS).enumerate() {
            // SAFETY: the tile reads xt[c·plane + at[r] + taps[t]] for c <
            // cg, inside each plane, and wt's cg·taps·O floats, and writes
            // the OUTER_PIXELS·O floats of sums from j·OUTER_PIXELS·O, below
            // OUTER_RUN·O; the CPU supports S (the caller's promises).
            unsafe {
                let at = at.try_into().expect("a tile's pixels");
                S::forward_outer::<2, OUTER_PIXELS>(
                    xt.as_ptr(),
                    at,
                    wt,
                    sums.as_mut_ptr().add(j * OUTER_PIXELS * O),
                    shape,
                )
            };
        }
        let len = run.len().min(p - q0);
        for k in 0..O / S::LANES {
            let lanes = k * S::LANES;
            // SAFETY: reads sums[q·O + k·lanes + l] for q < len ≤
            // OUTER_RUN, l < lanes, and writes yt[(k·lanes + l)·P + q0 +
            // q], inside its O planes of P (q0 + len ≤ P).
            unsafe { S::scatter_planes(sums.as_ptr().add(lanes), O, yt.as_mut_ptr().add(lanes * p + q0), p, len) };
        }
    }
}

/// What every [`forward_outer_tile`] call of one convolution shares: each
/// tap's offset in a padded plane, the plane's floats, and the input
/// channels.
#[derive(Clone, Copy)]
pub(super) struct OuterTaps<'a> {
    pub(super) taps: &'a [usize],
    pub(super) plane: usize,
    pub(super) cg: usize,
}

/// `R` output pixels × `OV` vectors of output channels: `sums[r·OV·lanes +
/// o] = Σ_c Σ_t x[c·plane + at[r] + taps[t]]·w(o, c, t)`, with the weights
/// packed by [`pack_tile`] (`O = OV·lanes`), summed in [`forward_tile`]'s
/// order.
///
/// # Safety
/// The CPU supports `S`'s instructions; `x` holds `cg` padded planes of
/// `plane` floats, within each of which `at[r] + taps[t]` lies; `wt`
/// holds `cg·taps.len()·OV·lanes` floats and `sums` has room for
/// `R·OV·lanes`.
#[inline(always)]
pub(super) unsafe fn forward_outer_tile<S: Simd, const OV: usize, const R: usize>(
    x: *const f32,
    at: &[usize; R],
    wt: &[f32],
    sums: *mut f32,
    shape: &OuterTaps,
) {
    let (lanes, OuterTaps { taps, plane, cg }) = (S::LANES, *shape);
    debug_assert!(wt.len() == cg * taps.len() * OV * lanes);
    // SAFETY (every load and store below): input reads are at `c·plane +
    // at[r] + taps[t]` for c < cg, weight reads below `wt.len()` (the
    // blocks of channels step through it in order), sums writes below
    // R·OV·lanes: the caller's promises. The CPU supports `S`.
    unsafe {
        let mut acc = [[S::zero(); OV]; R];
        let mut wv = wt.as_ptr();
        for c0 in (0..cg).step_by(CHANNEL_BLOCK) {
            let cn = CHANNEL_BLOCK.min(cg - c0);
            for &t in taps {
                let mut xp = x.add(c0 * plane + t);
                for _ in 0..cn {
                    let wk: [S::V; OV] = std::array::from_fn(|k| S::loadu(wv.add(k * lanes)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let b = S::splat(xp.add(at[r]));
                        for k in 0..OV {
                            acc[k] = S::fma(b, wk[k], acc[k]);
                        }
                    }
                    xp = xp.add(plane);
                    wv = wv.add(OV * lanes);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (k, &a) in acc.iter().enumerate() {
                S::storeu(sums.add((r * OV + k) * lanes), a);
            }
        }
    }
}
