//! Which instruction-set level the hand-written kernels run at.
//!
//! The direct convolution (in `wengert-ops`) has one micro-kernel per CPU
//! feature level, and element loops written with [`vectorised_fn!`](crate::vectorised_fn)
//! are compiled once per level; both pick one at run time, never at compile
//! time, so one binary runs at its best on every x86-64 machine. [`active`] is the level in use: the best the
//! CPU supports ([`detected`]), lowered by the `WENGERT_ISA` environment
//! variable (`generic`, `avx2`, `avx512`) read at the first call, or by
//! [`set_ceiling`]. Every level gives the same results to rounding: the
//! conformance suite runs on each one the machine supports.
//!
//! ```
//! use wengert_core::isa::{self, Isa};
//! let best = isa::detected();
//! isa::set_ceiling(Isa::Generic); // every kernel takes its portable path
//! assert_eq!(isa::active(), Isa::Generic);
//! isa::set_ceiling(best);
//! ```

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// An instruction-set level, from the portable path up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust that the compiler vectorises as it can: every CPU, and
    /// `f64` everywhere.
    Generic,
    /// x86-64 with AVX2 and FMA: 8 `f32` lanes.
    Avx2,
    /// x86-64 with AVX-512F: 16 `f32` lanes.
    Avx512,
}

impl Isa {
    /// Every level, lowest first.
    pub const ALL: [Isa; 3] = [Isa::Generic, Isa::Avx2, Isa::Avx512];

    /// The level's name as `WENGERT_ISA` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    fn from_name(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// The best level this CPU supports.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Generic
}

/// No ceiling set yet: take `WENGERT_ISA` at the first call.
const UNSET: u8 = u8::MAX;
static CEILING: AtomicU8 = AtomicU8::new(UNSET);

fn env_ceiling() -> Isa {
    static ENV: OnceLock<Isa> = OnceLock::new();
    *ENV.get_or_init(|| match std::env::var("WENGERT_ISA") {
        Ok(s) => Isa::from_name(&s).unwrap_or_else(|| {
            eprintln!("wengert: WENGERT_ISA={s:?} is not one of generic, avx2, avx512; ignoring it");
            Isa::Avx512
        }),
        Err(_) => Isa::Avx512,
    })
}

/// The level the kernels use now: [`detected`], capped by the ceiling.
pub fn active() -> Isa {
    let ceiling = match CEILING.load(Ordering::Relaxed) {
        UNSET => env_ceiling(),
        i => Isa::ALL[i as usize],
    };
    detected().min(ceiling)
}

/// Caps the level every kernel uses from now on, for the whole process (a
/// level above [`detected`] caps nothing). Meant for tests and benchmarks
/// that compare the paths; results agree on every level to rounding.
pub fn set_ceiling(isa: Isa) {
    CEILING.store(isa as u8, Ordering::Relaxed);
}

/// Defines `fn name<T: Float>(args) -> R { body }` compiled once per
/// [`Isa`] level and run at the [`active`] one: loops over elements that
/// the compiler vectorises by itself get the level's vector width instead
/// of the x86-64 baseline's two `f64` or four `f32` lanes. For the element
/// loops of a user's own ops as much as for the built-in ones (batch norm,
/// `exp`).
///
/// The body is inlined into one `#[target_feature]` function per level, so
/// whatever it calls must inline too (`#[inline(always)]` on helpers, as
/// [`math::exp`](crate::math::exp) has); a closure handed to the function
/// from outside would be compiled apart, without the features. Results do
/// not depend on the level: Rust never reassociates or fuses
/// floating-point operations, so a vectorised loop computes exactly what
/// the scalar one does.
///
/// ```
/// use wengert_core::Float;
///
/// wengert_core::vectorised_fn! {
///     /// `out[i] = x[i]·a + b`.
///     fn affine<T: Float>(x: &[T], out: &mut [T], a: T, b: T) {
///         out.iter_mut().zip(x).for_each(|(o, &v)| *o = v * a + b);
///     }
/// }
///
/// let x = [1.0f32, 2.0, 3.0];
/// let mut y = [0.0; 3];
/// affine(&x, &mut y, 2.0, 1.0);
/// assert_eq!(y, [3.0, 5.0, 7.0]);
/// ```
#[macro_export]
macro_rules! vectorised_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident<T: Float>($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name<T: $crate::Float>($($a: $t),*) $(-> $r)? {
            #[inline(always)]
            fn body<T: $crate::Float>($($a: $t),*) $(-> $r)? $body
            /// # Safety
            /// The CPU has AVX-512F.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512<T: $crate::Float>($($a: $t),*) $(-> $r)? {
                body($($a),*)
            }
            /// # Safety
            /// The CPU has AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<T: $crate::Float>($($a: $t),*) $(-> $r)? {
                body($($a),*)
            }
            match $crate::isa::active() {
                // SAFETY: `active` never names a level the CPU lacks.
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx512 => unsafe { avx512($($a),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx2 => unsafe { avx2($($a),*) },
                _ => body($($a),*),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim of `vectorised_fn!`: the same bits at every level.
    #[test]
    fn vectorised_loops_give_the_same_bits_on_every_level() {
        // Both signs, both forms of tanh and erf, exp's overflow and
        // underflow, log's subnormals, zeros and negatives (NaN).
        let x: Vec<f32> = (0..100_000).map(|i| (i as f32 - 50_000.0) * 2.1e-3).collect();
        let xd: Vec<f64> = x.iter().map(|&v| v as f64 * 0.7).collect();
        let wide: Vec<f32> = (0..100_000u32).map(|i| f32::from_bits(i.wrapping_mul(42_949) ^ (i << 31))).collect();
        type Kernel<T> = fn(&[T]) -> Vec<T>;
        let kernels: [(Kernel<f32>, Kernel<f64>); 4] = [
            (crate::kernel::exp, crate::kernel::exp),
            (crate::kernel::log, crate::kernel::log),
            (crate::kernel::tanh, crate::kernel::tanh),
            (crate::kernel::erf, crate::kernel::erf),
        ];
        let run = || -> Vec<(Vec<f32>, Vec<f32>, Vec<f64>)> {
            kernels.iter().map(|(f, fd)| (f(&x), f(&wide), fd(&xd))).collect()
        };
        set_ceiling(Isa::Generic);
        let want = run();
        for level in Isa::ALL.into_iter().filter(|&l| l <= detected()) {
            set_ceiling(level);
            for (k, (got, want)) in run().iter().zip(&want).enumerate() {
                let same32 = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same32(&got.0, &want.0) && same32(&got.1, &want.1), "kernel {k} at {level:?}");
                assert!(got.2.iter().zip(&want.2).all(|(a, b)| a.to_bits() == b.to_bits()), "kernel {k} at {level:?}");
            }
        }
        set_ceiling(Isa::Avx512);
    }

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::from_name("sse"), None);
    }
}
