//! Elementwise activations: `relu`, `leaky_relu`, `sigmoid`, `tanh`, `gelu`
//! (erf and tanh forms), `softplus`, `silu`, and `erf`.
//!
//! PyTorch: `torch.nn.functional.<name>`.
//!
//! Each forward is one fused, numerically stable loop; each backward is
//! written with differentiable ops, so second derivatives work.

use wengert_core::{kernel, math, smallvec, Arity, Float, InputGrads, Op, Result, Tensor, TensorGrads, Var};

/// Which activation an [`Activation`] op applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// `max(x, 0)`
    Relu,
    /// `x` for `x > 0`, else `slope·x`
    LeakyRelu(f64),
    /// `1 / (1 + e^{-x})`
    Sigmoid,
    /// `tanh x`
    Tanh,
    /// `x·Φ(x)`, Φ the standard normal CDF
    Gelu,
    /// `ln(1 + eˣ)`
    Softplus,
    /// `x·σ(x)`
    Silu,
    /// The error function
    Erf,
}

/// An elementwise activation.
#[derive(Clone, Copy, Debug)]
pub struct Activation(pub Kind);

/// The logistic function, stable for large |x| in both directions:
/// `1/(1 + e^{−x})` for `x ≥ 0`, `eˣ/(1 + eˣ)` below, both from one
/// `e^{−|x|}` and without a branch, so that loops over it vectorise.
#[inline(always)]
fn sigmoid_of<T: Float>(x: T) -> T {
    let e = math::exp(-x.abs());
    let d = T::one() + e;
    let (pos, neg) = (T::one() / d, e / d);
    if x >= T::zero() {
        pos
    } else {
        neg
    }
}

wengert_core::vectorised_fn! {
    /// `out[i] = σ(x[i])`, times `x[i]` when `silu`.
    fn sigmoid_into<T: Float>(x: &[T], out: &mut [T], silu: bool) {
        if silu {
            out.iter_mut().zip(x).for_each(|(o, &v)| *o = v * sigmoid_of(v));
        } else {
            out.iter_mut().zip(x).for_each(|(o, &v)| *o = sigmoid_of(v));
        }
    }
}

/// `σ(x)` (or `x·σ(x)`) over a tensor, vectorised and in parallel when large.
fn sigmoid_map<T: Float>(x: &Tensor<T>, silu: bool) -> Result<Tensor<T>> {
    like(x, kernel::map_slices(x.data(), |x, o| sigmoid_into(x, o, silu)))
}

wengert_core::vectorised_fn! {
    /// `out[i] = x[i]·Φ(x[i]) = x[i]/2·(1 + erf(x[i]/√2))`.
    fn gelu_into<T: Float>(x: &[T], out: &mut [T]) {
        let (half, r) = (T::of(0.5), T::of(FRAC_1_SQRT_2));
        // An index loop: an iterator's fold may stay out of line and lose
        // the vector features.
        let x = &x[..out.len()];
        for i in 0..out.len() {
            out[i] = x[i] * half * (T::one() + math::erf(x[i] * r));
        }
    }
}

wengert_core::vectorised_fn! {
    /// `out[i] = ln(1 + e^{x[i]}) = max(x[i], 0) + ln(1 + e^{−|x[i]|})`: no
    /// overflow, no lost digits.
    fn softplus_into<T: Float>(x: &[T], out: &mut [T]) {
        let x = &x[..out.len()];
        for i in 0..out.len() {
            let v = x[i];
            let pos = if v > T::zero() { v } else { T::zero() };
            out[i] = pos + math::ln_1p(math::exp(-v.abs()));
        }
    }
}

/// Wraps a kernel's output buffer as a tensor of `x`'s shape.
fn like<T: Float>(x: &Tensor<T>, data: Vec<T>) -> Result<Tensor<T>> {
    Tensor::from_vec(data, x.shape().clone())
}

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// `max(v, 0)`, written `v < 0` rather than `v > 0` so that NaN passes
/// through, as in PyTorch. Every op that applies a ReLU (alone, after
/// batch norm, after a sum) applies this one.
#[inline]
pub(crate) fn relu_of<T: Float>(v: T) -> T {
    if v < T::zero() {
        T::zero()
    } else {
        v
    }
}

/// The factor ReLU (`slope` 0) or leaky ReLU gives its input's gradient at
/// `v`: one where `v > 0`, else `slope`. ReLU's output is positive exactly
/// where its input is (a NaN stays NaN, a negative zero stays negative
/// zero), so the fused ops take it from their output with the same result.
#[inline]
pub(crate) fn relu_factor<T: Float>(v: T, slope: T) -> T {
    if v > T::zero() {
        T::one()
    } else {
        slope
    }
}

impl<T: Float> Op<T> for Activation {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::Relu => "relu",
            Kind::LeakyRelu(_) => "leaky_relu",
            Kind::Sigmoid => "sigmoid",
            Kind::Tanh => "tanh",
            Kind::Gelu => "gelu",
            Kind::Softplus => "softplus",
            Kind::Silu => "silu",
            Kind::Erf => "erf",
        }
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        Ok(match self.0 {
            // `v < 0`, not `v > 0`, so that NaN passes through as PyTorch's.
            Kind::Relu => x.map(relu_of),
            Kind::LeakyRelu(s) => {
                let s = T::of(s);
                x.map(move |v| if v < T::zero() { v * s } else { v })
            }
            Kind::Sigmoid => sigmoid_map(x, false)?,
            Kind::Tanh => like(x, kernel::tanh(x.data()))?,
            Kind::Gelu => like(x, kernel::map_slices(x.data(), gelu_into))?,
            Kind::Softplus => like(x, kernel::map_slices(x.data(), softplus_into))?,
            Kind::Silu => sigmoid_map(x, true)?,
            Kind::Erf => like(x, kernel::erf(x.data()))?,
        })
    }

    fn vjp<'t>(&self, inputs: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let x = inputs[0];
        let tape = x.tape();
        let gx = match self.0 {
            // The derivative is a step function of x: a constant mask.
            Kind::Relu | Kind::LeakyRelu(_) => {
                let slope = if let Kind::LeakyRelu(s) = self.0 { T::of(s) } else { T::zero() };
                let mask = x.value()?.map(move |v| relu_factor(v, slope));
                g.mul(tape.constant(mask))?
            }
            // σ' = σ(1 − σ) and tanh' = 1 − tanh², from the output y.
            Kind::Sigmoid | Kind::Tanh => tape.apply(OutputGrad(self.0), &[g, y])?,
            // (xΦ(x))' = Φ(x) + x·φ(x)
            Kind::Gelu => {
                let cdf = erf(x.mul_scalar(T::of(FRAC_1_SQRT_2))?)?.add_scalar(T::one())?.mul_scalar(T::of(0.5))?;
                g.mul(cdf.add(x.mul(normal_pdf(x)?)?)?)?
            }
            // softplus' = σ
            Kind::Softplus => g.mul(sigmoid(x)?)?,
            // (xσ)' = σ + xσ(1 − σ)
            Kind::Silu => {
                let s = sigmoid(x)?;
                g.mul(s.add(x.mul(s)?.mul(s.rsub_scalar(T::one())?)?)?)?
            }
            // erf' = 2/√π · e^{−x²}
            Kind::Erf => g.mul(x.mul(x)?.neg()?.exp()?.mul_scalar(T::of(std::f64::consts::FRAC_2_SQRT_PI))?)?,
        };
        Ok(smallvec![Some(gx)])
    }

    /// ReLU and leaky ReLU in one pass, `g · (1 if x > 0 else slope)`: the
    /// same products as the vjp's mask, without building the mask.
    fn tensor_backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        grad: &Tensor<T>,
        _: &[bool],
    ) -> Option<Result<TensorGrads<T>>> {
        let slope = match self.0 {
            Kind::Relu => T::zero(),
            Kind::LeakyRelu(s) => T::of(s),
            _ => return None,
        };
        let x = match inputs[0].value() {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        Some(grad.zip_map(&x, "relu backward", move |g, v| g * relu_factor(v, slope)).map(|gx| smallvec![Some(gx)]))
    }

    /// Only sigmoid and tanh take their derivative from the output.
    fn reads_output(&self) -> bool {
        matches!(self.0, Kind::Sigmoid | Kind::Tanh)
    }

    /// ReLU and leaky ReLU are one pass of a comparison.
    fn recomputable(&self) -> bool {
        matches!(self.0, Kind::Relu | Kind::LeakyRelu(_))
    }
}

/// `relu(a + b)` for tensors of one shape, as one op: the sum that ends a
/// post-activation residual block and the ReLU after it.
#[derive(Clone, Copy, Debug)]
struct AddRelu;

impl<T: Float> Op<T> for AddRelu {
    fn name(&self) -> &'static str {
        "add_relu"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        inputs[0].zip_map(inputs[1], "add_relu", |a, b| relu_of(a + b))
    }

    /// Differentiates `relu(a + b)` recorded as the two ops.
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        let y = relu(inputs[0].add(inputs[1])?)?;
        wengert_core::ops::fused::vjp_of_recording(y, inputs, g, needs)
    }

    /// One pass, `g · mask(y)`, shared by both inputs: ReLU's backward,
    /// then the sum's, which hands its gradient to both.
    fn tensor_backward<'t>(
        &self,
        _: &[Var<'t, T>],
        output: Var<'t, T>,
        grad: &Tensor<T>,
        needs: &[bool],
    ) -> Option<Result<TensorGrads<T>>> {
        let y = match output.value() {
            Ok(y) => y,
            Err(e) => return Some(Err(e)),
        };
        let gm = grad.zip_map(&y, "add_relu backward", |g, y| g * relu_factor(y, T::zero()));
        Some(gm.map(|gm| smallvec![needs[0].then(|| gm.clone()), needs[1].then_some(gm)]))
    }

    /// The mask comes from the output; the summands are not read.
    fn reads_input(&self, _: usize) -> bool {
        false
    }
}

/// `relu(a + b)` as one op: one pass over memory each way where the two
/// ops take two, and one activation kept instead of two. `a` and `b` must
/// have one shape (no broadcasting). Results are those of
/// `relu(a.add(b))`, to the bit, and it differentiates to every order.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_ops::{add_relu, relu};
///
/// let tape = Tape::<f64>::new();
/// let a = tape.leaf(Tensor::from_vec(vec![1.0, -2.0, 0.5], [3])?);
/// let b = tape.leaf(Tensor::from_vec(vec![-3.0, 1.0, 0.25], [3])?);
/// assert_eq!(add_relu(a, b)?.value()?.data(), relu(a.add(b)?)?.value()?.data());
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn add_relu<'t, T: Float>(a: Var<'t, T>, b: Var<'t, T>) -> Result<Var<'t, T>> {
    if a.shape() != b.shape() {
        return Err(wengert_core::Error::shape(
            "add_relu",
            format!("shapes differ: {} and {}; add_relu does not broadcast", a.shape(), b.shape()),
        ));
    }
    a.tape().apply(AddRelu, &[a, b])
}

/// The backward of sigmoid or tanh from its output: `g·y(1 − y)` or
/// `g·(1 − y²)` (inputs `g`, `y`) in one pass instead of four ops. Its own
/// vjp is written with differentiable ops, so higher orders still work.
#[derive(Clone, Copy, Debug)]
struct OutputGrad(Kind);

impl<T: Float> Op<T> for OutputGrad {
    fn name(&self) -> &'static str {
        if self.0 == Kind::Tanh {
            "tanh_backward"
        } else {
            "sigmoid_backward"
        }
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (g, y) = (inputs[0], inputs[1]);
        if self.0 == Kind::Tanh {
            g.zip_map(y, "tanh_backward", |g, y| g * (T::one() - y * y))
        } else {
            g.zip_map(y, "sigmoid_backward", |g, y| g * y * (T::one() - y))
        }
    }

    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        h: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        let (g, y) = (inputs[0], inputs[1]);
        // Linear in g, with the same factor; for y: tanh: −2gy, sigmoid: g(1 − 2y).
        let dg = needs[0].then(|| h.tape().apply(*self, &[h, y])).transpose()?;
        let dy = if !needs[1] {
            None
        } else if self.0 == Kind::Tanh {
            Some(h.mul(g)?.mul(y)?.mul_scalar(T::of(-2.0))?)
        } else {
            Some(h.mul(g)?.mul(y.mul_scalar(T::of(-2.0))?.add_scalar(T::one())?)?)
        };
        Ok(smallvec![dg, dy])
    }
}

/// φ(x) = e^{−x²/2} / √(2π)
fn normal_pdf<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    let inv_sqrt_2pi = 0.5 * std::f64::consts::FRAC_2_SQRT_PI * FRAC_1_SQRT_2;
    x.mul(x)?.mul_scalar(T::of(-0.5))?.exp()?.mul_scalar(T::of(inv_sqrt_2pi))
}

fn apply<'t, T: Float>(x: Var<'t, T>, kind: Kind) -> Result<Var<'t, T>> {
    x.tape().apply(Activation(kind), &[x])
}

/// `max(x, 0)`. The gradient at 0 is 0, as in PyTorch.
pub fn relu<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    apply(x, Kind::Relu)
}

/// `x` for `x > 0`, else `negative_slope·x`.
pub fn leaky_relu<'t, T: Float>(x: Var<'t, T>, negative_slope: f64) -> Result<Var<'t, T>> {
    if !negative_slope.is_finite() {
        return Err(wengert_core::Error::argument(
            "leaky_relu",
            "negative_slope",
            format!("must be finite, got {negative_slope}"),
        ));
    }
    apply(x, Kind::LeakyRelu(negative_slope))
}

/// The logistic function `1 / (1 + e^{−x})`.
pub fn sigmoid<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    apply(x, Kind::Sigmoid)
}

/// The hyperbolic tangent.
pub fn tanh<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    apply(x, Kind::Tanh)
}

/// The error function `erf(x) = 2/√π ∫₀ˣ e^{−t²} dt`.
pub fn erf<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    apply(x, Kind::Erf)
}

/// GELU with the exact normal CDF: `x·Φ(x) = x/2·(1 + erf(x/√2))`
/// (Hendrycks & Gimpel 2016). PyTorch: `gelu(x, approximate="none")`.
pub fn gelu<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    apply(x, Kind::Gelu)
}

/// GELU's tanh approximation, `x/2·(1 + tanh(√(2/π)(x + 0.044715x³)))`,
/// composed from differentiable ops. PyTorch: `gelu(x, approximate="tanh")`.
pub fn gelu_tanh<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let inner = x.add(x.powf(T::of(3.0))?.mul_scalar(T::of(0.044715))?)?.mul_scalar(T::of(c))?;
    x.mul(tanh(inner)?.add_scalar(T::one())?)?.mul_scalar(T::of(0.5))
}

/// `ln(1 + eˣ)`, computed without overflow for large `x`.
pub fn softplus<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    apply(x, Kind::Softplus)
}

/// `x·σ(x)` (also called swish).
pub fn silu<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    apply(x, Kind::Silu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wengert_core::Tape;

    /// The fused backward of ReLU and leaky ReLU gives, bit for bit, what
    /// the recorded vjp gives, at zeros, negatives and with NaN and
    /// infinite incoming gradients.
    #[test]
    fn the_fused_relu_backward_is_the_vjp() {
        let xs = vec![-2.0, -0.0, 0.0, 1e-30, 3.5, -1e-30, 7.0, -4.0, 0.5, 2.0];
        let gs = vec![1.5, f64::NAN, 2.0, f64::INFINITY, -3.0, f64::NEG_INFINITY, 0.25, 1.0, -1.0, 4.0];
        for slope in [None, Some(0.01)] {
            let tape = Tape::<f64>::new();
            let x = tape.leaf(Tensor::from_vec(xs.clone(), [10]).unwrap());
            let y = match slope {
                None => relu(x).unwrap(),
                Some(s) => leaky_relu(x, s).unwrap(),
            };
            let seed = tape.constant(Tensor::from_vec(gs.clone(), [10]).unwrap());
            // Recorded: the vjp.
            let recorded = tape.grad(y, &[x], Some(seed)).unwrap()[0].value().unwrap();
            // Tensor mode: the fused pass.
            let loss = y.mul(seed).unwrap().sum_all().unwrap();
            let fused = tape.backward(loss).unwrap().get(x).unwrap().clone();
            let bits = |t: &Tensor<f64>| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused), bits(&recorded), "{slope:?}: {:?} vs {:?}", fused.data(), recorded.data());
        }
    }
}
