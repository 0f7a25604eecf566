//! Maps a case's op name and attributes to Wengert calls.
//!
//! Attributes are checked strictly: an attribute the op does not take, or a
//! value Wengert does not support, is an error, so a case can never pass by
//! having part of it ignored.

use super::Inputs;
use serde_json::{Map, Value};
use wengert_core::{Error, Float, Result, Var};
use wengert_ops as ops;

type Attrs = Map<String, Value>;

fn unsupported(op: &str, what: impl std::fmt::Display) -> Error {
    Error::argument("conformance", op, format!("unsupported {what}"))
}

/// Fails unless every attribute is one of `known`.
pub(crate) fn only(op: &str, attrs: &Attrs, known: &[&str]) -> Result<()> {
    match attrs.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(unsupported(op, format!("attribute '{k}'"))),
        None => Ok(()),
    }
}

fn get<'a>(op: &str, attrs: &'a Attrs, key: &str) -> Result<&'a Value> {
    attrs.get(key).ok_or_else(|| unsupported(op, format!("case: attribute '{key}' is missing")))
}

fn int(op: &str, v: &Value, key: &str) -> Result<i64> {
    v.as_i64().ok_or_else(|| unsupported(op, format!("value {v} for '{key}'")))
}

pub(crate) fn usize_of(op: &str, v: &Value, key: &str) -> Result<usize> {
    usize::try_from(int(op, v, key)?).map_err(|_| unsupported(op, format!("value {v} for '{key}'")))
}

/// A pair attribute, given as `[a, b]` or as one number for both.
fn pair(op: &str, attrs: &Attrs, key: &str) -> Result<[usize; 2]> {
    match get(op, attrs, key)? {
        Value::Array(a) if a.len() == 2 => Ok([usize_of(op, &a[0], key)?, usize_of(op, &a[1], key)?]),
        v => {
            let n = usize_of(op, v, key)?;
            Ok([n, n])
        }
    }
}

fn float(op: &str, attrs: &Attrs, key: &str) -> Result<f64> {
    let v = get(op, attrs, key)?;
    v.as_f64().ok_or_else(|| unsupported(op, format!("value {v} for '{key}'")))
}

fn boolean(op: &str, attrs: &Attrs, key: &str, default: bool) -> Result<bool> {
    match attrs.get(key) {
        None => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| unsupported(op, format!("value {v} for '{key}'"))),
    }
}

pub(crate) fn text<'a>(op: &str, attrs: &'a Attrs, key: &str) -> Result<&'a str> {
    let v = get(op, attrs, key)?;
    v.as_str().ok_or_else(|| unsupported(op, format!("value {v} for '{key}'")))
}

/// An integer list attribute; `null` gives `None`.
fn ints(op: &str, attrs: &Attrs, key: &str) -> Result<Option<Vec<isize>>> {
    match get(op, attrs, key)? {
        Value::Null => Ok(None),
        Value::Array(a) => a.iter().map(|v| int(op, v, key).map(|i| i as isize)).collect::<Result<_>>().map(Some),
        v => Ok(Some(vec![int(op, v, key)? as isize])),
    }
}

fn reduction_mean(op: &str, attrs: &Attrs) -> Result<()> {
    match attrs.get("reduction").map(|v| v.as_str()) {
        None | Some(Some("mean")) => Ok(()),
        Some(v) => Err(unsupported(op, format!("reduction {v:?}"))),
    }
}

/// Runs `op` with `attrs` on the case's inputs.
pub(crate) fn build<'t, T: Float>(op: &str, attrs: &Attrs, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    let x = || inp.var(inp.vars.first().map(|(n, _)| n.as_str()).unwrap_or("x"));
    let two = || -> Result<(Var<'t, T>, Var<'t, T>)> {
        let v = inp.all();
        match v.as_slice() {
            [a, b] => Ok((*a, *b)),
            _ => Err(unsupported(op, format!("case: {} float inputs, need 2", v.len()))),
        }
    };
    let unary = |f: fn(Var<'t, T>) -> Result<Var<'t, T>>| -> Result<Var<'t, T>> {
        only(op, attrs, &[])?;
        f(x()?)
    };
    match op {
        "add" | "sub" | "mul" | "div" => {
            only(op, attrs, &[])?;
            let (a, b) = two()?;
            match op {
                "add" => a.add(b),
                "sub" => a.sub(b),
                "mul" => a.mul(b),
                _ => a.div(b),
            }
        }
        "neg" => unary(Var::neg),
        "exp" => unary(Var::exp),
        "log" => unary(Var::log),
        "sqrt" => unary(Var::sqrt),
        "relu" => unary(ops::relu),
        "sigmoid" => unary(ops::sigmoid),
        "tanh" => unary(ops::tanh),
        "softplus" => unary(ops::softplus),
        "silu" => unary(ops::silu),
        "pow" => {
            only(op, attrs, &["exponent"])?;
            x()?.powf(T::of(float(op, attrs, "exponent")?))
        }
        "leaky_relu" => {
            only(op, attrs, &["negative_slope"])?;
            ops::leaky_relu(x()?, float(op, attrs, "negative_slope")?)
        }
        "gelu" => {
            only(op, attrs, &["approximate"])?;
            match attrs.get("approximate").and_then(|v| v.as_str()).unwrap_or("none") {
                "none" => ops::gelu(x()?),
                "tanh" => ops::gelu_tanh(x()?),
                other => Err(unsupported(op, format!("approximate '{other}'"))),
            }
        }
        "sum" | "mean" | "amax" => {
            only(op, attrs, &["dims", "keepdim"])?;
            let keep = boolean(op, attrs, "keepdim", false)?;
            let x = x()?;
            let dims = ints(op, attrs, "dims")?.unwrap_or_else(|| (0..x.shape().rank() as isize).collect());
            match op {
                "sum" => x.sum(&dims, keep),
                "mean" => x.mean(&dims, keep),
                _ => x.amax(&dims, keep),
            }
        }
        "reshape" => {
            only(op, attrs, &["shape"])?;
            let shape = ints(op, attrs, "shape")?.unwrap_or_default();
            let dims = shape.iter().map(|&d| usize::try_from(d)).collect::<std::result::Result<Vec<_>, _>>();
            x()?.reshape(&dims.map_err(|_| unsupported(op, format!("shape {shape:?}")))?)
        }
        "permute" => {
            only(op, attrs, &["dims"])?;
            x()?.permute(&ints(op, attrs, "dims")?.unwrap_or_default())
        }
        "concat" => {
            only(op, attrs, &["dim"])?;
            Var::concat(&inp.all(), int(op, get(op, attrs, "dim")?, "dim")? as isize)
        }
        "slice" => {
            only(op, attrs, &["dim", "start", "end", "step"])?;
            let g = |k| usize_of(op, get(op, attrs, k)?, k);
            x()?.slice(int(op, get(op, attrs, "dim")?, "dim")? as isize, g("start")?, g("end")?, g("step")?)
        }
        "matmul" => {
            only(op, attrs, &[])?;
            let (a, b) = two()?;
            ops::matmul(a, b)
        }
        "linear" => {
            only(op, attrs, &[])?;
            ops::linear(inp.var("x")?, inp.var("w")?, inp.opt("b"))
        }
        "conv2d" => {
            only(op, attrs, &["stride", "padding", "dilation", "groups"])?;
            let o = ops::Conv2dOptions {
                stride: pair(op, attrs, "stride")?,
                padding: pair(op, attrs, "padding")?,
                dilation: pair(op, attrs, "dilation")?,
                groups: usize_of(op, get(op, attrs, "groups")?, "groups")?,
            };
            ops::conv2d(inp.var("x")?, inp.var("w")?, inp.opt("b"), &o)
        }
        "conv_transpose2d" => {
            only(op, attrs, &["stride", "padding", "output_padding", "dilation", "groups"])?;
            let o = ops::ConvTranspose2dOptions {
                stride: pair(op, attrs, "stride")?,
                padding: pair(op, attrs, "padding")?,
                output_padding: pair(op, attrs, "output_padding")?,
                dilation: pair(op, attrs, "dilation")?,
                groups: usize_of(op, get(op, attrs, "groups")?, "groups")?,
            };
            ops::conv_transpose2d(inp.var("x")?, inp.var("w")?, inp.opt("b"), &o)
        }
        "max_pool2d" | "avg_pool2d" => {
            let known: &[&str] = if op == "max_pool2d" {
                &["kernel_size", "stride", "padding", "ceil_mode"]
            } else {
                &["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"]
            };
            only(op, attrs, known)?;
            let p = ops::Pool2d {
                kernel: pair(op, attrs, "kernel_size")?,
                stride: pair(op, attrs, "stride")?,
                padding: pair(op, attrs, "padding")?,
                ceil_mode: boolean(op, attrs, "ceil_mode", false)?,
            };
            if op == "max_pool2d" {
                ops::max_pool2d(x()?, &p)
            } else {
                ops::avg_pool2d(x()?, &p, boolean(op, attrs, "count_include_pad", true)?)
            }
        }
        "global_avg_pool2d" => unary(ops::global_avg_pool2d),
        "batch_norm" => {
            only(op, attrs, &["training", "eps"])?;
            let eps = float(op, attrs, "eps")?;
            let (x, w, b) = (inp.var("x")?, inp.opt("weight"), inp.opt("bias"));
            if boolean(op, attrs, "training", true)? {
                Ok(ops::batch_norm_train(x, w, b, eps)?.0)
            } else {
                let rm = inp.var("running_mean")?.value()?;
                let rv = inp.var("running_var")?.value()?;
                ops::batch_norm_eval(x, w, b, &rm, &rv, eps)
            }
        }
        "layer_norm" => {
            only(op, attrs, &["normalized_shape", "eps"])?;
            let shape = ints(op, attrs, "normalized_shape")?
                .unwrap_or_default()
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| unsupported(op, format!("normalized_shape entry {d}"))))
                .collect::<Result<Vec<usize>>>()?;
            ops::layer_norm(inp.var("x")?, &shape, inp.opt("weight"), inp.opt("bias"), float(op, attrs, "eps")?)
        }
        "softmax" | "log_softmax" => {
            only(op, attrs, &["dim"])?;
            let dim = int(op, get(op, attrs, "dim")?, "dim")? as isize;
            if op == "softmax" {
                ops::softmax(x()?, dim)
            } else {
                ops::log_softmax(x()?, dim)
            }
        }
        "cross_entropy" => {
            only(op, attrs, &["reduction"])?;
            reduction_mean(op, attrs)?;
            let (_, target) = inp.ints.first().ok_or_else(|| unsupported(op, "case: no integer target"))?;
            let labels = target
                .iter()
                .map(|&l| {
                    usize::try_from(l)
                        .map_err(|_| Error::argument("cross_entropy", "labels", format!("label {l} is negative")))
                })
                .collect::<Result<Vec<_>>>()?;
            ops::cross_entropy(inp.var("logits")?, &labels)
        }
        "mse_loss" => {
            only(op, attrs, &["reduction"])?;
            reduction_mean(op, attrs)?;
            ops::mse_loss(inp.var("input")?, inp.var("target")?)
        }
        "basic_block" | "bottleneck_block" | "preact_block" => super::blocks::build(op, attrs, inp),
        _ => Err(unsupported(op, "op")),
    }
}
