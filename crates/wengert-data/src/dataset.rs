//! Datasets of labelled images (8-bit or float pixels, or image files),
//! and loading them from a folder in
//! one of the formats [`Dataset::load`] recognises: MNIST-style IDX files
//! (28×28 grey images, labels 0–9: `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-…`, gzipped or not), CIFAR-10 and
//! CIFAR-100 in their binary format, safetensors array files, and image
//! folders (PNG and JPEG files in one folder per class).

use super::image_file;
use std::path::PathBuf;
use wengert_core::{Error, Result};

/// Training or test half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

/// Where a dataset's pixels are, each image `[channels, rows, cols]`
/// row-major, one after another.
#[derive(Clone, Debug)]
pub enum Pixels {
    /// 8-bit pixels in memory; the loader scales them to `[0, 1]`.
    U8(Vec<u8>),
    /// Float pixels in memory (from array files), taken as they are.
    F32(Vec<f32>),
    /// Image files, one per image, decoded as each batch needs them (see
    /// [`Decode`]); each decodes to 8-bit RGB.
    Files(Vec<PathBuf>),
}

impl Pixels {
    /// The 8-bit pixels, when the dataset holds them in memory.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match self {
            Pixels::U8(p) => Some(p),
            _ => None,
        }
    }

    /// The float pixels, when the dataset holds them in memory.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            Pixels::F32(p) => Some(p),
            _ => None,
        }
    }
}

/// When the images of an image folder are decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Decode {
    /// [`Decode::Once`] when the decoded images take at most
    /// [`DECODE_BUDGET`] bytes and a quarter of the memory available
    /// ([`memory::available`](wengert_core::memory::available)),
    /// [`Decode::EachBatch`] when they would take more.
    #[default]
    Auto,
    /// Once, in parallel, as the dataset loads; every epoch after reads
    /// them from memory (the decoded cache). Refused, before any image is
    /// decoded, when the decoded images would take more than three
    /// quarters of the memory available.
    Once,
    /// As each batch is built, on the loader's threads, while the batch
    /// before trains: for folders too large to hold decoded. Only the
    /// files' headers are read as the dataset loads.
    EachBatch,
}

/// The most bytes of decoded images [`Decode::Auto`] keeps in memory: 2 GiB,
/// CIFAR-10's training set forty times over, or 14,000 RGB images of
/// 224 × 224.
pub const DECODE_BUDGET: usize = 2 << 30;

/// How many image files [`Dataset::channel_stats`] decodes to measure a
/// dataset of files. Images differ more than pixels do, so what bounds the
/// error is the number of images: with images whose mean brightness varies
/// by 0.1 (pixels in `[0, 1]`), 2,048 of them put a channel's mean within
/// about 0.002 of the whole set's.
pub const STATS_SAMPLE: usize = 2048;

/// How [`Dataset::load_with`] reads a folder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The size image folders are resized and cropped to (`size × size`,
    /// after resizing the shorter side to it); without one, every image of
    /// a folder must be of one size. Other formats have their size and
    /// refuse one.
    pub image_size: Option<usize>,
    /// When an image folder's images are decoded.
    pub decode: Decode,
}

/// Builder methods, one per setting: each returns the settings with that
/// one changed, so that code written today keeps compiling when a
/// setting is added (the struct is `#[non_exhaustive]`).
impl LoadOptions {
    /// Sets the size image folders are resized and cropped to ([`LoadOptions::image_size`](Self::image_size)).
    pub const fn with_image_size(mut self, value: usize) -> Self {
        self.image_size = Some(value);
        self
    }

    /// Sets when an image folder's images are decoded ([`LoadOptions::decode`](Self::decode)).
    pub const fn with_decode(mut self, value: Decode) -> Self {
        self.decode = value;
        self
    }
}

/// Labelled images, all of one size: 8-bit or float pixels in memory, or
/// image files decoded as they are needed ([`Pixels`]). Built by
/// [`Dataset::new`] (one channel), [`Dataset::with_channels`],
/// [`Dataset::with_float_channels`] or [`Dataset::load`], which check that
/// every label has its image.
#[derive(Clone, Debug)]
pub struct Dataset {
    pixels: Pixels,
    labels: Vec<u8>,
    channels: usize,
    rows: usize,
    cols: usize,
    /// Each class's name, where the data names them.
    names: Vec<String>,
}

/// The error for images of no pixels, or the wrong number of them.
fn check_shape(given: usize, labels: usize, channels: usize, rows: usize, cols: usize) -> Result<()> {
    if channels == 0 || rows == 0 || cols == 0 {
        return Err(Error::argument(
            "Dataset::new",
            "channels/rows/cols",
            format!("images of {channels}×{rows}×{cols} pixels are empty"),
        ));
    }
    let expected = labels.checked_mul(channels).and_then(|n| n.checked_mul(rows)).and_then(|n| n.checked_mul(cols));
    if expected != Some(given) {
        return Err(Error::argument(
            "Dataset::new",
            "images",
            format!("{given} pixel values for {labels} labels of {channels}×{rows}×{cols} images"),
        ));
    }
    Ok(())
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
        check_shape(images.len(), labels.len(), channels, rows, cols)?;
        Ok(Dataset { pixels: Pixels::U8(images), labels, channels, rows, cols, names: Vec::new() })
    }

    /// A dataset of float pixels, stored as [`Dataset::with_channels`]
    /// stores 8-bit ones. The loader takes them as they are (8-bit pixels
    /// it divides by 255), so normalise with statistics of the same scale,
    /// as [`Dataset::channel_stats`] gives. Every pixel must be finite.
    ///
    /// ```
    /// use wengert_data::Dataset;
    /// let d = Dataset::with_float_channels(vec![-1.5, 0.25, 2.0, 0.0], vec![0], 1, 2, 2)?;
    /// assert_eq!(d.channel_stats()?[0].0, 0.1875);
    /// assert!(Dataset::with_float_channels(vec![f32::NAN], vec![0], 1, 1, 1).is_err());
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn with_float_channels(
        images: Vec<f32>,
        labels: Vec<u8>,
        channels: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        check_shape(images.len(), labels.len(), channels, rows, cols)?;
        if let Some(i) = images.iter().position(|v| !v.is_finite()) {
            let size = channels * rows * cols;
            return Err(Error::argument(
                "Dataset::with_float_channels",
                "images",
                format!("pixel {} of image {} is {}; pixels must be finite", i % size, i / size, images[i]),
            ));
        }
        Ok(Dataset { pixels: Pixels::F32(images), labels, channels, rows, cols, names: Vec::new() })
    }

    /// A dataset of image files decoded as batches need them, each to
    /// 8-bit RGB of `rows × cols` (the loader resizes and crops them).
    pub(crate) fn with_files(files: Vec<PathBuf>, labels: Vec<u8>, rows: usize, cols: usize) -> Result<Self> {
        check_shape(files.len() * 3 * rows * cols, labels.len(), 3, rows, cols)?;
        Ok(Dataset { pixels: Pixels::Files(files), labels, channels: 3, rows, cols, names: Vec::new() })
    }

    /// Where the pixels are, and their type.
    pub fn pixels(&self) -> &Pixels {
        &self.pixels
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

    /// Each channel's mean and standard deviation over every pixel, in the
    /// loader's scale (8-bit pixels divided by 255, float pixels as they
    /// are): the normalisation a loader should use for data without
    /// published statistics. Image files decoded as needed are measured on
    /// [`STATS_SAMPLE`] of them, spread evenly, each resized and
    /// centre-cropped; an error names a file that does not decode.
    pub fn channel_stats(&self) -> Result<Vec<(f64, f64)>> {
        let plane = self.rows * self.cols;
        let size = self.channels * plane;
        // Per channel: sum, sum of squares, count.
        let mut acc = vec![(0.0f64, 0.0f64, 0.0f64); self.channels];
        let mut add = |image: &mut dyn Iterator<Item = f64>, c: usize| {
            for v in image {
                let a = &mut acc[c];
                *a = (a.0 + v, a.1 + v * v, a.2 + 1.0);
            }
        };
        match &self.pixels {
            Pixels::U8(p) => {
                for image in p.chunks_exact(size) {
                    for (c, ch) in image.chunks_exact(plane).enumerate() {
                        add(&mut ch.iter().map(|&v| v as f64 / 255.0), c);
                    }
                }
            }
            Pixels::F32(p) => {
                for image in p.chunks_exact(size) {
                    for (c, ch) in image.chunks_exact(plane).enumerate() {
                        add(&mut ch.iter().map(|&v| v as f64), c);
                    }
                }
            }
            Pixels::Files(files) => {
                use rayon::prelude::*;
                let step = files.len().div_ceil(STATS_SAMPLE).max(1);
                let picked: Vec<&PathBuf> = files.iter().step_by(step).collect();
                let decoded = picked
                    .par_iter()
                    .map(|f| image_file::decode_sized(f, self.rows, self.cols))
                    .collect::<Result<Vec<Vec<u8>>>>()?;
                for image in &decoded {
                    for (c, ch) in image.chunks_exact(plane).enumerate() {
                        add(&mut ch.iter().map(|&v| v as f64 / 255.0), c);
                    }
                }
            }
        }
        Ok(acc
            .into_iter()
            .map(|(sum, sq, n)| {
                let mean = sum / n.max(1.0);
                (mean, (sq / n.max(1.0) - mean * mean).max(0.0).sqrt())
            })
            .collect())
    }

    /// The first `n` images (all if fewer), for quick runs and tests.
    pub fn take(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        let size = self.channels * self.rows * self.cols;
        match &mut self.pixels {
            Pixels::U8(p) => p.truncate(n * size),
            Pixels::F32(p) => p.truncate(n * size),
            Pixels::Files(f) => f.truncate(n),
        }
        self.labels.truncate(n);
        self
    }
}
