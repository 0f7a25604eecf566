//! Normalisation: `batch_norm` (training and evaluation) and `layer_norm`.
//!
//! PyTorch: `torch.nn.functional.batch_norm` and `layer_norm`.
//!
//! Both are compositions of differentiable core ops, two-pass for numerical
//! stability: the mean first, then the mean of squared deviations (never
//! `E[x²] − E[x]²`, which cancels catastrophically when the mean is large).
//! Composition keeps the backward pass exact and differentiable again.

use wengert_core::{Error, Float, Result, Tensor, Var};

/// What a training-mode batch norm returns besides its output: the batch
/// statistics, for updating running estimates.
#[derive(Clone, Debug)]
pub struct BatchStats<T: Float> {
    /// Per-channel mean over N, H, W.
    pub mean: Tensor<T>,
    /// Per-channel biased variance (divided by the count).
    pub var: Tensor<T>,
    /// The number of values per channel (N·H·W), to unbias the variance.
    pub count: usize,
}

/// Checks x, weight and bias, and returns the channel count and the shape
/// that broadcasts a `[C]` vector over `x`.
fn check_bn<T: Float>(x: Var<'_, T>, params: &[(&str, Option<&[usize]>)]) -> Result<(usize, Vec<usize>)> {
    let s = x.shape();
    if s.rank() < 2 {
        return Err(Error::shape("batch_norm", format!("input is {s}; need [N, C, ...]")));
    }
    let c = s[1];
    for (name, shape) in params {
        if let Some(p) = shape {
            if *p != [c] {
                return Err(Error::shape("batch_norm", format!("{name} is {p:?}, input is {s}; need {name} [{c}]")));
            }
        }
    }
    let mut bshape = vec![1; s.rank()];
    bshape[1] = c;
    Ok((c, bshape))
}

/// `y·weight + bias` with `[C]` parameters broadcast along axis 1.
fn affine<'t, T: Float>(
    y: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    bshape: &[usize],
) -> Result<Var<'t, T>> {
    let y = match weight {
        Some(w) => y.mul(w.reshape(bshape)?)?,
        None => y,
    };
    match bias {
        Some(b) => y.add(b.reshape(bshape)?),
        None => Ok(y),
    }
}

/// Batch normalisation in training mode (Ioffe & Szegedy 2015): normalises
/// each channel of `x` (`[N, C, ...]`) by its mean and biased variance over
/// every axis but 1, then scales by `weight` and shifts by `bias` (`[C]`).
/// Returns the output and the batch statistics.
pub fn batch_norm_train<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    eps: f64,
) -> Result<(Var<'t, T>, BatchStats<T>)> {
    let (c, bshape) =
        check_bn(x, &[("weight", weight.map(|w| w.shape()).as_deref()), ("bias", bias.map(|b| b.shape()).as_deref())])?;
    check_eps("batch_norm", eps)?;
    let s = x.shape();
    let count = s.numel() / c.max(1);
    if count < 1 {
        return Err(Error::shape("batch_norm", format!("input is {s}: no values per channel")));
    }
    let axes: Vec<isize> = (0..s.rank() as isize).filter(|&a| a != 1).collect();
    let mean = x.mean(&axes, true)?;
    let centred = x.sub(mean)?;
    let var = centred.mul(centred)?.mean(&axes, true)?;
    let y = centred.div(var.add_scalar(T::of(eps))?.sqrt()?)?;
    let stats = BatchStats { mean: mean.value()?.reshape([c])?, var: var.value()?.reshape([c])?, count };
    Ok((affine(y, weight, bias, &bshape)?, stats))
}

/// Batch normalisation in evaluation mode: normalises with the given running
/// statistics (constants: no gradient flows into them).
pub fn batch_norm_eval<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    running_mean: &Tensor<T>,
    running_var: &Tensor<T>,
    eps: f64,
) -> Result<Var<'t, T>> {
    let (_, bshape) = check_bn(
        x,
        &[
            ("weight", weight.map(|w| w.shape()).as_deref()),
            ("bias", bias.map(|b| b.shape()).as_deref()),
            ("running_mean", Some(running_mean.dims())),
            ("running_var", Some(running_var.dims())),
        ],
    )?;
    check_eps("batch_norm", eps)?;
    if let Some(v) = running_var.data().iter().find(|&&v| v < T::zero() || v.is_nan()) {
        return Err(Error::argument("batch_norm", "running_var", format!("variances must be non-negative, found {v}")));
    }
    let tape = x.tape();
    // Fold the statistics into one scale and shift: y = x·s + t.
    let scale = running_var.map(|v| T::one() / (v + T::of(eps)).sqrt());
    let mean = tape.constant(running_mean.reshape(bshape.clone())?);
    let y = x.sub(mean)?.mul(tape.constant(scale.reshape(bshape.clone())?))?;
    affine(y, weight, bias, &bshape)
}

/// Layer normalisation (Ba et al. 2016) over the trailing axes given by
/// `normalized_shape`, with optional elementwise `weight` and `bias` of that shape.
pub fn layer_norm<'t, T: Float>(
    x: Var<'t, T>,
    normalized_shape: &[usize],
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    eps: f64,
) -> Result<Var<'t, T>> {
    let s = x.shape();
    let k = normalized_shape.len();
    if k == 0 || k > s.rank() || s[s.rank() - k..] != *normalized_shape {
        return Err(Error::shape(
            "layer_norm",
            format!("normalized_shape {normalized_shape:?} is not a suffix of the input shape {s}"),
        ));
    }
    for (name, p) in [("weight", weight), ("bias", bias)] {
        if let Some(p) = p {
            if p.shape().dims() != normalized_shape {
                return Err(Error::shape("layer_norm", format!("{name} is {}, need {normalized_shape:?}", p.shape())));
            }
        }
    }
    check_eps("layer_norm", eps)?;
    let axes: Vec<isize> = (1..=k as isize).map(|a| -a).collect();
    let mean = x.mean(&axes, true)?;
    let centred = x.sub(mean)?;
    let var = centred.mul(centred)?.mean(&axes, true)?;
    let mut y = centred.div(var.add_scalar(T::of(eps))?.sqrt()?)?;
    if let Some(w) = weight {
        y = y.mul(w)?;
    }
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    Ok(y)
}

fn check_eps(op: &str, eps: f64) -> Result<()> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(())
    } else {
        Err(Error::argument(op, "eps", format!("must be finite and non-negative, got {eps}")))
    }
}
