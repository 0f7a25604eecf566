//! `mpirun -np N wengert train`: data-parallel training over Open MPI,
//! on one host and on two "hosts" (network namespaces). Built and run with
//! `cargo test --features mpi --test mpi`; needs Open MPI's
//! `mpirun`, and for the two-host test root and iproute2, as `.ci/run`
//! provides.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use wengert::data::{Dataset, Split};
use wengert::nn::checkpoint::{load_model, read_metadata};
use wengert::nn::{StateRef, Visit};
use wengert::resnet::zoo::ResNet;

const WENGERT: &str = env!("CARGO_BIN_EXE_wengert");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wengert-mpi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `mpirun -np N wengert ARGS`, as root where the tests run as root.
fn mpirun(ranks: usize, args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np"]).arg(ranks.to_string()).arg(WENGERT).args(args);
    c
}

fn alone(args: &[&str]) -> Command {
    let mut c = Command::new(WENGERT);
    c.args(args);
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The parameters and buffers of the ResNet-20 saved in `dir`, flattened.
fn weights(dir: &Path) -> Vec<f32> {
    let mut net = ResNet::<f32>::by_name("resnet20", 1, 10, &mut wengert::core::rng(0)).unwrap();
    load_model(&mut net, &dir.join("model.safetensors"), true).expect("the model file loads");
    let mut flat = Vec::new();
    net.visit("", &mut |_, s| match s {
        StateRef::Param(p) => flat.extend_from_slice(p.value().data()),
        StateRef::Buffer(b) => flat.extend_from_slice(b.data()),
        StateRef::Count(_) => {}
    });
    flat
}

/// Max-norm relative difference over every parameter and buffer.
fn difference(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a.iter().zip(b).map(|(u, v)| (u - v).abs() as f64).fold(0.0, f64::max);
    num / a.iter().map(|u| u.abs() as f64).fold(0.0, f64::max)
}

/// MNIST's first 1,280 training and 1,000 test images, in IDX files:
/// evaluating on the whole test set would take most of these tests' time.
fn small_mnist() -> &'static str {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // Shared by every test, so kept in Cargo's scratch folder for
        // tests and cleared by the next run rather than removed by one.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mpi-small-mnist");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
        for (split, prefix, n) in [(Split::Train, "train", 1280), (Split::Test, "t10k", 1000)] {
            let d = Dataset::load(&mnist, split).unwrap().take(n);
            let idx = |magic: u8, dims: &[usize], bytes: &[u8]| {
                let mut f = vec![0, 0, 8, magic];
                dims.iter().for_each(|&d| f.extend_from_slice(&(d as u32).to_be_bytes()));
                f.extend_from_slice(bytes);
                f
            };
            std::fs::write(
                dir.join(format!("{prefix}-images-idx3-ubyte")),
                idx(3, &[n, 28, 28], d.pixels().as_u8().unwrap()),
            )
            .unwrap();
            std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx(1, &[n], d.labels())).unwrap();
        }
        dir.to_str().unwrap().to_string()
    })
}

fn train_args<'a>(out: &'a str, limit: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["train", "--sync-bn", "--seed", "0", "--batch-size", "64", "--limit", limit, "--out", out];
    a.extend_from_slice(&["--data-dir", small_mnist()]);
    a.extend_from_slice(extra);
    a
}

#[test]
fn two_ranks_with_sync_bn_compute_what_one_process_computes() {
    let (one, two) = (scratch("one"), scratch("two"));
    let (o, t) = (one.to_str().unwrap(), two.to_str().unwrap());
    // Two steps: the runs differ only in the order of floating-point sums.
    run(alone(&train_args(o, "128", &["--threads", "1"])));
    let out = run(mpirun(2, &train_args(t, "128", &[])));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("data-parallel over 2 ranks"), "{stdout}");
    assert_eq!(stdout.matches("test accuracy:").count(), 1, "only rank 0 reports: {stdout}");
    let d = difference(&weights(&one), &weights(&two));
    assert!(d < 1e-6, "two steps: max-norm relative difference {d:e}");
    // The 20 steps. A ReLU whose input lies within rounding of
    // zero flips with the order of sums, so runs that differ only in that
    // order drift apart as training goes on: one process on 1 thread and
    // on 2 threads differs as much. The figures go into the test's output.
    run(alone(&train_args(o, "1280", &["--threads", "1", "--overwrite"])));
    run(mpirun(2, &train_args(t, "1280", &["--overwrite"])));
    let threads = scratch("threads");
    run(alone(&train_args(threads.to_str().unwrap(), "1280", &["--threads", "2"])));
    let ranks = difference(&weights(&one), &weights(&two));
    let floor = difference(&weights(&one), &weights(&threads));
    eprintln!("20 steps: 2 ranks vs 1 process {ranks:.3e}; 1 process, 2 threads vs 1 thread {floor:.3e}");
    for d in [one, two, threads] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_batch_that_does_not_split_evenly_is_refused_before_training() {
    let dir = scratch("uneven");
    let out =
        mpirun(2, &["train", "--batch-size", "63", "--limit", "64", "--out", dir.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--batch-size: the batch of 63 does not split evenly across 2 ranks"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_error_on_one_rank_ends_the_job_naming_the_rank_and_the_cause() {
    let dir = scratch("error");
    let (d, missing) = (dir.to_str().unwrap(), dir.join("no-such-data"));
    // Rank 1 alone is given a data folder that does not exist (mpirun's
    // MPMD form: one command line per group of ranks); rank 0 waits for it
    // in the first collective.
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", "1", WENGERT, "train", "--data-dir", small_mnist()])
        .args(["--out", d, ":", "-np", "1", WENGERT, "train", "--data-dir", missing.to_str().unwrap(), "--out", d]);
    let start = Instant::now();
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
    assert!(stderr.contains("error: rank 1 of 2: ") && stderr.contains("no-such-data"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_killed_rank_ends_the_job_and_the_checkpoint_survives() {
    let dir = scratch("kill");
    let d = dir.to_str().unwrap();
    // Two epochs of 10 steps; the kill comes during the second.
    let args = ["train", "--epochs", "2", "--limit", "640", "--seed", "1", "--data-dir", small_mnist(), "--out", d];
    let mut job = mpirun(2, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while !dir.join("model.safetensors").exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint after the first epoch");
        assert!(job.try_wait().unwrap().is_none(), "the job ended before its first checkpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    // mpirun started the ranks on this host: they are its children.
    let children = Command::new("pgrep").args(["-P", &job.id().to_string()]).output().unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&children.stdout).split_whitespace().map(String::from).collect();
    assert_eq!(pids.len(), 2, "two ranks: {pids:?}");
    let killed = Instant::now();
    assert!(Command::new("kill").args(["-KILL", &pids[1]]).status().unwrap().success());
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "the job still runs 60 s after a rank died");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(job.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "a job that lost a rank must fail");
    eprintln!("the job ended {:.1} s after the kill:\n{stderr}", killed.elapsed().as_secs_f64());
    // The checkpoint is whole, at an epoch's end, and resumes on one process.
    let meta = read_metadata(&dir.join("checkpoint.safetensors")).expect("the checkpoint is intact");
    let iteration: usize = meta["position.iteration"].parse().unwrap();
    assert!(iteration >= 10 && iteration.is_multiple_of(10), "iteration {iteration}");
    weights(&dir);
    let mut resume = args.to_vec();
    resume.push("--resume");
    let out = run(alone(&resume));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("resumed from {d} at iteration {iteration}")), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn two_hosts_joined_by_a_network_train_as_one_host_does() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mpi/two_hosts.sh");
    // Each rank runs in its own namespace, with its own address.
    let out = run({
        let mut c = Command::new(&script);
        c.args(["sh", "-c", "echo rank $OMPI_COMM_WORLD_RANK $(ip netns identify $$)"]);
        c
    });
    let mut seen: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    seen.sort();
    assert_eq!(seen, ["rank 0 wengert-host-a", "rank 1 wengert-host-b"]);
    let (one, two) = (scratch("host-one"), scratch("host-two"));
    run(alone(&train_args(one.to_str().unwrap(), "128", &["--threads", "1"])));
    run({
        let mut c = Command::new(&script);
        c.arg(WENGERT).args(train_args(two.to_str().unwrap(), "128", &[]));
        c
    });
    let d = difference(&weights(&one), &weights(&two));
    assert!(d < 1e-6, "over TCP between two hosts: max-norm relative difference {d:e}");
    for d in [one, two] {
        let _ = std::fs::remove_dir_all(d);
    }
}
