//! Image-classification data: the IDX reader, MNIST-style datasets, and a
//! loader that shuffles, batches, normalises and augments.

pub mod idx;
mod loader;
mod mnist;

pub use loader::{Augment, Batch, Loader};
pub use mnist::{Dataset, Split};
