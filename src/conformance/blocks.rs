//! Residual-block cases composed from primitive ops, with the parameter
//! names of the common checkpoint layout (`conv1.weight`, `bn1.bias`, ...).
//!
//! Batch norm runs in training mode with eps 1e-5; convolutions have no bias.

use super::build::{only, text, usize_of};
use super::Inputs;
use serde_json::{Map, Value};
use wengert_core::{Error, Float, Result, Tensor, Var};
use wengert_ops::{batch_norm_train, conv2d, relu, Conv2dOptions};

const EPS: f64 = 1e-5;

/// `bn(conv(x, <prefix>.weight))` for conv `conv` and norm `bn`.
fn conv_bn<'t, T: Float>(
    inp: &Inputs<'t, T>,
    x: Var<'t, T>,
    conv: &str,
    bn: &str,
    stride: usize,
    padding: usize,
) -> Result<Var<'t, T>> {
    let y = conv2d(x, inp.var(&format!("{conv}.weight"))?, None, &Conv2dOptions::square(stride, padding))?;
    let (w, b) = (inp.var(&format!("{bn}.weight"))?, inp.var(&format!("{bn}.bias"))?);
    Ok(batch_norm_train(y, Some(w), Some(b), EPS)?.0)
}

/// The shortcut of a block whose branch maps `x` to `c_out` channels at `stride`.
fn shortcut<'t, T: Float>(
    inp: &Inputs<'t, T>,
    x: Var<'t, T>,
    kind: &str,
    stride: usize,
    c_out: usize,
) -> Result<Var<'t, T>> {
    match kind {
        "none" => Ok(x),
        "projection" => conv_bn(inp, x, "downsample.0", "downsample.1", stride, 0),
        "zero_pad" => {
            // Option A: subsample, then pad channels with zeros, half before.
            let xs = x.slice(2, 0, usize::MAX, stride)?.slice(3, 0, usize::MAX, stride)?;
            let s = xs.shape();
            let extra = c_out.checked_sub(s[1]).ok_or_else(|| {
                Error::shape("basic_block", format!("zero_pad shortcut cannot shrink {} channels to {c_out}", s[1]))
            })?;
            let zeros = |c: usize| x.tape().constant(Tensor::zeros([s[0], c, s[2], s[3]]));
            Var::concat(&[zeros(extra / 2), xs, zeros(extra - extra / 2)], 1)
        }
        other => Err(Error::argument("conformance", "downsample", format!("unsupported value '{other}'"))),
    }
}

pub(crate) fn build<'t, T: Float>(op: &str, attrs: &Map<String, Value>, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    let x = inp.var("x")?;
    match op {
        "basic_block" => {
            only(op, attrs, &["stride", "downsample"])?;
            let stride = usize_of(op, attrs.get("stride").unwrap_or(&Value::from(1)), "stride")?;
            let kind = attrs.get("downsample").map(|_| text(op, attrs, "downsample")).transpose()?.unwrap_or("none");
            let y = relu(conv_bn(inp, x, "conv1", "bn1", stride, 1)?)?;
            let y = conv_bn(inp, y, "conv2", "bn2", 1, 1)?;
            let c_out = y.shape()[1];
            relu(y.add(shortcut(inp, x, kind, stride, c_out)?)?)
        }
        "bottleneck_block" => {
            only(op, attrs, &["stride", "downsample"])?;
            let stride = usize_of(op, attrs.get("stride").unwrap_or(&Value::from(1)), "stride")?;
            let kind = attrs.get("downsample").map(|_| text(op, attrs, "downsample")).transpose()?.unwrap_or("none");
            let y = relu(conv_bn(inp, x, "conv1", "bn1", 1, 0)?)?;
            let y = relu(conv_bn(inp, y, "conv2", "bn2", stride, 1)?)?;
            let y = conv_bn(inp, y, "conv3", "bn3", 1, 0)?;
            let c_out = y.shape()[1];
            relu(y.add(shortcut(inp, x, kind, stride, c_out)?)?)
        }
        _ => {
            only(op, attrs, &[])?;
            let bn = |v: Var<'t, T>, name: &str| -> Result<Var<'t, T>> {
                let (w, b) = (inp.var(&format!("{name}.weight"))?, inp.var(&format!("{name}.bias"))?);
                Ok(batch_norm_train(v, Some(w), Some(b), EPS)?.0)
            };
            let same = Conv2dOptions::square(1, 1);
            let y = conv2d(relu(bn(x, "bn1")?)?, inp.var("conv1.weight")?, None, &same)?;
            let y = conv2d(relu(bn(y, "bn2")?)?, inp.var("conv2.weight")?, None, &same)?;
            y.add(x)
        }
    }
}
