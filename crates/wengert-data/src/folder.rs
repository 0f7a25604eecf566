//! Image folders in torchvision's `ImageFolder` layout:
//! `DIR/train/<class>/*.png|jpg|jpeg` and `DIR/val/<class>/…` (or
//! `DIR/test/…`), classes sorted by name.
//!
//! Images are decoded once, when the dataset loads, in parallel, and kept
//! as 8-bit RGB (grey images expanded) in memory: every epoch after reads
//! them from there. With an image size `s`, each image is resized so that
//! its shorter side is `s` and cropped to `s × s` at its centre
//! (torchvision's `Resize(s)` then `CenterCrop(s)`); without one, every
//! image must already be of one size.

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
pub(crate) fn load(dir: &Path, split: Split, size: Option<usize>) -> Result<Dataset> {
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
    let decoded: Vec<(u32, u32, Vec<u8>)> =
        files.par_iter().map(|(f, _)| decode(f, size)).collect::<Result<Vec<_>>>()?;
    let (w, h) = (decoded[0].0, decoded[0].1);
    if let Some(k) = decoded.iter().position(|d| (d.0, d.1) != (w, h)) {
        return Err(io(
            &files[k].0,
            format!(
                "is {}×{} but {} is {w}×{h}; pass --image-size N to resize and crop every image to N×N",
                decoded[k].0,
                decoded[k].1,
                files[0].0.display()
            ),
        ));
    }
    let pixels: Vec<u8> = decoded.into_iter().flat_map(|d| d.2).collect();
    let labels = files.iter().map(|f| f.1).collect();
    Dataset::with_channels(pixels, labels, 3, h as usize, w as usize)?.with_class_names(names)
}

/// Decodes an image file to 8-bit RGB, `[3, h, w]` row-major, resized and
/// centre-cropped to `size × size` when given; returns `(w, h, pixels)`.
pub fn decode(path: &Path, size: Option<usize>) -> Result<(u32, u32, Vec<u8>)> {
    let img = image::ImageReader::open(path)
        .map_err(|e| io(path, e.to_string()))?
        .with_guessed_format()
        .map_err(|e| io(path, e.to_string()))?
        .decode()
        .map_err(|e| io(path, format!("cannot decode the image: {e}")))?;
    let mut rgb = img.to_rgb8();
    if let Some(s) = size {
        let s = u32::try_from(s).ok().filter(|&s| (1..=16384).contains(&s)).ok_or_else(|| {
            Error::argument("image folder", "image_size", format!("must be between 1 and 16384, got {s}"))
        })?;
        let (w, h) = rgb.dimensions();
        // The shorter side to s, the other in proportion, then the centre s × s.
        let scale = s as f64 / w.min(h) as f64;
        let (nw, nh) = (((w as f64 * scale).round() as u32).max(s), ((h as f64 * scale).round() as u32).max(s));
        let resized = image::imageops::resize(&rgb, nw, nh, image::imageops::FilterType::Triangle);
        rgb = image::imageops::crop_imm(&resized, (nw - s) / 2, (nh - s) / 2, s, s).to_image();
    }
    let (w, h) = rgb.dimensions();
    let plane = (w * h) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = p.0[c];
        }
    }
    Ok((w, h, chw))
}
