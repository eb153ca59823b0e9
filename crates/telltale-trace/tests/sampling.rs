//! Tail sampling over 10,000 traces (SDK spans, and requests through telltale's own
//! server and client layers), and memory bounds when the exporter is down.

mod support;

use std::time::{Duration, SystemTime};

use opentelemetry::Context;
use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use telltale_trace::{Sampling, SpanPipeline, TracingConfig};

use support::Collect;

fn provider_for(p: &SpanPipeline) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(p.sampler())
        .with_span_processor(p.processor())
        .build()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Error,
    Slow,
    Normal,
}

#[test]
fn ten_thousand_requests_keep_every_error_and_slow_trace_and_the_ratio_of_the_rest() {
    let collect = Collect::default();
    let sampling = Sampling::ratio(0.1)
        .keep_errors()
        .keep_slower_than(Duration::from_millis(500));
    let pipeline = SpanPipeline::new(&sampling, collect.clone()).unwrap();
    let provider = provider_for(&pipeline);
    let tracer = provider.tracer("test");

    let mut kinds = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        let kind = match i % 20 {
            0 => Kind::Error,
            1 => Kind::Slow,
            _ => Kind::Normal,
        };
        let now = SystemTime::now();
        let start = if kind == Kind::Slow {
            now - Duration::from_secs(2)
        } else {
            now - Duration::from_millis(3)
        };
        let root = tracer
            .span_builder("GET /orders/{id}")
            .with_start_time(start)
            .start(&tracer);
        let trace_id = root.span_context().trace_id();
        let cx = Context::new().with_span(root);
        // A child (e.g. a client call) that ends before the root.
        let mut child = tracer.start_with_context("GET", &cx);
        child.end();
        let span = cx.span();
        if kind == Kind::Error {
            span.set_status(Status::error("500"));
        }
        span.end_with_timestamp(now);
        kinds.push((trace_id, kind));
    }

    let exported = collect.0.lock().unwrap().clone();
    let mut per_trace = std::collections::HashMap::new();
    for s in &exported {
        assert!(
            s.span_context.is_sampled(),
            "exported spans carry the sampled flag"
        );
        *per_trace.entry(s.span_context.trace_id()).or_insert(0) += 1;
    }
    let (mut normal_kept, mut normal) = (0, 0);
    for (id, kind) in &kinds {
        let n = per_trace.get(id).copied().unwrap_or(0);
        match kind {
            Kind::Error | Kind::Slow => assert_eq!(n, 2, "error/slow trace kept whole"),
            Kind::Normal => {
                normal += 1;
                assert!(n == 0 || n == 2, "traces are kept whole or not at all");
                normal_kept += usize::from(n == 2);
            }
        }
    }
    // 9,000 normal traces at 10%: mean 900, sd 28.5; allow ±5 sd.
    assert_eq!(normal, 9_000);
    assert!(
        (757..=1_043).contains(&normal_kept),
        "kept {normal_kept} of 9000 at ratio 0.1"
    );
    let stats = pipeline.stats();
    // The 1,000 error/slow traces minus those the ratio already sampled (~10%).
    assert!((800..1_000).contains(&stats.kept_traces), "{stats:?}");
    assert_eq!(stats.held_traces, 0, "nothing left in the buffer");
}

#[test]
fn tail_buffer_stays_bounded_when_roots_never_end() {
    let collect = Collect::default();
    let sampling = Sampling::never()
        .keep_errors()
        .max_traces_held(100)
        .max_spans_per_trace(5);
    let pipeline = SpanPipeline::new(&sampling, collect.clone()).unwrap();
    let provider = provider_for(&pipeline);
    let tracer = provider.tracer("test");
    let mut roots = Vec::new();
    for _ in 0..1_000 {
        let root = tracer.start("root");
        let cx = Context::new().with_span(root);
        for _ in 0..10 {
            tracer.start_with_context("child", &cx).end();
        }
        roots.push(cx);
    }
    let stats = pipeline.stats();
    assert!(stats.held_traces <= 100, "{stats:?}");
    assert!(stats.held_spans <= 100 * 5, "{stats:?}");
    assert_eq!(stats.overflow_spans, 1_000 * 10 - 100 * 5);
    assert!(collect.0.lock().unwrap().is_empty());
    drop(roots);
}

/// The value of each `name` series in a Prometheus rendering, by its label text.
fn series(rendered: &str, name: &str) -> Vec<(String, f64)> {
    rendered
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key[name.len()..].to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn tail_metrics_count_each_lost_span_once_and_the_held_gauge_falls() {
    use telltale_trace::names::{TAIL_SPANS_OVERFLOW, TAIL_TRACES_HELD};
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The local recorder is per thread; the SDK ends spans on the thread that ends them.
    metrics::with_local_recorder(&recorder, || {
        // The gauge follows the buffer down as well as up.
        let pipeline = SpanPipeline::new(&Sampling::never().keep_errors(), Collect::default()).unwrap();
        let tracer = provider_for(&pipeline).tracer("test");
        let cx = Context::new().with_span(tracer.start("root"));
        tracer.start_with_context("child", &cx).end();
        assert_eq!(series(&handle.render(), TAIL_TRACES_HELD), [(String::new(), 1.0)]);
        cx.span().end(); // not an error: the trace is dropped, its child with it
        assert_eq!(pipeline.stats().held_traces, 0);
        assert_eq!(series(&handle.render(), TAIL_TRACES_HELD), [(String::new(), 0.0)]);

        // Spans lost to a full buffer and to expiry: each counted once, under its reason.
        let sampling = Sampling::never()
            .keep_errors()
            .max_traces_held(2)
            .max_trace_age(Duration::from_millis(2));
        let pipeline = SpanPipeline::new(&sampling, Collect::default()).unwrap();
        let tracer = provider_for(&pipeline).tracer("test");
        let mut roots = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(10);
        let lost = |reason: &str| {
            series(&handle.render(), TAIL_SPANS_OVERFLOW)
                .into_iter()
                .find(|(labels, _)| labels.contains(&format!("reason=\"{reason}\"")))
                .map_or(0.0, |(_, v)| v)
        };
        while lost("max_age") == 0.0 || lost("max_traces") == 0.0 {
            let cx = Context::new().with_span(tracer.start("root"));
            tracer.start_with_context("child", &cx).end();
            roots.push(cx);
            assert!(std::time::Instant::now() < until, "no expiry and overflow");
            std::thread::yield_now();
        }
        let counted: f64 = series(&handle.render(), TAIL_SPANS_OVERFLOW)
            .iter()
            .map(|(_, v)| v)
            .sum();
        assert_eq!(counted, pipeline.stats().overflow_spans as f64);
        drop(roots);
    });
}

/// An exporter standing for a dead collector: every export hangs.
#[derive(Debug)]
struct DeadCollector;

impl SpanExporter for DeadCollector {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[test]
fn a_dead_collector_never_blocks_and_the_queue_stays_bounded() {
    let (tracing, guard) = TracingConfig::new("svc")
        .set_global(false)
        .exporter(DeadCollector)
        .queue_size(64)
        .export_interval(Duration::from_millis(10))
        .export_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let tracer = tracing.provider().tracer("test");
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        tracer.start("request").end();
    }
    // Generous: 10,000 spans must not wait on the exporter (each export hangs 50 ms).
    assert!(started.elapsed() < Duration::from_secs(5));
    let stats = tracing.export_stats();
    assert!(stats.queued <= 64, "{stats:?}");
    assert!(stats.dropped >= 10_000 - 64 - 512, "{stats:?}");
    drop(guard);
}

#[test]
fn traces_whose_root_never_ends_expire_after_max_age() {
    let collect = Collect::default();
    let sampling = Sampling::never()
        .keep_errors()
        .max_trace_age(Duration::from_millis(2));
    let pipeline = SpanPipeline::new(&sampling, collect.clone()).unwrap();
    let provider = provider_for(&pipeline);
    let tracer = provider.tracer("test");
    let mut roots = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cx = Context::new().with_span(tracer.start("root"));
        tracer.start_with_context("child", &cx).end();
        roots.push(cx);
        if pipeline.stats().overflow_spans > 0 {
            break;
        }
        assert!(std::time::Instant::now() < until, "nothing ever expired");
        std::thread::yield_now();
    }
    let stats = pipeline.stats();
    assert!(stats.held_traces < roots.len(), "{stats:?}");
}

/// The same rules over 10,000 requests served by telltale's own layers (not SDK spans):
/// each request's server span (`TraceLayer`) has one child, the client span of a call the
/// handler makes through `ClientTraceLayer`. Errors are 500s, slow requests really take
/// longer than the threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_through_telltale_layers_keep_errors_slow_and_the_ratio() {
    use axum::extract::Path;
    use axum::{Router, body::Body, routing::get};
    use futures_util::StreamExt;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};

    const SLOW: Duration = Duration::from_millis(200);
    let collect = Collect::default();
    let sampling = Sampling::ratio(0.1).keep_errors().keep_slower_than(SLOW);
    let pipeline = SpanPipeline::new(&sampling, collect.clone()).unwrap();

    let dependency = telltale_trace::ClientTraceLayer::new(pipeline.clone())
        .dependency("inventory")
        .layer(tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::from("stock")))
        }));
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(move |Path(id): Path<u32>| {
                let dependency = dependency.clone();
                async move {
                    if id % 20 == 1 {
                        tokio::time::sleep(SLOW + Duration::from_millis(50)).await;
                    }
                    let req = Request::get("http://inventory.local/stock")
                        .body(Body::empty())
                        .unwrap();
                    let res = dependency.oneshot(req).await.unwrap();
                    let _ = res.into_body().collect().await.unwrap();
                    if id % 20 == 0 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        )
        .layer(telltale_trace::TraceLayer::new(pipeline.clone()).with_traceresponse(true));

    // 10,000 requests, up to 1,000 at a time (so the 500 slow ones overlap).
    let results: Vec<(u32, opentelemetry::trace::TraceId)> = futures_util::stream::iter(0..10_000u32)
        .map(|id| {
            let app = app.clone();
            async move {
                let req = Request::get(format!("/orders/{id}")).body(Body::empty()).unwrap();
                let res = app.oneshot(req).await.unwrap();
                let tr = res.headers()["traceresponse"].to_str().unwrap().to_owned();
                let _ = res.into_body().collect().await.unwrap();
                // traceresponse: 00-{trace id}-{span id}-{flags}
                let trace_id = opentelemetry::trace::TraceId::from_hex(&tr[3..35]).unwrap();
                (id, trace_id)
            }
        })
        .buffer_unordered(1_000)
        .collect()
        .await;
    assert_eq!(results.len(), 10_000);

    let exported = collect.0.lock().unwrap().clone();
    let mut per_trace = std::collections::HashMap::new();
    for s in &exported {
        assert!(
            s.span_context.is_sampled(),
            "exported spans carry the sampled flag"
        );
        let e = per_trace.entry(s.span_context.trace_id()).or_insert((0, 0));
        match s.span_kind {
            opentelemetry::trace::SpanKind::Server => e.0 += 1,
            _ => e.1 += 1,
        }
    }
    let (mut normal, mut normal_kept) = (0, 0);
    for (id, trace_id) in &results {
        let got = per_trace.get(trace_id).copied().unwrap_or((0, 0));
        match id % 20 {
            0 | 1 => assert_eq!(got, (1, 1), "request {id}: error/slow trace kept whole"),
            _ => {
                normal += 1;
                assert!(
                    got == (0, 0) || got == (1, 1),
                    "request {id}: whole or nothing, got {got:?}"
                );
                normal_kept += usize::from(got == (1, 1));
            }
        }
    }
    // 9,000 normal traces at 10%: mean 900, sd 28.5; allow ±5 sd (plus a few normal
    // requests a loaded machine may make slower than the threshold).
    assert_eq!(normal, 9_000);
    assert!(
        (757..=1_080).contains(&normal_kept),
        "kept {normal_kept} of 9000 at ratio 0.1"
    );
    let stats = pipeline.stats();
    assert!((800..=1_180).contains(&stats.kept_traces), "{stats:?}");
    assert_eq!(stats.held_traces, 0, "nothing left in the buffer");
    assert_eq!(stats.overflow_spans, 0, "{stats:?}");
}
