//! The one trait every differentiable operation implements.

use crate::{Float, Result, Tensor, Var};
use smallvec::SmallVec;
use std::fmt;

/// The gradients an op's [`Op::vjp`] returns: one entry per input, `None`
/// where the input needs no gradient (or the gradient is zero).
pub type InputGrads<'t, T> = SmallVec<[Option<Var<'t, T>>; 4]>;

/// The gradients an op's [`Op::tensor_backward`] returns, as plain tensors:
/// one entry per input, `None` where the input needs no gradient.
pub type TensorGrads<T> = SmallVec<[Option<Tensor<T>>; 4]>;

/// A differentiable operation: a name, a forward computation on tensors and a
/// vector-Jacobian product written with differentiable operations.
///
/// Ops are `Send` so that a [`Tape`](crate::Tape) holding them is: a tape
/// can be built on one thread and handed to a worker (it is not `Sync`:
/// one thread records on it at a time).
///
/// Every op in Wengert — the core's arithmetic, the ops crate's convolutions,
/// a user's own op in their own crate — is recorded through this trait with
/// [`Tape::apply`](crate::Tape::apply). Because [`Op::vjp`] builds its result
/// from [`Var`] operations, the backward pass can itself be recorded on the
/// tape (`create_graph`) and differentiated again: second derivatives need no
/// extra code.
///
/// # Example: `cube(x) = x³` as a user-defined op
///
/// ```
/// use wengert_core::{InputGrads, Op, Result, Tape, Tensor, Var, smallvec::smallvec};
///
/// struct Cube;
///
/// impl Op<f64> for Cube {
///     fn name(&self) -> &'static str {
///         "cube"
///     }
///     fn forward(&mut self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
///         Ok(inputs[0].map(|x| x * x * x))
///     }
///     fn vjp<'t>(
///         &self,
///         inputs: &[Var<'t, f64>],
///         _output: Var<'t, f64>,
///         grad: Var<'t, f64>,
///         _needs: &[bool],
///     ) -> Result<InputGrads<'t, f64>> {
///         // d(x³)/dx = 3x², written with differentiable ops.
///         let x = inputs[0];
///         Ok(smallvec![Some(grad.mul(x.mul(x)?.mul_scalar(3.0)?)?)])
///     }
/// }
///
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::scalar(2.0));
/// let y = tape.apply(Cube, &[x])?;
/// let g = tape.backward(y)?;
/// assert_eq!(g.get(x).unwrap().item()?, 12.0);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub trait Op<T: Float>: Send + 'static {
    /// The op's name, used in error messages and tape listings. Static, so
    /// that it outlives the op when backward frees it.
    fn name(&self) -> &'static str;

    /// How many inputs the op takes. [`Tape::apply`](crate::Tape::apply)
    /// checks it before [`Op::forward`] runs, so `forward` and `vjp` may
    /// index their inputs freely. The default accepts any number; an op
    /// that keeps it must check `inputs.len()` itself.
    fn arity(&self) -> Arity {
        Arity::AtLeast(0)
    }

    /// Computes the output from the input values.
    ///
    /// Takes `&mut self` so that an op can keep what its backward needs
    /// beyond its inputs and output (a pooling op's argmax, say); the op is
    /// dropped as soon as backward no longer needs it. Validate shapes and
    /// attributes here and return an [`Error`](crate::Error) naming the op.
    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>>;

    /// The vector-Jacobian product: given `grad` = ∂L/∂output, returns
    /// ∂L/∂input for each input whose `needs[i]` is true.
    ///
    /// `inputs` and `output` are the forward pass's variables, so their values
    /// are available ([`Var::value`]) and they can be used in differentiable
    /// expressions. Each returned gradient must have its input's shape.
    ///
    /// This is the op's differentiable derivative: when the backward pass is
    /// recorded (`Tape::grad`), it is the one that runs, so derivatives of
    /// every order follow from it. An op that has only a
    /// [`tensor_backward`](Op::tensor_backward) may leave it out; the
    /// default is an error saying so, never a silently zero derivative.
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        grad: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        let _ = (inputs, output, grad, needs);
        Err(crate::Error::Vjp {
            op: self.name().to_string(),
            detail: "has only a tensor-mode backward, so it cannot be differentiated twice (implement Op::vjp)".into(),
        })
    }

    /// The floating-point operations one forward pass does on `inputs`
    /// (a multiply-add counts two), for the GFLOPS column of a
    /// [`profile`](crate::profile); asked only while profiling. The default
    /// is `None`: the op does not count.
    fn flops(&self, inputs: &[&Tensor<T>], output: &Tensor<T>) -> Option<f64> {
        let _ = (inputs, output);
        None
    }

    /// What sets this call apart from the op's others in a
    /// [`profile`](crate::profile), where it matters (a convolution's
    /// geometry and the algorithm it runs): calls of one name and detail
    /// share a row, and each detail gets its own. Asked only while
    /// profiling, for the forward and the backward pass alike. The
    /// default is `None`: one row for the op's name.
    fn profile_detail(&self) -> Option<String> {
        None
    }

    /// An optional fast backward on plain tensors, for the usual training
    /// step where the backward pass is not recorded: given the forward
    /// pass's variables (read their values with [`Var::value`]; nothing
    /// done with them here is recorded) and `grad` = ∂L/∂output as a tensor,
    /// the same gradients [`Op::vjp`] would give, as tensors, computed by a
    /// fused kernel.
    ///
    /// Backward picks the mode, so an op cannot get it wrong: this runs when
    /// the sweep is not recorded and it returns `Some`; [`Op::vjp`] runs
    /// otherwise, and always when the backward pass is being recorded. The
    /// default is `None`.
    fn tensor_backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        grad: &Tensor<T>,
        needs: &[bool],
    ) -> Option<Result<TensorGrads<T>>> {
        let _ = (inputs, output, grad, needs);
        None
    }

    /// Whether the op's backward reads the value of input `k` when the
    /// sweep is not recorded (its [`tensor_backward`](Op::tensor_backward),
    /// or its [`vjp`](Op::vjp) where it has none). A function recorded as
    /// one node ([`Var::call`](crate::Var::call)) frees, once its forward
    /// pass is done, every intermediate value that no op's backward reads.
    /// The default, `true`, is always safe; say `false` only when no path
    /// of the backward reads the value (its shape is always known).
    fn reads_input(&self, k: usize) -> bool {
        let _ = k;
        true
    }

    /// Whether the op's backward reads its own output's value when the
    /// sweep is not recorded; see [`Op::reads_input`]. The default is `true`.
    fn reads_output(&self) -> bool {
        true
    }

    /// Whether [`Op::forward`], run again on the same inputs, gives the
    /// same output bit for bit at the cost of one pass over memory (batch
    /// norm's normalisation with its statistics kept, say). A function
    /// recorded as one node then keeps such an output only as the op and
    /// its inputs, and recomputes it in backward just before an op that
    /// reads it, which saves one activation for about a pass's time. The
    /// default is `false`.
    fn recomputable(&self) -> bool {
        false
    }
}

/// The number of inputs an op takes ([`Op::arity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly this many.
    Exactly(usize),
    /// This many or more (`concat`, a fused function).
    AtLeast(usize),
}

impl Arity {
    /// Whether `n` inputs are allowed.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (how, k) = match *self {
            Arity::Exactly(k) => ("", k),
            Arity::AtLeast(k) => ("at least ", k),
        };
        write!(f, "{how}{k} input{}", if k == 1 { "" } else { "s" })
    }
}
