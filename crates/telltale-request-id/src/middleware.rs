//! Outbound propagation for `reqwest` (feature `reqwest`): a
//! [`reqwest_middleware::Middleware`] that puts the current request id on every call.
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use telltale_request_id::RequestIdMiddleware;
//!
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(RequestIdMiddleware::new())
//!     .build();
//! // Inside a handler behind `RequestIdLayer`, this carries the request's id:
//! client.get("http://inventory.internal/stock/42").send().await?;
//! # Ok(()) }
//! ```
//!
//! The id comes from the middleware [`Extensions`] (a [`RequestId`](crate::RequestId)
//! put there with `RequestBuilder::with_extension`) or else from
//! [`current_request_id`](crate::current_request_id). A request that already has the
//! header keeps it; outside a request scope nothing is added.

use std::future::Future;
use std::pin::Pin;

use http::{Extensions, HeaderName};
use reqwest_middleware::{Middleware, Next};
use telltale_core::headers::X_REQUEST_ID;

use crate::client::outbound_id;

/// Middleware that sets the request-id header on outbound `reqwest` requests; see the
/// [module docs](self). Default header: `x-request-id`.
#[derive(Clone, Debug)]
pub struct RequestIdMiddleware {
    header: HeaderName,
}

impl RequestIdMiddleware {
    /// The middleware with its default header, `x-request-id`.
    pub const fn new() -> Self {
        RequestIdMiddleware { header: X_REQUEST_ID }
    }

    /// Writes `name` instead of `x-request-id`.
    pub fn with_header_name(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }
}

impl Default for RequestIdMiddleware {
    fn default() -> Self {
        RequestIdMiddleware::new()
    }
}

// The trait is declared with `#[async_trait]`; this is its expanded signature, written
// out so that the crate needs no `async-trait` dependency and the call adds no second
// boxed future: the one `Next::run` returns is handed back as is.
impl Middleware for RequestIdMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        mut req: reqwest::Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> Pin<Box<dyn Future<Output = reqwest_middleware::Result<reqwest::Response>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        if !req.headers().contains_key(&self.header)
            && let Some(id) = outbound_id(extensions)
        {
            req.headers_mut().insert(self.header.clone(), id.into());
        }
        next.run(req, extensions)
    }
}
