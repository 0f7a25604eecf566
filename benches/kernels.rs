//! The gemm and conv workloads of `../shared/bench/README.md` (f32, random
//! inputs with fixed seeds), through the same closures `wengert bench` times.

// The workloads are the program's (`wengert bench` runs them), not the
// library's: included here by path. Some are the program's alone.
#[allow(dead_code)]
#[path = "../src/cli/workloads.rs"]
mod workloads;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

fn gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    for n in [128usize, 256, 512, 1024] {
        let mut run = workloads::gemm(n).unwrap();
        g.throughput(Throughput::Elements((2 * n * n * n) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| b.iter(|| run().unwrap()));
    }
    g.finish();
}

fn conv(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv");
    for s in &workloads::ConvShape::ALL {
        g.throughput(Throughput::Elements(s.flops() as u64));
        let mut fwd = workloads::conv_fwd(s).unwrap();
        g.bench_function(format!("{}_fwd", s.name), |b| b.iter(|| fwd().unwrap()));
        g.throughput(Throughput::Elements(3 * s.flops() as u64));
        let mut fwdbwd = workloads::conv_fwdbwd(s).unwrap();
        g.bench_function(format!("{}_fwdbwd", s.name), |b| b.iter(|| fwdbwd().unwrap()));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = gemm, conv
}
criterion_main!(benches);
