//! Recurrent layers unrolled over time on the tape: the Elman RNN, the
//! LSTM, and the residual recurrence `h ← h + F(h, x)`.

use crate::init::torch_default;
use crate::module::{Module, Param, Step, Visit};
use wengert_core::{Error, Float, Result, Rng, Tape, Tensor, Var};
use wengert_ops::{linear, sigmoid, tanh};

/// The update rule of a [`Recurrent`] layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Elman: `h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)`
    /// (PyTorch's `nn.RNN` with tanh).
    Elman,
    /// LSTM with PyTorch's gate order (input, forget, cell, output):
    /// `c_t = f ⊙ c_{t−1} + i ⊙ g`, `h_t = o ⊙ tanh(c_t)`.
    Lstm,
    /// The residual recurrence `h_t = h_{t−1} + F(h_{t−1}, x_t)` with
    /// `F = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)`: the Elman update
    /// added to the previous state, so the step's Jacobian is `I + ∂F/∂h`.
    Residual,
}

/// A recurrent layer unrolled on the tape, one set of entries per time step,
/// for any sequence length (backward is a loop over the tape, so 10,000
/// steps need no deep recursion).
///
/// Parameters have PyTorch's names and shapes for one layer:
/// `weight_ih_l0 [G·H, I]`, `weight_hh_l0 [G·H, H]`, `bias_ih_l0 [G·H]`,
/// `bias_hh_l0 [G·H]`, with `G = 4` for the LSTM and 1 otherwise, all drawn
/// from `U(±1/√H)` as PyTorch does.
///
/// As a [`Module`], the layer maps a batch-first sequence `[N, T, I]` to the
/// last hidden state `[N, H]`, starting from zeros; [`Recurrent::run`]
/// returns every state.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_nn::layer::Recurrent;
/// use wengert_nn::{Module, Step};
///
/// let mut lstm = Recurrent::<f64>::lstm(3, 5, &mut wengert_core::rng(0))?;
/// assert_eq!(lstm.state_names()[0], "weight_ih_l0");
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::ones([2, 7, 3]));       // 2 sequences of 7 steps
/// let h = lstm.forward(&mut Step::train(&tape, 0), x)?;
/// assert_eq!(h.shape().dims(), &[2, 5]);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub struct Recurrent<T: Float> {
    /// The update rule.
    pub cell: Cell,
    /// `[G·H, I]`
    pub weight_ih: Param<T>,
    /// `[G·H, H]`
    pub weight_hh: Param<T>,
    /// `[G·H]`
    pub bias_ih: Param<T>,
    /// `[G·H]`
    pub bias_hh: Param<T>,
}

/// What a [`Recurrent`] layer carries from one step to the next.
#[derive(Clone, Copy)]
pub struct State<'t, T: Float> {
    /// The hidden state `[N, H]`.
    pub h: Var<'t, T>,
    /// The LSTM's cell state `[N, H]` (`None` for the other cells).
    pub c: Option<Var<'t, T>>,
}

impl<T: Float> Recurrent<T> {
    /// A layer of `cell` from `input` features to `hidden` units.
    pub fn new(cell: Cell, input: usize, hidden: usize, rng: &mut Rng) -> Result<Self> {
        if input == 0 || hidden == 0 {
            return Err(Error::argument(
                "Recurrent",
                "size",
                format!("{input} inputs and {hidden} hidden units; both must be positive"),
            ));
        }
        let g = if cell == Cell::Lstm { hidden.checked_mul(4) } else { Some(hidden) }
            .ok_or_else(|| Error::argument("Recurrent", "hidden", format!("{hidden} units overflow as four gates")))?;
        Ok(Recurrent {
            cell,
            weight_ih: Param::new(torch_default([g, input], hidden, rng)?),
            weight_hh: Param::new(torch_default([g, hidden], hidden, rng)?),
            bias_ih: Param::new(torch_default([g], hidden, rng)?),
            bias_hh: Param::new(torch_default([g], hidden, rng)?),
        })
    }

    /// An Elman (tanh) layer.
    pub fn rnn(input: usize, hidden: usize, rng: &mut Rng) -> Result<Self> {
        Self::new(Cell::Elman, input, hidden, rng)
    }

    /// An LSTM layer.
    pub fn lstm(input: usize, hidden: usize, rng: &mut Rng) -> Result<Self> {
        Self::new(Cell::Lstm, input, hidden, rng)
    }

    /// A residual recurrence `h_t = h_{t−1} + F(h_{t−1}, x_t)`.
    pub fn residual(input: usize, hidden: usize, rng: &mut Rng) -> Result<Self> {
        Self::new(Cell::Residual, input, hidden, rng)
    }

    /// The number of hidden units `H`.
    pub fn hidden_size(&self) -> usize {
        self.weight_hh.value().dims()[1]
    }

    /// The number of input features `I`.
    pub fn input_size(&self) -> usize {
        self.weight_ih.value().dims()[1]
    }

    /// Zeros for a batch of `n`.
    pub fn zero_state<'t>(&self, tape: &'t Tape<T>, n: usize) -> State<'t, T> {
        let h = self.hidden_size();
        let zeros = || tape.constant(Tensor::zeros([n, h]));
        State { h: zeros(), c: (self.cell == Cell::Lstm).then(zeros) }
    }

    /// One step: the next state from the input's projection
    /// `xw = W_ih x_t + b_ih` (`[N, G·H]`) and the previous state.
    pub fn cell_step<'t>(&self, step: &mut Step<'t, T>, xw: Var<'t, T>, state: State<'t, T>) -> Result<State<'t, T>> {
        let (w, b) = (step.param(&self.weight_hh), step.param(&self.bias_hh));
        let pre = xw.add(linear(state.h, w, Some(b))?)?;
        match self.cell {
            Cell::Elman => Ok(State { h: tanh(pre)?, c: None }),
            Cell::Residual => Ok(State { h: state.h.add(tanh(pre)?)?, c: None }),
            Cell::Lstm => {
                let hid = self.hidden_size();
                let gate = |k: usize| pre.slice(1, k * hid, (k + 1) * hid, 1);
                let (i, f, g, o) = (sigmoid(gate(0)?)?, sigmoid(gate(1)?)?, tanh(gate(2)?)?, sigmoid(gate(3)?)?);
                let c_prev =
                    state.c.ok_or_else(|| Error::argument("Recurrent", "state", "an LSTM needs a cell state"))?;
                let c = f.mul(c_prev)?.add(i.mul(g)?)?;
                Ok(State { h: o.mul(tanh(c)?)?, c: Some(c) })
            }
        }
    }

    /// Runs the sequence `x` (`[N, T, I]`, batch first) from `state` and
    /// returns the state after every step (`T` of them, in order).
    pub fn run<'t>(&self, step: &mut Step<'t, T>, x: Var<'t, T>, state: State<'t, T>) -> Result<Vec<State<'t, T>>> {
        let d = x.shape();
        let (i, hid) = (self.input_size(), self.hidden_size());
        if d.rank() != 3 || d.dims()[2] != i {
            return Err(Error::shape("Recurrent", format!("input is {d}; need [batch, time, {i}]")));
        }
        let (n, t) = (d.dims()[0], d.dims()[1]);
        if state.h.shape().dims() != [n, hid] {
            return Err(Error::shape("Recurrent", format!("state is {}; need [{n}, {hid}]", state.h.shape())));
        }
        // All input projections at once: [N·T, I] · W_ihᵀ.
        let g = self.weight_ih.value().dims()[0];
        let xw = linear(x.reshape(&[n * t, i])?, step.param(&self.weight_ih), Some(step.param(&self.bias_ih)))?
            .reshape(&[n, t, g])?;
        let mut states = Vec::with_capacity(t);
        let mut s = state;
        for k in 0..t {
            let xk = xw.slice(1, k, k + 1, 1)?.reshape(&[n, g])?;
            s = self.cell_step(step, xk, s)?;
            states.push(s);
        }
        Ok(states)
    }
}

impl<T: Float> Module<T> for Recurrent<T> {
    /// The last hidden state `[N, H]` of the sequence `x` (`[N, T, I]`),
    /// starting from zeros.
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let n = x.shape().dims().first().copied().unwrap_or(0);
        let start = self.zero_state(step.tape(), n);
        let states = self.run(step, x, start)?;
        states.last().map(|s| s.h).ok_or_else(|| Error::shape("Recurrent", "the sequence has no time steps"))
    }
}

impl<T: Float> Visit<T> for Recurrent<T> {
    crate::visit_fields!("weight_ih_l0" => weight_ih, "weight_hh_l0" => weight_hh, "bias_ih_l0" => bias_ih, "bias_hh_l0" => bias_hh);
}
