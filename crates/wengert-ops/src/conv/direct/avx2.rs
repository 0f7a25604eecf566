//! The AVX2 + FMA instructions behind [`Simd`]: 8 lanes, 16 registers,
//! masks as vectors of all-ones or zero lanes.

use super::forward::forward_unit;
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
