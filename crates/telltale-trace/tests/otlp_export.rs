//! Real services exporting to a real OTLP/gRPC receiver: one hop over HTTP (reqwest
//! middleware) and one over gRPC (tonic health service), sharing one trace.

use std::net::SocketAddr;
use std::time::Duration;

use axum::{Router, routing::get};
use telltale_test_support::otlp::{OtlpReceiver, ReceivedSpan};
use telltale_trace::export::OtlpProtocol;
use telltale_trace::{Sampling, TraceGuard, Tracing, TracingConfig};

const DEADLINE: Duration = Duration::from_secs(20);

fn tracing_for(service: &str, receiver: &OtlpReceiver) -> (Tracing, TraceGuard) {
    TracingConfig::new(service)
        .otlp(receiver.endpoint(), OtlpProtocol::Grpc)
        .sampling(Sampling::always())
        .export_interval(Duration::from_millis(50))
        .set_global(false)
        .build()
        .expect("valid config")
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    addr
}

fn find<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.service_name == service && s.name() == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_span_reaches_a_real_receiver_with_semconv_attributes() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let (tracing, guard) = tracing_for("orders-api", &receiver);
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(tracing.server_layer());
    let addr = serve(app).await;

    let res = reqwest::Client::new()
        .get(format!("http://{addr}/orders/8812?token=secret"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("user-agent", "telltale-test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "order");

    let spans = receiver
        .wait_for_spans(|s| find(s, "orders-api", "GET /orders/{id}").is_some(), DEADLINE)
        .await
        .expect("server span exported");
    let span = find(&spans, "orders-api", "GET /orders/{id}").unwrap();
    assert_eq!(span.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.parent_span_id(), "00f067aa0ba902b7");
    assert_eq!(span.span.kind, 2, "server kind");
    assert_eq!(span.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(span.attr("http.route").as_deref(), Some("/orders/{id}"));
    assert_eq!(span.attr("url.path").as_deref(), Some("/orders/8812"));
    assert_eq!(span.attr("url.scheme").as_deref(), Some("http"));
    assert_eq!(span.attr("url.query"), None, "query not recorded unless opted in");
    assert_eq!(span.attr("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(span.attr("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(span.attr("server.port"), Some(addr.port().to_string()));
    assert_eq!(span.attr("network.protocol.version").as_deref(), Some("1.1"));
    assert_eq!(span.attr("user_agent.original").as_deref(), Some("telltale-test"));
    assert_eq!(span.attr("client.address").as_deref(), Some("127.0.0.1"));
    assert!(!span.is_error());
    drop(guard);
}

/// Needs the reqwest middleware (feature `reqwest`).
#[cfg(feature = "reqwest")]
mod hops {
    use super::*;
    use axum::extract::State;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    #[derive(Clone)]
    struct OrdersState {
        http: reqwest_middleware::ClientWithMiddleware,
        inventory: String,
        grpc: HealthClient<telltale_trace::client::ClientTrace<tonic::transport::Channel>>,
    }

    async fn get_order(State(s): State<OrdersState>) -> String {
        let res = s
            .http
            .get(format!("{}/items/7", s.inventory))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let mut grpc = s.grpc.clone();
        let health = grpc
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        format!("{status} {:?}", health.into_inner().status)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_and_grpc_hops_share_one_trace_with_correct_parents() {
        let receiver = OtlpReceiver::start().await.unwrap();

        // inventory: HTTP service B, plus a real tonic health service, both traced.
        let (inv, inv_guard) = tracing_for("inventory", &receiver);
        let inventory = Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .layer(inv.server_layer());
        let inventory_addr = serve(inventory).await;

        let (_reporter, health_service) = tonic_health::server::health_reporter();
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc_listener.local_addr().unwrap();
        let grpc_layer = inv.grpc_server_layer();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(grpc_layer)
                .add_service(health_service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc_listener))
                .await
                .unwrap();
        });

        // orders: service A calling both.
        let (orders, orders_guard) = tracing_for("orders-api", &receiver);
        let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(orders.reqwest_middleware("inventory"))
            .build();
        let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
            .unwrap()
            .connect_lazy();
        let grpc = HealthClient::new(
            tower::ServiceBuilder::new()
                .layer(orders.grpc_client_layer("inventory-grpc"))
                .service(channel),
        );
        let app = Router::new()
            .route("/orders/{id}", get(get_order))
            .with_state(OrdersState {
                http,
                inventory: format!("http://{inventory_addr}"),
                grpc,
            })
            .layer(orders.server_layer());
        let addr = serve(app).await;

        let body = reqwest::get(format!("http://{addr}/orders/1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "200 OK 1", "HTTP 200 and gRPC SERVING (1)");

        let spans = receiver
            .wait_for_spans(
                |s| {
                    find(s, "orders-api", "GET /orders/{id}").is_some()
                        && find(s, "orders-api", "GET").is_some()
                        && find(s, "inventory", "GET /items/{id}").is_some()
                        && find(s, "orders-api", "grpc.health.v1.Health/Check").is_some()
                        && find(s, "inventory", "grpc.health.v1.Health/Check").is_some()
                },
                DEADLINE,
            )
            .await
            .unwrap_or_else(|got| {
                panic!(
                    "spans missing; got {:#?}",
                    got.iter()
                        .map(|s| (&s.service_name, s.name()))
                        .collect::<Vec<_>>()
                )
            });

        let a_server = find(&spans, "orders-api", "GET /orders/{id}").unwrap();
        let a_client = find(&spans, "orders-api", "GET").unwrap();
        let b_server = find(&spans, "inventory", "GET /items/{id}").unwrap();
        let a_grpc = find(&spans, "orders-api", "grpc.health.v1.Health/Check").unwrap();
        let b_grpc = find(&spans, "inventory", "grpc.health.v1.Health/Check").unwrap();

        let trace = a_server.trace_id();
        for s in [a_client, b_server, a_grpc, b_grpc] {
            assert_eq!(s.trace_id(), trace, "{} shares the trace", s.name());
        }
        assert_eq!(a_server.parent_span_id(), "", "A's server span is the root");
        assert_eq!(a_client.parent_span_id(), a_server.span_id());
        assert_eq!(b_server.parent_span_id(), a_client.span_id());
        assert_eq!(a_grpc.parent_span_id(), a_server.span_id());
        assert_eq!(b_grpc.parent_span_id(), a_grpc.span_id());

        assert_eq!(a_client.span.kind, 3, "client kind");
        assert_eq!(a_client.attr("peer.service").as_deref(), Some("inventory"));
        assert_eq!(a_client.attr("http.request.method").as_deref(), Some("GET"));
        assert_eq!(a_client.attr("server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(
            a_client.attr("server.port"),
            Some(inventory_addr.port().to_string())
        );
        assert_eq!(a_client.attr("http.response.status_code").as_deref(), Some("200"));
        assert_eq!(
            a_client.attr("url.full"),
            Some(format!("http://{inventory_addr}/items/7"))
        );

        for g in [a_grpc, b_grpc] {
            assert_eq!(g.attr("rpc.system").as_deref(), Some("grpc"));
            assert_eq!(g.attr("rpc.service").as_deref(), Some("grpc.health.v1.Health"));
            assert_eq!(g.attr("rpc.method").as_deref(), Some("Check"));
            assert_eq!(g.attr("rpc.grpc.status_code").as_deref(), Some("0"));
            assert!(!g.is_error());
        }
        assert_eq!(a_grpc.attr("peer.service").as_deref(), Some("inventory-grpc"));
        drop((orders_guard, inv_guard));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_guard_flushes_queued_spans() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let (tracing, guard) = TracingConfig::new("flushed")
        .otlp(receiver.endpoint(), OtlpProtocol::Grpc)
        .export_interval(Duration::from_secs(3600))
        .set_global(false)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(tracing.server_layer());
    let addr = serve(app).await;
    let res = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(res.text().await.unwrap(), "ok");
    assert!(
        receiver.spans().is_empty(),
        "nothing exported before the interval"
    );
    // The guard blocks while it flushes; keep it off the runtime's worker threads.
    tokio::task::spawn_blocking(move || drop(guard)).await.unwrap();
    let spans = receiver
        .wait_for_spans(|s| s.iter().any(|s| s.service_name == "flushed"), DEADLINE)
        .await
        .expect("flushed on drop");
    assert_eq!(spans[0].name(), "GET /");
    assert_eq!(tracing.export_stats().exported, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_never_fails_a_request_and_failures_are_counted() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (tracing, guard) = TracingConfig::new("orphan")
        .otlp(format!("http://127.0.0.1:{port}"), OtlpProtocol::Grpc)
        .export_interval(Duration::from_millis(20))
        .export_timeout(Duration::from_millis(500))
        .set_global(false)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(tracing.server_layer());
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let res = client.get(format!("http://{addr}/")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let until = std::time::Instant::now() + DEADLINE;
    while tracing.export_stats().failures == 0 {
        assert!(std::time::Instant::now() < until, "export failure not counted");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::task::spawn_blocking(move || drop(guard)).await.unwrap();
}

/// A minimal OTLP/HTTP (protobuf) receiver: `POST /v1/traces`.
async fn http_receiver() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;
    let names = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = names.clone();
    let app = Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: http::HeaderMap, body: bytes::Bytes| {
            let seen = seen.clone();
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            seen.lock().unwrap().push(s.name);
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse {
                        partial_success: None,
                    }
                    .encode_to_vec(),
                )
            }
        }),
    );
    (serve(app).await, names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_over_http_protobuf_exports_spans() {
    let (collector, names) = http_receiver().await;
    let (tracing, guard) = TracingConfig::new("http-exporting")
        .otlp(format!("http://{collector}"), OtlpProtocol::HttpProtobuf)
        .export_interval(Duration::from_millis(20))
        .set_global(false)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .layer(tracing.server_layer());
    let addr = serve(app).await;
    assert_eq!(
        reqwest::get(format!("http://{addr}/items/3"))
            .await
            .unwrap()
            .status(),
        200
    );
    let until = std::time::Instant::now() + DEADLINE;
    while !names.lock().unwrap().iter().any(|n| n == "GET /items/{id}") {
        assert!(
            std::time::Instant::now() < until,
            "span not received over OTLP/HTTP"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tracing.export_stats().failures, 0);
    tokio::task::spawn_blocking(move || drop(guard)).await.unwrap();
}
