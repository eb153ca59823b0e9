//! Per-request cost of `server_layer()` (request id, trace with 5% ratio + keep
//! errors/slow, RED metrics, JSON access line) against bare axum, in one run.
//!
//! `cargo bench -p telltale --bench server_layer`
//!
//! `SERVER_LAYER_BENCH_ONLY=<bare|not_sampled|sampled> target/release/deps/server_layer-*`
//! serves that case `SERVER_LAYER_BENCH_ITERS` times (default 1,000,000) and exits, for
//! `perf record` and `valgrind --tool=callgrind` (instructions per request: the run at N
//! minus the run at N/2, divided by N/2).

use criterion::{Criterion, criterion_group};
use std::hint::black_box;

#[path = "support/mod.rs"]
mod support;

fn server_layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let telemetry = rt.block_on(async { support::telemetry() });
    let bare = support::bare().with_state(());
    let full = support::bare().layer(telemetry.server_layer()).with_state(());

    let mut group = c.benchmark_group("server_layer");
    group.bench_function("bare", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(support::call(&bare, support::request("00")).await) })
    });
    group.bench_function("full/not_sampled", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(support::call(&full, support::request("00")).await) })
    });
    group.bench_function("full/sampled", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(support::call(&full, support::request("01")).await) })
    });
    group.finish();
    drop(telemetry);
}

/// The single-case mode described in the module docs; `false` when not asked for.
fn only_one_case() -> bool {
    let Ok(case) = std::env::var("SERVER_LAYER_BENCH_ONLY") else {
        return false;
    };
    let iterations: u64 = std::env::var("SERVER_LAYER_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let telemetry = rt.block_on(async { support::telemetry() });
    let (app, flags) = match case.as_str() {
        "bare" => (support::bare().with_state(()), "00"),
        "not_sampled" => (
            support::bare().layer(telemetry.server_layer()).with_state(()),
            "00",
        ),
        "sampled" => (
            support::bare().layer(telemetry.server_layer()).with_state(()),
            "01",
        ),
        other => panic!("no case {other:?}: bare, not_sampled or sampled"),
    };
    rt.block_on(async {
        for _ in 0..iterations {
            black_box(support::call(&app, support::request(flags)).await);
        }
    });
    drop(telemetry);
    true
}

criterion_group!(benches, server_layer);

fn main() {
    if !only_one_case() {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
