//! The fully connected layer `y = x·Wᵀ + b`, with PyTorch's parameter
//! names and initialisation.

use crate::init::torch_default;
use crate::module::{Module, Param, Step, Visit};
use wengert_core::{Float, Result, Rng, Var};

/// `y = x·Wᵀ + b` with `weight [out, in]` and `bias [out]`.
#[derive(Clone, Debug)]
pub struct Linear<T: Float> {
    /// `[out_features, in_features]`
    pub weight: Param<T>,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Param<T>>,
}

impl<T: Float> Linear<T> {
    /// A layer with PyTorch's default initialisation, `U(±1/√in)`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Result<Self> {
        let weight = Param::new(torch_default([out_features, in_features], in_features, rng)?);
        let bias = if bias { Some(Param::new(torch_default([out_features], in_features, rng)?)) } else { None };
        Ok(Linear { weight, bias })
    }
}

impl<T: Float> Module<T> for Linear<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let w = step.param(&self.weight);
        let b = self.bias.as_ref().map(|b| step.param(b));
        wengert_ops::linear(x, w, b)
    }
}

impl<T: Float> Visit<T> for Linear<T> {
    crate::visit_fields!(weight, bias);
}
