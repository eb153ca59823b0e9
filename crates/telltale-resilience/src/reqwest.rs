//! The policy as a `reqwest_middleware` middleware (feature `reqwest`).
//!
//! ```no_run
//! use std::time::Duration;
//! use telltale_resilience::{ClientPolicy, Retry};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = ClientPolicy::builder("inventory")
//!     .timeout(Duration::from_millis(300))
//!     .retry(Retry::exponential().max_attempts(3))
//!     .build()?;
//! let client = policy.reqwest(reqwest::Client::new());
//! let resp = client.get("http://inventory.internal/items/1").send().await?;
//! # Ok(()) }
//! ```
//!
//! Bodies: a request whose body `reqwest` can clone (`try_clone`) and whose size is at
//! most the replay cap is retried; a streaming body or a larger one is sent once.
//!
//! Errors: every failure the middleware produces, or sees from the transport, is
//! returned as `reqwest_middleware::Error::Middleware` holding a
//! `telltale_metrics::client::ClassifiedError` (so the dependency-metrics middleware
//! labels it) whose source is the [`ResilienceError`] (find it with
//! [`ResilienceError::from_reqwest_middleware`]); its `error.type` is
//! also inserted into the request's `Extensions` as a
//! `telltale_core::outcome::ErrorType`, so outer middlewares (metrics, trace) can label
//! the call without depending on this crate.

use std::sync::Arc;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use telltale_core::headers::IDEMPOTENCY_KEY;

use crate::error::ResilienceError;
use crate::policy::{AttemptCtx, AttemptResponse, Attempts, BoxFuture, CallSpec, ClientPolicy};

impl AttemptResponse for Response {
    fn status(&self) -> http::StatusCode {
        Response::status(self)
    }
    fn headers(&self) -> &http::HeaderMap {
        Response::headers(self)
    }
}

/// The resilience policy as a reqwest middleware. Put it last (innermost) in the chain.
#[derive(Debug, Clone)]
pub struct ResilienceMiddleware {
    policy: ClientPolicy,
}

impl ClientPolicy {
    /// The middleware alone, to compose a `reqwest_middleware` chain yourself.
    pub fn middleware(&self) -> ResilienceMiddleware {
        ResilienceMiddleware { policy: self.clone() }
    }

    /// `client` wrapped in the outer middlewares given to the builder, then this policy.
    pub fn reqwest(&self, client: reqwest::Client) -> ClientWithMiddleware {
        self.reqwest_with(client, self.0.outer.0.iter().cloned())
    }

    /// `client` wrapped in `outer` middlewares (request id, trace, metrics; called in
    /// this order), then this policy.
    pub fn reqwest_with(
        &self,
        client: reqwest::Client,
        outer: impl IntoIterator<Item = Arc<dyn Middleware>>,
    ) -> ClientWithMiddleware {
        let mut b = ClientBuilder::new(client);
        for m in outer {
            b = b.with_arc(m);
        }
        b.with(self.middleware()).build()
    }
}

struct ReqwestAttempts<'n, 'e> {
    first: Option<Request>,
    template: Option<Request>,
    not_replayable: Option<&'static str>,
    next: Next<'n>,
    extensions: &'e mut Extensions,
    dependency: Arc<str>,
}

impl Attempts for ReqwestAttempts<'_, '_> {
    type Response = Response;

    fn send(&mut self, _ctx: AttemptCtx) -> BoxFuture<'_, Result<Response, ResilienceError>> {
        let req = match self.first.take() {
            Some(r) => Some(r),
            None => self.template.as_ref().and_then(Request::try_clone),
        };
        let dependency = self.dependency.clone();
        let Some(req) = req else {
            return Box::pin(async move {
                Err(ResilienceError::Other {
                    dependency,
                    source: "request body could not be cloned for a retry".into(),
                })
            });
        };
        let fut = self.next.clone().run(req, &mut *self.extensions);
        Box::pin(async move {
            fut.await.map_err(|e| match e {
                reqwest_middleware::Error::Reqwest(e) => {
                    ResilienceError::from_transport(&dependency, Box::new(e))
                }
                reqwest_middleware::Error::Middleware(e) => match e.downcast::<ResilienceError>() {
                    Ok(r) => r,
                    Err(e) => ResilienceError::Other {
                        dependency,
                        source: e.into(),
                    },
                },
            })
        })
    }

    fn replayable(&mut self) -> Result<(), &'static str> {
        match self.not_replayable {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

impl ResilienceMiddleware {
    async fn call(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let policy = &self.policy;
        let idempotent =
            telltale_core::method::is_idempotent(req.method()) || req.headers().contains_key(IDEMPOTENCY_KEY);
        let host = if policy.wants_host() {
            let u = req.url();
            Some(format!(
                "{}:{}",
                u.host_str().unwrap_or(""),
                u.port_or_known_default().unwrap_or(0)
            ))
        } else {
            None
        };
        let (template, not_replayable) = if !policy.retries() {
            (None, Some(crate::retry::reason::MAX_ATTEMPTS))
        } else {
            match req.body().map(|b| b.as_bytes()) {
                Some(None) => (None, Some(crate::retry::reason::BODY_STREAMING)),
                Some(Some(bytes)) if bytes.len() > policy.max_replay_body() => {
                    (None, Some(crate::retry::reason::BODY_TOO_LARGE))
                }
                _ => match req.try_clone() {
                    Some(t) => (Some(t), None),
                    None => (None, Some(crate::retry::reason::BODY_STREAMING)),
                },
            }
        };
        let mut attempts = ReqwestAttempts {
            first: Some(req),
            template,
            not_replayable,
            next,
            extensions,
            dependency: policy.0.name.clone(),
        };
        let spec = CallSpec {
            idempotent,
            host: host.as_deref(),
            grpc: false,
            deadline: None,
        };
        match policy.run(spec, &mut attempts).await {
            Ok(r) => Ok(r),
            Err(e) => {
                let kind = e.error_type();
                attempts.extensions.insert(kind);
                // Wrapped so the dependency-metrics middleware (telltale-metrics), which
                // cannot depend on this crate, labels the call with the right error.type.
                Err(reqwest_middleware::Error::middleware(
                    telltale_metrics::client::ClassifiedError::new(kind, e),
                ))
            }
        }
    }
}

impl Middleware for ResilienceMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> BoxFuture<'async_trait, reqwest_middleware::Result<Response>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.call(req, extensions, next))
    }
}
