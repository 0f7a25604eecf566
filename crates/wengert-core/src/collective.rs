//! Sums across the processes (ranks) that train one model together.
//!
//! Data-parallel training runs the same model on N ranks, each on its own
//! share of every batch, and keeps them in step with one operation: the
//! allreduce, which leaves on every rank the elementwise sum of a buffer
//! over all ranks. Gradients are summed that way; so are batch-norm
//! statistics under synchronised batch norm, and evaluation counts.
//!
//! [`Collective`] is that operation, and nothing else: the core knows no
//! transport. Implementations:
//! - [`Solo`]: one rank; every sum is the buffer itself.
//! - [`LocalGroup`]: N ranks as threads of one process, for tests of
//!   data-parallel code, which then run anywhere with no MPI.
//! - over MPI, in `wengert-train` (feature `mpi`): one rank per process,
//!   on one machine or many.
//!
//! Every rank must call the same collectives, with buffers of the same
//! length, in the same order; a [`LocalGroup`] reports a call out of step
//! as an [`Error::Collective`] rather than
//! waiting forever.
//!
//! ```
//! use std::sync::Arc;
//! use wengert_core::collective::{Collective, LocalGroup};
//!
//! let ranks = LocalGroup::new(3)?;
//! let sums: Vec<Vec<f64>> = std::thread::scope(|s| {
//!     let jobs: Vec<_> = ranks
//!         .into_iter()
//!         .map(|rank| s.spawn(move || {
//!             let mut buf = vec![rank.rank() as f64, 1.0];
//!             rank.all_reduce_sum(&mut buf).map(|_| buf)
//!         }))
//!         .collect();
//!     jobs.into_iter().map(|j| j.join().unwrap()).collect::<Result<_, _>>()
//! })?;
//! assert!(sums.iter().all(|s| s == &[3.0, 3.0])); // 0 + 1 + 2, and 1 + 1 + 1
//! # Ok::<(), wengert_core::Error>(())
//! ```

use crate::{Error, Result};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// An allreduce across the ranks of one training job; see the
/// [module documentation](self).
pub trait Collective: Send + Sync {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// Replaces `buf` by its elementwise sum over all ranks, waiting for it.
    fn all_reduce_sum(&self, buf: &mut [f64]) -> Result<()>;

    /// Starts summing `buf` over all ranks and returns at once; the sum
    /// comes from [`Pending::wait`]. Gradient buckets use it, so that
    /// their sums travel while the backward pass goes on.
    fn start_all_reduce_sum(&self, buf: Vec<f32>) -> Result<Pending>;
}

/// A sum started by [`Collective::start_all_reduce_sum`].
pub struct Pending(PendingState);

/// A finished sum, and how long it was in flight.
pub type Summed = Result<(Vec<f32>, Duration)>;

enum PendingState {
    Done(Summed),
    Waiting(Receiver<Summed>, usize),
}

impl Pending {
    /// A sum already done (it was in flight for no time).
    pub fn done(sum: Result<Vec<f32>>) -> Self {
        Pending(PendingState::Done(sum.map(|s| (s, Duration::ZERO))))
    }

    /// A sum that another thread sends on `rx` when it is done, with the
    /// time it was in flight; `rank` names this process in the error when
    /// that thread goes away.
    pub fn from_channel(rx: Receiver<Summed>, rank: usize) -> Self {
        Pending(PendingState::Waiting(rx, rank))
    }

    /// Waits for the sum.
    pub fn wait(self) -> Result<Vec<f32>> {
        self.wait_timed().map(|(sum, _)| sum)
    }

    /// Waits for the sum; returns it with the seconds it was in flight.
    pub fn wait_timed(self) -> Result<(Vec<f32>, f64)> {
        let summed = match self.0 {
            PendingState::Done(r) => r,
            PendingState::Waiting(rx, rank) => rx.recv().unwrap_or_else(|_| {
                Err(Error::Collective {
                    rank,
                    op: "all_reduce".into(),
                    detail: "the communication thread stopped before the sum was done".into(),
                })
            }),
        };
        summed.map(|(sum, t)| (sum, t.as_secs_f64()))
    }
}

/// One rank alone: every sum is the buffer itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn start_all_reduce_sum(&self, buf: Vec<f32>) -> Result<Pending> {
        Ok(Pending::done(Ok(buf)))
    }
}

/// N ranks as threads of one process: each thread holds one member and
/// calls the collectives on it. Sums are taken in rank order, so they are
/// the same on every rank and from run to run. A member dropped while
/// others wait (its thread failed) ends their wait with an error.
pub struct LocalGroup {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    state: Mutex<Round>,
    changed: Condvar,
}

/// One allreduce in progress: the buffers given so far, then the sum being
/// read out by every rank.
#[derive(Default)]
struct Round {
    given: Vec<Option<Buffer>>,
    sum: Option<Buffer>,
    /// Ranks still to read `sum` out.
    unread: usize,
    left: Vec<bool>,
}

#[derive(Clone)]
enum Buffer {
    F64(Vec<f64>),
    F32(Vec<f32>),
}

impl Buffer {
    fn describe(&self) -> String {
        match self {
            Buffer::F64(v) => format!("{} f64 values", v.len()),
            Buffer::F32(v) => format!("{} f32 values", v.len()),
        }
    }

    /// Whether `other` can be added to `self`: the same kind and length.
    fn fits(&self, other: &Buffer) -> bool {
        match (self, other) {
            (Buffer::F64(a), Buffer::F64(b)) => a.len() == b.len(),
            (Buffer::F32(a), Buffer::F32(b)) => a.len() == b.len(),
            _ => false,
        }
    }

    /// Adds `other`, which [`Buffer::fits`], into `self`.
    fn add(&mut self, other: &Buffer) {
        match (self, other) {
            (Buffer::F64(a), Buffer::F64(b)) => a.iter_mut().zip(b).for_each(|(x, y)| *x += y),
            (Buffer::F32(a), Buffer::F32(b)) => a.iter_mut().zip(b).for_each(|(x, y)| *x += y),
            _ => {}
        }
    }
}

impl LocalGroup {
    /// The `size` members of a new group, rank 0 first; `size` must be at least 1.
    pub fn new(size: usize) -> Result<Vec<LocalGroup>> {
        if size == 0 {
            return Err(Error::argument("LocalGroup::new", "size", "a group needs at least one rank, got 0"));
        }
        let round = Round { given: vec![None; size], left: vec![false; size], ..Round::default() };
        let shared = Arc::new(Shared { size, state: Mutex::new(round), changed: Condvar::new() });
        Ok((0..size).map(|rank| LocalGroup { rank, shared: shared.clone() }).collect())
    }

    fn lock(&self) -> MutexGuard<'_, Round> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, detail: String) -> Error {
        Error::Collective { rank: self.rank, op: "all_reduce".into(), detail }
    }

    /// Gives `mine`, waits for every rank's, and returns the sum.
    fn exchange<'a>(&'a self, mine: Buffer) -> Result<Buffer> {
        let shared = &self.shared;
        let wait = |r: MutexGuard<'a, Round>| shared.changed.wait(r).unwrap_or_else(|p| p.into_inner());
        let mut r = self.lock();
        // The previous sum is still being read out by slower ranks.
        while r.sum.is_some() {
            r = wait(r);
        }
        if let Some(other) = r.given.iter().flatten().next() {
            if !other.fits(&mine) {
                let detail = format!(
                    "this rank sums {} while another sums {}: the ranks are out of step",
                    mine.describe(),
                    other.describe()
                );
                return Err(self.error(detail));
            }
        }
        r.given[self.rank] = Some(mine);
        if r.given.iter().all(Option::is_some) {
            let mut given = r.given.iter_mut().map(|g| g.take().unwrap_or(Buffer::F64(Vec::new())));
            let mut sum = given.next().unwrap_or(Buffer::F64(Vec::new()));
            for g in given {
                sum.add(&g);
            }
            r.sum = Some(sum);
            r.unread = shared.size;
            shared.changed.notify_all();
        }
        loop {
            if let Some(sum) = r.sum.clone() {
                r.unread -= 1;
                if r.unread == 0 {
                    r.sum = None;
                    shared.changed.notify_all();
                }
                return Ok(sum);
            }
            if let Some(gone) = r.left.iter().position(|&l| l) {
                r.given[self.rank] = None;
                return Err(self.error(format!("rank {gone} left the group while this rank waited for its sum")));
            }
            r = wait(r);
        }
    }
}

impl Drop for LocalGroup {
    fn drop(&mut self) {
        let mut r = self.lock();
        r.left[self.rank] = true;
        self.shared.changed.notify_all();
    }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce_sum(&self, buf: &mut [f64]) -> Result<()> {
        match self.exchange(Buffer::F64(buf.to_vec()))? {
            Buffer::F64(sum) => buf.copy_from_slice(&sum),
            Buffer::F32(_) => unreachable!("exchange checks that every rank gives the same kind"),
        }
        Ok(())
    }

    fn start_all_reduce_sum(&self, buf: Vec<f32>) -> Result<Pending> {
        // Threads share the machine's memory: the sum is done when every
        // rank has given its buffer, so waiting here costs nothing extra.
        let sum = self.exchange(Buffer::F32(buf)).map(|b| match b {
            Buffer::F32(v) => v,
            Buffer::F64(_) => unreachable!("exchange checks that every rank gives the same kind"),
        });
        Ok(Pending::done(sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on every member of a group of `n`, each on its own thread.
    fn on_ranks<R: Send>(n: usize, f: impl Fn(LocalGroup) -> R + Sync) -> Vec<R> {
        let ranks = LocalGroup::new(n).unwrap();
        std::thread::scope(|s| {
            let f = &f;
            let jobs: Vec<_> = ranks.into_iter().map(|g| s.spawn(move || f(g))).collect();
            jobs.into_iter().map(|j| j.join().unwrap()).collect()
        })
    }

    #[test]
    fn many_rounds_sum_in_rank_order_on_every_rank() {
        let out = on_ranks(4, |g| {
            (0..50)
                .map(|i| {
                    let mut a = vec![(g.rank() * 10 + i) as f64; 3];
                    g.all_reduce_sum(&mut a).unwrap();
                    let b = g.start_all_reduce_sum(vec![0.1 * g.rank() as f32; 2]).unwrap().wait().unwrap();
                    (a[0], b[0])
                })
                .collect::<Vec<_>>()
        });
        for (i, (a, b)) in out[0].iter().enumerate() {
            assert_eq!(*a, (60 + 4 * i) as f64);
            assert_eq!(*b, (0..4).map(|r| 0.1 * r as f32).fold(0.0, |s, v| s + v));
        }
        assert!(out.iter().all(|o| o == &out[0]), "every rank gets the same sums");
    }

    #[test]
    fn calls_out_of_step_and_a_departed_rank_are_errors_not_hangs() {
        let out = on_ranks(2, |g| {
            if g.rank() == 0 {
                let mut a = [1.0; 3];
                g.all_reduce_sum(&mut a).map_err(|e| e.to_string())
            } else {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let mut a = [1.0; 4];
                g.all_reduce_sum(&mut a).map_err(|e| e.to_string())
            }
        });
        let both = format!("{out:?}");
        assert!(both.contains("rank 1: all_reduce: this rank sums 4 f64 values while another sums 3"), "{both}");
        assert!(both.contains("rank 1 left the group"), "{both}");
        assert!(LocalGroup::new(0).is_err());
        let mut one = [2.0];
        Solo.all_reduce_sum(&mut one).unwrap();
        assert_eq!(one, [2.0]);
    }
}
