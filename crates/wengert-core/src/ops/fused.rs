//! A whole function recorded as one entry of the tape.
//!
//! [`Var::call`] runs `f(inputs)` on a private inner tape and records one
//! entry on the outer tape. Its vector-Jacobian product is the inner tape's
//! backward pass, so the node behaves exactly like the function's ops
//! recorded one by one — but it is one node: a residual block `x + F(x)`
//! recorded this way has the backward `δ ↦ δ + J_Fᵀδ` (the inner sweep adds
//! the identity path to F's), and its intermediate results are owned, and
//! freed, as a unit.
//!
//! With `recompute`, the node keeps nothing but its inputs and runs `f`
//! again during backward (gradient checkpointing, Chen et al. 2016):
//! activation memory drops to the blocks' inputs, for one extra forward
//! pass. Results are identical either way.
//!
//! Without it, the node keeps of its intermediate results only those that
//! some op's backward reads ([`Op::reads_input`]), and of those not the
//! ones a [recomputable](Op::recomputable) op can form again from what
//! stays: a residual block keeps its convolutions' outputs and its last
//! sum, and forms its normalised activations again in backward.
//!
//! When the backward pass is itself recorded (`Tape::grad`), the vjp re-runs
//! `f` on the outer tape and differentiates that recording, so derivatives
//! of every order work through the node as well.

use crate::{BackwardOptions, Error, Float, InputGrads, Op, Result, Tape, Tensor, TensorGrads, Var};
use std::sync::Arc;

/// A function of variables that can run on any tape. `Send + Sync`, so
/// that a tape holding the node can move to another thread.
pub type Function<T> = Arc<dyn for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Result<Var<'t, T>> + Send + Sync>;

/// Gives a closure the signature a [`Function`] needs: one that works on
/// every tape lifetime. Closures written inline in `Arc::new(...)` get it
/// from the expected type; one built elsewhere (capturing a module, say)
/// needs this hint.
///
/// ```
/// use std::sync::Arc;
/// use wengert_core::ops::fused::{function, Function};
/// use wengert_core::{Tape, Tensor, Var};
///
/// let scale = 3.0;
/// let f = function(move |_: &Tape<f64>, v: &[Var<'_, f64>]| v[0].mul_scalar(scale));
/// let f: Function<f64> = Arc::new(f);
/// let tape = Tape::new();
/// let y = Var::call("scale", f, &[tape.leaf(Tensor::scalar(2.0))], false)?;
/// assert_eq!(y.value()?.item()?, 6.0);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn function<T: Float, F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    f
}

/// The inner recording of one forward run: the tape, and the positions of
/// the inputs and the output on it.
struct Inner<T: Float> {
    tape: Tape<T>,
    inputs: Vec<u32>,
    output: u32,
}

impl<T: Float> Inner<T> {
    fn record(f: &Function<T>, values: &[Tensor<T>], needs: Option<&[bool]>) -> Result<Inner<T>> {
        let tape = Tape::new();
        let (inputs, output) = {
            let vars: Vec<Var<'_, T>> = values
                .iter()
                .enumerate()
                .map(|(i, v)| if needs.is_none_or(|n| n[i]) { tape.leaf(v.clone()) } else { tape.constant(v.clone()) })
                .collect();
            let out = f(&tape, &vars)?;
            (vars.iter().map(|v| v.id).collect(), out.id)
        };
        Ok(Inner { tape, inputs, output })
    }
}

/// The op behind [`Var::call`].
struct Fused<T: Float> {
    name: &'static str,
    f: Function<T>,
    recompute: bool,
    inner: Option<Inner<T>>,
}

impl<T: Float> Op<T> for Fused<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let values: Vec<Tensor<T>> = inputs.iter().map(|t| (*t).clone()).collect();
        let inner = Inner::record(&self.f, &values, None)?;
        let out = Var { tape: &inner.tape, id: inner.output }.value()?;
        if !self.recompute {
            // Only this node's tensor-mode backward reads the inner tape.
            let keep: Vec<u32> = inner.inputs.iter().copied().chain([inner.output]).collect();
            inner.tape.release_unread(&keep);
            self.inner = Some(inner);
        }
        Ok(out)
    }

    /// Differentiates a recording of `f` on the outer tape, so the result
    /// can be differentiated again.
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        vjp_of_recording((self.f)(g.tape(), inputs)?, inputs, g, needs)
    }

    /// The inner tape's own backward pass (recorded again first when the
    /// node recomputes).
    fn tensor_backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        grad: &Tensor<T>,
        needs: &[bool],
    ) -> Option<Result<TensorGrads<T>>> {
        Some(self.inner_backward(inputs, grad, needs))
    }
}

impl<T: Float> Fused<T> {
    fn inner_backward(&self, inputs: &[Var<'_, T>], grad: &Tensor<T>, needs: &[bool]) -> Result<TensorGrads<T>> {
        let fresh;
        let inner = match &self.inner {
            Some(inner) => inner,
            None => {
                let values = inputs.iter().map(|v| v.value()).collect::<Result<Vec<_>>>()?;
                fresh = Inner::record(&self.f, &values, Some(needs))?;
                &fresh
            }
        };
        let wrt: Vec<Var<'_, T>> = inner.inputs.iter().map(|&id| Var { tape: &inner.tape, id }).collect();
        let out = Var { tape: &inner.tape, id: inner.output };
        // Keep the inner graph: a retained outer graph may run backward
        // through this node again; it is freed with the node.
        let opts =
            BackwardOptions { seed: Some(grad.clone()), wrt: Some(&wrt), retain_graph: true, ..Default::default() };
        let grads = inner.tape.backward_with(out, opts)?;
        needs
            .iter()
            .zip(&wrt)
            .map(|(&need, w)| {
                if !need {
                    return Ok(None);
                }
                let t = grads.get(*w).cloned();
                t.map(Some).ok_or_else(|| Error::Vjp { op: self.name.into(), detail: "missing inner gradient".into() })
            })
            .collect()
    }
}

/// The vector-Jacobian product of an op, computed by differentiating `y`, a
/// recording of the same function on the outer tape built from `inputs`.
///
/// This is how an op with a fused backward kernel stays differentiable to
/// every order: its [`Op::tensor_backward`] is the kernel, and its
/// [`Op::vjp`] records the op's function as ordinary ops and returns this.
pub fn vjp_of_recording<'t, T: Float>(
    y: Var<'t, T>,
    inputs: &[Var<'t, T>],
    g: Var<'t, T>,
    needs: &[bool],
) -> Result<InputGrads<'t, T>> {
    let wanted: Vec<Var<'t, T>> = inputs.iter().zip(needs).filter(|(_, &n)| n).map(|(v, _)| *v).collect();
    let mut grads = g.tape().grad(y, &wanted, Some(g))?.into_iter();
    Ok(needs.iter().map(|&n| if n { grads.next() } else { None }).collect())
}

impl<'t, T: Float> Var<'t, T> {
    /// Records `f(inputs)` as a single entry named `name` on `inputs[0]`'s
    /// tape; see the [module documentation](crate::ops::fused). With
    /// `recompute`, only the inputs are kept and `f` runs again in backward.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use wengert_core::{ops::fused::Function, Tape, Tensor, Var};
    /// // A residual unit x + w·x as one node.
    /// let unit: Function<f64> = Arc::new(|_, v| v[0].add(v[1].mul(v[0])?));
    /// let tape = Tape::new();
    /// let x = tape.leaf(Tensor::scalar(2.0));
    /// let w = tape.leaf(Tensor::scalar(0.1));
    /// let y = Var::call("residual", unit, &[x, w], false)?;
    /// assert_eq!(tape.len(), 3); // x, w and one node
    /// let g = tape.backward(y)?;
    /// assert_eq!(g.get(x).unwrap().item()?, 1.1); // δ(1 + w): the identity plus ∂F/∂x
    /// assert_eq!(g.get(w).unwrap().item()?, 2.0);
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn call(name: &'static str, f: Function<T>, inputs: &[Var<'t, T>], recompute: bool) -> Result<Var<'t, T>> {
        let Some(first) = inputs.first() else {
            return Err(Error::argument(name, "inputs", "a fused call needs at least one input"));
        };
        first.tape.apply(Fused { name, f, recompute, inner: None }, inputs)
    }
}
