//! Training and evaluating a zoo model on an image-classification dataset.
//!
//! A [`Trainer`] owns the model, the optimiser (SGD with momentum and weight
//! decay, as in He et al. 2016), the learning-rate schedule (linear warm-up,
//! then cosine decay to zero over the whole run) and the position in the
//! run. It checkpoints to a folder — the model as `model.safetensors` with
//! torchvision-style names, the optimiser and position as
//! `training.safetensors` — and resumes from one, continuing with the same
//! parameters an uninterrupted run would have had (same seed, same threads).

use crate::data::{Batch, Loader};
use crate::zoo::ResNet;
use std::collections::BTreeMap;
use std::path::Path;
use wengert_core::{Error, Result, Tape};
use wengert_nn::checkpoint::{load_model, load_training_state, save_model, save_training_state};
use wengert_nn::optim::{Cosine, LrSchedule, Optimizer, Sgd, Warmup};
use wengert_nn::{Module, Step};

/// The settings of a run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Epochs to train.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Warm-up iterations (linear from 10% of the peak).
    pub warmup: usize,
    /// Seed of the weights, the shuffling and the augmentation.
    pub seed: u64,
}

/// Loss and accuracy over a set of batches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Images seen.
    pub images: usize,
}

impl Score {
    fn add(&mut self, loss: f64, correct: usize, n: usize) {
        let total = self.images + n;
        self.loss = (self.loss * self.images as f64 + loss * n as f64) / total.max(1) as f64;
        self.accuracy = (self.accuracy * self.images as f64 + correct as f64) / total.max(1) as f64;
        self.images = total;
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
    optimizer: Box<dyn Optimizer<f32>>,
    schedule: Warmup<Cosine>,
    config: Config,
    /// Iterations done so far.
    pub iteration: usize,
    /// Batches per epoch.
    batches: usize,
}

impl<M: Module<f32>> Trainer<M> {
    /// A fresh run of `model` over `batches_per_epoch` batches an epoch.
    pub fn new(model: M, config: Config, batches_per_epoch: usize) -> Self {
        let total = config.epochs * batches_per_epoch;
        let schedule = Warmup {
            steps: config.warmup.min(total),
            start: 0.1,
            inner: Cosine { base: config.lr, min: 0.0, period: total },
        };
        Trainer {
            model,
            clip: None,
            optimizer: Box::new(Sgd::new(config.momentum, config.weight_decay)),
            schedule,
            config,
            iteration: 0,
            batches: batches_per_epoch.max(1),
        }
    }

    /// Replaces the optimiser (SGD with the configuration's momentum and
    /// weight decay by default), e.g. with Adam for recurrent nets. Call it
    /// before the first step or [`Trainer::resume`].
    pub fn set_optimizer(&mut self, optimizer: Box<dyn Optimizer<f32>>) {
        self.optimizer = optimizer;
    }

    /// The epoch and batch the next step trains on.
    pub fn position(&self) -> (usize, usize) {
        (self.iteration / self.batches, self.iteration % self.batches)
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.schedule.lr(self.iteration)
    }

    /// One training step on `batch`; returns its loss and correct count.
    pub fn step(&mut self, batch: &Batch<f32>) -> Result<(f64, usize)> {
        let tape = Tape::new();
        let (loss, hits, grads) = {
            let mut step = Step::train(&tape, self.config.seed ^ self.iteration as u64);
            let logits = self.model.forward(&mut step, tape.constant(batch.images.clone()))?;
            let loss = wengert_ops::cross_entropy(logits, &batch.labels)?;
            let hits = correct(&logits.value()?, &batch.labels);
            let value = loss.value()?.item()? as f64;
            if !value.is_finite() {
                return Err(Error::argument(
                    "train",
                    "loss",
                    format!("the loss became {value} at iteration {}", self.iteration),
                ));
            }
            (value, hits, step.backward(loss)?)
        };
        let mut grads = grads;
        if let Some(max) = self.clip {
            wengert_nn::optim::clip_grad_norm(&mut grads, max);
        }
        let lr = self.lr();
        self.optimizer.step(&mut self.model, &grads, lr)?;
        self.iteration += 1;
        Ok((loss, hits))
    }

    /// Trains from the current position to the end of its epoch, calling
    /// `progress(score so far, images/s)` after each step.
    pub fn epoch(&mut self, train: &Loader, mut progress: impl FnMut(&Score, f64)) -> Result<Score> {
        let (epoch, start) = self.position();
        let mut score = Score::default();
        let t0 = std::time::Instant::now();
        for batch in train.epoch::<f32>(epoch as u64, start) {
            let batch = batch?;
            let (loss, hits) = self.step(&batch)?;
            score.add(loss, hits, batch.labels.len());
            progress(&score, score.images as f64 / t0.elapsed().as_secs_f64().max(1e-9));
        }
        Ok(score)
    }

    /// Loss and accuracy on `data` in evaluation mode.
    pub fn evaluate(&mut self, data: &Loader) -> Result<Score> {
        evaluate(&mut self.model, data)
    }

    /// Writes `model.safetensors` and `training.safetensors` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io { path: dir.display().to_string(), detail: e.to_string() })?;
        save_model(&self.model, &dir.join("model.safetensors"))?;
        let position = BTreeMap::from([("iteration".to_string(), self.iteration.to_string())]);
        save_training_state(&self.optimizer.state(), &position, &dir.join("training.safetensors"))
    }

    /// Restores what [`Trainer::save`] wrote.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        load_model(&mut self.model, &dir.join("model.safetensors"), true)?;
        let path = dir.join("training.safetensors");
        let (state, position) = load_training_state::<f32>(&path)?;
        self.optimizer.load_state(state)?;
        self.iteration = position.get("iteration").and_then(|v| v.parse().ok()).ok_or_else(|| Error::Io {
            path: path.display().to_string(),
            detail: "no training position in the metadata".into(),
        })?;
        Ok(())
    }
}

/// Loss and accuracy of `model` on `data`, in evaluation mode.
pub fn evaluate(model: &mut dyn Module<f32>, data: &Loader) -> Result<Score> {
    let mut score = Score::default();
    for batch in data.epoch::<f32>(0, 0) {
        let batch = batch?;
        let tape = Tape::new();
        let (loss, hits) = tape.no_grad(|| -> Result<(f64, usize)> {
            let logits = model.forward(&mut Step::eval(&tape), tape.constant(batch.images.clone()))?;
            let loss = wengert_ops::cross_entropy(logits, &batch.labels)?.value()?.item()? as f64;
            Ok((loss, correct(&logits.value()?, &batch.labels)))
        })?;
        score.add(loss, hits, batch.labels.len());
    }
    Ok(score)
}
