//! # Wengert
//!
//! Tape-based reverse-mode automatic differentiation in Rust, built to train
//! very deep residual networks. This facade re-exports the member crates:
//!
//! - [`core`] (`wengert-core`): tensors, the tape, reverse and forward mode.

pub use wengert_core as core;
pub use wengert_core::{Error, Result, Tape, Tensor, Var};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
