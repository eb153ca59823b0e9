//! Server spans for HTTP and gRPC: [`TraceLayer`].
//!
//! ```
//! use axum::{routing::get, Router};
//! use telltale_trace::{pipeline::SpanPipeline, server::TraceLayer};
//!
//! let pipeline = SpanPipeline::disabled(); // normally from `TracingConfig::build()`
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "ok" }))
//!     // `Router::layer`, so the layer runs after routing and sees the route template.
//!     .layer(TraceLayer::new(pipeline));
//! ```
//!
//! For every request the layer extracts the incoming trace context, opens one span
//! named `{METHOD} {route}` (the route template from axum's `MatchedPath`; just
//! `{METHOD}` when no route matched; never the raw path), of kind server, with the
//! stable OpenTelemetry HTTP attributes and `request_id`, and a `tracing` span at INFO
//! (target [`SPAN_TARGET`](crate::names::SPAN_TARGET)) carrying
//! [`TraceIds`](telltale_core::trace_ids::TraceIds) and a `request_id` field, so every
//! log line written inside the request carries `trace_id` and `span_id`.
//!
//! Things to know:
//! - The span **ends when the response body ends** (or fails, or the client goes away),
//!   so streaming and SSE responses are measured whole.
//! - Status is Error for 5xx, a handler error, a body error and a panic only; a 4xx leaves
//!   it unset. A client that hangs up is recorded (`telltale.client_disconnected = true`
//!   and an event), not an error.
//! - A panic unwinding through the layer is recorded as an `exception` event and rethrown.
//!   A catch-panic layer *inside* this one turns it into a 500: put a [`HandlerPanic`] in
//!   that response's extensions and the span records the exception and `error.type=panic`.
//! - The query string is not recorded unless [`TraceLayer::with_query`] opts in; then
//!   sensitive values (`token`, `password`, `secret`, `key`, `signature`, …) are `REDACTED`.
//! - [`TraceLayer::with_traceresponse`] (off by default) answers with a Trace Context
//!   Level 2 `traceresponse` header.
//! - `client.address`/`client.port` are the socket peer from axum's `ConnectInfo` (serve
//!   with `into_make_service_with_connect_info::<SocketAddr>()`); forwarding headers are
//!   not trusted. `url.scheme` is the request URI's scheme, else `http` (TLS is usually
//!   terminated in front of the service).
//! - [`TraceLayer::grpc`] makes gRPC server spans instead (`rpc.*` attributes, status read
//!   from `grpc-status` in headers or trailers: an error inside an HTTP 200 is an error).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use opentelemetry::trace::{Event, SpanKind, Status};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SpanData;
use pin_project_lite::pin_project;
use telltale_core::body::{BodyEnd, BodyObserver, ObservedBody};
use telltale_core::outcome::{self, ErrorType, GrpcCode};
use telltale_core::route::{self, RouteLabel};
use telltale_core::{RequestId, method};
use tower::{Layer, Service};

use crate::names::{self, attr};
use crate::pipeline::SpanPipeline;
use crate::span::{self, SpanParts, SpanStart};

/// Marks a 500 response produced by a catch-panic layer placed inside [`TraceLayer`]:
/// the span then records an `exception` event with this message and `error.type=panic`.
/// (Defined in telltale-core so catch-panic layers elsewhere can set it.)
pub use telltale_core::outcome::HandlerPanic;

/// Which kind of server span to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Grpc,
}

#[derive(Debug, Clone)]
struct Config {
    pipeline: SpanPipeline,
    protocol: Protocol,
    record_query: bool,
    traceresponse: bool,
}

/// A tower layer opening one server span per request. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct TraceLayer {
    config: Arc<Config>,
}

impl TraceLayer {
    /// HTTP server spans exported through `pipeline`.
    pub fn new(pipeline: SpanPipeline) -> Self {
        TraceLayer {
            config: Arc::new(Config {
                pipeline,
                protocol: Protocol::Http,
                record_query: false,
                traceresponse: false,
            }),
        }
    }

    /// gRPC server spans (for tonic servers) exported through `pipeline`.
    pub fn grpc(pipeline: SpanPipeline) -> Self {
        let mut layer = Self::new(pipeline);
        Arc::make_mut(&mut layer.config).protocol = Protocol::Grpc;
        layer
    }

    /// Record `url.query`, with sensitive values redacted (default: off).
    pub fn with_query(mut self, record: bool) -> Self {
        Arc::make_mut(&mut self.config).record_query = record;
        self
    }

    /// Answer with a `traceresponse` header (Trace Context Level 2; default: off).
    pub fn with_traceresponse(mut self, enabled: bool) -> Self {
        Arc::make_mut(&mut self.config).traceresponse = enabled;
        self
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for TraceService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: Body,
    ResB::Error: fmt::Display,
{
    type Response = Response<ObservedBody<ResB, ServerSpanEnd>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let traced = TracePart::on_request_with(&self.config, &req);
        let head = req.method() == http::Method::HEAD;
        let future = traced.in_call(|| self.inner.call(req));
        ResponseFuture {
            inner: future,
            state: Some(traced),
            head,
        }
    }
}

impl TraceLayer {
    /// What this layer does for each request, without a service or future of its own:
    /// for composing several server layers into one service (as
    /// `telltale::Telemetry::server_layer` does), so a request pays for one response
    /// future and one body wrapper instead of one per layer.
    pub fn part(&self) -> TracePart {
        TracePart {
            config: self.config.clone(),
        }
    }
}

/// [`TraceLayer`]'s work on one request, for a composed service (see
/// [`TraceLayer::part`]). [`on_request`](TracePart::on_request) opens the span; the
/// service calls its inner service inside [`TracedRequest::in_call`] and polls the response
/// future inside [`TracedRequest::in_poll`] (catching a panic there, to report it with
/// [`TracedRequest::on_panic`] before resuming it); then exactly one of the
/// `TracedRequest`'s `on_*` methods ends it or hands it to the body.
#[derive(Debug, Clone)]
pub struct TracePart {
    config: Arc<Config>,
}

impl TracePart {
    /// Extracts the incoming context and opens the server span and the request's `tracing`
    /// span (read the request id from the extensions: run the request-id part first).
    pub fn on_request<B>(&self, req: &Request<B>) -> TracedRequest {
        Self::on_request_with(&self.config, req)
    }

    fn on_request_with<B>(config: &Arc<Config>, req: &Request<B>) -> TracedRequest {
        let (parent, base_cx) = span::extract(req.headers());
        let start = SpanStart::begin(&config.pipeline, &parent);
        let request_id = req.extensions().get::<RequestId>();
        let tracing_span = match request_id {
            // As `&str`, not `%id`: a subscriber that stores the field (telltale-log's JSON
            // layer) copies the string instead of running the formatter.
            Some(id) => tracing::info_span!(target: names::SPAN_TARGET, "request", request_id = id.as_str()),
            None => {
                tracing::info_span!(target: names::SPAN_TARGET, "request", request_id = tracing::field::Empty)
            }
        };
        span::attach_ids(&tracing_span, start.trace_ids());
        let rec = start.recording().then(|| {
            Box::new(Recording {
                info: RequestInfo::capture(req, config.protocol),
                body: None,
            })
        });
        let cx = span::child_context(&base_cx, &start);
        TracedRequest(State {
            start,
            rec,
            config: config.clone(),
            cx,
            span: tracing_span,
        })
    }
}

/// One request's server span, from [`TracePart::on_request`] to one of its `on_*` methods
/// (opaque). Call exactly one of them: dropped without one, the span is never ended nor
/// exported (only its `tracing` span closes). A response future dropped early should call
/// [`on_abandoned`](Self::on_abandoned), as [`TraceLayer`]'s does.
pub struct TracedRequest(State);

impl fmt::Debug for TracedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedRequest")
            .field("ids", &self.0.start.trace_ids())
            .finish_non_exhaustive()
    }
}

impl TracedRequest {
    /// The ids of the server span (also those of the request's `tracing` span).
    pub fn trace_ids(&self) -> telltale_core::trace_ids::TraceIds {
        self.0.start.trace_ids()
    }

    /// The request's `tracing` span (target `telltale_trace`, name `request`), which
    /// carries the ids for log lines.
    pub fn span(&self) -> &tracing::Span {
        &self.0.span
    }

    /// Runs `f` (the inner service's `call`) inside the request: its `tracing` span
    /// entered, its OpenTelemetry context attached, and its ids those of
    /// [`in_call`](telltale_core::trace_ids::in_call).
    #[inline]
    pub fn in_call<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.0.span.enter();
        let _attached = self.0.cx.clone().attach();
        let _ids = telltale_core::trace_ids::calling(self.0.start.trace_ids());
        f()
    }

    /// Runs `f` (a poll of the response future) with the request's `tracing` span entered
    /// and its OpenTelemetry context attached.
    #[inline]
    pub fn in_poll<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.0.span.enter();
        let _attached = self.0.cx.clone().attach();
        f()
    }

    /// The inner service panicked (`payload` is what `catch_unwind` returned): the span
    /// records an `exception` event, status 500 and `error.type=panic`.
    pub fn on_panic(self, payload: &(dyn std::any::Any + Send)) {
        let message = span::panic_message(payload);
        self.0.finish(EndInfo {
            status: Some(StatusCode::INTERNAL_SERVER_ERROR),
            error: Some(ErrorType::Panic),
            description: Some(message.clone()),
            exception: Some(message),
            ..EndInfo::default()
        });
    }

    /// The inner service returned an error instead of a response.
    pub fn on_service_error(self, error: &dyn fmt::Display) {
        self.0.finish(EndInfo {
            error: Some(ErrorType::Other),
            description: Some(error.to_string()),
            ..EndInfo::default()
        });
    }

    /// The response future was dropped before the response head: the client went away
    /// (or the server gave up). Recorded, not an error.
    pub fn on_abandoned(self) {
        self.0.finish(EndInfo {
            disconnected: true,
            ..EndInfo::default()
        });
    }

    /// The response head: adds `traceresponse` when configured and returns what ends the
    /// span with the body, or `None` when the span is not recorded (nothing left to do).
    pub fn on_response<B>(self, res: &mut Response<B>) -> Option<ServerSpanEnd> {
        let State {
            start,
            rec,
            config,
            span,
            cx: _,
        } = self.0;
        if config.traceresponse
            && let Some(v) = traceresponse(&start)
        {
            res.headers_mut().insert(telltale_core::headers::TRACERESPONSE, v);
        }
        // Not recorded: nothing to do at the end of the body.
        let mut rec = rec?;
        let status = res.status();
        let grpc_in_headers = match config.protocol {
            Protocol::Grpc => GrpcCode::from_headers(res.headers()),
            Protocol::Http => None,
        };
        let panic = res
            .extensions()
            .get::<HandlerPanic>()
            .map(|p| p.0.clone().into_owned());
        rec.body = Some(BodyPhase {
            start,
            config,
            span,
            status,
            grpc_in_headers,
            panic,
        });
        Some(ServerSpanEnd(rec))
    }
}

/// What the span needs from the request, captured only when the span is recorded.
struct RequestInfo {
    method: &'static str,
    method_original: Option<http::Method>,
    route: Route,
    uri: Uri,
    host: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    version: Version,
    client: Option<SocketAddr>,
    request_id: Option<RequestId>,
}

enum Route {
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
    Label(RouteLabel),
    Unmatched,
}

impl RequestInfo {
    fn capture<B>(req: &Request<B>, protocol: Protocol) -> Self {
        let ext = req.extensions();
        let route = match protocol {
            Protocol::Grpc => Route::Unmatched,
            Protocol::Http => capture_route(ext),
        };
        let m = method::normalize(req.method());
        RequestInfo {
            method: m,
            method_original: (m == method::OTHER).then(|| req.method().clone()),
            route,
            uri: req.uri().clone(),
            host: req.headers().get(http::header::HOST).cloned(),
            user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
            version: req.version(),
            client: client_addr(ext),
            request_id: ext.get::<RequestId>().cloned(),
        }
    }

    fn route_str(&self) -> Option<&str> {
        match &self.route {
            #[cfg(feature = "axum")]
            Route::Matched(m) => Some(m.as_str()),
            Route::Label(l) => Some(l.as_str()),
            Route::Unmatched => None,
        }
    }
}

fn capture_route(ext: &http::Extensions) -> Route {
    #[cfg(feature = "axum")]
    if let Some(m) = ext.get::<axum::extract::MatchedPath>() {
        return Route::Matched(m.clone());
    }
    match ext.get::<RouteLabel>() {
        Some(l) if !l.is_unmatched() => Route::Label(l.clone()),
        _ => {
            let _ = route::UNMATCHED;
            Route::Unmatched
        }
    }
}

fn client_addr(ext: &http::Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(ci) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(ci.0);
    }
    let _ = ext;
    None
}

/// `(host, port)` from the `Host` header or the URI authority (HTTP/2 `:authority`).
pub(crate) fn server_address<'a>(
    host: Option<&'a HeaderValue>,
    uri: &'a Uri,
    scheme: &str,
) -> Option<(&'a str, Option<u16>)> {
    let authority = host
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    let (h, port) = split_host_port(authority);
    let port = port.or(match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    });
    Some((h, port))
}

fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        // [ipv6]:port
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

pub(crate) fn protocol_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "_OTHER",
    }
}

// Kept small (the request data is boxed, and only when recorded): the response future
// and body are moved several times on their way out, and a big struct costs memmoves.
struct State {
    start: SpanStart,
    rec: Option<Box<Recording>>,
    config: Arc<Config>,
    cx: Context,
    span: tracing::Span,
}

/// A recorded request's one allocation, made when it starts: the request data, then (at
/// the response head) what the end of the body needs, moved in so the body carries one
/// pointer and no second box is made.
struct Recording {
    info: RequestInfo,
    body: Option<BodyPhase>,
}

/// The state carried from the response head to the end of the body.
struct BodyPhase {
    start: SpanStart,
    config: Arc<Config>,
    /// The request's `tracing` span stays open until the body ends, as the request does.
    span: tracing::Span,
    status: StatusCode,
    grpc_in_headers: Option<GrpcCode>,
    panic: Option<String>,
}

/// How a request ended, for the span.
#[derive(Default)]
struct EndInfo {
    status: Option<StatusCode>,
    grpc: Option<GrpcCode>,
    error: Option<ErrorType>,
    description: Option<String>,
    exception: Option<String>,
    disconnected: bool,
    body_bytes: Option<u64>,
}

impl State {
    fn finish(self, end: EndInfo) {
        let State {
            start,
            rec,
            config,
            span: _span,
            ..
        } = self;
        if let Some(rec) = rec {
            finish_recorded(start, &config, rec.info, end);
        }
    }
}

/// Ends a recorded span: exported, held for the tail decision, or dropped (the span data is
/// only built when it is kept).
fn finish_recorded(start: SpanStart, config: &Config, info: RequestInfo, end: EndInfo) {
    let error = end.error.is_some();
    start.finish(&config.pipeline, error, |parts| {
        build_server_span(config, info, end, parts)
    });
}

fn build_server_span(config: &Config, info: RequestInfo, end: EndInfo, parts: SpanParts) -> SpanData {
    let mut a = Vec::with_capacity(16);
    let scheme = info.uri.scheme_str().unwrap_or("http");
    let static_scheme: &'static str = if scheme == "https" { "https" } else { "http" };
    let name: Cow<'static, str>;
    match config.protocol {
        Protocol::Http => {
            a.push(KeyValue::new(attr::HTTP_REQUEST_METHOD, info.method));
            if let Some(orig) = &info.method_original {
                a.push(KeyValue::new(
                    attr::HTTP_REQUEST_METHOD_ORIGINAL,
                    orig.as_str().to_owned(),
                ));
            }
            name = match info.route_str() {
                Some(r) => {
                    a.push(KeyValue::new(attr::HTTP_ROUTE, r.to_owned()));
                    Cow::Owned(format!("{} {}", info.method, r))
                }
                None => Cow::Borrowed(info.method),
            };
            a.push(KeyValue::new(attr::URL_PATH, info.uri.path().to_owned()));
            a.push(KeyValue::new(attr::URL_SCHEME, static_scheme));
            if config.record_query
                && let Some(q) = info.uri.query()
            {
                a.push(KeyValue::new(attr::URL_QUERY, span::redact_query(q)));
            }
            if let Some(status) = end.status {
                a.push(KeyValue::new(
                    attr::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(status.as_u16()),
                ));
            }
            a.push(KeyValue::new(
                attr::NETWORK_PROTOCOL_VERSION,
                protocol_version(info.version),
            ));
            if let Some(bytes) = end.body_bytes {
                a.push(KeyValue::new(attr::HTTP_RESPONSE_BODY_SIZE, bytes as i64));
            }
        }
        Protocol::Grpc => {
            a.push(KeyValue::new(attr::RPC_SYSTEM, "grpc"));
            name = match route::grpc_service_method(info.uri.path()) {
                Some((service, m)) => {
                    a.push(KeyValue::new(attr::RPC_SERVICE, service.to_owned()));
                    a.push(KeyValue::new(attr::RPC_METHOD, m.to_owned()));
                    Cow::Owned(format!("{service}/{m}"))
                }
                None => Cow::Borrowed(info.method),
            };
            if let Some(code) = end.grpc {
                a.push(KeyValue::new(
                    attr::RPC_GRPC_STATUS_CODE,
                    i64::from(code.as_i32()),
                ));
            }
        }
    }
    if let Some((host, port)) = server_address(info.host.as_ref(), &info.uri, static_scheme) {
        a.push(KeyValue::new(attr::SERVER_ADDRESS, host.to_owned()));
        if let Some(p) = port {
            a.push(KeyValue::new(attr::SERVER_PORT, i64::from(p)));
        }
    }
    if let Some(ua) = info.user_agent.as_ref().and_then(|v| v.to_str().ok()) {
        a.push(KeyValue::new(attr::USER_AGENT_ORIGINAL, ua.to_owned()));
    }
    if let Some(client) = info.client {
        a.push(KeyValue::new(attr::CLIENT_ADDRESS, client.ip().to_string()));
        a.push(KeyValue::new(attr::CLIENT_PORT, i64::from(client.port())));
    }
    if let Some(id) = &info.request_id {
        a.push(KeyValue::new(attr::REQUEST_ID, id.as_str().to_owned()));
    }
    let mut events = Vec::new();
    if end.disconnected {
        a.push(KeyValue::new(attr::CLIENT_DISCONNECTED, true));
        events.push(Event::new("client disconnected", parts.end(), Vec::new(), 0));
    }
    if let Some(msg) = end.exception {
        events.push(span::exception_event(parts.end(), "panic", msg));
    }
    let status = match end.error {
        Some(e) => {
            a.push(KeyValue::new(attr::ERROR_TYPE, e.as_str()));
            Status::error(end.description.unwrap_or_default())
        }
        None => Status::Unset,
    };
    parts.into_span_data(&config.pipeline, SpanKind::Server, name, a, events, status)
}

pin_project! {
    /// Response future of [`TraceService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<TracedRequest>,
        // The request was a HEAD: its response body is never sent.
        head: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the response head: the client went away (or the server gave up).
            if let Some(state) = this.project().state.take() {
                state.on_abandoned();
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
    B: Body,
    B::Error: fmt::Display,
{
    type Output = Result<Response<ObservedBody<B, ServerSpanEnd>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let polled = {
            let Some(state) = this.state.as_ref() else {
                // Polled after completion: the inner future decides what that means.
                return this
                    .inner
                    .poll(cx)
                    .map(|r| r.map(|res| res.map(ObservedBody::unobserved)));
            };
            let inner = this.inner.as_mut();
            state.in_poll(|| std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))))
        };
        match polled {
            Err(payload) => {
                if let Some(state) = this.state.take() {
                    state.on_panic(payload.as_ref());
                }
                std::panic::resume_unwind(payload)
            }
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Err(e))) => {
                if let Some(state) = this.state.take() {
                    state.on_service_error(&e);
                }
                Poll::Ready(Err(e))
            }
            Ok(Poll::Ready(Ok(mut res))) => {
                let end = this.state.take().and_then(|state| state.on_response(&mut res));
                let declared = end
                    .is_some()
                    .then(|| telltale_core::body::declared_length(*this.head, &res))
                    .flatten();
                Poll::Ready(Ok(res.map(|b| match end {
                    Some(end) => ObservedBody::new(b, end).with_declared_length(declared),
                    None => ObservedBody::unobserved(b),
                })))
            }
        }
    }
}

fn traceresponse(start: &SpanStart) -> Option<HeaderValue> {
    let ids = start.trace_ids();
    let (mut t, mut s) = ([0u8; 32], [0u8; 16]);
    let mut buf = [0u8; 55];
    buf[..3].copy_from_slice(b"00-");
    buf[3..35].copy_from_slice(ids.trace_id_hex(&mut t).as_bytes());
    buf[35] = b'-';
    buf[36..52].copy_from_slice(ids.span_id_hex(&mut s).as_bytes());
    buf[52] = b'-';
    let flags = start.flags.to_u8();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf[53] = HEX[usize::from(flags >> 4)];
    buf[54] = HEX[usize::from(flags & 0xf)];
    HeaderValue::from_bytes(&buf).ok()
}

/// Ends the server span when the response body ends (see [`ObservedBody`]).
///
/// Boxed, so an unobserved body stays small.
pub struct ServerSpanEnd(Box<Recording>);

impl fmt::Debug for ServerSpanEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSpanEnd")
            .field("status", &self.0.body.as_ref().map(|b| b.status))
            .finish_non_exhaustive()
    }
}

impl BodyObserver for ServerSpanEnd {
    fn on_end(self, end: BodyEnd<'_>) {
        let Recording { info: request, body } = *self.0;
        // Always set: the observer is made only after `body` is filled.
        let Some(this) = body else { return };
        let protocol = this.config.protocol;
        let mut info = EndInfo {
            status: Some(this.status),
            body_bytes: Some(end.bytes()),
            ..EndInfo::default()
        };
        let grpc = this
            .grpc_in_headers
            .or_else(|| end.trailers().and_then(GrpcCode::from_headers));
        info.grpc = grpc;
        // The status classification first.
        let mut outcome = match protocol {
            Protocol::Http => outcome::server_http(this.status),
            Protocol::Grpc => match grpc {
                Some(code) => outcome::server_grpc(code),
                None => outcome::server_http(this.status),
            },
        };
        match end {
            BodyEnd::Error { error, .. } => {
                outcome = outcome::Outcome::Error(ErrorType::Body);
                info.description = Some(error.to_string());
            }
            BodyEnd::Dropped { .. } => info.disconnected = true,
            _ => {}
        }
        if let Some(msg) = this.panic {
            outcome = outcome::Outcome::Error(ErrorType::Panic);
            info.description = Some(msg.clone());
            info.exception = Some(msg);
        }
        info.error = outcome.error_type();
        finish_recorded(this.start, &this.config, request, info);
        drop(this.span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split() {
        let uri: Uri = "/x".parse().unwrap();
        let h = HeaderValue::from_static("example.com:8080");
        assert_eq!(
            server_address(Some(&h), &uri, "http"),
            Some(("example.com", Some(8080)))
        );
        let h = HeaderValue::from_static("[::1]:9");
        assert_eq!(server_address(Some(&h), &uri, "http"), Some(("::1", Some(9))));
        let h = HeaderValue::from_static("example.com");
        assert_eq!(
            server_address(Some(&h), &uri, "http"),
            Some(("example.com", Some(80)))
        );
        let uri: Uri = "http://a.b:81/x".parse().unwrap();
        assert_eq!(server_address(None, &uri, "http"), Some(("a.b", Some(81))));
    }
}
