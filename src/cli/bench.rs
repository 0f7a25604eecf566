//! `wengert bench`: the workloads of `../shared/bench/README.md`, timed with
//! the same rule as the PyTorch script, printed as the same JSON lines.

use super::workloads;
use serde_json::json;
use std::process::ExitCode;
use std::time::Instant;
use wengert::core::{Error, Result};

/// Warm-up calls, then timed calls until `min_reps` and `target_s` are both
/// reached (or `max_reps`); returns the median seconds per call and the count.
fn time(
    mut f: impl FnMut() -> Result<()>,
    warmup: usize,
    min_reps: usize,
    max_reps: usize,
    target_s: f64,
) -> Result<(f64, usize)> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::new();
    let mut total = 0.0;
    while (times.len() < min_reps || total < target_s) && times.len() < max_reps {
        let t0 = Instant::now();
        f()?;
        let dt = t0.elapsed().as_secs_f64();
        times.push(dt);
        total += dt;
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 };
    Ok((median, n))
}

fn emit(workload: &str, metric: &str, value: f64, unit: &str, reps: usize) {
    let v = (value * 1e4).round() / 1e4;
    out!(
        "{}",
        json!({"system": "wengert", "workload": workload, "metric": metric, "value": v, "unit": unit, "reps": reps})
    );
}

const GEMM: [usize; 5] = [128, 256, 512, 1024, 2048];

/// The workload names this build can run.
fn names() -> Vec<String> {
    let mut v: Vec<String> = GEMM.iter().map(|n| format!("gemm_n{n}")).collect();
    v.extend(workloads::ConvShape::ALL.iter().map(|s| s.name.to_string()));
    v.extend(
        [
            "basic_block_fwdbwd",
            "resnet20_train_step",
            "resnet56_train_step",
            "resnet50_train_step",
            "resnet50_forward",
            "tape_overhead",
            "peak_sgemm_n4096",
        ]
        .map(String::from),
    );
    v.extend(workloads::LoaderWorkload::ALL.iter().map(|(name, _)| name.to_string()));
    v
}

fn gemm(n: usize, workload: &str, rule: (usize, usize, usize, f64)) -> Result<()> {
    let (t, reps) = time(workloads::gemm(n)?, rule.0, rule.1, rule.2, rule.3)?;
    emit(workload, "gflops", 2.0 * (n as f64).powi(3) / t / 1e9, "GFLOPS", reps);
    Ok(())
}

fn run_one(name: &str) -> Result<()> {
    if let Some(n) = name.strip_prefix("gemm_n").and_then(|n| n.parse::<usize>().ok()).filter(|n| GEMM.contains(n)) {
        return gemm(n, name, (3, 10, 200, 1.0));
    }
    if let Some(s) = workloads::ConvShape::ALL.iter().find(|s| s.name == name) {
        let (t, reps) = time(workloads::conv_fwd(s)?, 3, 10, 200, 1.0)?;
        emit(&format!("{name}_fwd"), "ms", t * 1e3, "ms", reps);
        let (t, reps) = time(workloads::conv_fwdbwd(s)?, 3, 10, 200, 1.0)?;
        emit(&format!("{name}_fwdbwd"), "ms", t * 1e3, "ms", reps);
        return Ok(());
    }
    if let Some(&(_, workload)) = workloads::LoaderWorkload::ALL.iter().find(|(n, _)| *n == name) {
        let (epoch, images) = workloads::loader_epoch(workload)?;
        let (t, reps) = time(epoch, 1, 3, 20, 3.0)?;
        emit(name, "images_per_s", images as f64 / t, "img/s", reps);
        return Ok(());
    }
    match name {
        "basic_block_fwdbwd" => {
            let (t, reps) = time(workloads::basic_block_fwdbwd()?, 3, 10, 100, 1.5)?;
            emit(name, "ms", t * 1e3, "ms", reps);
        }
        "tape_overhead" => {
            let (t, reps) = time(workloads::tape_overhead()?, 2, 5, 30, 2.0)?;
            let ops = (workloads::TAPE_STEPS * workloads::TAPE_OPS_PER_STEP) as f64;
            emit(name, "us_per_op", t / ops * 1e6, "us", reps);
        }
        "peak_sgemm_n4096" => gemm(4096, name, (1, 5, 20, 4.0))?,
        "resnet20_train_step" | "resnet56_train_step" => {
            let depth = if name == "resnet20_train_step" { 20 } else { 56 };
            let (step, _) = workloads::cifar_train_step(depth)?;
            let (t, reps) = time(step, 2, 5, 30, 6.0)?;
            emit(name, "images_per_s", 128.0 / t, "img/s", reps);
        }
        "resnet50_train_step" => {
            let (step, _) = workloads::resnet50_train_step()?;
            let (t, reps) = time(step, 1, 3, 10, 12.0)?;
            emit(name, "images_per_s", 16.0 / t, "img/s", reps);
        }
        "resnet50_forward" => {
            let (t, reps) = time(workloads::resnet50_forward()?, 1, 3, 10, 6.0)?;
            emit(name, "images_per_s", 16.0 / t, "img/s", reps);
        }
        _ => return Err(Error::argument("bench", "--only", format!("unknown workload '{name}'; see --list"))),
    }
    Ok(())
}

/// Peak resident memory (`VmHWM`) in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// A training step for `--mem` and `--profile`: `resnet56` and `resnet50`
/// are the peer script's workloads (batch 128 and 16); any other zoo model
/// runs at its default input with `batch` images (8 unless given),
/// recomputing block branches in backward with `recompute`. Returns the
/// step, its images, and the workload's name.
fn training_step(model: &str, batch: Option<usize>, recompute: bool) -> Result<(Step, usize, String)> {
    Ok(match (model, batch, recompute) {
        ("resnet56", None, false) => (Box::new(workloads::cifar_train_step(56)?.0), 128, "resnet56_train_step".into()),
        ("resnet50", None, false) => (Box::new(workloads::resnet50_train_step()?.0), 16, "resnet50_train_step".into()),
        (name, batch, recompute) => {
            let batch = batch.unwrap_or(8);
            let suffix = if recompute { "_recompute" } else { "" };
            let step = workloads::zoo_train_step(name, batch, recompute)?.0;
            (Box::new(step), batch, format!("{name}_b{batch}_train_step{suffix}"))
        }
    })
}

type Step = Box<dyn FnMut() -> Result<()>>;

/// `--mem MODEL`: a few training steps, then the peak memory.
fn mem(model: &str, batch: Option<usize>, recompute: bool) -> Result<()> {
    let (mut step, images, workload) = training_step(model, batch, recompute)?;
    let steps = match images {
        128 => 4,
        16 => 3,
        _ => 2,
    };
    let t0 = std::time::Instant::now();
    for _ in 0..steps {
        step()?;
    }
    let seconds = t0.elapsed().as_secs_f64() / steps as f64;
    let peak = peak_rss_mib().ok_or_else(|| Error::argument("bench", "--mem", "no VmHWM in /proc/self/status"))?;
    out!(
        "{}",
        json!({"system": "wengert", "workload": workload, "metric": "peak_rss", "value": (peak * 10.0).round() / 10.0, "unit": "MiB", "reps": steps, "seconds_per_step": (seconds * 1000.0).round() / 1000.0})
    );
    Ok(())
}

/// `--profile MODEL`: two warm-up steps, then `steps` training steps
/// profiled op by op; prints the table per step.
fn profile(model: &str, batch: Option<usize>, recompute: bool, steps: usize) -> Result<()> {
    if steps == 0 {
        return Err(Error::argument("bench", "--steps", "must be at least 1"));
    }
    let (mut step, images, workload) = training_step(model, batch, recompute)?;
    for _ in 0..2 {
        step()?;
    }
    let (done, p) = wengert::core::profile::record(|| (0..steps).try_for_each(|_| step()));
    done?;
    let per_step = p.wall.as_secs_f64() / steps as f64;
    out!(
        "{workload}: {steps} steps of {images} images, {:.1} ms per step, {:.1} images/s; per step:",
        per_step * 1e3,
        images as f64 / per_step
    );
    out!("{}", p.table(steps).trim_end());
    let convs = p.ops.iter().filter(|o| o.name == "conv2d");
    let (flops, seconds) = convs.fold((0.0, 0.0), |(f, t), o| {
        (f + o.forward.flops + o.backward.flops, t + (o.forward.time + o.backward.time).as_secs_f64())
    });
    if seconds > 0.0 {
        let gflops = flops / seconds / 1e9;
        let at = format!("convolutions: {:.1} ms per step at {gflops:.1} GFLOPS", seconds * 1e3 / steps as f64);
        match wengert::ops::conv::fp32_peak() {
            Some((peak, isa)) => out!(
                "{at}, {:.0} per cent of this machine's FP32 peak, measured: {peak:.1} GFLOPS ({} threads of {} multiply-adds)",
                100.0 * gflops / peak,
                rayon::current_num_threads(),
                isa.name()
            ),
            None => out!("{at}"),
        }
    }
    Ok(())
}

/// What `wengert bench` is asked.
pub struct BenchRequest<'a> {
    /// List the workloads.
    pub list: bool,
    /// The comma-separated workloads to run (all by default).
    pub only: Option<&'a str>,
    /// Measure this model's peak training memory.
    pub mem: Option<&'a str>,
    /// Profile this model's training steps op by op.
    pub profile: Option<&'a str>,
    /// Images per step for `mem` and `profile`.
    pub batch: Option<usize>,
    /// Recompute block branches in backward, for `mem` and `profile`.
    pub recompute: bool,
    /// Steps to profile.
    pub steps: usize,
}

/// Lists the workloads, or runs the comma-separated ones in `only` (all by
/// default), or measures a model's peak training memory (`mem`), or
/// profiles its training step (`profile`).
pub fn run(r: BenchRequest) -> Result<ExitCode> {
    let (list, only, batch, recompute) = (r.list, r.only, r.batch, r.recompute);
    if let Some(m) = r.mem {
        mem(m, batch, recompute)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(m) = r.profile {
        profile(m, batch, recompute, r.steps)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list {
        names().iter().for_each(|n| out!("{n}"));
        return Ok(ExitCode::SUCCESS);
    }
    let chosen: Vec<String> = match only {
        Some(s) => s.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        None => names(),
    };
    for name in &chosen {
        run_one(name)?;
    }
    Ok(ExitCode::SUCCESS)
}
