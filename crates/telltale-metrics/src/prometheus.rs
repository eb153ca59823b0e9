//! The Prometheus recorder and the `/metrics` router.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use telltale_metrics::{metrics_router, MetricsLayer, PrometheusConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let handle = PrometheusConfig::new("orders-api")
//!     .environment("prod")
//!     .version(env!("CARGO_PKG_VERSION"))
//!     .commit("8f2c1e0")
//!     .install()?; // a second install in the same process is an error, not a panic
//!
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     .layer(MetricsLayer::new())
//!     .merge(metrics_router(handle.clone())); // or serve it on an admin listener
//! # Ok(()) }
//! ```
//!
//! # What it sets up
//!
//! - `metrics-exporter-prometheus` as the recorder, with the global labels `service`,
//!   `environment` and `version` on every series;
//! - real bucketed histograms (never summaries): the OpenTelemetry HTTP recommendation
//!   ([`DEFAULT_DURATION_BUCKETS`]) for everything, and [`DEFAULT_SIZE_BUCKETS`] for the
//!   `_bytes` histograms; both configurable;
//! - `build_info{version, commit} 1`, so dashboards can mark deploys;
//! - `# HELP` lines for every metric telltale emits (promtool's lint wants them);
//! - a small background thread that runs the exporter's upkeep every 5 s (it drains
//!   histogram samples, which otherwise pile up in memory when nothing scrapes). It is a
//!   plain thread, so this works outside a tokio runtime, and it stops when the last
//!   [`MetricsHandle`] of a non-installed recorder is dropped.
//!
//! # Testing without the global recorder
//!
//! The global recorder can be installed once per process. [`PrometheusConfig::build`]
//! makes the same recorder *without* installing it: give [`Prometheus::recorder`] to the
//! layers ([`MetricsLayerBuilder::recorder`](crate::MetricsLayerBuilder::recorder)) and
//! render with [`Prometheus::handle`].
//!
//! ```
//! use telltale_metrics::PrometheusConfig;
//!
//! let prom = PrometheusConfig::new("svc").version("1.2.3").commit("abc").build().unwrap();
//! let text = prom.handle().render();
//! assert!(text.contains(r#"build_info{service="svc",version="1.2.3",commit="abc"} 1"#));
//! ```

use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::thread::Thread;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Key, Label, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::RecorderRef;
use crate::collector::{Collector, Exposition};
use crate::exemplars::Exemplars;
use crate::names::{client, labels, legacy, meta, otel};

pub use crate::names::DEFAULT_DURATION_BUCKETS;

/// Default buckets of the `_bytes` histograms: 100 B to 10 MB.
pub const DEFAULT_SIZE_BUCKETS: &[f64] = &[100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0];

/// Where [`metrics_router`] serves.
pub const METRICS_PATH: &str = "/metrics";

/// Prometheus text exposition format content type.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text content type (served when the scraper asks for it).
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Why the recorder could not be built or installed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrometheusError {
    /// A configuration value is invalid; the message says which and why.
    Config(String),
    /// A global `metrics` recorder is already installed in this process (by an earlier
    /// `install()`, or by another library). Install once at start-up and pass the
    /// [`MetricsHandle`] around.
    RecorderAlreadyInstalled,
}

impl std::fmt::Display for PrometheusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrometheusError::Config(m) => write!(f, "invalid Prometheus configuration: {m}"),
            PrometheusError::RecorderAlreadyInstalled => f.write_str(
                "a global metrics recorder is already installed in this process: install the \
                 Prometheus recorder once at start-up and clone its MetricsHandle, or use \
                 PrometheusConfig::build() for a recorder that is not global",
            ),
        }
    }
}

impl std::error::Error for PrometheusError {}

/// Configuration of the Prometheus recorder. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    service: String,
    environment: Option<String>,
    version: Option<String>,
    commit: Option<String>,
    duration_buckets: Vec<f64>,
    size_buckets: Vec<f64>,
    exemplars: bool,
}

impl PrometheusConfig {
    /// A configuration for `service` (the `service` global label).
    pub fn new(service: impl Into<String>) -> Self {
        PrometheusConfig {
            service: service.into(),
            environment: None,
            version: None,
            commit: None,
            duration_buckets: DEFAULT_DURATION_BUCKETS.to_vec(),
            size_buckets: DEFAULT_SIZE_BUCKETS.to_vec(),
            exemplars: false,
        }
    }

    /// Serve OpenMetrics with exemplars to scrapers that ask for it (see
    /// [`exemplars`](crate::exemplars)); layers opt in with
    /// [`MetricsLayerBuilder::exemplars`](crate::MetricsLayerBuilder::exemplars).
    /// Default: off (plain text format only).
    pub fn exemplars(mut self, enabled: bool) -> Self {
        self.exemplars = enabled;
        self
    }

    /// The `environment` global label (absent unless set).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// The `version` global label and `build_info` label (`unknown` in `build_info` unless set).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The `commit` label of `build_info` (`unknown` unless set).
    pub fn commit(mut self, commit: impl Into<String>) -> Self {
        self.commit = Some(commit.into());
        self
    }

    /// Buckets (seconds) of every histogram but the `_bytes` ones.
    /// Default: [`DEFAULT_DURATION_BUCKETS`].
    pub fn duration_buckets(mut self, buckets: &[f64]) -> Self {
        self.duration_buckets = buckets.to_vec();
        self
    }

    /// Buckets of the `_bytes` histograms. Default: [`DEFAULT_SIZE_BUCKETS`].
    pub fn size_buckets(mut self, buckets: &[f64]) -> Self {
        self.size_buckets = buckets.to_vec();
        self
    }

    fn global_labels(&self) -> String {
        let mut l = vec![(labels::SERVICE, self.service.as_str())];
        if let Some(env) = &self.environment {
            l.push((labels::ENVIRONMENT, env));
        }
        if let Some(v) = &self.version {
            l.push((labels::VERSION, v));
        }
        crate::collector::render_labels(&l)
    }

    fn recorder(&self) -> Result<ExporterRecorder, PrometheusError> {
        if self.service.trim().is_empty() {
            return Err(PrometheusError::Config("the service name is empty".into()));
        }
        check_buckets("duration_buckets", &self.duration_buckets)?;
        check_buckets("size_buckets", &self.size_buckets)?;
        let mut b = PrometheusBuilder::new()
            .add_global_label(labels::SERVICE, exporter_label_value(&self.service).into_owned())
            .set_buckets(&self.duration_buckets)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &self.size_buckets))
            .map_err(|e| PrometheusError::Config(e.to_string()))?;
        if let Some(env) = &self.environment {
            b = b.add_global_label(labels::ENVIRONMENT, exporter_label_value(env).into_owned());
        }
        if let Some(v) = &self.version {
            b = b.add_global_label(labels::VERSION, exporter_label_value(v).into_owned());
        }
        let recorder = ExporterRecorder(b.build_recorder());
        describe(&recorder);
        let unknown = || "unknown".to_owned();
        recorder
            .register_gauge(
                &Key::from_parts(
                    meta::BUILD_INFO,
                    vec![
                        Label::new(labels::VERSION, self.version.clone().unwrap_or_else(unknown)),
                        Label::new(labels::COMMIT, self.commit.clone().unwrap_or_else(unknown)),
                    ],
                ),
                &metrics::Metadata::new(module_path!(), metrics::Level::INFO, None),
            )
            .set(1.0);
        Ok(recorder)
    }

    /// Builds the recorder without installing it (tests, several registries).
    pub fn build(self) -> Result<Prometheus, PrometheusError> {
        let recorder = Arc::new(self.recorder()?);
        let handle = MetricsHandle::new(recorder.0.handle(), self.global_labels(), self.exemplars);
        Ok(Prometheus { recorder, handle })
    }

    /// Builds the recorder and installs it as the process-wide `metrics` recorder.
    ///
    /// Fails with [`PrometheusError::RecorderAlreadyInstalled`] when a global recorder is
    /// already set (this one or any other): there can be one per process.
    pub fn install(self) -> Result<MetricsHandle, PrometheusError> {
        self.install_with(|prometheus| prometheus)
    }

    /// Like [`install`](Self::install), but installs `wrap(recorder)`: a recorder that
    /// hands every metric to the Prometheus one *and* elsewhere (e.g. metrics-util's
    /// `Fanout` with an OTLP push recorder, as the `telltale` facade's `otlp-metrics`
    /// feature does). The upkeep and the [`MetricsHandle`] are the same as `install`'s.
    pub fn install_with<R>(
        self,
        wrap: impl FnOnce(Arc<dyn Recorder + Send + Sync>) -> R,
    ) -> Result<MetricsHandle, PrometheusError>
    where
        R: Recorder + Sync + 'static,
    {
        let recorder = self.recorder()?;
        let handle = MetricsHandle::new(recorder.0.handle(), self.global_labels(), self.exemplars);
        metrics::set_global_recorder(wrap(Arc::new(recorder)))
            .map_err(|_| PrometheusError::RecorderAlreadyInstalled)?;
        // The global recorder lives as long as the process: so does its upkeep.
        let _ = GLOBAL_UPKEEP.set(handle._upkeep.clone());
        Ok(handle)
    }
}

fn check_buckets(what: &str, b: &[f64]) -> Result<(), PrometheusError> {
    if b.is_empty() {
        return Err(PrometheusError::Config(format!("{what} is empty")));
    }
    if b.iter().any(|v| !v.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
        return Err(PrometheusError::Config(format!(
            "{what} must be finite and strictly increasing, got {b:?}"
        )));
    }
    Ok(())
}

fn describe(r: &dyn Recorder) {
    use metrics::SharedString as S;
    let h = |name: &'static str, unit: Unit, help: &'static str| {
        r.describe_histogram(name.into(), Some(unit), S::const_str(help));
    };
    h(
        otel::HTTP_SERVER_REQUEST_DURATION,
        Unit::Seconds,
        "Duration of HTTP server requests, to the end of the response body.",
    );
    h(
        otel::HTTP_SERVER_REQUEST_BODY_SIZE,
        Unit::Bytes,
        "Size of HTTP server request bodies.",
    );
    h(
        otel::HTTP_SERVER_RESPONSE_BODY_SIZE,
        Unit::Bytes,
        "Size of HTTP server response bodies.",
    );
    h(
        otel::RPC_SERVER_CALL_DURATION,
        Unit::Seconds,
        "Duration of gRPC server calls.",
    );
    h(
        otel::HTTP_CLIENT_REQUEST_DURATION,
        Unit::Seconds,
        "Duration of outbound HTTP calls, one per logical call (retries included).",
    );
    h(
        otel::RPC_CLIENT_CALL_DURATION,
        Unit::Seconds,
        "Duration of outbound gRPC calls.",
    );
    h(
        crate::names::job::MESSAGING_PROCESS_DURATION,
        Unit::Seconds,
        "Duration of job runs.",
    );
    h(
        crate::names::job::QUEUE_WAIT,
        Unit::Seconds,
        "Time jobs waited between enqueue and the start of their run.",
    );
    h(
        legacy::HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Duration of HTTP requests, to the end of the response body.",
    );
    let g = |name: &'static str, help: &'static str| r.describe_gauge(name.into(), None, S::const_str(help));
    g(
        otel::HTTP_SERVER_ACTIVE_REQUESTS,
        "HTTP server requests in flight.",
    );
    g(legacy::HTTP_REQUESTS_IN_FLIGHT, "HTTP requests in flight.");
    g(
        meta::BUILD_INFO,
        "Build information: version and commit; always 1.",
    );
    g(
        client::CIRCUIT_BREAKER_STATE,
        "Circuit breaker state: 1 for the current state.",
    );
    g(
        meta::PROCESS_RESIDENT_MEMORY_BYTES,
        "Resident memory size in bytes.",
    );
    g(meta::PROCESS_OPEN_FDS, "Open file descriptors.");
    g(
        meta::PROCESS_START_TIME_SECONDS,
        "Start time of the process since the Unix epoch, in seconds.",
    );
    g(meta::PROCESS_THREADS, "OS threads in the process.");
    let c =
        |name: &'static str, help: &'static str| r.describe_counter(name.into(), None, S::const_str(help));
    c(legacy::HTTP_REQUESTS_TOTAL, "HTTP requests.");
    c(
        client::ATTEMPTS_TOTAL,
        "Outbound attempts (one logical call may make several).",
    );
    c(client::RETRIES_TOTAL, "Outbound retries decided.");
    c(
        client::RETRIES_SKIPPED_TOTAL,
        "Outbound retries refused, by reason.",
    );
    c(
        client::CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
        "Circuit breaker state transitions.",
    );
    c(
        client::CIRCUIT_BREAKER_REJECTED_TOTAL,
        "Calls rejected by an open circuit breaker.",
    );
    c(client::BULKHEAD_REJECTED_TOTAL, "Calls rejected by a bulkhead.");
    c(
        meta::CARDINALITY_OVERFLOW_TOTAL,
        "Observations folded into the overflow series by the label-set cap.",
    );
    c(
        meta::PROCESS_CPU_SECONDS_TOTAL,
        "Total user and system CPU time spent, in seconds.",
    );
}

// === label-value escaping ===

/// The exporter's recorder, handed label values that it renders as the text format
/// requires.
///
/// metrics-exporter-prometheus (0.18) takes a backslash in a label value for the start of
/// an escape already written: `a\\b` (two backslashes) comes out as `a\\b`, which reads
/// back as one backslash, and `\"` loses its backslash. The collectors' samples escape
/// every backslash, so the same global label (`service`) would read differently in the
/// two halves of one scrape, and the exemplar side-table would miss such series. Given a
/// value with every backslash doubled, the exporter writes exactly `\\` per backslash,
/// `\"` per quote and `\n` per line feed. Values without a backslash (nearly all) pass
/// through untouched, and nothing is done if the exporter ever escapes correctly itself.
pub(crate) struct ExporterRecorder(PrometheusRecorder);

/// Whether the exporter needs backslashes doubled (checked once, on its own code).
fn exporter_unescapes_backslashes() -> bool {
    static CHECK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHECK.get_or_init(|| metrics_exporter_prometheus::formatting::sanitize_label_value("\\\\") != "\\\\\\\\")
}

/// `value` as the exporter must be given it to render it correctly.
fn exporter_label_value(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains('\\') && exporter_unescapes_backslashes() {
        value.replace('\\', "\\\\").into()
    } else {
        value.into()
    }
}

impl ExporterRecorder {
    fn key<'k>(&self, key: &'k Key) -> std::borrow::Cow<'k, Key> {
        if !key.labels().any(|l| l.value().contains('\\')) {
            return std::borrow::Cow::Borrowed(key);
        }
        let labels: Vec<Label> = key
            .labels()
            .map(|l| Label::new(l.key().to_owned(), exporter_label_value(l.value()).into_owned()))
            .collect();
        std::borrow::Cow::Owned(Key::from_parts(key.name_shared(), labels))
    }
}

impl Recorder for ExporterRecorder {
    fn describe_counter(
        &self,
        key: metrics::KeyName,
        unit: Option<Unit>,
        description: metrics::SharedString,
    ) {
        self.0.describe_counter(key, unit, description)
    }

    fn describe_gauge(&self, key: metrics::KeyName, unit: Option<Unit>, description: metrics::SharedString) {
        self.0.describe_gauge(key, unit, description)
    }

    fn describe_histogram(
        &self,
        key: metrics::KeyName,
        unit: Option<Unit>,
        description: metrics::SharedString,
    ) {
        self.0.describe_histogram(key, unit, description)
    }

    fn register_counter(&self, key: &Key, metadata: &metrics::Metadata<'_>) -> metrics::Counter {
        self.0.register_counter(&self.key(key), metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &metrics::Metadata<'_>) -> metrics::Gauge {
        self.0.register_gauge(&self.key(key), metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &metrics::Metadata<'_>) -> metrics::Histogram {
        self.0.register_histogram(&self.key(key), metadata)
    }
}

/// A Prometheus recorder built by [`PrometheusConfig::build`], not installed globally.
pub struct Prometheus {
    recorder: Arc<ExporterRecorder>,
    handle: MetricsHandle,
}

impl Prometheus {
    /// The recorder, for [`MetricsLayerBuilder::recorder`](crate::MetricsLayerBuilder::recorder)
    /// and the other layers.
    pub fn recorder(&self) -> RecorderRef {
        RecorderRef::from_arc(self.recorder.clone())
    }

    /// The handle that renders this recorder's metrics.
    pub fn handle(&self) -> MetricsHandle {
        self.handle.clone()
    }
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus").finish_non_exhaustive()
    }
}

/// Renders the metrics of one Prometheus recorder; cheap to clone.
#[derive(Clone)]
pub struct MetricsHandle {
    prom: PrometheusHandle,
    extra: Arc<Extra>,
    _upkeep: Arc<Upkeep>,
}

struct Extra {
    global_labels: String,
    exemplars: Option<Exemplars>,
    collectors: RwLock<Vec<Box<dyn Collector>>>,
}

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHandle").finish_non_exhaustive()
    }
}

/// Stops the upkeep thread when the last handle goes (unless the recorder is global).
struct Upkeep {
    thread: Option<Thread>,
}

impl Drop for Upkeep {
    fn drop(&mut self) {
        if let Some(t) = &self.thread {
            t.unpark();
        }
    }
}

static GLOBAL_UPKEEP: std::sync::OnceLock<Arc<Upkeep>> = std::sync::OnceLock::new();

impl MetricsHandle {
    fn new(prom: PrometheusHandle, global_labels: String, exemplars: bool) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Weak<Upkeep>>();
        let p = prom.clone();
        let thread = std::thread::Builder::new()
            .name("telltale-metrics-upkeep".into())
            .spawn(move || {
                let Ok(token) = rx.recv() else { return };
                loop {
                    std::thread::park_timeout(UPKEEP_EVERY);
                    if token.upgrade().is_none() {
                        return;
                    }
                    p.run_upkeep();
                }
            })
            .ok()
            .map(|h| h.thread().clone());
        let upkeep = Arc::new(Upkeep { thread });
        let _ = tx.send(Arc::downgrade(&upkeep));
        MetricsHandle {
            prom,
            extra: Arc::new(Extra {
                global_labels,
                exemplars: exemplars.then(Exemplars::default),
                collectors: RwLock::new(Vec::new()),
            }),
            _upkeep: upkeep,
        }
    }

    /// Adds a [`Collector`] sampled at every render (process, runtime, pool metrics).
    pub fn register_collector(&self, collector: impl Collector) {
        self.extra
            .collectors
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(collector));
    }

    /// The metrics in the Prometheus text format: the recorder's, then the collectors'.
    pub fn render(&self) -> String {
        let mut out = self.prom.render();
        let collectors = self
            .extra
            .collectors
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if !collectors.is_empty() {
            let mut exposition = Exposition::new(&mut out, &self.extra.global_labels);
            for c in collectors.iter() {
                c.collect(&mut exposition);
            }
            exposition.finish();
        }
        out
    }

    /// The underlying exporter handle.
    pub fn prometheus_handle(&self) -> &PrometheusHandle {
        &self.prom
    }

    /// The exemplar side-table, when [`PrometheusConfig::exemplars`] is on.
    pub fn exemplars(&self) -> Option<Exemplars> {
        self.extra.exemplars.clone()
    }

    /// The metrics in the OpenMetrics text format, with exemplars when they are on.
    pub fn render_openmetrics(&self) -> String {
        let text = self.render();
        self.extra
            .exemplars
            .clone()
            .unwrap_or_default()
            .to_openmetrics(&text, &self.extra.global_labels)
    }

    /// The `/metrics` response for a request with these headers: OpenMetrics with
    /// exemplars when they are on and `Accept` asks for `application/openmetrics-text`,
    /// else the Prometheus text format.
    pub fn response(&self, request_headers: &HeaderMap) -> Response {
        let wants_openmetrics = self.extra.exemplars.is_some()
            && request_headers.get_all(header::ACCEPT).iter().any(|v| {
                v.as_bytes()
                    .windows(OPENMETRICS.len())
                    .any(|w| w.eq_ignore_ascii_case(OPENMETRICS))
            });
        let (content_type, body) = if wants_openmetrics {
            (OPENMETRICS_CONTENT_TYPE, self.render_openmetrics())
        } else {
            (TEXT_CONTENT_TYPE, self.render())
        };
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response()
    }
}

const OPENMETRICS: &[u8] = b"application/openmetrics-text";

/// A router serving `GET /metrics` from `handle`. Merge it into the main app, or serve
/// it on a separate admin listener so metrics need not be public:
///
/// ```no_run
/// # async fn run(handle: telltale_metrics::MetricsHandle) -> std::io::Result<()> {
/// let admin = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
/// axum::serve(admin, telltale_metrics::metrics_router::<()>(handle)).await
/// # }
/// ```
pub fn metrics_router<S>(handle: MetricsHandle) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        METRICS_PATH,
        get(move |headers: HeaderMap| {
            let handle = handle.clone();
            async move { handle.response(&headers) }
        }),
    )
}
