//! Background jobs that explain themselves: what [`Telemetry::server_layer`] does for a
//! request, [`Job::run`] does for one run of a job.
//!
//! ```no_run
//! use telltale::job::JobContext;
//!
//! # async fn enqueue(_: &str) {}
//! # async fn dequeue() -> String { String::new() }
//! # async fn fulfil() -> Result<(), std::io::Error> { Ok(()) }
//! # async fn demo(telemetry: telltale::Telemetry) -> Result<(), std::io::Error> {
//! // In the request handler that enqueues the job: store the context with it.
//! enqueue(&JobContext::current().encode()).await;
//!
//! // In the worker, once per queue:
//! let job = telemetry.job("fulfil_order").system("postgresql");
//! // For each job taken from the queue:
//! let stored = dequeue().await;
//! job.run(&JobContext::decode(&stored), fulfil()).await?;
//! # Ok(()) }
//! ```
//!
//! Each run gets:
//!
//! - **a consumer span** `process {queue}` whose parent is the span that enqueued the job
//!   (one trace from the request to the work it caused; see
//!   [`telltale_trace::job`]); calls the job makes are its children;
//! - **the enqueuing request's id** as the current request id
//!   ([`current_request_id`](crate::current_request_id)), so it is in every log line and
//!   propagated on outbound calls, as inside the request;
//! - **RED metrics** ([`telltale_metrics::job`]): `messaging_process_duration_seconds`
//!   by queue, with `error_type` on failures, and `telltale_job_queue_wait_seconds`
//!   (enqueue to start);
//! - **one completion log line**, target [`LOG_TARGET`], like the access log:
//!   `job`, `outcome` (`ok` or `error`), `error_type`, `duration_ms`, `queue_wait_ms`,
//!   and the `trace_id`, `span_id`, `request_id` every line carries. INFO for success,
//!   ERROR for failure.
//!
//! A run that returns `Err(e)` is a failure with `error.type = error` and `e`'s
//! `Display` as the description; [`Job::run_classified`] lets the caller name the kind.
//! A run that panics is recorded (`error.type = panic`) and the panic continues; a run
//! whose future is dropped before it completes (shutdown, a timeout around it) is
//! recorded as `cancelled`.

use std::fmt;
use std::future::Future;
use std::time::{Instant, SystemTime};

use telltale_metrics::JobMetrics;
use telltale_trace::job::{JobSpan, JobTrace};

pub use telltale_trace::job::JobContext;

use crate::Telemetry;

/// `tracing` target of the completion line of each run.
pub const LOG_TARGET: &str = "telltale::job";

impl Telemetry {
    /// Instrumentation for jobs from `queue` (see [`crate::job`]). Make it once per queue
    /// and reuse it: it holds the queue's metric handles. Queue names are a metric label:
    /// keep them fixed (past [`MAX_QUEUES`](telltale_metrics::job::MAX_QUEUES) per process,
    /// new names are recorded as `_OTHER`).
    pub fn job(&self, queue: &str) -> Job {
        Job {
            trace: self.tracing().job(queue),
            metrics: JobMetrics::new(queue),
        }
    }
}

/// Traces, metrics and logs for the runs of one queue's jobs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Job {
    trace: JobTrace,
    metrics: JobMetrics,
}

impl Job {
    /// Sets `messaging.system` on spans and metrics (default `telltale`): what carries the
    /// jobs, e.g. `postgresql` for a table used as a queue, `redis`, `kafka`.
    pub fn system(self, system: &'static str) -> Self {
        Job {
            trace: self.trace.system(system),
            metrics: self.metrics.system(system),
        }
    }

    /// Records into `recorder` instead of the global metrics recorder.
    pub fn recorder(self, recorder: telltale_metrics::RecorderRef) -> Self {
        Job {
            trace: self.trace,
            metrics: self.metrics.recorder(recorder),
        }
    }

    /// The queue name.
    pub fn queue(&self) -> &str {
        self.trace.queue()
    }

    /// Runs one job enqueued with `cx`; `Err` is a failure with `error.type = error`.
    pub async fn run<T, E, F>(&self, cx: &JobContext, job: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        self.run_classified(cx, job, |_| "error").await
    }

    /// As [`run`](Self::run), with `classify` naming each failure's `error.type` (a few
    /// fixed words: it becomes a metric label; see
    /// [`MAX_ERROR_TYPES`](telltale_metrics::job::MAX_ERROR_TYPES)).
    pub async fn run_classified<T, E, F>(
        &self,
        cx: &JobContext,
        job: F,
        classify: impl FnOnce(&E) -> &'static str,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let waited = cx.waited(SystemTime::now());
        if let Some(w) = waited {
            self.metrics.record_wait(w);
        }
        let mut run = Run {
            span: Some(self.trace.start(cx)),
            metrics: &self.metrics,
            started: Instant::now(),
            waited,
        };
        let scoped = run.span().scope(job);
        let out = match cx.request_id() {
            Some(id) => crate::with_request_id(id, scoped).await,
            None => scoped.await,
        };
        match &out {
            Ok(_) => run.end(None),
            Err(e) => run.end(Some((classify(e), e.to_string()))),
        }
        out
    }
}

/// One run in progress; records its end exactly once, also when dropped early.
struct Run<'a> {
    span: Option<JobSpan>,
    metrics: &'a JobMetrics,
    started: Instant,
    waited: Option<std::time::Duration>,
}

impl Run<'_> {
    fn span(&self) -> &JobSpan {
        self.span.as_ref().expect("present until the run ends")
    }

    fn end(&mut self, error: Option<(&'static str, String)>) {
        let Some(span) = self.span.take() else {
            return;
        };
        let elapsed = self.started.elapsed();
        self.metrics
            .record(elapsed, error.as_ref().map(|(kind, _)| *kind));
        let duration_ms = elapsed.as_secs_f64() * 1e3;
        let queue_wait_ms = self.waited.map(|w| w.as_millis() as u64);
        let job = self.metrics.queue();
        span.in_scope(|| match &error {
            None => tracing::info!(
                target: LOG_TARGET,
                job,
                outcome = "ok",
                duration_ms,
                queue_wait_ms,
                "job completed"
            ),
            Some((kind, description)) => tracing::error!(
                target: LOG_TARGET,
                job,
                outcome = "error",
                error_type = *kind,
                error = %description,
                duration_ms,
                queue_wait_ms,
                "job failed"
            ),
        });
        match error {
            None => span.end_ok(),
            Some((kind, description)) => span.end_error(kind, description),
        }
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if self.span.is_some() {
            let (kind, description) = if std::thread::panicking() {
                ("panic", "the job panicked")
            } else {
                ("cancelled", "the job was dropped before it completed")
            };
            self.end(Some((kind, description.to_owned())));
        }
    }
}
