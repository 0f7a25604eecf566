//! Numerical gradient checking: analytic gradients against central
//! differences in `f64`.
//!
//! For a function `f(x₁, …, xₖ) = y`, the check draws a fixed random
//! cotangent `c` of `y`'s shape and compares the backward pass's gradient of
//! `L = Σ y ⊙ c` with `(L(x + heⱼ) − L(x − heⱼ)) / 2h` for every element `j`
//! of every input. An element passes when `|analytic − numeric| ≤ atol +
//! rtol·|numeric|`; the report names the worst one.
//!
//! ```
//! use wengert_core::{gradcheck::{check_gradients, GradCheck}, Tensor};
//! let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], [3])?;
//! let report = check_gradients(|_, v| v[0].exp()?.mul(v[0]), &[x], &GradCheck::default())?;
//! assert!(report.passed(), "{report}");
//! # Ok::<(), wengert_core::Error>(())
//! ```

use crate::{BackwardOptions, Result, Tape, Tensor, Var};
use std::fmt;

/// Step and tolerances of a gradient check.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GradCheck {
    /// The finite-difference step `h`.
    pub eps: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Seed of the random cotangent.
    pub seed: u64,
}

/// Builder methods, one per setting: each returns the settings with that
/// one changed, so that code written today keeps compiling when a
/// setting is added (the struct is `#[non_exhaustive]`).
impl GradCheck {
    /// Sets the finite-difference step ([`GradCheck::eps`](Self::eps)).
    pub const fn with_eps(mut self, value: f64) -> Self {
        self.eps = value;
        self
    }

    /// Sets the relative tolerance ([`GradCheck::rtol`](Self::rtol)).
    pub const fn with_rtol(mut self, value: f64) -> Self {
        self.rtol = value;
        self
    }

    /// Sets the absolute tolerance ([`GradCheck::atol`](Self::atol)).
    pub const fn with_atol(mut self, value: f64) -> Self {
        self.atol = value;
        self
    }

    /// Sets the seed of the random cotangent ([`GradCheck::seed`](Self::seed)).
    pub const fn with_seed(mut self, value: u64) -> Self {
        self.seed = value;
        self
    }
}

impl GradCheck {
    /// An error unless the step is a positive finite number and the
    /// tolerances are finite and at least 0: a zero step would divide by
    /// zero and report a failure that is not there, a NaN tolerance a pass.
    fn check(&self) -> Result<()> {
        let bad = |name: &str, v: f64, want: &str| {
            Err(crate::Error::argument("check_gradients", name, format!("must be {want}, got {v}")))
        };
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", self.eps, "finite and above 0");
        }
        for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, v, "finite and at least 0");
            }
        }
        Ok(())
    }
}

impl Default for GradCheck {
    /// `h = 1e-6`, `rtol = 1e-5`, `atol = 1e-7`: central differences in f64
    /// are accurate to about `h²·f‴ + ε/h ≈ 1e-10` for smooth functions of
    /// moderate size, so these leave two orders of margin.
    fn default() -> Self {
        GradCheck { eps: 1e-6, rtol: 1e-5, atol: 1e-7, seed: 0 }
    }
}

/// The element that disagreed most.
#[derive(Clone, Debug, PartialEq)]
pub struct Worst {
    /// Which input.
    pub input: usize,
    /// Flat (row-major) index within that input.
    pub index: usize,
    /// The backward pass's value.
    pub analytic: f64,
    /// The central difference.
    pub numeric: f64,
}

/// The outcome of [`check_gradients`].
#[derive(Clone, Debug)]
pub struct GradCheckReport {
    /// The element with the largest error relative to its tolerance.
    pub worst: Option<Worst>,
    /// That largest ratio `|analytic − numeric| / (atol + rtol·|numeric|)`;
    /// the check passes when it is at most 1.
    pub worst_ratio: f64,
    /// The number of elements compared.
    pub checked: usize,
}

impl GradCheckReport {
    /// Whether every element was within tolerance.
    pub fn passed(&self) -> bool {
        self.worst_ratio <= 1.0
    }
}

impl fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "passed" } else { "FAILED" };
        write!(f, "gradient check {verdict} over {} elements", self.checked)?;
        if let Some(w) = &self.worst {
            write!(
                f,
                "; worst: input {} element {}: analytic {:e}, numeric {:e}, error {:e} ({:.3}× tolerance)",
                w.input,
                w.index,
                w.analytic,
                w.numeric,
                (w.analytic - w.numeric).abs(),
                self.worst_ratio
            )?;
        }
        Ok(())
    }
}

/// Compares `f`'s backward pass with central differences at `inputs`.
/// Errors from `f` itself are returned as errors, not as a failed check.
pub fn check_gradients<F>(f: F, inputs: &[Tensor<f64>], opts: &GradCheck) -> Result<GradCheckReport>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    opts.check()?;
    // Analytic: one backward pass with a random cotangent.
    let tape = Tape::new();
    let xs: Vec<Var<'_, f64>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let y = f(&tape, &xs)?;
    let cot = Tensor::normal(y.shape(), 0.0, 1.0, &mut crate::rng(opts.seed))?;
    let analytic = tape
        .backward_with(y, BackwardOptions { seed: Some(cot.clone()), wrt: Some(&xs), ..Default::default() })?
        .into_tensors();

    // L(x) = Σ f(x) ⊙ c. The inputs are leaves, as in the analytic pass, so
    // that a function which differentiates inside (see
    // `check_second_gradients`) behaves the same in both.
    let loss = |xs: &[Tensor<f64>]| -> Result<f64> {
        let tape = Tape::new();
        let vars: Vec<Var<'_, f64>> = xs.iter().map(|x| tape.leaf(x.clone())).collect();
        let y = f(&tape, &vars)?.value()?;
        Ok(y.data().iter().zip(cot.data()).map(|(a, b)| a * b).sum())
    };

    let mut report = GradCheckReport { worst: None, worst_ratio: 0.0, checked: 0 };
    let mut probe: Vec<Tensor<f64>> = inputs.to_vec();
    for (k, x) in inputs.iter().enumerate() {
        for j in 0..x.numel() {
            let x0 = x.data()[j];
            probe[k].data_mut()[j] = x0 + opts.eps;
            let up = loss(&probe)?;
            probe[k].data_mut()[j] = x0 - opts.eps;
            let down = loss(&probe)?;
            probe[k].data_mut()[j] = x0;
            let numeric = (up - down) / (2.0 * opts.eps);
            let a = analytic[k].data()[j];
            let ratio = (a - numeric).abs() / (opts.atol + opts.rtol * numeric.abs());
            // NaN on either side is a failure, never a pass.
            let ratio = if ratio.is_nan() { f64::INFINITY } else { ratio };
            report.checked += 1;
            if report.worst.is_none() || ratio > report.worst_ratio {
                report.worst_ratio = ratio;
                report.worst = Some(Worst { input: k, index: j, analytic: a, numeric });
            }
        }
    }
    Ok(report)
}

/// Checks second derivatives: the gradient of `Σᵢ ⟨∇ₓᵢ L, wᵢ⟩` (a
/// Hessian-vector product, computed by differentiating the recorded backward
/// pass) against central differences of the first derivatives. `L = Σ f ⊙ c`
/// and the `wᵢ` are fixed random tensors.
pub fn check_second_gradients<F>(f: F, inputs: &[Tensor<f64>], opts: &GradCheck) -> Result<GradCheckReport>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let mut rng = crate::rng(opts.seed.wrapping_add(1));
    let ws =
        inputs.iter().map(|x| Tensor::normal(x.shape().clone(), 0.0, 1.0, &mut rng)).collect::<Result<Vec<_>>>()?;
    let seed = opts.seed.wrapping_add(2);
    check_gradients(
        |tape, xs| {
            let y = f(tape, xs)?;
            let c = tape.constant(Tensor::normal(y.shape(), 0.0, 1.0, &mut crate::rng(seed))?);
            let l = y.mul(c)?.sum_all()?;
            let grads = tape.grad(l, xs, None)?;
            let mut total = tape.constant(Tensor::scalar(0.0));
            for (g, w) in grads.into_iter().zip(&ws) {
                total = total.add(g.mul(tape.constant(w.clone()))?.sum_all()?)?;
            }
            Ok(total)
        },
        inputs,
        opts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InputGrads, Op};

    /// `2x` with a deliberately wrong backward rule (`3g`).
    struct WrongDouble;
    impl Op<f64> for WrongDouble {
        fn name(&self) -> &'static str {
            "wrong_double"
        }
        fn forward(&mut self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
            Ok(x[0].map(|v| 2.0 * v))
        }
        fn vjp<'t>(
            &self,
            _: &[Var<'t, f64>],
            _: Var<'t, f64>,
            g: Var<'t, f64>,
            _: &[bool],
        ) -> Result<InputGrads<'t, f64>> {
            Ok(crate::smallvec![Some(g.mul_scalar(3.0)?)])
        }
    }

    #[test]
    fn catches_a_wrong_rule_and_names_the_element() {
        let x = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap();
        let r = check_gradients(|t, v| t.apply(WrongDouble, &[v[0]]), &[x], &GradCheck::default()).unwrap();
        assert!(!r.passed());
        let w = r.worst.clone().unwrap();
        assert!((w.analytic / w.numeric - 1.5).abs() < 1e-6, "{r}");
        assert!(r.to_string().contains("FAILED over 2 elements"));
    }
}
