//! Saturation gauges for capacity planning, sampled at scrape time: connection pools
//! and in-process queues.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use telltale_metrics::saturation::{pool, queue, PoolStats};
//! use telltale_metrics::PrometheusConfig;
//!
//! let prom = PrometheusConfig::new("svc").build().unwrap();
//! // With sqlx: `let p = pool.clone(); pool("main", move || PoolStats { used: p.size() as u64 - p.num_idle() as u64, idle: p.num_idle() as u64, max: Some(p.options().get_max_connections() as u64), ..Default::default() })`
//! prom.handle().register_collector(pool("main", || PoolStats { used: 7, idle: 3, pending: 2, max: Some(10) }));
//! let depth = Arc::new(AtomicUsize::new(5));
//! let d = depth.clone();
//! prom.handle().register_collector(queue("emails", move || d.load(Ordering::Relaxed) as u64, Some(100)));
//!
//! let text = prom.handle().render();
//! assert!(text.contains(r#"db_client_connections_usage{service="svc",pool_name="main",state="used"} 7"#));
//! assert!(text.contains(r#"db_client_connections_pending_requests{service="svc",pool_name="main"} 2"#));
//! assert!(text.contains(r#"telltale_queue_depth{service="svc",queue="emails"} 5"#));
//! ```
//!
//! Pool names follow the OpenTelemetry database conventions (`db.client.connections.*`);
//! PromQL for pool saturation: `db_client_connections_usage{state="used"} / db_client_connections_max`,
//! and any sustained `db_client_connections_pending_requests > 0` means callers queue for
//! connections.

use crate::collector::{Collector, Exposition, MetricKind};
use crate::names::labels::STATE;
use crate::names::saturation::*;

/// A pool's state at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections in use.
    pub used: u64,
    /// Idle connections.
    pub idle: u64,
    /// Callers waiting for a connection.
    pub pending: u64,
    /// The pool's maximum size, when known.
    pub max: Option<u64>,
}

/// A collector reading a pool's [`PoolStats`] from `read` at each scrape.
pub fn pool<F>(name: impl Into<String>, read: F) -> impl Collector
where
    F: Fn() -> PoolStats + Send + Sync + 'static,
{
    let name = name.into();
    move |out: &mut Exposition<'_>| {
        let s = read();
        let n = name.as_str();
        out.family(
            DB_CLIENT_CONNECTIONS_USAGE,
            MetricKind::Gauge,
            "Connections of the pool by state.",
        );
        out.sample(
            DB_CLIENT_CONNECTIONS_USAGE,
            &[(POOL_NAME, n), (STATE, STATE_USED)],
            s.used as f64,
        );
        out.sample(
            DB_CLIENT_CONNECTIONS_USAGE,
            &[(POOL_NAME, n), (STATE, STATE_IDLE)],
            s.idle as f64,
        );
        out.family(
            DB_CLIENT_CONNECTIONS_PENDING_REQUESTS,
            MetricKind::Gauge,
            "Callers waiting for a connection.",
        );
        out.sample(
            DB_CLIENT_CONNECTIONS_PENDING_REQUESTS,
            &[(POOL_NAME, n)],
            s.pending as f64,
        );
        if let Some(max) = s.max {
            out.family(
                DB_CLIENT_CONNECTIONS_MAX,
                MetricKind::Gauge,
                "Maximum connections of the pool.",
            );
            out.sample(DB_CLIENT_CONNECTIONS_MAX, &[(POOL_NAME, n)], max as f64);
        }
    }
}

/// A collector reading a queue's depth from `depth` at each scrape, with its capacity.
pub fn queue<F>(name: impl Into<String>, depth: F, capacity: Option<u64>) -> impl Collector
where
    F: Fn() -> u64 + Send + Sync + 'static,
{
    let name = name.into();
    move |out: &mut Exposition<'_>| {
        out.family(QUEUE_DEPTH, MetricKind::Gauge, "Items waiting in the queue.");
        out.sample(QUEUE_DEPTH, &[(QUEUE, &name)], depth() as f64);
        if let Some(c) = capacity {
            out.family(QUEUE_CAPACITY, MetricKind::Gauge, "Capacity of the queue.");
            out.sample(QUEUE_CAPACITY, &[(QUEUE, &name)], c as f64);
        }
    }
}
