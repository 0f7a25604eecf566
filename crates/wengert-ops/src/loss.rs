//! Losses: `cross_entropy` with integer labels, and `mse_loss`.
//!
//! PyTorch: `torch.nn.functional.cross_entropy(logits, target)` and
//! `mse_loss(input, target)`, both with `reduction="mean"`.

use crate::softmax::log_softmax;
use std::sync::Arc;
use wengert_core::{smallvec, Arity, Error, Float, InputGrads, Op, Result, Tensor, Var};

/// Picks `x[i, labels[i]]` from a `[N, C]` tensor, giving `[N]`.
#[derive(Clone, Debug)]
struct Pick {
    labels: Arc<[usize]>,
    classes: usize,
}

impl<T: Float> Op<T> for Pick {
    fn name(&self) -> &'static str {
        "pick"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0].data();
        let c = self.classes;
        let out = self.labels.iter().enumerate().map(|(i, &l)| x[i * c + l]).collect();
        Tensor::from_vec(out, [self.labels.len()])
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let scatter = Scatter { labels: self.labels.clone(), classes: self.classes };
        Ok(smallvec![Some(g.tape().apply(scatter, &[g])?)])
    }
}

/// Places `g[i]` at `[i, labels[i]]` of a zero `[N, C]` tensor: the adjoint of [`Pick`].
#[derive(Clone, Debug)]
struct Scatter {
    labels: Arc<[usize]>,
    classes: usize,
}

impl<T: Float> Op<T> for Scatter {
    fn name(&self) -> &'static str {
        "scatter"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let g = inputs[0].data();
        let c = self.classes;
        let mut out = wengert_core::buffer::zeroed(self.labels.len() * c);
        for (i, &l) in self.labels.iter().enumerate() {
            out[i * c + l] = g[i];
        }
        Tensor::from_vec(out, [self.labels.len(), c])
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let pick = Pick { labels: self.labels.clone(), classes: self.classes };
        Ok(smallvec![Some(g.tape().apply(pick, &[g])?)])
    }
}

/// The mean over the batch of `−log softmax(logits)[i, labels[i]]`.
///
/// `logits` is `[N, C]`; each label must lie in `[0, C)`. Stable for logits
/// of any magnitude (it goes through [`log_softmax`]).
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let logits = tape.leaf(Tensor::from_vec(vec![1000.0, 0.0, -1000.0, 0.0], [2, 2])?);
/// let loss = wengert_ops::cross_entropy(logits, &[0, 1])?;
/// // Both rows put their label's logit 1000 above the other: the loss is e^-1000 ≈ 0.
/// assert!(loss.value()?.item()?.abs() < 1e-300);
/// let e = wengert_ops::cross_entropy(logits, &[0, 2]).unwrap_err();
/// assert_eq!(e.to_string(), "cross_entropy: labels: label 2 at position 1 is outside [0, 2)");
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn cross_entropy<'t, T: Float>(logits: Var<'t, T>, labels: &[usize]) -> Result<Var<'t, T>> {
    let s = logits.shape();
    if s.rank() != 2 || s[0] != labels.len() {
        return Err(Error::shape(
            "cross_entropy",
            format!("logits are {s} and there are {} labels; need logits [N, C] with N labels", labels.len()),
        ));
    }
    if s[0] == 0 {
        return Err(Error::shape("cross_entropy", "the batch is empty"));
    }
    let classes = s[1];
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        return Err(Error::argument(
            "cross_entropy",
            "labels",
            format!("label {l} at position {i} is outside [0, {classes})"),
        ));
    }
    let logp = log_softmax(logits, 1)?;
    let picked = logits.tape().apply(Pick { labels: labels.into(), classes }, &[logp])?;
    picked.mean_all()?.neg()
}

/// `mean((input − target)²)`; both arguments get gradients.
pub fn mse_loss<'t, T: Float>(input: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    if input.shape() != target.shape() {
        return Err(Error::shape(
            "mse_loss",
            format!("input is {}, target is {}; they must match", input.shape(), target.shape()),
        ));
    }
    let d = input.sub(target)?;
    d.mul(d)?.mean_all()
}
