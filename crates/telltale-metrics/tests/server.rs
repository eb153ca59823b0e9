//! Server RED layer behaviour, recorded into a real (non-global) Prometheus recorder.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{any, get};
use bytes::Bytes;
use common::{eventually, sample, series, serve};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use telltale_metrics::names::{Scheme, labels as l, legacy, otel};
use telltale_metrics::{MetricsLayer, Prometheus, PrometheusConfig, metrics_router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const DUR: &str = "http_server_request_duration_seconds_count";

fn prom() -> Prometheus {
    PrometheusConfig::new("test-svc")
        .environment("test")
        .version("1.2.3")
        .commit("abc123")
        .build()
        .unwrap()
}

fn app(prom: &Prometheus, scheme: Scheme) -> Router {
    let layer = MetricsLayer::builder()
        .scheme(scheme)
        .recorder(prom.recorder())
        .body_sizes(true)
        .build()
        .unwrap();
    Router::new()
        .route(
            "/orders/{id}",
            get(|| async { "order" }).post(|| async { StatusCode::CREATED }),
        )
        .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/bad", get(|| async { StatusCode::BAD_REQUEST }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/stream", get(stream_handler))
        .route("/download", get(download_handler))
        .route("/any", any(|| async { "any" }))
        // axum layers only what exists when `.layer` is called: the fallback too.
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(layer)
        .merge(metrics_router(prom.handle()))
}

async fn stream_handler() -> Body {
    let chunks =
        futures_util::stream::repeat_with(|| Ok::<_, std::io::Error>(Bytes::from_static(&[b'x'; 16 * 1024])));
    Body::from_stream(chunks)
}

/// A stream with a `Content-Length`, as tower-http's `ServeDir` answers: over HTTP/1.1
/// hyper stops polling once 10 bytes are written and drops the body unfinished.
async fn download_handler() -> impl axum::response::IntoResponse {
    let chunks = futures_util::stream::iter([
        Ok::<_, std::io::Error>(Bytes::from_static(b"hello")),
        Ok(Bytes::from_static(b"world")),
    ]);
    ([(http::header::CONTENT_LENGTH, "10")], Body::from_stream(chunks))
}

async fn call(app: &Router, method: &str, uri: &str) -> (StatusCode, Bytes) {
    let res = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .header("host", "evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn otel_labels_are_pinned_and_errors_are_5xx_only() {
    let prom = prom();
    let app = app(&prom, Scheme::OpenTelemetry);
    call(&app, "GET", "/orders/1").await;
    call(&app, "GET", "/orders/2").await;
    call(&app, "POST", "/orders/3").await;
    call(&app, "GET", "/fail").await;
    call(&app, "GET", "/bad").await;
    let text = prom.handle().render();

    // Exact label sets: global labels, then method, route, status[, error_type].
    let ok = series(&text, DUR);
    assert!(ok.contains(&r#"service="test-svc",environment="test",version="1.2.3",http_request_method="GET",http_route="/orders/{id}",http_response_status_code="200""#), "{text}");
    assert!(ok.contains(&r#"service="test-svc",environment="test",version="1.2.3",http_request_method="GET",http_route="/fail",http_response_status_code="503",error_type="503""#), "{text}");
    assert!(ok.contains(&r#"service="test-svc",environment="test",version="1.2.3",http_request_method="GET",http_route="/bad",http_response_status_code="400""#), "{text}");
    assert_eq!(
        sample(
            &text,
            DUR,
            &[(l::HTTP_ROUTE, "/orders/{id}"), (l::HTTP_REQUEST_METHOD, "GET")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            DUR,
            &[
                (l::HTTP_REQUEST_METHOD, "POST"),
                (l::HTTP_RESPONSE_STATUS_CODE, "201")
            ]
        ),
        Some(1.0)
    );
    // A real bucketed histogram, with the OpenTelemetry buckets.
    assert!(
        text.contains(r#"le="0.005""#) && text.contains(r#"le="10""#) && text.contains(r#"le="+Inf""#),
        "{text}"
    );
    // Body sizes: "order" is 5 bytes.
    assert_eq!(
        sample(
            &text,
            "http_server_response_body_size_bytes_sum",
            &[(l::HTTP_REQUEST_METHOD, "GET"), (l::HTTP_ROUTE, "/orders/{id}")]
        ),
        Some(10.0)
    );
    // The client-supplied Host never becomes a label; the in-flight gauge is back to 0.
    assert!(!text.contains("evil.example"), "{text}");
    assert_eq!(sample(&text, otel::HTTP_SERVER_ACTIVE_REQUESTS, &[]), Some(0.0));
    assert!(
        text.contains(
            r#"build_info{service="test-svc",environment="test",version="1.2.3",commit="abc123"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn legacy_scheme_uses_method_route_status() {
    let prom = prom();
    let app = app(&prom, Scheme::Legacy);
    call(&app, "GET", "/orders/1").await;
    call(&app, "GET", "/fail").await;
    let text = prom.handle().render();
    assert_eq!(
        sample(
            &text,
            legacy::HTTP_REQUESTS_TOTAL,
            &[("method", "GET"), ("route", "/orders/{id}"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/fail"), ("status", "503")]
        ),
        Some(1.0)
    );
    assert!(!text.contains("error_type"), "{text}");
    assert_eq!(sample(&text, legacy::HTTP_REQUESTS_IN_FLIGHT, &[]), Some(0.0));
}

#[tokio::test]
async fn excluded_paths_unmatched_routes_and_odd_methods() {
    let prom = prom();
    let app = app(&prom, Scheme::OpenTelemetry);
    call(&app, "GET", "/healthz").await;
    call(&app, "GET", "/metrics").await;
    call(&app, "GET", "/no/such/path/123").await;
    call(&app, "PURGE", "/any").await;
    let text = prom.handle().render();
    assert!(
        !text.contains("/healthz") && !text.contains(r#"http_route="/metrics""#),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            DUR,
            &[
                (l::HTTP_ROUTE, "unmatched"),
                (l::HTTP_RESPONSE_STATUS_CODE, "404")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            DUR,
            &[(l::HTTP_ROUTE, "/any"), (l::HTTP_REQUEST_METHOD, "_OTHER")]
        ),
        Some(1.0)
    );
    assert!(!text.contains("/no/such"), "{text}");
}

#[tokio::test]
async fn duration_runs_to_the_end_of_the_body() {
    let prom = prom();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let layer = MetricsLayer::builder().recorder(prom.recorder()).build().unwrap();
    let app = Router::new()
        .route(
            "/sse",
            get(move || {
                let rx = rx.lock().unwrap().take().unwrap();
                async move {
                    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|item| (item, rx))
                    }))
                }
            }),
        )
        .layer(layer);
    let res = app
        .oneshot(Request::get("/sse").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The handler returned, but the body is still streaming: not recorded yet, in flight.
    let text = prom.handle().render();
    assert_eq!(sample(&text, DUR, &[]), None, "{text}");
    assert_eq!(sample(&text, otel::HTTP_SERVER_ACTIVE_REQUESTS, &[]), Some(1.0));
    tx.send(Ok(Bytes::from_static(b"event"))).await.unwrap();
    drop(tx);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "event");
    let text = prom.handle().render();
    assert_eq!(
        sample(
            &text,
            DUR,
            &[(l::HTTP_ROUTE, "/sse"), (l::HTTP_RESPONSE_STATUS_CODE, "200")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, otel::HTTP_SERVER_ACTIVE_REQUESTS, &[]), Some(0.0));
}

#[tokio::test]
async fn a_dropped_response_future_counts_once_as_499() {
    let prom = prom();
    let layer = MetricsLayer::builder().recorder(prom.recorder()).build().unwrap();
    let app = Router::new()
        .route("/hang", get(std::future::pending::<&'static str>))
        .layer(layer);
    let fut = app.oneshot(Request::get("/hang").body(Body::empty()).unwrap());
    // Poll once so the request is in flight, then give up as a client would.
    let timed_out = tokio::time::timeout(Duration::from_millis(10), fut).await;
    assert!(timed_out.is_err());
    let text = prom.handle().render();
    assert_eq!(
        sample(
            &text,
            DUR,
            &[(l::HTTP_ROUTE, "/hang"), (l::HTTP_RESPONSE_STATUS_CODE, "499")]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("error_type"), "499 is not a server error: {text}");
    assert_eq!(sample(&text, otel::HTTP_SERVER_ACTIVE_REQUESTS, &[]), Some(0.0));
}

#[tokio::test]
async fn head_and_no_content_bodies_are_not_hang_ups() {
    let prom = prom();
    let app = app(&prom, Scheme::OpenTelemetry);
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let res = client
        .head(format!("http://{addr}/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let handle = prom.handle();
    let text = eventually(Duration::from_secs(10), "HEAD recorded", || {
        let t = handle.render();
        async move { sample(&t, DUR, &[(l::HTTP_REQUEST_METHOD, "HEAD")]).map(|_| t) }
    })
    .await;
    assert_eq!(
        sample(
            &text,
            DUR,
            &[
                (l::HTTP_REQUEST_METHOD, "HEAD"),
                (l::HTTP_RESPONSE_STATUS_CODE, "200")
            ]
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_hanging_up_mid_body_over_tcp_is_counted_once_as_499() {
    let prom = prom();
    let addr = serve(app(&prom, Scheme::OpenTelemetry)).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(
        std::str::from_utf8(&buf[..n])
            .unwrap_or("")
            .starts_with("HTTP/1.1 200")
    );
    drop(tcp);
    let text = one_hang_up_on_stream(&prom).await;
    assert_eq!(
        sample(
            &text,
            DUR,
            &[(l::HTTP_ROUTE, "/stream"), (l::HTTP_RESPONSE_STATUS_CODE, "200")]
        ),
        None,
        "{text}"
    );
    assert_eq!(sample(&text, otel::HTTP_SERVER_ACTIVE_REQUESTS, &[]), Some(0.0));
}

/// A handler that panics under a lone `MetricsLayer` is a 500 with `error_type="panic"`,
/// not a client hang-up (499): its future is dropped in the middle of a poll.
#[tokio::test]
async fn a_handler_panic_is_a_500_panic_not_a_hang_up() {
    let prom = prom();
    let layer = MetricsLayer::builder().recorder(prom.recorder()).build().unwrap();
    let app: Router = Router::new()
        .route(
            "/boom",
            get(|| async {
                panic!("boom");
                #[allow(unreachable_code)]
                StatusCode::OK
            }),
        )
        .layer(layer);
    let req = http::Request::get("/boom").body(Body::empty()).unwrap();
    let run = tokio::spawn(async move { app.oneshot(req).await });
    assert!(run.await.unwrap_err().is_panic());
    let text = prom.handle().render();
    let boom = |status, error: Option<&'static str>| {
        let mut labels = vec![(l::HTTP_ROUTE, "/boom"), (l::HTTP_RESPONSE_STATUS_CODE, status)];
        labels.extend(error.map(|e| (l::ERROR_TYPE, e)));
        sample(&text, DUR, &labels)
    };
    assert_eq!(boom("500", Some("panic")), Some(1.0), "{text}");
    assert_eq!(boom("499", None), None, "{text}");
    assert_eq!(sample(&text, otel::HTTP_SERVER_ACTIVE_REQUESTS, &[]), Some(0.0));
}

/// A panic that a catch-panic layer inside turns into a 500 marked with `HandlerPanic`
/// (as telltale-resilience's server protection does) is `error_type="panic"`, not `500`.
#[tokio::test]
async fn a_panic_caught_inside_and_marked_is_labelled_panic() {
    use telltale_core::outcome::HandlerPanic;
    use tower_http::catch_panic::CatchPanicLayer;

    let prom = prom();
    let layer = MetricsLayer::builder().recorder(prom.recorder()).build().unwrap();
    let catch_panic = CatchPanicLayer::custom(|_payload: Box<dyn std::any::Any + Send>| {
        let mut res = http::Response::new(http_body_util::Full::new(Bytes::from_static(b"oops")));
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        res.extensions_mut().insert(HandlerPanic("boom".into()));
        res
    });
    let app: Router = Router::new()
        .route(
            "/boom",
            get(|| async {
                panic!("boom");
                #[allow(unreachable_code)]
                StatusCode::OK
            }),
        )
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .layer(catch_panic)
        .layer(layer);
    assert_eq!(
        call(&app, "GET", "/boom").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        call(&app, "GET", "/fail").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let text = prom.handle().render();
    let route = |route, error| {
        sample(
            &text,
            DUR,
            &[
                (l::HTTP_ROUTE, route),
                (l::HTTP_RESPONSE_STATUS_CODE, "500"),
                (l::ERROR_TYPE, error),
            ],
        )
    };
    assert_eq!(route("/boom", "panic"), Some(1.0), "{text}");
    assert_eq!(route("/boom", "500"), None, "{text}");
    // An ordinary 500 stays a 500.
    assert_eq!(route("/fail", "500"), Some(1.0), "{text}");
}

fn nested_app(prom: &Prometheus, layer: MetricsLayer) -> Router {
    let files = tower::service_fn(|req: Request<Body>| async move {
        let path = req.uri().path().to_owned();
        Ok::<_, std::convert::Infallible>(axum::response::Response::new(Body::from(path)))
    });
    let _ = prom;
    Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .nest(
            "/api",
            Router::new().route("/users/{id}", get(|| async { "user" })),
        )
        .nest_service("/files", files)
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(layer)
}

fn routes(text: &str) -> Vec<String> {
    let mut v: Vec<String> = series(text, DUR)
        .into_iter()
        .filter_map(|s| {
            common::split_labels(s)
                .find(|(k, _)| *k == l::HTTP_ROUTE)
                .map(|(_, v)| v.to_owned())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `nest` keeps the full template; below a `nest_service` prefix axum sets no
/// `MatchedPath`, so those requests are `unmatched` (never the raw path)...
#[tokio::test]
async fn nested_router_keeps_its_template_and_nest_service_is_unmatched_by_default() {
    let prom = prom();
    let layer = MetricsLayer::builder().recorder(prom.recorder()).build().unwrap();
    let app = nested_app(&prom, layer);
    assert_eq!(call(&app, "GET", "/api/users/7").await.0, StatusCode::OK);
    let (status, body) = call(&app, "GET", "/files/css/site.css").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"/css/site.css"[..]));
    call(&app, "GET", "/files").await;
    call(&app, "GET", "/nope").await;
    let text = prom.handle().render();
    assert_eq!(
        routes(&text),
        ["/api/users/{id}", "/files", "unmatched"],
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            DUR,
            &[
                (l::HTTP_ROUTE, "unmatched"),
                (l::HTTP_RESPONSE_STATUS_CODE, "200")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("site.css"), "{text}");
}

/// ...unless the prefix is declared: then they get `{prefix}/{*rest}`, and 404s stay
/// `unmatched`.
#[tokio::test]
async fn a_declared_nested_service_is_labelled_by_its_prefix() {
    let prom = prom();
    let layer = MetricsLayer::builder()
        .recorder(prom.recorder())
        .nested_service("/files/")
        .build()
        .unwrap();
    let app = nested_app(&prom, layer);
    for path in ["/files/css/site.css", "/files/js/app.js", "/files/"] {
        assert_eq!(call(&app, "GET", path).await.0, StatusCode::OK, "{path}");
    }
    call(&app, "GET", "/filesystem").await;
    call(&app, "GET", "/api/users/7").await;
    let text = prom.handle().render();
    assert_eq!(
        routes(&text),
        ["/api/users/{id}", "/files/", "/files/{*rest}", "unmatched"],
        "{text}"
    );
    assert_eq!(
        sample(&text, DUR, &[(l::HTTP_ROUTE, "/files/{*rest}")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            DUR,
            &[
                (l::HTTP_ROUTE, "unmatched"),
                (l::HTTP_RESPONSE_STATUS_CODE, "404")
            ]
        ),
        Some(1.0),
        "{text}"
    );
}

/// A download whose `Content-Length` was all sent is a 200, not a client hang-up (499).
#[tokio::test]
async fn a_streamed_download_with_a_content_length_is_complete_not_abandoned() {
    let prom = prom();
    let addr = serve(app(&prom, Scheme::OpenTelemetry)).await;
    let res = reqwest::get(format!("http://{addr}/download")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(&res.bytes().await.unwrap()[..], b"helloworld");
    let route = |status| {
        [
            (l::HTTP_ROUTE, "/download"),
            (l::HTTP_RESPONSE_STATUS_CODE, status),
        ]
    };
    let text = eventually(Duration::from_secs(5), "the download recorded", || {
        let text = prom.handle().render();
        let done = sample(&text, DUR, &route("200")).is_some() || sample(&text, DUR, &route("499")).is_some();
        async move { done.then_some(text) }
    })
    .await;
    assert_eq!(sample(&text, DUR, &route("200")), Some(1.0), "{text}");
    assert_eq!(sample(&text, DUR, &route("499")), None, "{text}");
}

#[tokio::test]
async fn metrics_router_serves_text_format() {
    let prom = prom();
    let addr = serve(app(&prom, Scheme::OpenTelemetry)).await;
    let res = reqwest::get(format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(res.text().await.unwrap().contains("build_info"));
}

#[test]
fn nonsense_nested_service_prefixes_are_an_error() {
    for bad in ["files", "/", "/{tenant}/files", "/files/{*rest}"] {
        let err = MetricsLayer::builder().nested_service(bad).build().unwrap_err();
        assert!(
            err.to_string().contains("nested service prefix"),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn nonsense_configuration_is_an_error() {
    assert!(MetricsLayer::builder().max_label_sets(1).build().is_err());
    let e = MetricsLayer::builder()
        .exclude_path("healthz")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("start with '/'"), "{e}");
    assert!(PrometheusConfig::new("").build().is_err());
    assert!(
        PrometheusConfig::new("s")
            .duration_buckets(&[1.0, 0.5])
            .build()
            .is_err()
    );
    assert!(PrometheusConfig::new("s").size_buckets(&[]).build().is_err());
}

/// A Prometheus recorder with exemplars on, and a metrics layer recording into it.
fn exemplar_layer() -> (Prometheus, MetricsLayer) {
    let prom = PrometheusConfig::new("svc").exemplars(true).build().unwrap();
    let layer = MetricsLayer::builder()
        .recorder(prom.recorder())
        .exemplars(prom.handle().exemplars().unwrap())
        .build()
        .unwrap();
    (prom, layer)
}

#[tokio::test]
async fn exemplar_trace_id_comes_from_the_current_span_when_sampled() {
    use telltale_core::trace_ids::TraceIds;
    use tracing::Instrument;
    use tracing_subscriber::registry::LookupSpan;

    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let (prom, layer) = exemplar_layer();
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
        .layer(layer);
    // What telltale-trace does: TraceIds in the server span's extensions.
    let span_with = |ids: TraceIds| {
        let span = tracing::info_span!("request");
        span.with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>().unwrap();
            registry.span(id).unwrap().extensions_mut().insert(ids);
        });
        span
    };
    for (path, ids) in [
        ("/a", TraceIds::new(0xaaaa, 0x1, true)),
        ("/b", TraceIds::new(0xbbbb, 0x2, false)),
    ] {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .instrument(span_with(ids))
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
    let om = prom.handle().render_openmetrics();
    assert!(
        om.contains("trace_id=\"0000000000000000000000000000aaaa\""),
        "{om}"
    );
    // Unsampled traces are not exported, so they make no exemplar.
    assert!(!om.contains("bbbb"), "{om}");
}

/// Stands in for telltale-trace's server layer: sets the ids of "its span" (sampled for
/// `/c`, not for `/d`) while it calls the service inside it.
#[derive(Clone)]
struct CallingIds<S>(S);

impl<S: tower::Service<Request<Body>>> tower::Service<Request<Body>> for CallingIds<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, req: Request<Body>) -> S::Future {
        use telltale_core::trace_ids::{self, TraceIds};
        let ids = match req.uri().path() {
            "/c" => TraceIds::new(0xcccc, 0x3, true),
            _ => TraceIds::new(0xdddd, 0x4, false),
        };
        let _call = trace_ids::calling(ids);
        self.0.call(req)
    }
}

#[tokio::test]
async fn exemplar_trace_id_comes_from_the_server_span_being_called() {
    // No `tracing` span at all: only what telltale-trace's layer sets around its inner
    // call (the fast path; the span lookup above is the fallback).
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let (prom, layer) = exemplar_layer();
    let app = Router::new()
        .route("/c", get(|| async { "c" }))
        .route("/d", get(|| async { "d" }))
        // One `Router::layer`, as `server_layer()` is: axum defers the `call` of what an
        // earlier `Router::layer` wrapped to the first poll.
        .layer(
            tower::ServiceBuilder::new()
                .layer(tower::layer::layer_fn(CallingIds))
                .layer(layer),
        );
    for path in ["/c", "/d"] {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
    let om = prom.handle().render_openmetrics();
    assert!(
        om.contains("trace_id=\"0000000000000000000000000000cccc\",span_id=\"0000000000000003\""),
        "{om}"
    );
    assert!(!om.contains("dddd"), "{om}");
}

#[tokio::test]
async fn an_http2_stream_reset_mid_body_is_counted_once_as_499() {
    let prom = prom();
    let addr = serve(app(&prom, Scheme::OpenTelemetry)).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut res = h2.get(format!("http://{addr}/stream")).send().await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert!(res.chunk().await.unwrap().is_some());
    // Dropping the response resets the stream; the connection stays up.
    drop(res);
    let text = one_hang_up_on_stream(&prom).await;
    assert_eq!(sample(&text, otel::HTTP_SERVER_ACTIVE_REQUESTS, &[]), Some(0.0));
    // The same connection still serves requests, measured normally.
    h2.get(format!("http://{addr}/orders/1"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let handle = prom.handle();
    let text = eventually(Duration::from_secs(10), "200 recorded", || {
        let t = handle.render();
        async move { sample(&t, DUR, &[(l::HTTP_RESPONSE_STATUS_CODE, "200")]).map(|_| t) }
    })
    .await;
    assert_eq!(
        sample(&text, DUR, &[(l::HTTP_ROUTE, "/orders/{id}")]),
        Some(1.0),
        "{text}"
    );
}

/// Waits (bounded) for the hung-up `/stream` request to be recorded and checks it was
/// counted exactly once, as a 499; returns the scrape.
async fn one_hang_up_on_stream(prom: &Prometheus) -> String {
    let handle = prom.handle();
    let text = eventually(Duration::from_secs(10), "499 recorded", || {
        let t = handle.render();
        async move { sample(&t, DUR, &[(l::HTTP_RESPONSE_STATUS_CODE, "499")]).map(|_| t) }
    })
    .await;
    assert_eq!(
        sample(
            &text,
            DUR,
            &[(l::HTTP_ROUTE, "/stream"), (l::HTTP_RESPONSE_STATUS_CODE, "499")]
        ),
        Some(1.0),
        "{text}"
    );
    text
}
