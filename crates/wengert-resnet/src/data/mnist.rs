//! MNIST-style datasets: 28×28 grey images with labels 0–9, as four IDX
//! files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-…`),
//! gzipped or not.

use super::idx;
use std::path::{Path, PathBuf};
use wengert_core::{Error, Result};

/// Training or test half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

/// Labelled images of one channel.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Pixel bytes, `[n, rows, cols]` row-major.
    pub images: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Dataset {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One image's `(channels, height, width)`: `(1, rows, cols)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (1, self.rows, self.cols)
    }

    /// The first `n` images (all if fewer), for quick runs and tests.
    pub fn take(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * self.rows * self.cols);
        self.labels.truncate(n);
        self
    }

    /// Loads one split from a folder of IDX files (`.gz` or plain).
    pub fn load(dir: &Path, split: Split) -> Result<Self> {
        let prefix = if split == Split::Train { "train" } else { "t10k" };
        let images = idx::read(&find(dir, &format!("{prefix}-images-idx3-ubyte"))?)?;
        let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let labels = idx::read(&labels_path)?;
        if images.dims.len() != 3 {
            return Err(Error::Io {
                path: dir.display().to_string(),
                detail: format!("images have dimensions {:?}; expected [n, rows, cols]", images.dims),
            });
        }
        if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
            return Err(Error::Io {
                path: labels_path.display().to_string(),
                detail: format!("{:?} labels for {} images", labels.dims, images.dims[0]),
            });
        }
        if let Some((i, l)) = labels.data.iter().enumerate().find(|(_, &l)| l > 9) {
            return Err(Error::Io {
                path: labels_path.display().to_string(),
                detail: format!("label {l} at position {i} is not a digit class 0-9"),
            });
        }
        Ok(Dataset { rows: images.dims[1], cols: images.dims[2], images: images.data, labels: labels.data })
    }
}

/// `dir/name.gz` or `dir/name`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(format!("{name}.gz")), dir.join(name)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::Io { path: dir.display().to_string(), detail: format!("no {name} or {name}.gz in this folder") })
}
