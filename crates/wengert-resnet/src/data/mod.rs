//! Image-classification data: the IDX reader, datasets (MNIST-style IDX
//! files, CIFAR-10 and CIFAR-100 in their binary format, safetensors array
//! files, image folders of PNG and JPEG files, or images in memory), and a loader that shuffles, batches, normalises and augments.

mod arrays;
mod cifar;
mod folder;
pub mod idx;
mod loader;
mod mnist;

pub use folder::decode as read_image;
pub use loader::{Augment, Batch, Loader};
pub use mnist::{Dataset, Split};
