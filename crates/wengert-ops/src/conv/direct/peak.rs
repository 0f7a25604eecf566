//! The machine's FP32 peak, measured rather than computed from a clock
//! that a virtual machine does not report: every thread runs independent
//! chains of fused multiply-adds on registers alone, in the instruction
//! set the direct kernels run on.

use super::Simd;
use std::time::Instant;

/// Independent chains per thread: enough to keep two FMA units busy
/// through four cycles of latency, few enough for AVX2's 16 registers.
const CHAINS: usize = 12;

/// `rounds` steps of [`CHAINS`] independent multiply-adds; the sum of
/// their lanes, so that none of the work can be left out.
///
/// # Safety
/// The CPU supports `S`'s instructions.
#[inline(always)]
pub(super) unsafe fn fma_chains<S: Simd>(rounds: usize) -> f32 {
    let (scale, step, start) = (0.999_999f32, 1e-7f32, 1.0f32);
    // SAFETY: the caller's; every pointer is to a local float.
    unsafe {
        let (a, c) = (S::splat(&scale), S::splat(&step));
        let mut acc = [S::splat(&start); CHAINS];
        for _ in 0..rounds {
            for v in acc.iter_mut() {
                *v = S::fma(*v, a, c);
            }
        }
        acc.iter().fold(0.0, |s, &v| s + S::sum(v))
    }
}

/// The FP32 peak of the threads of the current `rayon` pool in `S`'s
/// instructions, in GFLOPS (a multiply-add counts two).
///
/// # Safety
/// The CPU supports `S`'s instructions.
pub(super) unsafe fn measure<S: Simd>() -> f64 {
    let threads = rayon::current_num_threads();
    let rounds = 10_000_000;
    // Best of five: the first runs while the cores ramp their clocks up.
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            // SAFETY: the caller's.
            let sums = rayon::broadcast(|_| unsafe { S::fma_chains(std::hint::black_box(rounds)) });
            std::hint::black_box(sums);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    (threads * rounds * CHAINS * S::LANES * 2) as f64 / best / 1e9
}
