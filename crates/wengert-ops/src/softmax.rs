//! `softmax` and `log_softmax` along one axis, stable for logits of any size.
//!
//! PyTorch: `torch.softmax(x, dim)`, `torch.log_softmax(x, dim)`.
//!
//! Both subtract the row maximum before exponentiating, so logits of
//! magnitude 300 and far beyond stay finite and exact.

use wengert_core::{math, smallvec, Arity, Float, InputGrads, Op, Result, Tensor, Var};

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
        let log = self.log;
        let slab = n * inner;
        if slab == 0 {
            return Ok(x.clone());
        }
        // One slab is the `n × inner` block of one outer index; its columns
        // are the rows the softmax runs along. Several slabs go to a task so
        // that small ones do not pay a task each.
        let per_task = (wengert_core::kernel::PAR_THRESHOLD / 4 / slab).max(1) * slab;
        let out = wengert_core::buffer::build(x.numel(), per_task, |i, out| {
            for (xs, os) in x.data()[i * per_task..].chunks(slab).zip(out.chunks_mut(slab)) {
                if inner == 1 {
                    softmax_row(xs, os, log);
                } else {
                    softmax_columns(xs, os, inner, log);
                }
            }
        });
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

/// The row maximum to shift by: a row with no finite maximum (all −∞, or
/// +∞ present) is shifted by 0, so that −∞ stays −∞.
#[inline(always)]
fn shift_of<T: Float>(m: T) -> T {
    if m.is_finite() {
        m
    } else {
        T::zero()
    }
}

wengert_core::vectorised_fn! {
    /// Softmax (or log-softmax) of one contiguous row `x` into `out`.
    fn softmax_row<T: Float>(x: &[T], out: &mut [T], log: bool) {
        let x = &x[..out.len()];
        // Eight running maxima and sums, so that the loops vectorise. NaN is
        // skipped by `max` and reaches every output through the sum.
        let mut lanes = [T::neg_infinity(); 8];
        let (chunks, rest) = (x.chunks_exact(8), x.chunks_exact(8).remainder());
        for c in chunks {
            for k in 0..8 {
                lanes[k] = lanes[k].max(c[k]);
            }
        }
        let m = rest.iter().fold(lanes.iter().fold(T::neg_infinity(), |a, &b| a.max(b)), |a, &b| a.max(b));
        let m = shift_of(m);
        for i in 0..x.len() {
            out[i] = math::exp(x[i] - m);
        }
        let mut sums = [T::zero(); 8];
        let (chunks, rest) = (out.chunks_exact(8), out.chunks_exact(8).remainder());
        for c in chunks {
            for k in 0..8 {
                sums[k] += c[k];
            }
        }
        let sum = ((sums[0] + sums[4]) + (sums[2] + sums[6])) + ((sums[1] + sums[5]) + (sums[3] + sums[7]));
        let sum = rest.iter().fold(sum, |a, &b| a + b);
        if log {
            let lse = math::log(sum);
            for i in 0..x.len() {
                out[i] = x[i] - m - lse;
            }
        } else {
            for o in out.iter_mut() {
                *o /= sum;
            }
        }
    }
}

wengert_core::vectorised_fn! {
    /// Softmax (or log-softmax) of the columns of a row-major
    /// `rows × inner` block `x` into `out`: the loops run along the rows'
    /// contiguous `inner` elements, all columns at once.
    fn softmax_columns<T: Float>(x: &[T], out: &mut [T], inner: usize, log: bool) {
        let x = &x[..out.len()];
        let mut m = x[..inner].to_vec();
        for row in x.chunks_exact(inner).skip(1) {
            for i in 0..inner {
                m[i] = m[i].max(row[i]);
            }
        }
        for v in m.iter_mut() {
            *v = shift_of(*v);
        }
        let mut sum = vec![T::zero(); inner];
        for (row, orow) in x.chunks_exact(inner).zip(out.chunks_exact_mut(inner)) {
            for i in 0..inner {
                orow[i] = math::exp(row[i] - m[i]);
                sum[i] += orow[i];
            }
        }
        if log {
            for s in sum.iter_mut() {
                *s = math::log(*s);
            }
            for (row, orow) in x.chunks_exact(inner).zip(out.chunks_exact_mut(inner)) {
                for i in 0..inner {
                    orow[i] = row[i] - m[i] - sum[i];
                }
            }
        } else {
            for orow in out.chunks_exact_mut(inner) {
                for i in 0..inner {
                    orow[i] /= sum[i];
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use wengert_core::Tape;

    /// Softmax along `dim` the plain way, one strided row at a time, in f64.
    fn reference(x: &[f64], dims: &[usize], dim: usize, log: bool) -> Vec<f64> {
        let (n, inner) = (dims[dim], dims[dim + 1..].iter().product::<usize>());
        let outer: usize = dims[..dim].iter().product();
        let mut out = vec![0.0; x.len()];
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| (o * n + j) * inner + i;
                let m = (0..n).map(|j| x[at(j)]).fold(f64::NEG_INFINITY, f64::max);
                let m = if m.is_finite() { m } else { 0.0 };
                let sum: f64 = (0..n).map(|j| (x[at(j)] - m).exp()).sum();
                for j in 0..n {
                    out[at(j)] = if log { x[at(j)] - m - sum.ln() } else { (x[at(j)] - m).exp() / sum };
                }
            }
        }
        out
    }

    #[test]
    fn every_axis_matches_the_plain_computation() {
        let dims = [3, 5, 17];
        let x: Vec<f64> = (0..255).map(|i| ((i * 37 % 101) as f64 - 50.0) * 0.3).collect();
        for dim in 0..3 {
            for log in [false, true] {
                let want = reference(&x, &dims, dim, log);
                let tape = Tape::new();
                let v = tape.constant(Tensor::from_vec(x.clone(), dims).unwrap());
                let got = apply(v, dim as isize, log).unwrap().value().unwrap().to_vec();
                assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-14 * b.abs().max(1.0)), "dim {dim}");
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let tape = Tape::new();
                let v = tape.constant(Tensor::from_vec(x32, dims).unwrap());
                let got = apply(v, dim as isize, log).unwrap().value().unwrap().to_vec();
                let close = got.iter().zip(&want).all(|(&a, &b)| (a as f64 - b).abs() <= 1e-5 * b.abs().max(1.0));
                assert!(close, "f32, dim {dim}, log {log}");
            }
        }
    }

    #[test]
    fn rows_of_infinities_and_nan() {
        let tape = Tape::new();
        let inf = f64::INFINITY;
        let x = Tensor::from_vec(vec![-inf, -inf, -inf, 1.0, -inf, 2.0, 0.0, f64::NAN, 1.0], [3, 3]).unwrap();
        let y = softmax(tape.constant(x), 1).unwrap().value().unwrap().to_vec();
        assert!(y[..3].iter().all(|v| v.is_nan()), "a row of −∞ has no softmax");
        assert_eq!(y[3], 1.0 / (1.0 + 1f64.exp()));
        assert_eq!(y[4], 0.0);
        assert!(y[6..].iter().all(|v| v.is_nan()), "NaN spreads through its row");
    }
}
