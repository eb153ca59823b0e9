//! The fulfilment worker: takes the jobs `POST /orders` enqueued (an outbox table in the
//! same database) and fulfils the orders, each run instrumented by `telltale::job`.
//!
//! Runs inside orders-api by default (`WORKER=embedded`, so `cargo run -p orders-api`
//! shows the whole path with no set-up), or as its own process with `cargo run -p worker`
//! against a shared Postgres (`WORKER=off` on the API then).
//!
//! Every run continues the trace of the request that placed the order (a consumer span
//! `process fulfil_order` under `POST /orders`), logs with that request's `request_id`, and
//! is counted in `messaging_process_duration_seconds{messaging_destination_name="fulfil_order"}`;
//! `telltale_job_queue_wait_seconds` shows how long jobs waited and
//! `telltale_queue_depth{queue="fulfil_order"}` how many are waiting.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use telltale::Telemetry;
use telltale::job::{Job, JobContext};
use tokio::sync::watch;

use crate::store::{ClaimedJob, Fulfilled, Store};

/// The queue (and `messaging.destination.name`) of fulfilment jobs.
pub const QUEUE: &str = "fulfil_order";

/// Runs a job gets before it is marked failed.
pub const MAX_ATTEMPTS: i64 = 3;

/// Pause before the second run of a failed job; doubled before each further run.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often the `telltale_queue_depth` gauge is refreshed.
const DEPTH_EVERY: Duration = Duration::from_secs(1);

/// A job running longer than this is taken to have lost its worker and is run again.
pub const LEASE: Duration = Duration::from_secs(60);

/// Why a fulfilment run failed.
#[derive(Debug)]
pub enum FulfilError {
    /// The job names an order that does not exist.
    UnknownOrder(String),
    /// The database failed.
    Database(sqlx::Error),
}

impl fmt::Display for FulfilError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FulfilError::UnknownOrder(id) => write!(f, "no order {id:?}"),
            FulfilError::Database(e) => write!(
                f,
                "database: {}",
                telltale::health::redact::redact_credentials(&e.to_string())
            ),
        }
    }
}

impl FulfilError {
    /// The `error.type` of this failure (a fixed word: it is a metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            FulfilError::UnknownOrder(_) => "unknown_order",
            FulfilError::Database(_) => "database",
        }
    }
}

/// The fulfilment worker.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    job: Job,
    idle_poll: Duration,
    depth: Arc<AtomicU64>,
}

impl Worker {
    /// A worker on `store`, instrumented through `telemetry`; registers the
    /// `telltale_queue_depth{queue="fulfil_order"}` gauge on its `/metrics`.
    pub fn new(store: Store, telemetry: &Telemetry) -> Self {
        let system = match store {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgresql",
        };
        let depth = Arc::new(AtomicU64::new(0));
        if let Some(handle) = telemetry.metrics_handle() {
            let d = depth.clone();
            handle.register_collector(telltale::metrics::saturation::queue(
                QUEUE,
                move || d.load(Ordering::Relaxed),
                None,
            ));
        }
        Worker {
            store,
            job: telemetry.job(QUEUE).system(system),
            idle_poll: Duration::from_millis(200),
            depth,
        }
    }

    /// How long to wait before looking again when the queue is empty (default 200 ms).
    pub fn idle_poll(mut self, every: Duration) -> Self {
        self.idle_poll = every;
        self
    }

    /// Takes and runs one job; `Ok(false)` when no job was due. A failed run is put back
    /// in the queue, due after [`RETRY_AFTER`] doubled per earlier run (or marked failed
    /// after [`MAX_ATTEMPTS`]); the error is in the
    /// job's span, metrics and log line, not returned. `Err` is a database error while
    /// taking or settling the job.
    pub async fn run_once(&self) -> Result<bool, sqlx::Error> {
        let now = unix_ms(SystemTime::now());
        let stale = now - LEASE.as_millis() as i64;
        let Some(claimed) = self.store.claim_job(QUEUE, now, stale).await? else {
            return Ok(false);
        };
        let cx = JobContext::decode(&claimed.context);
        let outcome = self
            .job
            .run_classified(&cx, self.fulfil(&claimed), FulfilError::kind)
            .await;
        match outcome {
            Ok(()) => self.store.finish_job(&claimed.id).await?,
            Err(_) => {
                let backoff = RETRY_AFTER.saturating_mul(1 << (claimed.attempts - 1).clamp(0, 10));
                let due = unix_ms(SystemTime::now()) + backoff.as_millis() as i64;
                self.store.release_job(&claimed.id, MAX_ATTEMPTS, due).await?
            }
        }
        Ok(true)
    }

    async fn fulfil(&self, job: &ClaimedJob) -> Result<(), FulfilError> {
        match self.store.fulfil(&job.order_id).await {
            Ok(Fulfilled::Now) => {
                tracing::info!(order_id = %job.order_id, attempt = job.attempts, "order fulfilled");
                Ok(())
            }
            Ok(Fulfilled::Already) => {
                tracing::info!(order_id = %job.order_id, attempt = job.attempts, "order was already fulfilled");
                Ok(())
            }
            Ok(Fulfilled::Missing) => Err(FulfilError::UnknownOrder(job.order_id.clone())),
            Err(e) => Err(FulfilError::Database(e)),
        }
    }

    /// Runs jobs until `stop` turns `true` (or its sender is dropped). A job in progress
    /// is finished first; with nothing to do it looks again every
    /// [`idle_poll`](Self::idle_poll). While the database is unreachable it backs off
    /// (doubling the pause up to 5 s) and logs once when it loses the queue and once when
    /// it is back, not every attempt.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(queue = QUEUE, "worker started");
        let mut failing: u32 = 0;
        // The depth gauge is refreshed at most once a second (a COUNT query), not per job.
        let mut depth_read: Option<Instant> = None;
        while !*stop.borrow() {
            if depth_read.is_none_or(|at| at.elapsed() >= DEPTH_EVERY)
                && let Ok(n) = self.store.queued_jobs(QUEUE).await
            {
                self.depth.store(n.max(0) as u64, Ordering::Relaxed);
                depth_read = Some(Instant::now());
            }
            let result = self.run_once().await;
            let pause = match result {
                Ok(worked) => {
                    if failing > 0 {
                        tracing::info!(queue = QUEUE, "worker reached the job queue again");
                        failing = 0;
                    }
                    if worked {
                        continue;
                    }
                    self.idle_poll
                }
                Err(e) => {
                    if failing == 0 {
                        tracing::warn!(
                            queue = QUEUE,
                            error = %telltale::health::redact::redact_credentials(&e.to_string()),
                            "worker cannot reach the job queue; retrying"
                        );
                    }
                    failing = failing.saturating_add(1);
                    // The tables may not exist yet (the database was down at start).
                    let _ = self.store.migrate().await;
                    self.idle_poll
                        .saturating_mul(1 << failing.min(5))
                        .min(Duration::from_secs(5))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                // The sender gone: nobody can stop this worker any more, so stop now.
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
        tracing::info!(queue = QUEUE, "worker stopped");
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
