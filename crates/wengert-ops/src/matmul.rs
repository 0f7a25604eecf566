//! `matmul` (batched, with broadcast batch dimensions) and `linear`.
//!
//! PyTorch: `torch.matmul(a, b)`, `torch.nn.functional.linear(x, w, b)`.
//!
//! Transposes are folded into the GEMM's strides rather than copied: the op
//! carries `trans_a`/`trans_b` flags, and the backward rules
//! `∂A = G·Bᵀ`, `∂B = Aᵀ·G` are matmuls with flipped flags — differentiable
//! like any other, so second derivatives come for free.

use crate::gemm::{matmul_into, Mat};
use rayon::prelude::*;
use wengert_core::{smallvec, Arity, Error, Float, InputGrads, Op, Result, Shape, Tensor, Var};

/// `op(A) · op(B)` over broadcast batch dimensions, where `op` transposes
/// the last two axes when its flag is set.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatMul {
    /// Use `Aᵀ` (of the last two axes).
    pub trans_a: bool,
    /// Use `Bᵀ` (of the last two axes).
    pub trans_b: bool,
}

/// The pieces of a batched product, checked.
struct Plan {
    batch: Shape,
    m: usize,
    k: usize,
    n: usize,
}

impl MatMul {
    fn plan(&self, a: &Shape, b: &Shape) -> Result<Plan> {
        if a.rank() < 2 || b.rank() < 2 {
            return Err(Error::shape("matmul", format!("both operands need rank 2 or more: a is {a}, b is {b}")));
        }
        let (ar, br) = (a.rank(), b.rank());
        let (m, ka) = if self.trans_a { (a[ar - 1], a[ar - 2]) } else { (a[ar - 2], a[ar - 1]) };
        let (kb, n) = if self.trans_b { (b[br - 1], b[br - 2]) } else { (b[br - 2], b[br - 1]) };
        if ka != kb {
            return Err(Error::shape("matmul", format!("inner dimensions differ: a is {a}, b is {b}")));
        }
        let batch = Shape::broadcast("matmul", &Shape::new(&a[..ar - 2]), &Shape::new(&b[..br - 2]))
            .map_err(|_| Error::shape("matmul", format!("batch dimensions do not broadcast: a is {a}, b is {b}")))?;
        Ok(Plan { batch, m, k: ka, n })
    }
}

/// Offsets of each batch element of a `[batch..., r, c]` operand inside its
/// buffer, under broadcasting to `batch`.
fn batch_offsets(shape: &Shape, batch: &Shape) -> Vec<usize> {
    let r = shape.rank();
    let own = Shape::new(&shape[..r - 2]);
    let mat = shape[r - 2] * shape[r - 1];
    let strides: Vec<usize> = (0..batch.rank())
        .map(|i| {
            let off = batch.rank() - own.rank();
            if i < off || own[i - off] == 1 {
                0
            } else {
                own[i - off..].iter().skip(1).product::<usize>() * mat
            }
        })
        .collect();
    (0..batch.numel())
        .map(|mut flat| {
            let mut o = 0;
            for i in (0..batch.rank()).rev() {
                o += (flat % batch[i]) * strides[i];
                flat /= batch[i];
            }
            o
        })
        .collect()
}

/// The `rows × cols` operand stored at `data[off..]`, row-major as
/// `cols × rows` when `trans` is set (so that the view is its transpose).
fn view<T>(data: &[T], off: usize, rows: usize, cols: usize, trans: bool) -> Mat<'_, T> {
    if trans {
        Mat::row_major(&data[off..off + rows * cols], cols, rows).t()
    } else {
        Mat::row_major(&data[off..off + rows * cols], rows, cols)
    }
}

impl<T: Float> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    /// `batch · m · n · k` multiply-adds.
    fn flops(&self, inputs: &[&Tensor<T>], _: &Tensor<T>) -> Option<f64> {
        let Plan { batch, m, k, n } = self.plan(inputs[0].shape(), inputs[1].shape()).ok()?;
        Some(2.0 * (batch.numel() * m * n * k) as f64)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (a, b) = (inputs[0], inputs[1]);
        let Plan { batch, m, k, n } = self.plan(a.shape(), b.shape())?;
        let (oa, ob) = (batch_offsets(a.shape(), &batch), batch_offsets(b.shape(), &batch));
        // Every element is written below (`matmul_into` overwrites, and fills
        // zeros when k = 0).
        let mut out = wengert_core::buffer::stale(batch.numel() * m * n);
        let product = |(i, dst): (usize, &mut [T])| {
            let av = view(a.data(), oa[i], m, k, self.trans_a);
            let bv = view(b.data(), ob[i], k, n, self.trans_b);
            matmul_into(dst, av, bv, false, false);
        };
        if m * n > 0 {
            if batch.numel() > 1 && m * n * k < 1 << 20 {
                // Many small products: one per thread.
                out.par_chunks_mut(m * n).enumerate().for_each(product);
            } else {
                // Few large products: let gemm use every thread on each.
                for (i, dst) in out.chunks_mut(m * n).enumerate() {
                    let av = view(a.data(), oa[i], m, k, self.trans_a);
                    let bv = view(b.data(), ob[i], k, n, self.trans_b);
                    matmul_into(dst, av, bv, false, true);
                }
            }
        }
        let mut dims = batch.dims().to_vec();
        dims.extend_from_slice(&[m, n]);
        Tensor::from_vec(out, dims)
    }

    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        let (a, b) = (inputs[0], inputs[1]);
        let mm = |x: Var<'t, T>, y: Var<'t, T>, trans_a: bool, trans_b: bool| {
            g.tape().apply(MatMul { trans_a, trans_b }, &[x, y])
        };
        // C = op(A)·op(B). For A: ∂op(A) = G·op(B)ᵀ; for B: ∂op(B) = op(A)ᵀ·G.
        let ga = match (needs[0], self.trans_a) {
            (false, _) => None,
            (true, false) => Some(mm(g, b, false, !self.trans_b)?),
            (true, true) => Some(mm(b, g, self.trans_b, true)?),
        };
        let gb = match (needs[1], self.trans_b) {
            (false, _) => None,
            (true, false) => Some(mm(a, g, !self.trans_a, false)?),
            (true, true) => Some(mm(g, a, true, self.trans_a)?),
        };
        Ok(smallvec![ga.map(|v| v.sum_to(&a.shape())).transpose()?, gb.map(|v| v.sum_to(&b.shape())).transpose()?])
    }
}

/// The matrix product over the last two axes, with NumPy broadcasting of the
/// leading (batch) axes. Both operands need rank 2 or more.
///
/// PyTorch: `torch.matmul(a, b)`.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let a = tape.leaf(Tensor::from_vec(vec![1., 2., 3., 4.], [2, 2])?);
/// let b = tape.constant(Tensor::from_vec(vec![5., 6., 7., 8.], [2, 2])?);
/// let c = wengert_ops::matmul(a, b)?;
/// assert_eq!(c.value()?.data(), &[19., 22., 43., 50.]);
/// let e = wengert_ops::matmul(a, tape.constant(Tensor::zeros([3, 1]))).unwrap_err();
/// assert_eq!(e.to_string(), "matmul: inner dimensions differ: a is [2, 2], b is [3, 1]");
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn matmul<'t, T: Float>(a: Var<'t, T>, b: Var<'t, T>) -> Result<Var<'t, T>> {
    a.tape().apply(MatMul::default(), &[a, b])
}

/// `x · wᵀ + b` for `x` of shape `[..., in]`, `w` of shape `[out, in]` and an
/// optional bias of shape `[out]`.
///
/// PyTorch: `torch.nn.functional.linear(x, w, b)`.
pub fn linear<'t, T: Float>(x: Var<'t, T>, w: Var<'t, T>, b: Option<Var<'t, T>>) -> Result<Var<'t, T>> {
    let (xs, ws) = (x.shape(), w.shape());
    if ws.rank() != 2 || xs.rank() == 0 || xs[xs.rank() - 1] != ws[1] {
        return Err(Error::shape(
            "linear",
            format!("x is {xs}, weight is {ws}; need x [..., in] and weight [out, in]"),
        ));
    }
    let lead = &xs[..xs.rank() - 1];
    let rows: usize = lead.iter().product();
    let x2 = x.reshape(&[rows, ws[1]])?;
    let y = x.tape().apply(MatMul { trans_a: false, trans_b: true }, &[x2, w])?;
    let mut dims = lead.to_vec();
    dims.push(ws[0]);
    let y = y.reshape(&dims)?;
    match b {
        None => Ok(y),
        Some(b) => {
            if b.shape().dims() != [ws[0]] {
                return Err(Error::shape(
                    "linear",
                    format!("bias is {}, weight is {ws}; need bias [{}]", b.shape(), ws[0]),
                ));
            }
            y.add(b)
        }
    }
}
