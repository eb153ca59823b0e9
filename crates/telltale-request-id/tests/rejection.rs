//! A rejected incoming id is visible to the operator: a counter per reason (through the
//! `metrics` facade, checked with a real Prometheus recorder) and a DEBUG event that
//! never carries the raw value.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{Router, routing::get};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use telltale_request_id::RequestIdLayer;
use telltale_request_id::names::REJECTED_TOTAL;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Forwards to a Prometheus recorder and counts counter registrations, to prove the
/// layer resolves its handle once per reason instead of once per request.
struct CountingRecorder {
    inner: PrometheusRecorder,
    counter_registrations: AtomicUsize,
}

impl Recorder for CountingRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description)
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description)
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description)
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.counter_registrations.fetch_add(1, Ordering::SeqCst);
        self.inner.register_counter(key, metadata)
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.inner.register_gauge(key, metadata)
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.inner.register_histogram(key, metadata)
    }
}

async fn serve(app: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, task)
}

#[test]
fn rejections_are_counted_by_reason_with_handles_resolved_once() {
    let recorder = CountingRecorder {
        inner: PrometheusBuilder::new().build_recorder(),
        counter_registrations: AtomicUsize::new(0),
    };
    let handle = recorder.inner.handle();

    // The local recorder is per thread: a current-thread runtime keeps the server, the
    // connections and the client on this thread.
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let app = Router::new()
                .route("/", get(|| async { "ok" }))
                .layer(RequestIdLayer::new());
            let (addr, server) = serve(app).await;
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let too_long = "x".repeat(129);
            let sends: [Option<&str>; 9] = [
                Some(""),
                Some(""),
                Some(&too_long),
                Some("a b"),
                Some("\"q\""),
                Some("a\\b"),
                Some("valid-1"),
                Some("valid-2"),
                None,
            ];
            for id in sends {
                let mut req = client.get(format!("http://{addr}/"));
                if let Some(id) = id {
                    req = req.header("x-request-id", id);
                }
                let res = req.send().await.unwrap();
                assert_eq!(res.status(), 200);
            }
            server.abort();
        });
    });

    let text = handle.render();
    for (reason, n) in [("empty", 2), ("too_long", 1), ("forbidden_character", 3)] {
        let line = format!("{REJECTED_TOTAL}{{reason=\"{reason}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    assert_eq!(
        text.lines().filter(|l| l.starts_with(REJECTED_TOTAL)).count(),
        3,
        "valid and missing ids are not rejections:\n{text}"
    );
    assert_eq!(
        recorder.counter_registrations.load(Ordering::SeqCst),
        3,
        "one handle per reason, not one per request"
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn rejection_is_a_debug_event_with_reason_and_escaped_value() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();

    let res = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let app = Router::new()
                .route("/", get(|| async { "ok" }))
                .layer(RequestIdLayer::new());
            let req = http::Request::get("/")
                .header(
                    "x-request-id",
                    http::HeaderValue::from_bytes(b"evil\tline\"quote\xff").unwrap(),
                )
                .body(axum::body::Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap()
        })
    });

    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let new_id = res.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(out.lines().count(), 1, "one event, one line: {out:?}");
    assert!(out.contains("DEBUG"), "{out}");
    assert!(out.contains("telltale_request_id"), "target: {out}");
    assert!(out.contains("reason=\"forbidden_character\""), "{out}");
    assert!(
        out.contains(r#"value=evil\tline\"quote\xff"#),
        "escaped value: {out}"
    );
    assert!(!out.contains('\t'), "no raw tab: {out:?}");
    assert!(out.contains(new_id), "the generated id is logged: {out}");
}

#[test]
fn accepted_ids_log_nothing() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let app = Router::new()
                .route("/", get(|| async { "ok" }))
                .layer(RequestIdLayer::new());
            for id in [Some("fine-1"), None] {
                let mut req = http::Request::get("/");
                if let Some(id) = id {
                    req = req.header("x-request-id", id);
                }
                let req = req.body(axum::body::Body::empty()).unwrap();
                app.clone().oneshot(req).await.unwrap();
            }
        })
    });
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!out.contains("telltale_request_id"), "{out}");
}
