//! Datasets of labelled 8-bit images, and loading them from a folder in
//! one of the formats [`Dataset::load`] recognises: MNIST-style IDX files
//! (28×28 grey images, labels 0–9: `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-…`, gzipped or not), CIFAR-10 and
//! CIFAR-100 in their binary format, safetensors array files, and image
//! folders (PNG and JPEG files in one folder per class).

use super::{arrays, cifar, folder, idx};
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

/// Labelled images of 8-bit pixels, all of one size. Built by
/// [`Dataset::new`] (one channel), [`Dataset::with_channels`] or
/// [`Dataset::load`], which check that every label has its image.
#[derive(Clone, Debug)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    channels: usize,
    rows: usize,
    cols: usize,
    /// Each class's name, where the data names them.
    names: Vec<String>,
}

impl Dataset {
    /// A dataset of `labels.len()` images of `rows × cols` pixels, stored
    /// row-major one after another in `images`.
    ///
    /// ```
    /// use wengert_data::Dataset;
    /// let d = Dataset::new(vec![0, 255, 255, 0], vec![7], 2, 2)?;
    /// assert_eq!((d.len(), d.image_shape()), (1, (1, 2, 2)));
    /// assert!(Dataset::new(vec![0; 3], vec![7], 2, 2).is_err()); // one pixel short
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn new(images: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize) -> Result<Self> {
        Self::with_channels(images, labels, 1, rows, cols)
    }

    /// A dataset of `labels.len()` images of `channels × rows × cols`
    /// pixels, stored `[n, channels, rows, cols]` row-major (each image's
    /// channels one after another, as CIFAR's files hold them).
    ///
    /// ```
    /// use wengert_data::Dataset;
    /// // One 1×2 RGB image: a red pixel and a blue one.
    /// let d = Dataset::with_channels(vec![255, 0, 0, 0, 0, 255], vec![3], 3, 1, 2)?;
    /// assert_eq!((d.image_shape(), d.classes()), ((3, 1, 2), 4));
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn with_channels(images: Vec<u8>, labels: Vec<u8>, channels: usize, rows: usize, cols: usize) -> Result<Self> {
        if channels == 0 || rows == 0 || cols == 0 {
            return Err(Error::argument(
                "Dataset::new",
                "channels/rows/cols",
                format!("images of {channels}×{rows}×{cols} pixels are empty"),
            ));
        }
        let expected =
            labels.len().checked_mul(channels).and_then(|n| n.checked_mul(rows)).and_then(|n| n.checked_mul(cols));
        if expected != Some(images.len()) {
            return Err(Error::argument(
                "Dataset::new",
                "images",
                format!("{} pixel bytes for {} labels of {channels}×{rows}×{cols} images", images.len(), labels.len()),
            ));
        }
        Ok(Dataset { images, labels, channels, rows, cols, names: Vec::new() })
    }

    /// The pixel bytes, `[n, channels, rows, cols]` row-major.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// One label per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Channels per image (1 for grey, 3 for colour).
    pub fn channels(&self) -> usize {
        self.channels
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

    /// One image's `(channels, height, width)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (self.channels, self.rows, self.cols)
    }

    /// The number of classes: the largest label plus one, or the number
    /// of named classes when that is more.
    pub fn classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&l| l as usize + 1).max(self.names.len())
    }

    /// Names the classes, label 0 first; there must be a name for every
    /// label in the data.
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Self> {
        if let Some(&l) = self.labels.iter().find(|&&l| l as usize >= names.len()) {
            return Err(Error::argument(
                "Dataset::with_class_names",
                "names",
                format!("{} names, but the data has label {l}", names.len()),
            ));
        }
        self.names = names;
        Ok(self)
    }

    /// The classes' names, label 0 first, when the data names them (image
    /// folders do); empty otherwise.
    pub fn class_names(&self) -> &[String] {
        &self.names
    }

    /// Each channel's mean and standard deviation over every pixel, with
    /// pixels scaled to `[0, 1]`: the normalisation a loader should use
    /// for data without published statistics.
    pub fn channel_stats(&self) -> Vec<(f64, f64)> {
        let plane = self.rows * self.cols;
        (0..self.channels)
            .map(|c| {
                let (mut sum, mut sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
                for image in self.images.chunks_exact(self.channels * plane) {
                    for &p in &image[c * plane..(c + 1) * plane] {
                        let v = p as f64 / 255.0;
                        (sum, sq, n) = (sum + v, sq + v * v, n + 1.0);
                    }
                }
                let mean = sum / n.max(1.0);
                (mean, (sq / n.max(1.0) - mean * mean).max(0.0).sqrt())
            })
            .collect()
    }

    /// The first `n` images (all if fewer), for quick runs and tests.
    pub fn take(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * self.channels * self.rows * self.cols);
        self.labels.truncate(n);
        self
    }

    /// Loads one split from a folder, recognising its format from the files
    /// in it: MNIST-style IDX files (`.gz` or plain), CIFAR-10 or
    /// CIFAR-100 in their binary format (the folder as extracted,
    /// `cifar-10-batches-bin/` or `cifar-100-binary/`, or the folder that
    /// holds it), or array files (`train.safetensors` and
    /// `test.safetensors` with `images` and `labels`), or image folders
    /// (`train/<class>/*.png|jpg` and `val/<class>/…`, classes sorted by
    /// name, see [`Dataset::load_with`]). When nothing matches, the error lists what the folder
    /// holds and what each format needs.
    pub fn load(dir: &Path, split: Split) -> Result<Self> {
        Self::load_with(dir, split, None)
    }

    /// [`Dataset::load`], with the size image folders are resized and
    /// cropped to (`image_size × image_size`, after resizing the shorter
    /// side to it). Without one, every image of a folder must be of one
    /// size; the other formats have theirs, and refuse one.
    pub fn load_with(dir: &Path, split: Split, image_size: Option<usize>) -> Result<Self> {
        if folder::present(dir) {
            return folder::load(dir, split, image_size);
        }
        if let Some(size) = image_size {
            return Err(Error::Io {
                path: dir.display().to_string(),
                detail: format!(
                    "an image size ({size}) applies to image folders only; this folder's images have their size"
                ),
            });
        }
        if find(dir, "train-images-idx3-ubyte").is_ok() || find(dir, "t10k-images-idx3-ubyte").is_ok() {
            return Self::load_idx(dir, split);
        }
        if let Some(found) = cifar::find(dir) {
            return cifar::load(&found, split);
        }
        if arrays::present(dir) {
            return arrays::load(dir, split);
        }
        Err(Error::Io { path: dir.display().to_string(), detail: unrecognised(dir) })
    }

    /// Whether `dir` is an image folder (a `train` folder of class
    /// folders), which [`Dataset::load_with`] resizes to an image size.
    pub fn is_image_folder(dir: &Path) -> bool {
        folder::present(dir)
    }

    /// Loads one split from a folder of IDX files (`.gz` or plain).
    fn load_idx(dir: &Path, split: Split) -> Result<Self> {
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

/// What a folder in no known format holds, and what each format needs.
fn unrecognised(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    let held = match names.len() {
        0 => "nothing".to_string(),
        n if n > 8 => format!("{} and {} more", names[..8].join(", "), n - 8),
        _ => names.join(", "),
    };
    format!(
        "no dataset recognised in this folder, which holds {held}. Formats: IDX (MNIST-style) needs \
         train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte \
         (.gz or plain); CIFAR-10 needs data_batch_1.bin … data_batch_5.bin and test_batch.bin \
         (cifar-10-batches-bin); CIFAR-100 needs train.bin and test.bin (cifar-100-binary); arrays need \
         train.safetensors and test.safetensors, each with u8 `images` and integer `labels`; image folders \
         need train/<class>/ and val/<class>/ (or test/<class>/) folders of .png or .jpg files"
    )
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
