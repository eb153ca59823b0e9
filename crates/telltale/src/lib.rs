//! telltale makes any axum or tonic service explain itself.
//!
//! One [`Telemetry::server_layer`] gives every request a validated request id, a span in a
//! W3C trace, RED metrics by route template and one JSON access-log line;
//! [`Telemetry::job`] does the same for background jobs ([`job`]). This crate is
//! the facade over the telltale crates; each also works alone:
//!
//! | crate | re-exported as |
//! |---|---|
//! | telltale-core | [`core`] |
//! | telltale-request-id | [`request_id`] |
//! | telltale-log | [`log`] |
//! | telltale-trace | [`trace`] (and [`opentelemetry`], [`opentelemetry_sdk`]: the versions telltale was built with) |
//! | telltale-metrics | [`metrics`] |
//! | telltale-health | [`health`] |
//! | telltale-resilience | [`resilience`] |
//!
//! | feature | what |
//! |---|---|
//! | `reqwest` | `client::reqwest`: request-id propagation, dependency metrics and spans, resilience for reqwest |
//! | `b3`, `jaeger` | B3 and Jaeger `uber-trace-id` propagation |
//! | `sqlx`, `redis`, `http-check` | readiness checks for sqlx pools, Redis, HTTP GET |
//! | `tonic` | gRPC Health Checking Protocol fed by the readiness registry |
//! | `otlp-metrics` | `otlp_metrics`: push every metric over OTLP (gRPC or HTTP/protobuf), alone or next to Prometheus |
//!
//! ```no_run
//! use axum::{routing::get, Router};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let telemetry = telltale::Telemetry::builder("orders-api")
//!         .environment("prod")
//!         .version(env!("CARGO_PKG_VERSION"))
//!         .json_logs()
//!         .init()?;
//!
//!     let app = Router::new()
//!         .route("/orders/{id}", get(|| async { "order" }))
//!         .layer(telemetry.server_layer());
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "reqwest")]
pub mod client;
pub mod job;
#[cfg(feature = "otlp-metrics")]
pub mod otlp_metrics;
pub mod server;
mod telemetry;

/// The names most services need, in one `use telltale::prelude::*;`.
///
/// ```
/// use telltale::prelude::*;
///
/// let health = Health::builder().check("cache", checks::tcp("127.0.0.1:6379").non_critical()).build();
/// assert!(health.is_ok());
/// let _sampling = Sampling::ratio(0.05).keep_errors();
/// ```
pub mod prelude {
    pub use crate::health::{ReadinessCheck as _, checks};
    pub use crate::resilience::{Bulkhead, CircuitBreaker, Retry};
    pub use crate::{Health, RequestId, Sampling, ShutdownConfig, Telemetry, current_request_id};
}

pub use server::{ServerLayer, ServerService};
pub use telemetry::{Telemetry, TelemetryBuilder, TelemetryError};

pub use telltale_core as core;
pub use telltale_core::{RequestId, WithRequestId, current_request_id, with_request_id};
pub use telltale_health as health;
pub use telltale_health::{Health, ShutdownConfig, serve};
pub use telltale_log as log;
pub use telltale_metrics as metrics;
pub use telltale_request_id as request_id;
pub use telltale_resilience as resilience;
pub use telltale_trace as trace;
pub use telltale_trace::{Sampling, opentelemetry, opentelemetry_sdk};
