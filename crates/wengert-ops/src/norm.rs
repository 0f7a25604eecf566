//! Normalisation: `batch_norm` (training and evaluation) and `layer_norm`.
//!
//! PyTorch: `torch.nn.functional.batch_norm` and `layer_norm`.
//!
//! Statistics are two-pass for numerical stability: the mean first, then the
//! mean of squared deviations (never `E[x²] − E[x]²`, which cancels
//! catastrophically when the mean is large). Batch norm takes the two
//! passes over each image's channel while it is in cache and merges them
//! (Chan, Golub and LeVeque 1979), so its input is read from memory once.
//!
//! Training-mode batch norm is one fused op: a parallel pass for the channel
//! statistics (accumulated in f64), one pass to normalise, and one fused
//! backward pass, keeping only the per-channel mean and inverse deviation.
//! Written as a composition of core ops it kept about five full-size
//! intermediates per layer and made nine passes over them. When the
//! backward pass is itself recorded (second derivatives), the op
//! differentiates the composition instead, so every order still works.
//! Layer norm and evaluation-mode batch norm are compositions.

use crate::activation::{relu_factor, relu_of};
use rayon::prelude::*;
use std::sync::Arc;
use wengert_core::collective::Collective;
use wengert_core::ops::fused::vjp_of_recording;
use wengert_core::vectorised_fn;
use wengert_core::{smallvec, Arity, Error, Float, InputGrads, Op, Result, Tensor, TensorGrads, Var};

/// What a training-mode batch norm returns besides its output: the batch
/// statistics, for updating running estimates.
#[derive(Clone, Debug)]
pub struct BatchStats<T: Float> {
    /// Per-channel mean over N, H, W.
    pub mean: Tensor<T>,
    /// Per-channel biased variance (divided by the count).
    pub var: Tensor<T>,
    /// The number of values per channel (N·H·W), to unbias the variance.
    pub count: usize,
}

/// The mean and the sum of squared deviations of every row (one image's
/// channel) of an `[N, C, ...]` value on a tape, gathered by the op that
/// made it while each row was still in cache ([`crate::conv2d_with_moments`]).
/// Handed to a training-mode batch norm of that value
/// ([`BatchNormTrainOptions::moments`]), they spare it its own pass over
/// the input; its statistics are the same to the bit, since it merges the
/// same rows in the same order.
///
/// Only the ops crate makes them, and they name the value they describe: a
/// batch norm refuses moments of any other.
#[derive(Clone)]
pub struct RowMoments<'t, T: Float> {
    of: Var<'t, T>,
    /// `[N·C, 2]`, row `i·C + c`: `(mean, Σ (x − mean)²)`. A tensor, so
    /// that its buffer goes back to the pool.
    rows: Tensor<f64>,
}

impl<'t, T: Float> RowMoments<'t, T> {
    /// Moments `rows` (`[N·C, 2]`, image-major) of the value `of`.
    pub(crate) fn new(of: Var<'t, T>, rows: Tensor<f64>) -> Self {
        RowMoments { of, rows }
    }

    /// The value these are the moments of.
    pub fn of(&self) -> Var<'t, T> {
        self.of
    }

    /// Whether these are the moments of `x`: the same entry of the same tape.
    pub fn describe(&self, x: Var<'t, T>) -> bool {
        std::ptr::eq(self.of.tape(), x.tape()) && self.of.index() == x.index()
    }
}

impl<T: Float> std::fmt::Debug for RowMoments<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowMoments").field("of", &self.of.index()).field("rows", &self.rows.dims()[0]).finish()
    }
}

/// The choices of [`batch_norm_train_opts`], the one entry behind every
/// training-mode batch norm: the default is a plain [`batch_norm_train`].
#[non_exhaustive]
pub struct BatchNormTrainOptions<'t, T: Float> {
    /// A ReLU after the normalisation, in the same op
    /// ([`batch_norm_relu_train`]).
    pub relu: bool,
    /// Normalise over the batch of every rank of this group
    /// ([`sync_batch_norm_train`]).
    pub group: Option<Arc<dyn Collective>>,
    /// The input's row moments, gathered by the op that made it; `None`
    /// computes them from the input.
    pub moments: Option<RowMoments<'t, T>>,
}

/// Builder methods, one per setting: each returns the settings with that
/// one changed, so that code written today keeps compiling when a
/// setting is added (the struct is `#[non_exhaustive]`).
impl<'t, T: Float> BatchNormTrainOptions<'t, T> {
    /// Sets whether a ReLU follows in the same op ([`BatchNormTrainOptions::relu`](Self::relu)).
    pub fn with_relu(mut self, value: bool) -> Self {
        self.relu = value;
        self
    }

    /// Sets the group whose ranks' batches are normalised together ([`BatchNormTrainOptions::group`](Self::group)).
    pub fn with_group(mut self, value: Arc<dyn Collective>) -> Self {
        self.group = Some(value);
        self
    }

    /// Sets the input's row moments, gathered by the op that made it ([`BatchNormTrainOptions::moments`](Self::moments)).
    pub fn with_moments(mut self, value: RowMoments<'t, T>) -> Self {
        self.moments = Some(value);
        self
    }
}

impl<T: Float> Default for BatchNormTrainOptions<'_, T> {
    fn default() -> Self {
        BatchNormTrainOptions { relu: false, group: None, moments: None }
    }
}

/// Training-mode batch norm with every choice spelled out
/// ([`BatchNormTrainOptions`]): what [`batch_norm_train`] and its ReLU and
/// synchronised forms call.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_ops::{batch_norm_train, batch_norm_train_opts, BatchNormTrainOptions};
///
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0], [2, 2, 1, 1])?);
/// let (a, _) = batch_norm_train(x, None, None, 1e-5)?;
/// let (b, _) = batch_norm_train_opts(x, None, None, 1e-5, BatchNormTrainOptions::default())?;
/// assert_eq!(a.value()?, b.value()?);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn batch_norm_train_opts<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    eps: f64,
    opts: BatchNormTrainOptions<'t, T>,
) -> Result<(Var<'t, T>, BatchStats<T>)> {
    let BatchNormTrainOptions { relu, group, moments } = opts;
    let (c, _) =
        check_bn(x, &[("weight", weight.map(|w| w.shape()).as_deref()), ("bias", bias.map(|b| b.shape()).as_deref())])?;
    check_eps("batch_norm", eps)?;
    let s = x.shape();
    let local = s.numel() / c.max(1);
    if local < 1 && group.is_none() {
        return Err(Error::shape("batch_norm", format!("input is {s}: no values per channel")));
    }
    let tape = x.tape();
    let w = weight.unwrap_or_else(|| tape.constant(Tensor::ones([c])));
    let b = bias.unwrap_or_else(|| tape.constant(Tensor::zeros([c])));
    if let Some(m) = &moments {
        if !m.describe(x) {
            return Err(Error::argument(
                "batch_norm",
                "moments",
                format!("describe entry {} of a tape, not the input (entry {})", m.of.index(), x.index()),
            ));
        }
    }
    let rows = moments.as_ref().map(|m| m.rows.data());
    let (mean, var, count) = channel_stats(&x.value()?, c, rows, group.as_deref())?;
    if count < 1.0 {
        return Err(Error::shape("batch_norm", format!("input is {s} on every rank: no values per channel")));
    }
    if count < 2.0 && eps == 0.0 {
        return Err(Error::argument(
            "batch_norm",
            "eps",
            format!("input is {s}: one value per channel has no spread, and with eps 0 normalising it divides 0 by 0"),
        ));
    }
    let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let y = tape.apply(BatchNormTrain { mean: mean.clone(), inv_std, eps, group, relu }, &[x, w, b])?;
    let to_tensor = |v: Vec<f64>| Tensor::from_vec(v.into_iter().map(T::of).collect(), [c]);
    let stats = BatchStats { mean: to_tensor(mean)?, var: to_tensor(var)?, count: count as usize };
    Ok((y, stats))
}

/// Checks x, weight and bias, and returns the channel count and the shape
/// that broadcasts a `[C]` vector over `x`.
fn check_bn<T: Float>(x: Var<'_, T>, params: &[(&str, Option<&[usize]>)]) -> Result<(usize, Vec<usize>)> {
    let s = x.shape();
    if s.rank() < 2 {
        return Err(Error::shape("batch_norm", format!("input is {s}; need [N, C, ...]")));
    }
    let c = s[1];
    for (name, shape) in params {
        if let Some(p) = shape {
            if *p != [c] {
                return Err(Error::shape("batch_norm", format!("{name} is {p:?}, input is {s}; need {name} [{c}]")));
            }
        }
    }
    let mut bshape = vec![1; s.rank()];
    bshape[1] = c;
    Ok((c, bshape))
}

/// `y·weight + bias` with `[C]` parameters broadcast along axis 1.
fn affine<'t, T: Float>(
    y: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    bshape: &[usize],
) -> Result<Var<'t, T>> {
    let y = match weight {
        Some(w) => y.mul(w.reshape(bshape)?)?,
        None => y,
    };
    match bias {
        Some(b) => y.add(b.reshape(bshape)?),
        None => Ok(y),
    }
}

/// Batch normalisation in training mode (Ioffe & Szegedy 2015): normalises
/// each channel of `x` (`[N, C, ...]`) by its mean and biased variance over
/// every axis but 1, then scales by `weight` and shifts by `bias` (`[C]`).
/// Returns the output and the batch statistics.
pub fn batch_norm_train<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    eps: f64,
) -> Result<(Var<'t, T>, BatchStats<T>)> {
    batch_norm_train_opts(x, weight, bias, eps, BatchNormTrainOptions::default())
}

/// Synchronised batch norm (PyTorch: `torch.nn.SyncBatchNorm`): training
/// mode over a batch split across the ranks of `group`, each holding its
/// share in `x`. The statistics are those of the whole batch, summed over
/// the ranks, and so are the two per-channel sums of the backward pass, so
/// N ranks compute exactly what one process computes on the whole batch.
/// The gradients of `weight` and `bias` are this rank's part of the sum:
/// summing them across ranks, as the gradients of every parameter are,
/// gives the whole batch's.
///
/// Each rank must call it for the same layers in the same order; its
/// backward pass cannot itself be recorded (no second derivatives).
pub fn sync_batch_norm_train<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    eps: f64,
    group: &Arc<dyn Collective>,
) -> Result<(Var<'t, T>, BatchStats<T>)> {
    batch_norm_train_opts(
        x,
        weight,
        bias,
        eps,
        BatchNormTrainOptions { group: Some(group.clone()), ..Default::default() },
    )
}

/// `relu(batch_norm_train(x, weight, bias, eps))` as one op: the
/// normalisation and the ReLU in one pass over memory, and one fused
/// backward that takes the ReLU's mask from the output. It keeps one
/// activation where the two ops keep two. Results are those of the two
/// ops, to the bit.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_ops::{batch_norm_relu_train, batch_norm_train, relu};
///
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0, -1.0, 2.0, 0.0, 4.0], [2, 2, 2, 1])?);
/// let (fused, stats) = batch_norm_relu_train(x, None, None, 1e-5)?;
/// let (bn, _) = batch_norm_train(x, None, None, 1e-5)?;
/// assert_eq!(fused.value()?, relu(bn)?.value()?);
/// assert_eq!(stats.count, 4);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn batch_norm_relu_train<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    eps: f64,
) -> Result<(Var<'t, T>, BatchStats<T>)> {
    batch_norm_train_opts(x, weight, bias, eps, BatchNormTrainOptions { relu: true, ..Default::default() })
}

/// [`sync_batch_norm_train`] followed by ReLU, as one op (see
/// [`batch_norm_relu_train`]).
pub fn sync_batch_norm_relu_train<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    eps: f64,
    group: &Arc<dyn Collective>,
) -> Result<(Var<'t, T>, BatchStats<T>)> {
    batch_norm_train_opts(
        x,
        weight,
        bias,
        eps,
        BatchNormTrainOptions { relu: true, group: Some(group.clone()), moments: None },
    )
}

/// Lanes of the f64 sums below: independent accumulators the compiler
/// keeps in vector registers. One running f64 total waits on the latency
/// of each addition (four cycles an element); eight lanes do not.
const LANES: usize = 8;

/// `Σ f(a[i], b[i], c[i])` in f64 over slices of one length, in [`LANES`]
/// independent partial sums added at the end. `f` gets the elements as
/// they are and returns its term in f64. Always inlined, so that it is
/// vectorised for the level of the [`vectorised_fn`] that calls it.
#[inline(always)]
fn lane_sum<T: Float>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let (ac, bc, cc) = (a.chunks_exact(LANES), b.chunks_exact(LANES), c.chunks_exact(LANES));
    let (ar, br, cr) = (ac.remainder(), bc.remainder(), cc.remainder());
    for ((ca, cb), ccc) in ac.zip(bc).zip(cc) {
        for k in 0..LANES {
            acc[k] += f(ca[k], cb[k], ccc[k]);
        }
    }
    let tail: f64 = ar.iter().zip(br).zip(cr).map(|((&x, &y), &z)| f(x, y, z)).sum();
    acc.iter().sum::<f64>() + tail
}

/// Chunks of images the per-channel sums of batch norm are split into,
/// whatever the thread count, so that the result does not depend on it.
const IMAGE_CHUNKS: usize = 8;

/// `f(chunk's images, per-channel accumulators)` over [`IMAGE_CHUNKS`]
/// chunks of the batch in parallel, each chunk's rows in memory order;
/// returns the chunks' accumulators, in order, for the caller to merge.
///
/// Memory order, not one task per channel: a channel's rows lie a whole
/// image apart, and a task that jumps from one to the next restarts the
/// hardware prefetcher at every row; a chunk of whole images is one
/// sequential stream.
fn per_image_chunk<A: Send>(n: usize, f: impl Fn(std::ops::Range<usize>) -> A + Sync) -> Vec<A> {
    let chunk = n.div_ceil(n.clamp(1, IMAGE_CHUNKS)).max(1);
    (0..n.div_ceil(chunk)).into_par_iter().map(|k| f(k * chunk..((k + 1) * chunk).min(n))).collect()
}

/// Per-channel count, mean and sum of squared deviations (M2) of
/// `[N, C, ...]`, in f64, in one pass over memory: each row (one image's
/// channel) two-pass while it is in cache, the rows merged with Chan,
/// Golub and LeVeque's update, which keeps the two-pass method's accuracy.
/// In parallel over chunks of images ([`per_image_chunk`]), merged in order.
///
/// `rows`, when given, are the rows' moments already gathered
/// ([`RowMoments`], mean and M2 side by side): they are merged in the
/// same order, so the result is the same to the bit, and `x` is not read.
fn channel_moments<T: Float>(x: &Tensor<T>, c: usize, rows: Option<&[f64]>) -> Vec<(f64, f64, f64)> {
    let n = x.dims()[0];
    let inner = x.numel() / (n * c).max(1);
    let data = x.data();
    let merge = |(count, mean, m2): (f64, f64, f64), (rn, rmean, rm2): (f64, f64, f64)| {
        if rn == 0.0 {
            return (count, mean, m2);
        }
        let total = count + rn;
        let delta = rmean - mean;
        (total, mean + delta * rn / total, m2 + rm2 + delta * delta * count * rn / total)
    };
    let mut all = vec![(0.0, 0.0, 0.0); c];
    if inner == 0 {
        return all;
    }
    let rows = rows.filter(|r| r.len() == 2 * n * c);
    let chunks = per_image_chunk(n, |images| {
        let mut acc = vec![(0.0f64, 0.0f64, 0.0f64); c];
        for i in images {
            for (ch, a) in acc.iter_mut().enumerate() {
                let (rmean, rm2) = match rows {
                    Some(r) => (r[2 * (i * c + ch)], r[2 * (i * c + ch) + 1]),
                    None => row_moments(&data[(i * c + ch) * inner..][..inner]),
                };
                *a = merge(*a, (inner as f64, rmean, rm2));
            }
        }
        acc
    });
    for chunk in chunks {
        for (a, &b) in all.iter_mut().zip(&chunk) {
            *a = merge(*a, b);
        }
    }
    all
}

vectorised_fn! {
    /// The mean of a row and the sum of its squared deviations from it.
    pub(crate) fn row_moments<T: Float>(row: &[T]) -> (f64, f64) {
        let mean = lane_sum(row, row, row, |v, _, _| v.as_f64()) / row.len() as f64;
        (mean, lane_sum(row, row, row, |v, _, _| (v.as_f64() - mean) * (v.as_f64() - mean)))
    }
}

/// A channel's `x·scale + shift`, the batch norm's output before its ReLU,
/// formed as the forward pass forms it: its sign is the ReLU's mask, so
/// the backward pass reads `x` again rather than the output too.
#[derive(Clone, Copy)]
struct Affine<T> {
    scale: T,
    shift: T,
}

impl<T: Float> Affine<T> {
    /// The channel's constants from its weight, bias, mean and `1/σ`.
    fn of(w: T, b: T, mean: f64, inv_std: f64) -> Self {
        let scale = T::of(inv_std) * w;
        Affine { scale, shift: b - T::of(mean) * scale }
    }

    /// 1 where the ReLU after the batch norm passes `x`'s gradient, else 0.
    #[inline(always)]
    fn mask(self, x: T) -> T {
        relu_factor(x * self.scale + self.shift, T::zero())
    }
}

vectorised_fn! {
    /// `(Σg, Σg·(x − m))` over a row, with `g` the gradient after the
    /// ReLU's mask when `relu` (from `x` through `a`).
    fn grad_sums<T: Float>(g: &[T], x: &[T], m: f64, a: Affine<T>, relu: bool) -> (f64, f64) {
        // The product ReLU's backward forms, in its precision.
        let masked = move |g: T, x: T| (g * a.mask(x)).as_f64();
        if relu {
            (lane_sum(g, x, g, |gv, xv, _| masked(gv, xv)), lane_sum(g, x, x, |gv, xv, _| masked(gv, xv) * (xv.as_f64() - m)))
        } else {
            (lane_sum(g, g, g, |gv, _, _| gv.as_f64()), lane_sum(g, x, x, |gv, xv, _| gv.as_f64() * (xv.as_f64() - m)))
        }
    }
}

vectorised_fn! {
    /// `ys = x·scale + shift`, then a ReLU when `relu`.
    fn normalize_row<T: Float>(xs: &[T], ys: &mut [T], scale: T, shift: T, relu: bool) {
        if relu {
            ys.iter_mut().zip(xs).for_each(|(y, &v)| *y = relu_of(v * scale + shift));
        } else {
            ys.iter_mut().zip(xs).for_each(|(y, &v)| *y = v * scale + shift);
        }
    }
}

/// A channel's constants of batch norm's input gradient
/// `dx = k·(total·g − Σg − (x − m)·r·Σg·x̂)`.
#[derive(Clone, Copy)]
struct DxTerms<T> {
    k: T,
    total: T,
    sg: T,
    m: T,
    r: T,
    sgx: T,
}

vectorised_fn! {
    /// Batch norm's input gradient over a row, `g` masked by the ReLU's
    /// mask (from `x` through `a`) when `relu`.
    fn dx_row<T: Float>(gs: &[T], xs: &[T], dst: &mut [T], t: DxTerms<T>, a: Affine<T>, relu: bool) {
        let dx = move |gv: T, xv: T| t.k * (t.total * gv - t.sg - (xv - t.m) * t.r * t.sgx);
        if relu {
            for ((d, &gv), &xv) in dst.iter_mut().zip(gs).zip(xs) {
                *d = dx(gv * a.mask(xv), xv);
            }
        } else {
            dst.iter_mut().zip(gs).zip(xs).for_each(|((d, &gv), &xv)| *d = dx(gv, xv));
        }
    }
}

/// Per-channel mean and biased variance of `[N, C, ...]`, in f64, and the
/// number of values per channel; over the whole batch of `group`'s ranks
/// when there is one (each rank's squared deviations taken about the
/// batch's mean).
fn channel_stats<T: Float>(
    x: &Tensor<T>,
    c: usize,
    rows: Option<&[f64]>,
    group: Option<&dyn Collective>,
) -> Result<(Vec<f64>, Vec<f64>, f64)> {
    let local = channel_moments(x, c, rows);
    let local_count = (x.numel() / c.max(1)) as f64;
    let mut sums: Vec<f64> = local.iter().map(|&(n, m, _)| n * m).chain([local_count]).collect();
    if let Some(g) = group {
        g.all_reduce_sum(&mut sums)?;
    }
    let count = sums.pop().unwrap_or(0.0);
    let mean: Vec<f64> = match group {
        Some(_) => sums.iter().map(|s| s / count.max(1.0)).collect(),
        None => local.iter().map(|&(_, m, _)| m).collect(),
    };
    let mut var: Vec<f64> = local.iter().zip(&mean).map(|(&(n, m, m2), &all)| m2 + n * (m - all) * (m - all)).collect();
    if let Some(g) = group {
        g.all_reduce_sum(&mut var)?;
    }
    var.iter_mut().for_each(|v| *v /= count.max(1.0));
    Ok((mean, var, count))
}

/// A batch norm op's name, with or without the ReLU after it.
fn bn_name(relu: bool) -> &'static str {
    if relu {
        "batch_norm_relu"
    } else {
        "batch_norm"
    }
}

/// A new tensor of `x`'s shape (`[N, C, ...]`) from `f(channel, row of x,
/// its row of the output)` over every row, in parallel over images.
fn map_rows<T: Float>(x: &Tensor<T>, f: impl Fn(usize, &[T], &mut [T]) + Sync) -> Result<Tensor<T>> {
    let out = per_row([x, x, x], x.dims()[1], |ch, xs, _, _, ys| f(ch, xs, ys));
    Tensor::from_vec(out, x.shape().clone())
}

/// Training-mode batch norm `y = (x − μ)·r·γ + β` over `[N, C, ...]` with the
/// batch's per-channel mean `μ` and inverse deviation `r` (inputs `x`, `γ`, `β`).
struct BatchNormTrain {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    eps: f64,
    /// The ranks sharing the batch, for synchronised batch norm.
    group: Option<Arc<dyn Collective>>,
    /// Whether a ReLU follows, in the same passes.
    relu: bool,
}

/// Calls `f(channel, a row, b row, c row, output row)` for every
/// contiguous row of three `[N, C, ...]` tensors of one shape, writing
/// every element of a new tensor, in parallel over images.
fn per_row<T: Float>(
    [a, b, c]: [&Tensor<T>; 3],
    channels: usize,
    f: impl Fn(usize, &[T], &[T], &[T], &mut [T]) + Sync,
) -> Vec<T> {
    let n = a.dims()[0];
    let inner = a.numel() / (n * channels).max(1);
    let image = (channels * inner).max(1);
    let (ad, bd, cd) = (a.data(), b.data(), c.data());
    wengert_core::buffer::build(a.numel(), image, |i, o| {
        let len = o.len();
        let (ai, bi, ci) = (&ad[i * image..][..len], &bd[i * image..][..len], &cd[i * image..][..len]);
        for ch in 0..channels {
            let row = ch * inner..(ch + 1) * inner;
            f(ch, &ai[row.clone()], &bi[row.clone()], &ci[row.clone()], &mut o[row]);
        }
    })
}

impl<T: Float> Op<T> for BatchNormTrain {
    fn name(&self) -> &'static str {
        bn_name(self.relu)
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(3)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (w, b) = (inputs[1].data(), inputs[2].data());
        map_rows(inputs[0], |ch, xs, ys| {
            let a = Affine::of(w[ch], b[ch], self.mean[ch], self.inv_std[ch]);
            normalize_row(xs, ys, a.scale, a.shift, self.relu);
        })
    }

    /// Differentiates the composition of core ops, which can be
    /// differentiated again. The ReLU's mask is a constant taken from this
    /// op's own output, as `relu`'s vjp takes it from its input (the
    /// unfused batch norm's output, the same values): from the composition
    /// instead, a value the two round to opposite sides of zero cut the
    /// gradient in one and not the other.
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        if self.group.is_some() {
            return Err(Error::Vjp {
                op: "sync_batch_norm".into(),
                detail: "its backward pass cannot be recorded: no second derivatives across ranks".into(),
            });
        }
        let y = batch_norm_composite(inputs[0], inputs[1], inputs[2], self.eps)?;
        let g = if self.relu {
            let mask = output.value()?.map(|v| relu_factor(v, T::zero()));
            g.mul(g.tape().constant(mask))?
        } else {
            g
        };
        vjp_of_recording(y, inputs, g, needs)
    }

    /// The fused kernel: two passes over the input and the gradient. The
    /// ReLU's mask comes from the input, formed again as the forward pass
    /// formed the output: one stream fewer in each pass than reading the
    /// output.
    fn tensor_backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        grad: &Tensor<T>,
        needs: &[bool],
    ) -> Option<Result<TensorGrads<T>>> {
        let values = (|| Ok((inputs[0].value()?, inputs[1].value()?, inputs[2].value()?)))();
        Some(values.and_then(|(x, w, b)| self.backward_kernel(&x, &w, &b, grad, needs)))
    }

    /// The unrecorded backward starts again from the input. (The recorded
    /// one, [`Op::vjp`] with a ReLU, takes its mask from the output; a
    /// function recorded as one node is recorded afresh for it.)
    fn reads_output(&self) -> bool {
        false
    }

    /// The normalisation with the statistics kept is one pass over `x`,
    /// the same pass the forward made.
    fn recomputable(&self) -> bool {
        true
    }
}

impl BatchNormTrain {
    /// With a ReLU, `g` below is the gradient after the ReLU's mask,
    /// `gy · mask(x·scale + shift)`, formed on the fly in both passes.
    fn backward_kernel<T: Float>(
        &self,
        x: &Tensor<T>,
        w: &Tensor<T>,
        b: &Tensor<T>,
        gy: &Tensor<T>,
        needs: &[bool],
    ) -> Result<TensorGrads<T>> {
        let c = x.dims()[1];
        let n = x.dims()[0];
        let inner = x.numel() / (n * c).max(1);
        let (xd, gd) = (x.data(), gy.data());
        let relu = self.relu;
        let (wd, bd) = (w.data(), b.data());
        let affine: Vec<Affine<T>> =
            (0..c).map(|ch| Affine::of(wd[ch], bd[ch], self.mean[ch], self.inv_std[ch])).collect();
        // Σg and Σg·x̂ per channel.
        let chunks = per_image_chunk(n, |images| {
            let mut acc = vec![(0.0f64, 0.0f64); c];
            for i in images {
                for (ch, (sg, sgx)) in acc.iter_mut().enumerate() {
                    let at = (i * c + ch) * inner..(i * c + ch + 1) * inner;
                    let (g, x) = (&gd[at.clone()], &xd[at]);
                    let (a, b) = grad_sums(g, x, self.mean[ch], affine[ch], relu);
                    *sg += a;
                    *sgx += b * self.inv_std[ch];
                }
            }
            acc
        });
        let (mut local_g, mut local_gx) = (vec![0.0f64; c], vec![0.0f64; c]);
        for chunk in chunks {
            for (ch, (a, b)) in chunk.into_iter().enumerate() {
                local_g[ch] += a;
                local_gx[ch] += b;
            }
        }
        // dx needs the sums over the whole batch; dγ and dβ are this rank's
        // share, summed across ranks with every other gradient.
        let local_count = (n * inner) as f64;
        let all = match &self.group {
            Some(group) => {
                let mut all: Vec<f64> = local_g.iter().chain(&local_gx).copied().chain([local_count]).collect();
                group.all_reduce_sum(&mut all)?;
                Some(all)
            }
            None => None,
        };
        let (sum_g, sum_gx, count) = match &all {
            Some(all) => (&all[..c], &all[c..2 * c], all[2 * c]),
            None => (&local_g[..], &local_gx[..], local_count),
        };
        let dx = needs[0]
            .then(|| -> Result<Tensor<T>> {
                // dx = γ·r/M · (M·g − Σg − x̂·Σg·x̂)
                let out = per_row([gy, x, x], c, |ch, gs, xs, _, dst| {
                    // Per-channel constants, converted once per row rather than per element.
                    let t = DxTerms {
                        k: T::of(self.inv_std[ch] / count) * wd[ch],
                        total: T::of(count),
                        sg: T::of(sum_g[ch]),
                        m: T::of(self.mean[ch]),
                        r: T::of(self.inv_std[ch]),
                        sgx: T::of(sum_gx[ch]),
                    };
                    dx_row(gs, xs, dst, t, affine[ch], relu);
                });
                Tensor::from_vec(out, x.shape().clone())
            })
            .transpose()?;
        let per_channel = |v: &[f64]| Tensor::from_vec(v.iter().map(|&a| T::of(a)).collect(), [c]);
        let dw = needs[1].then(|| per_channel(&local_gx)).transpose()?;
        let db = needs[2].then(|| per_channel(&local_g)).transpose()?;
        Ok(smallvec![dx, dw, db])
    }
}

/// Training-mode batch norm as a composition of core ops (the reference
/// the fused op differentiates when the backward pass is recorded).
fn batch_norm_composite<'t, T: Float>(x: Var<'t, T>, w: Var<'t, T>, b: Var<'t, T>, eps: f64) -> Result<Var<'t, T>> {
    let s = x.shape();
    let mut bshape = vec![1; s.rank()];
    bshape[1] = s[1];
    let axes: Vec<isize> = (0..s.rank() as isize).filter(|&a| a != 1).collect();
    let mean = x.mean(&axes, true)?;
    let centred = x.sub(mean)?;
    let var = centred.mul(centred)?.mean(&axes, true)?;
    let y = centred.div(var.add_scalar(T::of(eps))?.sqrt()?)?;
    affine(y, Some(w), Some(b), &bshape)
}

/// Batch normalisation in evaluation mode: normalises with the given running
/// statistics (constants: no gradient flows into them).
///
/// One op and one pass over memory, `((x − μ)·r)·γ + β` per element with
/// `r = 1/√(σ² + ε)`, rounded step by step as the composition of `sub`,
/// `mul`, `mul` and `add` rounds it, so the results are that
/// composition's to the bit; its gradients are the composition's.
pub fn batch_norm_eval<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    running_mean: &Tensor<T>,
    running_var: &Tensor<T>,
    eps: f64,
) -> Result<Var<'t, T>> {
    batch_norm_eval_with(x, weight, bias, running_mean, running_var, eps, false)
}

/// `relu(batch_norm_eval(..))` as one op and one pass over memory, the
/// same to the bit (see [`batch_norm_eval`]).
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_ops::{batch_norm_eval, batch_norm_relu_eval, relu};
///
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0], [2, 2, 1, 1])?);
/// let (mean, var) = (Tensor::from_vec(vec![0.5, 1.0], [2])?, Tensor::from_vec(vec![2.0, 0.25], [2])?);
/// let fused = batch_norm_relu_eval(x, None, None, &mean, &var, 1e-5)?;
/// assert_eq!(fused.value()?, relu(batch_norm_eval(x, None, None, &mean, &var, 1e-5)?)?.value()?);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn batch_norm_relu_eval<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    running_mean: &Tensor<T>,
    running_var: &Tensor<T>,
    eps: f64,
) -> Result<Var<'t, T>> {
    batch_norm_eval_with(x, weight, bias, running_mean, running_var, eps, true)
}

fn batch_norm_eval_with<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    running_mean: &Tensor<T>,
    running_var: &Tensor<T>,
    eps: f64,
    relu: bool,
) -> Result<Var<'t, T>> {
    let (c, _) = check_bn(
        x,
        &[
            ("weight", weight.map(|w| w.shape()).as_deref()),
            ("bias", bias.map(|b| b.shape()).as_deref()),
            ("running_mean", Some(running_mean.dims())),
            ("running_var", Some(running_var.dims())),
        ],
    )?;
    check_eps("batch_norm", eps)?;
    if let Some(v) = running_var.data().iter().find(|&&v| v < T::zero() || v.is_nan()) {
        return Err(Error::argument("batch_norm", "running_var", format!("variances must be non-negative, found {v}")));
    }
    let tape = x.tape();
    // No weight multiplies by one and no bias adds −0: both leave every
    // value as it is, −0 included.
    let w = weight.unwrap_or_else(|| tape.constant(Tensor::ones([c])));
    let b = bias.unwrap_or_else(|| tape.constant(Tensor::full([c], -T::zero())));
    let scale = running_var.data().iter().map(|&v| T::one() / (v + T::of(eps)).sqrt()).collect();
    tape.apply(BatchNormEval { mean: running_mean.to_vec(), scale, relu }, &[x, w, b])
}

/// Evaluation-mode batch norm `y = ((x − μ)·r)·γ + β` over `[N, C, ...]`
/// with constant per-channel `μ` and `r` (inputs `x`, `γ`, `β`), and a ReLU
/// after it when `relu`.
struct BatchNormEval<T> {
    mean: Vec<T>,
    /// `1/√(σ² + ε)` per channel.
    scale: Vec<T>,
    relu: bool,
}

impl<T: Float> BatchNormEval<T> {
    /// The composition this op computes, as ordinary ops on `x`'s tape.
    fn composite<'t>(&self, x: Var<'t, T>, w: Var<'t, T>, b: Var<'t, T>) -> Result<Var<'t, T>> {
        let tape = x.tape();
        let mut bshape = vec![1; x.shape().rank()];
        bshape[1] = self.mean.len();
        let column = |v: &[T]| Tensor::from_vec(v.to_vec(), bshape.clone()).map(|t| tape.constant(t));
        let y = x.sub(column(&self.mean)?)?.mul(column(&self.scale)?)?;
        let y = affine(y, Some(w), Some(b), &bshape)?;
        if self.relu {
            crate::relu(y)
        } else {
            Ok(y)
        }
    }
}

impl<T: Float> Op<T> for BatchNormEval<T> {
    fn name(&self) -> &'static str {
        bn_name(self.relu)
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(3)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (w, b) = (inputs[1].data(), inputs[2].data());
        map_rows(inputs[0], |ch, xs, ys| eval_row(xs, ys, [self.mean[ch], self.scale[ch], w[ch], b[ch]], self.relu))
    }

    /// Differentiates the composition, which can be differentiated again.
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        let y = self.composite(inputs[0], inputs[1], inputs[2])?;
        vjp_of_recording(y, inputs, g, needs)
    }

    /// The composition's unrecorded backward, on a tape of its own.
    /// (Evaluation-mode batch norm is differentiated rarely, when a model
    /// is tuned with its statistics frozen; this keeps its gradients the
    /// composition's, bit for bit.)
    fn tensor_backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        grad: &Tensor<T>,
        needs: &[bool],
    ) -> Option<Result<TensorGrads<T>>> {
        let run = || {
            let tape = wengert_core::Tape::new();
            let vars = inputs.iter().map(|v| Ok(tape.leaf(v.value()?))).collect::<Result<Vec<_>>>()?;
            let y = self.composite(vars[0], vars[1], vars[2])?;
            let opts = wengert_core::BackwardOptions::default().with_seed(grad.clone()).with_wrt(&vars);
            let g = tape.backward_with(y, opts)?;
            Ok(vars.iter().zip(needs).map(|(v, &n)| if n { g.get(*v).cloned() } else { None }).collect())
        };
        Some(run())
    }

    /// The backward pass forms the composition again from the inputs.
    fn reads_output(&self) -> bool {
        false
    }

    /// One pass over `x`, the same pass the forward made.
    fn recomputable(&self) -> bool {
        true
    }
}

vectorised_fn! {
    /// `ys = ((x − m)·s)·w + b`, each step rounded, then a ReLU when `relu`.
    fn eval_row<T: Float>(xs: &[T], ys: &mut [T], k: [T; 4], relu: bool) {
        let [m, s, w, b] = k;
        if relu {
            ys.iter_mut().zip(xs).for_each(|(y, &v)| *y = relu_of((v - m) * s * w + b));
        } else {
            ys.iter_mut().zip(xs).for_each(|(y, &v)| *y = (v - m) * s * w + b);
        }
    }
}

/// Layer normalisation (Ba et al. 2016) over the trailing axes given by
/// `normalized_shape`, with optional elementwise `weight` and `bias` of that shape.
pub fn layer_norm<'t, T: Float>(
    x: Var<'t, T>,
    normalized_shape: &[usize],
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    eps: f64,
) -> Result<Var<'t, T>> {
    let s = x.shape();
    let k = normalized_shape.len();
    if k == 0 || k > s.rank() || s[s.rank() - k..] != *normalized_shape {
        return Err(Error::shape(
            "layer_norm",
            format!("normalized_shape {normalized_shape:?} is not a suffix of the input shape {s}"),
        ));
    }
    for (name, p) in [("weight", weight), ("bias", bias)] {
        if let Some(p) = p {
            if p.shape().dims() != normalized_shape {
                return Err(Error::shape("layer_norm", format!("{name} is {}, need {normalized_shape:?}", p.shape())));
            }
        }
    }
    check_eps("layer_norm", eps)?;
    let axes: Vec<isize> = (1..=k as isize).map(|a| -a).collect();
    let mean = x.mean(&axes, true)?;
    let centred = x.sub(mean)?;
    let var = centred.mul(centred)?.mean(&axes, true)?;
    let mut y = centred.div(var.add_scalar(T::of(eps))?.sqrt()?)?;
    if let Some(w) = weight {
        y = y.mul(w)?;
    }
    if let Some(b) = bias {
        y = y.add(b)?;
    }
    Ok(y)
}

fn check_eps(op: &str, eps: f64) -> Result<()> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(())
    } else {
        Err(Error::argument(op, "eps", format!("must be finite and non-negative, got {eps}")))
    }
}
