//! A real, scripted, flaky HTTP server on 127.0.0.1:0 that counts the calls it gets.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A `tracing` writer that keeps what it is given, for asserting on log lines.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A plain-text INFO subscriber writing here, for `tracing::subscriber::set_default`.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let w = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish()
    }
}

/// One process-wide recorder, installed before any policy is built in a test.
pub fn metrics() -> &'static PrometheusHandle {
    static H: OnceLock<PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("install recorder")
    })
}

/// The value of one series in the Prometheus text output (0 when absent).
pub fn metric(name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = metrics().render();
    for line in text.lines() {
        if line.starts_with('#') || !line.starts_with(name) {
            continue;
        }
        let rest = &line[name.len()..];
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))) {
            return line.rsplit(' ').next().unwrap().parse().unwrap();
        }
    }
    0.0
}

/// What the server does.
#[derive(Clone, Debug)]
pub enum Script {
    /// 200 "ok".
    Ok,
    /// `status` for the first `n` calls, then 200.
    FailFirst(u32, u16),
    /// Always `status`.
    Always(u16),
    /// `status` with `Retry-After: value` for the first `n` calls, then 200.
    RetryAfter(u32, u16, &'static str),
    /// Never answers.
    Hang,
    /// 503 while the switch is on, 200 when off.
    Switch,
    /// Answers 200 after `ms`.
    Slow(u64),
    /// gRPC trailers-only `grpc-status: code` for the first `n` calls, then `then`.
    Grpc(u32, u8, u8),
    /// gRPC response headers without a status, then trailers with `grpc-status: code`
    /// (how a call that fails after its headers, e.g. a broken stream, ends).
    GrpcTrailers(u8),
    /// gRPC response headers, then a body that never ends (an open stream).
    GrpcOpenStream,
    /// gRPC response headers, then the end of the body with no status at all.
    GrpcNoStatus,
}

/// A response body of one trailers frame, or of nothing ever (`None`: pending forever).
struct TrailersBody(Option<Option<HeaderMap>>);

impl http_body::Body for TrailersBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match &mut self.0 {
            None => std::task::Poll::Pending,
            Some(trailers) => {
                std::task::Poll::Ready(trailers.take().map(|t| Ok(http_body::Frame::trailers(t))))
            }
        }
    }
}

fn grpc_headers_first(body: TrailersBody) -> Response {
    let mut r = axum::body::Body::new(body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    r
}

pub struct Shared {
    pub script: Script,
    pub calls: AtomicU32,
    pub failing: AtomicBool,
    pub arrivals: Mutex<Vec<Instant>>,
    pub bodies: Mutex<Vec<Bytes>>,
    pub headers: Mutex<Vec<HeaderMap>>,
}

pub struct FlakyServer {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FlakyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FlakyServer {
    pub async fn start(script: Script) -> FlakyServer {
        let shared = Arc::new(Shared {
            script,
            calls: AtomicU32::new(0),
            failing: AtomicBool::new(true),
            arrivals: Mutex::new(Vec::new()),
            bodies: Mutex::new(Vec::new()),
            headers: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handler).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FlakyServer { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn calls(&self) -> u32 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    pub fn set_failing(&self, on: bool) {
        self.shared.failing.store(on, Ordering::SeqCst);
    }

    pub fn gaps(&self) -> Vec<Duration> {
        let a = self.shared.arrivals.lock().unwrap();
        a.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

async fn handler(State(s): State<Arc<Shared>>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
    s.arrivals.lock().unwrap().push(Instant::now());
    s.bodies.lock().unwrap().push(body);
    s.headers.lock().unwrap().push(headers);
    let _ = method;
    let status = |c: u16| StatusCode::from_u16(c).unwrap();
    match &s.script {
        Script::Ok => "ok".into_response(),
        Script::FailFirst(k, code) if n <= *k => status(*code).into_response(),
        Script::FailFirst(..) => "ok".into_response(),
        Script::Always(code) => status(*code).into_response(),
        Script::RetryAfter(k, code, v) if n <= *k => {
            let mut r = status(*code).into_response();
            r.headers_mut().insert("retry-after", HeaderValue::from_static(v));
            r
        }
        Script::RetryAfter(..) => "ok".into_response(),
        Script::Hang => std::future::pending().await,
        Script::Switch if s.failing.load(Ordering::SeqCst) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Script::Switch => "ok".into_response(),
        Script::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            "ok".into_response()
        }
        Script::Grpc(k, first, then) => {
            let code = if n <= *k { *first } else { *then };
            let mut r = StatusCode::OK.into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            r.headers_mut()
                .insert("grpc-status", HeaderValue::from(u16::from(code)));
            r
        }
        Script::GrpcTrailers(code) => {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from(u16::from(*code)));
            grpc_headers_first(TrailersBody(Some(Some(trailers))))
        }
        Script::GrpcOpenStream => grpc_headers_first(TrailersBody(None)),
        Script::GrpcNoStatus => grpc_headers_first(TrailersBody(Some(None))),
    }
}

/// A raw TCP server that reads a little and then drops every connection (a reset).
pub struct ResettingServer {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicU32>,
    task: JoinHandle<()>,
}

impl Drop for ResettingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ResettingServer {
    pub async fn start() -> ResettingServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU32::new(0));
        let a = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    use tokio::io::AsyncReadExt;
                    let mut s = sock;
                    let _ = s.read(&mut buf).await;
                    drop(s);
                })
                .await;
            }
        });
        ResettingServer { addr, accepted, task }
    }
}

/// Polls `cond` every 5 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}
