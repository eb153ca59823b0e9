//! JSON logs with stable keys, redaction and a one-line-per-request access log, for
//! `tracing-subscriber`.
//!
//! ```
//! use telltale_log::{AccessLogLayer, CaptureWriter, LogConfig, LogFormat};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let capture = CaptureWriter::new(); // in production: config.non_blocking(std::io::stdout())
//! let config = LogConfig::new("orders-api").environment("dev").format(LogFormat::Json);
//! let subscriber = tracing_subscriber::registry().with(config.layer(capture.clone()).unwrap());
//! tracing::subscriber::with_default(subscriber, || tracing::info!(token = "s3cr3t", "hello"));
//!
//! let line = &capture.json_lines().unwrap()[0];
//! assert_eq!(line["message"], "hello");
//! assert_eq!(line["token"], "[REDACTED]");
//! # let _ = AccessLogLayer::new();
//! ```
//!
//! - [`JsonLayer`] ([`json`]): the line format: stable keys ([`keys`]), trace and request
//!   ids, typed span fields, escaping that keeps every event on one line.
//! - [`AccessLogLayer`] ([`access`]): one event per request at the end of the response body.
//! - [`Redaction`] ([`redact`]): names whose values are never written.
//! - [`LogWriter`] / [`LogGuard`] ([`writer`]): non-blocking writer whose dropped lines are
//!   counted (`telltale_log_dropped_lines_total`) and reported; [`CaptureWriter`] for tests.
//! - [`LogConfig`] / [`LogFormat`] ([`config`]): builder, `RUST_LOG`, `TELLTALE_LOG_FORMAT`,
//!   [`LogConfig::init`].
//! - [`LogFilter`] ([`filter`]): the `RUST_LOG` filter, without `EnvFilter`'s per-span
//!   locking when no directive needs it.
//!
//! This crate does not depend on OpenTelemetry: trace ids are read from the
//! [`TraceIds`](telltale_core::trace_ids::TraceIds) that telltale-trace stores in span
//! extensions.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod config;
mod escape;
pub mod filter;
pub mod json;
pub mod keys;
mod pretty;
pub mod redact;
pub mod writer;

pub use access::{AccessLog, AccessLogBuilder, AccessLogLayer, AccessObserver, AccessPart, AccessRequest};
pub use config::{LogConfig, LogConfigError, LogFormat};
pub use filter::LogFilter;
pub use json::JsonLayer;
pub use redact::Redaction;
pub use writer::{CaptureWriter, LogGuard, LogWriter};
