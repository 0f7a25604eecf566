//! The AVX-512F instructions behind [`Simd`]: 16 lanes, 32 registers,
//! masks as `u16`.

use super::avx2::transpose8;
use super::forward::{forward_outer_tile, forward_unit, OuterTaps};
use super::peak::fma_chains;
use super::plan::Plan;
use super::weight_grad::{weight_grad_block, wgrad_outer, wgrad_taps, wgrad_tile, OuterShape, TapsShape};
use super::Simd;
use crate::conv::Geometry;
use std::arch::x86_64::*;

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
pub(super) struct Avx512;

// SAFETY (every `unsafe` block in this impl): each method is an `unsafe
// fn` whose caller guarantees the trait's contract: the CPU has AVX-512F,
// and every lane a load or store touches (all of them, or the mask's) lies
// inside memory the caller may read or write. The blocks only call the
// intrinsic that does what the method says.
#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
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
    unsafe fn storeu(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
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
        // Blocks of 8 columns as two 8 × 8 transposes by shuffles, one per
        // half of the planes: a gather instruction per column loads its 16
        // floats one by one, and Zen's gathers are slow.
        let full = n / 8 * 8;
        for i in (0..full).step_by(8) {
            unsafe {
                transpose8(src.add(i), plane, dst.add(i * step), step);
                transpose8(src.add(8 * plane + i), plane, dst.add(i * step + 8), step);
            }
        }
        debug_assert!(plane * 16 <= i32::MAX as usize);
        let idx = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(plane as i32),
        );
        for i in full..n {
            unsafe { _mm512_storeu_ps(dst.add(i * step), _mm512_i32gather_ps::<4>(idx, src.add(i))) };
        }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn scatter_planes(src: *const f32, step: usize, dst: *mut f32, plane: usize, n: usize) {
        // As `gather_planes`, the other way.
        let full = n / 8 * 8;
        for i in (0..full).step_by(8) {
            unsafe {
                transpose8(src.add(i * step), step, dst.add(i), plane);
                transpose8(src.add(i * step + 8), step, dst.add(8 * plane + i), plane);
            }
        }
        for i in full..n {
            for l in 0..16 {
                unsafe { *dst.add(l * plane + i) = *src.add(i * step + l) };
            }
        }
    }
    kernels_for!("avx512f");
}
