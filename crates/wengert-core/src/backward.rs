//! The reverse sweep: from an output back to the variables asked for.
//!
//! Entries are visited in reverse order of recording, in one loop (no
//! recursion, so a 100,000-entry chain is fine), and only those on a path
//! from a requested variable to the output. Each visited op's
//! [`Op::vjp`](crate::Op::vjp) maps the output's gradient to its inputs';
//! gradients of an entry used several times are summed.
//!
//! Two modes share the loop:
//! - **tensor mode** (`create_graph` off, the usual training step): the vjp
//!   runs with recording off, its temporaries are cut off the tape as soon as
//!   its gradients are read out, and gradients are plain tensors that keep
//!   nothing of the graph alive. Unless `retain_graph` is set, each entry's
//!   op and value are freed once the sweep has passed it.
//! - **graph mode** (`create_graph` on): the vjp is recorded like any other
//!   computation, so the gradients are variables that can be differentiated
//!   again.

use crate::tape::{freed_error, GradMode, Origin, TapeId};
use crate::{Error, Float, Result, Shape, Tape, Tensor, Var};
use indexmap::IndexMap;
use smallvec::SmallVec;

/// Settings for [`Tape::backward_with`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct BackwardOptions<'a, 't, T: Float> {
    /// The cotangent ∂L/∂output; `None` means 1, allowed for one-element outputs.
    pub seed: Option<Tensor<T>>,
    /// The variables to differentiate with respect to; `None` means every
    /// leaf that the output depends on.
    pub wrt: Option<&'a [Var<'t, T>]>,
    /// Keep ops and saved values so that backward can run through them again.
    pub retain_graph: bool,
    /// Called once for each variable of `wrt` (each leaf, without `wrt`)
    /// that gets a gradient, as soon as that gradient is final: when the
    /// sweep passes the variable, after every op that reads it. A
    /// parameter put on the tape just before its layer (as
    /// `wengert_nn::Step` does) is final right after that layer's
    /// backward, while the layers before it are still to come: a
    /// data-parallel trainer starts summing it across processes there, as
    /// PyTorch's DDP does from its gradient hooks.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use wengert_core::{BackwardOptions, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let w1 = tape.leaf(Tensor::scalar(2.0));
    /// let h = w1.mul_scalar(3.0)?;
    /// let w2 = tape.leaf(Tensor::scalar(5.0)); // put on the tape at first use
    /// let y = h.mul(w2)?;
    /// let order = RefCell::new(Vec::new());
    /// let note = |v: wengert_core::Var<'_, f64>, g: &Tensor<f64>| order.borrow_mut().push((v.index(), g.item().unwrap()));
    /// tape.backward_with(y, BackwardOptions::default().with_on_ready(&note))?;
    /// // w2's gradient (h = 6) is final first, then w1's (3·w2 = 15).
    /// assert_eq!(order.into_inner(), [(w2.index(), 6.0), (w1.index(), 15.0)]);
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub on_ready: Option<&'a GradReady<'a, 't, T>>,
}

/// Builder methods, one per setting: each returns the settings with that
/// one changed, so that code written today keeps compiling when a
/// setting is added (the struct is `#[non_exhaustive]`).
impl<'a, 't, T: Float> BackwardOptions<'a, 't, T> {
    /// Sets the cotangent ∂L/∂output ([`BackwardOptions::seed`](Self::seed)).
    pub fn with_seed(mut self, value: Tensor<T>) -> Self {
        self.seed = Some(value);
        self
    }

    /// Sets the variables to differentiate with respect to ([`BackwardOptions::wrt`](Self::wrt)).
    pub fn with_wrt(mut self, value: &'a [Var<'t, T>]) -> Self {
        self.wrt = Some(value);
        self
    }

    /// Sets whether ops and saved values are kept for another backward ([`BackwardOptions::retain_graph`](Self::retain_graph)).
    pub fn with_retain_graph(mut self, value: bool) -> Self {
        self.retain_graph = value;
        self
    }

    /// Sets the callback that hears of each final gradient ([`BackwardOptions::on_ready`](Self::on_ready)).
    pub fn with_on_ready(mut self, value: &'a GradReady<'a, 't, T>) -> Self {
        self.on_ready = Some(value);
        self
    }
}

/// The callback of [`BackwardOptions::on_ready`]: a variable and its final gradient.
pub type GradReady<'a, 't, T> = dyn Fn(Var<'t, T>, &Tensor<T>) + 'a;

/// Gradients keyed by variable, in a stable order: the order of `wrt` when it
/// was given, else the order in which the leaves were put on the tape.
///
/// Plain tensors: holding them keeps nothing of the tape alive. They
/// remember which tape (and which step of it, see [`Tape::clear`]) they
/// came from, so a variable of another tape never reads a gradient.
#[derive(Clone, Debug)]
pub struct Gradients<T: Float> {
    map: IndexMap<usize, Tensor<T>>,
    tape: Option<TapeId>,
}

impl<T: Float> Default for Gradients<T> {
    fn default() -> Self {
        Gradients { map: IndexMap::new(), tape: None }
    }
}

impl<T: Float> Gradients<T> {
    /// The gradient with respect to `var`, if it was computed. `None` also
    /// for a variable of another tape, or of this tape after a
    /// [`Tape::clear`]; [`Gradients::try_get`] tells those apart.
    pub fn get(&self, var: Var<'_, T>) -> Option<&Tensor<T>> {
        self.try_get(var).ok().flatten()
    }

    /// The gradient with respect to `var`: `Ok(None)` when none was
    /// computed, [`Error::ForeignVar`] when `var` is not of the tape (and
    /// step) these gradients come from.
    ///
    /// ```
    /// use wengert_core::{Error, Tape, Tensor};
    /// let (a, b) = (Tape::<f64>::new(), Tape::<f64>::new());
    /// let x = a.leaf(Tensor::scalar(3.0));
    /// let y = b.leaf(Tensor::scalar(5.0)); // entry #0 of another tape
    /// let grads = a.backward(x.mul(x)?)?;
    /// assert_eq!(grads.try_get(x)?.unwrap().item()?, 6.0);
    /// assert!(matches!(grads.try_get(y), Err(Error::ForeignVar { .. })));
    /// assert!(grads.get(y).is_none());
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn try_get(&self, var: Var<'_, T>) -> Result<Option<&Tensor<T>>> {
        if self.tape.is_some_and(|t| t != var.tape.identity.get()) {
            return Err(Error::ForeignVar { op: "Gradients::get".into() });
        }
        Ok(self.map.get(&var.index()))
    }

    /// Takes the gradient with respect to `var` out (`None` as for
    /// [`Gradients::get`]).
    pub fn remove(&mut self, var: Var<'_, T>) -> Option<Tensor<T>> {
        if self.tape.is_some_and(|t| t != var.tape.identity.get()) {
            return None;
        }
        self.map.shift_remove(&var.index())
    }

    /// `(tape index, gradient)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Tensor<T>)> {
        self.map.iter().map(|(&k, v)| (k, v))
    }

    /// The number of gradients.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The gradients in order, without their keys.
    pub fn into_tensors(self) -> Vec<Tensor<T>> {
        self.map.into_values().collect()
    }
}

/// An entry's op, taken out for its backward, and the entry's inputs.
type Taken<T> = (Box<dyn crate::Op<T>>, SmallVec<[u32; 4]>);

/// The entries a sweep visits ([`Tape::paths`]).
struct Paths {
    /// The entries whose gradients were asked for.
    requested: Vec<bool>,
    /// The entries on a path from a requested one to the output.
    relevant: Vec<bool>,
}

/// One op's backward in progress: the op, its entry, its inputs, which
/// of them need a gradient, and the gradient of its output.
struct Step<'s, 't, T: Float> {
    op: &'s dyn crate::Op<T>,
    index: usize,
    inputs: SmallVec<[Var<'t, T>; 4]>,
    needs: SmallVec<[bool; 4]>,
    incoming: &'s Grad<'t, T>,
}

/// Tells `on_ready` that entry `i`'s gradient is final (tensor mode only).
fn ready<'t, T: Float>(tape: &'t Tape<T>, on_ready: Option<&GradReady<'_, 't, T>>, i: usize, g: &Grad<'t, T>) {
    if let (Some(ready), Grad::Tensor(t)) = (on_ready, g) {
        ready(Var { tape, id: i as u32 }, t);
    }
}

/// A gradient during the sweep: a tensor (tensor mode) or a variable (graph mode).
enum Grad<'t, T: Float> {
    Tensor(Tensor<T>),
    Var(Var<'t, T>),
}

impl<T: Float> Tape<T> {
    /// Gradients of a one-element `output` with respect to every leaf it
    /// depends on. Frees the graph behind `output` as it goes.
    pub fn backward<'t>(&'t self, output: Var<'t, T>) -> Result<Gradients<T>> {
        self.backward_with(output, BackwardOptions::default())
    }

    /// Gradients of `output` with the given seed, variables and retention.
    ///
    /// ```
    /// use wengert_core::{BackwardOptions, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![1., 2.], [2])?);
    /// let y = x.mul(x)?; // not a scalar: give a seed
    /// let opts = BackwardOptions::default().with_seed(Tensor::from_vec(vec![1., 10.], [2])?);
    /// let g = tape.backward_with(y, opts.with_wrt(&[x]))?;
    /// assert_eq!(g.get(x).unwrap().data(), &[2., 40.]);
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn backward_with<'t>(&'t self, output: Var<'t, T>, opts: BackwardOptions<'_, 't, T>) -> Result<Gradients<T>> {
        self.owns("backward", &output)?;
        let seed = self.seed_tensor(output, opts.seed)?;
        let (wrt, explicit): (Vec<u32>, bool) = match opts.wrt {
            Some(vars) => {
                for v in vars {
                    output.same_tape("backward", v)?;
                }
                (vars.iter().map(|v| v.id).collect(), true)
            }
            None => {
                let nodes = self.nodes.borrow();
                let leaves = (0..=output.id).filter(|&i| matches!(nodes[i as usize].origin, Origin::Leaf));
                (leaves.collect(), false)
            }
        };
        let grads = self.sweep(output, Grad::Tensor(seed), &wrt, false, opts.retain_graph, opts.on_ready)?;
        let mut map = IndexMap::with_capacity(wrt.len());
        for (&id, g) in wrt.iter().zip(grads) {
            let g = match g {
                Some(Grad::Tensor(t)) => t,
                Some(Grad::Var(v)) => v.value()?,
                None if explicit => Tensor::zeros(self.nodes.borrow()[id as usize].shape.clone()),
                None => continue,
            };
            map.insert(id as usize, g);
        }
        Ok(Gradients { map, tape: Some(self.identity.get()) })
    }

    /// Gradients of `output` with respect to `wrt`, as variables on this tape
    /// whose computation is itself recorded (`create_graph`), so they can be
    /// differentiated again. `seed` defaults to 1 for a one-element output.
    /// The graph is kept. Variables `output` does not depend on get zeros.
    ///
    /// ```
    /// use wengert_core::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::scalar(2.0));
    /// let y = x.powf(3.0)?;
    /// let dy = tape.grad(y, &[x], None)?[0]; // 3x² = 12
    /// let d2y = tape.grad(dy, &[x], None)?[0]; // 6x = 12
    /// assert_eq!(dy.value()?.item()?, 12.0);
    /// assert_eq!(d2y.value()?.item()?, 12.0);
    /// # Ok::<(), wengert_core::Error>(())
    /// ```
    pub fn grad<'t>(
        &'t self,
        output: Var<'t, T>,
        wrt: &[Var<'t, T>],
        seed: Option<Var<'t, T>>,
    ) -> Result<Vec<Var<'t, T>>> {
        self.owns("grad", &output)?;
        for v in wrt {
            output.same_tape("grad", v)?;
        }
        let seed = match seed {
            Some(s) => {
                output.same_tape("grad", &s)?;
                if s.shape() != output.shape() {
                    return Err(seed_shape_error(&output.shape(), &s.shape()));
                }
                s
            }
            None => self.constant(self.seed_tensor(output, None)?),
        };
        let ids: Vec<u32> = wrt.iter().map(|v| v.id).collect();
        let grads = self.sweep(output, Grad::Var(seed), &ids, true, true, None)?;
        wrt.iter()
            .zip(grads)
            .map(|(v, g)| match g {
                Some(Grad::Var(g)) => Ok(g),
                Some(Grad::Tensor(t)) => Ok(self.constant(t)),
                None => Ok(self.constant(Tensor::zeros(v.shape()))),
            })
            .collect()
    }

    fn seed_tensor(&self, output: Var<'_, T>, seed: Option<Tensor<T>>) -> Result<Tensor<T>> {
        let shape = output.shape();
        match seed {
            Some(s) if s.shape() != &shape => Err(seed_shape_error(&shape, s.shape())),
            Some(s) if self.is_detect_anomaly() && crate::anomaly::first_non_finite(&s).is_some() => {
                Err(Error::Anomaly {
                    op: "backward".into(),
                    detail: format!("the seed of shape {shape} is not finite"),
                })
            }
            Some(s) => Ok(s),
            None if shape.numel() == 1 => Ok(Tensor::ones(shape)),
            None => Err(Error::shape(
                "backward",
                format!(
                    "output has shape {shape}; a seed (cotangent) is needed for an output that is not a single value"
                ),
            )),
        }
    }

    /// The reverse loop shared by both modes: visit the entries from the
    /// output back, run each op's backward in the sweep's mode, add its
    /// input gradients up, and free what no later step needs. Returns one
    /// slot per `wrt` entry.
    fn sweep<'t>(
        &'t self,
        output: Var<'t, T>,
        seed: Grad<'t, T>,
        wrt: &[u32],
        create_graph: bool,
        retain_graph: bool,
        on_ready: Option<&GradReady<'_, 't, T>>,
    ) -> Result<Vec<Option<Grad<'t, T>>>> {
        let out = output.index();
        let paths = self.paths(out, wrt);
        let mut grads = GradSlots::new(out + 1);
        if paths.relevant[out] {
            grads.put(out, seed);
        }
        let _mode = GradMode::set(self, create_graph);
        let mut found = Vec::with_capacity(wrt.len());
        for i in (0..=out).rev() {
            if !paths.relevant[i] {
                continue;
            }
            let Some(g) = grads.take(i) else { continue };
            if let Some((op, inputs)) = self.take_op(i, &paths.relevant)? {
                let result = self.vjp_step(&*op, i, &inputs, &g, &paths.relevant, &mut grads);
                self.put_back_or_free(i, op, retain_graph, i == out);
                result?;
            }
            if paths.requested[i] {
                ready(self, on_ready, i, &g);
                found.push((i, g));
            }
        }
        Ok(wrt.iter().map(|&w| found.iter().find(|(i, _)| *i == w as usize).map(|(_, g)| g.duplicate())).collect())
    }

    /// Which of the entries up to `out` the sweep visits. An entry is
    /// relevant when it is requested or an input of it is: only relevant
    /// entries carry gradients, and an op is asked only for the gradients
    /// of its relevant inputs.
    fn paths(&self, out: usize, wrt: &[u32]) -> Paths {
        let n = out + 1;
        let mut requested = vec![false; n];
        for &w in wrt.iter().filter(|&&w| (w as usize) < n) {
            requested[w as usize] = true;
        }
        let mut relevant = requested.clone();
        let nodes = self.nodes.borrow();
        for i in 0..n {
            if !relevant[i] && nodes[i].requires_grad {
                relevant[i] = nodes[i].inputs.iter().any(|&j| relevant[j as usize]);
            }
        }
        Paths { requested, relevant }
    }

    /// Takes entry `i`'s op out of the tape for its backward (the entry
    /// reads as running meanwhile), with the entry's inputs; `None` when
    /// the entry has no op or no relevant input, an error when an earlier
    /// backward freed the op a gradient must pass through.
    #[inline]
    fn take_op(&self, i: usize, relevant: &[bool]) -> Result<Option<Taken<T>>> {
        let mut nodes = self.nodes.borrow_mut();
        let node = &mut nodes[i];
        if !node.inputs.iter().any(|&j| relevant[j as usize]) {
            return Ok(None);
        }
        match std::mem::replace(&mut node.origin, Origin::Constant) {
            Origin::Op(op) => {
                node.origin = Origin::Running(op.name());
                Ok(Some((op, node.inputs.clone())))
            }
            other => {
                node.origin = other;
                match node.origin {
                    Origin::Freed(_) => Err(freed_error(i, node)),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Entry `i`'s op after its backward: back in place when the graph is
    /// kept, else freed (its name kept for the error a second backward
    /// gets), with its value too unless `keep_value` (the output's).
    #[inline]
    fn put_back_or_free(&self, i: usize, op: Box<dyn crate::Op<T>>, retain_graph: bool, keep_value: bool) {
        let mut nodes = self.nodes.borrow_mut();
        let node = &mut nodes[i];
        if retain_graph {
            node.origin = Origin::Op(op);
        } else {
            node.origin = Origin::Freed(op.name());
            if !keep_value {
                node.value = None;
            }
        }
    }

    /// Runs one op's backward and adds its input gradients into `grads`.
    /// Inputs released as recomputable that the op reads are formed again
    /// for it; in tensor mode, what the backward put on the tape is cut off
    /// after it, and those inputs are released again. (An output its own op
    /// reads is never released that way.)
    fn vjp_step<'t>(
        &'t self,
        op: &dyn crate::Op<T>,
        index: usize,
        inputs: &[u32],
        g: &Grad<'t, T>,
        relevant: &[bool],
        grads: &mut GradSlots<'t, T>,
    ) -> Result<()> {
        let _span = crate::profile::Span::enter(op.name(), || op.profile_detail(), crate::profile::Phase::Backward);
        let restored = self.restore_inputs(op, inputs)?;
        let mark = self.len();
        let step = Step {
            op,
            index,
            inputs: inputs.iter().map(|&id| Var { tape: self, id }).collect(),
            needs: inputs.iter().map(|&j| relevant[j as usize]).collect(),
            incoming: g,
        };
        self.pause_anomaly_checks(true);
        let result = self.input_grads(&step, |k, gk| self.deliver(&step, k, gk, grads));
        self.pause_anomaly_checks(false);
        if matches!(g, Grad::Tensor(_)) {
            let mut nodes = self.nodes.borrow_mut();
            nodes.truncate(mark);
            restored.iter().for_each(|&j| nodes[j].value = None);
        }
        result
    }

    /// The values of `op`'s inputs that it reads and that were released as
    /// recomputable, formed again; returns the entries restored.
    #[inline]
    fn restore_inputs(&self, op: &dyn crate::Op<T>, inputs: &[u32]) -> Result<SmallVec<[usize; 4]>> {
        let mut restored = SmallVec::new();
        if self.released.get() {
            for (_, &j) in inputs.iter().enumerate().filter(|&(k, _)| op.reads_input(k)) {
                if self.recompute(j as usize)? {
                    restored.push(j as usize);
                }
            }
        }
        Ok(restored)
    }

    /// Hands the gradient of each of the step's needed inputs, by input
    /// position, to `deliver`, in the sweep's mode: in tensor mode the op's
    /// [`tensor_backward`](crate::Op::tensor_backward) when it has one, else
    /// its [`vjp`](crate::Op::vjp), recorded only in graph mode.
    #[inline]
    fn input_grads<'t>(
        &'t self,
        s: &Step<'_, 't, T>,
        mut deliver: impl FnMut(usize, Grad<'t, T>) -> Result<()>,
    ) -> Result<()> {
        let count = |n: usize| {
            if n == s.inputs.len() {
                Ok(())
            } else {
                Err(Error::Vjp {
                    op: s.op.name().to_string(),
                    detail: format!("returned {n} gradients for {} inputs", s.inputs.len()),
                })
            }
        };
        let output = Var { tape: self, id: s.index as u32 };
        let grad_var = match s.incoming {
            Grad::Var(v) => *v,
            Grad::Tensor(t) => {
                if let Some(fast) = s.op.tensor_backward(&s.inputs, output, t, &s.needs) {
                    let fast = fast?;
                    count(fast.len())?;
                    for (k, gk) in fast.into_iter().enumerate() {
                        if let Some(gk) = gk.filter(|_| s.needs[k]) {
                            deliver(k, Grad::Tensor(gk))?;
                        }
                    }
                    return Ok(());
                }
                self.constant(t.clone())
            }
        };
        let slow = s.op.vjp(&s.inputs, output, grad_var, &s.needs)?;
        count(slow.len())?;
        for (k, gk) in slow.into_iter().enumerate() {
            let Some(gk) = gk.filter(|_| s.needs[k]) else { continue };
            gk.same_tape(s.op.name(), &s.inputs[k])?;
            deliver(k, if matches!(s.incoming, Grad::Var(_)) { Grad::Var(gk) } else { Grad::Tensor(gk.value()?) })?;
        }
        Ok(())
    }

    /// Checks the gradient of the step's input `k` and adds it to that
    /// input's total.
    #[inline]
    fn deliver<'t>(
        &'t self,
        s: &Step<'_, 't, T>,
        k: usize,
        gk: Grad<'t, T>,
        grads: &mut GradSlots<'t, T>,
    ) -> Result<()> {
        let x = &s.inputs[k];
        let fits = match &gk {
            Grad::Var(v) => v.same_shape(x),
            Grad::Tensor(t) => x.has_shape(t.dims()),
        };
        if !fits {
            let shape = match &gk {
                Grad::Var(v) => v.shape(),
                Grad::Tensor(t) => t.shape().clone(),
            };
            return Err(Error::Vjp {
                op: s.op.name().to_string(),
                detail: format!("gradient for input {k} has shape {shape}, the input has shape {}", x.shape()),
            });
        }
        if self.is_detect_anomaly() {
            self.check_gradient(s.op, s.index, k, &gk, s.incoming, &s.inputs)?;
        }
        let j = x.index();
        let total = match grads.take(j) {
            None => gk,
            Some(acc) => accumulate(acc, gk)?,
        };
        grads.put(j, total);
        Ok(())
    }

    /// While an op's backward runs, anomaly detection checks the gradients
    /// it returns, not the values its vjp records on the way.
    #[inline]
    fn pause_anomaly_checks(&self, on: bool) {
        if self.is_detect_anomaly() {
            if let Some(a) = self.anomaly.borrow_mut().as_mut() {
                a.in_vjp = on;
            }
        }
    }

    /// Anomaly detection's backward check of the gradient `gk` that `op`
    /// (entry `index`) returned for input `k`.
    fn check_gradient<'t>(
        &'t self,
        op: &dyn crate::Op<T>,
        index: usize,
        k: usize,
        gk: &Grad<'t, T>,
        incoming: &Grad<'t, T>,
        inputs: &[Var<'t, T>],
    ) -> Result<()> {
        let value = |g: &Grad<'t, T>| match g {
            Grad::Tensor(t) => Ok(t.clone()),
            Grad::Var(v) => v.value(),
        };
        let incoming_finite = crate::anomaly::first_non_finite(&value(incoming)?).is_none();
        let shapes: Vec<Shape> = inputs.iter().map(|v| v.shape()).collect();
        let shapes: Vec<&Shape> = shapes.iter().collect();
        let site = self.anomaly.borrow().as_ref().and_then(|a| a.site(index as u32));
        crate::anomaly::check_gradient(op.name(), index, k, &value(gk)?, incoming_finite, &shapes, site)
    }
}

/// The pending gradient of each entry: a 4-byte slot per entry pointing into
/// a small arena, since only the entries near the sweep's front hold a
/// gradient at any time (a dense `Vec<Option<Grad>>` cost megabytes per
/// sweep to allocate and fill on long tapes).
struct GradSlots<'t, T: Float> {
    slot: Vec<u32>,
    arena: Vec<Option<Grad<'t, T>>>,
    free: Vec<u32>,
}

impl<'t, T: Float> GradSlots<'t, T> {
    const EMPTY: u32 = u32::MAX;

    fn new(n: usize) -> Self {
        GradSlots { slot: vec![Self::EMPTY; n], arena: Vec::new(), free: Vec::new() }
    }

    fn take(&mut self, i: usize) -> Option<Grad<'t, T>> {
        let s = std::mem::replace(&mut self.slot[i], Self::EMPTY);
        if s == Self::EMPTY {
            return None;
        }
        self.free.push(s);
        self.arena[s as usize].take()
    }

    fn put(&mut self, i: usize, g: Grad<'t, T>) {
        debug_assert_eq!(self.slot[i], Self::EMPTY);
        let s = match self.free.pop() {
            Some(s) => {
                self.arena[s as usize] = Some(g);
                s
            }
            None => {
                self.arena.push(Some(g));
                (self.arena.len() - 1) as u32
            }
        };
        self.slot[i] = s;
    }
}

impl<'t, T: Float> Grad<'t, T> {
    fn duplicate(&self) -> Grad<'t, T> {
        match self {
            Grad::Tensor(t) => Grad::Tensor(t.clone()),
            Grad::Var(v) => Grad::Var(*v),
        }
    }
}

/// Sums two gradients of one entry (the entry was used more than once).
fn accumulate<'t, T: Float>(acc: Grad<'t, T>, g: Grad<'t, T>) -> Result<Grad<'t, T>> {
    Ok(match (acc, g) {
        (Grad::Tensor(a), Grad::Tensor(b)) => {
            // Into whichever buffer no other tensor holds (an add's backward
            // hands one gradient to both its inputs): x + y is y + x to the
            // bit. When both are held, one pass into a new buffer rather
            // than a copy and then a pass.
            let (mut into, from) = match (a.is_unique(), b.is_unique()) {
                (true, _) => (a, b),
                (false, true) => (b, a),
                (false, false) => return Ok(Grad::Tensor(a.zip_map(&b, "backward", |x, y| x + y)?)),
            };
            crate::kernel::zip_assign(into.data_mut(), from.data(), |x, y| x + y);
            Grad::Tensor(into)
        }
        (Grad::Var(a), Grad::Var(b)) => Grad::Var(a.add(b)?),
        _ => unreachable!("one sweep never mixes tensor and graph gradients"),
    })
}

fn seed_shape_error(output: &Shape, seed: &Shape) -> Error {
    Error::shape("backward", format!("seed has shape {seed}, the output has shape {output}"))
}
