//! Residual blocks, each recorded on the tape as one node.
//!
//! A block computes `S(x) + F(x)`: a branch `F` of convolutions and batch
//! norms, plus a shortcut `S` — the identity, option A (stride-2
//! subsampling and zero channels) or option B (1×1 projection + batch norm)
//! of He et al. 2016. The sum is recorded as a single node
//! ([`Var::call`](wengert_core::Var::call)); its backward is the vector-Jacobian
//! product of the branch plus that of the shortcut, which for the identity is
//! `δ_in = δ_out·(∂F/∂x + I)`: the error signal passes through unchanged when
//! `F` is small. With `recompute`, the node keeps only its input and runs
//! `F` again during backward.
//!
//! Kinds (parameter names as in torchvision):
//! - [`Kind::Basic`]: `conv1` 3×3 (stride) – `bn1` – ReLU – `conv2` 3×3 –
//!   `bn2`; ReLU after the sum.
//! - [`Kind::Bottleneck`]: `conv1` 1×1 – `bn1` – ReLU – `conv2` 3×3 (stride) –
//!   `bn2` – ReLU – `conv3` 1×1 (4× width) – `bn3`; ReLU after the sum.
//! - [`Kind::PreAct`]: `bn1` – ReLU – `conv1` 3×3 (stride) – `bn2` – ReLU –
//!   `conv2` 3×3 (He et al. 2016, *Identity Mappings*); nothing after the sum.
//!   A projection shortcut takes the pre-activated input `relu(bn1(x))`, as
//!   in the paper's code.
//! - [`Kind::PreActBottleneck`]: `bn1` – ReLU – `conv1` 1×1 – `bn2` – ReLU –
//!   `conv2` 3×3 (stride) – `bn3` – ReLU – `conv3` 1×1 (4× width), the unit of
//!   pre-activation ResNet-164 and ResNet-1001.
//! - [`Kind::Plain`]: the basic block without its shortcut, for the plain
//!   networks the paper compares against.

use std::sync::{Arc, Mutex};
use wengert_core::ops::fused::Function;
use wengert_core::{Error, Float, Result, Rng, Tape, Tensor, Var};
use wengert_nn::init::{kaiming_normal, Fan, RELU_GAIN};
use wengert_nn::layer::BatchNorm2d;
use wengert_nn::module::join;
use wengert_nn::{Module, Param, StateMut, StateRef, Step};
use wengert_ops::{batch_norm_eval, batch_norm_train, conv2d, relu, BatchStats, Conv2dOptions};

/// The branch layout of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Two 3×3 convolutions, post-activation.
    Basic,
    /// 1×1, 3×3, 1×1 with expansion 4, post-activation.
    Bottleneck,
    /// Two 3×3 convolutions, pre-activation.
    PreAct,
    /// 1×1, 3×3, 1×1 with expansion 4, pre-activation.
    PreActBottleneck,
    /// Two 3×3 convolutions and no shortcut.
    Plain,
}

impl Kind {
    /// Whether the branch starts with batch norm and ReLU and nothing
    /// follows the sum.
    pub fn pre_activation(self) -> bool {
        matches!(self, Kind::PreAct | Kind::PreActBottleneck)
    }

    /// Whether the block's output has four times the branch width.
    pub fn expands(self) -> bool {
        matches!(self, Kind::Bottleneck | Kind::PreActBottleneck)
    }
}

/// How the input reaches the sum when the branch changes its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shortcut {
    /// `x` itself (shapes must match).
    Identity,
    /// Option A: `x[:, :, ::s, ::s]` with zero channels added, half before.
    ZeroPad,
    /// Option B: 1×1 convolution at the stride, then batch norm
    /// (`downsample.0`, `downsample.1`); for pre-activation blocks, the
    /// convolution alone (`shortcut.0`) on the pre-activated input.
    Projection,
}

/// A residual block; see the [module documentation](self).
pub struct Block<T: Float> {
    kind: Kind,
    stride: usize,
    shortcut: Shortcut,
    /// Convolution weights, in order (`conv1`, `conv2`[, `conv3`]).
    convs: Vec<Param<T>>,
    /// Batch norms, in order (`bn1`, `bn2`[, `bn3`]).
    norms: Vec<BatchNorm2d<T>>,
    /// The projection shortcut's convolution and (post-activation) batch norm.
    projection: Option<(Param<T>, Option<BatchNorm2d<T>>)>,
    /// Keep only the input and recompute the branch in backward.
    pub recompute: bool,
}

const EPS: f64 = 1e-5;

impl<T: Float> Block<T> {
    /// A block from `c_in` channels, e.g. the first block of ResNet-50's
    /// second stage:
    ///
    /// ```
    /// use wengert_core::{Tape, Tensor};
    /// use wengert_nn::{Module, Step};
    /// use wengert_resnet::block::{Block, Kind, Shortcut};
    ///
    /// let mut b = Block::<f32>::new(Kind::Bottleneck, 256, 128, 2, Shortcut::Projection, &mut wengert_core::rng(0))?;
    /// let tape = Tape::new();
    /// let x = tape.constant(Tensor::ones([1, 256, 8, 8]));
    /// let y = b.forward(&mut Step::train(&tape, 0), x)?;
    /// assert_eq!(y.shape().dims(), &[1, 512, 4, 4]);
    /// assert!(b.state_names().contains(&"downsample.1.running_var".to_string()));
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    ///
    /// `width` is the branch's channel count
    /// (the output has `4·width` channels for a bottleneck, `width`
    /// otherwise). Convolutions get Kaiming-normal weights (fan out, ReLU
    /// gain), batch norms γ = 1 and β = 0, as in torchvision.
    pub fn new(
        kind: Kind,
        c_in: usize,
        width: usize,
        stride: usize,
        shortcut: Shortcut,
        rng: &mut Rng,
    ) -> Result<Self> {
        if stride == 0 || c_in == 0 || width == 0 {
            return Err(Error::argument(
                "Block",
                "c_in/width/stride",
                format!("must all be at least 1, got {c_in} input channels, width {width}, stride {stride}"),
            ));
        }
        let c_out = if kind.expands() { width.checked_mul(4) } else { Some(width) }
            .ok_or_else(|| Error::argument("Block", "width", format!("{width} overflows when expanded")))?;
        if shortcut == Shortcut::Identity && (c_in != c_out || stride != 1) && kind != Kind::Plain {
            return Err(Error::argument(
                "Block",
                "shortcut",
                format!("an identity shortcut needs the same shape: {c_in} → {c_out} channels at stride {stride}"),
            ));
        }
        if shortcut == Shortcut::ZeroPad && c_out < c_in {
            return Err(Error::argument(
                "Block",
                "shortcut",
                format!("zero padding cannot shrink {c_in} channels to {c_out}"),
            ));
        }
        let conv = |o: usize, i: usize, k: usize, rng: &mut Rng| {
            kaiming_normal([o, i, k, k], Fan::FanOut, RELU_GAIN, rng).map(Param::new)
        };
        let (convs, norms) = match kind {
            Kind::Basic | Kind::Plain => (
                vec![conv(width, c_in, 3, rng)?, conv(width, width, 3, rng)?],
                vec![BatchNorm2d::new(width), BatchNorm2d::new(width)],
            ),
            Kind::PreAct => (
                vec![conv(width, c_in, 3, rng)?, conv(width, width, 3, rng)?],
                vec![BatchNorm2d::new(c_in), BatchNorm2d::new(width)],
            ),
            Kind::Bottleneck => (
                vec![conv(width, c_in, 1, rng)?, conv(width, width, 3, rng)?, conv(c_out, width, 1, rng)?],
                vec![BatchNorm2d::new(width), BatchNorm2d::new(width), BatchNorm2d::new(c_out)],
            ),
            Kind::PreActBottleneck => (
                vec![conv(width, c_in, 1, rng)?, conv(width, width, 3, rng)?, conv(c_out, width, 1, rng)?],
                vec![BatchNorm2d::new(c_in), BatchNorm2d::new(width), BatchNorm2d::new(width)],
            ),
        };
        let projection = if shortcut == Shortcut::Projection {
            let bn = if kind.pre_activation() { None } else { Some(BatchNorm2d::new(c_out)) };
            Some((conv(c_out, c_in, 1, rng)?, bn))
        } else {
            None
        };
        Ok(Block { kind, stride, shortcut, convs, norms, projection, recompute: false })
    }

    /// Sets the last batch norm's γ of the branch to zero, so the block starts
    /// as its shortcut (Goyal et al. 2017). Not for pre-activation blocks,
    /// whose branch ends in a convolution.
    pub fn zero_init_last_norm(&mut self) {
        if !self.kind.pre_activation() {
            if let Some(bn) = self.norms.last_mut() {
                bn.zero_init();
            }
        }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Basic => "basic_block",
            Kind::Bottleneck => "bottleneck_block",
            Kind::PreAct => "preact_block",
            Kind::PreActBottleneck => "preact_bottleneck_block",
            Kind::Plain => "plain_block",
        }
    }

    /// Every batch norm of the block in the order the branch uses them,
    /// the projection's last.
    fn all_norms(&mut self) -> impl Iterator<Item = &mut BatchNorm2d<T>> {
        self.norms.iter_mut().chain(self.projection.iter_mut().filter_map(|(_, bn)| bn.as_mut()))
    }
}

/// What the node's function needs besides its inputs: the configuration,
/// and the statistics mode of each batch norm.
struct Spec<T: Float> {
    kind: Kind,
    stride: usize,
    shortcut: Shortcut,
    /// Running `(mean, var)` per batch norm in evaluation steps; `None` in training.
    running: Option<Vec<(Tensor<T>, Tensor<T>)>>,
    /// Batch statistics of a training run, in batch-norm order (read once).
    sink: Mutex<Vec<BatchStats<T>>>,
    /// Whether the projection has a batch norm.
    projection_norm: bool,
}

/// Gives a closure the signature [`Function`] needs (for every tape lifetime).
pub(crate) fn function<T: Float, F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Result<Var<'t, T>>,
{
    f
}

impl<T: Float> Spec<T> {
    /// `S(x) + F(x)` from `[x, conv1, bn1.w, bn1.b, conv2, ...]`.
    fn apply<'t>(&self, v: &[Var<'t, T>]) -> Result<Var<'t, T>> {
        let x = v[0];
        let mut params = v[1..].iter().copied();
        let mut next = || params.next().ok_or_else(|| Error::argument("Block", "inputs", "too few parameters"));
        let mut norm_index = 0;
        let mut bn = |h: Var<'t, T>, w: Var<'t, T>, b: Var<'t, T>| -> Result<Var<'t, T>> {
            let i = norm_index;
            norm_index += 1;
            match &self.running {
                Some(r) => batch_norm_eval(h, Some(w), Some(b), &r[i].0, &r[i].1, EPS),
                None => {
                    let (y, stats) = batch_norm_train(h, Some(w), Some(b), EPS)?;
                    self.sink.lock().unwrap_or_else(|e| e.into_inner()).push(stats);
                    Ok(y)
                }
            }
        };
        let s = self.stride;
        let mut preactivated = None;
        let branch = match self.kind {
            Kind::Basic | Kind::Plain => {
                let h = conv2d(x, next()?, None, &Conv2dOptions::square(s, 1))?;
                let h = relu(bn(h, next()?, next()?)?)?;
                let h = conv2d(h, next()?, None, &Conv2dOptions::square(1, 1))?;
                bn(h, next()?, next()?)?
            }
            Kind::Bottleneck => {
                let h = conv2d(x, next()?, None, &Conv2dOptions::square(1, 0))?;
                let h = relu(bn(h, next()?, next()?)?)?;
                let h = conv2d(h, next()?, None, &Conv2dOptions::square(s, 1))?;
                let h = relu(bn(h, next()?, next()?)?)?;
                let h = conv2d(h, next()?, None, &Conv2dOptions::square(1, 0))?;
                bn(h, next()?, next()?)?
            }
            Kind::PreAct => {
                let (w1, b1) = (next()?, next()?);
                let a = relu(bn(x, w1, b1)?)?;
                preactivated = Some(a);
                let h = conv2d(a, next()?, None, &Conv2dOptions::square(s, 1))?;
                let (w2, b2) = (next()?, next()?);
                let h = relu(bn(h, w2, b2)?)?;
                conv2d(h, next()?, None, &Conv2dOptions::square(1, 1))?
            }
            Kind::PreActBottleneck => {
                let (w1, b1) = (next()?, next()?);
                let a = relu(bn(x, w1, b1)?)?;
                preactivated = Some(a);
                let h = conv2d(a, next()?, None, &Conv2dOptions::square(1, 0))?;
                let (w2, b2) = (next()?, next()?);
                let h = relu(bn(h, w2, b2)?)?;
                let h = conv2d(h, next()?, None, &Conv2dOptions::square(s, 1))?;
                let (w3, b3) = (next()?, next()?);
                let h = relu(bn(h, w3, b3)?)?;
                conv2d(h, next()?, None, &Conv2dOptions::square(1, 0))?
            }
        };
        if self.kind == Kind::Plain {
            return Ok(branch);
        }
        let c_out = branch.shape()[1];
        let shortcut = match self.shortcut {
            Shortcut::Identity => x,
            Shortcut::ZeroPad => {
                let xs = x.slice(2, 0, usize::MAX, s)?.slice(3, 0, usize::MAX, s)?;
                let d = xs.shape();
                let extra = c_out - d[1];
                let zeros = |c: usize| x.tape().constant(Tensor::zeros([d[0], c, d[2], d[3]]));
                Var::concat(&[zeros(extra / 2), xs, zeros(extra - extra / 2)], 1)?
            }
            Shortcut::Projection => {
                let h = conv2d(preactivated.unwrap_or(x), next()?, None, &Conv2dOptions::square(s, 0))?;
                if self.projection_norm {
                    bn(h, next()?, next()?)?
                } else {
                    h
                }
            }
        };
        shortcut.add(branch)
    }
}

impl<T: Float> Module<T> for Block<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let mut inputs = vec![x];
        let norms = &self.norms;
        let bn_params = |step: &mut Step<'t, T>, bn: &BatchNorm2d<T>, inputs: &mut Vec<Var<'t, T>>| {
            inputs.push(step.param(&bn.weight));
            inputs.push(step.param(&bn.bias));
        };
        // Parameters in the order Spec::apply takes them.
        match self.kind {
            Kind::PreAct | Kind::PreActBottleneck => {
                for (c, bn) in self.convs.iter().zip(norms) {
                    bn_params(step, bn, &mut inputs);
                    inputs.push(step.param(c));
                }
            }
            _ => {
                for (c, bn) in self.convs.iter().zip(norms) {
                    inputs.push(step.param(c));
                    bn_params(step, bn, &mut inputs);
                }
            }
        }
        if let Some((c, bn)) = &self.projection {
            inputs.push(step.param(c));
            if let Some(bn) = bn {
                bn_params(step, bn, &mut inputs);
            }
        }
        let training = step.is_training();
        let running = if training {
            None
        } else {
            let mut r: Vec<(Tensor<T>, Tensor<T>)> =
                self.norms.iter().map(|bn| (bn.running_mean.clone(), bn.running_var.clone())).collect();
            if let Some((_, Some(bn))) = &self.projection {
                r.push((bn.running_mean.clone(), bn.running_var.clone()));
            }
            Some(r)
        };
        let spec = Arc::new(Spec {
            kind: self.kind,
            stride: self.stride,
            shortcut: self.shortcut,
            running,
            sink: Mutex::new(Vec::new()),
            projection_norm: matches!(&self.projection, Some((_, Some(_)))),
        });
        let inner = spec.clone();
        let f: Function<T> = Arc::new(function(move |_, v| inner.apply(v)));
        let y = Var::call(self.name(), f, &inputs, self.recompute)?;
        if training {
            let stats = std::mem::take(&mut *spec.sink.lock().unwrap_or_else(|e| e.into_inner()));
            for (bn, s) in self.all_norms().zip(stats) {
                bn.update_running(&s)?;
            }
        }
        if self.kind.pre_activation() {
            Ok(y)
        } else {
            relu(y)
        }
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        let names = self.layer_names();
        for (i, c) in self.convs.iter().enumerate() {
            f(join(prefix, &format!("{}.weight", names[i].0)), StateRef::Param(c));
        }
        for (i, bn) in self.norms.iter().enumerate() {
            bn.visit(&join(prefix, names[i].1), f);
        }
        if let Some((c, bn)) = &self.projection {
            let (conv, norm) = self.projection_names();
            f(join(prefix, &format!("{conv}.weight")), StateRef::Param(c));
            if let Some(bn) = bn {
                bn.visit(&join(prefix, norm), f);
            }
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        let names = self.layer_names();
        let (pconv, pnorm) = self.projection_names();
        for (i, c) in self.convs.iter_mut().enumerate() {
            f(join(prefix, &format!("{}.weight", names[i].0)), StateMut::Param(c));
        }
        for (i, bn) in self.norms.iter_mut().enumerate() {
            bn.visit_mut(&join(prefix, names[i].1), f);
        }
        if let Some((c, bn)) = &mut self.projection {
            f(join(prefix, &format!("{pconv}.weight")), StateMut::Param(c));
            if let Some(bn) = bn {
                bn.visit_mut(&join(prefix, pnorm), f);
            }
        }
    }
}

impl<T: Float> Block<T> {
    /// The output `(channels, height, width)` for an input of `(c, h, w)`,
    /// and the multiply-adds of the block's convolutions for one image.
    pub fn shape_and_macs(&self, (c, h, w): (usize, usize, usize)) -> ((usize, usize, usize), u64) {
        let s = self.stride;
        let (oh, ow) = ((h - 1) / s + 1, (w - 1) / s + 1);
        let mut macs = 0u64;
        let mut c_out = c;
        for (i, conv) in self.convs.iter().enumerate() {
            let d = conv.value().dims();
            // The strided convolution: the first 3×3 (or the only one) of the branch.
            let strided = if self.kind.expands() { i >= 1 } else { true };
            let (hh, ww) = if strided { (oh, ow) } else { (h, w) };
            macs += (d[0] * d[1] * d[2] * d[3] * hh * ww) as u64;
            c_out = d[0];
        }
        if let Some((conv, _)) = &self.projection {
            let d = conv.value().dims();
            macs += (d[0] * d[1] * oh * ow) as u64;
        }
        ((c_out, oh, ow), macs)
    }

    /// `(conv, bn)` names of the branch's layers.
    fn layer_names(&self) -> [(&'static str, &'static str); 3] {
        [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")]
    }

    /// Names of the projection's convolution and batch norm.
    fn projection_names(&self) -> (&'static str, &'static str) {
        if self.kind.pre_activation() {
            ("shortcut.0", "")
        } else {
            ("downsample.0", "downsample.1")
        }
    }
}
