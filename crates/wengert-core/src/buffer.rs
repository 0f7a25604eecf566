//! Tensor buffers kept for reuse, so that steady-state training asks the
//! system for no memory.
//!
//! A training step makes and drops the same buffers, of the same sizes,
//! step after step. Handed back to the C library, a large buffer goes back
//! to the system (glibc unmaps or trims it), and the next step's buffer of
//! that size is faulted in and cleared page by page again. So when the last
//! tensor holding a buffer of at least [`MIN_POOLED`] bytes drops, the
//! buffer comes here instead, and [`take`] hands it out again for a request
//! of up to a quarter less. The pool holds at most [`limit`] bytes (a
//! quarter of the machine's memory, at least 1 GiB, unless [`set_limit`]
//! says otherwise); buffers past that go back to the system. It is one
//! pool per element type, shared by all threads.
//!
//! Ops make their outputs with [`build`] (a kernel that writes every
//! element), [`zeroed`] (one that accumulates) or [`take`]; a buffer from
//! anywhere else (a user's `Vec`) is pooled just the same once its tensor
//! drops.
//!
//! ```
//! use wengert_core::{buffer, Tensor};
//! let t = Tensor::<f32>::zeros([256, 256]); // 256 KiB
//! drop(t); // the buffer is kept …
//! assert!(buffer::held_bytes() >= 256 * 1024);
//! let v: Vec<f32> = buffer::take(256 * 256); // … and given out again
//! assert!(v.capacity() >= 256 * 256 && v.is_empty());
//! ```

use crate::Float;
use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Element loops shorter than this run on the calling thread: below it, the
/// cost of waking rayon's workers exceeds the work. [`build`] and the
/// loops of [`kernel`](crate::kernel) share it.
pub const PAR_THRESHOLD: usize = 1 << 15;

/// Buffers smaller than this many bytes go back to the C library, whose
/// bins serve small sizes without the system's help.
pub const MIN_POOLED: usize = 64 * 1024;

/// The least default limit: 1 GiB.
const MIN_DEFAULT_LIMIT: usize = 1 << 30;

/// [`LIMIT`] before anything sets it: the first use computes the default.
const UNSET: usize = usize::MAX;

static LIMIT: AtomicUsize = AtomicUsize::new(UNSET);
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Free buffers of one element type, by capacity.
struct Pool<T> {
    free: Mutex<BTreeMap<usize, Vec<Vec<T>>>>,
}

impl<T> Pool<T> {
    fn new() -> Self {
        Pool { free: Mutex::new(BTreeMap::new()) }
    }
}

/// The pool of `T`'s buffers.
fn pool<T: Float>() -> &'static Pool<T> {
    static F32: OnceLock<Pool<f32>> = OnceLock::new();
    static F64: OnceLock<Pool<f64>> = OnceLock::new();
    let any: &'static dyn Any =
        if TypeId::of::<T>() == TypeId::of::<f32>() { F32.get_or_init(Pool::new) } else { F64.get_or_init(Pool::new) };
    // `Float` is sealed to f32 and f64, so the downcast always succeeds.
    any.downcast_ref::<Pool<T>>().expect("Float is f32 or f64")
}

fn bytes<T>(capacity: usize) -> usize {
    capacity * std::mem::size_of::<T>()
}

/// A kept buffer of `n` to `n + n/4` elements' capacity, as its last
/// tensor left it (its length and values), if one is free.
fn pooled<T: Float>(n: usize) -> Option<Vec<T>> {
    if bytes::<T>(n) < MIN_POOLED {
        return None;
    }
    let mut free = pool::<T>().free.lock().unwrap_or_else(|p| p.into_inner());
    let (&cap, list) = free.range_mut(n..=n + n / 4).next()?;
    let v = list.pop().expect("no empty lists are kept");
    if list.is_empty() {
        free.remove(&cap);
    }
    HELD.fetch_sub(bytes::<T>(v.capacity()), Ordering::Relaxed);
    Some(v)
}

/// An empty `Vec` with room for at least `n` elements: a kept buffer when
/// one of `n` to `n + n/4` elements is free, else a new one.
pub fn take<T: Float>(n: usize) -> Vec<T> {
    match pooled(n) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(n),
    }
}

/// `n` zeros, in a kept buffer where one fits.
pub fn zeroed<T: Float>(n: usize) -> Vec<T> {
    match pooled(n) {
        Some(mut v) => {
            v.clear();
            v.resize(n, T::zero());
            v
        }
        // Zeroed by the system, page by page as it is first touched.
        None => vec![T::zero(); n],
    }
}

/// `n` elements of no particular value, for a kernel that writes them all
/// (and that cannot take [`build`]'s chunks, such as a matrix product that
/// splits its output its own way): a kept buffer holds what its last tensor
/// left there; a new one, and any part of a kept one past that tensor's
/// length, is zero.
pub fn stale<T: Float>(n: usize) -> Vec<T> {
    match pooled(n) {
        Some(mut v) => {
            v.truncate(n);
            v.resize(n, T::zero());
            v
        }
        None => vec![T::zero(); n],
    }
}

/// `n` elements written by `f`, chunk by chunk: `f(i, chunk)` writes
/// elements `i·chunk ..` (the last chunk may be shorter), every one of
/// them. In parallel over chunks when `n` is at least
/// [`PAR_THRESHOLD`].
///
/// The buffer is a kept one where one fits, handed to `f` as its last
/// tensor left it: an element `f` does not write holds a stale value (a
/// kernel that accumulates starts with `chunk.fill(T::zero())`, in cache).
/// Zeroing the whole buffer first ([`zeroed`]) and then overwriting it
/// passes over memory twice, where this passes once: on ResNet-20's
/// activations (8 MiB) that second pass took half an elementwise op's time.
///
/// ```
/// use wengert_core::buffer;
/// let squares: Vec<f32> = buffer::build(100_000, 4096, |i, chunk| {
///     for (j, v) in chunk.iter_mut().enumerate() {
///         *v = ((i * 4096 + j) as f32).powi(2);
///     }
/// });
/// assert_eq!(squares[300], 90_000.0);
/// ```
pub fn build<T: Float>(n: usize, chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) -> Vec<T> {
    if n >= PAR_THRESHOLD {
        return build_par(n, chunk, 1, f);
    }
    let mut v = stale(n);
    v.chunks_mut(chunk.max(1)).enumerate().for_each(|(i, c)| f(i, c));
    v
}

/// [`build`], always in parallel, with at least `per_task` consecutive
/// chunks in each of rayon's tasks (for kernels that set up per-task
/// scratch space, or whose chunks are large already).
pub fn build_par<T: Float>(n: usize, chunk: usize, per_task: usize, f: impl Fn(usize, &mut [T]) + Sync) -> Vec<T> {
    use rayon::prelude::*;
    let mut v = stale(n);
    v.par_chunks_mut(chunk.max(1)).with_min_len(per_task.max(1)).enumerate().for_each(|(i, c)| f(i, c));
    v
}

/// Keeps `v` for reuse, or frees it when it is small or the pool is full.
pub(crate) fn give<T: Float>(v: Vec<T>) {
    let size = bytes::<T>(v.capacity());
    if size < MIN_POOLED || HELD.load(Ordering::Relaxed) + size > limit() {
        return;
    }
    HELD.fetch_add(size, Ordering::Relaxed);
    let mut free = pool::<T>().free.lock().unwrap_or_else(|p| p.into_inner());
    free.entry(v.capacity()).or_default().push(v);
}

/// The bytes the pool holds now, of both element types.
pub fn held_bytes() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// The most bytes the pool keeps. By default a quarter of the machine's
/// memory (Linux's `MemTotal`), and at least 1 GiB (1 GiB where the
/// memory size is unknown): ResNet-50's training step at batch 16 frees
/// more than 1 GiB of buffers a step, and with that limit faulted in
/// about 95,000 pages a step anew (2,000–7,000 with 4 GiB, for 1.4% more
/// peak memory).
pub fn limit() -> usize {
    match LIMIT.load(Ordering::Relaxed) {
        UNSET => {
            // A racing `set_limit` wins over the default.
            let _ = LIMIT.compare_exchange(UNSET, default_limit(), Ordering::Relaxed, Ordering::Relaxed);
            LIMIT.load(Ordering::Relaxed)
        }
        bytes => bytes,
    }
}

/// A quarter of `MemTotal` from `/proc/meminfo`, at least
/// [`MIN_DEFAULT_LIMIT`].
fn default_limit() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        let kib = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().strip_suffix("kB")?;
        kib.trim().parse::<usize>().ok()
    });
    total.map_or(MIN_DEFAULT_LIMIT, |kib| (kib.saturating_mul(1024) / 4).max(MIN_DEFAULT_LIMIT))
}

/// Sets the most bytes the pool keeps; 0 turns pooling off. Buffers held
/// past a lowered limit are freed.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes.min(UNSET - 1), Ordering::Relaxed);
    if held_bytes() > bytes {
        clear();
    }
}

/// Frees every kept buffer.
pub fn clear() {
    for drained in [drain::<f32>(), drain::<f64>()] {
        HELD.fetch_sub(drained, Ordering::Relaxed);
    }
}

/// Empties `T`'s pool; returns the bytes it held.
fn drain<T: Float>() -> usize {
    let mut free = pool::<T>().free.lock().unwrap_or_else(|p| p.into_inner());
    let size = free.iter().map(|(&cap, list)| bytes::<T>(cap) * list.len()).sum();
    free.clear();
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limit_is_a_quarter_of_memory_and_at_least_a_gibibyte() {
        let limit = default_limit();
        assert!(limit >= 1 << 30);
        let Ok(info) = std::fs::read_to_string("/proc/meminfo") else { return };
        // "MemTotal:       24576000 kB", read here word by word.
        let words: Vec<&str> = info.split_whitespace().collect();
        let at = words.iter().position(|&w| w == "MemTotal:").expect("Linux names the total");
        assert_eq!(words[at + 2], "kB");
        let bytes = words[at + 1].parse::<usize>().unwrap() * 1024;
        assert_eq!(limit, (bytes / 4).max(1 << 30));
    }

    #[test]
    fn buffers_come_back_for_sizes_a_little_smaller_and_small_ones_never() {
        // A size no other test in this crate uses, so parallel tests don't take it.
        let n = 200_003;
        let v: Vec<f64> = zeroed(n);
        let ptr = v.as_ptr();
        give(v);
        let again: Vec<f64> = take(n - n / 5);
        assert_eq!(again.as_ptr(), ptr, "kept and given out again");
        assert!(again.is_empty() && again.capacity() >= n);
        give(again);
        let too_small_a_request: Vec<f64> = take(n / 2);
        assert_ne!(too_small_a_request.as_ptr(), ptr, "a buffer over a quarter too large is not used");
        let before = held_bytes();
        give(vec![0f32; 16]);
        assert_eq!(held_bytes(), before, "small buffers go back to the C library");
    }

    #[test]
    fn built_buffers_are_whole_and_kept_ones_are_reused() {
        // A kept buffer, of a size no other test uses, shorter than its capacity.
        let n = 100_019;
        let mut junk = vec![f32::NAN; n + 100];
        junk.truncate(n - 10);
        let ptr = junk.as_ptr();
        give(junk);
        for (n, chunk) in [(n, 4096), (n, 1), (1000, 64), (0, 8)] {
            let v: Vec<f32> = build(n, chunk, |i, c| {
                assert!(c.len() == chunk || (i + 1) * chunk >= n, "only the last chunk is short");
                for (j, x) in c.iter_mut().enumerate() {
                    *x = (i * chunk + j) as f32;
                }
            });
            assert_eq!(v.len(), n);
            assert!(v.iter().enumerate().all(|(at, &x)| x == at as f32));
            if n == 100_019 && chunk == 4096 {
                assert_eq!(v.as_ptr(), ptr, "the kept buffer, lengthened");
            }
        }
        let fresh: Vec<f64> = build_par(300_011, 1000, 4, |_, c| c.iter_mut().for_each(|x| *x += 1.0));
        assert!(fresh.iter().all(|&x| x == 1.0), "a new buffer starts at zero");
    }

    #[test]
    fn the_last_tensor_to_drop_gives_its_buffer_back() {
        let t = crate::Tensor::<f64>::zeros([300_007]);
        let ptr = t.data().as_ptr();
        let shared = t.clone();
        drop(t);
        // Still held by the clone: not given back.
        let other: Vec<f64> = take(300_007);
        assert_ne!(other.as_ptr(), ptr);
        drop(shared);
        let reused: Vec<f64> = take(300_007);
        assert_eq!(reused.as_ptr(), ptr);
    }
}
