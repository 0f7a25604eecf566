//! Arithmetic operators on [`Var`], for readable formulas.
//!
//! **These panic** when the operation fails (shapes that do not broadcast,
//! variables from two tapes, a freed value). Each has a `Result` twin —
//! `a + b` is [`Var::add`], `a * 2.0` is [`Var::mul_scalar`], `-a` is
//! [`Var::neg`] — to use wherever the shapes come from user input.

use crate::{Float, Var};
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! var_operator {
    ($trait:ident, $method:ident, $var_fn:ident, $scalar_fn:ident) => {
        /// Panics if the operation fails; use the `Result` method to handle errors.
        impl<'t, T: Float> $trait<Var<'t, T>> for Var<'t, T> {
            type Output = Var<'t, T>;
            fn $method(self, rhs: Var<'t, T>) -> Var<'t, T> {
                Var::$var_fn(self, rhs).unwrap_or_else(|e| panic!("{e}"))
            }
        }

        /// Panics if the operation fails; use the `Result` method to handle errors.
        impl<'t, T: Float> $trait<T> for Var<'t, T> {
            type Output = Var<'t, T>;
            fn $method(self, rhs: T) -> Var<'t, T> {
                Var::$scalar_fn(self, rhs).unwrap_or_else(|e| panic!("{e}"))
            }
        }
    };
}

var_operator!(Add, add, add, add_scalar);
var_operator!(Sub, sub, sub, sub_scalar);
var_operator!(Mul, mul, mul, mul_scalar);
var_operator!(Div, div, div, div_scalar);

/// Panics if the value was freed; use [`Var::neg`] to handle errors.
impl<'t, T: Float> Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    fn neg(self) -> Var<'t, T> {
        Var::neg(self).unwrap_or_else(|e| panic!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn operators_match_methods() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::scalar(3.0));
        let y = (x * x + x * 2.0 - 1.0) / x; // (x² + 2x − 1)/x
        assert!((y.value().unwrap().item().unwrap() - 14.0 / 3.0).abs() < 1e-15);
        let g = tape.backward(-y).unwrap();
        // d/dx = −(1 + 1/x²)
        assert!((g.get(x).unwrap().item().unwrap() + (1.0 + 1.0 / 9.0)).abs() < 1e-15);
    }

    #[test]
    #[should_panic(expected = "add: shapes [2] and [3] cannot be broadcast together")]
    fn operator_panics_with_the_error_message() {
        let tape = Tape::<f64>::new();
        let _ = tape.leaf(Tensor::zeros([2])) + tape.leaf(Tensor::zeros([3]));
    }
}
