//! The conformance runner: checks ops against reference cases computed in
//! float64 by an independent framework.
//!
//! Each case (a JSON file; format in `tests/conformance/FORMAT.md`) names an
//! op, its attributes, inputs, the expected output, a cotangent and the
//! expected gradients. The runner builds the inputs as leaves, runs the op,
//! compares the output, runs backward seeded with the cotangent and compares
//! every gradient. An op or attribute the runner does not know is a failure,
//! never a skip.
//!
//! Tolerances: in f64, each case's own (`rtol`, `atol`). In f32 the inputs
//! are rounded to single precision and every value must satisfy
//! `|got − want| ≤ 1e-5 + 1e-4·|want|` ([`F32_TOLERANCE`]): single precision
//! carries about 7 digits, and these ops lose at most two of them to rounding
//! of sums and of the inputs themselves.

mod attrs;
mod blocks;
mod build;

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use wengert_core::{BackwardOptions, DType, Error, Float, Result, Tape, Tensor, Var};

/// The f32 tolerance `(rtol, atol)`; see the module documentation.
pub const F32_TOLERANCE: (f64, f64) = (1e-4, 1e-5);

/// A tensor in a case file.
#[derive(Debug, Deserialize)]
struct Data {
    #[serde(default)]
    name: String,
    /// Absent for a gradient that is null (a constant input).
    #[serde(default)]
    shape: Vec<usize>,
    data: Option<Vec<f64>>,
    #[serde(default)]
    dtype: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Tol {
    rtol: f64,
    atol: f64,
}

/// One reference case, as stored on disk.
#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    op: String,
    #[serde(default)]
    attrs: serde_json::Map<String, serde_json::Value>,
    inputs: Vec<Data>,
    output: Data,
    cotangent: Data,
    grads: Vec<Data>,
    tol: Tol,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    /// The case's name (its `name` field, or the file name if unreadable).
    pub name: String,
    /// `None` on success; otherwise what failed.
    pub failure: Option<String>,
}

impl fmt::Display for CaseResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            None => write!(f, "PASS {}", self.name),
            Some(why) => write!(f, "FAIL {}: {why}", self.name),
        }
    }
}

/// The inputs of a case as the op builders see them: float leaves in order,
/// and integer inputs (class labels) by name.
pub(crate) struct Inputs<'t, T: Float> {
    pub vars: Vec<(String, Var<'t, T>)>,
    pub ints: Vec<(String, Vec<i64>)>,
}

impl<'t, T: Float> Inputs<'t, T> {
    /// The float input called `name`.
    pub fn var(&self, name: &str) -> Result<Var<'t, T>> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| Error::argument("conformance", "inputs", format!("missing input '{name}'")))
    }

    /// The float input called `name`, if present.
    pub fn opt(&self, name: &str) -> Option<Var<'t, T>> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// The float inputs in order.
    pub fn all(&self) -> Vec<Var<'t, T>> {
        self.vars.iter().map(|(_, v)| *v).collect()
    }
}

/// Runs every `*.json` case in `dir` (sorted by file name) in precision `dtype`.
pub fn run_dir(dir: &Path, dtype: DType) -> Result<Vec<CaseResult>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Io { path: dir.display().to_string(), detail: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Io { path: dir.display().to_string(), detail: "no *.json cases in this folder".into() });
    }
    Ok(files.iter().map(|f| run_file(f, dtype)).collect())
}

/// Runs one case file.
pub fn run_file(path: &Path, dtype: DType) -> CaseResult {
    let fallback = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let case: Case = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => return CaseResult { name: fallback, failure: Some(format!("cannot read case: {e}")) },
    };
    let failure = match dtype {
        DType::F64 => run_case::<f64>(&case, (case.tol.rtol, case.tol.atol)),
        DType::F32 => run_case::<f32>(&case, F32_TOLERANCE),
    }
    .err();
    CaseResult { name: case.name.clone(), failure }
}

fn tensor<T: Float>(d: &Data, what: &str) -> std::result::Result<Tensor<T>, String> {
    let data = d.data.as_ref().ok_or_else(|| format!("{what} has no data"))?;
    Tensor::from_vec(data.iter().map(|&v| T::of(v)).collect(), d.shape.clone()).map_err(|e| format!("{what}: {e}"))
}

/// Compares `got` with `want` elementwise; reports the worst element.
fn compare<T: Float>(
    what: &str,
    got: &Tensor<T>,
    want: &Data,
    (rtol, atol): (f64, f64),
) -> std::result::Result<(), String> {
    if got.dims() != want.shape.as_slice() {
        return Err(format!("{what}: shape {:?}, want {:?}", got.dims(), want.shape));
    }
    let data = want.data.as_ref().ok_or_else(|| format!("{what}: the case has no data"))?;
    if data.len() != got.numel() {
        return Err(format!(
            "{what}: the case is malformed: {} expected values for shape {:?} ({} elements)",
            data.len(),
            want.shape,
            got.numel()
        ));
    }
    let mut worst: Option<(usize, f64, f64, f64)> = None;
    for (i, (&g, &w)) in got.data().iter().zip(data).enumerate() {
        let g = g.as_f64();
        let ratio = (g - w).abs() / (atol + rtol * w.abs());
        let ratio = if ratio.is_nan() { f64::INFINITY } else { ratio };
        if ratio > 1.0 && worst.is_none_or(|(_, _, _, r)| ratio > r) {
            worst = Some((i, g, w, ratio));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, g, w, r)) => Err(format!("{what}: worst element {i}: got {g:e}, want {w:e} ({r:.1}× tolerance)")),
    }
}

fn run_case<T: Float>(case: &Case, tol: (f64, f64)) -> std::result::Result<(), String> {
    let tape = Tape::<T>::new();
    let mut inputs = Inputs { vars: Vec::new(), ints: Vec::new() };
    for d in &case.inputs {
        if d.dtype.as_deref() == Some("i64") {
            let data = d.data.as_ref().ok_or_else(|| format!("input {} has no data", d.name))?;
            inputs.ints.push((d.name.clone(), data.iter().map(|&v| v as i64).collect()));
        } else {
            inputs.vars.push((d.name.clone(), tape.leaf(tensor(d, &format!("input {}", d.name))?)));
        }
    }
    let out = build::build(&case.op, &case.attrs, &inputs).map_err(|e| e.to_string())?;
    compare("output", &out.value().map_err(|e| e.to_string())?, &case.output, tol)?;
    let wanted: Vec<&Data> = case.grads.iter().filter(|g| g.data.is_some()).collect();
    let wrt = wanted.iter().map(|g| inputs.var(&g.name)).collect::<Result<Vec<_>>>().map_err(|e| e.to_string())?;
    let seed = tensor::<T>(&case.cotangent, "cotangent")?;
    let grads = tape
        .backward_with(out, BackwardOptions::default().with_seed(seed).with_wrt(&wrt))
        .map_err(|e| e.to_string())?;
    for (g, v) in wanted.iter().zip(&wrt) {
        let got = grads.get(*v).ok_or_else(|| format!("no gradient for {}", g.name))?;
        compare(&format!("gradient of {}", g.name), got, g, tol)?;
    }
    Ok(())
}
