//! 2-d convolution and transposed convolution over NCHW images, with any
//! stride, padding, dilation and groups.
//!
//! PyTorch: `torch.nn.functional.conv2d(x, w, b, stride, padding, dilation,
//! groups)` and `conv_transpose2d(x, w, b, stride, padding, output_padding,
//! groups, dilation)`. Weights are `[out, in/groups, kh, kw]` for conv2d and
//! `[in, out/groups, kh, kw]` for the transposed conv.
//!
//! Three ops, closed under differentiation: [`Conv`] (`y = x ⋆ w`),
//! [`ConvInputGrad`] (its gradient with respect to `x`, which *is* the
//! transposed convolution) and [`ConvWeightGrad`] (its gradient with respect
//! to `w`). Each one's vector-Jacobian product is built from the other two,
//! so derivatives of every order work.

mod kernel;

use wengert_core::{smallvec, Error, Float, InputGrads, Op, Result, Tensor, Var};

/// Settings of [`conv2d`]; the default is stride 1, no padding, no dilation, one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
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

fn rank4(op: &str, what: &str, s: &[usize]) -> Result<()> {
    if s.len() == 4 {
        Ok(())
    } else {
        Err(Error::shape(op, format!("{what} is {s:?}; need rank 4 (NCHW, weights [out, in/groups, kh, kw])")))
    }
}

/// The geometry of `conv2d(x, w)`, or an error naming what does not fit.
fn conv_geometry(x: &[usize], w: &[usize], o: &Conv2dOptions) -> Result<Geometry> {
    const OP: &str = "conv2d";
    rank4(OP, "input", x)?;
    rank4(OP, "weight", w)?;
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
        let span = o.dilation[a] * (w[2 + a] - 1) + 1;
        let padded = x[2 + a] + 2 * o.padding[a];
        if w[2 + a] == 0 || span > padded {
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
        out[a] = (padded - span) / o.stride[a] + 1;
    }
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
    rank4(OP, "input", x)?;
    rank4(OP, "weight", w)?;
    check_common(OP, o.stride, o.dilation, o.groups)?;
    let g = o.groups;
    if x[1] % g != 0 {
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
        let full = (x[2 + a] - 1) * o.stride[a] + o.dilation[a] * (w[2 + a].max(1) - 1) + op + 1;
        if w[2 + a] == 0 || x[2 + a] == 0 || full <= 2 * o.padding[a] {
            return Err(Error::shape(
                OP,
                format!("input {x:?}, weight {w:?} and padding {:?} give an empty output", o.padding),
            ));
        }
        size[a] = full - 2 * o.padding[a];
    }
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

/// `y = x ⋆ w` (inputs `x`, `w`).
#[derive(Clone, Debug)]
pub struct Conv(Geometry);

/// `dx = Gᵀ-conv(gy, w)`, the transposed convolution (inputs `gy`, `w`).
#[derive(Clone, Debug)]
pub struct ConvInputGrad(Geometry);

/// `dw = Σ gy · unfold(x)ᵀ` (inputs `x`, `gy`).
#[derive(Clone, Debug)]
pub struct ConvWeightGrad(Geometry);

impl<T: Float> Op<T> for Conv {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let g = &self.0;
        g.expect("conv2d", "input", inputs[0].dims(), g.x_dims())?;
        g.expect("conv2d", "weight", inputs[1].dims(), g.w_dims())?;
        Tensor::from_vec(kernel::forward(g, inputs[0].data(), inputs[1].data()), g.y_dims())
    }
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        gy: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        let (x, w) = (inputs[0], inputs[1]);
        let tape = gy.tape();
        Ok(smallvec![
            needs[0].then(|| tape.apply(ConvInputGrad(self.0), &[gy, w])).transpose()?,
            needs[1].then(|| tape.apply(ConvWeightGrad(self.0), &[x, gy])).transpose()?
        ])
    }
}

impl<T: Float> Op<T> for ConvInputGrad {
    fn name(&self) -> &'static str {
        "conv_transpose2d"
    }
    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let g = &self.0;
        g.expect("conv_transpose2d", "input", inputs[0].dims(), g.y_dims())?;
        g.expect("conv_transpose2d", "weight", inputs[1].dims(), g.w_dims())?;
        Tensor::from_vec(kernel::input_grad(g, inputs[0].data(), inputs[1].data()), g.x_dims())
    }
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        h: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        // ⟨h, convᵀ(gy, w)⟩ = ⟨conv(h, w), gy⟩: linear in gy and in w.
        let (gy, w) = (inputs[0], inputs[1]);
        let tape = h.tape();
        Ok(smallvec![
            needs[0].then(|| tape.apply(Conv(self.0), &[h, w])).transpose()?,
            needs[1].then(|| tape.apply(ConvWeightGrad(self.0), &[h, gy])).transpose()?
        ])
    }
}

impl<T: Float> Op<T> for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "conv2d_weight_grad"
    }
    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let g = &self.0;
        g.expect("conv2d_weight_grad", "input", inputs[0].dims(), g.x_dims())?;
        g.expect("conv2d_weight_grad", "output gradient", inputs[1].dims(), g.y_dims())?;
        Tensor::from_vec(kernel::weight_grad(g, inputs[0].data(), inputs[1].data()), g.w_dims())
    }
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _: Var<'t, T>,
        k: Var<'t, T>,
        needs: &[bool],
    ) -> Result<InputGrads<'t, T>> {
        // ⟨k, Σ gy · unfold(x)ᵀ⟩ = ⟨gy, conv(x, k)⟩.
        let (x, gy) = (inputs[0], inputs[1]);
        let tape = k.tape();
        Ok(smallvec![
            needs[0].then(|| tape.apply(ConvInputGrad(self.0), &[gy, k])).transpose()?,
            needs[1].then(|| tape.apply(Conv(self.0), &[x, k])).transpose()?
        ])
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
    let y = x.tape().apply(Conv(geom), &[x, w])?;
    add_bias("conv2d", y, bias)
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
    let y = x.tape().apply(ConvInputGrad(geom), &[x, w])?;
    add_bias("conv_transpose2d", y, bias)
}
