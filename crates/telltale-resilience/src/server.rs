//! Server-side protection: request timeout, load shedding, concurrency limit, panics.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use http::StatusCode;
//! use telltale_resilience::server::{CatchPanicLayer, ConcurrencyLimitLayer, request_timeout};
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(request_timeout(Duration::from_secs(10), StatusCode::SERVICE_UNAVAILABLE).unwrap())
//!     .layer(ConcurrencyLimitLayer::shed(512, Duration::from_secs(1)).unwrap())
//!     .layer(CatchPanicLayer::new());
//! ```
//!
//! Order (outermost first, inside the request-id / trace / metrics layers so they see the
//! 500, 503 and 504 answers): panic catching, load shedding / concurrency limit,
//! timeout, the application.
//!
//! - [`request_timeout`] is tower-http's `TimeoutLayer` with its status restricted to 503
//!   or 504 (tower-http's default is 408, which tells the *client* it was too slow and
//!   makes some clients retry on the same connection).
//! - [`ConcurrencyLimitLayer`] is written here rather than taken from tower: tower's
//!   `ConcurrencyLimit` + `LoadShed` answer with an error (`Overloaded`) that axum cannot
//!   serve without a `HandleErrorLayer`, and they do not add `Retry-After`. This one
//!   answers 503 + `Retry-After` itself when shedding, and waits when limiting. Every shed
//!   request is counted (`telltale_server_shed_total`); the `overloaded` WARN line is
//!   written at most once a second, with `suppressed`, the sheds not logged since the
//!   previous line, so an overload does not also flood the logs.
//! - [`CatchPanicLayer`] is written here rather than using tower-http's `CatchPanicLayer`:
//!   that one's handler only receives the panic payload, not the request, so it cannot
//!   put the request id (from the request's extensions) into the body and the log.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use telltale_core::RequestId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::error::BoxError;
use crate::throttle::LogThrottle;

/// Panics caught by [`CatchPanicLayer`], counter (no labels but the global ones).
pub const SERVER_PANICS_TOTAL: &str = "telltale_server_panics_total";
/// Requests shed by [`ConcurrencyLimitLayer`], counter.
pub const SERVER_SHED_TOTAL: &str = "telltale_server_shed_total";

/// The body type of the responses these layers build.
pub type ProtectedBody = UnsyncBoxBody<Bytes, BoxError>;

fn boxed<B>(b: B) -> ProtectedBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

fn full(bytes: impl Into<Bytes>) -> ProtectedBody {
    boxed(Full::new(bytes.into()).map_err(|never: Infallible| match never {}))
}

// === request timeout ===

/// tower-http's `TimeoutLayer` answering `status` (503 or 504 only) after `timeout`.
pub fn request_timeout(
    timeout: Duration,
    status: StatusCode,
) -> Result<tower_http::timeout::TimeoutLayer, String> {
    if timeout.is_zero() {
        return Err("request timeout must be greater than zero".into());
    }
    if status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::GATEWAY_TIMEOUT {
        return Err(format!(
            "request timeout status must be 503 or 504 (408 blames the client), got {status}"
        ));
    }
    Ok(tower_http::timeout::TimeoutLayer::with_status_code(
        status, timeout,
    ))
}

// === ConcurrencyLimitLayer ===

/// At most N requests in the application at once; beyond that either shed (503 +
/// `Retry-After`) or wait.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    semaphore: Arc<Semaphore>,
    retry_after: Option<HeaderValue>,
    /// One `overloaded` line a second at most (see `throttle`).
    shed_log: Arc<LogThrottle>,
}

impl ConcurrencyLimitLayer {
    /// Answer 503 with `Retry-After: <retry_after, in whole seconds, at least 1>` when
    /// `max` requests are already in flight (load shedding). `max` must be at least 1.
    pub fn shed(max: usize, retry_after: Duration) -> Result<Self, String> {
        let secs = retry_after.as_secs().max(1);
        Ok(ConcurrencyLimitLayer {
            semaphore: Arc::new(Semaphore::new(check_max(max)?)),
            retry_after: Some(HeaderValue::from(secs)),
            shed_log: Arc::new(LogThrottle::new()),
        })
    }

    /// Make requests beyond `max` wait for a slot (a plain concurrency limit). `max` must
    /// be at least 1. The wait itself is not bounded: put [`request_timeout`] *outside*
    /// this layer (with `Router::layer`, add it after this one) so that time spent waiting
    /// for a slot counts against the timeout. With the timeout inside, as in the
    /// shedding example of the [module docs](self), only the handler is timed.
    pub fn wait(max: usize) -> Result<Self, String> {
        Ok(ConcurrencyLimitLayer {
            semaphore: Arc::new(Semaphore::new(check_max(max)?)),
            retry_after: None,
            shed_log: Arc::new(LogThrottle::new()),
        })
    }
}

fn check_max(max: usize) -> Result<usize, String> {
    if max == 0 || max > Semaphore::MAX_PERMITS {
        Err(format!(
            "concurrency limit must be between 1 and {}, got {max}",
            Semaphore::MAX_PERMITS
        ))
    } else {
        Ok(max)
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`ConcurrencyLimitLayer`].
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    layer: ConcurrencyLimitLayer,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ConcurrencyLimit<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ProtectedBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let permit: Option<OwnedSemaphorePermit> = self.layer.semaphore.clone().try_acquire_owned().ok();
        if permit.is_none()
            && let Some(retry_after) = &self.layer.retry_after
        {
            metrics::counter!(SERVER_SHED_TOTAL).increment(1);
            if let Some(suppressed) = self.layer.shed_log.admit() {
                tracing::warn!(
                    path = req.uri().path(),
                    suppressed,
                    "overloaded: request shed with 503 (at most one line a second; `suppressed` were not logged)"
                );
            }
            let mut resp = Response::new(full(&b"{\"error\":\"overloaded\"}"[..]));
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, retry_after.clone());
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Box::pin(async move { Ok(resp) });
        }
        let sem = self.layer.semaphore.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let _permit = match permit {
                Some(p) => p,
                // The semaphore is never closed, so this only fails if it were.
                None => match sem.acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => unreachable_closed(),
                },
            };
            let resp = inner.call(req).await?;
            Ok(resp.map(boxed))
        })
    }
}

#[cold]
fn unreachable_closed() -> OwnedSemaphorePermit {
    // A closed semaphore cannot happen (we never close it); give an immediately usable
    // permit from a fresh semaphore rather than panicking on the request path.
    match Arc::new(Semaphore::new(1)).try_acquire_owned() {
        Ok(p) => p,
        Err(_) => unreachable_closed(),
    }
}

// === CatchPanicLayer ===

/// Turns a panic in the application into a 500 with a JSON body carrying the request id,
/// counts it (`telltale_server_panics_total`) and logs it at ERROR with the request id.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer {
    _priv: (),
}

impl CatchPanicLayer {
    /// The layer.
    pub const fn new() -> Self {
        CatchPanicLayer { _priv: () }
    }
}

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// The service made by [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for CatchPanic<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ProtectedBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .or_else(telltale_core::current_request_id);
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(fut) => fut,
            Err(panic) => {
                let resp = panic_response(panic, id.as_ref());
                return Box::pin(async move { Ok(resp) });
            }
        };
        Box::pin(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r.map(|resp| resp.map(boxed)),
                Err(panic) => Ok(panic_response(panic, id.as_ref())),
            }
        })
    }
}

fn panic_response(panic: Box<dyn Any + Send>, id: Option<&RequestId>) -> Response<ProtectedBody> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    metrics::counter!(SERVER_PANICS_TOTAL).increment(1);
    tracing::error!(
        request_id = id.map(RequestId::as_str),
        panic.message = %message,
        "handler panicked: answered 500"
    );
    let body = serde_json::json!({
        "error": "internal server error",
        "request_id": id.map(RequestId::as_str),
    });
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    // Lets the server span outside record the panic as such.
    resp.extensions_mut()
        .insert(telltale_core::outcome::HandlerPanic(message.into()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(id) = id {
        resp.headers_mut()
            .insert(telltale_core::headers::X_REQUEST_ID, id.header_value().clone());
    }
    resp
}
