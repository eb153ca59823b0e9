//! Per-request cost of `server_layer()` (request id, trace with 5% ratio + keep
//! errors/slow, RED metrics, JSON access line) against bare axum, in one run.
//!
//! `cargo bench -p telltale --bench server_layer`

use criterion::{Criterion, criterion_group, criterion_main};
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

criterion_group!(benches, server_layer);
criterion_main!(benches);
