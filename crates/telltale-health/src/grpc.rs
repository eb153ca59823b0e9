//! Feeding tonic-health's `HealthReporter` from the same registry (feature `tonic`).
//!
//! Two kinds of writers set the status: readiness runs (serving or not, from the
//! checks) and the start of a drain (not serving, for good). They are serialized, and
//! the status a writer sets is decided *while it holds the lock*, from the drain flag
//! as it is then: a run whose verdict was computed just before the drain began would
//! otherwise set SERVING after the drain had set NOT_SERVING, and keep the gRPC health
//! service answering SERVING (and open `Watch` streams showing SERVING) until the next
//! run, up to a refresh interval into the drain.

use tokio::sync::Mutex;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub(crate) struct GrpcReporter {
    reporter: HealthReporter,
    /// `""` (the whole server) first, then the named services.
    services: Vec<String>,
    /// What every service was last set to (`None`: not yet, or an update was cut off
    /// halfway). Held while the reporter is updated, so updates apply one at a time.
    published: Mutex<Option<bool>>,
}

impl GrpcReporter {
    pub(crate) fn new<I, N>(reporter: HealthReporter, services: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        let mut all = vec![String::new()];
        all.extend(services.into_iter().map(Into::into).filter(|s| !s.is_empty()));
        Self {
            reporter,
            services: all,
            published: Mutex::new(None),
        }
    }

    /// Sets every service to serving or not serving, as `serving` says when called
    /// under the lock; does nothing when that is what they already are.
    pub(crate) async fn publish(&self, serving: impl FnOnce() -> bool) {
        let mut published = self.published.lock().await;
        let serving = serving();
        if *published == Some(serving) {
            return;
        }
        // Should this future be dropped halfway, the next update must not be skipped.
        *published = None;
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for service in &self.services {
            self.reporter.set_service_status(service, status).await;
        }
        *published = Some(serving);
        tracing::info!(serving, "gRPC health status updated");
    }
}

#[cfg(test)]
impl GrpcReporter {
    /// Holds the lock, as an update under way does.
    pub(crate) async fn hold_for_test(&self) -> tokio::sync::MutexGuard<'_, Option<bool>> {
        self.published.lock().await
    }
}
