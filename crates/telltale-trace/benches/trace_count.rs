//! Fixed-count runs of the `trace` bench cases, for instruction counts that a noisy shared
//! machine cannot blur: run one case under `perf stat` and divide by the request count.
//!
//! ```text
//! cargo bench -p telltale-trace --bench trace_count --no-run
//! for c in bare telltale_dropped telltale_dropped_tail_on telltale_exported bare_root \
//!          telltale_root_tail_on axum_tracing_otel_exported axum_tracing_otel_dropped axum_tracing_otel_root; do
//!   perf stat -e instructions:u -x, target/release/deps/trace_count-* $c 200000
//! done
//! ```
//!
//! Without `perf`, the wall time per request is printed too.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Path;
use axum::response::IntoResponse;
use axum::{Router, routing::get};
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
/// No `traceparent`: each request starts a root trace (the `*_root` cases; 5% of them are
/// sampled by the ratio, as in production).
const ROOT: &str = "";

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

fn app() -> Router {
    Router::new().route("/orders/{id}", get(get_order))
}

async fn run(app: &Router, traceparent: &'static str) {
    let mut req = Request::get("/orders/8812");
    if !traceparent.is_empty() {
        req = req.header("traceparent", traceparent);
    }
    let req = req.body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    black_box(res.into_body().collect().await.unwrap());
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let case = args.next().unwrap_or_else(|| "telltale_dropped".into());
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let telltale = |sampling: Sampling| {
        TracingConfig::new("bench")
            .set_global(false)
            .sampling(sampling)
            .exporter(NoopExporter)
            .queue_size(1 << 20)
            .build()
            .unwrap()
    };
    let tail = Sampling::ratio(0.05)
        .keep_errors()
        .keep_slower_than(Duration::from_millis(500));
    let mut guards = Vec::new();
    let (svc, tp, dispatch): (Router, &'static str, tracing::Dispatch) = match case.as_str() {
        "bare" => (app(), SAMPLED, tracing::Dispatch::none()),
        "bare_root" => (app(), ROOT, tracing::Dispatch::none()),
        "telltale_dropped" | "telltale_dropped_tail_on" | "telltale_root_tail_on" | "telltale_exported" => {
            let (sampling, tp) = match case.as_str() {
                "telltale_dropped" => (Sampling::ratio(0.05), NOT_SAMPLED),
                "telltale_dropped_tail_on" => (tail, NOT_SAMPLED),
                "telltale_root_tail_on" => (tail, ROOT),
                _ => (Sampling::always(), SAMPLED),
            };
            let (t, g) = telltale(sampling);
            guards.push(g);
            (
                app().layer(t.server_layer()),
                tp,
                // With a layer, as every real set-up has: a bare `Registry` never frees a
                // closed span's slot (only `Layered` does) and grows without bound.
                tracing::Dispatch::new(
                    tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new()),
                ),
            )
        }
        "axum_tracing_otel_exported" | "axum_tracing_otel_dropped" | "axum_tracing_otel_root" => {
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let provider = SdkTracerProvider::builder()
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.05))))
                .with_span_processor(BatchSpanProcessor::new(
                    NoopExporter,
                    BatchConfigBuilder::default().with_max_queue_size(1 << 20).build(),
                ))
                .build();
            let sub = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
            let tp = if case.ends_with("exported") {
                SAMPLED
            } else if case.ends_with("root") {
                ROOT
            } else {
                NOT_SAMPLED
            };
            (
                app().layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default()),
                tp,
                tracing::Dispatch::new(sub),
            )
        }
        other => panic!("unknown case {other}"),
    };
    // What `axum::serve` does (`into_make_service` calls `with_state(())`): routes and their
    // layers are built once, not on every request.
    let svc = svc.with_state(());
    let _default = tracing::dispatcher::set_default(&dispatch);
    rt.block_on(async {
        for _ in 0..1_000 {
            run(&svc, tp).await;
        }
        let started = Instant::now();
        for _ in 0..n {
            run(&svc, tp).await;
        }
        let per = started.elapsed() / n;
        println!("{case}: {n} requests, {per:?} per request (wall)");
    });
    drop(guards);
}
