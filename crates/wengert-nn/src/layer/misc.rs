//! The layers without parameters: activations, pooling, flattening and
//! dropout.

use crate::module::{Module, Step, Visit};
use rand::Rng as _;
use wengert_core::{Error, Float, Result, Tensor, Var};
use wengert_ops::Pool2d;

/// A parameter-free elementwise activation as a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`
    Relu,
    /// `x` or `slope·x`
    LeakyRelu(f64),
    /// `1 / (1 + e^{−x})`
    Sigmoid,
    /// `tanh x`
    Tanh,
    /// `x·Φ(x)`
    Gelu,
    /// GELU's tanh approximation
    GeluTanh,
    /// `x·σ(x)`
    Silu,
    /// `ln(1 + eˣ)`
    Softplus,
}

/// Implements [`Module`] for a layer without state.
macro_rules! stateless {
    ($ty:ty, |$self:ident, $step:ident, $x:ident| $body:expr) => {
        impl<T: Float> Module<T> for $ty {
            fn forward<'t>(&mut $self, $step: &mut Step<'t, T>, $x: Var<'t, T>) -> Result<Var<'t, T>> {
                $body
            }
        }

        impl<T: Float> Visit<T> for $ty {
            crate::visit_fields!();
        }
    };
}

stateless!(Activation, |self, _step, x| match *self {
    Activation::Relu => wengert_ops::relu(x),
    Activation::LeakyRelu(s) => wengert_ops::leaky_relu(x, s),
    Activation::Sigmoid => wengert_ops::sigmoid(x),
    Activation::Tanh => wengert_ops::tanh(x),
    Activation::Gelu => wengert_ops::gelu(x),
    Activation::GeluTanh => wengert_ops::gelu_tanh(x),
    Activation::Silu => wengert_ops::silu(x),
    Activation::Softplus => wengert_ops::softplus(x),
});

/// Max pooling.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d(pub Pool2d);
stateless!(MaxPool2d, |self, _step, x| wengert_ops::max_pool2d(x, &self.0));

/// Average pooling.
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    /// Window geometry.
    pub pool: Pool2d,
    /// Count padding cells in each window's divisor (PyTorch's default: true).
    pub count_include_pad: bool,
}
stateless!(AvgPool2d, |self, _step, x| wengert_ops::avg_pool2d(x, &self.pool, self.count_include_pad));

/// Mean over H and W: `[N, C, H, W] → [N, C]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalAvgPool2d;
stateless!(GlobalAvgPool2d, |self, _step, x| wengert_ops::global_avg_pool2d(x));

/// `[N, ...] → [N, Π...]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;
stateless!(Flatten, |self, _step, x| {
    let s = x.shape();
    if s.rank() == 0 {
        return Err(Error::shape("Flatten", "input is a scalar; need [N, ...]"));
    }
    x.reshape(&[s[0], s.numel() / s[0].max(1)])
});

/// Dropout (Srivastava et al. 2014): in a training step, zeroes each element
/// with probability `p` and scales the rest by `1/(1 − p)`, with masks drawn
/// from the step's seeded generator; the identity in an evaluation step.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    /// The probability of zeroing an element, in `[0, 1)`.
    pub p: f64,
}

stateless!(Dropout, |self, step, x| {
    if !(0.0..1.0).contains(&self.p) {
        return Err(Error::argument("Dropout", "p", format!("must lie in [0, 1), got {}", self.p)));
    }
    if !step.is_training() || self.p == 0.0 {
        return Ok(x);
    }
    let keep = T::of(1.0 / (1.0 - self.p));
    let p = self.p;
    let shape = x.shape();
    let rng = step.rng();
    let mask = Tensor::from_fn(shape, |_| if rng.random::<f64>() < p { T::zero() } else { keep });
    x.mul(step.tape().constant(mask))
});
