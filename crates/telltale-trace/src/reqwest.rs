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
//! `{METHOD}`, `peer.service`, `url.full` with query secrets redacted, `error.type`). Put it
//! outermost, before retry middleware: one logical call is one span.
//!
//! The span ends when the response **body** ends (read to the end, failed, or dropped
//! unread), not at the response head, so a slow or streaming download is measured whole
//! and a body that fails half-way is an error. reqwest owns its body type, so for a
//! recorded span the middleware takes the response apart (`http::Response<reqwest::Body>`),
//! wraps the body in telltale-core's `ObservedBody` (`reqwest::Body::wrap`) and puts it back
//! together with its URL, status, headers and extensions (remote address included). A span
//! that is not recorded (dropped by sampling) leaves the response untouched, but for one
//! extension:
//!
//! Every response carries the call's [`TraceIds`](telltale_core::trace_ids::TraceIds) in
//! its extensions, sampled or not, so a caller can log a failed call with its `trace_id`
//! (inside [`call_span`](crate::client::call_span)): the server's spans and log lines for
//! it have the same one.
//!
//! ```
//! # async fn call(client: reqwest_middleware::ClientWithMiddleware) -> reqwest_middleware::Result<()> {
//! use telltale_core::trace_ids::TraceIds;
//!
//! let res = client.get("http://inventory/stock/7").send().await?;
//! if res.status().is_server_error()
//!     && let Some(ids) = res.extensions().get::<TraceIds>()
//! {
//!     telltale_trace::client::call_span(*ids)
//!         .in_scope(|| tracing::warn!(status = res.status().as_u16(), "inventory failed"));
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;

use http::Extensions;
use reqwest::ResponseBuilderExt;
use reqwest_middleware::{Middleware, Next};
use telltale_core::body::ObservedBody;
use telltale_core::method;
use telltale_core::outcome::ErrorType;

use crate::client::{self, ClientRequest, ClientSpanEnd, Config};
use crate::pipeline::SpanPipeline;

/// A reqwest middleware opening a client span and injecting trace context.
#[derive(Debug, Clone)]
pub struct TracingMiddleware {
    config: Arc<Config>,
}

impl TracingMiddleware {
    /// Client spans exported through `pipeline`.
    pub fn new(pipeline: SpanPipeline) -> Self {
        TracingMiddleware {
            config: Arc::new(Config {
                pipeline,
                grpc: false,
                dependency: None,
            }),
        }
    }

    /// The dependency's name, recorded as `peer.service`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        Arc::make_mut(&mut self.config).dependency = Some(name.into());
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
        let (start, cx) = client::begin(&self.config.pipeline, req.headers_mut());
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
        let ids = start.trace_ids();
        let result = {
            let fut = next.run(req, extensions);
            opentelemetry::context::FutureExt::with_context(fut, cx).await
        };
        // Recorded or not, the caller can name the trace of this call.
        let result = result.map(|mut res| {
            res.extensions_mut().insert(ids);
            res
        });
        let Some(request) = request else {
            return result;
        };
        match result {
            Ok(res) => {
                let status = res.status();
                let end = ClientSpanEnd::http(start, request, self.config.clone(), status);
                Ok(observe_body(res, end))
            }
            Err(e) => {
                client::finish_failed(start, request, self.config.clone(), classify(&e), e.to_string());
                Err(e)
            }
        }
    }
}

/// `res` with its body wrapped so `end` runs when the body ends (or is dropped).
fn observe_body(res: reqwest::Response, end: ClientSpanEnd) -> reqwest::Response {
    // `From<reqwest::Response> for http::Response` drops the URL; carry it across in the
    // extension reqwest reads it back from (set through its public `ResponseBuilderExt`).
    let url = res.url().clone();
    let (mut parts, body) = http::Response::<reqwest::Body>::from(res).into_parts();
    if let Ok(carrier) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(carrier.into_parts().0.extensions);
    }
    let body = reqwest::Body::wrap(ObservedBody::new(body, end));
    reqwest::Response::from(http::Response::from_parts(parts, body))
}

fn classify(e: &reqwest_middleware::Error) -> ErrorType {
    match e {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => ErrorType::Timeout,
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => ErrorType::Connect,
        reqwest_middleware::Error::Reqwest(_) => ErrorType::Transport,
        reqwest_middleware::Error::Middleware(e) => client::classify_error(&e.to_string()),
    }
}
