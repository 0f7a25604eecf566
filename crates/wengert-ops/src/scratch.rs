//! Per-thread scratch buffers for kernels, reused across calls.
//!
//! Convolution needs large temporary buffers (the unfolded input) on every
//! call; allocating and zeroing them each time measured several percent of
//! a conv. Each thread keeps one growing buffer instead. Kernels must write
//! every element they later read: the contents are left over from earlier
//! calls.

use std::cell::RefCell;
use wengert_core::{DType, Float};

thread_local! {
    /// 8-byte words: aligned for both `f32` and `f64`.
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a scratch slice of `len` elements of this thread's buffer.
///
/// A nested call on the same thread (possible when rayon runs another task
/// while this one waits) gets a fresh buffer, never an aliased one.
pub(crate) fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let words = (len * std::mem::size_of::<T>()).div_ceil(8);
    let mut buf = SCRATCH.with(|s| s.take());
    if buf.len() < words {
        buf.resize(words, 0);
    }
    assert!(matches!(T::DTYPE, DType::F32 | DType::F64) && std::mem::align_of::<T>() <= 8);
    // SAFETY: `Float` is sealed to f32 and f64 (checked above through
    // DTYPE): any bit pattern is a valid value and their alignment is at most
    // that of u64. The buffer holds at least `len * size_of::<T>()`
    // initialised bytes, and it was taken out of the thread-local, so this is
    // the only reference to it until it is put back below.
    let slice = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<T>(), len) };
    let result = f(slice);
    SCRATCH.with(|s| {
        // Keep the larger buffer if a nested call left one behind.
        let mut slot = s.borrow_mut();
        if slot.len() < buf.len() {
            *slot = buf;
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::with_scratch;

    #[test]
    fn nested_scratch_does_not_alias() {
        with_scratch::<f32, _>(100, |a| {
            a.fill(1.0);
            with_scratch::<f64, _>(50, |b| {
                b.fill(2.0);
            });
            assert!(a.iter().all(|&v| v == 1.0));
        });
    }
}
