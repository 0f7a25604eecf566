//! The tape's own cost, and elementwise throughput.
//!
//! - `tape_overhead`: forward and backward of the 10,000-step chain
//!   `x = tanh(x·w + b)` on one-element tensors (30,000 recorded ops); the
//!   time per op is the reported time / 30,000. PyTorch measured about
//!   8.5 µs per op on this workload (`../shared/bench`).
//! - `elementwise_1m`: add, mul, exp, log, tanh, erf, GELU, sum, and
//!   softmax along rows of 1,024, on 1M-element f32 tensors (throughput in
//!   elements per second).

// The workloads are the program's (`wengert bench` runs them), not the
// library's: included here by path. Some are the program's alone.
#[allow(dead_code)]
#[path = "../src/cli/workloads.rs"]
mod workloads;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use wengert::core::{Tape, Tensor};

fn tape_overhead(c: &mut Criterion) {
    let mut run = workloads::tape_overhead().unwrap();
    let mut g = c.benchmark_group("tape");
    g.throughput(Throughput::Elements((workloads::TAPE_STEPS * workloads::TAPE_OPS_PER_STEP) as u64));
    g.bench_function("tape_overhead_10k_steps", |b| b.iter(|| run().unwrap()));
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let n = 1 << 20;
    let mut rng = wengert::core::rng(0);
    let a = Tensor::<f32>::normal([n], 0.0, 1.0, &mut rng).unwrap();
    let b = Tensor::<f32>::normal([n], 0.0, 1.0, &mut rng).unwrap();
    let mut g = c.benchmark_group("elementwise_1m");
    g.throughput(Throughput::Elements(n as u64));
    // A fresh tape per call: a tape keeps every value recorded on it until it
    // is cleared, so reusing one would measure a growing heap.
    let on_tape = |f: &dyn Fn(&Tape<f32>) -> Tensor<f32>| f(&Tape::new());
    g.bench_function("add", |bch| {
        bch.iter(|| on_tape(&|t| t.constant(a.clone()).add(t.constant(b.clone())).unwrap().value().unwrap()))
    });
    g.bench_function("mul", |bch| {
        bch.iter(|| on_tape(&|t| t.constant(a.clone()).mul(t.constant(b.clone())).unwrap().value().unwrap()))
    });
    g.bench_function("exp", |bch| bch.iter(|| on_tape(&|t| t.constant(a.clone()).exp().unwrap().value().unwrap())));
    let positive = a.map(|v| v.abs() + 1e-3);
    g.bench_function("log", |bch| {
        bch.iter(|| on_tape(&|t| t.constant(positive.clone()).log().unwrap().value().unwrap()))
    });
    let activation =
        |name: &str, f: fn(wengert::Var<'_, f32>) -> wengert::Result<wengert::Var<'_, f32>>| (name.to_string(), f);
    for (name, f) in [
        activation("tanh", wengert::ops::tanh),
        activation("erf", wengert::ops::erf),
        activation("gelu", wengert::ops::gelu),
        activation("softmax_rows_1024", |v| wengert::ops::softmax(v.reshape(&[1024, 1024])?, -1)),
    ] {
        g.bench_function(name, |bch| bch.iter(|| on_tape(&|t| f(t.constant(a.clone())).unwrap().value().unwrap())));
    }
    g.bench_function("sum", |bch| bch.iter(|| on_tape(&|t| t.constant(a.clone()).sum_all().unwrap().value().unwrap())));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = tape_overhead, elementwise
}
criterion_main!(benches);
