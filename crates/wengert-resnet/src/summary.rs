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
}
