//! OTLP metrics push (feature `otlp-metrics`): every metric telltale records, sent to an
//! OpenTelemetry Collector (or any OTLP receiver) by the OpenTelemetry metrics SDK.
//!
//! ```no_run
//! use std::time::Duration;
//! use telltale::trace::export::OtlpProtocol;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = telltale::Telemetry::builder("orders-api")
//!     .version(env!("CARGO_PKG_VERSION"))
//!     .environment("prod")
//!     .otlp_metrics("http://collector:4317", OtlpProtocol::Grpc) // or .otlp_metrics_from_env()
//!     .otlp_metrics_interval(Duration::from_secs(15))
//!     .prometheus() // optional: /metrics keeps working, both get every metric
//!     .init()?;
//! // ... serve with `.layer(telemetry.server_layer())` ...
//! telemetry.shutdown(); // (or drop) pushes the last values and stops the exporter
//! # Ok(()) }
//! ```
//!
//! # What is sent
//!
//! The RED layers and clients record through the `metrics` facade; [`OtlpMetricsRecorder`]
//! is a `metrics::Recorder` that forwards to an OpenTelemetry `Meter`:
//!
//! - a counter becomes a `u64` Counter (a monotonic sum), a gauge an `f64` Gauge (its value
//!   is kept in an atomic, each change records the new value), a histogram an `f64`
//!   Histogram with explicit bucket boundaries: the same as the Prometheus recorder's
//!   ([`duration_buckets`](crate::TelemetryBuilder::duration_buckets), default
//!   [`DEFAULT_DURATION_BUCKETS`]; `_bytes` histograms get [`DEFAULT_SIZE_BUCKETS`]);
//! - names and labels are mapped back to the OpenTelemetry semantic conventions they come
//!   from ([`SEMCONV_NAMES`], [`SEMCONV_ATTRIBUTES`]):
//!   `http_server_request_duration_seconds{http_response_status_code="200"}` is sent as
//!   `http.server.request.duration` (unit `s`) with `http.response.status_code = 200`
//!   (status codes as integers, as the conventions say). Other names and labels pass
//!   through unchanged (the legacy scheme's `http_requests_total`, your own metrics);
//! - the resource is the traces' ([`service_resource`](telltale_trace::export::service_resource)):
//!   `service.name` (`OTEL_SERVICE_NAME` wins), `service.version`,
//!   `deployment.environment.name`, `OTEL_RESOURCE_ATTRIBUTES`, `telemetry.sdk.*`, process
//!   and host attributes, and one random `service.instance.id` per process (unless
//!   `OTEL_RESOURCE_ATTRIBUTES` names one), the same on spans and metrics, so the
//!   cumulative series of two replicas stay apart and a backend can join the signals.
//!   Prometheus's global labels (`service`, `environment`, `version`) are resource
//!   attributes here, not labels;
//! - the OS process metrics, read from `/proc` at each export (Linux), under the
//!   semantic-convention names ([`process`]): `process.cpu.time` by `cpu.mode`,
//!   `process.memory.usage`, `process.memory.virtual`, `process.thread.count`,
//!   `process.unix.file_descriptor.count` and `process.uptime` (`/metrics` keeps the
//!   Prometheus client names, `process_cpu_seconds_total` and the rest, which the
//!   dashboards of `telltale-slo` read);
//! - temporality is cumulative (what Prometheus-compatible backends want) unless
//!   [`otlp_metrics_temporality`](crate::TelemetryBuilder::otlp_metrics_temporality) or
//!   `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` asks for deltas ([`Temporality`]).
//!
//! Not sent: `build_info` (the resource carries the version) and the tokio-runtime
//! metrics (no semantic convention yet), which exist only on `/metrics`; and exemplars,
//! which the OpenTelemetry Rust SDK 0.33 does not record (every data point it builds has
//! none), so trace-linked exemplars are on `/metrics` only. A name the SDK
//! refuses as an instrument name (e.g. one with a `:`) is left out of the push, with an
//! SDK log line.
//!
//! With [`prometheus`](crate::TelemetryBuilder::prometheus) too, metrics-util's `Fanout` is
//! the global recorder and hands every metric to both.
//!
//! # Environment
//!
//! With [`otlp_metrics_from_env`](crate::TelemetryBuilder::otlp_metrics_from_env):
//! `OTEL_METRICS_EXPORTER` (`otlp` or `none`; unset means `otlp` when an endpoint is set),
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` else `OTEL_EXPORTER_OTLP_ENDPOINT` (unset: no
//! push, unless `OTEL_METRICS_EXPORTER=otlp` asks for the default `http://localhost:4318`
//! or `:4317`), `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` else `OTEL_EXPORTER_OTLP_PROTOCOL`
//! (`grpc` or `http/protobuf`, the default), `OTEL_EXPORTER_OTLP_HEADERS` and
//! `OTEL_EXPORTER_OTLP_METRICS_HEADERS`, `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds,
//! default 60000, at most a day; an interval set in code wins). `OTEL_SDK_DISABLED=true` turns the push
//! off in both modes, and `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`
//! (`cumulative`, `delta`, `lowmemory`) is read in both, as the OpenTelemetry SDK does,
//! unless the temporality is set in code. For HTTP, `/v1/metrics` is appended to an
//! endpoint that lacks it. A value that makes no sense (an endpoint that is not an
//! `http(s)://` URL, a zero or unparsable interval, an unknown protocol, exporter or
//! temporality) is a
//! [`TelemetryError::OtlpMetrics`](crate::TelemetryError::OtlpMetrics) from `init()`,
//! before anything global is installed.
//!
//! # A dead collector never slows a request
//!
//! Recording is an in-memory update of the SDK's aggregation (no I/O, no await). The SDK's
//! periodic reader collects and exports on its own thread; each export runs on a private
//! single-thread tokio runtime (tonic and async reqwest need a reactor; the application's
//! runtime is never borrowed, so a guard dropped at the end of `#[tokio::main]` cannot
//! deadlock) with a 10 s timeout. A failed export is counted ([`EXPORT_FAILURES`]),
//! logged at most every 30 s, and its data is dropped; the next export sends the cumulative totals again, so nothing is lost
//! once the collector is back (with delta temporality, the failed interval's increments
//! are lost: each delta is sent once).
//!
//! # Why not `metrics-exporter-opentelemetry`
//!
//! That crate (0.2.2) targets these exact versions (`metrics` 0.24, OpenTelemetry 0.33),
//! but it cannot set histogram bucket boundaries (every histogram gets the SDK's default
//! boundaries, which do not match the Prometheus side), it builds a new instrument on
//! every registration, it forgets a metric's description and unit after the first
//! registration, and it has no semantic-convention mapping. The bridge is small, so it
//! lives here.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality as SdkTemporality};
use telltale_metrics::names::{labels, otel};
use telltale_metrics::process::ProcessSnapshot;
use telltale_trace::export::OtlpProtocol;

pub use telltale_metrics::names::DEFAULT_DURATION_BUCKETS;
pub use telltale_metrics::prometheus::DEFAULT_SIZE_BUCKETS;

/// The export interval when neither code nor `OTEL_METRIC_EXPORT_INTERVAL` sets one.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The longest export interval accepted: a day. A longer one (say `u64::MAX`
/// milliseconds, a typo) would mean no push ever happens while everything looks set up.
pub const MAX_EXPORT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest one export may take before it is abandoned.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

const WARN_EVERY: Duration = Duration::from_secs(30);

/// Counter: metric exports that failed or timed out (each one's data is dropped; see
/// [A dead collector never slows a request](self#a-dead-collector-never-slows-a-request)).
/// Recorded through the `metrics` facade, so it shows on `/metrics` while the collector
/// is unreachable, and is pushed with the rest once it is back.
pub const EXPORT_FAILURES: &str = "telltale_otlp_metrics_export_failures_total";

/// The variable the OpenTelemetry specification names for the temporality preference.
pub const TEMPORALITY_ENV: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";

/// What each pushed sum and histogram point covers (OTLP's aggregation temporality).
///
/// Set in code with
/// [`otlp_metrics_temporality`](crate::TelemetryBuilder::otlp_metrics_temporality), or by
/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` (`cumulative`, `delta` or
/// `lowmemory`, any case); the value in code wins. Gauges have no temporality.
///
/// ```
/// use telltale::otlp_metrics::Temporality;
///
/// assert_eq!(Temporality::default(), Temporality::Cumulative);
/// assert_eq!("Delta".parse::<Temporality>(), Ok(Temporality::Delta));
/// assert!("deltas".parse::<Temporality>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Temporality {
    /// Every point is the total since the process started (what Prometheus-compatible
    /// backends want). A failed export loses nothing: the next one sends the totals again.
    #[default]
    Cumulative,
    /// Every point is what happened since the previous export (what backends that store
    /// deltas want). An export that fails loses its interval's increments.
    Delta,
    /// The specification's `lowmemory`: delta for synchronous counters and histograms,
    /// cumulative for the rest. telltale's request metrics are all synchronous counters,
    /// histograms and gauges, so they are sent as with [`Delta`](Self::Delta).
    LowMemory,
}

impl std::str::FromStr for Temporality {
    type Err = ();

    /// `cumulative`, `delta` or `lowmemory`, in any case, surrounding spaces ignored.
    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.trim();
        [
            ("cumulative", Temporality::Cumulative),
            ("delta", Temporality::Delta),
            ("lowmemory", Temporality::LowMemory),
        ]
        .into_iter()
        .find_map(|(name, t)| s.eq_ignore_ascii_case(name).then_some(t))
        .ok_or(())
    }
}

impl From<Temporality> for SdkTemporality {
    fn from(t: Temporality) -> Self {
        match t {
            Temporality::Cumulative => SdkTemporality::Cumulative,
            Temporality::Delta => SdkTemporality::Delta,
            Temporality::LowMemory => SdkTemporality::LowMemory,
        }
    }
}

// === name mapping ===

/// One of our Prometheus metric names and the OpenTelemetry instrument it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemconvName {
    /// The Prometheus name (a constant of [`telltale_metrics::names`]).
    pub prometheus: &'static str,
    /// The OpenTelemetry semantic-conventions instrument name.
    pub otel: &'static str,
    /// The UCUM unit sent with it (empty: none).
    pub unit: &'static str,
    /// The instrument description.
    pub description: &'static str,
}

/// Metric names sent under their semantic-conventions name and unit. Pinned by a test:
/// collector pipelines and dashboards match on these.
pub const SEMCONV_NAMES: &[SemconvName] = &[
    SemconvName {
        prometheus: otel::HTTP_SERVER_REQUEST_DURATION,
        otel: "http.server.request.duration",
        unit: "s",
        description: "Duration of HTTP server requests.",
    },
    SemconvName {
        prometheus: otel::HTTP_SERVER_ACTIVE_REQUESTS,
        otel: "http.server.active_requests",
        unit: "{request}",
        description: "Number of active HTTP server requests.",
    },
    SemconvName {
        prometheus: otel::HTTP_SERVER_REQUEST_BODY_SIZE,
        otel: "http.server.request.body.size",
        unit: "By",
        description: "Size of HTTP server request bodies.",
    },
    SemconvName {
        prometheus: otel::HTTP_SERVER_RESPONSE_BODY_SIZE,
        otel: "http.server.response.body.size",
        unit: "By",
        description: "Size of HTTP server response bodies.",
    },
    SemconvName {
        prometheus: otel::HTTP_CLIENT_REQUEST_DURATION,
        otel: "http.client.request.duration",
        unit: "s",
        description: "Duration of HTTP client requests.",
    },
    SemconvName {
        prometheus: otel::RPC_SERVER_CALL_DURATION,
        otel: "rpc.server.call.duration",
        unit: "s",
        description: "Duration of RPC server calls.",
    },
    SemconvName {
        prometheus: otel::RPC_CLIENT_CALL_DURATION,
        otel: "rpc.client.call.duration",
        unit: "s",
        description: "Duration of RPC client calls.",
    },
];

/// Label names sent under their semantic-conventions attribute name. Pinned by a test.
pub const SEMCONV_ATTRIBUTES: &[(&str, &str)] = &[
    (labels::HTTP_REQUEST_METHOD, "http.request.method"),
    (labels::HTTP_ROUTE, "http.route"),
    (labels::HTTP_RESPONSE_STATUS_CODE, "http.response.status_code"),
    (labels::ERROR_TYPE, "error.type"),
    (labels::SERVER_ADDRESS, "server.address"),
    (labels::PEER_SERVICE, "peer.service"),
    (labels::RPC_SYSTEM, "rpc.system"),
    (labels::RPC_SERVICE, "rpc.service"),
    (labels::RPC_METHOD, "rpc.method"),
    (labels::RPC_GRPC_STATUS_CODE, "rpc.grpc.status_code"),
];

/// Attributes the conventions type as integers.
const INT_ATTRIBUTES: &[&str] = &["http.response.status_code", "rpc.grpc.status_code"];

fn semconv_name(prometheus: &str) -> Option<&'static SemconvName> {
    SEMCONV_NAMES.iter().find(|n| n.prometheus == prometheus)
}

fn attribute_name(label: &str) -> &str {
    SEMCONV_ATTRIBUTES
        .iter()
        .find(|(l, _)| *l == label)
        .map_or(label, |(_, a)| a)
}

fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| {
            let name = attribute_name(l.key());
            match l.value().parse::<i64>() {
                Ok(n) if INT_ATTRIBUTES.contains(&name) => KeyValue::new(name.to_owned(), n),
                _ => KeyValue::new(name.to_owned(), l.value().to_owned()),
            }
        })
        .collect()
}

fn otel_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Count => "",
        Unit::Bytes => "By",
        other => other.as_canonical_label(),
    }
}

// === impl OtlpMetricsRecorder ===

/// A `metrics::Recorder` that forwards every metric to an OpenTelemetry [`Meter`].
///
/// One instrument per metric name and one handle per key (name and labels) are created on
/// first registration and cached; the handle holds the key's attributes, so recording
/// allocates nothing. See the [module docs](self) for the mapping.
///
/// The facade installs one for you; build your own to send `metrics` to a meter provider
/// you configured:
///
/// ```
/// use opentelemetry::metrics::MeterProvider as _;
/// use telltale::otlp_metrics::OtlpMetricsRecorder;
///
/// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let recorder = OtlpMetricsRecorder::new(provider.meter("telltale"));
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("jobs_total").increment(1);
/// });
/// ```
#[derive(Clone)]
pub struct OtlpMetricsRecorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    meter: Meter,
    duration_buckets: Vec<f64>,
    size_buckets: Vec<f64>,
    counters: RwLock<Registry<opentelemetry::metrics::Counter<u64>, OtelCounter>>,
    gauges: RwLock<Registry<opentelemetry::metrics::Gauge<f64>, OtelGauge>>,
    histograms: RwLock<Registry<opentelemetry::metrics::Histogram<f64>, OtelHistogram>>,
    described: Mutex<HashMap<String, (Option<Unit>, String)>>,
}

struct Registry<I, H> {
    instruments: HashMap<String, I>,
    handles: HashMap<Key, Arc<H>>,
}

impl<I, H> Default for Registry<I, H> {
    fn default() -> Self {
        Registry {
            instruments: HashMap::new(),
            handles: HashMap::new(),
        }
    }
}

impl fmt::Debug for OtlpMetricsRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpMetricsRecorder")
            .field("duration_buckets", &self.inner.duration_buckets)
            .finish_non_exhaustive()
    }
}

/// What an instrument is created with, from the mapping table or a `describe_*!` call.
struct Shape {
    name: String,
    unit: &'static str,
    description: String,
}

impl OtlpMetricsRecorder {
    /// A recorder for `meter`, with the default buckets ([`DEFAULT_DURATION_BUCKETS`],
    /// [`DEFAULT_SIZE_BUCKETS`] for `_bytes` histograms).
    pub fn new(meter: Meter) -> Self {
        Self::with_buckets(meter, DEFAULT_DURATION_BUCKETS, DEFAULT_SIZE_BUCKETS)
    }

    /// A recorder with explicit histogram boundaries: `duration` for every histogram but
    /// the `_bytes` ones, which get `size`.
    pub fn with_buckets(meter: Meter, duration: &[f64], size: &[f64]) -> Self {
        OtlpMetricsRecorder {
            inner: Arc::new(RecorderInner {
                meter,
                duration_buckets: duration.to_vec(),
                size_buckets: size.to_vec(),
                counters: RwLock::default(),
                gauges: RwLock::default(),
                histograms: RwLock::default(),
                described: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn shape(&self, name: &str) -> Shape {
        if let Some(s) = semconv_name(name) {
            return Shape {
                name: s.otel.to_owned(),
                unit: s.unit,
                description: s.description.to_owned(),
            };
        }
        let described = self
            .inner
            .described
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (unit, description) = described
            .get(name)
            .map(|(u, d)| (u.map_or("", otel_unit), d.clone()))
            .unwrap_or_default();
        Shape {
            name: name.to_owned(),
            unit,
            description,
        }
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .described
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.as_str().to_owned(), (unit, description.into_owned()));
    }
}

/// Finds the handle for `key`, or creates it (and the instrument for its name, once).
fn handle<I: Clone, H>(
    registry: &RwLock<Registry<I, H>>,
    key: &Key,
    instrument: impl FnOnce() -> I,
    make: impl FnOnce(I, Vec<KeyValue>) -> H,
) -> Arc<H> {
    if let Some(h) = registry
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .handles
        .get(key)
    {
        return h.clone();
    }
    let mut r = registry.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(h) = r.handles.get(key) {
        return h.clone();
    }
    let instrument = r
        .instruments
        .entry(key.name().to_owned())
        .or_insert_with(instrument)
        .clone();
    let h = Arc::new(make(instrument, attributes(key)));
    r.handles.insert(key.clone(), h.clone());
    h
}

impl Recorder for OtlpMetricsRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        let h = handle(
            &self.inner.counters,
            key,
            || {
                let s = self.shape(key.name());
                self.inner
                    .meter
                    .u64_counter(s.name)
                    .with_unit(s.unit)
                    .with_description(s.description)
                    .build()
            },
            |counter, attributes| OtelCounter {
                counter,
                attributes,
                total: AtomicU64::new(0),
            },
        );
        Counter::from_arc(h)
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        let h = handle(
            &self.inner.gauges,
            key,
            || {
                let s = self.shape(key.name());
                self.inner
                    .meter
                    .f64_gauge(s.name)
                    .with_unit(s.unit)
                    .with_description(s.description)
                    .build()
            },
            |gauge, attributes| OtelGauge {
                gauge,
                attributes,
                bits: AtomicU64::new(0f64.to_bits()),
            },
        );
        Gauge::from_arc(h)
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        let h = handle(
            &self.inner.histograms,
            key,
            || {
                let s = self.shape(key.name());
                let boundaries = if s.unit == "By" || key.name().ends_with("_bytes") {
                    &self.inner.size_buckets
                } else {
                    &self.inner.duration_buckets
                };
                self.inner
                    .meter
                    .f64_histogram(s.name)
                    .with_unit(s.unit)
                    .with_description(s.description)
                    .with_boundaries(boundaries.clone())
                    .build()
            },
            |histogram, attributes| OtelHistogram {
                histogram,
                attributes,
            },
        );
        Histogram::from_arc(h)
    }
}

struct OtelCounter {
    counter: opentelemetry::metrics::Counter<u64>,
    attributes: Vec<KeyValue>,
    /// For `absolute`: what has been added so far.
    total: AtomicU64,
}

impl CounterFn for OtelCounter {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
        self.counter.add(value, &self.attributes);
    }

    fn absolute(&self, value: u64) {
        let before = self.total.fetch_max(value, Ordering::Relaxed);
        if value > before {
            self.counter.add(value - before, &self.attributes);
        }
    }
}

struct OtelGauge {
    gauge: opentelemetry::metrics::Gauge<f64>,
    attributes: Vec<KeyValue>,
    /// The current value, as `f64` bits.
    bits: AtomicU64,
}

impl OtelGauge {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self.bits.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
            Some(f(f64::from_bits(b)).to_bits())
        });
        self.record_current();
    }

    /// Records the current value. Two threads may record out of order (an older value
    /// last); whoever records checks afterwards that the value has not moved, and records
    /// again if it has, so the last recorded value is always the current one. The retries
    /// are bounded (no spinning under sustained contention): a thread that gives up does so
    /// because another changed the value since, and that thread records after its change.
    fn record_current(&self) {
        let mut bits = self.bits.load(Ordering::Acquire);
        for _ in 0..8 {
            self.gauge.record(f64::from_bits(bits), &self.attributes);
            let now = self.bits.load(Ordering::Acquire);
            if now == bits {
                return;
            }
            bits = now;
        }
    }
}

impl GaugeFn for OtelGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.bits.store(value.to_bits(), Ordering::Release);
        self.record_current();
    }
}

struct OtelHistogram {
    histogram: opentelemetry::metrics::Histogram<f64>,
    attributes: Vec<KeyValue>,
}

impl HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        self.histogram.record(value, &self.attributes);
    }
}

// === configuration ===

/// Why the OTLP metrics push could not be set up. Each message names what to change.
#[derive(Debug)]
#[non_exhaustive]
pub enum OtlpMetricsError {
    /// An environment variable has a value that makes no sense.
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What would be accepted.
        hint: &'static str,
    },
    /// The endpoint given in code is not an `http://` or `https://` URL.
    Endpoint(String),
    /// The export interval is zero.
    ZeroInterval,
    /// The export interval is longer than [`MAX_EXPORT_INTERVAL`].
    IntervalTooLong(Duration),
    /// The OTLP exporter or its runtime could not be built.
    Exporter(String),
    /// A global `metrics` recorder is already installed in this process.
    RecorderAlreadyInstalled,
    /// The resource (the service's attributes) could not be built.
    Resource(String),
}

impl fmt::Display for OtlpMetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtlpMetricsError::Env { var, value, hint } => {
                write!(f, "{var}={value:?} is not understood: {hint}")
            }
            OtlpMetricsError::Endpoint(e) => write!(
                f,
                "the endpoint {e:?} is not a URL: pass one such as http://collector:4317 (gRPC) or http://collector:4318 (HTTP)"
            ),
            OtlpMetricsError::ZeroInterval => f.write_str(
                "the export interval is zero: pass a duration such as Duration::from_secs(15) to otlp_metrics_interval",
            ),
            OtlpMetricsError::IntervalTooLong(i) => write!(
                f,
                "the export interval {i:?} is longer than a day: pass a duration such as Duration::from_secs(15) to otlp_metrics_interval"
            ),
            OtlpMetricsError::Exporter(e) => write!(f, "cannot build the OTLP metric exporter: {e}"),
            OtlpMetricsError::Resource(e) => write!(f, "cannot describe the service: {e}"),
            OtlpMetricsError::RecorderAlreadyInstalled => f.write_str(
                "a global metrics recorder is already installed in this process: call Telemetry::builder(..).init() once, before anything else installs one",
            ),
        }
    }
}

impl std::error::Error for OtlpMetricsError {}

/// How the builder was asked to push metrics.
#[derive(Debug, Clone, Default)]
pub(crate) enum OtlpMetricsSetting {
    #[default]
    Off,
    FromEnv,
    Endpoint(String, OtlpProtocol),
}

/// Where and how often to push, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PushTarget {
    pub(crate) endpoint: String,
    pub(crate) protocol: OtlpProtocol,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) interval: Duration,
    pub(crate) temporality: Temporality,
}

/// What was set in code next to the endpoint: each wins over its environment variable.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InCode {
    pub(crate) interval: Option<Duration>,
    pub(crate) temporality: Option<Temporality>,
}

impl OtlpMetricsSetting {
    /// Reads the environment (for `FromEnv`; `OTEL_SDK_DISABLED` and the temporality
    /// preference always, as the OpenTelemetry SDK does) and validates.
    pub(crate) fn resolve(
        &self,
        in_code: InCode,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<PushTarget>, OtlpMetricsError> {
        let non_empty = |k: &str| env(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let interval = in_code.interval;
        if interval.is_some_and(|i| i.is_zero()) {
            return Err(OtlpMetricsError::ZeroInterval);
        }
        if let Some(i) = interval.filter(|i| *i > MAX_EXPORT_INTERVAL) {
            return Err(OtlpMetricsError::IntervalTooLong(i));
        }
        let temporality = match (in_code.temporality, non_empty(TEMPORALITY_ENV)) {
            (Some(t), _) => t,
            (None, None) => Temporality::default(),
            (None, Some(v)) => v
                .parse()
                .map_err(|()| env_error(TEMPORALITY_ENV, &v, "use cumulative, delta or lowmemory"))?,
        };
        let disabled = match non_empty("OTEL_SDK_DISABLED") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) => return Err(env_error("OTEL_SDK_DISABLED", &v, "use true or false")),
        };
        let target = match self {
            OtlpMetricsSetting::Off => return Ok(None),
            OtlpMetricsSetting::Endpoint(endpoint, protocol) => {
                check_endpoint(endpoint).map_err(|()| OtlpMetricsError::Endpoint(endpoint.clone()))?;
                PushTarget {
                    endpoint: endpoint.trim().to_owned(),
                    protocol: *protocol,
                    headers: Vec::new(),
                    interval: interval.unwrap_or(DEFAULT_EXPORT_INTERVAL),
                    temporality,
                }
            }
            OtlpMetricsSetting::FromEnv => {
                let mut wanted = None;
                if let Some(v) = non_empty("OTEL_METRICS_EXPORTER") {
                    for exporter in v.split(',').map(str::trim) {
                        match exporter {
                            "otlp" => wanted = Some(true),
                            "none" => wanted = wanted.or(Some(false)),
                            _ => {
                                return Err(env_error(
                                    "OTEL_METRICS_EXPORTER",
                                    &v,
                                    "supported: otlp, none (Prometheus is set up in code with .prometheus())",
                                ));
                            }
                        }
                    }
                }
                let protocol = match non_empty("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
                    .map(|p| ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", p))
                    .or_else(|| {
                        non_empty("OTEL_EXPORTER_OTLP_PROTOCOL").map(|p| ("OTEL_EXPORTER_OTLP_PROTOCOL", p))
                    }) {
                    None => OtlpProtocol::HttpProtobuf,
                    Some((_, p)) if p == "http/protobuf" => OtlpProtocol::HttpProtobuf,
                    Some((_, p)) if p == "grpc" => OtlpProtocol::Grpc,
                    Some((var, p)) => return Err(env_error(var, &p, "supported: grpc, http/protobuf")),
                };
                let endpoint = match (
                    non_empty("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
                        .map(|e| ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", e))
                        .or_else(|| {
                            non_empty("OTEL_EXPORTER_OTLP_ENDPOINT")
                                .map(|e| ("OTEL_EXPORTER_OTLP_ENDPOINT", e))
                        }),
                    wanted,
                ) {
                    (_, Some(false)) => return Ok(None),
                    (Some((var, e)), _) => {
                        check_endpoint(&e).map_err(|()| {
                            env_error(var, &e, "an endpoint is a URL such as http://collector:4318")
                        })?;
                        e
                    }
                    (None, Some(true)) => match protocol {
                        OtlpProtocol::Grpc => "http://localhost:4317".to_owned(),
                        OtlpProtocol::HttpProtobuf => "http://localhost:4318".to_owned(),
                    },
                    (None, None) => return Ok(None),
                };
                let interval = match (interval, non_empty("OTEL_METRIC_EXPORT_INTERVAL")) {
                    (Some(i), _) => i,
                    (None, None) => DEFAULT_EXPORT_INTERVAL,
                    (None, Some(ms)) => match ms.parse::<u64>() {
                        Ok(ms) if ms > 0 && Duration::from_millis(ms) <= MAX_EXPORT_INTERVAL => {
                            Duration::from_millis(ms)
                        }
                        _ => {
                            return Err(env_error(
                                "OTEL_METRIC_EXPORT_INTERVAL",
                                &ms,
                                "use a whole number of milliseconds from 1 to 86400000 (a day), e.g. 15000",
                            ));
                        }
                    },
                };
                let mut headers = Vec::new();
                for var in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS"] {
                    if let Some(raw) = non_empty(var) {
                        headers.extend(parse_headers(&raw, var)?);
                    }
                }
                PushTarget {
                    endpoint,
                    protocol,
                    headers,
                    interval,
                    temporality,
                }
            }
        };
        Ok((!disabled).then_some(target))
    }
}

fn env_error(var: &'static str, value: &str, hint: &'static str) -> OtlpMetricsError {
    OtlpMetricsError::Env {
        var,
        value: value.to_owned(),
        hint,
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), ()> {
    let e = endpoint.trim();
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        return Err(());
    }
    match e.parse::<http::Uri>() {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(()),
    }
}

/// `k1=v1,k2=v2`, values percent-decoded (as `OTEL_EXPORTER_OTLP_HEADERS` is written).
fn parse_headers(raw: &str, var: &'static str) -> Result<Vec<(String, String)>, OtlpMetricsError> {
    telltale_trace::export::parse_key_values(raw).map_err(|e| env_error(var, &e.item, e.hint))
}

// === the pipeline ===

/// What the resource says about the service.
pub(crate) struct ServiceInfo<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: Option<&'a str>,
    pub(crate) environment: Option<&'a str>,
}

/// The running push: the provider (for flush and shutdown) and the recorder to install.
pub(crate) struct OtlpMetricsPipeline {
    pub(crate) provider: SdkMeterProvider,
    pub(crate) recorder: OtlpMetricsRecorder,
}

/// Builds the exporter, reader, provider and recorder; installs nothing global.
pub(crate) fn pipeline(
    target: &PushTarget,
    service: &ServiceInfo<'_>,
    duration_buckets: &[f64],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<OtlpMetricsPipeline, OtlpMetricsError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("telltale-metrics-export")
        .build()
        .map_err(|e| OtlpMetricsError::Exporter(format!("cannot start the export runtime: {e}")))?;
    let exporter = {
        // tonic's channel task must live on the export runtime.
        let _entered = rt.enter();
        match target.protocol {
            OtlpProtocol::Grpc => {
                let mut md = tonic::metadata::MetadataMap::new();
                for (k, v) in &target.headers {
                    let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| env_error("OTEL_EXPORTER_OTLP_HEADERS", k, "not a valid header name"))?;
                    let value = v.parse().map_err(|_| {
                        env_error("OTEL_EXPORTER_OTLP_HEADERS", v, "not a valid header value")
                    })?;
                    md.insert(key, value);
                }
                // Always set, so the SDK never reads (and silently ignores a bad)
                // temporality variable behind our validation.
                opentelemetry_otlp::MetricExporter::builder()
                    .with_temporality(target.temporality.into())
                    .with_tonic()
                    .with_endpoint(target.endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_metadata(md)
                    .build()
            }
            OtlpProtocol::HttpProtobuf => {
                let base = target.endpoint.trim_end_matches('/');
                let endpoint = if base.ends_with("/v1/metrics") {
                    base.to_owned()
                } else {
                    format!("{base}/v1/metrics")
                };
                opentelemetry_otlp::MetricExporter::builder()
                    .with_temporality(target.temporality.into())
                    .with_http()
                    .with_endpoint(endpoint)
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(EXPORT_TIMEOUT)
                    .with_headers(target.headers.iter().cloned().collect::<HashMap<_, _>>())
                    .build()
            }
        }
        .map_err(|e| OtlpMetricsError::Exporter(e.to_string()))?
    };
    let exporter = OwnRuntimeExporter {
        inner: exporter,
        rt: Some(rt),
        last_warn: Mutex::new(None),
    };
    let reader = PeriodicReader::builder(exporter)
        .with_interval(target.interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource(service, env)?)
        .build();
    let meter = provider.meter("telltale");
    register_process_metrics(&meter);
    let recorder = OtlpMetricsRecorder::with_buckets(meter, duration_buckets, DEFAULT_SIZE_BUCKETS);
    Ok(OtlpMetricsPipeline { provider, recorder })
}

/// The OS process metrics of the semantic conventions, read from `/proc` at each export
/// (see [`ProcessSnapshot`]); nothing is observed where a figure cannot be read. The SDK
/// keeps each callback for the provider's life, so the instrument handles are not kept.
fn register_process_metrics(meter: &Meter) {
    meter
        .f64_observable_counter(process::CPU_TIME)
        .with_unit("s")
        .with_description("Total CPU seconds broken down by CPU mode.")
        .with_callback(|o| {
            let now = ProcessSnapshot::read();
            for (mode, seconds) in [("user", now.cpu_user_seconds), ("system", now.cpu_system_seconds)] {
                if let Some(s) = seconds {
                    o.observe(s, &[KeyValue::new(process::CPU_MODE, mode)]);
                }
            }
        })
        .build();
    type Figure = fn(&ProcessSnapshot) -> Option<f64>;
    let updown: [(&str, &str, &str, Figure); 4] = [
        (
            process::MEMORY_USAGE,
            "By",
            "The amount of physical memory in use.",
            |s| s.resident_bytes,
        ),
        (
            process::MEMORY_VIRTUAL,
            "By",
            "The amount of committed virtual memory.",
            |s| s.virtual_bytes,
        ),
        (process::THREAD_COUNT, "{thread}", "Process threads count.", |s| {
            s.threads
        }),
        (
            process::UNIX_FILE_DESCRIPTOR_COUNT,
            "{file_descriptor}",
            "Number of unix file descriptors in use by the process.",
            |s| s.open_fds,
        ),
    ];
    for (name, unit, description, figure) in updown {
        meter
            .i64_observable_up_down_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |o| {
                if let Some(v) = figure(&ProcessSnapshot::read()) {
                    o.observe(v as i64, &[]);
                }
            })
            .build();
    }
    meter
        .f64_observable_gauge(process::UPTIME)
        .with_unit("s")
        .with_description("The time the process has been running.")
        .with_callback(|o| {
            let started = ProcessSnapshot::read().start_time_seconds;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64());
            if let (Some(started), Ok(now)) = (started, now) {
                o.observe((now - started).max(0.0), &[]);
            }
        })
        .build();
}

/// The names of the OS process metrics pushed over OTLP (semantic conventions 1.42, where
/// they are still in development; `/metrics` keeps the Prometheus client names).
pub mod process {
    /// Counter, `s`, by [`CPU_MODE`] (`user`, `system`).
    pub const CPU_TIME: &str = "process.cpu.time";
    /// The attribute of [`CPU_TIME`].
    pub const CPU_MODE: &str = "cpu.mode";
    /// UpDownCounter, `By`: resident memory.
    pub const MEMORY_USAGE: &str = "process.memory.usage";
    /// UpDownCounter, `By`: virtual memory size.
    pub const MEMORY_VIRTUAL: &str = "process.memory.virtual";
    /// UpDownCounter, `{thread}`.
    pub const THREAD_COUNT: &str = "process.thread.count";
    /// UpDownCounter, `{file_descriptor}`.
    pub const UNIX_FILE_DESCRIPTOR_COUNT: &str = "process.unix.file_descriptor.count";
    /// Gauge, `s`: time since the process started.
    pub const UPTIME: &str = "process.uptime";
}

/// The same resource as the traces' (telltale-trace's `service_resource`): same attributes,
/// same `service.instance.id`, so a backend can join the two signals of one process.
fn resource(
    service: &ServiceInfo<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resource, OtlpMetricsError> {
    telltale_trace::export::service_resource(service.name, service.version, service.environment, &[], env)
        .map_err(|e| match e {
            telltale_trace::export::TraceConfigError::Env { var, value, hint } => {
                OtlpMetricsError::Env { var, value, hint }
            }
            other => OtlpMetricsError::Resource(other.to_string()),
        })
}

/// The OTLP exporter, run on a private runtime with a timeout (see the module docs).
struct OwnRuntimeExporter {
    inner: opentelemetry_otlp::MetricExporter,
    rt: Option<tokio::runtime::Runtime>,
    last_warn: Mutex<Option<Instant>>,
}

impl fmt::Debug for OwnRuntimeExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnRuntimeExporter").finish_non_exhaustive()
    }
}

impl OwnRuntimeExporter {
    fn warn(&self, e: &OTelSdkError) {
        let now = Instant::now();
        let mut last = self.last_warn.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return;
        }
        *last = Some(now);
        drop(last);
        tracing::warn!(
            target: "telltale::otlp_metrics",
            error = %e,
            "metric export failed; the next export sends the totals again (logged at most every 30s)"
        );
    }
}

impl PushMetricExporter for OwnRuntimeExporter {
    fn export(&self, metrics: &ResourceMetrics) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // The SDK's reader calls this on its own thread, never a runtime's.
        let result = match &self.rt {
            Some(rt) => rt.block_on(async {
                tokio::time::timeout(EXPORT_TIMEOUT, self.inner.export(metrics))
                    .await
                    .unwrap_or(Err(OTelSdkError::Timeout(EXPORT_TIMEOUT)))
            }),
            None => Err(OTelSdkError::AlreadyShutdown),
        };
        if let Err(e) = &result {
            metrics::counter!(EXPORT_FAILURES).increment(1);
            self.warn(e);
        }
        std::future::ready(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> SdkTemporality {
        self.inner.temporality()
    }
}

impl Drop for OwnRuntimeExporter {
    fn drop(&mut self) {
        // Dropped wherever the last provider handle goes, maybe inside the application's
        // runtime, where blocking on this one's shutdown would panic.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn semconv_name_table_is_pinned() {
        // Collector pipelines, dashboards and alerts match on these exact strings.
        let table: Vec<(&str, &str, &str)> = SEMCONV_NAMES
            .iter()
            .map(|n| (n.prometheus, n.otel, n.unit))
            .collect();
        assert_eq!(
            table,
            [
                (
                    "http_server_request_duration_seconds",
                    "http.server.request.duration",
                    "s"
                ),
                (
                    "http_server_active_requests",
                    "http.server.active_requests",
                    "{request}"
                ),
                (
                    "http_server_request_body_size_bytes",
                    "http.server.request.body.size",
                    "By"
                ),
                (
                    "http_server_response_body_size_bytes",
                    "http.server.response.body.size",
                    "By"
                ),
                (
                    "http_client_request_duration_seconds",
                    "http.client.request.duration",
                    "s"
                ),
                (
                    "rpc_server_call_duration_seconds",
                    "rpc.server.call.duration",
                    "s"
                ),
                (
                    "rpc_client_call_duration_seconds",
                    "rpc.client.call.duration",
                    "s"
                ),
            ]
        );
        assert_eq!(
            SEMCONV_ATTRIBUTES,
            [
                ("http_request_method", "http.request.method"),
                ("http_route", "http.route"),
                ("http_response_status_code", "http.response.status_code"),
                ("error_type", "error.type"),
                ("server_address", "server.address"),
                ("peer_service", "peer.service"),
                ("rpc_system", "rpc.system"),
                ("rpc_service", "rpc.service"),
                ("rpc_method", "rpc.method"),
                ("rpc_grpc_status_code", "rpc.grpc.status_code"),
            ]
        );
    }

    #[test]
    fn unknown_names_and_labels_pass_through_and_status_codes_become_integers() {
        assert!(semconv_name("http_requests_total").is_none());
        assert_eq!(attribute_name("status"), "status");
        let key = Key::from_parts(
            "http_server_request_duration_seconds",
            vec![
                metrics::Label::new("http_response_status_code", "503"),
                metrics::Label::new("http_route", "/orders/{id}"),
                metrics::Label::new("status", "503"),
            ],
        );
        let attrs = attributes(&key);
        assert_eq!(attrs[0], KeyValue::new("http.response.status_code", 503_i64));
        assert_eq!(attrs[1], KeyValue::new("http.route", "/orders/{id}"));
        // Not a semconv integer attribute: stays a string.
        assert_eq!(attrs[2], KeyValue::new("status", "503"));
    }

    #[test]
    fn configuration_errors_name_what_to_change() {
        let grpc = OtlpMetricsSetting::Endpoint("collector:4317".into(), OtlpProtocol::Grpc);
        let e = grpc.resolve(InCode::default(), &env_of(&[])).unwrap_err();
        assert!(matches!(e, OtlpMetricsError::Endpoint(_)), "{e:?}");
        assert!(e.to_string().contains("http://collector:4317"), "{e}");

        let ok = OtlpMetricsSetting::Endpoint("http://collector:4317".into(), OtlpProtocol::Grpc);
        let e = ok
            .resolve(
                InCode {
                    interval: Some(Duration::ZERO),
                    ..InCode::default()
                },
                &env_of(&[]),
            )
            .unwrap_err();
        assert!(matches!(e, OtlpMetricsError::ZeroInterval), "{e:?}");
        let e = ok
            .resolve(
                InCode {
                    interval: Some(Duration::MAX),
                    ..InCode::default()
                },
                &env_of(&[]),
            )
            .unwrap_err();
        assert!(matches!(e, OtlpMetricsError::IntervalTooLong(_)), "{e:?}");

        let from_env = OtlpMetricsSetting::FromEnv;
        for (pairs, var) in [
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ][..],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "c:4318")][..],
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
                ][..],
                "OTEL_METRIC_EXPORT_INTERVAL",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_METRIC_EXPORT_INTERVAL", "15s"),
                ][..],
                "OTEL_METRIC_EXPORT_INTERVAL",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_METRIC_EXPORT_INTERVAL", "18446744073709551615"),
                ][..],
                "OTEL_METRIC_EXPORT_INTERVAL",
            ),
            (
                &[("OTEL_METRICS_EXPORTER", "console")][..],
                "OTEL_METRICS_EXPORTER",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    (TEMPORALITY_ENV, "deltas"),
                ][..],
                TEMPORALITY_ENV,
            ),
        ] {
            let e = from_env.resolve(InCode::default(), &env_of(pairs)).unwrap_err();
            assert!(
                matches!(&e, OtlpMetricsError::Env { var: v, .. } if *v == var),
                "{pairs:?}: {e:?}"
            );
            assert!(e.to_string().starts_with(var), "{e}");
        }
    }

    #[test]
    fn environment_picks_endpoint_protocol_interval_and_headers() {
        let from_env = OtlpMetricsSetting::FromEnv;
        assert_eq!(from_env.resolve(InCode::default(), &env_of(&[])).unwrap(), None);
        let t = from_env
            .resolve(
                InCode::default(),
                &env_of(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
                    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                    ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
                    ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b"),
                ]),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            t,
            PushTarget {
                endpoint: "http://metrics:4317".into(),
                protocol: OtlpProtocol::Grpc,
                headers: vec![("api-key".into(), "a b".into())],
                interval: Duration::from_millis(1500),
                temporality: Temporality::Cumulative,
            }
        );
        // An interval set in code wins over the environment.
        let t = from_env
            .resolve(
                InCode {
                    interval: Some(Duration::from_secs(3)),
                    ..InCode::default()
                },
                &env_of(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
                    ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
                ]),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.protocol, t.interval),
            (OtlpProtocol::HttpProtobuf, Duration::from_secs(3))
        );
        // `none` and OTEL_SDK_DISABLED turn it off; `otlp` alone means the default endpoint.
        let none = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ]);
        assert_eq!(from_env.resolve(InCode::default(), &none).unwrap(), None);
        let disabled = env_of(&[("OTEL_SDK_DISABLED", "true")]);
        let code = OtlpMetricsSetting::Endpoint("http://c:4317".into(), OtlpProtocol::Grpc);
        assert_eq!(code.resolve(InCode::default(), &disabled).unwrap(), None);
        let default = from_env
            .resolve(InCode::default(), &env_of(&[("OTEL_METRICS_EXPORTER", "otlp")]))
            .unwrap()
            .unwrap();
        assert_eq!(default.endpoint, "http://localhost:4318");
        assert_eq!(default.interval, DEFAULT_EXPORT_INTERVAL);
    }

    #[test]
    fn temporality_comes_from_code_else_the_environment_else_cumulative() {
        let from_env = OtlpMetricsSetting::FromEnv;
        let code = OtlpMetricsSetting::Endpoint("http://c:4317".into(), OtlpProtocol::Grpc);
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        let resolved =
            |setting: &OtlpMetricsSetting, in_code: Option<Temporality>, pairs: &[(&str, &str)]| {
                let in_code = InCode {
                    temporality: in_code,
                    ..InCode::default()
                };
                setting
                    .resolve(in_code, &env_of(pairs))
                    .unwrap()
                    .unwrap()
                    .temporality
            };
        assert_eq!(resolved(&from_env, None, &[endpoint]), Temporality::Cumulative);
        assert_eq!(resolved(&code, None, &[]), Temporality::Cumulative);
        for (value, want) in [
            ("delta", Temporality::Delta),
            ("Delta", Temporality::Delta),
            (" LOWMEMORY ", Temporality::LowMemory),
            ("cumulative", Temporality::Cumulative),
        ] {
            assert_eq!(
                resolved(&from_env, None, &[endpoint, (TEMPORALITY_ENV, value)]),
                want,
                "{value:?}"
            );
            // Read with an endpoint set in code too, as the SDK reads it.
            assert_eq!(
                resolved(&code, None, &[(TEMPORALITY_ENV, value)]),
                want,
                "{value:?}"
            );
        }
        // Code wins, even over a value that would be an error.
        assert_eq!(
            resolved(
                &code,
                Some(Temporality::Delta),
                &[(TEMPORALITY_ENV, "cumulative")]
            ),
            Temporality::Delta
        );
        assert_eq!(
            resolved(
                &from_env,
                Some(Temporality::Cumulative),
                &[endpoint, (TEMPORALITY_ENV, "bogus")]
            ),
            Temporality::Cumulative
        );
        let e = code
            .resolve(InCode::default(), &env_of(&[(TEMPORALITY_ENV, "bogus")]))
            .unwrap_err();
        assert!(
            e.to_string().contains("use cumulative, delta or lowmemory"),
            "{e}"
        );
        assert_eq!(
            [
                Temporality::Cumulative,
                Temporality::Delta,
                Temporality::LowMemory
            ]
            .map(SdkTemporality::from),
            [
                SdkTemporality::Cumulative,
                SdkTemporality::Delta,
                SdkTemporality::LowMemory
            ]
        );
    }
}
