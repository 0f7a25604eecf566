//! Residual blocks `y = S(x) + F(x)`, each recorded as one tape node.
//!
//! [`Residual`] wraps a branch `F` (any [`Module`]: a [`Sequential`] of
//! dense layers, the convolutions and batch norms of a ResNet block, a
//! user's own) and a shortcut `S`: the [`Identity`], option A's
//! [`ZeroPad`], option B's projection (any module, usually a 1×1
//! convolution and a batch norm), or none at all for the plain networks the
//! paper compares against. The sum is recorded with [`Var::call`]: one entry
//! on the tape whose backward is `δ_in = δ_out·(∂F/∂x + ∂S/∂x)` plus the
//! gradients of the parameters, which for the identity is
//! `δ_out·(∂F/∂x + I)`: the error signal passes through unchanged when `F`
//! is small. The results equal those of the same computation recorded op
//! by op. With [`recompute`](Residual::recompute) the node keeps only its
//! input and runs the block again during backward.
//!
//! Running statistics (batch norm inside `F` or `S`) move once per training
//! step, however often the block runs (recomputation, a recorded backward
//! pass), and dropout inside the block draws the same masks every run.
//! The zoo's blocks ([`Block`](crate::block::Block)) are built on it.
//!
//! ```
//! use wengert_core::{Tape, Tensor};
//! use wengert_nn::layer::{Activation, Linear, Sequential};
//! use wengert_nn::{Module, Step};
//! use wengert_resnet::residual::Residual;
//!
//! let mut rng = wengert_core::rng(0);
//! let f = Sequential::new()
//!     .push(Linear::<f64>::new(4, 4, true, &mut rng)?)
//!     .push(Activation::Tanh)
//!     .push(Linear::new(4, 4, true, &mut rng)?);
//! let mut block = Residual::new(f);
//!
//! let tape = Tape::new();
//! let mut step = Step::train(&tape, 0);
//! let x = tape.leaf(Tensor::ones([2, 4]));
//! let y = block.forward(&mut step, x)?;
//! assert_eq!(tape.len(), 1 + 4 + 1); // x, F's four parameters, and the block: one node
//! let grads = step.backward(y.sum_all()?)?;
//! assert_eq!(grads.len(), 4);
//! # Ok::<(), wengert_core::Error>(())
//! ```
//!
//! [`Sequential`]: wengert_nn::layer::Sequential

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use wengert_core::ops::fused::{function, vjp_of_recording, Function};
use wengert_core::{buffer, smallvec, Arity, Error, Float, InputGrads, Op, Result, Tensor, TensorGrads, Var};
use wengert_nn::{Module, StateMut, StateRef, Step, Visit};

/// `y = S(x) + F(x)` as one tape node; see the [module documentation](self).
///
/// The state names are those of `F` and `S`, unchanged and side by side: a
/// `Residual` around a [`Sequential`](wengert_nn::layer::Sequential) saves
/// `0.weight`, `0.bias`, …; name the shortcut's layers (`downsample.0`) to
/// keep them apart.
pub struct Residual<F, S = Identity> {
    node: Arc<Mutex<Sum<F, S>>>,
    name: &'static str,
    /// Keep only the block's input and run the block again during backward.
    pub recompute: bool,
}

/// What the node computes: the branch, plus the shortcut when there is
/// one, then a ReLU when asked.
struct Sum<F, S> {
    branch: F,
    shortcut: Option<S>,
    relu: bool,
}

impl<T: Float, F: Visit<T>, S: Visit<T>> Visit<T> for Sum<F, S> {
    wengert_nn::visit_fields!("" => branch, "" => shortcut);
}

impl<F> Residual<F, Identity> {
    /// The block `x + f(x)`.
    pub fn new(f: F) -> Self {
        Residual::with_shortcut(f, Identity)
    }
}

impl<F, S> Residual<F, S> {
    /// The block `s(x) + f(x)`.
    pub fn with_shortcut(f: F, s: S) -> Self {
        Self::of(Sum { branch: f, shortcut: Some(s), relu: false })
    }

    /// The block `f(x)` alone, still one node: the plain networks' blocks.
    pub fn without_shortcut(f: F) -> Self {
        Self::of(Sum { branch: f, shortcut: None, relu: false })
    }

    fn of(sum: Sum<F, S>) -> Self {
        Residual { node: Arc::new(Mutex::new(sum)), name: "residual", recompute: false }
    }

    /// Ends the block with a ReLU inside the node, `relu(S(x) + F(x))`
    /// (the post-activation blocks of He et al. 2016), the sum and the ReLU
    /// computed as one op ([`wengert_ops::add_relu`]): one pass over memory
    /// each way instead of two, and one activation kept instead of two.
    pub fn then_relu(self) -> Self {
        lock(&self.node).relu = true;
        self
    }

    /// Names the node on the tape (`residual` unless named), as profiles
    /// and anomaly reports show it.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The branch `F`.
    pub fn branch(&self) -> Part<'_, F, S> {
        Part(lock(&self.node))
    }

    /// The branch `F`, mutably (to re-initialise or freeze its parameters).
    pub fn branch_mut(&mut self) -> Part<'_, F, S> {
        Part(lock(&self.node))
    }
}

/// A residual block's branch, borrowed from its node ([`Residual::branch`]).
pub struct Part<'a, F, S>(MutexGuard<'a, Sum<F, S>>);

impl<F, S> Deref for Part<'_, F, S> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.0.branch
    }
}

impl<F, S> DerefMut for Part<'_, F, S> {
    fn deref_mut(&mut self) -> &mut F {
        &mut self.0.branch
    }
}

/// The block's state, shared with the node's function (a `Mutex` so that
/// the function, and a tape holding it, are `Send`). A panic inside the
/// block poisons nothing that matters here: the guard is taken over.
fn lock<M>(m: &Mutex<M>) -> MutexGuard<'_, M> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every buffer and counter of `m`, to put back after a repeated run.
fn snapshot<T: Float, M: Visit<T>>(m: &M) -> (Vec<Tensor<T>>, Vec<i64>) {
    let (mut buffers, mut counts) = (Vec::new(), Vec::new());
    m.visit("", &mut |_, s| match s {
        StateRef::Buffer(b) => buffers.push(b.clone()),
        StateRef::Count(c) => counts.push(*c),
        StateRef::Param(_) => {}
    });
    (buffers, counts)
}

fn restore<T: Float, M: Visit<T>>(m: &mut M, (buffers, counts): (Vec<Tensor<T>>, Vec<i64>)) {
    let (mut buffers, mut counts) = (buffers.into_iter(), counts.into_iter());
    m.visit_mut("", &mut |_, s| match s {
        StateMut::Buffer(b) => {
            if let Some(v) = buffers.next() {
                *b = v;
            }
        }
        StateMut::Count(c) => {
            if let Some(v) = counts.next() {
                *c = v;
            }
        }
        StateMut::Param(_) => {}
    });
}

impl<F, S> Sum<F, S> {
    fn forward<'t, T: Float>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>>
    where
        F: Module<T>,
        S: Module<T>,
    {
        let fx = self.branch.forward(step, x)?;
        let Some(shortcut) = &mut self.shortcut else {
            return if self.relu { wengert_ops::relu(fx) } else { Ok(fx) };
        };
        let sx = shortcut.forward(step, x)?;
        if sx.shape() != fx.shape() {
            return Err(Error::shape(
                "Residual",
                format!(
                    "the branch maps {:?} to {:?} and the shortcut to {:?}; S(x) + F(x) needs equal shapes",
                    x.shape().dims(),
                    fx.shape().dims(),
                    sx.shape().dims()
                ),
            ));
        }
        if self.relu {
            wengert_ops::add_relu(sx, fx)
        } else {
            sx.add(fx)
        }
    }
}

impl<T: Float, F: Module<T> + 'static, S: Module<T> + 'static> Module<T> for Residual<F, S> {
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        // The node's inputs: x, then every parameter in visiting order.
        let mut inputs = vec![x];
        self.node.visit("", &mut |_, s| {
            if let StateRef::Param(p) = s {
                inputs.push(step.param(p));
            }
        });
        let training = step.is_training();
        let sync_bn = step.sync_bn().cloned();
        // Dropout inside the block draws the same masks every time it runs.
        let seed = rand::Rng::random::<u64>(step.rng());
        let runs = Arc::new(AtomicUsize::new(0));
        let node = self.node.clone();
        let f: Function<T> = Arc::new(function(move |tape, v| {
            let mut m = lock(&node);
            // Running statistics move once per step, however often the
            // block runs (recomputation, a recorded backward pass).
            let saved = (training && runs.fetch_add(1, Ordering::Relaxed) > 0).then(|| snapshot(&*m));
            let mut inner = match (training, &sync_bn) {
                (true, Some(group)) => Step::train(tape, seed).with_sync_bn(group.clone()),
                (true, None) => Step::train(tape, seed),
                (false, _) => Step::eval(tape),
            };
            let mut vars = v[1..].iter();
            m.visit("", &mut |_, s| {
                if let StateRef::Param(p) = s {
                    if let Some(var) = vars.next() {
                        inner.bind(p, *var);
                    }
                }
            });
            let y = m.forward(&mut inner, v[0]);
            if let Some(saved) = saved {
                restore(&mut *m, saved);
            }
            y
        }));
        Var::call(self.name, f, &inputs, self.recompute)
    }
}

impl<T: Float, F: Visit<T>, S: Visit<T>> Visit<T> for Residual<F, S> {
    wengert_nn::visit_fields!("" => node);
}

/// The identity shortcut: `S(x) = x`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl<T: Float> Module<T> for Identity {
    fn forward<'t>(&mut self, _: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(x)
    }
}

impl<T: Float> Visit<T> for Identity {
    wengert_nn::visit_fields!();
}

/// Option A of He et al. 2016: `x[:, :, ::stride, ::stride]` with zero
/// channels added up to `channels`, half before and half after. It has no
/// parameters.
#[derive(Clone, Copy, Debug)]
pub struct ZeroPad {
    /// The subsampling stride.
    pub stride: usize,
    /// The output channel count (at least the input's).
    pub channels: usize,
}

impl<T: Float> Module<T> for ZeroPad {
    fn forward<'t>(&mut self, _: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let d = x.shape();
        if d.rank() != 4 || d[1] > self.channels || self.stride == 0 {
            return Err(Error::shape(
                "ZeroPad",
                format!(
                    "input is {d} at stride {}; need [N, C, H, W] with C at most {} and a stride of at least 1",
                    self.stride, self.channels
                ),
            ));
        }
        x.tape().apply(ZeroPadOp { pad: *self }, &[x])
    }
}

impl ZeroPad {
    /// The same map as slices and a concatenation of recorded ops: the
    /// differentiable reference [`ZeroPadOp`]'s `vjp` differentiates.
    fn composite<'t, T: Float>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let s = self.stride;
        let xs = x.slice(2, 0, usize::MAX, s)?.slice(3, 0, usize::MAX, s)?;
        let d = xs.shape();
        let extra = self.channels - d[1];
        let zeros = |c: usize| x.tape().constant(Tensor::zeros([d[0], c, d[2], d[3]]));
        Var::concat(&[zeros(extra / 2), xs, zeros(extra - extra / 2)], 1)
    }
}

/// [`ZeroPad`] as one op: a pass that writes the output, and a pass that
/// writes the input gradient, where slicing twice and concatenating with
/// two fresh zero tensors took five passes forward and as many backward
/// (2% of a ResNet-20 training step). Written through the public [`Op`]
/// trait, as a user's crate would add one.
struct ZeroPadOp {
    pad: ZeroPad,
}

impl ZeroPadOp {
    /// `(N, C, H, W)` of the input, `(OH, OW)` of the output, and the
    /// channel the input's first lands on.
    fn dims(&self, x: &[usize]) -> ([usize; 4], [usize; 2], usize) {
        let s = self.pad.stride;
        let before = (self.pad.channels - x[1]) / 2;
        ([x[0], x[1], x[2], x[3]], [x[2].div_ceil(s), x[3].div_ceil(s)], before)
    }
}

impl<T: Float> Op<T> for ZeroPadOp {
    fn name(&self) -> &'static str {
        "zero_pad_shortcut"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        let ([n, c, h, w], [oh, ow], before) = self.dims(x.dims());
        let (s, channels) = (self.pad.stride, self.pad.channels);
        let xd = x.data();
        // One image's output per chunk: zero channels, then the input's
        // channels subsampled, then zero channels.
        let out = buffer::build(n * channels * oh * ow, (channels * oh * ow).max(1), |i, img| {
            let (low, rest) = img.split_at_mut(before * oh * ow);
            let (mid, high) = rest.split_at_mut(c * oh * ow);
            low.fill(T::zero());
            high.fill(T::zero());
            for (plane, src) in mid.chunks_exact_mut((oh * ow).max(1)).zip(xd[i * c * h * w..].chunks_exact(h * w)) {
                for (row, from) in plane.chunks_exact_mut(ow.max(1)).zip(src.chunks((w * s).max(1))) {
                    row.iter_mut().zip(from.iter().step_by(s)).for_each(|(y, &v)| *y = v);
                }
            }
        });
        Tensor::from_vec(out, [n, channels, oh, ow])
    }

    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        vjp_of_recording(self.pad.composite(inputs[0])?, inputs, g, needs)
    }

    /// The input gradient: the output gradient's middle channels put back
    /// at every `stride`-th pixel, zero between.
    fn tensor_backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        grad: &Tensor<T>,
        needs: &[bool],
    ) -> Option<Result<TensorGrads<T>>> {
        if !needs[0] {
            return Some(Ok(smallvec![None]));
        }
        let dims = inputs[0].shape();
        let ([n, c, h, w], [oh, ow], before) = self.dims(dims.dims());
        let (s, channels) = (self.pad.stride, self.pad.channels);
        let gd = grad.data();
        let dx = buffer::build(n * c * h * w, (c * h * w).max(1), |i, img| {
            img.fill(T::zero());
            let from = &gd[(i * channels + before) * oh * ow..][..c * oh * ow];
            for (plane, src) in img.chunks_exact_mut((h * w).max(1)).zip(from.chunks_exact((oh * ow).max(1))) {
                for (rows, g) in plane.chunks_mut((w * s).max(1)).zip(src.chunks_exact(ow.max(1))) {
                    rows[..w].iter_mut().step_by(s).zip(g).for_each(|(d, &v)| *d = v);
                }
            }
        });
        Some(Tensor::from_vec(dx, dims).map(|t| smallvec![Some(t)]))
    }

    /// The input gradient needs only the shapes.
    fn reads_input(&self, _: usize) -> bool {
        false
    }

    /// The input gradient needs only the shapes.
    fn reads_output(&self) -> bool {
        false
    }
}

impl<T: Float> Visit<T> for ZeroPad {
    wengert_nn::visit_fields!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use wengert_core::{BackwardOptions, Tape};

    /// The op against the slices and concatenation it replaces, on odd
    /// sizes and strides 1 to 3: the same output and input gradient (both
    /// exact: they only move values), and the same second derivative
    /// through the recorded backward pass.
    #[test]
    fn zero_pad_op_is_slices_and_concat() {
        for (dims, stride, channels) in [
            ([2, 3, 5, 7], 2, 7),
            ([1, 4, 8, 8], 2, 8),
            ([3, 2, 4, 9], 3, 5),
            ([2, 2, 3, 3], 1, 2),
            ([1, 1, 1, 1], 2, 4),
        ] {
            let pad = ZeroPad { stride, channels };
            let n: usize = dims.iter().product();
            let x = Tensor::from_vec((0..n).map(|i| (i * 37 % 23) as f64 - 11.0).collect(), dims).unwrap();
            let tape = Tape::<f64>::new();
            let xv = tape.leaf(x);
            let (fused, composed) = (tape.apply(ZeroPadOp { pad }, &[xv]).unwrap(), pad.composite(xv).unwrap());
            let (yf, yc) = (fused.value().unwrap(), composed.value().unwrap());
            assert_eq!(yf.dims(), yc.dims(), "{dims:?} / {stride}");
            assert_eq!(yf.data(), yc.data(), "{dims:?} / {stride}");
            let g = Tensor::from_vec((0..yf.numel()).map(|i| (i * 13 % 17) as f64 - 8.0).collect(), yf.dims()).unwrap();
            let grad = |y: Var<'_, f64>| {
                let wrt = [xv];
                let opts = BackwardOptions::default().with_seed(g.clone()).with_wrt(&wrt).with_retain_graph(true);
                tape.backward_with(y, opts).unwrap().get(xv).cloned().unwrap()
            };
            assert_eq!(grad(fused).data(), grad(composed).data(), "{dims:?} / {stride}");
            // A second derivative, which runs the op's vjp: the gradient
            // of ‖∂Σ(g·y²)/∂x‖² with respect to x.
            let second = |y: Var<'_, f64>| {
                let gy = tape.constant(g.clone());
                let inner = y.mul(y)?.mul(gy)?.sum_all()?;
                let dx = tape.grad(inner, &[xv], None)?.remove(0);
                let outer = dx.mul(dx)?.sum_all()?;
                tape.grad(outer, &[xv], None)?.remove(0).value()
            };
            assert_eq!(second(fused).unwrap().data(), second(composed).unwrap().data(), "{dims:?} / {stride}");
        }
    }
}
