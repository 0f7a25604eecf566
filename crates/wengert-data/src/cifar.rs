//! CIFAR-10 and CIFAR-100 in their binary format, as downloaded and
//! extracted from the datasets' page.
//!
//! - CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` …
//!   `data_batch_5.bin` for training and `test_batch.bin` for testing, each
//!   a run of 3,073-byte records: one label byte (0–9), then the 32×32 image
//!   as 1,024 red, 1,024 green and 1,024 blue bytes, row-major.
//! - CIFAR-100 (`cifar-100-binary/`): `train.bin` and `test.bin`, records of
//!   3,074 bytes: the coarse label (0–19), the fine label (0–99), then the
//!   image. The fine labels are the classes.

use super::{Dataset, Split};
use std::path::{Path, PathBuf};
use wengert_core::{Error, Result};

const SIDE: usize = 32;
const IMAGE: usize = 3 * SIDE * SIDE;

/// Which of the two datasets, and the folder its files are in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    dir: PathBuf,
    hundred: bool,
}

/// The CIFAR folder `dir` is, or holds as `cifar-10-batches-bin` or
/// `cifar-100-binary`.
pub(crate) fn find(dir: &Path) -> Option<Found> {
    let candidates = [dir.to_path_buf(), dir.join("cifar-10-batches-bin"), dir.join("cifar-100-binary")];
    candidates.into_iter().find_map(|d| {
        if d.join("data_batch_1.bin").is_file() || d.join("test_batch.bin").is_file() {
            Some(Found { dir: d, hundred: false })
        } else if d.join("train.bin").is_file() || d.join("test.bin").is_file() {
            Some(Found { dir: d, hundred: true })
        } else {
            None
        }
    })
}

/// The files of one split, in order.
fn files(found: &Found, split: Split) -> Result<Vec<PathBuf>> {
    let names: Vec<String> = match (found.hundred, split) {
        (false, Split::Train) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        (false, Split::Test) => vec!["test_batch.bin".into()],
        (true, Split::Train) => vec!["train.bin".into()],
        (true, Split::Test) => vec!["test.bin".into()],
    };
    let missing: Vec<&String> = names.iter().filter(|n| !found.dir.join(n).is_file()).collect();
    if !missing.is_empty() {
        let what = if found.hundred { "CIFAR-100" } else { "CIFAR-10" };
        let list = missing.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ");
        let verb = if missing.len() > 1 { "are" } else { "is" };
        return Err(Error::Io {
            path: found.dir.display().to_string(),
            detail: format!("a {what} folder, but {list} {verb} missing"),
        });
    }
    Ok(names.iter().map(|n| found.dir.join(n)).collect())
}

/// Loads one split.
pub(crate) fn load(found: &Found, split: Split) -> Result<Dataset> {
    let (record, classes) = if found.hundred { (IMAGE + 2, 100) } else { (IMAGE + 1, 10) };
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for path in files(found, split)? {
        let io = |detail: String| Error::Io { path: path.display().to_string(), detail };
        let bytes = super::bounded::read(&path)?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            let labels = if found.hundred { "two labels" } else { "a label" };
            return Err(io(format!(
                "{} bytes is not a whole number of {record}-byte records ({labels} and a 3×32×32 image)",
                bytes.len()
            )));
        }
        images.reserve(bytes.len() / record * IMAGE);
        for (i, r) in bytes.chunks_exact(record).enumerate() {
            let label = r[record - IMAGE - 1];
            if label as usize >= classes {
                return Err(io(format!("record {i} has label {label}; the classes are 0–{}", classes - 1)));
            }
            labels.push(label);
            images.extend_from_slice(&r[record - IMAGE..]);
        }
    }
    Dataset::with_channels(images, labels, 3, SIDE, SIDE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `n` records of a CIFAR file: label `i % classes`, pixels from `i`.
    fn write(path: &Path, n: usize, hundred: bool) {
        let mut bytes = Vec::new();
        for i in 0..n {
            if hundred {
                bytes.push((i % 20) as u8);
                bytes.push((i % 100) as u8);
            } else {
                bytes.push((i % 10) as u8);
            }
            bytes.extend((0..IMAGE).map(|p| ((i + p / 1024 * 100) % 256) as u8));
        }
        std::fs::write(path, bytes).unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wengert-cifar-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn cifar10_in_its_extracted_folder_or_beside_it() {
        let root = scratch("ten");
        let dir = root.join("cifar-10-batches-bin");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 1..=5 {
            write(&dir.join(format!("data_batch_{i}.bin")), 4, false);
        }
        write(&dir.join("test_batch.bin"), 3, false);
        for d in [&root, &dir] {
            let train = Dataset::load(d, Split::Train).unwrap();
            assert_eq!((train.len(), train.image_shape(), train.classes()), (20, (3, 32, 32), 4));
            // Channel planes in order: red, green, blue.
            assert_eq!(train.pixels().as_u8().unwrap()[..1], [0]);
            assert_eq!(train.pixels().as_u8().unwrap()[1024], 100);
            assert_eq!(train.pixels().as_u8().unwrap()[2048], 200);
            assert_eq!(Dataset::load(d, Split::Test).unwrap().len(), 3);
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn cifar100_takes_the_fine_labels() {
        let dir = scratch("hundred");
        write(&dir.join("train.bin"), 150, true);
        write(&dir.join("test.bin"), 2, true);
        let train = Dataset::load(&dir, Split::Train).unwrap();
        assert_eq!((train.len(), train.classes()), (150, 100));
        assert_eq!(train.labels()[120], 20);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn damaged_files_are_named() {
        let dir = scratch("bad");
        write(&dir.join("data_batch_1.bin"), 2, false);
        write(&dir.join("test_batch.bin"), 1, false);
        let e = Dataset::load(&dir, Split::Train).unwrap_err().to_string();
        assert!(e.contains("a CIFAR-10 folder, but data_batch_2.bin, data_batch_3.bin"), "{e}");
        for i in 2..=5 {
            write(&dir.join(format!("data_batch_{i}.bin")), 2, false);
        }
        let mut bytes = std::fs::read(dir.join("data_batch_3.bin")).unwrap();
        bytes.pop();
        std::fs::write(dir.join("data_batch_3.bin"), &bytes).unwrap();
        let e = Dataset::load(&dir, Split::Train).unwrap_err().to_string();
        assert!(e.contains("data_batch_3.bin: 6145 bytes is not a whole number of 3073-byte records"), "{e}");
        let mut bytes = std::fs::read(dir.join("test_batch.bin")).unwrap();
        bytes[0] = 10;
        std::fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
        let e = Dataset::load(&dir, Split::Test).unwrap_err().to_string();
        assert!(e.contains("test_batch.bin: record 0 has label 10; the classes are 0–9"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unknown_folder_says_what_it_holds_and_what_is_needed() {
        let dir = scratch("unknown");
        std::fs::write(dir.join("photo.jpg"), b"").unwrap();
        let e = Dataset::load(&dir, Split::Train).unwrap_err().to_string();
        assert!(e.contains("no dataset recognised in this folder, which holds photo.jpg"), "{e}");
        assert!(e.contains("CIFAR-10 needs data_batch_1.bin"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
