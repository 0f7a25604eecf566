//! The ranks of a data-parallel job as processes under `mpirun`, talking
//! over MPI (rsmpi on Open MPI): one machine or many, with the transports
//! MPI picks (shared memory between processes of one host, TCP or a fabric
//! between hosts).
//!
//! One thread of each process does all of its MPI calls: it initialises
//! MPI, runs the sums in the order they were asked for, and finalises MPI
//! when the [`MpiGroup`] is dropped. The ranks ask for sums in the same
//! order (the same code on the same data), so the sums match across ranks
//! without the threads coordinating. A sum runs as a non-blocking
//! allreduce that the thread polls, sleeping between polls: a blocking one
//! would spin a core that the rank's own computation needs, since Open MPI
//! waits by polling.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wengert_train::mpi::MpiGroup;
//! use wengert_train::parallel::Parallel;
//! # fn trainer() -> wengert_train::train::Trainer { unimplemented!() }
//! let group = Arc::new(MpiGroup::init()?); // started by `mpirun -np N`
//! let mut trainer = trainer();
//! trainer.data_parallel(Parallel::new(group.clone()).with_sync_bn(true))?;
//! # Ok::<(), wengert_core::Error>(())
//! ```

use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wengert_core::collective::{Collective, Pending, Summed};
use wengert_core::{Error, Result};

/// What the communication thread is asked to do.
enum Job {
    F64(Vec<f64>, Sender<Result<Vec<f64>>>),
    F32(Vec<f32>, Sender<Summed>),
}

/// No abort asked for.
const RUNNING: i32 = i32::MIN;

/// This process's place among the ranks started by `mpirun`; see the
/// [module documentation](self).
pub struct MpiGroup {
    rank: usize,
    size: usize,
    jobs: Mutex<Option<Sender<Job>>>,
    /// The exit code of an abort asked for, or [`RUNNING`].
    abort: Arc<AtomicI32>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl MpiGroup {
    /// Initialises MPI on a thread of its own and joins the job. MPI can
    /// be initialised once per process.
    pub fn init() -> Result<MpiGroup> {
        let (tx, rx) = channel();
        let (ready_tx, ready_rx) = channel();
        let abort = Arc::new(AtomicI32::new(RUNNING));
        let flag = abort.clone();
        let thread = std::thread::Builder::new()
            .name("wengert-mpi".into())
            .spawn(move || serve(rx, ready_tx, &flag))
            .map_err(|e| failed(0, "init", format!("cannot start the communication thread: {e}")))?;
        let (rank, size) = ready_rx
            .recv()
            .map_err(|_| failed(0, "init", "the communication thread ended during MPI_Init".into()))??;
        Ok(MpiGroup { rank, size, jobs: Mutex::new(Some(tx)), abort, thread: Mutex::new(Some(thread)) })
    }

    /// Ends the whole job (`MPI_Abort`): every rank exits, and `mpirun`
    /// exits with a non-zero status. For an error on one rank, which the
    /// others, waiting for its sums, could not otherwise learn of.
    pub fn abort(&self, code: i32) -> ! {
        self.abort.store(code, Ordering::SeqCst);
        // The thread aborts within a poll; if it is gone, MPI is too.
        std::thread::sleep(Duration::from_secs(10));
        std::process::exit(code)
    }

    fn send(&self, job: Job, op: &str) -> Result<()> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let sent = jobs.as_ref().map(|tx| tx.send(job));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(failed(self.rank, op, "the communication thread has stopped".into())),
        }
    }
}

impl Drop for MpiGroup {
    /// Finalises MPI once the sums asked for are done.
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, buf: &mut [f64]) -> Result<()> {
        let (tx, rx) = channel();
        self.send(Job::F64(buf.to_vec(), tx), "all_reduce")?;
        let sum =
            rx.recv().map_err(|_| failed(self.rank, "all_reduce", "the communication thread stopped".into()))??;
        buf.copy_from_slice(&sum);
        Ok(())
    }

    fn start_all_reduce_sum(&self, buf: Vec<f32>) -> Result<Pending> {
        let (tx, rx) = channel();
        self.send(Job::F32(buf, tx), "all_reduce")?;
        Ok(Pending::from_channel(rx, self.rank))
    }
}

fn failed(rank: usize, op: &str, detail: String) -> Error {
    Error::Collective { rank, op: op.into(), detail }
}

/// The communication thread: initialises MPI, runs the sums asked for in
/// order, and finalises MPI when the group is dropped.
fn serve(jobs: Receiver<Job>, ready: Sender<Result<(usize, usize)>>, abort: &AtomicI32) {
    let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
        let _ = ready.send(Err(failed(0, "init", "MPI was already initialised in this process".into())));
        return;
    };
    let world = universe.world();
    let _ = ready.send(Ok((world.rank() as usize, world.size() as usize)));
    loop {
        match jobs.recv_timeout(Duration::from_millis(20)) {
            Ok(Job::F64(buf, reply)) => {
                let _ = reply.send(Ok(all_reduce(&world, &buf, abort)));
            }
            Ok(Job::F32(buf, reply)) => {
                let t0 = Instant::now();
                let sum = all_reduce(&world, &buf, abort);
                let _ = reply.send(Ok((sum, t0.elapsed())));
            }
            Err(RecvTimeoutError::Timeout) => check_abort(&world, abort),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(universe); // MPI_Finalize
}

fn check_abort(world: &SimpleCommunicator, abort: &AtomicI32) {
    let code = abort.load(Ordering::SeqCst);
    if code != RUNNING {
        world.abort(code);
    }
}

/// The sum of `buf` over the ranks: a non-blocking allreduce, polled with
/// short sleeps once the first polls find it unfinished.
fn all_reduce<T: Equivalence + Copy + Default>(world: &SimpleCommunicator, buf: &[T], abort: &AtomicI32) -> Vec<T> {
    let mut sum = vec![T::default(); buf.len()];
    mpi::request::scope(|scope| {
        let mut request = world.immediate_all_reduce_into(scope, buf, &mut sum[..], SystemOperation::sum());
        let mut polls = 0u32;
        loop {
            match request.test() {
                Ok(_) => break,
                Err(r) => request = r,
            }
            polls += 1;
            if polls < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(50));
                if polls.is_multiple_of(256) {
                    check_abort(world, abort);
                }
            }
        }
    });
    sum
}
