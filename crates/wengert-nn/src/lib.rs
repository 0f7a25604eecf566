//! # wengert-nn
//!
//! What training any network with Wengert needs:
//!
//! - [`module`]: [`Param`]s that live outside the tape, the [`Module`] trait
//!   with PyTorch-style dotted state names, and the [`Step`] that binds
//!   parameters to a tape for one step and maps gradients back;
//! - [`layer`]: `Linear`, `Conv2d`, `ConvTranspose2d`, `BatchNorm2d`,
//!   `LayerNorm`, activations, pooling, `Flatten`, `Dropout`, `Sequential`;
//! - [`init`]: Kaiming/He, Xavier/Glorot and PyTorch's defaults, seeded;
//! - [`optim`]: SGD (momentum, Nesterov, weight decay), Adam, AdamW,
//!   learning-rate schedules and gradient clipping;
//! - [`checkpoint`]: safetensors checkpoints, written atomically and checked
//!   on load.
//!
//! A training step:
//!
//! ```
//! use wengert_core::{Tape, Tensor};
//! use wengert_nn::layer::{Activation, Linear, Sequential};
//! use wengert_nn::optim::{Optimizer, Sgd};
//! use wengert_nn::{Module, Step};
//!
//! let mut rng = wengert_core::rng(0);
//! let mut model = Sequential::<f32>::new()
//!     .push(Linear::new(2, 16, true, &mut rng)?)
//!     .push(Activation::Tanh)
//!     .push(Linear::new(16, 1, true, &mut rng)?);
//! let mut opt = Sgd::new(0.9, 0.0);
//! let x = Tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], [4, 2])?;
//! let y = Tensor::from_vec(vec![0., 1., 1., 0.], [4, 1])?; // XOR
//! let mut tape = Tape::new();
//! let mut losses = Vec::new();
//! for i in 0..300 {
//!     let (loss, grads) = {
//!         let mut step = Step::train(&tape, i);
//!         let out = model.forward(&mut step, tape.constant(x.clone()))?;
//!         let loss = wengert_ops::mse_loss(out, tape.constant(y.clone()))?;
//!         (loss.value()?.item()?, step.backward(loss)?)
//!     };
//!     opt.step(&mut model, &grads, 0.1)?;
//!     tape.clear();
//!     losses.push(loss);
//! }
//! assert!(losses[299] < 0.01 && losses[299] < losses[0] / 10.0, "{:?}", &losses[290..]);
//! # Ok::<(), wengert_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod init;
pub mod layer;
pub mod module;
pub mod optim;

pub use module::{Module, Named, Param, ParamGrads, ParamId, ParamReady, StateMut, StateRef, Step, Visit};
