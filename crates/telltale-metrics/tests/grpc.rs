//! gRPC server metrics against a real tonic server (tonic-health's Health service).

mod common;

use std::time::Duration;

use common::{eventually, sample};
use telltale_metrics::names::labels as l;
use telltale_metrics::{GrpcMetricsLayer, PrometheusConfig};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const COUNT: &str = "rpc_server_call_duration_seconds_count";

#[tokio::test]
async fn status_codes_from_trailers_and_trailers_only_responses() {
    let prom = PrometheusConfig::new("grpc-svc").build().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = GrpcMetricsLayer::with_options(prom.recorder(), 100).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    // OK: grpc-status 0 arrives in the trailers after the message.
    let ok = client
        .check(HealthCheckRequest {
            service: "orders".into(),
        })
        .await
        .unwrap();
    assert_eq!(ok.into_inner().status, ServingStatus::Serving as i32);
    // NOT_FOUND: an error before any message, sent trailers-only (status in headers).
    let err = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    // UNIMPLEMENTED: a method the server does not have (a server error by the conventions).
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2
        .post(format!("http://{addr}/orders.v1.Orders/Get"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "12");
    res.bytes().await.unwrap();
    // CANCELLED: a server-streaming watch the client drops before the end.
    let mut stream = client
        .watch(HealthCheckRequest {
            service: "orders".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    drop(stream);

    let handle = prom.handle();
    let text = eventually(Duration::from_secs(10), "the cancelled watch", || {
        let t = handle.render();
        async move { sample(&t, COUNT, &[(l::RPC_METHOD, "Watch")]).map(|_| t) }
    })
    .await;
    let health = "grpc.health.v1.Health";
    let check = |code: &str| {
        sample(
            &text,
            COUNT,
            &[
                (l::RPC_SYSTEM, "grpc"),
                (l::RPC_SERVICE, health),
                (l::RPC_METHOD, "Check"),
                (l::RPC_GRPC_STATUS_CODE, code),
            ],
        )
    };
    assert_eq!(check("0"), Some(1.0), "{text}");
    assert_eq!(check("5"), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            COUNT,
            &[
                (l::RPC_SERVICE, "orders.v1.Orders"),
                (l::RPC_METHOD, "Get"),
                (l::RPC_GRPC_STATUS_CODE, "12"),
                (l::ERROR_TYPE, "UNIMPLEMENTED")
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
                (l::RPC_SERVICE, health),
                (l::RPC_METHOD, "Watch"),
                (l::RPC_GRPC_STATUS_CODE, "1")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    // NOT_FOUND is the caller's problem: no error_type on it.
    assert!(
        !text
            .lines()
            .any(|line| line.contains(r#"rpc_grpc_status_code="5""#) && line.contains("error_type")),
        "{text}"
    );
}

#[tokio::test]
async fn client_side_codes_are_all_errors_and_channel_failures_are_transport() {
    use telltale_metrics::GrpcClientMetricsLayer;

    let prom = PrometheusConfig::new("caller").build().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let layer = GrpcClientMetricsLayer::with_options("health-dep", prom.recorder(), 100).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(tower::ServiceBuilder::new().layer(layer.clone()).service(channel));
    client
        .check(HealthCheckRequest {
            service: "orders".into(),
        })
        .await
        .unwrap();
    let err = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = tonic::transport::Endpoint::from_shared(format!("http://{closed}"))
        .unwrap()
        .connect_lazy();
    let mut dead = HealthClient::new(tower::ServiceBuilder::new().layer(layer).service(dead));
    assert!(
        dead.check(HealthCheckRequest {
            service: "orders".into()
        })
        .await
        .is_err()
    );

    let text = prom.handle().render();
    let c = "rpc_client_call_duration_seconds_count";
    let base = [
        (l::PEER_SERVICE, "health-dep"),
        (l::RPC_SERVICE, "grpc.health.v1.Health"),
        (l::RPC_METHOD, "Check"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        sample(&text, c, &v)
    };
    assert_eq!(with(&[(l::RPC_GRPC_STATUS_CODE, "0")]), Some(1.0), "{text}");
    assert_eq!(
        with(&[(l::RPC_GRPC_STATUS_CODE, "5"), (l::ERROR_TYPE, "NOT_FOUND")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(with(&[(l::ERROR_TYPE, "transport")]), Some(1.0), "{text}");
    assert!(
        !text
            .lines()
            .any(|s| s.contains("rpc_grpc_status_code=\"0\"") && s.contains("error_type")),
        "{text}"
    );
}
