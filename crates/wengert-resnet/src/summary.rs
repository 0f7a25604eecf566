//! A model's summary: each stage's output shape and the multiply-adds of
//! one image, as `wengert summary` prints them.

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
