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
use telltale_core::outcome::{self, GrpcCode};
use telltale_core::route;
use tower::{Layer, Service};

use crate::cache::{DEFAULT_MAX_LABEL_SETS, Group, LabelCache};
use crate::names::{labels, meta, otel};
use crate::observe::{RequestObservation, ResponseFuture};
use crate::{ConfigError, RecorderRef};

/// `rpc_system` label value.
pub const RPC_SYSTEM_GRPC: &str = "grpc";

pub(crate) struct GrpcShared {
    cache: LabelCache<GrpcCode, Histogram>,
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
        if max_label_sets < 2 {
            return Err(ConfigError::new(format!(
                "max_label_sets({max_label_sets}) is too small: it includes the overflow series, so it must be at least 2"
            )));
        }
        let r = recorder.clone();
        let make = move |path: &str, code: &GrpcCode| {
            let (service, method) =
                route::grpc_service_method(path).unwrap_or((route::UNMATCHED, route::UNMATCHED));
            let mut l = vec![
                Label::from_static_parts(labels::RPC_SYSTEM, RPC_SYSTEM_GRPC),
                Label::new(labels::RPC_SERVICE, service.to_owned()),
                Label::new(labels::RPC_METHOD, method.to_owned()),
                Label::from_static_parts(labels::RPC_GRPC_STATUS_CODE, code.number_label()),
            ];
            if let Some(e) = outcome::server_grpc(*code).error_type() {
                l.push(Label::from_static_parts(labels::ERROR_TYPE, e.as_str()));
            }
            r.histogram(&Key::from_parts(otel::RPC_SERVER_CALL_DURATION, l))
        };
        let r = recorder.clone();
        let make_overflow = move || {
            let o = meta::OVERFLOW_LABEL_VALUE;
            r.histogram(&Key::from_parts(
                otel::RPC_SERVER_CALL_DURATION,
                vec![
                    Label::from_static_parts(labels::RPC_SYSTEM, RPC_SYSTEM_GRPC),
                    Label::from_static_parts(labels::RPC_SERVICE, o),
                    Label::from_static_parts(labels::RPC_METHOD, o),
                    Label::from_static_parts(labels::RPC_GRPC_STATUS_CODE, o),
                ],
            ))
        };
        Ok(GrpcMetricsLayer {
            shared: Arc::new(GrpcShared {
                cache: LabelCache::new(
                    otel::RPC_SERVER_CALL_DURATION,
                    max_label_sets,
                    recorder,
                    make,
                    make_overflow,
                ),
            }),
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
        let path = req.uri().path();
        let name = if route::grpc_service_method(path).is_some() {
            path
        } else {
            route::UNMATCHED
        };
        let observation = RequestObservation::grpc(GrpcObservation {
            group: self.shared.cache.group(name),
            shared: self.shared.clone(),
            start: Instant::now(),
            header_code: None,
        });
        ResponseFuture {
            inner: self.inner.call(req),
            observation: Some(observation),
        }
    }
}

pub(crate) struct GrpcObservation {
    shared: Arc<GrpcShared>,
    group: Option<Arc<Group<GrpcCode, Histogram>>>,
    start: Instant,
    header_code: Option<GrpcCode>,
}

impl GrpcObservation {
    pub(crate) fn on_head(&mut self, headers: &HeaderMap) {
        self.header_code = GrpcCode::from_headers(headers);
    }

    pub(crate) fn on_service_error(self) {
        self.finish(GrpcCode::Unknown);
    }

    pub(crate) fn on_cancel(self) {
        self.finish(GrpcCode::Cancelled);
    }

    pub(crate) fn on_body_end(self, end: &BodyEnd<'_>) {
        let from_trailers = end.trailers().and_then(GrpcCode::from_headers);
        let code = match end {
            BodyEnd::Dropped { .. } => self.header_code.unwrap_or(GrpcCode::Cancelled),
            _ => self.header_code.or(from_trailers).unwrap_or(GrpcCode::Unknown),
        };
        self.finish(code);
    }

    fn finish(self, code: GrpcCode) {
        let elapsed = self.start.elapsed().as_secs_f64();
        self.shared
            .cache
            .with(self.group.as_deref(), code, |h| h.record(elapsed));
    }
}
