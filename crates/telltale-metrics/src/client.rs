//! Dependency (outbound) RED metrics: [`ClientMetrics`], a tower layer for HTTP clients
//! ([`HttpClientMetricsLayer`]) and, with feature `reqwest`, a reqwest-middleware
//! `ClientMetricsMiddleware`.
//!
//! ```
//! use telltale_core::outcome::Outcome;
//! use telltale_metrics::client::{ClientMetrics, HttpClientMetricsLayer};
//!
//! let inventory = ClientMetrics::for_dependency("inventory");
//! // tower HTTP clients: ServiceBuilder::new().layer(HttpClientMetricsLayer::new(inventory.clone())).service(client)
//! let _layer = HttpClientMetricsLayer::new(inventory.clone());
//! // The retry layer (below this one) counts each attempt:
//! inventory.record_attempt(Outcome::Success);
//! ```
//!
//! One **logical call** is one observation of
//! `http_client_request_duration_seconds{http_request_method, server_address, peer_service,
//! http_response_status_code, error_type}`: put these layers *above* retries, so a call
//! that took three attempts is one observation lasting all three. The attempts are
//! counted by the retry layer with [`ClientMetrics::record_attempt`]
//! (`telltale_client_attempts_total{peer_service, outcome}`), so a retry storm shows up as
//! attempts growing faster than calls.
//!
//! - Duration runs to the response **head** (a client reads the body at its own pace).
//! - `http_response_status_code` is absent when there was no response (transport error).
//! - `error_type`: the status code for 4xx and 5xx (both are errors on the client side),
//!   else from the error: [`classify_error`] recognises [`ClassifiedError`] (what the
//!   resilience layers return: `circuit_open`, `timeout`, `budget_exhausted`, …),
//!   reqwest errors (`timeout`, `connect`), tower's timeout and `std::io` errors; anything
//!   else is `_OTHER`.
//! - A call whose future is dropped before it finished (the caller gave up) is recorded
//!   once with `error_type="_OTHER"` and no status.
//! - `server_address` is the request URI's host (`unknown` when absent); the label-set cap
//!   bounds it like every label.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use metrics::{Counter, Histogram, Key, Label};
use pin_project_lite::pin_project;
use telltale_core::method;
use telltale_core::outcome::{self, ErrorType, Outcome};
use tower::{BoxError, Layer, Service};

use crate::cache::{DEFAULT_MAX_LABEL_SETS, Group, LabelCache};
use crate::names::{client, labels, meta, otel};
use crate::{ConfigError, RecorderRef};

type ClientKey = (&'static str, Option<u16>, Option<ErrorType>);

struct ClientShared {
    peer_service: Arc<str>,
    recorder: RecorderRef,
    cache: LabelCache<ClientKey, Histogram>,
    attempts: OnceLock<[Counter; 2]>,
    reasons: Mutex<Vec<(&'static str, &'static str, Counter)>>,
}

/// Metrics of one outbound dependency; cheap to clone. See the [module docs](self).
#[derive(Clone)]
pub struct ClientMetrics {
    shared: Arc<ClientShared>,
}

impl std::fmt::Debug for ClientMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetrics")
            .field("peer_service", &self.shared.peer_service)
            .finish_non_exhaustive()
    }
}

impl ClientMetrics {
    /// Metrics for the dependency `name` (the `peer_service` label), recording into the
    /// global recorder with the default cap (2000 label sets).
    pub fn for_dependency(name: impl Into<Arc<str>>) -> Self {
        ClientMetrics::with_options(name, RecorderRef::global(), DEFAULT_MAX_LABEL_SETS)
            .unwrap_or_else(|_| unreachable!("default ClientMetrics configuration is valid"))
    }

    /// As [`for_dependency`](Self::for_dependency), with a given recorder and cap (the
    /// `overflow` series included; at least 2). The name must not be empty.
    pub fn with_options(
        name: impl Into<Arc<str>>,
        recorder: RecorderRef,
        max_label_sets: usize,
    ) -> Result<Self, ConfigError> {
        let peer_service: Arc<str> = name.into();
        if peer_service.trim().is_empty() {
            return Err(ConfigError::new(
                "the dependency name (peer_service) is empty".into(),
            ));
        }
        if max_label_sets < 2 {
            return Err(ConfigError::new(format!(
                "max_label_sets({max_label_sets}) is too small: it includes the overflow series, so it must be at least 2"
            )));
        }
        let (r, peer) = (recorder.clone(), peer_service.clone());
        let make = move |address: &str, &(method, status, error): &ClientKey| {
            let mut l = vec![
                Label::from_static_parts(labels::HTTP_REQUEST_METHOD, method),
                Label::new(labels::SERVER_ADDRESS, address.to_owned()),
                Label::new(labels::PEER_SERVICE, peer.to_string()),
            ];
            if let Some(s) = status {
                l.push(Label::from_static_parts(
                    labels::HTTP_RESPONSE_STATUS_CODE,
                    telltale_core::status::label_u16(s),
                ));
            }
            if let Some(e) = error {
                l.push(Label::from_static_parts(labels::ERROR_TYPE, e.as_str()));
            }
            r.histogram(&Key::from_parts(otel::HTTP_CLIENT_REQUEST_DURATION, l))
        };
        let (r, peer) = (recorder.clone(), peer_service.clone());
        let make_overflow = move || {
            let o = meta::OVERFLOW_LABEL_VALUE;
            r.histogram(&Key::from_parts(
                otel::HTTP_CLIENT_REQUEST_DURATION,
                vec![
                    Label::from_static_parts(labels::HTTP_REQUEST_METHOD, o),
                    Label::from_static_parts(labels::SERVER_ADDRESS, o),
                    Label::new(labels::PEER_SERVICE, peer.to_string()),
                    Label::from_static_parts(labels::HTTP_RESPONSE_STATUS_CODE, o),
                ],
            ))
        };
        Ok(ClientMetrics {
            shared: Arc::new(ClientShared {
                cache: LabelCache::new(
                    otel::HTTP_CLIENT_REQUEST_DURATION,
                    max_label_sets,
                    recorder.clone(),
                    make,
                    make_overflow,
                ),
                peer_service,
                recorder,
                attempts: OnceLock::new(),
                reasons: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The dependency name (`peer_service`).
    pub fn peer_service(&self) -> &str {
        &self.shared.peer_service
    }

    /// Starts timing one logical call. Finish it with [`CallTimer::finish`]; dropping it
    /// unfinished records a call abandoned by the caller.
    pub fn start(&self, method: &Method, server_address: &str) -> CallTimer {
        CallTimer {
            group: self.shared.cache.group(server_address),
            metrics: self.clone(),
            method: method::normalize(method),
            start: Instant::now(),
            done: false,
        }
    }

    /// Records one finished logical call: its response status or the error that ended it.
    pub fn record(
        &self,
        method: &Method,
        server_address: &str,
        result: Result<StatusCode, ErrorType>,
        elapsed: Duration,
    ) {
        let group = self.shared.cache.group(server_address);
        self.observe(group.as_deref(), method::normalize(method), result, elapsed);
    }

    fn observe(
        &self,
        group: Option<&Group<ClientKey, Histogram>>,
        method: &'static str,
        result: Result<StatusCode, ErrorType>,
        elapsed: Duration,
    ) {
        let key = match result {
            Ok(status) => (
                method,
                Some(status.as_u16()),
                outcome::client_http(status).error_type(),
            ),
            Err(e) => (method, None, Some(e)),
        };
        self.shared
            .cache
            .with(group, key, |h| h.record(elapsed.as_secs_f64()));
    }

    /// Counts one attempt (`telltale_client_attempts_total{peer_service, outcome}`).
    /// Called by the retry layer for every attempt, the first included.
    pub fn record_attempt(&self, outcome: Outcome) {
        let [ok, err] = self.shared.attempts.get_or_init(|| {
            let c = |o: &'static str| {
                self.shared.recorder.counter(&Key::from_parts(
                    client::ATTEMPTS_TOTAL,
                    vec![
                        Label::new(labels::PEER_SERVICE, self.shared.peer_service.to_string()),
                        Label::from_static_parts(labels::OUTCOME, o),
                    ],
                ))
            };
            [c(ATTEMPT_SUCCESS), c(ATTEMPT_ERROR)]
        });
        if outcome.is_error() { err } else { ok }.increment(1);
    }

    /// Counts a retry decided (`telltale_client_retries_total{peer_service, reason}`).
    pub fn record_retry(&self, reason: &'static str) {
        self.reason_counter(client::RETRIES_TOTAL, reason).increment(1);
    }

    /// Counts a retry refused (`telltale_client_retries_skipped_total{peer_service, reason}`).
    pub fn record_retry_skipped(&self, reason: &'static str) {
        self.reason_counter(client::RETRIES_SKIPPED_TOTAL, reason)
            .increment(1);
    }

    fn reason_counter(&self, metric: &'static str, reason: &'static str) -> Counter {
        // Retries are rare next to calls, and reasons a handful of `'static` strings.
        let mut v = self.shared.reasons.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, c)) = v.iter().find(|(m, r, _)| *m == metric && *r == reason) {
            return c.clone();
        }
        let c = self.shared.recorder.counter(&Key::from_parts(
            metric,
            vec![
                Label::new(labels::PEER_SERVICE, self.shared.peer_service.to_string()),
                Label::from_static_parts(labels::REASON, reason),
            ],
        ));
        v.push((metric, reason, c.clone()));
        c
    }
}

/// `outcome` label value of a successful attempt.
pub const ATTEMPT_SUCCESS: &str = "success";
/// `outcome` label value of a failed attempt.
pub const ATTEMPT_ERROR: &str = "error";

/// Times one logical call; see [`ClientMetrics::start`].
pub struct CallTimer {
    metrics: ClientMetrics,
    group: Option<Arc<Group<ClientKey, Histogram>>>,
    method: &'static str,
    start: Instant,
    done: bool,
}

impl std::fmt::Debug for CallTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallTimer")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl CallTimer {
    /// Records the call with its response status, or the error that ended it.
    pub fn finish(mut self, result: Result<StatusCode, ErrorType>) {
        self.done = true;
        self.metrics
            .observe(self.group.as_deref(), self.method, result, self.start.elapsed());
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.observe(
                self.group.as_deref(),
                self.method,
                Err(ErrorType::Other),
                self.start.elapsed(),
            );
        }
    }
}

// === error classification ===

/// An error carrying its `error.type`, for layers that know why a call failed (circuit
/// open, budget exhausted, deadline). [`classify_error`] finds it anywhere in a source chain.
#[derive(Debug)]
pub struct ClassifiedError {
    kind: ErrorType,
    source: BoxError,
}

impl ClassifiedError {
    /// Wraps `source` as an error of type `kind`.
    pub fn new(kind: ErrorType, source: impl Into<BoxError>) -> Self {
        ClassifiedError {
            kind,
            source: source.into(),
        }
    }

    /// The `error.type`.
    pub fn kind(&self) -> ErrorType {
        self.kind
    }
}

impl std::fmt::Display for ClassifiedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.source)
    }
}

impl StdError for ClassifiedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.source.as_ref())
    }
}

/// The `error.type` of a failed outbound call, from the error and its sources.
pub fn classify_error(err: &(dyn StdError + 'static)) -> ErrorType {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<ClassifiedError>() {
            return c.kind;
        }
        if e.is::<tower::timeout::error::Elapsed>() {
            return ErrorType::Timeout;
        }
        #[cfg(feature = "tonic")]
        {
            // What tonic's `Endpoint::timeout` ends a call with, and a deadline status.
            if e.is::<tonic::TimeoutExpired>() {
                return ErrorType::Timeout;
            }
            if e.downcast_ref::<tonic::Status>()
                .is_some_and(|s| s.code() == tonic::Code::DeadlineExceeded)
            {
                return ErrorType::Timeout;
            }
        }
        #[cfg(feature = "reqwest")]
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return ErrorType::Timeout;
            }
            if r.is_connect() {
                return ErrorType::Connect;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                TimedOut => return ErrorType::Timeout,
                ConnectionRefused | AddrNotAvailable | NotFound | HostUnreachable | NetworkUnreachable => {
                    return ErrorType::Connect;
                }
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
                    return ErrorType::Transport;
                }
                _ => {}
            }
        }
        cur = e.source();
    }
    #[cfg(feature = "reqwest")]
    if let Some(r) = err.downcast_ref::<reqwest::Error>()
        && (r.is_request() || r.is_body())
    {
        return ErrorType::Transport;
    }
    ErrorType::Other
}

// === impl HttpClientMetricsLayer ===

/// Tower layer recording dependency metrics around an HTTP client service. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct HttpClientMetricsLayer {
    metrics: ClientMetrics,
}

impl HttpClientMetricsLayer {
    /// The layer recording into `metrics`.
    pub fn new(metrics: ClientMetrics) -> Self {
        HttpClientMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for HttpClientMetricsLayer {
    type Service = HttpClientMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpClientMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`HttpClientMetricsLayer`].
#[derive(Debug, Clone)]
pub struct HttpClientMetrics<S> {
    inner: S,
    metrics: ClientMetrics,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpClientMetrics<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ClientResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let timer = self
            .metrics
            .start(req.method(), req.uri().host().unwrap_or("unknown"));
        ClientResponseFuture {
            inner: self.inner.call(req),
            timer: Some(timer),
        }
    }
}

pin_project! {
    /// Response future of [`HttpClientMetrics`].
    pub struct ClientResponseFuture<F> {
        #[pin]
        inner: F,
        timer: Option<CallTimer>,
    }
}

impl<F, ResB, E> Future for ClientResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        if let Some(timer) = this.timer.take() {
            timer.finish(match &result {
                Ok(res) => Ok(res.status()),
                Err(e) => Err(classify_error(e.as_ref())),
            });
        }
        Poll::Ready(result)
    }
}

// === reqwest ===

#[cfg(feature = "reqwest")]
pub use self::reqwest_middleware_impl::ClientMetricsMiddleware;

#[cfg(feature = "reqwest")]
mod reqwest_middleware_impl {
    use super::*;

    /// reqwest-middleware `Middleware` recording dependency metrics (feature `reqwest`).
    ///
    /// ```
    /// use telltale_metrics::client::{ClientMetrics, ClientMetricsMiddleware};
    ///
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(ClientMetricsMiddleware::new(ClientMetrics::for_dependency("inventory")))
    ///     .build();
    /// # let _ = client;
    /// ```
    #[derive(Debug, Clone)]
    pub struct ClientMetricsMiddleware {
        metrics: ClientMetrics,
    }

    impl ClientMetricsMiddleware {
        /// The middleware recording into `metrics`.
        pub fn new(metrics: ClientMetrics) -> Self {
            ClientMetricsMiddleware { metrics }
        }
    }

    /// The `error.type` of a reqwest-middleware error.
    pub(crate) fn classify_middleware_error(e: &reqwest_middleware::Error) -> ErrorType {
        match e {
            reqwest_middleware::Error::Reqwest(r) => classify_error(r),
            reqwest_middleware::Error::Middleware(a) => a
                .chain()
                .map(classify_error)
                .find(|t| *t != ErrorType::Other)
                .unwrap_or(ErrorType::Other),
        }
    }

    #[async_trait::async_trait]
    impl reqwest_middleware::Middleware for ClientMetricsMiddleware {
        async fn handle(
            &self,
            req: reqwest::Request,
            extensions: &mut http::Extensions,
            next: reqwest_middleware::Next<'_>,
        ) -> reqwest_middleware::Result<reqwest::Response> {
            let timer = self
                .metrics
                .start(req.method(), req.url().host_str().unwrap_or("unknown"));
            let result = next.run(req, extensions).await;
            timer.finish(match &result {
                Ok(res) => Ok(res.status()),
                Err(e) => Err(classify_middleware_error(e)),
            });
            result
        }
    }
}
