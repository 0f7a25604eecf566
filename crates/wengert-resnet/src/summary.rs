//! A model's summary: each stage's output shape and the multiply-adds of
//! one image, as `wengert summary` prints them; and the check of the image
//! size a model is summarised or built for.

use wengert_core::{Error, Result};

/// The largest image side, and channel count, that a summary or a model
/// built by name takes: 65,536. Past it the image alone would not fit in
/// memory, and the shape and multiply-add arithmetic would pass `u64`.
pub const MAX_SIDE: usize = 1 << 16;

/// An error naming `op` unless `(c, h, w)` is an image a model can read:
/// no extent 0 and none past [`MAX_SIDE`].
pub(crate) fn check_input(op: &str, (c, h, w): (usize, usize, usize)) -> Result<()> {
    if [c, h, w].iter().any(|&d| d == 0 || d > MAX_SIDE) {
        return Err(Error::argument(
            op,
            "input",
            format!("({c}, {h}, {w}) (C, H, W): every extent must be between 1 and {MAX_SIDE}"),
        ));
    }
    Ok(())
}

/// The product of `factors` as multiply-adds, or an error naming `op` past `u64`.
pub(crate) fn product(op: &str, factors: &[usize]) -> Result<u64> {
    factors
        .iter()
        .try_fold(1u64, |p, &f| p.checked_mul(f as u64))
        .ok_or_else(|| Error::argument(op, "input", format!("multiply-adds {factors:?} pass u64")))
}

/// What a model's `summary` reports ([`ResNet::summary`](crate::zoo::ResNet::summary),
/// [`GoogLeNet::summary`](crate::googlenet::GoogLeNet::summary),
/// [`Model::summary`](crate::registry::Model::summary)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Each stage's (or block's) name and output `[C, H, W]`.
    pub rows: Vec<(String, [usize; 3])>,
    /// Multiply-adds for one image.
    pub macs: u64,
    /// Elements of the tensors one image's training step keeps for
    /// backward, counted as the input plus every convolution's (or
    /// recurrent step's) output and every pooling layer's: what
    /// [`Summary::training_bytes`] scales.
    pub activations: u64,
}

/// Memory no model size changes: the program, its threads' stacks, the
/// allocator's and the loader's working room.
const FIXED_BYTES: u64 = 16 << 20;

impl Summary {
    /// The elements of the largest single tensor of one image: the
    /// largest row (the stem's output, for the zoo).
    fn largest(&self) -> u64 {
        self.rows
            .iter()
            .map(|(_, [c, h, w])| (*c as u64).saturating_mul(*h as u64).saturating_mul(*w as u64))
            .max()
            .unwrap_or(0)
    }

    /// An estimate of the peak memory, in bytes, of training this model
    /// (`f32`, SGD with momentum or Adam) with `batch` images a step and
    /// `parameters` parameters:
    ///
    /// `16 × parameters + 4 × batch × (1.65 × activations + 8 × largest) + 16 MiB`
    ///
    /// — four copies of the weights (the weights, their gradients, the
    /// optimiser's state, room for Adam's second moment or the
    /// checkpoint), the kept activations with the gradients and scratch
    /// that backward holds beside them (fitted: 8 tensors the size of the
    /// largest layer's output), and a fixed part. Fitted to `wengert bench
    /// --mem` on the zoo, it is above the measured peak, never below
    /// (docs/architecture.md lists the comparison), so a check against it
    /// refuses only what would not fit. Saturates at `u64::MAX`.
    pub fn training_bytes(&self, batch: usize, parameters: usize) -> u64 {
        let per_image = (self.activations as u128 * 33 / 20 + 8 * self.largest() as u128) * 4;
        let bytes = 16 * parameters as u128 + batch as u128 * per_image + FIXED_BYTES as u128;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }

    /// An estimate of the peak memory, in bytes, of evaluating this model
    /// (no tape) on `batch` images: the weights, and three tensors the size
    /// of the largest layer's output per image (an op's input, its output
    /// and one more held by the layer around it), with the fixed part.
    /// Saturates at `u64::MAX`.
    pub fn forward_bytes(&self, batch: usize, parameters: usize) -> u64 {
        let bytes = 4 * parameters as u128 + batch as u128 * 12 * self.largest() as u128 + FIXED_BYTES as u128;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}
