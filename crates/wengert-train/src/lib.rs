//! # wengert-train
//!
//! Training models with Wengert:
//!
//! - [`train`]: a trainer with SGD, warm-up and cosine decay, evaluation,
//!   atomic checkpoints and resuming;
//! - [`run`]: a whole run (epochs, evaluation, checkpoint and run log after
//!   each, a stop flag, resuming), the loop `wengert train` and
//!   `wengert degradation` share;
//! - [`report`]: what an evaluation found class by class: per-class
//!   accuracy, the confusion matrix, top-5 accuracy;
//! - [`parallel`]: data-parallel training: gradient buckets summed across
//!   ranks while backward runs, synchronised batch norm, split evaluation;
//! - `mpi` (feature `mpi`): the ranks as processes under `mpirun`, on one
//!   machine or many.
//!
//! ```
//! use wengert_data::{Dataset, Loader};
//! use wengert_resnet::zoo::ResNet;
//! use wengert_train::train::{Config, Trainer};
//!
//! let pixels = (0..32 * 64).map(|i| (i * 37 % 251) as u8).collect();
//! let digits = Dataset::new(pixels, (0..32).map(|i| (i % 10) as u8).collect(), 8, 8)?;
//! let train = Loader::new(digits, 16, 0)?;
//! let model = ResNet::by_name("resnet8", 1, 10, &mut wengert_core::rng(0))?;
//! let mut trainer = Trainer::new(model, Config::default().with_warmup(1), &train)?;
//! let score = trainer.epoch(&train, |_, _| ())?;
//! assert_eq!(score.images, 32);
//! # Ok::<(), wengert_core::Error>(())
//! ```

#![warn(missing_docs)]

#[cfg(feature = "mpi")]
pub mod mpi;
pub mod parallel;
pub mod report;
pub mod run;
pub mod train;
