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

/// Labelled images of one channel. Built by [`Dataset::new`] or
/// [`Dataset::load`], which check that every label has its image.
#[derive(Clone, Debug)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
}

impl Dataset {
    /// A dataset of `labels.len()` images of `rows × cols` pixels, stored
    /// row-major one after another in `images`.
    ///
    /// ```
    /// use wengert_resnet::data::Dataset;
    /// let d = Dataset::new(vec![0, 255, 255, 0], vec![7], 2, 2)?;
    /// assert_eq!((d.len(), d.image_shape()), (1, (1, 2, 2)));
    /// assert!(Dataset::new(vec![0; 3], vec![7], 2, 2).is_err()); // one pixel short
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn new(images: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize) -> Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(Error::argument(
                "Dataset::new",
                "rows/cols",
                format!("images of {rows}×{cols} pixels are empty"),
            ));
        }
        let expected = labels.len().checked_mul(rows).and_then(|n| n.checked_mul(cols));
        if expected != Some(images.len()) {
            return Err(Error::argument(
                "Dataset::new",
                "images",
                format!("{} pixel bytes for {} labels of {rows}×{cols} images", images.len(), labels.len()),
            ));
        }
        Ok(Dataset { images, labels, rows, cols })
    }

    /// The pixel bytes, `[n, rows, cols]` row-major.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// One label per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Image height.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width.
    pub fn cols(&self) -> usize {
        self.cols
    }

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
        let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let images = idx::read(&images_path)?;
        let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let labels = idx::read(&labels_path)?;
        if images.dims.len() != 3 || images.dims[1] == 0 || images.dims[2] == 0 {
            return Err(Error::Io {
                path: images_path.display().to_string(),
                detail: format!(
                    "images have dimensions {:?}; expected [n, rows, cols] with rows, cols ≥ 1",
                    images.dims
                ),
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
        Dataset::new(images.data, labels.data, images.dims[1], images.dims[2])
            .map_err(|e| Error::Io { path: images_path.display().to_string(), detail: e.to_string() })
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
