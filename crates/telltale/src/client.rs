//! Outbound clients that explain themselves (feature `reqwest`).
//!
//! One builder per dependency gives a reqwest client whose calls carry the current
//! request id, open a client span and inject W3C trace context (once
//! [`Telemetry`](crate::Telemetry) is initialised), are measured as dependency RED metrics (`http_client_request_duration_seconds`
//! with `peer_service`), and go through the dependency's resilience policy: overall
//! deadline → budgeted retries → circuit breaker → per-attempt timeout.
//!
//! ```
//! use std::time::Duration;
//! use telltale::client;
//! use telltale::resilience::{CircuitBreaker, Retry};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let inventory = client::reqwest(reqwest::Client::new())
//!     .dependency("inventory")
//!     .timeout(Duration::from_millis(300))
//!     .retry(Retry::exponential().max_attempts(3).budget(0.2))
//!     .circuit_breaker(CircuitBreaker::failure_rate(0.5).min_calls(20).open_for(Duration::from_secs(10)))
//!     .build()?;
//!
//! // The breaker's state as a (non-critical) readiness check:
//! use telltale::health::{Health, ReadinessCheck as _};
//! let health = Health::builder().check("inventory", inventory.readiness_check().non_critical()).build()?;
//! # let _ = health;
//! // `inventory` derefs to reqwest_middleware::ClientWithMiddleware:
//! // inventory.get("http://inventory/stock/sku-1").send().await?;
//! # Ok(()) }
//! ```

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use reqwest_middleware::{ClientWithMiddleware, Middleware};
use telltale_health::CheckError;
use telltale_health::checks::{self, FnCheck};
use telltale_metrics::ClientMetrics;
use telltale_metrics::client::ClientMetricsMiddleware;
use telltale_request_id::RequestIdMiddleware;
use telltale_resilience::{Bulkhead, CircuitBreaker, ClientPolicy, Retry};

/// Starts a client for one dependency around `client`.
pub fn reqwest(client: reqwest::Client) -> ReqwestClientBuilder {
    ReqwestClientBuilder {
        client,
        dependency: None,
        timeout: None,
        deadline: None,
        retry: None,
        breaker: None,
        bulkhead: None,
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No dependency name.
    #[error(
        "the dependency has no name: call .dependency(\"inventory\") (it labels metrics, spans and logs)"
    )]
    MissingDependency,
    /// The resilience policy was rejected.
    #[error("{0}")]
    Policy(#[from] telltale_resilience::ConfigError),
}

/// Builder returned by [`reqwest()`].
#[derive(Debug)]
#[must_use]
pub struct ReqwestClientBuilder {
    client: reqwest::Client,
    dependency: Option<String>,
    timeout: Option<Duration>,
    deadline: Option<Duration>,
    retry: Option<Retry>,
    breaker: Option<CircuitBreaker>,
    bulkhead: Option<Bulkhead>,
}

impl ReqwestClientBuilder {
    /// The dependency's name: the `peer_service` label and span attribute. Required.
    pub fn dependency(mut self, name: impl Into<String>) -> Self {
        self.dependency = Some(name.into());
        self
    }

    /// Per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Overall deadline of one logical call, retries included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Retries (backoff with jitter, budget).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// A circuit breaker.
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// A concurrency limit with bounded wait.
    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.bulkhead = Some(bulkhead);
        self
    }

    /// Validates and builds the client.
    pub fn build(self) -> Result<DependencyClient, ClientError> {
        let name = self
            .dependency
            .filter(|n| !n.trim().is_empty())
            .ok_or(ClientError::MissingDependency)?;
        let mut policy = ClientPolicy::builder(&name);
        if let Some(t) = self.timeout {
            policy = policy.timeout(t);
        }
        if let Some(d) = self.deadline {
            policy = policy.deadline(d);
        }
        if let Some(r) = self.retry {
            policy = policy.retry(r);
        }
        if let Some(b) = self.breaker {
            policy = policy.circuit_breaker(b);
        }
        if let Some(b) = self.bulkhead {
            policy = policy.bulkhead(b);
        }
        let policy = policy.build()?;
        let mut outer: Vec<Arc<dyn Middleware>> = vec![Arc::new(RequestIdMiddleware::new())];
        if let Some(tracing) = crate::telemetry::global_tracing() {
            outer.push(Arc::new(tracing.reqwest_middleware(&name)));
        }
        outer.push(Arc::new(ClientMetricsMiddleware::new(
            ClientMetrics::for_dependency(name.as_str()),
        )));
        let client = policy.reqwest_with(self.client, outer);
        Ok(DependencyClient { client, policy })
    }
}

/// A reqwest client for one dependency. Derefs to `reqwest_middleware::ClientWithMiddleware`.
#[derive(Debug, Clone)]
pub struct DependencyClient {
    client: ClientWithMiddleware,
    policy: ClientPolicy,
}

impl DependencyClient {
    /// The dependency's resilience policy (breaker state, budget).
    pub fn policy(&self) -> &ClientPolicy {
        &self.policy
    }

    /// The underlying middleware client.
    pub fn inner(&self) -> &ClientWithMiddleware {
        &self.client
    }

    /// A readiness check failing while the dependency's circuit breaker refuses calls.
    /// Mark it `.non_critical()` unless the service is useless without the dependency.
    pub fn readiness_check(
        &self,
    ) -> FnCheck<impl Fn() -> std::future::Ready<Result<(), CheckError>> + Send + Sync + 'static> {
        let policy = self.policy.clone();
        checks::from_fn(move || std::future::ready(policy.readiness().map_err(CheckError::msg)))
    }
}

impl Deref for DependencyClient {
    type Target = ClientWithMiddleware;

    fn deref(&self) -> &ClientWithMiddleware {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_without_a_dependency_name_is_refused() {
        let err = reqwest(reqwest::Client::new()).build().unwrap_err();
        assert!(matches!(err, ClientError::MissingDependency));
        assert!(err.to_string().contains(".dependency(\"inventory\")"), "{err}");
    }

    #[test]
    fn nonsense_retry_settings_are_a_build_error() {
        let err = reqwest(reqwest::Client::new())
            .dependency("inventory")
            .retry(Retry::exponential().max_attempts(0))
            .build()
            .unwrap_err();
        assert!(matches!(err, ClientError::Policy(_)), "{err:?}");
    }

    #[test]
    fn the_readiness_check_follows_the_breaker() {
        use telltale_health::ReadinessCheck;
        let client = reqwest(reqwest::Client::new())
            .dependency("inventory")
            .circuit_breaker(CircuitBreaker::consecutive_failures(1))
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let check = client.readiness_check();
        assert!(rt.block_on(check.check()).is_ok());
        client.policy().circuit_breaker().expect("a breaker").force_open();
        let err = rt.block_on(check.check()).unwrap_err();
        assert!(!err.message().is_empty());
    }
}
