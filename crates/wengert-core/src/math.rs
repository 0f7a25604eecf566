//! Elementary functions written so that loops over them vectorise.
//!
//! The C library's `expf` is a call per element, and a loop of calls runs
//! one element at a time. [`exp`], [`log`], [`tanh`] and [`erf`] are
//! branch-free straight-line arithmetic for `f32` (where a function has two
//! ranges, both are computed and one is selected), so a loop over them
//! compiles to vector instructions (at the CPU's width inside
//! [`vectorised_fn!`](crate::vectorised_fn)). `f64` keeps the C library's
//! functions: it is the precision of gradient checks and reference runs,
//! where the last bit matters more than speed.
//!
//! The polynomials of [`log_f32`], [`tanh_f32`] and [`erf_f32`] are
//! least-squares fits (on 4,000 Chebyshev nodes, relative error, in `f64`)
//! of the part of each function that its leading terms leave, so that the
//! fit's own error is a small fraction of an ulp; the tests measure each
//! function's worst error in ulps over its whole range.

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

/// `ln x`. For `f32`, [`log_f32`]; for `f64`, the C library's `log`.
#[inline(always)]
pub fn log<T: Float>(x: T) -> T {
    if T::DTYPE == DType::F32 {
        // Exact both ways: T is f32.
        T::of(log_f32(x.as_f64() as f32) as f64)
    } else {
        x.ln()
    }
}

/// `ln(1 + x)`, accurate for small `x`. For `f32`, [`ln_1p_f32`]; for
/// `f64`, the C library's `log1p`.
#[inline(always)]
pub fn ln_1p<T: Float>(x: T) -> T {
    if T::DTYPE == DType::F32 {
        // Exact both ways: T is f32.
        T::of(ln_1p_f32(x.as_f64() as f32) as f64)
    } else {
        x.ln_1p()
    }
}

/// `tanh x`. For `f32`, [`tanh_f32`]; for `f64`, the C library's `tanh`.
#[inline(always)]
pub fn tanh<T: Float>(x: T) -> T {
    if T::DTYPE == DType::F32 {
        // Exact both ways: T is f32.
        T::of(tanh_f32(x.as_f64() as f32) as f64)
    } else {
        x.tanh()
    }
}

/// The error function `erf x`. For `f32`, [`erf_f32`]; for `f64`, the C
/// library's `erf` (through `libm`, accurate to an ulp).
#[inline(always)]
pub fn erf<T: Float>(x: T) -> T {
    if T::DTYPE == DType::F32 {
        // Exact both ways: T is f32.
        T::of(erf_f32(x.as_f64() as f32) as f64)
    } else {
        T::of(libm::erf(x.as_f64()))
    }
}

/// `c[0] + c[1]·x + c[2]·x² + …`, by Horner's rule. A plain loop, not an
/// iterator fold: the fold is a function of its own that the compiler may
/// leave out of line, and then compiles without the caller's vector
/// features.
#[inline(always)]
fn poly<const N: usize>(x: f32, c: [f32; N]) -> f32 {
    let mut acc = 0.0;
    let mut i = N;
    while i > 0 {
        i -= 1;
        acc = acc * x + c[i];
    }
    acc
}

/// `ln x` in `f32`, within 1 ulp over the whole range (measured by the
/// tests), with the C library's special cases: `ln 0 = −∞`, the logarithm
/// of a negative number or NaN is NaN, `ln ∞ = ∞`; subnormal inputs are
/// exact in range.
///
/// `x = 2ᵏ·m` with `m` in `[√½, √2)`, so `f = m − 1` lies in
/// `[−0.29, 0.42]`; `ln(1 + f) = f − f²/2 + f³·P(f)` with a degree-8 `P`,
/// and `k·ln 2` is added in two parts.
#[inline(always)]
pub fn log_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const P: [f32; 9] = [
        3.333333e-1,
        -2.500_000_3e-1,
        2.000_071_6e-1,
        -1.666_737_8e-1,
        1.424_865_6e-1,
        -1.243_492_4e-1,
        1.169_907_45e-1,
        -1.142_149_7e-1,
        6.862_342e-2,
    ];
    // Subnormals are scaled by 2²³ into the normal range first.
    let tiny = x < f32::MIN_POSITIVE;
    let xs = if tiny { x * 8_388_608.0 } else { x };
    // Adding (1 − √½)'s offset to the bits carries into the exponent exactly
    // when the significand is at least √2, so k and m come out together.
    const SQRT_HALF_BITS: i32 = 0x3f35_04f3;
    let ix = (xs.to_bits() as i32).wrapping_add(0x3f80_0000 - SQRT_HALF_BITS);
    let k = (ix >> 23) - 127 - if tiny { 23 } else { 0 };
    let m = f32::from_bits(((ix & 0x007f_ffff) + SQRT_HALF_BITS) as u32);
    let f = m - 1.0;
    let z = f * f;
    let kf = k as f32;
    let r = f * z * poly(f, P);
    let y = kf * LN2_HI + (((r + kf * LN2_LO) - 0.5 * z) + f);
    let special = if x == 0.0 {
        f32::NEG_INFINITY
    } else if x < 0.0 {
        f32::NAN
    } else {
        x // ∞ and NaN
    };
    if x > 0.0 && x < f32::INFINITY {
        y
    } else {
        special
    }
}

/// `ln(1 + x)` in `f32`, within 1.5 ulp over `x > −1` (1.20 at worst,
/// measured by the tests), and `x` itself where `1 + x` rounds to 1; `ln_1p(−1) = −∞`,
/// NaN below −1.
///
/// With `u = 1 + x` rounded, `ln(1 + x) = ln u + ln(1 + (x − (u − 1))/u)`,
/// and the second term is `(x − (u − 1))/u` to far below an ulp: the
/// rounding error of `u`, which `u − 1` and `x − (u − 1)` recover exactly.
#[inline(always)]
pub fn ln_1p_f32(x: f32) -> f32 {
    let u = 1.0 + x;
    let d = u - 1.0;
    let y = log_f32(u) + (x - d) / u;
    if d == 0.0 {
        x // keeps −0 and every x too small to move 1
    } else if u == 0.0 || u == f32::INFINITY {
        log_f32(u) // −∞ at −1, ∞ at ∞
    } else {
        y
    }
}

/// `tanh x` in `f32`, within 1.5 ulp over the whole range (1.29 at worst,
/// near the switch between its two forms, measured by the tests); odd, `tanh(±∞) = ±1`, NaN passes through.
///
/// Below `|x| = 0.625`, `x + x³·P(x²)` with a degree-4 `P` (the form
/// `1 − 2/(e²ˣ + 1)` would lose digits to cancellation there); above it,
/// `1 − 2/(e^{2|x|} + 1)` with [`exp_f32`], which rounds to 1 from
/// `|x| ≈ 9` on and stays 1 when `e^{2|x|}` overflows.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    const P: [f32; 5] = [-3.333_333e-1, 1.333_275_7e-1, -5.384_935e-2, 2.099_087_5e-2, -6.088_718_3e-3];
    let a = x.abs();
    let z = x * x;
    // copysign keeps the sign of −0, which the sum would lose.
    let small = (x + x * z * poly(z, P)).copysign(x);
    let large = (1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0)).copysign(x);
    if a < 0.625 {
        small
    } else {
        large
    }
}

/// `erf x` in `f32`, within 1.5 ulp over the whole range (1.27 at worst,
/// just below 1, where the polynomial's terms are largest against the
/// result; measured by the tests); odd, `erf(±∞) = ±1`, NaN passes through.
///
/// Below `|x| = 1`, `x + x·P(x²)` with a degree-6 `P`; above it,
/// `1 − e^{−x²}·Q(1/|x|)` where `Q` (degree 8, in `1/|x| − 0.625`) fits
/// `erfc(a)·e^{a²}` on `[1, 4]`. From 4 on, `erfc` is below half an ulp
/// of 1 and the result is ±1.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    // erf(x)/x − 1, in x²: adding x last keeps the rounding of the
    // polynomial's terms below the result's last place.
    const P: [f32; 7] =
        [1.283_791_7e-1, -3.761_262_6e-1, 1.128_359_7e-1, -2.685_432_9e-2, 5.189_312e-3, -8.018_855e-4, 7.882_497_4e-5];
    const Q: [f32; 9] = [
        3.059_529_7e-1,
        3.822_834_2e-1,
        -1.723_914e-1,
        4.380_028e-2,
        2.318_419_1e-2,
        -4.780_293e-2,
        4.550_208_5e-2,
        -1.872_330_5e-2,
        -1.007_577e-2,
    ];
    let a = x.abs();
    let small = x + x * poly(x * x, P);
    // Clamped to [1, 4] so that the large form is finite wherever it is
    // computed (it is only selected from 1 on).
    let ac = if a < 4.0 { a } else { 4.0 };
    let ac = if ac > 1.0 { ac } else { 1.0 };
    let large = (1.0 - exp_f32(-ac * ac) * poly(1.0 / ac - 0.625, Q)).copysign(x);
    let y = if a < 1.0 { small } else { large };
    if x.is_nan() {
        x
    } else {
        y
    }
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

    /// The worst error in ulps of `f` against the `f64` function `exact`
    /// over every `step`th positive float from `lo` to `hi`, and where.
    fn worst_ulps(f: fn(f32) -> f32, exact: fn(f64) -> f64, lo: f32, hi: f32, step: usize) -> (f64, f32) {
        let mut worst = (0.0, 0.0);
        for bits in (lo.to_bits()..hi.to_bits()).step_by(step) {
            let v = f32::from_bits(bits);
            let err = ulps(f(v), exact(v as f64));
            if err > worst.0 {
                worst = (err, v);
            }
        }
        worst
    }

    #[test]
    fn log_f32_is_within_one_ulp_everywhere() {
        // Every 97th positive float: subnormals, normals, the largest.
        let (err, at) = worst_ulps(log_f32, f64::ln, f32::from_bits(1), f32::MAX, 97);
        assert!(err < 1.0, "{err} ulp at {at}");
        // Densely around 1, where ln x is small and digits are easiest to lose.
        let (err, at) = worst_ulps(log_f32, f64::ln, 0.5, 2.0, 3);
        assert!(err < 1.0, "{err} ulp at {at}");
    }

    #[test]
    fn log_f32_special_cases() {
        assert_eq!(log_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(log_f32(-0.0), f32::NEG_INFINITY);
        assert!(log_f32(-1.0).is_nan() && log_f32(-f32::MIN_POSITIVE).is_nan());
        assert!(log_f32(f32::NEG_INFINITY).is_nan() && log_f32(f32::NAN).is_nan());
        assert_eq!(log_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(log_f32(1.0), 0.0);
        assert_eq!(log_f32(f32::from_bits(1)), (f32::from_bits(1) as f64).ln() as f32);
        assert_eq!(log_f32(f32::MAX), (f32::MAX as f64).ln() as f32);
    }

    #[test]
    fn ln_1p_f32_is_within_one_and_a_half_ulps_everywhere() {
        let (err, at) = worst_ulps(ln_1p_f32, f64::ln_1p, f32::from_bits(1), f32::MAX, 97);
        assert!(err < 1.5, "{err} ulp at {at}");
        // From −1 (exclusive) to the smallest negative subnormal.
        let neg = |v: f32| ln_1p_f32(-v);
        let exact = |v: f64| (-v).ln_1p();
        let (err, at) = worst_ulps(neg, exact, f32::from_bits(1), 1.0, 97);
        assert!(err < 1.5, "{err} ulp at -{at}");
        assert_eq!(ln_1p_f32(-1.0), f32::NEG_INFINITY);
        assert!(ln_1p_f32(-2.0).is_nan() && ln_1p_f32(f32::NAN).is_nan());
        assert_eq!(ln_1p_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(ln_1p_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(ln_1p_f32(1e-30), 1e-30);
    }

    #[test]
    fn tanh_f32_is_within_one_and_a_half_ulps_everywhere() {
        // Every 97th positive float up to 10 (tanh rounds to 1 from about
        // 9), the smallest subnormals included; tanh is odd by construction.
        let (err, at) = worst_ulps(tanh_f32, f64::tanh, f32::from_bits(1), 10.0, 97);
        assert!(err < 1.5, "{err} ulp at {at}");
        // Every float around the switch between the two forms.
        let (err, at) = worst_ulps(tanh_f32, f64::tanh, 0.55, 0.7, 1);
        assert!(err < 1.5, "{err} ulp at {at}");
        for v in [0.3f32, 0.625, 2.0, 1e-30] {
            assert_eq!(tanh_f32(-v), -tanh_f32(v));
        }
    }

    #[test]
    fn tanh_f32_special_cases() {
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(100.0), 1.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn erf_f32_is_within_one_and_a_half_ulps_everywhere() {
        let exact = |v: f64| libm::erf(v);
        let (err, at) = worst_ulps(erf_f32, exact, f32::from_bits(1), 6.0, 97);
        assert!(err < 1.5, "{err} ulp at {at}");
        // Every float around the switch between the two forms.
        let (err, at) = worst_ulps(erf_f32, exact, 0.9, 1.1, 1);
        assert!(err < 1.5, "{err} ulp at {at}");
        for v in [0.3f32, 1.0, 2.5, 1e-30] {
            assert_eq!(erf_f32(-v), -erf_f32(v));
        }
    }

    #[test]
    fn erf_f32_special_cases() {
        assert_eq!(erf_f32(f32::INFINITY), 1.0);
        assert_eq!(erf_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(erf_f32(4.0), 1.0);
        assert!(erf_f32(f32::NAN).is_nan());
        assert_eq!(erf_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(erf_f32(f32::from_bits(1)), (libm::erf(f32::from_bits(1) as f64)) as f32);
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
