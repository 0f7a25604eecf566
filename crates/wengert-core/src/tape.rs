//! The tape: a Wengert list of recorded operations, and the variables on it.

use crate::anomaly::Anomaly;
use crate::op::Op;
use crate::{Error, Float, Result, Shape, Tensor};
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// What produced an entry.
pub(crate) enum Origin<T: Float> {
    /// A variable the caller differentiates with respect to.
    Leaf,
    /// A value that carries no gradient.
    Constant,
    /// The result of an op, with the op kept for backward.
    Op(Box<dyn Op<T>>),
    /// An op's result whose op and saved values an earlier backward freed.
    Freed(&'static str),
    /// An op taken out of its entry while backward (or a recomputation)
    /// runs it.
    Running(&'static str),
}

/// One entry of the Wengert list.
pub(crate) struct Node<T: Float> {
    pub origin: Origin<T>,
    pub inputs: SmallVec<[u32; 4]>,
    pub shape: Shape,
    /// `None` once backward has freed it.
    pub value: Option<Tensor<T>>,
    /// Whether a gradient can flow into this entry from a leaf.
    pub requires_grad: bool,
}

/// A tape of recorded operations (a Wengert list).
///
/// Every variable lives on a tape; operations on variables append entries;
/// [`Tape::backward`] walks the entries in reverse to compute gradients.
/// There is no global graph: each tape is an ordinary value, so independent
/// tapes can run on different threads at once. A tape is reused across
/// training steps with [`Tape::clear`], which keeps its allocation; the
/// borrow checker guarantees that no variable outlives the entries it names.
///
/// A tape is `Send`: build it on one thread, record and differentiate on
/// another.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let worker = std::thread::spawn(move || {
///     let x = tape.leaf(Tensor::scalar(3.0));
///     let g = tape.backward(x.mul(x)?)?;
///     g.get(x).unwrap().item()
/// });
/// assert_eq!(worker.join().unwrap()?, 6.0);
/// # Ok::<(), wengert_core::Error>(())
/// ```
///
/// It is not `Sync`: recording appends to the tape through a shared
/// reference (every `Var` borrows it), so two threads recording at once
/// would race. One tape per thread, or hand it over:
///
/// ```compile_fail
/// fn shared<X: Sync>() {}
/// shared::<wengert_core::Tape<f32>>();
/// ```
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::scalar(3.0));
/// let y = x.mul(x)?.add_scalar(1.0)?; // y = x² + 1
/// let grads = tape.backward(y)?;
/// assert_eq!(grads.get(x).unwrap().item()?, 6.0);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub struct Tape<T: Float> {
    pub(crate) nodes: RefCell<Vec<Node<T>>>,
    grad_enabled: Cell<bool>,
    /// Who this tape is, and how many times it was cleared: [`Gradients`]
    /// remember both, so a variable of another tape (or of this tape before
    /// a [`Tape::clear`]) never reads a gradient that is not its own.
    ///
    /// [`Gradients`]: crate::Gradients
    pub(crate) identity: Cell<TapeId>,
    /// Anomaly detection: `Some` while on (see [`Tape::set_detect_anomaly`]).
    pub(crate) anomaly: RefCell<Option<Anomaly>>,
    /// Whether `anomaly` is `Some`: tested on every op, so kept where the
    /// test costs one load rather than a `RefCell` borrow.
    anomaly_on: Cell<bool>,
    /// Whether [`Tape::release_unread`] freed values that backward may
    /// form again: only then does backward look for them, so the tapes
    /// that never release anything pay one load per op.
    pub(crate) released: Cell<bool>,
}

/// A tape's identity: a number no other tape of the process has, and the
/// count of [`Tape::clear`] calls, so that entry numbers of one step are
/// never taken for those of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TapeId {
    tape: u64,
    generation: u64,
}

impl TapeId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TapeId { tape: NEXT.fetch_add(1, Ordering::Relaxed), generation: 0 }
    }
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape {
            nodes: RefCell::new(Vec::new()),
            grad_enabled: Cell::new(true),
            identity: Cell::new(TapeId::fresh()),
            anomaly: RefCell::new(None),
            anomaly_on: Cell::new(false),
            released: Cell::new(false),
        }
    }

    /// Turns anomaly detection on or off (off by default), as PyTorch's
    /// `torch.autograd.detect_anomaly` and JAX's `debug_nans`.
    ///
    /// While it is on, every op's output is checked for NaN and infinity as
    /// it is recorded, and every gradient as backward computes it; the first
    /// non-finite value is an [`Error::Anomaly`] naming the op, its input
    /// shapes and the place in the caller's code where the op was recorded.
    /// Recording sites are captured as backtraces, which makes each op
    /// several microseconds slower: use it to find a NaN, not to train. When
    /// off it costs one flag test per op.
    ///
    /// ```
    /// use wengert_core::{Error, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// tape.set_detect_anomaly(true);
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, -1.0], [2])?);
    /// let err = x.sqrt().unwrap_err(); // sqrt(-1) is NaN
    /// assert!(matches!(err, Error::Anomaly { .. }));
    /// assert!(err.to_string().starts_with("sqrt: output holds NaN"), "{err}");
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn set_detect_anomaly(&self, on: bool) {
        *self.anomaly.borrow_mut() = on.then(Anomaly::default);
        self.anomaly_on.set(on);
    }

    /// Whether anomaly detection is on ([`Tape::set_detect_anomaly`]).
    pub fn is_detect_anomaly(&self) -> bool {
        self.anomaly_on.get()
    }

    /// Fails with [`Error::ForeignVar`] unless `var` lives on this tape.
    pub(crate) fn owns(&self, op: &str, var: &Var<'_, T>) -> Result<()> {
        if std::ptr::eq(var.tape, self) {
            Ok(())
        } else {
            Err(Error::ForeignVar { op: op.to_string() })
        }
    }

    /// Puts a tensor on the tape as a leaf: a variable that gradients can be
    /// taken with respect to (a parameter or an input).
    pub fn leaf(&self, value: Tensor<T>) -> Var<'_, T> {
        self.push(Origin::Leaf, SmallVec::new(), value, true)
    }

    /// Puts a tensor on the tape as a constant: no gradient flows into it.
    pub fn constant(&self, value: Tensor<T>) -> Var<'_, T> {
        self.push(Origin::Constant, SmallVec::new(), value, false)
    }

    /// Records `op` applied to `inputs` and returns its output variable.
    ///
    /// This is how every operation, built-in or user-defined, gets on the
    /// tape. The op is kept only if a gradient can flow through it: under
    /// [`Tape::no_grad`], or when no input depends on a leaf, the result is a
    /// constant and the op is dropped at once.
    ///
    /// Fails before the op runs when an input lives on another tape or the
    /// number of inputs is not the op's [`Op::arity`].
    pub fn apply<'t>(&'t self, mut op: impl Op<T>, inputs: &[Var<'t, T>]) -> Result<Var<'t, T>> {
        if !op.arity().accepts(inputs.len()) {
            return Err(Error::argument(op.name(), "inputs", format!("takes {}, got {}", op.arity(), inputs.len())));
        }
        let mut ids = SmallVec::<[u32; 4]>::new();
        let mut requires_grad = false;
        let value = {
            let nodes = self.nodes.borrow();
            let mut values = SmallVec::<[&Tensor<T>; 4]>::new();
            for v in inputs {
                if !std::ptr::eq(v.tape, self) {
                    return Err(Error::ForeignVar { op: op.name().to_string() });
                }
                let node = &nodes[v.index()];
                let value = node.value.as_ref().ok_or_else(|| freed_error(v.index(), node))?;
                values.push(value);
                ids.push(v.id);
                requires_grad |= node.requires_grad;
            }
            let span = crate::profile::Span::enter(op.name(), || op.profile_detail(), crate::profile::Phase::Forward);
            let value = op.forward(&values)?;
            if span.recording() {
                if let Some(flops) = op.flops(&values, &value) {
                    span.add_flops(flops);
                }
            }
            drop(span);
            let checked = self.anomaly_on.get() && self.anomaly.borrow().as_ref().is_some_and(|a| a.checks_forward());
            if checked && value.numel() > 0 {
                crate::anomaly::check_output(op.name(), &values, &value, nodes.len())?;
            }
            value
        };
        requires_grad &= self.grad_enabled.get();
        Ok(if requires_grad {
            self.push(Origin::Op(Box::new(op)), ids, value, true)
        } else {
            self.push(Origin::Constant, SmallVec::new(), value, false)
        })
    }

    /// Runs `f` with recording switched off: every result inside is a
    /// constant. Use it for inference, metric computation and parameter
    /// updates. Recording resumes afterwards, even if `f` panics.
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        let _restore = GradMode::set(self, false);
        f()
    }

    /// Whether operations are currently recorded (false inside [`Tape::no_grad`]).
    pub fn is_grad_enabled(&self) -> bool {
        self.grad_enabled.get()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether the tape has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry but keeps the allocation, for the next training
    /// step. Needs `&mut self`, so no variable of this tape can still exist.
    pub fn clear(&mut self) {
        self.nodes.get_mut().clear();
        self.grad_enabled.set(true);
        self.released.set(false);
        let id = self.identity.get();
        self.identity.set(TapeId { generation: id.generation + 1, ..id });
        if let Some(a) = self.anomaly.get_mut() {
            a.sites.clear();
        }
    }

    /// Lists the entries: index, origin (op name) and shape. For debugging.
    pub fn listing(&self) -> String {
        let nodes = self.nodes.borrow();
        let mut s = String::new();
        for (i, n) in nodes.iter().enumerate() {
            let what = match &n.origin {
                Origin::Leaf => "leaf".to_string(),
                Origin::Constant => "constant".to_string(),
                Origin::Op(op) => format!("{}({:?})", op.name(), n.inputs.as_slice()),
                Origin::Freed(name) => format!("{name} (freed)"),
                Origin::Running(name) => format!("{name} (running)"),
            };
            s += &format!("#{i}: {what} {}\n", n.shape);
        }
        s
    }

    /// Frees, once a forward pass is done, every value that no op's
    /// backward reads ([`Op::reads_input`], [`Op::reads_output`]), and the
    /// values of [recomputable](crate::Op::recomputable) ops whose inputs
    /// stay, which backward forms again when it needs them. The entries in
    /// `keep` stay.
    /// For a private tape whose backward passes are never recorded (a
    /// function recorded as one node), where nothing else reads the values.
    pub(crate) fn release_unread(&self, keep: &[u32]) {
        let mut nodes = self.nodes.borrow_mut();
        let mut read = vec![false; nodes.len()];
        keep.iter().for_each(|&k| read[k as usize] = true);
        for (i, node) in nodes.iter().enumerate() {
            if let Origin::Op(op) = &node.origin {
                read[i] |= op.reads_output();
                for (k, &j) in node.inputs.iter().enumerate() {
                    read[j as usize] |= op.reads_input(k);
                }
            }
        }
        self.released.set(true);
        let mut kept = read;
        for i in 0..nodes.len() {
            let node = &nodes[i];
            let again = match &node.origin {
                // An op that reads its own output could not form it again:
                // backward holds the op while it runs.
                Origin::Op(op) => op.recomputable() && !op.reads_output(),
                _ => false,
            };
            if kept[i] && again && !keep.contains(&(i as u32)) && node.inputs.iter().all(|&j| kept[j as usize]) {
                kept[i] = false;
            }
        }
        for (node, kept) in nodes.iter_mut().zip(kept) {
            if !kept {
                node.value = None;
            }
        }
    }

    /// Forms the value of entry `index` again if [`Tape::release_unread`]
    /// freed it as recomputable; returns whether it did. Values it cannot
    /// form are left for the reader to report as freed.
    pub(crate) fn recompute(&self, index: usize) -> Result<bool> {
        let (mut op, values) = {
            let mut nodes = self.nodes.borrow_mut();
            let node = &nodes[index];
            if node.value.is_some() || !matches!(&node.origin, Origin::Op(op) if op.recomputable()) {
                return Ok(false);
            }
            let values: Option<SmallVec<[Tensor<T>; 4]>> =
                node.inputs.iter().map(|&j| nodes[j as usize].value.clone()).collect();
            let Some(values) = values else { return Ok(false) };
            let running = Origin::Running(nodes[index].origin_name());
            let Origin::Op(op) = std::mem::replace(&mut nodes[index].origin, running) else {
                unreachable!("checked above")
            };
            (op, values)
        };
        let refs: SmallVec<[&Tensor<T>; 4]> = values.iter().collect();
        let value = {
            let _span = crate::profile::Span::enter("recompute", || None, crate::profile::Phase::Backward);
            op.forward(&refs)
        };
        let mut nodes = self.nodes.borrow_mut();
        nodes[index].origin = Origin::Op(op);
        nodes[index].value = Some(value?);
        Ok(true)
    }

    pub(crate) fn push(
        &self,
        origin: Origin<T>,
        inputs: SmallVec<[u32; 4]>,
        value: Tensor<T>,
        requires_grad: bool,
    ) -> Var<'_, T> {
        let mut nodes = self.nodes.borrow_mut();
        let id = u32::try_from(nodes.len()).expect("a tape holds at most 2^32 entries");
        if self.anomaly_on.get() {
            if let Some(a) = self.anomaly.borrow_mut().as_mut() {
                a.record(id);
            }
        }
        nodes.push(Node { origin, inputs, shape: value.shape().clone(), value: Some(value), requires_grad });
        Var { tape: self, id }
    }
}

/// Restores a tape's recording flag when dropped.
pub(crate) struct GradMode<'t, T: Float> {
    tape: &'t Tape<T>,
    before: bool,
}

impl<'t, T: Float> GradMode<'t, T> {
    pub(crate) fn set(tape: &'t Tape<T>, on: bool) -> Self {
        let before = tape.grad_enabled.replace(on);
        GradMode { tape, before }
    }
}

impl<T: Float> Drop for GradMode<'_, T> {
    fn drop(&mut self) {
        self.tape.grad_enabled.set(self.before);
    }
}

/// The error for reading an entry whose value is gone: freed by an earlier
/// backward (its origin says so), or else released after a fused node's
/// forward pass.
pub(crate) fn freed_error<T: Float>(index: usize, node: &Node<T>) -> Error {
    let op = node.origin_name().to_string();
    match node.origin {
        Origin::Freed(_) => Error::Freed { index, op },
        _ => Error::Released { index, op },
    }
}

impl<T: Float> Node<T> {
    /// What made the entry: its op's name, "leaf" or "constant".
    pub(crate) fn origin_name(&self) -> &'static str {
        match &self.origin {
            Origin::Freed(name) | Origin::Running(name) => name,
            Origin::Op(op) => op.name(),
            Origin::Leaf => "leaf",
            Origin::Constant => "constant",
        }
    }
}

/// A variable: a handle to one entry of a [`Tape`].
///
/// `Var` is `Copy`; it borrows its tape, so it cannot outlive it or survive a
/// [`Tape::clear`]. Operations are methods returning `Result` (`x.mul(y)?`);
/// the arithmetic operators (`x * y`) are also implemented and panic on
/// shape errors, as their documentation says.
#[derive(Clone, Copy)]
pub struct Var<'t, T: Float> {
    pub(crate) tape: &'t Tape<T>,
    pub(crate) id: u32,
}

impl<'t, T: Float> Var<'t, T> {
    /// The tape this variable lives on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The entry's position on the tape.
    pub fn index(&self) -> usize {
        self.id as usize
    }

    /// The value. Shares the buffer; no copy is made.
    ///
    /// Fails only for an intermediate result whose value a backward pass
    /// without `retain_graph` has freed.
    pub fn value(&self) -> Result<Tensor<T>> {
        let nodes = self.tape.nodes.borrow();
        let node = &nodes[self.index()];
        node.value.clone().ok_or_else(|| freed_error(self.index(), node))
    }

    /// The shape (known even after the value is freed).
    pub fn shape(&self) -> Shape {
        self.tape.nodes.borrow()[self.index()].shape.clone()
    }

    /// Whether this variable has exactly the shape `dims` (no copy is made).
    pub fn has_shape(&self, dims: &[usize]) -> bool {
        self.tape.nodes.borrow()[self.index()].shape.dims() == dims
    }

    /// Whether both variables have the same shape (no copy is made).
    pub fn same_shape(&self, other: &Var<'_, T>) -> bool {
        if std::ptr::eq(self.tape, other.tape) {
            let nodes = self.tape.nodes.borrow();
            nodes[self.index()].shape == nodes[other.index()].shape
        } else {
            self.shape() == other.shape()
        }
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.tape.nodes.borrow()[self.index()].shape.numel()
    }

    /// Whether a gradient can flow into this variable from a leaf.
    pub fn requires_grad(&self) -> bool {
        self.tape.nodes.borrow()[self.index()].requires_grad
    }

    /// The same value as a constant: gradients stop here (stop-gradient).
    pub fn detach(&self) -> Result<Var<'t, T>> {
        Ok(self.tape.constant(self.value()?))
    }

    /// Checks that `other` lives on the same tape, for `op`'s error message.
    pub fn same_tape(&self, op: &str, other: &Var<'t, T>) -> Result<()> {
        self.tape.owns(op, other)
    }
}

impl<T: Float> fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Var#{}{}", self.id, self.shape())
    }
}
