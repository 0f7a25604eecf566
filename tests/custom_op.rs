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

/// `x²` with only a fast tensor-mode backward and no differentiable vjp.
struct SquareFastOnly;

impl Op<f64> for SquareFastOnly {
    fn name(&self) -> &'static str {
        "square_fast_only"
    }

    fn arity(&self) -> wengert::core::Arity {
        wengert::core::Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(inputs[0].map(|x| x * x))
    }

    fn tensor_backward<'t>(
        &self,
        inputs: &[Var<'t, f64>],
        _: Var<'t, f64>,
        grad: &Tensor<f64>,
        _: &[bool],
    ) -> Option<Result<wengert::core::TensorGrads<f64>>> {
        let dx = inputs[0].value().and_then(|x| x.zip_map(grad, "square_fast_only", |x, g| 2.0 * x * g));
        Some(dx.map(|t| smallvec![Some(t)]))
    }
}

#[test]
fn a_fast_backward_alone_gives_first_derivatives_and_refuses_second_ones() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::from_vec(vec![1.5, -2.0], [2]).unwrap());
    let y = tape.apply(SquareFastOnly, &[x]).unwrap().sum_all().unwrap();
    // The usual backward takes the fast path.
    let g = tape.backward_with(y, wengert::core::BackwardOptions::default().with_retain_graph(true)).unwrap();
    assert_eq!(g.get(x).unwrap().data(), &[3.0, -4.0]);
    // A recorded backward needs the differentiable vjp, which this op lacks:
    // an error naming the op, never a silently zero second derivative.
    let e = tape.grad(y, &[x], None).unwrap_err().to_string();
    assert!(e.starts_with("square_fast_only: vjp: has only a tensor-mode backward"), "{e}");
}

/// An op with both paths: the fast one in a training step, the
/// differentiable one whenever the backward pass is recorded, with the same
/// first derivatives.
#[test]
fn the_sweep_picks_the_mode_for_the_op() {
    use wengert::ops::batch_norm_train;
    let mut rng = wengert::core::rng(3);
    let x0 = Tensor::<f64>::normal([4, 3, 2, 2], 0.0, 1.0, &mut rng).unwrap();
    let g0 = Tensor::<f64>::normal([4, 3, 2, 2], 0.0, 1.0, &mut rng).unwrap();
    let tape = Tape::<f64>::new();
    let (x, w, b) = (tape.leaf(x0), tape.leaf(Tensor::full([3], 1.5)), tape.leaf(Tensor::full([3], 0.2)));
    let y = batch_norm_train(x, Some(w), Some(b), 1e-5).unwrap().0;
    let loss = y.mul(tape.constant(g0)).unwrap().sum_all().unwrap();
    let fast = tape.backward_with(loss, wengert::core::BackwardOptions::default().with_retain_graph(true)).unwrap();
    let recorded = tape.grad(loss, &[x, w, b], None).unwrap();
    for (v, r) in [x, w, b].iter().zip(&recorded) {
        let diff = fast.get(*v).unwrap().max_abs_diff(&r.value().unwrap()).unwrap();
        assert!(diff < 1e-12, "fast and recorded gradients differ by {diff}");
    }
}
