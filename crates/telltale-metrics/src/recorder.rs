//! Which recorder the layers register their metric handles with.
//!
//! The `metrics` facade has one global recorder per process, and it can be installed only
//! once. Tests, benchmarks and programs that run several isolated registries need the
//! layers to record into a recorder they were *given* instead: [`RecorderRef`] is that
//! choice. Handles are registered once per label set (see the layers' docs), so the
//! recorder is consulted only when a new label set is first seen.
//!
//! ```
//! use telltale_metrics::RecorderRef;
//!
//! // The process-wide recorder (what `metrics::counter!` would use):
//! let global = RecorderRef::global();
//! assert!(global.is_global());
//! // Any `metrics::Recorder`, e.g. one built but not installed:
//! let local = RecorderRef::new(metrics::NoopRecorder);
//! assert!(!local.is_global());
//! ```

use std::fmt;
use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Key, Level, Metadata, Recorder, SharedString, Unit};

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The recorder metric handles are registered with: the global one (default) or a given one.
#[derive(Clone, Default)]
pub struct RecorderRef(Option<Arc<dyn Recorder + Send + Sync>>);

impl RecorderRef {
    /// The recorder `metrics` macros use at registration time: the thread's local recorder
    /// if one is set (`metrics::with_local_recorder`), else the global one.
    pub const fn global() -> Self {
        RecorderRef(None)
    }

    /// A specific recorder, e.g. a Prometheus recorder built without being installed.
    pub fn new<R: Recorder + Send + Sync + 'static>(recorder: R) -> Self {
        RecorderRef(Some(Arc::new(recorder)))
    }

    /// A specific shared recorder.
    pub fn from_arc(recorder: Arc<dyn Recorder + Send + Sync>) -> Self {
        RecorderRef(Some(recorder))
    }

    /// Whether this refers to the global recorder.
    pub fn is_global(&self) -> bool {
        self.0.is_none()
    }

    fn with<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match &self.0 {
            Some(r) => f(r.as_ref()),
            None => metrics::with_recorder(f),
        }
    }

    /// Registers (or finds) a counter.
    pub fn counter(&self, key: &Key) -> Counter {
        self.with(|r| r.register_counter(key, &METADATA))
    }

    /// Registers (or finds) a gauge.
    pub fn gauge(&self, key: &Key) -> Gauge {
        self.with(|r| r.register_gauge(key, &METADATA))
    }

    /// Registers (or finds) a histogram.
    pub fn histogram(&self, key: &Key) -> Histogram {
        self.with(|r| r.register_histogram(key, &METADATA))
    }

    /// Describes a counter (the `# HELP` line).
    pub fn describe_counter(&self, name: &'static str, unit: Option<Unit>, help: &'static str) {
        self.with(|r| r.describe_counter(name.into(), unit, SharedString::const_str(help)))
    }

    /// Describes a gauge (the `# HELP` line).
    pub fn describe_gauge(&self, name: &'static str, unit: Option<Unit>, help: &'static str) {
        self.with(|r| r.describe_gauge(name.into(), unit, SharedString::const_str(help)))
    }

    /// Describes a histogram (the `# HELP` line).
    pub fn describe_histogram(&self, name: &'static str, unit: Option<Unit>, help: &'static str) {
        self.with(|r| r.describe_histogram(name.into(), unit, SharedString::const_str(help)))
    }
}

impl fmt::Debug for RecorderRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_global() {
            "RecorderRef::Global"
        } else {
            "RecorderRef::Given"
        })
    }
}
