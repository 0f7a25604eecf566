//! `softmax` and `log_softmax` along one axis, stable for logits of any size.
//!
//! PyTorch: `torch.softmax(x, dim)`, `torch.log_softmax(x, dim)`.
//!
//! Both subtract the row maximum before exponentiating, so logits of
//! magnitude 300 and far beyond stay finite and exact.

use wengert_core::{smallvec, Arity, Float, InputGrads, Op, Result, Tensor, Var};

/// Softmax (`log: false`) or log-softmax (`log: true`) along `dim`.
#[derive(Clone, Copy, Debug)]
pub struct Softmax {
    dim: usize,
    log: bool,
}

impl<T: Float> Op<T> for Softmax {
    fn name(&self) -> &'static str {
        if self.log {
            "log_softmax"
        } else {
            "softmax"
        }
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        let d = self.dim;
        let n = x.dims()[d];
        let inner: usize = x.dims()[d + 1..].iter().product();
        let outer: usize = x.dims()[..d].iter().product();
        let mut out = x.to_vec();
        let mut row = vec![T::zero(); n];
        for o in 0..outer {
            for i in 0..inner {
                let idx = |j: usize| (o * n + j) * inner + i;
                for (j, r) in row.iter_mut().enumerate() {
                    *r = out[idx(j)];
                }
                let m = row.iter().fold(T::neg_infinity(), |a, &b| a.max(b));
                // A row of -inf has no finite maximum; shifting by 0 keeps it -inf.
                let m = if m.is_finite() { m } else { T::zero() };
                let sum: T = row.iter().map(|&v| (v - m).exp()).sum();
                if self.log {
                    let lse = sum.ln();
                    for (j, &v) in row.iter().enumerate() {
                        out[idx(j)] = v - m - lse;
                    }
                } else {
                    for (j, &v) in row.iter().enumerate() {
                        out[idx(j)] = (v - m).exp() / sum;
                    }
                }
            }
        }
        Tensor::from_vec(out, x.shape().clone())
    }

    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let d = self.dim as isize;
        let gx = if self.log {
            // ∂/∂x log_softmax: g − softmax · Σg
            g.sub(y.exp()?.mul(g.sum(&[d], true)?)?)?
        } else {
            // ∂/∂x softmax: y ⊙ (g − Σ g⊙y)
            y.mul(g.sub(g.mul(y)?.sum(&[d], true)?)?)?
        };
        Ok(smallvec![Some(gx)])
    }
}

fn apply<'t, T: Float>(x: Var<'t, T>, dim: isize, log: bool) -> Result<Var<'t, T>> {
    let dim = x.shape().axis(if log { "log_softmax" } else { "softmax" }, dim)?;
    x.tape().apply(Softmax { dim, log }, &[x])
}

/// `exp(x) / Σ exp(x)` along `dim` (negative counts from the end).
pub fn softmax<'t, T: Float>(x: Var<'t, T>, dim: isize) -> Result<Var<'t, T>> {
    apply(x, dim, false)
}

/// `x − log Σ exp(x)` along `dim`, computed without overflow.
pub fn log_softmax<'t, T: Float>(x: Var<'t, T>, dim: isize) -> Result<Var<'t, T>> {
    apply(x, dim, true)
}
