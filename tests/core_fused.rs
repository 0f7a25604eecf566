//! A function recorded as one node behaves exactly like its ops recorded
//! one by one, with or without recomputation, at every order.

use std::sync::Arc;
use wengert::core::gradcheck::{check_gradients, check_second_gradients, GradCheck};
use wengert::core::ops::fused::Function;
use wengert::core::{BackwardOptions, Result, Tape, Tensor, Var};

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
    let g =
        tape.backward_with(y, BackwardOptions { seed: Some(seed), wrt: Some(&vars), ..Default::default() }).unwrap();
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
    let a = tape.backward_with(y, BackwardOptions { retain_graph: true, ..Default::default() }).unwrap();
    let b = tape.backward(y).unwrap();
    assert_eq!(a.into_tensors(), b.into_tensors());
    assert_eq!(tape.len(), 5, "three leaves, the node and the sum");
}
