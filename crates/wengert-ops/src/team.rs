//! A team of threads that splits one matrix product into parts: each
//! helper spins for a while after its part before it sleeps, as OpenMP's
//! threads do.
//!
//! Rayon's workers go to sleep within microseconds of running out of work,
//! and waking one costs tens of microseconds on these virtual machines: as
//! long as a whole product of n = 128 (4 million multiply-adds, about 30
//! µs on one core). So small products ran on one thread and lost to
//! PyTorch, whose BLAS threads spin between calls. Here the helpers spin
//! for [`SPIN`] after each part, so that back-to-back products (a
//! benchmark, a layer's forward and backward) find them awake, and sleep
//! after it, so that the team costs nothing between bursts.
//!
//! Written here rather than taken from a crate: `fork_union`, the
//! maintained OpenMP-style pool for Rust, builds C++ with `cc`, and all
//! this needs is one fork-join of a few parts from one caller at a time.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a helper spins for the next part before it sleeps.
const SPIN: Duration = Duration::from_micros(200);

/// One part of a job, as a helper reads it.
#[derive(Clone, Copy)]
struct Part {
    /// The job: a `&(dyn Fn(usize) + Sync)` whose lifetime [`run`] keeps
    /// alive until the helper reports the part done.
    job: *const (dyn Fn(usize) + Sync),
    index: usize,
}

/// The mailbox between the caller and one helper.
struct Slot {
    /// Incremented by the caller when it posts a part.
    posted: AtomicUsize,
    /// Set by the helper to `posted`'s value when that part is done.
    done: AtomicUsize,
    /// Whether the part panicked.
    panicked: AtomicBool,
    /// Written by the caller before it bumps `posted`, read by the helper
    /// after it sees the bump.
    part: UnsafeCell<Option<Part>>,
}

// SAFETY: `part` is written only by the caller while the helper waits for
// `posted` to change (Release on the store, Acquire on the helper's load),
// and read only by the helper between that change and its `done` store;
// the job it points to is `Sync` and outlives the part (see `run`).
unsafe impl Sync for Slot {}
// SAFETY: as above; the raw pointer is only a borrowed `Sync` closure.
unsafe impl Send for Slot {}

struct Helper {
    slot: Arc<Slot>,
    thread: Thread,
}

struct Team {
    /// Held by the one caller the team serves at a time.
    busy: AtomicBool,
    helpers: Vec<Helper>,
}

/// The team: one helper per thread of rayon's pool beyond the first, so
/// that the caller and its helpers are as many as the pool's threads.
fn team() -> &'static Team {
    static TEAM: OnceLock<Team> = OnceLock::new();
    TEAM.get_or_init(|| {
        let helpers = (1..rayon::current_num_threads())
            .filter_map(|i| {
                let slot = Arc::new(Slot {
                    posted: AtomicUsize::new(0),
                    done: AtomicUsize::new(0),
                    panicked: AtomicBool::new(false),
                    part: UnsafeCell::new(None),
                });
                let mine = Arc::clone(&slot);
                let handle =
                    std::thread::Builder::new().name(format!("wengert-gemm-{i}")).spawn(move || serve(&mine)).ok()?;
                Some(Helper { slot, thread: handle.thread().clone() })
            })
            .collect();
        Team { busy: AtomicBool::new(false), helpers }
    })
}

/// A helper's loop: wait for a part (spinning, then sleeping), run it,
/// report it done.
fn serve(slot: &Slot) {
    let mut seen = 0;
    loop {
        let mut since = Instant::now();
        loop {
            let posted = slot.posted.load(Ordering::Acquire);
            if posted != seen {
                seen = posted;
                break;
            }
            if since.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                // An unpark that came before this park makes it return at
                // once; a spurious return loops back to the check.
                std::thread::park();
                since = Instant::now();
            }
        }
        // SAFETY: the caller wrote the part before it bumped `posted`
        // (Release, seen above with Acquire) and keeps the job alive and
        // the part unchanged until `done` says so.
        let part = unsafe { (*slot.part.get()).expect("a posted part") };
        // SAFETY: as above: the job outlives this call.
        let job = unsafe { &*part.job };
        if catch_unwind(AssertUnwindSafe(|| job(part.index))).is_err() {
            slot.panicked.store(true, Ordering::Relaxed);
        }
        slot.done.store(seen, Ordering::Release);
    }
}

/// Runs `job(0)`, …, `job(parts − 1)`, part 0 on the calling thread and the
/// others on the team's helpers, and returns once all are done; or returns
/// `false` without running anything when the team is serving another
/// caller or has fewer helpers than `parts − 1`.
pub(crate) fn run(parts: usize, job: &(dyn Fn(usize) + Sync)) -> bool {
    let team = team();
    if parts < 2 || parts > team.helpers.len() + 1 {
        return false;
    }
    if team.busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        return false;
    }
    // Waits for every posted part, collects their panics and frees the
    // team; on unwinding too, when part 0 panics: the helpers hold `job`
    // until they are done.
    struct Finish<'a> {
        team: &'a Team,
        tickets: Vec<(usize, usize)>,
        waited: bool,
    }
    impl Finish<'_> {
        /// Whether a helper's part panicked.
        fn wait(&mut self) -> bool {
            if std::mem::replace(&mut self.waited, true) {
                return false;
            }
            let mut panicked = false;
            for &(h, ticket) in &self.tickets {
                let slot = &self.team.helpers[h].slot;
                let mut spins = 0u32;
                while slot.done.load(Ordering::Acquire) != ticket {
                    spins += 1;
                    if spins < 1 << 16 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                // Every flag is cleared, before the team is free again.
                panicked |= slot.panicked.swap(false, Ordering::Relaxed);
            }
            self.team.busy.store(false, Ordering::Release);
            panicked
        }
    }
    impl Drop for Finish<'_> {
        fn drop(&mut self) {
            self.wait();
        }
    }
    let mut finish = Finish { team, tickets: Vec::with_capacity(parts - 1), waited: false };
    // SAFETY: erases the job's lifetime for the helpers; `finish` waits for
    // every posted part before this function returns or unwinds, so the
    // job outlives every use.
    let erased: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(job) };
    for (h, helper) in team.helpers.iter().take(parts - 1).enumerate() {
        let slot = &helper.slot;
        // SAFETY: this caller holds `busy`, and the helper finished its last
        // part (`done` equals `posted`), so nothing else touches `part`.
        unsafe { *slot.part.get() = Some(Part { job: erased, index: h + 1 }) };
        let ticket = slot.posted.load(Ordering::Relaxed) + 1;
        slot.posted.store(ticket, Ordering::Release);
        helper.thread.unpark();
        finish.tickets.push((h, ticket));
    }
    job(0);
    assert!(!finish.wait(), "a part of a matrix product panicked on a helper thread");
    true
}

/// The most parts [`run`] takes: the calling thread and every helper.
pub(crate) fn size() -> usize {
    team().helpers.len() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Every part runs once, on as many threads as there are parts, and
    /// many jobs in a row (some after the helpers went to sleep) all
    /// complete.
    #[test]
    fn every_part_runs_once() {
        let parts = size();
        if parts < 2 {
            return;
        }
        for round in 0..200u64 {
            let hits: Vec<AtomicU64> = (0..parts).map(|_| AtomicU64::new(0)).collect();
            let job = |p: usize| {
                hits[p].fetch_add(round + 1, Ordering::Relaxed);
            };
            // Another test may hold the team; then nothing runs.
            if run(parts, &job) {
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == round + 1));
            }
            if round % 50 == 0 {
                std::thread::sleep(SPIN * 2);
            }
        }
    }

    /// A part that panics on a helper makes `run` panic on the caller, and
    /// leaves the team free and clean for the next job.
    #[test]
    fn a_helper_panic_reaches_the_caller() {
        let parts = size();
        if parts < 2 {
            return;
        }
        let mut reached = false;
        for _ in 0..2000 {
            let held = AtomicBool::new(false);
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                run(parts, &|p| {
                    held.store(true, Ordering::Relaxed);
                    assert!(p != 1, "part 1 fails");
                })
            }));
            // Another test may hold the team; then nothing ran.
            if !held.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            assert!(outcome.is_err());
            reached = true;
            let ran = AtomicU64::new(0);
            if run(parts, &|_| {
                ran.fetch_add(1, Ordering::Relaxed);
            }) {
                assert_eq!(ran.load(Ordering::Relaxed), parts as u64);
            }
            break;
        }
        assert!(reached, "the team stayed busy for two seconds");
    }

    /// A caller that finds the team busy gets `false` and runs nothing.
    #[test]
    fn a_busy_team_declines() {
        if size() < 2 {
            return;
        }
        let inner = AtomicBool::new(true);
        let outer = |p: usize| {
            if p == 0 {
                let ran = run(2, &|_| {});
                inner.store(ran, Ordering::Relaxed);
            }
        };
        if run(2, &outer) {
            assert!(!inner.load(Ordering::Relaxed));
        }
    }
}
