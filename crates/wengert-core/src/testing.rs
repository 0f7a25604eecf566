//! Property-testing support (feature `testing`): proptest strategies for
//! shapes, broadcastable shape pairs and tensors, and an assertion that an
//! op's gradients match the numerical check.
//!
//! The project's own property tests are written with these, so a user's op
//! gets exactly the same scrutiny:
//!
//! ```
//! use proptest::prelude::*;
//! use wengert_core::testing::{assert_gradients, tensor, shape};
//!
//! // In a test file this body sits in a `#[test]` function.
//! proptest!(ProptestConfig::with_cases(8), |(x in shape(3, 4).prop_flat_map(|s| tensor(s, -1.0, 1.0)))| {
//!     assert_gradients(|_, v| v[0].exp()?.mul(v[0]), &[x])?;
//! });
//! ```

use crate::gradcheck::{check_gradients, check_second_gradients, GradCheck, GradCheckReport};
use crate::{Result, Tape, Tensor, Var};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Shapes of rank `1..=max_rank` with extents `1..=max_dim`.
pub fn shape(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1..=max_dim, 1..=max_rank)
}

/// Two shapes that broadcast together under NumPy rules: a common shape, of
/// which each side drops some leading axes and turns some extents into 1.
pub fn broadcastable_shapes(max_rank: usize, max_dim: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape(max_rank, max_dim).prop_flat_map(|full| {
        let r = full.len();
        let side = move |full: Vec<usize>| {
            (0..=r, proptest::collection::vec(any::<bool>(), r)).prop_map(move |(drop, ones)| {
                full.iter()
                    .zip(&ones)
                    .skip(drop.min(r - 1))
                    .map(|(&d, &one)| if one { 1 } else { d })
                    .collect::<Vec<usize>>()
            })
        };
        (side(full.clone()), side(full))
    })
}

/// Tensors of the given shape with elements uniform in `[low, high]`.
pub fn tensor(shape: Vec<usize>, low: f64, high: f64) -> impl Strategy<Value = Tensor<f64>> {
    let n: usize = shape.iter().product();
    proptest::collection::vec(low..=high, n)
        .prop_map(move |data| Tensor::from_vec(data, shape.clone()).expect("length matches the shape"))
}

/// Tensors of a random shape (rank `1..=max_rank`, extents `1..=max_dim`).
pub fn any_tensor(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Tensor<f64>> {
    shape(max_rank, max_dim).prop_flat_map(|s| tensor(s, -2.0, 2.0))
}

/// Fails the proptest case unless `f`'s gradients at `inputs` match central
/// differences under [`GradCheck::default`]. An error from `f` also fails it.
pub fn assert_gradients<F>(f: F, inputs: &[Tensor<f64>]) -> std::result::Result<(), TestCaseError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    assert_gradients_with(f, inputs, &GradCheck::default())
}

/// [`assert_gradients`] with explicit step and tolerances.
pub fn assert_gradients_with<F>(
    f: F,
    inputs: &[Tensor<f64>],
    opts: &GradCheck,
) -> std::result::Result<(), TestCaseError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    verdict(check_gradients(f, inputs, opts))
}

/// Fails the proptest case unless `f`'s second derivatives (Hessian-vector
/// products through the recorded backward pass) match central differences
/// of its first derivatives.
pub fn assert_second_gradients<F>(f: F, inputs: &[Tensor<f64>]) -> std::result::Result<(), TestCaseError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    verdict(check_second_gradients(f, inputs, &GradCheck::default()))
}

fn verdict(report: Result<GradCheckReport>) -> std::result::Result<(), TestCaseError> {
    let report = report.map_err(|e| TestCaseError::fail(format!("the function failed: {e}")))?;
    if report.passed() {
        Ok(())
    } else {
        Err(TestCaseError::fail(report.to_string()))
    }
}
