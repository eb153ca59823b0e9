//! The reference Orders API: a real axum service wired with telltale.
//!
//! - `GET /orders`, `GET /orders/{id}`, `POST /orders` over SQLite (embedded, default) or
//!   Postgres (`DATABASE_URL`); placing an order reserves stock at the inventory service
//!   over HTTP through telltale's client stack; `GET /stock/{sku}` asks the inventory over
//!   gRPC.
//! - `/healthz`, `/livez`, `/readyz` (database critical, inventory not), `/startupz`,
//!   `/metrics`; JSON logs on stdout; graceful drain on SIGTERM; a request not answered
//!   within `REQUEST_TIMEOUT_MS` (10 s) gets 503.
//! - Both ways to the inventory get the outbound treatment: the request id is sent on,
//!   a client span and dependency RED metrics (`http_client_request_duration_seconds`,
//!   `rpc_client_call_duration_seconds`, `peer_service="inventory"`) record each call,
//!   and a resilience policy bounds it (per-attempt timeout, deadline, budgeted retries,
//!   circuit breaker, the breakers' state in `/readyz` as non-critical checks).
//! - Traces: W3C context in and out, spans for the request, the HTTP and gRPC calls to the
//!   inventory; OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; 5% of traces kept,
//!   plus every error and every request slower than 500 ms (`OTEL_TRACES_SAMPLER` overrides).
//! - Placing an order enqueues its fulfilment (an outbox table, same transaction); the
//!   [`worker`] runs it (inside this process unless `WORKER=off`), continuing the
//!   request's trace, with the request's id in its logs, and job metrics on `/metrics`.
//! - `FAULT_ERROR_RATE=0.1` makes 10% of `/orders` requests fail with 500, to watch the
//!   error ratio and the SLO burn alerts (`examples/orders-api/slo.yaml`) react.
//!
//! With no `INVENTORY_URL`, an embedded inventory starts on free loopback ports (HTTP and
//! gRPC), so `cargo run -p orders-api` needs nothing else. Run `cargo run -p inventory` and
//! set `INVENTORY_URL=http://127.0.0.1:8081 INVENTORY_GRPC_URL=http://127.0.0.1:50051` to
//! see two services in one trace.

pub mod config;
pub mod routes;
pub mod store;
pub mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use telltale::health::{CheckError, Health, ReadinessCheck as _, checks};
use telltale::metrics::grpc::{GrpcClientMetricsLayer, GrpcClientMetricsService};
use telltale::request_id::{PropagateRequestId, PropagateRequestIdLayer};
use telltale::resilience::tower::ClientPolicyService;
use telltale::resilience::{CircuitBreaker, ClientPolicy, Retry};
use telltale::trace::client::ClientTrace;
use telltale::{Sampling, ShutdownConfig, Telemetry};
use tokio::net::TcpListener;

pub use config::Config;
use routes::{ApiError, ApiExtract, AppState};
use store::Store;

/// Everything `run` needs to serve, built from a [`Config`] (tests build it too).
pub struct Service {
    /// The complete router: routes, health, metrics, server layer.
    pub router: Router,
    /// The readiness registry (drain, checks).
    pub health: Health,
    /// Background tasks started for embedded dependencies (aborted on drop).
    pub background: Vec<tokio::task::JoinHandle<()>>,
    /// The embedded fulfilment worker, when `WORKER=embedded` (aborted on drop).
    pub worker: Option<tokio::task::JoinHandle<()>>,
    /// Tells the embedded worker to stop after its current job.
    pub stop_worker: tokio::sync::watch::Sender<bool>,
}

impl Service {
    /// Stops the embedded worker after its current job, waiting at most `grace`.
    pub async fn stop_worker(&mut self, grace: Duration) {
        let _ = self.stop_worker.send(true);
        if let Some(task) = self.worker.take()
            && tokio::time::timeout(grace, task).await.is_err()
        {
            tracing::warn!(?grace, "the worker did not stop in time");
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for task in self.background.iter().chain(&self.worker) {
            task.abort();
        }
    }
}

/// The sampling of the Orders system's traces (the API, the worker, the load generator):
/// 5% of traces, plus every error and every request slower than 500 ms.
pub fn sampling() -> Sampling {
    Sampling::ratio(0.05)
        .keep_errors()
        .keep_slower_than(Duration::from_millis(500))
}

/// Builds telemetry for the Orders API from the configuration.
pub fn telemetry(config: &Config) -> Result<Telemetry, telltale::TelemetryError> {
    Telemetry::builder("orders-api")
        .environment(config.environment.clone())
        .version(env!("CARGO_PKG_VERSION"))
        .json_logs()
        .otlp_from_env()
        // Metrics go to /metrics (below) and, when OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT
        // is set, also to the collector.
        .otlp_metrics_from_env()
        .sampling(sampling())
        .prometheus()
        .init()
}

/// Builds the service: database, inventory client, health, routes and layers.
pub async fn build(config: &Config, telemetry: &Telemetry) -> Result<Service, Box<dyn std::error::Error>> {
    let store = Store::connect(config.database_url.as_deref()).await?;
    let mut background = Vec::new();
    if let Store::Postgres(_) = store {
        // The database may be down at start: the service starts anyway and reports
        // not-ready until it comes up; the tables are created on the first success.
        if let Err(e) = store.migrate().await {
            tracing::warn!(error = %telltale::health::redact::redact_credentials(&e.to_string()), "database not reachable at start; will create the tables when it is");
            background.push(tokio::spawn(migrate_when_reachable(store.clone())));
        }
    }

    let (inventory_url, inventory_grpc_url) = match (&config.inventory_url, &config.inventory_grpc_url) {
        (Some(http), Some(grpc)) => (http.clone(), grpc.clone()),
        _ => {
            let (http, grpc, tasks) = embedded_inventory(telemetry).await?;
            background.extend(tasks);
            (
                config.inventory_url.clone().unwrap_or(http),
                config.inventory_grpc_url.clone().unwrap_or(grpc),
            )
        }
    };

    let inventory = telltale::client::reqwest(reqwest::Client::new())
        .dependency("inventory")
        .timeout(Duration::from_millis(500))
        .deadline(Duration::from_secs(2))
        .retry(Retry::exponential().max_attempts(3).budget(0.2))
        .circuit_breaker(
            CircuitBreaker::failure_rate(0.5)
                .min_calls(20)
                .open_for(Duration::from_secs(10)),
        )
        .build()?;
    let (grpc_channel, grpc_policy) = inventory_grpc(telemetry, &inventory_grpc_url)?;

    let schema = store.clone();
    let health = Health::builder()
        // The tables, not just `SELECT 1`: a database that lost its schema is not ready.
        .check(
            "db",
            checks::from_fn(move || {
                let store = schema.clone();
                async move { store.check_schema().await.map_err(CheckError::from) }
            }),
        )
        .check("inventory", inventory.readiness_check().non_critical())
        .check(
            "inventory-grpc",
            checks::from_fn(move || std::future::ready(grpc_policy.readiness().map_err(CheckError::msg)))
                .non_critical(),
        )
        .timeout(Duration::from_millis(300))
        .cache_for(Duration::from_secs(1))
        .build()?;

    let (stop_worker, stop) = tokio::sync::watch::channel(false);
    let worker = config
        .embedded_worker
        .then(|| tokio::spawn(worker::Worker::new(store.clone(), telemetry).run(stop)));

    let state = AppState {
        store,
        inventory,
        inventory_url,
    };
    let mut app = routes::routes(state).route("/stock/{sku}", get(stock).with_state(grpc_channel));
    if config.fault_error_rate > 0.0 {
        let rate = config.fault_error_rate;
        app = app.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            inject_faults(rate, req, next)
        }));
    }
    let router = app
        .merge(health.router())
        .merge(telemetry.metrics_router())
        // A request not answered in time (a slow handler, or a client sending its body
        // slowly) gets 503. Inside the panic layer and the server layer, as
        // telltale-resilience's `server` docs order them, so the span, metrics and access
        // log see the 503.
        .layer(telltale::resilience::server::request_timeout(
            config.request_timeout,
            StatusCode::SERVICE_UNAVAILABLE,
        )?)
        // A handler panic becomes a JSON 500 naming the request id (counted, logged at
        // ERROR); inside the server layer, so the span, metrics and access log see it.
        .layer(telltale::resilience::server::CatchPanicLayer::new())
        .layer(telemetry.server_layer());
    Ok(Service {
        router,
        health,
        background,
        worker,
        stop_worker,
    })
}

/// Runs the Orders API until SIGTERM/SIGINT, then drains.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = telemetry(&config)?;
    // Bound first: a busy port stops the start before anything else is set up.
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {} (set by HOST and PORT): {e}", config.addr))?;
    let mut service = build(&config, &telemetry).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "orders-api listening");
    let shutdown = ShutdownConfig {
        drain_delay: config.drain_delay,
        grace_deadline: config.shutdown_grace,
    };
    telltale::serve(listener, service.router.clone(), &service.health, shutdown).await?;
    service.stop_worker(config.shutdown_grace).await;
    tracing::info!("orders-api stopped");
    Ok(())
}

/// Retries the migration every second until it succeeds.
async fn migrate_when_reachable(store: Store) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if store.migrate().await.is_ok() {
            tracing::info!("database reachable: tables ready");
            return;
        }
    }
}

async fn inject_faults(rate: f64, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/orders") && fastrand::f64() < rate {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({ "error": "injected fault" })),
        )
            .into_response();
    }
    next.run(req).await
}

/// The gRPC channel to the inventory, outermost layer first: request id, client span,
/// dependency metrics, resilience policy, the tonic channel.
type InventoryGrpc =
    PropagateRequestId<ClientTrace<GrpcClientMetricsService<ClientPolicyService<tonic::transport::Channel>>>>;

/// The gRPC channel to the inventory and its resilience policy.
///
/// The layers are in the order telltale's design gives for clients (the resilience
/// `policy` docs: the request id, trace and dependency-metrics layers in front of the
/// policy), so one `GetStock` is one span and one `rpc_client_call_duration_seconds`
/// observation however many attempts it took, and the attempts are counted in
/// `telltale_client_attempts_total{peer_service="inventory-grpc"}`.
///
/// The policy is the gRPC channel's own, `inventory-grpc`: its breaker must not open on
/// the HTTP calls' failures (nor theirs on these), and breaker metrics are labelled by
/// the policy's name. It may retry `UNAVAILABLE` (`retry_non_idempotent`) because the
/// channel carries only reads (`GetStock`); a method that changes something would need a
/// policy of its own that does not.
fn inventory_grpc(
    telemetry: &Telemetry,
    url: &str,
) -> Result<(InventoryGrpc, ClientPolicy), Box<dyn std::error::Error>> {
    let policy = ClientPolicy::builder("inventory-grpc")
        .timeout(Duration::from_millis(500))
        .deadline(Duration::from_secs(2))
        .retry(
            Retry::exponential()
                .max_attempts(3)
                .budget(0.2)
                .retry_non_idempotent(),
        )
        .circuit_breaker(
            CircuitBreaker::failure_rate(0.5)
                .min_calls(20)
                .open_for(Duration::from_secs(10)),
        )
        .build()?;
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("INVENTORY_GRPC_URL {url:?}: {e}"))?
        .connect_timeout(Duration::from_millis(500));
    let channel = tower::ServiceBuilder::new()
        .layer(PropagateRequestIdLayer::new())
        .layer(telemetry.tracing().grpc_client_layer("inventory"))
        .layer(GrpcClientMetricsLayer::new("inventory"))
        .layer(policy.layer())
        .service(endpoint.connect_lazy());
    Ok((channel, policy))
}

async fn stock(
    State(channel): State<InventoryGrpc>,
    ApiExtract(Path(sku)): ApiExtract<Path<String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // As for `POST /orders`; the inventory is not asked about what cannot be a SKU.
    routes::check_sku(&sku, StatusCode::BAD_REQUEST)?;
    match inventory::grpc::get_stock(channel, &sku).await {
        Ok(reply) => Ok(Json(
            serde_json::json!({ "sku": reply.sku, "available": reply.available }),
        )),
        Err(status) if status.code() == tonic::Code::NotFound => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "unknown sku"))
        }
        Err(status) => {
            tracing::warn!(code = ?status.code(), grpc_message = status.message(), "inventory gRPC call failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "inventory unavailable",
            ))
        }
    }
}

/// Starts an in-process inventory (HTTP and gRPC) on free loopback ports. It is reached
/// over real connections and carries its own request-id and server-span layers, so the
/// trace shows the hops; it reports as `orders-api` (one process, one telemetry).
async fn embedded_inventory(
    telemetry: &Telemetry,
) -> std::io::Result<(String, String, Vec<tokio::task::JoinHandle<()>>)> {
    let inv = inventory::Inventory::demo();
    let http = TcpListener::bind("127.0.0.1:0").await?;
    let http_addr: SocketAddr = http.local_addr()?;
    let app = inventory::app(inv.clone(), inventory::Faults::none())
        .layer(telemetry.tracing().server_layer())
        .layer(telltale::request_id::RequestIdLayer::new());
    let http_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(http, app).await {
            tracing::error!(error = %e, "embedded inventory (HTTP) stopped");
        }
    });
    let grpc = TcpListener::bind("127.0.0.1:0").await?;
    let grpc_addr: SocketAddr = grpc.local_addr()?;
    let grpc_trace = telemetry.tracing().grpc_server_layer();
    let grpc_task = tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(grpc);
        if let Err(e) = tonic::transport::Server::builder()
            .layer(grpc_trace)
            .add_service(inventory::grpc::InventoryGrpcServer::new(inv))
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!(error = %e, "embedded inventory (gRPC) stopped");
        }
    });
    Ok((
        format!("http://{http_addr}"),
        format!("http://{grpc_addr}"),
        vec![http_task, grpc_task],
    ))
}
