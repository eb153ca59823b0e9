//! RED metrics for axum, tower and tonic servers and clients, a Prometheus `/metrics`
//! router, and a cardinality guard.
//!
//! | feature | what |
//! |---|---|
//! | *(none)* | [`names`]: every metric and label name, nothing else (no dependencies) |
//! | `layers` (default) | [`MetricsLayer`] (HTTP server), [`GrpcMetricsLayer`] (gRPC server), [`GrpcClientMetricsLayer`] (gRPC client), [`client`] metrics |
//! | `prometheus` (default) | [`PrometheusConfig`] recorder install, [`metrics_router`], OpenMetrics [`exemplars`], scrape-time [`collector`]s, [`saturation`] gauges |
//! | `reqwest` | `client::ClientMetricsMiddleware` for reqwest-middleware |
//! | `process` | `process::ProcessCollector`: CPU, memory, fds, threads, start time |
//! | `tokio-runtime` | `runtime::RuntimeCollector`: workers, global queue depth, busy time |
//! | `tonic` | [`GrpcClientMetricsLayer`] also recognises tonic's `TimeoutExpired` and `DEADLINE_EXCEEDED` `Status` errors as `error_type="timeout"` |
//!
#![cfg_attr(feature = "prometheus", doc = "```")]
#![cfg_attr(not(feature = "prometheus"), doc = "```ignore")]
//! use axum::{routing::get, Router};
//! use telltale_metrics::{metrics_router, MetricsLayer, PrometheusConfig};
//!
//! // In tests: a recorder that is not global. In a service: `.install()?`.
//! let prom = PrometheusConfig::new("orders-api").version("1.0.0").build().unwrap();
//! let layer = MetricsLayer::builder().recorder(prom.recorder()).build().unwrap();
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     .layer(layer)
//!     .merge(metrics_router(prom.handle()));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod names;

#[cfg(feature = "layers")]
mod cache;
#[cfg(feature = "layers")]
pub mod client;
#[cfg(feature = "layers")]
pub mod grpc;
#[cfg(feature = "layers")]
pub mod job;
#[cfg(feature = "layers")]
mod observe;
#[cfg(feature = "layers")]
pub mod recorder;
#[cfg(feature = "layers")]
pub mod server;

#[cfg(feature = "prometheus")]
pub mod collector;
#[cfg(feature = "prometheus")]
pub mod exemplars;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "tokio-runtime")]
pub mod runtime;
#[cfg(feature = "prometheus")]
pub mod saturation;

#[cfg(feature = "layers")]
pub use client::ClientMetrics;
#[cfg(feature = "layers")]
pub use grpc::{
    GrpcClientMetricsLayer, GrpcClientMetricsService, GrpcMetricsLayer, GrpcMetricsLayerBuilder,
    GrpcMetricsService,
};
#[cfg(feature = "layers")]
pub use job::JobMetrics;
#[cfg(feature = "layers")]
pub use observe::{MetricsBody, RequestObservation, ResponseFuture};
#[cfg(feature = "layers")]
pub use recorder::RecorderRef;
#[cfg(feature = "layers")]
pub use server::{MetricsLayer, MetricsLayerBuilder, MetricsPart, MetricsService};

#[cfg(feature = "prometheus")]
pub use prometheus::{MetricsHandle, Prometheus, PrometheusConfig, PrometheusError, metrics_router};

/// A layer configuration value is invalid; the message says which and why.
#[cfg(feature = "layers")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

#[cfg(feature = "layers")]
impl ConfigError {
    pub(crate) fn new(message: String) -> Self {
        ConfigError(message)
    }
}

#[cfg(feature = "layers")]
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid telltale-metrics configuration: {}", self.0)
    }
}

#[cfg(feature = "layers")]
impl std::error::Error for ConfigError {}
