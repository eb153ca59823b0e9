//! Server RED metrics for HTTP: [`MetricsLayer`].
//!
//! ```
//! use axum::{routing::get, Router};
//! use telltale_metrics::MetricsLayer;
//!
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     // `Router::layer`, so the layer runs after routing and sees the route template.
//!     .layer(MetricsLayer::new());
//! ```
//!
//! # What is recorded
//!
//! With the default [`Scheme::OpenTelemetry`]:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_server_request_duration_seconds` | histogram | `http_request_method`, `http_route`, `http_response_status_code`, `error_type` (only on 5xx / failed bodies) |
//! | `http_server_active_requests` | gauge | — |
//! | `http_server_request_body_size_bytes`, `http_server_response_body_size_bytes` | histogram (opt-in, [`MetricsLayerBuilder::body_sizes`]) | as the duration |
//!
//! With [`Scheme::Legacy`]: `http_requests_total` (counter) and
//! `http_request_duration_seconds` (histogram) labelled `method`, `route`, `status`, and
//! `http_requests_in_flight`.
//!
//! PromQL, OpenTelemetry scheme (the histogram's `_count` is the request counter):
//!
//! ```text
//! # request rate per route
//! sum by (http_route) (rate(http_server_request_duration_seconds_count[5m]))
//! # error ratio: 5xx (4xx are the client's fault) and bodies that failed mid-stream,
//! # which keep the status already sent; what telltale-slo's availability SLOs count
//! sum(rate(http_server_request_duration_seconds_count{error_type!=""}[5m]))
//!   / sum(rate(http_server_request_duration_seconds_count[5m]))
//! # p50 / p95 / p99 latency per route (0.5, 0.95, 0.99)
//! histogram_quantile(0.99, sum by (http_route, le) (rate(http_server_request_duration_seconds_bucket[5m])))
//! ```
//!
//! PromQL, Legacy scheme:
//!
//! ```text
//! sum by (route) (rate(http_requests_total[5m]))
//! sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))
//! histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_seconds_bucket[5m])))
//! ```
//!
//! # Behaviour to know
//!
//! - **Duration ends with the response body**, not when the handler returns: a streaming
//!   response is measured until its last byte is handed to the connection.
//! - **A client that hangs up** (the response future or the body dropped before the end)
//!   is counted once with status label `499` (nginx's "client closed request",
//!   [`telltale_core::status::CLIENT_CLOSED_REQUEST`]) and no `error_type`: it is not a
//!   server error. A body that fails while streaming keeps its status and gets
//!   `error_type="body"`; a service error (not an HTTP response at all) is `500` with
//!   `error_type="_OTHER"`.
//! - **The in-flight gauge** is decremented by the same object that records, on drop, so
//!   it cannot leak whichever way the request ends.
//! - **Labels** come only from the route template (axum `MatchedPath`; `unmatched` for
//!   404s), the normalised method (`_OTHER` for non-standard ones), the status code and
//!   the closed `error_type` set. The `Host` header and the raw path never become labels.
//!   Add the layer with `Router::layer` (not around the router from outside), or every
//!   request is `unmatched`; axum applies it only to the routes and fallback that exist
//!   at that point, so set a `.fallback(...)` before `.layer(...)` to measure 404s.
//! - **A panic caught inside**: a catch-panic layer added *inside* this one (tower-http's
//!   `CatchPanicLayer`, telltale-resilience's server protection) answers 500; when it
//!   marks that response with [`HandlerPanic`] in its extensions, the request is recorded
//!   with `error_type="panic"` instead of `"500"` (the status stays `500`).
//! - **Cardinality cap**: at most [`MetricsLayerBuilder::max_label_sets`] label sets
//!   (default 2000, the `overflow` series included); beyond it requests are recorded in
//!   one series whose labels are all `overflow`, counted in
//!   `telltale_metrics_cardinality_overflow_total`, and logged once.
//! - **Excluded paths** (default `/healthz`, `/readyz`, `/livez`, `/startupz`, `/metrics`) are not
//!   measured at all. They are compared with the request path exactly.
//! - Histogram buckets are the exporter's business (metrics facade histograms carry
//!   no buckets): [`PrometheusConfig`](crate::PrometheusConfig) sets the OpenTelemetry
//!   recommendation by default.
//!
//! # Nested routers and services
//!
//! - `Router::nest("/api", router)`: axum copies the nested routes into the outer router
//!   with their full path, so `MatchedPath` — and the label — is the full template
//!   (`/api/users/{id}`), whether the layer is added to the outer router after `nest` or
//!   to the inner router before it.
//! - `Router::nest_service("/files", service)` (tower-http's `ServeDir`, a tonic router,
//!   any `Service`): axum 0.8 registers `/files`, `/files/` and `/files/{*rest}` for it.
//!   The first two get a `MatchedPath` (labels `/files` and `/files/`); for any path
//!   below (`/files/css/site.css`) axum keeps the template in a private extension and
//!   sets **no** `MatchedPath`, so by default those requests are labelled `unmatched`,
//!   together with the 404s. The same holds for the fallback of a nested router. The raw
//!   path is never used instead (one series per file). Declare the prefix with
//!   [`MetricsLayerBuilder::nested_service`] to label them `/files/{*rest}`.
//!
//! # Hot path
//!
//! Per request: one hash look-up of the route template in an immutable map at the start
//! (a request that matched no route also compares its path with the declared nested
//! service prefixes), one of `(method, status, error_type)` at the end, an `Instant`, one
//! extensions look-up for the panic marker, and the histogram observation. No lock, no
//! `String`, no boxing. Handles are resolved once per label set.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use metrics::{Counter, Gauge, Histogram, Key, Label};
use telltale_core::body::BodyEnd;
use telltale_core::outcome::{self, ErrorType, HandlerPanic};
use telltale_core::{method, route, status};
use tower::{Layer, Service};

use crate::cache::{DEFAULT_MAX_LABEL_SETS, Group, LabelCache};
use crate::names::{LabelNames, Scheme, meta, otel};
use crate::observe::{RequestObservation, ResponseFuture};
use crate::{ConfigError, RecorderRef};

/// Paths excluded by default: health, readiness, liveness and metrics.
pub const DEFAULT_EXCLUDED_PATHS: &[&str] = &["/healthz", "/readyz", "/livez", "/startupz", "/metrics"];

type HttpKey = (&'static str, u16, Option<ErrorType>);

#[derive(Clone)]
pub(crate) struct HttpSeries {
    duration: Histogram,
    requests: Option<Counter>,
    request_size: Option<Histogram>,
    response_size: Option<Histogram>,
    #[cfg(feature = "prometheus")]
    exemplar: Option<Arc<crate::exemplars::Slot>>,
}

pub(crate) struct HttpShared {
    exclude: Box<[Box<str>]>,
    /// `(prefix, label)` of the services nested with `Router::nest_service`.
    nested: Box<[(Box<str>, Box<str>)]>,
    body_sizes: bool,
    names: LabelNames,
    recorder: RecorderRef,
    in_flight: OnceLock<Gauge>,
    cache: LabelCache<HttpKey, HttpSeries>,
    #[cfg(feature = "prometheus")]
    exemplars: Option<crate::exemplars::Exemplars>,
}

impl HttpShared {
    fn in_flight(&self) -> &Gauge {
        self.in_flight
            .get_or_init(|| self.recorder.gauge(&Key::from_static_name(self.names.in_flight)))
    }

    fn is_excluded(&self, path: &str) -> bool {
        self.exclude.iter().any(|p| **p == *path)
    }

    /// The route label: the template axum matched, else the label of a declared nested
    /// service the path is under, else `unmatched`.
    fn route<'r>(&'r self, req_extensions: &'r http::Extensions, path: &str) -> &'r str {
        let template = route::template_str(req_extensions);
        if self.nested.is_empty() || template != route::UNMATCHED {
            return template;
        }
        self.nested
            .iter()
            .find(|(prefix, _)| {
                path.strip_prefix(&**prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map_or(route::UNMATCHED, |(_, label)| label)
    }
}

// === impl MetricsLayer ===

/// Tower layer recording server RED metrics. See the [module docs](self).
#[derive(Clone)]
pub struct MetricsLayer {
    shared: Arc<HttpShared>,
}

impl MetricsLayer {
    /// The layer with the defaults, recording into the global recorder.
    pub fn new() -> Self {
        match MetricsLayer::builder().build() {
            Ok(layer) => layer,
            // The defaults are valid; this arm is never taken.
            Err(_) => unreachable!("default MetricsLayer configuration is valid"),
        }
    }

    /// A builder; see its methods for the defaults.
    pub fn builder() -> MetricsLayerBuilder {
        MetricsLayerBuilder::default()
    }
}

impl Default for MetricsLayer {
    fn default() -> Self {
        MetricsLayer::new()
    }
}

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("duration", &self.shared.names.duration)
            .field("exclude", &self.shared.exclude)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            part: self.part(),
        }
    }
}

impl MetricsLayer {
    /// What this layer does for each request, without a service or future of its own:
    /// for composing several server layers into one service (as
    /// `telltale::Telemetry::server_layer` does), so a request pays for one response
    /// future and one body wrapper instead of one per layer.
    pub fn part(&self) -> MetricsPart {
        MetricsPart {
            shared: self.shared.clone(),
        }
    }
}

/// [`MetricsLayer`]'s work on one request, for a composed service (see
/// [`MetricsLayer::part`]): [`on_request`](MetricsPart::on_request) starts the
/// [`RequestObservation`]; the service then tells it the response head
/// ([`RequestObservation::on_response`], which also sees a panic marker) and the end of
/// the body (it is a
/// [`BodyObserver`](telltale_core::body::BodyObserver)), or that the service failed or the
/// request was abandoned. It records exactly once.
#[derive(Clone)]
pub struct MetricsPart {
    shared: Arc<HttpShared>,
}

impl std::fmt::Debug for MetricsPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsPart").finish_non_exhaustive()
    }
}

impl MetricsPart {
    /// Starts measuring `req` now; `None` for an excluded path.
    pub fn on_request<B: http_body::Body>(&self, req: &Request<B>) -> Option<RequestObservation> {
        self.on_request_at(req, Instant::now())
    }

    /// Starts measuring `req` as if it arrived at `start` (a composed service reads the
    /// clock once for all its parts); `None` for an excluded path.
    pub fn on_request_at<B: http_body::Body>(
        &self,
        req: &Request<B>,
        start: Instant,
    ) -> Option<RequestObservation> {
        let shared = &self.shared;
        if shared.is_excluded(req.uri().path()) {
            return None;
        }
        let request_bytes = if shared.body_sizes { request_size(req) } else { 0 };
        let group = shared
            .cache
            .group(shared.route(req.extensions(), req.uri().path()));
        shared.in_flight().increment(1.0);
        Some(RequestObservation::http(HttpObservation {
            shared: shared.clone(),
            group,
            method: method::normalize(req.method()),
            start,
            request_bytes,
            status: 0,
            body_expected: req.method() != Method::HEAD,
            panicked: false,
            #[cfg(feature = "prometheus")]
            trace: shared
                .exemplars
                .as_ref()
                .and_then(|_| crate::exemplars::current_trace_ids(req.extensions())),
        }))
    }
}

/// Builder for [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsLayerBuilder {
    scheme: Scheme,
    exclude: Vec<String>,
    nested: Vec<String>,
    body_sizes: bool,
    max_label_sets: usize,
    recorder: RecorderRef,
    #[cfg(feature = "prometheus")]
    exemplars: Option<crate::exemplars::Exemplars>,
}

impl Default for MetricsLayerBuilder {
    fn default() -> Self {
        MetricsLayerBuilder {
            scheme: Scheme::OpenTelemetry,
            exclude: DEFAULT_EXCLUDED_PATHS.iter().map(|p| (*p).to_owned()).collect(),
            nested: Vec::new(),
            body_sizes: false,
            max_label_sets: DEFAULT_MAX_LABEL_SETS,
            recorder: RecorderRef::global(),
            #[cfg(feature = "prometheus")]
            exemplars: None,
        }
    }
}

impl MetricsLayerBuilder {
    /// The naming scheme. Default: [`Scheme::OpenTelemetry`].
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Adds a path that is not measured (exact match on the request path).
    pub fn exclude_path(mut self, path: impl Into<String>) -> Self {
        self.exclude.push(path.into());
        self
    }

    /// Replaces the excluded paths (default [`DEFAULT_EXCLUDED_PATHS`]); pass an empty
    /// list to measure everything.
    pub fn excluded_paths<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.exclude = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Declares a service nested with axum's `Router::nest_service(prefix, ...)`, so its
    /// requests below `prefix` are labelled `{prefix}/{*rest}` instead of `unmatched`
    /// (axum gives them no `MatchedPath`: see
    /// [Nested routers and services](self#nested-routers-and-services)). Only requests
    /// that matched no route are looked at. Call once per prefix. Default: none.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use telltale_metrics::MetricsLayer;
    ///
    /// let files = tower::service_fn(|_req: axum::extract::Request| async {
    ///     Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
    /// });
    /// let layer = MetricsLayer::builder().nested_service("/files").build().unwrap();
    /// let app: Router = Router::new()
    ///     .route("/orders/{id}", get(|| async { "order" }))
    ///     .nest_service("/files", files) // `/files/a/b.txt` → http_route="/files/{*rest}"
    ///     .layer(layer);
    /// ```
    pub fn nested_service(mut self, prefix: impl Into<String>) -> Self {
        self.nested.push(prefix.into());
        self
    }

    /// Also record request and response body sizes (bytes). Default: off. The request
    /// size is its `Content-Length` (or the body's exact size hint), 0 when unknown.
    pub fn body_sizes(mut self, enabled: bool) -> Self {
        self.body_sizes = enabled;
        self
    }

    /// The cap on label sets per metric, the `overflow` series included. Default 2000;
    /// must be at least 2.
    pub fn max_label_sets(mut self, cap: usize) -> Self {
        self.max_label_sets = cap;
        self
    }

    /// The recorder to register with. Default: [`RecorderRef::global`].
    pub fn recorder(mut self, recorder: RecorderRef) -> Self {
        self.recorder = recorder;
        self
    }

    /// Attach the trace id of a recent sampled request to each duration series, served as
    /// OpenMetrics exemplars (see [`exemplars`](crate::exemplars)). Pass
    /// [`MetricsHandle::exemplars`](crate::MetricsHandle::exemplars) of the recorder this
    /// layer records into. Default: off.
    #[cfg(feature = "prometheus")]
    pub fn exemplars(mut self, exemplars: crate::exemplars::Exemplars) -> Self {
        self.exemplars = Some(exemplars);
        self
    }

    /// Builds the layer. Errors on a cap below 2, an excluded path not starting with `/`, or
    /// a nested service prefix that is not a fixed path.
    pub fn build(self) -> Result<MetricsLayer, ConfigError> {
        if self.max_label_sets < 2 {
            return Err(ConfigError::new(format!(
                "max_label_sets({}) is too small: it includes the overflow series, so it must be at least 2",
                self.max_label_sets
            )));
        }
        if let Some(bad) = self.exclude.iter().find(|p| !p.starts_with('/')) {
            return Err(ConfigError::new(format!(
                "excluded path {bad:?} does not start with '/': paths are matched exactly against the request path"
            )));
        }
        let mut nested = Vec::with_capacity(self.nested.len());
        for prefix in &self.nested {
            let trimmed = prefix.trim_end_matches('/');
            if !prefix.starts_with('/') || trimmed.is_empty() || prefix.contains(['{', '}', '*']) {
                return Err(ConfigError::new(format!(
                    "nested service prefix {prefix:?} must be a fixed path like \"/files\": it starts \
                     with '/', is not the root, and has no path parameters"
                )));
            }
            let label = format!("{trimmed}/{{*rest}}");
            nested.push((Box::from(trimmed), label.into_boxed_str()));
        }
        let names = LabelNames::for_scheme(self.scheme);
        let legacy = self.scheme == Scheme::Legacy;
        let body_sizes = self.body_sizes;
        let recorder = self.recorder.clone();
        #[cfg(feature = "prometheus")]
        let ex = self.exemplars.clone();
        let make = move |route: &str, &(method, status, error): &HttpKey| {
            let mut labels = vec![
                Label::from_static_parts(names.method, method),
                Label::new(names.route, route.to_owned()),
                Label::from_static_parts(names.status, status::label_u16(status)),
            ];
            if let (Some(e), false) = (error, legacy) {
                labels.push(Label::from_static_parts(names.error_type, e.as_str()));
            }
            #[cfg(feature = "prometheus")]
            let slot = ex.as_ref().map(|ex| ex.slot(names.duration, &labels));
            #[allow(unused_mut)]
            let mut s = series(&recorder, names, body_sizes, labels);
            #[cfg(feature = "prometheus")]
            {
                s.exemplar = slot;
            }
            s
        };
        let recorder = self.recorder.clone();
        let make_overflow = move || {
            let o = meta::OVERFLOW_LABEL_VALUE;
            let labels = vec![
                Label::from_static_parts(names.method, o),
                Label::from_static_parts(names.route, o),
                Label::from_static_parts(names.status, o),
            ];
            series(&recorder, names, body_sizes, labels)
        };
        Ok(MetricsLayer {
            shared: Arc::new(HttpShared {
                exclude: self.exclude.into_iter().map(String::into_boxed_str).collect(),
                nested: nested.into_boxed_slice(),
                body_sizes,
                names,
                in_flight: OnceLock::new(),
                cache: LabelCache::new(
                    names.duration,
                    self.max_label_sets,
                    self.recorder.clone(),
                    make,
                    make_overflow,
                ),
                recorder: self.recorder,
                #[cfg(feature = "prometheus")]
                exemplars: self.exemplars,
            }),
        })
    }
}

fn series(recorder: &RecorderRef, names: LabelNames, body_sizes: bool, labels: Vec<Label>) -> HttpSeries {
    let size =
        |name: &'static str| body_sizes.then(|| recorder.histogram(&Key::from_parts(name, labels.clone())));
    HttpSeries {
        request_size: size(otel::HTTP_SERVER_REQUEST_BODY_SIZE),
        response_size: size(otel::HTTP_SERVER_RESPONSE_BODY_SIZE),
        requests: names
            .requests_total
            .map(|n| recorder.counter(&Key::from_parts(n, labels.clone()))),
        duration: recorder.histogram(&Key::from_parts(names.duration, labels)),
        #[cfg(feature = "prometheus")]
        exemplar: None,
    }
}

// === impl MetricsService ===

/// The service made by [`MetricsLayer`].
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    part: MetricsPart,
}

impl<S> std::fmt::Debug for MetricsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService").finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for MetricsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ReqB: http_body::Body,
    ResB: http_body::Body,
{
    type Response = Response<crate::MetricsBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let observation = self.part.on_request(&req);
        ResponseFuture {
            inner: self.inner.call(req),
            observation,
            in_poll: false,
        }
    }
}

fn request_size<B: http_body::Body>(req: &Request<B>) -> u64 {
    telltale_core::body::content_length(req.headers())
        .or_else(|| req.body().size_hint().exact())
        .unwrap_or(0)
}

// === impl HttpObservation ===

pub(crate) struct HttpObservation {
    shared: Arc<HttpShared>,
    group: Option<Arc<Group<HttpKey, HttpSeries>>>,
    method: &'static str,
    start: Instant,
    request_bytes: u64,
    status: u16,
    body_expected: bool,
    /// An inner catch-panic layer answered for a handler that panicked.
    panicked: bool,
    #[cfg(feature = "prometheus")]
    trace: Option<telltale_core::trace_ids::TraceIds>,
}

impl HttpObservation {
    pub(crate) fn on_response<B>(&mut self, res: &Response<B>) {
        self.on_head(res.status());
        // Only a 500 from a panic carries the marker: looked up for server errors only.
        self.panicked = res.status().is_server_error() && res.extensions().get::<HandlerPanic>().is_some();
    }

    pub(crate) fn on_head(&mut self, status: StatusCode) {
        self.status = status.as_u16();
        // hyper never polls these bodies, it drops them: that is their normal end.
        if status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
        {
            self.body_expected = false;
        }
    }

    pub(crate) fn on_service_error(self) {
        self.finish(500, Some(ErrorType::Other), 0, Instant::now());
    }

    pub(crate) fn on_cancel(self) {
        self.finish(status::CLIENT_CLOSED_REQUEST, None, 0, Instant::now());
    }

    pub(crate) fn on_panic(self) {
        self.finish(500, Some(ErrorType::Panic), 0, Instant::now());
    }

    /// The end of the body, at `now`.
    pub(crate) fn on_body_end(self, end: &BodyEnd<'_>, now: Instant) {
        let status = self.status;
        if self.panicked {
            // The panic decided the outcome, however its 500 body then ends.
            return self.finish(status, Some(ErrorType::Panic), end.bytes(), now);
        }
        let ok_error = || {
            StatusCode::from_u16(status)
                .ok()
                .and_then(|s| outcome::server_http(s).error_type())
        };
        match end {
            BodyEnd::Complete { bytes, .. } => self.finish(status, ok_error(), *bytes, now),
            BodyEnd::Error { bytes, .. } => self.finish(status, Some(ErrorType::Body), *bytes, now),
            BodyEnd::Dropped { bytes } if !self.body_expected => self.finish(status, ok_error(), *bytes, now),
            BodyEnd::Dropped { bytes } => self.finish(status::CLIENT_CLOSED_REQUEST, None, *bytes, now),
            // `BodyEnd` is non-exhaustive: count unknown ends as their status.
            #[allow(unreachable_patterns)]
            _ => self.finish(status, ok_error(), end.bytes(), now),
        }
    }

    fn finish(self, status: u16, error: Option<ErrorType>, response_bytes: u64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let shared = &self.shared;
        let request_bytes = self.request_bytes;
        #[cfg(feature = "prometheus")]
        let trace = self.trace;
        shared
            .cache
            .with(self.group.as_deref(), (self.method, status, error), |s| {
                s.duration.record(elapsed);
                if let Some(c) = &s.requests {
                    c.increment(1);
                }
                if let Some(h) = &s.request_size {
                    h.record(request_bytes as f64);
                }
                if let Some(h) = &s.response_size {
                    h.record(response_bytes as f64);
                }
                #[cfg(feature = "prometheus")]
                if let (Some(slot), Some(ids)) = (&s.exemplar, trace) {
                    slot.set(ids, elapsed);
                }
            });
    }
}

impl Drop for HttpObservation {
    fn drop(&mut self) {
        self.shared.in_flight().decrement(1.0);
    }
}
