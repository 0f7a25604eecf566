//! Training and evaluating a zoo model on an image-classification dataset.
//!
//! A [`Trainer`] owns the model, the optimiser (SGD with momentum and weight
//! decay, as in He et al. 2016), the learning-rate schedule (linear warm-up,
//! then cosine decay to zero over the whole run, or steps at given
//! iterations, [`Decay`]) and the position in the
//! run. It checkpoints to a folder and resumes from one, continuing with
//! the same parameters an uninterrupted run would have had (same seed, same
//! threads).
//!
//! What it promises about the checkpoint:
//! - `checkpoint.safetensors` is the whole state — model, optimiser,
//!   position and settings — in one file written atomically, so a crash
//!   leaves the previous checkpoint or the new one, never a mix;
//!   `model.safetensors` beside it is the model alone, with torchvision-style
//!   names, for `eval`, `predict` and PyTorch.
//! - A model with a NaN or infinite weight is never saved: the step that
//!   makes one is an error naming the iteration and the parameter.
//! - Resuming checks the optimiser's state against the model and the run's
//!   settings against the checkpoint's, and says what differs.
//!
//! [`Trainer::data_parallel`] makes it one of N ranks training one model,
//! each on its share of every batch ([`crate::parallel`]); only rank 0
//! writes checkpoints, and a checkpoint resumes with any number of ranks.

use crate::parallel::{broadcast_state, uneven_split, Buckets, Parallel};
use crate::report::{Report, Score};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use wengert_core::{Error, Result, Tape};
use wengert_data::{Batch, Loader};
use wengert_nn::checkpoint::{load_checkpoint, read_metadata, save_checkpoint, save_model_with};
use wengert_nn::module::StateRef;
use wengert_nn::optim::{check_state, Adam, Cosine, LrSchedule, MultiStep, Optimizer, ParamGroups, Sgd, Warmup};
use wengert_nn::{Module, Step};
use wengert_resnet::zoo::ResNet;

/// The file [`Trainer::save`] writes the whole training state to.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The file [`Trainer::save`] writes the model alone to.
pub const MODEL: &str = "model.safetensors";

/// The settings of a run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Epochs to train.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum (unused by Adam).
    pub momentum: f64,
    /// L2 weight decay (decoupled for AdamW).
    pub weight_decay: f64,
    /// Warm-up iterations (linear from 10% of the peak).
    pub warmup: usize,
    /// Seed of the weights, the shuffling and the augmentation.
    pub seed: u64,
    /// The optimiser [`Trainer::new`] builds.
    pub optimizer: OptimizerKind,
    /// How the learning rate falls after the warm-up.
    pub decay: Decay,
    /// Groups of parameters learning at their own multiple of the rate
    /// (a pretrained backbone slower than a new classifier); none by default.
    pub groups: ParamGroups,
}

/// Builder methods, one per setting: each returns the settings with that
/// one changed, so that code written today keeps compiling when a
/// setting is added (the struct is `#[non_exhaustive]`).
impl Config {
    /// Sets the epochs to train ([`Config::epochs`](Self::epochs)).
    pub fn with_epochs(mut self, value: usize) -> Self {
        self.epochs = value;
        self
    }

    /// Sets the peak learning rate ([`Config::lr`](Self::lr)).
    pub fn with_lr(mut self, value: f64) -> Self {
        self.lr = value;
        self
    }

    /// Sets SGD's momentum ([`Config::momentum`](Self::momentum)).
    pub fn with_momentum(mut self, value: f64) -> Self {
        self.momentum = value;
        self
    }

    /// Sets the weight decay ([`Config::weight_decay`](Self::weight_decay)).
    pub fn with_weight_decay(mut self, value: f64) -> Self {
        self.weight_decay = value;
        self
    }

    /// Sets the warm-up iterations ([`Config::warmup`](Self::warmup)).
    pub fn with_warmup(mut self, value: usize) -> Self {
        self.warmup = value;
        self
    }

    /// Sets the seed of the weights, the shuffling and the augmentation ([`Config::seed`](Self::seed)).
    pub fn with_seed(mut self, value: u64) -> Self {
        self.seed = value;
        self
    }

    /// Sets the optimiser ([`Config::optimizer`](Self::optimizer)).
    pub fn with_optimizer(mut self, value: OptimizerKind) -> Self {
        self.optimizer = value;
        self
    }

    /// Sets how the learning rate falls after the warm-up ([`Config::decay`](Self::decay)).
    pub fn with_decay(mut self, value: Decay) -> Self {
        self.decay = value;
        self
    }

    /// Sets the parameter groups and their learning-rate scales ([`Config::groups`](Self::groups)).
    pub fn with_groups(mut self, value: ParamGroups) -> Self {
        self.groups = value;
        self
    }
}

/// How the learning rate falls after the warm-up.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Decay {
    /// Cosine to zero over the whole run (Loshchilov & Hutter 2017).
    #[default]
    Cosine,
    /// Multiplied by `gamma` at each milestone iteration: He et al. 2016
    /// divide by 10 at 32k and 48k iterations.
    Steps {
        /// The iterations at which the rate falls, in increasing order.
        milestones: Vec<usize>,
        /// The factor, in `(0, 1]`.
        gamma: f64,
    },
}

/// Which optimiser a run uses, with the configuration's momentum and
/// weight decay and PyTorch's other defaults. An optimiser of your own goes
/// in with [`Trainer::set_optimizer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OptimizerKind {
    /// SGD with momentum, as He et al. train ResNets.
    #[default]
    Sgd,
    /// Adam with an L2 penalty.
    Adam,
    /// AdamW: decoupled weight decay.
    AdamW,
}

impl OptimizerKind {
    fn build(self, momentum: f64, weight_decay: f64, groups: ParamGroups) -> Box<dyn Optimizer<f32>> {
        match self {
            OptimizerKind::Sgd => Box::new(Sgd::new(momentum, weight_decay).with_groups(groups)),
            OptimizerKind::Adam => Box::new(Adam::new(weight_decay).with_groups(groups)),
            OptimizerKind::AdamW => Box::new(Adam::adamw(weight_decay).with_groups(groups)),
        }
    }
}

/// One epoch of SGD at 0.1 (momentum 0.9, weight decay 5e-4), 100 warm-up
/// iterations, seed 0: `wengert train`'s defaults for the image models.
impl Default for Config {
    fn default() -> Self {
        Config {
            epochs: 1,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            warmup: 100,
            seed: 0,
            optimizer: OptimizerKind::Sgd,
            decay: Decay::Cosine,
            groups: ParamGroups::new(),
        }
    }
}

impl Config {
    /// Checks every setting's range: at least one epoch, a finite positive
    /// learning rate, momentum in `[0, 1)`, finite non-negative weight decay.
    pub fn check(&self) -> Result<()> {
        let bad = |arg: &str, detail: String| Err(Error::argument("train", arg, detail));
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1, got 0".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("must be finite and positive, got {}", self.lr));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad("momentum", format!("must be in [0, 1), got {}", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", format!("must be finite and non-negative, got {}", self.weight_decay));
        }
        if let Decay::Steps { milestones, gamma } = &self.decay {
            if !(gamma.is_finite() && *gamma > 0.0 && *gamma <= 1.0) {
                return bad("decay", format!("gamma must be in (0, 1], got {gamma}"));
            }
            if milestones.windows(2).any(|w| w[0] >= w[1]) {
                return bad("decay", format!("milestones must increase, got {milestones:?}"));
            }
        }
        Ok(())
    }
}

/// What a progress callback of [`Trainer::epoch`] returns: `()` to go on,
/// or a [`ControlFlow`] whose `Break` stops the epoch after that step.
pub trait Progress {
    /// Whether to stop after this step.
    fn stop(&self) -> bool;
}

impl Progress for () {
    fn stop(&self) -> bool {
        false
    }
}

impl Progress for ControlFlow<()> {
    fn stop(&self) -> bool {
        self.is_break()
    }
}

/// The number of rows of `logits` (`[N, C]`) whose largest entry is at the label.
fn correct(logits: &wengert_core::Tensor<f32>, labels: &[usize]) -> usize {
    let c = logits.dims()[1];
    logits
        .data()
        .chunks(c)
        .zip(labels)
        .filter(|(row, &l)| {
            row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 == l
        })
        .count()
}

/// A model being trained: a zoo ResNet by default, or any module that maps
/// a batch of images to logits.
pub struct Trainer<M: Module<f32> = ResNet<f32>> {
    /// The network.
    pub model: M,
    /// Rescale the gradients to at most this global norm before each update
    /// (`None`: no clipping). Recurrent nets usually want it.
    pub clip: Option<f64>,
    /// Check every op's output and gradient for NaN and infinity
    /// ([`Tape::set_detect_anomaly`]); slow, for finding where a NaN starts.
    pub detect_anomaly: bool,
    optimizer: Box<dyn Optimizer<f32>>,
    schedule: Warmup<Box<dyn LrSchedule>>,
    config: Config,
    /// Iterations done so far.
    pub iteration: usize,
    /// Batches per epoch.
    batches: usize,
    /// The score of the current epoch's steps so far, saved with the
    /// position so that a resumed epoch's score counts them too.
    partial: Score,
    /// Settings the caller adds, which a resumed run must share.
    tags: BTreeMap<String, String>,
    /// What [`Trainer::describe`] records.
    described: BTreeMap<String, String>,
    /// The other ranks, in data-parallel training.
    parallel: Option<Parallel>,
}

impl<M: Module<f32>> Trainer<M> {
    /// A fresh run of `model` over the epochs of `train`: the loader says
    /// how many batches an epoch has, which sets the learning-rate
    /// schedule; [`Trainer::epoch`] then takes that loader (or one with
    /// the same batches). An error when a setting is out of range
    /// ([`Config::check`]) or the loader has no batches.
    pub fn new(model: M, config: Config, train: &Loader) -> Result<Self> {
        Self::with_batches(model, config, train.batches())
    }

    /// A fresh run of `model` over `batches_per_epoch` batches an epoch,
    /// for batches of your own given to [`Trainer::step`]; an error when a
    /// setting is out of range ([`Config::check`]) or there are no batches.
    pub fn with_batches(model: M, config: Config, batches_per_epoch: usize) -> Result<Self> {
        config.check()?;
        if batches_per_epoch == 0 {
            return Err(Error::argument("train", "data", "an epoch has no batches: the training set is empty"));
        }
        let total = config.epochs.checked_mul(batches_per_epoch).ok_or_else(|| {
            let (e, b) = (config.epochs, batches_per_epoch);
            Error::argument("train", "epochs", format!("{e} epochs of {b} batches are more steps than can be counted"))
        })?;
        let decay: Box<dyn LrSchedule> = match &config.decay {
            Decay::Cosine => Box::new(Cosine { base: config.lr, min: 0.0, period: total }),
            Decay::Steps { milestones, gamma } => {
                Box::new(MultiStep { base: config.lr, milestones: milestones.clone(), gamma: *gamma })
            }
        };
        let schedule = Warmup { steps: config.warmup.min(total), start: 0.1, inner: decay };
        Ok(Trainer {
            model,
            clip: None,
            detect_anomaly: false,
            optimizer: config.optimizer.build(config.momentum, config.weight_decay, config.groups.clone()),
            schedule,
            config,
            iteration: 0,
            batches: batches_per_epoch,
            partial: Score::default(),
            tags: BTreeMap::new(),
            described: BTreeMap::new(),
            parallel: None,
        })
    }

    /// Trains data-parallel with the other ranks of `parallel` (see
    /// [`crate::parallel`]): takes rank 0's parameters and buffers first,
    /// so that every rank starts from the same model. Every rank calls it,
    /// then trains on the same loader (each takes its own share).
    pub fn data_parallel(&mut self, parallel: Parallel) -> Result<()> {
        broadcast_state(&mut self.model, &*parallel.group, true)?;
        self.parallel = Some(parallel);
        Ok(())
    }

    /// The data-parallel settings, if any, with their timings.
    pub fn parallel(&self) -> Option<&Parallel> {
        self.parallel.as_ref()
    }

    /// This process's rank (0 when training alone); only rank 0 writes files.
    pub fn rank(&self) -> usize {
        self.parallel.as_ref().map_or(0, |p| p.group.rank())
    }

    /// Whether `flag` is set on any rank (on this one, when training
    /// alone): for stopping every rank at the same step.
    pub fn any_rank(&self, flag: bool) -> Result<bool> {
        let Some(p) = &self.parallel else { return Ok(flag) };
        let mut v = [f64::from(u8::from(flag))];
        p.group.all_reduce_sum(&mut v)?;
        Ok(v[0] > 0.0)
    }

    /// Records a setting of the run (the model's name, the batch size, the
    /// dataset) in its checkpoints; [`Trainer::resume`] refuses a
    /// checkpoint whose value differs. The keys `model`, `classes` and
    /// `normalise` also go into `model.safetensors`: loading errors then
    /// name the model, and whoever uses it knows its classes and how its
    /// inputs were normalised.
    pub fn tag(&mut self, key: &str, value: impl ToString) {
        self.tags.insert(key.to_string(), value.to_string());
    }

    /// Records a fact about the model for `model.safetensors` alone, not a
    /// setting a resumed run must share: `wengert train` writes
    /// `image_shape` (`C,H,W`) and `class_names` (one per line), which
    /// `predict --image` reads.
    pub fn describe(&mut self, key: &str, value: impl ToString) {
        self.described.insert(key.to_string(), value.to_string());
    }

    /// Replaces the optimiser that [`Config::optimizer`] chose with one of
    /// your own. Call it before the first step or [`Trainer::resume`].
    pub fn set_optimizer(&mut self, optimizer: Box<dyn Optimizer<f32>>) {
        self.optimizer = optimizer;
    }

    /// The run's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The epoch and batch the next step trains on.
    pub fn position(&self) -> (usize, usize) {
        (self.iteration / self.batches, self.iteration % self.batches)
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.schedule.lr(self.iteration)
    }

    /// One training step on `batch`; returns its score: over the whole
    /// batch, every rank's share of it, in data-parallel training. There a
    /// batch that leaves some rank no image (a last batch smaller than the
    /// rank count) is skipped on every rank, and its score is empty.
    pub fn step(&mut self, batch: &Batch<f32>) -> Result<Score> {
        let local = batch.labels.len();
        // This rank's share of the whole batch, which scales its loss.
        let share = match &self.parallel {
            None => 1.0,
            Some(p) => {
                let mut n = [local as f64, f64::from(u8::from(local == 0))];
                p.group.all_reduce_sum(&mut n)?;
                if n[1] > 0.0 {
                    self.iteration += 1;
                    return Ok(Score::default());
                }
                local as f64 / n[0]
            }
        };
        // The tape lives only until the gradients are out: while it holds
        // the parameters' buffers, updating them in place would copy each.
        let (score, grads) = {
            let tape = Tape::new();
            tape.set_detect_anomaly(self.detect_anomaly);
            let mut step = Step::train(&tape, self.config.seed ^ self.iteration as u64);
            if let Some(p) = self.parallel.as_ref().filter(|p| p.sync_bn) {
                step = step.with_sync_bn(p.group.clone());
            }
            let logits = self.model.forward(&mut step, tape.constant(batch.images.clone()))?;
            let loss = wengert_ops::cross_entropy(logits, &batch.labels)?;
            let hits = correct(&logits.value()?, &batch.labels);
            let mut score = Score::default();
            score.add(loss.value()?.item()? as f64, hits, local);
            if let Some(p) = &self.parallel {
                score = score.summed(&*p.group)?;
            }
            if !score.loss.is_finite() {
                return Err(Error::argument(
                    "train",
                    "loss",
                    format!("the loss became {} at iteration {}", score.loss, self.iteration),
                ));
            }
            let grads = match &mut self.parallel {
                None => step.backward(loss)?,
                Some(p) => {
                    let buckets = Buckets::plan(&*p.group, &step.trained(), p.bucket_bytes);
                    let mut grads =
                        step.backward_with(loss.mul_scalar(share as f32)?, Some(&|id, g| buckets.ready(id, g)))?;
                    buckets.finish(&mut grads, &mut p.overlap)?;
                    grads
                }
            };
            (score, grads)
        };
        let mut grads = grads;
        if let Some(max) = self.clip {
            wengert_nn::optim::clip_grad_norm(&mut grads, max)?;
        }
        let lr = self.lr();
        self.optimizer.step(&mut self.model, &grads, lr)?;
        if let Some(p) = self.parallel.as_ref().filter(|p| !p.sync_bn) {
            // Each rank's own batch statistics moved its running ones.
            broadcast_state(&mut self.model, &*p.group, false)?;
        }
        if let Some(name) = first_non_finite(&self.model) {
            return Err(Error::argument(
                "train",
                "lr",
                format!(
                    "the update of iteration {} (learning rate {lr:e}) made {name} NaN or infinite; the learning \
                     rate is likely too high. Nothing was saved: the last checkpoint is the last good state",
                    self.iteration
                ),
            ));
        }
        self.iteration += 1;
        Ok(score)
    }

    /// Trains from the current position to the end of its epoch, calling
    /// `progress(score so far, images/s)` after each step; a callback that
    /// returns `ControlFlow::Break(())` stops the epoch after that step
    /// ([`Trainer::position`] then says where). Returns the score of the
    /// epoch's steps, those before a stop or a resume included.
    pub fn epoch<P: Progress>(&mut self, train: &Loader, mut progress: impl FnMut(&Score, f64) -> P) -> Result<Score> {
        if train.batches() != self.batches {
            return Err(Error::argument(
                "train",
                "data",
                format!(
                    "the loader has {} batches an epoch, the trainer's schedule {}: give `epoch` the loader the \
                     trainer was made with",
                    train.batches(),
                    self.batches
                ),
            ));
        }
        let train = self.share(train)?;
        let (epoch, start) = self.position();
        let mut score = if start == 0 { Score::default() } else { self.partial };
        let (t0, before) = (std::time::Instant::now(), score.images);
        for batch in train.epoch::<f32>(epoch as u64, start) {
            let batch = batch?;
            let s = self.step(&batch)?;
            score.merge(&s);
            self.partial = score;
            let rate = (score.images - before) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            // Every rank stops at the same step, when any is asked to.
            if self.any_rank(progress(&score, rate).stop())? {
                break;
            }
        }
        if self.position().1 == 0 {
            self.partial = Score::default();
        }
        Ok(score)
    }

    /// This rank's share of `data`: all of it when training alone.
    fn share(&self, data: &Loader) -> Result<Loader> {
        let Some(p) = &self.parallel else { return Ok(data.clone()) };
        let (rank, ranks) = (p.group.rank(), p.group.size());
        if let Some(uneven) = uneven_split(data.batch_size(), ranks) {
            return Err(Error::argument("train", "batch_size", uneven));
        }
        data.clone().shard(rank, ranks)
    }

    /// Loss and accuracy on `data` in evaluation mode; in data-parallel
    /// training, each rank evaluates its share of every batch and the
    /// counts are summed.
    pub fn evaluate(&mut self, data: &Loader) -> Result<Score> {
        Ok(self.evaluate_report(data)?.score)
    }

    /// [`Trainer::evaluate`] with the confusion matrix and top-5 accuracy.
    pub fn evaluate_report(&mut self, data: &Loader) -> Result<Report> {
        let Some(p) = &self.parallel else { return evaluate_report(&mut self.model, data) };
        let (rank, ranks) = (p.group.rank(), p.group.size());
        evaluate_report(&mut self.model, &data.clone().shard(rank, ranks)?)?.summed(&*p.group)
    }

    /// Writes the checkpoint into `dir`: first [`CHECKPOINT`], the whole
    /// state in one atomic file, then [`MODEL`], the model alone. Refuses a
    /// model with a non-finite value, so a good checkpoint is never replaced
    /// by a broken one.
    pub fn save(&self, dir: &Path) -> Result<()> {
        if let Some(name) = first_non_finite(&self.model) {
            return Err(Error::argument(
                "train",
                "checkpoint",
                format!("{name} holds NaN or infinity at iteration {}: not saved", self.iteration),
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io { path: dir.display().to_string(), detail: e.to_string() })?;
        let mut meta = self.settings();
        meta.insert("position.iteration".into(), self.iteration.to_string());
        let p = &self.partial;
        meta.insert("position.epoch_score".into(), format!("{},{},{}", p.loss, p.accuracy, p.images));
        meta.insert("run.epochs".into(), self.config.epochs.to_string());
        save_checkpoint(&self.model, &self.optimizer.state(), &meta, &dir.join(CHECKPOINT))?;
        let mut model_meta: BTreeMap<String, String> = ["model", "classes", "normalise"]
            .into_iter()
            .filter_map(|k| Some((k.to_string(), self.tags.get(k)?.clone())))
            .collect();
        model_meta.extend(self.described.clone());
        save_model_with(&self.model, &model_meta, &dir.join(MODEL))
    }

    /// The settings a resumed run must share, as checkpoint metadata.
    fn settings(&self) -> BTreeMap<String, String> {
        let c = &self.config;
        let mut s: BTreeMap<String, String> = [
            ("optimizer", self.optimizer.name().to_string()),
            ("batches_per_epoch", self.batches.to_string()),
            ("seed", c.seed.to_string()),
            ("lr", c.lr.to_string()),
            ("momentum", c.momentum.to_string()),
            ("weight_decay", c.weight_decay.to_string()),
            ("warmup", c.warmup.to_string()),
            ("clip", format!("{:?}", self.clip)),
        ]
        .into_iter()
        .map(|(k, v)| (format!("setting.{k}"), v))
        .collect();
        // Recorded only when not the default, so that checkpoints from
        // before the setting existed still resume.
        if c.decay != Decay::Cosine {
            s.insert("setting.decay".into(), format!("{:?}", c.decay));
        }
        s.extend(self.tags.iter().map(|(k, v)| (format!("setting.{k}"), v.clone())));
        if let Some(m) = self.tags.get("model") {
            s.insert("model".into(), m.clone());
        }
        s
    }

    /// Restores what [`Trainer::save`] wrote. Fails, saying what differs,
    /// when the checkpoint was made with other settings (optimiser, batches
    /// per epoch, learning rate, tags, …) or its optimiser state does not
    /// fit the model; the number of epochs may differ, to extend a run.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(CHECKPOINT);
        let saved = read_metadata(&path)?;
        let now = self.settings();
        let keys: std::collections::BTreeSet<&String> = saved.keys().chain(now.keys()).collect();
        let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "unset".into());
        let differ: Vec<String> = keys
            .into_iter()
            .filter_map(|k| Some((k.strip_prefix("setting.")?, saved.get(k), now.get(k))))
            .filter(|(_, was, is)| was != is)
            .map(|(k, was, is)| format!("{k} {} (now {})", show(was), show(is)))
            .collect();
        if !differ.is_empty() {
            return Err(Error::Io {
                path: path.display().to_string(),
                detail: format!(
                    "the checkpoint was made with other settings: {}; resume with the same settings or start a new run",
                    differ.join(", ")
                ),
            });
        }
        let (state, meta) = load_checkpoint(&mut self.model, &path)?;
        check_state(&self.model, &state)
            .map_err(|e| Error::Io { path: path.display().to_string(), detail: e.to_string() })?;
        self.optimizer.load_state(state)?;
        self.iteration = meta.get("position.iteration").and_then(|v| v.parse().ok()).ok_or_else(|| Error::Io {
            path: path.display().to_string(),
            detail: "no training position in the metadata".into(),
        })?;
        // The running score of a stopped epoch (checkpoints before it had none).
        self.partial = match meta.get("position.epoch_score").map(|v| v.split(',').collect::<Vec<_>>()).as_deref() {
            Some([loss, accuracy, images]) => Score {
                loss: loss.parse().unwrap_or(0.0),
                accuracy: accuracy.parse().unwrap_or(0.0),
                images: images.parse().unwrap_or(0),
            },
            _ => Score::default(),
        };
        Ok(())
    }
}

/// The name of the first parameter or buffer of `model` holding NaN or an
/// infinity, if any.
pub fn first_non_finite<T: wengert_core::Float>(model: &dyn Module<T>) -> Option<String> {
    let mut found = None;
    model.visit("", &mut |name, s| {
        let t = match s {
            StateRef::Param(p) => p.value(),
            StateRef::Buffer(b) => b,
            StateRef::Count(_) => return,
        };
        if found.is_none() && t.data().iter().any(|v| !v.is_finite()) {
            found = Some(name);
        }
    });
    found
}

/// Loss and accuracy of `model` on `data`, in evaluation mode.
pub fn evaluate(model: &mut dyn Module<f32>, data: &Loader) -> Result<Score> {
    Ok(evaluate_report(model, data)?.score)
}

/// Loss, accuracy, the confusion matrix and top-5 accuracy of `model` on
/// `data`, in evaluation mode.
pub fn evaluate_report(model: &mut dyn Module<f32>, data: &Loader) -> Result<Report> {
    let mut report: Option<Report> = None;
    for batch in data.epoch::<f32>(0, 0) {
        let batch = batch?;
        if batch.labels.is_empty() {
            continue; // a rank's empty share of a small last batch
        }
        let tape = Tape::new();
        let (loss, logits) = tape.no_grad(|| -> Result<(f64, wengert_core::Tensor<f32>)> {
            let logits = model.forward(&mut Step::eval(&tape), tape.constant(batch.images.clone()))?;
            let loss = wengert_ops::cross_entropy(logits, &batch.labels)?.value()?.item()? as f64;
            Ok((loss, logits.value()?))
        })?;
        let r = report.get_or_insert_with(|| Report::new(logits.dims()[1]));
        let right = r.add(logits.data(), &batch.labels);
        r.score.add(loss, right, batch.labels.len());
    }
    Ok(report.unwrap_or_default())
}
