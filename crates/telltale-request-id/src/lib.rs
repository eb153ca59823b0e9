//! Request ids for axum and tower: validate or generate, expose to the request, echo on
//! the response, propagate on outbound calls.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use telltale_request_id::{current_request_id, RequestId, RequestIdLayer};
//! use tower::ServiceExt;
//!
//! async fn get_order(id: RequestId) -> String {
//!     // Any code running in the request sees the same id, without threading it by hand:
//!     assert_eq!(current_request_id(), Some(id.clone()));
//!     format!("handled {id}")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let app = Router::new()
//!     .route("/orders/{id}", get(get_order))
//!     .layer(RequestIdLayer::new());
//!
//! // A valid incoming id is kept and echoed.
//! let req = Request::get("/orders/1").header("x-request-id", "lb-7f3a9c").body(Body::empty()).unwrap();
//! let res = app.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["x-request-id"], "lb-7f3a9c");
//!
//! // An unsafe one is replaced by a fresh UUIDv7 (and counted, and logged at DEBUG).
//! let req = Request::get("/orders/1").header("x-request-id", "\"><script>").body(Body::empty()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! let id = res.headers()["x-request-id"].to_str().unwrap();
//! assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
//! # }
//! ```
//!
//! Outbound, [`PropagateRequestIdLayer`] (any tower HTTP client) and
//! `RequestIdMiddleware` (reqwest, feature `reqwest`) put the current id on requests
//! this service sends; see [`client`].
//!
//! # Accepted incoming ids
//!
//! An incoming id is kept only if it is 1 to 128 characters, each visible ASCII
//! (`!` to `~`, i.e. `0x21..=0x7e`) except the double quote `"`, the single quote `'`
//! and the backslash `\`. So: no spaces, no control characters (no newline or tab: no log
//! injection), no non-ASCII bytes, nothing that needs escaping in JSON, a shell or CSV.
//! UUIDs, ULIDs, hex trace ids and load-balancer ids such as AWS's
//! `Root=1-5f84c7a9-...;Parent=...` pass. The rules are telltale-core's
//! ([`RequestId::parse`]), so every telltale crate agrees on them. Anything else is
//! replaced with a generated id (UUIDv7 by default; UUIDv4 or your own generator on
//! request), and the rejection is recorded as a `DEBUG` event (reason, and the value
//! ASCII-escaped and truncated — never raw) and the counter
//! [`names::REJECTED_TOTAL`]`{reason="empty"|"too_long"|"forbidden_character"}`.
//!
//! # How this differs from tower-http
//!
//! tower-http's `SetRequestIdLayer` keeps **any** incoming value: a header of several
//! kilobytes (up to the server's header limit), bytes outside ASCII, quotes and
//! backslashes all end up in your logs, your outbound headers and your responses, so a
//! client can forge log lines or blow up log volume through one header. It also does not
//! generate ids itself (you write a `MakeRequestId`) and does not make the id available
//! to code that has no access to the request. Its `PropagateRequestIdLayer` copies the
//! request header onto the *response* of the same server.
//!
//! Here one [`RequestIdLayer`] does both the setting and the echo to the response, with
//! validation; the id is also in a task-local ([`current_request_id`]) for the logger
//! and any code in the request; and this crate's [`PropagateRequestIdLayer`] is for
//! *outbound client* requests (the id of the request being served goes on the calls it
//! makes). Generation costs no syscall and takes no lock per id ([`generate`]).
//!
//! # Layer order
//!
//! Put `RequestIdLayer` outermost (first in a `ServiceBuilder`, last in `Router::layer`
//! calls), so every response — 404s from the router fallback, errors turned into
//! responses and panics caught by tower-http's `CatchPanicLayer` — passes back through
//! it and gets the header. `CatchPanicLayer` goes *inside* it:
//!
//! ```
//! use axum::{routing::get, Router};
//! use telltale_request_id::RequestIdLayer;
//! use tower_http::catch_panic::CatchPanicLayer;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(CatchPanicLayer::new())   // inner: a panic becomes a 500 response...
//!     .layer(RequestIdLayer::new());   // outer: ...which still carries the id.
//! ```
//!
//! With `CatchPanicLayer` outside, a panic unwinds through the request-id layer and the
//! 500 has no id. Layers that want the id (tracing spans, metrics, access logs) go inside
//! `RequestIdLayer` too.
//!
//! # Features
//!
//! - `axum` (default): the [`RequestId`] axum extractor (`RequestId` and
//!   `Option<RequestId>` as handler arguments); it lives in `telltale_core::extract`.
//! - `reqwest`: `RequestIdMiddleware` for `reqwest-middleware` clients.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod generate;
#[cfg(feature = "reqwest")]
pub mod middleware;
pub mod names;
pub mod server;

pub use client::{PropagateRequestId, PropagateRequestIdLayer};
#[cfg(feature = "reqwest")]
pub use middleware::RequestIdMiddleware;
pub use server::{RequestIdLayer, RequestIdPart, RequestIdService, ResponseFuture};
#[cfg(feature = "axum")]
pub use telltale_core::extract::MissingRequestId;
pub use telltale_core::headers::X_REQUEST_ID;
pub use telltale_core::{InvalidRequestId, RequestId, WithRequestId, current_request_id, with_request_id};
