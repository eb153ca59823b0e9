//! Client spans and trace-context injection for reqwest (feature `reqwest`):
//! [`TracingMiddleware`], a `reqwest_middleware::Middleware`.
//!
//! ```
//! use telltale_trace::{pipeline::SpanPipeline, reqwest::TracingMiddleware};
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(TracingMiddleware::new(SpanPipeline::disabled()).dependency("inventory"))
//!     .build();
//! # drop(client);
//! ```
//!
//! Same span as [`ClientTraceLayer`](crate::client::ClientTraceLayer) (kind client, named
//! `{METHOD}`, `peer.service`, `url.full` with query secrets redacted, `error.type`), ending
//! when the response head arrives (reqwest owns the body). Put it outermost, before retry
//! middleware: one logical call is one span.

use std::sync::Arc;

use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use telltale_core::method;
use telltale_core::outcome::{self, ErrorType, Outcome};

use crate::client::{self, ClientRequest};
use crate::pipeline::SpanPipeline;

/// A reqwest middleware opening a client span and injecting trace context.
#[derive(Debug, Clone)]
pub struct TracingMiddleware {
    pipeline: SpanPipeline,
    dependency: Option<Arc<str>>,
}

impl TracingMiddleware {
    /// Client spans exported through `pipeline`.
    pub fn new(pipeline: SpanPipeline) -> Self {
        TracingMiddleware {
            pipeline,
            dependency: None,
        }
    }

    /// The dependency's name, recorded as `peer.service`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        self.dependency = Some(name.into());
        self
    }
}

#[async_trait::async_trait]
impl Middleware for TracingMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let (start, cx) = client::begin(&self.pipeline, req.headers_mut());
        let request = start.recording().then(|| ClientRequest {
            method: method::normalize(req.method()),
            uri: req
                .url()
                .as_str()
                .parse()
                .unwrap_or_else(|_| http::Uri::from_static("/")),
        });
        // Make the client span the current context for middlewares below (e.g. retries log
        // inside it).
        let result = {
            let fut = next.run(req, extensions);
            opentelemetry::context::FutureExt::with_context(fut, cx).await
        };
        if let Some(request) = request {
            let (status, outcome, description) = match &result {
                Ok(res) => (Some(res.status()), outcome::client_http(res.status()), None),
                Err(e) => (None, Outcome::Error(classify(e)), Some(e.to_string())),
            };
            let pipeline = &self.pipeline;
            let dependency = self.dependency.as_deref();
            start.finish(pipeline, outcome.is_error(), |parts| {
                client::build_client_span(
                    pipeline,
                    false,
                    dependency,
                    &request,
                    status,
                    None,
                    outcome,
                    description,
                    parts,
                )
            });
        }
        result
    }
}

fn classify(e: &reqwest_middleware::Error) -> ErrorType {
    match e {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => ErrorType::Timeout,
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => ErrorType::Connect,
        reqwest_middleware::Error::Reqwest(_) => ErrorType::Transport,
        reqwest_middleware::Error::Middleware(e) => client::classify_error(&e.to_string()),
    }
}
