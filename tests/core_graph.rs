//! How the tape behaves as a graph: shared subexpressions, long chains,
//! freeing, reuse, threads.

use wengert::core::{BackwardOptions, Error, Tape, Tensor};

#[test]
fn diamond_accumulates_both_paths() {
    // y = f(x) + g(x) with f = x², g = eˣ: dy/dx = 2x + eˣ.
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::scalar(0.7));
    let y = x.mul(x).unwrap().add(x.exp().unwrap()).unwrap();
    let g = tape.backward(y).unwrap();
    let want = 2.0 * 0.7 + 0.7f64.exp();
    assert!((g.get(x).unwrap().item().unwrap() - want).abs() < 1e-15);
}

#[test]
fn residual_shortcut_accumulates() {
    // y = x + F(x) for F(x) = w·x: dy/dx = 1 + w, the identity plus ∂F/∂x.
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::scalar(2.0));
    let w = tape.leaf(Tensor::scalar(0.01));
    let y = x.add(x.mul(w).unwrap()).unwrap();
    let g = tape.backward(y).unwrap();
    assert_eq!(g.get(x).unwrap().item().unwrap(), 1.01);
    assert_eq!(g.get(w).unwrap().item().unwrap(), 2.0);
}

#[test]
fn chain_of_100k_entries_does_not_overflow() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::scalar(1.0));
    let mut y = x;
    for _ in 0..100_000 {
        y = y.mul_scalar(1.0).unwrap().add_scalar(0.0).unwrap();
    }
    assert!(tape.len() > 200_000);
    let g = tape.backward(y).unwrap();
    assert_eq!(g.get(x).unwrap().item().unwrap(), 1.0);
}

#[test]
fn backward_frees_intermediates_unless_retained() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
    let h = x.exp().unwrap();
    let y = h.sum_all().unwrap();
    tape.backward_with(y, BackwardOptions::default().with_retain_graph(true)).unwrap();
    assert!(h.value().is_ok(), "retain_graph keeps saved values");
    tape.backward(y).unwrap();
    assert!(matches!(h.value(), Err(Error::Freed { .. })));
    // Leaves and the output keep their values.
    assert!(x.value().is_ok() && y.value().is_ok());
    let again = tape.backward(y).unwrap_err();
    assert!(again.to_string().contains("was freed by an earlier backward"), "{again}");
}

#[test]
fn gradients_share_nothing_with_the_tape() {
    let mut tape = Tape::<f32>::new();
    let grads = {
        let w = tape.leaf(Tensor::ones([1000]));
        let y = w.mul(w).unwrap().sum_all().unwrap();
        tape.backward(y).unwrap()
    };
    // Freed entries leave nothing behind: only leaves and the output keep values.
    let listing = tape.listing();
    assert!(listing.contains("mul (freed)") && listing.contains("sum (freed)"), "{listing}");
    tape.clear();
    assert_eq!(grads.iter().next().unwrap().1.data()[0], 2.0);
}

#[test]
fn cleared_tape_is_reused_across_steps() {
    let mut tape = Tape::<f64>::new();
    let mut w = Tensor::scalar(3.0);
    for _ in 0..50 {
        let g = {
            let wv = tape.leaf(w.clone());
            let loss = wv.mul(wv).unwrap();
            tape.backward(loss).unwrap().get(wv).unwrap().item().unwrap()
        };
        w.data_mut()[0] -= 0.1 * g;
        tape.clear();
        assert!(tape.is_empty());
    }
    // w ← 0.8 w each step.
    assert!((w.item().unwrap() - 3.0 * 0.8f64.powi(50)).abs() < 1e-12);
}

#[test]
fn two_tapes_on_two_threads() {
    let run = |seed: f64| {
        std::thread::spawn(move || {
            let tape = Tape::<f64>::new();
            let x = tape.leaf(Tensor::scalar(seed));
            let mut y = x;
            for _ in 0..10_000 {
                y = y.mul_scalar(0.9999).unwrap().add(x.mul_scalar(1e-4).unwrap()).unwrap();
            }
            tape.backward(y).unwrap().get(x).unwrap().item().unwrap()
        })
    };
    let (a, b) = (run(1.0), run(2.0));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    // The map is linear in x, so both threads get the same derivative.
    assert!((a - b).abs() < 1e-12 && a > 0.9);
}

#[test]
fn no_grad_and_detach_stop_gradients() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::scalar(2.0));
    let c = tape.no_grad(|| x.mul(x).unwrap());
    assert!(!c.requires_grad() && tape.is_grad_enabled());
    let y = x.mul(c).unwrap().add(x.mul(x).unwrap().detach().unwrap()).unwrap();
    let g = tape.backward(y).unwrap();
    assert_eq!(g.get(x).unwrap().item().unwrap(), 4.0);
}

#[test]
fn explicit_wrt_in_stable_order_with_zeros_for_unused() {
    let tape = Tape::<f64>::new();
    let a = tape.leaf(Tensor::scalar(1.0));
    let b = tape.leaf(Tensor::scalar(2.0));
    let unused = tape.leaf(Tensor::zeros([3]));
    let y = a.mul(b).unwrap();
    let wrt = [b, unused, a];
    let g = tape.backward_with(y, BackwardOptions::default().with_wrt(&wrt)).unwrap();
    let order: Vec<usize> = g.iter().map(|(i, _)| i).collect();
    assert_eq!(order, vec![b.index(), unused.index(), a.index()]);
    assert_eq!(g.get(unused).unwrap().data(), &[0.0, 0.0, 0.0]);
    assert_eq!(g.get(b).unwrap().item().unwrap(), 1.0);
}

#[test]
fn non_scalar_output_needs_a_seed() {
    let tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::zeros([2, 2]));
    let e = tape.backward(x.exp().unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "backward: output has shape [2, 2]; a seed (cotangent) is needed for an output that is not a single value"
    );
    let e = tape.backward_with(x.exp().unwrap(), BackwardOptions::default().with_seed(Tensor::zeros([3]))).unwrap_err();
    assert_eq!(e.to_string(), "backward: seed has shape [3], the output has shape [2, 2]");
}

#[test]
fn variables_of_two_tapes_do_not_mix() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let a = t1.leaf(Tensor::scalar(1.0));
    let b = t2.leaf(Tensor::scalar(1.0));
    assert_eq!(a.add(b).unwrap_err().to_string(), "add: variables come from different tapes");
}
