//! A bias-free convolution and the batch norm after it, as one layer that
//! owns their fusion: in a training step with batch statistics, the
//! convolution's kernel takes each output row's moments while it writes
//! the row ([`wengert_ops::conv2d_with_moments`]), and the batch norm
//! merges them instead of reading its input again. Outputs, gradients and
//! running statistics are the two layers' one after the other, to the bit.

use super::conv::Conv2d;
use super::norm::BatchNorm2d;
use crate::module::{Module, Step, Visit};
use wengert_core::{Float, Result, Rng, Var};
use wengert_ops::Conv2dOptions;

/// `batch_norm(conv2d(x, w))` with `w` bias-free, fused: in a training step
/// with batch statistics, the convolution's kernel takes each output row's
/// moments while it writes the row ([`wengert_ops::conv2d_with_moments`]),
/// and the batch norm merges them instead of reading its input again, for
/// the same results to the bit. For a module that holds the convolution's
/// weight and the batch norm under names of its own (the ResNet zoo's
/// stem: `conv1`, `bn1`). Where the kernel does not gather moments (`f64`,
/// the unfolded path), in evaluation, and for a frozen batch norm, it is
/// the two layers one after the other.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_nn::layer::{conv_bn, BatchNorm2d};
/// use wengert_nn::{Param, Step};
/// use wengert_ops::Conv2dOptions;
/// let (tape, w) = (Tape::new(), Param::new(Tensor::<f32>::ones([8, 3, 3, 3])));
/// let mut bn = BatchNorm2d::new(8).with_relu();
/// let mut step = Step::train(&tape, 0);
/// let x = tape.constant(Tensor::ones([2, 3, 8, 8]));
/// let w = step.param(&w);
/// let y = conv_bn(&mut step, x, w, &Conv2dOptions::square(1, 1), &mut bn)?;
/// assert_eq!(y.shape().dims(), &[2, 8, 8, 8]);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn conv_bn<'t, T: Float>(
    step: &mut Step<'t, T>,
    x: Var<'t, T>,
    w: Var<'t, T>,
    options: &Conv2dOptions,
    bn: &mut BatchNorm2d<T>,
) -> Result<Var<'t, T>> {
    if !bn.uses_batch_statistics(step) {
        let y = wengert_ops::conv2d(x, w, None, options)?;
        return bn.forward(step, y);
    }
    let (y, moments) = wengert_ops::conv2d_with_moments(x, w, options)?;
    bn.forward_with(step, y, moments)
}

/// A bias-free [`Conv2d`] and the [`BatchNorm2d`] after it (`conv.*`,
/// `bn.*`), fused in training as [`conv_bn`] is: what to put in a
/// [`Sequential`](super::Sequential) where a convolution feeds a batch
/// norm.
#[derive(Clone, Debug)]
pub struct ConvBn2d<T: Float> {
    /// The convolution; with a bias it runs unfused.
    pub conv: Conv2d<T>,
    /// The batch norm.
    pub bn: BatchNorm2d<T>,
}

impl<T: Float> ConvBn2d<T> {
    /// A square `k×k` convolution from `c_in` to `c_out` channels without
    /// bias, and a batch norm of `c_out` channels (PyTorch's defaults).
    pub fn new(c_in: usize, c_out: usize, k: usize, options: Conv2dOptions, rng: &mut Rng) -> Result<Self> {
        Ok(ConvBn2d { conv: Conv2d::new(c_in, c_out, k, options, false, rng)?, bn: BatchNorm2d::new(c_out) })
    }

    /// The same layer with a ReLU after the batch norm, in the same op.
    pub fn with_relu(mut self) -> Self {
        self.bn = self.bn.with_relu();
        self
    }
}

impl<T: Float> Module<T> for ConvBn2d<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        if self.conv.bias.is_some() {
            let y = self.conv.forward(step, x)?;
            return self.bn.forward(step, y);
        }
        let w = step.param(&self.conv.weight);
        conv_bn(step, x, w, &self.conv.options, &mut self.bn)
    }
}

impl<T: Float> Visit<T> for ConvBn2d<T> {
    crate::visit_fields!(conv, bn);
}
