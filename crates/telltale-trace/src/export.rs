//! Export set-up: [`TracingConfig`] builds the pipeline, the batch exporter (OTLP over
//! gRPC or HTTP/protobuf, or stdout), the resource, the SDK provider, and a
//! [`TraceGuard`] that flushes on drop.
//!
//! ```
//! use std::time::Duration;
//! use telltale_trace::{Sampling, TracingConfig};
//!
//! let (tracing, guard) = TracingConfig::new("orders-api")
//!     .version("1.2.3")
//!     .environment("prod")
//!     .sampling(Sampling::ratio(0.05).keep_errors().keep_slower_than(Duration::from_millis(500)))
//!     .otlp_from_env() // OTEL_EXPORTER_OTLP_ENDPOINT unset: no export
//!     .build()
//!     .unwrap();
//! let layer = tracing.server_layer(); // add with `Router::layer`
//! # drop((layer, guard));
//! assert!(TracingConfig::new("x").sampling(Sampling::ratio(1.7)).build().is_err());
//! ```
//!
//! # Environment
//!
//! Always honoured: `OTEL_SDK_DISABLED=true` (nothing exported; ids still propagated),
//! `OTEL_SERVICE_NAME` (wins over the name in code, as the specification says),
//! `OTEL_RESOURCE_ATTRIBUTES` (attributes set in code win), `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG` (`always_on`, `always_off`, `traceidratio`,
//! `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`; they
//! replace the ratio set in code, the keep-errors/keep-slow rules stay). With
//! [`TracingConfig::otlp_from_env`]: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; unset means no export),
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`, the default) and
//! `OTEL_EXPORTER_OTLP_HEADERS`. A value that makes no sense is an error from `build()`.
//!
//! # A dead collector never hurts a request
//!
//! Finished spans go into a bounded queue ([`TracingConfig::queue_size`], default 2048)
//! drained by the SDK's batch processor on its own thread; each export runs on a private
//! single-thread runtime with a timeout ([`TracingConfig::export_timeout`], default 10 s).
//! When the queue is full the span is dropped and counted
//! ([`EXPORT_SPANS_DROPPED`](crate::names::EXPORT_SPANS_DROPPED)); failed exports are
//! counted ([`EXPORT_FAILURES`](crate::names::EXPORT_FAILURES)); both are logged at most
//! once per 30 s. Nothing on the request path waits for the exporter.
//!
//! The exporter runs on its own runtime (not the application's) because the SDK's batch
//! processor exports from a plain thread, where tonic and async reqwest would find no
//! reactor, and so that a guard dropped at the end of `#[tokio::main]` cannot deadlock a
//! single-threaded runtime waiting for its own export.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};

use crate::client::ClientTraceLayer;
use crate::names;
use crate::pipeline::SpanPipeline;
use crate::sampling::{Sampling, SamplingError};
use crate::server::TraceLayer;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (usually port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (usually port 4318); `/v1/traces` is appended
    /// to a base endpoint.
    HttpProtobuf,
}

type ExporterFactory = Box<dyn FnOnce(ExportSettings<'_>) -> Box<dyn SpanProcessor> + Send>;

enum Exporter {
    None,
    Otlp {
        endpoint: String,
        protocol: OtlpProtocol,
        headers: Vec<(String, String)>,
    },
    Stdout,
    Custom(ExporterFactory),
}

/// What a custom exporter gets to build its processor with.
struct ExportSettings<'a> {
    resource: &'a Resource,
    batch: BatchSettings,
    counters: Arc<ExportCounters>,
}

#[derive(Clone, Copy)]
struct BatchSettings {
    queue_size: usize,
    batch_size: usize,
    interval: Duration,
    timeout: Duration,
}

/// Tracing configuration: a typed builder; [`TracingConfig::build`] validates it.
///
/// Defaults: sampling [`Sampling::default`] (everything, parent-based), no exporter,
/// queue 2048 spans, batches of 512, export every 5 s with a 10 s timeout, installs the
/// global OpenTelemetry provider and W3C propagator.
pub struct TracingConfig {
    service_name: String,
    version: Option<String>,
    environment: Option<String>,
    attributes: Vec<KeyValue>,
    sampling: Sampling,
    exporter: Exporter,
    otlp_from_env: bool,
    batch: BatchSettings,
    set_global: bool,
}

impl fmt::Debug for TracingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingConfig")
            .field("service_name", &self.service_name)
            .field("sampling", &self.sampling)
            .finish_non_exhaustive()
    }
}

impl TracingConfig {
    /// Configuration for the service `service_name` (`service.name`).
    pub fn new(service_name: impl Into<String>) -> Self {
        TracingConfig {
            service_name: service_name.into(),
            version: None,
            environment: None,
            attributes: Vec::new(),
            sampling: Sampling::default(),
            exporter: Exporter::None,
            otlp_from_env: false,
            batch: BatchSettings {
                queue_size: 2048,
                batch_size: 512,
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(10),
            },
            set_global: true,
        }
    }

    /// `service.version`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// `deployment.environment.name` (e.g. `prod`).
    pub fn environment(mut self, env: impl Into<String>) -> Self {
        self.environment = Some(env.into());
        self
    }

    /// An extra resource attribute.
    pub fn resource_attribute(mut self, kv: KeyValue) -> Self {
        self.attributes.push(kv);
        self
    }

    /// The sampling rules (see [`Sampling`]).
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Export over OTLP to `endpoint` (for HTTP, a base like `http://collector:4318` or the
    /// full `…/v1/traces` URL).
    pub fn otlp(mut self, endpoint: impl Into<String>, protocol: OtlpProtocol) -> Self {
        self.exporter = Exporter::Otlp {
            endpoint: endpoint.into(),
            protocol,
            headers: Vec::new(),
        };
        self
    }

    /// Add a header (gRPC metadata) sent with every OTLP export.
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Exporter::Otlp { headers, .. } = &mut self.exporter {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// Read the OTLP endpoint, protocol and headers from the standard environment variables
    /// at `build()`; an unset endpoint means no export.
    pub fn otlp_from_env(mut self) -> Self {
        self.otlp_from_env = true;
        self
    }

    /// Print spans on stdout (development).
    pub fn stdout(mut self) -> Self {
        self.exporter = Exporter::Stdout;
        self
    }

    /// Export through any OpenTelemetry [`SpanExporter`] (e.g. an in-memory one in tests),
    /// with the same bounded batching and counting as OTLP.
    pub fn exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.exporter = Exporter::Custom(Box::new(move |s: ExportSettings<'_>| {
            Box::new(BoundedBatch::new(exporter, s)) as Box<dyn SpanProcessor>
        }));
        self
    }

    /// The most spans waiting for export (default 2048); more are dropped and counted.
    pub fn queue_size(mut self, n: usize) -> Self {
        self.batch.queue_size = n;
        self
    }

    /// How often the batch processor exports (default 5 s).
    pub fn export_interval(mut self, every: Duration) -> Self {
        self.batch.interval = every;
        self
    }

    /// The longest one export may take (default 10 s).
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.batch.timeout = timeout;
        self
    }

    /// Whether to install the provider and the W3C propagator as OpenTelemetry globals, so
    /// `opentelemetry::global::tracer` spans join the same traces (default: yes).
    pub fn set_global(mut self, yes: bool) -> Self {
        self.set_global = yes;
        self
    }

    /// Validates, reads the environment, and builds.
    pub fn build(self) -> Result<(Tracing, TraceGuard), TraceConfigError> {
        self.build_with_env(&|k| std::env::var(k).ok())
    }

    fn build_with_env(
        mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Tracing, TraceGuard), TraceConfigError> {
        let disabled = match env("OTEL_SDK_DISABLED").as_deref().map(str::trim) {
            None | Some("") | Some("false") | Some("FALSE") | Some("False") => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) => return Err(TraceConfigError::env("OTEL_SDK_DISABLED", v, "use true or false")),
        };
        self.sampling = sampling_from_env(self.sampling, env)?;
        self.sampling.validate()?;
        if self.batch.queue_size == 0 {
            return Err(TraceConfigError::Invalid("queue_size must be at least 1"));
        }
        if self.batch.interval.is_zero() || self.batch.timeout.is_zero() {
            return Err(TraceConfigError::Invalid(
                "export_interval and export_timeout must be non-zero",
            ));
        }
        self.batch.batch_size = self.batch.batch_size.min(self.batch.queue_size);
        if self.otlp_from_env
            && let Some(otlp) = otlp_from_env(env)?
        {
            self.exporter = otlp;
        }
        let resource = self.resource(env)?;
        let counters = Arc::new(ExportCounters::default());
        let settings = ExportSettings {
            resource: &resource,
            batch: self.batch,
            counters: counters.clone(),
        };
        let downstream: Option<Box<dyn SpanProcessor>> = if disabled {
            None
        } else {
            match self.exporter {
                Exporter::None => None,
                Exporter::Stdout => Some(Box::new(BoundedBatch::new(
                    opentelemetry_stdout::SpanExporter::default(),
                    settings,
                ))),
                Exporter::Custom(f) => Some(f(settings)),
                Exporter::Otlp {
                    endpoint,
                    protocol,
                    headers,
                } => Some(otlp_processor(&endpoint, protocol, &headers, settings)?),
            }
        };
        let pipeline = SpanPipeline::with_downstream(&self.sampling, downstream)?;
        let provider = SdkTracerProvider::builder()
            .with_sampler(pipeline.sampler())
            .with_span_processor(pipeline.processor())
            .with_resource(resource)
            .build();
        let tracing = Tracing {
            pipeline: pipeline.clone(),
            provider: provider.clone(),
            counters,
        };
        if self.set_global {
            tracing.set_global();
        }
        Ok((
            tracing,
            TraceGuard {
                provider: Some(provider),
                pipeline,
            },
        ))
    }

    fn resource(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Resource, TraceConfigError> {
        service_resource(
            &self.service_name,
            self.version.as_deref(),
            self.environment.as_deref(),
            &self.attributes,
            env,
        )
    }
}

/// This process's `service.instance.id`: a random UUID (v4) drawn once per process, so
/// every signal (traces, pushed metrics) carries the same one.
fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
            .into_uuid()
            .hyphenated()
            .to_string()
    })
}

/// The OpenTelemetry resource telltale describes a service with, for every signal: the
/// trace pipeline here and the facade's OTLP metrics push use it, so both carry the same
/// attributes and the same `service.instance.id`.
///
/// In order (a later attribute with the same key wins): `OTEL_RESOURCE_ATTRIBUTES`;
/// `telemetry.sdk.*`, `process.pid`, `process.runtime.name`, `process.executable.name`,
/// `host.name` (`HOSTNAME` or `/etc/hostname`), `host.arch`, `os.type`;
/// `service.instance.id` (one random UUID per process, unless `OTEL_RESOURCE_ATTRIBUTES`
/// names one); `service.version` and `deployment.environment.name` when given; `extra`;
/// and `service.name` — `OTEL_SERVICE_NAME` when set, else `service`. `env` looks up an
/// environment variable (`|k| std::env::var(k).ok()` in production).
///
/// ```
/// use telltale_trace::export::service_resource;
///
/// let r = service_resource("orders-api", Some("1.2.3"), Some("prod"), &[], &|_| None).unwrap();
/// let get = |k: &'static str| r.get(&opentelemetry::Key::from_static_str(k)).map(|v| v.to_string());
/// assert_eq!(get("service.name").as_deref(), Some("orders-api"));
/// assert_eq!(get("deployment.environment.name").as_deref(), Some("prod"));
/// assert_eq!(get("service.instance.id").map(|id| id.len()), Some(36));
/// assert!(service_resource(" ", None, None, &[], &|_| None).is_err());
/// ```
pub fn service_resource(
    service: &str,
    version: Option<&str>,
    environment: Option<&str>,
    extra: &[KeyValue],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resource, TraceConfigError> {
    let mut attrs: Vec<KeyValue> = Vec::new();
    let mut instance_given = false;
    if let Some(raw) = env("OTEL_RESOURCE_ATTRIBUTES") {
        for (k, v) in parse_pairs(&raw, "OTEL_RESOURCE_ATTRIBUTES")? {
            instance_given |= k == "service.instance.id";
            attrs.push(KeyValue::new(k, v));
        }
    }
    attrs.push(KeyValue::new("telemetry.sdk.name", "opentelemetry"));
    attrs.push(KeyValue::new("telemetry.sdk.language", "rust"));
    attrs.push(KeyValue::new("process.pid", i64::from(std::process::id())));
    attrs.push(KeyValue::new("process.runtime.name", "rust"));
    if let Some(exe) = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    {
        attrs.push(KeyValue::new("process.executable.name", exe));
    }
    if let Some(host) = host_name(env) {
        attrs.push(KeyValue::new("host.name", host));
    }
    attrs.push(KeyValue::new("host.arch", std::env::consts::ARCH));
    attrs.push(KeyValue::new("os.type", std::env::consts::OS));
    if !instance_given {
        attrs.push(KeyValue::new("service.instance.id", instance_id()));
    }
    if let Some(v) = version {
        attrs.push(KeyValue::new("service.version", v.to_owned()));
    }
    if let Some(e) = environment {
        attrs.push(KeyValue::new("deployment.environment.name", e.to_owned()));
    }
    attrs.extend(extra.iter().cloned());
    let name = env("OTEL_SERVICE_NAME")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| service.to_owned());
    if name.trim().is_empty() {
        return Err(TraceConfigError::Invalid("the service name is empty"));
    }
    Ok(Resource::builder_empty()
        .with_attributes(attrs)
        .with_service_name(name)
        .build())
}

fn host_name(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env("HOSTNAME")
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn sampling_from_env(
    mut sampling: Sampling,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Sampling, TraceConfigError> {
    let Some(name) = env("OTEL_TRACES_SAMPLER") else {
        return Ok(sampling);
    };
    let arg = env("OTEL_TRACES_SAMPLER_ARG");
    let ratio = || -> Result<f64, TraceConfigError> {
        match arg.as_deref().map(str::trim) {
            None | Some("") => Ok(1.0),
            Some(a) => a
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    TraceConfigError::env("OTEL_TRACES_SAMPLER_ARG", a, "use a ratio from 0.0 to 1.0")
                }),
        }
    };
    let (r, parent_based) = match name.trim() {
        "always_on" => (1.0, false),
        "always_off" => (0.0, false),
        "traceidratio" => (ratio()?, false),
        "parentbased_always_on" => (1.0, true),
        "parentbased_always_off" => (0.0, true),
        "parentbased_traceidratio" => (ratio()?, true),
        other => {
            return Err(TraceConfigError::env(
                "OTEL_TRACES_SAMPLER",
                other,
                "supported: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio",
            ));
        }
    };
    sampling.ratio = r;
    sampling.parent_based = parent_based;
    Ok(sampling)
}

fn otlp_from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Exporter>, TraceConfigError> {
    let non_empty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let protocol = match non_empty("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| non_empty("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .as_deref()
        .map(str::trim)
    {
        None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
        Some("grpc") => OtlpProtocol::Grpc,
        Some(other) => {
            return Err(TraceConfigError::env(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                other,
                "supported: grpc, http/protobuf",
            ));
        }
    };
    let endpoint = if let Some(full) = non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        full.trim().to_owned()
    } else if let Some(base) = non_empty("OTEL_EXPORTER_OTLP_ENDPOINT") {
        let base = base.trim().trim_end_matches('/');
        match protocol {
            OtlpProtocol::HttpProtobuf => format!("{base}/v1/traces"),
            OtlpProtocol::Grpc => base.to_owned(),
        }
    } else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(TraceConfigError::env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &endpoint,
            "an endpoint is a URL such as http://collector:4317",
        ));
    }
    let mut headers = Vec::new();
    for var in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
        if let Some(raw) = env(var) {
            headers.extend(parse_pairs(&raw, var)?);
        }
    }
    Ok(Some(Exporter::Otlp {
        endpoint,
        protocol,
        headers,
    }))
}

/// Parses `k1=v1,k2=v2` (W3C-baggage-like, values percent-decoded).
fn parse_pairs(raw: &str, var: &'static str) -> Result<Vec<(String, String)>, TraceConfigError> {
    parse_key_values(raw).map_err(|e| TraceConfigError::env(var, &e.item, e.hint))
}

/// A malformed `key=value` list (see [`parse_key_values`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValuesError {
    /// The offending item.
    pub item: String,
    /// What is expected instead.
    pub hint: &'static str,
}

/// Parses the `key=value,key=value` lists of the OpenTelemetry environment
/// (`OTEL_EXPORTER_OTLP_*HEADERS`, `OTEL_RESOURCE_ATTRIBUTES`): items separated by commas,
/// whitespace around keys and values trimmed, values percent-decoded, empty items skipped.
/// Shared by the trace and the metrics (facade) exporters.
///
/// ```
/// use telltale_trace::export::parse_key_values;
///
/// let pairs = parse_key_values("api-key=s%3Dcret, tenant = a").unwrap();
/// assert_eq!(pairs, [("api-key".into(), "s=cret".into()), ("tenant".into(), "a".into())]);
/// assert_eq!(parse_key_values("novalue").unwrap_err().item, "novalue");
/// assert_eq!(parse_key_values("=x").unwrap_err().hint, "a key is empty");
/// ```
pub fn parse_key_values(raw: &str) -> Result<Vec<(String, String)>, KeyValuesError> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let error = |hint| KeyValuesError {
            item: item.to_owned(),
            hint,
        };
        let Some((k, v)) = item.split_once('=') else {
            return Err(error("expected key=value pairs separated by commas"));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(error("a key is empty"));
        }
        out.push((k.to_owned(), percent_decode(v.trim())));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn otlp_processor(
    endpoint: &str,
    protocol: OtlpProtocol,
    headers: &[(String, String)],
    settings: ExportSettings<'_>,
) -> Result<Box<dyn SpanProcessor>, TraceConfigError> {
    let rt = export_runtime()?;
    let exporter = {
        // The tonic channel's background task must live on the export runtime.
        let _entered = rt.enter();
        match protocol {
            OtlpProtocol::Grpc => {
                let mut md = tonic::metadata::MetadataMap::new();
                for (k, v) in headers {
                    let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| {
                            TraceConfigError::env("OTEL_EXPORTER_OTLP_HEADERS", k, "not a valid header name")
                        })?;
                    let value = v.parse().map_err(|_| {
                        TraceConfigError::env("OTEL_EXPORTER_OTLP_HEADERS", v, "not a valid header value")
                    })?;
                    md.insert(key, value);
                }
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .with_timeout(settings.batch.timeout)
                    .with_metadata(md)
                    .build()
            }
            OtlpProtocol::HttpProtobuf => {
                let endpoint = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
                    endpoint.to_owned()
                } else {
                    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
                };
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(endpoint)
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(settings.batch.timeout)
                    .with_headers(headers.iter().cloned().collect::<HashMap<_, _>>())
                    .build()
            }
        }
        .map_err(|e| TraceConfigError::Exporter(e.to_string()))?
    };
    Ok(Box::new(BoundedBatch::with_runtime(exporter, rt, settings)))
}

fn export_runtime() -> Result<tokio::runtime::Runtime, TraceConfigError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("telltale-trace-export")
        .build()
        .map_err(TraceConfigError::Runtime)
}

/// A configuration `build()` refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum TraceConfigError {
    /// The sampling rules make no sense.
    Sampling(SamplingError),
    /// An environment variable has a value that makes no sense.
    Env {
        /// The variable.
        var: &'static str,
        /// Its value (or the offending part).
        value: String,
        /// What would be accepted.
        hint: &'static str,
    },
    /// A value set in code makes no sense.
    Invalid(&'static str),
    /// The OTLP exporter could not be built.
    Exporter(String),
    /// The export runtime could not start.
    Runtime(std::io::Error),
}

impl TraceConfigError {
    fn env(var: &'static str, value: &str, hint: &'static str) -> Self {
        TraceConfigError::Env {
            var,
            value: value.to_owned(),
            hint,
        }
    }
}

impl From<SamplingError> for TraceConfigError {
    fn from(e: SamplingError) -> Self {
        TraceConfigError::Sampling(e)
    }
}

impl fmt::Display for TraceConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceConfigError::Sampling(e) => write!(f, "tracing: {e}"),
            TraceConfigError::Env { var, value, hint } => {
                write!(f, "tracing: {var}={value:?} is not understood: {hint}")
            }
            TraceConfigError::Invalid(what) => write!(f, "tracing: {what}"),
            TraceConfigError::Exporter(e) => write!(f, "tracing: cannot build the OTLP exporter: {e}"),
            TraceConfigError::Runtime(e) => write!(f, "tracing: cannot start the export runtime: {e}"),
        }
    }
}

impl std::error::Error for TraceConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TraceConfigError::Sampling(e) => Some(e),
            TraceConfigError::Runtime(e) => Some(e),
            _ => None,
        }
    }
}

/// What `build()` returns: layers for servers and clients, the pipeline and the provider.
#[derive(Debug, Clone)]
pub struct Tracing {
    pipeline: SpanPipeline,
    provider: SdkTracerProvider,
    counters: Arc<ExportCounters>,
}

impl Tracing {
    /// The HTTP server layer (add with `Router::layer`).
    pub fn server_layer(&self) -> TraceLayer {
        TraceLayer::new(self.pipeline.clone())
    }

    /// The gRPC server layer (for tonic servers).
    pub fn grpc_server_layer(&self) -> TraceLayer {
        TraceLayer::grpc(self.pipeline.clone())
    }

    /// An HTTP client layer for calls to `dependency` (`peer.service`).
    pub fn client_layer(&self, dependency: &str) -> ClientTraceLayer {
        ClientTraceLayer::new(self.pipeline.clone()).dependency(dependency)
    }

    /// A gRPC client layer (tonic channel) for calls to `dependency`.
    pub fn grpc_client_layer(&self, dependency: &str) -> ClientTraceLayer {
        ClientTraceLayer::grpc(self.pipeline.clone()).dependency(dependency)
    }

    /// Spans for runs of jobs from `queue` (see [`job`](crate::job)).
    pub fn job(&self, queue: &str) -> crate::job::JobTrace {
        crate::job::JobTrace::new(self.pipeline.clone(), queue)
    }

    /// The reqwest middleware for calls to `dependency` (feature `reqwest`).
    #[cfg(feature = "reqwest")]
    pub fn reqwest_middleware(&self, dependency: &str) -> crate::reqwest::TracingMiddleware {
        crate::reqwest::TracingMiddleware::new(self.pipeline.clone()).dependency(dependency)
    }

    /// A `tracing` layer bridging the application's `tracing` spans into the same traces
    /// (opt-in; see [`bridge`](crate::bridge)).
    pub fn tracing_layer<S>(&self) -> impl tracing_subscriber::Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        crate::bridge::bridge_layer(&self.provider)
    }

    /// The span pipeline.
    pub fn pipeline(&self) -> &SpanPipeline {
        &self.pipeline
    }

    /// Installs this provider and the W3C propagator as the OpenTelemetry globals, so
    /// `opentelemetry::global::tracer` spans join the same traces. [`TracingConfig::build`]
    /// does this unless told not to ([`TracingConfig::set_global`]); call it yourself to
    /// install the globals only once everything else has been set up.
    pub fn set_global(&self) {
        opentelemetry::global::set_tracer_provider(self.provider.clone());
        opentelemetry::global::set_text_map_propagator(crate::propagation::TelltalePropagator::new());
    }

    /// The SDK provider (same sampler and pipeline), for `tracing-opentelemetry` or direct
    /// OpenTelemetry API use.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Export counters so far.
    pub fn export_stats(&self) -> ExportStats {
        ExportStats {
            queued: self.counters.in_flight.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
            exported: self.counters.exported.load(Ordering::Relaxed),
        }
    }
}

/// Export counters (also in the `metrics` facade, see [`crate::names`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Spans waiting for export now (bounded by the queue size).
    pub queued: usize,
    /// Spans dropped because the queue was full.
    pub dropped: u64,
    /// Failed or timed-out export calls.
    pub failures: u64,
    /// Spans exported successfully.
    pub exported: u64,
}

/// Flushes and shuts the exporter down when dropped (or on [`TraceGuard::shutdown`]).
#[derive(Debug)]
pub struct TraceGuard {
    provider: Option<SdkTracerProvider>,
    pipeline: SpanPipeline,
}

impl TraceGuard {
    /// Exports what is queued now.
    pub fn flush(&self) -> OTelSdkResult {
        self.pipeline.force_flush()
    }

    /// Flushes and shuts down now.
    pub fn shutdown(mut self) -> OTelSdkResult {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> OTelSdkResult {
        let r = self.pipeline.shutdown();
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
        r
    }
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        let _ = self.shutdown_inner();
    }
}

// === impl BoundedBatch ===

#[derive(Debug, Default)]
struct ExportCounters {
    in_flight: AtomicUsize,
    dropped: AtomicU64,
    failures: AtomicU64,
    exported: AtomicU64,
    last_warn: Mutex<Option<Instant>>,
}

const WARN_EVERY: Duration = Duration::from_secs(30);

impl ExportCounters {
    /// Logs at most once per [`WARN_EVERY`].
    fn warn(&self, what: &str, detail: &dyn fmt::Display) {
        let now = Instant::now();
        let mut last = self.last_warn.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return;
        }
        *last = Some(now);
        drop(last);
        tracing::warn!(
            target: "telltale_trace::export",
            dropped = self.dropped.load(Ordering::Relaxed),
            failures = self.failures.load(Ordering::Relaxed),
            "{what}: {detail} (logged at most every 30s)"
        );
    }
}

/// The SDK batch processor behind a bounded, counted queue.
struct BoundedBatch {
    inner: BatchSpanProcessor,
    counters: Arc<ExportCounters>,
    cap: usize,
}

impl fmt::Debug for BoundedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedBatch").field("cap", &self.cap).finish()
    }
}

impl BoundedBatch {
    fn new<E: SpanExporter + 'static>(exporter: E, settings: ExportSettings<'_>) -> Self {
        match export_runtime() {
            Ok(rt) => Self::with_runtime(exporter, rt, settings),
            Err(_) => {
                // Without a runtime the export runs on the batch thread's executor.
                Self::assemble(
                    ObservedExporter {
                        inner: exporter,
                        rt: None,
                        counters: settings.counters.clone(),
                        timeout: settings.batch.timeout,
                    },
                    settings,
                )
            }
        }
    }

    fn with_runtime<E: SpanExporter + 'static>(
        exporter: E,
        rt: tokio::runtime::Runtime,
        settings: ExportSettings<'_>,
    ) -> Self {
        Self::assemble(
            ObservedExporter {
                inner: exporter,
                rt: Some(rt),
                counters: settings.counters.clone(),
                timeout: settings.batch.timeout,
            },
            settings,
        )
    }

    fn assemble<E: SpanExporter + 'static>(
        mut exporter: ObservedExporter<E>,
        settings: ExportSettings<'_>,
    ) -> Self {
        exporter.set_resource(settings.resource);
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(settings.batch.queue_size)
            .with_max_export_batch_size(settings.batch.batch_size)
            .with_scheduled_delay(settings.batch.interval)
            .build();
        BoundedBatch {
            inner: BatchSpanProcessor::new(exporter, config),
            counters: settings.counters,
            cap: settings.batch.queue_size,
        }
    }
}

impl SpanProcessor for BoundedBatch {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if self.counters.in_flight.fetch_add(1, Ordering::AcqRel) >= self.cap {
            self.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(names::EXPORT_SPANS_DROPPED).increment(1);
            self.counters.warn(
                "span export queue full, dropping spans",
                &"the collector is slow or down",
            );
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
}

/// Runs exports on the private runtime with a timeout, and counts them.
struct ObservedExporter<E> {
    inner: E,
    rt: Option<tokio::runtime::Runtime>,
    counters: Arc<ExportCounters>,
    timeout: Duration,
}

impl<E> fmt::Debug for ObservedExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedExporter").finish_non_exhaustive()
    }
}

impl<E: SpanExporter> SpanExporter for ObservedExporter<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.len();
        let _ = self
            .counters
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v.saturating_sub(n)));
        let result = match &self.rt {
            Some(rt) => rt.block_on(async {
                match tokio::time::timeout(self.timeout, self.inner.export(batch)).await {
                    Ok(r) => r,
                    Err(_) => Err(OTelSdkError::Timeout(self.timeout)),
                }
            }),
            None => futures_lite_block_on(self.inner.export(batch)),
        };
        match &result {
            Ok(()) => {
                self.counters.exported.fetch_add(n as u64, Ordering::Relaxed);
                metrics::counter!(names::EXPORT_SPANS).increment(n as u64);
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::EXPORT_FAILURES).increment(1);
                self.counters.warn("span export failed", e);
            }
        }
        std::future::ready(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Polls a future to completion on this thread (only for exporters that need no reactor).
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn sampler_env_vars_are_read_and_nonsense_is_an_error() {
        let s = sampling_from_env(
            Sampling::ratio(1.0).keep_errors(),
            &env_of(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ]),
        )
        .unwrap();
        assert_eq!(s.ratio, 0.25);
        assert!(s.parent_based && s.keep_errors);
        let s = sampling_from_env(
            Sampling::default(),
            &env_of(&[("OTEL_TRACES_SAMPLER", "always_off")]),
        )
        .unwrap();
        assert_eq!(s.ratio, 0.0);
        assert!(!s.parent_based);
        assert!(
            sampling_from_env(
                Sampling::default(),
                &env_of(&[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.7")
                ])
            )
            .is_err()
        );
        assert!(sampling_from_env(Sampling::default(), &env_of(&[("OTEL_TRACES_SAMPLER", "xray")])).is_err());
    }

    #[test]
    fn otlp_env_vars_pick_endpoint_protocol_and_headers() {
        assert!(otlp_from_env(&env_of(&[])).unwrap().is_none());
        let e = otlp_from_env(&env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x=y"),
        ]))
        .unwrap()
        .unwrap();
        match e {
            Exporter::Otlp {
                endpoint,
                protocol,
                headers,
            } => {
                assert_eq!(endpoint, "http://c:4318/v1/traces");
                assert_eq!(protocol, OtlpProtocol::HttpProtobuf);
                assert_eq!(
                    headers,
                    vec![("api-key".into(), "a b".into()), ("x".into(), "y".into())]
                );
            }
            _ => panic!("not otlp"),
        }
        let e = otlp_from_env(&env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]))
        .unwrap()
        .unwrap();
        assert!(
            matches!(e, Exporter::Otlp { protocol: OtlpProtocol::Grpc, ref endpoint, .. } if endpoint == "http://c:4317")
        );
        assert!(otlp_from_env(&env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317")])).is_err());
        assert!(
            otlp_from_env(&env_of(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
            ]))
            .is_err()
        );
    }

    #[test]
    fn stdout_exporter_exports_and_the_guard_shuts_it_down() {
        use opentelemetry::trace::{Tracer, TracerProvider as _};
        let (t, guard) = TracingConfig::new("dev")
            .set_global(false)
            .stdout()
            .build_with_env(&env_of(&[]))
            .unwrap();
        t.provider().tracer("t").start("dev-span");
        guard.shutdown().unwrap();
        assert_eq!(t.export_stats().exported, 1);
    }

    #[test]
    fn zero_queue_and_empty_service_name_are_errors() {
        let e = TracingConfig::new("x").queue_size(0).build_with_env(&env_of(&[]));
        assert!(matches!(e, Err(TraceConfigError::Invalid(_))));
        let e = TracingConfig::new(" ")
            .set_global(false)
            .build_with_env(&env_of(&[]));
        assert!(e.unwrap_err().to_string().contains("service name is empty"));
        let e = TracingConfig::new("x").build_with_env(&env_of(&[("OTEL_SDK_DISABLED", "maybe")]));
        assert!(e.unwrap_err().to_string().contains("OTEL_SDK_DISABLED"));
    }

    #[test]
    fn sdk_disabled_exports_nothing_and_service_name_env_wins() {
        let (t, _g) = TracingConfig::new("code-name")
            .set_global(false)
            .stdout()
            .build_with_env(&env_of(&[
                ("OTEL_SDK_DISABLED", "true"),
                ("OTEL_SERVICE_NAME", "env-name"),
            ]))
            .unwrap();
        assert!(format!("{:?}", t.pipeline()).contains("exports: false"));
        let cfg = TracingConfig::new("code-name").version("9");
        let r = cfg
            .resource(&env_of(&[
                ("OTEL_SERVICE_NAME", "env-name"),
                ("OTEL_RESOURCE_ATTRIBUTES", "team=core,service.version=1"),
            ]))
            .unwrap();
        let get = |k: &'static str| {
            r.get(&opentelemetry::Key::from_static_str(k))
                .map(|v| v.to_string())
        };
        assert_eq!(get("service.name").as_deref(), Some("env-name"));
        assert_eq!(get("team").as_deref(), Some("core"));
        assert_eq!(get("service.version").as_deref(), Some("9"));
        assert!(get("process.pid").is_some());
        // One instance id per process, unless the environment names one.
        let instance = get("service.instance.id").unwrap();
        assert_eq!(instance.len(), 36);
        assert_eq!(&instance[14..15], "4", "a UUID v4: {instance}");
        let parsed = uuid::Uuid::parse_str(&instance).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4, "{instance}");
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{instance}");
        let again = service_resource("other", None, None, &[], &|_| None).unwrap();
        let again = again
            .get(&opentelemetry::Key::from_static_str("service.instance.id"))
            .map(|v| v.to_string());
        assert_eq!(again.as_deref(), Some(instance.as_str()));
        let named = service_resource(
            "x",
            None,
            None,
            &[],
            &env_of(&[("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")]),
        )
        .unwrap();
        let named = named
            .get(&opentelemetry::Key::from_static_str("service.instance.id"))
            .map(|v| v.to_string());
        assert_eq!(named.as_deref(), Some("pod-7"));
    }
}
