//! Maps a case's op name and attributes to Wengert calls, one function per
//! family of ops.
//!
//! Attributes are checked strictly ([`attrs`](super::attrs)): an attribute
//! the op does not take, or a value Wengert does not support, is an error,
//! so a case can never pass by having part of it ignored.

use super::attrs::{boolean, float, get, int, ints, only, pair, reduction_mean, unsupported, usize_of, Attrs};
use super::Inputs;
use wengert_core::{Error, Float, Result, Var};
use wengert_ops as ops;

/// Runs `op` with `attrs` on the case's inputs.
pub(crate) fn build<'t, T: Float>(op: &str, attrs: &Attrs, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    match op {
        "add" | "sub" | "mul" | "div" | "neg" | "exp" | "log" | "sqrt" | "pow" => arithmetic(op, attrs, inp),
        "relu" | "sigmoid" | "tanh" | "softplus" | "silu" | "leaky_relu" | "gelu" => activation(op, attrs, inp),
        "sum" | "mean" | "amax" | "reshape" | "permute" | "concat" | "slice" => layout(op, attrs, inp),
        "matmul" | "linear" | "conv2d" | "conv_transpose2d" => product(op, attrs, inp),
        "max_pool2d" | "avg_pool2d" | "global_avg_pool2d" => pooling(op, attrs, inp),
        "batch_norm" | "layer_norm" | "softmax" | "log_softmax" => normalisation(op, attrs, inp),
        "cross_entropy" | "mse_loss" => loss(op, attrs, inp),
        "basic_block" | "bottleneck_block" | "preact_block" => super::blocks::build(op, attrs, inp),
        _ => Err(unsupported(op, "op")),
    }
}

/// The case's first float input (or the one named `x`).
fn first<'t, T: Float>(inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    inp.var(inp.vars.first().map(|(n, _)| n.as_str()).unwrap_or("x"))
}

/// The case's two float inputs.
fn two<'t, T: Float>(op: &str, inp: &Inputs<'t, T>) -> Result<(Var<'t, T>, Var<'t, T>)> {
    let v = inp.all();
    match v.as_slice() {
        [a, b] => Ok((*a, *b)),
        _ => Err(unsupported(op, format!("case: {} float inputs, need 2", v.len()))),
    }
}

/// A function of one input that takes no attributes.
fn unary<'t, T: Float>(
    op: &str,
    attrs: &Attrs,
    inp: &Inputs<'t, T>,
    f: fn(Var<'t, T>) -> Result<Var<'t, T>>,
) -> Result<Var<'t, T>> {
    only(op, attrs, &[])?;
    f(first(inp)?)
}

fn arithmetic<'t, T: Float>(op: &str, attrs: &Attrs, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    match op {
        "add" | "sub" | "mul" | "div" => {
            only(op, attrs, &[])?;
            let (a, b) = two(op, inp)?;
            match op {
                "add" => a.add(b),
                "sub" => a.sub(b),
                "mul" => a.mul(b),
                _ => a.div(b),
            }
        }
        "neg" => unary(op, attrs, inp, Var::neg),
        "exp" => unary(op, attrs, inp, Var::exp),
        "log" => unary(op, attrs, inp, Var::log),
        "sqrt" => unary(op, attrs, inp, Var::sqrt),
        "pow" => {
            only(op, attrs, &["exponent"])?;
            first(inp)?.powf(T::of(float(op, attrs, "exponent")?))
        }
        _ => Err(unsupported(op, "op")),
    }
}

fn activation<'t, T: Float>(op: &str, attrs: &Attrs, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    match op {
        "relu" => unary(op, attrs, inp, ops::relu),
        "sigmoid" => unary(op, attrs, inp, ops::sigmoid),
        "tanh" => unary(op, attrs, inp, ops::tanh),
        "softplus" => unary(op, attrs, inp, ops::softplus),
        "silu" => unary(op, attrs, inp, ops::silu),
        "leaky_relu" => {
            only(op, attrs, &["negative_slope"])?;
            ops::leaky_relu(first(inp)?, float(op, attrs, "negative_slope")?)
        }
        "gelu" => {
            only(op, attrs, &["approximate"])?;
            match attrs.get("approximate").and_then(|v| v.as_str()).unwrap_or("none") {
                "none" => ops::gelu(first(inp)?),
                "tanh" => ops::gelu_tanh(first(inp)?),
                other => Err(unsupported(op, format!("approximate '{other}'"))),
            }
        }
        _ => Err(unsupported(op, "op")),
    }
}

/// Reductions, reshapes, permutations, concatenation and slices.
fn layout<'t, T: Float>(op: &str, attrs: &Attrs, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    match op {
        "sum" | "mean" | "amax" => {
            only(op, attrs, &["dims", "keepdim"])?;
            let keep = boolean(op, attrs, "keepdim", false)?;
            let x = first(inp)?;
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
            first(inp)?.reshape(&dims.map_err(|_| unsupported(op, format!("shape {shape:?}")))?)
        }
        "permute" => {
            only(op, attrs, &["dims"])?;
            first(inp)?.permute(&ints(op, attrs, "dims")?.unwrap_or_default())
        }
        "concat" => {
            only(op, attrs, &["dim"])?;
            Var::concat(&inp.all(), int(op, get(op, attrs, "dim")?, "dim")? as isize)
        }
        "slice" => {
            only(op, attrs, &["dim", "start", "end", "step"])?;
            let g = |k| usize_of(op, get(op, attrs, k)?, k);
            first(inp)?.slice(int(op, get(op, attrs, "dim")?, "dim")? as isize, g("start")?, g("end")?, g("step")?)
        }
        _ => Err(unsupported(op, "op")),
    }
}

/// Matrix products and convolutions.
fn product<'t, T: Float>(op: &str, attrs: &Attrs, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    match op {
        "matmul" => {
            only(op, attrs, &[])?;
            let (a, b) = two(op, inp)?;
            ops::matmul(a, b)
        }
        "linear" => {
            only(op, attrs, &[])?;
            ops::linear(inp.var("x")?, inp.var("w")?, inp.opt("b"))
        }
        "conv2d" => {
            only(op, attrs, &["stride", "padding", "dilation", "groups"])?;
            let o = ops::Conv2dOptions::default()
                .with_stride(pair(op, attrs, "stride")?)
                .with_padding(pair(op, attrs, "padding")?)
                .with_dilation(pair(op, attrs, "dilation")?)
                .with_groups(usize_of(op, get(op, attrs, "groups")?, "groups")?);
            ops::conv2d(inp.var("x")?, inp.var("w")?, inp.opt("b"), &o)
        }
        "conv_transpose2d" => {
            only(op, attrs, &["stride", "padding", "output_padding", "dilation", "groups"])?;
            let o = ops::ConvTranspose2dOptions::default()
                .with_stride(pair(op, attrs, "stride")?)
                .with_padding(pair(op, attrs, "padding")?)
                .with_output_padding(pair(op, attrs, "output_padding")?)
                .with_dilation(pair(op, attrs, "dilation")?)
                .with_groups(usize_of(op, get(op, attrs, "groups")?, "groups")?);
            ops::conv_transpose2d(inp.var("x")?, inp.var("w")?, inp.opt("b"), &o)
        }
        _ => Err(unsupported(op, "op")),
    }
}

fn pooling<'t, T: Float>(op: &str, attrs: &Attrs, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    if op == "global_avg_pool2d" {
        return unary(op, attrs, inp, ops::global_avg_pool2d);
    }
    let known: &[&str] = if op == "max_pool2d" {
        &["kernel_size", "stride", "padding", "ceil_mode"]
    } else {
        &["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"]
    };
    only(op, attrs, known)?;
    let p = ops::Pool2d::new(1, 1)
        .with_kernel(pair(op, attrs, "kernel_size")?)
        .with_stride(pair(op, attrs, "stride")?)
        .with_padding(pair(op, attrs, "padding")?)
        .with_ceil_mode(boolean(op, attrs, "ceil_mode", false)?);
    match op {
        "max_pool2d" => ops::max_pool2d(first(inp)?, &p),
        "avg_pool2d" => ops::avg_pool2d(first(inp)?, &p, boolean(op, attrs, "count_include_pad", true)?),
        _ => Err(unsupported(op, "op")),
    }
}

/// Batch and layer norm, softmax and log-softmax.
fn normalisation<'t, T: Float>(op: &str, attrs: &Attrs, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    match op {
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
                ops::softmax(first(inp)?, dim)
            } else {
                ops::log_softmax(first(inp)?, dim)
            }
        }
        _ => Err(unsupported(op, "op")),
    }
}

fn loss<'t, T: Float>(op: &str, attrs: &Attrs, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    only(op, attrs, &["reduction"])?;
    reduction_mean(op, attrs)?;
    match op {
        "cross_entropy" => {
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
        "mse_loss" => ops::mse_loss(inp.var("input")?, inp.var("target")?),
        _ => Err(unsupported(op, "op")),
    }
}
