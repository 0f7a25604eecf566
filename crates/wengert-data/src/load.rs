//! Finding a dataset in a folder: which format its files are in, and
//! reading one split of it with that format's reader.

use super::dataset::{Dataset, LoadOptions, Split};
use super::{arrays, cifar, folder, idx};
use std::path::{Path, PathBuf};
use wengert_core::{Error, Result};

impl Dataset {
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
        Self::load_with(dir, split, LoadOptions::default())
    }

    /// [`Dataset::load`], with the size image folders are resized and
    /// cropped to and when their images are decoded ([`LoadOptions`]).
    pub fn load_with(dir: &Path, split: Split, options: LoadOptions) -> Result<Self> {
        if folder::present(dir) {
            return folder::load(dir, split, options);
        }
        if let Some(size) = options.image_size {
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
         train.safetensors and test.safetensors, each with u8 or f32 `images` and integer `labels`; image folders \
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
