//! Normalisation layers: `BatchNorm2d` (batch statistics in training,
//! running estimates in evaluation) and `LayerNorm`.

use crate::module::{Module, Param, Step, Visit};
use wengert_core::{Error, Float, Result, Tensor, Var};
use wengert_ops::{BatchNormTrainOptions, RowMoments};

/// Batch normalisation over `[N, C, H, W]` (or `[N, C]`) with learned scale
/// and shift and running estimates of the mean and variance.
///
/// In a training step it normalises with the batch statistics and updates
/// the running estimates, PyTorch's way: `r ← (1 − momentum)·r +
/// momentum·batch`, with the *unbiased* batch variance, and
/// `num_batches_tracked += 1`. In an evaluation step it normalises with the
/// running estimates.
///
/// A frozen layer (γ and β both frozen, [`Param::set_requires_grad`])
/// normalises with its running estimates in training steps too, and leaves
/// them unchanged: torchvision's `FrozenBatchNorm2d`, the usual recipe for
/// fine-tuning a pretrained backbone, whose statistics a small data set
/// would only disturb.
#[derive(Clone, Debug)]
pub struct BatchNorm2d<T: Float> {
    /// Scale `[C]` (γ), initialised to 1.
    pub weight: Param<T>,
    /// Shift `[C]` (β), initialised to 0.
    pub bias: Param<T>,
    /// Running mean `[C]`.
    pub running_mean: Tensor<T>,
    /// Running variance `[C]`.
    pub running_var: Tensor<T>,
    /// The number of training batches seen.
    pub num_batches_tracked: i64,
    /// Weight of the newest batch in the running estimates (PyTorch: 0.1).
    pub momentum: f64,
    /// Added to the variance (PyTorch: 1e-5).
    pub eps: f64,
    /// Whether a ReLU follows, fused with the normalisation
    /// ([`with_relu`](Self::with_relu)); `false` from [`new`](Self::new).
    pub relu: bool,
}

impl<T: Float> BatchNorm2d<T> {
    /// A layer over `channels` with PyTorch's defaults (momentum 0.1, eps 1e-5).
    pub fn new(channels: usize) -> Self {
        BatchNorm2d {
            weight: Param::new(Tensor::ones([channels])),
            bias: Param::new(Tensor::zeros([channels])),
            running_mean: Tensor::zeros([channels]),
            running_var: Tensor::ones([channels]),
            num_batches_tracked: 0,
            momentum: 0.1,
            eps: 1e-5,
            relu: false,
        }
    }

    /// The layer followed by a ReLU, computed as one op in training
    /// ([`wengert_ops::batch_norm_relu_train`]): one pass over memory
    /// instead of two each way, and one activation kept instead of two.
    /// The results are those of the layer and then
    /// [`Activation::Relu`](crate::layer::Activation::Relu), to the bit,
    /// and the state names are the layer's own.
    ///
    /// ```
    /// use wengert_core::{Tape, Tensor};
    /// use wengert_nn::layer::{Activation, BatchNorm2d, Sequential};
    /// use wengert_nn::{Module, Step};
    ///
    /// let x = Tensor::<f32>::from_fn([4, 3, 5, 5], |i| ((i * 7919) % 11) as f32 - 5.0);
    /// let tape = Tape::new();
    /// let (x, mut step) = (tape.constant(x), Step::train(&tape, 0));
    /// let fused = BatchNorm2d::new(3).with_relu().forward(&mut step, x)?;
    /// let apart = Sequential::new().push(BatchNorm2d::new(3)).push(Activation::Relu).forward(&mut step, x)?;
    /// assert_eq!(fused.value()?, apart.value()?);
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn with_relu(mut self) -> Self {
        self.relu = true;
        self
    }

    /// Folds one training batch's statistics into the running estimates, as
    /// PyTorch does: `r ← (1 − momentum)·r + momentum·batch`, with the
    /// unbiased batch variance, and `num_batches_tracked += 1`.
    pub fn update_running(&mut self, stats: &wengert_ops::BatchStats<T>) -> Result<()> {
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(Error::argument(
                "BatchNorm2d",
                "momentum",
                format!("must be in [0, 1], got {}: the running estimates would leave their range", self.momentum),
            ));
        }
        let c = self.weight.value().numel();
        for (name, t) in [("running_mean", &self.running_mean), ("running_var", &self.running_var)] {
            if t.dims() != [c] {
                return Err(Error::shape(
                    "BatchNorm2d",
                    format!("{name} has shape {}, the layer has {c} channels", t.shape()),
                ));
            }
        }
        if stats.mean.dims() != [c] {
            return Err(Error::shape(
                "BatchNorm2d",
                format!("statistics of {} channels, the layer has {c}", stats.mean.numel()),
            ));
        }
        if stats.count < 2 {
            return Err(Error::shape(
                "BatchNorm2d",
                format!("{} value(s) per channel; training needs at least two", stats.count),
            ));
        }
        let m = T::of(self.momentum);
        let unbias = T::of(stats.count as f64 / (stats.count - 1) as f64);
        let keep = T::one() - m;
        self.running_mean.data_mut().iter_mut().zip(stats.mean.data()).for_each(|(r, &v)| *r = keep * *r + m * v);
        self.running_var
            .data_mut()
            .iter_mut()
            .zip(stats.var.data())
            .for_each(|(r, &v)| *r = keep * *r + m * v * unbias);
        self.num_batches_tracked += 1;
        Ok(())
    }

    /// Sets γ to zero: the residual branch this layer ends then starts as
    /// the zero function, and its block as the identity (Goyal et al. 2017).
    pub fn zero_init(&mut self) {
        self.weight.value_mut().data_mut().iter_mut().for_each(|v| *v = T::zero());
    }
}

impl<T: Float> BatchNorm2d<T> {
    /// Whether this step normalises with the batch's statistics: a
    /// training step, and γ or β still training (a frozen batch norm uses
    /// its running statistics, as in evaluation).
    pub(crate) fn uses_batch_statistics(&self, step: &Step<'_, T>) -> bool {
        step.is_training() && (self.weight.requires_grad() || self.bias.requires_grad())
    }

    /// The forward pass, with `moments` of `x`'s rows that the convolution
    /// before it gathered ([`conv_bn`](fn@crate::layer::conv_bn)), which a
    /// pass with batch statistics then does not compute again.
    pub(crate) fn forward_with<'t>(
        &mut self,
        step: &mut Step<'t, T>,
        x: Var<'t, T>,
        moments: Option<RowMoments<'t, T>>,
    ) -> Result<Var<'t, T>> {
        let (w, b) = (step.param(&self.weight), step.param(&self.bias));
        if !self.uses_batch_statistics(step) {
            let (mean, var) = (&self.running_mean, &self.running_var);
            return if self.relu {
                wengert_ops::batch_norm_relu_eval(x, Some(w), Some(b), mean, var, self.eps)
            } else {
                wengert_ops::batch_norm_eval(x, Some(w), Some(b), mean, var, self.eps)
            };
        }
        let mut opts = BatchNormTrainOptions::default().with_relu(self.relu);
        opts.group = step.sync_bn().cloned();
        opts.moments = moments;
        let (y, stats) = wengert_ops::batch_norm_train_opts(x, Some(w), Some(b), self.eps, opts)?;
        self.update_running(&stats)?;
        Ok(y)
    }
}

impl<T: Float> Module<T> for BatchNorm2d<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.forward_with(step, x, None)
    }
}

impl<T: Float> Visit<T> for BatchNorm2d<T> {
    crate::visit_fields!(weight, bias, running_mean, running_var, num_batches_tracked);
}

/// Layer normalisation over the trailing `normalized_shape` axes, with
/// elementwise scale and shift of that shape.
#[derive(Clone, Debug)]
pub struct LayerNorm<T: Float> {
    /// Scale, initialised to 1.
    pub weight: Param<T>,
    /// Shift, initialised to 0.
    pub bias: Param<T>,
    /// The normalised trailing shape.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance (PyTorch: 1e-5).
    pub eps: f64,
}

impl<T: Float> LayerNorm<T> {
    /// A layer over the trailing `normalized_shape`.
    pub fn new(normalized_shape: &[usize]) -> Self {
        LayerNorm {
            weight: Param::new(Tensor::ones(normalized_shape)),
            bias: Param::new(Tensor::zeros(normalized_shape)),
            normalized_shape: normalized_shape.to_vec(),
            eps: 1e-5,
        }
    }
}

impl<T: Float> Module<T> for LayerNorm<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let (w, b) = (step.param(&self.weight), step.param(&self.bias));
        wengert_ops::layer_norm(x, &self.normalized_shape, Some(w), Some(b), self.eps)
    }
}

impl<T: Float> Visit<T> for LayerNorm<T> {
    crate::visit_fields!(weight, bias);
}
