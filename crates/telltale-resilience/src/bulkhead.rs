//! Bulkhead: a per-dependency concurrency limit with a bounded wait.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::bulkhead::Bulkhead;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let bulkhead = Bulkhead::new(1).max_wait(Duration::from_millis(10)).build("inventory").unwrap();
//! let slot = bulkhead.acquire().await.unwrap();
//! assert!(bulkhead.acquire().await.is_err()); // full: rejected after 10 ms
//! drop(slot);
//! assert!(bulkhead.acquire().await.is_ok());
//! # }
//! ```
//!
//! A tokio `Semaphore` with a timeout on acquiring, rather than tower's
//! `ConcurrencyLimit`: the limit must sit *inside* the retry loop (each attempt takes a
//! slot, back-off sleeps hold none), and a full bulkhead must be a typed
//! [`ResilienceError::BulkheadFull`] after a bounded wait, where `ConcurrencyLimit`
//! waits forever in `poll_ready` and `LoadShed` does not wait at all.
//!
//! Every rejection is counted (`telltale_bulkhead_rejected_total{peer_service}`); the
//! `bulkhead full` WARN line is written at most once a second per bulkhead, with
//! `suppressed`, the rejections not logged since the previous line.

use std::sync::Arc;
use std::time::Duration;

use telltale_metrics::names::{client as names, labels};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ConfigError, ResilienceError};
use crate::throttle::LogThrottle;

/// Bulkhead configuration.
#[derive(Debug, Clone, Copy)]
pub struct Bulkhead {
    max_concurrent: usize,
    max_wait: Duration,
}

impl Bulkhead {
    /// At most `max_concurrent` calls in flight; by default a call waits up to 0 s
    /// (rejected at once) for a slot.
    pub const fn new(max_concurrent: usize) -> Self {
        Bulkhead {
            max_concurrent,
            max_wait: Duration::ZERO,
        }
    }

    /// How long a call may wait for a slot before it is rejected.
    pub const fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Builds the shared bulkhead.
    pub fn build(self, dependency: &str) -> Result<BulkheadHandle, ConfigError> {
        if self.max_concurrent == 0 || self.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(ConfigError::new(
                dependency,
                format!(
                    "bulkhead limit must be between 1 and {}, got {}",
                    Semaphore::MAX_PERMITS,
                    self.max_concurrent
                ),
            ));
        }
        Ok(BulkheadHandle {
            semaphore: Arc::new(Semaphore::new(self.max_concurrent)),
            config: self,
            dependency: dependency.into(),
            rejected: metrics::counter!(names::BULKHEAD_REJECTED_TOTAL, labels::PEER_SERVICE => dependency.to_owned()),
            rejected_log: Arc::new(LogThrottle::new()),
        })
    }
}

/// A built bulkhead; cloning shares the slots.
#[derive(Debug, Clone)]
pub struct BulkheadHandle {
    semaphore: Arc<Semaphore>,
    config: Bulkhead,
    dependency: Arc<str>,
    rejected: metrics::Counter,
    /// One `bulkhead full` line a second at most (see `throttle`).
    rejected_log: Arc<LogThrottle>,
}

impl BulkheadHandle {
    /// Takes a slot, waiting at most the configured wait (and never past `limit`).
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, ResilienceError> {
        self.acquire_within(None).await
    }

    pub(crate) async fn acquire_within(
        &self,
        limit: Option<Duration>,
    ) -> Result<OwnedSemaphorePermit, ResilienceError> {
        if let Ok(p) = self.semaphore.clone().try_acquire_owned() {
            return Ok(p);
        }
        let wait = limit.map_or(self.config.max_wait, |l| l.min(self.config.max_wait));
        if !wait.is_zero()
            && let Ok(Ok(p)) = tokio::time::timeout(wait, self.semaphore.clone().acquire_owned()).await
        {
            return Ok(p);
        }
        self.rejected.increment(1);
        if let Some(suppressed) = self.rejected_log.admit() {
            tracing::warn!(
                peer.service = %self.dependency,
                max_concurrent = self.config.max_concurrent,
                suppressed,
                "bulkhead full: call rejected (at most one line a second; `suppressed` were not logged)"
            );
        }
        Err(ResilienceError::BulkheadFull {
            dependency: self.dependency.clone(),
            max_concurrent: self.config.max_concurrent,
            waited: wait,
        })
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}
