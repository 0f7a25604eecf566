//! Optimisers, learning-rate schedules and gradient clipping.
//!
//! An optimiser updates a model's parameters in place from a step's
//! gradients, at a learning rate the caller passes in (usually from an
//! [`LrSchedule`]). Its state (momenta, step counts) is keyed by the
//! parameters' dotted names, so it can be saved and restored with the model.

mod adam;
mod schedule;
mod sgd;

pub use adam::Adam;
pub use schedule::{Constant, Cosine, LrSchedule, MultiStep, StepDecay, Warmup};
pub use sgd::Sgd;

use crate::module::{Module, ParamGrads, StateMut};
use wengert_core::{Float, Result, Tensor};

/// An optimiser's state: named tensors and the number of steps taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimState<T: Float> {
    /// `(name, tensor)` pairs, e.g. `layer1.0.conv1.weight.momentum_buffer`.
    pub tensors: Vec<(String, Tensor<T>)>,
    /// Steps taken so far.
    pub steps: u64,
}

/// Updates parameters from gradients.
pub trait Optimizer<T: Float> {
    /// One update of every trainable parameter of `model` that has a
    /// gradient in `grads`, at learning rate `lr`.
    fn step(&mut self, model: &mut dyn Module<T>, grads: &ParamGrads<T>, lr: f64) -> Result<()>;

    /// The state to checkpoint.
    fn state(&self) -> OptimState<T>;

    /// Restores a checkpointed state.
    fn load_state(&mut self, state: OptimState<T>) -> Result<()>;
}

/// Calls `f(name, value, grad)` for each trainable parameter with a gradient.
fn each_param<T: Float>(
    model: &mut dyn Module<T>,
    grads: &ParamGrads<T>,
    mut f: impl FnMut(&str, &mut Tensor<T>, &Tensor<T>) -> Result<()>,
) -> Result<()> {
    let mut result = Ok(());
    model.visit_mut("", &mut |name, entry| {
        if let StateMut::Param(p) = entry {
            if result.is_ok() && p.requires_grad() {
                if let Some(g) = grads.get(p) {
                    let g = g.clone();
                    result = f(&name, p.value_mut(), &g);
                }
            }
        }
    });
    result
}

/// Scales all gradients together so that their global L2 norm is at most
/// `max_norm`; returns the norm before clipping. As PyTorch's
/// `clip_grad_norm_`: the factor is `max_norm / (norm + 1e-6)`, applied
/// only when it is below 1. The norm is accumulated in f64.
pub fn clip_grad_norm<T: Float>(grads: &mut ParamGrads<T>, max_norm: f64) -> f64 {
    let mut sq = 0.0;
    for g in grads.tensors_mut() {
        sq += g.data().iter().map(|&v| v.as_f64() * v.as_f64()).sum::<f64>();
    }
    let norm = sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let c = T::of(coef);
        for g in grads.tensors_mut() {
            g.data_mut().iter_mut().for_each(|v| *v *= c);
        }
    }
    norm
}
