//! Image-classification data: the IDX reader, datasets (MNIST-style IDX
//! files, CIFAR-10 and CIFAR-100 in their binary format, safetensors array
//! files, or images in memory), and a loader that shuffles, batches, normalises and augments.

mod arrays;
mod cifar;
pub mod idx;
mod loader;
mod mnist;

pub use loader::{Augment, Batch, Loader};
pub use mnist::{Dataset, Split};
