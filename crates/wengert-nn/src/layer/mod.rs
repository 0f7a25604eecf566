//! Layers with PyTorch's parameter names: `Linear`, `Conv2d`,
//! `ConvTranspose2d`, `BatchNorm2d`, `LayerNorm`, activations, pooling,
//! `Flatten`, `Dropout`, `Sequential`, and the recurrent layers (Elman RNN,
//! LSTM, residual recurrence) unrolled over time.

mod conv;
mod linear;
mod misc;
mod norm;
mod recurrent;
mod sequential;

pub use conv::{Conv2d, ConvTranspose2d};
pub use linear::Linear;
pub use misc::{Activation, AvgPool2d, Dropout, Flatten, GlobalAvgPool2d, MaxPool2d};
pub use norm::{BatchNorm2d, LayerNorm};
pub use recurrent::{Cell, Recurrent, State};
pub use sequential::Sequential;

use crate::module::{join, Param, StateMut, StateRef};
use wengert_core::Float;

/// Visits `weight` and an optional `bias` under PyTorch's names.
fn visit_weight_bias<T: Float>(
    prefix: &str,
    weight: &Param<T>,
    bias: Option<&Param<T>>,
    f: &mut dyn FnMut(String, StateRef<'_, T>),
) {
    f(join(prefix, "weight"), StateRef::Param(weight));
    if let Some(b) = bias {
        f(join(prefix, "bias"), StateRef::Param(b));
    }
}

/// [`visit_weight_bias`], mutably.
fn visit_weight_bias_mut<T: Float>(
    prefix: &str,
    weight: &mut Param<T>,
    bias: Option<&mut Param<T>>,
    f: &mut dyn FnMut(String, StateMut<'_, T>),
) {
    f(join(prefix, "weight"), StateMut::Param(weight));
    if let Some(b) = bias {
        f(join(prefix, "bias"), StateMut::Param(b));
    }
}
