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
//! crop works on the whole decoded image. Decoding one file is
//! [`image_file`](super::image_file)'s.

use super::dataset::{Dataset, Decode, LoadOptions, Split, DECODE_BUDGET};
use super::image_file::{checked_size, decode_sized, dimensions};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use wengert_core::{memory, Error, Result};

/// The most bytes [`Decode::Auto`] keeps decoded: [`DECODE_BUDGET`], or a
/// quarter of the memory available (`room`) when that is less.
fn decode_budget(room: Option<u64>) -> u64 {
    room.map_or(DECODE_BUDGET as u64, |r| (r / 4).min(DECODE_BUDGET as u64))
}

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

/// A class folder's name: UTF-8, since class names are saved with the
/// model as text. A name that is not is an error naming the folder, never
/// a lossy copy that could merge two classes into one.
fn class_name(dir: &Path) -> Result<String> {
    let name = dir.file_name().unwrap_or_default();
    name.to_str().map(str::to_string).ok_or_else(|| {
        io(dir, format!("the class folder's name {name:?} is not UTF-8: rename it (class names are saved as text)"))
    })
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

/// A class name as it displays: in Unicode's composed form (NFC), without
/// the characters that display as nothing (zero-width spaces and joiners,
/// the byte-order mark, soft hyphens), and without surrounding spaces.
fn displayed(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    const INVISIBLE: [char; 5] = ['\u{200B}', '\u{200C}', '\u{200D}', '\u{FEFF}', '\u{00AD}'];
    name.nfc().filter(|c| !INVISIBLE.contains(c)).collect::<String>().trim().to_string()
}

/// An error naming both folders when two class folders' names display
/// alike ([`displayed`]): their classes could not be told apart in a
/// report, and one was likely meant to be the other.
fn distinct_classes(train: &Path, names: &[String]) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for name in names {
        if let Some(other) = seen.insert(displayed(name), name) {
            return Err(io(
                train,
                format!("class folders {other:?} and {name:?} display alike; rename one so that the classes can be told apart"),
            ));
        }
    }
    Ok(())
}

/// Loads one split of an image folder; class names come from the training
/// split's folders, and the test split may hold only some of them.
pub(crate) fn load(dir: &Path, split: Split, options: LoadOptions) -> Result<Dataset> {
    let train = split_dir(dir, Split::Train).ok_or_else(|| io(dir, "no train folder"))?;
    let names = subdirs(&train)?.iter().map(|d| class_name(d)).collect::<Result<Vec<String>>>()?;
    distinct_classes(&train, &names)?;
    if names.len() > 256 {
        return Err(io(&train, format!("{} class folders; at most 256 classes are supported", names.len())));
    }
    let here = split_dir(dir, split)
        .ok_or_else(|| io(dir, "no val or test folder beside train: nothing to measure accuracy on"))?;
    let mut files = Vec::new();
    for class in subdirs(&here)? {
        let name = class_name(&class)?;
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
            let dims: Vec<(u32, u32)> = files.par_iter().map(|(f, _)| dimensions(f)).collect::<Result<_>>()?;
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
    let decoded = files.len().saturating_mul(3 * h * w) as u64;
    let room = memory::available();
    let once = match options.decode {
        Decode::Once => {
            if let Some(room) = room.filter(|&r| decoded > r / 4 * 3) {
                return Err(Error::argument(
                    "image folder",
                    "decode",
                    format!(
                        "decoding once keeps every image decoded: {} for {} images of {w}×{h}, more than three \
                         quarters of the {} this machine has available; decode each batch instead, or make the \
                         images smaller",
                        memory::human(decoded),
                        files.len(),
                        memory::human(room)
                    ),
                ));
            }
            true
        }
        Decode::EachBatch => false,
        Decode::Auto => decoded <= decode_budget(room),
    };
    let data = if once {
        let decoded: Vec<Vec<u8>> = files.par_iter().map(|(f, _)| decode_sized(f, h, w)).collect::<Result<_>>()?;
        Dataset::with_channels(decoded.concat(), labels, 3, h, w)?
    } else {
        // Unreadable headers now, not in the middle of an epoch (without an
        // image size they were read above).
        if size.is_some() {
            files.par_iter().try_for_each(|(f, _)| dimensions(f).map(drop))?;
        }
        Dataset::with_files(files.into_iter().map(|f| f.0).collect(), labels, h, w)?
    };
    data.with_class_names(names)
}
