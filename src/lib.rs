//! # Wengert
//!
//! Tape-based reverse-mode automatic differentiation in Rust, built to train
//! very deep residual networks. This facade re-exports the member crates:
//!
//! - [`core`] (`wengert-core`): tensors, the tape, reverse and forward mode;
//! - [`ops`] (`wengert-ops`): differentiable CNN operations;
//! - [`nn`] (`wengert-nn`): layers, initialisation, optimisers, checkpoints;
//! - [`resnet`] (`wengert-resnet`): residual networks and their data;
//! - [`conformance`]: the runner that checks ops against reference cases;
//! - [`plot`]: PNG line charts for training curves and experiments;
//! - [`bench`](mod@bench): the benchmark workloads shared with the PyTorch peer script.

pub mod bench;
pub mod conformance;
pub mod plot;
pub use wengert_core as core;
pub use wengert_core::{Error, Result, Tape, Tensor, Var};
pub use wengert_nn as nn;
pub use wengert_ops as ops;
pub use wengert_resnet as resnet;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
