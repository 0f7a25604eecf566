//! `concat` along an axis and strided `slice`, each the other's adjoint.

use crate::kernel::gather_strided;
use crate::shape::Dims;
use crate::{Arity, Error, Float, InputGrads, Op, Result, Shape, Tensor, Var};

/// Joins inputs along axis `dim`; the other extents must agree.
#[derive(Clone, Debug)]
pub struct Concat {
    dim: usize,
}

impl<T: Float> Op<T> for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }

    fn arity(&self) -> Arity {
        Arity::AtLeast(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let first = inputs[0].shape();
        let d = self.dim;
        let mut total = 0;
        for (k, x) in inputs.iter().enumerate() {
            let s = x.shape();
            let fits = s.rank() == first.rank() && (0..s.rank()).all(|i| i == d || s[i] == first[i]);
            if !fits {
                return Err(Error::shape(
                    "concat",
                    format!("input {k} has shape {s}, input 0 has shape {first}; all extents but axis {d} must agree"),
                ));
            }
            total += s[d];
        }
        let mut dims: Dims = first.dims().into();
        dims[d] = total;
        let outer: usize = first[..d].iter().product();
        let inner: usize = first[d + 1..].iter().product();
        // One chunk per outer index: the inputs' rows side by side.
        let out = crate::buffer::build(outer * total * inner, (total * inner).max(1), |o, mut dst| {
            for x in inputs {
                let w = x.dims()[d] * inner;
                let (row, rest) = dst.split_at_mut(w);
                row.copy_from_slice(&x.data()[o * w..(o + 1) * w]);
                dst = rest;
            }
        });
        Ok(Tensor::from_parts(out, dims.into()))
    }

    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        let mut start = 0;
        let mut grads = InputGrads::new();
        for (x, &need) in inputs.iter().zip(needs) {
            let len = x.shape()[self.dim];
            grads.push(if need { Some(g.slice(self.dim as isize, start, start + len, 1)?) } else { None });
            start += len;
        }
        Ok(grads)
    }
}

/// `x[start:end:step]` along one axis.
#[derive(Clone, Debug)]
pub struct Slice {
    dim: usize,
    start: usize,
    step: usize,
    len: usize,
}

impl Slice {
    fn out_shape(&self, input: &Shape) -> Shape {
        let mut d: Dims = input.dims().into();
        d[self.dim] = self.len;
        d.into()
    }
}

impl<T: Float> Op<T> for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        let shape = self.out_shape(x.shape());
        let mut strides = x.shape().strides();
        let offset = self.start * strides[self.dim];
        // A step that reaches past the end is never taken (a huge one would
        // overflow the stride).
        strides[self.dim] = if self.len > 1 { strides[self.dim] * self.step } else { 0 };
        Ok(Tensor::from_parts(gather_strided(x.data(), offset, &shape, &strides), shape))
    }

    fn vjp<'t>(&self, inputs: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let embed = SliceAdjoint { slice: self.clone(), shape: inputs[0].shape() };
        Ok(crate::smallvec![Some(g.tape.apply(embed, &[g])?)])
    }
}

/// Places a slice's gradient back into zeros of the input's shape: the
/// adjoint of [`Slice`], whose own adjoint is the slice again.
#[derive(Clone, Debug)]
struct SliceAdjoint {
    slice: Slice,
    shape: Shape,
}

impl<T: Float> Op<T> for SliceAdjoint {
    fn name(&self) -> &'static str {
        "slice_adjoint"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let g = inputs[0];
        let s = &self.slice;
        let d = s.dim;
        let outer: usize = self.shape[..d].iter().product();
        let inner: usize = self.shape[d + 1..].iter().product();
        let full = self.shape[d];
        // One chunk per outer index: zero where the slice did not reach.
        let out = crate::buffer::build(outer * full * inner, (full * inner).max(1), |o, dst| {
            dst.fill(T::zero());
            for k in 0..s.len {
                let src = &g.data()[(o * s.len + k) * inner..][..inner];
                dst[(s.start + k * s.step) * inner..][..inner].copy_from_slice(src);
            }
        });
        Ok(Tensor::from_parts(out, self.shape.clone()))
    }

    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let s = &self.slice;
        let end = s.start + s.len.saturating_sub(1) * s.step + 1;
        Ok(crate::smallvec![Some(g.slice(s.dim as isize, s.start, end, s.step)?)])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Joins `vars` along axis `dim`; all other extents must agree.
    pub fn concat(vars: &[Var<'t, T>], dim: isize) -> Result<Var<'t, T>> {
        let Some(first) = vars.first() else {
            return Err(Error::argument("concat", "inputs", "needs at least one tensor"));
        };
        let dim = first.shape().axis("concat", dim)?;
        for v in vars {
            first.same_tape("concat", v)?;
        }
        first.tape.apply(Concat { dim }, vars)
    }

    /// `self[start:end:step]` along axis `dim`, with Python's rule that
    /// `start` and `end` beyond the extent are clamped to it.
    pub fn slice(self, dim: isize, start: usize, end: usize, step: usize) -> Result<Var<'t, T>> {
        let shape = self.shape();
        let dim = shape.axis("slice", dim)?;
        if step == 0 {
            return Err(Error::argument("slice", "step", "must be at least 1, got 0"));
        }
        let n = shape[dim];
        let (start, end) = (start.min(n), end.min(n));
        let len = if end > start { (end - start).div_ceil(step) } else { 0 };
        if start == 0 && step == 1 && len == n {
            return Ok(self);
        }
        self.tape.apply(Slice { dim, start, step, len }, &[self])
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn slice_and_concat_round_trip() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_fn([2, 5], |i| i as f64));
        let a = x.slice(1, 0, 2, 1).unwrap();
        let b = x.slice(1, 2, 5, 1).unwrap();
        let y = crate::Var::concat(&[a, b], -1).unwrap();
        assert_eq!(y.value().unwrap(), x.value().unwrap());
        let s = x.slice(1, 1, 5, 2).unwrap();
        assert_eq!(s.value().unwrap().data(), &[1., 3., 6., 8.]);
        let g = tape.backward(s.sum_all().unwrap()).unwrap();
        assert_eq!(g.get(x).unwrap().data(), &[0., 1., 0., 1., 0., 0., 1., 0., 1., 0.]);
    }

    #[test]
    fn concat_checks_extents() {
        let tape = Tape::<f64>::new();
        let a = tape.leaf(Tensor::zeros([2, 3]));
        let b = tape.leaf(Tensor::zeros([3, 3]));
        let e = crate::Var::concat(&[a, b], 1).unwrap_err().to_string();
        assert_eq!(e, "concat: input 1 has shape [3, 3], input 0 has shape [2, 3]; all extents but axis 1 must agree");
    }
}
