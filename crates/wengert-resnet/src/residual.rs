//! A residual block around any module: `y = x + F(x)` as one tape node.
//!
//! [`Residual`] wraps a user's [`Module`] `F` (a [`Sequential`] of dense
//! layers, a custom convolutional branch, anything) and records `x + F(x)`
//! with [`Var::call`]: one entry on the tape whose backward is
//! `δ_in = δ_out·(∂F/∂x + I)` plus the gradients of `F`'s parameters. The
//! results equal those of the same computation recorded op by op.
//!
//! ```
//! use wengert_core::{Tape, Tensor};
//! use wengert_nn::layer::{Activation, Linear, Sequential};
//! use wengert_nn::{Module, Step};
//! use wengert_resnet::residual::Residual;
//!
//! let mut rng = wengert_core::rng(0);
//! let f = Sequential::new()
//!     .push(Linear::<f64>::new(4, 4, true, &mut rng)?)
//!     .push(Activation::Tanh)
//!     .push(Linear::new(4, 4, true, &mut rng)?);
//! let mut block = Residual::new(f);
//!
//! let tape = Tape::new();
//! let mut step = Step::train(&tape, 0);
//! let x = tape.leaf(Tensor::ones([2, 4]));
//! let y = block.forward(&mut step, x)?;
//! assert_eq!(tape.len(), 1 + 4 + 1); // x, F's four parameters, and the block: one node
//! let grads = step.backward(y.sum_all()?)?;
//! assert_eq!(grads.len(), 4);
//! # Ok::<(), wengert_core::Error>(())
//! ```
//!
//! [`Sequential`]: wengert_nn::layer::Sequential

use crate::block::function;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use wengert_core::ops::fused::Function;
use wengert_core::{Error, Float, Result, Tensor, Var};
use wengert_nn::{Module, StateMut, StateRef, Step};

/// `y = x + F(x)` for a module `F` whose output has the shape of its input;
/// see the [module documentation](self).
///
/// The state names are `F`'s own, unchanged: a `Residual` around a
/// [`Sequential`](wengert_nn::layer::Sequential) saves `0.weight`, `0.bias`, ….
pub struct Residual<M> {
    f: Arc<Mutex<M>>,
    /// Keep only the block's input and run `F` again during backward.
    pub recompute: bool,
}

impl<M> Residual<M> {
    /// The block `x + f(x)`.
    pub fn new(f: M) -> Self {
        Residual { f: Arc::new(Mutex::new(f)), recompute: false }
    }

    /// The branch `F`.
    pub fn branch(&self) -> MutexGuard<'_, M> {
        lock(&self.f)
    }

    /// The branch `F`, mutably (to re-initialise or freeze its parameters).
    pub fn branch_mut(&mut self) -> MutexGuard<'_, M> {
        lock(&self.f)
    }
}

/// The branch, shared with the node's function (a `Mutex` rather than a
/// `RefCell` so that the function, and a tape holding it, are `Send`). A
/// panic inside `F` poisons nothing that matters here: the guard is
/// taken over.
fn lock<M>(m: &Mutex<M>) -> MutexGuard<'_, M> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every buffer and counter of `m`, to put back after a repeated run.
fn snapshot<T: Float, M: Module<T>>(m: &M) -> (Vec<Tensor<T>>, Vec<i64>) {
    let (mut buffers, mut counts) = (Vec::new(), Vec::new());
    m.visit("", &mut |_, s| match s {
        StateRef::Buffer(b) => buffers.push(b.clone()),
        StateRef::Count(c) => counts.push(*c),
        StateRef::Param(_) => {}
    });
    (buffers, counts)
}

fn restore<T: Float, M: Module<T>>(m: &mut M, (buffers, counts): (Vec<Tensor<T>>, Vec<i64>)) {
    let (mut buffers, mut counts) = (buffers.into_iter(), counts.into_iter());
    m.visit_mut("", &mut |_, s| match s {
        StateMut::Buffer(b) => {
            if let Some(v) = buffers.next() {
                *b = v;
            }
        }
        StateMut::Count(c) => {
            if let Some(v) = counts.next() {
                *c = v;
            }
        }
        StateMut::Param(_) => {}
    });
}

impl<T: Float, M: Module<T> + Send + 'static> Module<T> for Residual<M> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        // The node's inputs: x, then every parameter of F in visiting order.
        let mut inputs = vec![x];
        lock(&self.f).visit("", &mut |_, s| {
            if let StateRef::Param(p) = s {
                inputs.push(step.param(p));
            }
        });
        let training = step.is_training();
        // Dropout inside F draws the same masks every time F runs.
        let seed = rand::Rng::random::<u64>(step.rng());
        let runs = Arc::new(AtomicUsize::new(0));
        let module = self.f.clone();
        let f: Function<T> = Arc::new(function(move |tape, v| {
            let mut m = lock(&module);
            // Running statistics move once per step, however often F runs
            // (recomputation, a recorded backward pass).
            let saved = (training && runs.fetch_add(1, Ordering::Relaxed) > 0).then(|| snapshot(&*m));
            let mut inner = if training { Step::train(tape, seed) } else { Step::eval(tape) };
            let mut vars = v[1..].iter();
            m.visit("", &mut |_, s| {
                if let StateRef::Param(p) = s {
                    if let Some(var) = vars.next() {
                        inner.bind(p, *var);
                    }
                }
            });
            let fx = m.forward(&mut inner, v[0]);
            if let Some(saved) = saved {
                restore(&mut *m, saved);
            }
            let fx = fx?;
            if fx.shape() != v[0].shape() {
                return Err(Error::shape(
                    "Residual",
                    format!(
                        "the branch maps {:?} to {:?}; x + F(x) needs equal shapes",
                        v[0].shape().dims(),
                        fx.shape().dims()
                    ),
                ));
            }
            v[0].add(fx)
        }));
        Var::call("residual", f, &inputs, self.recompute)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        lock(&self.f).visit(prefix, f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        lock(&self.f).visit_mut(prefix, f);
    }
}
