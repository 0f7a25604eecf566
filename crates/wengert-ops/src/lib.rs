//! # wengert-ops
//!
//! The differentiable operations a deep CNN needs, each recorded through the
//! core's public [`Op`](wengert_core::Op) trait — the same way a user's crate
//! adds its own — for `f32` and `f64`:
//!
//! - [`matmul`](mod@matmul): `matmul` (batched, broadcast), `linear`;
//! - [`conv`]: `conv2d`, `conv_transpose2d` (stride, padding, dilation, groups);
//! - [`pool`]: `max_pool2d`, `avg_pool2d`, `global_avg_pool2d`;
//! - [`norm`]: `batch_norm_train`, `sync_batch_norm_train`, `batch_norm_eval`,
//!   `layer_norm`, and batch norm fused with the ReLU after it;
//! - [`activation`]: `relu`, `leaky_relu`, `sigmoid`, `tanh`, `gelu`,
//!   `gelu_tanh`, `softplus`, `silu`, `erf`, and `add_relu` (a residual
//!   block's sum and ReLU as one op);
//! - [`softmax`](mod@softmax): `softmax`, `log_softmax`;
//! - [`loss`]: `cross_entropy`, `mse_loss`.
//!
//! Every backward rule is written with differentiable ops, so second
//! derivatives work throughout (the input gradient of `conv2d` is a
//! `conv_transpose2d` that can itself be differentiated). Every op validates
//! its shapes and attributes and returns an error naming the op, the
//! argument and the shapes.
//!
//! ```
//! use wengert_core::{Tape, Tensor};
//! use wengert_ops::{conv2d, cross_entropy, global_avg_pool2d, relu, Conv2dOptions};
//!
//! let tape = Tape::<f32>::new();
//! let x = tape.constant(Tensor::ones([2, 3, 8, 8]));                // NCHW
//! let w = tape.leaf(Tensor::full([10, 3, 3, 3], 0.01));             // [out, in, kh, kw]
//! let h = relu(conv2d(x, w, None, &Conv2dOptions::square(1, 1))?)?; // [2, 10, 8, 8]
//! let logits = global_avg_pool2d(h)?;                               // [2, 10]
//! let loss = cross_entropy(logits, &[3, 7])?;
//! let g = tape.backward(loss)?;
//! assert_eq!(g.get(w).unwrap().dims(), &[10, 3, 3, 3]);
//! # Ok::<(), wengert_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod activation;
pub mod conv;
mod gemm;
pub use wengert_core::isa;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
mod scratch;
pub mod softmax;
mod team;

pub use activation::{add_relu, erf, gelu, gelu_tanh, leaky_relu, relu, sigmoid, silu, softplus, tanh};
pub use conv::{conv2d, conv2d_with_moments, conv_transpose2d, Conv2dOptions, ConvTranspose2dOptions};
pub use loss::{cross_entropy, mse_loss};
pub use matmul::{linear, matmul};
pub use norm::{
    batch_norm_eval, batch_norm_relu_eval, batch_norm_relu_train, batch_norm_train, batch_norm_train_opts, layer_norm,
    sync_batch_norm_relu_train, sync_batch_norm_train, BatchNormTrainOptions, BatchStats, RowMoments,
};
pub use pool::{avg_pool2d, global_avg_pool2d, max_pool2d, Pool2d};
pub use softmax::{log_softmax, softmax};
