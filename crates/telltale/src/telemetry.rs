//! `Telemetry`: one builder that sets up logs, traces and metrics for a service.

use std::sync::{Mutex, OnceLock};
#[cfg(feature = "otlp-metrics")]
use std::time::Duration;

use axum::Router;
use telltale_log::{AccessLogLayer, LogConfig, LogFormat, LogGuard};
use telltale_metrics::names::Scheme;
use telltale_metrics::{MetricsHandle, MetricsLayer, PrometheusConfig};
use telltale_request_id::RequestIdLayer;
use telltale_trace::export::OtlpProtocol;
use telltale_trace::{Sampling, TraceGuard, Tracing, TracingConfig};

use crate::server::ServerLayer;

/// Why telemetry could not be set up. Each message names the setting to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The service name is empty.
    #[error(
        "the service name is empty: pass the name your dashboards and alerts use, e.g. Telemetry::builder(\"orders-api\")"
    )]
    EmptyServiceName,
    /// Log configuration was rejected.
    #[error("logs: {0}")]
    Log(#[from] telltale_log::LogConfigError),
    /// Metrics configuration was rejected (or a recorder is already installed).
    #[error("metrics: {0}")]
    Prometheus(#[from] telltale_metrics::PrometheusError),
    /// Trace configuration was rejected.
    #[error("traces: {0}")]
    Trace(#[from] telltale_trace::TraceConfigError),
    /// The metrics layer configuration was rejected.
    #[error("metrics: {0}")]
    MetricsLayer(#[from] telltale_metrics::ConfigError),
    /// The OTLP metrics push configuration was rejected (feature `otlp-metrics`).
    #[cfg(feature = "otlp-metrics")]
    #[error("OTLP metrics: {0}")]
    OtlpMetrics(#[from] crate::otlp_metrics::OtlpMetricsError),
}

/// Builder for [`Telemetry`]. See [`Telemetry::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TelemetryBuilder {
    service: String,
    environment: Option<String>,
    version: Option<String>,
    commit: Option<String>,
    log_format: Option<LogFormat>,
    logs: bool,
    redact: Vec<String>,
    prometheus: bool,
    scheme: Scheme,
    duration_buckets: Option<Vec<f64>>,
    sampling: Option<Sampling>,
    otlp: Otlp,
    traceresponse: bool,
    log_writer: Option<LogSink>,
    #[cfg(feature = "otlp-metrics")]
    otlp_metrics: crate::otlp_metrics::OtlpMetricsSetting,
    #[cfg(feature = "otlp-metrics")]
    otlp_metrics_interval: Option<Duration>,
    #[cfg(feature = "otlp-metrics")]
    otlp_metrics_temporality: Option<crate::otlp_metrics::Temporality>,
}

/// Where log lines go: stdout unless [`TelemetryBuilder::log_writer`] says otherwise.
struct LogSink(Box<dyn std::io::Write + Send + 'static>);

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSink")
    }
}

impl Clone for LogSink {
    fn clone(&self) -> Self {
        // A builder is cloned only before `init`; a clone writes to stdout.
        LogSink(Box::new(std::io::stdout()))
    }
}

#[derive(Debug, Clone)]
enum Otlp {
    None,
    FromEnv,
    Endpoint(String, OtlpProtocol),
    Stdout,
}

/// The process's tracing, set by the first [`TelemetryBuilder::init`], so clients built
/// without a `Telemetry` at hand (`telltale::client::reqwest`) still open client spans.
static TRACING: OnceLock<Tracing> = OnceLock::new();

#[cfg(feature = "reqwest")]
pub(crate) fn global_tracing() -> Option<&'static Tracing> {
    TRACING.get()
}

impl TelemetryBuilder {
    /// Export spans over OTLP as the standard variables say: `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (unset: no export), `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`),
    /// `OTEL_EXPORTER_OTLP_HEADERS`. `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
    /// `OTEL_TRACES_SAMPLER(_ARG)` and `OTEL_SDK_DISABLED` are always honoured.
    /// Without an exporter, trace context is still propagated and logs still carry ids.
    pub fn otlp_from_env(mut self) -> Self {
        self.otlp = Otlp::FromEnv;
        self
    }

    /// Export spans over OTLP to `endpoint` (e.g. `http://collector:4317` for gRPC).
    pub fn otlp(mut self, endpoint: impl Into<String>, protocol: OtlpProtocol) -> Self {
        self.otlp = Otlp::Endpoint(endpoint.into(), protocol);
        self
    }

    /// Print finished spans on stdout (development).
    pub fn stdout_spans(mut self) -> Self {
        self.otlp = Otlp::Stdout;
        self
    }

    /// Sampling of root traces: e.g. `Sampling::ratio(0.05).keep_errors().keep_slower_than(d)`.
    /// Default: every trace, parent-based.
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = Some(sampling);
        self
    }

    /// Send the trace id back in a `traceresponse` header (W3C Trace Context Level 2). Off
    /// by default: it tells clients your trace ids.
    pub fn traceresponse(mut self, enabled: bool) -> Self {
        self.traceresponse = enabled;
        self
    }

    /// Installs the Prometheus recorder (global labels `service`, `environment`, `version`;
    /// a `build_info{version,commit}` gauge; the trace id of sampled requests as an
    /// OpenMetrics exemplar on latency buckets when the scraper asks for OpenMetrics;
    /// process metrics and, when `init` runs inside a
    /// tokio runtime, that runtime's metrics, sampled at scrape time) and serves it on [`Telemetry::metrics_router`]. Without it the RED
    /// layer still runs and records into whatever `metrics` recorder the process has.
    pub fn prometheus(mut self) -> Self {
        self.prometheus = true;
        self
    }

    /// Push every metric over OTLP to `endpoint` (e.g. `http://collector:4317` for gRPC,
    /// `http://collector:4318` for HTTP, `/v1/metrics` appended), as well as or instead of
    /// [`prometheus`](Self::prometheus). See [`crate::otlp_metrics`]. Feature `otlp-metrics`.
    #[cfg(feature = "otlp-metrics")]
    pub fn otlp_metrics(mut self, endpoint: impl Into<String>, protocol: OtlpProtocol) -> Self {
        self.otlp_metrics = crate::otlp_metrics::OtlpMetricsSetting::Endpoint(endpoint.into(), protocol);
        self
    }

    /// Push every metric over OTLP as the standard variables say: `OTEL_METRICS_EXPORTER`
    /// (`otlp` or `none`), `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (unset: no push), `OTEL_EXPORTER_OTLP_(METRICS_)PROTOCOL`,
    /// `OTEL_EXPORTER_OTLP_(METRICS_)HEADERS`, `OTEL_METRIC_EXPORT_INTERVAL` (ms). See
    /// [`crate::otlp_metrics`]. Feature `otlp-metrics`.
    #[cfg(feature = "otlp-metrics")]
    pub fn otlp_metrics_from_env(mut self) -> Self {
        self.otlp_metrics = crate::otlp_metrics::OtlpMetricsSetting::FromEnv;
        self
    }

    /// How often metrics are pushed over OTLP (default 60 s, or `OTEL_METRIC_EXPORT_INTERVAL`
    /// with [`otlp_metrics_from_env`](Self::otlp_metrics_from_env); this setting wins).
    /// Zero is an error from [`init`](Self::init). Feature `otlp-metrics`.
    #[cfg(feature = "otlp-metrics")]
    pub fn otlp_metrics_interval(mut self, every: Duration) -> Self {
        self.otlp_metrics_interval = Some(every);
        self
    }

    /// Whether pushed sums and histograms are cumulative (the default) or deltas, for
    /// backends that want deltas. Wins over
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, which is read otherwise, with
    /// an endpoint from code or from the environment. Feature `otlp-metrics`.
    ///
    /// ```
    /// use telltale::otlp_metrics::Temporality;
    /// use telltale::trace::export::OtlpProtocol;
    ///
    /// let builder = telltale::Telemetry::builder("orders-api")
    ///     .otlp_metrics("http://collector:4318", OtlpProtocol::HttpProtobuf)
    ///     .otlp_metrics_temporality(Temporality::Delta);
    /// # drop(builder);
    /// ```
    #[cfg(feature = "otlp-metrics")]
    pub fn otlp_metrics_temporality(mut self, temporality: crate::otlp_metrics::Temporality) -> Self {
        self.otlp_metrics_temporality = Some(temporality);
        self
    }

    /// The metric naming scheme (default: OpenTelemetry semantic conventions).
    pub fn metrics_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Histogram buckets for durations, in seconds (default: the OpenTelemetry HTTP
    /// recommendation, `telltale::metrics::names::DEFAULT_DURATION_BUCKETS`).
    pub fn duration_buckets(mut self, buckets: &[f64]) -> Self {
        self.duration_buckets = Some(buckets.to_vec());
        self
    }

    /// The deployment environment (`prod`, `staging`, …): a log key and a metric label.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// The service version, e.g. `env!("CARGO_PKG_VERSION")`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The source commit, for deploy markers (`build_info{commit}`).
    pub fn commit(mut self, commit: impl Into<String>) -> Self {
        self.commit = Some(commit.into());
        self
    }

    /// JSON logs on stdout with stable keys, filtered by `RUST_LOG` (default `info`).
    /// `TELLTALE_LOG_FORMAT=pretty` still switches to the human format for development
    /// unless [`log_format`](Self::log_format) pins one.
    pub fn json_logs(mut self) -> Self {
        self.logs = true;
        self
    }

    /// Writes log lines to `writer` instead of stdout (still through the bounded
    /// non-blocking buffer). For tests and benchmarks, or a file.
    pub fn log_writer(mut self, writer: impl std::io::Write + Send + 'static) -> Self {
        self.logs = true;
        self.log_writer = Some(LogSink(Box::new(writer)));
        self
    }

    /// Pins the log format, ignoring `TELLTALE_LOG_FORMAT`.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.logs = true;
        self.log_format = Some(format);
        self
    }

    /// Field and header names to redact besides the defaults (authorization, cookie,
    /// set-cookie, password, passwd, secret, token, api_key, apikey).
    pub fn redact<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        self.redact.extend(names.into_iter().map(Into::into));
        self
    }

    fn log_config(&self) -> LogConfig {
        let mut config = LogConfig::new(self.service.clone()).redact(self.redact.iter().map(String::as_str));
        if let Some(env) = &self.environment {
            config = config.environment(env.clone());
        }
        if let Some(v) = &self.version {
            config = config.version(v.clone());
        }
        if let Some(f) = self.log_format {
            config = config.format(f);
        }
        config
    }

    /// Validates everything, installs the global subscriber (when logs are on) and returns
    /// the [`Telemetry`] handle. Dropping it flushes buffered log lines (and spans).
    pub fn init(mut self) -> Result<Telemetry, TelemetryError> {
        if self.service.trim().is_empty() {
            return Err(TelemetryError::EmptyServiceName);
        }
        let log_config = self.log_config();
        let access_log = log_config.access_log().build()?;
        // Settings users get wrong (RUST_LOG, OTEL_*) are checked before anything global
        // (recorder, tracer provider, subscriber) is installed.
        if self.logs {
            log_config.filter()?;
        }
        #[cfg(feature = "otlp-metrics")]
        let otlp_metrics = self.otlp_metrics_pipeline(&|k| std::env::var(k).ok())?;
        let mut trace_config = TracingConfig::new(self.service.clone());
        if let Some(env) = &self.environment {
            trace_config = trace_config.environment(env.clone());
        }
        if let Some(v) = &self.version {
            trace_config = trace_config.version(v.clone());
        }
        if let Some(s) = self.sampling.clone() {
            trace_config = trace_config.sampling(s);
        }
        trace_config = match &self.otlp {
            Otlp::None => trace_config,
            Otlp::FromEnv => trace_config.otlp_from_env(),
            Otlp::Endpoint(endpoint, protocol) => trace_config.otlp(endpoint.clone(), *protocol),
            Otlp::Stdout => trace_config.stdout(),
        };
        // Nothing global yet: the provider becomes the OpenTelemetry global (and the
        // facade's `TRACING`) only once every install below has succeeded, so a failed
        // `init` leaves no provider behind that its dropped guard has shut down.
        // (`tracing` offers no public way to ask whether a global subscriber is set, so a
        // refused subscriber is only found when installing it, after the recorder.)
        let (tracing, trace_guard) = trace_config.set_global(false).build()?;
        #[cfg(feature = "otlp-metrics")]
        let (mut otlp_recorder, otlp_provider) = match otlp_metrics {
            Some(p) => (Some(p.recorder), Some(p.provider)),
            None => (None, None),
        };
        let metrics_handle = if self.prometheus {
            let mut config = PrometheusConfig::new(self.service.clone());
            if let Some(env) = &self.environment {
                config = config.environment(env.clone());
            }
            if let Some(v) = &self.version {
                config = config.version(v.clone());
            }
            if let Some(c) = &self.commit {
                config = config.commit(c.clone());
            }
            if let Some(b) = &self.duration_buckets {
                config = config.duration_buckets(b);
            }
            let config = config.exemplars(true);
            #[cfg(feature = "otlp-metrics")]
            let handle = match otlp_recorder.take() {
                // Both get every metric: the Prometheus recorder and the OTLP bridge.
                Some(otlp) => config.install_with(|prometheus| {
                    metrics_util::layers::FanoutBuilder::default()
                        .add_recorder(prometheus)
                        .add_recorder(otlp)
                        .build()
                })?,
                None => config.install()?,
            };
            #[cfg(not(feature = "otlp-metrics"))]
            let handle = config.install()?;
            handle.register_collector(telltale_metrics::process::ProcessCollector::new());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                handle.register_collector(telltale_metrics::runtime::RuntimeCollector::new(runtime));
            }
            Some(handle)
        } else {
            None
        };
        #[cfg(feature = "otlp-metrics")]
        if let Some(otlp) = otlp_recorder {
            metrics::set_global_recorder(otlp)
                .map_err(|_| crate::otlp_metrics::OtlpMetricsError::RecorderAlreadyInstalled)?;
        }
        let mut metrics = MetricsLayer::builder().scheme(self.scheme);
        if let Some(exemplars) = metrics_handle.as_ref().and_then(MetricsHandle::exemplars) {
            metrics = metrics.exemplars(exemplars);
        }
        let metrics = metrics.build()?;
        let log_guard = if self.logs {
            Some(install_logs(&log_config, self.log_writer.take())?)
        } else {
            None
        };
        tracing.set_global();
        let _ = TRACING.set(tracing.clone());
        Ok(Telemetry {
            trace: tracing.server_layer().with_traceresponse(self.traceresponse),
            tracing,
            trace_guard: Mutex::new(Some(trace_guard)),
            metrics,
            metrics_handle,
            service: self.service,
            environment: self.environment,
            version: self.version,
            commit: self.commit,
            access_log,
            log_guard: Mutex::new(log_guard),
            #[cfg(feature = "otlp-metrics")]
            otlp_provider: Mutex::new(otlp_provider),
        })
    }

    /// Resolves and validates the OTLP metrics settings and builds the push pipeline
    /// (nothing global: the recorder is installed by `init` afterwards).
    #[cfg(feature = "otlp-metrics")]
    fn otlp_metrics_pipeline(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<crate::otlp_metrics::OtlpMetricsPipeline>, TelemetryError> {
        use crate::otlp_metrics::{DEFAULT_DURATION_BUCKETS, ServiceInfo, pipeline};
        let in_code = crate::otlp_metrics::InCode {
            interval: self.otlp_metrics_interval,
            temporality: self.otlp_metrics_temporality,
        };
        let Some(target) = self.otlp_metrics.resolve(in_code, env)? else {
            return Ok(None);
        };
        let buckets = self
            .duration_buckets
            .as_deref()
            .unwrap_or(DEFAULT_DURATION_BUCKETS);
        if buckets.is_empty()
            || buckets.iter().any(|b| !b.is_finite())
            || buckets.windows(2).any(|w| w[0] >= w[1])
        {
            // The same rule the Prometheus recorder applies, checked before anything global.
            return Err(TelemetryError::Prometheus(
                telltale_metrics::PrometheusError::Config(format!(
                    "duration_buckets must be non-empty, finite and strictly increasing, got {buckets:?}"
                )),
            ));
        }
        let service = ServiceInfo {
            name: &self.service,
            version: self.version.as_deref(),
            environment: self.environment.as_deref(),
        };
        Ok(Some(pipeline(&target, &service, buckets, env)?))
    }
}

/// Telemetry for one service: the layers, routers and clients that make it explain itself.
///
/// ```no_run
/// use axum::{routing::get, Router};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let telemetry = telltale::Telemetry::builder("orders-api")
///     .environment("prod")
///     .version(env!("CARGO_PKG_VERSION"))
///     .json_logs()
///     .otlp_from_env() // OTEL_EXPORTER_OTLP_ENDPOINT unset: no export
///     .prometheus()
///     .init()?; // keep it alive: dropping it flushes logs
///
/// let app: Router = Router::new()
///     .route("/orders/{id}", get(|| async { "order" }))
///     .merge(telemetry.metrics_router())
///     .layer(telemetry.server_layer());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Telemetry {
    service: String,
    environment: Option<String>,
    version: Option<String>,
    commit: Option<String>,
    access_log: AccessLogLayer,
    tracing: Tracing,
    trace: telltale_trace::TraceLayer,
    trace_guard: Mutex<Option<TraceGuard>>,
    metrics: MetricsLayer,
    metrics_handle: Option<MetricsHandle>,
    log_guard: Mutex<Option<LogGuard>>,
    #[cfg(feature = "otlp-metrics")]
    otlp_provider: Mutex<Option<opentelemetry_sdk::metrics::SdkMeterProvider>>,
}

impl Telemetry {
    /// Starts configuring telemetry for `service` (its name in logs, traces and metrics).
    pub fn builder(service: impl Into<String>) -> TelemetryBuilder {
        TelemetryBuilder {
            service: service.into(),
            environment: None,
            version: None,
            commit: None,
            log_format: None,
            logs: false,
            redact: Vec::new(),
            prometheus: false,
            scheme: Scheme::default(),
            duration_buckets: None,
            sampling: None,
            otlp: Otlp::None,
            traceresponse: false,
            log_writer: None,
            #[cfg(feature = "otlp-metrics")]
            otlp_metrics: crate::otlp_metrics::OtlpMetricsSetting::Off,
            #[cfg(feature = "otlp-metrics")]
            otlp_metrics_interval: None,
            #[cfg(feature = "otlp-metrics")]
            otlp_metrics_temporality: None,
        }
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The environment, if set.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The version, if set.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The commit, if set.
    pub fn commit(&self) -> Option<&str> {
        self.commit.as_deref()
    }

    /// The server layer: request id → trace → RED metrics → access log. Add it with
    /// `Router::layer` after the routes (see [`crate::server`]).
    pub fn server_layer(&self) -> ServerLayer {
        ServerLayer {
            request_id: RequestIdLayer::new(),
            trace: self.trace.clone(),
            metrics: self.metrics.clone(),
            access_log: self.access_log.clone(),
        }
    }

    /// `GET /metrics` in the Prometheus text format. Mount it on the main app with
    /// `.merge(...)`, or serve it on a separate admin listener so metrics need not be
    /// public. Without [`prometheus`](TelemetryBuilder::prometheus) it is an empty router.
    pub fn metrics_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        match &self.metrics_handle {
            Some(handle) => telltale_metrics::metrics_router(handle.clone()),
            None => Router::new(),
        }
    }

    /// The Prometheus handle, when [`prometheus`](TelemetryBuilder::prometheus) was called.
    pub fn metrics_handle(&self) -> Option<&MetricsHandle> {
        self.metrics_handle.as_ref()
    }

    /// The tracing set-up: client layers for tower and tonic clients, the gRPC server
    /// layer, the OpenTelemetry provider.
    pub fn tracing(&self) -> &Tracing {
        &self.tracing
    }

    /// The OpenTelemetry meter provider of the OTLP metrics push, when one runs: add your
    /// own OpenTelemetry instruments to the same export (feature `otlp-metrics`).
    #[cfg(feature = "otlp-metrics")]
    pub fn otlp_meter_provider(&self) -> Option<opentelemetry_sdk::metrics::SdkMeterProvider> {
        self.otlp_provider
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Flushes and stops what [`init`](TelemetryBuilder::init) started. Also done on drop.
    ///
    /// The last span export and, with OTLP metrics, the last metrics push run at the same
    /// time, each waiting at most 5 s for its collector: an unreachable collector costs at
    /// most 5 s of shutdown, not 5 s per signal (keep the drain delay, the grace deadline
    /// and these 5 s within the pod's termination grace period). Then the log writer is
    /// flushed, its lines (the warnings of a failed export included) last.
    pub fn shutdown(&self) {
        #[cfg(feature = "otlp-metrics")]
        let metrics = self.otlp_provider.lock().ok().and_then(|mut p| p.take());
        let traces = self.trace_guard.lock().ok().and_then(|mut g| g.take());
        std::thread::scope(|scope| {
            #[cfg(feature = "otlp-metrics")]
            if let Some(p) = metrics {
                scope.spawn(move || {
                    if let Err(e) = p.shutdown() {
                        tracing::warn!(error = %e, "pushing the last metrics at shutdown failed");
                    }
                });
            }
            if let Some(g) = traces
                && let Err(e) = g.shutdown()
            {
                tracing::warn!(error = %e, "flushing spans at shutdown failed");
            }
            let _ = scope;
        });
        if let Ok(mut guard) = self.log_guard.lock() {
            drop(guard.take());
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the global subscriber: `RUST_LOG` filter and the configured format, writing
/// through the bounded non-blocking writer to `sink` (stdout by default).
fn install_logs(config: &LogConfig, sink: Option<LogSink>) -> Result<LogGuard, TelemetryError> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = config.filter()?;
    let (writer, guard) = match sink {
        Some(LogSink(w)) => config.non_blocking(w)?,
        None => config.non_blocking(std::io::stdout())?,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(config.layer(writer)?)
        .try_init()
        .map_err(|e| TelemetryError::Log(telltale_log::LogConfigError::AlreadyInitialized(e.to_string())))?;
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    // None of these reaches a global install: they fail on validation first.

    #[test]
    fn an_empty_service_name_is_an_error_that_says_what_to_pass() {
        let err = Telemetry::builder("  ").init().unwrap_err();
        assert!(matches!(err, TelemetryError::EmptyServiceName));
        assert!(
            err.to_string().contains("Telemetry::builder(\"orders-api\")"),
            "{err}"
        );
    }

    #[cfg(feature = "otlp-metrics")]
    #[test]
    fn bad_otlp_metrics_settings_are_errors_from_init_before_anything_global() {
        use std::time::Duration;
        let err = Telemetry::builder("svc")
            .prometheus()
            .otlp_metrics("collector:4317", OtlpProtocol::Grpc)
            .init()
            .unwrap_err();
        assert!(matches!(err, TelemetryError::OtlpMetrics(_)), "{err:?}");
        assert!(err.to_string().starts_with("OTLP metrics: "), "{err}");
        assert!(err.to_string().contains("http://collector:4317"), "{err}");
        let err = Telemetry::builder("svc")
            .otlp_metrics("http://collector:4317", OtlpProtocol::Grpc)
            .otlp_metrics_interval(Duration::ZERO)
            .init()
            .unwrap_err();
        assert!(err.to_string().contains("otlp_metrics_interval"), "{err}");
        let err = Telemetry::builder("svc")
            .duration_buckets(&[0.5, 0.1])
            .otlp_metrics("http://collector:4317", OtlpProtocol::Grpc)
            .init()
            .unwrap_err();
        assert!(err.to_string().contains("strictly increasing"), "{err}");
        // Refused before the tracer provider (or any recorder) was installed.
        assert!(TRACING.get().is_none());
        assert!(metrics::set_global_recorder(metrics::NoopRecorder).is_ok());
    }

    #[test]
    fn a_sampling_ratio_outside_zero_to_one_is_an_error_not_a_panic() {
        let err = Telemetry::builder("svc")
            .sampling(Sampling::ratio(1.7))
            .init()
            .unwrap_err();
        assert!(matches!(err, TelemetryError::Trace(_)), "{err:?}");
        assert!(err.to_string().starts_with("traces: "), "{err}");
    }
}
