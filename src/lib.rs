//! # Wengert
//!
//! Tape-based reverse-mode automatic differentiation in Rust, built to train
//! very deep residual networks. New here? Start with the [`tutorial`].
//!
//! ```
//! use wengert::{Tape, Tensor};
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.leaf(Tensor::scalar(3.0));
//! let y = x.mul(x)?.add(x)?;                       // x² + x
//! assert_eq!(tape.backward(y)?.get(x).unwrap().item()?, 7.0);
//! # Ok::<(), wengert::Error>(())
//! ```
//!
//! This facade re-exports the member crates:
//!
//! - [`core`] (`wengert-core`): tensors, the tape, reverse and forward mode,
//!   the gradient check;
//! - [`ops`] (`wengert-ops`): differentiable CNN operations;
//! - [`data`] (`wengert-data`): datasets from IDX, CIFAR, array files and
//!   image folders, and the loader;
//! - [`nn`] (`wengert-nn`): layers, initialisation, optimisers, checkpoints;
//! - [`resnet`] (`wengert-resnet`): residual networks, the model zoo and the
//!   gradient-flow measurements;
//! - [`train`] (`wengert-train`): the trainer, whole runs, data-parallel
//!   training (over MPI with the feature `mpi`);
//!
//! and adds:
//!
//! - [`conformance`]: the runner that checks ops against reference cases
//!   (the testing API beside [`core::gradcheck`]: a crate that adds ops can
//!   pin them with cases of its own);
//! - [`tutorial`]: fourteen short chapters, runnable, from a first gradient
//!   to training deep ResNets.
//!
//! The `wengert` program (benchmarks, charts, the command line) is built
//! from the same package but is not part of the library.

#![warn(missing_docs)]

pub mod conformance;
pub mod tutorial;
pub use wengert_core as core;
pub use wengert_core::{Error, Result, Tape, Tensor, Var};
pub use wengert_data as data;
pub use wengert_nn as nn;
pub use wengert_ops as ops;
pub use wengert_resnet as resnet;
pub use wengert_train as train;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
