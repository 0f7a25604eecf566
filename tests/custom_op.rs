//! A new differentiable op defined the way an outside crate would: only the
//! public trait and public API, nothing crate-private.

use wengert::core::gradcheck::{check_gradients, GradCheck};
use wengert::core::{smallvec, Error, InputGrads, Op, Result, Tape, Tensor, Var};

/// `softclip(x, lim) = lim · x / (lim + |x|)`, with a validated attribute.
struct SoftClip {
    limit: f64,
}

impl Op<f64> for SoftClip {
    fn name(&self) -> &'static str {
        "softclip"
    }

    fn forward(&mut self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        if self.limit <= 0.0 {
            return Err(Error::argument("softclip", "limit", format!("must be positive, got {}", self.limit)));
        }
        let l = self.limit;
        Ok(inputs[0].map(|x| l * x / (l + x.abs())))
    }

    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, f64>],
        _: Var<'t, f64>,
        g: Var<'t, f64>,
        _: &[bool],
    ) -> Result<InputGrads<'t, f64>> {
        // d/dx = lim² / (lim + |x|)²; |x| = √(x²) keeps it differentiable.
        let x = inputs[0];
        let l = self.limit;
        let denom = x.mul(x)?.sqrt()?.add_scalar(l)?.powf(2.0)?;
        Ok(smallvec![Some(g.mul_scalar(l * l)?.div(denom)?)])
    }
}

fn softclip<'t>(x: Var<'t, f64>, limit: f64) -> Result<Var<'t, f64>> {
    x.tape().apply(SoftClip { limit }, &[x])
}

#[test]
fn user_op_differentiates_and_passes_the_gradient_check() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::from_vec(vec![-2.0, 0.5, 3.0], [3]).unwrap());
    let y = softclip(x, 1.0).unwrap().sum_all().unwrap();
    let g = tape.backward(y).unwrap();
    let want: Vec<f64> = [-2.0f64, 0.5, 3.0].iter().map(|x| 1.0 / (1.0 + x.abs()).powi(2)).collect();
    assert_eq!(g.get(x).unwrap().data(), want.as_slice());

    let x = Tensor::from_vec(vec![-2.0, 0.5, 3.0, 1.2], [2, 2]).unwrap();
    let r = check_gradients(|_, v| softclip(v[0], 1.5)?.mul(v[0]), &[x], &GradCheck::default()).unwrap();
    assert!(r.passed(), "{r}");
}

#[test]
fn user_op_second_derivative() {
    // d²/dx² softclip(x, 1) at x > 0 = −2 / (1 + x)³.
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::scalar(0.5));
    let d1 = tape.grad(softclip(x, 1.0).unwrap(), &[x], None).unwrap()[0];
    let d2 = tape.grad(d1, &[x], None).unwrap()[0];
    let want = -2.0 / 1.5f64.powi(3);
    assert!((d2.value().unwrap().item().unwrap() - want).abs() < 1e-14);
}

#[test]
fn user_op_errors_name_the_op_and_argument() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::scalar(1.0));
    assert_eq!(softclip(x, -1.0).unwrap_err().to_string(), "softclip: limit: must be positive, got -1");
}

/// An op whose backward breaks the contract gets a clear error, not a panic.
struct BadVjp;
impl Op<f64> for BadVjp {
    fn name(&self) -> &'static str {
        "bad_vjp"
    }
    fn forward(&mut self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(inputs[0].clone())
    }
    fn vjp<'t>(&self, _: &[Var<'t, f64>], _: Var<'t, f64>, g: Var<'t, f64>, _: &[bool]) -> Result<InputGrads<'t, f64>> {
        Ok(smallvec![Some(g.sum_all()?)])
    }
}

#[test]
fn broken_vjp_is_reported() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::zeros([2, 2]));
    let y = tape.apply(BadVjp, &[x]).unwrap().sum_all().unwrap();
    let e = tape.backward(y).unwrap_err();
    assert_eq!(e.to_string(), "bad_vjp: vjp: gradient for input 0 has shape [], the input has shape [2, 2]");
}
