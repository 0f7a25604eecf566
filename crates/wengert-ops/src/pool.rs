//! Pooling over NCHW images: `max_pool2d`, `avg_pool2d`, `global_avg_pool2d`.
//!
//! PyTorch: `torch.nn.functional.max_pool2d` / `avg_pool2d` (with
//! `ceil_mode` and `count_include_pad`), and `adaptive_avg_pool2d(x, 1)`.
//!
//! Max-pool backward works for any kernel, stride and padding, overlapping
//! windows included: the forward pass records each window's argmax and the
//! backward scatters-and-adds into them. Each pooling op and its adjoint form
//! a pair of linear maps (for max-pool, given the argmax), each the other's
//! vector-Jacobian product, so second derivatives work.

use rayon::prelude::*;
use std::sync::Arc;
use wengert_core::{smallvec, Arity, Error, Float, InputGrads, Op, Result, Tensor, Var};

/// Kernel, stride, padding and rounding of a 2-d pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pool2d {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Step between windows (PyTorch's default is the kernel size).
    pub stride: [usize; 2],
    /// Implicit padding on each side (at most half the kernel).
    pub padding: [usize; 2],
    /// Round the output size up instead of down; the last window must still
    /// start inside the input or its left padding.
    pub ceil_mode: bool,
}

/// Builder methods, one per setting: each returns the settings with that
/// one changed, so that code written today keeps compiling when a
/// setting is added (the struct is `#[non_exhaustive]`).
impl Pool2d {
    /// Sets the window's height and width ([`Pool2d::kernel`](Self::kernel)).
    pub const fn with_kernel(mut self, value: [usize; 2]) -> Self {
        self.kernel = value;
        self
    }

    /// Sets the step between windows ([`Pool2d::stride`](Self::stride)).
    pub const fn with_stride(mut self, value: [usize; 2]) -> Self {
        self.stride = value;
        self
    }

    /// Sets the implicit padding on each side ([`Pool2d::padding`](Self::padding)).
    pub const fn with_padding(mut self, value: [usize; 2]) -> Self {
        self.padding = value;
        self
    }

    /// Sets whether the output size rounds up ([`Pool2d::ceil_mode`](Self::ceil_mode)).
    pub const fn with_ceil_mode(mut self, value: bool) -> Self {
        self.ceil_mode = value;
        self
    }
}

impl Pool2d {
    /// A `k×k` window with stride `s`, no padding, floor rounding.
    pub const fn new(k: usize, s: usize) -> Self {
        Pool2d { kernel: [k, k], stride: [s, s], padding: [0, 0], ceil_mode: false }
    }

    /// The output `[height, width]` for an input of `[height, width]`, by the
    /// rule the pooling ops use (PyTorch's, `ceil_mode` included), or the
    /// error they would give.
    pub fn output_size(&self, input: [usize; 2]) -> Result<[usize; 2]> {
        self.out_dims("pool2d", &[1, 1, input[0], input[1]])
    }

    /// Validates against an input of `shape` and returns the output extents.
    fn out_dims(&self, op: &str, shape: &[usize]) -> Result<[usize; 2]> {
        if shape.len() != 4 {
            return Err(Error::shape(op, format!("input is {shape:?}; need [N, C, H, W]")));
        }
        // As PyTorch: an empty batch is allowed, empty channels or images are not.
        if shape[1..].contains(&0) {
            return Err(Error::shape(op, format!("input is {shape:?}: C, H and W must be at least 1")));
        }
        let mut out = [0; 2];
        for a in 0..2 {
            let (k, s, p, n) = (self.kernel[a], self.stride[a], self.padding[a], shape[2 + a]);
            if k == 0 || s == 0 {
                return Err(Error::argument(
                    op,
                    "kernel_size/stride",
                    format!("must be positive, got kernel {:?}, stride {:?}", self.kernel, self.stride),
                ));
            }
            // Windows are indexed with isize arithmetic in the kernels: keep
            // every extent far inside its range.
            if k > u32::MAX as usize || s > u32::MAX as usize {
                return Err(Error::argument(
                    op,
                    "kernel_size/stride",
                    format!("kernel {:?} or stride {:?} is beyond 2^32", self.kernel, self.stride),
                ));
            }
            if p > k / 2 {
                return Err(Error::argument(
                    op,
                    "padding",
                    format!("{:?} exceeds half the kernel {:?}", self.padding, self.kernel),
                ));
            }
            // PyTorch's rule: ⌊(n + 2p − k [+ s − 1 with ceil_mode]) / s⌋ + 1
            // windows, dropping a last one that would start in the right
            // padding. With ceil_mode a kernel may overhang a small input.
            // i128: neither a huge kernel nor a huge stride can overflow it.
            let (k, s, p, n) = (k as i128, s as i128, p as i128, n as i128);
            let span = n + 2 * p - k + if self.ceil_mode { s - 1 } else { 0 };
            let mut o = span.div_euclid(s) + 1;
            if self.ceil_mode && o >= 1 && (o - 1) * s >= n + p {
                o -= 1;
            }
            if o < 1 {
                return Err(Error::shape(
                    op,
                    format!(
                        "kernel {:?} is larger than the padded input {shape:?} (padding {:?}, ceil_mode {})",
                        self.kernel, self.padding, self.ceil_mode
                    ),
                ));
            }
            out[a] = o as usize;
        }
        wengert_core::Shape::new(&[shape[0], shape[1], out[0], out[1]]).checked_numel(op)?;
        Ok(out)
    }
}

/// The rows (or columns) window `o` covers: `[start, end)` clipped to the
/// input, and the size of the window clipped to the padded input only.
#[inline]
fn window(o: usize, k: usize, s: usize, p: usize, n: usize) -> (usize, usize, usize) {
    let start = (o * s) as isize - p as isize;
    let end_padded = (start + k as isize).min((n + p) as isize);
    let padded = (end_padded - start) as usize;
    let lo = start.max(0) as usize;
    let hi = end_padded.min(n as isize).max(0) as usize;
    (lo, hi.max(lo), padded)
}

/// Max-pooling; remembers each window's argmax (flat index in its plane).
#[derive(Clone, Debug)]
struct MaxPool {
    geom: Pool2d,
    argmax: Arc<Vec<u32>>,
}

impl<T: Float> Op<T> for MaxPool {
    fn name(&self) -> &'static str {
        "max_pool2d"
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let x = inputs[0];
        let d = x.dims();
        let [oh, ow] = self.geom.out_dims("max_pool2d", d)?;
        let (h, w) = (d[2], d[3]);
        let g = self.geom;
        let planes = d[0] * d[1];
        let mut out = wengert_core::buffer::zeroed(planes * oh * ow);
        let mut arg = vec![0u32; planes * oh * ow];
        out.par_chunks_mut(oh * ow).zip(arg.par_chunks_mut(oh * ow)).enumerate().for_each(|(pl, (o, a))| {
            let src = &x.data()[pl * h * w..(pl + 1) * h * w];
            for oy in 0..oh {
                let (y0, y1, _) = window(oy, g.kernel[0], g.stride[0], g.padding[0], h);
                for ox in 0..ow {
                    let (x0, x1, _) = window(ox, g.kernel[1], g.stride[1], g.padding[1], w);
                    let (mut best, mut at) = (T::neg_infinity(), y0 * w + x0);
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            let v = src[iy * w + ix];
                            // NaN wins, as in PyTorch.
                            if v > best || v.is_nan() {
                                best = v;
                                at = iy * w + ix;
                                if v.is_nan() {
                                    break;
                                }
                            }
                        }
                    }
                    o[oy * ow + ox] = best;
                    a[oy * ow + ox] = at as u32;
                }
            }
        });
        self.argmax = Arc::new(arg);
        Tensor::from_vec(out, [d[0], d[1], oh, ow])
    }

    fn vjp<'t>(&self, inputs: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let s = inputs[0].shape();
        let scatter = ArgmaxMap {
            argmax: self.argmax.clone(),
            in_dims: s.dims().to_vec(),
            out_dims: g.shape().dims().to_vec(),
            scatter: true,
        };
        Ok(smallvec![Some(g.tape().apply(scatter, &[g])?)])
    }
}

/// Given argmax indices: `scatter` adds each output-plane value into its
/// argmax cell of a zero input plane; otherwise gathers back. Adjoint pair.
#[derive(Clone, Debug)]
struct ArgmaxMap {
    argmax: Arc<Vec<u32>>,
    /// The pooled input's shape `[N, C, H, W]`.
    in_dims: Vec<usize>,
    /// The pooled output's shape `[N, C, OH, OW]`.
    out_dims: Vec<usize>,
    scatter: bool,
}

impl<T: Float> Op<T> for ArgmaxMap {
    fn name(&self) -> &'static str {
        if self.scatter {
            "max_pool2d_adjoint"
        } else {
            "max_pool2d_gather"
        }
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let src = inputs[0];
        let plane_in = self.in_dims[2] * self.in_dims[3];
        let plane_out = self.out_dims[2] * self.out_dims[3];
        if self.scatter {
            let mut out = wengert_core::buffer::zeroed(self.in_dims.iter().product());
            out.par_chunks_mut(plane_in).enumerate().for_each(|(pl, o)| {
                let idx = &self.argmax[pl * plane_out..(pl + 1) * plane_out];
                for (&i, &v) in idx.iter().zip(&src.data()[pl * plane_out..(pl + 1) * plane_out]) {
                    o[i as usize] += v;
                }
            });
            Tensor::from_vec(out, self.in_dims.clone())
        } else {
            let out = (0..self.argmax.len())
                .map(|j| src.data()[(j / plane_out) * plane_in + self.argmax[j] as usize])
                .collect();
            Tensor::from_vec(out, self.out_dims.clone())
        }
    }

    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let mut flipped = self.clone();
        flipped.scatter = !self.scatter;
        Ok(smallvec![Some(g.tape().apply(flipped, &[g])?)])
    }
}

/// Average pooling, or (`adjoint`) its transpose, which spreads each output
/// value back over its window. Each is the other's vector-Jacobian product.
#[derive(Clone, Debug)]
struct AvgPool {
    geom: Pool2d,
    count_include_pad: bool,
    /// `[N, C, H, W]` of the pooled input.
    in_dims: [usize; 4],
    out_hw: [usize; 2],
    adjoint: bool,
}

impl AvgPool {
    /// Calls `f(out_index, rows, cols, divisor)` for each window of a plane.
    fn windows(&self, mut f: impl FnMut(usize, (usize, usize), (usize, usize), usize)) {
        let (g, [_, _, h, w], [oh, ow]) = (&self.geom, self.in_dims, self.out_hw);
        for oy in 0..oh {
            let (y0, y1, py) = window(oy, g.kernel[0], g.stride[0], g.padding[0], h);
            for ox in 0..ow {
                let (x0, x1, px) = window(ox, g.kernel[1], g.stride[1], g.padding[1], w);
                let div = if self.count_include_pad { py * px } else { (y1 - y0) * (x1 - x0) };
                f(oy * ow + ox, (y0, y1), (x0, x1), div.max(1));
            }
        }
    }
}

impl<T: Float> Op<T> for AvgPool {
    fn name(&self) -> &'static str {
        if self.adjoint {
            "avg_pool2d_adjoint"
        } else {
            "avg_pool2d"
        }
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let src = inputs[0].data();
        let [n, c, h, w] = self.in_dims;
        let [oh, ow] = self.out_hw;
        let (plane_in, plane_out) = (h * w, oh * ow);
        let (dst_plane, dims) =
            if self.adjoint { (plane_in, vec![n, c, h, w]) } else { (plane_out, vec![n, c, oh, ow]) };
        let mut out = wengert_core::buffer::zeroed(n * c * dst_plane);
        out.par_chunks_mut(dst_plane).enumerate().for_each(|(pl, o)| {
            if self.adjoint {
                let g = &src[pl * plane_out..(pl + 1) * plane_out];
                self.windows(|j, (y0, y1), (x0, x1), div| {
                    let v = g[j] / T::of(div as f64);
                    for iy in y0..y1 {
                        o[iy * w + x0..iy * w + x1].iter_mut().for_each(|d| *d += v);
                    }
                });
            } else {
                let x = &src[pl * plane_in..(pl + 1) * plane_in];
                self.windows(|j, (y0, y1), (x0, x1), div| {
                    let mut s = T::zero();
                    for iy in y0..y1 {
                        s += x[iy * w + x0..iy * w + x1].iter().copied().sum::<T>();
                    }
                    o[j] = s / T::of(div as f64);
                });
            }
        });
        Tensor::from_vec(out, dims)
    }

    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>, _: &[bool]) -> Result<InputGrads<'t, T>> {
        let mut flipped = self.clone();
        flipped.adjoint = !self.adjoint;
        Ok(smallvec![Some(g.tape().apply(flipped, &[g])?)])
    }
}

/// 2-d max pooling over `[N, C, H, W]`; padding counts as −∞.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_ops::{max_pool2d, Pool2d};
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::from_fn([1, 1, 3, 3], |i| i as f64));
/// // 2×2 windows with stride 1 overlap: the centre is the max of all four.
/// let y = max_pool2d(x, &Pool2d::new(2, 1))?;
/// assert_eq!(y.value()?.data(), &[4., 5., 7., 8.]);
/// let g = tape.backward(y.sum_all()?)?;
/// assert_eq!(g.get(x).unwrap().data(), &[0., 0., 0., 0., 1., 1., 0., 1., 1.]);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn max_pool2d<'t, T: Float>(x: Var<'t, T>, pool: &Pool2d) -> Result<Var<'t, T>> {
    x.tape().apply(MaxPool { geom: *pool, argmax: Arc::new(Vec::new()) }, &[x])
}

/// 2-d average pooling over `[N, C, H, W]`. With `count_include_pad`, a
/// window's divisor counts the padding it covers (PyTorch's default).
pub fn avg_pool2d<'t, T: Float>(x: Var<'t, T>, pool: &Pool2d, count_include_pad: bool) -> Result<Var<'t, T>> {
    let s = x.shape();
    let out_hw = pool.out_dims("avg_pool2d", &s)?;
    let in_dims = [s[0], s[1], s[2], s[3]];
    x.tape().apply(AvgPool { geom: *pool, count_include_pad, in_dims, out_hw, adjoint: false }, &[x])
}

/// The mean over H and W of `[N, C, H, W]`, giving `[N, C]`.
pub fn global_avg_pool2d<'t, T: Float>(x: Var<'t, T>) -> Result<Var<'t, T>> {
    let s = x.shape();
    if s.rank() != 4 {
        return Err(Error::shape("global_avg_pool2d", format!("input is {s}; need [N, C, H, W]")));
    }
    if s[1..].contains(&0) {
        return Err(Error::shape("global_avg_pool2d", format!("input is {s}: C, H and W must be at least 1")));
    }
    x.mean(&[2, 3], false)
}
