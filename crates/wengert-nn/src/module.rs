//! Parameters, the module abstraction, and binding parameters to a tape.
//!
//! Parameters live outside the tape, in the model, across training steps.
//! A [`Step`] puts each parameter on a tape the first time a module uses it
//! in that step (as a leaf, or as a constant when it is frozen), and maps the
//! tape's gradients back to the parameters afterwards. The step also carries
//! what varies per step rather than per model: training or evaluation mode,
//! and the seeded generator that dropout draws from.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use wengert_core::{BackwardOptions, Error, Float, Result, Tape, Tensor, Var};

/// A parameter's identity: handed out when the parameter is made, unique
/// in the process, and kept when the parameter (or its model) is moved or
/// cloned. [`Step`] and [`ParamGrads`] key parameters by it, so gradients
/// survive moving a model between the forward pass and the update.
/// Checkpoints and optimiser state use the dotted names instead, which
/// outlive the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u64);

impl ParamId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ParamId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A trainable tensor that persists across steps.
///
/// A clone is the same parameter ([`Param::id`] is kept): gradients from a
/// step of either apply to both. Make a new one with [`Param::new`].
#[derive(Clone, Debug)]
pub struct Param<T: Float> {
    value: Tensor<T>,
    requires_grad: bool,
    id: ParamId,
}

impl<T: Float> Param<T> {
    /// A trainable parameter, with a fresh [`ParamId`].
    pub fn new(value: Tensor<T>) -> Self {
        Param { value, requires_grad: true, id: ParamId::fresh() }
    }

    /// The parameter's identity.
    pub fn id(&self) -> ParamId {
        self.id
    }

    /// The current value.
    pub fn value(&self) -> &Tensor<T> {
        &self.value
    }

    /// Mutable access to the value (what optimisers update).
    pub fn value_mut(&mut self) -> &mut Tensor<T> {
        &mut self.value
    }

    /// Whether the parameter is trained (false when frozen).
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }

    /// Freezes (`false`) or unfreezes (`true`) the parameter. A frozen
    /// parameter is put on the tape as a constant: it gets no gradient and
    /// optimisers leave it alone.
    pub fn set_requires_grad(&mut self, on: bool) {
        self.requires_grad = on;
    }
}

/// One named entry of a module's state, for reading.
pub enum StateRef<'a, T: Float> {
    /// A parameter.
    Param(&'a Param<T>),
    /// A float buffer that is not trained (running statistics).
    Buffer(&'a Tensor<T>),
    /// An integer counter (`num_batches_tracked`), stored as i64.
    Count(&'a i64),
}

/// One named entry of a module's state, for writing.
pub enum StateMut<'a, T: Float> {
    /// A parameter.
    Param(&'a mut Param<T>),
    /// A float buffer.
    Buffer(&'a mut Tensor<T>),
    /// An integer counter.
    Count(&'a mut i64),
}

/// `prefix.name`, or `name` at the top level.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A layer or network: a forward computation plus named state.
///
/// Names follow the PyTorch `state_dict` layout (`layer1.0.conv1.weight`,
/// `bn1.running_mean`), so checkpoints line up with those written elsewhere.
///
/// Modules are `Send`, as ops are, so that a model (and a residual block's
/// node, which holds its branch) can move to another thread.
pub trait Module<T: Float>: Send {
    /// Applies the module to `x`, reading its parameters through `step`.
    /// Takes `&mut self` because batch norm updates its running statistics
    /// in training mode.
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>>;

    /// Calls `f` with every state entry's dotted name, under `prefix`.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>));

    /// Calls `f` with every state entry, mutably.
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>));

    /// The number of trainable parameter elements.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit("", &mut |_, s| {
            if let StateRef::Param(p) = s {
                if p.requires_grad() {
                    n += p.value().numel();
                }
            }
        });
        n
    }

    /// The dotted names of every entry, in visiting order.
    fn state_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit("", &mut |n, _| names.push(n));
        names
    }
}

/// A boxed module is a module: models chosen at run time (by name, from the
/// command line) train and save like any other.
impl<T: Float, M: Module<T> + ?Sized> Module<T> for Box<M> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        (**self).forward(step, x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        (**self).visit(prefix, f)
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        (**self).visit_mut(prefix, f)
    }
}

/// Parameters bound to a tape for one training or evaluation step.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_nn::{layer::Linear, Module, Step};
///
/// let mut layer = Linear::<f64>::new(3, 2, true, &mut wengert_core::rng(0))?;
/// let tape = Tape::new();
/// let mut step = Step::train(&tape, 0);
/// let x = tape.constant(Tensor::ones([4, 3]));
/// let loss = layer.forward(&mut step, x)?.sum_all()?;
/// let grads = step.backward(loss)?;
/// assert_eq!(grads.get(&layer.bias.as_ref().unwrap()).unwrap().data(), &[4.0, 4.0]);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub struct Step<'t, T: Float> {
    tape: &'t Tape<T>,
    training: bool,
    rng: wengert_core::Rng,
    bound: HashMap<ParamId, Var<'t, T>>,
}

impl<'t, T: Float> Step<'t, T> {
    /// A training step: batch statistics, running-statistic updates, dropout
    /// active with masks drawn from a generator seeded with `seed`.
    pub fn train(tape: &'t Tape<T>, seed: u64) -> Self {
        Step { tape, training: true, rng: wengert_core::rng(seed), bound: HashMap::new() }
    }

    /// An evaluation step: running statistics, no dropout.
    pub fn eval(tape: &'t Tape<T>) -> Self {
        Step { tape, training: false, rng: wengert_core::rng(0), bound: HashMap::new() }
    }

    /// The tape.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// Whether this is a training step.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// The step's seeded generator (dropout masks).
    pub fn rng(&mut self) -> &mut wengert_core::Rng {
        &mut self.rng
    }

    /// The variable for `p` on this step's tape, putting it there on first
    /// use: as a leaf when trainable, as a constant when frozen.
    pub fn param(&mut self, p: &Param<T>) -> Var<'t, T> {
        let (tape, value, trained) = (self.tape, &p.value, p.requires_grad);
        *self.bound.entry(p.id).or_insert_with(|| {
            if trained {
                tape.leaf(value.clone())
            } else {
                tape.constant(value.clone())
            }
        })
    }

    /// Uses `var` as `p` in this step instead of putting `p`'s value on the
    /// tape: for differentiating with respect to variables made elsewhere
    /// (a conformance case's inputs, a meta-learning outer loop).
    pub fn bind(&mut self, p: &Param<T>, var: Var<'t, T>) {
        self.bound.insert(p.id, var);
    }

    /// Backward from a one-element `loss` to every trainable parameter used
    /// in this step.
    pub fn backward(&self, loss: Var<'t, T>) -> Result<ParamGrads<T>> {
        let trained: Vec<(ParamId, Var<'t, T>)> =
            self.bound.iter().filter(|(_, v)| v.requires_grad()).map(|(&k, &v)| (k, v)).collect();
        let vars: Vec<Var<'t, T>> = trained.iter().map(|(_, v)| *v).collect();
        let mut g = self.tape.backward_with(loss, BackwardOptions { wrt: Some(&vars), ..Default::default() })?;
        let mut map = HashMap::with_capacity(trained.len());
        for (key, v) in trained {
            let t = g
                .remove(v)
                .ok_or_else(|| Error::argument("Step::backward", "loss", "a parameter's gradient is missing"))?;
            map.insert(key, t);
        }
        Ok(ParamGrads { map })
    }
}

/// Gradients of parameters, as plain tensors (they keep nothing of the tape).
#[derive(Clone, Debug, Default)]
pub struct ParamGrads<T: Float> {
    map: HashMap<ParamId, Tensor<T>>,
}

impl<T: Float> ParamGrads<T> {
    /// The gradient of `p`, if `p` was used and trainable in the step.
    pub fn get(&self, p: &Param<T>) -> Option<&Tensor<T>> {
        self.map.get(&p.id)
    }

    /// Mutable access, e.g. for clipping.
    pub fn get_mut(&mut self, p: &Param<T>) -> Option<&mut Tensor<T>> {
        self.map.get_mut(&p.id)
    }

    /// Every gradient, in no particular order.
    pub fn tensors_mut(&mut self) -> impl Iterator<Item = &mut Tensor<T>> {
        self.map.values_mut()
    }

    /// The number of gradients.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
