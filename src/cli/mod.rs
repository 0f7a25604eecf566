//! The subcommands of the `wengert` program, one module each.

pub mod demo;
