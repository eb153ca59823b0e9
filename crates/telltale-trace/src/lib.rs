//! W3C trace context and baggage, OpenTelemetry server and client spans, tail sampling,
//! OTLP export.
//!
//! ```
//! use axum::{routing::get, Router};
//! use telltale_trace::{pipeline::SpanPipeline, server::TraceLayer};
//!
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "ok" }))
//!     .layer(TraceLayer::new(SpanPipeline::disabled()));
//! ```
//!
//! # How spans are made, and why
//!
//! The popular stack (`tracing` span → `tracing-opentelemetry` → OpenTelemetry SDK span)
//! pays for two spans per request, for every field recorded twice, and for building an SDK
//! span even for requests sampling will drop (see `PEER-BASELINE.md`). telltale's server
//! and client layers instead:
//!
//! - keep the span as plain data while the request runs (ids, start time, and cheap
//!   `Arc`/`Bytes` clones of what the attributes will need), and build the OpenTelemetry
//!   `SpanData` only when the span ends *and* will be exported or must be held for a tail
//!   decision ([`pipeline`]). A request that is not sampled and not recorded costs an id,
//!   a `tracing` span and a context, nothing more;
//! - open one light `tracing` span per request (INFO, target [`names::SPAN_TARGET`]) that
//!   carries [`TraceIds`](telltale_core::trace_ids::TraceIds) in its extensions, so logs
//!   (telltale-log) write `trace_id`/`span_id` without any OpenTelemetry dependency;
//! - attach the OpenTelemetry [`Context`](opentelemetry::Context) while the inner service
//!   is polled, so client spans, `opentelemetry::global::tracer` spans and bridged
//!   `tracing` spans made inside the handler have the server span as parent.
//!
//! Spans made through the OpenTelemetry API go through the same sampler and pipeline
//! (`SpanPipeline::sampler`/`processor`), and `tracing` spans can be bridged on demand
//! with `tracing-opentelemetry` ([`Tracing::tracing_layer`], opt-in), which skips
//! telltale's own request spans so a request is never exported twice.
//!
//! Measured (`docs/perf/trace.md`): against axum-tracing-opentelemetry's per-request
//! overhead, a request dropped by sampling costs about a fifth to a quarter, an exported
//! one about two thirds.
//!
//! # The pieces
//!
//! - [`TracingConfig`] → [`Tracing`] (layers, provider, counters) + [`TraceGuard`]
//!   (flushes on drop): exporter (OTLP gRPC or HTTP/protobuf, stdout, any `SpanExporter`),
//!   resource, environment variables.
//! - [`server::TraceLayer`] (HTTP and gRPC server spans), [`client::ClientTraceLayer`]
//!   (tower HTTP clients and tonic channels), `reqwest::TracingMiddleware` (feature
//!   `reqwest`), [`bridge`] (opt-in `tracing` spans).
//! - [`sampling`]: parent-based, consistent trace-id ratio, keep errors and slow requests
//!   with a bounded tail buffer ([`pipeline`]).
//! - [`job`]: background jobs: the enqueuing request's context carried into a consumer
//!   span per run.
//! - [`propagation`]: W3C `traceparent`/`tracestate`/`baggage` (B3, Jaeger by feature).
//! - [`names`]: metric names and attribute keys.
//!
//! Features: `axum` (default; route template and client address from axum's extensions),
//! `reqwest`, `b3`, `jaeger`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bridge;
pub mod client;
pub mod export;
pub mod job;
pub mod names;
pub mod pipeline;
pub mod propagation;
#[cfg(feature = "reqwest")]
pub mod reqwest;
pub mod sampling;
pub mod server;
mod span;

pub use client::ClientTraceLayer;
pub use export::{TraceConfigError, TraceGuard, Tracing, TracingConfig};
pub use pipeline::SpanPipeline;
pub use sampling::Sampling;
pub use server::{TraceLayer, TracePart, TracedRequest};

/// The OpenTelemetry API crate telltale was built with: use this one, not another
/// version, or spans silently go to a second, unconfigured global provider.
pub use opentelemetry;
/// The OpenTelemetry SDK crate telltale was built with.
pub use opentelemetry_sdk;
