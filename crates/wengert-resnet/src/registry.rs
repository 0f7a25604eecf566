//! The models known by name, each in one place: how to build it, its
//! summary, what it reads, and its training defaults (the datasets known
//! by name are `wengert_data::DatasetName`). The command line and the trainer take
//! these types rather than strings, so a name is parsed (and a typo
//! answered with a suggestion) once.
//!
//! ```
//! use wengert_resnet::registry::{Input, Model};
//! let m: Model = "resnet20".parse()?;
//! assert_eq!((m.to_string(), m.input()), ("resnet20".to_string(), Input::Image));
//! let lstm: Model = "lstm".parse()?;
//! assert!(lstm.training_defaults().adam);
//! let e = "resnet2O".parse::<Model>().unwrap_err().to_string();
//! assert!(e.contains("did you mean 'resnet20'?"), "{e}");
//! # Ok::<(), wengert_core::Error>(())
//! ```

use crate::googlenet::GoogLeNet;
use crate::sequence::SequenceClassifier;
use crate::summary::{check_input, Summary};
use crate::zoo::{ResNet, Spec, NAMES};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use wengert_core::{Error, Float, Result, Rng};
use wengert_nn::layer::Cell;
use wengert_nn::Module;

/// A model the zoo can build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Model {
    /// A ResNet or plain net of [`crate::zoo`] (any depth its family allows).
    Zoo(Spec),
    /// GoogLeNet ([`crate::googlenet`]), with or without the auxiliary classifiers.
    GoogLeNet {
        /// Whether the two auxiliary classifiers are built.
        aux: bool,
    },
    /// A recurrent classifier reading images row by row ([`crate::sequence`]).
    Sequence(Cell),
}

/// What a model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Images of any size its layers accept.
    Image,
    /// Images read as sequences of rows: the row length is fixed when built.
    Sequence,
}

/// A model's optimiser and hyper-parameters when the user gives none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainingDefaults {
    /// Adam rather than SGD with momentum.
    pub adam: bool,
    /// Peak learning rate.
    pub lr: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clipping.
    pub clip: Option<f64>,
}

impl TrainingDefaults {
    /// The defaults of one optimiser, whatever the model: Adam at 0.002
    /// without weight decay, or SGD at 0.1 with weight decay 5e-4; no
    /// clipping.
    pub fn optimizer(adam: bool) -> TrainingDefaults {
        if adam {
            TrainingDefaults { adam, lr: 0.002, weight_decay: 0.0, clip: None }
        } else {
            TrainingDefaults { adam, lr: 0.1, weight_decay: 5e-4, clip: None }
        }
    }
}

/// The names `Model::catalogue` lists: every family at its usual depths.
static CATALOGUE: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let others = ["googlenet", "googlenet_aux", "rnn", "lstm", "residual_rnn"];
    NAMES.iter().copied().chain(others).collect()
});

impl Model {
    /// The names of the models, one per family and usual depth (other
    /// depths of the form the family allows parse as well).
    pub fn catalogue() -> &'static [&'static str] {
        &CATALOGUE
    }

    /// What the model reads.
    pub fn input(&self) -> Input {
        match self {
            Model::Sequence(_) => Input::Sequence,
            _ => Input::Image,
        }
    }

    /// The default input `(c, h, w)` and class count: CIFAR 3×32×32 and 10,
    /// ImageNet 3×224×224 and 1000 (GoogLeNet too), MNIST 1×28×28 and 10
    /// for the sequence classifiers.
    pub fn defaults(&self) -> ((usize, usize, usize), usize) {
        match self {
            Model::Zoo(spec) => spec.defaults(),
            Model::GoogLeNet { .. } => ((3, 224, 224), 1000),
            Model::Sequence(_) => ((1, 28, 28), 10),
        }
    }

    /// Optimiser defaults: SGD at 0.1 with weight decay 5e-4 for the image
    /// models, Adam at 0.002 with gradients clipped to norm 1 for the
    /// recurrent ones.
    pub fn training_defaults(&self) -> TrainingDefaults {
        match self {
            Model::Sequence(_) => TrainingDefaults { clip: Some(1.0), ..TrainingDefaults::optimizer(true) },
            _ => TrainingDefaults::optimizer(false),
        }
    }

    /// The model for inputs of `(c, h, w)` and `classes` outputs, boxed.
    pub fn build<T: Float>(
        &self,
        input: (usize, usize, usize),
        classes: usize,
        rng: &mut Rng,
    ) -> Result<Box<dyn Module<T>>> {
        check_input("Model::build", input)?;
        let (c, _, w) = input;
        Ok(match self {
            Model::Zoo(spec) => Box::new(ResNet::<T>::new(spec, c, classes, rng)?),
            Model::GoogLeNet { aux } => Box::new(GoogLeNet::<T>::new(c, classes, *aux, rng)?),
            Model::Sequence(cell) => Box::new(SequenceClassifier::<T>::new(*cell, c * w, 128, classes, rng)?),
        })
    }

    /// The layers with their output shapes for one image of `input`, the
    /// multiply-adds, and the number of parameters.
    pub fn summary(&self, input: (usize, usize, usize), classes: usize) -> Result<(Summary, usize)> {
        check_input("Model::summary", input)?;
        let rng = &mut wengert_core::rng(0);
        let (c, _, w) = input;
        Ok(match self {
            Model::Zoo(spec) => {
                let net = ResNet::<f32>::new(spec, c, classes, rng)?;
                (net.summary(input)?, net.num_parameters())
            }
            Model::GoogLeNet { aux } => {
                let net = GoogLeNet::<f32>::new(c, classes, *aux, rng)?;
                (net.summary(input)?, net.num_parameters())
            }
            Model::Sequence(cell) => {
                let net = SequenceClassifier::<f32>::new(*cell, c * w, 128, classes, rng)?;
                (net.summary(input), net.num_parameters())
            }
        })
    }
}

/// The zoo model whose state a file of tensor `shapes` holds, told from
/// its names and shapes alone (a PyTorch state dict carries no model
/// name): `resnet50`, `googlenet`, `resnet20 or plain20` (the two share
/// their state: option-A shortcuts have no weights), or `None` for a
/// state the zoo does not know.
///
/// ```
/// use wengert_resnet::registry::identify;
/// use wengert_resnet::zoo::ResNet;
/// use wengert_nn::{StateRef, Visit};
/// let net = ResNet::<f32>::by_name("resnet34", 3, 1000, &mut wengert_core::rng(0))?;
/// let mut shapes = std::collections::BTreeMap::new();
/// net.visit("", &mut |name, s| if let StateRef::Param(p) = s { shapes.insert(name, p.value().dims().to_vec()); });
/// assert_eq!(identify(&shapes).as_deref(), Some("resnet34"));
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn identify(shapes: &std::collections::BTreeMap<String, Vec<usize>>) -> Option<String> {
    let has = |k: &str| shapes.contains_key(k);
    if has("inception3a.branch1.conv.weight") {
        let aux = shapes.keys().any(|k| k.starts_with("aux1."));
        return Some(if aux { "googlenet_aux" } else { "googlenet" }.into());
    }
    let stem = shapes.get("conv1.weight")?;
    // Blocks per stage, from the `layerS.I.` prefixes.
    let mut blocks = [0usize; 4];
    for name in shapes.keys() {
        let Some(rest) = name.strip_prefix("layer") else { continue };
        let mut parts = rest.splitn(3, '.');
        if let (Some(Ok(s)), Some(Ok(i))) =
            (parts.next().map(str::parse::<usize>), parts.next().map(str::parse::<usize>))
        {
            if (1..=4).contains(&s) {
                blocks[s - 1] = blocks[s - 1].max(i + 1);
            }
        }
    }
    let stages = blocks.iter().take_while(|&&n| n > 0).count();
    let total: usize = blocks.iter().sum();
    let bottleneck = has("layer1.0.conv3.weight");
    let name = match (stem.get(2).copied(), stages) {
        (Some(7), 4) => format!("resnet{}", if bottleneck { 3 * total + 2 } else { 2 * total + 2 }),
        (Some(3), 3) if has("bn.weight") && bottleneck => format!("preact_resnet{}", 3 * total + 2),
        (Some(3), 3) if !bottleneck => format!("resnet{0} or plain{0}", 2 * total + 2),
        _ => return None,
    };
    Some(name)
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Model::Zoo(spec) => f.write_str(&spec.name),
            Model::GoogLeNet { aux: false } => f.write_str("googlenet"),
            Model::GoogLeNet { aux: true } => f.write_str("googlenet_aux"),
            Model::Sequence(Cell::Elman) => f.write_str("rnn"),
            Model::Sequence(Cell::Lstm) => f.write_str("lstm"),
            Model::Sequence(Cell::Residual) => f.write_str("residual_rnn"),
        }
    }
}

impl FromStr for Model {
    type Err = Error;

    fn from_str(name: &str) -> Result<Model> {
        Ok(match name {
            "googlenet" => Model::GoogLeNet { aux: false },
            "googlenet_aux" => Model::GoogLeNet { aux: true },
            "rnn" => Model::Sequence(Cell::Elman),
            "lstm" => Model::Sequence(Cell::Lstm),
            "residual_rnn" => Model::Sequence(Cell::Residual),
            // The zoo's "unknown name" lists the zoo's models; this one lists
            // every model. Its other errors (a depth past the limit) stand.
            _ => Model::Zoo(Spec::by_name(name).map_err(|e| match e {
                Error::Argument { ref arg, .. } if arg == "name" => unknown_model(name),
                e => e,
            })?),
        })
    }
}

/// The error for a model name nobody knows (the one message for it).
fn unknown_model(name: &str) -> Error {
    Error::unknown_name("model", name, &CATALOGUE, "resnetN and plainN for N = 6n+2, preact_resnetN for N = 9n+2")
}
