//! Shared set-up of the server-layer benchmarks: the same `GET /orders/{id}` handler
//! (74-byte JSON) the peer baseline uses, bare and behind `server_layer()`.

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt;
use telltale::{Sampling, Telemetry};
use tower::ServiceExt;

#[derive(serde::Serialize)]
struct Order {
    id: u64,
    sku: &'static str,
    quantity: u32,
    status: &'static str,
    total_cents: u64,
}

async fn get_order() -> Json<Order> {
    Json(Order {
        id: 42,
        sku: "sku-apple-000001",
        quantity: 2,
        status: "placed",
        total_cents: 1998,
    })
}

/// The bare app. Benches call `.with_state(())` on the finished router, as `axum::serve`
/// does (`into_make_service`), so routes and their layers are built once, not per request.
pub(crate) fn bare() -> Router {
    Router::new().route("/orders/{id}", get(get_order))
}

/// Telemetry as DESIGN.md's example: JSON logs (to a sink), 5% ratio + keep errors and
/// slow requests, Prometheus. Call inside a runtime.
pub(crate) fn telemetry() -> Telemetry {
    Telemetry::builder("bench")
        .environment("bench")
        .version("1.0.0")
        .log_writer(std::io::sink())
        .sampling(
            Sampling::ratio(0.05)
                .keep_errors()
                .keep_slower_than(Duration::from_millis(500)),
        )
        .prometheus()
        .init()
        .expect("telemetry")
}

/// A request with a W3C `traceparent` (flag `01` sampled upstream, `00` not) and no
/// `x-request-id`, as in PEER-BASELINE.md.
pub(crate) fn request(flags: &str) -> http::Request<Body> {
    http::Request::get("/orders/42")
        .header(
            "traceparent",
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"),
        )
        .body(Body::empty())
        .expect("request")
}

/// One request through `app`, body read to the end (so end-of-body work runs).
pub(crate) async fn call(app: &Router, req: http::Request<Body>) -> usize {
    let res = app.clone().oneshot(req).await.expect("infallible");
    res.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0)
}
