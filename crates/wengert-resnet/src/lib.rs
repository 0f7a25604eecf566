//! # wengert-resnet
//!
//! Residual networks on Wengert. This first part holds the data side:
//!
//! - [`data`]: the IDX reader (MNIST, Fashion-MNIST), datasets, and a loader
//!   with seeded shuffling, normalisation, augmentation and prefetching.

pub mod data;
