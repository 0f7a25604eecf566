//! Derivatives of functions, in the style of JAX: `grad`, `vjp`, `jvp`,
//! `jacobian` and `hessian_vector_product`.
//!
//! Each takes a function of variables, `f(tape, xs) -> y`, and tensors at
//! which to evaluate it; each builds a fresh tape, so these are the simplest
//! way to differentiate a formula. Forward mode (`jvp`) uses the double-VJP
//! construction: `u ↦ Jᵀu` is linear in `u`, so its own VJP with cotangent
//! `v` is `Jv`. That needs only reverse-mode rules, and works for every op
//! whose backward rule is differentiable — which is all of them.

use crate::{BackwardOptions, Error, Float, Result, Tape, Tensor, Var};

/// A function of variables on a tape, as the functional API takes it.
pub trait Function<T: Float>: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Result<Var<'t, T>> {}
impl<T: Float, F> Function<T> for F where F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Result<Var<'t, T>> {}

/// The value of a scalar-valued `f` at `inputs` and its gradient with respect
/// to each input.
///
/// ```
/// use wengert_core::{functional::value_and_grad, Tensor};
/// let (v, g) = value_and_grad(|_, x| x[0].powf(3.0)?.sum_all(), &[Tensor::<f64>::scalar(2.0)])?;
/// assert_eq!((v.item()?, g[0].item()?), (8.0, 12.0));
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn value_and_grad<T: Float>(f: impl Function<T>, inputs: &[Tensor<T>]) -> Result<(Tensor<T>, Vec<Tensor<T>>)> {
    let tape = Tape::new();
    let xs: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let y = f(&tape, &xs)?;
    let value = y.value()?;
    let grads = tape.backward_with(y, BackwardOptions { seed: None, wrt: Some(&xs), ..Default::default() })?;
    Ok((value, grads.into_tensors()))
}

/// The gradient of a scalar-valued `f` with respect to each input.
pub fn grad<T: Float>(f: impl Function<T>, inputs: &[Tensor<T>]) -> Result<Vec<Tensor<T>>> {
    Ok(value_and_grad(f, inputs)?.1)
}

/// The value of `f` and the vector-Jacobian product `cotangentᵀ·J` for each input.
pub fn vjp<T: Float>(
    f: impl Function<T>,
    inputs: &[Tensor<T>],
    cotangent: &Tensor<T>,
) -> Result<(Tensor<T>, Vec<Tensor<T>>)> {
    let tape = Tape::new();
    let xs: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let y = f(&tape, &xs)?;
    let value = y.value()?;
    let grads =
        tape.backward_with(y, BackwardOptions { seed: Some(cotangent.clone()), wrt: Some(&xs), ..Default::default() })?;
    Ok((value, grads.into_tensors()))
}

/// The value of `f` and the Jacobian-vector product `Σᵢ Jᵢ·tangentᵢ`
/// (forward mode), by the double-VJP construction.
///
/// ```
/// use wengert_core::{functional::jvp, Tensor};
/// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?;
/// let v = Tensor::from_vec(vec![1.0, 0.0], [2])?;
/// // f(x) = x², J = diag(2x): J·e₀ = [2, 0]
/// let (_, t) = jvp(|_, x| x[0].mul(x[0]), &[x], &[v])?;
/// assert_eq!(t.data(), &[2.0, 0.0]);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn jvp<T: Float>(
    f: impl Function<T>,
    inputs: &[Tensor<T>],
    tangents: &[Tensor<T>],
) -> Result<(Tensor<T>, Tensor<T>)> {
    if tangents.len() != inputs.len() {
        return Err(Error::argument(
            "jvp",
            "tangents",
            format!("{} tangents for {} inputs", tangents.len(), inputs.len()),
        ));
    }
    for (i, (x, v)) in inputs.iter().zip(tangents).enumerate() {
        if x.shape() != v.shape() {
            return Err(Error::shape(
                "jvp",
                format!("tangent {i} has shape {}, input {i} has shape {}", v.shape(), x.shape()),
            ));
        }
    }
    let tape = Tape::new();
    let xs: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let y = f(&tape, &xs)?;
    let u = tape.leaf(Tensor::zeros(y.shape()));
    let jt_u = tape.grad(y, &xs, Some(u))?;
    let mut s: Option<Var<'_, T>> = None;
    for (g, v) in jt_u.into_iter().zip(tangents) {
        let term = g.mul(tape.constant(v.clone()))?.sum_all()?;
        s = Some(match s {
            None => term,
            Some(acc) => acc.add(term)?,
        });
    }
    let value = y.value()?;
    let Some(s) = s else {
        return Ok((value.clone(), Tensor::zeros(value.shape().clone())));
    };
    let g = tape.backward_with(s, BackwardOptions { seed: None, wrt: Some(&[u]), ..Default::default() })?;
    Ok((value, g.into_tensors().remove(0)))
}

/// The dense Jacobian of `f` at `input`, with shape `output.shape ++ input.shape`.
///
/// Built row by row with VJPs when the output has fewer elements than the
/// input, else column by column with JVPs (over the double-VJP graph, which
/// is recorded once and swept once per column).
pub fn jacobian<T: Float>(f: impl Function<T>, input: &Tensor<T>) -> Result<Tensor<T>> {
    let tape = Tape::new();
    let x = tape.leaf(input.clone());
    let y = f(&tape, &[x])?;
    let (m, n) = (y.numel(), input.numel());
    let mut dims = y.shape().dims().to_vec();
    dims.extend_from_slice(input.dims());
    let mut jac = vec![T::zero(); m * n];
    let one_hot =
        |shape: &crate::Shape, k: usize| Tensor::from_fn(shape.clone(), |i| if i == k { T::one() } else { T::zero() });
    if m <= n {
        for i in 0..m {
            let g = tape.backward_with(
                y,
                BackwardOptions {
                    seed: Some(one_hot(&y.shape(), i)),
                    wrt: Some(&[x]),
                    retain_graph: true,
                    ..Default::default()
                },
            )?;
            jac[i * n..(i + 1) * n].copy_from_slice(g.into_tensors()[0].data());
        }
    } else {
        let u = tape.leaf(Tensor::zeros(y.shape()));
        let jt_u = tape.grad(y, &[x], Some(u))?[0];
        for j in 0..n {
            let seed = one_hot(&x.shape(), j);
            let g = tape.backward_with(
                jt_u,
                BackwardOptions { seed: Some(seed), wrt: Some(&[u]), retain_graph: true, ..Default::default() },
            )?;
            for (i, &v) in g.into_tensors()[0].data().iter().enumerate() {
                jac[i * n + j] = v;
            }
        }
    }
    Tensor::from_vec(jac, dims)
}

/// The Hessian of a scalar-valued `f` applied to `vectors` (one per input):
/// `H·v`, by differentiating `∇f · v` once more.
pub fn hessian_vector_product<T: Float>(
    f: impl Function<T>,
    inputs: &[Tensor<T>],
    vectors: &[Tensor<T>],
) -> Result<Vec<Tensor<T>>> {
    if vectors.len() != inputs.len() {
        return Err(Error::argument(
            "hessian_vector_product",
            "vectors",
            format!("{} vectors for {} inputs", vectors.len(), inputs.len()),
        ));
    }
    let tape = Tape::new();
    let xs: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let y = f(&tape, &xs)?;
    let grads = tape.grad(y, &xs, None)?;
    let mut s: Option<Var<'_, T>> = None;
    for (i, (g, v)) in grads.into_iter().zip(vectors).enumerate() {
        if g.shape() != *v.shape() {
            return Err(Error::shape(
                "hessian_vector_product",
                format!("vector {i} has shape {}, input {i} has shape {}", v.shape(), g.shape()),
            ));
        }
        let term = g.mul(tape.constant(v.clone()))?.sum_all()?;
        s = Some(match s {
            None => term,
            Some(acc) => acc.add(term)?,
        });
    }
    let Some(s) = s else { return Ok(Vec::new()) };
    let h = tape.backward_with(s, BackwardOptions { seed: None, wrt: Some(&xs), ..Default::default() })?;
    Ok(h.into_tensors())
}
