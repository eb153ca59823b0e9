//! Server RED metrics for gRPC (tonic): [`GrpcMetricsLayer`]; client metrics:
//! [`GrpcClientMetricsLayer`].
//!
//! ```
//! use telltale_metrics::GrpcMetricsLayer;
//!
//! // With tonic: Server::builder().layer(layer).add_service(...)
//! let layer = GrpcMetricsLayer::builder()
//!     // tonic servers: `<OrdersServer<MyOrders> as tonic::server::NamedService>::NAME`
//!     .known_services(["orders.v1.Orders", "grpc.health.v1.Health"])
//!     .build()
//!     .unwrap();
//! # let _ = layer;
//! ```
//!
//! Records `rpc_server_call_duration_seconds{rpc_system="grpc", rpc_service, rpc_method,
//! rpc_grpc_status_code[, error_type]}` (OpenTelemetry RPC conventions), once per call,
//! at the end of the response body:
//!
//! - the status comes from `grpc-status` in the response **headers** (trailers-only
//!   responses, which tonic sends for errors returned before any message) or else the
//!   **trailers**; a body that ends without either is `UNKNOWN` (2);
//! - a response whose HTTP status is not 200 and that has no `grpc-status` in its headers
//!   gets the code gRPC clients infer from the HTTP status
//!   ([http-grpc-status-mapping.md](https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md)):
//!   400 → `INTERNAL`, 401 → `UNAUTHENTICATED`, 403 → `PERMISSION_DENIED`, 404 →
//!   `UNIMPLEMENTED`, 429, 502, 503, 504 → `UNAVAILABLE`, any other → `UNKNOWN`;
//! - a call the client cancels (future or body dropped before the trailers) is
//!   `CANCELLED` (1);
//! - `error_type` carries the code's name (`INTERNAL`, …) only for the codes that count
//!   as server errors ([`telltale_core::outcome::server_grpc`]); `NOT_FOUND` or
//!   `INVALID_ARGUMENT` are the caller's problem;
//! - service and method come from the request path `/package.Service/Method`; paths of
//!   any other shape are labelled `unmatched`. The label-set cap applies as for HTTP.
//!
//! # Unknown services and methods: `_OTHER`
//!
//! The request path is sent by the client, so a scanner calling random methods would
//! otherwise make one series per name. As the OpenTelemetry RPC conventions say for a
//! method the instrumentation does not know, such calls are labelled `_OTHER`
//! ([`OTHER_LABEL_VALUE`](crate::names::meta::OTHER_LABEL_VALUE)):
//!
//! - with [`GrpcMetricsLayerBuilder::known_services`], a call to any other service is
//!   recorded with `rpc_service="_OTHER", rpc_method="_OTHER"`;
//! - a call whose response head says `UNIMPLEMENTED` — `grpc-status: 12` in the response
//!   headers (a trailers-only response, which is how tonic's router and generated
//!   servers answer an unknown service or method), or an HTTP 404 without `grpc-status`
//!   — is recorded with `rpc_method="_OTHER"` and, unless its service is one of the
//!   known services, `rpc_service="_OTHER"`. Without `known_services` this is the only
//!   rule, and it needs no configuration.
//!
//! A path is given its own series only once a response head shows that the method
//! exists, so unknown methods never take a slot of the label-set cap. A known method
//! whose handler itself returns `UNIMPLEMENTED` before any message cannot be told apart
//! on the wire from an unknown one, and is recorded under `_OTHER` too.
//!
//! PromQL: `sum by (rpc_service, rpc_method) (rate(rpc_server_call_duration_seconds_count{error_type!=""}[5m]))
//! / sum by (rpc_service, rpc_method) (rate(rpc_server_call_duration_seconds_count[5m]))`.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{HeaderMap, Request, Response, StatusCode};
use metrics::{Histogram, Key, Label};
use pin_project_lite::pin_project;
use telltale_core::body::{BodyEnd, ObservedBody};
use telltale_core::outcome::{self, ErrorType, GrpcCode};
use telltale_core::route;
use tower::{BoxError, Layer, Service};

use crate::cache::{DEFAULT_MAX_LABEL_SETS, Group, LabelCache};
use crate::names::{labels, meta, otel};
use crate::observe::{RequestObservation, ResponseFuture};
use crate::{ConfigError, MetricsBody, RecorderRef};

/// `rpc_system` label value.
pub const RPC_SYSTEM_GRPC: &str = "grpc";

/// The group of calls to an unknown service: parses as `("_OTHER", "_OTHER")`.
const OTHER_PATH: &str = "/_OTHER/_OTHER";

/// `(status code, error type when there is no code)`.
type GrpcKey = (Option<GrpcCode>, Option<ErrorType>);

/// Known service name → the group path of its unknown methods (`/{service}/_OTHER`),
/// made once at build time so the request path never formats a string.
type KnownServices = HashMap<Box<str>, Box<str>, foldhash::fast::RandomState>;

pub(crate) struct GrpcShared {
    cache: LabelCache<GrpcKey, Histogram>,
    client: bool,
    known_services: Option<KnownServices>,
}

/// Registers the histograms of one side (server, or client of `peer`).
fn grpc_cache(
    recorder: RecorderRef,
    max_label_sets: usize,
    peer: Option<Arc<str>>,
) -> Result<GrpcShared, ConfigError> {
    if max_label_sets < 2 {
        return Err(ConfigError::new(format!(
            "max_label_sets({max_label_sets}) is too small: it includes the overflow series, so it must be at least 2"
        )));
    }
    let client = peer.is_some();
    let metric = if client {
        otel::RPC_CLIENT_CALL_DURATION
    } else {
        otel::RPC_SERVER_CALL_DURATION
    };
    let (r, p) = (recorder.clone(), peer.clone());
    let make = move |path: &str, &(code, error): &GrpcKey| {
        let (service, method) =
            route::grpc_service_method(path).unwrap_or((route::UNMATCHED, route::UNMATCHED));
        let mut l = vec![
            Label::from_static_parts(labels::RPC_SYSTEM, RPC_SYSTEM_GRPC),
            Label::new(labels::RPC_SERVICE, service.to_owned()),
            Label::new(labels::RPC_METHOD, method.to_owned()),
        ];
        if let Some(p) = &p {
            l.push(Label::new(labels::PEER_SERVICE, p.to_string()));
        }
        if let Some(code) = code {
            l.push(Label::from_static_parts(
                labels::RPC_GRPC_STATUS_CODE,
                code.number_label(),
            ));
        }
        let error = error.or_else(|| {
            code.and_then(|c| {
                if client {
                    outcome::client_grpc(c)
                } else {
                    outcome::server_grpc(c)
                }
                .error_type()
            })
        });
        if let Some(e) = error {
            l.push(Label::from_static_parts(labels::ERROR_TYPE, e.as_str()));
        }
        r.histogram(&Key::from_parts(metric, l))
    };
    let (r, p) = (recorder.clone(), peer);
    let make_overflow = move || {
        let o = meta::OVERFLOW_LABEL_VALUE;
        let mut l = vec![
            Label::from_static_parts(labels::RPC_SYSTEM, RPC_SYSTEM_GRPC),
            Label::from_static_parts(labels::RPC_SERVICE, o),
            Label::from_static_parts(labels::RPC_METHOD, o),
            Label::from_static_parts(labels::RPC_GRPC_STATUS_CODE, o),
        ];
        if let Some(p) = &p {
            l.push(Label::new(labels::PEER_SERVICE, p.to_string()));
        }
        r.histogram(&Key::from_parts(metric, l))
    };
    Ok(GrpcShared {
        cache: LabelCache::new(metric, max_label_sets, recorder, make, make_overflow),
        client,
        known_services: None,
    })
}

/// The code a response head settles: `grpc-status` in the headers (trailers-only), else
/// for a non-200 response the code inferred from its HTTP status; `None` when the
/// trailers will tell.
fn head_code(status: StatusCode, headers: &HeaderMap) -> Option<GrpcCode> {
    GrpcCode::from_headers(headers)
        .or_else(|| (status != StatusCode::OK).then(|| GrpcCode::from_http_status(status)))
}

/// Tower layer recording gRPC server metrics. See the [module docs](self).
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    shared: Arc<GrpcShared>,
}

impl std::fmt::Debug for GrpcMetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetricsLayer").finish_non_exhaustive()
    }
}

impl Default for GrpcMetricsLayer {
    fn default() -> Self {
        GrpcMetricsLayer::new()
    }
}

impl GrpcMetricsLayer {
    /// The layer with the default cap, recording into the global recorder.
    pub fn new() -> Self {
        GrpcMetricsLayer::with_options(RecorderRef::global(), DEFAULT_MAX_LABEL_SETS)
            .unwrap_or_else(|_| unreachable!("default GrpcMetricsLayer configuration is valid"))
    }

    /// The layer recording into `recorder`, with at most `max_label_sets` label sets
    /// (the `overflow` series included; at least 2).
    pub fn with_options(recorder: RecorderRef, max_label_sets: usize) -> Result<Self, ConfigError> {
        GrpcMetricsLayer::builder()
            .recorder(recorder)
            .max_label_sets(max_label_sets)
            .build()
    }

    /// A builder; see its methods for the defaults.
    ///
    /// ```
    /// use telltale_metrics::GrpcMetricsLayer;
    ///
    /// let layer = GrpcMetricsLayer::builder().max_label_sets(500).build().unwrap();
    /// # let _ = layer;
    /// ```
    pub fn builder() -> GrpcMetricsLayerBuilder {
        GrpcMetricsLayerBuilder::default()
    }
}

/// Builder for [`GrpcMetricsLayer`].
///
/// ```
/// use telltale_metrics::{GrpcMetricsLayer, PrometheusConfig};
///
/// let prom = PrometheusConfig::new("orders").build().unwrap();
/// let layer = GrpcMetricsLayer::builder()
///     .recorder(prom.recorder())
///     .known_services(["orders.v1.Orders"])
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayerBuilder {
    recorder: RecorderRef,
    max_label_sets: usize,
    known_services: Option<Vec<String>>,
}

impl Default for GrpcMetricsLayerBuilder {
    fn default() -> Self {
        GrpcMetricsLayerBuilder {
            recorder: RecorderRef::global(),
            max_label_sets: DEFAULT_MAX_LABEL_SETS,
            known_services: None,
        }
    }
}

impl GrpcMetricsLayerBuilder {
    /// The recorder to register with. Default: [`RecorderRef::global`].
    ///
    /// ```
    /// use telltale_metrics::{GrpcMetricsLayer, RecorderRef};
    ///
    /// let layer = GrpcMetricsLayer::builder().recorder(RecorderRef::global()).build().unwrap();
    /// # let _ = layer;
    /// ```
    pub fn recorder(mut self, recorder: RecorderRef) -> Self {
        self.recorder = recorder;
        self
    }

    /// The cap on label sets, the `overflow` series included. Default 2000; must be at
    /// least 2.
    ///
    /// ```
    /// use telltale_metrics::GrpcMetricsLayer;
    ///
    /// assert!(GrpcMetricsLayer::builder().max_label_sets(1).build().is_err());
    /// ```
    pub fn max_label_sets(mut self, cap: usize) -> Self {
        self.max_label_sets = cap;
        self
    }

    /// The services this server has, by full name (`package.Service`, what tonic's
    /// `NamedService::NAME` holds); replaces any earlier list. Calls to any other service
    /// are recorded with `rpc_service` and `rpc_method` `_OTHER`, and an `UNIMPLEMENTED`
    /// call to a known service keeps its `rpc_service` (see the [module docs](self)).
    /// Default: unset (every well-formed service name is used as it comes).
    ///
    /// ```
    /// use telltale_metrics::GrpcMetricsLayer;
    ///
    /// let layer = GrpcMetricsLayer::builder()
    ///     .known_services(["orders.v1.Orders", "grpc.health.v1.Health"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// // A name that is not a gRPC service name is an error at start-up.
    /// assert!(GrpcMetricsLayer::builder().known_services(["/orders.v1.Orders/Get"]).build().is_err());
    /// ```
    pub fn known_services<I, S>(mut self, services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_services = Some(services.into_iter().map(Into::into).collect());
        self
    }

    /// Builds the layer. Errors on a cap below 2, an empty `known_services` list, or a
    /// known service name that is not of the form `package.Service`.
    ///
    /// ```
    /// use telltale_metrics::GrpcMetricsLayer;
    ///
    /// let none: [&str; 0] = [];
    /// let err = GrpcMetricsLayer::builder().known_services(none).build().unwrap_err();
    /// assert!(err.to_string().contains("known_services is empty"));
    /// ```
    pub fn build(self) -> Result<GrpcMetricsLayer, ConfigError> {
        let mut shared = grpc_cache(self.recorder, self.max_label_sets, None)?;
        if let Some(services) = self.known_services {
            if services.is_empty() {
                return Err(ConfigError::new(
                    "known_services is empty: every call would be recorded as _OTHER; \
                     leave it unset to label calls by the service they name"
                        .into(),
                ));
            }
            let mut known = KnownServices::default();
            for service in services {
                let other = format!("/{service}/{}", meta::OTHER_LABEL_VALUE);
                if route::grpc_service_method(&other).is_none_or(|(s, _)| s != service) {
                    return Err(ConfigError::new(format!(
                        "known service {service:?} is not a gRPC service name: give the full name \
                         `package.Service` (tonic: `NamedService::NAME`), without slashes"
                    )));
                }
                known.insert(service.into_boxed_str(), other.into_boxed_str());
            }
            shared.known_services = Some(known);
        }
        Ok(GrpcMetricsLayer {
            shared: Arc::new(shared),
        })
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    shared: Arc<GrpcShared>,
}

impl<S> std::fmt::Debug for GrpcMetricsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetricsService").finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GrpcMetricsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body,
{
    type Response = Response<crate::MetricsBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let observation = GrpcObservation::start(&self.shared, req.uri().path());
        ResponseFuture {
            inner: self.inner.call(req),
            observation: Some(RequestObservation::grpc(observation)),
            in_poll: false,
        }
    }
}

type GroupRef = Option<Arc<Group<GrpcKey, Histogram>>>;

/// Where a call will be recorded.
enum Series {
    /// The group is settled (`None`: the cap was reached, the overflow series).
    Group(GroupRef),
    /// A server path without a series yet: its group is made only once the response head
    /// shows the method exists, so an unknown method takes no slot of the cap.
    Unseen(Box<str>),
}

pub(crate) struct GrpcObservation {
    shared: Arc<GrpcShared>,
    series: Series,
    start: Instant,
    header_code: Option<GrpcCode>,
}

impl GrpcObservation {
    fn start(shared: &Arc<GrpcShared>, path: &str) -> GrpcObservation {
        let series = match route::grpc_service_method(path) {
            None => Series::Group(shared.cache.group(route::UNMATCHED)),
            Some(_) if shared.client => Series::Group(shared.cache.group(path)),
            Some((service, _)) => match &shared.known_services {
                Some(known) if !known.contains_key(service) => Series::Group(shared.cache.group(OTHER_PATH)),
                // The common case: a method already seen, found without a lock or a copy.
                _ => match shared.cache.existing_group(path) {
                    Some(group) => Series::Group(Some(group)),
                    None => Series::Unseen(path.into()),
                },
            },
        };
        GrpcObservation {
            shared: shared.clone(),
            series,
            start: Instant::now(),
            header_code: None,
        }
    }

    pub(crate) fn on_head(&mut self, status: StatusCode, headers: &HeaderMap) {
        self.header_code = head_code(status, headers);
        if self.header_code == Some(GrpcCode::Unimplemented) && !self.shared.client {
            self.series = Series::Group(self.shared.cache.group(self.unimplemented_path()));
        } else if let Series::Unseen(path) = &self.series {
            self.series = Series::Group(self.shared.cache.group(path));
        }
    }

    /// The group of an `UNIMPLEMENTED` call: `/{service}/_OTHER` for a known service,
    /// else `/_OTHER/_OTHER`; a path that is not gRPC's shape stays `unmatched`.
    fn unimplemented_path(&self) -> &str {
        let path = match &self.series {
            Series::Unseen(path) => path,
            Series::Group(Some(group)) => group.name(),
            Series::Group(None) => return OTHER_PATH,
        };
        match route::grpc_service_method(path) {
            None => route::UNMATCHED,
            Some((service, _)) => self
                .shared
                .known_services
                .as_ref()
                .and_then(|known| known.get(service))
                .map_or(OTHER_PATH, |other| other),
        }
    }

    pub(crate) fn on_service_error(self) {
        if self.shared.client {
            // No response at all: the channel failed.
            self.record((None, Some(ErrorType::Transport)), Instant::now());
        } else {
            self.finish(GrpcCode::Unknown, Instant::now());
        }
    }

    /// A client call that ended with `error` instead of a response.
    fn on_client_error(self, error: &(dyn StdError + 'static)) {
        self.record((None, Some(classify_client_error(error))), Instant::now());
    }

    pub(crate) fn on_cancel(self) {
        self.finish(GrpcCode::Cancelled, Instant::now());
    }

    /// The end of the body, at `now`.
    pub(crate) fn on_body_end(self, end: &BodyEnd<'_>, now: Instant) {
        let from_trailers = end.trailers().and_then(GrpcCode::from_headers);
        let code = match end {
            BodyEnd::Dropped { .. } => self.header_code.unwrap_or(GrpcCode::Cancelled),
            _ => self.header_code.or(from_trailers).unwrap_or(GrpcCode::Unknown),
        };
        self.finish(code, now);
    }

    fn finish(self, code: GrpcCode, now: Instant) {
        self.record((Some(code), None), now);
    }

    fn record(self, key: GrpcKey, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let group = match self.series {
            Series::Group(group) => group,
            // Ended before its response head (cancelled, or the service failed).
            Series::Unseen(path) => self.shared.cache.group(&path),
        };
        self.shared
            .cache
            .with(group.as_deref(), key, |h| h.record(elapsed));
    }
}

/// The `error.type` of a gRPC client call that got no response at all, as
/// [`classify_error`](crate::client::classify_error) gives it for HTTP calls: `timeout`
/// when a timeout ended it (anywhere in the source chain: tower's `Elapsed`, an
/// `io::Error` of kind `TimedOut`, and with feature `tonic` tonic's `TimeoutExpired` or a
/// `tonic::Status` of `DEADLINE_EXCEEDED`), `connect` when the connection could not be
/// made (refused, unreachable), the kind of a [`ClassifiedError`](crate::client::ClassifiedError), else `transport`.
pub(crate) fn classify_client_error(err: &(dyn StdError + 'static)) -> ErrorType {
    // The HTTP client's classification (one list of error types for both), except that a
    // channel error it cannot place is a transport failure: a gRPC call that ended
    // without a response got no further than the connection.
    match crate::client::classify_error(err) {
        ErrorType::Other => ErrorType::Transport,
        kind => kind,
    }
}

// === impl GrpcClientMetricsLayer ===

/// Tower layer recording dependency metrics around a gRPC client (a tonic `Channel`):
/// `rpc_client_call_duration_seconds{rpc_system, rpc_service, rpc_method, peer_service,
/// rpc_grpc_status_code[, error_type]}`, one observation per call, at the end of the
/// response body (status from headers or trailers; a non-200 response without
/// `grpc-status` gets the code its HTTP status maps to, as for the server). On the client
/// side every code but `OK` is an error.
///
/// A call that ends with an error instead of a response has no status label, and its
/// `error_type` is found by walking the error's `source` chain: `timeout` for a timeout
/// (tower's `Elapsed`, an `io::Error` of kind `TimedOut`; with feature `tonic` also
/// tonic's `TimeoutExpired`, which `Endpoint::timeout` produces, and a `tonic::Status` of
/// `DEADLINE_EXCEEDED`), `connect` when the connection could not be made (refused,
/// unreachable), the kind of a [`ClassifiedError`](crate::client::ClassifiedError) (what the resilience layers return:
/// `circuit_open`, `budget_exhausted`, …), else `transport` (the connection failed).
///
/// ```
/// use telltale_metrics::grpc::GrpcClientMetricsLayer;
///
/// let layer = GrpcClientMetricsLayer::new("inventory");
/// // let channel = tower::ServiceBuilder::new().layer(layer).service(channel);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct GrpcClientMetricsLayer {
    shared: Arc<GrpcShared>,
}

impl std::fmt::Debug for GrpcClientMetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClientMetricsLayer").finish_non_exhaustive()
    }
}

impl GrpcClientMetricsLayer {
    /// The layer for the dependency `peer_service`, recording into the global recorder.
    pub fn new(peer_service: impl Into<Arc<str>>) -> Self {
        GrpcClientMetricsLayer::with_options(peer_service, RecorderRef::global(), DEFAULT_MAX_LABEL_SETS)
            .unwrap_or_else(|_| unreachable!("default GrpcClientMetricsLayer configuration is valid"))
    }

    /// The layer recording into `recorder` with at most `max_label_sets` label sets (the
    /// `overflow` series included; at least 2).
    pub fn with_options(
        peer_service: impl Into<Arc<str>>,
        recorder: RecorderRef,
        max_label_sets: usize,
    ) -> Result<Self, ConfigError> {
        Ok(GrpcClientMetricsLayer {
            shared: Arc::new(grpc_cache(recorder, max_label_sets, Some(peer_service.into()))?),
        })
    }
}

impl<S> Layer<S> for GrpcClientMetricsLayer {
    type Service = GrpcClientMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientMetricsService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`GrpcClientMetricsLayer`]. Its errors are boxed (as
/// tower's own middleware do), so the error that ended a call can be classified.
///
/// ```
/// use telltale_metrics::grpc::{GrpcClientMetricsLayer, GrpcClientMetricsService};
/// use tower::Layer;
///
/// let svc: GrpcClientMetricsService<()> = GrpcClientMetricsLayer::new("inventory").layer(());
/// # let _ = svc;
/// ```
#[derive(Clone)]
pub struct GrpcClientMetricsService<S> {
    inner: S,
    shared: Arc<GrpcShared>,
}

impl<S> std::fmt::Debug for GrpcClientMetricsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClientMetricsService").finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GrpcClientMetricsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: http_body::Body,
{
    type Response = Response<MetricsBody<ResB>>;
    type Error = BoxError;
    type Future = GrpcClientResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let observation = GrpcObservation::start(&self.shared, req.uri().path());
        GrpcClientResponseFuture {
            inner: self.inner.call(req),
            observation: Some(observation),
        }
    }
}

pin_project! {
    /// Response future of [`GrpcClientMetricsService`]: the inner future's response with
    /// its body watched to the end, or its error, boxed.
    ///
    /// ```
    /// use telltale_metrics::grpc::{GrpcClientMetricsLayer, GrpcClientResponseFuture};
    /// use tower::{Layer, Service};
    ///
    /// let inner = tower::service_fn(|_req: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// });
    /// let mut svc = GrpcClientMetricsLayer::new("inventory").layer(inner);
    /// let future: GrpcClientResponseFuture<_> = svc.call(http::Request::new(String::new()));
    /// # drop(future);
    /// ```
    pub struct GrpcClientResponseFuture<F> {
        #[pin]
        inner: F,
        observation: Option<GrpcObservation>,
    }

    impl<F> PinnedDrop for GrpcClientResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the response head: the caller gave up (or a timeout above).
            if let Some(o) = this.project().observation.take() {
                o.on_cancel();
            }
        }
    }
}

impl<F> std::fmt::Debug for GrpcClientResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClientResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for GrpcClientResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: http_body::Body,
{
    type Output = Result<Response<MetricsBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        let observation = this.observation.take();
        Poll::Ready(match result {
            Ok(res) => Ok(match observation {
                None => res.map(ObservedBody::unobserved),
                Some(mut o) => {
                    o.on_head(res.status(), res.headers());
                    res.map(|b| ObservedBody::new(b, RequestObservation::grpc(o)))
                }
            }),
            Err(e) => {
                if let Some(o) = observation {
                    o.on_client_error(e.as_ref());
                }
                Err(e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_grpc_codes_as_the_spec_says() {
        let cases = [
            (400, GrpcCode::Internal),
            (401, GrpcCode::Unauthenticated),
            (403, GrpcCode::PermissionDenied),
            (404, GrpcCode::Unimplemented),
            (429, GrpcCode::Unavailable),
            (502, GrpcCode::Unavailable),
            (503, GrpcCode::Unavailable),
            (504, GrpcCode::Unavailable),
            (500, GrpcCode::Unknown),
            (405, GrpcCode::Unknown),
            (301, GrpcCode::Unknown),
        ];
        for (http, grpc) in cases {
            let status = StatusCode::from_u16(http).unwrap();
            assert_eq!(GrpcCode::from_http_status(status), grpc, "{http}");
            assert_eq!(head_code(status, &HeaderMap::new()), Some(grpc), "{http}");
        }
        // 200: the trailers will tell.
        assert_eq!(head_code(StatusCode::OK, &HeaderMap::new()), None);
        // grpc-status, when present, wins over the HTTP status.
        let mut h = HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("8"));
        assert_eq!(
            head_code(StatusCode::SERVICE_UNAVAILABLE, &h),
            Some(GrpcCode::ResourceExhausted)
        );
    }

    /// An error whose `source` is another error, as transport errors wrap their causes.
    #[derive(Debug)]
    struct Wrapped(&'static str, Option<Box<dyn StdError + Send + Sync>>);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    fn wrap(e: impl StdError + Send + Sync + 'static) -> Wrapped {
        Wrapped(
            "transport error",
            Some(Box::new(Wrapped("connection", Some(Box::new(e))))),
        )
    }

    #[test]
    fn client_errors_are_classified_by_their_source_chain() {
        use std::io::{Error, ErrorKind};

        assert_eq!(
            classify_client_error(&wrap(tower::timeout::error::Elapsed::new())),
            ErrorType::Timeout
        );
        assert_eq!(
            classify_client_error(&wrap(Error::from(ErrorKind::TimedOut))),
            ErrorType::Timeout
        );
        // As the HTTP client labels it.
        assert_eq!(
            classify_client_error(&wrap(Error::from(ErrorKind::ConnectionRefused))),
            ErrorType::Connect
        );
        assert_eq!(
            classify_client_error(&wrap(Error::from(ErrorKind::ConnectionReset))),
            ErrorType::Transport
        );
        assert_eq!(
            classify_client_error(&wrap(crate::client::ClassifiedError::new(
                ErrorType::CircuitOpen,
                "open"
            ))),
            ErrorType::CircuitOpen
        );
        assert_eq!(classify_client_error(&Wrapped("odd", None)), ErrorType::Transport);
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn tonic_timeouts_and_deadlines_are_timeouts() {
        assert_eq!(
            classify_client_error(&wrap(tonic::TimeoutExpired(()))),
            ErrorType::Timeout
        );
        assert_eq!(
            classify_client_error(&wrap(tonic::Status::deadline_exceeded("too slow"))),
            ErrorType::Timeout
        );
        assert_eq!(
            classify_client_error(&wrap(tonic::Status::unavailable("down"))),
            ErrorType::Transport
        );
        let refused = tonic::ConnectError(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(classify_client_error(&wrap(refused)), ErrorType::Connect);
    }
}
