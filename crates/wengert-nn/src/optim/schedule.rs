//! Learning-rate schedules: the rate at each iteration, constant, in steps,
//! at milestones, by cosine decay, or warmed up linearly before another.

/// A learning rate as a function of the iteration (from 0).
pub trait LrSchedule {
    /// The learning rate at `iteration`.
    fn lr(&self, iteration: usize) -> f64;
}

/// The same rate throughout.
#[derive(Clone, Copy, Debug)]
pub struct Constant(pub f64);

impl LrSchedule for Constant {
    fn lr(&self, _: usize) -> f64 {
        self.0
    }
}

/// `base·γ^⌊i / every⌋` (PyTorch's `StepLR`).
#[derive(Clone, Copy, Debug)]
pub struct StepDecay {
    /// The initial rate.
    pub base: f64,
    /// Iterations between decays.
    pub every: usize,
    /// The factor applied at each decay.
    pub gamma: f64,
}

impl LrSchedule for StepDecay {
    fn lr(&self, i: usize) -> f64 {
        self.base * self.gamma.powi((i / self.every.max(1)) as i32)
    }
}

/// `base·γ^(number of milestones ≤ i)` (PyTorch's `MultiStepLR`). He et al.
/// train CIFAR ResNets at 0.1, divided by 10 at 32k and 48k iterations:
/// `MultiStep { base: 0.1, milestones: vec![32_000, 48_000], gamma: 0.1 }`.
#[derive(Clone, Debug)]
pub struct MultiStep {
    /// The initial rate.
    pub base: f64,
    /// Iterations at which the rate is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    /// The factor.
    pub gamma: f64,
}

impl LrSchedule for MultiStep {
    fn lr(&self, i: usize) -> f64 {
        self.base * self.gamma.powi(self.milestones.iter().filter(|&&m| m <= i).count() as i32)
    }
}

/// Cosine annealing from `base` to `min` over `period` iterations, then
/// `min` (SGDR without restarts; PyTorch's `CosineAnnealingLR` within one period).
#[derive(Clone, Copy, Debug)]
pub struct Cosine {
    /// The initial rate.
    pub base: f64,
    /// The final rate.
    pub min: f64,
    /// Iterations from `base` to `min`.
    pub period: usize,
}

impl LrSchedule for Cosine {
    fn lr(&self, i: usize) -> f64 {
        if i >= self.period {
            return self.min;
        }
        let c = (std::f64::consts::PI * i as f64 / self.period.max(1) as f64).cos();
        self.min + (self.base - self.min) * (1.0 + c) / 2.0
    }
}

/// A linear warm-up over the first `steps` iterations in front of another
/// schedule: the rate is `inner(i)·(start + (1 − start)·i/steps)` during the
/// warm-up, then `inner(i)`. Warm-up composes with any schedule.
pub struct Warmup<S: LrSchedule> {
    /// Warm-up length in iterations.
    pub steps: usize,
    /// The fraction of the rate at iteration 0.
    pub start: f64,
    /// The schedule being warmed up.
    pub inner: S,
}

impl<S: LrSchedule> LrSchedule for Warmup<S> {
    fn lr(&self, i: usize) -> f64 {
        let f = if i < self.steps { self.start + (1.0 - self.start) * i as f64 / self.steps as f64 } else { 1.0 };
        self.inner.lr(i) * f
    }
}

impl LrSchedule for Box<dyn LrSchedule> {
    fn lr(&self, i: usize) -> f64 {
        (**self).lr(i)
    }
}
