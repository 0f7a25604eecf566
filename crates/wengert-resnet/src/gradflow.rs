//! Gradient flow at initialisation: how much of the loss gradient reaches
//! the first layer of a deep net, plain or residual.
//!
//! Backprop multiplies one Jacobian per layer. In a plain net nothing keeps
//! that product near the identity; in a residual net every block
//! contributes `I + ∂F/∂x`. [`measure`] builds a stack of `depth` 3×3
//! convolutions (He-normal weights, ReLU, optionally batch norm after each
//! convolution), either one after another or paired into basic residual
//! blocks `relu(x + F(x))`, runs one batch of random images with random
//! labels through it and a linear classifier, and reports the norms of the
//! loss gradient with respect to the first and the last convolution's weights.
//!
//! ```
//! use wengert_resnet::gradflow::{measure, Setup};
//!
//! let plain = measure(&Setup { depth: 16, residual: false, norm: false, ..Setup::default() })?;
//! let residual = measure(&Setup { depth: 16, residual: true, norm: false, ..Setup::default() })?;
//! println!("first/last: plain {:.2e}, residual {:.2e}", plain.ratio(), residual.ratio());
//! assert!(plain.ratio() > 0.0 && residual.ratio() > 0.0);
//! # Ok::<(), wengert_core::Error>(())
//! ```
//!
//! The same question through time: [`measure_recurrent`] unrolls a vanilla
//! RNN, an LSTM or a residual recurrence `h_t = h_{t−1} + F(h_{t−1}, x_t)`
//! over `T` steps and compares `‖∂L/∂h(1)‖` with `‖∂L/∂h(T)‖`; the
//! Jacobian `∂h(T)/∂h(1)` is the product of the `T − 1` per-step Jacobians.

use crate::residual::Residual;
use rand::Rng as _;
use wengert_core::BackwardOptions;
use wengert_core::{Error, Result, Tape, Tensor};
use wengert_nn::init::{kaiming_normal, Fan, RELU_GAIN};
use wengert_nn::layer::{Activation, BatchNorm2d, Cell, Conv2d, Linear, Recurrent, Sequential};
use wengert_nn::{Module, Param, StateRef, Step, Visit};
use wengert_ops::{cross_entropy, global_avg_pool2d, Conv2dOptions};

/// The net and the batch of one measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Convolutions in the stack (even for residual nets: two per block).
    pub depth: usize,
    /// Pair the convolutions into residual blocks.
    pub residual: bool,
    /// Batch norm after every convolution.
    pub norm: bool,
    /// Channels of every convolution.
    pub channels: usize,
    /// Height and width of the images.
    pub size: usize,
    /// Images in the batch.
    pub batch: usize,
    /// Seed of the weights, images and labels.
    pub seed: u64,
}

impl Default for Setup {
    /// 16 layers of 16 channels on a batch of 8 images of 8×8.
    fn default() -> Self {
        Setup { depth: 16, residual: false, norm: false, channels: 16, size: 8, batch: 8, seed: 0 }
    }
}

/// Gradient norms of one measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flow {
    /// `‖∂L/∂W₁‖_F`, the first convolution's weight gradient.
    pub first: f64,
    /// `‖∂L/∂W_L‖_F`, the last convolution's.
    pub last: f64,
}

impl Flow {
    /// `first / last`: 1 when every layer gets the same share; collapsing
    /// towards 0 when gradients vanish on their way back, growing when they
    /// explode.
    pub fn ratio(&self) -> f64 {
        self.first / self.last
    }
}

fn conv(c: usize, rng: &mut wengert_core::Rng) -> Result<Conv2d<f64>> {
    let mut layer = Conv2d::new(c, c, 3, Conv2dOptions::square(1, 1), false, rng)?;
    layer.weight = Param::new(kaiming_normal([c, c, 3, 3], Fan::FanIn, RELU_GAIN, rng)?);
    Ok(layer)
}

/// Builds the stack of `setup`.
pub fn stack(setup: &Setup) -> Result<Sequential<f64>> {
    if setup.depth == 0 || (setup.residual && !setup.depth.is_multiple_of(2)) {
        return Err(Error::argument(
            "gradflow",
            "depth",
            format!("{} convolutions: need at least one, and an even number for residual blocks", setup.depth),
        ));
    }
    let mut rng = wengert_core::rng(setup.seed);
    let c = setup.channels;
    let mut net = Sequential::new();
    let with_norm = |s: Sequential<f64>| if setup.norm { s.push(BatchNorm2d::new(c)) } else { s };
    if setup.residual {
        for _ in 0..setup.depth / 2 {
            let f = with_norm(Sequential::new().push(conv(c, &mut rng)?));
            let f = with_norm(f.push(Activation::Relu).push(conv(c, &mut rng)?));
            net = net.push(Residual::new(f)).push(Activation::Relu);
        }
    } else {
        for _ in 0..setup.depth {
            net = with_norm(net.push(conv(c, &mut rng)?)).push(Activation::Relu);
        }
    }
    Ok(net)
}

/// Runs one batch through [`stack`]`(setup)` and a linear classifier over 10
/// classes and returns the weight-gradient norms of the first and last
/// convolutions.
pub fn measure(setup: &Setup) -> Result<Flow> {
    let mut net = stack(setup)?;
    let mut rng = wengert_core::rng(setup.seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut head = Linear::new(setup.channels, 10, true, &mut rng)?;
    let x = Tensor::normal([setup.batch, setup.channels, setup.size, setup.size], 0.0, 1.0, &mut rng)?;
    let labels: Vec<usize> = (0..setup.batch).map(|_| rng.random_range(0..10)).collect();
    let tape = Tape::new();
    let mut step = Step::train(&tape, setup.seed);
    let h = net.forward(&mut step, tape.constant(x))?;
    let logits = head.forward(&mut step, global_avg_pool2d(h)?)?;
    let grads = step.backward(cross_entropy(logits, &labels)?)?;
    let mut norms = Vec::new();
    net.visit("", &mut |_, s| {
        if let StateRef::Param(p) = s {
            if p.value().rank() == 4 {
                let g = grads.get(p).map(|g| g.data().iter().map(|v| v * v).sum::<f64>().sqrt());
                norms.push(g.unwrap_or(0.0));
            }
        }
    });
    match (norms.first(), norms.last()) {
        (Some(&first), Some(&last)) => Ok(Flow { first, last }),
        _ => Err(Error::argument("gradflow", "depth", "the stack has no convolution")),
    }
}

/// A recurrent net and the sequence of one [`measure_recurrent`] run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecurrentSetup {
    /// The update rule.
    pub cell: Cell,
    /// Time steps `T`.
    pub steps: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Input features per step.
    pub input: usize,
    /// Sequences in the batch.
    pub batch: usize,
    /// Seed of the weights (PyTorch's default initialisation), inputs and labels.
    pub seed: u64,
}

impl Default for RecurrentSetup {
    /// A vanilla RNN of 64 units over 100 steps of 16 inputs, batch 8.
    fn default() -> Self {
        RecurrentSetup { cell: Cell::Elman, steps: 100, hidden: 64, input: 16, batch: 8, seed: 0 }
    }
}

/// Unrolls the recurrence of `setup` over random inputs `N(0, 1)` from a zero
/// state, classifies `h(T)` with a linear layer over 10 classes against
/// random labels, and returns `‖∂L/∂h(1)‖_F` (as `first`) and `‖∂L/∂h(T)‖_F`
/// (as `last`).
pub fn measure_recurrent(setup: &RecurrentSetup) -> Result<Flow> {
    if setup.steps < 2 {
        return Err(Error::argument("gradflow", "steps", format!("{} steps; need at least 2", setup.steps)));
    }
    let mut rng = wengert_core::rng(setup.seed);
    let rnn = Recurrent::<f64>::new(setup.cell, setup.input, setup.hidden, &mut rng)?;
    let mut head = Linear::new(setup.hidden, 10, true, &mut rng)?;
    let x = Tensor::normal([setup.batch, setup.steps, setup.input], 0.0, 1.0, &mut rng)?;
    let labels: Vec<usize> = (0..setup.batch).map(|_| rng.random_range(0..10)).collect();
    let tape = Tape::new();
    let mut step = Step::train(&tape, setup.seed);
    let states = rnn.run(&mut step, tape.constant(x), rnn.zero_state(&tape, setup.batch))?;
    let (h1, ht) = (states[0].h, states[setup.steps - 1].h);
    let loss = cross_entropy(head.forward(&mut step, ht)?, &labels)?;
    let g = tape.backward_with(loss, BackwardOptions::default().with_wrt(&[h1, ht]))?;
    let norm = |t: &Tensor<f64>| t.data().iter().map(|v| v * v).sum::<f64>().sqrt();
    let g = g.into_tensors();
    Ok(Flow { first: norm(&g[0]), last: norm(&g[1]) })
}
