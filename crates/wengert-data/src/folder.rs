//! Image folders in torchvision's `ImageFolder` layout:
//! `DIR/train/<class>/*.png|jpg|jpeg` and `DIR/val/<class>/…` (or
//! `DIR/test/…`), classes sorted by name.
//!
//! Images decode to 8-bit RGB (grey images expanded). With an image size
//! `s`, each image is resized so that its shorter side is `s` and cropped
//! to `s × s` at its centre (torchvision's `Resize(s)` then
//! `CenterCrop(s)`); without one, every image must already be of one size.
//! They are decoded once as the dataset loads, in parallel, and kept in
//! memory, or, for a folder whose decoded images would not fit
//! ([`Decode`]), as each batch is built; then the loader's random resized
//! crop works on the whole decoded image.

use super::dataset::{Decode, LoadOptions, DECODE_BUDGET};
use super::{Dataset, Split};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use wengert_core::{Error, Result};

/// The file extensions read as images.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The folder of one split: `train`, and `val` or `test`.
fn split_dir(dir: &Path, split: Split) -> Option<PathBuf> {
    let names: &[&str] = match split {
        Split::Train => &["train"],
        Split::Test => &["val", "test"],
    };
    names.iter().map(|n| dir.join(n)).find(|d| d.is_dir())
}

/// Whether `dir` holds a `train` folder of class folders.
pub(crate) fn present(dir: &Path) -> bool {
    split_dir(dir, Split::Train).is_some_and(|t| subdirs(&t).is_ok_and(|d| !d.is_empty()))
}

fn io(path: &Path, detail: impl Into<String>) -> Error {
    Error::Io { path: path.display().to_string(), detail: detail.into() }
}

/// The folders in `dir`, sorted by name.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut d: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e.to_string()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    d.sort();
    Ok(d)
}

/// The image files in a class folder, sorted by name; an error for a
/// folder with none.
fn images_in(class: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(class)
        .map_err(|e| io(class, e.to_string()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e.to_lowercase().as_str()))
        })
        .collect();
    if files.is_empty() {
        return Err(io(class, "this class folder holds no .png, .jpg or .jpeg images"));
    }
    files.sort();
    Ok(files)
}

/// Loads one split of an image folder; class names come from the training
/// split's folders, and the test split may hold only some of them.
pub(crate) fn load(dir: &Path, split: Split, options: LoadOptions) -> Result<Dataset> {
    let train = split_dir(dir, Split::Train).ok_or_else(|| io(dir, "no train folder"))?;
    let names: Vec<String> =
        subdirs(&train)?.iter().map(|d| d.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    if names.len() > 256 {
        return Err(io(&train, format!("{} class folders; at most 256 classes are supported", names.len())));
    }
    let here = split_dir(dir, split)
        .ok_or_else(|| io(dir, "no val or test folder beside train: nothing to measure accuracy on"))?;
    let mut files = Vec::new();
    for class in subdirs(&here)? {
        let name = class.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let label = names.iter().position(|n| *n == name).ok_or_else(|| {
            io(&class, format!("class {name} is not among the training classes ({})", names.join(", ")))
        })?;
        files.extend(images_in(&class)?.into_iter().map(|f| (f, label as u8)));
    }
    if files.is_empty() {
        return Err(io(&here, "no class folders"));
    }
    let size = options.image_size.map(checked_size).transpose()?;
    // Without an image size, every image must be of the first one's: the
    // headers say, without decoding.
    let (w, h) = match size {
        Some(s) => (s, s),
        None => {
            let dims: Vec<(u32, u32)> = files
                .par_iter()
                .map(|(f, _)| image::image_dimensions(f).map_err(|e| io(f, format!("cannot read the image: {e}"))))
                .collect::<Result<_>>()?;
            if let Some(k) = dims.iter().position(|d| *d != dims[0]) {
                return Err(io(
                    &files[k].0,
                    format!(
                        "is {}×{} but {} is {}×{}; pass --image-size N to resize and crop every image to N×N",
                        dims[k].0,
                        dims[k].1,
                        files[0].0.display(),
                        dims[0].0,
                        dims[0].1
                    ),
                ));
            }
            dims[0]
        }
    };
    let (h, w) = (h as usize, w as usize);
    let labels = files.iter().map(|f| f.1).collect();
    let once = match options.decode {
        Decode::Once => true,
        Decode::EachBatch => false,
        Decode::Auto => files.len().saturating_mul(3 * h * w) <= DECODE_BUDGET,
    };
    let data = if once {
        let decoded: Vec<Vec<u8>> = files.par_iter().map(|(f, _)| decode_sized(f, h, w)).collect::<Result<_>>()?;
        Dataset::with_channels(decoded.concat(), labels, 3, h, w)?
    } else {
        // Unreadable headers now, not in the middle of an epoch (without an
        // image size they were read above).
        if size.is_some() {
            files.par_iter().try_for_each(|(f, _)| {
                image::image_dimensions(f).map(drop).map_err(|e| io(f, format!("cannot read the image: {e}")))
            })?;
        }
        Dataset::with_files(files.into_iter().map(|f| f.0).collect(), labels, h, w)?
    };
    data.with_class_names(names)
}

/// An image size, checked.
fn checked_size(s: usize) -> Result<u32> {
    u32::try_from(s)
        .ok()
        .filter(|&s| (1..=16384).contains(&s))
        .ok_or_else(|| Error::argument("image folder", "image_size", format!("must be between 1 and 16384, got {s}")))
}

/// Decodes an image file to 8-bit RGB.
fn decode_rgb(path: &Path) -> Result<image::RgbImage> {
    let img = image::ImageReader::open(path)
        .map_err(|e| io(path, e.to_string()))?
        .with_guessed_format()
        .map_err(|e| io(path, e.to_string()))?
        .decode()
        .map_err(|e| io(path, format!("cannot decode the image: {e}")))?;
    Ok(img.to_rgb8())
}

/// `[3, h, w]` row-major from an RGB image.
fn planes(rgb: &image::RgbImage) -> Vec<u8> {
    let plane = (rgb.width() * rgb.height()) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = p.0[c];
        }
    }
    chw
}

/// The shorter side resized to `s`, the other in proportion, then the
/// centre `s × s`.
fn centre_crop(rgb: &image::RgbImage, s: u32) -> image::RgbImage {
    let (w, h) = rgb.dimensions();
    let scale = s as f64 / w.min(h) as f64;
    let (nw, nh) = (((w as f64 * scale).round() as u32).max(s), ((h as f64 * scale).round() as u32).max(s));
    let resized = image::imageops::resize(rgb, nw, nh, image::imageops::FilterType::Triangle);
    image::imageops::crop_imm(&resized, (nw - s) / 2, (nh - s) / 2, s, s).to_image()
}

/// Decodes an image file to 8-bit RGB, `[3, h, w]` row-major, resized and
/// centre-cropped to `size × size` when given; returns `(w, h, pixels)`.
pub fn decode(path: &Path, size: Option<usize>) -> Result<(u32, u32, Vec<u8>)> {
    let mut rgb = decode_rgb(path)?;
    if let Some(s) = size {
        rgb = centre_crop(&rgb, checked_size(s)?);
    }
    let (w, h) = rgb.dimensions();
    Ok((w, h, planes(&rgb)))
}

/// Decodes an image file to `[3, h, w]`: as it is when it is `h × w`
/// already, else resized and centre-cropped when `h == w` (the dataset
/// has an image size), else an error.
pub(crate) fn decode_sized(path: &Path, h: usize, w: usize) -> Result<Vec<u8>> {
    let rgb = decode_rgb(path)?;
    let (dw, dh) = rgb.dimensions();
    if (dh as usize, dw as usize) == (h, w) {
        return Ok(planes(&rgb));
    }
    if h != w {
        return Err(io(path, format!("is {dw}×{dh}, but the dataset's images are {w}×{h}")));
    }
    Ok(planes(&centre_crop(&rgb, h as u32)))
}

/// Decodes an image file, takes the region `(top, left, height, width)`
/// that `region` picks from its `(height, width)`, and resizes that to
/// `h × w`: `[3, h, w]` row-major.
pub(crate) fn decode_region(
    path: &Path,
    h: usize,
    w: usize,
    region: impl FnOnce(usize, usize) -> (usize, usize, usize, usize),
) -> Result<Vec<u8>> {
    let rgb = decode_rgb(path)?;
    let (y0, x0, rh, rw) = region(rgb.height() as usize, rgb.width() as usize);
    let crop = image::imageops::crop_imm(&rgb, x0 as u32, y0 as u32, rw as u32, rh as u32).to_image();
    let out = image::imageops::resize(&crop, w as u32, h as u32, image::imageops::FilterType::Triangle);
    Ok(planes(&out))
}
