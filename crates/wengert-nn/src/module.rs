//! Parameters, the module abstraction, and binding parameters to a tape.
//!
//! Parameters live outside the tape, in the model, across training steps.
//! A [`Step`] puts each parameter on a tape the first time a module uses it
//! in that step (as a leaf, or as a constant when it is frozen), and maps the
//! tape's gradients back to the parameters afterwards. The step also carries
//! what varies per step rather than per model: training or evaluation mode,
//! and the seeded generator that dropout draws from.
//!
//! A module's state is listed once, in its [`Visit`] implementation, usually
//! written with [`visit_fields!`](crate::visit_fields): every reader and
//! writer of state (gradient binding, optimisers, clipping, checkpoints,
//! recomputation) goes through that one traversal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wengert_core::collective::Collective;
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

/// `prefix.name`, or `name` at the top level (and `prefix` for an empty
/// `name`: a child whose entries sit directly in its parent's namespace).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Something with named state: a parameter, a buffer, a counter, a module,
/// or a container of them. It is the one traversal of a model's state:
/// [`visit`](Visit::visit) for readers, [`visit_mut`](Visit::visit_mut)
/// for writers, in the same order with the same names.
///
/// Leaves and containers implement it here: a [`Param`] is one parameter
/// entry, a [`Tensor`] one buffer, an `i64` one counter; `Option`, `Vec`
/// (children `0`, `1`, …), [`Named`] (children with their own names), `Box`
/// and `Arc<Mutex<_>>` pass through to what they hold. A module lists its
/// fields once with [`visit_fields!`](crate::visit_fields):
///
/// ```
/// use wengert_core::{Float, Result, Tensor, Var};
/// use wengert_nn::{Module, Param, Step, Visit};
///
/// /// `y = scale · x + shift`, elementwise, with a counter of calls.
/// struct Affine<T: Float> {
///     scale: Param<T>,
///     shift: Option<Param<T>>,
///     calls: i64,
/// }
///
/// impl<T: Float> Visit<T> for Affine<T> {
///     // `weight` is the state name of the `scale` field.
///     wengert_nn::visit_fields!("weight" => scale, shift, calls);
/// }
///
/// impl<T: Float> Module<T> for Affine<T> {
///     fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
///         self.calls += 1;
///         let y = step.param(&self.scale).mul(x)?;
///         match &self.shift {
///             Some(b) => y.add(step.param(b)),
///             None => Ok(y),
///         }
///     }
/// }
///
/// let m = Affine::<f32> { scale: Param::new(Tensor::ones([3])), shift: None, calls: 0 };
/// assert_eq!(m.state_names(), ["weight", "calls"]);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub trait Visit<T: Float> {
    /// Calls `f` with every state entry's dotted name, under `prefix`.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>));

    /// Calls `f` with every state entry, mutably, in the order of
    /// [`visit`](Visit::visit).
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>));
}

/// Implements [`Visit`]'s two methods from one list of fields, inside an
/// `impl Visit<T> for …` block.
///
/// Each entry is a field (`weight`), saved under the field's name, or
/// `"name" => field` to save it under another name; `"" => field` puts the
/// field's entries directly in the module's namespace. Every field must
/// implement [`Visit`] (parameters, buffers, counters, modules, and
/// `Option`s, `Vec`s and [`Named`] lists of them). The float type is `T`;
/// write `visit_fields!(<f64> …)` for a module of one concrete type. See
/// [`Visit`] for an example.
#[macro_export]
macro_rules! visit_fields {
    (<$t:ty> $($fields:tt)*) => {
        $crate::__visit_fields!([$t] $($fields)*);
    };
    ($($fields:tt)*) => {
        $crate::__visit_fields!([T] $($fields)*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __visit_fields {
    ([$t:ty] $($($name:literal =>)? $field:ident),* $(,)?) => {
        #[allow(unused_variables)]
        fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, $crate::StateRef<'_, $t>)) {
            $(
                $crate::Visit::<$t>::visit(
                    &self.$field,
                    &$crate::module::join(prefix, $crate::__field_name!($($name)? $field)),
                    f,
                );
            )*
        }

        #[allow(unused_variables)]
        fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, $crate::StateMut<'_, $t>)) {
            $(
                $crate::Visit::<$t>::visit_mut(
                    &mut self.$field,
                    &$crate::module::join(prefix, $crate::__field_name!($($name)? $field)),
                    f,
                );
            )*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __field_name {
    ($name:literal $field:ident) => {
        $name
    };
    ($field:ident) => {
        stringify!($field)
    };
}

impl<T: Float> Visit<T> for Param<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        f(prefix.to_string(), StateRef::Param(self));
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        f(prefix.to_string(), StateMut::Param(self));
    }
}

/// A tensor in a module's state is a buffer: saved and loaded, not trained.
impl<T: Float> Visit<T> for Tensor<T> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        f(prefix.to_string(), StateRef::Buffer(self));
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        f(prefix.to_string(), StateMut::Buffer(self));
    }
}

/// An `i64` in a module's state is a counter (`num_batches_tracked`).
impl<T: Float> Visit<T> for i64 {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        f(prefix.to_string(), StateRef::Count(self));
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        f(prefix.to_string(), StateMut::Count(self));
    }
}

/// Absent state has no entries.
impl<T: Float, V: Visit<T>> Visit<T> for Option<V> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        if let Some(v) = self {
            v.visit(prefix, f);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        if let Some(v) = self {
            v.visit_mut(prefix, f);
        }
    }
}

/// Children named by position, `0`, `1`, … (PyTorch's `ModuleList`).
impl<T: Float, V: Visit<T>> Visit<T> for [V] {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        for (i, v) in self.iter().enumerate() {
            v.visit(&join(prefix, &i.to_string()), f);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        for (i, v) in self.iter_mut().enumerate() {
            v.visit_mut(&join(prefix, &i.to_string()), f);
        }
    }
}

/// As a slice: children `0`, `1`, ….
impl<T: Float, V: Visit<T>> Visit<T> for Vec<V> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        self.as_slice().visit(prefix, f)
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        self.as_mut_slice().visit_mut(prefix, f)
    }
}

/// As a slice: children `0`, `1`, ….
impl<T: Float, V: Visit<T>, const N: usize> Visit<T> for [V; N] {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        self.as_slice().visit(prefix, f)
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        self.as_mut_slice().visit_mut(prefix, f)
    }
}

impl<T: Float, V: Visit<T> + ?Sized> Visit<T> for Box<V> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        (**self).visit(prefix, f)
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        (**self).visit_mut(prefix, f)
    }
}

/// State shared with a tape node (a residual block's branch): visited under
/// the lock. A poisoned lock is taken over; the state itself is whole.
impl<T: Float, V: Visit<T> + ?Sized> Visit<T> for Arc<Mutex<V>> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        self.lock().unwrap_or_else(|e| e.into_inner()).visit(prefix, f)
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        self.lock().unwrap_or_else(|e| e.into_inner()).visit_mut(prefix, f)
    }
}

/// Children with names of their own, in order (an `nn.Sequential` built
/// from an `OrderedDict`, or a network's named stages).
#[derive(Clone, Debug)]
pub struct Named<V>(pub Vec<(String, V)>);

impl<V> Default for Named<V> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<T: Float, V: Visit<T>> Visit<T> for Named<V> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, StateRef<'_, T>)) {
        for (name, v) in &self.0 {
            v.visit(&join(prefix, name), f);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, StateMut<'_, T>)) {
        for (name, v) in &mut self.0 {
            v.visit_mut(&join(prefix, name), f);
        }
    }
}

/// A layer or network: a forward computation plus named state.
///
/// Names follow the PyTorch `state_dict` layout (`layer1.0.conv1.weight`,
/// `bn1.running_mean`), so checkpoints line up with those written elsewhere.
///
/// Modules are `Send`, as ops are, so that a model (and a residual block's
/// node, which holds its branch) can move to another thread. Their state is
/// listed by [`Visit`].
pub trait Module<T: Float>: Visit<T> + Send {
    /// Applies the module to `x`, reading its parameters through `step`.
    /// Takes `&mut self` because batch norm updates its running statistics
    /// in training mode.
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>>;

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

    /// Freezes every parameter whose dotted name `frozen` picks and makes
    /// the others trainable; returns the number of parameter elements
    /// frozen. A frozen parameter enters a step as a constant, so it gets no
    /// gradient and no optimiser state, and a batch norm whose γ and β are
    /// both frozen keeps its running statistics
    /// ([`BatchNorm2d`](crate::layer::BatchNorm2d)).
    ///
    /// ```
    /// use wengert_nn::layer::{BatchNorm2d, Linear, Sequential};
    /// use wengert_nn::Module;
    /// let mut net = Sequential::new()
    ///     .push_named("backbone", Linear::<f32>::new(4, 3, true, &mut wengert_core::rng(0))?)
    ///     .push_named("fc", Linear::<f32>::new(3, 2, true, &mut wengert_core::rng(1))?);
    /// let frozen = net.set_frozen(&|name| !name.starts_with("fc."));
    /// assert_eq!((frozen, net.num_parameters()), (4 * 3 + 3, 3 * 2 + 2));
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    fn set_frozen(&mut self, frozen: &dyn Fn(&str) -> bool) -> usize {
        let mut n = 0;
        self.visit_mut("", &mut |name, s| {
            if let StateMut::Param(p) = s {
                let freeze = frozen(&name);
                p.set_requires_grad(!freeze);
                if freeze {
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
    sync_bn: Option<Arc<dyn Collective>>,
}

impl<'t, T: Float> Step<'t, T> {
    fn new(tape: &'t Tape<T>, training: bool, seed: u64) -> Self {
        Step { tape, training, rng: wengert_core::rng(seed), bound: HashMap::new(), sync_bn: None }
    }

    /// A training step: batch statistics, running-statistic updates, dropout
    /// active with masks drawn from a generator seeded with `seed`.
    pub fn train(tape: &'t Tape<T>, seed: u64) -> Self {
        Step::new(tape, true, seed)
    }

    /// Batch norm layers in this step normalise over the batch of all the
    /// ranks of `group`, not this process's share alone
    /// ([`wengert_ops::sync_batch_norm_train`]).
    pub fn with_sync_bn(mut self, group: Arc<dyn Collective>) -> Self {
        self.sync_bn = Some(group);
        self
    }

    /// The ranks batch norm synchronises over in this step, if any
    /// ([`Step::with_sync_bn`]); a module that runs others in a step of
    /// its own passes it on.
    pub fn sync_bn(&self) -> Option<&Arc<dyn Collective>> {
        self.sync_bn.as_ref()
    }

    /// An evaluation step: running statistics, no dropout.
    pub fn eval(tape: &'t Tape<T>) -> Self {
        Step::new(tape, false, 0)
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
        self.backward_with(loss, None)
    }

    /// The trainable parameters used in this step, in order of first use,
    /// with their sizes: the order in which a data-parallel trainer plans
    /// its gradient buckets (reversed, the order in which backward
    /// finishes their gradients).
    pub fn trained(&self) -> Vec<(ParamId, usize)> {
        let mut t: Vec<(usize, ParamId, usize)> = self
            .bound
            .iter()
            .filter(|(_, v)| v.requires_grad())
            .map(|(&k, v)| (v.index(), k, v.shape().numel()))
            .collect();
        t.sort_unstable_by_key(|e| e.0);
        t.into_iter().map(|(_, k, n)| (k, n)).collect()
    }

    /// [`Step::backward`], calling `on_ready(parameter, gradient)` as soon
    /// as each parameter's gradient is final, while backward goes on
    /// through the layers before it ([`BackwardOptions::on_ready`]).
    pub fn backward_with(&self, loss: Var<'t, T>, on_ready: Option<&ParamReady<'_, T>>) -> Result<ParamGrads<T>> {
        let trained: Vec<(ParamId, Var<'t, T>)> =
            self.bound.iter().filter(|(_, v)| v.requires_grad()).map(|(&k, &v)| (k, v)).collect();
        let vars: Vec<Var<'t, T>> = trained.iter().map(|(_, v)| *v).collect();
        // The map from tape entry to parameter only serves a hook.
        let ids: HashMap<usize, ParamId> = match on_ready {
            Some(_) => trained.iter().map(|(k, v)| (v.index(), *k)).collect(),
            None => HashMap::new(),
        };
        let hook = |v: Var<'t, T>, g: &Tensor<T>| {
            if let (Some(f), Some(id)) = (on_ready, ids.get(&v.index())) {
                f(*id, g);
            }
        };
        let mut opts = BackwardOptions::default().with_wrt(&vars);
        opts.on_ready = on_ready.map(|_| &hook as _);
        let mut g = self.tape.backward_with(loss, opts)?;
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

/// The callback of [`Step::backward_with`]: a parameter and its final gradient.
pub type ParamReady<'a, T> = dyn Fn(ParamId, &Tensor<T>) + 'a;

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

    /// Mutable access by the parameter's identity (a data-parallel
    /// trainer puts the gradients summed across ranks back this way).
    pub fn get_by_id_mut(&mut self, id: ParamId) -> Option<&mut Tensor<T>> {
        self.map.get_mut(&id)
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
