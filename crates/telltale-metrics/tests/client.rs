//! Dependency metrics: reqwest middleware and the tower layer against a real server.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::{sample, serve};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale_core::outcome::{ErrorType, Outcome};
use telltale_metrics::client::{
    ClassifiedError, ClientMetrics, ClientMetricsMiddleware, HttpClientMetricsLayer,
};
use telltale_metrics::names::{client as cn, labels as l};
use telltale_metrics::{Prometheus, PrometheusConfig};
use tower::{Layer, ServiceExt};

const COUNT: &str = "http_client_request_duration_seconds_count";

fn prom() -> Prometheus {
    PrometheusConfig::new("caller").build().unwrap()
}

async fn upstream() -> std::net::SocketAddr {
    serve(
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
            .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .route("/hang", get(std::future::pending::<&'static str>)),
    )
    .await
}

#[tokio::test]
async fn reqwest_middleware_records_one_observation_per_call_with_error_types() {
    let prom = prom();
    let addr = upstream().await;
    let metrics = ClientMetrics::with_options("inventory", prom.recorder(), 100).unwrap();
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .with(ClientMetricsMiddleware::new(metrics.clone()))
    .build();
    for path in ["/ok", "/ok", "/missing", "/down"] {
        client.get(format!("http://{addr}{path}")).send().await.unwrap();
    }
    assert!(client.get(format!("http://{addr}/hang")).send().await.is_err());
    // A closed port: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(client.get(format!("http://{closed}/ok")).send().await.is_err());

    let text = prom.handle().render();
    let base = [
        (l::PEER_SERVICE, "inventory"),
        (l::SERVER_ADDRESS, "127.0.0.1"),
        (l::HTTP_REQUEST_METHOD, "GET"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        sample(&text, COUNT, &v)
    };
    assert_eq!(
        with(&[(l::HTTP_RESPONSE_STATUS_CODE, "200")]),
        Some(2.0),
        "{text}"
    );
    // Client side: 4xx is an error too.
    assert_eq!(
        with(&[(l::HTTP_RESPONSE_STATUS_CODE, "404"), (l::ERROR_TYPE, "404")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        with(&[(l::HTTP_RESPONSE_STATUS_CODE, "503"), (l::ERROR_TYPE, "503")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(with(&[(l::ERROR_TYPE, "timeout")]), Some(1.0), "{text}");
    assert_eq!(with(&[(l::ERROR_TYPE, "connect")]), Some(1.0), "{text}");
    assert!(
        !text
            .lines()
            .any(|s| s.contains("error_type=\"timeout\"") && s.contains("status_code")),
        "{text}"
    );

    // The retry layer's helper.
    metrics.record_attempt(Outcome::Success);
    metrics.record_attempt(Outcome::Error(ErrorType::Timeout));
    metrics.record_attempt(Outcome::Error(ErrorType::Timeout));
    metrics.record_retry("timeout");
    metrics.record_retry_skipped("budget_exhausted");
    let text = prom.handle().render();
    assert_eq!(
        sample(
            &text,
            cn::ATTEMPTS_TOTAL,
            &[(l::PEER_SERVICE, "inventory"), (l::OUTCOME, "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            cn::ATTEMPTS_TOTAL,
            &[(l::PEER_SERVICE, "inventory"), (l::OUTCOME, "error")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, cn::RETRIES_TOTAL, &[(l::REASON, "timeout")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            cn::RETRIES_SKIPPED_TOTAL,
            &[(l::REASON, "budget_exhausted")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn tower_layer_over_a_hyper_client_and_typed_errors() {
    let prom = prom();
    let addr = upstream().await;
    let metrics = ClientMetrics::with_options("inventory", prom.recorder(), 100).unwrap();
    let hyper: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let svc = HttpClientMetricsLayer::new(metrics.clone()).layer(hyper);
    let res = svc
        .clone()
        .oneshot(
            Request::get(format!("http://{addr}/ok"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // What a circuit breaker below this layer returns.
    let open =
        HttpClientMetricsLayer::new(metrics).layer(tower::service_fn(|_req: Request<Empty<Bytes>>| async {
            Err::<http::Response<Empty<Bytes>>, _>(ClassifiedError::new(
                ErrorType::CircuitOpen,
                "breaker open",
            ))
        }));
    let err = open
        .oneshot(
            Request::post("http://inventory.internal/reserve")
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("circuit_open"), "{err}");

    let text = prom.handle().render();
    assert_eq!(
        sample(
            &text,
            COUNT,
            &[
                (l::SERVER_ADDRESS, "127.0.0.1"),
                (l::HTTP_RESPONSE_STATUS_CODE, "200")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            COUNT,
            &[
                (l::SERVER_ADDRESS, "inventory.internal"),
                (l::HTTP_REQUEST_METHOD, "POST"),
                (l::ERROR_TYPE, "circuit_open")
            ]
        ),
        Some(1.0),
        "{text}"
    );
}
