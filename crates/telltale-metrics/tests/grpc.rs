//! gRPC server metrics against a real tonic server (tonic-health's Health service).

mod common;

use std::time::Duration;

use common::{eventually, sample, series, serve};
use http_body_util::BodyExt;
use telltale_metrics::GrpcClientMetricsLayer;
use telltale_metrics::names::labels as l;
use telltale_metrics::{GrpcMetricsLayer, PrometheusConfig};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const COUNT: &str = "rpc_server_call_duration_seconds_count";

#[tokio::test]
async fn status_codes_from_trailers_and_trailers_only_responses() {
    let prom = PrometheusConfig::new("grpc-svc").build().unwrap();
    let layer = GrpcMetricsLayer::with_options(prom.recorder(), 100).unwrap();
    let addr = health_server(layer).await;

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
    assert_eq!(raw_call(addr, "/orders.v1.Orders/Get").await, "12");
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
    // The unknown method is `_OTHER`, not its path (see `unknown_methods_are_other_...`).
    assert_eq!(
        sample(
            &text,
            COUNT,
            &[
                (l::RPC_SERVICE, "_OTHER"),
                (l::RPC_METHOD, "_OTHER"),
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
async fn client_side_codes_are_all_errors_and_a_refused_channel_is_connect() {
    let prom = PrometheusConfig::new("caller").build().unwrap();
    // The server's own metrics go to a registry of their own.
    let callee = PrometheusConfig::new("callee").build().unwrap();
    let addr = health_server(GrpcMetricsLayer::with_options(callee.recorder(), 100).unwrap()).await;
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
    // Labelled as the HTTP client labels a refused connection.
    assert_eq!(with(&[(l::ERROR_TYPE, "connect")]), Some(1.0), "{text}");
    assert!(
        !text
            .lines()
            .any(|s| s.contains("rpc_grpc_status_code=\"0\"") && s.contains("error_type")),
        "{text}"
    );
}

/// A tonic server (tonic-health, `orders` serving) behind `layer`, on 127.0.0.1.
async fn health_server(layer: GrpcMetricsLayer) -> std::net::SocketAddr {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

/// Calls `path` on a gRPC server with an empty message; the `grpc-status` it answers.
async fn raw_call(addr: std::net::SocketAddr, path: &str) -> String {
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    let status = res.headers()["grpc-status"].to_str().unwrap().to_owned();
    res.bytes().await.unwrap();
    status
}

async fn check_health(addr: std::net::SocketAddr) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "orders".into(),
        })
        .await
        .unwrap();
}

/// Every `rpc_service` value of the server histogram.
fn rpc_services(text: &str) -> Vec<String> {
    let mut v: Vec<String> = series(text, COUNT)
        .into_iter()
        .filter_map(|s| {
            common::split_labels(s)
                .find(|(k, _)| *k == l::RPC_SERVICE)
                .map(|(_, v)| v.to_owned())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A scanner calling made-up services and methods: tonic answers each trailers-only
/// `UNIMPLEMENTED`, and all of them land in one `_OTHER` series, not one per name, and
/// take no slot of the label-set cap.
#[tokio::test]
async fn unknown_services_and_methods_are_other_not_one_series_each() {
    let prom = PrometheusConfig::new("grpc-svc").build().unwrap();
    // A small cap: unknown names must not use it up before a real method comes.
    let layer = GrpcMetricsLayer::with_options(prom.recorder(), 5).unwrap();
    let addr = health_server(layer).await;
    for i in 0..20 {
        assert_eq!(raw_call(addr, &format!("/scan{i}.v1.Probe/Get{i}")).await, "12");
        // An unknown method of a service the server has.
        assert_eq!(
            raw_call(addr, &format!("/grpc.health.v1.Health/Nope{i}")).await,
            "12"
        );
    }
    check_health(addr).await;

    let handle = prom.handle();
    let text = eventually(Duration::from_secs(10), "41 calls recorded", || {
        let t = handle.render();
        let n: f64 = common::samples(&t, COUNT, &[]).iter().sum();
        async move { (n == 41.0).then_some(t) }
    })
    .await;
    let other = [
        (l::RPC_SERVICE, "_OTHER"),
        (l::RPC_METHOD, "_OTHER"),
        (l::RPC_GRPC_STATUS_CODE, "12"),
        (l::ERROR_TYPE, "UNIMPLEMENTED"),
    ];
    assert_eq!(sample(&text, COUNT, &other), Some(40.0), "{text}");
    assert_eq!(rpc_services(&text), ["_OTHER", "grpc.health.v1.Health"], "{text}");
    assert_eq!(series(&text, COUNT).len(), 2, "{text}");
    assert!(!text.contains("overflow"), "{text}");
    assert_eq!(
        sample(
            &text,
            COUNT,
            &[(l::RPC_METHOD, "Check"), (l::RPC_GRPC_STATUS_CODE, "0")]
        ),
        Some(1.0),
        "{text}"
    );
}

/// With `known_services`, other services are `_OTHER` whatever they answer, and an
/// unknown method of a known service keeps its service.
#[tokio::test]
async fn known_services_fold_every_other_service_into_other() {
    let prom = PrometheusConfig::new("grpc-svc").build().unwrap();
    let layer = GrpcMetricsLayer::builder()
        .recorder(prom.recorder())
        .known_services(["grpc.health.v1.Health"])
        .build()
        .unwrap();
    let addr = health_server(layer).await;
    assert_eq!(raw_call(addr, "/orders.v1.Orders/Get").await, "12");
    assert_eq!(raw_call(addr, "/grpc.health.v1.Health/Nope").await, "12");
    check_health(addr).await;

    let handle = prom.handle();
    let text = eventually(Duration::from_secs(10), "3 calls recorded", || {
        let t = handle.render();
        let n: f64 = common::samples(&t, COUNT, &[]).iter().sum();
        async move { (n == 3.0).then_some(t) }
    })
    .await;
    let labels = |service, method, code| {
        [
            (l::RPC_SERVICE, service),
            (l::RPC_METHOD, method),
            (l::RPC_GRPC_STATUS_CODE, code),
        ]
    };
    assert_eq!(
        sample(&text, COUNT, &labels("_OTHER", "_OTHER", "12")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, COUNT, &labels("grpc.health.v1.Health", "_OTHER", "12")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, COUNT, &labels("grpc.health.v1.Health", "Check", "0")),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains("orders.v1.Orders") && !text.contains("Nope"),
        "{text}"
    );
}

#[test]
fn nonsense_known_services_are_an_error() {
    let empty: [&str; 0] = [];
    let err = GrpcMetricsLayer::builder()
        .known_services(empty)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("known_services is empty"), "{err}");
    for bad in ["/orders.v1.Orders", "orders.v1.Orders/Get", "", "orders v1"] {
        let err = GrpcMetricsLayer::builder()
            .known_services([bad])
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("not a gRPC service name"),
            "{bad:?}: {err}"
        );
    }
}

/// An HTTP response without `grpc-status` answering `/orders.v1.Orders/Get`.
fn plain_http(
    status: u16,
) -> impl tower::Service<
    http::Request<String>,
    Response = http::Response<String>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |_req: http::Request<String>| async move {
        let mut res = http::Response::new(String::from("<html>proxy error</html>"));
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Ok::<_, std::convert::Infallible>(res)
    })
}

fn grpc_request() -> http::Request<String> {
    http::Request::post("http://inventory/orders.v1.Orders/Get")
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap()
}

/// The gRPC code of each HTTP status, per gRPC's http-grpc-status-mapping.md.
const HTTP_TO_GRPC: [(u16, &str, &str); 9] = [
    (400, "13", "INTERNAL"),
    (401, "16", "UNAUTHENTICATED"),
    (403, "7", "PERMISSION_DENIED"),
    (404, "12", "UNIMPLEMENTED"),
    (429, "14", "UNAVAILABLE"),
    (502, "14", "UNAVAILABLE"),
    (503, "14", "UNAVAILABLE"),
    (504, "14", "UNAVAILABLE"),
    (500, "2", "UNKNOWN"),
];

/// A non-200 answer without `grpc-status` (a proxy's error page) gets the code gRPC
/// clients infer from the HTTP status, on the server side…
#[tokio::test]
async fn server_maps_http_statuses_without_grpc_status_to_grpc_codes() {
    use tower::{Layer, ServiceExt};

    for (http, code, name) in HTTP_TO_GRPC {
        let prom = PrometheusConfig::new("grpc-svc").build().unwrap();
        let layer = GrpcMetricsLayer::with_options(prom.recorder(), 100).unwrap();
        let res = layer
            .layer(plain_http(http))
            .oneshot(grpc_request())
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
        let text = prom.handle().render();
        // 404 is UNIMPLEMENTED: the path was not found, so its method is `_OTHER`.
        let method = if http == 404 { "_OTHER" } else { "Get" };
        let mut labels = vec![(l::RPC_METHOD, method), (l::RPC_GRPC_STATUS_CODE, code)];
        // Server side, only some codes are the server's fault.
        if ["INTERNAL", "UNIMPLEMENTED", "UNAVAILABLE", "UNKNOWN"].contains(&name) {
            labels.push((l::ERROR_TYPE, name));
        }
        assert_eq!(sample(&text, COUNT, &labels), Some(1.0), "HTTP {http}: {text}");
    }
}

/// …and on the client side, where every code but OK is an error.
#[tokio::test]
async fn client_maps_http_statuses_without_grpc_status_to_grpc_codes() {
    use tower::{Layer, ServiceExt};

    for (http, code, name) in HTTP_TO_GRPC {
        let prom = PrometheusConfig::new("caller").build().unwrap();
        let layer = GrpcClientMetricsLayer::with_options("inventory", prom.recorder(), 100).unwrap();
        let res = layer
            .layer(plain_http(http))
            .oneshot(grpc_request())
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
        let text = prom.handle().render();
        let labels = [
            (l::RPC_METHOD, "Get"),
            (l::RPC_GRPC_STATUS_CODE, code),
            (l::ERROR_TYPE, name),
        ];
        assert_eq!(
            sample(&text, "rpc_client_call_duration_seconds_count", &labels),
            Some(1.0),
            "HTTP {http}: {text}"
        );
    }
}

/// A server that accepts gRPC calls and never answers them.
async fn silent_server() -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(std::future::pending::<&'static str>);
    serve(app).await
}

fn client_timeout_count(text: &str, error_type: &str) -> Option<f64> {
    sample(
        text,
        "rpc_client_call_duration_seconds_count",
        &[
            (l::PEER_SERVICE, "slow-dep"),
            (l::RPC_METHOD, "Check"),
            (l::ERROR_TYPE, error_type),
        ],
    )
}

/// A call ended by a tower timeout below the metrics layer is a `timeout`, not a
/// `transport` failure.
#[tokio::test]
async fn client_call_ended_by_a_tower_timeout_is_a_timeout() {
    let prom = PrometheusConfig::new("caller").build().unwrap();
    let addr = silent_server().await;
    let layer = GrpcClientMetricsLayer::with_options("slow-dep", prom.recorder(), 100).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .timeout(Duration::from_millis(200))
        .service(channel);
    let err = HealthClient::new(svc)
        .check(HealthCheckRequest {
            service: "orders".into(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("timed out"), "{err:?}");
    let text = prom.handle().render();
    assert_eq!(client_timeout_count(&text, "timeout"), Some(1.0), "{text}");
    assert_eq!(client_timeout_count(&text, "transport"), None, "{text}");
}

/// `Endpoint::timeout` fails the call with tonic's `TimeoutExpired` inside a transport
/// error: a `timeout` too (feature `tonic`).
#[cfg(feature = "tonic")]
#[tokio::test]
async fn client_call_ended_by_the_endpoint_timeout_is_a_timeout() {
    let prom = PrometheusConfig::new("caller").build().unwrap();
    let addr = silent_server().await;
    let layer = GrpcClientMetricsLayer::with_options("slow-dep", prom.recorder(), 100).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let svc = tower::ServiceBuilder::new().layer(layer).service(channel);
    assert!(
        HealthClient::new(svc)
            .check(HealthCheckRequest {
                service: "orders".into(),
            })
            .await
            .is_err()
    );
    let text = prom.handle().render();
    assert_eq!(client_timeout_count(&text, "timeout"), Some(1.0), "{text}");
}

/// With `known_services`, a call to another service is `_OTHER` even when something
/// answers it (a catch-all proxy route here), so its name never becomes a label.
#[tokio::test]
async fn known_services_label_other_services_other_whatever_they_answer() {
    use tower::{Layer, ServiceExt};

    let prom = PrometheusConfig::new("grpc-svc").build().unwrap();
    let layer = GrpcMetricsLayer::builder()
        .recorder(prom.recorder())
        .known_services(["orders.v1.Orders"])
        .build()
        .unwrap();
    let answer_ok = tower::service_fn(|_req: http::Request<String>| async {
        let mut res = http::Response::new(String::new());
        res.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("0"));
        Ok::<_, std::convert::Infallible>(res)
    });
    for path in ["/evil.v1.Probe/Get", "/orders.v1.Orders/Get"] {
        let req = http::Request::post(format!("http://svc{path}"))
            .body(String::new())
            .unwrap();
        let res = layer.layer(answer_ok).oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let text = prom.handle().render();
    let ok = |service, method| {
        sample(
            &text,
            COUNT,
            &[
                (l::RPC_SERVICE, service),
                (l::RPC_METHOD, method),
                (l::RPC_GRPC_STATUS_CODE, "0"),
            ],
        )
    };
    assert_eq!(ok("_OTHER", "_OTHER"), Some(1.0), "{text}");
    assert_eq!(ok("orders.v1.Orders", "Get"), Some(1.0), "{text}");
    assert!(!text.contains("evil"), "{text}");
}
