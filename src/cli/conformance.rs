//! `wengert conformance DIR [--dtype f32|f64]`.

use std::path::Path;
use std::process::ExitCode;
use wengert::conformance::run_dir;
use wengert::core::{DType, Result};

/// Prints `PASS name` / `FAIL name: …` per case, then
/// `conformance: N passed, M failed`; fails when M > 0.
pub fn run(dir: &Path, dtype: &str) -> Result<ExitCode> {
    let dtype = if dtype == "f32" { DType::F32 } else { DType::F64 };
    let results = run_dir(dir, dtype)?;
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    for r in &results {
        out!("{r}");
    }
    out!("conformance: {} passed, {failed} failed", results.len() - failed);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
