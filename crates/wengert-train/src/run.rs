//! A training run from start to finish, as a library: the loop that
//! `wengert train` and `wengert degradation` share.
//!
//! A [`Run`] drives a [`Trainer`] epoch by epoch: it trains, evaluates on
//! the test set after each epoch, and (when given a folder) saves the
//! checkpoint, the [`RunLog`] and the confusion matrix there after each
//! epoch. A stop flag (set
//! from a Ctrl-C handler, say) ends the run after the step in progress,
//! with the checkpoint and the log saved, and [`Run::resume`] continues it
//! later exactly where it stopped. What the caller shows (a progress bar, a
//! table, a plot) it does in an [`Observer`].
//!
//! ```
//! use wengert_data::{Dataset, Loader};
//! use wengert_train::run::{Outcome, Run};
//! use wengert_train::train::{Config, Trainer};
//! use wengert_resnet::zoo::ResNet;
//!
//! // 64 images of 8×8 pixels, labels 0–9.
//! let pixels = (0..64 * 64).map(|i| (i * 37 % 251) as u8).collect();
//! let digits = Dataset::new(pixels, (0..64).map(|i| (i % 10) as u8).collect(), 8, 8)?;
//! let train = Loader::new(digits.clone(), 16, 0)?;
//! let test = Loader::new(digits, 32, 0)?.in_order();
//! let model = ResNet::by_name("resnet8", 1, 10, &mut wengert_core::rng(0))?;
//! let config = Config::default().with_epochs(2).with_warmup(2);
//! let mut run = Run::new(Trainer::new(model, config, &train)?, &train, &test);
//! let Outcome::Finished { test: score } = run.run(&mut ())? else { unreachable!("nothing stops it") };
//! assert_eq!(run.log().epochs().len(), 2);
//! assert!(score.accuracy >= 0.0);
//! # Ok::<(), wengert_core::Error>(())
//! ```

use crate::report::{Report, Score};
use crate::train::Trainer;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wengert_core::{Error, Result};
use wengert_data::Loader;
use wengert_nn::checkpoint::write_atomic;
use wengert_nn::Module;

/// The file the [`RunLog`] keeps its per-epoch results in.
pub const METRICS: &str = "metrics.csv";
/// The file the [`RunLog`] keeps its running loss and error in.
pub const STEPS: &str = "steps.csv";
/// The file the last evaluation's confusion matrix goes to
/// ([`Confusion::to_csv`](crate::report::Confusion::to_csv)).
pub const CONFUSION: &str = "confusion.csv";

/// One epoch's results.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochRecord {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// The training score over the steps of the epoch (over those since a
    /// resume, for a resumed epoch).
    pub train: Score,
    /// The test score after the epoch.
    pub test: Score,
    /// Training speed over the epoch.
    pub images_per_s: f64,
}

/// The running training loss and error at one iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    /// Iterations done, counted from the start of the run.
    pub iteration: usize,
    /// Mean loss over the epoch so far.
    pub loss: f64,
    /// Training error over the epoch so far, in percent.
    pub error_percent: f64,
}

/// What a run has recorded: [`METRICS`], one row per epoch, and [`STEPS`],
/// the running loss and error every few iterations. Resuming reads both
/// back and drops rows past the checkpoint, so the files of a resumed run
/// read as those of an uninterrupted one.
#[derive(Clone, Debug, Default)]
pub struct RunLog {
    epochs: Vec<EpochRecord>,
    steps: Vec<StepRecord>,
}

const METRICS_HEADER: &str = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_s";
const STEPS_HEADER: &str = "iteration,train_loss,train_error_percent";

impl RunLog {
    /// The log saved in `dir`, or an empty one where there is none. A row
    /// that does not parse is an error naming the file and the line.
    pub fn load(dir: &Path) -> Result<RunLog> {
        let rows = |name: &str, width: usize| -> Result<Vec<Vec<f64>>> {
            let path = dir.join(name);
            let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
            let bad = |i: usize| Error::Io {
                path: path.display().to_string(),
                detail: format!("line {} is not {width} numbers", i + 1),
            };
            text.lines()
                .enumerate()
                .skip(1)
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    let v: Vec<f64> =
                        l.split(',').map(|x| x.trim().parse().map_err(|_| bad(i))).collect::<Result<_>>()?;
                    if v.len() == width {
                        Ok(v)
                    } else {
                        Err(bad(i))
                    }
                })
                .collect()
        };
        let score = |loss: f64, accuracy: f64| Score { loss, accuracy, images: 0 };
        let epochs = rows(METRICS, 6)?
            .into_iter()
            .map(|r| EpochRecord {
                epoch: r[0] as usize,
                train: score(r[1], r[2]),
                test: score(r[3], r[4]),
                images_per_s: r[5],
            })
            .collect();
        let steps = rows(STEPS, 3)?
            .into_iter()
            .map(|r| StepRecord { iteration: r[0] as usize, loss: r[1], error_percent: r[2] })
            .collect();
        Ok(RunLog { epochs, steps })
    }

    /// Drops what was recorded after `iteration` (in an epoch of `batches`).
    pub fn truncate(&mut self, iteration: usize, batches: usize) {
        self.steps.retain(|s| s.iteration <= iteration);
        self.epochs.retain(|e| e.epoch.saturating_mul(batches) <= iteration);
    }

    /// Writes [`METRICS`] and [`STEPS`] into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut metrics = vec![METRICS_HEADER.to_string()];
        metrics.extend(self.epochs.iter().map(|e| {
            format!(
                "{},{:.6},{:.6},{:.6},{:.6},{:.1}",
                e.epoch, e.train.loss, e.train.accuracy, e.test.loss, e.test.accuracy, e.images_per_s
            )
        }));
        let mut steps = vec![STEPS_HEADER.to_string()];
        steps.extend(self.steps.iter().map(|s| format!("{},{:.6},{:.4}", s.iteration, s.loss, s.error_percent)));
        write_atomic(&dir.join(METRICS), (metrics.join("\n") + "\n").as_bytes())?;
        write_atomic(&dir.join(STEPS), (steps.join("\n") + "\n").as_bytes())
    }

    /// The epochs recorded, in order.
    pub fn epochs(&self) -> &[EpochRecord] {
        &self.epochs
    }

    /// The running loss and error, in order of iteration.
    pub fn steps(&self) -> &[StepRecord] {
        &self.steps
    }
}

/// What a caller sees of a [`Run`] as it goes; every method does nothing
/// unless overridden, and `()` observes nothing.
pub trait Observer {
    /// An epoch (counted from 0) starts, or resumes, at batch `start`.
    fn epoch_start(&mut self, epoch: usize, start: usize) {
        let _ = (epoch, start);
    }

    /// A step is done: the epoch's score so far and its speed in images/s.
    fn step(&mut self, score: &Score, images_per_s: f64) {
        let _ = (score, images_per_s);
    }

    /// The test set was evaluated after an epoch: the confusion matrix and
    /// top-5 accuracy, before [`Observer::epoch_end`].
    fn evaluated(&mut self, report: &Report) {
        let _ = report;
    }

    /// An epoch is done, evaluated, and (with a folder) saved; `log` holds
    /// it. An error ends the run.
    fn epoch_end(&mut self, record: &EpochRecord, log: &RunLog) -> Result<()> {
        let _ = (record, log);
        Ok(())
    }
}

impl Observer for () {}

/// How a [`Run`] ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Every epoch is done; the test score after the last.
    Finished {
        /// The test score.
        test: Score,
    },
    /// The stop flag ended it after iteration `iteration`; with a folder,
    /// the checkpoint and the log are saved there.
    Stopped {
        /// Iterations done.
        iteration: usize,
        /// Whether the last epoch was finished (and evaluated) first.
        epoch_done: bool,
    },
}

/// A training run; see the [module documentation](self).
pub struct Run<'a, M: Module<f32>> {
    trainer: Trainer<M>,
    train: &'a Loader,
    test: &'a Loader,
    out: Option<PathBuf>,
    log: RunLog,
    stop: Arc<AtomicBool>,
    report: Option<Report>,
    /// Record the running loss and error every this many iterations (10).
    pub log_every: usize,
}

impl<'a, M: Module<f32>> Run<'a, M> {
    /// A run of `trainer` over `train`, evaluated on `test`, that keeps
    /// nothing on disk.
    pub fn new(trainer: Trainer<M>, train: &'a Loader, test: &'a Loader) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        Run { trainer, train, test, out: None, log: RunLog::default(), stop, report: None, log_every: 10 }
    }

    /// Saves the checkpoint and the log into `dir` after every epoch (and
    /// when stopped).
    pub fn save_to(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out = Some(dir.into());
        self
    }

    /// Continues the run saved in the folder given to [`Run::save_to`]:
    /// the trainer's state from its checkpoint ([`Trainer::resume`]) and
    /// the log up to that point.
    pub fn resume(&mut self) -> Result<()> {
        let Some(dir) = &self.out else {
            return Err(Error::argument("Run::resume", "folder", "the run has no folder to resume from"));
        };
        self.trainer.resume(dir)?;
        let mut log = RunLog::load(dir)?;
        log.truncate(self.trainer.iteration, self.train.batches());
        self.log = log;
        Ok(())
    }

    /// The flag that stops the run after the step in progress; set it from
    /// another thread or a signal handler.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The trainer (the model, its position).
    pub fn trainer(&self) -> &Trainer<M> {
        &self.trainer
    }

    /// The run's log so far.
    pub fn log(&self) -> &RunLog {
        &self.log
    }

    /// The last evaluation's report: per-class accuracy, the confusion
    /// matrix, top-5 accuracy.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    /// The trained model, when the run is over.
    pub fn into_trainer(self) -> Trainer<M> {
        self.trainer
    }

    /// Saves the checkpoint and the log; in data-parallel training only
    /// rank 0 writes, the others holding the same state.
    fn save(&self) -> Result<()> {
        if self.trainer.rank() != 0 {
            return Ok(());
        }
        match &self.out {
            Some(dir) => {
                self.trainer.save(dir)?;
                if let Some(r) = &self.report {
                    r.confusion.save_csv(&dir.join(CONFUSION), self.test.dataset().class_names())?;
                }
                self.log.save(dir)
            }
            None => Ok(()),
        }
    }

    /// Trains to the last epoch of the trainer's configuration, or until
    /// the stop flag is set.
    pub fn run(&mut self, observer: &mut dyn Observer) -> Result<Outcome> {
        let epochs = self.trainer.config().epochs;
        let batches = self.train.batches();
        let every = self.log_every.max(1);
        let mut last_test = None;
        while self.trainer.position().0 < epochs {
            let (epoch, start) = self.trainer.position();
            observer.epoch_start(epoch, start);
            let mut done = epoch * batches + start;
            self.log.truncate(done, batches);
            let mut images_per_s = 0.0;
            let (log, stop) = (&mut self.log, &self.stop);
            let train = self.trainer.epoch(self.train, |s, rate| {
                images_per_s = rate;
                done += 1;
                if done.is_multiple_of(every) {
                    let error_percent = 100.0 * (1.0 - s.accuracy);
                    log.steps.push(StepRecord { iteration: done, loss: s.loss, error_percent });
                }
                observer.step(s, rate);
                if stop.load(Ordering::SeqCst) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            let stopped = self.stop.load(Ordering::SeqCst);
            if self.trainer.position().0 == epoch {
                // Stopped inside the epoch: keep the steps done so far.
                self.save()?;
                return Ok(Outcome::Stopped { iteration: self.trainer.iteration, epoch_done: false });
            }
            let report = self.trainer.evaluate_report(self.test)?;
            let test = report.score;
            observer.evaluated(&report);
            self.report = Some(report);
            let record = EpochRecord { epoch: epoch + 1, train, test, images_per_s };
            self.log.epochs.push(record);
            self.save()?;
            observer.epoch_end(&record, &self.log)?;
            last_test = Some(test);
            if stopped {
                return Ok(Outcome::Stopped { iteration: self.trainer.iteration, epoch_done: true });
            }
        }
        let test = match last_test {
            Some(t) => t,
            None => self.trainer.evaluate(self.test)?,
        };
        Ok(Outcome::Finished { test })
    }
}
