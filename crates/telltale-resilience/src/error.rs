//! The typed errors of an outbound call, and of configuration.
//!
//! Every failure the resilience stack produces (or passes through from the transport)
//! is a [`ResilienceError`] with an [`error_type`](ResilienceError::error_type) that
//! becomes the `error.type` attribute of the client span and the dependency metrics.
//!
//! ```
//! use std::time::Duration;
//! use telltale_core::outcome::ErrorType;
//! use telltale_resilience::ResilienceError;
//!
//! let e = ResilienceError::Timeout { dependency: "inventory".into(), after: Duration::from_millis(300) };
//! assert_eq!(e.error_type(), ErrorType::Timeout);
//! assert!(e.to_string().contains("inventory"));
//! ```

use std::sync::Arc;
use std::time::Duration;

use telltale_core::outcome::ErrorType;
use telltale_metrics::client::ClassifiedError;

/// A boxed, shareable error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an outbound call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResilienceError {
    /// One attempt took longer than the per-attempt timeout.
    Timeout {
        /// The dependency name.
        dependency: Arc<str>,
        /// The per-attempt timeout that expired.
        after: Duration,
    },
    /// The logical call (all attempts and back-off) ran past its overall deadline.
    DeadlineExceeded {
        /// The dependency name.
        dependency: Arc<str>,
        /// The overall deadline: the policy's, or the caller's own (a gRPC
        /// `grpc-timeout`) when that is shorter.
        deadline: Duration,
        /// Attempts started before the deadline expired.
        attempts: u32,
    },
    /// The inner client's own timeout expired (`reqwest::ClientBuilder::timeout`,
    /// tonic's `Endpoint::timeout`, a tower `Timeout` inside): a timeout like
    /// [`Timeout`](Self::Timeout), set outside the policy.
    ClientTimeout {
        /// The dependency name.
        dependency: Arc<str>,
        /// The client's timeout error.
        source: BoxError,
    },
    /// Could not connect (refused, DNS, TLS handshake).
    Connect {
        /// The dependency name.
        dependency: Arc<str>,
        /// The transport error.
        source: BoxError,
    },
    /// The circuit breaker is open: the call was not made.
    CircuitOpen {
        /// The dependency name (and host, for per-host breakers).
        dependency: Arc<str>,
        /// `open`, `half_open` (all trial calls taken) or `forced_open`.
        state: &'static str,
    },
    /// A retry was wanted but the dependency's retry budget is spent.
    BudgetExhausted {
        /// The dependency name.
        dependency: Arc<str>,
        /// The `error.type` of the last attempt.
        last: ErrorType,
    },
    /// The bulkhead (concurrency limit) was full for longer than its maximum wait.
    BulkheadFull {
        /// The dependency name.
        dependency: Arc<str>,
        /// The concurrency limit.
        max_concurrent: usize,
        /// How long the call waited for a slot.
        waited: Duration,
    },
    /// The connection failed after it was established (reset, broken pipe, protocol error).
    Transport {
        /// The dependency name.
        dependency: Arc<str>,
        /// The transport error.
        source: BoxError,
    },
    /// The request could not be built or sent for a reason that is not the dependency's
    /// (invalid request, middleware error).
    Other {
        /// The dependency name.
        dependency: Arc<str>,
        /// The underlying error.
        source: BoxError,
    },
}

impl std::fmt::Display for ResilienceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResilienceError::Timeout { dependency, after } => write!(
                f,
                "call to `{dependency}` timed out after {after:?} (per-attempt timeout); raise `.timeout(..)` if the dependency is legitimately this slow"
            ),
            ResilienceError::DeadlineExceeded {
                dependency,
                deadline,
                attempts,
            } => write!(
                f,
                "call to `{dependency}` ran past its overall deadline of {deadline:?} after {attempts} attempt(s); raise `.deadline(..)` or lower the retry count"
            ),
            ResilienceError::ClientTimeout { dependency, source } => write!(
                f,
                "call to `{dependency}` timed out in the HTTP/gRPC client (its own timeout, not the policy's): {source}"
            ),
            ResilienceError::Connect { dependency, source } => {
                write!(f, "could not connect to `{dependency}`: {source}")
            }
            ResilienceError::CircuitOpen { dependency, state } => write!(
                f,
                "circuit breaker for `{dependency}` is {state}: call not made (fails fast until the dependency recovers; see telltale_circuit_breaker_state)"
            ),
            ResilienceError::BudgetExhausted { dependency, last } => write!(
                f,
                "retry budget for `{dependency}` is exhausted after a `{last}` failure: the dependency is failing for many callers; not retried to avoid a retry storm"
            ),
            ResilienceError::BulkheadFull {
                dependency,
                max_concurrent,
                waited,
            } => write!(
                f,
                "bulkhead for `{dependency}` is full ({max_concurrent} calls in flight, waited {waited:?}); raise the bulkhead limit or its wait, or shed load upstream"
            ),
            ResilienceError::Transport { dependency, source } => {
                write!(f, "transport error calling `{dependency}`: {source}")
            }
            ResilienceError::Other { dependency, source } => {
                write!(f, "request to `{dependency}` failed: {source}")
            }
        }
    }
}

impl std::error::Error for ResilienceError {
    /// The transport error for `Connect`, `Transport` and `Other`. For the errors this
    /// crate makes itself (timeout, deadline, breaker, budget, bulkhead) the source is a
    /// `telltale_metrics::client::ClassifiedError` carrying the `error.type`, so the
    /// dependency-metrics layers (which cannot depend on this crate) label them right.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResilienceError::Connect { source, .. }
            | ResilienceError::ClientTimeout { source, .. }
            | ResilienceError::Transport { source, .. }
            | ResilienceError::Other { source, .. } => Some(source.as_ref()),
            _ => Some(classified(self.error_type())),
        }
    }
}

fn classified(kind: ErrorType) -> &'static ClassifiedError {
    use std::sync::LazyLock;
    static TIMEOUT: LazyLock<ClassifiedError> =
        LazyLock::new(|| ClassifiedError::new(ErrorType::Timeout, "the call took too long"));
    static CIRCUIT_OPEN: LazyLock<ClassifiedError> =
        LazyLock::new(|| ClassifiedError::new(ErrorType::CircuitOpen, "the call was not made"));
    static BUDGET: LazyLock<ClassifiedError> =
        LazyLock::new(|| ClassifiedError::new(ErrorType::BudgetExhausted, "the retry was not made"));
    static REJECTED: LazyLock<ClassifiedError> =
        LazyLock::new(|| ClassifiedError::new(ErrorType::Rejected, "the call was not made"));
    match kind {
        ErrorType::Timeout => &TIMEOUT,
        ErrorType::CircuitOpen => &CIRCUIT_OPEN,
        ErrorType::BudgetExhausted => &BUDGET,
        _ => &REJECTED,
    }
}

impl ResilienceError {
    /// The `error.type` value for spans and metrics.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ResilienceError::Timeout { .. }
            | ResilienceError::ClientTimeout { .. }
            | ResilienceError::DeadlineExceeded { .. } => ErrorType::Timeout,
            ResilienceError::Connect { .. } => ErrorType::Connect,
            ResilienceError::CircuitOpen { .. } => ErrorType::CircuitOpen,
            ResilienceError::BudgetExhausted { .. } => ErrorType::BudgetExhausted,
            ResilienceError::BulkheadFull { .. } => ErrorType::Rejected,
            ResilienceError::Transport { .. } => ErrorType::Transport,
            ResilienceError::Other { .. } => ErrorType::Other,
        }
    }

    /// The dependency the call was for.
    pub fn dependency(&self) -> &str {
        match self {
            ResilienceError::Timeout { dependency, .. }
            | ResilienceError::DeadlineExceeded { dependency, .. }
            | ResilienceError::Connect { dependency, .. }
            | ResilienceError::ClientTimeout { dependency, .. }
            | ResilienceError::CircuitOpen { dependency, .. }
            | ResilienceError::BudgetExhausted { dependency, .. }
            | ResilienceError::BulkheadFull { dependency, .. }
            | ResilienceError::Transport { dependency, .. }
            | ResilienceError::Other { dependency, .. } => dependency,
        }
    }

    /// Whether the call was refused locally (breaker, budget, bulkhead) without the
    /// dependency seeing it.
    pub fn is_rejected_locally(&self) -> bool {
        matches!(
            self,
            ResilienceError::CircuitOpen { .. } | ResilienceError::BulkheadFull { .. }
        )
    }

    /// Finds a `ResilienceError` in a `reqwest_middleware::Error`.
    #[cfg(feature = "reqwest")]
    pub fn from_reqwest_middleware(err: &reqwest_middleware::Error) -> Option<&ResilienceError> {
        match err {
            reqwest_middleware::Error::Middleware(e) => {
                e.chain().find_map(|e| e.downcast_ref::<ResilienceError>())
            }
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }

    /// Classifies a transport error from the inner client (reqwest, hyper-util,
    /// `std::io`) as [`Connect`](Self::Connect), [`ClientTimeout`](Self::ClientTimeout)
    /// or [`Transport`](Self::Transport).
    pub(crate) fn from_transport(dependency: &Arc<str>, err: BoxError) -> ResilienceError {
        let dependency = dependency.clone();
        // A request that could not even be built is the caller's bug, not the
        // dependency's: not retried, not a breaker failure.
        #[cfg(feature = "reqwest")]
        if err
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_builder)
        {
            return ResilienceError::Other {
                dependency,
                source: err,
            };
        }
        match classify_transport(&*err) {
            ErrorType::Connect => ResilienceError::Connect {
                dependency,
                source: err,
            },
            ErrorType::Timeout => ResilienceError::ClientTimeout {
                dependency,
                source: err,
            },
            _ => ResilienceError::Transport {
                dependency,
                source: err,
            },
        }
    }
}

/// Walks an error's source chain: connect failures are [`ErrorType::Connect`], the
/// client's own timeouts [`ErrorType::Timeout`] (as `telltale_metrics::client::
/// classify_error` labels them), anything else [`ErrorType::Transport`].
pub(crate) fn classify_transport(err: &(dyn std::error::Error + 'static)) -> ErrorType {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<tower::timeout::error::Elapsed>() {
            return ErrorType::Timeout;
        }
        #[cfg(feature = "reqwest")]
        if e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
        {
            return ErrorType::Timeout;
        }
        #[cfg(feature = "tonic")]
        if e.is::<tonic::TimeoutExpired>() {
            return ErrorType::Timeout;
        }
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return ErrorType::Timeout;
        }
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && h.is_connect()
        {
            return ErrorType::Connect;
        }
        #[cfg(feature = "reqwest")]
        if let Some(r) = e.downcast_ref::<reqwest::Error>()
            && r.is_connect()
        {
            return ErrorType::Connect;
        }
        #[cfg(feature = "tonic")]
        if let Some(t) = e.downcast_ref::<tonic::transport::Error>() {
            // tonic wraps hyper-util's connect errors; its Display says so.
            if t.to_string().contains("connect") {
                return ErrorType::Connect;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | NotConnected | HostUnreachable | NetworkUnreachable
            ) {
                return ErrorType::Connect;
            }
        }
        cur = e.source();
    }
    ErrorType::Transport
}

/// A configuration value that makes no sense, reported by `build()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid resilience configuration for `{dependency}`: {problem}")]
pub struct ConfigError {
    /// The dependency name.
    pub dependency: String,
    /// What is wrong and what to change.
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(dependency: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            dependency: dependency.to_owned(),
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_map_to_core_vocabulary() {
        let d: Arc<str> = "dep".into();
        let cases = [
            (
                ResilienceError::DeadlineExceeded {
                    dependency: d.clone(),
                    deadline: Duration::from_secs(1),
                    attempts: 2,
                },
                "timeout",
            ),
            (
                ResilienceError::CircuitOpen {
                    dependency: d.clone(),
                    state: "open",
                },
                "circuit_open",
            ),
            (
                ResilienceError::BudgetExhausted {
                    dependency: d.clone(),
                    last: ErrorType::Status("503"),
                },
                "budget_exhausted",
            ),
            (
                ResilienceError::BulkheadFull {
                    dependency: d.clone(),
                    max_concurrent: 4,
                    waited: Duration::ZERO,
                },
                "rejected",
            ),
        ];
        for (e, label) in cases {
            assert_eq!(e.error_type().as_str(), label);
            assert_eq!(e.dependency(), "dep");
            assert!(e.to_string().contains("`dep`"), "{e}");
        }
    }

    #[test]
    fn refused_io_error_is_a_connect_error() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_transport(&io), ErrorType::Connect);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify_transport(&reset), ErrorType::Transport);
    }
}
