//! Recurrent layers through time: the Jacobian of the last state with
//! respect to the first is the product of the per-step Jacobians, the
//! residual recurrence's steps go to the identity as F's parameters go to
//! zero, long sequences backpropagate, and the layers train.

use proptest::prelude::*;
use wengert::core::functional::jacobian;
use wengert::core::{BackwardOptions, Tape, Tensor, Var};
use wengert::nn::layer::{Cell, Recurrent, State};
use wengert::nn::{Module, StateMut, Step, Visit};
use wengert::ops::linear;

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![Just(Cell::Elman), Just(Cell::Lstm), Just(Cell::Residual)]
}

/// The state as one row `[1, H]` (`[1, 2H]` for the LSTM: h then c).
fn pack<'t>(s: State<'t, f64>) -> wengert::Result<Var<'t, f64>> {
    match s.c {
        Some(c) => Var::concat(&[s.h, c], 1),
        None => Ok(s.h),
    }
}

fn unpack<'t>(v: Var<'t, f64>, cell: Cell, hidden: usize) -> wengert::Result<State<'t, f64>> {
    Ok(match cell {
        Cell::Lstm => State { h: v.slice(1, 0, hidden, 1)?, c: Some(v.slice(1, hidden, 2 * hidden, 1)?) },
        _ => State { h: v, c: None },
    })
}

/// Runs steps `from..to` of `xs` (`[T, I]`, one sequence) from the packed state `s`.
fn advance<'t>(
    rnn: &Recurrent<f64>,
    tape: &'t Tape<f64>,
    xs: &Tensor<f64>,
    from: usize,
    to: usize,
    s: Var<'t, f64>,
) -> wengert::Result<Var<'t, f64>> {
    let mut step = Step::train(tape, 0);
    let hidden = rnn.hidden_size();
    let mut state = unpack(s, rnn.cell, hidden)?;
    let x = tape.constant(xs.clone());
    for t in from..to {
        let xw = linear(x.slice(0, t, t + 1, 1)?, step.param(&rnn.weight_ih), Some(step.param(&rnn.bias_ih)))?;
        state = rnn.cell_step(&mut step, xw, state)?;
    }
    pack(state)
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    (0..n * n).map(|k| (0..n).map(|j| a[(k / n) * n + j] * b[j * n + k % n]).sum()).collect()
}

fn layer(cell: Cell, input: usize, hidden: usize, seed: u64, s: f64) -> Recurrent<f64> {
    let mut rnn = Recurrent::new(cell, input, hidden, &mut wengert::core::rng(seed)).unwrap();
    rnn.visit_mut("", &mut |_, e| {
        if let StateMut::Param(p) = e {
            p.value_mut().data_mut().iter_mut().for_each(|w| *w *= s);
        }
    });
    rnn
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// ∂h(T)/∂h(1) = ∂h(T)/∂h(T−1) ⋯ ∂h(2)/∂h(1): the engine's Jacobian
    /// through the unrolled tape equals the explicit product of per-step
    /// Jacobians (for the LSTM, over the whole state (h, c)).
    #[test]
    fn the_jacobian_through_time_is_the_product_of_the_steps(
        cell in cell(), input in 1usize..=3, hidden in 1usize..=4, steps in 2usize..=6, seed in any::<u64>(),
    ) {
        let rnn = layer(cell, input, hidden, seed, 1.0);
        let xs = Tensor::normal([steps, input], 0.0, 1.0, &mut wengert::core::rng(seed ^ 1)).unwrap();
        let width = if cell == Cell::Lstm { 2 * hidden } else { hidden };
        let s0 = Tensor::normal([1, width], 0.0, 0.5, &mut wengert::core::rng(seed ^ 2)).unwrap();
        // The state after step 1, then each later state.
        let state_after = |t: usize| -> Tensor<f64> {
            let tape = Tape::new();
            advance(&rnn, &tape, &xs, 0, t, tape.constant(s0.clone())).unwrap().value().unwrap()
        };
        let s1 = state_after(1);
        let engine = jacobian(|tape, v| advance(&rnn, tape, &xs, 1, steps, v[0]), &s1).unwrap();
        let mut product: Vec<f64> = (0..width * width).map(|k| if k / width == k % width { 1.0 } else { 0.0 }).collect();
        for t in 1..steps {
            let j = jacobian(|tape, v| advance(&rnn, tape, &xs, t, t + 1, v[0]), &state_after(t)).unwrap();
            product = matmul(j.data(), &product, width);
        }
        for (a, b) in engine.data().iter().zip(&product) {
            prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "engine {} vs product {}", a, b);
        }
    }

    /// The residual recurrence: with F's parameters scaled by s, every step's
    /// Jacobian is I + O(s) (exactly I at s = 0), and so is their product.
    #[test]
    fn residual_steps_go_to_the_identity(
        input in 1usize..=3, hidden in 1usize..=4, steps in 2usize..=6, seed in any::<u64>(),
    ) {
        let xs = Tensor::normal([steps, input], 0.0, 1.0, &mut wengert::core::rng(seed ^ 1)).unwrap();
        let h0 = Tensor::normal([1, hidden], 0.0, 1.0, &mut wengert::core::rng(seed ^ 2)).unwrap();
        let distance = |s: f64| -> (f64, f64) {
            let rnn = layer(Cell::Residual, input, hidden, seed, s);
            let off = |j: &Tensor<f64>| -> f64 {
                j.data().iter().enumerate()
                    .map(|(k, v)| v - if k / hidden == k % hidden { 1.0 } else { 0.0 })
                    .map(|d| d * d).sum::<f64>().sqrt()
            };
            let one = jacobian(|tape, v| advance(&rnn, tape, &xs, 0, 1, v[0]), &h0).unwrap();
            let all = jacobian(|tape, v| advance(&rnn, tape, &xs, 0, steps, v[0]), &h0).unwrap();
            (off(&one), off(&all))
        };
        prop_assert_eq!(distance(0.0), (0.0, 0.0));
        let (a1, a_all) = distance(1e-3);
        let (b1, b_all) = distance(1e-4);
        // A step's Jacobian is I + diag(tanh')·s·W_hh: O(s), and the product
        // of T of them is I + O(T·s).
        prop_assert!(b1 <= a1 * 0.1 * (1.0 + 1e-2) + 1e-15, "{} then {}", a1, b1);
        prop_assert!(b_all <= a_all * 0.1 * (1.0 + 1e-2) + 1e-15, "{} then {}", a_all, b_all);
        prop_assert!(a_all > 0.0 && a_all < 1e-2, "{}", a_all);
    }
}

#[test]
fn ten_thousand_steps_backpropagate() {
    for cell in [Cell::Elman, Cell::Lstm, Cell::Residual] {
        let mut rnn = Recurrent::<f32>::new(cell, 2, 4, &mut wengert::core::rng(0)).unwrap();
        let tape = Tape::new();
        let x = tape.leaf(Tensor::normal([1, 10_000, 2], 0.0, 1.0, &mut wengert::core::rng(1)).unwrap());
        let mut step = Step::train(&tape, 0);
        let h = rnn.forward(&mut step, x).unwrap();
        let g = tape.backward_with(h.sum_all().unwrap(), BackwardOptions::default().with_wrt(&[x]));
        let g = g.unwrap().into_tensors().remove(0);
        assert_eq!(g.dims(), &[1, 10_000, 2]);
        assert!(g.data().iter().all(|v| v.is_finite()), "{cell:?}");
    }
}

#[test]
fn names_shapes_and_errors_follow_pytorch() {
    let lstm = Recurrent::<f32>::lstm(3, 5, &mut wengert::core::rng(0)).unwrap();
    let mut names = Vec::new();
    lstm.visit("rnn", &mut |n, _| names.push(n));
    assert_eq!(names, ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0"]);
    assert_eq!(lstm.weight_ih.value().dims(), &[20, 3]);
    assert_eq!(lstm.weight_hh.value().dims(), &[20, 5]);
    // PyTorch's initialisation: U(±1/√H).
    let bound = 1.0 / 5f32.sqrt();
    assert!(lstm.weight_hh.value().data().iter().all(|w| w.abs() <= bound));
    let mut rnn = Recurrent::<f32>::rnn(3, 5, &mut wengert::core::rng(0)).unwrap();
    assert_eq!(rnn.num_parameters(), 5 * 3 + 5 * 5 + 5 + 5);
    let tape = Tape::new();
    let err = rnn.forward(&mut Step::train(&tape, 0), tape.constant(Tensor::ones([2, 7, 4]))).unwrap_err();
    assert!(err.to_string().contains("[2, 7, 4]") && err.to_string().contains("[batch, time, 3]"), "{err}");
    assert!(Recurrent::<f32>::rnn(0, 5, &mut wengert::core::rng(0)).is_err());
}

/// An Elman step by hand: h' = tanh(W_ih x + b_ih + W_hh h + b_hh).
#[test]
fn an_elman_step_is_the_formula() {
    let mut rnn = Recurrent::<f64>::rnn(2, 2, &mut wengert::core::rng(0)).unwrap();
    *rnn.weight_ih.value_mut() = Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4], [2, 2]).unwrap();
    *rnn.weight_hh.value_mut() = Tensor::from_vec(vec![0.5, -0.5, 0.25, 0.0], [2, 2]).unwrap();
    *rnn.bias_ih.value_mut() = Tensor::from_vec(vec![0.01, 0.02], [2]).unwrap();
    *rnn.bias_hh.value_mut() = Tensor::from_vec(vec![-0.03, 0.04], [2]).unwrap();
    let tape = Tape::new();
    let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, -1.0, 0.5], [1, 2, 2]).unwrap());
    let h = rnn.forward(&mut Step::eval(&tape), x).unwrap().value().unwrap();
    let h1 = [(0.1f64 + 0.4 + 0.01 - 0.03).tanh(), (0.3f64 + 0.8 + 0.02 + 0.04).tanh()];
    let h2 = [
        (-0.1f64 + 0.1 + 0.01 + 0.5 * h1[0] - 0.5 * h1[1] - 0.03).tanh(),
        (-0.3f64 + 0.2 + 0.02 + 0.25 * h1[0] + 0.04).tanh(),
    ];
    for (a, b) in h.data().iter().zip(h2) {
        assert!((a - b).abs() < 1e-15, "{a} vs {b}");
    }
}
