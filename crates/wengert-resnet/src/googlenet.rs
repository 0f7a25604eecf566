//! GoogLeNet (Inception v1, Szegedy et al. 2015) in torchvision's layout:
//! batch norm after every convolution, max pooling with `ceil_mode`, and the
//! two auxiliary classifiers optional (off by default). Parameter names
//! match torchvision's `state_dict`, so weights exported from
//! `torchvision.models.GoogLeNet(transform_input=False)` load as they are.
//!
//! It is the ~20-layer network the depth of residual networks was measured
//! against: 6,624,904 parameters with 1000 classes (13,004,888 with the
//! auxiliary heads).
//!
//! ```
//! use wengert_nn::Module;
//! use wengert_resnet::googlenet::GoogLeNet;
//!
//! let net = GoogLeNet::<f32>::new(3, 1000, false, &mut wengert_core::rng(0))?;
//! assert_eq!(net.num_parameters(), 6_624_904);
//! # Ok::<(), wengert_core::Error>(())
//! ```

use crate::summary::{check_input, Summary};
use wengert_core::{Error, Float, Result, Rng, Var};
use wengert_nn::layer::{conv_bn, BatchNorm2d, Conv2d, Dropout, Linear};
use wengert_nn::{Module, Named, Step, Visit};
use wengert_ops::{global_avg_pool2d, max_pool2d, relu, Conv2dOptions, Pool2d};

/// Convolution (no bias), batch norm (ε = 0.001), ReLU: torchvision's
/// `BasicConv2d` (`conv.*`, `bn.*`).
pub struct BasicConv2d<T: Float> {
    /// The convolution.
    pub conv: Conv2d<T>,
    /// Its batch norm.
    pub bn: BatchNorm2d<T>,
}

impl<T: Float> BasicConv2d<T> {
    /// A `k×k` convolution from `c_in` to `c_out` channels with `stride` and `padding`.
    pub fn new(c_in: usize, c_out: usize, k: usize, stride: usize, padding: usize, rng: &mut Rng) -> Result<Self> {
        let mut bn = BatchNorm2d::new(c_out);
        bn.eps = 1e-3;
        Ok(BasicConv2d { conv: Conv2d::new(c_in, c_out, k, Conv2dOptions::square(stride, padding), false, rng)?, bn })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.conv.weight.value().dims()[0]
    }

    /// Multiply-adds for one image at output size `h × w`.
    fn macs(&self, h: usize, w: usize) -> u64 {
        (self.conv.weight.value().numel() * h * w) as u64
    }

    /// Elements of the output for one image at output size `h × w`.
    fn outputs(&self, h: usize, w: usize) -> u64 {
        (self.out_channels() * h * w) as u64
    }
}

impl<T: Float> Module<T> for BasicConv2d<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let w = step.param(&self.conv.weight);
        relu(conv_bn(step, x, w, &self.conv.options, &mut self.bn)?)
    }
}

impl<T: Float> Visit<T> for BasicConv2d<T> {
    wengert_nn::visit_fields!(conv, bn);
}

fn pool(k: usize, s: usize, p: usize) -> Pool2d {
    Pool2d::new(k, s).with_padding([p, p]).with_ceil_mode(true)
}

/// An Inception module: four branches concatenated along the channels —
/// 1×1; 1×1 then 3×3; 1×1 then 3×3 (torchvision's stand-in for the paper's
/// 5×5); 3×3 max pool then 1×1.
pub struct Inception<T: Float> {
    branch1: BasicConv2d<T>,
    branch2: [BasicConv2d<T>; 2],
    branch3: [BasicConv2d<T>; 2],
    branch4: BasicConv2d<T>,
}

impl<T: Float> Inception<T> {
    /// torchvision's `Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`.
    pub fn new(c_in: usize, widths: [usize; 6], rng: &mut Rng) -> Result<Self> {
        let [c1, c3r, c3, c5r, c5, cp] = widths;
        Ok(Inception {
            branch1: BasicConv2d::new(c_in, c1, 1, 1, 0, rng)?,
            branch2: [BasicConv2d::new(c_in, c3r, 1, 1, 0, rng)?, BasicConv2d::new(c3r, c3, 3, 1, 1, rng)?],
            branch3: [BasicConv2d::new(c_in, c5r, 1, 1, 0, rng)?, BasicConv2d::new(c5r, c5, 3, 1, 1, rng)?],
            branch4: BasicConv2d::new(c_in, cp, 1, 1, 0, rng)?,
        })
    }

    /// Output channels: the four branches' together.
    pub fn out_channels(&self) -> usize {
        self.branch1.out_channels()
            + self.branch2[1].out_channels()
            + self.branch3[1].out_channels()
            + self.branch4.out_channels()
    }

    /// The branches' convolutions, in order.
    fn convs(&self) -> [&BasicConv2d<T>; 6] {
        [&self.branch1, &self.branch2[0], &self.branch2[1], &self.branch3[0], &self.branch3[1], &self.branch4]
    }

    fn macs(&self, h: usize, w: usize) -> u64 {
        self.convs().iter().map(|b| b.macs(h, w)).sum()
    }

    /// Elements of the branches' outputs and the pooling branch's pooled
    /// input, for one image at `h × w`.
    fn outputs(&self, h: usize, w: usize, c_in: usize) -> u64 {
        self.convs().iter().map(|b| b.outputs(h, w)).sum::<u64>() + (c_in * h * w) as u64
    }
}

impl<T: Float> Module<T> for Inception<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let b1 = self.branch1.forward(step, x)?;
        let h = self.branch2[0].forward(step, x)?;
        let b2 = self.branch2[1].forward(step, h)?;
        let h = self.branch3[0].forward(step, x)?;
        let b3 = self.branch3[1].forward(step, h)?;
        let b4 = self.branch4.forward(step, max_pool2d(x, &pool(3, 1, 1))?)?;
        Var::concat(&[b1, b2, b3, b4], 1)
    }
}

impl<T: Float> Visit<T> for Inception<T> {
    wengert_nn::visit_fields!(branch1, branch2, branch3, "branch4.1" => branch4);
}

/// Adaptive average pooling to `out × out` (PyTorch's windows:
/// `[⌊i·n/out⌋, ⌈(i+1)·n/out⌉)`), differentiable through slicing and means.
pub fn adaptive_avg_pool2d<'t, T: Float>(x: Var<'t, T>, out: usize) -> Result<Var<'t, T>> {
    let d = x.shape();
    if d.rank() != 4 || out == 0 {
        return Err(Error::shape(
            "adaptive_avg_pool2d",
            format!("input is {d} and output {out}×{out}; need NCHW and out > 0"),
        ));
    }
    let (h, w) = (d.dims()[2], d.dims()[3]);
    let window = |i: usize, n: usize| (i * n / out, ((i + 1) * n).div_ceil(out));
    let mut rows = Vec::with_capacity(out);
    for i in 0..out {
        let (r0, r1) = window(i, h);
        let band = x.slice(2, r0, r1, 1)?;
        let mut cells = Vec::with_capacity(out);
        for j in 0..out {
            let (c0, c1) = window(j, w);
            cells.push(band.slice(3, c0, c1, 1)?.mean(&[2, 3], true)?);
        }
        rows.push(Var::concat(&cells, 3)?);
    }
    Var::concat(&rows, 2)
}

/// An auxiliary classifier: 4×4 adaptive average pool, 1×1 `BasicConv2d` to
/// 128 channels, `fc1` (2048 → 1024), ReLU, dropout 0.7, `fc2`.
pub struct InceptionAux<T: Float> {
    conv: BasicConv2d<T>,
    fc1: Linear<T>,
    fc2: Linear<T>,
}

impl<T: Float> InceptionAux<T> {
    fn new(c_in: usize, classes: usize, rng: &mut Rng) -> Result<Self> {
        Ok(InceptionAux {
            conv: BasicConv2d::new(c_in, 128, 1, 1, 0, rng)?,
            fc1: Linear::new(2048, 1024, true, rng)?,
            fc2: Linear::new(1024, classes, true, rng)?,
        })
    }
}

impl<T: Float> Module<T> for InceptionAux<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let h = self.conv.forward(step, adaptive_avg_pool2d(x, 4)?)?;
        let n = h.shape().dims()[0];
        let h = relu(self.fc1.forward(step, h.reshape(&[n, 2048])?)?)?;
        let h = Dropout { p: 0.7 }.forward(step, h)?;
        self.fc2.forward(step, h)
    }
}

impl<T: Float> Visit<T> for InceptionAux<T> {
    wengert_nn::visit_fields!(conv, fc1, fc2);
}

/// One Inception module of the network: its name, input channels, the six
/// widths of [`Inception::new`], and the max pool (kernel, stride) after it.
pub(crate) type Stage = (&'static str, usize, [usize; 6], Option<(usize, usize)>);

/// The Inception modules in order.
pub(crate) const INCEPTIONS: [Stage; 9] = [
    ("inception3a", 192, [64, 96, 128, 16, 32, 32], None),
    ("inception3b", 256, [128, 128, 192, 32, 96, 64], Some((3, 2))),
    ("inception4a", 480, [192, 96, 208, 16, 48, 64], None),
    ("inception4b", 512, [160, 112, 224, 24, 64, 64], None),
    ("inception4c", 512, [128, 128, 256, 24, 64, 64], None),
    ("inception4d", 512, [112, 144, 288, 32, 64, 64], None),
    ("inception4e", 528, [256, 160, 320, 32, 128, 128], Some((2, 2))),
    ("inception5a", 832, [256, 160, 320, 32, 128, 128], None),
    ("inception5b", 832, [384, 192, 384, 48, 128, 128], None),
];

/// GoogLeNet; see the [module documentation](self).
pub struct GoogLeNet<T: Float> {
    conv1: BasicConv2d<T>,
    conv2: BasicConv2d<T>,
    conv3: BasicConv2d<T>,
    inceptions: Named<Inception<T>>,
    /// The auxiliary classifiers, when the network has them.
    aux: Option<AuxHeads<T>>,
    fc: Linear<T>,
}

/// The auxiliary classifiers after `inception4a` and `inception4d`.
struct AuxHeads<T: Float> {
    aux1: InceptionAux<T>,
    aux2: InceptionAux<T>,
}

impl<T: Float> Visit<T> for AuxHeads<T> {
    wengert_nn::visit_fields!(aux1, aux2);
}

/// The logits of a forward pass, and those of the auxiliary heads when the
/// network has them (training steps only, as in torchvision).
pub struct Outputs<'t, T: Float> {
    /// The main classifier's logits.
    pub logits: Var<'t, T>,
    /// The heads after `inception4a` and `inception4d`.
    pub aux: Option<(Var<'t, T>, Var<'t, T>)>,
}

impl<T: Float> GoogLeNet<T> {
    /// GoogLeNet for `in_channels` input channels and `classes` outputs, with
    /// or without the auxiliary classifiers.
    pub fn new(in_channels: usize, classes: usize, aux: bool, rng: &mut Rng) -> Result<Self> {
        let conv1 = BasicConv2d::new(in_channels, 64, 7, 2, 3, rng)?;
        let conv2 = BasicConv2d::new(64, 64, 1, 1, 0, rng)?;
        let conv3 = BasicConv2d::new(64, 192, 3, 1, 1, rng)?;
        let inceptions = INCEPTIONS
            .iter()
            .map(|(name, c, w, _)| Ok((name.to_string(), Inception::new(*c, *w, rng)?)))
            .collect::<Result<Vec<_>>>()?;
        let inceptions = Named(inceptions);
        let aux = if aux {
            Some(AuxHeads { aux1: InceptionAux::new(512, classes, rng)?, aux2: InceptionAux::new(528, classes, rng)? })
        } else {
            None
        };
        Ok(GoogLeNet { conv1, conv2, conv3, inceptions, aux, fc: Linear::new(1024, classes, true, rng)? })
    }

    /// The logits, plus the auxiliary heads' in training steps when the
    /// network has them. Train with `loss + 0.3·(aux₁ + aux₂)`, as the paper does.
    pub fn forward_all<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Outputs<'t, T>> {
        let h = self.conv1.forward(step, x)?;
        let h = max_pool2d(h, &pool(3, 2, 0))?;
        let h = self.conv2.forward(step, h)?;
        let h = self.conv3.forward(step, h)?;
        let mut h = max_pool2d(h, &pool(3, 2, 0))?;
        let training = step.is_training();
        let (mut a1, mut a2) = (None, None);
        for ((_, m), (name, _, _, after)) in self.inceptions.0.iter_mut().zip(INCEPTIONS) {
            h = m.forward(step, h)?;
            if let (Some(heads), true) = (self.aux.as_mut(), training) {
                match name {
                    "inception4a" => a1 = Some(heads.aux1.forward(step, h)?),
                    "inception4d" => a2 = Some(heads.aux2.forward(step, h)?),
                    _ => {}
                }
            }
            if let Some((k, s)) = after {
                h = max_pool2d(h, &pool(k, s, 0))?;
            }
        }
        let h = Dropout { p: 0.2 }.forward(step, global_avg_pool2d(h)?)?;
        let logits = self.fc.forward(step, h)?;
        Ok(Outputs { logits, aux: a1.zip(a2) })
    }

    /// The layers' output shapes for one image of `(c, h, w)` and the
    /// multiply-adds of the convolutions and the classifier (auxiliary heads
    /// not counted).
    pub fn summary(&self, (c, h, w): (usize, usize, usize)) -> Result<Summary> {
        check_input("summary", (c, h, w))?;
        let c_in = self.conv1.conv.weight.value().dims()[1];
        if c != c_in {
            return Err(Error::shape("summary", format!("the model takes {c_in} input channels, not {c}")));
        }
        let conv = |n: usize, k: usize, s: usize, p: usize| (n + 2 * p - k) / s + 1;
        let input = (c * h * w) as u64;
        let (mut h, mut w) = (conv(h, 7, 2, 3), conv(w, 7, 2, 3));
        let mut macs = self.conv1.macs(h, w);
        let mut activations = input + self.conv1.outputs(h, w);
        let mut rows = vec![("conv1".to_string(), [64, h, w])];
        [h, w] = pool(3, 2, 0).output_size([h, w])?;
        rows.push(("maxpool1".into(), [64, h, w]));
        macs += self.conv2.macs(h, w) + self.conv3.macs(h, w);
        activations += (64 * h * w) as u64 + self.conv2.outputs(h, w) + self.conv3.outputs(h, w);
        rows.push(("conv2 + conv3".into(), [192, h, w]));
        [h, w] = pool(3, 2, 0).output_size([h, w])?;
        rows.push(("maxpool2".into(), [192, h, w]));
        let mut channels = 192;
        for ((_, m), (name, _, _, after)) in self.inceptions.0.iter().zip(INCEPTIONS) {
            macs += m.macs(h, w);
            activations += (channels * h * w) as u64 + m.outputs(h, w, channels);
            channels = m.out_channels();
            rows.push((name.to_string(), [channels, h, w]));
            if let Some((k, s)) = after {
                [h, w] = pool(k, s, 0).output_size([h, w])?;
                rows.push((format!("maxpool {k}×{k}/{s}"), [channels, h, w]));
            }
        }
        let fc = self.fc.weight.value().dims();
        macs += (fc[0] * fc[1]) as u64;
        rows.push(("avgpool + dropout + fc".into(), [fc[0], 1, 1]));
        Ok(Summary { rows, macs, activations })
    }
}

impl<T: Float> Module<T> for GoogLeNet<T> {
    /// The main classifier's logits (see [`GoogLeNet::forward_all`] for the
    /// auxiliary heads).
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(self.forward_all(step, x)?.logits)
    }
}

impl<T: Float> Visit<T> for GoogLeNet<T> {
    wengert_nn::visit_fields!(conv1, conv2, conv3, "" => inceptions, "" => aux, fc);
}
