//! # wengert-data
//!
//! Image-classification data for Wengert:
//!
//! - [`Dataset`]: labelled images of one size, loaded from a folder whose
//!   format [`Dataset::load`] recognises: MNIST-style IDX files, CIFAR-10
//!   and CIFAR-100 in their binary format, safetensors array files, or
//!   image folders of PNG and JPEG files, one folder per class;
//! - [`Loader`]: batches with seeded shuffling, per-channel normalisation,
//!   augmentation ([`Augment`]) and prefetching;
//! - [`DatasetName`]: the datasets known by name;
//! - [`idx`]: the IDX file reader.
//!
//! ```
//! use wengert_data::{Augment, Dataset, Loader};
//! // Eight 4×4 grey images, labels 0 to 3.
//! let data = Dataset::new((0..128).map(|p| p as u8).collect(), vec![0, 1, 2, 3, 0, 1, 2, 3], 4, 4)?;
//! let loader = Loader::new(data, 3, 7)?
//!     .with_normalise(0.5, 0.25)?
//!     .with_augment(Augment::default().with_pad(1).with_flip(true))?;
//! let batches: Vec<_> = loader.epoch::<f32>(0, 0).collect::<Result<_, _>>()?;
//! assert_eq!(batches.len(), 3); // 3 + 3 + 2 images
//! assert_eq!(batches[0].images.dims(), &[3, 1, 4, 4]);
//! # Ok::<(), wengert_core::Error>(())
//! ```

#![warn(missing_docs)]

mod arrays;
mod bounded;
mod cifar;
mod dataset;
mod folder;
pub mod idx;
mod image_file;
mod load;
mod loader;
mod named;

pub use dataset::{Dataset, Decode, LoadOptions, Pixels, Split, DECODE_BUDGET, STATS_SAMPLE};
pub use image_file::{decode as read_image, MAX_PIXELS};
pub use loader::{Augment, Batch, Loader};
pub use named::{DatasetName, FASHION_MNIST_DIR, IMAGENET_NORMALISATION};
