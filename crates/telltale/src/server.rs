//! The composed server layer: request id → trace → RED metrics → access log.
//!
//! ```
//! use axum::{routing::get, Router};
//!
//! # fn build(telemetry: &telltale::Telemetry) -> Router {
//! Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     .layer(telemetry.server_layer())
//! # }
//! ```
//!
//! Add it with `Router::layer` *after* the routes: it then runs once a route has matched
//! and labels metrics, spans and logs with the route template (`/orders/{id}`). Requests
//! that match no route are labelled `unmatched`, never with their raw path.
//!
//! Each request goes through the four steps in a fixed order, so each sees what the ones
//! before it added: the request id first (so the span, the metrics exemplar and every log
//! line carry it), then the server span (so the access line inside it carries trace and
//! span ids), then the RED metrics, then the access log. At the response the order is
//! reversed, as with nested layers: the access line is written first when the body ends,
//! then the metrics are recorded, then the span ends.
//!
//! # One service, not four nested ones
//!
//! The steps are those of [`RequestIdLayer`], [`TraceLayer`], [`MetricsLayer`] and
//! [`AccessLogLayer`], and behave as those layers nested in that order would, but
//! [`ServerService`] runs them through each layer's *part*
//! ([`RequestIdLayer::part`] and so on) in one service, with one response future and one
//! response-body wrapper. Four nested layers would each wrap the response future and the
//! body: the future grew to about 900 bytes and the body to 350, and both were copied from
//! layer to layer on the way in and out (`memmove` was 11% of the layer's time), and each
//! layer read the clock for itself. Here the per-request state is one allocation that moves
//! from the future to the body as a pointer, and the metrics and the access line share one
//! clock read when the request enters and one when the body ends.
//!
//! One difference from the nested layers: the access line is given the request's trace
//! ids directly ([`AccessPart::on_request_at`]) instead of holding the request's `tracing`
//! span as its parent until the body ends. Keeping that span alive and looking it up again
//! in `tracing`'s registry for the line cost about 100 ns each per request (reference
//! counts are atomic operations). The line's keys are the same; the fields of spans that
//! enclose the request's own span are not repeated on it.
//!
//! One thing is more precise than with nested layers: a handler that panics through the
//! layer is counted in the metrics as a 500 with `error_type="panic"` (a lone metrics
//! layer only sees its future dropped, and counts a 499).

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderName, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use telltale_core::body::{BodyEnd, BodyObserver, ObservedBody};
use telltale_core::{WithRequestId, with_request_id};
use telltale_log::{AccessLogLayer, AccessObserver, AccessPart, AccessRequest};
use telltale_metrics::{MetricsLayer, MetricsPart, RequestObservation};
use telltale_request_id::{RequestIdLayer, RequestIdPart};
use telltale_trace::server::ServerSpanEnd;
use telltale_trace::{TraceLayer, TracePart, TracedRequest};

/// The layer returned by [`Telemetry::server_layer`](crate::Telemetry::server_layer).
#[derive(Clone, Debug)]
pub struct ServerLayer {
    pub(crate) request_id: RequestIdLayer,
    pub(crate) trace: TraceLayer,
    pub(crate) metrics: MetricsLayer,
    pub(crate) access_log: AccessLogLayer,
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerService {
            inner,
            parts: Arc::new(Parts {
                request_id: self.request_id.part(),
                trace: self.trace.part(),
                metrics: self.metrics.part(),
                access: self.access_log.part(),
            }),
        }
    }
}

#[derive(Debug)]
struct Parts {
    request_id: RequestIdPart,
    trace: TracePart,
    metrics: MetricsPart,
    access: AccessPart,
}

/// The service [`ServerLayer`] produces. See the [module docs](self).
pub struct ServerService<S> {
    inner: S,
    parts: Arc<Parts>,
}

impl<S: Clone> Clone for ServerService<S> {
    fn clone(&self) -> Self {
        ServerService {
            inner: self.inner.clone(),
            parts: self.parts.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ServerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerService")
            .field("inner", &self.inner)
            .field("parts", &self.parts)
            .finish()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ServerService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ReqB: Body,
    ResB: Body,
    ResB::Error: fmt::Display,
{
    type Response = Response<ObservedBody<ResB, RequestEnd>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let parts = &*self.parts;
        let id = parts.request_id.on_request(&mut req);
        let traced = parts.trace.on_request(&req);
        let head = req.method() == http::Method::HEAD;
        let start = Instant::now();
        // Inside the request's span: the metrics exemplar takes its ids; the access line is
        // given them (it is written without a parent span, see the module docs).
        let (future, metrics, access) = traced.in_call(|| {
            let metrics = parts.metrics.on_request_at(&req, start);
            let access = parts.access.on_request_at(&req, start, Some(traced.trace_ids()));
            (self.inner.call(req), metrics, access)
        });
        ResponseFuture {
            inner: with_request_id(id, future),
            state: Some(Box::new(State {
                head,
                header: parts.request_id.header().clone(),
                trace: TraceState::Request(traced),
                metrics,
                access: AccessState::Request(access),
            })),
        }
    }
}

/// One request's state, from the call to the end of the response body: one allocation,
/// moved from the response future to the body as a pointer.
struct State {
    /// The request was a HEAD: its response body is never sent.
    head: bool,
    header: HeaderName,
    trace: TraceState,
    metrics: Option<RequestObservation>,
    access: AccessState,
}

enum TraceState {
    Request(TracedRequest),
    Body(Option<ServerSpanEnd>),
}

enum AccessState {
    Request(Option<AccessRequest>),
    Body(Option<AccessObserver>),
}

impl State {
    /// Ends every part before the response head: the service panicked (`panic`) or failed
    /// (`error`), or neither (the request was abandoned). The access line first, as with
    /// nested layers (the innermost reacts first).
    fn end_early(self, panic: Option<&(dyn std::any::Any + Send)>, error: Option<&dyn fmt::Display>) {
        let State {
            trace,
            metrics,
            access,
            ..
        } = self;
        if let AccessState::Request(Some(access)) = access {
            match error {
                Some(_) => access.on_service_error(),
                None => access.on_abandoned(panic.is_some()),
            }
        }
        if let Some(metrics) = metrics {
            match (panic, error) {
                (Some(_), _) => metrics.on_panic(),
                (None, Some(_)) => metrics.on_service_error(),
                (None, None) => metrics.on_cancel(),
            }
        }
        if let TraceState::Request(traced) = trace {
            match (panic, error) {
                (Some(payload), _) => traced.on_panic(payload),
                (None, Some(e)) => traced.on_service_error(e),
                (None, None) => traced.on_abandoned(),
            }
        }
    }
}

pin_project! {
    /// Response future of [`ServerService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: WithRequestId<F>,
        state: Option<Box<State>>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before the response head: the client went away (or a timeout above
            // gave up).
            if let Some(state) = this.project().state.take() {
                state.end_early(None, None);
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
{
    type Output = Result<Response<ObservedBody<B, RequestEnd>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(state) = this.state.as_mut() else {
            // Polled after completion: the inner future decides what that means.
            return this
                .inner
                .poll(cx)
                .map(|r| r.map(|res| res.map(ObservedBody::unobserved)));
        };
        let polled = {
            let inner = this.inner.as_mut();
            match &state.trace {
                TraceState::Request(traced) => {
                    traced.in_poll(|| std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))))
                }
                TraceState::Body(_) => std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))),
            }
        };
        match polled {
            Err(payload) => {
                if let Some(state) = this.state.take() {
                    state.end_early(Some(payload.as_ref()), None);
                }
                std::panic::resume_unwind(payload)
            }
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Err(e))) => {
                if let Some(state) = this.state.take() {
                    state.end_early(None, Some(&e));
                }
                Poll::Ready(Err(e))
            }
            Ok(Poll::Ready(Ok(mut res))) => {
                let Some(mut state) = this.state.take() else {
                    return Poll::Ready(Ok(res.map(ObservedBody::unobserved)));
                };
                if let Some(id) = this.inner.as_mut().take_id() {
                    RequestIdPart::on_response_with_header(&mut res, state.header.clone(), id);
                }
                let status = res.status();
                if let AccessState::Request(access) = &mut state.access {
                    let observer = access.take().map(|a| a.on_response(status.as_u16()));
                    state.access = AccessState::Body(observer);
                }
                if let Some(metrics) = &mut state.metrics {
                    metrics.on_response(&res);
                }
                let trace = std::mem::replace(&mut state.trace, TraceState::Body(None));
                if let TraceState::Request(traced) = trace {
                    state.trace = TraceState::Body(traced.on_response(&mut res));
                }
                let observed = matches!(state.access, AccessState::Body(Some(_)))
                    || state.metrics.is_some()
                    || matches!(state.trace, TraceState::Body(Some(_)));
                let declared = if observed {
                    telltale_core::body::declared_length(state.head, &res)
                } else {
                    None
                };
                Poll::Ready(Ok(res.map(|body| {
                    if observed {
                        ObservedBody::new(body, RequestEnd(state)).with_declared_length(declared)
                    } else {
                        ObservedBody::unobserved(body)
                    }
                })))
            }
        }
    }
}

/// Ends the request when its response body ends: writes the access line, records the
/// metrics, ends the span, in that order. Opaque; part of the response body type.
pub struct RequestEnd(Box<State>);

impl fmt::Debug for RequestEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestEnd").finish_non_exhaustive()
    }
}

impl BodyObserver for RequestEnd {
    fn on_end(self, end: BodyEnd<'_>) {
        let State {
            trace,
            metrics,
            access,
            ..
        } = *self.0;
        // One clock read for the line's duration and the metrics'.
        let now = Instant::now();
        if let AccessState::Body(Some(access)) = access {
            access.on_end_at(end, now);
        }
        if let Some(metrics) = metrics {
            metrics.on_end_at(end, now);
        }
        if let TraceState::Body(Some(trace)) = trace {
            trace.on_end(end);
        }
    }
}
