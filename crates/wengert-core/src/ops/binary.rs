//! Elementwise `add`, `sub`, `mul`, `div` with NumPy broadcasting.
//!
//! The gradient of a broadcast operand is the output gradient summed back to
//! the operand's shape ([`Var::sum_to`]).

use crate::kernel::{broadcast_zip, Layout};
use crate::{smallvec, Arity, Float, InputGrads, Op, Result, Shape, Tensor, Var};

/// Which arithmetic operation a [`Binary`] op performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
}

/// An elementwise binary op with broadcasting.
#[derive(Clone, Copy, Debug)]
pub struct Binary(pub BinaryKind);

impl BinaryKind {
    fn name(self) -> &'static str {
        match self {
            BinaryKind::Add => "add",
            BinaryKind::Sub => "sub",
            BinaryKind::Mul => "mul",
            BinaryKind::Div => "div",
        }
    }
}

/// `f(a, b)` elementwise with broadcasting; `op` names the caller in errors.
pub fn broadcast_map<T: Float>(
    op: &str,
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T + Sync,
) -> Result<Tensor<T>> {
    if a.shape() == b.shape() {
        return a.zip_map(b, op, f);
    }
    let shape = Shape::broadcast(op, a.shape(), b.shape())?;
    if shape.numel() == 0 {
        return Ok(Tensor::zeros(shape));
    }
    let layout = Layout::coalesced(&shape, &a.shape().broadcast_strides(&shape), &b.shape().broadcast_strides(&shape));
    Ok(Tensor::from_parts(broadcast_zip(&layout, a.data(), b.data(), f), shape))
}

impl<T: Float> Op<T> for Binary {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (a, b) = (inputs[0], inputs[1]);
        let op = self.0.name();
        match self.0 {
            BinaryKind::Add => broadcast_map(op, a, b, |x, y| x + y),
            BinaryKind::Sub => broadcast_map(op, a, b, |x, y| x - y),
            BinaryKind::Mul => broadcast_map(op, a, b, |x, y| x * y),
            BinaryKind::Div => broadcast_map(op, a, b, |x, y| x / y),
        }
    }

    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        let (a, b) = (inputs[0], inputs[1]);
        let (ga, gb) = match self.0 {
            BinaryKind::Add => (Some(g), Some(g)),
            BinaryKind::Sub => (Some(g), needs[1].then(|| g.neg()).transpose()?),
            BinaryKind::Mul => (needs[0].then(|| g.mul(b)).transpose()?, needs[1].then(|| g.mul(a)).transpose()?),
            // d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b = -out/b.
            BinaryKind::Div => {
                (needs[0].then(|| g.div(b)).transpose()?, needs[1].then(|| g.mul(output)?.div(b)?.neg()).transpose()?)
            }
        };
        let reduce = |g: Option<Var<'t, T>>, x: Var<'t, T>, need: bool| -> Result<Option<Var<'t, T>>> {
            match g {
                Some(g) if need && g.same_shape(&x) => Ok(Some(g)),
                Some(g) if need => Ok(Some(g.sum_to(&x.shape())?)),
                _ => Ok(None),
            }
        };
        Ok(smallvec![reduce(ga, a, needs[0])?, reduce(gb, b, needs[1])?])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `self + other`, elementwise with broadcasting.
    pub fn add(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape.apply(Binary(BinaryKind::Add), &[self, other])
    }

    /// `self - other`, elementwise with broadcasting.
    pub fn sub(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape.apply(Binary(BinaryKind::Sub), &[self, other])
    }

    /// `self * other`, elementwise with broadcasting.
    pub fn mul(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape.apply(Binary(BinaryKind::Mul), &[self, other])
    }

    /// `self / other`, elementwise with broadcasting.
    pub fn div(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.tape.apply(Binary(BinaryKind::Div), &[self, other])
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn broadcast_values_and_gradients() {
        let tape = Tape::<f64>::new();
        let a = tape.leaf(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], [2, 3]).unwrap());
        let b = tape.leaf(Tensor::from_vec(vec![10., 20., 30.], [3]).unwrap());
        let y = a.mul(b).unwrap();
        assert_eq!(y.value().unwrap().data(), &[10., 40., 90., 40., 100., 180.]);
        let g = tape.backward(y.sum_all().unwrap()).unwrap();
        assert_eq!(g.get(a).unwrap().data(), &[10., 20., 30., 10., 20., 30.]);
        assert_eq!(g.get(b).unwrap().data(), &[5., 7., 9.]);
    }

    #[test]
    fn mismatch_names_op_and_shapes() {
        let tape = Tape::<f32>::new();
        let a = tape.leaf(Tensor::zeros([2, 3]));
        let b = tape.leaf(Tensor::zeros([4, 3]));
        let e = a.div(b).unwrap_err().to_string();
        assert_eq!(e, "div: shapes [2, 3] and [4, 3] cannot be broadcast together (axis 0: 2 vs 4)");
    }
}
