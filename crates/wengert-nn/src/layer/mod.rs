//! Layers with PyTorch's parameter names: `Linear`, `Conv2d`,
//! `ConvTranspose2d`, `BatchNorm2d`, `ConvBn2d` (the two fused),
//! `LayerNorm`, activations, pooling,
//! `Flatten`, `Dropout`, `Sequential`, and the recurrent layers (Elman RNN,
//! LSTM, residual recurrence) unrolled over time.

mod conv;
mod conv_bn;
mod linear;
mod misc;
mod norm;
mod recurrent;
mod sequential;

pub use conv::{Conv2d, ConvTranspose2d};
pub use conv_bn::{conv_bn, ConvBn2d};
pub use linear::Linear;
pub use misc::{Activation, AvgPool2d, Dropout, Flatten, GlobalAvgPool2d, MaxPool2d};
pub use norm::{BatchNorm2d, LayerNorm};
pub use recurrent::{Cell, Recurrent, State};
pub use sequential::Sequential;
