//! The error type every fallible function in Wengert returns.
//!
//! A message always names the operation, the argument at fault and the shapes
//! or values that were wrong, e.g.
//! `matmul: inner dimensions differ: a is [2, 3], b is [4, 5]`.

use crate::Shape;

/// Shorthand for `Result<T, wengert_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Wengert.
///
/// Variants carry the op name so that an error deep inside a model still says
/// where it came from; `Display` gives a one-line message for people.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Shapes that do not fit together (broadcasting, matmul dimensions, ...).
    #[error("{op}: {detail}")]
    Shape {
        /// The operation that rejected its inputs.
        op: String,
        /// What was wrong, naming the arguments and their shapes.
        detail: String,
    },
    /// An argument outside its valid range (an axis, a stride, a label, ...).
    #[error("{op}: {arg}: {detail}")]
    Argument {
        /// The operation that rejected the argument.
        op: String,
        /// The argument's name.
        arg: String,
        /// What was wrong with it, with the offending value.
        detail: String,
    },
    /// A tensor built from data whose length does not match its shape.
    #[error("{op}: data has {len} elements but shape {shape} needs {expected}")]
    DataLength {
        /// Where the tensor was built.
        op: String,
        /// The number of values given.
        len: usize,
        /// The shape asked for.
        shape: Shape,
        /// The number of values the shape needs.
        expected: usize,
    },
    /// Variables from two different tapes used in one operation.
    #[error("{op}: variables come from different tapes")]
    ForeignVar {
        /// The operation that received them.
        op: String,
    },
    /// A backward pass reached a value that an earlier backward freed.
    #[error(
        "backward: entry #{index} ({op}) was freed by an earlier backward; \
         pass `retain_graph: true` to differentiate through it twice"
    )]
    Freed {
        /// The position of the entry on the tape.
        index: usize,
        /// The op that produced it.
        op: String,
    },
    /// A backward pass read a value that a function recorded as one node
    /// released after its forward pass, because no op declared reading it
    /// ([`Op::reads_input`](crate::Op::reads_input),
    /// [`Op::reads_output`](crate::Op::reads_output)): an op's declaration
    /// is wrong.
    #[error(
        "backward: entry #{index} ({op}) was released after the forward pass because no op declared \
         reading it, yet an op's backward reads it: check the ops' `reads_input` and `reads_output`"
    )]
    Released {
        /// The position of the entry on its tape.
        index: usize,
        /// The op that produced it.
        op: String,
    },
    /// An op's vector-Jacobian product broke its contract.
    #[error("{op}: vjp: {detail}")]
    Vjp {
        /// The op whose backward rule misbehaved.
        op: String,
        /// What it did wrong.
        detail: String,
    },
    /// Anomaly detection ([`Tape::set_detect_anomaly`](crate::Tape::set_detect_anomaly))
    /// found a NaN or an infinity.
    #[error("{op}: {detail}")]
    Anomaly {
        /// The op whose output or gradient was not finite.
        op: String,
        /// Which value, where in it, the op's input shapes and where the op
        /// was recorded.
        detail: String,
    },
    /// A sum across the processes training one model failed: a rank left,
    /// or the ranks called collectives out of step.
    /// See [`collective`](crate::collective).
    #[error("rank {rank}: {op}: {detail}")]
    Collective {
        /// The rank that saw the failure.
        rank: usize,
        /// The collective operation.
        op: String,
        /// What went wrong.
        detail: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message, or what was wrong with the file.
        detail: String,
    },
}

impl Error {
    /// A shape error for `op`.
    pub fn shape(op: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Shape { op: op.into(), detail: detail.into() }
    }

    /// An argument error for argument `arg` of `op`.
    pub fn argument(op: impl Into<String>, arg: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Argument { op: op.into(), arg: arg.into(), detail: detail.into() }
    }

    /// The error for a name nobody knows (a model, a dataset): what is
    /// known, the nearest name when one is close (as clap's "did you
    /// mean"), and `more`, what else is accepted.
    ///
    /// ```
    /// use wengert_core::Error;
    /// let e = Error::unknown_name("dataset", "mnsit", &["mnist", "cifar10"], "or --data-dir");
    /// assert_eq!(
    ///     e.to_string(),
    ///     "dataset: name: unknown dataset 'mnsit'; did you mean 'mnist'? known: mnist, cifar10 (or --data-dir)"
    /// );
    /// ```
    pub fn unknown_name(what: &str, name: &str, known: &[&str], more: &str) -> Self {
        let nearest = known
            .iter()
            .map(|k| (strsim::damerau_levenshtein(name, k), *k))
            .min()
            .filter(|&(d, k)| d <= 2.max(k.len() / 4))
            .map(|(_, k)| format!("did you mean '{k}'? "))
            .unwrap_or_default();
        Error::argument(what, "name", format!("unknown {what} '{name}'; {nearest}known: {} ({more})", known.join(", ")))
    }
}
