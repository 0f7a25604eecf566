//! Optimisers, learning-rate schedules and gradient clipping.
//!
//! An optimiser updates a model's parameters in place from a step's
//! gradients, at a learning rate the caller passes in (usually from an
//! [`LrSchedule`]). Its state (momenta, step counts) is keyed by the
//! parameters' dotted names, so it can be saved and restored with the model.

mod adam;
mod schedule;
mod sgd;

pub use adam::Adam;
pub use schedule::{Constant, Cosine, LrSchedule, MultiStep, StepDecay, Warmup};
pub use sgd::Sgd;

use crate::module::{Module, ParamGrads, StateMut, StateRef};
use std::collections::BTreeMap;
use wengert_core::{Error, Float, Result, Shape, Tensor};

/// An optimiser's state: named tensors and the number of steps taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimState<T: Float> {
    /// `(name, tensor)` pairs, e.g. `layer1.0.conv1.weight.momentum_buffer`.
    pub tensors: Vec<(String, Tensor<T>)>,
    /// Steps taken so far.
    pub steps: u64,
}

/// Updates parameters from gradients.
pub trait Optimizer<T: Float> {
    /// The optimiser's kind (`"sgd"`, `"adam"`, `"adamw"`), saved with
    /// checkpoints so that a run is not resumed with another kind.
    fn name(&self) -> &'static str {
        "custom"
    }

    /// One update of every trainable parameter of `model` that has a
    /// gradient in `grads`, at learning rate `lr`.
    fn step(&mut self, model: &mut dyn Module<T>, grads: &ParamGrads<T>, lr: f64) -> Result<()>;

    /// The state to checkpoint.
    fn state(&self) -> OptimState<T>;

    /// Restores a checkpointed state.
    fn load_state(&mut self, state: OptimState<T>) -> Result<()>;
}

/// Groups of parameters, chosen by the prefix of their dotted names, that
/// learn at their own multiple of the learning rate: PyTorch's
/// `param_groups` with an `lr` each, as transfer learning uses them (the
/// pretrained backbone at a tenth of the new classifier's rate). A
/// parameter takes the scale of the longest prefix its name starts with,
/// and 1 when none matches.
///
/// ```
/// use wengert_nn::optim::ParamGroups;
/// // Everything at a tenth of the rate, but the classifier `fc` at the full rate.
/// let groups = ParamGroups::new().with_group("", 0.1)?.with_group("fc.", 1.0)?;
/// assert_eq!(groups.lr_scale("layer1.0.conv1.weight"), 0.1);
/// assert_eq!(groups.lr_scale("fc.weight"), 1.0);
/// assert!(ParamGroups::new().with_group("fc.", f64::NAN).is_err());
/// # Ok::<(), wengert_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamGroups {
    groups: Vec<(String, f64)>,
}

impl ParamGroups {
    /// No groups: every parameter learns at the learning rate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the group of parameters whose names start with `prefix` (`""`
    /// for all), learning at `lr_scale` × the learning rate; an error for a
    /// scale that is negative or not finite, or a prefix given twice.
    pub fn with_group(mut self, prefix: impl Into<String>, lr_scale: f64) -> Result<Self> {
        let prefix = prefix.into();
        if !(lr_scale.is_finite() && lr_scale >= 0.0) {
            return Err(Error::argument(
                "ParamGroups::with_group",
                "lr_scale",
                format!("must be finite and at least 0, got {lr_scale} for '{prefix}'"),
            ));
        }
        if self.groups.iter().any(|(p, _)| *p == prefix) {
            return Err(Error::argument("ParamGroups::with_group", "prefix", format!("'{prefix}' is given twice")));
        }
        self.groups.push((prefix, lr_scale));
        Ok(self)
    }

    /// The multiple of the learning rate that the parameter `name` learns at.
    pub fn lr_scale(&self, name: &str) -> f64 {
        self.groups
            .iter()
            .filter(|(p, _)| name.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map_or(1.0, |g| g.1)
    }

    /// The groups, `(prefix, lr_scale)`, in the order they were added.
    pub fn groups(&self) -> &[(String, f64)] {
        &self.groups
    }
}

/// Calls `f(name, value, grad)` for each trainable parameter with a gradient.
fn each_param<T: Float>(
    model: &mut dyn Module<T>,
    grads: &ParamGrads<T>,
    mut f: impl FnMut(&str, &mut Tensor<T>, &Tensor<T>) -> Result<()>,
) -> Result<()> {
    let mut result = Ok(());
    let mut used = 0;
    model.visit_mut("", &mut |name, entry| {
        if let StateMut::Param(p) = entry {
            if result.is_ok() && p.requires_grad() {
                if let Some(g) = grads.get(p) {
                    used += 1;
                    let g = g.clone();
                    result = f(&name, p.value_mut(), &g);
                }
            }
        }
    });
    result?;
    // Gradients keyed by no parameter of this model (another model's, or a
    // model rebuilt since the forward pass) would otherwise be dropped.
    if used < grads.len() {
        return Err(Error::argument(
            "optimizer",
            "grads",
            format!(
                "{} of {} gradients belong to no trainable parameter of this model (were they computed with another \
                 model, or was it rebuilt after the forward pass?)",
                grads.len() - used,
                grads.len()
            ),
        ));
    }
    Ok(())
}

/// Elements per parallel task of a fused update.
const CHUNK: usize = 1 << 13;

/// A fused update: `f(w, [s₁, …], g)` for every element of a parameter
/// `w`, its optimiser state tensors and its gradient `g`, in one pass over
/// memory and with no temporary, in parallel over chunks when the
/// parameter is large (as PyTorch's `fused` optimisers). `f` is the
/// optimiser's per-element formula, so how the elements are split among
/// threads does not change a bit of the result.
fn update<T: Float, const S: usize>(
    w: &mut [T],
    states: [&mut [T]; S],
    g: &[T],
    f: impl Fn(&mut T, [&mut T; S], T) + Sync,
) {
    debug_assert!(states.iter().all(|s| s.len() == w.len()) && g.len() == w.len());
    let run = |w: &mut [T], mut s: [&mut [T]; S], g: &[T]| {
        for (i, (w, &g)) in w.iter_mut().zip(g).enumerate() {
            f(w, s.each_mut().map(|s| &mut s[i]), g);
        }
    };
    if w.len() < wengert_core::kernel::PAR_THRESHOLD {
        return run(w, states, g);
    }
    use rayon::prelude::*;
    let mut parts = states.map(|s| s.chunks_mut(CHUNK));
    let tasks: Vec<_> = w
        .chunks_mut(CHUNK)
        .zip(g.chunks(CHUNK))
        .map(|(w, g)| (w, parts.each_mut().map(|p| p.next().expect("states as long as the parameter")), g))
        .collect();
    tasks.into_par_iter().for_each(|(w, s, g)| run(w, s, g));
}

/// The state tensor `key` of a parameter of shape `like`, made by `init`
/// on first use; an error when a restored tensor has another shape (it
/// would otherwise update part of the parameter, or panic).
fn state_tensor<'a, T: Float>(
    map: &'a mut BTreeMap<String, Tensor<T>>,
    key: String,
    like: &Shape,
    init: impl FnOnce() -> Result<Tensor<T>>,
) -> Result<&'a mut Tensor<T>> {
    if let Some(t) = map.get(&key) {
        if t.shape() != like {
            return Err(Error::argument(
                "optimizer",
                "state",
                format!("{key} has shape {}, its parameter has shape {like}", t.shape()),
            ));
        }
    } else {
        map.insert(key.clone(), init()?);
    }
    Ok(map.get_mut(&key).expect("inserted above"))
}

/// Checks that every tensor of an optimiser's `state` belongs to a
/// parameter of `model` (its name is the parameter's dotted name and a
/// suffix, `layer1.0.conv1.weight.momentum_buffer`) and has its shape. Run
/// it on a restored state before the first step; the error lists what
/// differs.
pub fn check_state<T: Float>(model: &dyn Module<T>, state: &OptimState<T>) -> Result<()> {
    let mut params = BTreeMap::new();
    model.visit("", &mut |name, s| {
        if let StateRef::Param(p) = s {
            params.insert(name, p.value().shape().clone());
        }
    });
    let mut problems = Vec::new();
    for (name, t) in &state.tensors {
        let param = name.rsplit_once('.').map(|(p, _)| p).unwrap_or(name);
        match params.get(param) {
            None => problems.push(format!("{name}: the model has no parameter {param}")),
            Some(shape) if shape != t.shape() => {
                problems.push(format!("{name} has shape {}, the parameter has {shape}", t.shape()))
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let more = problems.len().saturating_sub(4);
    problems.truncate(4);
    let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
    Err(Error::argument("optimizer", "state", format!("does not fit the model: {}{tail}", problems.join("; "))))
}

/// Scales all gradients together so that their global L2 norm is at most
/// `max_norm`; returns the norm before clipping. As PyTorch's
/// `clip_grad_norm_`: the factor is `max_norm / (norm + 1e-6)`, applied
/// only when it is below 1. The norm is accumulated in f64. A `max_norm`
/// that is negative or not a number is an error: it would flip the
/// gradients' signs or make them NaN.
pub fn clip_grad_norm<T: Float>(grads: &mut ParamGrads<T>, max_norm: f64) -> Result<f64> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::argument("clip_grad_norm", "max_norm", format!("must be at least 0, got {max_norm}")));
    }
    let mut sq = 0.0;
    for g in grads.tensors_mut() {
        sq += g.data().iter().map(|&v| v.as_f64() * v.as_f64()).sum::<f64>();
    }
    let norm = sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let c = T::of(coef);
        for g in grads.tensors_mut() {
            g.data_mut().iter_mut().for_each(|v| *v *= c);
        }
    }
    Ok(norm)
}

/// Checks an optimiser's learning rate and hyper-parameters before a step:
/// each `(name, value, least, below)` must be a number in `[least, below)`
/// (`below` may be infinite), and the learning rate finite and at least 0.
fn check_settings(op: &str, lr: f64, settings: &[(&str, f64, f64, f64)]) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(Error::argument(op, "lr", format!("must be finite and at least 0, got {lr}")));
    }
    for &(name, value, least, below) in settings {
        if !(value >= least && value < below) {
            let range = if below.is_finite() { format!("in [{least}, {below})") } else { format!("at least {least}") };
            return Err(Error::argument(op, name, format!("must be {range}, got {value}")));
        }
    }
    Ok(())
}

/// The step count after one more step; an error at the count's end rather
/// than a wrap to 0 (which would restart Adam's bias correction).
fn next_step(op: &str, steps: u64) -> Result<u64> {
    steps.checked_add(1).ok_or_else(|| Error::argument(op, "steps", "the step count is at its maximum (u64::MAX)"))
}

/// Checks that a state to load holds only tensors this optimiser keeps
/// (their names end in one of `suffixes`): another optimiser's state, or
/// none at all, is an error naming the first stranger.
fn check_state_names<T: Float>(op: &str, state: &OptimState<T>, suffixes: &[&str]) -> Result<()> {
    match state.tensors.iter().find(|(k, _)| !suffixes.iter().any(|s| k.ends_with(s))) {
        Some((k, _)) => Err(Error::argument(
            op,
            "state",
            format!("holds '{k}', which is not this optimiser's (its tensors end in {})", suffixes.join(" or ")),
        )),
        None => Ok(()),
    }
}
