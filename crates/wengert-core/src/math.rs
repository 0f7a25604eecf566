//! Elementary functions written so that loops over them vectorise.
//!
//! The C library's `expf` is a call per element, and a loop of calls runs
//! one element at a time. [`exp`] is branch-free straight-line arithmetic
//! for `f32`, so a loop over it compiles to vector instructions (at the
//! CPU's width inside [`vectorised_fn!`](crate::vectorised_fn)). `f64`
//! keeps the C library's functions: it is the precision of gradient checks
//! and reference runs, where the last bit matters more than speed.

use crate::{DType, Float};

/// `eˣ`. For `f32`, [`exp_f32`]; for `f64`, the C library's `exp`.
#[inline(always)]
pub fn exp<T: Float>(x: T) -> T {
    if T::DTYPE == DType::F32 {
        // Exact both ways: T is f32.
        T::of(exp_f32(x.as_f64() as f32) as f64)
    } else {
        x.exp()
    }
}

/// `eˣ` in `f32`, within 1 ulp of the exact value over the whole range
/// (0.96 at worst, measured against `f64`), with the C library's special
/// cases: `exp(NaN)` is NaN, `exp(−∞) = 0`, `exp(∞) = ∞`, overflow to ∞
/// and gradual underflow through the subnormals to 0.
///
/// `x = n·ln 2 + r` with `n` an integer and `|r| ≤ ln 2 / 2`; `eʳ` from
/// Cephes' degree-6 polynomial (Moshier 1989); `2ⁿ` from the exponent
/// bits, applied as two factors `2^⌊n/2⌋·2^⌈n/2⌉` so that neither
/// overflows nor leaves the normal range on its own.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // ln 2 in two parts: LN2_HI has 9 significant bits, so n·LN2_HI is
    // exact for every n this function meets.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2²³ rounds to an integer and leaves it in the low bits.
    const ROUND: f32 = 12_582_912.0;
    // Past these, e^x is ∞ or rounds to 0; NaN passes through.
    let x = x.clamp(-104.0, 89.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * (r * r) + r + 1.0;
    // n as an integer, from the bits of t (n + 1.5·2²³, exponent 23).
    let e = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let (e1, e2) = (e >> 1, e - (e >> 1));
    let pow2 = |k: i32| f32::from_bits((k.wrapping_add(127) as u32) << 23);
    er * pow2(e1) * pow2(e2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place of `want` (exact in f64).
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        if w == 0.0 || !w.is_finite() {
            return if got as f64 == want as f32 as f64 { 0.0 } else { f64::INFINITY };
        }
        let ulp = (f32::from_bits(w.abs().to_bits() + 1) - w.abs()) as f64;
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn exp_f32_is_within_one_ulp_everywhere() {
        // Every 97th float from −104 to 89: about 20 million values,
        // including the subnormal results.
        let (lo, hi) = (-104.0f32, 89.0f32);
        let mut worst = (0.0, 0.0f32);
        let mut v = lo;
        while v < hi {
            let got = exp_f32(v);
            let want = (v as f64).exp();
            // A result below the smallest normal loses bits of its own;
            // compare those in absolute terms.
            let err = if want < f32::MIN_POSITIVE as f64 {
                (got as f64 - want).abs() / (f32::from_bits(1) as f64)
            } else {
                ulps(got, want)
            };
            if err > worst.0 {
                worst = (err, v);
            }
            v = f32::from_bits(if v < 0.0 { v.to_bits() - 97 } else { v.to_bits() + 97 });
            if v == 0.0 || (v < 0.0 && v > -1e-30) {
                v = 1e-30;
            }
        }
        assert!(worst.0 < 1.0, "{} ulp at {}", worst.0, worst.1);
    }

    #[test]
    fn exp_f32_special_cases() {
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(88.72283), 88.72283f32.exp());
        assert_eq!(exp_f32(-104.0), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(1.0), std::f32::consts::E);
        assert!(exp_f32(-100.0) > 0.0 && exp_f32(-100.0) < f32::MIN_POSITIVE);
    }
}
