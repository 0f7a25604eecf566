//! Ops that move elements without arithmetic: `reshape`, `permute`,
//! `broadcast_to`, and its adjoint `sum_to`.
//!
//! `broadcast_to` and `sum_to` are each other's vector-Jacobian product, as
//! are `permute` by a permutation and by its inverse.

use super::reduce::sum_to_shape;
use crate::kernel::gather_strided;
use crate::shape::Dims;
use crate::{smallvec, Arity, Error, Float, InputGrads, Op, Result, Shape, Tensor, Var};

/// A new shape with the same number of elements; shares the buffer.
#[derive(Clone, Debug)]
pub struct Reshape(pub Shape);

impl<T: Float> Op<T> for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        inputs[0].reshape(self.0.clone())
    }
    fn vjp<'t>(&self, inputs: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        Ok(smallvec![Some(g.reshape(&inputs[0].shape())?)])
    }
}

/// Reorders the axes: output axis `i` is input axis `perm[i]`.
#[derive(Clone, Debug)]
pub struct Permute(pub Dims);

impl<T: Float> Op<T> for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        let rank = x.rank();
        let mut seen = vec![false; rank];
        for &p in &self.0 {
            if p >= rank || std::mem::replace(&mut seen[p], true) {
                return Err(Error::argument(
                    "permute",
                    "dims",
                    format!("{:?} is not a permutation of the axes of {}", self.0.as_slice(), x.shape()),
                ));
            }
        }
        if self.0.len() != rank {
            return Err(Error::argument(
                "permute",
                "dims",
                format!(
                    "{:?} has {} entries, the tensor {} has rank {rank}",
                    self.0.as_slice(),
                    self.0.len(),
                    x.shape()
                ),
            ));
        }
        let strides = x.shape().strides();
        let dims: Dims = self.0.iter().map(|&p| x.dims()[p]).collect();
        let st: Dims = self.0.iter().map(|&p| strides[p]).collect();
        Ok(Tensor::from_parts(gather_strided(x.data(), 0, &dims, &st), dims.into()))
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let mut inv = vec![0isize; self.0.len()];
        for (i, &p) in self.0.iter().enumerate() {
            inv[p] = i as isize;
        }
        Ok(smallvec![Some(g.permute(&inv)?)])
    }
}

/// Repeats the input along axes of extent 1 (and new leading axes).
#[derive(Clone, Debug)]
pub struct BroadcastTo(pub Shape);

impl<T: Float> Op<T> for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        self.0.checked_numel("broadcast_to")?;
        if !x.shape().broadcasts_to(&self.0) {
            return Err(Error::shape("broadcast_to", format!("cannot broadcast {} to {}", x.shape(), self.0)));
        }
        let strides = x.shape().broadcast_strides(&self.0);
        Ok(Tensor::from_parts(gather_strided(x.data(), 0, &self.0, &strides), self.0.clone()))
    }
    fn vjp<'t>(&self, inputs: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        Ok(smallvec![Some(g.sum_to(&inputs[0].shape())?)])
    }
}

/// Sums over the axes along which `target` was broadcast: the adjoint of
/// [`BroadcastTo`].
#[derive(Clone, Debug)]
pub struct SumTo(pub Shape);

impl<T: Float> Op<T> for SumTo {
    fn name(&self) -> &'static str {
        "sum_to"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        if !self.0.broadcasts_to(inputs[0].shape()) {
            return Err(Error::shape("sum_to", format!("cannot sum {} down to {}", inputs[0].shape(), self.0)));
        }
        Ok(sum_to_shape(inputs[0], &self.0))
    }
    fn vjp<'t>(&self, inputs: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        Ok(smallvec![Some(g.broadcast_to(&inputs[0].shape())?)])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The same elements under a new shape with the same element count.
    pub fn reshape(self, shape: &[usize]) -> Result<Var<'t, T>> {
        let shape = Shape::new(shape);
        let own = self.shape();
        if own == shape {
            return Ok(self);
        }
        if own.numel() != shape.checked_numel("reshape")? {
            return Err(Error::shape(
                "reshape",
                format!("cannot reshape {own} ({} elements) to {shape} ({} elements)", own.numel(), shape.numel()),
            ));
        }
        self.tape.apply(Reshape(shape), &[self])
    }

    /// Reorders the axes: output axis `i` is input axis `dims[i]`.
    pub fn permute(self, dims: &[isize]) -> Result<Var<'t, T>> {
        let shape = self.shape();
        if dims.len() != shape.rank() {
            return Err(Error::argument(
                "permute",
                "dims",
                format!("{dims:?} has {} entries, the tensor {shape} has rank {}", dims.len(), shape.rank()),
            ));
        }
        let mut perm = Dims::new();
        for &d in dims {
            let a = shape.axis("permute", d)?;
            if perm.contains(&a) {
                return Err(Error::argument("permute", "dims", format!("{dims:?} is not a permutation")));
            }
            perm.push(a);
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self);
        }
        self.tape.apply(Permute(perm), &[self])
    }

    /// Swaps the last two axes (a matrix transpose, batched).
    pub fn transpose_last(self) -> Result<Var<'t, T>> {
        let r = self.shape().rank() as isize;
        if r < 2 {
            return Err(Error::argument(
                "transpose",
                "self",
                format!("needs rank 2 or more, got shape {}", self.shape()),
            ));
        }
        let mut dims: Vec<isize> = (0..r).collect();
        dims.swap(r as usize - 2, r as usize - 1);
        self.permute(&dims)
    }

    /// Repeats along axes of extent 1 (and new leading axes) to `shape`.
    pub fn broadcast_to(self, shape: &[usize]) -> Result<Var<'t, T>> {
        let target = Shape::new(shape);
        let own = self.shape();
        if own == target {
            return Ok(self);
        }
        if !own.broadcasts_to(&target) {
            return Err(Error::shape("broadcast_to", format!("cannot broadcast {own} to {target}")));
        }
        target.checked_numel("broadcast_to")?;
        self.tape.apply(BroadcastTo(target), &[self])
    }

    /// Sums down to `shape`, which must broadcast to this variable's shape.
    /// The adjoint of [`Var::broadcast_to`].
    pub fn sum_to(self, shape: &[usize]) -> Result<Var<'t, T>> {
        let target = Shape::new(shape);
        let own = self.shape();
        if own == target {
            return Ok(self);
        }
        if !target.broadcasts_to(&own) {
            return Err(Error::shape("sum_to", format!("cannot sum {own} down to {target}")));
        }
        self.tape.apply(SumTo(target), &[self])
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn permute_and_back() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_fn([2, 3, 4], |i| i as f64));
        let p = x.permute(&[2, 0, 1]).unwrap();
        assert_eq!(p.shape().dims(), &[4, 2, 3]);
        assert_eq!(p.value().unwrap().get(&[1, 1, 2]).unwrap(), 12. + 8. + 1.);
        let w = tape.constant(Tensor::from_fn([4, 2, 3], |i| i as f64));
        let g = tape.backward(p.mul(w).unwrap().sum_all().unwrap()).unwrap();
        // x[1, 2, 1] sits at p[1, 1, 2], whose weight has flat index 1·6 + 1·3 + 2.
        assert_eq!(g.get(x).unwrap().get(&[1, 2, 1]).unwrap(), 11.);
    }

    #[test]
    fn bad_layouts_are_errors() {
        let tape = Tape::<f32>::new();
        let x = tape.leaf(Tensor::zeros([2, 3]));
        assert_eq!(
            x.reshape(&[4]).unwrap_err().to_string(),
            "reshape: cannot reshape [2, 3] (6 elements) to [4] (4 elements)"
        );
        assert!(x.permute(&[0, 0]).is_err());
        assert_eq!(x.broadcast_to(&[3, 3]).unwrap_err().to_string(), "broadcast_to: cannot broadcast [2, 3] to [3, 3]");
        assert!(x.broadcast_to(&[5, 2, 3]).is_ok());
    }
}
