//! Stochastic gradient descent with momentum, dampening, Nesterov
//! momentum and L2 weight decay, PyTorch's `torch.optim.SGD` update.

use super::{
    check_settings, check_state_names, each_param, next_step, state_tensor, update, OptimState, Optimizer, ParamGroups,
};
use crate::module::{Module, ParamGrads};
use std::collections::BTreeMap;
use wengert_core::{Error, Float, Result, Tensor};

/// Stochastic gradient descent with momentum, Nesterov momentum and weight
/// decay, with PyTorch's conventions (`torch.optim.SGD`). Per parameter `w`
/// with gradient `g`, momentum `μ`, dampening `τ`, weight decay `λ`:
///
/// ```text
/// d = g + λ·w
/// b = d                      on the first step
/// b = μ·b + (1 − τ)·d        afterwards
/// d = d + μ·b  (Nesterov)    or  d = b
/// w = w − lr·d
/// ```
///
/// This is the update He et al. train ResNets with (μ = 0.9, λ = 1e-4).
#[derive(Clone, Debug, Default)]
pub struct Sgd<T: Float> {
    /// `μ`; 0 disables momentum.
    pub momentum: f64,
    /// `τ`.
    pub dampening: f64,
    /// `λ` (L2 penalty added to the gradient).
    pub weight_decay: f64,
    /// Use Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    /// Groups of parameters that learn at their own multiple of the rate.
    pub groups: ParamGroups,
    buffers: BTreeMap<String, Tensor<T>>,
    steps: u64,
}

impl<T: Float> Sgd<T> {
    /// SGD with the given momentum and weight decay (no dampening, no Nesterov).
    ///
    /// ```
    /// use wengert_core::{Tape, Tensor};
    /// use wengert_nn::optim::{Optimizer, Sgd};
    /// use wengert_nn::{layer::Linear, Module, Step};
    ///
    /// let mut model = Linear::<f64>::new(2, 1, false, &mut wengert_core::rng(0))?;
    /// let before = model.weight.value().clone();
    /// let tape = Tape::new();
    /// let mut step = Step::train(&tape, 0);
    /// let y = model.forward(&mut step, tape.constant(Tensor::ones([1, 2])))?;
    /// let grads = step.backward(y.sum_all()?)?;               // ∂y/∂w = [1, 1]
    /// Sgd::new(0.9, 0.0).step(&mut model, &grads, 0.1)?;
    /// let moved: Vec<f64> = before.data().iter().zip(model.weight.value().data()).map(|(a, b)| a - b).collect();
    /// assert!(moved.iter().all(|d| (d - 0.1).abs() < 1e-12)); // w ← w − lr·g
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn new(momentum: f64, weight_decay: f64) -> Self {
        Sgd { momentum, weight_decay, ..Default::default() }
    }

    /// The same with Nesterov momentum.
    pub fn nesterov(mut self) -> Self {
        self.nesterov = true;
        self
    }

    /// The same with parameter groups learning at their own rates.
    pub fn with_groups(mut self, groups: ParamGroups) -> Self {
        self.groups = groups;
        self
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn step(&mut self, model: &mut dyn Module<T>, grads: &ParamGrads<T>, lr: f64) -> Result<()> {
        check_settings(
            "Sgd::step",
            lr,
            &[
                ("momentum", self.momentum, 0.0, f64::INFINITY),
                ("dampening", self.dampening, 0.0, f64::INFINITY),
                ("weight_decay", self.weight_decay, 0.0, f64::INFINITY),
            ],
        )?;
        let steps = next_step("Sgd::step", self.steps)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::argument("Sgd", "nesterov", "needs momentum > 0 and zero dampening"));
        }
        let (mu, damp, wd) = (T::of(self.momentum), T::of(1.0 - self.dampening), T::of(self.weight_decay));
        let (momentum, nesterov) = (self.momentum != 0.0, self.nesterov);
        let (buffers, groups) = (&mut self.buffers, &self.groups);
        each_param(model, grads, |name, w, g| {
            let lr = T::of(lr * groups.lr_scale(name));
            if !momentum {
                update(w.data_mut(), [], g.data(), move |w, [], g| *w -= lr * (g + wd * *w));
                return Ok(());
            }
            let key = format!("{name}.momentum_buffer");
            // The first step starts the buffer at d itself.
            let fresh = !buffers.contains_key(&key);
            let b = state_tensor(buffers, key, w.shape(), || Ok(Tensor::zeros(w.shape().clone())))?;
            update(w.data_mut(), [b.data_mut()], g.data(), move |w, [b], g| {
                let d = g + wd * *w;
                *b = if fresh { d } else { mu * *b + damp * d };
                *w -= lr * if nesterov { d + mu * *b } else { *b };
            });
            Ok(())
        })?;
        self.steps = steps;
        Ok(())
    }

    fn state(&self) -> OptimState<T> {
        OptimState { tensors: self.buffers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(), steps: self.steps }
    }

    fn load_state(&mut self, state: OptimState<T>) -> Result<()> {
        check_state_names("Sgd::load_state", &state, &[".momentum_buffer"])?;
        self.buffers = state.tensors.into_iter().collect();
        self.steps = state.steps;
        Ok(())
    }
}
