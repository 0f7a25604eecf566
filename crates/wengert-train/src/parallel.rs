//! Data-parallel training: one model on N ranks, each on its share of every
//! batch, kept identical by summing their gradients.
//!
//! A [`Trainer`](crate::train::Trainer) given a [`Parallel`] trains as
//! PyTorch's `DistributedDataParallel` does (Li et al., VLDB 2020):
//! - At the start, every rank takes rank 0's parameters and buffers, so
//!   they start alike whatever each did before.
//! - Each rank reads its share of every batch
//!   ([`Loader::shard`](wengert_data::Loader::shard)); the batch
//!   size stays that of the whole batch.
//! - Each rank's loss is scaled by its share of the batch, so that the
//!   gradients summed over the ranks are those of the whole batch's mean
//!   loss, whatever the split.
//! - The gradients travel in **buckets** of about [`Parallel::bucket_bytes`]:
//!   parameters in reverse order of use, the order in which backward
//!   finishes them. A bucket's sum starts as soon as its last gradient is
//!   final ([`Step::backward_with`](wengert_nn::Step::backward_with)),
//!   while backward goes on through the layers before it; the update waits
//!   for every bucket. [`Overlap`] says how much of the summing was hidden
//!   that way.
//! - Every rank applies the same update to the same parameters, so the
//!   models stay identical without ever being sent again.
//! - Batch norm uses each rank's own batch statistics (as DDP), and every
//!   step ends with rank 0's running statistics on every rank (as DDP's
//!   `broadcast_buffers`), so that the ranks' models stay identical; or, with
//!   [`Parallel::sync_bn`], those of the whole batch (as `SyncBatchNorm`):
//!   then N ranks compute what one process computes on the whole batch, to
//!   the order of floating-point sums.
//! - Evaluation splits each test batch across the ranks and sums the counts.
//!
//! The ranks talk through a [`Collective`]: over MPI (the module `mpi`,
//! built with the feature `mpi`), or
//! [`LocalGroup`](wengert_core::collective::LocalGroup) threads in tests.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use wengert_core::collective::{Collective, Pending};
use wengert_core::{Error, Result, Tensor};
use wengert_nn::module::StateMut;
use wengert_nn::{Module, ParamGrads, ParamId};

/// The number of processes of the job when this one was started by an
/// MPI launcher (`mpirun`, `mpiexec`, a batch system's), from the
/// environment the launcher sets; `None` otherwise. It needs no MPI
/// library, so a program built without one can refuse to run as N copies
/// that would each train alone.
pub fn mpi_world_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"].iter().find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// How many ranks of the job run on this machine, when started by Open
/// MPI's launcher: they share its cores.
pub fn mpi_local_size() -> Option<usize> {
    std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE").ok()?.parse().ok()
}

/// How a [`Trainer`](crate::train::Trainer) shares its work with other
/// ranks; see the [module documentation](self).
pub struct Parallel {
    pub(crate) group: Arc<dyn Collective>,
    /// Normalise batch norm over the whole batch, across the ranks, rather
    /// than over each rank's share (off by default, as in DDP).
    pub sync_bn: bool,
    /// The size a gradient bucket grows to before its sum starts (1 MiB).
    pub bucket_bytes: usize,
    pub(crate) overlap: Overlap,
}

impl Parallel {
    /// Data-parallel training over the ranks of `group`, with per-rank
    /// batch statistics and 1 MiB buckets.
    pub fn new(group: Arc<dyn Collective>) -> Self {
        Parallel { group, sync_bn: false, bucket_bytes: 1 << 20, overlap: Overlap::default() }
    }

    /// The same, with synchronised batch norm on or off.
    pub fn with_sync_bn(mut self, on: bool) -> Self {
        self.sync_bn = on;
        self
    }

    /// The ranks.
    pub fn group(&self) -> &Arc<dyn Collective> {
        &self.group
    }

    /// How the gradient sums overlapped backward so far.
    pub fn overlap(&self) -> Overlap {
        self.overlap
    }
}

/// How much of the gradient summing backward hid: the time the buckets'
/// sums were in flight, and the part of it the update still had to wait.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Overlap {
    /// Steps measured.
    pub steps: usize,
    /// Seconds the buckets' sums were in flight, added over buckets.
    pub in_flight_s: f64,
    /// Seconds the update waited for them after backward was done.
    pub waited_s: f64,
}

impl Overlap {
    /// The share of the summing done while backward ran, in `[0, 1]`
    /// (1 when nothing was summed, or nothing was waited for).
    pub fn hidden(&self) -> f64 {
        if self.in_flight_s <= 0.0 {
            return 1.0;
        }
        (1.0 - self.waited_s / self.in_flight_s).clamp(0.0, 1.0)
    }
}

/// The gradient buckets of one step.
pub(crate) struct Buckets<'g> {
    group: &'g dyn Collective,
    /// Each parameter's bucket and offset in it.
    slot: HashMap<ParamId, (usize, usize)>,
    buckets: RefCell<Vec<Bucket>>,
    /// The first error of a sum started from the hook.
    error: RefCell<Option<Error>>,
}

struct Bucket {
    data: Vec<f32>,
    /// Gradients still to come.
    missing: usize,
    members: Vec<(ParamId, usize, usize)>,
    pending: Option<Pending>,
}

impl<'g> Buckets<'g> {
    /// Buckets for the parameters `trained` (in order of first use, with
    /// their sizes), filled in reverse order, each closed once it holds at
    /// least `bytes`.
    pub(crate) fn plan(group: &'g dyn Collective, trained: &[(ParamId, usize)], bytes: usize) -> Self {
        let per_bucket = (bytes / std::mem::size_of::<f32>()).max(1);
        let mut buckets: Vec<Bucket> = Vec::new();
        let mut slot = HashMap::with_capacity(trained.len());
        for &(id, n) in trained.iter().rev() {
            if buckets.last().is_none_or(|b| b.data.len() >= per_bucket) {
                buckets.push(Bucket { data: Vec::new(), missing: 0, members: Vec::new(), pending: None });
            }
            let (k, b) = (buckets.len() - 1, buckets.last_mut().expect("just pushed"));
            slot.insert(id, (k, b.data.len()));
            b.members.push((id, b.data.len(), n));
            b.data.resize(b.data.len() + n, 0.0);
            b.missing += 1;
        }
        Buckets { group, slot, buckets: RefCell::new(buckets), error: RefCell::new(None) }
    }

    /// Backward's hook: copies `grad` into its bucket, and starts the
    /// bucket's sum when it was the last gradient missing.
    pub(crate) fn ready(&self, id: ParamId, grad: &Tensor<f32>) {
        let Some(&(k, at)) = self.slot.get(&id) else { return };
        let mut buckets = self.buckets.borrow_mut();
        let b = &mut buckets[k];
        b.data[at..at + grad.numel()].copy_from_slice(grad.data());
        b.missing -= 1;
        if b.missing == 0 {
            self.start(b);
        }
    }

    fn start(&self, b: &mut Bucket) {
        match self.group.start_all_reduce_sum(std::mem::take(&mut b.data)) {
            Ok(p) => b.pending = Some(p),
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
            }
        }
    }

    /// Waits for every bucket's sum and puts the sums into `grads`; adds
    /// the step's timings to `overlap`.
    pub(crate) fn finish(self, grads: &mut ParamGrads<f32>, overlap: &mut Overlap) -> Result<()> {
        let mut buckets = self.buckets.take();
        // A bucket whose gradients did not all come (a parameter this rank
        // did not use) is summed now, with zeros for them.
        for b in buckets.iter_mut().filter(|b| b.pending.is_none()) {
            self.start(b);
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let t0 = Instant::now();
        let mut in_flight = 0.0;
        for b in buckets {
            let (sum, seconds) = b.pending.expect("every bucket was started").wait_timed()?;
            in_flight += seconds;
            for (id, at, n) in b.members {
                if let Some(g) = grads.get_by_id_mut(id) {
                    g.data_mut().copy_from_slice(&sum[at..at + n]);
                }
            }
        }
        overlap.steps += 1;
        overlap.in_flight_s += in_flight;
        overlap.waited_s += t0.elapsed().as_secs_f64();
        Ok(())
    }
}

/// Gives every rank rank 0's buffers, and its parameters too with `params`.
pub(crate) fn broadcast_state(model: &mut dyn Module<f32>, group: &dyn Collective, params: bool) -> Result<()> {
    let mut flat = Vec::new();
    let mine = group.rank() == 0;
    model.visit_mut("", &mut |_, s| {
        let t = match s {
            StateMut::Param(p) if params => p.value(),
            StateMut::Buffer(b) => &*b,
            _ => return,
        };
        match mine {
            true => flat.extend_from_slice(t.data()),
            false => flat.resize(flat.len() + t.numel(), 0.0),
        }
    });
    let sum = group.start_all_reduce_sum(flat)?.wait()?;
    let mut at = 0;
    model.visit_mut("", &mut |_, s| {
        let t = match s {
            StateMut::Param(p) if params => p.value_mut(),
            StateMut::Buffer(b) => b,
            _ => return,
        };
        let n = t.numel();
        t.data_mut().copy_from_slice(&sum[at..at + n]);
        at += n;
    });
    Ok(())
}

/// What is wrong with a batch of `batch_size` images across `ranks` ranks,
/// or `None` when it splits evenly: every rank must take the same share,
/// since the summed gradients are averaged as if each rank's were of one
/// size. The trainer checks it as it shards a loader, and `wengert train`
/// before it loads anything.
pub fn uneven_split(batch_size: usize, ranks: usize) -> Option<String> {
    (ranks > 0 && !batch_size.is_multiple_of(ranks))
        .then(|| format!("the batch of {batch_size} does not split evenly across {ranks} ranks"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wengert_core::collective::Solo;

    #[test]
    fn buckets_fill_in_reverse_order_of_use_and_close_at_their_size() {
        let ids: Vec<(ParamId, usize)> = (0..5)
            .map(|i| (wengert_nn::Param::<f32>::new(Tensor::zeros([1])).id(), [300, 10, 200, 50, 100][i]))
            .collect();
        let b = Buckets::plan(&Solo, &ids, 4 * 120);
        let members: Vec<Vec<usize>> = b
            .buckets
            .borrow()
            .iter()
            .map(|b| b.members.iter().map(|m| ids.iter().position(|i| i.0 == m.0).unwrap()).collect())
            .collect();
        // Last used first: 100 closes nothing; 100 + 50 ≥ 120 closes one.
        assert_eq!(members, [vec![4, 3], vec![2], vec![1, 0]]);
    }
}
