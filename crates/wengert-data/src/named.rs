//! The datasets known by name: where each is looked for, how to get it,
//! its normalisation and whether flips suit it. The command line takes
//! this type rather than a string, so a name is parsed (and a typo
//! answered with a suggestion) once.
//!
//! ```
//! use wengert_data::DatasetName;
//! let d: DatasetName = "fashion-mnist".parse()?;
//! assert!(d.flips());
//! let e = "mnsit".parse::<DatasetName>().unwrap_err().to_string();
//! assert!(e.contains("did you mean 'mnist'?"), "{e}");
//! # Ok::<(), wengert_core::Error>(())
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use wengert_core::{Error, Result};

/// A dataset the command line knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetName {
    /// MNIST's handwritten digits, bundled in `data/mnist`.
    Mnist,
    /// Fashion-MNIST, from Debian's `dataset-fashion-mnist`.
    FashionMnist,
}

/// Where Debian's `dataset-fashion-mnist` puts its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

impl DatasetName {
    /// The names, one per dataset.
    pub fn catalogue() -> &'static [&'static str] {
        &["mnist", "fashion-mnist"]
    }

    /// The folders the dataset is looked for in, in order.
    pub fn folders(self) -> Vec<PathBuf> {
        match self {
            DatasetName::Mnist => {
                vec![
                    PathBuf::from("data/mnist"),
                    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/mnist")),
                ]
            }
            DatasetName::FashionMnist => vec![PathBuf::from(FASHION_MNIST_DIR)],
        }
    }

    /// The first of [`DatasetName::folders`] that exists, or an error that
    /// says how to get the data.
    pub fn folder(self) -> Result<PathBuf> {
        if let Some(d) = self.folders().into_iter().find(|d| d.is_dir()) {
            return Ok(d);
        }
        let (path, how) = match self {
            // The published package leaves the 11 MiB dataset out.
            DatasetName::Mnist => (
                "data/mnist",
                "MNIST is not bundled with this build: put the four IDX files (train-images-idx3-ubyte.gz, \
                 train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a folder \
                 and pass --data-dir FOLDER",
            ),
            DatasetName::FashionMnist => (
                FASHION_MNIST_DIR,
                "not found: install it with 'apt-get install dataset-fashion-mnist' or pass --data-dir",
            ),
        };
        Err(Error::Io { path: path.into(), detail: how.into() })
    }

    /// `(mean, std)` of the training pixels scaled to `[0, 1]`.
    pub fn normalisation(self) -> (f64, f64) {
        match self {
            DatasetName::Mnist => (0.1307, 0.3081),
            DatasetName::FashionMnist => (0.2860, 0.3530),
        }
    }

    /// Whether random horizontal flips suit the images (clothes, not digits).
    pub fn flips(self) -> bool {
        self == DatasetName::FashionMnist
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
        })
    }
}

impl FromStr for DatasetName {
    type Err = Error;

    fn from_str(name: &str) -> Result<DatasetName> {
        match name {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" => Ok(DatasetName::FashionMnist),
            _ => Err(Error::unknown_name(
                "dataset",
                name,
                DatasetName::catalogue(),
                "or --data-dir for a folder of IDX files",
            )),
        }
    }
}

/// ImageNet's per-channel `(mean, std)` of RGB pixels scaled to `[0, 1]`,
/// as torchvision normalises the images its pretrained weights were
/// trained on: what fine-tuning those weights feeds them.
pub const IMAGENET_NORMALISATION: [(f64, f64); 3] = [(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)];
