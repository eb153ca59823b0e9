//! Header names used across telltale.
//!
//! ```
//! assert_eq!(telltale_core::headers::X_REQUEST_ID.as_str(), "x-request-id");
//! ```

use http::HeaderName;

/// The default request-id header, `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// W3C Trace Context `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// W3C Trace Context `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// W3C Trace Context Level 2 `traceresponse`.
pub const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");
/// W3C Baggage `baggage`.
pub const BAGGAGE: HeaderName = HeaderName::from_static("baggage");
/// gRPC status code, in headers (trailers-only responses) or trailers.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// gRPC status message.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// gRPC deadline propagation.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// `Idempotency-Key`: marks a non-idempotent request as safe to retry.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// `Retry-After`.
pub const RETRY_AFTER: HeaderName = http::header::RETRY_AFTER;
