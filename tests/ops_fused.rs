//! The fused ops against the ops they fuse: `batch_norm_relu_train` is
//! `relu(batch_norm_train(..))` and `add_relu(a, b)` is `relu(a + b)`, to
//! the bit, in both precisions: outputs, gradients of the fused backward
//! kernels, and gradients recorded for higher orders.

use proptest::prelude::*;
use wengert::core::{Float, Result, Tape, Tensor, Var};
use wengert::ops::{add_relu, batch_norm_relu_train, batch_norm_train, relu};

fn bits<T: Float>(t: &Tensor<T>) -> Vec<u64> {
    t.data().iter().map(|v| v.as_f64().to_bits()).collect()
}

/// Output, tensor-mode gradients, recorded gradients and a second
/// derivative of `f` at `inputs`, in precision `T`, against `g` (the seed).
fn results<T: Float>(f: Of<T>, inputs: &[Tensor<T>], seed: &Tensor<T>) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    // Output and the fused backward kernel.
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let y = f(&vars).unwrap();
    out.push(bits(&y.value().unwrap()));
    let loss = y.mul(tape.constant(seed.clone())).unwrap().sum_all().unwrap();
    let g = tape.backward(loss).unwrap();
    out.extend(vars.iter().map(|v| bits(g.get(*v).unwrap())));
    // Recorded, and differentiated again: d/dx Σ (∂L/∂x)².
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let y = f(&vars).unwrap();
    let grads = tape.grad(y, &vars, Some(tape.constant(seed.clone()))).unwrap();
    out.extend(grads.iter().map(|g| bits(&g.value().unwrap())));
    let square = grads[0].mul(grads[0]).unwrap().sum_all().unwrap();
    let second = tape.grad(square, &vars[..1], None).unwrap();
    out.push(bits(&second[0].value().unwrap()));
    out
}

fn cast<T: Float>(t: &Tensor<f64>) -> Tensor<T> {
    Tensor::from_vec(t.data().iter().map(|&v| T::of(v)).collect(), t.dims().to_vec()).unwrap()
}

fn bn_fused<'t, T: Float>(v: &[Var<'t, T>]) -> Result<Var<'t, T>> {
    Ok(batch_norm_relu_train(v[0], Some(v[1]), Some(v[2]), 1e-5)?.0)
}

fn bn_composed<'t, T: Float>(v: &[Var<'t, T>]) -> Result<Var<'t, T>> {
    relu(batch_norm_train(v[0], Some(v[1]), Some(v[2]), 1e-5)?.0)
}

fn add_fused<'t, T: Float>(v: &[Var<'t, T>]) -> Result<Var<'t, T>> {
    add_relu(v[0], v[1])
}

fn add_composed<'t, T: Float>(v: &[Var<'t, T>]) -> Result<Var<'t, T>> {
    relu(v[0].add(v[1])?)
}

type Of<T> = for<'t> fn(&[Var<'t, T>]) -> Result<Var<'t, T>>;

/// `batch_norm_relu_train` (three inputs) or `add_relu` (two) against its
/// composition, in f64 and in f32.
fn same_in_both_precisions(inputs: &[Tensor<f64>], seed: &Tensor<f64>) {
    fn pair<T: Float>(bn: bool) -> (Of<T>, Of<T>) {
        if bn {
            (bn_fused::<T>, bn_composed::<T>)
        } else {
            (add_fused::<T>, add_composed::<T>)
        }
    }
    let bn = inputs.len() == 3;
    let (fused, composed) = pair::<f64>(bn);
    assert_eq!(results(fused, inputs, seed), results(composed, inputs, seed), "f64");
    let inputs: Vec<Tensor<f32>> = inputs.iter().map(cast).collect();
    let seed = cast::<f32>(seed);
    let (fused, composed) = pair::<f32>(bn);
    assert_eq!(results(fused, &inputs, &seed), results(composed, &inputs, &seed), "f32");
}

/// Values on a coarse grid, so that exact zeros and ties occur.
fn grid(shape: Vec<usize>) -> impl Strategy<Value = Tensor<f64>> {
    let n: usize = shape.iter().product();
    prop::collection::vec(-8i32..8, n)
        .prop_map(move |v| Tensor::from_vec(v.into_iter().map(|k| k as f64 / 4.0).collect(), shape.clone()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batch_norm_relu_is_batch_norm_then_relu(
        (x, w, b, g) in (1usize..4, 1usize..4, 1usize..5, 1usize..5).prop_flat_map(|(n, c, h, w)| {
            (grid(vec![n, c, h, w]), grid(vec![c]), grid(vec![c]), grid(vec![n, c, h, w]))
        })
    ) {
        prop_assume!(x.numel() / x.dims()[1] >= 2);
        same_in_both_precisions(&[x, w, b], &g);
    }

    #[test]
    fn add_relu_is_add_then_relu(
        (a, b, g) in prop::collection::vec(1usize..5, 1..4).prop_flat_map(|s| (grid(s.clone()), grid(s.clone()), grid(s)))
    ) {
        same_in_both_precisions(&[a, b], &g);
    }
}

/// NaN, infinities and signed zeros pass through both the same way.
#[test]
fn add_relu_keeps_relu_special_values() {
    let a = Tensor::from_vec(vec![f64::NAN, f64::INFINITY, -0.0, 0.0, -1.0, f64::NEG_INFINITY], [6]).unwrap();
    let b = Tensor::from_vec(vec![1.0, -1.0, -0.0, -0.0, 0.5, 2.0], [6]).unwrap();
    let g = Tensor::from_vec(vec![1.0, f64::NAN, f64::INFINITY, 2.0, -3.0, 4.0], [6]).unwrap();
    same_in_both_precisions(&[a, b], &g);
}

#[test]
fn add_relu_refuses_shapes_that_differ() {
    let tape = Tape::<f64>::new();
    let a = tape.leaf(Tensor::ones([2, 3]));
    let b = tape.leaf(Tensor::ones([3]));
    let err = add_relu(a, b).unwrap_err().to_string();
    assert!(err.contains("add_relu") && err.contains("[2, 3]") && err.contains("does not broadcast"), "{err}");
}
