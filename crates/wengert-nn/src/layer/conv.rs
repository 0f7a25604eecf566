//! Convolution layers: `Conv2d` and `ConvTranspose2d`, with PyTorch's
//! parameter names and initialisation.

use crate::init::torch_default;
use crate::module::{Module, Param, Step, Visit};
use wengert_core::{Error, Float, Result, Rng, Shape, Var};
use wengert_ops::{Conv2dOptions, ConvTranspose2dOptions};

/// 2-d convolution with `weight [out, in/groups, kh, kw]` and optional `bias [out]`.
#[derive(Clone, Debug)]
pub struct Conv2d<T: Float> {
    /// `[out, in/groups, kh, kw]`
    pub weight: Param<T>,
    /// `[out]`, if the layer has a bias.
    pub bias: Option<Param<T>>,
    /// Stride, padding, dilation and groups.
    pub options: Conv2dOptions,
}

impl<T: Float> Conv2d<T> {
    /// A square `k×k` convolution with PyTorch's default initialisation.
    pub fn new(c_in: usize, c_out: usize, k: usize, options: Conv2dOptions, bias: bool, rng: &mut Rng) -> Result<Self> {
        let g = options.groups.max(1);
        if !c_in.is_multiple_of(g) || !c_out.is_multiple_of(g) {
            return Err(Error::argument(
                "Conv2d",
                "groups",
                format!("{c_in} → {c_out} channels are not divisible by groups {g}"),
            ));
        }
        let shape = checked_weight("Conv2d", [c_in, c_out, k], [c_out, c_in / g, k, k])?;
        let fan_in = c_in / g * k * k;
        let weight = Param::new(torch_default(shape, fan_in, rng)?);
        let bias = if bias { Some(Param::new(torch_default([c_out], fan_in, rng)?)) } else { None };
        Ok(Conv2d { weight, bias, options })
    }
}

impl<T: Float> Module<T> for Conv2d<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let w = step.param(&self.weight);
        let b = self.bias.as_ref().map(|b| step.param(b));
        wengert_ops::conv2d(x, w, b, &self.options)
    }
}

impl<T: Float> Visit<T> for Conv2d<T> {
    crate::visit_fields!(weight, bias);
}

/// 2-d transposed convolution with `weight [in, out/groups, kh, kw]`.
#[derive(Clone, Debug)]
pub struct ConvTranspose2d<T: Float> {
    /// `[in, out/groups, kh, kw]`
    pub weight: Param<T>,
    /// `[out]`, if the layer has a bias.
    pub bias: Option<Param<T>>,
    /// Stride, padding, output padding, dilation and groups.
    pub options: ConvTranspose2dOptions,
}

impl<T: Float> ConvTranspose2d<T> {
    /// A square `k×k` transposed convolution with PyTorch's default initialisation.
    pub fn new(
        c_in: usize,
        c_out: usize,
        k: usize,
        options: ConvTranspose2dOptions,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        let g = options.groups.max(1);
        if !c_in.is_multiple_of(g) || !c_out.is_multiple_of(g) {
            return Err(Error::argument(
                "ConvTranspose2d",
                "groups",
                format!("{c_in} → {c_out} channels are not divisible by groups {g}"),
            ));
        }
        // PyTorch computes the fan from weight axis 1 (out/groups) here.
        let shape = checked_weight("ConvTranspose2d", [c_in, c_out, k], [c_in, c_out / g, k, k])?;
        let fan_in = c_out / g * k * k;
        let weight = Param::new(torch_default(shape, fan_in, rng)?);
        let bias = if bias { Some(Param::new(torch_default([c_out], fan_in, rng)?)) } else { None };
        Ok(ConvTranspose2d { weight, bias, options })
    }
}

impl<T: Float> Module<T> for ConvTranspose2d<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let w = step.param(&self.weight);
        let b = self.bias.as_ref().map(|b| step.param(b));
        wengert_ops::conv_transpose2d(x, w, b, &self.options)
    }
}

impl<T: Float> Visit<T> for ConvTranspose2d<T> {
    crate::visit_fields!(weight, bias);
}

/// The weight's shape, once channels and kernel are positive and its extents
/// multiply within range (so the fan computed from them cannot overflow).
fn checked_weight(op: &str, [c_in, c_out, k]: [usize; 3], shape: [usize; 4]) -> Result<Shape> {
    if c_in == 0 || c_out == 0 || k == 0 {
        return Err(Error::argument(
            op,
            "size",
            format!("{c_in} → {c_out} channels with a {k}×{k} kernel: each must be at least 1"),
        ));
    }
    let shape = Shape::new(&shape);
    shape.checked_numel(op)?;
    Ok(shape)
}
