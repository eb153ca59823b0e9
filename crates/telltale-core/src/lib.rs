//! Shared vocabulary for every telltale crate.
//!
//! This crate is deliberately light (no OpenTelemetry, no metrics): it holds the
//! types and rules that the request-id, log, trace, metrics, health and resilience
//! crates must agree on, so that each is written once.
//!
//! - [`RequestId`]: a validated request id, and the task-local "current request id".
//! - [`route`]: the route label (axum `MatchedPath`, gRPC `/pkg.Svc/Method`, or the
//!   fixed [`route::UNMATCHED`] label — never the raw path).
//! - [`method`]: HTTP method normalisation (`_OTHER` for anything non-standard).
//! - [`outcome`]: what counts as an error on the server and the client side, for HTTP
//!   and gRPC, and the `error.type` values.
//! - [`headers`]: header names.
//! - [`body`]: a response-body wrapper that reports, exactly once, how the body ended.
//! - [`trace_ids`]: trace/span ids as plain data in `tracing` span extensions, for logs.
//! - [`ascii`]: the eight-bytes-at-a-time printable-ASCII test (request ids, JSON escaping).
//! - `extract` (feature `axum`): `RequestId` as an axum extractor.
//!
//! ```
//! use telltale_core::{method, outcome, RequestId};
//! use http::{Method, StatusCode};
//!
//! let id = RequestId::parse("req-42").unwrap();
//! assert_eq!(id.as_str(), "req-42");
//! assert!(RequestId::parse("has space").is_err());
//!
//! assert_eq!(method::normalize(&Method::GET), "GET");
//! assert_eq!(method::normalize(&Method::from_bytes(b"PURGE").unwrap()), "_OTHER");
//!
//! assert!(outcome::server_http(StatusCode::INTERNAL_SERVER_ERROR).is_error());
//! assert!(!outcome::server_http(StatusCode::NOT_FOUND).is_error());
//! assert!(outcome::client_http(StatusCode::NOT_FOUND).is_error());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ascii;
pub mod body;
#[cfg(feature = "axum")]
pub mod extract;
pub mod headers;
pub mod method;
pub mod outcome;
pub mod request_id;
pub mod route;
pub mod status;
pub mod trace_ids;

pub use request_id::{InvalidRequestId, RequestId, WithRequestId, current_request_id, with_request_id};
