//! Server RED metrics for gRPC (tonic): [`GrpcMetricsLayer`].
//!
//! ```
//! use telltale_metrics::GrpcMetricsLayer;
//!
//! // With tonic: Server::builder().layer(GrpcMetricsLayer::new()).add_service(...)
//! let layer = GrpcMetricsLayer::new();
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
//! - a call the client cancels (future or body dropped before the trailers) is
//!   `CANCELLED` (1);
//! - `error_type` carries the code's name (`INTERNAL`, …) only for the codes that count
//!   as server errors ([`telltale_core::outcome::server_grpc`]); `NOT_FOUND` or
//!   `INVALID_ARGUMENT` are the caller's problem;
//! - service and method come from the request path `/package.Service/Method`; paths of
//!   any other shape are labelled `unmatched`. The label-set cap applies as for HTTP.
//!
//! PromQL: `sum by (rpc_service, rpc_method) (rate(rpc_server_call_duration_seconds_count{error_type!=""}[5m]))
//! / sum by (rpc_service, rpc_method) (rate(rpc_server_call_duration_seconds_count[5m]))`.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use metrics::{Histogram, Key, Label};
use telltale_core::body::BodyEnd;
use telltale_core::outcome::{self, ErrorType, GrpcCode};
use telltale_core::route;
use tower::{Layer, Service};

use crate::cache::{DEFAULT_MAX_LABEL_SETS, Group, LabelCache};
use crate::names::{labels, meta, otel};
use crate::observe::{RequestObservation, ResponseFuture};
use crate::{ConfigError, RecorderRef};

/// `rpc_system` label value.
pub const RPC_SYSTEM_GRPC: &str = "grpc";

/// `(status code, error type when there is no code)`.
type GrpcKey = (Option<GrpcCode>, Option<ErrorType>);

pub(crate) struct GrpcShared {
    cache: LabelCache<GrpcKey, Histogram>,
    client: bool,
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
    })
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
        Ok(GrpcMetricsLayer {
            shared: Arc::new(grpc_cache(recorder, max_label_sets, None)?),
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

/// The service made by [`GrpcMetricsLayer`] and [`GrpcClientMetricsLayer`].
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
            observation: Some(observation),
            in_poll: false,
        }
    }
}

pub(crate) struct GrpcObservation {
    shared: Arc<GrpcShared>,
    group: Option<Arc<Group<GrpcKey, Histogram>>>,
    start: Instant,
    header_code: Option<GrpcCode>,
}

impl GrpcObservation {
    fn start(shared: &Arc<GrpcShared>, path: &str) -> RequestObservation {
        let name = if route::grpc_service_method(path).is_some() {
            path
        } else {
            route::UNMATCHED
        };
        RequestObservation::grpc(GrpcObservation {
            group: shared.cache.group(name),
            shared: shared.clone(),
            start: Instant::now(),
            header_code: None,
        })
    }

    pub(crate) fn on_head(&mut self, headers: &HeaderMap) {
        self.header_code = GrpcCode::from_headers(headers);
    }

    pub(crate) fn on_service_error(self) {
        if self.shared.client {
            // No response at all: the channel failed (connect, timeout, transport).
            self.record((None, Some(ErrorType::Transport)), Instant::now());
        } else {
            self.finish(GrpcCode::Unknown, Instant::now());
        }
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
        self.shared
            .cache
            .with(self.group.as_deref(), key, |h| h.record(elapsed));
    }
}

// === impl GrpcClientMetricsLayer ===

/// Tower layer recording dependency metrics around a gRPC client (a tonic `Channel`):
/// `rpc_client_call_duration_seconds{rpc_system, rpc_service, rpc_method, peer_service,
/// rpc_grpc_status_code[, error_type]}`, one observation per call, at the end of the
/// response body (status from headers or trailers). On the client side every code but
/// `OK` is an error; a channel failure (no response) is `error_type="transport"` with no
/// status label.
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
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            shared: self.shared.clone(),
        }
    }
}
