//! Direct convolution for `f32`: no unfolding, register-blocked micro-kernels.
//!
//! Applies to the convolutions CIFAR ResNets spend their time in ([`applies`]):
//! input sides `stride` times the output's (every "same" stride-1 kernel:
//! 3×3 with padding 1, 1×1, any dilation; and 3×3/2, 1×1/2, 7×7/2 on even
//! sizes), output channels per group a multiple of 8, and a size whose
//! tiles stay in cache. Everything else takes the im2col path in
//! `kernel.rs`, and so, on AVX-512, does the forward product of a 1×1
//! layer that keeps or widens its channels ([`product_pays`]).
//!
//! The activations stay NCHW. At stride 1 with `OW = W`, output pixel `q`
//! (flattened `oy·W + ox`) reads input pixel `q + (ky·dh − ph)·W + (kx·dw −
//! pw)` for tap `(ky, kx)`: a constant offset per tap. So a vector of
//! consecutive output pixels reads a vector of consecutive input pixels, one
//! unaligned load per tap, with a lane mask that zeroes the lanes whose
//! input falls in the padding (or wraps to the next row). A strided
//! convolution reads its input split into phases ([`plan::phase_split`]) the same
//! way. The offsets and masks depend only on the geometry and are computed
//! once per call ([`Plan`]).
//!
//! The forward micro-kernel holds `O` output channels × `V` pixel vectors
//! in registers (8 × 3 on AVX-512: 24 accumulators; 8 × 1 on AVX2, whose
//! masks take registers too), and for each weight position loads `V`
//! input vectors and broadcasts `O` weights: 24 fused multiply-adds per 11
//! loads on AVX-512. On AVX2, where that is 9 loads per 8, the forward
//! convolution puts two vectors of output channels in the lanes instead
//! ([`forward_outer_with`]: the input zero-padded, one broadcast input per
//! pixel, 8 loads per 12), and so does a strided one on AVX-512, which
//! it reads without splitting the input into phases. The pixel-vector
//! kernel writes each output once, or, for a
//! layer with more weights per output channel than stay in the first-level
//! cache ([`MAX_WEIGHTS`]: more than 64 input channels under a 3×3
//! kernel), once per chunk of input channels, each chunk adding to what
//! the last stored. The input
//! gradient of a stride-1 convolution is a forward convolution with flipped
//! weights and takes the same kernel (no col2im); a strided one's is one
//! such convolution per phase of the input ([`input_grad()`]). The weight
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
//! lanes, 32 registers) and AVX2 + FMA (8 lanes, 16 registers, smaller
//! tiles: [`Simd::REGISTERS`]). [`crate::isa::active`] picks one at run
//! time.
//!
//! The files: `plan.rs` (the input as the kernels read it, and what every
//! tile of a geometry shares), `forward.rs`, `input_grad.rs` and
//! `weight_grad.rs` (the kernels, generic over [`Simd`]), and `avx512.rs`
//! and `avx2.rs` (the instructions). This file decides which kernel runs.

mod forward;
mod input_grad;
mod peak;
mod plan;
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;
mod weight_grad;

use super::Geometry;
use crate::isa::{self, Isa};
use forward::{forward_outer_with, forward_with, OuterTaps, RowsOut};
use input_grad::{input_grad_outer, input_grad_phases};
use plan::Plan;
use weight_grad::{
    outer_applies, taps_applies, weight_grad_outer, weight_grad_taps, weight_grad_with, OuterShape, TapsShape,
};
use wengert_core::{DType, Float};
#[cfg(target_arch = "x86_64")]
use {avx2::Avx2, avx512::Avx512};

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

/// The most weights per output channel (`cg·kh·kw`) one pass of a kernel
/// holds. A tile's packed weights (8 channels' worth) are read once per
/// pixel tile and must stay in the first-level cache: at 576 (64 channels
/// of 3×3, 18 KiB a tile) they do. The forward kernel (and so the input
/// gradient) takes wider layers in chunks of input channels this size; the
/// weight-gradient kernels do not block over input channels and take
/// layers up to it. A 1×1 layer wider than it runs faster as a product
/// (`docs/architecture.md`, "How a convolution runs"), and so do some
/// others ([`chunks_pay`]).
const MAX_WEIGHTS: usize = 576;

/// Whether the direct path computes this convolution (for `f32`).
fn applies(g: &Geometry) -> bool {
    (fits_one_pass(g) || chunks_pay(g))
        && g.cg() * g.h * g.w * std::mem::size_of::<f32>() <= MAX_IMAGE_BYTES
        && g.h == g.oh * g.stride[0]
        && g.w == g.ow * g.stride[1]
        && g.og().is_multiple_of(CHANNEL_TILE)
        && isa::active() > Isa::Generic
}

/// Whether a layer too wide for one pass ([`fits_one_pass`]) takes the
/// direct path in chunks of input channels: a kernel larger than 1×1, on
/// AVX-512, with output planes that fill their vectors of 16 pixels nine
/// parts in ten. Elsewhere unfolding and a product ran faster: on planes
/// that leave more lanes empty (7×7: 49 pixels in four vectors), and on
/// AVX2, whose tiles of one pixel vector load more per multiply-add
/// (`docs/architecture.md`, "How a convolution runs").
fn chunks_pay(g: &Geometry) -> bool {
    let p = g.oh * g.ow;
    g.kh * g.kw > 1 && isa::active() >= Isa::Avx512 && 10 * p >= 9 * p.div_ceil(16) * 16
}

/// Whether a kernel's pass holds every weight of an output channel
/// ([`MAX_WEIGHTS`]).
fn fits_one_pass(g: &Geometry) -> bool {
    g.cg() * g.kh * g.kw <= MAX_WEIGHTS
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

/// Which of the direct path's three weight-gradient kernels runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WeightKernel {
    /// One vector of output channels under a 3×3 kernel at stride 1
    /// ([`weight_grad_taps`]).
    Taps,
    /// Output channels in the lanes, two vectors or more of them
    /// ([`weight_grad_outer`]).
    Outer,
    /// Tiles of output channels × weight positions ([`weight_grad_with`]).
    Tiles,
}

/// Whether the direct path can compute the forward convolution: `f32`
/// and [`applies`]. It does unless a product is faster
/// ([`forward_kernel`]); the other two products' kernels need it too.
pub(super) fn forward_applies<T: Float>(g: &Geometry) -> bool {
    T::DTYPE == DType::F32 && applies(g)
}

/// The direct path's kernel for the weight gradient, or `None` when it
/// does not apply: not `f32`, not [`applies`], more weights per output
/// channel than [`MAX_WEIGHTS`], or a 1×1 stride-1
/// convolution that keeps or widens the channels. For those, a product
/// per block of images (the pixels its inner axis) is faster than the
/// direct kernels, whose tiles then hold few weights per pixel vector;
/// narrowing ones (64→16) run faster direct, and stay there.
/// `docs/architecture.md` gives the measurements.
pub(super) fn weight_kernel<T: Float>(g: &Geometry) -> Option<WeightKernel> {
    if !forward_applies::<T>(g) || !fits_one_pass(g) || keeps_or_widens_pointwise(g) {
        return None;
    }
    Some(match isa::active() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if taps_applies::<Avx512>(g) => WeightKernel::Taps,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if outer_applies::<Avx512>(g) => WeightKernel::Outer,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if outer_applies::<Avx2>(g) => WeightKernel::Outer,
        _ => WeightKernel::Tiles,
    })
}

/// Whether the direct path computes the input gradient of this strided
/// convolution, phase by phase ([`input_grad()`]): `f32`, one group, input
/// channels a multiple of the channel tile, the forward convolution on the
/// direct path, and [`applies`] with the output gradient as input: its
/// channels under a phase's taps fit one pass of the kernel, or take
/// chunks where they pay ([`chunks_pay`]).
pub(super) fn input_grad_applies<T: Float>(g: &Geometry) -> bool {
    let most_taps = g.kh.div_ceil(g.stride[0]) * g.kw.div_ceil(g.stride[1]);
    let one_pass = g.c_out * most_taps <= MAX_WEIGHTS;
    let fits = (one_pass || chunks_pay(g)) && g.c_out * g.oh * g.ow * 4 <= MAX_IMAGE_BYTES;
    g.stride != [1, 1] && g.groups == 1 && g.c_in.is_multiple_of(CHANNEL_TILE) && fits && forward_applies::<T>(g)
}

/// The FP32 peak of the current thread pool in GFLOPS, measured in the
/// instructions the kernels run ([`peak::measure`]), with their set;
/// `None` where the direct path does not run.
pub(super) fn fp32_peak() -> Option<(f64, Isa)> {
    let isa = isa::active();
    // SAFETY: `active` never names a level the CPU lacks.
    let gflops = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { peak::measure::<Avx512>() },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { peak::measure::<Avx2>() },
        _ => return None,
    };
    Some((gflops, isa))
}

/// Refuses to run a kernel whose conditions do not hold: the kernels'
/// memory accesses rely on them.
fn require(holds: bool, what: &str) {
    assert!(holds, "the convolution plan chose the direct {what} where it does not apply");
}

/// Which of the direct path's two forward kernels runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ForwardKernel {
    /// Output channels × pixel vectors in registers, inputs loaded under
    /// lane masks ([`forward_with`]).
    Pixels,
    /// Output channels in the lanes, each input value broadcast from a
    /// zero-padded copy ([`forward_outer_with`]).
    Outer,
}

/// Whether a 1×1 stride-1 layer's forward product (and so the flipped
/// input gradient of one that narrows) runs faster as a matrix product
/// than on the direct path: on AVX-512, where it keeps or widens the
/// channels. With one tap per input channel, every tile of 8 output
/// channels streams the whole image's input through the cache again,
/// where `gemm` blocks the product for it (`docs/architecture.md` gives
/// the measurement).
fn product_pays(g: &Geometry) -> bool {
    keeps_or_widens_pointwise(g) && isa::active() >= Isa::Avx512
}

/// A 1×1 stride-1 layer with at least as many output channels per group
/// as input channels: the layers a product serves better than the direct
/// kernels (the weight gradient on every instruction set, the forward
/// product on AVX-512).
fn keeps_or_widens_pointwise(g: &Geometry) -> bool {
    g.is_pointwise() && g.og() >= g.cg()
}

/// The direct path's kernel for the forward convolution, or `None` when it
/// does not apply ([`forward_applies`]) or a product is faster
/// ([`product_pays`]): the outer kernel where it
/// applies ([`forward::outer_applies`]: on AVX2, whose tiles load less
/// per multiply-add than one pixel vector's, and on AVX-512 for strided
/// layers, which it reads without splitting them into phases).
pub(super) fn forward_kernel<T: Float>(g: &Geometry) -> Option<ForwardKernel> {
    if !forward_applies::<T>(g) || product_pays(g) {
        return None;
    }
    Some(match isa::active() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if forward::outer_applies::<Avx2>(g) => ForwardKernel::Outer,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if forward::outer_applies::<Avx512>(g) => ForwardKernel::Outer,
        _ => ForwardKernel::Pixels,
    })
}

/// `y = conv2d(x, w)` on the direct path, by `kernel`, which
/// [`forward_kernel`] chose.
pub(super) fn forward<T: Float>(g: &Geometry, x: &[T], w: &[T], kernel: ForwardKernel) -> Vec<T> {
    forward_gathering(g, x, w, kernel, None)
}

/// [`forward()`], and with it the mean and the sum of squared deviations of
/// every output row (`[N·C_out]`, image-major, the two side by side), each
/// taken as soon as its tile is written, while it is in cache: what batch
/// norm reads its input for ([`crate::norm::row_moments`], so the same
/// values to the bit). The moments' buffer comes from the tensor pool.
pub(super) fn forward_moments<T: Float>(g: &Geometry, x: &[T], w: &[T], kernel: ForwardKernel) -> (Vec<T>, Vec<f64>) {
    let mut rows = wengert_core::buffer::zeroed::<f64>(2 * g.n * g.c_out);
    let y = forward_gathering(g, x, w, kernel, Some(RowsOut { at: rows.as_mut_ptr(), len: rows.len() }));
    (y, rows)
}

/// [`forward()`], putting each output row's moments into `rows` when given.
fn forward_gathering<T: Float>(g: &Geometry, x: &[T], w: &[T], kernel: ForwardKernel, rows: Option<RowsOut>) -> Vec<T> {
    require(forward_kernel::<T>(g) == Some(kernel), "forward kernel");
    let (x, w) = (f32s(x).expect("f32"), f32s(w).expect("f32"));
    // SAFETY: `active` never names a level the CPU lacks, and the kernel's
    // conditions hold (checked above).
    match (isa::active(), kernel) {
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, ForwardKernel::Outer) => unsafe { forward_outer_with::<Avx512, T, 32>(g, x, w, rows) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, _) => unsafe { forward_with::<Avx512, T, 8>(g, x, w, rows) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, ForwardKernel::Outer) => unsafe { forward_outer_with::<Avx2, T, 16>(g, x, w, rows) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, _) => unsafe { forward_with::<Avx2, T, 8>(g, x, w, rows) },
        (other, _) => unreachable!("the direct path does not run on {}", other.name()),
    }
}

/// `dw = Σₙ gy[n] ⋆ x[n]` on the direct path, by `kernel`, which
/// [`weight_kernel`] chose.
pub(super) fn weight_grad<T: Float>(g: &Geometry, x: &[T], gy: &[T], kernel: WeightKernel) -> Vec<T> {
    require(weight_kernel::<T>(g) == Some(kernel), "weight-gradient kernel");
    let (x, gy) = (f32s(x).expect("f32"), f32s(gy).expect("f32"));
    // SAFETY: `active` never names a level the CPU lacks, and the kernel's
    // conditions hold (checked above).
    match (isa::active(), kernel) {
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, WeightKernel::Taps) => unsafe { weight_grad_taps::<Avx512, T>(g, x, gy) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, WeightKernel::Outer) => unsafe { weight_grad_outer::<Avx512, T>(g, x, gy) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, _) => unsafe { weight_grad_with::<Avx512, T, 8, 2>(g, x, gy) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, WeightKernel::Outer) => unsafe { weight_grad_outer::<Avx2, T>(g, x, gy) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, _) => unsafe { weight_grad_with::<Avx2, T, 4, 2>(g, x, gy) },
        (other, _) => unreachable!("the direct path does not run on {}", other.name()),
    }
}

/// The direct path's kernel for each phase of a strided convolution's
/// input gradient ([`input_grad()`]), or `None` when it does not apply
/// ([`input_grad_applies`]): on 16 registers (AVX2), the kernel with dx's
/// channels in the lanes where they are a multiple of two vectors
/// ([`input_grad_outer`]), whose tiles load less per multiply-add than
/// one pixel vector's; otherwise the pixel-vector tiles
/// ([`input_grad_phases`]).
pub(super) fn input_grad_kernel<T: Float>(g: &Geometry) -> Option<ForwardKernel> {
    if !input_grad_applies::<T>(g) {
        return None;
    }
    Some(match isa::active() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if g.c_in.is_multiple_of(2 * Avx2::LANES) => ForwardKernel::Outer,
        _ => ForwardKernel::Pixels,
    })
}

/// `dx = conv2dᵀ(gy, w)` of a strided convolution on the direct path, by
/// `kernel`, which [`input_grad_kernel`] chose.
///
/// Each phase `(ry, rx)` of `dx` (the pixels `(sy·a + ry, sx·b + rx)`) is
/// a stride-1 convolution of `gy`: pixel `(a, b)` takes tap `(ky, kx)`
/// where `sy` divides `ry + ph − ky·dh` (and the same across), from `gy`
/// at `(a + (ry + ph − ky·dh)/sy, …)`. A 3×3/2 kernel gives its phases 1,
/// 2, 2 and 4 taps. So the forward kernel computes every phase with no
/// unfolding and no col2im, and each phase is scattered into place once.
pub(super) fn input_grad<T: Float>(g: &Geometry, gy: &[T], w: &[T], kernel: ForwardKernel) -> Vec<T> {
    require(input_grad_kernel::<T>(g) == Some(kernel), "input-gradient kernel");
    let (gy, w) = (f32s(gy).expect("f32"), f32s(w).expect("f32"));
    // SAFETY: `active` never names a level the CPU lacks, and the kernel's
    // conditions hold (checked above).
    match (isa::active(), kernel) {
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, _) => unsafe { input_grad_phases::<Avx512, T, 8>(g, gy, w) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, ForwardKernel::Outer) => unsafe { input_grad_outer::<Avx2, T, 16>(g, gy, w) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, _) => unsafe { input_grad_phases::<Avx2, T, 8>(g, gy, w) },
        (other, _) => unreachable!("the direct path does not run on {}", other.name()),
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
    /// Vector registers: the kernels' tiles are sized to fit them (AVX2's
    /// masks take registers too).
    const REGISTERS: usize;
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
    /// All `LANES` of `v` to `p`.
    unsafe fn storeu(p: *mut f32, v: Self::V);
    /// `a + b`, lane by lane.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Asks for the cache line holding `p` to be brought into the
    /// first-level cache; a hint, which never faults, whatever `p` is.
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch reads nothing and faults on no address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
        }
    }
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

    /// `dst[l·plane + i] = src[i·step + l]` for `i < n`, `l < LANES`: `n`
    /// runs of `LANES` floats, transposed into `LANES` planes
    /// ([`gather_planes`](Simd::gather_planes) undone).
    unsafe fn scatter_planes(src: *const f32, step: usize, dst: *mut f32, plane: usize, n: usize) {
        for i in 0..n {
            for l in 0..Self::LANES {
                // SAFETY: the caller's.
                unsafe { *dst.add(l * plane + i) = *src.add(i * step + l) };
            }
        }
    }

    /// [`peak::fma_chains`] compiled for this instruction set.
    unsafe fn fma_chains(rounds: usize) -> f32;
    /// [`forward::forward_unit`] compiled for this instruction set.
    unsafe fn forward_unit<const O: usize>(plan: &Plan<Self>, x: *const f32, y: *mut f32, wt: &[f32]);
    /// [`forward::forward_outer_tile`] compiled for this instruction set.
    unsafe fn forward_outer<const OV: usize, const R: usize>(
        x: *const f32,
        at: &[usize; R],
        wt: &[f32],
        sums: *mut f32,
        shape: &OuterTaps,
    );
    /// [`weight_grad::wgrad_tile`] compiled for this instruction set, as a function of
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
    /// [`weight_grad::wgrad_outer`] compiled for this instruction set.
    unsafe fn wgrad_outer<const OV: usize, const CT: usize>(
        gy: *const f32,
        x: *const f32,
        dw: *mut f32,
        shape: &OuterShape,
    );
    /// [`weight_grad::wgrad_taps`] compiled for this instruction set.
    unsafe fn wgrad_taps<const CT: usize>(x: *const f32, gy: *const f32, dw: *mut f32, shape: &TapsShape);
    /// [`weight_grad::weight_grad_block`] compiled for this instruction set.
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
        unsafe fn fma_chains(rounds: usize) -> f32 {
            unsafe { fma_chains::<Self>(rounds) }
        }
        #[target_feature(enable = $features)]
        unsafe fn forward_unit<const O: usize>(plan: &Plan<Self>, x: *const f32, y: *mut f32, wt: &[f32]) {
            unsafe { forward_unit::<Self, O>(plan, x, y, wt) }
        }
        #[target_feature(enable = $features)]
        unsafe fn forward_outer<const OV: usize, const R: usize>(
            x: *const f32,
            at: &[usize; R],
            wt: &[f32],
            sums: *mut f32,
            shape: &OuterTaps,
        ) {
            unsafe { forward_outer_tile::<Self, OV, R>(x, at, wt, sums, shape) }
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

// The instruction sets come after `kernels_for`, which their impls expand.
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
