//! The access log: one event per request, at body end, over oneshot and a real TCP listener.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;
use telltale_core::{RequestId, with_request_id};
use telltale_log::{AccessLogLayer, CaptureWriter, LogConfig, keys};
use tower::{Layer as _, Service as _, ServiceExt as _};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;

fn capture() -> (CaptureWriter, DefaultGuard) {
    let capture = CaptureWriter::new();
    let layer = LogConfig::new("orders-api").json_layer(capture.clone()).unwrap();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (capture, guard)
}

fn access_lines(capture: &CaptureWriter) -> Vec<serde_json::Value> {
    capture
        .json_lines()
        .unwrap()
        .into_iter()
        .filter(|l| l["target"] == keys::ACCESS_TARGET)
        .collect()
}

/// Polls until `n` access lines are written, or fails after a generous deadline.
async fn wait_for_access_lines(capture: &CaptureWriter, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = access_lines(capture);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} access lines, have {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A tiny request-id layer: what telltale-request-id does, minus validation.
async fn request_id(mut req: Request, next: Next) -> Response {
    static N: AtomicU64 = AtomicU64::new(1);
    let id = RequestId::parse(&format!("req-{}", N.fetch_add(1, Ordering::Relaxed))).unwrap();
    req.extensions_mut().insert(id.clone());
    with_request_id(id, next.run(req)).await
}

async fn get_order() -> &'static str {
    tracing::info!("loading order");
    tracing::info!("order loaded");
    "{\"id\":42}"
}

fn app() -> Router {
    Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/boom", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/bad", get(|| async { StatusCode::UNPROCESSABLE_ENTITY }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/hang", get(std::future::pending::<&'static str>))
        .layer(
            AccessLogLayer::builder()
                .request_headers(["user-agent", "authorization", "x-odd"])
                .build()
                .unwrap(),
        )
        .layer(middleware::from_fn(request_id))
}

#[tokio::test]
async fn one_line_per_request_over_real_tcp_with_one_request_id() {
    let (capture, _g) = capture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
    let client = reqwest::Client::new();

    let res = client
        .get(format!("http://{addr}/orders/42?token=abc&x=1"))
        .header("user-agent", "test-agent/1.0")
        .header("authorization", "Bearer s3cret")
        .header("x-odd", http::HeaderValue::from_bytes(b"caf\xe9\"").unwrap())
        .header("cookie", "session=xyz")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "{\"id\":42}");

    let access = wait_for_access_lines(&capture, 1).await;
    // Only this test's lines: hyper and reqwest log at DEBUG too.
    let all: Vec<_> = capture
        .json_lines()
        .unwrap()
        .into_iter()
        .filter(|l| l["target"] == "access_log" || l["target"] == keys::ACCESS_TARGET)
        .collect();
    server.abort();
    let _ = server.await;

    assert_eq!(access.len(), 1, "{access:#?}");
    let a = &access[0];
    assert_eq!(a["level"], "INFO");
    assert_eq!(a["message"], "request completed");
    assert_eq!(a["method"], "GET");
    assert_eq!(a["route"], "/orders/{id}");
    assert_eq!(a["path"], "/orders/42");
    assert_eq!(a["status"], 200);
    assert_eq!(a["end"], "complete");
    assert_eq!(a["bytes"], 9);
    assert!(a["duration_ms"].as_f64().unwrap() >= 0.0);
    let headers = a["request_headers"].as_str().unwrap();
    assert!(headers.contains("test-agent/1.0"), "{headers}");
    assert!(headers.contains("authorization\": \"[REDACTED]"), "{headers}");
    assert!(headers.contains("\"x-odd\": \"caf\u{fffd}\\\""), "{headers}");

    // Every line of the request carries the same id: the handler's two and the access line.
    assert_eq!(all.len(), 3, "{all:#?}");
    let id = a["request_id"].as_str().unwrap();
    assert!(id.starts_with("req-"));
    assert!(all.iter().all(|l| l["request_id"] == id), "{all:#?}");
    let raw = capture.contents();
    assert!(!raw.contains("s3cret") && !raw.contains("session=xyz") && !raw.contains("token=abc"));
}

/// A scanner's very long path is cut in the line (the line stays small), and says so.
#[tokio::test]
async fn a_very_long_path_is_cut_in_the_line() {
    let (capture, _g) = capture();
    let long = format!("/orders/{}", "x".repeat(20_000));
    let _ = call(app(), &long).await;
    let access = wait_for_access_lines(&capture, 1).await;
    let path = access[0]["path"].as_str().unwrap();
    assert_eq!(
        path.len(),
        telltale_log::access::MAX_LOGGED_PATH + 3,
        "{}",
        path.len()
    );
    assert!(
        path.starts_with("/orders/xxx") && path.ends_with("x..."),
        "{path}"
    );
    assert_eq!(access[0]["route"], "/orders/{id}");
}

/// A HEAD answer's body is never sent (axum drops it unpolled): over real TCP the line
/// says `complete`, not a client that went away.
#[tokio::test]
async fn a_head_request_over_tcp_is_complete_not_aborted() {
    let (capture, _g) = capture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
    let res = reqwest::Client::new()
        .head(format!("http://{addr}/orders/42"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().is_empty());
    let access = wait_for_access_lines(&capture, 1).await;
    server.abort();
    let _ = server.await;
    assert_eq!(access.len(), 1, "{access:#?}");
    let a = &access[0];
    assert_eq!(
        (a["method"].as_str(), a["status"].as_u64()),
        (Some("HEAD"), Some(200))
    );
    assert_eq!(a["end"], "complete", "{a}");
    assert_eq!(a["level"], "INFO", "{a}");
}

#[tokio::test]
async fn client_hang_up_over_tcp_is_logged_once_as_499() {
    let (capture, _g) = capture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(client.get(format!("http://{addr}/hang")).send().await.is_err());
    drop(client);

    let access = wait_for_access_lines(&capture, 1).await;
    server.abort();
    let _ = server.await;
    assert_eq!(access.len(), 1);
    assert_eq!(access[0]["status"], 499);
    assert_eq!(access[0]["end"], "aborted");
    assert_eq!(access[0]["level"], "INFO");
    assert_eq!(access[0]["route"], "/hang");
    assert!(access[0]["request_id"].as_str().unwrap().starts_with("req-"));
}

async fn call(app: Router, uri: &str) -> Response {
    let res = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, Body::from(bytes))
}

#[tokio::test]
async fn server_errors_are_error_and_client_errors_are_info() {
    let (capture, _g) = capture();
    assert_eq!(call(app(), "/boom").await.status(), 503);
    assert_eq!(call(app(), "/bad").await.status(), 422);
    assert_eq!(call(app(), "/nope/123?q=1").await.status(), 404);
    let access = access_lines(&capture);
    assert_eq!(access.len(), 3);
    assert_eq!(
        (&access[0]["status"], &access[0]["level"]),
        (&503.into(), &"ERROR".into())
    );
    assert_eq!(
        (&access[1]["status"], &access[1]["level"]),
        (&422.into(), &"INFO".into())
    );
    assert_eq!(
        (&access[2]["status"], &access[2]["level"]),
        (&404.into(), &"INFO".into())
    );
    assert_eq!(access[2]["route"], "unmatched", "never the raw path");
    assert_eq!(access[2]["path"], "/nope/123");
}

#[tokio::test]
async fn excluded_paths_are_not_logged() {
    let (capture, _g) = capture();
    assert_eq!(call(app(), "/healthz").await.status(), 200);
    assert_eq!(call(app(), "/orders/1").await.status(), 200);
    let access = access_lines(&capture);
    assert_eq!(access.len(), 1);
    assert_eq!(access[0]["path"], "/orders/1");

    // Configurable.
    let custom = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/internal", get(|| async { "ok" }))
        .layer(
            AccessLogLayer::builder()
                .exclude_paths(["/internal"])
                .build()
                .unwrap(),
        );
    call(custom.clone(), "/internal").await;
    call(custom, "/healthz").await;
    let access = access_lines(&capture);
    assert_eq!(access.len(), 2);
    assert_eq!(access[1]["path"], "/healthz");
}

#[tokio::test]
async fn streaming_body_is_logged_once_at_its_end() {
    let (capture, _g) = capture();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(4);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let stream_app = Router::new()
        .route(
            "/stream",
            get(move || {
                let rx = rx.lock().unwrap().take().unwrap();
                let stream =
                    futures_util::stream::unfold(
                        rx,
                        |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
                    );
                async move { Body::from_stream(stream) }
            }),
        )
        .layer(AccessLogLayer::new());
    let res = stream_app
        .oneshot(Request::get("/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        access_lines(&capture).is_empty(),
        "not logged when the head is ready"
    );

    let mut body = res.into_body();
    tx.send(Ok(Bytes::from_static(b"chunk-1"))).await.unwrap();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "chunk-1");
    assert!(access_lines(&capture).is_empty(), "not logged mid-stream");

    tx.send(Ok(Bytes::from_static(b"chunk-2!"))).await.unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "chunk-2!");
    let access = access_lines(&capture);
    assert_eq!(access.len(), 1, "{access:#?}");
    assert_eq!(access[0]["bytes"], 15);
    assert_eq!(access[0]["end"], "complete");
    assert_eq!(access[0]["status"], 200);
}

#[tokio::test]
async fn body_dropped_mid_stream_is_logged_once_as_aborted_with_its_status() {
    let (capture, _g) = capture();
    let svc = AccessLogLayer::new().layer(tower::service_fn(|_req: Request| async {
        let stream = futures_util::stream::iter([
            Ok::<_, Infallible>(Bytes::from_static(b"a")),
            Ok(Bytes::from_static(b"b")),
        ]);
        Ok::<_, Infallible>(Response::new(Body::from_stream(stream)))
    }));
    let res = svc
        .oneshot(Request::get("/s").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = res.into_body();
    let _ = body.frame().await.unwrap().unwrap();
    drop(body);
    let access = access_lines(&capture);
    assert_eq!(access.len(), 1);
    assert_eq!(
        (&access[0]["status"], &access[0]["end"], &access[0]["bytes"]),
        (&200.into(), &"aborted".into(), &1.into())
    );
}

#[tokio::test]
async fn response_future_dropped_before_the_response_is_499_once() {
    let (capture, _g) = capture();
    let mut svc = AccessLogLayer::new().layer(tower::service_fn(|_req: Request| {
        std::future::pending::<Result<Response, Infallible>>()
    }));
    let fut = svc
        .ready()
        .await
        .unwrap()
        .call(Request::post("/orders?x=1").body(Body::empty()).unwrap());
    let mut fut = Box::pin(fut);
    assert!(fut.as_mut().now_or_never().is_none());
    assert!(access_lines(&capture).is_empty());
    drop(fut);
    let access = access_lines(&capture);
    assert_eq!(access.len(), 1);
    assert_eq!(access[0]["status"], 499);
    assert_eq!(access[0]["method"], "POST");
    assert_eq!(access[0]["path"], "/orders");
}

#[tokio::test]
async fn access_event_carries_the_span_current_when_the_request_entered() {
    let capture = CaptureWriter::new();
    let layer = LogConfig::new("svc").json_layer(capture.clone()).unwrap();
    let _g = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let mut svc = AccessLogLayer::new().layer(tower::service_fn(|_req: Request| async {
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    }));
    let span = tracing::info_span!("server", request_id = "req-span", peer = "10.0.0.1");
    let svc = svc.ready().await.unwrap();
    let fut = span.in_scope(|| svc.call(Request::get("/x").body(Body::empty()).unwrap()));
    let res = fut.await.unwrap();
    // The body is polled outside the span, as hyper does.
    let _ = res.into_body().collect().await.unwrap();
    let access = access_lines(&capture);
    assert_eq!(access.len(), 1);
    assert_eq!(access[0]["request_id"], "req-span");
    assert_eq!(access[0]["peer"], "10.0.0.1");
}

#[tokio::test]
async fn non_standard_methods_are_other() {
    let (capture, _g) = capture();
    let svc = AccessLogLayer::new().layer(tower::service_fn(|_req: Request| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let req = Request::builder()
        .method("PURGE")
        .uri("/cache")
        .body(Body::empty())
        .unwrap();
    let _ = svc
        .oneshot(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert_eq!(access_lines(&capture)[0]["method"], "_OTHER");
}

#[tokio::test]
async fn body_error_mid_stream_is_error_level() {
    let (capture, _g) = capture();
    let svc = AccessLogLayer::new().layer(tower::service_fn(|_req: Request| async {
        let stream = futures_util::stream::iter([
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("disk gone")),
        ]);
        Ok::<_, Infallible>(Response::new(Body::from_stream(stream)))
    }));
    let res = svc
        .oneshot(Request::get("/file").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(res.into_body().collect().await.is_err());
    let access = access_lines(&capture);
    assert_eq!(access.len(), 1);
    assert_eq!(
        (
            &access[0]["status"],
            &access[0]["end"],
            &access[0]["level"],
            &access[0]["bytes"]
        ),
        (&200.into(), &"error".into(), &"ERROR".into(), &2.into())
    );
}

#[tokio::test]
async fn a_panicking_service_is_logged_once_as_500() {
    let (capture, _g) = capture();
    let svc = AccessLogLayer::new().layer(tower::service_fn(|_req: Request| async {
        if true {
            panic!("handler bug");
        }
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let fut = svc.oneshot(Request::get("/panic").body(Body::empty()).unwrap());
    let caught = std::panic::AssertUnwindSafe(fut).catch_unwind().await;
    assert!(caught.is_err());
    let access = access_lines(&capture);
    assert_eq!(access.len(), 1);
    assert_eq!(
        (&access[0]["status"], &access[0]["level"]),
        (&500.into(), &"ERROR".into())
    );
}

#[test]
fn a_part_given_trace_ids_writes_them_without_a_parent_span() {
    use telltale_core::body::BodyEnd;
    use telltale_core::trace_ids::{self, TraceIds};

    let (capture, _g) = capture();
    let part = AccessLogLayer::new().part();
    let ids = TraceIds::new(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f0_67aa_0ba9_02b7, false);
    let mut req = Request::get("/orders/7").body(Body::empty()).unwrap();
    req.extensions_mut().insert(RequestId::parse("req-ids").unwrap());
    // No span is entered, at the request or at its end: the ids come from the part.
    let pending = part
        .on_request_at(&req, Instant::now(), Some(ids))
        .expect("logged");
    pending.on_response(200).on_end_at(
        BodyEnd::Complete {
            trailers: None,
            bytes: 3,
        },
        Instant::now(),
    );
    // Without ids: nulls, as for any line outside a traced request.
    part.on_request_at(&req, Instant::now(), None)
        .expect("logged")
        .on_service_error();

    let lines = access_lines(&capture);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(lines[0]["span_id"], "00f067aa0ba902b7");
    assert_eq!(lines[0]["request_id"], "req-ids");
    assert_eq!(lines[0]["status"], 200);
    assert!(
        lines[1]["trace_id"].is_null() && lines[1]["span_id"].is_null(),
        "{:#?}",
        lines[1]
    );
    assert_eq!(lines[1]["status"], 500);
    // The ids were current only while the line was written.
    assert_eq!(trace_ids::in_call(), None);
}

/// Needs the `axum` feature, which reads axum's `OriginalUri`.
#[cfg(feature = "axum")]
#[tokio::test]
async fn under_router_nest_the_path_is_the_one_the_client_sent() {
    let (capture, _g) = capture();
    let inner = Router::new()
        .route("/orders/{id}", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/internal", get(|| async { "ok" }))
        .layer(
            AccessLogLayer::builder()
                .exclude_paths(["/healthz", "/api/v1/internal"])
                .build()
                .unwrap(),
        );
    let app = Router::new().nest("/api/v1", inner);
    assert_eq!(
        call(app.clone(), "/api/v1/orders/42?token=abc").await.status(),
        200
    );
    // Exclusions match the path as sent too: `/api/v1/internal` is excluded, and the
    // nested `/api/v1/healthz` is not `/healthz`.
    assert_eq!(call(app.clone(), "/api/v1/internal").await.status(), 200);
    assert_eq!(call(app, "/api/v1/healthz").await.status(), 200);
    let access = access_lines(&capture);
    assert_eq!(access.len(), 2, "{access:#?}");
    assert_eq!(access[0]["path"], "/api/v1/orders/42");
    assert_eq!(access[0]["route"], "/api/v1/orders/{id}");
    assert_eq!(access[1]["path"], "/api/v1/healthz");
    assert!(!capture.contents().contains("token=abc"));
}

#[tokio::test]
async fn secret_headers_are_redacted_by_the_last_segment_of_their_name() {
    let (capture, _g) = capture();
    let config = LogConfig::new("orders-api").redact(["x-session"]);
    // Both ways of building the layer redact the built-in names; only the configuration's
    // builder knows `x-session`.
    for layer in [AccessLogLayer::builder(), config.access_log()] {
        let app = Router::new().route("/x", get(|| async { "ok" })).layer(
            layer
                .request_headers(["proxy-authorization", "x-api-key", "x-auth-token", "user-agent"])
                .build()
                .unwrap(),
        );
        let req = Request::get("/x")
            .header("proxy-authorization", "Basic dXNlcjpwYXNz")
            .header("x-api-key", "AKIA-SECRET")
            .header("x-auth-token", "tok-123")
            .header("user-agent", "curl/8")
            .body(Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        let _ = res.into_body().collect().await.unwrap();
    }
    let with_session = Router::new().route("/x", get(|| async { "ok" })).layer(
        config
            .access_log()
            .request_headers(["x-session"])
            .build()
            .unwrap(),
    );
    let req = Request::get("/x")
        .header("x-session", "sess-9")
        .body(Body::empty())
        .unwrap();
    let _ = with_session
        .oneshot(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await;

    let raw = capture.contents();
    for secret in ["dXNlcjpwYXNz", "AKIA-SECRET", "tok-123", "sess-9"] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
    let access = access_lines(&capture);
    assert_eq!(access.len(), 3);
    for line in &access[..2] {
        let headers = line["request_headers"].as_str().unwrap();
        for name in ["proxy-authorization", "x-api-key", "x-auth-token"] {
            assert!(
                headers.contains(&format!("\"{name}\": \"[REDACTED]\"")),
                "{name}: {headers}"
            );
        }
        assert!(headers.contains("\"user-agent\": \"curl/8\""), "{headers}");
    }
    assert_eq!(access[2]["request_headers"], "{\"x-session\": \"[REDACTED]\"}");
}
