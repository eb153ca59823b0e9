//! Outbound propagation: put the current request id on requests this service sends.
//!
//! ```
//! use std::convert::Infallible;
//! use http::Request;
//! use telltale_request_id::{with_request_id, PropagateRequestIdLayer, RequestId};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Any tower HTTP client taking `http::Request<B>`; this one returns what it was sent.
//! let transport = service_fn(|req: Request<()>| async move {
//!     Ok::<_, Infallible>(req.headers().get("x-request-id").cloned())
//! });
//! let client = ServiceBuilder::new()
//!     .layer(PropagateRequestIdLayer::new())
//!     .service(transport);
//!
//! // Inside a request handled behind `RequestIdLayer` the current id is already set.
//! let id = RequestId::parse("order-7f3a").unwrap();
//! let sent = with_request_id(id, client.oneshot(Request::new(()))).await.unwrap();
//! assert_eq!(sent.unwrap(), "order-7f3a");
//! # }
//! ```
//!
//! The id comes from the outgoing request's extensions (a [`RequestId`] put there by
//! hand) or else from [`current_request_id`]. A request that already has the header
//! keeps it; a request made outside any request scope is sent unchanged.
//!
//! For `reqwest` clients use `RequestIdMiddleware` (feature `reqwest`).

use std::task::{Context, Poll};

use http::{Extensions, HeaderName, Request};
use telltale_core::headers::X_REQUEST_ID;
use telltale_core::{RequestId, current_request_id};
use tower::{Layer, Service};

/// Layer that sets the request-id header on outbound HTTP requests; see the
/// [module docs](self). Default header: `x-request-id`.
#[derive(Clone, Debug)]
pub struct PropagateRequestIdLayer {
    header: HeaderName,
}

impl PropagateRequestIdLayer {
    /// The layer with its default header, `x-request-id`.
    pub const fn new() -> Self {
        PropagateRequestIdLayer { header: X_REQUEST_ID }
    }

    /// Writes `name` instead of `x-request-id`.
    pub fn with_header_name(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }
}

impl Default for PropagateRequestIdLayer {
    fn default() -> Self {
        PropagateRequestIdLayer::new()
    }
}

impl<S> Layer<S> for PropagateRequestIdLayer {
    type Service = PropagateRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateRequestId {
            inner,
            header: self.header.clone(),
        }
    }
}

/// Service made by [`PropagateRequestIdLayer`].
#[derive(Clone, Debug)]
pub struct PropagateRequestId<S> {
    inner: S,
    header: HeaderName,
}

impl<S> PropagateRequestId<S> {
    /// Wraps `inner` with the default header.
    pub fn new(inner: S) -> Self {
        PropagateRequestIdLayer::new().layer(inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for PropagateRequestId<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if !req.headers().contains_key(&self.header)
            && let Some(id) = outbound_id(req.extensions())
        {
            req.headers_mut().insert(self.header.clone(), id.into());
        }
        self.inner.call(req)
    }
}

/// The id to send: one put in the outgoing request's extensions, else the current one.
pub(crate) fn outbound_id(extensions: &Extensions) -> Option<RequestId> {
    extensions.get::<RequestId>().cloned().or_else(current_request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::convert::Infallible;
    use telltale_core::with_request_id;
    use tower::{ServiceExt, service_fn};

    fn sent_header() -> PropagateRequestId<
        impl Service<
            Request<()>,
            Response = Option<HeaderValue>,
            Error = Infallible,
            Future = impl Future<Output = Result<Option<HeaderValue>, Infallible>>,
        > + Clone,
    > {
        PropagateRequestId::new(service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(req.headers().get(X_REQUEST_ID).cloned())
        }))
    }

    #[tokio::test]
    async fn sets_current_id() {
        let id = RequestId::parse("cur-1").unwrap();
        let sent = with_request_id(id, sent_header().oneshot(Request::new(())))
            .await
            .unwrap();
        assert_eq!(sent.unwrap(), "cur-1");
    }

    #[tokio::test]
    async fn extension_wins_over_current_id() {
        let mut req = Request::new(());
        req.extensions_mut().insert(RequestId::parse("ext-1").unwrap());
        let id = RequestId::parse("cur-1").unwrap();
        let sent = with_request_id(id, sent_header().oneshot(req)).await.unwrap();
        assert_eq!(sent.unwrap(), "ext-1");
    }

    #[tokio::test]
    async fn existing_header_is_not_overwritten() {
        let mut req = Request::new(());
        req.headers_mut()
            .insert(X_REQUEST_ID, HeaderValue::from_static("explicit"));
        let id = RequestId::parse("cur-1").unwrap();
        let sent = with_request_id(id, sent_header().oneshot(req)).await.unwrap();
        assert_eq!(sent.unwrap(), "explicit");
    }

    #[tokio::test]
    async fn outside_a_request_nothing_is_set() {
        let sent = sent_header().oneshot(Request::new(())).await.unwrap();
        assert_eq!(sent, None);
    }
}
