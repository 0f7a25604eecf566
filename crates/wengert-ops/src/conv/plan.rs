//! One convolution plan: for a layer's geometry, the element type and the
//! CPU, which algorithm each of the convolution's three products runs
//! (forward, input gradient, weight gradient). [`ConvPlan::of`] is the one
//! place the choice is made; the kernels run what it names, and profiles
//! print it beside each layer's time.
//!
//! ```
//! use wengert_ops::conv::{Algorithm, ConvPlan};
//! use wengert_ops::Conv2dOptions;
//! // A CIFAR ResNet's 3×3 layer, in f64: every product unfolds.
//! let plan = ConvPlan::of::<f64>(&[128, 16, 32, 32], &[16, 16, 3, 3], &Conv2dOptions::square(1, 1))?;
//! assert_eq!((plan.forward, plan.weight_grad), (Algorithm::Unfold, Algorithm::Unfold));
//! assert!(plan.input_grad_flipped); // stride 1: a forward convolution of flipped weights
//! // A 1×1 layer multiplies without unfolding.
//! let plan = ConvPlan::of::<f64>(&[8, 64, 14, 14], &[256, 64, 1, 1], &Conv2dOptions::default())?;
//! assert_eq!(plan.forward, Algorithm::Product);
//! # Ok::<(), wengert_core::Error>(())
//! ```

use super::direct::{self, ForwardKernel, WeightKernel};
use super::{conv_geometry, Conv2dOptions, Geometry};
use crate::isa::{self, Isa};
use std::fmt;
use wengert_core::{Float, Result};

/// How one product of a convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// The register-blocked direct kernel: no unfolding, each output
    /// written once (`f32` with AVX2 or AVX-512, the usual CIFAR and
    /// bottleneck geometries).
    Direct,
    /// The input gradient of a strided convolution, by the direct kernel
    /// once per phase of the input.
    DirectPhases,
    /// The input gradient of a strided convolution once per phase of the
    /// input, by the direct kernel with channels in the vector lanes (AVX2,
    /// dx's channels a multiple of two vectors).
    DirectOuterPhases,
    /// The weight gradient by the direct kernel that holds one vector of
    /// output channels for each of a 3×3 kernel's nine taps.
    DirectTaps,
    /// The direct kernel with output channels in the vector lanes (two
    /// vectors of them or more), each step a broadcast input value times
    /// vectors of channels: the weight gradient, on AVX2 the forward
    /// product (and so the flipped input gradient), and on AVX-512 the
    /// forward product of a strided layer.
    DirectOuter,
    /// The weight gradient by the direct kernel's tiles of output channels
    /// × weight positions.
    DirectTiles,
    /// A 1×1 stride-1 convolution as a matrix product per block of
    /// images, the input its own unfolding.
    Product,
    /// Unfolding (im2col, or col2im for the input gradient) and a matrix
    /// product: every geometry and type.
    Unfold,
}

impl Algorithm {
    /// Its name in profiles: `direct`, `direct phases`, `direct outer
    /// phases`, `direct taps`, `direct outer`, `direct tiles`, `product` or
    /// `unfold`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Direct => "direct",
            Algorithm::DirectPhases => "direct phases",
            Algorithm::DirectOuterPhases => "direct outer phases",
            Algorithm::DirectTaps => "direct taps",
            Algorithm::DirectOuter => "direct outer",
            Algorithm::DirectTiles => "direct tiles",
            Algorithm::Product => "product",
            Algorithm::Unfold => "unfold",
        }
    }
}

/// The algorithms of a convolution's three products, chosen together for
/// one geometry, element type and CPU ([`ConvPlan::of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConvPlan {
    /// `y = x ⋆ w`.
    pub forward: Algorithm,
    /// `dx = convᵀ(gy, w)`: when [`input_grad_flipped`](Self::input_grad_flipped),
    /// the algorithm of the forward convolution it runs as.
    pub input_grad: Algorithm,
    /// Whether the input gradient runs as a forward convolution of `gy`
    /// with the weights flipped (stride 1: no col2im).
    pub input_grad_flipped: bool,
    /// `dw = Σ gy ⋆ x`.
    pub weight_grad: Algorithm,
    /// The instruction set the direct kernels run on
    /// ([`crate::isa::active`]).
    pub isa: Isa,
}

impl ConvPlan {
    /// The plan of `conv2d(x, w)` with `options` in element type `T`, for
    /// inputs of `x` and weights of `w` dims; the same errors as
    /// [`conv2d`](crate::conv2d) for shapes it refuses.
    pub fn of<T: Float>(x: &[usize], w: &[usize], options: &Conv2dOptions) -> Result<ConvPlan> {
        Ok(ConvPlan::for_geometry::<T>(&conv_geometry(x, w, options)?))
    }

    /// The plan of geometry `g`.
    pub(super) fn for_geometry<T: Float>(g: &Geometry) -> ConvPlan {
        let (input_grad_flipped, input_grad) = match g.flipped() {
            Some(flipped) => (true, forward::<T>(&flipped)),
            None => (false, strided_input_grad::<T>(g)),
        };
        ConvPlan {
            forward: forward::<T>(g),
            input_grad,
            input_grad_flipped,
            weight_grad: weight_grad::<T>(g),
            isa: isa::active(),
        }
    }
}

impl fmt::Display for ConvPlan {
    /// `fwd direct, dx flipped direct, dw direct taps (avx512)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flipped = if self.input_grad_flipped { "flipped " } else { "" };
        write!(
            f,
            "fwd {}, dx {flipped}{}, dw {} ({})",
            self.forward.name(),
            self.input_grad.name(),
            self.weight_grad.name(),
            self.isa.name()
        )
    }
}

/// The machine's FP32 peak in GFLOPS, measured on every thread of the
/// current `rayon` pool (independent fused multiply-adds on registers,
/// two operations each), with the instruction set the direct kernels
/// run; `None` where they do not run. About a tenth of a second; profiles
/// print each convolution's GFLOPS against it.
///
/// ```
/// if let Some((gflops, isa)) = wengert_ops::conv::fp32_peak() {
///     assert!(gflops > 1.0, "{gflops} GFLOPS on {}", isa.name());
/// }
/// ```
pub fn fp32_peak() -> Option<(f64, Isa)> {
    direct::fp32_peak()
}

/// The forward product's algorithm.
pub(super) fn forward<T: Float>(g: &Geometry) -> Algorithm {
    if let Some(kernel) = direct::forward_kernel::<T>(g) {
        match kernel {
            ForwardKernel::Pixels => Algorithm::Direct,
            ForwardKernel::Outer => Algorithm::DirectOuter,
        }
    } else if g.is_pointwise() {
        Algorithm::Product
    } else {
        Algorithm::Unfold
    }
}

/// The input gradient's algorithm where it is not a flipped forward
/// convolution (strides, or padding past the kernel's span).
pub(super) fn strided_input_grad<T: Float>(g: &Geometry) -> Algorithm {
    if let Some(kernel) = direct::input_grad_kernel::<T>(g) {
        match kernel {
            ForwardKernel::Pixels => Algorithm::DirectPhases,
            ForwardKernel::Outer => Algorithm::DirectOuterPhases,
        }
    } else if g.is_pointwise() {
        Algorithm::Product
    } else {
        Algorithm::Unfold
    }
}

/// The weight gradient's algorithm.
pub(super) fn weight_grad<T: Float>(g: &Geometry) -> Algorithm {
    match direct::weight_kernel::<T>(g) {
        Some(WeightKernel::Taps) => Algorithm::DirectTaps,
        Some(WeightKernel::Outer) => Algorithm::DirectOuter,
        Some(WeightKernel::Tiles) => Algorithm::DirectTiles,
        None if g.is_pointwise() => Algorithm::Product,
        None => Algorithm::Unfold,
    }
}

/// The direct kernel an algorithm of the forward product names.
pub(super) fn forward_kernel(a: Algorithm) -> Option<ForwardKernel> {
    match a {
        Algorithm::Direct => Some(ForwardKernel::Pixels),
        Algorithm::DirectOuter => Some(ForwardKernel::Outer),
        _ => None,
    }
}

/// The direct kernel an algorithm of a strided input gradient names, run
/// once per phase.
pub(super) fn phases_kernel(a: Algorithm) -> Option<ForwardKernel> {
    match a {
        Algorithm::DirectPhases => Some(ForwardKernel::Pixels),
        Algorithm::DirectOuterPhases => Some(ForwardKernel::Outer),
        _ => None,
    }
}

/// The direct kernel an algorithm of the weight gradient names.
pub(super) fn weight_kernel(a: Algorithm) -> Option<WeightKernel> {
    match a {
        Algorithm::DirectTaps => Some(WeightKernel::Taps),
        Algorithm::DirectOuter => Some(WeightKernel::Outer),
        Algorithm::DirectTiles => Some(WeightKernel::Tiles),
        _ => None,
    }
}
