//! Byte-level fuzzing of the file readers: safetensors checkpoints, IDX
//! and CIFAR datasets and conformance cases, each damaged by random truncation, bit
//! flips, overwritten bytes and forged headers. The promise under test: a
//! typed error naming the file (or, for a harmless flip in the data, a
//! successful read), never a panic, and a failed load leaves the model as
//! it was.

use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use wengert::nn::checkpoint::{load_checkpoint, load_model, read_metadata, read_tensors, save_checkpoint};
use wengert::nn::layer::Linear;
use wengert::nn::optim::OptimState;
use wengert::nn::{Module, StateRef};

/// Mutated files read, across the file's tests.
static MUTATIONS: AtomicUsize = AtomicUsize::new(0);

fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Cargo's scratch folder for tests, under the target folder: the
        // files outlive the tests (every test shares them) but not the
        // next run, which starts by clearing them.
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-files");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// A damage to a file's bytes.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    Flip(usize, u8),
    Set(usize, u8),
    /// Overwrite the first eight bytes (a safetensors header length) with this.
    HeaderLength(u64),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        2 => any::<usize>().prop_map(Damage::Truncate),
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Damage::Flip(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Damage::Set(i, v)),
        1 => prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(1 << 40), 0u64..4096].prop_map(Damage::HeaderLength),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Damage::Append),
    ];
    prop::collection::vec(one, 1..4)
}

fn apply(bytes: &[u8], damages: &[Damage]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for d in damages {
        match d {
            Damage::Truncate(n) if !b.is_empty() => b.truncate(n % b.len()),
            Damage::Flip(i, bit) if !b.is_empty() => {
                let n = b.len();
                b[i % n] ^= 1 << bit;
            }
            Damage::Set(i, v) if !b.is_empty() => {
                let n = b.len();
                b[i % n] = *v;
            }
            Damage::HeaderLength(h) if b.len() >= 8 => b[..8].copy_from_slice(&h.to_le_bytes()),
            Damage::Append(tail) => b.extend_from_slice(tail),
            _ => {}
        }
    }
    b
}

/// Writes `bytes` to a fresh file and runs `read` on it, failing the case on a panic.
fn read_damaged(name: &str, bytes: &[u8], read: impl FnOnce(&Path)) {
    MUTATIONS.fetch_add(1, Ordering::Relaxed);
    let path = dir().join(format!("{name}-{:?}", std::thread::current().id()).replace(['(', ')'], ""));
    std::fs::write(&path, bytes).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| read(&path)));
    assert!(outcome.is_ok(), "reading a damaged {name} panicked");
}

fn model() -> Linear<f32> {
    Linear::new(3, 2, true, &mut wengert::core::rng(0)).unwrap()
}

fn values(m: &dyn Module<f32>) -> Vec<Vec<f32>> {
    let mut v = Vec::new();
    m.visit("", &mut |_, s| {
        if let StateRef::Param(p) = s {
            v.push(p.value().to_vec());
        }
    });
    v
}

/// A valid training checkpoint of the small model, as bytes.
fn checkpoint_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let m = model();
        let state = OptimState {
            tensors: vec![("weight.momentum_buffer".into(), wengert::core::Tensor::ones([2, 3]))],
            steps: 3,
        };
        let meta = std::collections::BTreeMap::from([("position.iteration".to_string(), "3".to_string())]);
        let p = dir().join("good.safetensors");
        save_checkpoint(&m, &state, &meta, &p).unwrap();
        std::fs::read(p).unwrap()
    })
}

/// A valid IDX file of four 2×3 images.
fn idx_bytes() -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 3];
    b.extend((0..24).map(|i| i as u8));
    b
}

/// A valid CIFAR-10 test file of two records.
fn cifar_bytes() -> Vec<u8> {
    let mut b = Vec::new();
    for label in [3u8, 7] {
        b.push(label);
        b.extend((0..3072).map(|i| (i % 251) as u8));
    }
    b
}

const CASE: &str = r#"{"name": "neg", "op": "neg", "attrs": {},
  "inputs": [{"name": "x", "shape": [2], "data": [1.5, -2]}],
  "output": {"shape": [2], "data": [-1.5, 2]},
  "cotangent": {"shape": [2], "data": [1, 1]},
  "grads": [{"name": "x", "shape": [2], "data": [-1, -1]}],
  "tol": {"rtol": 1e-12, "atol": 1e-12}}"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_checkpoints_are_errors_and_leave_the_model_unchanged(d in damage()) {
        let bytes = apply(checkpoint_bytes(), &d);
        read_damaged("checkpoint", &bytes, |p| {
            let mut m = model();
            let before = values(&m);
            if load_model(&mut m, p, false).is_err() {
                assert_eq!(values(&m), before, "a failed load changed the model");
            }
            let mut m = model();
            let _ = load_checkpoint(&mut m, p);
            let _ = read_tensors::<f32>(p);
            let _ = read_tensors::<f64>(p);
            let _ = read_metadata(p);
        });
    }

    #[test]
    fn damaged_idx_files_are_errors(d in damage()) {
        let bytes = apply(&idx_bytes(), &d);
        read_damaged("idx", &bytes, |p| {
            if let Ok(idx) = wengert::data::idx::read(p) {
                let n: usize = idx.dims.iter().product();
                assert_eq!(idx.data.len(), n, "an IDX read whose data does not match its dimensions");
            }
        });
    }

    #[test]
    fn damaged_cifar_files_are_errors(d in damage()) {
        use wengert::data::{Dataset, Split};
        let bytes = apply(&cifar_bytes(), &d);
        MUTATIONS.fetch_add(1, Ordering::Relaxed);
        let folder = dir().join(format!("cifar-{:?}", std::thread::current().id()).replace(['(', ')'], ""));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("test_batch.bin"), &bytes).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(d) = Dataset::load(&folder, Split::Test) {
                assert_eq!(d.pixels().as_u8().unwrap().len(), d.len() * 3 * 32 * 32, "images and labels disagree");
                assert!(d.labels().iter().all(|&l| l < 10), "a label out of range was read");
            }
        }));
        assert!(outcome.is_ok(), "reading a damaged CIFAR file panicked");
    }

    #[test]
    fn damaged_conformance_cases_fail_without_panicking(d in damage()) {
        let bytes = apply(CASE.as_bytes(), &d);
        read_damaged("case.json", &bytes, |p| {
            let _ = wengert::conformance::run_file(p, wengert::core::DType::F64);
            let _ = wengert::conformance::run_file(p, wengert::core::DType::F32);
        });
    }
}

#[test]
fn undamaged_files_read_back() {
    // The fuzzers start from valid files: check that they are.
    let p = dir().join("plain.safetensors");
    std::fs::write(&p, checkpoint_bytes()).unwrap();
    let mut m = model();
    let (state, meta) = load_checkpoint(&mut m, &p).unwrap();
    assert_eq!((state.steps, meta["position.iteration"].as_str()), (3, "3"));
    assert_eq!(values(&m), values(&model()));
    let idx = wengert::data::idx::parse(Path::new("x"), &idx_bytes()).unwrap();
    assert_eq!(idx.dims, vec![4, 2, 3]);
    let cifar = dir().join("cifar-ok");
    std::fs::create_dir_all(&cifar).unwrap();
    std::fs::write(cifar.join("test_batch.bin"), cifar_bytes()).unwrap();
    let d = wengert::data::Dataset::load(&cifar, wengert::data::Split::Test).unwrap();
    assert_eq!((d.len(), d.labels()), (2, &[3u8, 7][..]));
    let c = dir().join("ok.json");
    std::fs::write(&c, CASE).unwrap();
    let r = wengert::conformance::run_file(&c, wengert::core::DType::F64);
    assert!(r.failure.is_none(), "{r}");
    println!("fuzz_files: {} damaged files read so far", MUTATIONS.load(Ordering::Relaxed));
}
