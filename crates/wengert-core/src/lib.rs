//! # wengert-core
//!
//! The foundation of Wengert: tensors, the tape (a Wengert list), and reverse-
//! and forward-mode differentiation of any order.
//!
//! - [`Tensor`]: a shared, row-major `f32`/`f64` array.
//! - [`Tape`] and [`Var`]: operations on variables are recorded on an explicit
//!   tape; [`Tape::backward`] returns gradients as plain tensors.
//! - [`Op`]: the one trait through which every operation is recorded — the
//!   core's, the ops crate's, and yours.
//! - [`functional`]: `grad`, `vjp`, `jvp`, `jacobian`, `hessian_vector_product`.
//! - [`collective`]: sums across the processes that train one model
//!   (data-parallel training).
//! - [`gradcheck`]: compare an op's analytic gradient with central differences.
//! - [`memory`]: the memory this process may still use, checked before
//!   memory sized by input is spent.
//! - `testing` (feature `testing`): proptest strategies and gradient assertions.
//!
//! ```
//! use wengert_core::{Tape, Tensor};
//! let tape = Tape::<f64>::new();
//! let w = tape.leaf(Tensor::from_vec(vec![0.5, -1.0], [2])?);
//! let x = tape.constant(Tensor::from_vec(vec![2.0, 3.0], [2])?);
//! let loss = w.mul(x)?.sum_all()?.powf(2.0)?; // (w·x)²
//! let grads = tape.backward(loss)?;
//! // d/dw (w·x)² = 2 (w·x) x = 2 · (-2) · [2, 3]
//! assert_eq!(grads.get(w).unwrap().data(), &[-8.0, -12.0]);
//! # Ok::<(), wengert_core::Error>(())
//! ```

#![warn(missing_docs)]
// `Var::add`, `Var::mul`, ... are the `Result`-returning twins of the
// operators `+`, `*`, ... (which panic on error); sharing the names keeps
// formulas readable in both forms, so the lint that asks for other names is off.
#![allow(clippy::should_implement_trait)]

mod anomaly;
mod backward;
pub mod buffer;
pub mod collective;
mod dtype;
mod error;
pub mod functional;
pub mod gradcheck;
pub mod isa;
pub mod kernel;
pub mod math;
pub mod memory;
mod op;
pub mod ops;
mod overload;
pub mod profile;
mod shape;
mod tape;
mod tensor;
#[cfg(feature = "testing")]
pub mod testing;

pub use ::smallvec::{self, smallvec};
pub use backward::{BackwardOptions, GradReady, Gradients};
pub use dtype::{DType, Float};
pub use error::{Error, Result};
pub use op::{Arity, InputGrads, Op, TensorGrads};
pub use shape::Shape;
pub use tape::{Tape, Var};
pub use tensor::Tensor;

// The thread-safety the documentation promises, checked at compile time: a
// tape can move to another thread (it is not `Sync`: see `Tape`), and the
// values that come out of it can be shared.
const _: () = {
    const fn send<X: Send>() {}
    const fn send_sync<X: Send + Sync>() {}
    send::<Tape<f32>>();
    send::<Tape<f64>>();
    send_sync::<Tensor<f32>>();
    send_sync::<Gradients<f64>>();
    send_sync::<Error>();
};

/// A seeded random generator (ChaCha8), reproducible across platforms and
/// releases, for [`Tensor::normal`], [`Tensor::uniform`] and initialisation.
pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// The random generator type returned by [`rng`].
pub type Rng = rand_chacha::ChaCha8Rng;
