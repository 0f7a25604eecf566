//! Elementwise `neg`, `exp`, `log`, `sqrt` and `powf`.

use crate::{smallvec, Arity, Float, InputGrads, Op, Result, Tensor, Var};

/// An elementwise function of one tensor.
#[derive(Clone, Copy, Debug)]
pub enum Unary<T> {
    /// `-x`
    Neg,
    /// `eˣ`
    Exp,
    /// `ln x`
    Log,
    /// `√x`
    Sqrt,
    /// `xᵖ` for a constant exponent `p`
    Pow(T),
}

impl<T: Float> Op<T> for Unary<T> {
    fn name(&self) -> &'static str {
        match self {
            Unary::Neg => "neg",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Sqrt => "sqrt",
            Unary::Pow(_) => "pow",
        }
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        Ok(match *self {
            Unary::Neg => x.map(|v| -v),
            Unary::Exp => Tensor::from_parts(crate::kernel::exp(x.data()), x.shape().clone()),
            Unary::Log => Tensor::from_parts(crate::kernel::log(x.data()), x.shape().clone()),
            Unary::Sqrt => x.map(T::sqrt),
            // Exact special cases: powf(x, 2) and x*x can differ in the last bit.
            Unary::Pow(p) if p == T::of(2.0) => x.map(|v| v * v),
            Unary::Pow(p) if p == T::of(0.5) => x.map(T::sqrt),
            Unary::Pow(p) if p == T::one() => x.map(|v| v),
            Unary::Pow(p) => x.map(move |v| v.powf(p)),
        })
    }

    fn vjp<'t>(&self, inputs: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let x = inputs[0];
        let gx = match *self {
            Unary::Neg => g.neg()?,
            Unary::Exp => g.mul(y)?,
            Unary::Log => g.div(x)?,
            // d√x = 1 / (2√x)
            Unary::Sqrt => g.div(y)?.mul_scalar(T::of(0.5))?,
            Unary::Pow(p) if p == T::zero() => return Ok(smallvec![None]),
            Unary::Pow(p) if p == T::one() => g,
            Unary::Pow(p) => g.mul(x.powf(p - T::one())?.mul_scalar(p)?)?,
        };
        Ok(smallvec![Some(gx)])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `-self`.
    pub fn neg(self) -> Result<Var<'t, T>> {
        self.tape.apply(Unary::Neg, &[self])
    }

    /// `e^self`.
    pub fn exp(self) -> Result<Var<'t, T>> {
        self.tape.apply(Unary::Exp, &[self])
    }

    /// The natural logarithm.
    pub fn log(self) -> Result<Var<'t, T>> {
        self.tape.apply(Unary::Log, &[self])
    }

    /// The square root.
    pub fn sqrt(self) -> Result<Var<'t, T>> {
        self.tape.apply(Unary::Sqrt, &[self])
    }

    /// `self^p` for a constant exponent `p`.
    pub fn powf(self, p: T) -> Result<Var<'t, T>> {
        self.tape.apply(Unary::Pow(p), &[self])
    }
}
