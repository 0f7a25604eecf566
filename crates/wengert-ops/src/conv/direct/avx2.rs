//! The AVX2 + FMA instructions behind [`Simd`]: 8 lanes, 16 registers,
//! masks as vectors of all-ones or zero lanes.

use super::forward::{forward_outer_tile, forward_unit, OuterTaps};
use super::peak::fma_chains;
use super::plan::Plan;
use super::weight_grad::{weight_grad_block, wgrad_outer, wgrad_taps, wgrad_tile, OuterShape, TapsShape};
use super::Simd;
use crate::conv::Geometry;
use std::arch::x86_64::*;

/// AVX2 with FMA: 8 lanes, 16 registers.
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx2;

// SAFETY: as for `Avx512`'s impl, with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
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
    unsafe fn storeu(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
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
        let full = n / 8 * 8;
        for i in (0..full).step_by(8) {
            // SAFETY: columns i..i + 8 of the eight planes and runs i..i + 8
            // of dst lie within the caller's n.
            unsafe { transpose8(src.add(i), plane, dst.add(i * step), step) };
        }
        for i in full..n {
            for l in 0..8 {
                // SAFETY: as above.
                unsafe { *dst.add(i * step + l) = *src.add(l * plane + i) };
            }
        }
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn scatter_planes(src: *const f32, step: usize, dst: *mut f32, plane: usize, n: usize) {
        let full = n / 8 * 8;
        for i in (0..full).step_by(8) {
            // SAFETY: runs i..i + 8 of src and columns i..i + 8 of the
            // eight planes lie within the caller's n.
            unsafe { transpose8(src.add(i * step), step, dst.add(i), plane) };
        }
        for i in full..n {
            for l in 0..8 {
                // SAFETY: as above.
                unsafe { *dst.add(l * plane + i) = *src.add(i * step + l) };
            }
        }
    }
    kernels_for!("avx2,fma");
}

/// An 8 × 8 block transposed: `dst[l·to + k] = src[k·from + l]`.
///
/// # Safety
/// The CPU has AVX2; the eight rows of eight floats at `src + k·from` may
/// be read and those at `dst + l·to` written.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn transpose8(src: *const f32, from: usize, dst: *mut f32, to: usize) {
    // SAFETY: the caller's.
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(src.add(k * from)));
        // t[2j], t[2j + 1]: rows 2j and 2j + 1 interleaved, low and high
        // pairs of each 128-bit half.
        let t: [__m256; 8] = std::array::from_fn(|k| {
            let (a, b) = (r[k / 2 * 2], r[k / 2 * 2 + 1]);
            if k % 2 == 0 {
                _mm256_unpacklo_ps(a, b)
            } else {
                _mm256_unpackhi_ps(a, b)
            }
        });
        // s[k], k < 4: column k of rows 0..4 (low half) and column k + 4
        // (high half); s[k + 4] the same of rows 4..8.
        let s: [__m256; 8] = std::array::from_fn(|k| {
            let (a, b) = (t[(k / 4) * 4 + (k % 4) / 2], t[(k / 4) * 4 + (k % 4) / 2 + 2]);
            if k % 2 == 0 {
                _mm256_shuffle_ps::<0x44>(a, b)
            } else {
                _mm256_shuffle_ps::<0xEE>(a, b)
            }
        });
        for l in 0..8 {
            let (lo, hi) = (s[l % 4], s[l % 4 + 4]);
            let c = if l < 4 { _mm256_permute2f128_ps::<0x20>(lo, hi) } else { _mm256_permute2f128_ps::<0x31>(lo, hi) };
            _mm256_storeu_ps(dst.add(l * to), c);
        }
    }
}
