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

pub use conv::{conv2d_in_step, Conv2d, ConvTranspose2d};
pub use linear::Linear;
pub use misc::{Activation, AvgPool2d, Dropout, Flatten, GlobalAvgPool2d, MaxPool2d};
pub use norm::{BatchNorm2d, LayerNorm};
pub use recurrent::{Cell, Recurrent, State};
pub use sequential::Sequential;
