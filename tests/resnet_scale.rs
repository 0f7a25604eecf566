//! The deepest models of the zoo run full training steps: the 1,202-layer
//! CIFAR ResNet (with and without per-block recomputation, which must give
//! the same gradients) and ResNet-152 at 224×224.

use wengert::core::{Tape, Tensor};
use wengert::nn::{Module, StateRef, Step, Visit};
use wengert::ops::cross_entropy;
use wengert::resnet::zoo::ResNet;

/// Loss and every parameter gradient of one training step.
fn step(model: &mut ResNet<f32>, x: &Tensor<f32>, labels: &[usize]) -> (f32, Vec<Tensor<f32>>) {
    let tape = Tape::new();
    let mut s = Step::train(&tape, 0);
    let logits = model.forward(&mut s, tape.constant(x.clone())).unwrap();
    let loss = cross_entropy(logits, labels).unwrap();
    let value = loss.value().unwrap().item().unwrap();
    let grads = s.backward(loss).unwrap();
    let mut out = Vec::new();
    model.visit("", &mut |_, e| {
        if let StateRef::Param(p) = e {
            out.push(grads.get(p).expect("every parameter gets a gradient").clone());
        }
    });
    (value, out)
}

#[test]
fn resnet1202_trains_with_and_without_recomputation_alike() {
    let x = Tensor::normal([2, 3, 32, 32], 0.0, 1.0, &mut wengert::core::rng(1)).unwrap();
    let labels = [3, 7];
    let mut plain = ResNet::<f32>::by_name("resnet1202", 3, 10, &mut wengert::core::rng(0)).unwrap();
    let mut recomputed = ResNet::<f32>::by_name("resnet1202", 3, 10, &mut wengert::core::rng(0)).unwrap();
    recomputed.set_recompute(true);
    let (a, ga) = step(&mut plain, &x, &labels);
    let (b, gb) = step(&mut recomputed, &x, &labels);
    assert!(a.is_finite());
    assert_eq!(a, b);
    assert_eq!(ga.len(), 1 + 2 + 200 * 3 * 6 + 2);
    assert!(ga == gb, "recomputation changed a gradient");
}

#[test]
fn resnet152_runs_a_training_step_at_224() {
    let x = Tensor::normal([2, 3, 224, 224], 0.0, 1.0, &mut wengert::core::rng(1)).unwrap();
    let mut model = ResNet::<f32>::by_name("resnet152", 3, 1000, &mut wengert::core::rng(0)).unwrap();
    model.set_recompute(true);
    let (loss, grads) = step(&mut model, &x, &[1, 999]);
    assert!(loss.is_finite() && loss > 0.0);
    assert!(grads.iter().all(|g| g.data().iter().all(|v| v.is_finite())));
}
