//! Access-log cost per request: a bare service against the same service under
//! `AccessLogLayer`, with the JSON layer writing through the non-blocking writer to
//! `io::sink`. The response body is collected so the event is written (it is written at
//! body end). Futures complete on first poll, so no runtime is involved.
//!
//! cargo bench -p telltale-log --bench access_log -- --warm-up-time 1 --measurement-time 3

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use telltale_core::RequestId;
use telltale_core::trace_ids::TraceIds;
use telltale_log::{AccessLogLayer, LogConfig};
use tower::{Layer as _, Service, ServiceExt as _};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;

const BODY: &[u8] = br#"{"id":"8812","item":"widget","quantity":3,"status":"shipped","total":"29.97"}"#;

fn handler() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>>,
> + Clone {
    tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
    })
}

fn request() -> Request<Full<Bytes>> {
    let mut req = Request::get("/orders/8812?expand=items")
        .header("user-agent", "bench/1.0")
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut()
        .insert(RequestId::parse("0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e10").unwrap());
    req.extensions_mut()
        .insert(telltale_core::route::RouteLabel::from_static("/orders/{id}"));
    req
}

fn run<S, B>(svc: &mut S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let res = svc
        .ready()
        .now_or_never()
        .unwrap()
        .unwrap()
        .call(request())
        .now_or_never()
        .unwrap()
        .unwrap();
    let body = res.into_body().collect().now_or_never().unwrap().unwrap();
    black_box(body);
}

/// Puts fixed trace ids on every span, standing in for telltale-trace.
struct Ids;
impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Ids {
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(TraceIds::new(
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                true,
            ));
        }
    }
}

fn bench(c: &mut Criterion) {
    let config = LogConfig::new("bench")
        .environment("bench")
        .version("0.1.0")
        .buffered_lines_limit(telltale_log::config::DEFAULT_BUFFERED_LINES);
    let (writer, guard) = config.non_blocking(std::io::sink()).unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(Ids)
        .with(config.json_layer(writer).unwrap());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut group = c.benchmark_group("access_log");
    let mut bare = handler();
    group.bench_function("bare", |b| b.iter(|| run(&mut bare)));

    let mut logged = AccessLogLayer::new().layer(handler());
    group.bench_function("access_log_json_nonblocking", |b| b.iter(|| run(&mut logged)));

    let mut with_header = AccessLogLayer::builder()
        .request_headers(["user-agent"])
        .build()
        .unwrap()
        .layer(handler());
    let span = tracing::info_span!(
        "GET /orders/{id}",
        request_id = "0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e10"
    );
    group.bench_function("access_log_in_traced_span_with_header", |b| {
        b.iter(|| span.in_scope(|| run(&mut with_header)))
    });
    drop(span);

    // Where the time goes: the same JSON layer writing synchronously to `io::sink`
    // (no channel, no background thread), and the access log with no subscriber at all.
    {
        let sync = tracing_subscriber::registry().with(config.json_layer(std::io::sink).unwrap());
        let _default = tracing::subscriber::set_default(sync);
        let mut logged = AccessLogLayer::new().layer(handler());
        group.bench_function("access_log_json_sync_sink", |b| b.iter(|| run(&mut logged)));
    }
    {
        let _default = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        let mut logged = AccessLogLayer::new().layer(handler());
        group.bench_function("access_log_disabled", |b| b.iter(|| run(&mut logged)));
    }
    group.finish();
    eprintln!("dropped lines during the bench: {}", guard.dropped_lines());
    drop(guard);
}

criterion_group!(benches, bench);
criterion_main!(benches);
