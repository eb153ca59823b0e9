//! The composed server layer: request id → trace → RED metrics → access log.
//!
//! ```
//! use axum::{routing::get, Router};
//!
//! # fn build(telemetry: &telltale::Telemetry) -> Router {
//! Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     .layer(telemetry.server_layer())
//! # }
//! ```
//!
//! Add it with `Router::layer` *after* the routes: the layers then run once a route has
//! matched and label metrics, spans and logs with the route template (`/orders/{id}`).
//! Requests that match no route are labelled `unmatched`, never with their raw path.
//!
//! The order is fixed, outermost first, so each layer sees what the ones above it added:
//! the request id first (so the span, the metrics exemplar and every log line carry it),
//! then the server span (so the access line inside it carries trace and span ids), then
//! the RED metrics, then the access log.

use tower::Layer;

use telltale_log::{AccessLog, AccessLogLayer};
use telltale_metrics::{MetricsLayer, MetricsService};
use telltale_request_id::{RequestIdLayer, RequestIdService};
use telltale_trace::TraceLayer;
use telltale_trace::server::TraceService;

/// The layer returned by [`Telemetry::server_layer`](crate::Telemetry::server_layer).
#[derive(Clone, Debug)]
pub struct ServerLayer {
    pub(crate) request_id: RequestIdLayer,
    pub(crate) trace: TraceLayer,
    pub(crate) metrics: MetricsLayer,
    pub(crate) access_log: AccessLogLayer,
}

/// The service [`ServerLayer`] produces.
pub type ServerService<S> = RequestIdService<TraceService<MetricsService<AccessLog<S>>>>;

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.access_log.layer(inner);
        let inner = self.metrics.layer(inner);
        let inner = self.trace.layer(inner);
        self.request_id.layer(inner)
    }
}
