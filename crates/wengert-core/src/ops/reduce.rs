//! `sum`, `mean` and `amax` over any set of axes, with or without `keepdim`.

use crate::kernel::reduce_axis;
use crate::shape::Dims;
use crate::{smallvec, Arity, Float, InputGrads, Op, Result, Shape, Tensor, Var};

/// Folds `x` over `axes` (sorted, distinct) with `f` from `init`; the result
/// keeps the reduced axes with extent 1. Neighbouring reduced axes are
/// merged first, so a full reduction is one flat loop.
pub(crate) fn fold_axes<T: Float>(
    x: &Tensor<T>,
    axes: &[usize],
    init: T,
    f: impl Fn(T, T) -> T + Sync + Copy,
) -> Tensor<T> {
    let kept = x.shape().reduced(axes, true);
    // Merge runs of axes that are all reduced or all kept.
    let mut dims: Dims = Dims::new();
    let mut reduced: Vec<bool> = Vec::new();
    for (i, &d) in x.dims().iter().enumerate() {
        let r = axes.contains(&i);
        if reduced.last() == Some(&r) {
            *dims.last_mut().expect("dims and flags grow together") *= d;
        } else {
            dims.push(d);
            reduced.push(r);
        }
    }
    let mut data: Option<Vec<T>> = None;
    for k in 0..dims.len() {
        if reduced[k] {
            let src = data.as_deref().unwrap_or(x.data());
            let next = reduce_axis(src, &dims, k, init, f);
            dims[k] = 1;
            data = Some(next);
        }
    }
    let data = data.unwrap_or_else(|| x.to_vec());
    Tensor::from_parts(data, kept)
}

/// NaN-propagating maximum, as PyTorch's `amax`.
fn max_nan<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || a > b {
        a
    } else {
        b
    }
}

/// Sum over axes.
#[derive(Clone, Debug)]
pub struct Sum {
    axes: Dims,
    keepdim: bool,
}

impl<T: Float> Op<T> for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        let s = fold_axes(x, &self.axes, T::zero(), |a, b| a + b);
        s.reshape(x.shape().reduced(&self.axes, self.keepdim))
    }

    fn vjp<'t>(&self, inputs: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let shape = inputs[0].shape();
        let g = g.reshape(&shape.reduced(&self.axes, true))?.broadcast_to(&shape)?;
        Ok(smallvec![Some(g)])
    }
}

/// Maximum over axes. The gradient goes to the maxima, shared evenly among ties.
#[derive(Clone, Debug)]
pub struct Amax {
    axes: Dims,
    keepdim: bool,
}

impl<T: Float> Op<T> for Amax {
    fn name(&self) -> &'static str {
        "amax"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        if x.numel() == 0 {
            return Err(crate::Error::shape(
                "amax",
                format!("cannot take the maximum of an empty tensor of shape {}", x.shape()),
            ));
        }
        let m = fold_axes(x, &self.axes, T::neg_infinity(), max_nan);
        m.reshape(x.shape().reduced(&self.axes, self.keepdim))
    }

    fn vjp<'t>(&self, inputs: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let x = inputs[0].value()?;
        let shape = x.shape().clone();
        let keep = shape.reduced(&self.axes, true);
        let m = y.value()?.reshape(keep.clone())?;
        let mask = super::binary::broadcast_map("amax", &x, &m, |a, b| if a == b { T::one() } else { T::zero() })?;
        let counts = fold_axes(&mask, &self.axes, T::zero(), |a, b| a + b);
        let share = super::binary::broadcast_map("amax", &mask, &counts, |a, c| a / c)?;
        let share = y.tape.constant(share);
        let g = g.reshape(&keep)?.broadcast_to(&shape)?.mul(share)?;
        Ok(smallvec![Some(g)])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The sum over `dims` (negative counts from the end); with `keepdim` the
    /// reduced axes stay with extent 1.
    pub fn sum(self, dims: &[isize], keepdim: bool) -> Result<Var<'t, T>> {
        let axes = self.shape().axes("sum", Some(dims))?;
        self.tape.apply(Sum { axes, keepdim }, &[self])
    }

    /// The sum of all elements, as a 0-d tensor.
    pub fn sum_all(self) -> Result<Var<'t, T>> {
        let axes = self.shape().axes("sum", None)?;
        self.tape.apply(Sum { axes, keepdim: false }, &[self])
    }

    /// The mean over `dims`; composed as `sum / count`.
    pub fn mean(self, dims: &[isize], keepdim: bool) -> Result<Var<'t, T>> {
        let shape = self.shape();
        let axes = shape.axes("mean", Some(dims))?;
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        self.sum(dims, keepdim)?.div_scalar(T::of(count as f64))
    }

    /// The mean of all elements, as a 0-d tensor.
    pub fn mean_all(self) -> Result<Var<'t, T>> {
        let n = self.numel();
        self.sum_all()?.div_scalar(T::of(n as f64))
    }

    /// The maximum over `dims`. NaN propagates; ties share the gradient.
    pub fn amax(self, dims: &[isize], keepdim: bool) -> Result<Var<'t, T>> {
        let axes = self.shape().axes("amax", Some(dims))?;
        self.tape.apply(Amax { axes, keepdim }, &[self])
    }
}

/// Sums `x` down to `target`, which `x` broadcasts from (the tensor-level
/// [`Var::sum_to`]).
pub fn sum_to_shape<T: Float>(x: &Tensor<T>, target: &Shape) -> Tensor<T> {
    let off = x.rank() - target.rank();
    let axes: Vec<usize> = (0..x.rank()).filter(|&i| i < off || (target[i - off] == 1 && x.dims()[i] != 1)).collect();
    let s = fold_axes(x, &axes, T::zero(), |a, b| a + b);
    Tensor::from_parts(s.into_vec(), target.clone())
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn sums_over_axes() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_fn([2, 3, 4], |i| i as f64));
        let s = x.sum(&[0, 2], false).unwrap();
        assert_eq!(s.shape().dims(), &[3]);
        assert_eq!(s.value().unwrap().data(), &[60., 92., 124.]);
        let k = x.sum(&[-1], true).unwrap();
        assert_eq!(k.shape().dims(), &[2, 3, 1]);
        assert_eq!(x.sum_all().unwrap().value().unwrap().item().unwrap(), 276.);
    }

    #[test]
    fn amax_shares_gradient_among_ties() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_vec(vec![1., 3., 3., 2.], [4]).unwrap());
        let m = x.amax(&[0], false).unwrap();
        let g = tape.backward(m).unwrap();
        assert_eq!(g.get(x).unwrap().data(), &[0., 0.5, 0.5, 0.]);
    }
}
