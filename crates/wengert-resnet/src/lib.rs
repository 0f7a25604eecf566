//! # wengert-resnet
//!
//! Residual networks on Wengert:
//!
//! - [`block`]: residual blocks (basic, bottleneck, pre-activation, and the
//!   plain block without a shortcut), each recorded on the tape as one node;
//! - [`gradflow`]: the gradient reaching the first layer of deep plain and
//!   residual stacks at initialisation;
//! - [`residual`]: `x + F(x)` as one node around any module `F`;
//! - [`zoo`]: CIFAR ResNets and plain nets of depth 6n+2, ImageNet
//!   ResNet-18 to 152 in torchvision's layout;
//! - [`train`]: a trainer with SGD, warm-up and cosine decay, evaluation,
//!   checkpoints and resuming;
//! - [`data`]: the IDX reader (MNIST, Fashion-MNIST), datasets, and a loader
//!   with seeded shuffling, normalisation, augmentation and prefetching.

pub mod block;
pub mod data;
pub mod gradflow;
pub mod residual;
pub mod train;
pub mod zoo;
