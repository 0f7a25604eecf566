//! The core's operations, each recorded through the public [`Op`](crate::Op)
//! trait exactly as a user's op would be.
//!
//! - [`binary`]: `add`, `sub`, `mul`, `div` with NumPy broadcasting;
//! - [`scalar`]: the same with a constant scalar on one side;
//! - [`unary`]: `neg`, `exp`, `log`, `sqrt`, `powf`;
//! - [`reduce`]: `sum`, `mean`, `amax` over any axes;
//! - [`layout`]: `reshape`, `permute`, `broadcast_to`, `sum_to`;
//! - [`join`]: `concat`, `slice`;
//! - [`fused`]: a whole function recorded as one node, with optional
//!   recomputation in backward.
//!
//! Each backward rule is written with these same differentiable operations,
//! so derivatives of any order come for free.

pub mod binary;
pub mod fused;
pub mod join;
pub mod layout;
pub mod reduce;
pub mod scalar;
pub mod unary;
