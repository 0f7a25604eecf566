//! The fused ops against the ops they fuse: `batch_norm_relu_train` is
//! `relu(batch_norm_train(..))`, `add_relu(a, b)` is `relu(a + b)`,
//! `batch_norm_eval` and `batch_norm_relu_eval` are the composition of
//! `sub`, `mul`, `mul`, `add` (and `relu`) they replace, and a
//! batch norm given the row moments its convolution gathered is the batch
//! norm that gathers its own, to the bit, in both precisions: outputs,
//! gradients of the fused backward kernels, and gradients recorded for
//! higher orders.

use proptest::prelude::*;
use std::cell::Cell;
use wengert::core::{Float, Result, Tape, Tensor, Var};
use wengert::ops::isa::{self, Isa};
use wengert::ops::{
    add_relu, batch_norm_eval, batch_norm_relu_eval, batch_norm_relu_train, batch_norm_train, batch_norm_train_opts,
    conv2d, conv2d_with_moments, relu, BatchNormTrainOptions, Conv2dOptions,
};

fn bits<T: Float>(t: &Tensor<T>) -> Vec<u64> {
    t.data().iter().map(|v| v.as_f64().to_bits()).collect()
}

/// Output, tensor-mode gradients, recorded gradients and a second
/// derivative of `f` at `inputs`, in precision `T`, against `g` (the seed).
fn results<T: Float>(
    f: impl for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>>,
    inputs: &[Tensor<T>],
    seed: &Tensor<T>,
) -> Vec<Vec<u64>> {
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

/// Evaluation-mode batch norm (with a ReLU when `relu`; with or without
/// weight and bias) against the composition of core ops it replaces, in
/// precision `T`: the same outputs, gradients and second derivatives.
fn eval_matches_its_composition<T: Float>(inputs: &[Tensor<f64>], seed: &Tensor<f64>, relu: bool, affine: [bool; 2]) {
    let inputs: Vec<Tensor<T>> = inputs.iter().map(cast).collect();
    let (mean, var) = (&inputs[3], &inputs[4]);
    let c = mean.numel();
    // The inputs differentiated: x, then the weight and the bias where
    // there are ones.
    fn params<'t, T: Float>(v: &[Var<'t, T>], affine: [bool; 2]) -> (Option<Var<'t, T>>, Option<Var<'t, T>>) {
        (affine[0].then(|| v[1]), affine[1].then(|| v[1 + affine[0] as usize]))
    }
    let used: Vec<Tensor<T>> =
        inputs[..3].iter().enumerate().filter(|&(i, _)| i == 0 || affine[i - 1]).map(|(_, t)| t.clone()).collect();
    let fused = results(
        |v| {
            let (w, b) = params(v, affine);
            if relu {
                batch_norm_relu_eval(v[0], w, b, mean, var, 1e-5)
            } else {
                batch_norm_eval(v[0], w, b, mean, var, 1e-5)
            }
        },
        &used,
        &cast(seed),
    );
    let composed = results(
        |v| {
            let tape = v[0].tape();
            let column = |t: Tensor<T>| Ok::<_, wengert::core::Error>(tape.constant(t.reshape(vec![1, c, 1, 1])?));
            let scale = var.map(|s| T::one() / (s + T::of(1e-5)).sqrt());
            let mut y = v[0].sub(column(mean.clone())?)?.mul(column(scale)?)?;
            let (w, b) = params(v, affine);
            if let Some(w) = w {
                y = y.mul(w.reshape(&[1, c, 1, 1])?)?;
            }
            if let Some(b) = b {
                y = y.add(b.reshape(&[1, c, 1, 1])?)?;
            }
            if relu {
                wengert::ops::relu(y)
            } else {
                Ok(y)
            }
        },
        &used,
        &cast(seed),
    );
    assert_eq!(fused, composed, "relu {relu}, weight and bias {affine:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batch_norm_eval_is_its_composition(
        (x, w, b, mean, var, g) in (1usize..4, 1usize..4, 1usize..5, 1usize..5).prop_flat_map(|(n, c, h, w)| {
            let var = prop::collection::vec(0u8..12, c)
                .prop_map(move |v| Tensor::from_vec(v.into_iter().map(|k| k as f64 / 4.0).collect(), [c]).unwrap());
            (grid(vec![n, c, h, w]), grid(vec![c]), grid(vec![c]), grid(vec![c]), var, grid(vec![n, c, h, w]))
        }),
        relu in any::<bool>(),
        affine in any::<[bool; 2]>(),
    ) {
        let inputs = [x, w, b, mean, var];
        eval_matches_its_composition::<f64>(&inputs, &g, relu, affine);
        eval_matches_its_composition::<f32>(&inputs, &g, relu, affine);
    }

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

/// `count` values on a grid of quarters in [−2, 2), spread by `seed`.
fn spread(count: usize, seed: usize) -> Vec<f64> {
    (0..count).map(|i| ((i * 7919 + seed * 104_729) % 16) as f64 / 4.0 - 2.0).collect()
}

/// Conv then batch norm (with and without its ReLU), once with the
/// moments the convolution gathered and once without: the same results,
/// in f64 and f32. Where the direct kernels run (f32 on an x86 vector
/// level, output channels in eights), the moments must have been gathered.
#[test]
fn batch_norm_of_gathered_moments_is_batch_norm() {
    // (input, weight, stride and padding, whether the direct path takes it)
    type Case = ([usize; 4], [usize; 4], (usize, usize), bool);
    let cases: [Case; 5] = [
        ([2, 3, 6, 6], [8, 3, 3, 3], (1, 1), true),
        ([2, 8, 8, 8], [16, 8, 3, 3], (2, 1), true),
        ([3, 16, 5, 5], [8, 16, 1, 1], (1, 0), true),
        ([1, 8, 7, 9], [8, 8, 3, 3], (1, 1), true),
        ([2, 4, 5, 5], [3, 4, 3, 3], (1, 1), false),
    ];
    let direct_here = isa::active() != Isa::Generic;
    for (k, (xd, wd, (stride, pad), direct)) in cases.into_iter().enumerate() {
        let opts = Conv2dOptions::square(stride, pad);
        let tensor =
            |dims: Vec<usize>, seed: usize| Tensor::from_vec(spread(dims.iter().product(), seed), dims).unwrap();
        let y_dims = {
            let tape = Tape::<f64>::new();
            conv2d(tape.constant(Tensor::zeros(xd)), tape.constant(Tensor::zeros(wd)), None, &opts)
                .unwrap()
                .shape()
                .dims()
                .to_vec()
        };
        let inputs = [
            tensor(xd.to_vec(), k),
            tensor(wd.to_vec(), k + 1),
            tensor(vec![wd[0]], k + 2),
            tensor(vec![wd[0]], k + 3),
        ];
        let seed = tensor(y_dims, k + 4);
        for relu in [false, true] {
            fn both<T: Float>(inputs: &[Tensor<T>], seed: &Tensor<T>, opts: Conv2dOptions, relu: bool) -> bool {
                let gathered = Cell::new(false);
                let with = results(
                    |v| {
                        let (y, moments) = conv2d_with_moments(v[0], v[1], &opts)?;
                        gathered.set(gathered.get() || moments.is_some());
                        let mut bn = BatchNormTrainOptions::default().with_relu(relu);
                        bn.moments = moments;
                        Ok(batch_norm_train_opts(y, Some(v[2]), Some(v[3]), 1e-5, bn)?.0)
                    },
                    inputs,
                    seed,
                );
                let without = results(
                    |v| {
                        let y = conv2d(v[0], v[1], None, &opts)?;
                        let bn = BatchNormTrainOptions::default().with_relu(relu);
                        Ok(batch_norm_train_opts(y, Some(v[2]), Some(v[3]), 1e-5, bn)?.0)
                    },
                    inputs,
                    seed,
                );
                assert_eq!(with, without, "{opts:?}, relu {relu}");
                gathered.get()
            }
            assert!(!both::<f64>(&inputs, &seed, opts, relu), "f64 has no direct path");
            let inputs32: Vec<Tensor<f32>> = inputs.iter().map(cast).collect();
            let gathered = both::<f32>(&inputs32, &cast(&seed), opts, relu);
            assert_eq!(gathered, direct && direct_here, "case {k}: moments gathered");
        }
    }
}

/// Moments describe one value: a batch norm of any other refuses them.
#[test]
fn batch_norm_refuses_moments_of_another_value() {
    let tape = Tape::<f32>::new();
    let x = tape
        .leaf(Tensor::from_vec(spread(2 * 8 * 36, 1).into_iter().map(|v| v as f32).collect(), [2, 8, 6, 6]).unwrap());
    let w = tape
        .leaf(Tensor::from_vec(spread(8 * 8 * 9, 2).into_iter().map(|v| v as f32).collect(), [8, 8, 3, 3]).unwrap());
    let (y, moments) = conv2d_with_moments(x, w, &Conv2dOptions::square(1, 1)).unwrap();
    let Some(moments) = moments else {
        assert_eq!(isa::active(), Isa::Generic, "the direct path gathers moments");
        return;
    };
    assert!(moments.describe(y) && !moments.describe(x));
    let other = y.add(y).unwrap();
    let opts = BatchNormTrainOptions::default().with_moments(moments);
    let err = batch_norm_train_opts(other, None, None, 1e-5, opts).unwrap_err().to_string();
    assert!(err.contains("batch_norm") && err.contains("moments") && err.contains("not the input"), "{err}");
}
