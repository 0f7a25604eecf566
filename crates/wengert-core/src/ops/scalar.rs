//! Arithmetic with a constant scalar: `x + c`, `x * c`, `x / c`, `c - x`.

use crate::{smallvec, Arity, Float, InputGrads, Op, Result, Tensor, Var};

/// `x + c`, `x * c`, `x / c` or `c - x` for a constant `c`.
#[derive(Clone, Copy, Debug)]
pub enum Scalar<T> {
    /// `x + c`
    Add(T),
    /// `x * c`
    Mul(T),
    /// `x / c` (kept apart from `x * (1/c)`, which rounds differently)
    Div(T),
    /// `c - x`
    RSub(T),
}

impl<T: Float> Op<T> for Scalar<T> {
    fn name(&self) -> &'static str {
        match self {
            Scalar::Add(_) => "add_scalar",
            Scalar::Mul(_) => "mul_scalar",
            Scalar::Div(_) => "div_scalar",
            Scalar::RSub(_) => "rsub_scalar",
        }
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        Ok(match *self {
            Scalar::Add(c) => x.map(move |v| v + c),
            Scalar::Mul(c) => x.map(move |v| v * c),
            Scalar::Div(c) => x.map(move |v| v / c),
            Scalar::RSub(c) => x.map(move |v| c - v),
        })
    }

    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        Ok(smallvec![Some(match *self {
            Scalar::Add(_) => g,
            Scalar::Mul(c) => g.mul_scalar(c)?,
            Scalar::Div(c) => g.div_scalar(c)?,
            Scalar::RSub(_) => g.neg()?,
        })])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `self + c`.
    pub fn add_scalar(self, c: T) -> Result<Var<'t, T>> {
        self.tape.apply(Scalar::Add(c), &[self])
    }

    /// `self - c`.
    pub fn sub_scalar(self, c: T) -> Result<Var<'t, T>> {
        self.add_scalar(-c)
    }

    /// `self * c`.
    pub fn mul_scalar(self, c: T) -> Result<Var<'t, T>> {
        self.tape.apply(Scalar::Mul(c), &[self])
    }

    /// `self / c`.
    pub fn div_scalar(self, c: T) -> Result<Var<'t, T>> {
        self.tape.apply(Scalar::Div(c), &[self])
    }

    /// `c - self`.
    pub fn rsub_scalar(self, c: T) -> Result<Var<'t, T>> {
        self.tape.apply(Scalar::RSub(c), &[self])
    }
}
