//! A function recorded as one node behaves exactly like its ops recorded
//! one by one, with or without recomputation, at every order, and keeps
//! only the values its backward pass reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use wengert::core::gradcheck::{check_gradients, check_second_gradients, GradCheck};
use wengert::core::ops::fused::Function;
use wengert::core::smallvec::smallvec;
use wengert::core::{BackwardOptions, Error, InputGrads, Op, Result, Tape, Tensor, Var};

/// A small residual unit: x + tanh-free smooth branch w2·softsign(w1·x).
fn unit<'t>(_: &'t Tape<f64>, v: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
    let (x, w1, w2) = (v[0], v[1], v[2]);
    let h = x.mul(w1)?;
    let a = h.div(h.mul(h)?.add_scalar(1.0)?.sqrt()?)?;
    x.add(a.mul(w2)?)
}

fn inputs() -> Vec<Tensor<f64>> {
    let mut rng = wengert::core::rng(5);
    vec![
        Tensor::normal([3, 4], 0.0, 1.0, &mut rng).unwrap(),
        Tensor::normal([4], 0.0, 1.0, &mut rng).unwrap(),
        Tensor::normal([4], 0.0, 0.5, &mut rng).unwrap(),
    ]
}

fn run(fused: Option<bool>) -> (Tensor<f64>, Vec<Tensor<f64>>) {
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = inputs().into_iter().map(|t| tape.leaf(t)).collect();
    let y = match fused {
        None => unit(&tape, &vars).unwrap(),
        Some(recompute) => Var::call("unit", Arc::new(unit) as Function<f64>, &vars, recompute).unwrap(),
    };
    let seed = Tensor::from_fn([3, 4], |i| i as f64 - 5.0);
    let g = tape.backward_with(y, BackwardOptions::default().with_seed(seed).with_wrt(&vars)).unwrap();
    (y.value().unwrap(), g.into_tensors())
}

#[test]
fn fused_node_equals_the_primitive_ops() {
    let (y0, g0) = run(None);
    for recompute in [false, true] {
        let (y, g) = run(Some(recompute));
        assert_eq!(y, y0);
        for (a, b) in g.iter().zip(&g0) {
            assert!(a.max_abs_diff(b).unwrap() <= 1e-15, "recompute {recompute}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn gradients_and_second_derivatives_through_the_node() {
    for recompute in [false, true] {
        let node = || Arc::new(unit) as Function<f64>;
        let r =
            check_gradients(|_, v| Var::call("unit", node(), v, recompute), &inputs(), &GradCheck::default()).unwrap();
        assert!(r.passed(), "{r}");
        let r =
            check_second_gradients(|_, v| Var::call("unit", node(), v, recompute), &inputs(), &GradCheck::default())
                .unwrap();
        assert!(r.passed(), "{r}");
    }
}

#[test]
fn retained_graphs_run_backward_through_the_node_twice() {
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = inputs().into_iter().map(|t| tape.leaf(t)).collect();
    let y = Var::call("unit", Arc::new(unit) as Function<f64>, &vars, false).unwrap().sum_all().unwrap();
    let a = tape.backward_with(y, BackwardOptions::default().with_retain_graph(true)).unwrap();
    let b = tape.backward(y).unwrap();
    assert_eq!(a.into_tensors(), b.into_tensors());
    assert_eq!(tape.len(), 5, "three leaves, the node and the sum");
}

/// `x²`, declared recomputable and not reading its output; counts its
/// forward passes.
struct Square(Arc<AtomicUsize>);

impl Op<f64> for Square {
    fn name(&self) -> &'static str {
        "square"
    }
    fn forward(&mut self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(inputs[0].map(|v| v * v))
    }
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, f64>],
        _: Var<'t, f64>,
        g: Var<'t, f64>,
        _: &[bool],
    ) -> Result<InputGrads<'t, f64>> {
        Ok(smallvec![Some(g.mul(inputs[0].mul_scalar(2.0)?)?)])
    }
    fn reads_output(&self) -> bool {
        false
    }
    fn recomputable(&self) -> bool {
        true
    }
}

/// `w2 · (x·w1)²`: the square's output is read by the product's backward,
/// its input by its own.
fn squared(count: &Arc<AtomicUsize>) -> Function<f64> {
    let count = count.clone();
    Arc::new(move |tape: &Tape<f64>, v: &[Var<'_, f64>]| {
        let h = v[0].mul(v[1])?;
        tape.apply(Square(count.clone()), &[h])?.mul(v[2])
    })
}

fn squared_gradients(fused: bool, retain: bool) -> (Vec<Tensor<f64>>, usize) {
    let count = Arc::new(AtomicUsize::new(0));
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = inputs().into_iter().map(|t| tape.leaf(t)).collect();
    let f = squared(&count);
    let y = if fused { Var::call("squared", f, &vars, false) } else { f(&tape, &vars) };
    let y = y.unwrap().sum_all().unwrap();
    if retain {
        tape.backward_with(y, BackwardOptions::default().with_retain_graph(true)).unwrap();
    }
    let g = tape.backward_with(y, BackwardOptions::default().with_wrt(&vars)).unwrap();
    (g.into_tensors(), count.load(Ordering::Relaxed))
}

#[test]
fn a_fused_node_forms_recomputable_values_again_in_backward() {
    let (plain, once) = squared_gradients(false, false);
    assert_eq!(once, 1, "recorded op by op, the square is kept");
    // The node frees the square's output after its forward pass and forms
    // it again for the product's backward, each time backward runs.
    let (fused, twice) = squared_gradients(true, false);
    assert_eq!(twice, 2);
    assert_eq!(fused, plain, "the same values, so the same gradients to the bit");
    let (retained, thrice) = squared_gradients(true, true);
    assert_eq!(thrice, 3);
    assert_eq!(retained, plain);
}

/// `exp`, claiming wrongly that its backward does not read its output.
struct MisdeclaredExp;

impl Op<f64> for MisdeclaredExp {
    fn name(&self) -> &'static str {
        "misdeclared_exp"
    }
    fn forward(&mut self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(inputs[0].map(f64::exp))
    }
    fn vjp<'t>(&self, _: &[Var<'t, f64>], y: Var<'t, f64>, g: Var<'t, f64>, _: &[bool]) -> Result<InputGrads<'t, f64>> {
        Ok(smallvec![Some(g.mul(y)?)])
    }
    fn reads_output(&self) -> bool {
        false
    }
}

/// `−x`, whose backward reads nothing, as it says.
struct Negate;

impl Op<f64> for Negate {
    fn name(&self) -> &'static str {
        "negate"
    }
    fn forward(&mut self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(inputs[0].map(|v| -v))
    }
    fn vjp<'t>(&self, _: &[Var<'t, f64>], _: Var<'t, f64>, g: Var<'t, f64>, _: &[bool]) -> Result<InputGrads<'t, f64>> {
        Ok(smallvec![Some(g.neg()?)])
    }
    fn reads_input(&self, _: usize) -> bool {
        false
    }
    fn reads_output(&self) -> bool {
        false
    }
}

#[test]
fn a_value_released_on_a_wrong_declaration_is_an_error_not_a_wrong_gradient() {
    let tape = Tape::new();
    let x = tape.leaf(Tensor::from_vec(vec![0.5, -1.0], [2]).unwrap());
    let f: Function<f64> = Arc::new(|tape: &Tape<f64>, v: &[Var<'_, f64>]| {
        let e = tape.apply(MisdeclaredExp, &[v[0]])?;
        tape.apply(Negate, &[e])
    });
    let y = Var::call("negated_exp", f, &[x], false).unwrap().sum_all().unwrap();
    match tape.backward(y) {
        Err(Error::Released { op, .. }) => assert_eq!(op, "misdeclared_exp"),
        other => panic!("expected a released-value error, got {:?}", other.map(|_| ())),
    }
}
