//! Every reference case passes in both precisions, and the runner never
//! passes a case by skipping what it does not understand.

use std::path::Path;
use wengert::conformance::{run_dir, run_file};
use wengert::core::DType;
use wengert::ops::isa::{self, Isa};

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/cases");

fn assert_all_pass(dtype: DType) {
    let results = run_dir(Path::new(CASES), dtype).unwrap();
    assert!(results.len() >= 69, "only {} cases found", results.len());
    let failed: Vec<String> = results.iter().filter(|r| r.failure.is_some()).map(|r| r.to_string()).collect();
    assert!(failed.is_empty(), "{dtype}: {} failed:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn every_case_passes_in_f64() {
    assert_all_pass(DType::F64);
}

/// On every instruction set this CPU has: the `f32` kernels dispatch at
/// run time (the `f64` ones have one path). The other tests in this binary
/// never read the ceiling this moves.
#[test]
fn every_case_passes_in_f32() {
    let best = isa::detected();
    for level in Isa::ALL.into_iter().filter(|&l| l <= best) {
        isa::set_ceiling(level);
        assert_all_pass(DType::F32);
    }
    isa::set_ceiling(best);
}

fn write_case(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn unknown_ops_attributes_and_wrong_values_fail() {
    let dir = std::env::temp_dir().join(format!("wengert-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let one = r#"{"name": "x", "shape": [1], "data": [2.0]}"#;
    let case = |op: &str, attrs: &str, out: f64, grad: f64| {
        format!(
            r#"{{"name": "c", "op": "{op}", "attrs": {attrs}, "dtype": "f64", "inputs": [{one}],
            "output": {{"shape": [1], "data": [{out}]}}, "cotangent": {{"shape": [1], "data": [1.0]}},
            "grads": [{{"name": "x", "shape": [1], "data": [{grad}]}}], "tol": {{"rtol": 1e-7, "atol": 1e-9}}}}"#
        )
    };
    let good = run_file(&write_case(&dir, "good", &case("exp", "{}", 2f64.exp(), 2f64.exp())), DType::F64);
    assert_eq!(good.failure, None);
    let unknown = run_file(&write_case(&dir, "unknown", &case("frobnicate", "{}", 0.0, 0.0)), DType::F64);
    assert_eq!(unknown.failure.as_deref(), Some("conformance: frobnicate: unsupported op"));
    let attr = run_file(&write_case(&dir, "attr", &case("exp", r#"{"base": 2}"#, 2f64.exp(), 2f64.exp())), DType::F64);
    assert_eq!(attr.failure.as_deref(), Some("conformance: exp: unsupported attribute 'base'"));
    let wrong = run_file(&write_case(&dir, "wrong", &case("exp", "{}", 2f64.exp(), 7.0)), DType::F64);
    let why = wrong.failure.unwrap();
    assert!(why.starts_with("gradient of x: worst element 0: got 7.389"), "{why}");
    std::fs::remove_dir_all(&dir).unwrap();
}
