//! Circuit breaker: stop calling a dependency that is failing, try again later.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::breaker::{CircuitBreaker, CircuitState};
//!
//! let breaker = CircuitBreaker::failure_rate(0.5)
//!     .sliding_window(10)
//!     .min_calls(4)
//!     .open_for(Duration::from_secs(10))
//!     .build("inventory")
//!     .unwrap();
//! for _ in 0..4 {
//!     let permit = breaker.try_acquire().unwrap();
//!     permit.record_failure(Duration::from_millis(1));
//! }
//! assert_eq!(breaker.state(), CircuitState::Open);
//! assert!(breaker.try_acquire().is_err());             // fails fast, no call
//! assert!(breaker.readiness().is_err());               // for a readiness check
//! ```
//!
//! # States
//!
//! - **closed**: calls go through; outcomes are recorded in a sliding window (the last
//!   N calls, or the last N seconds). Once the window holds at least `min_calls` calls
//!   and the failure rate *or* the slow-call rate reaches its threshold, it opens.
//! - **open**: every call fails fast with [`ResilienceError::CircuitOpen`],
//!   the dependency sees nothing. After the wait (optionally growing on repeated trips)
//!   the next call moves it to half-open.
//! - **half-open**: a fixed number of trial calls go through, the rest fail fast. When
//!   they have all completed, it closes if their failure (and slow) rate is under the
//!   thresholds and opens again otherwise. In consecutive-failures mode one failed
//!   trial re-opens it and all trials succeeding closes it. Trials still out after a
//!   whole open wait (a hung peer, no timeout on the call) count as failed: the next
//!   call opens it again rather than being refused for as long as they hang. An open
//!   wait too long for the clock (`Duration::MAX`) keeps it open until a reset.
//! - operator overrides: **forced_open** (reject everything), **disabled** (allow
//!   everything, record nothing), **metrics_only** (allow everything, record and
//!   export the window, never trip). [`CircuitBreakerHandle::reset`] returns to closed.
//!
//! # Defaults (as Resilience4j)
//!
//! | setting | default |
//! |---|---|
//! | failure-rate threshold | 50 % |
//! | sliding window | count-based, 100 calls |
//! | minimum calls | 100 |
//! | slow-call threshold | 100 % of calls slower than 60 s (effectively off) |
//! | permitted calls in half-open | 10 |
//! | wait in open | 60 s, not growing |
//!
//! Minimum calls is clamped to the window size for count-based windows (a 20-call
//! window can trip after 20 calls even if `min_calls` is 100).
//!
//! # What is a failure
//!
//! The default [`FailureClassifier`] counts 5xx, 429 and 408 responses, gRPC server-side
//! error codes (`UNAVAILABLE`, `INTERNAL`, … in response headers) and every connect or
//! transport error and timeout (not local errors such as a request that could not be
//! built). It deliberately does **not** count other 4xx responses, although
//! `telltale_core::outcome::client_http` marks them as client-side errors: a 404 or a 400
//! says the *request* was wrong, not that the dependency is unhealthy, and a breaker
//! that opened on them would cut off a healthy dependency. Use
//! [`FailureClassifier::all_client_errors`] for the strict rule, or your own closure.
//!
//! # Implementation
//!
//! One short `Mutex` critical section per call start and per call end (no lock across
//! an `.await`); the current state is mirrored in an atomic so [`CircuitBreakerHandle::state`]
//! (read by health checks and dashboards) never takes the lock. Written here rather than
//! taken from a crate because none of the tower-ecosystem breakers offers Resilience4j's
//! feature set (slow calls, time windows, half-open trials, operator modes) with an
//! injectable clock.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use telltale_core::outcome::{ErrorType, GrpcCode};
use telltale_metrics::names::{client as names, labels};

use crate::clock::{Clock, TokioClock};
use crate::error::{ConfigError, ResilienceError};

// === CircuitState ===

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CircuitState {
    /// Calls go through and are recorded.
    Closed = 0,
    /// Calls fail fast.
    Open = 1,
    /// A few trial calls go through.
    HalfOpen = 2,
    /// Operator override: every call fails fast.
    ForcedOpen = 3,
    /// Operator override: every call goes through, nothing is recorded.
    Disabled = 4,
    /// Operator override: every call goes through and is recorded; never trips.
    MetricsOnly = 5,
}

impl CircuitState {
    const ALL: [CircuitState; 6] = [
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
        CircuitState::ForcedOpen,
        CircuitState::Disabled,
        CircuitState::MetricsOnly,
    ];

    /// The `state` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
            CircuitState::ForcedOpen => "forced_open",
            CircuitState::Disabled => "disabled",
            CircuitState::MetricsOnly => "metrics_only",
        }
    }

    /// Whether calls are being refused in this state (open or forced open).
    pub const fn is_open(self) -> bool {
        matches!(self, CircuitState::Open | CircuitState::ForcedOpen)
    }

    const fn from_u8(v: u8) -> CircuitState {
        match v {
            0 => CircuitState::Closed,
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            3 => CircuitState::ForcedOpen,
            4 => CircuitState::Disabled,
            _ => CircuitState::MetricsOnly,
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === FailureClassifier ===

/// What an attempt produced, as the failure classifier sees it.
#[derive(Debug, Clone, Copy)]
pub enum CallResult<'a> {
    /// A response arrived.
    Response {
        /// Its status.
        status: StatusCode,
        /// Its headers (for `grpc-status` in trailers-only gRPC responses).
        headers: &'a HeaderMap,
    },
    /// No response: a transport error or a timeout, as its `error.type`.
    Error(ErrorType),
}

/// Decides whether a call result counts as a failure for the breaker.
#[derive(Clone)]
pub struct FailureClassifier(Arc<dyn Fn(&CallResult<'_>) -> bool + Send + Sync>);

impl FailureClassifier {
    /// Your own rule: return `true` for a failure.
    pub fn new(f: impl Fn(&CallResult<'_>) -> bool + Send + Sync + 'static) -> Self {
        FailureClassifier(Arc::new(f))
    }

    /// The default: 5xx, 429, 408, gRPC server-error codes, connect and transport errors
    /// and timeouts.
    pub fn server_errors() -> Self {
        FailureClassifier::new(|r| match r {
            CallResult::Response { status, headers } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || GrpcCode::from_headers(headers)
                        .is_some_and(|c| telltale_core::outcome::server_grpc(c).is_error())
            }
            // `Other` is a local failure (the request could not be built, an inner
            // middleware refused it): not the dependency's fault.
            CallResult::Error(e) => *e != ErrorType::Other,
        })
    }

    /// Every client-side error per `telltale_core::outcome::client_http` (4xx and 5xx),
    /// every non-OK gRPC code, and every transport error.
    pub fn all_client_errors() -> Self {
        FailureClassifier::new(|r| match r {
            CallResult::Response { status, headers } => {
                telltale_core::outcome::client_http(*status).is_error()
                    || GrpcCode::from_headers(headers).is_some_and(|c| c != GrpcCode::Ok)
            }
            CallResult::Error(_) => true,
        })
    }

    /// Whether `result` is a failure.
    pub fn is_failure(&self, result: &CallResult<'_>) -> bool {
        (self.0)(result)
    }
}

impl Default for FailureClassifier {
    fn default() -> Self {
        Self::server_errors()
    }
}

impl fmt::Debug for FailureClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FailureClassifier(..)")
    }
}

// === CircuitBreaker (config) ===

/// How the sliding window is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last N calls.
    Count(u32),
    /// The calls of the last N seconds (in one-second buckets).
    Time(u32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Rate,
    Consecutive(u32),
}

/// Circuit-breaker configuration (a builder; see the module docs for defaults).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    mode: Mode,
    failure_rate: f64,
    slow_call_rate: f64,
    slow_call_duration: Duration,
    window: SlidingWindow,
    min_calls: u32,
    half_open_calls: u32,
    open_for: Duration,
    open_multiplier: f64,
    open_max: Duration,
    classifier: FailureClassifier,
    clock: Option<Arc<dyn Clock>>,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            mode: Mode::Rate,
            failure_rate: 0.5,
            slow_call_rate: 1.0,
            slow_call_duration: Duration::from_secs(60),
            window: SlidingWindow::Count(100),
            min_calls: 100,
            half_open_calls: 10,
            open_for: Duration::from_secs(60),
            open_multiplier: 1.0,
            open_max: Duration::from_secs(60),
            classifier: FailureClassifier::default(),
            clock: None,
        }
    }
}

impl CircuitBreaker {
    /// A failure-rate breaker opening at `threshold` (0.0 < threshold ≤ 1.0; 0.5 = 50 %).
    pub fn failure_rate(threshold: f64) -> Self {
        CircuitBreaker {
            failure_rate: threshold,
            ..Default::default()
        }
    }

    /// A breaker opening after `n` consecutive failures (and closing after all
    /// half-open trials succeed; any failed trial re-opens it).
    pub fn consecutive_failures(n: u32) -> Self {
        CircuitBreaker {
            mode: Mode::Consecutive(n),
            ..Default::default()
        }
    }

    /// Also open when at least `threshold` of calls are slower than `slower_than`.
    pub fn slow_calls(mut self, threshold: f64, slower_than: Duration) -> Self {
        self.slow_call_rate = threshold;
        self.slow_call_duration = slower_than;
        self
    }

    /// A count-based window of the last `calls` calls (default 100).
    pub fn sliding_window(mut self, calls: u32) -> Self {
        self.window = SlidingWindow::Count(calls);
        self
    }

    /// A time-based window of the last `seconds` seconds.
    pub fn time_window(mut self, seconds: u32) -> Self {
        self.window = SlidingWindow::Time(seconds);
        self
    }

    /// Calls the window must hold before the breaker may trip (default 100).
    pub fn min_calls(mut self, n: u32) -> Self {
        self.min_calls = n;
        self
    }

    /// Trial calls allowed in half-open (default 10).
    pub fn half_open_calls(mut self, n: u32) -> Self {
        self.half_open_calls = n;
        self
    }

    /// How long to stay open before trying again (default 60 s).
    pub fn open_for(mut self, wait: Duration) -> Self {
        self.open_for = wait;
        if self.open_max < wait {
            self.open_max = wait;
        }
        self
    }

    /// Grow the wait in open by `multiplier` on each trip that follows a failed
    /// half-open trial, up to `max`; the wait returns to `open_for` once closed.
    pub fn open_backoff(mut self, multiplier: f64, max: Duration) -> Self {
        self.open_multiplier = multiplier;
        self.open_max = max;
        self
    }

    /// Replace the failure classifier.
    pub fn classifier(mut self, classifier: FailureClassifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Use this clock (tests inject a [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub(crate) fn classifier_ref(&self) -> &FailureClassifier {
        &self.classifier
    }

    /// Checks the configuration.
    pub fn validate(&self, dependency: &str) -> Result<(), ConfigError> {
        let err = |p: String| Err(ConfigError::new(dependency, p));
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return err(format!(
                "circuit breaker failure-rate threshold must be within 0.0 < t <= 1.0 (0.5 = 50%), got {}",
                self.failure_rate
            ));
        }
        if !(self.slow_call_rate > 0.0 && self.slow_call_rate <= 1.0) {
            return err(format!(
                "circuit breaker slow-call-rate threshold must be within 0.0 < t <= 1.0, got {}",
                self.slow_call_rate
            ));
        }
        if self.slow_call_duration.is_zero() {
            return err("circuit breaker slow-call duration must be greater than zero".into());
        }
        match self.window {
            SlidingWindow::Count(0) | SlidingWindow::Time(0) => {
                return err("circuit breaker sliding window must hold at least 1 call / 1 second".into());
            }
            SlidingWindow::Time(s) if s > 3600 => {
                return err(format!(
                    "circuit breaker time window of {s}s is over the 3600s limit"
                ));
            }
            SlidingWindow::Count(n) if n > 100_000 => {
                return err(format!(
                    "circuit breaker count window of {n} calls is over the 100000 limit"
                ));
            }
            _ => {}
        }
        if self.min_calls == 0 {
            return err("circuit breaker minimum calls must be at least 1".into());
        }
        if self.half_open_calls == 0 {
            return err("circuit breaker must permit at least 1 call in half-open".into());
        }
        if let Mode::Consecutive(0) = self.mode {
            return err("circuit breaker consecutive-failure threshold must be at least 1".into());
        }
        if self.open_for.is_zero() {
            return err("circuit breaker wait in open must be greater than zero".into());
        }
        if !(self.open_multiplier >= 1.0 && self.open_multiplier.is_finite()) {
            return err(format!(
                "circuit breaker open back-off multiplier must be >= 1.0, got {}",
                self.open_multiplier
            ));
        }
        Ok(())
    }

    /// Builds a breaker for `dependency`.
    pub fn build(&self, dependency: &str) -> Result<CircuitBreakerHandle, ConfigError> {
        self.build_keyed(dependency, None)
    }

    pub(crate) fn build_keyed(
        &self,
        dependency: &str,
        host: Option<&str>,
    ) -> Result<CircuitBreakerHandle, ConfigError> {
        self.validate(dependency)?;
        let clock = self.clock.clone().unwrap_or_else(|| Arc::new(TokioClock::new()));
        let window = match self.window {
            SlidingWindow::Count(n) => Window::count(n),
            SlidingWindow::Time(s) => Window::time(s),
        };
        let min_calls = match self.window {
            SlidingWindow::Count(n) => self.min_calls.min(n),
            SlidingWindow::Time(_) => self.min_calls,
        };
        let name: Arc<str> = match host {
            Some(h) => format!("{dependency} ({h})").into(),
            None => dependency.into(),
        };
        let core = Core {
            dependency: dependency.into(),
            host: host.map(Into::into),
            name,
            config: Settings {
                mode: self.mode,
                failure_rate: self.failure_rate,
                slow_call_rate: self.slow_call_rate,
                slow_call_duration: self.slow_call_duration,
                min_calls,
                half_open_calls: self.half_open_calls,
                open_for: self.open_for,
                open_multiplier: self.open_multiplier,
                open_max: self.open_max.max(self.open_for),
            },
            clock,
            state: AtomicU8::new(CircuitState::Closed as u8),
            open_until_nanos: AtomicU64::new(0),
            rejected: {
                let mut l = vec![metrics::Label::new(labels::PEER_SERVICE, dependency.to_owned())];
                if let Some(h) = host {
                    l.push(metrics::Label::new(labels::SERVER_ADDRESS, h.to_owned()));
                }
                metrics::counter!(names::CIRCUIT_BREAKER_REJECTED_TOTAL, l)
            },
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                window,
                consecutive: 0,
                trial: Trial::default(),
                trips: 0,
                generation: 0,
            }),
        };
        core.export_state(CircuitState::Closed);
        Ok(CircuitBreakerHandle(Arc::new(core)))
    }
}

// === Window ===

#[derive(Debug)]
enum Window {
    Count {
        ring: Vec<u8>,
        next: usize,
        len: usize,
        failures: u32,
        slow: u32,
    },
    Time {
        buckets: Vec<Bucket>,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: u64,
    calls: u32,
    failures: u32,
    slow: u32,
}

const FAILED: u8 = 1;
const SLOW: u8 = 2;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Snapshot {
    calls: u32,
    failures: u32,
    slow: u32,
}

impl Window {
    fn count(n: u32) -> Window {
        Window::Count {
            ring: vec![0; n as usize],
            next: 0,
            len: 0,
            failures: 0,
            slow: 0,
        }
    }

    fn time(seconds: u32) -> Window {
        Window::Time {
            buckets: vec![
                Bucket {
                    second: u64::MAX,
                    ..Default::default()
                };
                seconds as usize
            ],
        }
    }

    fn record(&mut self, now: Duration, failed: bool, slow: bool) {
        let bits = (failed as u8 * FAILED) | (slow as u8 * SLOW);
        match self {
            Window::Count {
                ring,
                next,
                len,
                failures,
                slow: slows,
            } => {
                if *len == ring.len() {
                    let old = ring[*next];
                    *failures -= u32::from(old & FAILED != 0);
                    *slows -= u32::from(old & SLOW != 0);
                } else {
                    *len += 1;
                }
                ring[*next] = bits;
                *failures += u32::from(failed);
                *slows += u32::from(slow);
                *next = (*next + 1) % ring.len();
            }
            Window::Time { buckets } => {
                let sec = now.as_secs();
                let i = (sec % buckets.len() as u64) as usize;
                let b = &mut buckets[i];
                if b.second != sec {
                    *b = Bucket {
                        second: sec,
                        ..Default::default()
                    };
                }
                b.calls += 1;
                b.failures += u32::from(failed);
                b.slow += u32::from(slow);
            }
        }
    }

    fn snapshot(&self, now: Duration) -> Snapshot {
        match self {
            Window::Count {
                len, failures, slow, ..
            } => Snapshot {
                calls: *len as u32,
                failures: *failures,
                slow: *slow,
            },
            Window::Time { buckets } => {
                let sec = now.as_secs();
                let n = buckets.len() as u64;
                buckets
                    .iter()
                    .filter(|b| b.second != u64::MAX && b.second <= sec && sec - b.second < n)
                    .fold(Snapshot::default(), |acc, b| Snapshot {
                        calls: acc.calls + b.calls,
                        failures: acc.failures + b.failures,
                        slow: acc.slow + b.slow,
                    })
            }
        }
    }

    fn reset(&mut self) {
        match self {
            Window::Count {
                ring,
                next,
                len,
                failures,
                slow,
            } => {
                ring.iter_mut().for_each(|b| *b = 0);
                *next = 0;
                *len = 0;
                *failures = 0;
                *slow = 0;
            }
            Window::Time { buckets } => buckets.iter_mut().for_each(|b| b.second = u64::MAX),
        }
    }
}

// === Core ===

#[derive(Debug, Clone, Copy)]
struct Settings {
    mode: Mode,
    failure_rate: f64,
    slow_call_rate: f64,
    slow_call_duration: Duration,
    min_calls: u32,
    half_open_calls: u32,
    open_for: Duration,
    open_multiplier: f64,
    open_max: Duration,
}

#[derive(Debug, Default, Clone, Copy)]
struct Trial {
    admitted: u32,
    calls: u32,
    failures: u32,
    slow: u32,
    /// When the breaker went half-open (clock time).
    since: Duration,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    window: Window,
    consecutive: u32,
    trial: Trial,
    trips: u32,
    generation: u64,
}

#[derive(Debug)]
struct Core {
    dependency: Arc<str>,
    host: Option<Arc<str>>,
    /// For messages: `inventory` or `inventory (host:port)`.
    name: Arc<str>,
    config: Settings,
    clock: Arc<dyn Clock>,
    state: AtomicU8,
    open_until_nanos: AtomicU64,
    rejected: metrics::Counter,
    inner: Mutex<Inner>,
}

impl Core {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state machine inconsistent
        // in a way worse than losing one record, so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_wait(&self, trips: u32) -> Duration {
        let c = &self.config;
        if c.open_multiplier <= 1.0 || trips <= 1 {
            return c.open_for;
        }
        let factor = c.open_multiplier.powi(trips.saturating_sub(1).min(64) as i32);
        Duration::try_from_secs_f64(c.open_for.as_secs_f64() * factor)
            .unwrap_or(c.open_max)
            .min(c.open_max)
    }

    fn transition(&self, inner: &mut Inner, to: CircuitState, now: Duration) {
        let from = inner.state;
        if from == to {
            return;
        }
        inner.state = to;
        inner.generation += 1;
        inner.trial = Trial {
            since: now,
            ..Trial::default()
        };
        inner.consecutive = 0;
        match to {
            CircuitState::Open => {
                inner.trips += 1;
                // Saturating: `open_for(Duration::MAX)` means open until reset by hand,
                // not a clock overflow (a panic half-way through this transition).
                let until = now.saturating_add(self.open_wait(inner.trips));
                let until = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
                self.open_until_nanos.store(until, Ordering::SeqCst);
            }
            CircuitState::Closed => {
                inner.trips = 0;
                inner.window.reset();
            }
            CircuitState::HalfOpen => {}
            _ => inner.window.reset(),
        }
        self.state.store(to as u8, Ordering::SeqCst);
        self.export_transition(from, to, inner.trips);
    }

    fn export_transition(&self, from: CircuitState, to: CircuitState, trips: u32) {
        let host = self.host.as_deref().unwrap_or("");
        match to {
            CircuitState::Open | CircuitState::ForcedOpen => tracing::warn!(
                peer.service = %self.dependency,
                server.address = host,
                from = from.as_str(),
                to = to.as_str(),
                trips,
                "circuit breaker opened: calls to the dependency fail fast"
            ),
            _ => tracing::info!(
                peer.service = %self.dependency,
                server.address = host,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state changed"
            ),
        }
        let mut l = vec![
            (labels::PEER_SERVICE, self.dependency.to_string()),
            ("from", from.as_str().to_owned()),
            ("to", to.as_str().to_owned()),
        ];
        if let Some(h) = &self.host {
            l.push((labels::SERVER_ADDRESS, h.to_string()));
        }
        let l: Vec<metrics::Label> = l.into_iter().map(|(k, v)| metrics::Label::new(k, v)).collect();
        metrics::counter!(names::CIRCUIT_BREAKER_TRANSITIONS_TOTAL, l).increment(1);
        self.export_state(to);
    }

    fn export_state(&self, current: CircuitState) {
        for s in CircuitState::ALL {
            let mut l = vec![
                metrics::Label::new(labels::PEER_SERVICE, self.dependency.to_string()),
                metrics::Label::new(labels::STATE, s.as_str()),
            ];
            if let Some(h) = &self.host {
                l.push(metrics::Label::new(labels::SERVER_ADDRESS, h.to_string()));
            }
            metrics::gauge!(names::CIRCUIT_BREAKER_STATE, l).set(if s == current { 1.0 } else { 0.0 });
        }
    }

    fn reject(&self, state: CircuitState) -> ResilienceError {
        // Pre-resolved: an open breaker rejects every call, so this is a hot path.
        self.rejected.increment(1);
        tracing::debug!(peer.service = %self.dependency, state = state.as_str(), "circuit breaker rejected the call");
        ResilienceError::CircuitOpen {
            dependency: self.name.clone(),
            state: state.as_str(),
        }
    }

    fn should_trip(&self, s: Snapshot, consecutive: u32) -> bool {
        match self.config.mode {
            Mode::Consecutive(n) => consecutive >= n,
            Mode::Rate => {
                s.calls >= self.config.min_calls
                    && s.calls > 0
                    && (f64::from(s.failures) / f64::from(s.calls) >= self.config.failure_rate
                        || f64::from(s.slow) / f64::from(s.calls) >= self.config.slow_call_rate)
            }
        }
    }
}

// === CircuitBreakerHandle ===

/// A circuit breaker, shared (cloning is cheap and shares the state).
#[derive(Debug, Clone)]
pub struct CircuitBreakerHandle(Arc<Core>);

/// Permission to make one call; report its outcome with
/// [`record_success`](Self::record_success) / [`record_failure`](Self::record_failure)
/// or [`record`](Self::record). Dropped without a record, the call is ignored (a
/// half-open trial slot is given back).
#[derive(Debug)]
#[must_use = "report the call's outcome, or it is ignored"]
pub struct Permit {
    core: Arc<Core>,
    generation: u64,
    done: bool,
    /// Admitted as a half-open trial call.
    trial: bool,
}

impl CircuitBreakerHandle {
    /// The current state, without taking a lock. An open breaker whose wait is over
    /// reads as `HalfOpen` (it will admit a trial call), even before a call moves it.
    pub fn state(&self) -> CircuitState {
        let s = CircuitState::from_u8(self.0.state.load(Ordering::SeqCst));
        if s == CircuitState::Open {
            let until = Duration::from_nanos(self.0.open_until_nanos.load(Ordering::SeqCst));
            if self.0.clock.now() >= until {
                return CircuitState::HalfOpen;
            }
        }
        s
    }

    /// The dependency name.
    pub fn dependency(&self) -> &str {
        &self.0.dependency
    }

    /// The host, for a per-host breaker from a [`BreakerRegistry`].
    pub fn host(&self) -> Option<&str> {
        self.0.host.as_deref()
    }

    /// A readiness status: `Err` with an explanation while the breaker refuses calls
    /// (open or forced open), `Ok` otherwise. Feed it to a telltale-health closure check.
    pub fn readiness(&self) -> Result<(), String> {
        match self.state() {
            CircuitState::Open => {
                let until = Duration::from_nanos(self.0.open_until_nanos.load(Ordering::SeqCst));
                let left = until.saturating_sub(self.0.clock.now());
                Err(format!(
                    "circuit breaker for {} is open: calls fail fast for another {:.1}s",
                    self.0.name,
                    left.as_secs_f64()
                ))
            }
            CircuitState::ForcedOpen => Err(format!(
                "circuit breaker for {} is forced open by an operator",
                self.0.name
            )),
            _ => Ok(()),
        }
    }

    /// Asks to make a call: `Err(CircuitOpen)` when the breaker refuses it.
    pub fn try_acquire(&self) -> Result<Permit, ResilienceError> {
        let core = &self.0;
        let mut inner = core.lock();
        let now = core.clock.now();
        if inner.state == CircuitState::Open {
            let until = Duration::from_nanos(core.open_until_nanos.load(Ordering::SeqCst));
            if now >= until {
                core.transition(&mut inner, CircuitState::HalfOpen, now);
            }
        }
        let trial = match inner.state {
            CircuitState::Closed | CircuitState::Disabled | CircuitState::MetricsOnly => false,
            CircuitState::HalfOpen => {
                if inner.trial.admitted >= core.config.half_open_calls {
                    // Trials that have not answered within a whole open wait (a hung
                    // peer, and no timeout on the call) count as failed: open again,
                    // rather than refuse every call for as long as they hang. Their
                    // outcomes, if they ever come, belong to an older generation and
                    // are ignored.
                    let wait = core.open_wait(inner.trips);
                    if now.saturating_sub(inner.trial.since) >= wait {
                        core.transition(&mut inner, CircuitState::Open, now);
                        drop(inner);
                        return Err(core.reject(CircuitState::Open));
                    }
                    drop(inner);
                    return Err(core.reject(CircuitState::HalfOpen));
                }
                inner.trial.admitted += 1;
                true
            }
            s @ (CircuitState::Open | CircuitState::ForcedOpen) => {
                drop(inner);
                return Err(core.reject(s));
            }
        };
        Ok(Permit {
            core: core.clone(),
            generation: inner.generation,
            done: false,
            trial,
        })
    }

    /// Forces the breaker open (operator override) until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.set(CircuitState::ForcedOpen);
    }

    /// Disables the breaker (allow everything, record nothing) until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.set(CircuitState::Disabled);
    }

    /// Records and exports outcomes but never trips, until [`reset`](Self::reset).
    pub fn metrics_only(&self) {
        self.set(CircuitState::MetricsOnly);
    }

    /// Back to closed with an empty window.
    pub fn reset(&self) {
        self.set(CircuitState::Closed);
    }

    fn set(&self, to: CircuitState) {
        let mut inner = self.0.lock();
        let now = self.0.clock.now();
        self.0.transition(&mut inner, to, now);
    }

    /// Failure and slow-call counts currently in the window: `(calls, failures, slow)`.
    pub fn window(&self) -> (u32, u32, u32) {
        let inner = self.0.lock();
        let s = inner.window.snapshot(self.0.clock.now());
        (s.calls, s.failures, s.slow)
    }
}

impl Permit {
    /// Whether this call was admitted as a half-open trial (it holds one of the
    /// `half_open_calls` slots until its outcome is recorded).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use telltale_resilience::breaker::CircuitBreaker;
    /// use telltale_resilience::clock::ManualClock;
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let breaker = CircuitBreaker::consecutive_failures(1)
    ///     .open_for(Duration::from_secs(5))
    ///     .clock(clock.clone())
    ///     .build("inventory")
    ///     .unwrap();
    /// let permit = breaker.try_acquire().unwrap();
    /// assert!(!permit.is_trial());
    /// permit.record_failure(Duration::from_millis(3)); // opens
    /// clock.advance(Duration::from_secs(6));
    /// assert!(breaker.try_acquire().unwrap().is_trial());
    /// ```
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// Records a successful call that took `elapsed`.
    pub fn record_success(self, elapsed: Duration) {
        self.record(false, elapsed);
    }

    /// Records a failed call that took `elapsed`.
    pub fn record_failure(self, elapsed: Duration) {
        self.record(true, elapsed);
    }

    /// Records a call's outcome.
    pub fn record(mut self, failed: bool, elapsed: Duration) {
        self.done = true;
        let core = &self.core;
        let slow = elapsed >= core.config.slow_call_duration;
        let mut inner = core.lock();
        if inner.generation != self.generation {
            // Admitted in an earlier state (e.g. before the breaker opened): ignored.
            return;
        }
        let now = core.clock.now();
        match inner.state {
            CircuitState::Closed => {
                inner.window.record(now, failed, slow);
                inner.consecutive = if failed { inner.consecutive + 1 } else { 0 };
                let snap = inner.window.snapshot(now);
                if core.should_trip(snap, inner.consecutive) {
                    core.transition(&mut inner, CircuitState::Open, now);
                }
            }
            CircuitState::MetricsOnly => inner.window.record(now, failed, slow),
            CircuitState::HalfOpen => {
                inner.trial.calls += 1;
                inner.trial.failures += u32::from(failed);
                inner.trial.slow += u32::from(slow);
                let t = inner.trial;
                let c = &core.config;
                let to = match c.mode {
                    Mode::Consecutive(_) if failed => Some(CircuitState::Open),
                    _ if t.calls >= c.half_open_calls => {
                        let calls = f64::from(t.calls);
                        if f64::from(t.failures) / calls >= c.failure_rate
                            || f64::from(t.slow) / calls >= c.slow_call_rate
                        {
                            Some(CircuitState::Open)
                        } else {
                            Some(CircuitState::Closed)
                        }
                    }
                    _ => None,
                };
                if let Some(to) = to {
                    core.transition(&mut inner, to, now);
                }
            }
            CircuitState::Open | CircuitState::ForcedOpen | CircuitState::Disabled => {}
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut inner = self.core.lock();
        if inner.generation == self.generation && inner.state == CircuitState::HalfOpen {
            inner.trial.admitted = inner.trial.admitted.saturating_sub(1);
        }
    }
}

// === BreakerRegistry ===

/// One breaker per host for a client that talks to many hosts, bounded: past
/// `max_hosts` distinct hosts, further hosts share one overflow breaker (host label
/// `_overflow`) so a client fed arbitrary URLs cannot grow the map without limit. A host
/// keeps its breaker for the registry's life (hosts that went away are not evicted); the
/// first host sent to `_overflow` is logged once at WARN (`per-host circuit breakers
/// full`), naming the dependency, the host and `max_hosts`.
///
/// ```
/// use telltale_resilience::breaker::{BreakerRegistry, CircuitBreaker};
///
/// let registry = BreakerRegistry::new("search", CircuitBreaker::consecutive_failures(5), 2).unwrap();
/// let a = registry.get("a.internal:80");
/// assert_eq!(a.host(), Some("a.internal:80"));
/// registry.get("b.internal:80");
/// assert_eq!(registry.get("c.internal:80").host(), Some("_overflow"));
/// ```
#[derive(Debug, Clone)]
pub struct BreakerRegistry(Arc<RegistryInner>);

#[derive(Debug)]
struct RegistryInner {
    dependency: String,
    config: CircuitBreaker,
    max_hosts: usize,
    map: Mutex<HashMap<Box<str>, CircuitBreakerHandle>>,
    overflow: CircuitBreakerHandle,
    /// Whether the WARN for the first host past the bound has been written.
    overflowed: AtomicBool,
}

/// The host label of the shared breaker used past a registry's bound.
pub const OVERFLOW_HOST: &str = "_overflow";

impl BreakerRegistry {
    /// A registry of breakers built from `config`, at most `max_hosts` of them.
    pub fn new(dependency: &str, config: CircuitBreaker, max_hosts: usize) -> Result<Self, ConfigError> {
        if max_hosts == 0 {
            return Err(ConfigError::new(
                dependency,
                "per-host circuit breakers need room for at least 1 host",
            ));
        }
        let overflow = config.build_keyed(dependency, Some(OVERFLOW_HOST))?;
        Ok(BreakerRegistry(Arc::new(RegistryInner {
            dependency: dependency.to_owned(),
            config,
            max_hosts,
            map: Mutex::new(HashMap::new()),
            overflow,
            overflowed: AtomicBool::new(false),
        })))
    }

    /// The breaker for `host` (`host:port`).
    pub fn get(&self, host: &str) -> CircuitBreakerHandle {
        let r = &self.0;
        let mut map = r.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(host) {
            return b.clone();
        }
        if map.len() >= r.max_hosts {
            drop(map);
            if !r.overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    peer.service = %r.dependency,
                    server.address = host,
                    max_hosts = r.max_hosts,
                    "per-host circuit breakers full: this and every later new host share the `_overflow` breaker (logged once)"
                );
            }
            return r.overflow.clone();
        }
        // Validated in `new`, so this cannot fail; fall back to the overflow breaker anyway.
        match r.config.build_keyed(&r.dependency, Some(host)) {
            Ok(b) => {
                map.insert(host.into(), b.clone());
                b
            }
            Err(_) => r.overflow.clone(),
        }
    }

    /// Every breaker created so far (for readiness reporting).
    pub fn all(&self) -> Vec<CircuitBreakerHandle> {
        let map = self.0.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.values().cloned().collect();
        v.push(self.0.overflow.clone());
        v
    }

    /// `Err` listing the hosts whose breaker refuses calls.
    pub fn readiness(&self) -> Result<(), String> {
        let open: Vec<String> = self.all().iter().filter_map(|b| b.readiness().err()).collect();
        if open.is_empty() {
            Ok(())
        } else {
            Err(open.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn manual() -> Arc<ManualClock> {
        Arc::new(ManualClock::new())
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn opens_at_threshold_after_min_calls_then_half_opens_and_closes() {
        let clock = manual();
        let b = CircuitBreaker::failure_rate(0.5)
            .sliding_window(10)
            .min_calls(4)
            .half_open_calls(2)
            .open_for(Duration::from_secs(5))
            .clock(clock.clone())
            .build("dep")
            .unwrap();
        b.try_acquire().unwrap().record_failure(MS);
        b.try_acquire().unwrap().record_failure(MS);
        b.try_acquire().unwrap().record_success(MS);
        assert_eq!(b.state(), CircuitState::Closed, "3 calls < min_calls");
        b.try_acquire().unwrap().record_success(MS);
        assert_eq!(b.state(), CircuitState::Open, "2/4 failed = 50%");
        assert!(matches!(
            b.try_acquire(),
            Err(ResilienceError::CircuitOpen { state: "open", .. })
        ));
        clock.advance(Duration::from_secs(5));
        assert_eq!(b.state(), CircuitState::HalfOpen);
        let p1 = b.try_acquire().unwrap();
        let p2 = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err(), "only 2 trials");
        p1.record_success(MS);
        p2.record_success(MS);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.window(), (0, 0, 0));
    }

    #[test]
    fn trials_that_hang_for_a_whole_open_wait_open_the_breaker_again() {
        let clock = manual();
        let b = CircuitBreaker::consecutive_failures(1)
            .half_open_calls(1)
            .open_for(Duration::from_secs(1))
            .clock(clock.clone())
            .build("dep")
            .unwrap();
        b.try_acquire().unwrap().record_failure(MS);
        clock.advance(Duration::from_secs(1));
        // A trial that never answers (a hung peer, no timeout on the call).
        let hung = b.try_acquire().unwrap();
        assert!(hung.is_trial());
        clock.advance(Duration::from_secs(1) - MS);
        assert!(matches!(
            b.try_acquire(),
            Err(ResilienceError::CircuitOpen {
                state: "half_open",
                ..
            })
        ));
        clock.advance(MS);
        // A whole open wait: the trial counts as failed.
        assert!(matches!(
            b.try_acquire(),
            Err(ResilienceError::CircuitOpen { state: "open", .. })
        ));
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.readiness().is_err());
        clock.advance(Duration::from_secs(1));
        let fresh = b.try_acquire().unwrap();
        assert!(fresh.is_trial());
        // The hung trial's late answer belongs to an older generation: ignored.
        hung.record_success(MS);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        fresh.record_success(MS);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn an_open_wait_too_long_for_the_clock_keeps_the_breaker_open() {
        for open_for in [
            Duration::MAX,
            Duration::from_nanos(u64::MAX) + Duration::from_nanos(1),
        ] {
            let clock = manual();
            clock.advance(MS);
            let b = CircuitBreaker::consecutive_failures(1)
                .open_for(open_for)
                .clock(clock.clone())
                .build("dep")
                .unwrap();
            b.try_acquire().unwrap().record_failure(MS);
            assert_eq!(b.state(), CircuitState::Open, "{open_for:?}");
            assert!(b.try_acquire().is_err());
            assert!(b.readiness().is_err());
            clock.advance(Duration::from_secs(100 * 365 * 86_400));
            assert_eq!(b.state(), CircuitState::Open, "{open_for:?}");
        }
    }

    #[test]
    fn failed_trial_reopens_with_growing_wait() {
        let clock = manual();
        let b = CircuitBreaker::consecutive_failures(2)
            .half_open_calls(1)
            .open_for(Duration::from_secs(1))
            .open_backoff(2.0, Duration::from_secs(3))
            .clock(clock.clone())
            .build("dep")
            .unwrap();
        for _ in 0..2 {
            b.try_acquire().unwrap().record_failure(MS);
        }
        assert_eq!(b.state(), CircuitState::Open);
        for wait in [1, 2, 3, 3] {
            clock.advance(Duration::from_secs(wait) - MS);
            assert_eq!(b.state(), CircuitState::Open, "wait {wait}");
            clock.advance(MS);
            b.try_acquire().unwrap().record_failure(MS);
            assert_eq!(b.state(), CircuitState::Open);
        }
        clock.advance(Duration::from_secs(3));
        b.try_acquire().unwrap().record_success(MS);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn dropped_trial_permit_gives_its_slot_back() {
        let clock = manual();
        let b = CircuitBreaker::consecutive_failures(1)
            .half_open_calls(1)
            .open_for(Duration::from_secs(1))
            .clock(clock.clone())
            .build("dep")
            .unwrap();
        b.try_acquire().unwrap().record_failure(MS);
        clock.advance(Duration::from_secs(1));
        drop(b.try_acquire().unwrap());
        b.try_acquire().unwrap().record_success(MS);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn slow_calls_trip_the_breaker() {
        let b = CircuitBreaker::failure_rate(1.0)
            .slow_calls(0.5, Duration::from_millis(100))
            .sliding_window(4)
            .min_calls(4)
            .clock(manual())
            .build("dep")
            .unwrap();
        for d in [1, 200, 1, 300] {
            b.try_acquire().unwrap().record_success(Duration::from_millis(d));
        }
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn time_window_forgets_old_calls() {
        let clock = manual();
        let b = CircuitBreaker::failure_rate(0.5)
            .time_window(2)
            .min_calls(3)
            .clock(clock.clone())
            .build("dep")
            .unwrap();
        b.try_acquire().unwrap().record_failure(MS);
        b.try_acquire().unwrap().record_failure(MS);
        clock.advance(Duration::from_secs(3));
        assert_eq!(b.window(), (0, 0, 0));
        b.try_acquire().unwrap().record_failure(MS);
        assert_eq!(b.state(), CircuitState::Closed);
        b.try_acquire().unwrap().record_success(MS);
        b.try_acquire().unwrap().record_failure(MS);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn operator_modes() {
        let b = CircuitBreaker::consecutive_failures(1)
            .clock(manual())
            .build("dep")
            .unwrap();
        b.force_open();
        assert!(matches!(
            b.try_acquire(),
            Err(ResilienceError::CircuitOpen {
                state: "forced_open",
                ..
            })
        ));
        assert!(b.readiness().unwrap_err().contains("forced open"));
        b.disable();
        for _ in 0..5 {
            b.try_acquire().unwrap().record_failure(MS);
        }
        assert_eq!(b.state(), CircuitState::Disabled);
        b.metrics_only();
        b.try_acquire().unwrap().record_failure(MS);
        assert_eq!(b.state(), CircuitState::MetricsOnly);
        assert_eq!(b.window().1, 1);
        b.reset();
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.readiness().is_ok());
    }

    #[test]
    fn misconfiguration_is_an_error() {
        for bad in [
            CircuitBreaker::failure_rate(0.0),
            CircuitBreaker::failure_rate(1.5),
            CircuitBreaker::failure_rate(0.5).min_calls(0),
            CircuitBreaker::failure_rate(0.5).open_for(Duration::ZERO),
            CircuitBreaker::failure_rate(0.5).half_open_calls(0),
            CircuitBreaker::failure_rate(0.5).sliding_window(0),
            CircuitBreaker::consecutive_failures(0),
        ] {
            let e = bad.build("dep").unwrap_err();
            assert!(e.to_string().contains("`dep`"), "{e}");
        }
    }

    #[test]
    fn default_classifier_ignores_4xx_but_not_429() {
        let c = FailureClassifier::default();
        let h = HeaderMap::new();
        let resp = |s: u16| CallResult::Response {
            status: StatusCode::from_u16(s).unwrap(),
            headers: &h,
        };
        assert!(!c.is_failure(&resp(404)));
        assert!(c.is_failure(&resp(429)));
        assert!(c.is_failure(&resp(503)));
        assert!(!c.is_failure(&resp(200)));
        assert!(c.is_failure(&CallResult::Error(ErrorType::Connect)));
        let mut g = HeaderMap::new();
        g.insert("grpc-status", "14".parse().unwrap());
        assert!(c.is_failure(&CallResult::Response {
            status: StatusCode::OK,
            headers: &g
        }));
        assert!(FailureClassifier::all_client_errors().is_failure(&resp(404)));
    }
}
