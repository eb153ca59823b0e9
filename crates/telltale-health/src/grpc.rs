//! Feeding tonic-health's `HealthReporter` from the same registry (feature `tonic`).

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub(crate) struct GrpcReporter {
    reporter: HealthReporter,
    /// `""` (the whole server) first, then the named services.
    services: Vec<String>,
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
        }
    }

    pub(crate) async fn set(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for service in &self.services {
            self.reporter.set_service_status(service, status).await;
        }
        tracing::info!(serving, "gRPC health status updated");
    }
}
