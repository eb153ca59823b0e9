//! Per-request cost of the server metrics layer: bare axum vs telltale's `MetricsLayer`
//! vs axum-prometheus 0.10's layer, in the same run.
//!
//! Run: `cargo bench -p telltale-metrics --bench metrics -- --warm-up-time 1 --measurement-time 3`
//!
//! Each iteration sends `GET /orders/{id}` (a 74-byte JSON body, as in
//! `/work/shared/PEER-BASELINE.md`) through the router and reads the body to its end,
//! polling with a no-op waker: the handler is always ready, so no runtime is measured.
//! Both metric layers record into a `metrics-exporter-prometheus` recorder (ours a
//! local one, axum-prometheus's the global one it installs).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body::Body as _;
use telltale_metrics::{MetricsLayer, PrometheusConfig};
use tower::Service;

const ORDER: &str = r#"{"id":"42","status":"shipped","items":3,"total_cents":12999,"currency":"EUR"}"#;

/// Each case's router is finished with `.with_state(())`, as `axum::serve` does
/// (`into_make_service`): routes and their layers are built once, not per request.
fn routes() -> Router {
    Router::new().route(
        "/orders/{id}",
        get(|| async { ([(http::header::CONTENT_TYPE, "application/json")], ORDER) }),
    )
}

fn run(app: &mut Router) -> u64 {
    run_path(app, "/orders/42")
}

fn run_path(app: &mut Router, path: &'static str) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    let req = Request::get(path).body(Body::empty()).unwrap();
    let mut fut = pin!(Service::call(app, req));
    let res = match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => unreachable!("the handler completes on first poll"),
    };
    let mut body = pin!(res.into_body());
    let mut n = 0;
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => n += frame.into_data().map(|d| d.len() as u64).unwrap_or(0),
            Poll::Ready(None) => return n,
            _ => unreachable!("a full body is always ready"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut bare = routes().with_state(());

    let prom = PrometheusConfig::new("bench").build().unwrap();
    let layer = MetricsLayer::builder().recorder(prom.recorder()).build().unwrap();
    let mut telltale = routes().layer(layer).with_state(());
    // The same layer on a path it excludes: the cost of the wrapping alone.
    let excluded = MetricsLayer::builder()
        .recorder(prom.recorder())
        .excluded_paths(["/orders/42"])
        .build()
        .unwrap();
    let mut wrapped = routes().layer(excluded).with_state(());

    // axum-prometheus spawns its upkeep task: it must be created inside a runtime.
    let (peer_layer, _peer_handle) = {
        let _g = rt.enter();
        axum_prometheus::PrometheusMetricLayer::pair()
    };
    let mut peer = routes().layer(peer_layer).with_state(());

    assert_eq!(run(&mut bare), ORDER.len() as u64);
    assert_eq!(run(&mut telltale), ORDER.len() as u64);
    assert_eq!(run(&mut peer), ORDER.len() as u64);
    assert!(prom.handle().render().contains("/orders/{id}"));

    let mut g = c.benchmark_group("server_metrics");
    g.bench_function("bare", |b| b.iter(|| black_box(run(&mut bare))));
    g.bench_function("telltale", |b| b.iter(|| black_box(run(&mut telltale))));
    g.bench_function("telltale_excluded_path", |b| {
        b.iter(|| black_box(run_path(&mut wrapped, "/orders/42")))
    });
    g.bench_function("axum_prometheus", |b| b.iter(|| black_box(run(&mut peer))));
    g.finish();
    // Keep the exporters' sample buffers bounded during the run.
    prom.handle().render();
}

criterion_group!(benches, bench);
criterion_main!(benches);
