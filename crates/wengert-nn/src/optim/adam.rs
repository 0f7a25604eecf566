//! Adam (Kingma & Ba 2015) with an L2 penalty, and AdamW (Loshchilov &
//! Hutter 2019) with decoupled weight decay, as PyTorch's `Adam` and
//! `AdamW` update.

use super::{
    check_settings, check_state_names, each_param, next_step, state_tensor, update, OptimState, Optimizer, ParamGroups,
};
use crate::module::{Module, ParamGrads};
use std::collections::BTreeMap;
use wengert_core::{Float, Result, Tensor};

/// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), with
/// PyTorch's conventions. At step `t` (from 1), per parameter `w`:
///
/// ```text
/// g = g + λ·w                     (Adam's L2 penalty; not for AdamW)
/// w = w·(1 − lr·λ)                (AdamW's decoupled decay)
/// m = β₁·m + (1 − β₁)·g
/// v = β₂·v + (1 − β₂)·g²
/// w = w − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
#[derive(Clone, Debug)]
pub struct Adam<T: Float> {
    /// `β₁` (0.9).
    pub beta1: f64,
    /// `β₂` (0.999).
    pub beta2: f64,
    /// `ε` (1e-8).
    pub eps: f64,
    /// `λ`.
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW) instead of an L2 penalty.
    pub decoupled: bool,
    /// Groups of parameters that learn at their own multiple of the rate.
    pub groups: ParamGroups,
    moments: BTreeMap<String, Tensor<T>>,
    steps: u64,
}

impl<T: Float> Adam<T> {
    /// Adam with PyTorch's defaults and L2 penalty `weight_decay`.
    pub fn new(weight_decay: f64) -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled: false,
            groups: ParamGroups::new(),
            moments: BTreeMap::new(),
            steps: 0,
        }
    }

    /// AdamW with PyTorch's defaults and decoupled decay `weight_decay` (PyTorch's default is 0.01).
    pub fn adamw(weight_decay: f64) -> Self {
        Adam { decoupled: true, ..Self::new(weight_decay) }
    }

    /// The same with parameter groups learning at their own rates.
    pub fn with_groups(mut self, groups: ParamGroups) -> Self {
        self.groups = groups;
        self
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn name(&self) -> &'static str {
        if self.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }

    fn step(&mut self, model: &mut dyn Module<T>, grads: &ParamGrads<T>, lr: f64) -> Result<()> {
        let op = if self.decoupled { "AdamW::step" } else { "Adam::step" };
        check_settings(
            op,
            lr,
            &[
                ("beta1", self.beta1, 0.0, 1.0),
                ("beta2", self.beta2, 0.0, 1.0),
                ("eps", self.eps, 0.0, f64::INFINITY),
                ("weight_decay", self.weight_decay, 0.0, f64::INFINITY),
            ],
        )?;
        let t = next_step(op, self.steps)?;
        // As PyTorch's `1 - beta ** step`: a power of a float, which stays
        // exact past 2³¹ steps where an integer power's count would wrap.
        let bc1 = 1.0 - self.beta1.powf(t as f64);
        let bc2_sqrt = (1.0 - self.beta2.powf(t as f64)).sqrt();
        let (b1, b2, eps, wd) = (T::of(self.beta1), T::of(self.beta2), T::of(self.eps), T::of(self.weight_decay));
        let (decoupled, bc2_sqrt, weight_decay) = (self.decoupled, T::of(bc2_sqrt), self.weight_decay);
        let (moments, groups) = (&mut self.moments, &self.groups);
        let l2 = !decoupled && wd != T::zero();
        each_param(model, grads, |name, w, g| {
            let lr = lr * groups.lr_scale(name);
            let (step_size, decay) = (T::of(lr / bc1), T::of(1.0 - lr * weight_decay));
            let [m_key, v_key] = [format!("{name}.exp_avg"), format!("{name}.exp_avg_sq")];
            for key in [&m_key, &v_key] {
                state_tensor(moments, key.clone(), w.shape(), || Ok(Tensor::zeros(w.shape().clone())))?;
            }
            // Both moments at once: out of the map for the update, then back.
            let mut m = moments.remove(&m_key).expect("made above");
            let mut v = moments.remove(&v_key).expect("made above");
            update(w.data_mut(), [m.data_mut(), v.data_mut()], g.data(), move |w, [m, v], g| {
                let g = if l2 { g + wd * *w } else { g };
                if decoupled {
                    *w *= decay;
                }
                *m = b1 * *m + (T::one() - b1) * g;
                *v = b2 * *v + (T::one() - b2) * (g * g);
                *w -= step_size * *m / (v.sqrt() / bc2_sqrt + eps);
            });
            moments.extend([(m_key, m), (v_key, v)]);
            Ok(())
        })?;
        self.steps = t;
        Ok(())
    }

    fn state(&self) -> OptimState<T> {
        OptimState { tensors: self.moments.iter().map(|(k, v)| (k.clone(), v.clone())).collect(), steps: self.steps }
    }

    fn load_state(&mut self, state: OptimState<T>) -> Result<()> {
        check_state_names("Adam::load_state", &state, &[".exp_avg", ".exp_avg_sq"])?;
        self.moments = state.tensors.into_iter().collect();
        self.steps = state.steps;
        Ok(())
    }
}
