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
    let p = ClientPolicy::builder("grpc")
        .timeout(Duration::from_secs(2))
        .retry(Retry::exponential().base(MS).cap(10 * MS).max_attempts(5))
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
