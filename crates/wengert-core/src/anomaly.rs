//! Anomaly detection: the first op whose output or gradient is NaN or
//! infinite, and where in the caller's code it was recorded.
//!
//! Off by default. While on, each entry pushed on the tape captures a
//! backtrace (resolved to file and line only when an error is reported), so
//! an error found in backward can say where its op was recorded in forward,
//! as PyTorch's anomaly mode prints the forward traceback.

use crate::{Error, Float, Result, Shape, Tensor};
use std::backtrace::Backtrace;
use std::collections::HashMap;

/// What anomaly detection keeps: the recording site of each entry.
#[derive(Default)]
pub(crate) struct Anomaly {
    pub sites: HashMap<u32, Backtrace>,
    /// Set while a vjp runs: its own ops are not checked one by one, the
    /// gradients it returns are, so that an error names the op whose
    /// backward failed rather than a `div` inside it.
    pub in_vjp: bool,
}

impl Anomaly {
    /// Whether ops recorded now have their outputs checked.
    pub fn checks_forward(&self) -> bool {
        !self.in_vjp
    }

    pub fn record(&mut self, id: u32) {
        self.sites.insert(id, Backtrace::force_capture());
    }

    /// Where entry `id` was recorded, if anomaly detection was on then.
    pub fn site(&self, id: u32) -> Option<String> {
        self.sites.get(&id).map(caller)
    }
}

/// The first frame of `trace` outside the engine and the standard library:
/// the code that recorded the op (`src/model.rs:42:17`), or a note that the
/// binary has no line information.
pub(crate) fn caller(trace: &Backtrace) -> String {
    let text = trace.to_string();
    let internal = |f: &str| {
        let f = f.trim_start_matches('<');
        ["wengert_core::", "wengert_ops::", "std::", "core::", "alloc::", "rayon", "smallvec::"]
            .iter()
            .any(|p| f.starts_with(p))
    };
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        // Frames read "N: function" followed by "at file:line:column".
        let Some((_, function)) = line.split_once(": ") else { continue };
        if line.starts_with("at ") || internal(function) {
            continue;
        }
        let place = lines.next().and_then(|l| l.strip_prefix("at ")).unwrap_or("unknown place");
        return format!("{function} at {place}");
    }
    "an unknown place (build with debug = 1 for file and line)".into()
}

/// Where a non-finite value sits in `t`, if it holds one: (flat index, value).
pub(crate) fn first_non_finite<T: Float>(t: &Tensor<T>) -> Option<(usize, T)> {
    t.data().iter().position(|v| !v.is_finite()).map(|i| (i, t.data()[i]))
}

fn shapes(inputs: &[&Shape]) -> String {
    let list: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    format!("[{}]", list.join(", "))
}

/// The forward check: `value`, the output of `op` about to become entry
/// `index`, must be finite unless an input already was not.
pub(crate) fn check_output<T: Float>(op: &str, inputs: &[&Tensor<T>], value: &Tensor<T>, index: usize) -> Result<()> {
    let Some((at, v)) = first_non_finite(value) else { return Ok(()) };
    let input_shapes: Vec<&Shape> = inputs.iter().map(|t| t.shape()).collect();
    let already = inputs.iter().position(|t| first_non_finite(t).is_some());
    let cause = match already {
        Some(k) => format!("; input {k} already held a non-finite value"),
        None => "; every input was finite".into(),
    };
    Err(Error::Anomaly {
        op: op.to_string(),
        detail: format!(
            "output holds {v} at flat index {at} of {} (entry #{index}, input shapes {}{cause}); recorded in {}",
            value.shape(),
            shapes(&input_shapes),
            caller(&Backtrace::force_capture())
        ),
    })
}

/// The backward check: the gradient `grad` that `op` (entry `index`)
/// returned for its input `k` must be finite.
pub(crate) fn check_gradient<T: Float>(
    op: &str,
    index: usize,
    k: usize,
    grad: &Tensor<T>,
    incoming_finite: bool,
    input_shapes: &[&Shape],
    site: Option<String>,
) -> Result<()> {
    let Some((at, v)) = first_non_finite(grad) else { return Ok(()) };
    let incoming = if incoming_finite { "finite" } else { "not finite" };
    Err(Error::Anomaly {
        op: op.to_string(),
        detail: format!(
            "backward: the gradient for input {k} holds {v} at flat index {at} of {} (entry #{index}, input shapes {}, \
             incoming gradient {incoming}); recorded in {}",
            grad.shape(),
            shapes(input_shapes),
            site.unwrap_or_else(|| "an unknown place (anomaly detection was off when it was recorded)".into())
        ),
    })
}
