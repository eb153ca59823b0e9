//! `server_layer()` as one service: each way a request can end — a response whose body is
//! sent, a handler that panics through the layer, a service error, a request abandoned
//! before its response — gives exactly one access line, one metric observation and one
//! span, consistent with each other (the same trace id in the line and the span), with a
//! real OTLP/gRPC receiver for the spans and the Prometheus recorder for the metrics.
//!
//! The facade installs global state (tracing subscriber, metrics recorder), so this binary
//! has one test.

mod support;

use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use telltale_test_support::otlp::{OtlpReceiver, ReceivedSpan};
use tower::{Layer, ServiceExt};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A request on `path` in its own trace: the trace id is [`TRACE`] with the last two hex
/// digits replaced by `n`.
fn request(path: &str, n: u8) -> Request<Body> {
    Request::get(path)
        .header(
            "traceparent",
            format!("00-{}{n:02x}-00f067aa0ba902b7-01", &TRACE[..30]),
        )
        .header("x-request-id", format!("req-{n}"))
        .body(Body::empty())
        .unwrap()
}

/// As [`request`], but its caller did not sample the trace (flags `00`): no span is
/// recorded, and the request's `tracing` span closes at the response head.
fn unsampled_request(path: &str, n: u8) -> Request<Body> {
    let mut req = request(path, n);
    req.headers_mut().insert(
        "traceparent",
        format!("00-{}{n:02x}-00f067aa0ba902b7-00", &TRACE[..30])
            .parse()
            .unwrap(),
    );
    req
}

fn trace_of(n: u8) -> String {
    format!("{}{n:02x}", &TRACE[..30])
}

/// The only access line of request `req-n`.
fn access_line(logs: &telltale::log::CaptureWriter, n: u8) -> Value {
    let id = format!("req-{n}");
    let lines: Vec<Value> = logs
        .json_lines()
        .unwrap()
        .into_iter()
        .filter(|l| l["target"] == "telltale::access" && l["request_id"] == id.as_str())
        .collect();
    assert_eq!(lines.len(), 1, "one access line for {id}: {lines:#?}");
    lines.into_iter().next().unwrap()
}

fn span_of(spans: &[ReceivedSpan], n: u8) -> ReceivedSpan {
    let trace = trace_of(n);
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id() == trace).collect();
    assert_eq!(found.len(), 1, "one span in trace {trace}: {found:#?}");
    found[0].clone()
}

/// The `http_server_request_duration_seconds` count whose labels contain all of `labels`.
fn count(text: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .filter(|l| labels.iter().all(|c| l.contains(c)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// A body of two 3-byte frames with a pause between them: the request is not over until
/// the second is sent.
struct SlowBody {
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
    sent: u8,
}

const PAUSE: Duration = Duration::from_millis(60);

impl http_body::Body for SlowBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<axum::body::Bytes>, Self::Error>>> {
        match self.sent {
            0 => {
                self.sent = 1;
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(axum::body::Bytes::from_static(
                    b"abc",
                )))))
            }
            1 => {
                std::task::ready!(self.pause.as_mut().poll(cx));
                self.sent = 2;
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(axum::body::Bytes::from_static(
                    b"def",
                )))))
            }
            _ => std::task::Poll::Ready(None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_a_request_ends_gives_one_line_one_observation_and_one_span() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let logs = telltale::log::CaptureWriter::new();
    let telemetry = support::traced_telemetry("fused", &logs, &receiver);
    let layer = telemetry.server_layer();

    // 1. A response whose body is read to the end.
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "fine" }))
        .route(
            "/panic",
            axum::routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler panicked on purpose");
                }
                "unreachable"
            }),
        )
        .route("/hang", axum::routing::get(std::future::pending::<&'static str>))
        .route(
            "/stream",
            axum::routing::get(|| async {
                Body::new(SlowBody {
                    pause: Box::pin(tokio::time::sleep(PAUSE)),
                    sent: 0,
                })
            }),
        )
        .route(
            "/logged",
            axum::routing::get(|| async {
                tracing::info!("inside handler");
                Body::new(SlowBody {
                    pause: Box::pin(tokio::time::sleep(PAUSE)),
                    sent: 0,
                })
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "up" }))
        .route(
            "/caught",
            axum::routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler panicked on purpose, caught inside");
                }
                "unreachable"
            })
            .layer(telltale::resilience::server::CatchPanicLayer::new()),
        )
        .layer(layer.clone());
    let res = app.clone().oneshot(request("/ok", 1)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-request-id"], "req-1");
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "fine");

    // 2. A handler that panics through the layer (no catch-panic layer inside it).
    let panicked = tokio::spawn(app.clone().oneshot(request("/panic", 2))).await;
    assert!(panicked.unwrap_err().is_panic(), "the panic goes on");

    // 3. A service that fails instead of answering.
    let failing = layer.layer(tower::service_fn(|_req: Request<Body>| async {
        Err::<Response<Body>, _>(std::io::Error::other("backend refused"))
    }));
    let err = failing.oneshot(request("/fail", 3)).await.unwrap_err();
    assert_eq!(err.to_string(), "backend refused");

    // 4. A request abandoned before its response: polled once, then dropped.
    {
        let mut future = std::pin::pin!(app.clone().oneshot(request("/hang", 4)));
        let waker = std::task::Waker::noop();
        assert!(
            future
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
                .is_pending()
        );
    } // dropped here

    // 5. A streamed body: the request ends when its last frame is sent, not at the head.
    let res = app.clone().oneshot(request("/stream", 5)).await.unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "abcdef");

    // 6. An excluded path: no line and no metrics, but still a span and the id.
    let res = app.clone().oneshot(request("/healthz", 6)).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-6");
    res.into_body().collect().await.unwrap();

    // 7. A request its caller did not sample, with a streamed body: its `tracing` span is
    // closed at the head, long before the line is written at the end of the body.
    let res = app
        .clone()
        .oneshot(unsampled_request("/logged", 7))
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "abcdef");

    // 8. A handler panic caught by a catch-panic layer inside: a 500 marked as a panic.
    let res = app.clone().oneshot(request("/caught", 8)).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    res.into_body().collect().await.unwrap();

    // 9. A HEAD request: axum drops the handler's body unsent, which is its normal end.
    let mut head = request("/ok", 9);
    *head.method_mut() = http::Method::HEAD;
    let res = app.clone().oneshot(head).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.into_body().collect().await.unwrap().to_bytes().is_empty());

    // The lines: one each, with the span's trace id. The log writer is non-blocking: wait
    // (bounded) until its thread has written all of them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while logs
        .json_lines()
        .unwrap()
        .iter()
        .filter(|l| l["target"] == "telltale::access")
        .count()
        < 8
    {
        assert!(std::time::Instant::now() < deadline, "{}", logs.contents());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let head = access_line(&logs, 9);
    assert_eq!(
        (head["status"].as_u64(), head["end"].as_str()),
        (Some(200), Some("complete")),
        "{head}"
    );
    let ok = access_line(&logs, 1);
    assert_eq!(
        (ok["status"].as_u64(), ok["level"].as_str()),
        (Some(200), Some("INFO")),
        "{ok}"
    );
    assert_eq!(
        (ok["end"].as_str(), ok["bytes"].as_u64()),
        (Some("complete"), Some(4)),
        "{ok}"
    );
    assert_eq!(ok["route"], "/ok", "{ok}");
    let panic = access_line(&logs, 2);
    assert_eq!(
        (panic["status"].as_u64(), panic["level"].as_str()),
        (Some(500), Some("ERROR")),
        "{panic}"
    );
    assert_eq!(panic["end"], "error", "{panic}");
    let failed = access_line(&logs, 3);
    assert_eq!(
        (failed["status"].as_u64(), failed["end"].as_str()),
        (Some(500), Some("error")),
        "{failed}"
    );
    let gone = access_line(&logs, 4);
    assert_eq!(
        (gone["status"].as_u64(), gone["end"].as_str()),
        (Some(499), Some("aborted")),
        "{gone}"
    );
    assert_eq!(gone["level"], "INFO", "{gone}");
    let streamed = access_line(&logs, 5);
    assert_eq!(
        (streamed["bytes"].as_u64(), streamed["end"].as_str()),
        (Some(6), Some("complete")),
        "{streamed}"
    );
    let ms = streamed["duration_ms"].as_f64().unwrap();
    assert!(
        ms >= PAUSE.as_millis() as f64,
        "the pause is inside the duration: {streamed}"
    );
    assert!(
        !logs
            .json_lines()
            .unwrap()
            .iter()
            .any(|l| l["request_id"] == "req-6"),
        "no line for an excluded path"
    );
    for (n, line) in [(1, &ok), (2, &panic), (3, &failed), (4, &gone), (5, &streamed)] {
        assert_eq!(line["trace_id"], trace_of(n).as_str(), "{line}");
    }
    // The unsampled request's line has its trace and span ids all the same: those of the
    // line its handler wrote inside the request's span.
    let unsampled = access_line(&logs, 7);
    let inside: Vec<Value> = logs
        .json_lines()
        .unwrap()
        .into_iter()
        .filter(|l| l["message"] == "inside handler")
        .collect();
    assert_eq!(inside.len(), 1, "{inside:#?}");
    assert_eq!(inside[0]["trace_id"], trace_of(7).as_str(), "{:#?}", inside[0]);
    assert_eq!(
        (&unsampled["trace_id"], &unsampled["span_id"]),
        (&inside[0]["trace_id"], &inside[0]["span_id"]),
        "{unsampled}"
    );
    assert_ne!(
        unsampled["span_id"], "00f067aa0ba902b7",
        "the server span's own id"
    );

    // The metrics: one observation each, under the status the line has.
    let text = telemetry.metrics_handle().unwrap().render();
    assert_eq!(
        count(
            &text,
            &[
                "http_request_method=\"GET\"",
                "http_route=\"/ok\"",
                "status_code=\"200\""
            ]
        ),
        1,
        "{text}"
    );
    assert_eq!(
        count(
            &text,
            &[
                "http_route=\"/panic\"",
                "status_code=\"500\"",
                "error_type=\"panic\""
            ]
        ),
        1,
        "{text}"
    );
    assert_eq!(
        count(&text, &["status_code=\"500\"", "error_type=\"_OTHER\""]),
        1,
        "{text}"
    );
    assert_eq!(
        count(&text, &["http_route=\"/hang\"", "status_code=\"499\""]),
        1,
        "{text}"
    );
    assert_eq!(
        count(&text, &["http_route=\"/stream\"", "status_code=\"200\""]),
        1,
        "{text}"
    );
    assert!(!text.contains("/healthz"), "{text}");
    // The caught panic is a panic, not a plain 500.
    assert_eq!(
        count(
            &text,
            &[
                "http_route=\"/caught\"",
                "status_code=\"500\"",
                "error_type=\"panic\""
            ]
        ),
        1,
        "{text}"
    );
    assert_eq!(
        count(
            &text,
            &[
                "http_request_method=\"HEAD\"",
                "http_route=\"/ok\"",
                "status_code=\"200\""
            ]
        ),
        1,
        "{text}"
    );
    assert_eq!(count(&text, &[]), 8, "{text}");

    // The spans: one each, ended the way the request ended.
    telemetry.tracing().pipeline().force_flush().unwrap();
    let spans = receiver
        .wait_for_spans(|s| s.len() >= 8, Duration::from_secs(30))
        .await
        .unwrap_or_else(|s| panic!("8 server spans, got {s:#?}"));
    let ok = span_of(&spans, 1);
    assert!(!ok.is_error(), "{ok:#?}");
    assert_eq!(ok.attr("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(ok.attr("request_id").as_deref(), Some("req-1"));
    let head = span_of(&spans, 9);
    assert!(!head.is_error(), "{head:#?}");
    assert_eq!(head.attr("telltale.client_disconnected"), None, "{head:#?}");
    let panic = span_of(&spans, 2);
    assert!(panic.is_error(), "{panic:#?}");
    assert_eq!(panic.attr("error.type").as_deref(), Some("panic"));
    assert!(
        panic.span.events.iter().any(|e| e.name == "exception"),
        "{panic:#?}"
    );
    let failed = span_of(&spans, 3);
    assert!(failed.is_error(), "{failed:#?}");
    assert_eq!(failed.span.status.as_ref().unwrap().message, "backend refused");
    let gone = span_of(&spans, 4);
    assert!(!gone.is_error(), "{gone:#?}");
    assert_eq!(gone.attr("telltale.client_disconnected").as_deref(), Some("true"));
    let streamed = span_of(&spans, 5);
    let lasted = streamed.span.end_time_unix_nano - streamed.span.start_time_unix_nano;
    assert!(
        lasted >= PAUSE.as_nanos() as u64,
        "the span ends with the body: {lasted} ns"
    );
    assert_eq!(streamed.attr("http.response.body.size").as_deref(), Some("6"));
    let health = span_of(&spans, 6);
    assert!(!health.is_error(), "{health:#?}");
    telemetry.shutdown();
}
