//! Server span behaviour, in process: body-end timing, statuses, panics, hang-ups,
//! query redaction, traceresponse, and logs carrying the trace ids.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::{Router, body::Body, routing::get};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use opentelemetry::trace::Status;
use telltale_core::trace_ids::TraceIds;
use telltale_trace::server::HandlerPanic;
use telltale_trace::{Sampling, SpanPipeline, TraceLayer};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

use support::{Collect, attr};

fn pipeline(sampling: Sampling) -> (SpanPipeline, Collect) {
    let c = Collect::default();
    (SpanPipeline::new(&sampling, c.clone()).unwrap(), c)
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn streaming_body_span_ends_when_the_body_ends() {
    let (p, spans) = pipeline(Sampling::always());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(4);
    let rx = Arc::new(Mutex::new(Some(rx)));
    let app =
        Router::new()
            .route(
                "/events",
                get(move || {
                    let rx = rx.lock().unwrap().take().unwrap();
                    async move {
                        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                            rx.recv().await.map(|f| (f, rx))
                        });
                        Body::new(http_body_util::StreamBody::new(stream))
                    }
                }),
            )
            .layer(TraceLayer::new(p));
    let res = app.oneshot(get_req("/events")).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"data: 1\n\n"))))
        .await
        .unwrap();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    assert!(
        spans.spans().is_empty(),
        "the span must not end at the response head"
    );
    let before_last = SystemTime::now();
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"data: 2\n\n"))))
        .await
        .unwrap();
    drop(tx);
    while body.frame().await.is_some() {}
    let got = spans.spans();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "GET /events");
    assert!(got[0].end_time >= before_last, "span covers the whole stream");
    assert_eq!(attr(&got[0], "http.response.body.size").as_deref(), Some("18"));
}

#[tokio::test]
async fn status_error_for_5xx_only_and_unmatched_is_just_the_method() {
    let (p, spans) = pipeline(Sampling::always());
    let app = Router::new()
        .route("/boom", get(|| async { StatusCode::BAD_GATEWAY }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .layer(TraceLayer::new(p));
    for uri in ["/boom", "/missing", "/nope/123"] {
        let res = app.clone().oneshot(get_req(uri)).await.unwrap();
        let _ = res.into_body().collect().await.unwrap();
    }
    let got = spans.spans();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].name, "GET /boom");
    assert!(matches!(got[0].status, Status::Error { .. }));
    assert_eq!(attr(&got[0], "error.type").as_deref(), Some("502"));
    assert_eq!(got[1].status, Status::Unset, "4xx is not a server error");
    assert_eq!(attr(&got[1], "error.type"), None);
    assert_eq!(got[2].name, "GET", "unmatched: method only, never the raw path");
    assert_eq!(attr(&got[2], "http.route"), None);
}

#[tokio::test]
async fn a_panicking_handler_is_recorded_as_an_exception_and_rethrown() {
    let (p, spans) = pipeline(Sampling::always());
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                tokio::task::yield_now().await;
                if spans_are_real() {
                    panic!("kaboom");
                }
                "unreachable"
            }),
        )
        .layer(TraceLayer::new(p));
    let join = tokio::spawn(async move { app.oneshot(get_req("/")).await.map(|_| ()) }).await;
    assert!(join.unwrap_err().is_panic());
    let got = spans.spans();
    assert_eq!(got.len(), 1);
    assert!(matches!(got[0].status, Status::Error { .. }));
    assert_eq!(attr(&got[0], "error.type").as_deref(), Some("panic"));
    let ev = &got[0].events.events[0];
    assert_eq!(ev.name, "exception");
    assert!(ev.attributes.iter().any(|kv| kv.value.to_string() == "kaboom"));
}

fn spans_are_real() -> bool {
    true
}

#[tokio::test]
async fn a_500_from_an_inner_catch_panic_layer_is_classified_as_panic() {
    let (p, spans) = pipeline(Sampling::always());
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                let mut res = http::Response::new(Body::from("internal error"));
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                res.extensions_mut()
                    .insert(HandlerPanic("index out of bounds".into()));
                res
            }),
        )
        .layer(TraceLayer::new(p));
    let res = app.oneshot(get_req("/")).await.unwrap();
    let _ = res.into_body().collect().await.unwrap();
    let got = spans.spans();
    assert_eq!(attr(&got[0], "error.type").as_deref(), Some("panic"));
    assert_eq!(got[0].events.events[0].name, "exception");
}

/// `GET /big`: a streamed body of three chunks (no length announced), traced by `p`.
fn big_stream_app(p: SpanPipeline) -> Router {
    Router::new()
        .route(
            "/big",
            get(|| async {
                let stream = futures_util::stream::iter(
                    (0..3).map(|_| Ok::<_, Infallible>(Bytes::from_static(b"chunk"))),
                );
                Body::from_stream(stream)
            }),
        )
        .layer(TraceLayer::new(p))
}

#[tokio::test]
async fn a_client_hang_up_is_recorded_but_not_an_error() {
    let (p, spans) = pipeline(Sampling::always());
    let app = big_stream_app(p);
    let res = app.oneshot(get_req("/big")).await.unwrap();
    let mut body = res.into_body();
    let _ = body.frame().await;
    drop(body);
    let got = spans.spans();
    assert_eq!(got.len(), 1);
    assert_eq!(
        attr(&got[0], "telltale.client_disconnected").as_deref(),
        Some("true")
    );
    assert_eq!(got[0].status, Status::Unset);
}

/// A HEAD answer's body is never sent (axum drops it unpolled): that is its normal end,
/// not a hang-up. (A body dropped at its announced length: `telltale_core::body` tests.)
#[tokio::test]
async fn a_head_answer_is_not_a_hang_up() {
    let (p, spans) = pipeline(Sampling::always());
    let app = big_stream_app(p);
    let head = Request::head("/big").body(Body::empty()).unwrap();
    let res = app.clone().oneshot(head).await.unwrap();
    assert!(res.into_body().collect().await.unwrap().to_bytes().is_empty());
    let got = spans.spans();
    assert_eq!(got.len(), 1);
    assert_eq!(attr(&got[0], "telltale.client_disconnected"), None);
    assert_eq!(got[0].status, Status::Unset);
}

#[tokio::test]
async fn query_is_redacted_when_opted_in_and_traceresponse_is_sent() {
    let (p, spans) = pipeline(Sampling::always());
    let app = Router::new()
        .route("/search", get(|| async { "ok" }))
        .layer(TraceLayer::new(p).with_query(true).with_traceresponse(true));
    let mut req = get_req("/search?q=shoes&api_key=abc&password=hunter2");
    req.headers_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    let res = app.oneshot(req).await.unwrap();
    let tr = res.headers()["traceresponse"].to_str().unwrap().to_owned();
    let _ = res.into_body().collect().await.unwrap();
    let got = spans.spans();
    assert_eq!(
        attr(&got[0], "url.query").as_deref(),
        Some("q=shoes&api_key=REDACTED&password=REDACTED")
    );
    assert_eq!(
        tr,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            got[0].span_context.span_id()
        )
    );
}

#[tokio::test]
async fn not_sampled_without_tail_rules_exports_nothing_but_propagates() {
    let (p, spans) = pipeline(Sampling::never());
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TraceLayer::new(p.clone()).with_traceresponse(true));
    let res = app.oneshot(get_req("/")).await.unwrap();
    let tr = res.headers()["traceresponse"].to_str().unwrap().to_owned();
    assert!(tr.ends_with("-02"), "root: random flag set, not sampled: {tr}");
    let _ = res.into_body().collect().await.unwrap();
    assert!(spans.spans().is_empty());
}

/// A tiny `tracing` layer standing in for telltale-log: for every event, the innermost
/// `TraceIds` in the event's span scope.
type Seen = Vec<(String, Option<TraceIds>)>;

#[derive(Clone, Default)]
struct SeenIds(Arc<Mutex<Seen>>);

impl<S> tracing_subscriber::Layer<S> for SeenIds
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let ids = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<TraceIds>().copied())
        });
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().target().to_owned(), ids));
    }
}

#[tokio::test]
async fn log_lines_inside_a_traced_request_carry_its_trace_id() {
    let seen = SeenIds::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let (p, spans) = pipeline(Sampling::always());
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                tokio::task::yield_now().await;
                tracing::info!(target: "handler", "inside the handler");
                "ok"
            }),
        )
        .layer(TraceLayer::new(p));
    let mut req = get_req("/");
    req.extensions_mut()
        .insert(telltale_core::RequestId::parse("req-1").unwrap());
    let res = app.oneshot(req).await.unwrap();
    let _ = res.into_body().collect().await.unwrap();
    let span = &spans.spans()[0];
    let logged = seen.0.lock().unwrap().clone();
    let (_, ids) = logged
        .iter()
        .find(|(t, _)| t == "handler")
        .expect("handler logged");
    let ids = ids.expect("the log line sees TraceIds");
    assert_eq!(
        ids.trace_id,
        u128::from_be_bytes(span.span_context.trace_id().to_bytes())
    );
    assert_eq!(
        ids.span_id,
        u64::from_be_bytes(span.span_context.span_id().to_bytes())
    );
    assert_eq!(attr(span, "request_id").as_deref(), Some("req-1"));
}

#[tokio::test]
async fn bridged_tracing_spans_are_children_of_the_server_span_and_carry_their_ids() {
    use tracing::Instrument;
    let (p, spans) = pipeline(Sampling::always());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_sampler(p.sampler())
        .with_span_processor(p.processor())
        .build();
    let seen = SeenIds::default();
    let subscriber = tracing_subscriber::registry()
        .with(telltale_trace::bridge::bridge_layer(&provider))
        .with(seen.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                async { tracing::info!(target: "inner", "loading") }
                    .instrument(tracing::info_span!("load_order"))
                    .await;
                "ok"
            }),
        )
        .layer(TraceLayer::new(p));
    let res = app.oneshot(get_req("/")).await.unwrap();
    let _ = res.into_body().collect().await.unwrap();
    let got = spans.spans();
    let server = got.iter().find(|s| s.name == "GET /").expect("server span");
    let inner = got.iter().find(|s| s.name == "load_order").expect("bridged span");
    assert_eq!(got.len(), 2, "the request span is not bridged a second time");
    assert_eq!(inner.span_context.trace_id(), server.span_context.trace_id());
    assert_eq!(inner.parent_span_id, server.span_context.span_id());
    let logged = seen.0.lock().unwrap().clone();
    let (_, ids) = logged.iter().find(|(t, _)| t == "inner").unwrap();
    assert_eq!(
        ids.unwrap().span_id,
        u64::from_be_bytes(inner.span_context.span_id().to_bytes())
    );
}

fn grpc_response(code: &'static str) -> http::Response<Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", code.parse().unwrap());
    let frames = vec![
        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )));
    http::Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn a_grpc_error_inside_an_http_200_is_an_error() {
    let (p, spans) = pipeline(Sampling::always());
    let svc = tower::Layer::layer(
        &TraceLayer::grpc(p),
        tower::service_fn(|_req: Request<Body>| async { Ok::<_, Infallible>(grpc_response("13")) }),
    );
    let req = Request::post("/orders.v1.Orders/Get")
        .body(Body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.into_body().collect().await.unwrap();
    let got = spans.spans();
    assert_eq!(got[0].name, "orders.v1.Orders/Get");
    assert_eq!(attr(&got[0], "rpc.grpc.status_code").as_deref(), Some("13"));
    assert_eq!(attr(&got[0], "error.type").as_deref(), Some("INTERNAL"));
    assert!(matches!(got[0].status, Status::Error { .. }));
}

#[tokio::test]
async fn grpc_not_found_is_not_a_server_error_but_is_a_client_error() {
    let (p, spans) = pipeline(Sampling::always());
    let server = tower::Layer::layer(
        &TraceLayer::grpc(p.clone()),
        tower::service_fn(|_req: Request<Body>| async { Ok::<_, Infallible>(grpc_response("5")) }),
    );
    let client = tower::Layer::layer(&telltale_trace::ClientTraceLayer::grpc(p), server);
    let req = Request::post("http://inv:50051/inv.Stock/Get")
        .body(Body::empty())
        .unwrap();
    let res = client.oneshot(req).await.unwrap();
    let ids = *res
        .extensions()
        .get::<telltale_core::trace_ids::TraceIds>()
        .expect("the response names its call's trace");
    let _ = res.into_body().collect().await.unwrap();
    let got = spans.spans();
    let server = got
        .iter()
        .find(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
        .unwrap();
    let client = got
        .iter()
        .find(|s| s.span_kind == opentelemetry::trace::SpanKind::Client)
        .unwrap();
    assert_eq!(
        (ids.trace_id, ids.span_id, ids.sampled),
        (
            u128::from_be_bytes(client.span_context.trace_id().to_bytes()),
            u64::from_be_bytes(client.span_context.span_id().to_bytes()),
            true
        )
    );
    assert_eq!(server.status, Status::Unset);
    assert_eq!(attr(client, "error.type").as_deref(), Some("NOT_FOUND"));
    assert_eq!(
        server.parent_span_id,
        client.span_context.span_id(),
        "injected client span is the parent"
    );
    assert_eq!(attr(client, "server.port").as_deref(), Some("50051"));
}

#[tokio::test]
async fn http_client_layer_injects_its_span_and_counts_4xx_as_errors() {
    let (p, spans) = pipeline(Sampling::always());
    let echo = tower::service_fn(|req: Request<Body>| async move {
        let tp = req.headers().get("traceparent").cloned();
        let mut res = http::Response::new(Body::empty());
        *res.status_mut() = StatusCode::NOT_FOUND;
        if let Some(tp) = tp {
            res.headers_mut().insert("x-seen-traceparent", tp);
        }
        Ok::<_, Infallible>(res)
    });
    let client = tower::Layer::layer(
        &telltale_trace::ClientTraceLayer::new(p).dependency("inventory"),
        echo,
    );
    let req = Request::get("http://inventory.local/items/1?token=t")
        .body(Body::empty())
        .unwrap();
    let res = client.oneshot(req).await.unwrap();
    let seen = res.headers()["x-seen-traceparent"].to_str().unwrap().to_owned();
    let _ = res.into_body().collect().await.unwrap();
    let got = spans.spans();
    assert_eq!(got.len(), 1);
    let span = &got[0];
    assert_eq!(span.name, "GET");
    assert_eq!(
        seen,
        format!(
            "00-{}-{}-03",
            span.span_context.trace_id(),
            span.span_context.span_id()
        )
    );
    assert_eq!(attr(span, "peer.service").as_deref(), Some("inventory"));
    assert_eq!(attr(span, "error.type").as_deref(), Some("404"));
    assert_eq!(
        attr(span, "url.full").as_deref(),
        Some("http://inventory.local/items/1?token=REDACTED")
    );
    assert_eq!(attr(span, "server.port").as_deref(), Some("80"));
}

#[tokio::test]
async fn incoming_baggage_reaches_outgoing_calls_made_in_the_handler() {
    let sent = outgoing_header(Sampling::always(), &[("baggage", "tenant=acme")], "baggage").await;
    assert_eq!(sent, "tenant=acme");
}

/// A 14-character tracestate system id is valid, but OpenTelemetry 0.33's `TraceState`
/// refuses it: it must still reach the calls made for the request, in its place, on both
/// extraction paths (with and without `baggage`).
#[tokio::test]
async fn tracestate_with_a_14_character_system_id_reaches_outgoing_calls() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let state = "rojo=1,acme@abcdefghijklmn=2,congo=3";
    for sampling in [Sampling::always(), Sampling::never()] {
        for baggage in [None, Some("a=1")] {
            let mut headers = vec![("traceparent", tp), ("tracestate", state)];
            headers.extend(baggage.map(|b| ("baggage", b)));
            let sent = outgoing_header(sampling.clone(), &headers, "tracestate").await;
            assert_eq!(sent, state, "baggage {baggage:?}");
        }
    }
}

/// The `echo` header (empty when absent) of an outgoing call made in the handler through
/// `ClientTraceLayer`, for a request with `headers`.
async fn outgoing_header(sampling: Sampling, headers: &[(&str, &str)], echo: &'static str) -> String {
    let (p, _spans) = pipeline(sampling);
    let client_layer = telltale_trace::ClientTraceLayer::new(p.clone());
    let app = Router::new()
        .route(
            "/",
            get(move || {
                let client_layer = client_layer.clone();
                async move {
                    let echo = tower::service_fn(move |req: Request<Body>| async move {
                        let v = req.headers().get(echo).map(|v| v.to_str().unwrap().to_owned());
                        Ok::<_, Infallible>(http::Response::new(Body::from(v.unwrap_or_default())))
                    });
                    let client = tower::Layer::layer(&client_layer, echo);
                    let res = client
                        .oneshot(Request::get("http://dep/").body(Body::empty()).unwrap())
                        .await
                        .unwrap();
                    let body = res.into_body().collect().await.unwrap().to_bytes();
                    String::from_utf8(body.to_vec()).unwrap()
                }
            }),
        )
        .layer(TraceLayer::new(p));
    let mut req = get_req("/");
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        req.headers_mut().append(name, value.parse().unwrap());
    }
    let res = app.oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Trace Context Level 2: the `random` flag claims the trace id's right-most 7 bytes are
/// random. A caller that did not set it made no such claim, so calls made for its
/// request must not set it either, with or without a `baggage` header; a caller that
/// set it keeps it.
#[tokio::test]
async fn outgoing_calls_keep_the_callers_random_flag_as_it_was() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let from = |flags: &str| format!("00-{TRACE}-00f067aa0ba902b7-{flags}");
    for (sampling, sent, want) in [
        (Sampling::always(), "01", "01"),
        (Sampling::never(), "00", "00"),
        (Sampling::always(), "03", "03"),
        (Sampling::never(), "02", "02"),
    ] {
        for baggage in [None, Some("a=1")] {
            let tp = from(sent);
            let mut headers = vec![("traceparent", tp.as_str())];
            headers.extend(baggage.map(|b| ("baggage", b)));
            let out = outgoing_header(sampling.clone(), &headers, "traceparent").await;
            assert!(out.starts_with(&format!("00-{TRACE}-")), "{out}");
            assert!(
                out.ends_with(&format!("-{want}")),
                "sent {sent}, baggage {baggage:?}: {out}"
            );
        }
    }
}

#[tokio::test]
async fn tail_rules_keep_a_failed_request_with_its_client_spans_and_drop_a_good_one() {
    let (p, spans) = pipeline(Sampling::never().keep_errors());
    let client_layer = telltale_trace::ClientTraceLayer::new(p.clone()).dependency("dep");
    let handler = move |status: StatusCode| {
        let client_layer = client_layer.clone();
        async move {
            let ok = tower::service_fn(|_req: Request<Body>| async {
                Ok::<_, Infallible>(http::Response::new(Body::empty()))
            });
            let client = tower::Layer::layer(&client_layer, ok);
            let res = client
                .oneshot(Request::get("http://dep/x").body(Body::empty()).unwrap())
                .await
                .unwrap();
            let _ = res.into_body().collect().await.unwrap();
            status
        }
    };
    let (h1, h2) = (handler.clone(), handler);
    let app = Router::new()
        .route("/fail", get(move || h1(StatusCode::INTERNAL_SERVER_ERROR)))
        .route("/ok", get(move || h2(StatusCode::OK)))
        .layer(TraceLayer::new(p.clone()));
    for uri in ["/ok", "/fail", "/ok"] {
        let res = app.clone().oneshot(get_req(uri)).await.unwrap();
        let _ = res.into_body().collect().await.unwrap();
    }
    let got = spans.spans();
    let names: Vec<_> = got.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(
        names,
        ["GET", "GET /fail"],
        "held client span first, then its root"
    );
    assert_eq!(got[0].parent_span_id, got[1].span_context.span_id());
    assert!(got.iter().all(|s| s.span_context.is_sampled()));
    let stats = p.stats();
    assert_eq!(
        (stats.kept_traces, stats.dropped_traces, stats.held_traces),
        (1, 2, 0)
    );
}

#[tokio::test]
async fn a_request_dropped_before_its_response_is_recorded_as_disconnected() {
    let (p, spans) = pipeline(Sampling::always());
    let app = Router::new()
        .route("/slow", get(std::future::pending::<&'static str>))
        .layer(TraceLayer::new(p));
    let mut fut = Box::pin(app.oneshot(get_req("/slow")));
    assert!(futures_util::poll!(&mut fut).is_pending());
    drop(fut);
    let got = spans.spans();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "GET /slow");
    assert_eq!(
        attr(&got[0], "telltale.client_disconnected").as_deref(),
        Some("true")
    );
    assert_eq!(got[0].status, Status::Unset, "a hang-up is not a server error");
}

#[tokio::test]
async fn inner_layers_read_the_server_span_ids_while_it_calls_them() {
    use telltale_core::trace_ids;

    let (p, spans) = pipeline(Sampling::always());
    let seen = Arc::new(Mutex::new(None));
    let inner = {
        let seen = seen.clone();
        tower::service_fn(move |_req: Request<Body>| {
            // What the RED metrics layer reads for its exemplar, in its `call`.
            *seen.lock().unwrap() = Some(trace_ids::in_call());
            async { Ok::<_, Infallible>(http::Response::new(Body::from("ok"))) }
        })
    };
    let svc = tower::Layer::layer(&TraceLayer::new(p), inner);
    let req = Request::get("/")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();

    let got = seen.lock().unwrap().take().expect("inner service called");
    let got = got.expect("the ids are set during the inner call");
    let span = spans.spans().pop().expect("the server span was exported");
    assert_eq!(
        got,
        TraceIds::new(
            0x4bf92f3577b34da6a3ce929d0e0e4736,
            u64::from_be_bytes(span.span_context.span_id().to_bytes()),
            true
        )
    );
    assert_ne!(
        got.span_id, 0x00f067aa0ba902b7,
        "the server span's id, not the caller's"
    );
    // Only during the call.
    assert_eq!(trace_ids::in_call(), None);
}
