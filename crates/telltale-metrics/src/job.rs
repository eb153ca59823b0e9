//! RED metrics for background jobs: run duration by queue and outcome, and time in queue.
//!
//! ```
//! use std::time::Duration;
//! use telltale_metrics::{JobMetrics, PrometheusConfig};
//!
//! let prom = PrometheusConfig::new("worker").build().unwrap();
//! // Without `.recorder(..)`, the global recorder (what `Telemetry::init` installs).
//! let jobs = JobMetrics::new("fulfil_order").system("postgresql").recorder(prom.recorder());
//! jobs.record_wait(Duration::from_millis(40));
//! jobs.record(Duration::from_millis(12), None);
//! jobs.record(Duration::from_millis(30), Some("timeout"));
//! let text = prom.handle().render();
//! assert!(text.contains(r#"messaging_process_duration_seconds_count{service="worker",messaging_system="postgresql",messaging_operation_name="process",messaging_destination_name="fulfil_order"} 1"#));
//! assert!(text.contains(r#"messaging_process_duration_seconds_count{service="worker",messaging_system="postgresql",messaging_operation_name="process",messaging_destination_name="fulfil_order",error_type="timeout"} 1"#));
//! assert!(text.contains(r#"telltale_job_queue_wait_seconds_count{service="worker",messaging_system="postgresql",messaging_destination_name="fulfil_order"} 1"#));
//! ```
//!
//! - [`MESSAGING_PROCESS_DURATION`] (`messaging.process.duration` in the OpenTelemetry
//!   messaging conventions) counts every run: its `_count` is the job rate, the series with
//!   an `error_type` label are the failures, so the failure ratio is one PromQL division:
//!   `sum(rate(messaging_process_duration_seconds_count{error_type!=""}[5m])) / sum(rate(messaging_process_duration_seconds_count[5m]))`.
//! - [`QUEUE_WAIT`] answers "are jobs slow, or waiting?": a growing wait with a flat
//!   run duration means too few workers.
//! - Handles are resolved once per outcome and reused. `error_type` values should be a
//!   few fixed words; past [`MAX_ERROR_TYPES`] distinct ones per queue a run is labelled
//!   `_OTHER`, so a message-derived value cannot explode the series count.
//! - Queue names should be fixed too. Both bounds are per process, not per
//!   [`JobMetrics`] value: past [`MAX_QUEUES`] distinct queue names a new one is recorded
//!   as [`OTHER_QUEUE`] (with one WARN), and every `JobMetrics` of one queue shares its
//!   [`MAX_ERROR_TYPES`]. Making a `JobMetrics` per job instead of per queue, or naming a
//!   queue after data, cannot grow the series count without limit.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{Histogram, Key, Label};

use crate::RecorderRef;

use crate::names::job::{MESSAGING_DESTINATION_NAME, MESSAGING_OPERATION_NAME, MESSAGING_SYSTEM};
pub use crate::names::job::{MESSAGING_PROCESS_DURATION, QUEUE_WAIT};
use crate::names::labels::ERROR_TYPE;

/// Most distinct `error_type` values recorded per queue; others become `_OTHER`.
pub const MAX_ERROR_TYPES: usize = 16;

/// The `error_type` recorded past [`MAX_ERROR_TYPES`].
pub const OTHER_ERROR_TYPE: &str = "_OTHER";

/// Most distinct queue names recorded per process; others become [`OTHER_QUEUE`].
pub const MAX_QUEUES: usize = 128;

/// The `messaging_destination_name` recorded past [`MAX_QUEUES`].
pub const OTHER_QUEUE: &str = "_OTHER";

/// The queues seen by this process, each with the `error_type` values admitted for it.
/// A linear list: at most [`MAX_QUEUES`] entries, looked up when a [`JobMetrics`] is made
/// and on an error type's first use by it, never per run.
static QUEUES: Mutex<Vec<(String, Vec<&'static str>)>> = Mutex::new(Vec::new());

/// Whether the queue-name overflow has been logged (once per process).
static OVERFLOW_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The queue name to record for `queue`: itself while fewer than [`MAX_QUEUES`] are known.
fn admit_queue(queue: String) -> String {
    // A poisoned lock only means another thread panicked while holding it: the list is
    // still sound.
    let mut queues = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    if queues.iter().any(|(q, _)| *q == queue) {
        return queue;
    }
    // `_OTHER` named outright takes no place among the MAX_QUEUES, but gets its list.
    let named = queues.iter().filter(|(q, _)| q != OTHER_QUEUE).count();
    if queue == OTHER_QUEUE || named < MAX_QUEUES {
        queues.push((queue.clone(), Vec::new()));
        return queue;
    }
    if !queues.iter().any(|(q, _)| q == OTHER_QUEUE) {
        queues.push((OTHER_QUEUE.to_owned(), Vec::new()));
    }
    drop(queues);
    if !OVERFLOW_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            target: "telltale_metrics",
            queue = %queue,
            max = MAX_QUEUES,
            "too many job queue names: this one and later new ones are recorded as messaging_destination_name=\"_OTHER\" (logged once)"
        );
    }
    OTHER_QUEUE.to_owned()
}

/// The `error_type` to record for `kind` on `queue`: itself when already admitted for the
/// queue or while fewer than [`MAX_ERROR_TYPES`] are, else [`OTHER_ERROR_TYPE`].
fn admit_error_type(queue: &str, kind: &'static str) -> &'static str {
    let mut queues = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    let Some((_, kinds)) = queues.iter_mut().find(|(q, _)| q == queue) else {
        // Only admitted queues make `JobMetrics`; unreachable, and harmless if not.
        return OTHER_ERROR_TYPE;
    };
    if kinds.contains(&kind) {
        kind
    } else if kinds.len() < MAX_ERROR_TYPES {
        kinds.push(kind);
        kind
    } else {
        OTHER_ERROR_TYPE
    }
}

/// Metric handles for one queue's jobs. Cheap to clone; clones share the handles.
#[derive(Clone, Debug)]
pub struct JobMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    recorder: RecorderRef,
    queue: String,
    system: Cow<'static, str>,
    ok: OnceLock<Histogram>,
    wait: OnceLock<Histogram>,
    errors: Mutex<Vec<(&'static str, Histogram)>>,
}

impl JobMetrics {
    /// Metrics for jobs from `queue` (`messaging_destination_name`), `messaging_system`
    /// `telltale` until [`system`](Self::system) says otherwise.
    pub fn new(queue: impl Into<String>) -> Self {
        JobMetrics {
            inner: Arc::new(Inner {
                recorder: RecorderRef::global(),
                queue: admit_queue(queue.into()),
                system: Cow::Borrowed("telltale"),
                ok: OnceLock::new(),
                wait: OnceLock::new(),
                errors: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sets `messaging_system` (e.g. `postgresql`, `kafka`).
    pub fn system(self, system: impl Into<Cow<'static, str>>) -> Self {
        let mut inner = self.unshared();
        inner.system = system.into();
        JobMetrics {
            inner: Arc::new(inner),
        }
    }

    /// Registers with `recorder` instead of the global recorder.
    pub fn recorder(self, recorder: RecorderRef) -> Self {
        let mut inner = self.unshared();
        inner.recorder = recorder;
        JobMetrics {
            inner: Arc::new(inner),
        }
    }

    /// The configuration with fresh handles (a builder step must not reuse handles
    /// registered under other labels or with another recorder).
    fn unshared(self) -> Inner {
        Inner {
            recorder: self.inner.recorder.clone(),
            queue: self.inner.queue.clone(),
            system: self.inner.system.clone(),
            ok: OnceLock::new(),
            wait: OnceLock::new(),
            errors: Mutex::new(Vec::new()),
        }
    }

    fn histogram(&self, name: &'static str, error_type: Option<&'static str>) -> Histogram {
        let i = &*self.inner;
        let mut labels = vec![Label::new(MESSAGING_SYSTEM, i.system.clone())];
        if name == MESSAGING_PROCESS_DURATION {
            labels.push(Label::new(MESSAGING_OPERATION_NAME, "process"));
        }
        labels.push(Label::new(MESSAGING_DESTINATION_NAME, i.queue.clone()));
        if let Some(kind) = error_type {
            labels.push(Label::new(ERROR_TYPE, kind));
        }
        i.recorder.histogram(&Key::from_parts(name, labels))
    }

    /// The queue name.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// Records one run that took `elapsed`; `error_type` is `None` for a success.
    pub fn record(&self, elapsed: Duration, error_type: Option<&'static str>) {
        let i = &*self.inner;
        let seconds = elapsed.as_secs_f64();
        match error_type {
            None => {
                i.ok.get_or_init(|| self.histogram(MESSAGING_PROCESS_DURATION, None))
                    .record(seconds)
            }
            Some(kind) => self.error_handle(kind).record(seconds),
        }
    }

    /// Records how long a job waited between enqueue and the start of its run.
    pub fn record_wait(&self, waited: Duration) {
        self.inner
            .wait
            .get_or_init(|| self.histogram(QUEUE_WAIT, None))
            .record(waited.as_secs_f64());
    }

    fn error_handle(&self, kind: &'static str) -> Histogram {
        let i = &*self.inner;
        // A poisoned lock only means another recording panicked: the list is still sound.
        let mut errors = i.errors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, h)) = errors.iter().find(|(k, _)| *k == kind) {
            return h.clone();
        }
        // Not yet used by this value: the process-wide list for the queue decides. A kind
        // past the cap is not cached under its own name (the list stays bounded); it asks
        // again on each use, which only an overflowing queue does.
        let label = admit_error_type(&i.queue, kind);
        if let Some((_, h)) = errors.iter().find(|(k, _)| *k == label) {
            return h.clone();
        }
        let h = self.histogram(MESSAGING_PROCESS_DURATION, Some(label));
        errors.push((label, h.clone()));
        h
    }
}

#[cfg(all(test, feature = "prometheus"))]
mod tests {
    use super::*;
    use crate::PrometheusConfig;

    #[test]
    fn error_types_past_the_cap_share_one_other_series() {
        let prom = PrometheusConfig::new("svc").build().unwrap();
        const KINDS: [&str; 20] = [
            "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12", "k13", "k14",
            "k15", "k16", "k17", "k18", "k19",
        ];
        let jobs = JobMetrics::new("q").recorder(prom.recorder());
        for kind in KINDS {
            jobs.record(Duration::from_millis(1), Some(kind));
        }
        jobs.record(Duration::from_millis(1), Some("k0"));
        jobs.record(Duration::from_millis(1), Some("k19"));
        let text = prom.handle().render();
        let series = |kind: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("messaging_process_duration_seconds_count")
                        && l.contains(&format!("error_type=\"{kind}\""))
                })
                .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        };
        assert_eq!(series("k0").as_deref(), Some("2"));
        assert_eq!(series("k15").as_deref(), Some("1"));
        assert_eq!(series("k16"), None, "past the cap:\n{text}");
        assert_eq!(
            series("_OTHER").as_deref(),
            Some("5"),
            "k16..k19 and k19 again:\n{text}"
        );
        let count = text
            .lines()
            .filter(|l| l.starts_with("messaging_process_duration_seconds_count"))
            .count();
        assert_eq!(count, MAX_ERROR_TYPES + 1);
    }
}
