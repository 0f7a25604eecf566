//! The subcommands of the `wengert` program, one module each.

pub mod bench;
pub mod conformance;
pub mod demo;
pub mod summary;
pub mod train;
