//! The subcommands of the `wengert` program, one module each.

pub mod bench;
pub mod conformance;
pub mod degradation;
pub mod demo;
pub mod gradflow;
pub mod summary;
pub mod train;
