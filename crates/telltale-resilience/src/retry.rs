//! Retry policy: which outcomes are retried, how long to wait, and the shared budget.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::retry::Retry;
//!
//! let retry = Retry::exponential()
//!     .base(Duration::from_millis(25))
//!     .cap(Duration::from_secs(1))
//!     .max_attempts(3)
//!     .budget(0.2);
//! assert!(retry.validate("inventory").is_ok());
//! assert!(Retry::exponential().max_attempts(0).validate("inventory").is_err());
//! ```
//!
//! # What is retried
//!
//! - connect errors (the request never left, so even a `POST` is safe to resend);
//! - for idempotent methods (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`, `TRACE`), or any
//!   request carrying an `Idempotency-Key`, or when [`Retry::retry_non_idempotent`] is
//!   set: 502, 503, 504, 429, gRPC `UNAVAILABLE`, per-attempt timeouts and transport
//!   errors (reset, broken pipe);
//! - so a gRPC call (always a `POST`) is retried on `UNAVAILABLE` only when it carries
//!   `idempotency-key` metadata or the policy is for idempotent calls
//!   ([`Retry::retry_non_idempotent`], e.g. a read-only service). The gRPC status codes
//!   guide says of `UNAVAILABLE` that it is "not always safe to retry non-idempotent
//!   operations": a proxy may answer it after forwarding the call. gRPC's own retry
//!   policy (gRFC A6) likewise retries a status only for methods configured to;
//! - `Retry-After` (seconds or HTTP-date) on 429 and 503 is honoured: the next attempt
//!   waits at least that long; a `Retry-After` longer than [`Retry::retry_after_cap`]
//!   means giving up now rather than hammering the dependency early.
//!
//! Request bodies are buffered for replay up to [`Retry::max_replay_body`] bytes
//! (64 KiB by default). A larger or streaming body is sent once and never retried,
//! and that is counted (`reason="body_too_large"` / `"body_streaming"`): middleware that
//! silently retries with an empty body is a well-known bug this avoids.
//!
//! Every decision is a `tracing` event on the current (client) span and a counter:
//! `telltale_client_retries_total{peer_service, reason}` when retrying,
//! `telltale_client_retries_skipped_total{peer_service, reason}` when not.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode};
use telltale_core::headers::RETRY_AFTER;
use telltale_core::outcome::{ErrorType, GrpcCode};

use crate::backoff::{Backoff, Jitter};
use crate::error::{ConfigError, ResilienceError};

/// Reason label values of the retry counters (a closed set).
pub mod reason {
    /// A connect error.
    pub const CONNECT: &str = "connect";
    /// A transport error after connecting.
    pub const TRANSPORT: &str = "transport";
    /// The per-attempt timeout expired.
    pub const TIMEOUT: &str = "timeout";
    /// 429 Too Many Requests.
    pub const STATUS_429: &str = "status_429";
    /// 502 Bad Gateway.
    pub const STATUS_502: &str = "status_502";
    /// 503 Service Unavailable.
    pub const STATUS_503: &str = "status_503";
    /// 504 Gateway Timeout.
    pub const STATUS_504: &str = "status_504";
    /// gRPC `UNAVAILABLE`.
    pub const GRPC_UNAVAILABLE: &str = "grpc_unavailable";

    /// Skipped: the retry budget is spent.
    pub const BUDGET_EXHAUSTED: &str = "budget_exhausted";
    /// Skipped: the method is not idempotent and nothing said it is safe.
    pub const NOT_IDEMPOTENT: &str = "not_idempotent";
    /// Skipped: the body was larger than the replay buffer.
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// Skipped: the body was streaming and was not fully read, so it cannot be replayed.
    pub const BODY_STREAMING: &str = "body_streaming";
    /// Skipped: the maximum number of attempts was reached.
    pub const MAX_ATTEMPTS: &str = "max_attempts";
    /// Skipped: the back-off would run past the deadline or the maximum total time.
    pub const DEADLINE: &str = "deadline";
    /// Skipped: `Retry-After` asked for a longer wait than the cap.
    pub const RETRY_AFTER: &str = "retry_after_too_long";
    /// Skipped: the circuit breaker is open (the failed attempt may have opened it), so
    /// the retry would be refused: the caller gets the attempt's own answer instead.
    pub const CIRCUIT_OPEN: &str = "circuit_open";
}

/// Retry configuration (a builder).
///
/// | setting | default |
/// |---|---|
/// | back-off | exponential, full jitter, base 50 ms, cap 2 s |
/// | max attempts | 3 (the first + 2 retries) |
/// | max total time | none (use the policy's deadline) |
/// | budget | 20 % of requests + 10 retries/s, over 10 s |
/// | non-idempotent methods | not retried |
/// | replay buffer | 64 KiB |
/// | `Retry-After` cap | 10 s |
/// | retry per-attempt timeouts | yes |
#[derive(Debug, Clone)]
pub struct Retry {
    pub(crate) backoff: Backoff,
    pub(crate) max_attempts: u32,
    pub(crate) max_total: Option<Duration>,
    pub(crate) budget: Option<(f64, u32, Duration)>,
    pub(crate) non_idempotent: bool,
    pub(crate) max_replay_body: usize,
    pub(crate) retry_after_cap: Duration,
    pub(crate) on_timeout: bool,
}

impl Retry {
    /// Exponential back-off with full jitter.
    pub fn exponential() -> Self {
        Retry {
            backoff: Backoff::full_jitter(Duration::from_millis(50), Duration::from_secs(2)),
            max_attempts: 3,
            max_total: None,
            budget: Some((0.2, 10, Duration::from_secs(10))),
            non_idempotent: false,
            max_replay_body: 64 * 1024,
            retry_after_cap: Duration::from_secs(10),
            on_timeout: true,
        }
    }

    /// Decorrelated jitter.
    pub fn decorrelated() -> Self {
        let mut r = Self::exponential();
        r.backoff.jitter = Jitter::Decorrelated;
        r
    }

    /// The back-off base (default 50 ms).
    pub fn base(mut self, base: Duration) -> Self {
        self.backoff.base = base;
        self
    }

    /// The longest back-off (default 2 s).
    pub fn cap(mut self, cap: Duration) -> Self {
        self.backoff.cap = cap;
        self
    }

    /// Replace the jitter formula.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.backoff.jitter = jitter;
        self
    }

    /// Attempts in total, the first included (default 3).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// No retry starts after this much time since the call began.
    pub fn max_total_time(mut self, d: Duration) -> Self {
        self.max_total = Some(d);
        self
    }

    /// Retry budget ratio: retries allowed per request (0.0..=1.0; default 0.2).
    pub fn budget(mut self, ratio: f64) -> Self {
        let (_, floor, ttl) = self.budget.unwrap_or((0.2, 10, Duration::from_secs(10)));
        self.budget = Some((ratio, floor, ttl));
        self
    }

    /// Retry budget floor (retries per second always allowed; default 10) and window
    /// (1 s to 60 s; default 10 s).
    pub fn budget_floor(mut self, min_per_sec: u32, window: Duration) -> Self {
        let (ratio, _, _) = self.budget.unwrap_or((0.2, 10, Duration::from_secs(10)));
        self.budget = Some((ratio, min_per_sec, window));
        self
    }

    /// No retry budget (not recommended: retries can then multiply an outage).
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self
    }

    /// Retry non-idempotent methods (`POST`, `PATCH`) too.
    pub fn retry_non_idempotent(mut self) -> Self {
        self.non_idempotent = true;
        self
    }

    /// The largest request body kept for replay (default 64 KiB).
    pub fn max_replay_body(mut self, bytes: usize) -> Self {
        self.max_replay_body = bytes;
        self
    }

    /// The longest `Retry-After` honoured (default 10 s); longer means give up.
    pub fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = cap;
        self
    }

    /// Whether a per-attempt timeout, the policy's or the inner client's own, is retried
    /// (default yes, for idempotent requests).
    pub fn retry_on_timeout(mut self, yes: bool) -> Self {
        self.on_timeout = yes;
        self
    }

    /// Checks the configuration.
    pub fn validate(&self, dependency: &str) -> Result<(), ConfigError> {
        let err = |p: String| Err(ConfigError::new(dependency, p));
        if self.max_attempts == 0 {
            return err("retry max attempts must be at least 1 (1 = no retries)".into());
        }
        if self.max_attempts > 100 {
            return err(format!(
                "retry max attempts of {} is over the limit of 100",
                self.max_attempts
            ));
        }
        if self.backoff.base.is_zero() {
            return err("retry back-off base must be greater than zero".into());
        }
        if self.backoff.cap < self.backoff.base {
            return err(format!(
                "retry back-off cap ({:?}) must not be shorter than its base ({:?})",
                self.backoff.cap, self.backoff.base
            ));
        }
        if self.max_total.is_some_and(|d| d.is_zero()) {
            return err("retry max total time must be greater than zero".into());
        }
        if let Some((ratio, floor, ttl)) = self.budget {
            crate::budget::RetryBudget::new(ratio, floor, ttl)
                .map_err(|p| ConfigError::new(dependency, p))?;
        }
        Ok(())
    }

    /// Why an outcome may be retried (`None`: it is not retryable at all), and the
    /// `Retry-After` it asked for.
    pub(crate) fn retryable(
        &self,
        status_headers: Result<(StatusCode, &HeaderMap), &ResilienceError>,
    ) -> Option<(&'static str, Option<Duration>)> {
        match status_headers {
            Ok((status, headers)) => {
                let reason = match status.as_u16() {
                    429 => reason::STATUS_429,
                    502 => reason::STATUS_502,
                    503 => reason::STATUS_503,
                    504 => reason::STATUS_504,
                    _ if GrpcCode::from_headers(headers) == Some(GrpcCode::Unavailable) => {
                        reason::GRPC_UNAVAILABLE
                    }
                    _ => return None,
                };
                let after = headers
                    .get(RETRY_AFTER)
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                Some((reason, after))
            }
            Err(e) => match e {
                ResilienceError::Connect { .. } => Some((reason::CONNECT, None)),
                ResilienceError::Transport { .. } => Some((reason::TRANSPORT, None)),
                ResilienceError::Timeout { .. } | ResilienceError::ClientTimeout { .. }
                    if self.on_timeout =>
                {
                    Some((reason::TIMEOUT, None))
                }
                _ => None,
            },
        }
    }
}

impl Default for Retry {
    fn default() -> Self {
        Self::exponential()
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (relative to `now`). A date in
/// the past is zero; a malformed value is `None` (ignored). Seconds too many for a `u64`
/// are `u64::MAX` seconds (over any cap), not malformed: a server asking for that long
/// must not be retried at once.
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let s = value.to_str().ok()?.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(s.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `error.type` of an attempt's result.
pub(crate) fn result_error_type(r: Result<(StatusCode, &HeaderMap), &ResilienceError>) -> ErrorType {
    match r {
        Ok((status, headers)) => match GrpcCode::from_headers(headers) {
            Some(code) if code != GrpcCode::Ok => ErrorType::Grpc(code),
            _ => telltale_core::outcome::client_http(status)
                .error_type()
                .unwrap_or(ErrorType::Other),
        },
        Err(e) => e.error_type(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_retry_after(&v("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(&v("Sun, 06 Nov 1994 08:49:47 GMT"), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after(&v("Sun, 06 Nov 1994 08:49:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&v("soon"), now), None);
        assert_eq!(parse_retry_after(&v("-1"), now), None);
        assert_eq!(parse_retry_after(&v(""), now), None);
        // Too many seconds for a u64: as long as can be, not "absent".
        assert_eq!(
            parse_retry_after(&v("99999999999999999999"), now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn only_transient_outcomes_are_retryable() {
        let r = Retry::exponential();
        let h = HeaderMap::new();
        for (code, want) in [
            (200, None),
            (404, None),
            (500, None),
            (502, Some("status_502")),
            (503, Some("status_503")),
            (504, Some("status_504")),
            (429, Some("status_429")),
        ] {
            let got = r
                .retryable(Ok((StatusCode::from_u16(code).unwrap(), &h)))
                .map(|x| x.0);
            assert_eq!(got, want, "{code}");
        }
        let mut g = HeaderMap::new();
        g.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(
            r.retryable(Ok((StatusCode::OK, &g))).map(|x| x.0),
            Some("grpc_unavailable")
        );
        g.insert("grpc-status", "13".parse().unwrap());
        assert_eq!(r.retryable(Ok((StatusCode::OK, &g))), None);
        let open = ResilienceError::CircuitOpen {
            dependency: "d".into(),
            state: "open",
        };
        assert_eq!(r.retryable(Err(&open)), None);
    }

    #[test]
    fn misconfiguration_is_an_error() {
        for bad in [
            Retry::exponential().max_attempts(0),
            Retry::exponential().budget(1.5),
            Retry::exponential().budget(-0.5),
            Retry::exponential().base(Duration::ZERO),
            Retry::exponential()
                .base(Duration::from_secs(2))
                .cap(Duration::from_secs(1)),
            Retry::exponential().budget_floor(1, Duration::ZERO),
        ] {
            assert!(bad.validate("dep").is_err(), "{bad:?}");
        }
    }
}
