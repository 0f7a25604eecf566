//! The model zoo: CIFAR ResNets and their plain counterparts (He et al.
//! 2016 §4.2) and the ImageNet ResNets in torchvision's layout.
//!
//! | name | layout |
//! |---|---|
//! | `resnet20` … `resnet1202` (depth `6n+2`) | 3×3 conv to 16 channels, three stages of `n` basic blocks (16/32/64 channels, stride 2 entering stages 2 and 3), option A shortcuts, global average pool, linear |
//! | `plain20` … `plain1202` | the same layers without shortcuts |
//! | `resnet18`, `resnet34` | 7×7/2 conv to 64, BN, ReLU, 3×3/2 max pool; basic blocks `[2,2,2,2]` / `[3,4,6,3]` of widths 64–512; option B shortcuts; global average pool; linear |
//! | `resnet50`, `resnet101`, `resnet152` | the same stem; bottleneck blocks `[3,4,6,3]` / `[3,4,23,3]` / `[3,8,36,3]` (expansion 4, stride on the 3×3 conv) |
//! | `preact_resnet164`, `preact_resnet1001` (depth `9n+2`) | 3×3 conv to 16 channels (no norm), three stages of `n` pre-activation bottleneck units (outputs 64/128/256 channels), projection shortcuts where the shape changes, then batch norm, ReLU, global average pool, linear (He et al. 2016, *Identity Mappings*) |

use crate::block::{Block, Kind, Shortcut};
use crate::summary::{check_input, Summary};
use wengert_core::{Error, Float, Result, Rng, Var};
use wengert_nn::init::{kaiming_normal, Fan, RELU_GAIN};
use wengert_nn::layer::{conv_bn, BatchNorm2d, Linear};
use wengert_nn::{Module, Named, Param, Step, Visit};
use wengert_ops::{global_avg_pool2d, max_pool2d, Conv2dOptions, Pool2d};

/// The two families' stems and widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// 32×32 inputs: 3×3 stem, widths 16/32/64.
    Cifar,
    /// 224×224 inputs: 7×7/2 stem and max pool, widths 64/128/256/512.
    ImageNet,
}

/// The zoo's models at their usual depths ([`Spec::by_name`] takes the
/// other depths of the forms each family allows as well).
pub const NAMES: &[&str] = &[
    "resnet8",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet1202",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "preact_resnet164",
    "preact_resnet1001",
];

/// The deepest network [`Spec::by_name`] builds: ten thousand layers, eight
/// times the deepest in He et al. 2016 (1,202), and more than a machine's
/// memory trains at any useful batch.
pub const MAX_DEPTH: usize = 10_000;

fn too_deep(name: &str, depth: usize) -> Error {
    Error::argument("model", name, format!("a depth of {depth} layers is past the zoo's limit of {MAX_DEPTH}"))
}

/// An architecture, before its weights are drawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The zoo name.
    pub name: String,
    /// The family.
    pub family: Family,
    /// The block kind.
    pub kind: Kind,
    /// Blocks per stage.
    pub blocks: Vec<usize>,
    /// The shortcut where the shape changes.
    pub shortcut: Shortcut,
}

impl Spec {
    /// The architecture called `name` (see the [module documentation](self)).
    pub fn by_name(name: &str) -> Result<Spec> {
        let unknown = || {
            Error::unknown_name("model", name, NAMES, "resnetN and plainN for N = 6n+2, preact_resnetN for N = 9n+2")
        };
        if let Some(d) = name.strip_prefix("preact_resnet") {
            let depth: usize = d.parse().map_err(|_| unknown())?;
            if depth > MAX_DEPTH {
                return Err(too_deep(name, depth));
            }
            if depth < 11 || !(depth - 2).is_multiple_of(9) {
                return Err(unknown());
            }
            return Ok(Spec {
                name: name.into(),
                family: Family::Cifar,
                kind: Kind::PreActBottleneck,
                blocks: vec![(depth - 2) / 9; 3],
                shortcut: Shortcut::Projection,
            });
        }
        let (plain, depth) = if let Some(d) = name.strip_prefix("plain") {
            (true, d)
        } else if let Some(d) = name.strip_prefix("resnet") {
            (false, d)
        } else {
            return Err(unknown());
        };
        let depth: usize = depth.parse().map_err(|_| unknown())?;
        if depth > MAX_DEPTH {
            return Err(too_deep(name, depth));
        }
        let imagenet = match depth {
            18 => Some((Kind::Basic, vec![2, 2, 2, 2])),
            34 => Some((Kind::Basic, vec![3, 4, 6, 3])),
            50 => Some((Kind::Bottleneck, vec![3, 4, 6, 3])),
            101 => Some((Kind::Bottleneck, vec![3, 4, 23, 3])),
            152 => Some((Kind::Bottleneck, vec![3, 8, 36, 3])),
            _ => None,
        };
        if let (Some((kind, blocks)), false) = (imagenet, plain) {
            return Ok(Spec {
                name: name.into(),
                family: Family::ImageNet,
                kind,
                blocks,
                shortcut: Shortcut::Projection,
            });
        }
        if depth < 8 || !(depth - 2).is_multiple_of(6) {
            return Err(unknown());
        }
        let n = (depth - 2) / 6;
        let kind = if plain { Kind::Plain } else { Kind::Basic };
        Ok(Spec { name: name.into(), family: Family::Cifar, kind, blocks: vec![n; 3], shortcut: Shortcut::ZeroPad })
    }

    /// The default input `(channels, height, width)` and class count of the family.
    pub fn defaults(&self) -> ((usize, usize, usize), usize) {
        match self.family {
            Family::Cifar => ((3, 32, 32), 10),
            Family::ImageNet => ((3, 224, 224), 1000),
        }
    }

    fn widths(&self) -> Vec<usize> {
        match self.family {
            Family::Cifar => vec![16, 32, 64],
            Family::ImageNet => vec![64, 128, 256, 512],
        }
    }
}

/// The ImageNet stem's 3×3/2 max pool.
const STEM_POOL: Pool2d = Pool2d::new(3, 2).with_padding([1, 1]);

/// A residual (or plain) network of the zoo.
pub struct ResNet<T: Float> {
    spec: Spec,
    stem: Param<T>,
    /// After the stem (post-activation nets).
    bn1: Option<BatchNorm2d<T>>,
    /// The stages, `layer1`, `layer2`, ….
    stages: Named<Vec<Block<T>>>,
    /// Before the pool (pre-activation nets).
    bn: Option<BatchNorm2d<T>>,
    fc: Linear<T>,
}

impl<T: Float> ResNet<T> {
    /// Builds `spec` for images of `in_channels` and `classes` outputs, with
    /// weights drawn from `rng` (Kaiming-normal convolutions, PyTorch's
    /// default for the final linear layer).
    pub fn new(spec: &Spec, in_channels: usize, classes: usize, rng: &mut Rng) -> Result<Self> {
        let widths = spec.widths();
        if spec.blocks.len() != widths.len() {
            return Err(Error::argument(
                "ResNet::new",
                "spec.blocks",
                format!(
                    "{} stages given ({:?}); a {:?} network has {}, one per width {widths:?}",
                    spec.blocks.len(),
                    spec.blocks,
                    spec.family,
                    widths.len()
                ),
            ));
        }
        let k = if spec.family == Family::Cifar { 3 } else { 7 };
        let stem = Param::new(kaiming_normal([widths[0], in_channels, k, k], Fan::FanOut, RELU_GAIN, rng)?);
        let mut c = widths[0];
        let mut stages = Vec::new();
        for (i, (&n, &width)) in spec.blocks.iter().zip(&widths).enumerate() {
            let mut stage = Vec::new();
            for j in 0..n {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                let c_out = if spec.kind.expands() { 4 * width } else { width };
                let shortcut = if stride != 1 || c != c_out { spec.shortcut } else { Shortcut::Identity };
                stage.push(Block::new(spec.kind, c, width, stride, shortcut, rng)?);
                c = c_out;
            }
            stages.push((format!("layer{}", i + 1), stage));
        }
        let pre = spec.kind.pre_activation();
        Ok(ResNet {
            spec: spec.clone(),
            stem,
            bn1: (!pre).then(|| BatchNorm2d::new(widths[0]).with_relu()),
            stages: Named(stages),
            bn: pre.then(|| BatchNorm2d::new(c).with_relu()),
            fc: Linear::new(c, classes, true, rng)?,
        })
    }

    /// Builds the zoo model called `name`.
    pub fn by_name(name: &str, in_channels: usize, classes: usize, rng: &mut Rng) -> Result<Self> {
        Self::new(&Spec::by_name(name)?, in_channels, classes, rng)
    }

    /// The architecture.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Turns per-block recomputation on or off for every block.
    pub fn set_recompute(&mut self, on: bool) {
        self.stages.0.iter_mut().flat_map(|(_, s)| s).for_each(|b| b.set_recompute(on));
    }

    /// The layers with their output shapes for one image of `(c, h, w)`,
    /// and the multiply-adds of all convolutions and the linear layer.
    pub fn summary(&self, (c, h, w): (usize, usize, usize)) -> Result<Summary> {
        check_input("summary", (c, h, w))?;
        let (h0, w0) = (h, w);
        let d = self.stem.value().dims();
        if c != d[1] {
            return Err(Error::shape("summary", format!("the model takes {} input channels, not {c}", d[1])));
        }
        let (s, k) = if self.spec.family == Family::Cifar { (1, 3) } else { (2, 7) };
        // "Same" padding: the kernel's reach never exceeds the padded image.
        let (mut h, mut w) = ((h + 2 * (k / 2) - k) / s + 1, (w + 2 * (k / 2) - k) / s + 1);
        let mut macs = (d.iter().product::<usize>() * h * w) as u64;
        // The input, the stem's output, and every block's convolutions'.
        let mut activations = (c * h0 * w0) as u64 + (d[0] * h * w) as u64;
        let pre = self.spec.kind.pre_activation();
        let stem = if pre { "conv1" } else { "conv1 + bn1 + relu" };
        let mut rows = vec![(stem.to_string(), [d[0], h, w])];
        if self.spec.family == Family::ImageNet {
            [h, w] = STEM_POOL.output_size([h, w])?;
            rows.push(("maxpool 3×3/2".into(), [d[0], h, w]));
            activations += (d[0] * h * w) as u64;
        }
        let mut shape = (d[0], h, w);
        for (name, stage) in &self.stages.0 {
            for (j, b) in stage.iter().enumerate() {
                let (out, m, kept) = b.footprint(shape)?;
                macs += m;
                activations = activations.saturating_add(kept);
                shape = out;
                rows.push((format!("{name}.{j}"), [out.0, out.1, out.2]));
            }
        }
        let fc = self.fc.weight.value().dims();
        macs += (fc[0] * fc[1]) as u64;
        let head = if pre { "bn + relu + avgpool + fc" } else { "avgpool + fc" };
        rows.push((head.into(), [fc[0], 1, 1]));
        Ok(Summary { rows, macs, activations })
    }
}

impl<T: Float> Module<T> for ResNet<T> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let (s, p) = if self.spec.family == Family::Cifar { (1, 1) } else { (2, 3) };
        let (stem, options) = (step.param(&self.stem), Conv2dOptions::square(s, p));
        // The stem's kernel gathers its batch norm's statistics.
        let mut h = match &mut self.bn1 {
            Some(bn1) => conv_bn(step, x, stem, &options, bn1)?,
            None => wengert_ops::conv2d(x, stem, None, &options)?,
        };
        if self.spec.family == Family::ImageNet {
            h = max_pool2d(h, &STEM_POOL)?;
        }
        for b in self.stages.0.iter_mut().flat_map(|(_, s)| s) {
            h = b.forward(step, h)?;
        }
        if let Some(bn) = &mut self.bn {
            h = bn.forward(step, h)?;
        }
        self.fc.forward(step, global_avg_pool2d(h)?)
    }
}

impl<T: Float> Visit<T> for ResNet<T> {
    wengert_nn::visit_fields!("conv1.weight" => stem, bn1, "" => stages, bn, fc);
}
