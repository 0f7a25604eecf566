//! The gemm and conv workloads of `../shared/bench/README.md` (f32, random
//! inputs with fixed seeds), through the same closures `wengert bench` times.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

fn gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    for n in [128usize, 256, 512, 1024] {
        let mut run = wengert::bench::gemm(n).unwrap();
        g.throughput(Throughput::Elements((2 * n * n * n) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| b.iter(|| run().unwrap()));
    }
    g.finish();
}

fn conv(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv3x3");
    for (name, ch, h) in [("c16_h32", 16, 32), ("c32_h16", 32, 16), ("c64_h8", 64, 8)] {
        let mut fwd = wengert::bench::conv3x3_fwd(ch, h).unwrap();
        g.bench_function(format!("{name}_fwd"), |b| b.iter(|| fwd().unwrap()));
        let mut fwdbwd = wengert::bench::conv3x3_fwdbwd(ch, h).unwrap();
        g.bench_function(format!("{name}_fwdbwd"), |b| b.iter(|| fwdbwd().unwrap()));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = gemm, conv
}
criterion_main!(benches);
