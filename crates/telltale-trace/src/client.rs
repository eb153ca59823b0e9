//! Client spans and trace-context injection for tower HTTP clients (e.g. hyper-util's
//! client) and tonic channels: [`ClientTraceLayer`].
//!
//! ```
//! use telltale_trace::{client::ClientTraceLayer, pipeline::SpanPipeline};
//! use tower::ServiceBuilder;
//!
//! let pipeline = SpanPipeline::disabled();
//! let http = ServiceBuilder::new()
//!     .layer(ClientTraceLayer::new(pipeline.clone()).dependency("inventory"))
//!     .service(tower::service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::io::Error>(http::Response::new(String::new()))
//!     }));
//! // For a tonic channel: `ClientTraceLayer::grpc(pipeline).dependency("inventory-grpc")`.
//! # drop(http);
//! ```
//!
//! Each call opens a span of kind client, named `{METHOD}` (HTTP) or
//! `{rpc.service}/{rpc.method}` (gRPC), as a child of the current OpenTelemetry context
//! (the server span when called from a handler behind [`TraceLayer`](crate::TraceLayer)),
//! and injects `traceparent`/`tracestate` with the client span as parent, so the callee's
//! server span is its child. Attributes: `http.request.method`, `server.address`,
//! `server.port`, `url.full` (query secrets redacted), `http.response.status_code`,
//! `error.type`, `peer.service` (the dependency name); for gRPC `rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`. A 4xx/5xx, a transport error and
//! any non-OK gRPC code is an error (the client-side rules of
//! [`telltale_core::outcome`]). The span ends when the response body ends, so gRPC
//! trailers are read.
//!
//! Every response carries the call's [`TraceIds`] in
//! its extensions, sampled or not, so a caller can log the `trace_id` of a failed call
//! (through a tonic channel, a successful call's `tonic::Response::extensions()` has them;
//! a gRPC error becomes a `tonic::Status`, which has no extensions). Log inside
//! [`call_span`] and the line's own `trace_id` and `span_id` are the call's.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SpanData;
use pin_project_lite::pin_project;
use telltale_core::body::{BodyEnd, BodyObserver, ObservedBody};
use telltale_core::method;
use telltale_core::outcome::{self, ErrorType, GrpcCode, Outcome};
use tower::{Layer, Service};

use crate::names::attr;
use crate::pipeline::SpanPipeline;
use crate::span::{self, SpanParts, SpanStart};
use telltale_core::trace_ids::TraceIds;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) pipeline: SpanPipeline,
    pub(crate) grpc: bool,
    pub(crate) dependency: Option<Arc<str>>,
}

/// A tower layer for HTTP/gRPC clients: client span + context injection.
#[derive(Debug, Clone)]
pub struct ClientTraceLayer {
    config: Arc<Config>,
}

impl ClientTraceLayer {
    /// HTTP client spans exported through `pipeline`.
    pub fn new(pipeline: SpanPipeline) -> Self {
        ClientTraceLayer {
            config: Arc::new(Config {
                pipeline,
                grpc: false,
                dependency: None,
            }),
        }
    }

    /// gRPC client spans (for a tonic `Channel`) exported through `pipeline`.
    pub fn grpc(pipeline: SpanPipeline) -> Self {
        let mut l = Self::new(pipeline);
        Arc::make_mut(&mut l.config).grpc = true;
        l
    }

    /// The dependency's name, recorded as `peer.service`.
    pub fn dependency(mut self, name: impl Into<Arc<str>>) -> Self {
        Arc::make_mut(&mut self.config).dependency = Some(name.into());
        self
    }
}

impl<S> Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ClientTrace {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`ClientTraceLayer`].
#[derive(Debug, Clone)]
pub struct ClientTrace<S> {
    inner: S,
    config: Arc<Config>,
}

/// What a client span needs from the request (captured only when recorded).
pub(crate) struct ClientRequest {
    pub(crate) method: &'static str,
    pub(crate) uri: Uri,
}

/// Opens a client span under the current context and injects it into `headers`.
pub(crate) fn begin(pipeline: &SpanPipeline, headers: &mut http::HeaderMap) -> (SpanStart, Context) {
    let parent_cx = Context::current();
    let start = SpanStart::begin(pipeline, &parent_cx.span().span_context().clone());
    let cx = span::child_context(&parent_cx, &start);
    span::inject(&cx, headers);
    (start, cx)
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ClientTrace<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: Body,
    ResB::Error: fmt::Display,
{
    type Response = Response<ObservedBody<ResB, ClientSpanEnd>>;
    type Error = S::Error;
    type Future = ClientResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let (start, _cx) = begin(&self.config.pipeline, req.headers_mut());
        let request = start.recording().then(|| ClientRequest {
            method: method::normalize(req.method()),
            uri: req.uri().clone(),
        });
        ClientResponseFuture {
            inner: self.inner.call(req),
            state: Some(ClientState {
                start,
                request,
                config: self.config.clone(),
            }),
        }
    }
}

/// A `tracing` span (INFO, target [`SPAN_TARGET`](crate::names::SPAN_TARGET)) whose log
/// lines carry `ids` as their `trace_id` and `span_id`: for writing about a call after it
/// returned, with the ids its response carried, so the line is found next to the call's
/// spans and the callee's log lines. It is never exported as a span of its own.
///
/// ```
/// use telltale_core::trace_ids::TraceIds;
///
/// # fn log_failure(res: &http::Response<()>) {
/// if let Some(ids) = res.extensions().get::<TraceIds>() {
///     telltale_trace::client::call_span(*ids)
///         .in_scope(|| tracing::warn!(status = res.status().as_u16(), "inventory failed"));
/// }
/// # }
/// ```
pub fn call_span(ids: TraceIds) -> tracing::Span {
    let span = tracing::info_span!(target: crate::names::SPAN_TARGET, "call");
    span::attach_ids(&span, ids);
    span
}

struct ClientState {
    start: SpanStart,
    request: Option<ClientRequest>,
    config: Arc<Config>,
}

/// Ends a recorded client span now, for a call that failed before any response.
#[cfg(feature = "reqwest")]
pub(crate) fn finish_failed(
    start: SpanStart,
    request: ClientRequest,
    config: Arc<Config>,
    kind: ErrorType,
    description: String,
) {
    let state = ClientState {
        start,
        request: Some(request),
        config,
    };
    state.finish(None, None, Outcome::Error(kind), Some(description));
}

impl ClientState {
    fn finish(
        self,
        status: Option<StatusCode>,
        grpc: Option<GrpcCode>,
        outcome: Outcome,
        description: Option<String>,
    ) {
        let ClientState {
            start,
            request,
            config,
        } = self;
        let Some(request) = request else { return };
        let pipeline = &config.pipeline;
        start.finish(pipeline, outcome.is_error(), |parts| {
            build_client_span(
                pipeline,
                config.grpc,
                config.dependency.as_deref(),
                &request,
                status,
                grpc,
                outcome,
                description,
                parts,
            )
        });
    }
}

/// Builds a client span's data (shared with the reqwest middleware).
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_client_span(
    pipeline: &SpanPipeline,
    grpc: bool,
    dependency: Option<&str>,
    request: &ClientRequest,
    status: Option<StatusCode>,
    grpc_code: Option<GrpcCode>,
    outcome: Outcome,
    description: Option<String>,
    parts: SpanParts,
) -> SpanData {
    let mut a = Vec::with_capacity(12);
    let name: Cow<'static, str> = if grpc {
        a.push(KeyValue::new(attr::RPC_SYSTEM, "grpc"));
        match telltale_core::route::grpc_service_method(request.uri.path()) {
            Some((service, m)) => {
                a.push(KeyValue::new(attr::RPC_SERVICE, service.to_owned()));
                a.push(KeyValue::new(attr::RPC_METHOD, m.to_owned()));
                Cow::Owned(format!("{service}/{m}"))
            }
            None => Cow::Borrowed(request.method),
        }
    } else {
        Cow::Borrowed(request.method)
    };
    a.push(KeyValue::new(attr::HTTP_REQUEST_METHOD, request.method));
    if let Some(host) = request.uri.host() {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        a.push(KeyValue::new(attr::SERVER_ADDRESS, host.to_owned()));
        let port = request.uri.port_u16().or(match request.uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        if let Some(p) = port {
            a.push(KeyValue::new(attr::SERVER_PORT, i64::from(p)));
        }
    }
    a.push(KeyValue::new(attr::URL_FULL, url_full(&request.uri)));
    if let Some(s) = status {
        a.push(KeyValue::new(
            attr::HTTP_RESPONSE_STATUS_CODE,
            i64::from(s.as_u16()),
        ));
    }
    if let Some(code) = grpc_code {
        a.push(KeyValue::new(
            attr::RPC_GRPC_STATUS_CODE,
            i64::from(code.as_i32()),
        ));
    }
    if let Some(dep) = dependency {
        a.push(KeyValue::new(attr::PEER_SERVICE, dep.to_owned()));
    }
    let status = match outcome.error_type() {
        Some(e) => {
            a.push(KeyValue::new(attr::ERROR_TYPE, e.as_str()));
            Status::error(description.unwrap_or_default())
        }
        None => Status::Unset,
    };
    parts.into_span_data(pipeline, SpanKind::Client, name, a, Vec::new(), status)
}

/// `url.full` without userinfo and with sensitive query values redacted.
pub(crate) fn url_full(uri: &Uri) -> String {
    let mut s = String::with_capacity(64);
    if let Some(scheme) = uri.scheme_str() {
        s.push_str(scheme);
        s.push_str("://");
    }
    if let Some(auth) = uri.authority() {
        let a = auth.as_str();
        s.push_str(a.rsplit_once('@').map_or(a, |(_, host)| host));
    }
    s.push_str(uri.path());
    if let Some(q) = uri.query() {
        s.push('?');
        s.push_str(&span::redact_query(q));
    }
    s
}

pin_project! {
    /// Response future of [`ClientTrace`].
    pub struct ClientResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<ClientState>,
    }

    impl<F> PinnedDrop for ClientResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(state) = this.project().state.take() {
                // The caller gave up (e.g. an outer timeout) before a response.
                state.finish(None, None, Outcome::Error(ErrorType::Timeout), Some("call cancelled before a response".into()));
            }
        }
    }
}

impl<F> fmt::Debug for ClientResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ClientResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
    B: Body,
    B::Error: fmt::Display,
{
    type Output = Result<Response<ObservedBody<B, ClientSpanEnd>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        let Some(state) = this.state.take() else {
            return Poll::Ready(res.map(|r| r.map(ObservedBody::unobserved)));
        };
        match res {
            Err(e) => {
                let text = e.to_string();
                let kind = classify_error(&text);
                state.finish(None, None, Outcome::Error(kind), Some(text));
                Poll::Ready(Err(e))
            }
            Ok(mut res) => {
                // Recorded or not, the caller can name the trace of this call (a log line
                // for a failed call, a ticket).
                res.extensions_mut().insert(state.start.trace_ids());
                if state.request.is_none() {
                    return Poll::Ready(Ok(res.map(ObservedBody::unobserved)));
                }
                let status = res.status();
                let grpc_in_headers = if state.config.grpc {
                    GrpcCode::from_headers(res.headers())
                } else {
                    None
                };
                let end = ClientSpanEnd {
                    state,
                    status,
                    grpc_in_headers,
                };
                Poll::Ready(Ok(res.map(|b| ObservedBody::new(b, end))))
            }
        }
    }
}

/// A transport error's `error.type` from its text (tower errors are type-erased).
pub(crate) fn classify_error(text: &str) -> ErrorType {
    let t = text.to_ascii_lowercase();
    if t.contains("timed out") || t.contains("timeout") || t.contains("deadline") {
        ErrorType::Timeout
    } else if t.contains("connect") || t.contains("dns") || t.contains("refused") {
        ErrorType::Connect
    } else {
        ErrorType::Transport
    }
}

/// Ends the client span when the response body ends.
pub struct ClientSpanEnd {
    state: ClientState,
    status: StatusCode,
    grpc_in_headers: Option<GrpcCode>,
}

impl ClientSpanEnd {
    /// The observer that ends a recorded HTTP client span when the response body ends.
    #[cfg(feature = "reqwest")]
    pub(crate) fn http(
        start: SpanStart,
        request: ClientRequest,
        config: Arc<Config>,
        status: StatusCode,
    ) -> Self {
        ClientSpanEnd {
            state: ClientState {
                start,
                request: Some(request),
                config,
            },
            status,
            grpc_in_headers: None,
        }
    }
}

impl fmt::Debug for ClientSpanEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSpanEnd")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl BodyObserver for ClientSpanEnd {
    fn on_end(self, end: BodyEnd<'_>) {
        let grpc = self.state.config.grpc;
        let code = if grpc {
            self.grpc_in_headers
                .or_else(|| end.trailers().and_then(GrpcCode::from_headers))
        } else {
            None
        };
        let (outcome, description) = match (&end, code) {
            (BodyEnd::Error { error, .. }, _) => (Outcome::Error(ErrorType::Body), Some(error.to_string())),
            (_, Some(code)) => (outcome::client_grpc(code), None),
            _ => (outcome::client_http(self.status), None),
        };
        self.state.finish(Some(self.status), code, outcome, description);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_full_drops_userinfo_and_redacts_secrets() {
        let uri: Uri = "http://user:pw@inv.local:8080/items/1?token=abc&x=1"
            .parse()
            .unwrap();
        assert_eq!(url_full(&uri), "http://inv.local:8080/items/1?token=REDACTED&x=1");
    }
}
