//! One policy per dependency: deadline → retry → circuit breaker → bulkhead →
//! per-attempt timeout, applied to reqwest, tower HTTP clients and tonic channels.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::{CircuitBreaker, ClientPolicy, Retry};
//!
//! let policy = ClientPolicy::builder("inventory")
//!     .timeout(Duration::from_millis(300))
//!     .deadline(Duration::from_secs(1))
//!     .retry(Retry::exponential().max_attempts(3).budget(0.2))
//!     .circuit_breaker(CircuitBreaker::failure_rate(0.5).min_calls(20).open_for(Duration::from_secs(10)))
//!     .build()
//!     .unwrap();
//! assert_eq!(policy.dependency(), "inventory");
//! assert!(policy.circuit_breaker().unwrap().readiness().is_ok());
//!
//! let err = ClientPolicy::builder("inventory").timeout(Duration::ZERO).build().unwrap_err();
//! assert!(err.to_string().contains("timeout"));
//! ```
//!
//! # Order
//!
//! For one logical call, outermost first:
//!
//! 1. **deadline**: the whole call, back-off sleeps included, ends by then
//!    ([`ResilienceError::DeadlineExceeded`]);
//! 2. **retry**: back-off with jitter, budgeted, only retryable outcomes;
//! 3. **circuit breaker**: open = [`ResilienceError::CircuitOpen`], nothing sent;
//! 4. **bulkhead**: a slot per attempt, bounded wait;
//! 5. **per-attempt timeout** ([`ResilienceError::Timeout`]), never longer than the
//!    time left before the deadline; for gRPC it is also sent as `grpc-timeout`;
//! 6. the transport.
//!
//! The request id, trace and dependency-metrics layers go in front of all of this
//! (one span and one metric observation per logical call); every attempt is counted in
//! `telltale_client_attempts_total{peer_service, outcome}`.
//!
//! The steps are one middleware, not six stacked tower layers: the retry loop needs the
//! breaker verdict, the deadline and the replay buffer together, and one future per call
//! keeps the cost of the whole stack to one allocation per call (plus one per attempt
//! for the transport future).
//!
//! # gRPC status in trailers
//!
//! A gRPC call that fails before its first message answers "trailers-only": the status
//! is in the response headers, and the attempt is classified there, like an HTTP status.
//! A call that fails later (a stream that breaks, a server that sends headers first)
//! carries its status in the trailers, after HTTP 200 headers without one. For a tonic `Channel` (response body
//! `tonic::body::Body`), the tower layer then classifies the attempt when the trailers
//! arrive: the breaker, `telltale_client_attempts_total` and the `attempt finished`
//! event see that status. A body that ends without a `grpc-status` counts as `UNKNOWN`
//! (the gRPC spec's reading), a body that fails as `error.type = body`, and a body the
//! caller drops unread as a success (the dependency did not fail). The slow-call
//! duration is the time to the response headers, so a long stream is not a slow call.
//! A half-open trial call is judged at its headers, as before: a long-lived stream must
//! not hold a trial slot, and the breaker half-open, for as long as it lasts.
//! Other response bodies (e.g. hyper's `Incoming`) cannot be wrapped without changing
//! the service's response type, so there the attempt is classified at the headers; for a
//! gRPC client over raw hyper, map the response body into `tonic::body::Body` inside the
//! policy layer (see [`tower`](crate::tower#grpc)) and the trailers are seen as above.
//! Retries are unaffected: gRFC A6 commits a call once headers arrive.
//!
//! The per-attempt timeout and the deadline cover the call up to the response *headers*
//! (that is what a retry decision needs); reading the response body afterwards is not
//! bounded by them: use the client's own body/read timeout for that.
//!
//! Metric handles are resolved when the policy is built: build it after installing the
//! metrics recorder (the facade's `Telemetry::init()`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use telltale_core::headers::GRPC_STATUS;
use telltale_core::outcome::{ErrorType, GrpcCode};
use telltale_metrics::names::{client as names, labels};
use tokio::time::Instant;

use crate::breaker::{
    BreakerRegistry, CallResult, CircuitBreaker, CircuitBreakerHandle, CircuitState, FailureClassifier,
    Permit,
};
use crate::budget::RetryBudget;
use crate::bulkhead::{Bulkhead, BulkheadHandle};
use crate::error::{ConfigError, ResilienceError};
use crate::retry::{Retry, reason, result_error_type};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// === ClientPolicyBuilder ===

/// Builds a [`ClientPolicy`]; see the module docs.
#[derive(Debug, Clone)]
pub struct ClientPolicyBuilder {
    name: String,
    timeout: Option<Duration>,
    deadline: Option<Duration>,
    retry: Option<Retry>,
    budget: Option<Arc<RetryBudget>>,
    breaker: Option<CircuitBreaker>,
    per_host: Option<usize>,
    bulkhead: Option<Bulkhead>,
    #[cfg(feature = "reqwest")]
    outer: OuterMiddlewares,
}

impl ClientPolicyBuilder {
    /// Per-attempt timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Overall deadline of the logical call, retries and back-off included.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }

    /// Retry policy.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Share this retry budget (for several policies hitting the same dependency)
    /// instead of building one from the retry settings.
    pub fn shared_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Circuit breaker (one for the dependency).
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// One circuit breaker per `host:port` instead of one for the dependency, at most
    /// `max_hosts` (see [`BreakerRegistry`]).
    pub fn per_host_breakers(mut self, max_hosts: usize) -> Self {
        self.per_host = Some(max_hosts);
        self
    }

    /// Bulkhead (concurrency limit with bounded wait).
    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.bulkhead = Some(bulkhead);
        self
    }

    /// A reqwest middleware to put in front of the resilience middleware (request id,
    /// trace, dependency metrics). Called in the order added.
    #[cfg(feature = "reqwest")]
    pub fn with_outer_middleware(mut self, m: Arc<dyn reqwest_middleware::Middleware>) -> Self {
        self.outer.0.push(m);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<ClientPolicy, ConfigError> {
        let name = self.name.as_str();
        if name.is_empty() {
            return Err(ConfigError::new(
                name,
                "the dependency name must not be empty (it is the peer_service label)",
            ));
        }
        if self.timeout.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                name,
                "per-attempt timeout must be greater than zero",
            ));
        }
        if self.deadline.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                name,
                "overall deadline must be greater than zero",
            ));
        }
        if let (Some(t), Some(d)) = (self.timeout, self.deadline)
            && t > d
        {
            tracing::debug!(
                peer.service = name,
                "per-attempt timeout is longer than the deadline: the deadline wins"
            );
        }
        if let Some(r) = &self.retry {
            r.validate(name)?;
        }
        let budget = match (&self.budget, &self.retry) {
            (Some(b), _) => Some(b.clone()),
            (None, Some(r)) if r.max_attempts > 1 => match r.budget {
                Some((ratio, floor, ttl)) => Some(Arc::new(
                    RetryBudget::new(ratio, floor, ttl).map_err(|p| ConfigError::new(name, p))?,
                )),
                None => None,
            },
            _ => None,
        };
        let (breaker, classifier) = match (&self.breaker, self.per_host) {
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    name,
                    "per_host_breakers needs a circuit_breaker(..) to copy",
                ));
            }
            (None, None) => (BreakerSlot::None, FailureClassifier::default()),
            (Some(cfg), None) => (BreakerSlot::One(cfg.build(name)?), cfg.classifier_ref().clone()),
            (Some(cfg), Some(max)) => (
                BreakerSlot::PerHost(BreakerRegistry::new(name, cfg.clone(), max)?),
                cfg.classifier_ref().clone(),
            ),
        };
        let bulkhead = self.bulkhead.map(|b| b.build(name)).transpose()?;
        let dep: Arc<str> = name.into();
        let counter = |outcome: &'static str| metrics::counter!(names::ATTEMPTS_TOTAL, labels::PEER_SERVICE => name.to_owned(), labels::OUTCOME => outcome);
        Ok(ClientPolicy(Arc::new(PolicyInner {
            attempts_ok: counter("success"),
            attempts_err: counter("error"),
            name: dep,
            timeout: self.timeout,
            deadline: self.deadline,
            retry: self.retry.filter(|r| r.max_attempts > 1),
            budget,
            breaker,
            classifier,
            bulkhead,
            #[cfg(feature = "reqwest")]
            outer: self.outer,
        })))
    }
}

/// Outer reqwest middlewares (a newtype only for `Debug`).
#[cfg(feature = "reqwest")]
#[derive(Clone, Default)]
pub(crate) struct OuterMiddlewares(pub(crate) Vec<Arc<dyn reqwest_middleware::Middleware>>);

#[cfg(feature = "reqwest")]
impl std::fmt::Debug for OuterMiddlewares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} outer middleware(s)]", self.0.len())
    }
}

// === ClientPolicy ===

/// The resilience policy of one dependency. Cheap to clone; clones share the breaker,
/// the retry budget and the bulkhead.
#[derive(Debug, Clone)]
pub struct ClientPolicy(pub(crate) Arc<PolicyInner>);

#[derive(Debug)]
enum BreakerSlot {
    None,
    One(CircuitBreakerHandle),
    PerHost(BreakerRegistry),
}

#[derive(Debug)]
pub(crate) struct PolicyInner {
    pub(crate) name: Arc<str>,
    timeout: Option<Duration>,
    deadline: Option<Duration>,
    retry: Option<Retry>,
    budget: Option<Arc<RetryBudget>>,
    breaker: BreakerSlot,
    classifier: FailureClassifier,
    bulkhead: Option<BulkheadHandle>,
    attempts_ok: metrics::Counter,
    attempts_err: metrics::Counter,
    #[cfg(feature = "reqwest")]
    pub(crate) outer: OuterMiddlewares,
}

/// What the transport adapter knows about one logical call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallSpec<'a> {
    /// Idempotent method, or an `Idempotency-Key` header.
    pub(crate) idempotent: bool,
    /// `host:port`, for per-host breakers.
    pub(crate) host: Option<&'a str>,
    /// A gRPC call (`grpc-timeout` is sent; the status may come in trailers).
    pub(crate) grpc: bool,
    /// The caller's own deadline for the call (a gRPC `grpc-timeout` it set): the
    /// policy's deadline is cut to it.
    pub(crate) deadline: Option<Duration>,
}

/// Per-attempt facts given to the transport adapter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttemptCtx {
    /// The time this attempt may take (per-attempt timeout or what is left of the deadline).
    pub(crate) limit: Option<Duration>,
}

/// A response the policy can classify.
pub(crate) trait AttemptResponse {
    fn status(&self) -> StatusCode;
    fn headers(&self) -> &HeaderMap;
}

impl<B> AttemptResponse for http::Response<B> {
    fn status(&self) -> StatusCode {
        http::Response::status(self)
    }
    fn headers(&self) -> &HeaderMap {
        http::Response::headers(self)
    }
}

/// How a transport makes attempts.
pub(crate) trait Attempts: Send {
    type Response: AttemptResponse + Send;
    /// Sends one attempt.
    fn send(&mut self, ctx: AttemptCtx) -> BoxFuture<'_, Result<Self::Response, ResilienceError>>;
    /// Whether the request can be sent again; `Err(reason)` if not.
    fn replayable(&mut self) -> Result<(), &'static str>;
    /// Hands the attempt's verdict to `response`'s body, to be given when its trailers
    /// arrive (see "gRPC status in trailers"); `Err` gives it back if the body cannot
    /// carry it, and the attempt is then classified at the headers.
    fn defer(
        &mut self,
        response: &mut Self::Response,
        verdict: PendingVerdict,
    ) -> Result<(), PendingVerdict> {
        let _ = response;
        Err(verdict)
    }
}

// === PendingVerdict ===

/// How a response body that carries a [`PendingVerdict`] ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyEnd<'a> {
    /// With these trailers.
    Trailers(&'a HeaderMap),
    /// Without trailers.
    NoTrailers,
    /// With an error.
    Error,
}

/// The classification of a gRPC attempt whose status comes in the trailers: counted,
/// logged and given to the breaker by [`PendingVerdict::finish`], or, if the body is
/// dropped before it ends, as a success (the permit is then released unrecorded).
pub(crate) struct PendingVerdict {
    policy: ClientPolicy,
    permit: Option<Permit>,
    attempt: u32,
    status: StatusCode,
    /// To the response headers: the slow-call measure.
    elapsed: Duration,
    finished: bool,
}

impl PendingVerdict {
    /// Classifies the attempt by how its body ended.
    pub(crate) fn finish(mut self, end: BodyEnd<'_>) {
        self.finished = true;
        let p = &*self.policy.0;
        let error = match end {
            BodyEnd::Trailers(trailers) if trailers.contains_key(GRPC_STATUS) => p
                .classifier
                .is_failure(&CallResult::Response {
                    status: self.status,
                    headers: trailers,
                })
                .then(|| result_error_type(Ok((self.status, trailers)))),
            BodyEnd::Trailers(_) | BodyEnd::NoTrailers => {
                let mut unknown = HeaderMap::new();
                unknown.insert(GRPC_STATUS, http::HeaderValue::from(GrpcCode::Unknown as u16));
                p.classifier
                    .is_failure(&CallResult::Response {
                        status: self.status,
                        headers: &unknown,
                    })
                    .then_some(ErrorType::Grpc(GrpcCode::Unknown))
            }
            BodyEnd::Error => p
                .classifier
                .is_failure(&CallResult::Error(ErrorType::Body))
                .then_some(ErrorType::Body),
        };
        p.conclude(self.permit.take(), self.attempt, error, self.elapsed);
    }
}

impl Drop for PendingVerdict {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped unread: the caller's choice, not the dependency's failure.
            let p = &*self.policy.0;
            p.conclude(None, self.attempt, None, self.elapsed);
        }
    }
}

impl PolicyInner {
    /// An attempt's outcome is known (`error`: `None` for a success): count it, log it,
    /// tell the breaker.
    fn conclude(&self, permit: Option<Permit>, attempt: u32, error: Option<ErrorType>, elapsed: Duration) {
        let failed = error.is_some();
        if failed {
            &self.attempts_err
        } else {
            &self.attempts_ok
        }
        .increment(1);
        tracing::debug!(
            peer.service = %self.name,
            attempt,
            failed,
            error.r#type = error.map(|e| e.as_str()),
            elapsed_us = elapsed.as_micros() as u64,
            "attempt finished"
        );
        if let Some(permit) = permit {
            permit.record(failed, elapsed);
        }
    }
}

impl ClientPolicyBuilder {
    fn new(name: &str) -> Self {
        ClientPolicyBuilder {
            name: name.to_owned(),
            timeout: None,
            deadline: None,
            retry: None,
            budget: None,
            breaker: None,
            per_host: None,
            bulkhead: None,
            #[cfg(feature = "reqwest")]
            outer: OuterMiddlewares(Vec::new()),
        }
    }
}

impl ClientPolicy {
    /// A builder for the dependency `name` (the `peer_service` label).
    pub fn builder(name: &str) -> ClientPolicyBuilder {
        ClientPolicyBuilder::new(name)
    }

    /// The dependency name.
    pub fn dependency(&self) -> &str {
        &self.0.name
    }

    /// The dependency's breaker, when it has one breaker (not per-host).
    pub fn circuit_breaker(&self) -> Option<&CircuitBreakerHandle> {
        match &self.0.breaker {
            BreakerSlot::One(b) => Some(b),
            _ => None,
        }
    }

    /// The per-host breakers, when configured.
    pub fn breaker_registry(&self) -> Option<&BreakerRegistry> {
        match &self.0.breaker {
            BreakerSlot::PerHost(r) => Some(r),
            _ => None,
        }
    }

    /// The shared retry budget, if retries are on.
    pub fn retry_budget(&self) -> Option<&Arc<RetryBudget>> {
        self.0.budget.as_ref()
    }

    /// A readiness status for a health check: `Err` while the breaker (or any per-host
    /// breaker) refuses calls, `Ok` otherwise or without a breaker.
    pub fn readiness(&self) -> Result<(), String> {
        match &self.0.breaker {
            BreakerSlot::None => Ok(()),
            BreakerSlot::One(b) => b.readiness(),
            BreakerSlot::PerHost(r) => r.readiness(),
        }
    }

    /// The max replay-body size, or 0 without retries.
    pub(crate) fn max_replay_body(&self) -> usize {
        self.0.retry.as_ref().map_or(0, |r| r.max_replay_body)
    }

    pub(crate) fn retries(&self) -> bool {
        self.0.retry.is_some()
    }

    pub(crate) fn wants_host(&self) -> bool {
        matches!(self.0.breaker, BreakerSlot::PerHost(_))
    }

    fn deadline_exceeded(&self, deadline: Option<Duration>, attempts: u32) -> ResilienceError {
        ResilienceError::DeadlineExceeded {
            dependency: self.0.name.clone(),
            deadline: deadline.unwrap_or_default(),
            attempts,
        }
    }

    fn skipped(&self, why: &'static str, attempt: u32, last: ErrorType) {
        metrics::counter!(names::RETRIES_SKIPPED_TOTAL, labels::PEER_SERVICE => self.0.name.to_string(), labels::REASON => why)
            .increment(1);
        tracing::info!(
            peer.service = %self.0.name,
            attempt,
            reason = why,
            error.r#type = last.as_str(),
            "not retrying"
        );
    }

    /// Runs one logical call.
    pub(crate) async fn run<A: Attempts>(
        &self,
        spec: CallSpec<'_>,
        attempts: &mut A,
    ) -> Result<A::Response, ResilienceError> {
        let p = &*self.0;
        let start = Instant::now();
        let deadline = match (p.deadline, spec.deadline) {
            (Some(ours), Some(callers)) => Some(ours.min(callers)),
            (ours, callers) => ours.or(callers),
        };
        // A limit too far away for the clock (`Duration::MAX` as "none") is no limit.
        let deadline_at = deadline.and_then(|d| start.checked_add(d));
        let breaker = match &p.breaker {
            BreakerSlot::None => None,
            BreakerSlot::One(b) => Some(b.clone()),
            BreakerSlot::PerHost(r) => Some(r.get(spec.host.unwrap_or(""))),
        };
        if let Some(b) = &p.budget {
            b.deposit();
        }
        let mut attempt: u32 = 0;
        let mut prev_delay = Duration::ZERO;
        loop {
            attempt += 1;
            let permit = match &breaker {
                Some(b) => Some(b.try_acquire()?),
                None => None,
            };
            let remaining = |now: Instant| deadline_at.map(|d| d.saturating_duration_since(now));
            let slot = match &p.bulkhead {
                Some(bh) => Some(bh.acquire_within(remaining(Instant::now())).await?),
                None => None,
            };
            let t0 = Instant::now();
            let (limit, by_deadline) = match (p.timeout, remaining(t0)) {
                (_, Some(r)) if r.is_zero() => return Err(self.deadline_exceeded(deadline, attempt - 1)),
                (Some(t), Some(r)) if r < t => (Some(r), true),
                (Some(t), _) => (Some(t), false),
                (None, Some(r)) => (Some(r), true),
                (None, None) => (None, false),
            };
            let fut = attempts.send(AttemptCtx { limit });
            let mut result = match limit {
                Some(l) => match tokio::time::timeout(l, fut).await {
                    Ok(r) => r,
                    Err(_) if by_deadline => Err(self.deadline_exceeded(deadline, attempt)),
                    Err(_) => Err(ResilienceError::Timeout {
                        dependency: p.name.clone(),
                        after: l,
                    }),
                },
                None => fut.await,
            };
            let elapsed = t0.elapsed();
            drop(slot);

            let view = result.as_ref().map(|r| (r.status(), r.headers()));
            let failed = p.classifier.is_failure(&match view {
                Ok((status, headers)) => CallResult::Response { status, headers },
                Err(e) => CallResult::Error(e.error_type()),
            });
            // A gRPC answer (HTTP 200) with no status in its headers has it in the
            // trailers. Another HTTP status comes from an intermediary and is classified
            // as it stands.
            // A half-open trial is judged at the headers: a long-lived stream must not
            // hold a trial slot (and the breaker half-open) for as long as it lasts.
            let in_trailers = spec.grpc
                && !failed
                && !permit.as_ref().is_some_and(Permit::is_trial)
                && matches!(view, Ok((StatusCode::OK, headers)) if !headers.contains_key(GRPC_STATUS));
            // Only a failure needs its `error.type` (it reads the headers again).
            let error = failed.then(|| result_error_type(view));
            match &mut result {
                Ok(response) if in_trailers => {
                    let verdict = PendingVerdict {
                        policy: self.clone(),
                        permit,
                        attempt,
                        status: response.status(),
                        elapsed,
                        finished: false,
                    };
                    if let Err(mut verdict) = attempts.defer(response, verdict) {
                        verdict.finished = true;
                        p.conclude(verdict.permit.take(), attempt, None, elapsed);
                    }
                }
                _ => p.conclude(permit, attempt, error, elapsed),
            }
            let view = result.as_ref().map(|r| (r.status(), r.headers()));

            // === decide whether to retry ===
            let Some(retry) = &p.retry else { return result };
            let Some((why, retry_after)) = retry.retryable(view) else {
                return result;
            };
            let last = result_error_type(view);
            if !(why == reason::CONNECT || spec.idempotent || retry.non_idempotent) {
                self.skipped(reason::NOT_IDEMPOTENT, attempt, last);
                return result;
            }
            if attempt >= retry.max_attempts {
                self.skipped(reason::MAX_ATTEMPTS, attempt, last);
                return result;
            }
            if let Err(body) = attempts.replayable() {
                self.skipped(body, attempt, last);
                return result;
            }
            let mut delay = retry
                .backoff
                .delay(attempt, prev_delay, &mut fastrand::Rng::new());
            if let Some(ra) = retry_after {
                if ra > retry.retry_after_cap {
                    self.skipped(reason::RETRY_AFTER, attempt, last);
                    return result;
                }
                delay = delay.max(ra);
            }
            // Past a limit, or a delay too long for the clock (a huge `Retry-After` under
            // a huge cap) when there is one.
            let resume_at = Instant::now().checked_add(delay);
            let past = |limit: Option<Instant>| limit.is_some_and(|l| resume_at.is_none_or(|at| at >= l));
            if past(retry.max_total.and_then(|m| start.checked_add(m))) || past(deadline_at) {
                self.skipped(reason::DEADLINE, attempt, last);
                return result;
            }
            // A breaker that would refuse the retry (this attempt may just have opened
            // it): the caller gets this attempt's answer, not `CircuitOpen`, and no
            // budget, retry count or back-off is spent on a retry that cannot happen.
            if breaker
                .as_ref()
                .is_some_and(|b| matches!(b.state(), CircuitState::Open | CircuitState::ForcedOpen))
            {
                self.skipped(reason::CIRCUIT_OPEN, attempt, last);
                return result;
            }
            if let Some(b) = &p.budget
                && !b.withdraw()
            {
                self.skipped(reason::BUDGET_EXHAUSTED, attempt, last);
                return Err(ResilienceError::BudgetExhausted {
                    dependency: p.name.clone(),
                    last,
                });
            }
            metrics::counter!(names::RETRIES_TOTAL, labels::PEER_SERVICE => p.name.to_string(), labels::REASON => why)
                .increment(1);
            tracing::info!(
                peer.service = %p.name,
                attempt,
                reason = why,
                error.r#type = last.as_str(),
                delay_ms = delay.as_millis() as u64,
                "retrying"
            );
            drop(result);
            prev_delay = delay;
            tokio::time::sleep(delay).await;
        }
    }
}
