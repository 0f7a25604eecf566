//! 2-d convolution and transposed convolution over NCHW images, with any
//! stride, padding, dilation and groups.
//!
//! PyTorch: `torch.nn.functional.conv2d(x, w, b, stride, padding, dilation,
//! groups)` and `conv_transpose2d(x, w, b, stride, padding, output_padding,
//! groups, dilation)`. Weights are `[out, in/groups, kh, kw]` for conv2d and
//! `[in, out/groups, kh, kw]` for the transposed conv.
//!
//! One op, [`Conv`], in three roles closed under differentiation: the
//! convolution `y = x ⋆ w`, its gradient with respect to `x` (which *is* the
//! transposed convolution) and its gradient with respect to `w`. Each role's
//! vector-Jacobian product is built from the other two, so derivatives of
//! every order work.

mod direct;
mod kernel;
mod plan;

use crate::norm::RowMoments;
pub use plan::{fp32_peak, Algorithm, ConvPlan};
use std::sync::{Arc, Mutex};
use wengert_core::{smallvec, Arity, Error, Float, InputGrads, Op, Result, Tensor, Var};

/// Settings of [`conv2d`]; the default is stride 1, no padding, no dilation, one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Conv2dOptions {
    /// Step between output positions (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding added to each side.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
    /// Input and output channels split into this many independent groups.
    pub groups: usize,
}

/// Builder methods, one per setting: each returns the settings with that
/// one changed, so that code written today keeps compiling when a
/// setting is added (the struct is `#[non_exhaustive]`).
impl Conv2dOptions {
    /// Sets the step between output positions ([`Conv2dOptions::stride`](Self::stride)).
    pub const fn with_stride(mut self, value: [usize; 2]) -> Self {
        self.stride = value;
        self
    }

    /// Sets the zero padding on each side ([`Conv2dOptions::padding`](Self::padding)).
    pub const fn with_padding(mut self, value: [usize; 2]) -> Self {
        self.padding = value;
        self
    }

    /// Sets the spacing between kernel taps ([`Conv2dOptions::dilation`](Self::dilation)).
    pub const fn with_dilation(mut self, value: [usize; 2]) -> Self {
        self.dilation = value;
        self
    }

    /// Sets the number of channel groups ([`Conv2dOptions::groups`](Self::groups)).
    pub const fn with_groups(mut self, value: usize) -> Self {
        self.groups = value;
        self
    }
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }
    }
}

impl Conv2dOptions {
    /// Square stride and padding, the common case: `Conv2dOptions::square(2, 1)`.
    pub fn square(stride: usize, padding: usize) -> Self {
        Conv2dOptions { stride: [stride; 2], padding: [padding; 2], ..Default::default() }
    }
}

/// Settings of [`conv_transpose2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConvTranspose2dOptions {
    /// The stride of the convolution this transposes.
    pub stride: [usize; 2],
    /// The padding of the convolution this transposes.
    pub padding: [usize; 2],
    /// Extra rows/columns added to one side of the output, to pick among the
    /// input sizes a strided conv maps to the same output size.
    pub output_padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

/// Builder methods, one per setting: each returns the settings with that
/// one changed, so that code written today keeps compiling when a
/// setting is added (the struct is `#[non_exhaustive]`).
impl ConvTranspose2dOptions {
    /// Sets the stride of the convolution this transposes ([`ConvTranspose2dOptions::stride`](Self::stride)).
    pub const fn with_stride(mut self, value: [usize; 2]) -> Self {
        self.stride = value;
        self
    }

    /// Sets the padding of the convolution this transposes ([`ConvTranspose2dOptions::padding`](Self::padding)).
    pub const fn with_padding(mut self, value: [usize; 2]) -> Self {
        self.padding = value;
        self
    }

    /// Sets the extra rows and columns on one side of the output ([`ConvTranspose2dOptions::output_padding`](Self::output_padding)).
    pub const fn with_output_padding(mut self, value: [usize; 2]) -> Self {
        self.output_padding = value;
        self
    }

    /// Sets the spacing between kernel taps ([`ConvTranspose2dOptions::dilation`](Self::dilation)).
    pub const fn with_dilation(mut self, value: [usize; 2]) -> Self {
        self.dilation = value;
        self
    }

    /// Sets the number of channel groups ([`ConvTranspose2dOptions::groups`](Self::groups)).
    pub const fn with_groups(mut self, value: usize) -> Self {
        self.groups = value;
        self
    }
}

impl Default for ConvTranspose2dOptions {
    fn default() -> Self {
        ConvTranspose2dOptions { stride: [1, 1], padding: [0, 0], output_padding: [0, 0], dilation: [1, 1], groups: 1 }
    }
}

/// The shapes of one convolution `x [n, c_in, h, w] ⋆ w [c_out, c_in/groups,
/// kh, kw] → y [n, c_out, oh, ow]`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
    groups: usize,
}

impl Geometry {
    /// Whether a product of this geometry sums nothing or fills nothing:
    /// an empty batch or no channels on either side. Its results are zero
    /// (or empty) and no kernel runs.
    fn is_empty(&self) -> bool {
        self.n == 0 || self.c_in == 0 || self.c_out == 0
    }

    fn cg(&self) -> usize {
        self.c_in / self.groups
    }
    fn og(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of the unfolded input: `cg · kh · kw`.
    fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// Whether the unfolded input is the input itself: a 1×1 kernel, stride
    /// 1, no padding, and output and input of one size (a transposed conv
    /// with output padding has a 1×1 view whose input is larger).
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && self.h == self.oh
            && self.w == self.ow
    }
    /// With stride 1, the transposed convolution is an ordinary one:
    /// `dx = conv2d(gy, w′)` with `w′[c, o] = w[o, c]` flipped in both
    /// spatial axes and padding `d·(k − 1) − p`. Its geometry, or `None`
    /// when it does not apply (strides, or padding past the kernel's span).
    fn flipped(&self) -> Option<Geometry> {
        let span = [self.dil[0] * (self.kh - 1), self.dil[1] * (self.kw - 1)];
        if self.stride != [1, 1] || self.pad[0] > span[0] || self.pad[1] > span[1] {
            return None;
        }
        Some(Geometry {
            c_in: self.c_out,
            h: self.oh,
            w: self.ow,
            c_out: self.c_in,
            oh: self.h,
            ow: self.w,
            pad: [span[0] - self.pad[0], span[1] - self.pad[1]],
            ..*self
        })
    }

    fn x_dims(&self) -> [usize; 4] {
        [self.n, self.c_in, self.h, self.w]
    }
    fn y_dims(&self) -> [usize; 4] {
        [self.n, self.c_out, self.oh, self.ow]
    }
    fn w_dims(&self) -> [usize; 4] {
        [self.c_out, self.cg(), self.kh, self.kw]
    }

    /// Checks that a tensor has the shape this geometry expects.
    fn expect(&self, op: &str, what: &str, got: &[usize], want: [usize; 4]) -> Result<()> {
        if got == want {
            Ok(())
        } else {
            Err(Error::shape(op, format!("{what} is {got:?}, expected {want:?}")))
        }
    }
}

fn check_common(op: &str, stride: [usize; 2], dilation: [usize; 2], groups: usize) -> Result<()> {
    if stride.contains(&0) {
        return Err(Error::argument(op, "stride", format!("must be positive, got {stride:?}")));
    }
    if dilation.contains(&0) {
        return Err(Error::argument(op, "dilation", format!("must be positive, got {dilation:?}")));
    }
    if groups == 0 {
        return Err(Error::argument(op, "groups", "must be positive, got 0"));
    }
    Ok(())
}

/// Rank 4, and no zero extent but on the axes `may_be_empty`. As in
/// PyTorch, an empty batch gives an empty result and no input channels a
/// zero one (the sum over them is empty); empty images, kernels and
/// output channels are refused, here with their name rather than met deep
/// in a kernel.
fn rank4(op: &str, what: &str, s: &[usize], may_be_empty: &[usize]) -> Result<()> {
    if s.len() != 4 {
        return Err(Error::shape(op, format!("{what} is {s:?}; need rank 4 (NCHW, weights [out, in/groups, kh, kw])")));
    }
    if let Some(a) = (0..4).find(|a| s[*a] == 0 && !may_be_empty.contains(a)) {
        let may = match may_be_empty {
            [] => String::new(),
            _ => format!(" (only axes {may_be_empty:?} may be 0)"),
        };
        return Err(Error::shape(op, format!("{what} is {s:?}: axis {a} is 0; every extent must be at least 1{may}")));
    }
    Ok(())
}

/// `v` as a `usize`, or an error naming `op` and `what` overflowed.
fn fits(op: &str, what: &str, v: u128) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::argument(op, what, format!("gives an extent of {v}, beyond memory's range")))
}

/// Checks that the output `[n, c, h, w]` can be allocated.
fn check_output(op: &str, dims: [usize; 4]) -> Result<()> {
    wengert_core::Shape::new(&dims).checked_numel(op).map(|_| ())
}

/// The geometry of `conv2d(x, w)`, or an error naming what does not fit.
fn conv_geometry(x: &[usize], w: &[usize], o: &Conv2dOptions) -> Result<Geometry> {
    const OP: &str = "conv2d";
    // An empty batch, or no input channels (and so a weight of none).
    rank4(OP, "input", x, &[0, 1])?;
    rank4(OP, "weight", w, &[1])?;
    check_common(OP, o.stride, o.dilation, o.groups)?;
    let (c_in, c_out, g) = (x[1], w[0], o.groups);
    if c_in % g != 0 {
        return Err(Error::argument(
            OP,
            "groups",
            format!("input channels {c_in} (input {x:?}) are not divisible by groups {g}"),
        ));
    }
    if c_out % g != 0 {
        return Err(Error::argument(
            OP,
            "groups",
            format!("output channels {c_out} (weight {w:?}) are not divisible by groups {g}"),
        ));
    }
    if w[1] != c_in / g {
        return Err(Error::shape(
            OP,
            format!("weight is {w:?} but input is {x:?} with groups {g}: weight axis 1 must be {}", c_in / g),
        ));
    }
    let mut out = [0; 2];
    for a in 0..2 {
        // u128: no product of two usizes overflows it.
        let span = o.dilation[a] as u128 * (w[2 + a] as u128 - 1) + 1;
        let padded = x[2 + a] as u128 + 2 * o.padding[a] as u128;
        // The kernels index the padded input in usize: keep it in range.
        if padded > isize::MAX as u128 {
            return Err(Error::argument(
                OP,
                "padding",
                format!("{:?} makes the padded input {padded} wide, beyond the address range", o.padding),
            ));
        }
        if span > padded {
            return Err(Error::shape(
                OP,
                format!(
                    "kernel {:?} (dilation {:?}) is larger than the padded input {x:?} (padding {:?})",
                    &w[2..],
                    o.dilation,
                    o.padding
                ),
            ));
        }
        out[a] = fits(OP, "padding", (padded - span) / o.stride[a] as u128 + 1)?;
    }
    check_output(OP, [x[0], c_out, out[0], out[1]])?;
    Ok(Geometry {
        n: x[0],
        c_in,
        h: x[2],
        w: x[3],
        c_out,
        oh: out[0],
        ow: out[1],
        kh: w[2],
        kw: w[3],
        stride: o.stride,
        pad: o.padding,
        dil: o.dilation,
        groups: g,
    })
}

/// The geometry of the conv that `conv_transpose2d(x, w)` transposes.
fn transpose_geometry(x: &[usize], w: &[usize], o: &ConvTranspose2dOptions) -> Result<Geometry> {
    const OP: &str = "conv_transpose2d";
    // An empty batch; no input channels is refused, as PyTorch does.
    rank4(OP, "input", x, &[0])?;
    rank4(OP, "weight", w, &[])?;
    check_common(OP, o.stride, o.dilation, o.groups)?;
    let g = o.groups;
    if !x[1].is_multiple_of(g) {
        return Err(Error::argument(
            OP,
            "groups",
            format!("input channels {} (input {x:?}) are not divisible by groups {g}", x[1]),
        ));
    }
    if w[0] != x[1] {
        return Err(Error::shape(
            OP,
            format!("weight is {w:?} but input is {x:?}: weight axis 0 must equal the input channels {}", x[1]),
        ));
    }
    let mut size = [0; 2];
    for a in 0..2 {
        let op = o.output_padding[a];
        if op >= o.stride[a] && op >= o.dilation[a] {
            return Err(Error::argument(
                OP,
                "output_padding",
                format!(
                    "{:?} must be smaller than the stride {:?} or the dilation {:?}",
                    o.output_padding, o.stride, o.dilation
                ),
            ));
        }
        let full = (x[2 + a] as u128 - 1) * o.stride[a] as u128
            + o.dilation[a] as u128 * (w[2 + a] as u128 - 1)
            + op as u128
            + 1;
        // The kernels index the padded output in usize: keep it in range.
        if full > isize::MAX as u128 {
            return Err(Error::argument(
                OP,
                "stride",
                format!(
                    "input {x:?}, weight {w:?}, stride {:?} and dilation {:?} give an output {full} wide before \
                     padding, beyond the address range",
                    o.stride, o.dilation
                ),
            ));
        }
        if full <= 2 * o.padding[a] as u128 {
            return Err(Error::shape(
                OP,
                format!("input {x:?}, weight {w:?} and padding {:?} give an empty output", o.padding),
            ));
        }
        size[a] = fits(OP, "stride", full - 2 * o.padding[a] as u128)?;
    }
    check_output(OP, [x[0], w[1] * g, size[0], size[1]])?;
    Ok(Geometry {
        n: x[0],
        c_in: w[1] * g,
        h: size[0],
        w: size[1],
        c_out: x[1],
        oh: x[2],
        ow: x[3],
        kh: w[2],
        kw: w[3],
        stride: o.stride,
        pad: o.padding,
        dil: o.dilation,
        groups: g,
    })
}

/// Which of the three linear maps of a convolution an op computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `y = x ⋆ w` (inputs `x`, `w`).
    Forward,
    /// `dx = convᵀ(gy, w)`, the transposed convolution (inputs `gy`, `w`).
    InputGrad,
    /// `dw = Σ gy · unfold(x)ᵀ` (inputs `x`, `gy`).
    WeightGrad,
}

/// A convolution, its input gradient or its weight gradient, for one geometry.
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    geom: Geometry,
    role: Role,
}

impl Conv {
    fn apply<'t, T: Float>(&self, role: Role, a: Var<'t, T>, b: Var<'t, T>) -> Result<Var<'t, T>> {
        a.tape().apply(Conv { geom: self.geom, role }, &[a, b])
    }

    /// Checks the two inputs' shapes; returns the output's.
    fn check<T: Float>(&self, inputs: &[&Tensor<T>]) -> Result<[usize; 4]> {
        let g = &self.geom;
        let op = <Self as Op<T>>::name(self);
        let (expect_a, expect_b, out) = match self.role {
            Role::Forward => (("input", g.x_dims()), ("weight", g.w_dims()), g.y_dims()),
            Role::InputGrad => (("input", g.y_dims()), ("weight", g.w_dims()), g.x_dims()),
            Role::WeightGrad => (("input", g.x_dims()), ("output gradient", g.y_dims()), g.w_dims()),
        };
        g.expect(op, expect_a.0, inputs[0].dims(), expect_a.1)?;
        g.expect(op, expect_b.0, inputs[1].dims(), expect_b.1)?;
        Ok(out)
    }
}

impl<T: Float> Op<T> for Conv {
    fn name(&self) -> &'static str {
        match self.role {
            Role::Forward => "conv2d",
            Role::InputGrad => "conv_transpose2d",
            Role::WeightGrad => "conv2d_weight_grad",
        }
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (g, (a, b)) = (&self.geom, (inputs[0], inputs[1]));
        let out = self.check(inputs)?;
        if g.is_empty() {
            return Ok(Tensor::zeros(out));
        }
        let data = match self.role {
            Role::Forward => kernel::forward(g, a.data(), b.data()),
            Role::InputGrad => kernel::input_grad(g, a.data(), b.data()),
            Role::WeightGrad => kernel::weight_grad(g, a.data(), b.data()),
        };
        Tensor::from_vec(data, out)
    }

    /// The layer's shapes and its [`ConvPlan`]:
    /// `16→32 3×3/2 32×32→16×16 n128: fwd direct, dx direct phases, dw
    /// direct outer (avx512)`.
    fn profile_detail(&self) -> Option<String> {
        let g = &self.geom;
        let plan = ConvPlan::for_geometry::<T>(g);
        let groups = if g.groups > 1 { format!(" g{}", g.groups) } else { String::new() };
        Some(format!(
            "{}→{} {}×{}/{}{groups} {}×{}→{}×{} n{}: {plan}",
            g.c_in, g.c_out, g.kh, g.kw, g.stride[0], g.h, g.w, g.oh, g.ow, g.n
        ))
    }

    /// Each of the three maps is the same multiply-adds, taken in another
    /// order: `N · C_out · OH · OW · (C_in / groups) · kh · kw` of them.
    fn flops(&self, _: &[&Tensor<T>], _: &Tensor<T>) -> Option<f64> {
        let g = &self.geom;
        Some(2.0 * (g.n * g.c_out * g.oh * g.ow * g.cg() * g.kh * g.kw) as f64)
    }

    /// All three maps are bilinear and each one's adjoint is another:
    /// for `y = x ⋆ w`, `⟨g, x ⋆ w⟩ = ⟨convᵀ(g, w), x⟩ = ⟨Σ g·unfold(x)ᵀ, w⟩`.
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        let (a, b) = (inputs[0], inputs[1]);
        let (first, second) = match self.role {
            Role::Forward => ((Role::InputGrad, g, b), (Role::WeightGrad, a, g)),
            Role::InputGrad => ((Role::Forward, g, b), (Role::WeightGrad, g, a)),
            Role::WeightGrad => ((Role::InputGrad, b, g), (Role::Forward, a, g)),
        };
        Ok(smallvec![
            needs[0].then(|| self.apply(first.0, first.1, first.2)).transpose()?,
            needs[1].then(|| self.apply(second.0, second.1, second.2)).transpose()?
        ])
    }

    /// Bilinear: the gradients take the inputs, never the output.
    fn reads_output(&self) -> bool {
        false
    }
}

/// The forward convolution, handing the moments of its output's rows, when
/// its kernel gathers them, to [`conv2d_with_moments`] through `rows`. The
/// same op as [`Conv`] in every other respect: its name, its work and its
/// derivatives are the convolution's.
struct ConvGathering {
    conv: Conv,
    rows: Arc<Mutex<Option<Vec<f64>>>>,
}

impl<T: Float> Op<T> for ConvGathering {
    fn name(&self) -> &'static str {
        <Conv as Op<T>>::name(&self.conv)
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let out = self.conv.check(inputs)?;
        if self.conv.geom.is_empty() {
            return Ok(Tensor::zeros(out));
        }
        let (data, rows) = kernel::forward_moments(&self.conv.geom, inputs[0].data(), inputs[1].data());
        *self.rows.lock().unwrap_or_else(|p| p.into_inner()) = rows;
        Tensor::from_vec(data, out)
    }

    fn flops(&self, inputs: &[&Tensor<T>], output: &Tensor<T>) -> Option<f64> {
        <Conv as Op<T>>::flops(&self.conv, inputs, output)
    }

    fn profile_detail(&self) -> Option<String> {
        <Conv as Op<T>>::profile_detail(&self.conv)
    }

    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        g: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        self.conv.vjp(inputs, output, g, needs)
    }

    fn reads_output(&self) -> bool {
        false
    }
}

/// Adds a `[C]` bias along axis 1 of an NCHW result.
fn add_bias<'t, T: Float>(op: &str, y: Var<'t, T>, bias: Option<Var<'t, T>>) -> Result<Var<'t, T>> {
    let Some(b) = bias else { return Ok(y) };
    let c = y.shape()[1];
    if b.shape().dims() != [c] {
        return Err(Error::shape(op, format!("bias is {}, need [{c}] for {c} output channels", b.shape())));
    }
    y.add(b.reshape(&[1, c, 1, 1])?)
}

/// 2-d convolution (cross-correlation, as in every deep-learning framework)
/// of `x [N, C_in, H, W]` with `w [C_out, C_in/groups, kh, kw]`, plus an
/// optional bias `[C_out]`.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_ops::{conv2d, Conv2dOptions};
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::ones([1, 1, 4, 4]));
/// let w = tape.leaf(Tensor::ones([1, 1, 3, 3]));
/// let y = conv2d(x, w, None, &Conv2dOptions::square(1, 1))?;
/// assert_eq!(y.shape().dims(), &[1, 1, 4, 4]);
/// assert_eq!(y.value()?.get(&[0, 0, 0, 0])?, 4.0); // a corner sees 2×2 ones
/// let e = conv2d(x, tape.leaf(Tensor::ones([2, 3, 3, 3])), None, &Conv2dOptions::default()).unwrap_err();
/// assert_eq!(e.to_string(), "conv2d: weight is [2, 3, 3, 3] but input is [1, 1, 4, 4] with groups 1: weight axis 1 must be 1");
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn conv2d<'t, T: Float>(
    x: Var<'t, T>,
    w: Var<'t, T>,
    bias: Option<Var<'t, T>>,
    opts: &Conv2dOptions,
) -> Result<Var<'t, T>> {
    let geom = conv_geometry(&x.shape(), &w.shape(), opts)?;
    let y = x.tape().apply(Conv { geom, role: Role::Forward }, &[x, w])?;
    add_bias("conv2d", y, bias)
}

/// [`conv2d`] without a bias, and the mean and sum of squared deviations of
/// each of the output's rows (one image's channel), for a training-mode
/// batch norm of the output ([`crate::BatchNormTrainOptions::moments`]).
/// The direct kernels (`f32`, the geometries ResNets use) take them as each
/// tile is written, while it is in cache, and spare the batch norm a pass
/// over memory; elsewhere the moments are `None` and the batch norm takes
/// them itself. Either way its results are the same to the bit.
///
/// ```
/// use wengert_core::{Tape, Tensor};
/// use wengert_ops::{batch_norm_train, batch_norm_train_opts, conv2d_with_moments, BatchNormTrainOptions, Conv2dOptions};
///
/// let tape = Tape::<f32>::new();
/// let x = tape.leaf(Tensor::from_vec((0..2 * 8 * 36).map(|i| (i % 7) as f32 - 3.0).collect(), [2, 8, 6, 6])?);
/// let w = tape.leaf(Tensor::from_vec((0..8 * 8 * 9).map(|i| (i % 5) as f32 * 0.1).collect(), [8, 8, 3, 3])?);
/// let (y, moments) = conv2d_with_moments(x, w, &Conv2dOptions::square(1, 1))?;
/// let (plain, _) = batch_norm_train(y, None, None, 1e-5)?;
/// let mut opts = BatchNormTrainOptions::default();
/// opts.moments = moments; // gathered where the direct kernel ran, else `None`
/// let (fused, _) = batch_norm_train_opts(y, None, None, 1e-5, opts)?;
/// assert_eq!(plain.value()?, fused.value()?);
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn conv2d_with_moments<'t, T: Float>(
    x: Var<'t, T>,
    w: Var<'t, T>,
    opts: &Conv2dOptions,
) -> Result<(Var<'t, T>, Option<RowMoments<'t, T>>)> {
    let geom = conv_geometry(&x.shape(), &w.shape(), opts)?;
    let rows = Arc::new(Mutex::new(None));
    let op = ConvGathering { conv: Conv { geom, role: Role::Forward }, rows: rows.clone() };
    let y = x.tape().apply(op, &[x, w])?;
    let rows = rows.lock().unwrap_or_else(|p| p.into_inner()).take();
    let moments = match rows {
        Some(r) => Some(RowMoments::new(y, Tensor::from_vec(r, [geom.n * geom.c_out, 2])?)),
        None => None,
    };
    Ok((y, moments))
}

/// 2-d transposed convolution of `x [N, C_in, H, W]` with
/// `w [C_in, C_out/groups, kh, kw]`: the gradient of a conv2d with respect to
/// its input, as an op. Output size per axis:
/// `(H − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1`.
pub fn conv_transpose2d<'t, T: Float>(
    x: Var<'t, T>,
    w: Var<'t, T>,
    bias: Option<Var<'t, T>>,
    opts: &ConvTranspose2dOptions,
) -> Result<Var<'t, T>> {
    let geom = transpose_geometry(&x.shape(), &w.shape(), opts)?;
    let y = x.tape().apply(Conv { geom, role: Role::InputGrad }, &[x, w])?;
    add_bias("conv_transpose2d", y, bias)
}
