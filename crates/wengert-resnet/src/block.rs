//! Residual blocks, each recorded on the tape as one node.
//!
//! A block computes `S(x) + F(x)`: a branch `F` of `wengert-nn`'s
//! convolutions and batch norms, plus a shortcut `S` — the identity, option
//! A (stride-2 subsampling and zero channels) or option B (1×1 projection +
//! batch norm) of He et al. 2016. It is a [`Residual`]: the sum is recorded
//! as a single node ([`Var::call`](wengert_core::Var::call)); its backward
//! is the vector-Jacobian product of the branch plus that of the shortcut,
//! which for the identity is `δ_in = δ_out·(∂F/∂x + I)`: the error signal
//! passes through unchanged when `F` is small. With recomputation
//! ([`Block::set_recompute`]), the node keeps only its input and runs the
//! block again during backward.
//!
//! Kinds (parameter names as in torchvision):
//! - [`Kind::Basic`]: `conv1` 3×3 (stride) – `bn1` – ReLU – `conv2` 3×3 –
//!   `bn2`; ReLU after the sum.
//! - [`Kind::Bottleneck`]: `conv1` 1×1 – `bn1` – ReLU – `conv2` 3×3 (stride) –
//!   `bn2` – ReLU – `conv3` 1×1 (4× width) – `bn3`; ReLU after the sum.
//! - [`Kind::PreAct`]: `bn1` – ReLU – `conv1` 3×3 (stride) – `bn2` – ReLU –
//!   `conv2` 3×3 (He et al. 2016, *Identity Mappings*); nothing after the sum.
//!   A projection shortcut takes the pre-activated input `relu(bn1(x))`, as
//!   in the paper's code; `bn1` and its ReLU then run before the node, which
//!   sums the projection and the rest of the branch.
//! - [`Kind::PreActBottleneck`]: `bn1` – ReLU – `conv1` 1×1 – `bn2` – ReLU –
//!   `conv2` 3×3 (stride) – `bn3` – ReLU – `conv3` 1×1 (4× width), the unit of
//!   pre-activation ResNet-164 and ResNet-1001.
//! - [`Kind::Plain`]: the basic block without its shortcut, for the plain
//!   networks the paper compares against.

use crate::residual::{Identity, Residual, ZeroPad};
use wengert_core::{Error, Float, Result, Rng, Var};
use wengert_nn::init::{kaiming_normal, Fan, RELU_GAIN};
use wengert_nn::layer::{BatchNorm2d, Conv2d, ConvBn2d, Sequential};
use wengert_nn::module::join;
use wengert_nn::{Module, Param, StateMut, StateRef, Step, Visit};
use wengert_ops::Conv2dOptions;

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
    /// `bn1` of a pre-activation block with a projection shortcut, run
    /// before the node: the branch and the projection both take
    /// `relu(bn1(x))`.
    pre: Option<BatchNorm2d<T>>,
    body: Residual<Sequential<T>, Box<dyn Module<T>>>,
}

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
        // Weights are drawn in the order conv1, conv2[, conv3], projection.
        let mut conv = |o: usize, i: usize, k: usize, stride: usize| -> Result<Conv2d<T>> {
            let weight = Param::new(kaiming_normal([o, i, k, k], Fan::FanOut, RELU_GAIN, rng)?);
            Ok(Conv2d { weight, bias: None, options: Conv2dOptions::square(stride, k / 2) })
        };
        let s = stride;
        let bn = BatchNorm2d::new;
        let project = shortcut == Shortcut::Projection && kind != Kind::Plain;
        // Each convolution and the batch norm after it run fused
        // (`ConvNorm`), their state under torchvision's names.
        let (pre, branch) = match kind {
            Kind::Basic | Kind::Plain => {
                let (c1, c2) = (conv(width, c_in, 3, s)?, conv(width, width, 3, 1)?);
                let branch =
                    Sequential::new().push_named("", ConvNorm::new(["conv1", "bn1"], c1, bn(width).with_relu()));
                (None, branch.push_named("", ConvNorm::new(["conv2", "bn2"], c2, bn(width))))
            }
            Kind::Bottleneck => {
                let (c1, c2, c3) = (conv(width, c_in, 1, 1)?, conv(width, width, 3, s)?, conv(c_out, width, 1, 1)?);
                let branch =
                    Sequential::new().push_named("", ConvNorm::new(["conv1", "bn1"], c1, bn(width).with_relu()));
                let branch = branch.push_named("", ConvNorm::new(["conv2", "bn2"], c2, bn(width).with_relu()));
                (None, branch.push_named("", ConvNorm::new(["conv3", "bn3"], c3, bn(c_out))))
            }
            Kind::PreAct => {
                let (c1, c2) = (conv(width, c_in, 3, s)?, conv(width, width, 3, 1)?);
                let (pre, branch) = preactivate(project, bn(c_in));
                let branch = branch.push_named("", ConvNorm::new(["conv1", "bn2"], c1, bn(width).with_relu()));
                (pre, branch.push_named("conv2", c2))
            }
            Kind::PreActBottleneck => {
                let (c1, c2, c3) = (conv(width, c_in, 1, 1)?, conv(width, width, 3, s)?, conv(c_out, width, 1, 1)?);
                let (pre, branch) = preactivate(project, bn(c_in));
                let branch = branch.push_named("", ConvNorm::new(["conv1", "bn2"], c1, bn(width).with_relu()));
                let branch = branch.push_named("", ConvNorm::new(["conv2", "bn3"], c2, bn(width).with_relu()));
                (pre, branch.push_named("conv3", c3))
            }
        };
        let shortcut: Option<Box<dyn Module<T>>> = match (kind, shortcut) {
            (Kind::Plain, _) => None,
            (_, Shortcut::Identity) => Some(Box::new(Identity)),
            (_, Shortcut::ZeroPad) => Some(Box::new(ZeroPad { stride, channels: c_out })),
            (_, Shortcut::Projection) => {
                let c = conv(c_out, c_in, 1, s)?;
                Some(Box::new(if kind.pre_activation() {
                    Sequential::new().push_named("shortcut.0", c)
                } else {
                    Sequential::new().push_named("", ConvNorm::new(["downsample.0", "downsample.1"], c, bn(c_out)))
                }))
            }
        };
        let name = match kind {
            Kind::Basic => "basic_block",
            Kind::Bottleneck => "bottleneck_block",
            Kind::PreAct => "preact_block",
            Kind::PreActBottleneck => "preact_bottleneck_block",
            Kind::Plain => "plain_block",
        };
        let body = match shortcut {
            Some(s) => Residual::with_shortcut(branch, s),
            None => Residual::without_shortcut(branch),
        };
        let body = if kind.pre_activation() { body } else { body.then_relu() };
        Ok(Block { kind, stride, pre, body: body.named(name) })
    }

    /// Keeps only the block's input and runs the block again during
    /// backward (`on`), or keeps its intermediate results (the default).
    pub fn set_recompute(&mut self, on: bool) {
        self.body.recompute = on;
    }

    /// Sets the last batch norm's γ of the branch to zero, so the block starts
    /// as its shortcut (Goyal et al. 2017). Not for pre-activation blocks,
    /// whose branch ends in a convolution.
    pub fn zero_init_last_norm(&mut self) {
        if self.kind.pre_activation() {
            return;
        }
        let last = if self.kind.expands() { "bn3.weight" } else { "bn2.weight" };
        self.visit_mut("", &mut |name, s| {
            if let (StateMut::Param(p), true) = (s, name == last) {
                p.value_mut().data_mut().iter_mut().for_each(|v| *v = T::zero());
            }
        });
    }

    /// The output `(channels, height, width)` for an input of `(c, h, w)`,
    /// and the multiply-adds of the block's convolutions for one image; an
    /// error for an empty image or multiply-adds past `u64`.
    pub fn shape_and_macs(&self, input: (usize, usize, usize)) -> Result<((usize, usize, usize), u64)> {
        self.footprint(input).map(|(out, macs, _)| (out, macs))
    }

    /// [`Block::shape_and_macs`], and the elements of the block's
    /// convolutions' outputs for one image (what training keeps).
    pub(crate) fn footprint(&self, (c, h, w): (usize, usize, usize)) -> Result<((usize, usize, usize), u64, u64)> {
        const OP: &str = "Block::shape_and_macs";
        if h == 0 || w == 0 {
            return Err(Error::argument(OP, "input", format!("({c}, {h}, {w}) (C, H, W): the image is empty")));
        }
        let s = self.stride;
        let (oh, ow) = ((h - 1) / s + 1, (w - 1) / s + 1);
        let (mut macs, mut outputs, mut c_out) = (Ok(0u64), 0u64, c);
        // A bottleneck's first 1×1 runs before the stride; every other
        // convolution at the output's resolution.
        let before_stride = if self.kind.expands() { "conv1.weight" } else { "" };
        self.visit("", &mut |name, e| {
            if let StateRef::Param(p) = e {
                if let [o, i, kh, kw] = *p.value().dims() {
                    let (hh, ww) = if name == before_stride { (h, w) } else { (oh, ow) };
                    macs = macs.clone().and_then(|m| {
                        let layer = crate::summary::product(OP, &[o, i, kh, kw, hh, ww])?;
                        m.checked_add(layer).ok_or_else(|| Error::argument(OP, "input", "multiply-adds pass u64"))
                    });
                    outputs = outputs.saturating_add((o as u64).saturating_mul(hh as u64).saturating_mul(ww as u64));
                    c_out = o;
                }
            }
        });
        Ok(((c_out, oh, ow), macs?, outputs))
    }
}

/// A convolution and the batch norm after it, run fused as
/// [`ConvBn2d`] runs them (the convolution's kernel gathers the moments
/// the batch norm needs in training), with their state under names of the
/// block's own (`conv1` and `bn1`, as torchvision names them) instead of
/// `ConvBn2d`'s `conv` and `bn`: checkpoints and exports see the two
/// layers.
struct ConvNorm<T: Float> {
    names: [&'static str; 2],
    layer: ConvBn2d<T>,
}

impl<T: Float> ConvNorm<T> {
    fn new(names: [&'static str; 2], conv: Conv2d<T>, bn: BatchNorm2d<T>) -> Self {
        ConvNorm { names, layer: ConvBn2d { conv, bn } }
    }
}

impl<T: Float> Module<T> for ConvNorm<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.layer.forward(step, x)
    }
}

impl<T: Float> Visit<T> for ConvNorm<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        self.layer.conv.visit(&join(prefix, self.names[0]), f);
        self.layer.bn.visit(&join(prefix, self.names[1]), f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        self.layer.conv.visit_mut(&join(prefix, self.names[0]), f);
        self.layer.bn.visit_mut(&join(prefix, self.names[1]), f);
    }
}

/// A pre-activation branch's start: `bn1` and ReLU inside the branch, or,
/// when a projection shares the pre-activated input, outside it.
fn preactivate<T: Float>(projection: bool, bn1: BatchNorm2d<T>) -> (Option<BatchNorm2d<T>>, Sequential<T>) {
    if projection {
        (Some(bn1.with_relu()), Sequential::new())
    } else {
        (None, Sequential::new().push_named("bn1", bn1.with_relu()))
    }
}

impl<T: Float> Module<T> for Block<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let x = match &mut self.pre {
            Some(bn1) => bn1.forward(step, x)?,
            None => x,
        };
        // A post-activation block's ReLU runs inside its node.
        self.body.forward(step, x)
    }
}

impl<T: Float> Visit<T> for Block<T> {
    wengert_nn::visit_fields!("bn1" => pre, "" => body);
}
