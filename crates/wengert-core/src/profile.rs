//! Where a computation spends its time, op by op: [`record`] runs a
//! closure and returns, for each op name, the calls and time of its
//! forward passes and of its backward passes, as `torch.profiler`'s
//! `key_averages()` does. An op that names what sets a call apart
//! ([`Op::profile_detail`](crate::Op::profile_detail): a convolution's
//! geometry and the algorithm it runs) gets a row per detail.
//!
//! Times are *self* times: an op whose forward applies other ops (a
//! residual block recorded as one node) is charged for its own work, and
//! the ops inside it for theirs, so the rows add up to the time spent in
//! ops. Work an op's backward does through other ops (a `vjp` written with
//! differentiable operations) is charged to that backward. What the
//! closure does outside any op (the optimiser's update, the data, the
//! bookkeeping) is the profile's wall time less the ops' total.
//!
//! Profiling is per thread, off unless [`record`] runs: the cost of the
//! check when it is off is one thread-local read per op.
//!
//! ```
//! use wengert_core::{profile, Tape, Tensor};
//! let (sum, p) = profile::record(|| -> wengert_core::Result<f64> {
//!     let tape = Tape::new();
//!     let x = tape.leaf(Tensor::<f64>::full([64, 64], 0.5));
//!     let y = (x.exp()? * x).sum_all()?;
//!     tape.backward(y)?;
//!     y.value()?.item()
//! });
//! assert!(sum? > 0.0);
//! let exp = p.ops.iter().find(|o| o.name == "exp").unwrap();
//! assert_eq!((exp.forward.calls, exp.backward.calls), (1, 1));
//! assert!(p.ops_total() <= p.wall);
//! # Ok::<(), wengert_core::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Calls and self time of one op's forward or backward passes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timing {
    /// How many times it ran.
    pub calls: u64,
    /// Time spent in it, less the time of ops it applied.
    pub time: Duration,
    /// Floating-point operations done, where the op says
    /// ([`Op::flops`](crate::Op::flops)); 0 otherwise. A backward pass
    /// counts the ops it applies (a convolution's gradients are
    /// convolutions).
    pub flops: f64,
}

impl Timing {
    /// GFLOPS over its time, when the op counts its work.
    pub fn gflops(&self) -> Option<f64> {
        (self.flops > 0.0 && !self.time.is_zero()).then(|| self.flops / self.time.as_secs_f64() / 1e9)
    }
}

/// One op's row of a [`Profile`].
#[derive(Clone, Debug, PartialEq)]
pub struct OpProfile {
    /// The op's name ([`Op::name`](crate::Op::name)).
    pub name: &'static str,
    /// What sets these calls apart from the op's others, where the op
    /// says ([`Op::profile_detail`](crate::Op::profile_detail)).
    pub detail: Option<String>,
    /// Its forward passes.
    pub forward: Timing,
    /// Its backward passes (`tensor_backward` or `vjp`).
    pub backward: Timing,
}

impl OpProfile {
    /// Forward and backward time together.
    pub fn total(&self) -> Duration {
        self.forward.time + self.backward.time
    }
}

/// What [`record`] measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// One row per op name and detail, the most time first.
    pub ops: Vec<OpProfile>,
    /// The closure's whole time.
    pub wall: Duration,
    /// Page faults the process took meanwhile (minor and major, from
    /// `/proc/self/stat`; all threads), where the system says.
    pub page_faults: Option<u64>,
}

impl Profile {
    /// Time spent in ops.
    pub fn ops_total(&self) -> Duration {
        self.ops.iter().map(OpProfile::total).sum()
    }

    /// The profile as a table: each op's forward and backward time in ms
    /// and calls, its share of the wall time, each pass's GFLOPS where
    /// the op counts its work, and its detail; then the time outside ops,
    /// and page faults.
    /// `per` divides times, calls and faults (the number of steps
    /// profiled, to show them per step).
    pub fn table(&self, per: usize) -> String {
        let per = per.max(1) as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / per;
        let wall = self.wall.as_secs_f64().max(f64::MIN_POSITIVE);
        let mut s = format!(
            "{:<24} {:>10} {:>8} {:>10} {:>8} {:>7} {:>9} {:>9}  detail\n",
            "op", "fwd ms", "calls", "bwd ms", "calls", "share", "fwd GF/s", "bwd GF/s"
        );
        let gflops = |t: &Timing| t.gflops().map_or(String::new(), |g| format!("{g:.1}"));
        for o in &self.ops {
            s += &format!(
                "{:<24} {:>10.3} {:>8.1} {:>10.3} {:>8.1} {:>6.1}% {:>9} {:>9}  {}\n",
                o.name,
                ms(o.forward.time),
                o.forward.calls as f64 / per,
                ms(o.backward.time),
                o.backward.calls as f64 / per,
                100.0 * o.total().as_secs_f64() / wall,
                gflops(&o.forward),
                gflops(&o.backward),
                o.detail.as_deref().unwrap_or("")
            );
        }
        let outside = self.wall.saturating_sub(self.ops_total());
        s += &format!(
            "{:<24} {:>10.3} {:>8} {:>10} {:>8} {:>6.1}%\n",
            "(outside ops)",
            ms(outside),
            "",
            "",
            "",
            100.0 * outside.as_secs_f64() / wall
        );
        s += &format!("{:<24} {:>10.3}\n", "total", ms(self.wall));
        if let Some(f) = self.page_faults {
            s += &format!("page faults: {:.0}\n", f as f64 / per);
        }
        s
    }
}

/// Which pass a frame times.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Forward,
    Backward,
}

struct Frame {
    key: Key,
    phase: Phase,
    start: Instant,
    /// Time of the ops this one applied, charged to them.
    children: Duration,
}

/// A row of the profile: the op's name and detail.
type Key = (&'static str, Option<String>);

#[derive(Default)]
struct Recorder {
    rows: BTreeMap<Key, (Timing, Timing)>,
    stack: Vec<Frame>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread with profiling on, and returns its result with
/// the profile of the ops it ran. A `record` inside another profiles its
/// own closure alone; the outer one then misses that part.
pub fn record<R>(f: impl FnOnce() -> R) -> (R, Profile) {
    let outer = RECORDER.with(|r| r.borrow_mut().replace(Recorder::default()));
    let faults = page_faults();
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed();
    let page_faults = faults.zip(page_faults()).map(|(a, b)| b.saturating_sub(a));
    let rec = RECORDER.with(|r| std::mem::replace(&mut *r.borrow_mut(), outer)).unwrap_or_default();
    let mut ops: Vec<OpProfile> = rec
        .rows
        .into_iter()
        .map(|((name, detail), (forward, backward))| OpProfile { name, detail, forward, backward })
        .collect();
    ops.sort_by(|a, b| b.total().cmp(&a.total()).then(a.name.cmp(b.name)).then(a.detail.cmp(&b.detail)));
    (out, Profile { ops, wall, page_faults })
}

/// The process's page faults so far, minor and major (Linux).
fn page_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name in parentheses: state is field 3, minflt 10, majflt 12.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(7)?.parse::<u64>().ok()? + fields.get(9)?.parse::<u64>().ok()?)
}

/// Times one pass of an op until dropped, when profiling is on.
pub(crate) struct Span {
    /// This thread is profiling.
    recording: bool,
    /// This span is timed (not a forward pass inside a backward one).
    on: bool,
}

impl Span {
    /// Starts timing `name`'s `phase`, in the row of the detail `detail`
    /// gives (asked only while profiling); a forward pass applied inside a
    /// backward one is part of that backward and not timed apart.
    pub(crate) fn enter(name: &'static str, detail: impl FnOnce() -> Option<String>, phase: Phase) -> Span {
        RECORDER.with(|r| {
            let mut r = r.borrow_mut();
            let Some(rec) = r.as_mut() else { return Span { recording: false, on: false } };
            if phase == Phase::Forward && rec.stack.last().is_some_and(|f| f.phase == Phase::Backward) {
                return Span { recording: true, on: false };
            }
            let key = (name, detail());
            rec.stack.push(Frame { key, phase, start: Instant::now(), children: Duration::ZERO });
            Span { recording: true, on: true }
        })
    }

    /// Whether this thread is profiling, so that work counts are wanted.
    pub(crate) fn recording(&self) -> bool {
        self.recording
    }

    /// Adds `flops` of work to the pass being timed: this span's, or the
    /// backward pass it runs inside.
    pub(crate) fn add_flops(&self, flops: f64) {
        RECORDER.with(|r| {
            if let Some(rec) = r.borrow_mut().as_mut() {
                let Some(frame) = rec.stack.last() else { return };
                let (key, phase) = (frame.key.clone(), frame.phase);
                let row = rec.rows.entry(key).or_default();
                let t = if phase == Phase::Forward { &mut row.0 } else { &mut row.1 };
                t.flops += flops;
            }
        });
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if !self.on {
            return;
        }
        RECORDER.with(|r| {
            let mut r = r.borrow_mut();
            let Some(rec) = r.as_mut() else { return };
            let Some(frame) = rec.stack.pop() else { return };
            let total = frame.start.elapsed();
            if let Some(parent) = rec.stack.last_mut() {
                parent.children += total;
            }
            let row = rec.rows.entry(frame.key).or_default();
            let t = if frame.phase == Phase::Forward { &mut row.0 } else { &mut row.1 };
            t.calls += 1;
            t.time += total.saturating_sub(frame.children);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tape, Tensor};

    fn graph() -> crate::Result<()> {
        let tape = Tape::new();
        let x = tape.leaf(Tensor::<f64>::full([8, 8], 0.25));
        let y = (x.exp()? * x).sum_all()?;
        let y = y * y;
        tape.backward(y)?;
        Ok(())
    }

    #[test]
    fn calls_are_counted_per_op_and_pass_and_times_add_up() {
        let (done, p) = record(graph);
        done.unwrap();
        let calls = |name: &str| {
            let o = p.ops.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("{name} in {:?}", p.ops));
            (o.forward.calls, o.backward.calls)
        };
        assert_eq!(calls("exp"), (1, 1));
        assert_eq!(calls("mul"), (2, 2));
        assert_eq!(calls("sum"), (1, 1));
        assert!(p.ops_total() <= p.wall);
        assert!(p.ops.windows(2).all(|w| w[0].total() >= w[1].total()), "the most time first");
        let table = p.table(1);
        assert!(table.starts_with("op ") && table.contains("\nexp ") && table.contains("(outside ops)"), "{table}");
        // Off outside `record`: nothing is kept.
        graph().unwrap();
        assert!(RECORDER.with(|r| r.borrow().is_none()));
    }

    #[test]
    fn a_record_inside_another_keeps_its_own_ops() {
        let ((), outer) = record(|| {
            let (done, inner) = record(graph);
            done.unwrap();
            assert!(inner.ops.iter().any(|o| o.name == "exp"));
            let tape = Tape::new();
            let x = tape.leaf(Tensor::<f64>::full([2], 1.0));
            tape.backward(x.log().unwrap().sum_all().unwrap()).unwrap();
        });
        let names: Vec<&str> = outer.ops.iter().map(|o| o.name).collect();
        assert!(names.contains(&"log") && !names.contains(&"exp"), "{names:?}");
    }
}
