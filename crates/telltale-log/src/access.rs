//! The access log: exactly one event per request, when the response body ends.
//!
//! ```
//! use axum::{Router, routing::get};
//! use telltale_log::AccessLogLayer;
//!
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "ok" }))
//!     .layer(AccessLogLayer::new());
//! ```
//!
//! Each request gives one event on target [`keys::ACCESS_TARGET`] (`telltale::access`)
//! with the message `request completed` and the fields `method` (normalised, `_OTHER` for
//! non-standard methods), `route` (the route template, or `unmatched` — never the raw
//! path), `path` (without the query string, which often holds tokens), `status`,
//! `duration_ms` (float, microsecond precision), `bytes` (response body bytes sent), `end`
//! (`complete`, `error` or `aborted`), `request_id` when known, and `request_headers`
//! when some allow-listed header is present.
//!
//! **Redaction comes from the layer, not from the log format.** The JSON layer cannot see
//! inside `request_headers`, so the access log redacts allow-listed headers itself, with
//! its own [`Redaction`]. [`AccessLogLayer::new`] and [`AccessLogLayer::builder`] use the
//! [default names](crate::redact::DEFAULT_REDACTED) only: names added with
//! `LogConfig::redact` are **not** applied. Build the layer from the same configuration
//! to share them:
//!
//! ```
//! use telltale_log::LogConfig;
//!
//! let config = LogConfig::new("orders-api").redact(["x-session"]);
//! let access = config.access_log().request_headers(["user-agent", "x-session"]).build().unwrap();
//! # let _ = access;
//! ```
//!
//! Things to know:
//!
//! - **Measured to the end of the body.** The event is written when the response body
//!   has been sent (or failed, or was dropped), not when the handler returns, so a
//!   streaming response is logged with its real duration.
//! - **Client hang-up.** If the client goes away before the response is ready (the
//!   response future is dropped), the event says `status = 499` (nginx's "client closed
//!   request"), `end = "aborted"`. A client leaving mid-body keeps the real status with
//!   `end = "aborted"`.
//! - **Levels.** INFO for 1xx–4xx, ERROR for 5xx and for responses whose body failed or
//!   whose service returned an error (logged as status 500). A 4xx is the client's mistake: logging it at
//!   ERROR would make error-rate alerts on logs page someone for bad requests they cannot
//!   fix.
//! - **Trace context.** The event's parent is the span that was current when the request
//!   entered this layer, so it carries that span's `trace_id`, `span_id` and fields even
//!   though the body is polled outside it. Put this layer inside the trace layer.
//!   (`telltale::Telemetry::server_layer` gives the line the request's ids directly
//!   instead, see [`AccessPart::on_request_at`].)
//! - **Request id.** From the [`RequestId`] in the request extensions, else the current
//!   one ([`telltale_core::current_request_id`]). Put this layer inside the request-id layer.
//! - **Path under `Router::nest`.** `path`, and the excluded paths, are the path the
//!   client sent: when axum's `OriginalUri` is in the request extensions (a `Router`
//!   puts it there; feature `axum`), it is used, so a layer inside
//!   `Router::nest("/api/v1", ...)` logs `/api/v1/orders/42`, not `/orders/42`, matching
//!   the `route` `/api/v1/orders/{id}`.
//! - **Excluded paths.** `/healthz`, `/livez`, `/readyz`, `/startupz` and `/metrics` are
//!   not logged by default (exact match on the whole path as sent, so a nested
//!   `/ops/healthz` is logged unless excluded by that name; see
//!   [`AccessLogBuilder::exclude_paths`]).
//! - **Headers.** None are logged unless allow-listed
//!   ([`AccessLogBuilder::request_headers`]); allow-listed headers in the layer's
//!   redaction set (see above) are written as `[REDACTED]`: the built-in secret names
//!   match as the last segment of a header name, so `proxy-authorization`, `x-api-key`
//!   and `x-auth-token` are redacted by default. Bytes that are not UTF-8 are replaced
//!   with U+FFFD.
//! - **Route.** Read when the request enters the layer: apply it with axum's
//!   `Router::layer` (routes see their `MatchedPath`), not around the whole router.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body::Body;
use pin_project_lite::pin_project;
use telltale_core::RequestId;
use telltale_core::body::{BodyEnd, BodyObserver, ObservedBody};
use telltale_core::route::RouteLabel;
use telltale_core::trace_ids::TraceIds;
use tower::{Layer, Service};
use tracing::{Level, Span};

use crate::config::LogConfigError;
use crate::keys;
use crate::redact::Redaction;

/// The paths not logged by default.
pub const DEFAULT_EXCLUDED_PATHS: [&str; 5] = ["/healthz", "/livez", "/readyz", "/startupz", "/metrics"];

/// Status logged when the client hung up before the response was ready.
pub use telltale_core::status::CLIENT_CLOSED_REQUEST;

/// Layer writing one access-log event per request. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AccessLogLayer {
    config: Arc<AccessConfig>,
}

#[derive(Clone, Debug)]
struct AccessConfig {
    excluded: Box<[Box<str>]>,
    /// The allow-listed headers, each with whether its value is redacted (decided once,
    /// here, not per request).
    headers: Box<[(HeaderName, bool)]>,
}

/// Builder for [`AccessLogLayer`], validated by [`build`](AccessLogBuilder::build).
#[derive(Clone, Debug)]
pub struct AccessLogBuilder {
    excluded: Vec<String>,
    headers: Vec<String>,
    redaction: Redaction,
}

impl Default for AccessLogBuilder {
    fn default() -> Self {
        AccessLogBuilder {
            excluded: DEFAULT_EXCLUDED_PATHS.iter().map(|p| (*p).to_owned()).collect(),
            headers: Vec::new(),
            redaction: Redaction::default_names(),
        }
    }
}

impl AccessLogBuilder {
    /// Replaces the excluded paths (default [`DEFAULT_EXCLUDED_PATHS`]). Matching is exact,
    /// on the path without its query. Each must start with `/`.
    pub fn exclude_paths<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.excluded = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Adds one excluded path (must start with `/`).
    pub fn exclude_path(mut self, path: impl Into<String>) -> Self {
        self.excluded.push(path.into());
        self
    }

    /// Sets the request headers to log (default: none). Names must be valid header names.
    pub fn request_headers<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        self.headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds names to the redaction set (default [`DEFAULT_REDACTED`](crate::redact::DEFAULT_REDACTED)),
    /// matched whole. Names given to `LogConfig::redact` are not here unless the builder
    /// came from [`LogConfig::access_log`](crate::LogConfig::access_log).
    pub fn redact<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.redaction = self.redaction.with(names);
        self
    }

    /// Replaces the redaction set.
    pub fn redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Validates and builds the layer.
    pub fn build(self) -> Result<AccessLogLayer, LogConfigError> {
        if let Some(bad) = self.excluded.iter().find(|p| !p.starts_with('/')) {
            return Err(LogConfigError::InvalidExcludedPath(bad.clone()));
        }
        let headers = self
            .headers
            .iter()
            .map(|h| {
                let name = HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| LogConfigError::InvalidHeaderName(h.clone()))?;
                let redacted = self.redaction.is_redacted(name.as_str());
                Ok((name, redacted))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AccessLogLayer {
            config: Arc::new(AccessConfig {
                excluded: self.excluded.into_iter().map(String::into_boxed_str).collect(),
                headers: headers.into(),
            }),
        })
    }
}

impl Default for AccessLogLayer {
    fn default() -> Self {
        AccessLogLayer::new()
    }
}

impl AccessLogLayer {
    /// The layer with the defaults: excluded [`DEFAULT_EXCLUDED_PATHS`], no headers, the
    /// default redaction set.
    ///
    /// It logs no header, so no redaction applies; to log headers, build the layer with
    /// [`LogConfig::access_log`](crate::LogConfig::access_log) so that the names given to
    /// `LogConfig::redact` are redacted in them too (see [`builder`](Self::builder)).
    pub fn new() -> Self {
        AccessLogLayer {
            config: Arc::new(AccessConfig {
                excluded: DEFAULT_EXCLUDED_PATHS.iter().map(|p| Box::from(*p)).collect(),
                headers: Box::new([]),
            }),
        }
    }

    /// A builder starting from the defaults, with the
    /// [default redaction names](crate::redact::DEFAULT_REDACTED) only.
    ///
    /// **Names given to `LogConfig::redact` are not applied** to the headers this layer
    /// logs: the access log redacts headers itself, before the log format sees them.
    /// Start from [`LogConfig::access_log`](crate::LogConfig::access_log) instead, which
    /// shares the configuration's redaction set, or pass it with
    /// [`AccessLogBuilder::redaction`].
    pub fn builder() -> AccessLogBuilder {
        AccessLogBuilder::default()
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            part: self.part(),
        }
    }
}

impl AccessLogLayer {
    /// What this layer does for each request, without a service or future of its own:
    /// for composing several server layers into one service (as
    /// `telltale::Telemetry::server_layer` does), so a request pays for one response
    /// future and one body wrapper instead of one per layer.
    pub fn part(&self) -> AccessPart {
        AccessPart {
            config: self.config.clone(),
        }
    }
}

/// [`AccessLogLayer`]'s work on one request, for a composed service (see
/// [`AccessLogLayer::part`]): [`on_request`](AccessPart::on_request) captures what the
/// line needs when the request enters; the service then hands the [`AccessRequest`] the
/// response status (getting the [`AccessObserver`] that writes the line when the body
/// ends), or tells it the service failed or the request was abandoned. Exactly one event
/// per request, as with the layer.
#[derive(Clone, Debug)]
pub struct AccessPart {
    config: Arc<AccessConfig>,
}

impl AccessPart {
    /// Captures the request now; `None` when it is not logged (excluded path, or the
    /// access target disabled by the filter). Call it inside the request's trace span:
    /// the event's parent is the span current now.
    pub fn on_request<B>(&self, req: &Request<B>) -> Option<AccessRequest> {
        self.config
            .start(req, Instant::now(), || Parent::Span(Span::current()))
            .map(AccessRequest)
    }

    /// [`on_request`](Self::on_request) for a composed service that knows the request's
    /// arrival time and trace ids: it reads the clock once for all its parts, and the line
    /// is written without a parent span, carrying `ids` instead (the JSON and pretty
    /// formats read them through [`telltale_core::trace_ids::in_call`], set while the line
    /// is written).
    ///
    /// Holding the request's span until the end of the body, and the JSON layer looking it
    /// up there, cost about 100 ns each per request (`tracing`'s registry counts references
    /// with atomic operations; see docs/performance.md, session 10). The line is the same,
    /// less the fields of spans that enclose the request's own.
    pub fn on_request_at<B>(
        &self,
        req: &Request<B>,
        start: Instant,
        ids: Option<TraceIds>,
    ) -> Option<AccessRequest> {
        self.config
            .start(req, start, || Parent::Ids(ids))
            .map(AccessRequest)
    }
}

/// One request on its way through an [`AccessPart`] (opaque). Call exactly one of its
/// methods: each ends with the event written or handed to the body; dropped without one,
/// no line is written.
#[derive(Debug)]
pub struct AccessRequest(Pending);

impl AccessRequest {
    /// The response head: the returned observer writes the event when the body ends.
    pub fn on_response(self, status: u16) -> AccessObserver {
        AccessObserver {
            pending: self.0,
            status,
        }
    }

    /// The service returned an error instead of a response: written now, as status 500,
    /// `end = "error"`, at ERROR.
    pub fn on_service_error(self) {
        self.0.emit(500, END_ERROR, 0);
    }

    /// The response future was dropped before the head: a panic while it was polled
    /// (`panicking`: status 500, `end = "error"`), else the client went away (status 499,
    /// `end = "aborted"`).
    pub fn on_abandoned(self, panicking: bool) {
        if panicking {
            self.0.emit(500, END_ERROR, 0);
        } else {
            self.0.emit(CLIENT_CLOSED_REQUEST, END_ABORTED, 0);
        }
    }
}

/// Service writing one access-log event per request. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
    part: AccessPart,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AccessLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
    ResBody::Error: fmt::Display,
{
    type Response = Response<ObservedBody<ResBody, AccessObserver>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let pending = self.part.on_request(&req);
        ResponseFuture {
            inner: self.inner.call(req),
            pending,
            in_poll: false,
        }
    }
}

// === what is known when the request enters ===

#[derive(Debug)]
struct Pending {
    start: Instant,
    method: &'static str,
    route: RouteLabel,
    path: Option<PathAndQuery>,
    request_id: Option<RequestId>,
    /// Allow-listed headers present on the request; `None` value = redacted.
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
    parent: Parent,
}

/// Where the event takes its trace context from.
#[derive(Debug)]
enum Parent {
    /// The span current when the request entered the layer: the event's parent.
    Span(Span),
    /// No parent span; these ids, through `trace_ids::calling`, while the event is written.
    Ids(Option<TraceIds>),
}

impl AccessConfig {
    fn start<B>(&self, req: &Request<B>, start: Instant, parent: impl FnOnce() -> Parent) -> Option<Pending> {
        if !tracing::enabled!(target: keys::ACCESS_TARGET, Level::ERROR) {
            return None;
        }
        let uri = original_uri(req);
        let path = uri.path();
        if self.excluded.iter().any(|p| **p == *path) {
            return None;
        }
        let mut headers = Vec::new();
        for (name, redacted) in self.headers.iter() {
            if let Some(value) = req.headers().get(name) {
                headers.push((name.clone(), (!redacted).then(|| value.clone())));
            }
        }
        Some(Pending {
            start,
            method: telltale_core::method::normalize(req.method()),
            route: telltale_core::route::from_extensions(req.extensions()),
            path: uri.path_and_query().cloned(),
            request_id: req
                .extensions()
                .get::<RequestId>()
                .cloned()
                .or_else(telltale_core::current_request_id),
            headers,
            parent: parent(),
        })
    }
}

/// The URI the client sent: axum's `OriginalUri` when a `Router` recorded it (a layer
/// inside `Router::nest` sees the path with the nest prefix stripped), else the request's.
#[cfg(feature = "axum")]
fn original_uri<B>(req: &Request<B>) -> &Uri {
    req.extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or(req.uri(), |original| &original.0)
}

/// The URI the client sent (without axum, the request's own).
#[cfg(not(feature = "axum"))]
fn original_uri<B>(req: &Request<B>) -> &Uri {
    req.uri()
}

/// `{"name": "value", ...}` with redacted values replaced and non-UTF-8 bytes replaced.
struct HeadersDebug<'a>(&'a [(HeaderName, Option<HeaderValue>)]);

impl fmt::Debug for HeadersDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            match value {
                None => map.entry(&name.as_str(), &keys::REDACTED),
                Some(v) => match v.to_str() {
                    Ok(s) => map.entry(&name.as_str(), &s),
                    Err(_) => map.entry(&name.as_str(), &String::from_utf8_lossy(v.as_bytes())),
                },
            };
        }
        map.finish()
    }
}

/// The access event's message. Passed as a `&str` field rather than the macro's format
/// string, which would reach the JSON layer as `fmt::Arguments` and go through the
/// formatter (about 400 instructions per request).
const MESSAGE: &str = "request completed";

const END_COMPLETE: &str = "complete";
const END_ERROR: &str = "error";
const END_ABORTED: &str = "aborted";

/// Longest `path` written to an access line, in bytes. A path is bounded only by the
/// server's URI limit (hyper takes up to 64 KiB): a scanner's 20 KB paths would make
/// 20 KB lines. Longer paths are cut (at a character boundary) and end with `...`; the
/// metrics never see the path at all.
pub const MAX_LOGGED_PATH: usize = 1024;

fn logged_path(path: &str) -> std::borrow::Cow<'_, str> {
    if path.len() <= MAX_LOGGED_PATH {
        return path.into();
    }
    let mut cut = MAX_LOGGED_PATH;
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &path[..cut]).into()
}

impl Pending {
    fn emit(self, status: u16, end: &'static str, bytes: u64) {
        self.emit_at(status, end, bytes, Instant::now());
    }

    fn emit_at(self, status: u16, end: &'static str, bytes: u64, now: Instant) {
        let duration_ms = now.saturating_duration_since(self.start).as_micros() as f64 / 1000.0;
        let path = logged_path(self.path.as_ref().map_or("/", PathAndQuery::path));
        let path = &*path;
        let request_id = self.request_id.as_ref().map(RequestId::as_str);
        let request_headers =
            (!self.headers.is_empty()).then(|| tracing::field::debug(HeadersDebug(&self.headers)));
        let method = self.method;
        let route = self.route.as_str();
        let (parent, _ids) = match &self.parent {
            Parent::Span(span) => (span.id(), None),
            Parent::Ids(ids) => (None, ids.map(telltale_core::trace_ids::calling)),
        };
        macro_rules! access_event {
            ($level:expr) => {
                tracing::event!(
                    target: keys::ACCESS_TARGET,
                    parent: parent.clone(),
                    $level,
                    method,
                    route,
                    path,
                    status,
                    duration_ms,
                    bytes,
                    end,
                    request_id,
                    request_headers,
                    message = MESSAGE
                )
            };
        }
        if status >= 500 || end == END_ERROR {
            access_event!(Level::ERROR);
        } else {
            access_event!(Level::INFO);
        }
    }
}

/// Writes the access-log event when the response body ends. Opaque; part of the
/// response body type ([`ObservedBody`]).
#[derive(Debug)]
pub struct AccessObserver {
    pending: Pending,
    status: u16,
}

impl AccessObserver {
    /// The end of the response body, at `now` (a composed service reads the clock once for
    /// all its parts); the same as [`BodyObserver::on_end`] otherwise.
    pub fn on_end_at(self, end: BodyEnd<'_>, now: Instant) {
        let label = match end {
            BodyEnd::Complete { .. } => END_COMPLETE,
            BodyEnd::Error { .. } => END_ERROR,
            BodyEnd::Dropped { .. } => END_ABORTED,
            _ => END_COMPLETE,
        };
        self.pending.emit_at(self.status, label, end.bytes(), now);
    }
}

impl BodyObserver for AccessObserver {
    fn on_end(self, end: BodyEnd<'_>) {
        self.on_end_at(end, Instant::now());
    }
}

pin_project! {
    /// Response future of [`AccessLog`]. Dropping it before it completes (the client hung
    /// up) writes the event with status 499.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Option<AccessRequest>,
        in_poll: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(pending) = this.pending.take() {
                // Still in poll (the flag was never cleared): the inner future panicked,
                // a server failure, not a hang-up.
                pending.on_abandoned(*this.in_poll);
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
    B: Body,
{
    type Output = Result<Response<ObservedBody<B, AccessObserver>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        *this.in_poll = true;
        let polled = this.inner.poll(cx);
        *this.in_poll = false;
        let result = ready!(polled);
        let pending = this.pending.take();
        Poll::Ready(match result {
            Ok(res) => {
                let status = res.status().as_u16();
                // A HEAD answer's body is never sent, nor a body past the length it
                // announced: dropped there, it ended, the client did not go away.
                let declared = pending
                    .as_ref()
                    .and_then(|p| telltale_core::body::declared_length(p.0.method == "HEAD", &res));
                Ok(res.map(|body| match pending {
                    Some(pending) => {
                        ObservedBody::new(body, pending.on_response(status)).with_declared_length(declared)
                    }
                    None => ObservedBody::unobserved(body),
                }))
            }
            Err(e) => {
                if let Some(pending) = pending {
                    pending.on_service_error();
                }
                Err(e)
            }
        })
    }
}
