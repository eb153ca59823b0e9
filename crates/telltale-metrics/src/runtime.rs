//! tokio runtime metrics sampled at scrape time (feature `tokio-runtime`).
//!
//! ```
//! use telltale_metrics::{runtime::RuntimeCollector, PrometheusConfig};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
//! let prom = PrometheusConfig::new("svc").build().unwrap();
//! prom.handle().register_collector(RuntimeCollector::current());
//! assert!(prom.handle().render().contains("tokio_workers{service=\"svc\"} 2\n"));
//! # }
//! ```
//!
//! From tokio's stable `RuntimeMetrics` API (no `tokio_unstable` needed):
//! `tokio_workers`, `tokio_alive_tasks`, `tokio_global_queue_depth` (tasks waiting for a
//! worker: a growing queue means the runtime is saturated) and
//! `tokio_worker_busy_seconds_total` (summed over workers; on 64-bit targets). Busy
//! ratio in PromQL: `rate(tokio_worker_busy_seconds_total[1m]) / tokio_workers`.

use tokio::runtime::Handle;

use crate::collector::{Collector, Exposition, MetricKind};
use crate::names::meta;

/// Collects one runtime's metrics; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RuntimeCollector {
    handle: Handle,
}

impl RuntimeCollector {
    /// The collector for the runtime `handle` belongs to.
    pub fn new(handle: Handle) -> Self {
        RuntimeCollector { handle }
    }

    /// The collector for the current runtime. Panics outside a runtime, like
    /// `Handle::current`; use [`new`](Self::new) with `Handle::try_current()` to avoid it.
    pub fn current() -> Self {
        RuntimeCollector::new(Handle::current())
    }
}

impl Collector for RuntimeCollector {
    fn collect(&self, out: &mut Exposition<'_>) {
        let m = self.handle.metrics();
        out.family(
            meta::TOKIO_WORKERS,
            MetricKind::Gauge,
            "tokio runtime worker threads.",
        );
        out.sample(meta::TOKIO_WORKERS, &[], m.num_workers() as f64);
        out.family(
            meta::TOKIO_ALIVE_TASKS,
            MetricKind::Gauge,
            "Alive tasks in the tokio runtime.",
        );
        out.sample(meta::TOKIO_ALIVE_TASKS, &[], m.num_alive_tasks() as f64);
        out.family(
            meta::TOKIO_GLOBAL_QUEUE_DEPTH,
            MetricKind::Gauge,
            "Tasks waiting in the tokio runtime's global queue.",
        );
        out.sample(meta::TOKIO_GLOBAL_QUEUE_DEPTH, &[], m.global_queue_depth() as f64);
        #[cfg(target_has_atomic = "64")]
        {
            let busy: f64 = (0..m.num_workers())
                .map(|w| m.worker_total_busy_duration(w).as_secs_f64())
                .sum();
            out.family(
                meta::TOKIO_WORKER_BUSY_SECONDS_TOTAL,
                MetricKind::Counter,
                "Time tokio workers spent busy, summed over workers, in seconds.",
            );
            out.sample(meta::TOKIO_WORKER_BUSY_SECONDS_TOTAL, &[], busy);
        }
    }
}
