//! The policy as a tower layer over hyper-util's client and over a tonic `Channel`,
//! against a real scripted server.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{FlakyServer, Script};
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale_resilience::{ClientPolicy, ResilienceError, Retry};
use tower::{Service, ServiceBuilder, ServiceExt};

const MS: Duration = Duration::from_millis(1);

fn hyper_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

fn policy(name: &str) -> ClientPolicy {
    ClientPolicy::builder(name)
        .timeout(Duration::from_millis(500))
        .retry(Retry::exponential().base(MS).cap(10 * MS).max_attempts(3))
        .build()
        .unwrap()
}

#[tokio::test]
async fn hyper_client_retries_503_until_success() {
    let server = FlakyServer::start(Script::FailFirst(2, 503)).await;
    let mut svc = ServiceBuilder::new()
        .layer(policy("tower-ok").layer())
        .service(hyper_client());
    let req = Request::get(server.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn hyper_client_replays_the_body_of_an_idempotent_post() {
    let server = FlakyServer::start(Script::Always(503)).await;
    let mut svc = ServiceBuilder::new()
        .layer(policy("tower-post").layer())
        .service(hyper_client());
    let post = |key: Option<&str>| {
        let mut b = Request::post(server.url("/"));
        if let Some(k) = key {
            b = b.header("idempotency-key", k);
        }
        b.body(Full::new(Bytes::from_static(b"payload"))).unwrap()
    };
    let resp = svc.ready().await.unwrap().call(post(None)).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(server.calls(), 1, "POST without Idempotency-Key is not retried");
    let resp = svc.ready().await.unwrap().call(post(Some("k"))).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(server.calls(), 4);
    let bodies = server.shared.bodies.lock().unwrap().clone();
    assert!(bodies.iter().all(|b| b == "payload"), "{bodies:?}");
}

#[tokio::test]
async fn hyper_client_timeout_and_connect_errors_are_typed() {
    let server = FlakyServer::start(Script::Hang).await;
    let p = ClientPolicy::builder("tower-hang")
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(p.layer()).service(hyper_client());
    let req = Request::get(server.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
    assert!(matches!(err, ResilienceError::Timeout { .. }), "{err:?}");

    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let req = Request::get(format!("http://{addr}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
    assert!(matches!(err, ResilienceError::Connect { .. }), "{err:?}");
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn tonic_channel_retries_unavailable_and_sends_grpc_timeout() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let server = FlakyServer::start(Script::Grpc(2, 14, 5)).await;
    let channel = tonic::transport::Endpoint::from_shared(server.url(""))
        .unwrap()
        .connect_lazy();
    // A policy for idempotent calls (health checks are reads).
    let p = ClientPolicy::builder("grpc")
        .timeout(Duration::from_secs(2))
        .retry(
            Retry::exponential()
                .base(MS)
                .cap(10 * MS)
                .max_attempts(5)
                .retry_non_idempotent(),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new().layer(p.layer()).service(channel);
    let mut client = HealthClient::new(svc);
    let status = client
        .check(HealthCheckRequest {
            service: "inventory".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(
        server.calls(),
        3,
        "two UNAVAILABLE answers retried, then NOT_FOUND returned"
    );
    let headers = server.shared.headers.lock().unwrap().clone();
    for h in &headers {
        let t = h
            .get("grpc-timeout")
            .expect("grpc-timeout sent")
            .to_str()
            .unwrap();
        assert!(t.ends_with('u') || t.ends_with('m'), "{t}");
    }
    // The request body was replayed: every attempt carried the same bytes.
    let bodies = server.shared.bodies.lock().unwrap().clone();
    assert!(!bodies[0].is_empty());
    assert!(bodies.iter().all(|b| *b == bodies[0]));
}

/// `UNAVAILABLE` may come from a proxy after it forwarded the call: a gRPC call that is
/// not marked idempotent is not sent again; with `idempotency-key` metadata it is.
#[tokio::test]
async fn grpc_unavailable_is_retried_only_for_idempotent_calls() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let _ = common::metrics();
    for (keyed, calls) in [(false, 1), (true, 3)] {
        let server = FlakyServer::start(Script::Grpc(2, 14, 5)).await;
        let channel = tonic::transport::Endpoint::from_shared(server.url(""))
            .unwrap()
            .connect_lazy();
        let name = if keyed { "grpc-keyed" } else { "grpc-unkeyed" };
        let p = ClientPolicy::builder(name)
            .retry(Retry::exponential().base(MS).cap(10 * MS).max_attempts(5))
            .build()
            .unwrap();
        let mut client = HealthClient::new(ServiceBuilder::new().layer(p.layer()).service(channel));
        let mut req = tonic::Request::new(HealthCheckRequest {
            service: "inventory".into(),
        });
        if keyed {
            req.metadata_mut()
                .insert("idempotency-key", "check-7f3a".parse().unwrap());
        }
        let result = client.check(req).await;
        assert_eq!(server.calls(), calls, "keyed: {keyed}");
        if keyed {
            // Two UNAVAILABLE answers retried, then the server's NOT_FOUND.
            assert_eq!(result.unwrap_err().code(), tonic::Code::NotFound);
        } else {
            assert_eq!(result.unwrap_err().code(), tonic::Code::Unavailable);
            let skipped = [("peer_service", name), ("reason", "not_idempotent")];
            assert_eq!(
                common::metric("telltale_client_retries_skipped_total", &skipped),
                1.0
            );
        }
    }
}

/// The caller's own gRPC deadline (`Request::set_timeout`) is shorter than the policy's
/// timeout: the header says the caller's, and the call ends then, not at the policy's.
#[tokio::test]
async fn a_callers_shorter_grpc_deadline_is_kept() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let server = FlakyServer::start(Script::Hang).await;
    let channel = tonic::transport::Endpoint::from_shared(server.url(""))
        .unwrap()
        .connect_lazy();
    let p = ClientPolicy::builder("grpc-callers-deadline")
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut client = HealthClient::new(ServiceBuilder::new().layer(p.layer()).service(channel));
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: "inventory".into(),
    });
    req.set_timeout(Duration::from_millis(50));
    let started = tokio::time::Instant::now();
    let status = client.check(req).await.unwrap_err();
    assert_ne!(status.code(), tonic::Code::Ok);
    // Ended at the caller's 50 ms (the policy's 10 s would fail this by far).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let headers = server.shared.headers.lock().unwrap().clone();
    let sent = telltale_resilience::grpc_timeout::decode(&headers[0]["grpc-timeout"]).unwrap();
    assert!(sent <= Duration::from_millis(50), "{sent:?}");
}

#[tokio::test]
async fn metrics_classifier_sees_the_error_type_through_the_tower_error() {
    let server = FlakyServer::start(Script::Hang).await;
    let p = ClientPolicy::builder("tower-classified")
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(p.layer()).service(hyper_client());
    let req = Request::get(server.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    assert_eq!(
        telltale_metrics::client::classify_error(boxed.as_ref()).as_str(),
        "timeout"
    );
}

/// A tonic health client over a `Channel` to `server`, behind `p`'s layer.
#[cfg(feature = "tonic")]
fn health_client(
    server: &FlakyServer,
    p: &ClientPolicy,
) -> tonic_health::pb::health_client::HealthClient<
    telltale_resilience::tower::ClientPolicyService<tonic::transport::Channel>,
> {
    let channel = tonic::transport::Endpoint::from_shared(server.url(""))
        .unwrap()
        .connect_lazy();
    tonic_health::pb::health_client::HealthClient::new(
        ServiceBuilder::new().layer(p.layer()).service(channel),
    )
}

#[cfg(feature = "tonic")]
fn check() -> tonic_health::pb::HealthCheckRequest {
    tonic_health::pb::HealthCheckRequest {
        service: "inventory".into(),
    }
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn breaker_opens_on_grpc_errors_that_arrive_in_trailers_after_headers() {
    use telltale_resilience::{CircuitBreaker, CircuitState};

    let _ = common::metrics();
    let server = FlakyServer::start(Script::GrpcTrailers(14)).await;
    let p = ClientPolicy::builder("grpc-trailers")
        .timeout(Duration::from_secs(2))
        .retry(Retry::exponential().base(MS).cap(10 * MS).max_attempts(3))
        .circuit_breaker(CircuitBreaker::consecutive_failures(3).open_for(Duration::from_secs(60)))
        .build()
        .unwrap();
    let breaker = p.circuit_breaker().unwrap().clone();
    let mut client = health_client(&server, &p);
    for call in 1..=3 {
        let status = client.check(check()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "call {call}");
    }
    // Committed once headers arrived (gRFC A6): not retried, one attempt per call.
    assert_eq!(server.calls(), 3);
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(
        common::metric(
            "telltale_client_attempts_total",
            &[("peer_service", "grpc-trailers"), ("outcome", "error")]
        ),
        3.0
    );
    // Open: the fourth call is refused without reaching the server.
    let status = client.check(check()).await.unwrap_err();
    assert_eq!(server.calls(), 3, "{status:?}");
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn ok_in_trailers_and_streams_dropped_unread_are_not_failures() {
    use telltale_resilience::{CircuitBreaker, CircuitState};

    let _ = common::metrics();
    let ok = FlakyServer::start(Script::GrpcTrailers(0)).await;
    let p = ClientPolicy::builder("grpc-trailers-ok")
        .timeout(Duration::from_secs(2))
        .circuit_breaker(CircuitBreaker::failure_rate(0.5).min_calls(100))
        .build()
        .unwrap();
    let breaker = p.circuit_breaker().unwrap().clone();
    let mut client = health_client(&ok, &p);
    for _ in 0..3 {
        // No message and an OK status: tonic's own protocol error, not the breaker's.
        let _ = client.check(check()).await;
    }
    assert_eq!(ok.calls(), 3);
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(
        breaker.window(),
        (3, 0, 0),
        "three calls recorded when their trailers came, none failed"
    );
    assert_eq!(
        common::metric(
            "telltale_client_attempts_total",
            &[("peer_service", "grpc-trailers-ok"), ("outcome", "success")]
        ),
        3.0
    );

    // A stream the caller drops while it is open: released unrecorded, counted as a
    // success, the breaker stays closed.
    let open = FlakyServer::start(Script::GrpcOpenStream).await;
    let p = ClientPolicy::builder("grpc-open-stream")
        .timeout(Duration::from_secs(2))
        .circuit_breaker(CircuitBreaker::failure_rate(0.5).min_calls(100))
        .build()
        .unwrap();
    let breaker = p.circuit_breaker().unwrap().clone();
    let mut client = health_client(&open, &p);
    let stream = client.watch(check()).await.unwrap().into_inner();
    let attempts = |outcome| {
        common::metric(
            "telltale_client_attempts_total",
            &[("peer_service", "grpc-open-stream"), ("outcome", outcome)],
        )
    };
    assert_eq!(attempts("success") + attempts("error"), 0.0, "pending while open");
    drop(stream);
    assert_eq!(attempts("success"), 1.0);
    assert_eq!(attempts("error"), 0.0);
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.window().0, 0, "nothing recorded");
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn a_grpc_body_that_ends_without_a_status_is_an_unknown_failure() {
    use telltale_resilience::{CircuitBreaker, CircuitState};

    let _ = common::metrics();
    let server = FlakyServer::start(Script::GrpcNoStatus).await;
    let p = ClientPolicy::builder("grpc-no-status")
        .timeout(Duration::from_secs(2))
        .circuit_breaker(CircuitBreaker::consecutive_failures(2).open_for(Duration::from_secs(60)))
        .build()
        .unwrap();
    let breaker = p.circuit_breaker().unwrap().clone();
    let mut client = health_client(&server, &p);
    let _ = client.check(check()).await.unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Closed, "one failure of two");
    let _ = client.check(check()).await.unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(server.calls(), 2);
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn a_half_open_trial_stream_is_judged_at_its_headers() {
    use std::sync::Arc;
    use telltale_resilience::clock::ManualClock;
    use telltale_resilience::{CircuitBreaker, CircuitState};

    let _ = common::metrics();
    let failing = FlakyServer::start(Script::GrpcTrailers(14)).await;
    let streaming = FlakyServer::start(Script::GrpcOpenStream).await;
    let clock = Arc::new(ManualClock::new());
    let p = ClientPolicy::builder("grpc-half-open")
        .timeout(Duration::from_secs(2))
        .circuit_breaker(
            CircuitBreaker::consecutive_failures(1)
                .open_for(Duration::from_secs(10))
                .half_open_calls(1)
                .clock(clock.clone()),
        )
        .build()
        .unwrap();
    let breaker = p.circuit_breaker().unwrap().clone();
    // An error in trailers opens the breaker (closed state: judged at the body's end).
    let _ = health_client(&failing, &p).check(check()).await.unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(11));
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    // The trial call is a stream that stays open: its headers close the breaker, rather
    // than its trial slot staying taken for as long as the stream lasts.
    let stream = health_client(&streaming, &p)
        .watch(check())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(breaker.state(), CircuitState::Closed);
    drop(stream);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

/// A raw hyper client speaking gRPC: its `Incoming` response body cannot carry the
/// attempt's verdict to the trailers, but mapped into `tonic::body::Body` inside the
/// policy layer (as the module docs say) it can, and the breaker sees the trailers.
#[cfg(feature = "tonic")]
#[tokio::test]
async fn a_hyper_grpc_client_whose_body_is_mapped_to_tonics_sees_trailers() {
    use http_body_util::BodyExt;
    use telltale_resilience::{CircuitBreaker, CircuitState};

    let _ = common::metrics();
    let server = FlakyServer::start(Script::GrpcTrailers(14)).await;
    let p = ClientPolicy::builder("hyper-grpc-trailers")
        .timeout(Duration::from_secs(2))
        .circuit_breaker(CircuitBreaker::consecutive_failures(3).open_for(Duration::from_secs(60)))
        .build()
        .unwrap();
    let breaker = p.circuit_breaker().unwrap().clone();
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let mut svc = ServiceBuilder::new()
        .layer(p.layer())
        .layer(tower::util::MapResponseLayer::new(
            |res: http::Response<hyper::body::Incoming>| res.map(tonic::body::Body::new),
        ))
        .service(h2);
    let call = || {
        Request::post(server.url("/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            // One empty, uncompressed message.
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap()
    };
    for n in 1..=3 {
        let res = svc.ready().await.unwrap().call(call()).await.unwrap();
        assert_eq!(res.status(), 200, "call {n}: headers first, status later");
        let trailers = res.into_body().collect().await.unwrap().trailers().cloned();
        assert_eq!(trailers.unwrap()["grpc-status"], "14", "call {n}");
    }
    assert_eq!(server.calls(), 3);
    assert_eq!(breaker.state(), CircuitState::Open);
    // Open: the fourth call is refused without reaching the server.
    let refused = svc.ready().await.unwrap().call(call()).await;
    assert!(
        matches!(refused, Err(ResilienceError::CircuitOpen { .. })),
        "{refused:?}"
    );
    assert_eq!(server.calls(), 3);
}

/// A connector whose first connection is refused (the dependency restarting), then
/// connects to `addr`.
#[cfg(feature = "tonic")]
#[derive(Clone)]
struct RefuseFirst {
    addr: std::net::SocketAddr,
    refused: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

#[cfg(feature = "tonic")]
impl tower::Service<http::Uri> for RefuseFirst {
    type Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let addr = self.addr;
        let first = self.refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        Box::pin(async move {
            if first {
                return Err(std::io::ErrorKind::ConnectionRefused.into());
            }
            Ok(hyper_util::rt::TokioIo::new(
                tokio::net::TcpStream::connect(addr).await?,
            ))
        })
    }
}

/// tonic drops the request without reading its body when the connection fails, so the
/// body cannot be recorded as it is sent: the layer reads a unary call's message before
/// the first attempt, and the call is retried after a refused connection, with the same
/// bytes, even though it is not idempotent.
#[cfg(feature = "tonic")]
#[tokio::test]
async fn a_tonic_call_whose_connection_was_refused_is_retried_with_its_message() {
    let _ = common::metrics();
    let server = FlakyServer::start(Script::Grpc(0, 0, 5)).await;
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let channel = tonic::transport::Endpoint::from_static("http://inventory.invalid")
        .connect_with_connector_lazy(RefuseFirst {
            addr: server.addr,
            refused: refused.clone(),
        });
    let p = ClientPolicy::builder("grpc-connect-refused")
        .timeout(Duration::from_secs(2))
        .retry(Retry::exponential().base(MS).cap(10 * MS).max_attempts(3))
        .build()
        .unwrap();
    let mut client = tonic_health::pb::health_client::HealthClient::new(
        ServiceBuilder::new().layer(p.layer()).service(channel),
    );
    let status = client.check(check()).await.unwrap_err();
    // The second attempt reached the server, which answered NOT_FOUND.
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(server.calls(), 1);
    let bodies = server.shared.bodies.lock().unwrap().clone();
    // The health request's one message, framed: 5-byte prefix, then "\n\tinventory".
    assert_eq!(&bodies[0][5..], b"\n\tinventory");
    assert_eq!(
        common::metric(
            "telltale_client_retries_total",
            &[("peer_service", "grpc-connect-refused")]
        ),
        1.0
    );
}

/// A request body fed through a channel: frames arrive while the call is under way. It
/// says when it was first polled with nothing to give.
#[cfg(feature = "tonic")]
struct ChannelBody(
    tokio::sync::mpsc::Receiver<Bytes>,
    Option<tokio::sync::oneshot::Sender<()>>,
);

#[cfg(feature = "tonic")]
impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let next = self.0.poll_recv(cx);
        if next.is_pending()
            && let Some(waiting) = self.1.take()
        {
            let _ = waiting.send(());
        }
        next.map(|next| next.map(|data| Ok(http_body::Frame::data(data))))
    }
}

/// A client-streaming call whose stream has one message ready and the next later: the
/// ready prefix read ahead is sent first, then the rest, nothing lost or reordered.
#[cfg(feature = "tonic")]
#[tokio::test]
async fn a_streaming_grpc_body_is_sent_whole_after_its_ready_prefix() {
    use http_body_util::BodyExt;

    let (got_tx, got_rx) = tokio::sync::oneshot::channel::<Bytes>();
    let got_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(got_tx)));
    let inner = tower::service_fn(move |req: Request<tonic::body::Body>| {
        let got_tx = got_tx.clone();
        async move {
            let bytes = req.into_body().collect().await.unwrap().to_bytes();
            if let Some(tx) = got_tx.lock().unwrap().take() {
                let _ = tx.send(bytes);
            }
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .header("grpc-status", "0")
                    .body(tonic::body::Body::empty())
                    .unwrap(),
            )
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(policy("grpc-streaming").layer())
        .service(inner);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (waiting_tx, waiting) = tokio::sync::oneshot::channel();
    tx.send(Bytes::from_static(b"first;")).await.unwrap();
    let req = Request::post("http://inventory.invalid/inventory.v1.Stock/Reserve")
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::new(ChannelBody(rx, Some(waiting_tx))))
        .unwrap();
    let call = tokio::spawn(async move { svc.ready().await.unwrap().call(req).await });
    // The layer read "first;" ahead and found nothing more ready.
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the body is polled")
        .unwrap();
    tx.send(Bytes::from_static(b"second;")).await.unwrap();
    tx.send(Bytes::from_static(b"third")).await.unwrap();
    drop(tx);
    let res = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends")
        .unwrap()
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "0");
    assert_eq!(got_rx.await.unwrap(), Bytes::from_static(b"first;second;third"));
}
