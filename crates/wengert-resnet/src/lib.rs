//! # wengert-resnet
//!
//! Residual networks on Wengert:
//!
//! - [`block`]: residual blocks (basic, bottleneck, pre-activation, and the
//!   plain block without a shortcut), each recorded on the tape as one node;
//! - [`googlenet`]: GoogLeNet (Inception v1) in torchvision's layout;
//! - [`gradflow`]: the gradient reaching the first layer of deep plain and
//!   residual stacks at initialisation;
//! - [`onnx`]: a zoo ResNet's evaluation-mode graph as an ONNX file;
//! - [`registry`]: every model known by name, typed;
//! - [`residual`]: `S(x) + F(x)` as one node around any branch `F` and
//!   shortcut `S` (identity, zero padding, projection, or none);
//! - [`zoo`]: CIFAR ResNets and plain nets of depth 6n+2, ImageNet
//!   ResNet-18 to 152 in torchvision's layout;
//! - [`sequence`]: recurrent classifiers that read images row by row;
//! - [`summary`]: what a model's summary reports (shapes and multiply-adds).
//!
//! Data (datasets and the loader) is in `wengert-data`; training (the
//! trainer, whole runs, data-parallel training) is in `wengert-train`.
//!
//! ```
//! use wengert_core::{Tape, Tensor};
//! use wengert_nn::{Module, Step};
//! use wengert_resnet::zoo::ResNet;
//!
//! // ResNet-20 for one-channel 28×28 images and 10 classes.
//! let mut net = ResNet::<f32>::by_name("resnet20", 1, 10, &mut wengert_core::rng(0))?;
//! assert_eq!(net.num_parameters(), 269_434); // 0.27M, as in He et al. 2016 (with 3 input channels: 269,722)
//! let tape = Tape::new();
//! let mut step = Step::train(&tape, 0);
//! let x = tape.constant(Tensor::normal([4, 1, 28, 28], 0.0, 1.0, &mut wengert_core::rng(1))?);
//! let logits = net.forward(&mut step, x)?;
//! let grads = step.backward(wengert_ops::cross_entropy(logits, &[0, 1, 2, 3])?)?;
//! assert_eq!(grads.len(), 1 + 2 + 9 * 6 + 2); // stem conv + norm, 9 blocks, fc
//! # Ok::<(), wengert_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod block;
pub mod googlenet;
pub mod gradflow;
pub mod onnx;
pub mod registry;
pub mod residual;
pub mod sequence;
pub mod summary;
pub mod zoo;
