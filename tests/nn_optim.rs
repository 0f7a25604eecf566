//! Optimisers and schedules against updates computed by hand from their
//! documented formulas (PyTorch's conventions).

use wengert::core::{Tape, Tensor};
use wengert::nn::layer::Linear;
use wengert::nn::optim::{
    clip_grad_norm, Adam, Constant, Cosine, LrSchedule, MultiStep, Optimizer, Sgd, StepDecay, Warmup,
};
use wengert::nn::{Module, Param, ParamGrads, Step, Visit};

/// A model of one scalar parameter, for hand-checkable updates.
struct Scalar {
    w: Param<f64>,
}

impl Module<f64> for Scalar {
    fn forward<'t>(
        &mut self,
        step: &mut Step<'t, f64>,
        x: wengert::Var<'t, f64>,
    ) -> wengert::Result<wengert::Var<'t, f64>> {
        step.param(&self.w).mul(x)
    }
}

impl Visit<f64> for Scalar {
    wengert::nn::visit_fields!(<f64> w);
}

/// Runs `steps` optimiser steps on L(w) = c·w (gradient c at every step,
/// chosen per step), returning w after each step.
fn run(opt: &mut dyn Optimizer<f64>, w0: f64, grads: &[f64], lr: f64) -> Vec<f64> {
    let mut m = Scalar { w: Param::new(Tensor::scalar(w0)) };
    let mut out = Vec::new();
    for &c in grads {
        let tape = Tape::new();
        let g = {
            let mut step = Step::train(&tape, 0);
            let y = m.forward(&mut step, tape.constant(Tensor::scalar(c))).unwrap();
            step.backward(y).unwrap()
        };
        opt.step(&mut m, &g, lr).unwrap();
        out.push(m.w.value().item().unwrap());
    }
    out
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn sgd_with_momentum_and_weight_decay() {
    // d = g + λw; b₁ = d₁; bₜ = μbₜ₋₁ + dₜ; w ← w − lr·b.
    let (lr, mu, wd) = (0.1, 0.9, 0.01);
    let grads = [1.0, -2.0, 0.5];
    let got = run(&mut Sgd::new(mu, wd), 1.0, &grads, lr);
    let (mut w, mut b) = (1.0f64, None::<f64>);
    let mut want = Vec::new();
    for g in grads {
        let d = g + wd * w;
        let nb = b.map_or(d, |b| mu * b + d);
        b = Some(nb);
        w -= lr * nb;
        want.push(w);
    }
    close(&got, &want);
    // Plain SGD: w ← w − lr·g.
    close(&run(&mut Sgd::new(0.0, 0.0), 1.0, &[1.0, 1.0], 0.5), &[0.5, 0.0]);
}

#[test]
fn sgd_nesterov() {
    let (lr, mu) = (0.1, 0.9);
    let got = run(&mut Sgd::new(mu, 0.0).nesterov(), 2.0, &[1.0, 1.0], lr);
    // Step 1: b = 1, d = 1 + 0.9·1 = 1.9, w = 2 − 0.19. Step 2: b = 1.9, d = 1 + 1.71.
    close(&got, &[2.0 - 0.19, 2.0 - 0.19 - 0.1 * 2.71]);
    let mut bad = Sgd::<f64>::new(0.0, 0.0).nesterov();
    let mut m = Scalar { w: Param::new(Tensor::scalar(1.0)) };
    let e = bad.step(&mut m, &ParamGrads::default(), 0.1).unwrap_err();
    assert!(e.to_string().contains("nesterov"), "{e}");
}

#[test]
fn adam_and_adamw() {
    let (lr, wd) = (0.01, 0.1);
    let grads = [0.5, -1.0, 2.0];
    let hand = |decoupled: bool| {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (mut w, mut m, mut v) = (1.0f64, 0.0, 0.0);
        let mut out = Vec::new();
        for (t, &g0) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            let g = if decoupled { g0 } else { g0 + wd * w };
            if decoupled {
                w *= 1.0 - lr * wd;
            }
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let step = lr / (1.0 - b1.powi(t));
            w -= step * m / (v.sqrt() / (1.0 - b2.powi(t)).sqrt() + eps);
            out.push(w);
        }
        out
    };
    close(&run(&mut Adam::new(wd), 1.0, &grads, lr), &hand(false));
    close(&run(&mut Adam::adamw(wd), 1.0, &grads, lr), &hand(true));
    // The first Adam step moves every parameter by about lr, whatever |g|.
    let w = run(&mut Adam::new(0.0), 0.0, &[1234.5], 0.01)[0];
    assert!((w + 0.01).abs() < 1e-9, "{w}");
}

#[test]
fn optimizer_state_round_trips() {
    let mut a = Sgd::new(0.9, 0.0);
    run(&mut a, 1.0, &[1.0, 2.0], 0.1);
    let state = a.state();
    assert_eq!(state.steps, 2);
    assert_eq!(state.tensors[0].0, "w.momentum_buffer");
    let mut b = Sgd::new(0.9, 0.0);
    b.load_state(state.clone()).unwrap();
    assert_eq!(b.state(), state);
}

#[test]
fn frozen_parameters_are_left_alone() {
    let mut rng = wengert::core::rng(0);
    let mut layer = Linear::<f64>::new(3, 2, true, &mut rng).unwrap();
    layer.weight.set_requires_grad(false);
    let before = layer.weight.value().clone();
    let tape = Tape::new();
    let grads = {
        let mut step = Step::train(&tape, 0);
        let y = layer.forward(&mut step, tape.constant(Tensor::ones([4, 3]))).unwrap().sum_all().unwrap();
        step.backward(y).unwrap()
    };
    assert!(grads.get(&layer.weight).is_none() && grads.get(layer.bias.as_ref().unwrap()).is_some());
    Sgd::new(0.0, 0.0).step(&mut layer, &grads, 1.0).unwrap();
    assert_eq!(layer.weight.value(), &before);
    assert_eq!(layer.bias.as_ref().unwrap().value().data().len(), 2);
    assert_eq!(layer.num_parameters(), 2);
}

#[test]
fn schedules_at_chosen_steps() {
    let paper = MultiStep { base: 0.1, milestones: vec![32_000, 48_000], gamma: 0.1 };
    assert_eq!(paper.lr(0), 0.1);
    assert_eq!(paper.lr(31_999), 0.1);
    assert!((paper.lr(32_000) - 0.01).abs() < 1e-15);
    assert!((paper.lr(48_000) - 0.001).abs() < 1e-15);
    let step = StepDecay { base: 1.0, every: 10, gamma: 0.5 };
    assert_eq!((step.lr(9), step.lr(10), step.lr(25)), (1.0, 0.5, 0.25));
    let cos = Cosine { base: 1.0, min: 0.0, period: 100 };
    assert_eq!(cos.lr(0), 1.0);
    assert!((cos.lr(50) - 0.5).abs() < 1e-12);
    assert_eq!(cos.lr(100), 0.0);
    assert_eq!(cos.lr(1000), 0.0);
    let warm = Warmup { steps: 4, start: 0.0, inner: paper };
    assert_eq!(warm.lr(0), 0.0);
    assert!((warm.lr(2) - 0.05).abs() < 1e-15);
    assert_eq!(warm.lr(4), 0.1);
    assert!((warm.lr(32_000) - 0.01).abs() < 1e-15);
    assert_eq!(Warmup { steps: 10, start: 0.5, inner: Constant(2.0) }.lr(5), 1.5);
}

#[test]
fn gradient_clipping_by_global_norm() {
    let mut rng = wengert::core::rng(0);
    let mut layer = Linear::<f64>::new(2, 2, true, &mut rng).unwrap();
    let tape = Tape::new();
    let mut grads = {
        let mut step = Step::train(&tape, 0);
        let y = layer.forward(&mut step, tape.constant(Tensor::full([1, 2], 10.0))).unwrap().sum_all().unwrap();
        step.backward(y).unwrap()
    };
    // dL/dW = 10 everywhere (4 entries), dL/db = 1 (2 entries): norm √402.
    let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
    assert!((norm - 402f64.sqrt()).abs() < 1e-12);
    let after: f64 = [&layer.weight, layer.bias.as_ref().unwrap()]
        .iter()
        .map(|p| grads.get(p).unwrap().data().iter().map(|v| v * v).sum::<f64>())
        .sum::<f64>()
        .sqrt();
    assert!((after - 1.0).abs() < 1e-5, "{after}");
    // A negative or NaN bound would flip the gradients' signs or poison them.
    let weight = |g: &wengert::nn::ParamGrads<f64>| g.get(&layer.weight).unwrap().data().to_vec();
    for bad in [-1.0, f64::NAN] {
        let before = weight(&grads);
        let e = clip_grad_norm(&mut grads, bad).unwrap_err().to_string();
        assert!(e.contains("max_norm"), "{e}");
        assert_eq!(weight(&grads), before, "a refused clip leaves the gradients alone");
    }
    let _ = layer.forward(&mut Step::eval(&tape), tape.constant(Tensor::zeros([1, 2]))).unwrap();
}

/// Gradients are keyed by each parameter's id, not its address: moving the
/// model (into a box, a vector, a thread) between the forward pass and the
/// update keeps them, and gradients of another model are an error rather
/// than silently dropped.
#[test]
fn gradients_survive_moving_the_model_and_refuse_another() {
    let model = Linear::<f64>::new(3, 2, true, &mut wengert::core::rng(0)).unwrap();
    let grads = {
        let mut m = model.clone();
        let tape = Tape::new();
        let mut step = Step::train(&tape, 0);
        let y = m.forward(&mut step, tape.constant(Tensor::ones([4, 3]))).unwrap();
        step.backward(y.sum_all().unwrap()).unwrap()
    };
    let before = model.weight.value().clone();
    let mut moved = vec![Box::new(model)];
    let mut moved = std::thread::spawn(move || moved.pop().unwrap()).join().unwrap();
    Sgd::new(0.0, 0.0).step(&mut *moved, &grads, 0.5).unwrap();
    // ∂/∂w Σ(xWᵀ + b) with x = 1 is 4 for every weight: w moves by 0.5·4.
    let after = moved.weight.value();
    assert!(before.data().iter().zip(after.data()).all(|(b, a)| (b - a - 2.0).abs() < 1e-12));
    let mut other = Linear::<f64>::new(3, 2, true, &mut wengert::core::rng(0)).unwrap();
    let e = Sgd::new(0.0, 0.0).step(&mut other, &grads, 0.5).unwrap_err().to_string();
    assert!(e.contains("2 of 2 gradients belong to no trainable parameter of this model"), "{e}");
}

/// A model of one vector parameter: L(w) = Σ cᵢ·wᵢ.
struct Vector {
    w: Param<f64>,
}

impl Module<f64> for Vector {
    fn forward<'t>(
        &mut self,
        step: &mut Step<'t, f64>,
        c: wengert::Var<'t, f64>,
    ) -> wengert::Result<wengert::Var<'t, f64>> {
        step.param(&self.w).mul(c)?.sum_all()
    }
}

impl Visit<f64> for Vector {
    wengert::nn::visit_fields!(<f64> w);
}

/// A parameter large enough to be updated in parallel chunks gets, at
/// every element (chunk edges included), exactly the update of a scalar
/// parameter with that element's value and gradients.
#[test]
fn large_parameters_update_in_chunks_as_scalars_do() {
    let n = 70_001;
    let w0 = |i: usize| ((i * 7919) % 1000) as f64 / 500.0 - 1.0;
    let c = |i: usize, t: usize| ((i * 31 + t * 17) % 200) as f64 / 100.0 - 1.0;
    type Make = fn() -> Box<dyn Optimizer<f64>>;
    let optimisers: [Make; 4] = [
        || Box::new(Sgd::new(0.9, 0.01)),
        || Box::new(Sgd::new(0.9, 0.0).nesterov()),
        || Box::new(Adam::new(0.01)),
        || Box::new(Adam::adamw(0.05)),
    ];
    for make in optimisers {
        let (mut big, mut m) = (make(), Vector { w: Param::new(Tensor::from_fn([n], w0)) });
        for t in 0..3 {
            let tape = Tape::new();
            let mut step = Step::train(&tape, 0);
            let y = m.forward(&mut step, tape.constant(Tensor::from_fn([n], |i| c(i, t)))).unwrap();
            let g = step.backward(y).unwrap();
            big.step(&mut m, &g, 0.1).unwrap();
        }
        for i in [0, 1, 8191, 8192, 8193, 32_767, 32_768, 65_535, 65_536, 69_999, 70_000] {
            let grads: Vec<f64> = (0..3).map(|t| c(i, t)).collect();
            let scalar = *run(&mut *make(), w0(i), &grads, 0.1).last().unwrap();
            assert_eq!(m.w.value().data()[i].to_bits(), scalar.to_bits(), "{} at {i}", big.name());
        }
    }
}

/// One step of `opt` on the scalar model at `w = 1` with gradient 1.
fn one_step(opt: &mut dyn Optimizer<f64>, lr: f64) -> wengert::Result<f64> {
    let mut m = Scalar { w: Param::new(Tensor::scalar(1.0)) };
    let tape = Tape::new();
    let g = {
        let mut step = Step::train(&tape, 0);
        let y = m.forward(&mut step, tape.constant(Tensor::scalar(1.0)))?;
        step.backward(y)?
    };
    opt.step(&mut m, &g, lr)?;
    m.w.value().item()
}

/// Settings and states that would corrupt the weights are refused with an
/// error naming them, where they used to panic or give NaN.
#[test]
fn optimisers_refuse_what_would_corrupt_the_weights() {
    // A learning rate or hyper-parameter that is not a number, or negative.
    for lr in [f64::NAN, f64::INFINITY, -0.1] {
        let e = one_step(&mut Sgd::new(0.9, 0.0), lr).unwrap_err().to_string();
        assert!(e.contains("lr"), "{e}");
        assert!(one_step(&mut Adam::new(0.0), lr).unwrap_err().to_string().contains("lr"));
    }
    let e = one_step(&mut Sgd::new(f64::NAN, 0.0), 0.1).unwrap_err().to_string();
    assert!(e.contains("momentum"), "{e}");
    let e = one_step(&mut Sgd::new(0.9, -1e-4), 0.1).unwrap_err().to_string();
    assert!(e.contains("weight_decay"), "{e}");
    let mut adam = Adam::new(0.0);
    adam.beta1 = 1.0;
    assert!(one_step(&mut adam, 0.1).unwrap_err().to_string().contains("beta1"));

    // A step count at its end: an error, not an overflow (or a wrap to 0).
    for opt in [&mut Sgd::new(0.9, 0.0) as &mut dyn Optimizer<f64>, &mut Adam::new(0.0)] {
        let mut state = opt.state();
        state.steps = u64::MAX;
        opt.load_state(state).unwrap();
        let e = one_step(opt, 0.1).unwrap_err().to_string();
        assert!(e.contains("step count"), "{e}");
    }

    // Adam past 2³¹ − 1 steps: the bias corrections are 1, the step finite.
    let mut adam = Adam::new(0.0);
    let mut state = adam.state();
    state.steps = (1 << 31) - 1;
    adam.load_state(state).unwrap();
    let w = one_step(&mut adam, 0.01).unwrap();
    // Fresh moments: m = 0.1, v = 0.001, so w = 1 − 0.01 · 0.1 / (√0.001 + 1e-8).
    let want = 1.0 - 0.01 * 0.1 / (0.001f64.sqrt() + 1e-8);
    assert!((w - want).abs() < 1e-12, "{w} vs {want}");

    // Another optimiser's state.
    let mut sgd = Sgd::new(0.9, 0.0);
    one_step(&mut sgd, 0.1).unwrap();
    let e = Adam::<f64>::new(0.0).load_state(sgd.state()).unwrap_err().to_string();
    assert!(e.contains("w.momentum_buffer"), "{e}");
    let mut adam = Adam::new(0.0);
    one_step(&mut adam, 0.1).unwrap();
    let e = Sgd::<f64>::new(0.9, 0.0).load_state(adam.state()).unwrap_err().to_string();
    assert!(e.contains("exp_avg"), "{e}");
}

/// Parameter groups: each parameter moves at its group's multiple of the
/// rate, with SGD and with Adam, and the longest matching prefix wins.
#[test]
fn parameter_groups_scale_each_groups_rate() {
    use wengert::nn::layer::Sequential;
    use wengert::nn::optim::{Adam, Optimizer, ParamGroups, Sgd};
    let net = || {
        Sequential::<f64>::new()
            .push_named("body", Linear::new(3, 3, true, &mut wengert::core::rng(0)).unwrap())
            .push_named("fc", Linear::new(3, 2, true, &mut wengert::core::rng(1)).unwrap())
    };
    let step = |model: &mut Sequential<f64>, opt: &mut dyn Optimizer<f64>| {
        let tape = Tape::new();
        let mut s = Step::train(&tape, 0);
        let y = model.forward(&mut s, tape.constant(Tensor::from_vec(vec![1.0, -2.0, 0.5], [1, 3]).unwrap())).unwrap();
        let g = s.backward(y.mul(y).unwrap().sum_all().unwrap()).unwrap();
        opt.step(model, &g, 0.1).unwrap();
    };
    let moves = |model: &Sequential<f64>, before: &Sequential<f64>, name: &str| -> f64 {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (m, out) in [(model, &mut a), (before, &mut b)] {
            m.visit("", &mut |n, s| {
                if let (true, wengert::nn::StateRef::Param(p)) = (n == name, s) {
                    out.extend_from_slice(p.value().data());
                }
            });
        }
        a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
    };
    let groups = ParamGroups::new().with_group("", 0.25).unwrap().with_group("fc.", 1.0).unwrap();
    type Boxed = Box<dyn Optimizer<f64>>;
    let optimisers: [(Boxed, Boxed); 2] = [
        (Box::new(Sgd::new(0.9, 0.0)), Box::new(Sgd::new(0.9, 0.0).with_groups(groups.clone()))),
        (Box::new(Adam::new(0.0)), Box::new(Adam::new(0.0).with_groups(groups.clone()))),
    ];
    for (mut plain, mut grouped) in optimisers {
        let start = net();
        let (mut a, mut b) = (net(), net());
        step(&mut a, &mut *plain);
        step(&mut b, &mut *grouped);
        for name in ["body.weight", "body.bias"] {
            let ratio = moves(&b, &start, name) / moves(&a, &start, name);
            assert!((ratio - 0.25).abs() < 1e-9, "{} {name}: {ratio}", plain.name());
        }
        assert!((moves(&b, &start, "fc.weight") - moves(&a, &start, "fc.weight")).abs() < 1e-12);
    }
    assert!(ParamGroups::new().with_group("fc.", -1.0).is_err());
    assert!(ParamGroups::new().with_group("fc.", 1.0).unwrap().with_group("fc.", 2.0).is_err());
}
