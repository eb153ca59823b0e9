//! Timeouts, budgeted retries with jitter, circuit breakers and bulkheads for reqwest,
//! tower and tonic clients; and protection for overloaded or broken servers.
//!
//! One [`ClientPolicy`] per dependency, built once, applied to any client:
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::{Bulkhead, CircuitBreaker, ClientPolicy, Retry};
//!
//! let inventory = ClientPolicy::builder("inventory")
//!     .timeout(Duration::from_millis(300))          // per attempt
//!     .deadline(Duration::from_secs(1))             // whole call, retries included
//!     .retry(Retry::exponential().max_attempts(3).budget(0.2))
//!     .circuit_breaker(CircuitBreaker::failure_rate(0.5).min_calls(20).open_for(Duration::from_secs(10)))
//!     .bulkhead(Bulkhead::new(64).max_wait(Duration::from_millis(50)))
//!     .build()
//!     .expect("valid policy");
//! // reqwest (feature `reqwest`): inventory.reqwest(reqwest::Client::new())
//! // tower / hyper-util / tonic:   ServiceBuilder::new().layer(inventory.layer()).service(client)
//! // readiness:                    inventory.readiness() -> Result<(), String>
//! # let _ = inventory;
//! ```
//!
//! Modules: [`policy`] (order and wiring), [`retry`], [`backoff`], [`budget`],
//! [`breaker`], [`bulkhead`], [`grpc_timeout`], [`tower`], `reqwest` (feature),
//! [`server`] (timeout, load shedding, concurrency limit, panics), [`error`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod clock;
pub mod error;
pub mod grpc_timeout;
pub mod policy;
#[cfg(feature = "reqwest")]
pub mod reqwest;
pub mod retry;
pub mod server;
mod throttle;
pub mod tower;

pub use breaker::{BreakerRegistry, CircuitBreaker, CircuitBreakerHandle, CircuitState, FailureClassifier};
pub use budget::RetryBudget;
pub use bulkhead::Bulkhead;
pub use error::{ConfigError, ResilienceError};
pub use policy::{ClientPolicy, ClientPolicyBuilder};
pub use retry::Retry;

#[cfg(test)]
mod names_pinned {
    //! Dashboards and alerts depend on these exact strings.

    #[test]
    fn local_metric_and_label_names_are_pinned() {
        use crate::retry::reason;
        assert_eq!(crate::server::SERVER_PANICS_TOTAL, "telltale_server_panics_total");
        assert_eq!(crate::server::SERVER_SHED_TOTAL, "telltale_server_shed_total");
        assert_eq!(crate::breaker::OVERFLOW_HOST, "_overflow");
        assert_eq!(
            [
                reason::CONNECT,
                reason::TRANSPORT,
                reason::TIMEOUT,
                reason::STATUS_429,
                reason::STATUS_502,
                reason::STATUS_503,
                reason::STATUS_504,
                reason::GRPC_UNAVAILABLE,
            ],
            [
                "connect",
                "transport",
                "timeout",
                "status_429",
                "status_502",
                "status_503",
                "status_504",
                "grpc_unavailable"
            ]
        );
        assert_eq!(
            [
                reason::BUDGET_EXHAUSTED,
                reason::NOT_IDEMPOTENT,
                reason::BODY_TOO_LARGE,
                reason::BODY_STREAMING,
                reason::MAX_ATTEMPTS,
                reason::DEADLINE,
                reason::RETRY_AFTER,
                reason::CIRCUIT_OPEN,
            ],
            [
                "budget_exhausted",
                "not_idempotent",
                "body_too_large",
                "body_streaming",
                "max_attempts",
                "deadline",
                "retry_after_too_long",
                "circuit_open"
            ]
        );
        let states: Vec<&str> = [
            crate::CircuitState::Closed,
            crate::CircuitState::Open,
            crate::CircuitState::HalfOpen,
            crate::CircuitState::ForcedOpen,
            crate::CircuitState::Disabled,
            crate::CircuitState::MetricsOnly,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(
            states,
            [
                "closed",
                "open",
                "half_open",
                "forced_open",
                "disabled",
                "metrics_only"
            ]
        );
    }
}
