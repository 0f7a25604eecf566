//! The residual idea, tested: a block `y = x + F(x)` has the Jacobian
//! `I + ∂F/∂x`, which goes to the identity as `F`'s parameters go to zero,
//! and backprop through a stack of blocks is the product rule
//! `δ(l) = δ(l+1)·(∂F/∂x + I)`.
//!
//! The branches are random shallow nets (1–3 layers), dense (1×1
//! convolutions on 1×1 images, i.e. fully connected layers that batch norm
//! can follow) or 3×3 convolutional, with or without batch norm, with tanh
//! or ReLU between layers; everything in f64.

use proptest::prelude::*;
use std::cell::RefCell;
use wengert::core::functional::jacobian;
use wengert::core::{BackwardOptions, Rng, Tape, Tensor};
use wengert::nn::layer::{Activation, BatchNorm2d, Conv2d, Linear, Sequential};
use wengert::nn::{Module, StateMut, StateRef, Step, Visit};
use wengert::ops::{relu, Conv2dOptions};
use wengert::resnet::residual::Residual;

/// A random branch `F`.
#[derive(Clone, Debug)]
struct Branch {
    layers: usize,
    channels: usize,
    /// 1 (dense) or 3 (convolutional).
    kernel: usize,
    norm: bool,
    tanh: bool,
    seed: u64,
}

impl Branch {
    fn build(&self, s: f64) -> Sequential<f64> {
        let mut rng: Rng = wengert::core::rng(self.seed);
        let mut f = Sequential::new();
        for i in 0..self.layers {
            let conv = Conv2d::new(
                self.channels,
                self.channels,
                self.kernel,
                Conv2dOptions::square(1, self.kernel / 2),
                true,
                &mut rng,
            )
            .unwrap();
            f = f.push(conv);
            if self.norm {
                // Non-trivial γ and β, so that scaling them matters.
                let mut bn = BatchNorm2d::new(self.channels);
                let g = Tensor::normal([self.channels], 1.0, 0.5, &mut rng).unwrap();
                let b = Tensor::normal([self.channels], 0.0, 0.5, &mut rng).unwrap();
                *bn.weight.value_mut() = g;
                *bn.bias.value_mut() = b;
                f = f.push(bn);
            }
            if i + 1 < self.layers {
                f = f.push(if self.tanh { Activation::Tanh } else { Activation::Relu });
            }
        }
        f.visit_mut("", &mut |_, e| {
            if let StateMut::Param(p) = e {
                p.value_mut().data_mut().iter_mut().for_each(|w| *w *= s);
            }
        });
        f
    }

    /// A bound `L` on the spectral norm of `∂F/∂x` for the unscaled
    /// parameters, from the layers' Lipschitz constants: a k×k convolution
    /// is at most `k·‖W‖_F` (a sum of k² shifted channel mixes, Cauchy–Schwarz);
    /// training-mode batch norm at most `max|γ|/√ε` (per channel it is
    /// `γ/σ̂` times a projection); tanh and ReLU at most 1. With every
    /// parameter scaled by `s ≤ 1`, `‖∂F/∂x‖₂ ≤ s·L`.
    fn lipschitz(&self) -> f64 {
        let mut bound = 1.0;
        self.build(1.0).visit("", &mut |name, e| {
            if let StateRef::Param(p) = e {
                let v = p.value();
                let frobenius = v.data().iter().map(|w| w * w).sum::<f64>().sqrt();
                if v.dims().len() == 4 {
                    bound *= self.kernel as f64 * frobenius;
                } else if name.ends_with("weight") {
                    let gamma = v.data().iter().fold(0.0f64, |m, g| m.max(g.abs()));
                    bound *= gamma / 1e-5f64.sqrt();
                }
            }
        });
        bound
    }
}

fn branch() -> impl Strategy<Value = Branch> {
    (1usize..=3, 1usize..=3, prop_oneof![Just(1usize), Just(3)], any::<bool>(), any::<bool>(), any::<u64>())
        .prop_map(|(layers, channels, kernel, norm, tanh, seed)| Branch { layers, channels, kernel, norm, tanh, seed })
}

/// An input for `b` whose entries keep at least 0.1 away from zero (so the
/// post-activation limit `diag(relu'(x))` is well defined).
fn input(b: &Branch, seed: u64) -> Tensor<f64> {
    let side = if b.kernel == 1 { 1 } else { 3 };
    let mut x = Tensor::normal([2, b.channels, side, side], 0.0, 1.0, &mut wengert::core::rng(seed)).unwrap();
    x.data_mut().iter_mut().for_each(|v: &mut f64| *v = v.signum() * (v.abs() + 0.1));
    x
}

/// The Jacobian of the block at `x`, with `F`'s parameters scaled by `s`,
/// as an `n × n` row-major matrix; `post` adds the ReLU after the sum.
fn block_jacobian(b: &Branch, s: f64, x: &Tensor<f64>, post: bool) -> Vec<f64> {
    let block = RefCell::new(Residual::new(b.build(s)));
    let j = jacobian(
        |tape, v| {
            let y = block.borrow_mut().forward(&mut Step::train(tape, 0), v[0])?;
            if post {
                relu(y)
            } else {
                Ok(y)
            }
        },
        x,
    )
    .unwrap();
    j.data().to_vec()
}

fn distance(a: &[f64], diag: &[f64]) -> f64 {
    let n = diag.len();
    a.iter()
        .enumerate()
        .map(|(k, v)| v - if k / n == k % n { diag[k / n] } else { 0.0 })
        .map(|d| d * d)
        .sum::<f64>()
        .sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// `J = I` exactly at s = 0, and `‖J − I‖_F ≤ C·s` with
    /// `C = √n·L` (Frobenius ≤ √n × spectral), for s from 1 down to 10⁻⁶;
    /// near zero the distance shrinks at least linearly in s.
    #[test]
    fn block_jacobian_goes_to_the_identity(b in branch(), seed in any::<u64>()) {
        let x = input(&b, seed);
        let n = x.numel();
        let ones = vec![1.0; n];
        prop_assert_eq!(distance(&block_jacobian(&b, 0.0, &x, false), &ones), 0.0, "J = I exactly at s = 0");
        let c = (n as f64).sqrt() * b.lipschitz();
        // J is stored as the rounded sum I + ∂F/∂x: each diagonal entry
        // carries up to one ulp of 1, which J − I cannot recover.
        let rounding = n as f64 * f64::EPSILON;
        let mut last = f64::INFINITY;
        for s in [1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6] {
            let r = distance(&block_jacobian(&b, s, &x, false), &ones);
            prop_assert!(r <= c * s + rounding, "‖J − I‖ = {} > C·s = {} at s = {}", r, c * s, s);
            if s <= 1e-4 {
                // Deep in the limit (batch norm's ε dominates its variance):
                // a tenth of the scale gives at most a tenth of the distance.
                prop_assert!(r <= last * 0.1 * (1.0 + 1e-3) + rounding, "{} after {} at s = {}", r, last, s);
            }
            last = r;
        }
    }

    /// With a ReLU after the sum, the limit is `diag(relu'(x))`, not `I`:
    /// exactly at s = 0, and within `‖∂F/∂x‖_F` once `F(x)` is too small to
    /// flip a sign (there `J = diag(relu'(x))·(I + ∂F/∂x)`).
    #[test]
    fn post_activation_block_goes_to_the_relu_mask(b in branch(), seed in any::<u64>()) {
        let x = input(&b, seed);
        let n = x.numel();
        let mask: Vec<f64> = x.data().iter().map(|v| if *v > 0.0 { 1.0 } else { 0.0 }).collect();
        prop_assert_eq!(distance(&block_jacobian(&b, 0.0, &x, true), &mask), 0.0);
        let ones = vec![1.0; n];
        for s in [1e-3, 1e-4, 1e-6] {
            let fx = {
                let tape = Tape::new();
                let xv = tape.constant(x.clone());
                let y = b.build(s).forward(&mut Step::train(&tape, 0), xv).unwrap();
                y.value().unwrap()
            };
            if fx.data().iter().any(|v| v.abs() >= 0.1) {
                continue;
            }
            let plain = distance(&block_jacobian(&b, s, &x, false), &ones);
            let post = distance(&block_jacobian(&b, s, &x, true), &mask);
            let rounding = n as f64 * f64::EPSILON;
            prop_assert!(post <= plain + rounding, "{} > {} at s = {}", post, plain, s);
        }
    }
}

/// A row vector times an `n × n` matrix.
fn row_times(d: &[f64], m: &[f64]) -> Vec<f64> {
    let n = d.len();
    (0..n).map(|j| (0..n).map(|i| d[i] * m[i * n + j]).sum()).collect()
}

fn dense_branch(width: usize, rng: &mut Rng) -> Sequential<f64> {
    Sequential::new()
        .push(Linear::new(width, width, true, rng).unwrap())
        .push(Activation::Tanh)
        .push(Linear::new(width, width, true, rng).unwrap())
}

#[test]
fn backward_through_a_stack_is_the_product_rule() {
    let (depth, width) = (6, 5);
    let mut rng = wengert::core::rng(11);
    let mut blocks: Vec<Residual<Sequential<f64>>> =
        (0..depth).map(|_| Residual::new(dense_branch(width, &mut rng))).collect();
    let x = Tensor::normal([1, width], 0.0, 1.0, &mut rng).unwrap();
    let seed = Tensor::normal([1, width], 0.0, 1.0, &mut rng).unwrap();

    // The engine: one backward pass through the stack of one-node blocks.
    let tape = Tape::new();
    let xv = tape.leaf(x.clone());
    let mut step = Step::train(&tape, 0);
    let mut h = xv;
    let mut inputs = Vec::new();
    for b in &mut blocks {
        inputs.push(h.value().unwrap());
        h = b.forward(&mut step, h).unwrap();
    }
    let g = tape.backward_with(h, BackwardOptions::default().with_seed(seed.clone()).with_wrt(&[xv]));
    let engine = g.unwrap().into_tensors().remove(0);

    // By hand: δ(l) = δ(l+1)·(∂F_l/∂x + I), with each ∂F_l/∂x computed from
    // the branch alone at the block's input.
    let mut delta = seed.data().to_vec();
    for (b, h) in blocks.iter_mut().zip(&inputs).rev() {
        let branch = RefCell::new(b.branch_mut());
        let jf = jacobian(|tape, v| branch.borrow_mut().forward(&mut Step::train(tape, 0), v[0]), h).unwrap();
        let mut j = jf.data().to_vec();
        (0..width).for_each(|i| j[i * width + i] += 1.0);
        delta = row_times(&delta, &j);
    }
    for (a, b) in engine.data().iter().zip(&delta) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "engine {a} vs product rule {b}");
    }
}

/// `x + F(x)` as one node equals the same ops recorded one by one: outputs,
/// input gradients and parameter gradients, with and without recomputation.
#[test]
fn one_node_equals_the_primitive_composition() {
    let build = || {
        let mut rng = wengert::core::rng(5);
        Sequential::new()
            .push(Conv2d::new(3, 3, 3, Conv2dOptions::square(1, 1), false, &mut rng).unwrap())
            .push(BatchNorm2d::new(3))
            .push(Activation::Relu)
            .push(Conv2d::new(3, 3, 3, Conv2dOptions::square(1, 1), true, &mut rng).unwrap())
    };
    let x = Tensor::normal([2, 3, 4, 4], 0.0, 1.0, &mut wengert::core::rng(6)).unwrap();
    let weights = Tensor::from_fn([2, 3, 4, 4], |i| ((i * 7) % 5) as f64 - 2.0);

    // Output, input gradient, parameter gradients and running means.
    type Run = (Vec<f64>, Vec<f64>, Vec<Vec<f64>>, Vec<Vec<f64>>);
    let run = |m: &mut dyn Module<f64>, residual: bool| -> Run {
        let tape = Tape::new();
        let xv = tape.leaf(x.clone());
        let mut step = Step::train(&tape, 0);
        let y = m.forward(&mut step, xv).unwrap();
        let y = if residual { y } else { xv.add(y).unwrap() };
        let out = y.value().unwrap().data().to_vec();
        let loss = y.mul(tape.constant(weights.clone())).unwrap().sum_all().unwrap();
        let gx = tape
            .backward_with(loss, BackwardOptions::default().with_wrt(&[xv]).with_retain_graph(true))
            .unwrap()
            .into_tensors()
            .remove(0);
        let pg = step.backward(loss).unwrap();
        let (mut params, mut buffers) = (Vec::new(), Vec::new());
        m.visit("", &mut |_, s| match s {
            StateRef::Param(p) => params.push(pg.get(p).unwrap().data().to_vec()),
            StateRef::Buffer(b) => buffers.push(b.data().to_vec()),
            StateRef::Count(c) => buffers.push(vec![*c as f64]),
        });
        (out, gx.data().to_vec(), params, buffers)
    };
    let close = |a: &Run, b: &Run| {
        let flat = |r: &Run| {
            let mut v = r.0.clone();
            v.extend(&r.1);
            r.2.iter().chain(&r.3).for_each(|t| v.extend(t));
            v
        };
        let (a, b) = (flat(a), flat(b));
        assert_eq!(a.len(), b.len());
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 1e-12 * (1.0 + q.abs()), "{p} vs {q}");
        }
    };
    let primitive = run(&mut build(), false);
    let mut node = Residual::new(build());
    close(&run(&mut node, true), &primitive);
    let mut recomputed = Residual::new(build());
    recomputed.recompute = true;
    // Recomputation runs F twice; the running statistics still move once.
    close(&run(&mut recomputed, true), &primitive);
}

#[test]
fn a_branch_that_changes_the_shape_is_an_error() {
    let mut rng = wengert::core::rng(0);
    let mut block = Residual::new(Sequential::<f64>::new().push(Linear::new(4, 3, true, &mut rng).unwrap()));
    let tape = Tape::new();
    let x = tape.constant(Tensor::ones([2, 4]));
    let err = block.forward(&mut Step::train(&tape, 0), x).unwrap_err().to_string();
    assert!(err.contains("Residual") && err.contains("[2, 4]") && err.contains("[2, 3]"), "{err}");
}
