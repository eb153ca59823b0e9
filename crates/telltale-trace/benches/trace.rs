//! Per-request cost of the trace layer: bare service, telltale's `TraceLayer` (request
//! dropped by sampling, dropped with tail rules on, exported to a no-op exporter through
//! the bounded batch queue), and axum-tracing-opentelemetry 0.42 (same opentelemetry
//! 0.33; `tracing-opentelemetry` layer, batch exporter to the same no-op exporter).
//!
//! `cargo bench -p telltale-trace --bench trace -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::response::IntoResponse;
use axum::{Router, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use telltale_trace::{Sampling, TracingConfig};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const NOT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

#[derive(Debug)]
struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

async fn get_order(Path(id): Path<u64>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"id":{id},"status":"shipped","items":3,"total_cents":129900,"c":"EUR"}}"#),
    )
}

/// Each case's router is finished with `.with_state(())`, as `axum::serve` does
/// (`into_make_service`): routes and their layers are built once, not per request.
fn app() -> Router {
    Router::new().route("/orders/{id}", get(get_order))
}

fn request(traceparent: &'static str) -> Request<Body> {
    Request::get("/orders/8812")
        .header("traceparent", traceparent)
        .body(Body::empty())
        .unwrap()
}

async fn run(app: Router, traceparent: &'static str) {
    let res = app.oneshot(request(traceparent)).await.unwrap();
    black_box(res.into_body().collect().await.unwrap());
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("trace_per_request");

    {
        let bare = app().with_state(());
        g.bench_function("bare", |b| b.to_async(&rt).iter(|| run(bare.clone(), SAMPLED)));
    }

    // telltale: a registry with a layer, as every real set-up has.
    let cases: [(&str, Sampling, &'static str); 3] = [
        ("telltale_dropped", Sampling::ratio(0.05), NOT_SAMPLED),
        (
            "telltale_dropped_tail_on",
            Sampling::ratio(0.05)
                .keep_errors()
                .keep_slower_than(Duration::from_millis(500)),
            NOT_SAMPLED,
        ),
        ("telltale_exported", Sampling::always(), SAMPLED),
    ];
    for (name, sampling, tp) in cases {
        // A registry with a layer (here one that does nothing), as every real set-up has: a
        // bare `Registry` never frees a closed span's slot (only `Layered` does), so on its
        // own it grows without bound and slows down.
        let _sub = tracing::subscriber::set_default(
            tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new()),
        );
        let (tracing, guard) = TracingConfig::new("bench")
            .set_global(false)
            .sampling(sampling)
            .exporter(NoopExporter)
            .queue_size(65_536)
            .build()
            .unwrap();
        let svc = app().layer(tracing.server_layer()).with_state(());
        g.bench_function(name, |b| b.to_async(&rt).iter(|| run(svc.clone(), tp)));
        eprintln!("{name}: {:?}", tracing.export_stats());
        drop(guard);
    }

    // axum-tracing-opentelemetry: the documented set-up (global propagator, tracing-opentelemetry
    // layer over an SDK provider with a batch exporter).
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    for (name, tp) in [
        ("axum_tracing_otel_exported", SAMPLED),
        ("axum_tracing_otel_dropped", NOT_SAMPLED),
    ] {
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.05))))
            .with_span_processor(BatchSpanProcessor::new(
                NoopExporter,
                BatchConfigBuilder::default().with_max_queue_size(65_536).build(),
            ))
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
        let _sub = tracing::subscriber::set_default(subscriber);
        let svc = app()
            .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
            .with_state(());
        g.bench_function(name, |b| b.to_async(&rt).iter(|| run(svc.clone(), tp)));
        let _ = provider.shutdown();
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
