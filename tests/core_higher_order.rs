//! Derivatives of derivatives, forward mode, Jacobians and Hessian-vector
//! products, against closed forms and finite differences.

use wengert::core::functional::{grad, hessian_vector_product, jacobian, jvp, vjp};
use wengert::core::{InputGrads, Op, Result, Tape, Tensor, Var};

/// sin as a user op whose backward uses cos, and cos whose backward uses
/// −sin: second derivatives of `exp(sin(x))` then come from the rules alone.
struct Sin;
struct Cos;

impl Op<f64> for Sin {
    fn name(&self) -> &'static str {
        "sin"
    }
    fn forward(&mut self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(f64::sin))
    }
    fn vjp<'t>(&self, x: &[Var<'t, f64>], _: Var<'t, f64>, g: Var<'t, f64>, _: &[bool]) -> Result<InputGrads<'t, f64>> {
        Ok(wengert::core::smallvec![Some(g.mul(g.tape().apply(Cos, &[x[0]])?)?)])
    }
}

impl Op<f64> for Cos {
    fn name(&self) -> &'static str {
        "cos"
    }
    fn forward(&mut self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].map(f64::cos))
    }
    fn vjp<'t>(&self, x: &[Var<'t, f64>], _: Var<'t, f64>, g: Var<'t, f64>, _: &[bool]) -> Result<InputGrads<'t, f64>> {
        Ok(wengert::core::smallvec![Some(g.mul(g.tape().apply(Sin, &[x[0]])?.neg()?)?)])
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn third_derivative_of_cube() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::scalar(1.5));
    let y = x.mul(x).unwrap().mul(x).unwrap();
    let d1 = tape.grad(y, &[x], None).unwrap()[0];
    let d2 = tape.grad(d1, &[x], None).unwrap()[0];
    let d3 = tape.grad(d2, &[x], None).unwrap()[0];
    assert_eq!(d1.value().unwrap().item().unwrap(), 3.0 * 1.5 * 1.5);
    assert_eq!(d2.value().unwrap().item().unwrap(), 6.0 * 1.5);
    assert_eq!(d3.value().unwrap().item().unwrap(), 6.0);
}

#[test]
fn second_derivative_of_exp_sin() {
    // f = e^{sin x}; f' = cos x · f; f'' = (cos²x − sin x) · f.
    for &x0 in &[-1.3, 0.0, 0.4, 2.2] {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::scalar(x0));
        let f = tape.apply(Sin, &[x]).unwrap().exp().unwrap();
        let d1 = tape.grad(f, &[x], None).unwrap()[0];
        let d2 = tape.grad(d1, &[x], None).unwrap()[0];
        let e = x0.sin().exp();
        assert!(close(d1.value().unwrap().item().unwrap(), x0.cos() * e, 1e-14));
        assert!(close(d2.value().unwrap().item().unwrap(), (x0.cos().powi(2) - x0.sin()) * e, 1e-14));
    }
}

#[test]
fn mixed_partials_of_a_quotient() {
    // f(a, b) = a / b: ∂²f/∂a∂b = −1/b².
    let tape = Tape::<f64>::new();
    let a = tape.leaf(Tensor::scalar(3.0));
    let b = tape.leaf(Tensor::scalar(2.0));
    let f = a.div(b).unwrap();
    let da = tape.grad(f, &[a], None).unwrap()[0];
    let dab = tape.grad(da, &[b], None).unwrap()[0];
    assert_eq!(dab.value().unwrap().item().unwrap(), -0.25);
}

/// A two-layer perceptron with a smooth activation, built from core ops only:
/// loss = Σ (W₂ · act(W₁ x))² with act(z) = z / √(1 + z²).
fn mlp<'t>(v: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
    let (w1, w2) = (v[0], v[1]);
    let tape = w1.tape();
    let x = tape.constant(Tensor::from_vec(vec![0.5, -1.0, 2.0], [1, 3])?);
    // [4, 3] * [1, 3] summed over inputs: W₁x as broadcast-multiply-sum.
    let z = w1.mul(x)?.sum(&[1], false)?; // [4]
    let a = z.div(z.mul(z)?.add_scalar(1.0)?.sqrt()?)?;
    let o = w2.mul(a.reshape(&[1, 4])?)?.sum(&[1], false)?; // [2]
    o.mul(o)?.sum_all()
}

#[test]
fn mlp_hessian_vector_product_matches_finite_differences_of_the_gradient() {
    let mut rng = wengert::core::rng(3);
    let w1 = Tensor::<f64>::normal([4, 3], 0.0, 0.5, &mut rng).unwrap();
    let w2 = Tensor::<f64>::normal([2, 4], 0.0, 0.5, &mut rng).unwrap();
    let v1 = Tensor::<f64>::normal([4, 3], 0.0, 1.0, &mut rng).unwrap();
    let v2 = Tensor::<f64>::normal([2, 4], 0.0, 1.0, &mut rng).unwrap();
    let hv = hessian_vector_product(|_, v| mlp(v), &[w1.clone(), w2.clone()], &[v1.clone(), v2.clone()]).unwrap();
    // (∇f(w + hv) − ∇f(w − hv)) / 2h
    let h = 1e-5;
    let shift = |w: &Tensor<f64>, v: &Tensor<f64>, s: f64| {
        Tensor::from_fn(w.shape().clone(), |i| w.data()[i] + s * v.data()[i])
    };
    let up = grad(|_, v| mlp(v), &[shift(&w1, &v1, h), shift(&w2, &v2, h)]).unwrap();
    let down = grad(|_, v| mlp(v), &[shift(&w1, &v1, -h), shift(&w2, &v2, -h)]).unwrap();
    for k in 0..2 {
        for i in 0..hv[k].numel() {
            let fd = (up[k].data()[i] - down[k].data()[i]) / (2.0 * h);
            assert!(close(hv[k].data()[i], fd, 1e-6), "input {k} element {i}: {} vs {fd}", hv[k].data()[i]);
        }
    }
}

#[test]
fn jvp_is_the_transpose_of_vjp() {
    // ⟨u, J v⟩ = ⟨Jᵀ u, v⟩ for a nonlinear map with broadcasting.
    let mut rng = wengert::core::rng(11);
    let x = Tensor::<f64>::normal([3, 4], 0.0, 1.0, &mut rng).unwrap();
    let b = Tensor::<f64>::normal([4], 0.0, 1.0, &mut rng).unwrap();
    let v =
        [Tensor::<f64>::normal([3, 4], 0.0, 1.0, &mut rng).unwrap(), Tensor::normal([4], 0.0, 1.0, &mut rng).unwrap()];
    let u = Tensor::<f64>::normal([3], 0.0, 1.0, &mut rng).unwrap();
    fn f<'t>(_: &'t Tape<f64>, v: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
        v[0].mul(v[1])?.exp()?.sum(&[1], false)
    }
    let (_, jv) = jvp(f, &[x.clone(), b.clone()], &v).unwrap();
    let (_, jtu) = vjp(f, &[x, b], &u).unwrap();
    let dot = |a: &Tensor<f64>, b: &Tensor<f64>| a.data().iter().zip(b.data()).map(|(x, y)| x * y).sum::<f64>();
    let lhs = dot(&u, &jv);
    let rhs = dot(&jtu[0], &v[0]) + dot(&jtu[1], &v[1]);
    assert!(close(lhs, rhs, 1e-12), "{lhs} vs {rhs}");
}

#[test]
fn jacobian_of_a_known_map_by_rows_and_by_columns() {
    const C: [f64; 3] = [2.0, -1.0, 0.5];
    let c = C;
    let x = Tensor::from_vec(vec![0.3, 0.1, -0.4], [3]).unwrap();
    // f(x) = c ⊙ x + Σx: J = diag(c) + 1 (square: built by rows).
    fn f<'t>(t: &'t Tape<f64>, v: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
        let cv = t.constant(Tensor::from_vec(C.to_vec(), [3])?);
        v[0].mul(cv)?.add(v[0].sum(&[0], true)?)
    }
    let j = jacobian(f, &x).unwrap();
    assert_eq!(j.dims(), &[3, 3]);
    for (r, &cr) in c.iter().enumerate() {
        for col in 0..3 {
            let want = if r == col { cr + 1.0 } else { 1.0 };
            assert_eq!(j.get(&[r, col]).unwrap(), want);
        }
    }
    // g(x) = [x, x²]: 6 outputs from 3 inputs, built by columns (JVPs).
    fn g<'t>(_: &'t Tape<f64>, v: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
        Var::concat(&[v[0], v[0].mul(v[0])?], 0)
    }
    let j = jacobian(g, &x).unwrap();
    assert_eq!(j.dims(), &[6, 3]);
    for r in 0..6 {
        for col in 0..3 {
            let want = match (r < 3, r % 3 == col) {
                (_, false) => 0.0,
                (true, true) => 1.0,
                (false, true) => 2.0 * x.data()[col],
            };
            assert_eq!(j.get(&[r, col]).unwrap(), want, "J[{r}, {col}]");
        }
    }
}
