//! Configuration: service identity, redaction, format, filter and writer.
//!
//! ```no_run
//! use telltale_log::{LogConfig, LogFormat};
//!
//! # fn main() -> Result<(), telltale_log::LogConfigError> {
//! let _guard = LogConfig::new("orders-api")
//!     .environment("prod")
//!     .version(env!("CARGO_PKG_VERSION"))
//!     .redact(["x-session", "card_number"])
//!     .format(LogFormat::Json)
//!     .init()?; // RUST_LOG filter (default `info`), non-blocking stdout
//! tracing::info!("started");
//! # Ok(()) }
//! ```
//!
//! To compose with other layers (OpenTelemetry) in one registry, use
//! [`LogConfig::non_blocking`], [`LogConfig::layer`] and [`LogConfig::filter`]
//! instead of [`LogConfig::init`].

use std::fmt;
use std::io::IsTerminal as _;
use std::str::FromStr;
use std::time::Duration;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::access::{AccessLogBuilder, AccessLogLayer};
use crate::filter::LogFilter;
use crate::json::JsonLayer;
use crate::redact::Redaction;
use crate::writer::{LogGuard, LogWriter};

/// Environment variable choosing the format: `json` (default) or `pretty`.
pub const FORMAT_ENV: &str = "TELLTALE_LOG_FORMAT";

/// Environment variable holding the filter directives (`EnvFilter` syntax).
pub const FILTER_ENV: &str = "RUST_LOG";

/// Default number of lines the non-blocking writer buffers before dropping.
pub const DEFAULT_BUFFERED_LINES: usize = 16_384;

/// Default number of bytes the non-blocking writer buffers before dropping (16 MiB): with
/// lines of under a kilobyte the line limit is reached first; this one bounds the memory
/// when lines are large (a huge field, an error with a long chain).
pub const DEFAULT_BUFFERED_BYTES: usize = 16 * 1024 * 1024;

/// Smallest accepted [`LogConfig::buffered_bytes_limit`] (64 KiB): room for a burst of
/// ordinary lines.
pub const MIN_BUFFERED_BYTES: usize = 64 * 1024;

/// Default minimum time between two stderr reports of dropped lines.
pub const DEFAULT_DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line with stable keys ([`JsonLayer`]). For production.
    #[default]
    Json,
    /// tracing-subscriber's human-readable format. For development.
    Pretty,
}

impl LogFormat {
    /// The format named by `TELLTALE_LOG_FORMAT`: `json` when unset or empty, `pretty` for
    /// the human format (case-insensitive); anything else is an error.
    pub fn from_env() -> Result<LogFormat, LogConfigError> {
        match std::env::var(FORMAT_ENV) {
            Ok(v) if v.trim().is_empty() => Ok(LogFormat::Json),
            Ok(v) => v.parse(),
            Err(std::env::VarError::NotPresent) => Ok(LogFormat::Json),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(LogConfigError::InvalidFormat(v.to_string_lossy().into_owned()))
            }
        }
    }
}

impl FromStr for LogFormat {
    type Err = LogConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err(LogConfigError::InvalidFormat(s.to_owned())),
        }
    }
}

/// A configuration that cannot work, reported at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogConfigError {
    /// The service name is empty.
    EmptyServiceName,
    /// `TELLTALE_LOG_FORMAT` (or a parsed format) is neither `json` nor `pretty`.
    InvalidFormat(String),
    /// The filter (`RUST_LOG` or the default filter) does not parse.
    InvalidFilter {
        /// The directives.
        directives: String,
        /// The parser's message.
        reason: String,
    },
    /// `buffered_lines_limit(0)`: every line would be dropped.
    ZeroBufferedLines,
    /// `buffered_bytes_limit` below [`MIN_BUFFERED_BYTES`]: ordinary lines would be dropped.
    TooFewBufferedBytes(usize),
    /// `drop_report_interval(0)`: would report on every dropped line.
    ZeroDropReportInterval,
    /// An access-log excluded path that does not start with `/` (it could never match).
    InvalidExcludedPath(String),
    /// An access-log header name that is not a valid HTTP header name.
    InvalidHeaderName(String),
    /// A global subscriber is already installed.
    AlreadyInitialized(String),
}

impl fmt::Display for LogConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogConfigError::EmptyServiceName => {
                f.write_str("the service name is empty: pass the name logs should carry to LogConfig::new")
            }
            LogConfigError::InvalidFormat(v) => {
                write!(
                    f,
                    "{FORMAT_ENV}={v:?} is not a log format: use `json` or `pretty`"
                )
            }
            LogConfigError::InvalidFilter { directives, reason } => {
                write!(
                    f,
                    "log filter {directives:?} is invalid ({reason}); check {FILTER_ENV}"
                )
            }
            LogConfigError::ZeroBufferedLines => {
                f.write_str("buffered_lines_limit must be at least 1 (every line would be dropped)")
            }
            LogConfigError::TooFewBufferedBytes(n) => write!(
                f,
                "buffered_bytes_limit({n}) is below the minimum of {MIN_BUFFERED_BYTES} bytes (ordinary lines would be dropped)"
            ),
            LogConfigError::ZeroDropReportInterval => {
                f.write_str("drop_report_interval must be greater than zero")
            }
            LogConfigError::InvalidExcludedPath(p) => {
                write!(f, "excluded access-log path {p:?} must start with `/`")
            }
            LogConfigError::InvalidHeaderName(h) => write!(f, "{h:?} is not a valid header name"),
            LogConfigError::AlreadyInitialized(e) => {
                write!(f, "a global tracing subscriber is already installed: {e}")
            }
        }
    }
}

impl std::error::Error for LogConfigError {}

/// Logging configuration. See the [module docs](self).
///
/// Defaults: no environment or version (`null` in lines), the
/// [default redaction set](crate::redact::DEFAULT_REDACTED), format from
/// `TELLTALE_LOG_FORMAT` (JSON when unset), filter from `RUST_LOG` (`info` when unset),
/// [`DEFAULT_BUFFERED_LINES`] buffered lines or [`DEFAULT_BUFFERED_BYTES`] buffered bytes,
/// whichever is reached first, dropped lines reported at most every
/// [`DEFAULT_DROP_REPORT_INTERVAL`].
#[derive(Clone, Debug)]
pub struct LogConfig {
    service: String,
    environment: Option<String>,
    version: Option<String>,
    redaction: Redaction,
    format: Option<LogFormat>,
    default_filter: String,
    buffered_lines: usize,
    buffered_bytes: usize,
    drop_report_interval: Duration,
}

impl LogConfig {
    /// A configuration for the service `service` (written as `service` on every line).
    pub fn new(service: impl Into<String>) -> Self {
        LogConfig {
            service: service.into(),
            environment: None,
            version: None,
            redaction: Redaction::default_names(),
            format: None,
            default_filter: "info".to_owned(),
            buffered_lines: DEFAULT_BUFFERED_LINES,
            buffered_bytes: DEFAULT_BUFFERED_BYTES,
            drop_report_interval: DEFAULT_DROP_REPORT_INTERVAL,
        }
    }

    /// The deployment environment (`prod`, `staging`, ...).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// The service version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Adds field/header names to redact, on top of the defaults (see [`Redaction`]), each
    /// matched as a whole name. They apply to the formats made from this configuration and
    /// to an access log built with [`access_log`](LogConfig::access_log); an
    /// [`AccessLogLayer`] built on its own (`AccessLogLayer::builder()`) does not know them.
    pub fn redact<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.redaction = self.redaction.with(names);
        self
    }

    /// Sets the format, overriding `TELLTALE_LOG_FORMAT`.
    pub fn format(mut self, format: LogFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Filter directives used when `RUST_LOG` is unset or empty (default `info`).
    pub fn default_filter(mut self, directives: impl Into<String>) -> Self {
        self.default_filter = directives.into();
        self
    }

    /// Lines the non-blocking writer buffers before it drops (and counts) new ones.
    pub fn buffered_lines_limit(mut self, lines: usize) -> Self {
        self.buffered_lines = lines;
        self
    }

    /// Bytes the non-blocking writer buffers before it drops (and counts) new lines (default
    /// [`DEFAULT_BUFFERED_BYTES`]; at least [`MIN_BUFFERED_BYTES`]). Whichever of this and
    /// [`buffered_lines_limit`](LogConfig::buffered_lines_limit) is reached first applies, so
    /// a burst of very large lines cannot take unbounded memory. A single line longer than
    /// this is dropped and counted, not cut (a cut line would not be valid JSON).
    pub fn buffered_bytes_limit(mut self, bytes: usize) -> Self {
        self.buffered_bytes = bytes;
        self
    }

    /// Minimum time between two stderr reports of dropped lines.
    pub fn drop_report_interval(mut self, interval: Duration) -> Self {
        self.drop_report_interval = interval;
        self
    }

    /// The redaction set in use (defaults plus [`redact`](LogConfig::redact)ed names).
    pub fn redaction(&self) -> &Redaction {
        &self.redaction
    }

    fn validate(&self) -> Result<(), LogConfigError> {
        if self.service.trim().is_empty() {
            return Err(LogConfigError::EmptyServiceName);
        }
        if self.buffered_lines == 0 {
            return Err(LogConfigError::ZeroBufferedLines);
        }
        if self.buffered_bytes < MIN_BUFFERED_BYTES {
            return Err(LogConfigError::TooFewBufferedBytes(self.buffered_bytes));
        }
        if self.drop_report_interval.is_zero() {
            return Err(LogConfigError::ZeroDropReportInterval);
        }
        Ok(())
    }

    /// The format: the one set with [`format`](LogConfig::format), else `TELLTALE_LOG_FORMAT`.
    pub fn resolved_format(&self) -> Result<LogFormat, LogConfigError> {
        match self.format {
            Some(f) => Ok(f),
            None => LogFormat::from_env(),
        }
    }

    /// The filter directives: `RUST_LOG`, or the default filter when it is unset or empty.
    fn directives(&self) -> String {
        match std::env::var(FILTER_ENV) {
            Ok(v) if !v.trim().is_empty() => v,
            _ => self.default_filter.clone(),
        }
    }

    /// The filter from `RUST_LOG`, or the default filter when it is unset or empty, as an
    /// `EnvFilter`. Invalid directives are an error, not silently ignored. Prefer
    /// [`filter`](LogConfig::filter), which enables the same events at less cost per span.
    pub fn env_filter(&self) -> Result<EnvFilter, LogConfigError> {
        let directives = self.directives();
        EnvFilter::builder()
            .parse(&directives)
            .map_err(|e| LogConfigError::InvalidFilter {
                directives,
                reason: e.to_string(),
            })
    }

    /// The filter from `RUST_LOG`, or the default filter when it is unset or empty: a
    /// [`LogFilter`], which skips `EnvFilter`'s per-span locking when no directive names
    /// a span or a field. Invalid directives are an error, not silently ignored.
    pub fn filter(&self) -> Result<LogFilter, LogConfigError> {
        let directives = self.directives();
        LogFilter::parse(&directives).map_err(|e| LogConfigError::InvalidFilter {
            directives,
            reason: e.to_string(),
        })
    }

    /// The JSON layer writing to `make_writer`.
    pub fn json_layer<W>(&self, make_writer: W) -> Result<JsonLayer<W>, LogConfigError>
    where
        W: for<'w> MakeWriter<'w> + 'static,
    {
        self.validate()?;
        Ok(JsonLayer::new(
            &self.service,
            self.environment.as_deref(),
            self.version.as_deref(),
            self.redaction.clone(),
            make_writer,
        ))
    }

    /// The layer for the configured format, writing to `make_writer`, to compose with
    /// other layers in one registry. It does not filter: add [`filter`](LogConfig::filter).
    pub fn layer<S, W>(
        &self,
        make_writer: W,
    ) -> Result<Box<dyn Layer<S> + Send + Sync + 'static>, LogConfigError>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        Ok(match self.resolved_format()? {
            LogFormat::Json => Box::new(self.json_layer(make_writer)?),
            LogFormat::Pretty => {
                self.validate()?;
                Box::new(self.pretty_layer(make_writer))
            }
        })
    }

    /// tracing-subscriber's human format, with the same redaction as the JSON format and
    /// each traced line ending in its `trace_id` and `span_id` (see [`crate::pretty`]).
    fn pretty_layer<S, W>(&self, make_writer: W) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let redaction = self.redaction.clone();
        let fields = tracing_subscriber::fmt::format::debug_fn(move |w, field, value| {
            if field.name() == "message" {
                write!(w, "{value:?}")
            } else if redaction.is_redacted(field.name()) {
                write!(w, "{}={}", field.name(), crate::keys::REDACTED)
            } else {
                write!(w, "{}={value:?}", field.name())
            }
        })
        .delimited(" ");
        let ansi = std::io::stdout().is_terminal();
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .event_format(crate::pretty::PrettyFormat::new(ansi))
            .fmt_fields(fields)
            .with_writer(make_writer)
    }

    /// A non-blocking writer over `writer` (a background thread, a bounded buffer; lines
    /// dropped when full are counted and reported) and the guard that flushes it.
    pub fn non_blocking<T>(&self, writer: T) -> Result<(LogWriter, LogGuard), LogConfigError>
    where
        T: std::io::Write + Send + 'static,
    {
        self.validate()?;
        Ok(LogWriter::new(
            writer,
            self.buffered_lines,
            self.buffered_bytes,
            self.drop_report_interval,
        ))
    }

    /// An access-log layer builder sharing this configuration's redaction set: the way to
    /// build the access log when names were added with [`redact`](LogConfig::redact).
    pub fn access_log(&self) -> AccessLogBuilder {
        AccessLogLayer::builder().redaction(self.redaction.clone())
    }

    /// Installs the global subscriber: `RUST_LOG` filter, the configured format, a
    /// non-blocking writer to stdout; also routes `log` crate records into it. Keep the
    /// returned guard alive until exit: dropping it flushes the buffered lines.
    pub fn init(&self) -> Result<LogGuard, LogConfigError> {
        self.validate()?;
        let filter = self.filter()?;
        let format = self.resolved_format()?;
        let (writer, guard) = self.non_blocking(std::io::stdout())?;
        let registry = tracing_subscriber::registry().with(filter);
        let result = match format {
            LogFormat::Json => registry.with(self.json_layer(writer)?).try_init(),
            LogFormat::Pretty => registry.with(self.pretty_layer(writer)).try_init(),
        };
        result.map_err(|e| LogConfigError::AlreadyInitialized(e.to_string()))?;
        Ok(guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonsense_config_is_an_error_not_a_panic() {
        let sink = crate::CaptureWriter::new();
        assert_eq!(
            LogConfig::new(" ").json_layer(sink.clone()).unwrap_err(),
            LogConfigError::EmptyServiceName
        );
        assert_eq!(
            LogConfig::new("s")
                .buffered_lines_limit(0)
                .non_blocking(std::io::sink())
                .unwrap_err(),
            LogConfigError::ZeroBufferedLines
        );
        let tiny = LogConfig::new("s")
            .buffered_bytes_limit(1000)
            .non_blocking(std::io::sink())
            .unwrap_err();
        assert_eq!(tiny, LogConfigError::TooFewBufferedBytes(1000));
        assert!(tiny.to_string().contains("65536"), "{tiny}");
        assert!(
            LogConfig::new("s")
                .buffered_bytes_limit(MIN_BUFFERED_BYTES)
                .non_blocking(std::io::sink())
                .is_ok()
        );
        assert_eq!(
            LogConfig::new("s")
                .drop_report_interval(Duration::ZERO)
                .non_blocking(std::io::sink())
                .unwrap_err(),
            LogConfigError::ZeroDropReportInterval
        );
        assert!(matches!(
            "yaml".parse::<LogFormat>(),
            Err(LogConfigError::InvalidFormat(_))
        ));
        assert_eq!("PRETTY".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert!(matches!(
            LogConfig::new("s").access_log().exclude_path("healthz").build(),
            Err(LogConfigError::InvalidExcludedPath(_))
        ));
        assert!(matches!(
            LogConfig::new("s")
                .access_log()
                .request_headers(["bad header"])
                .build(),
            Err(LogConfigError::InvalidHeaderName(_))
        ));
    }

    #[test]
    fn invalid_default_filter_is_reported() {
        // RUST_LOG is not set in the test environment unless the caller sets it; only
        // assert when it is not.
        if std::env::var(FILTER_ENV).map_or(true, |v| v.trim().is_empty()) {
            let config = LogConfig::new("s").default_filter("info,[[[");
            let err = config.env_filter().unwrap_err();
            assert!(matches!(err, LogConfigError::InvalidFilter { .. }), "{err}");
            let err = config.filter().unwrap_err();
            assert!(matches!(err, LogConfigError::InvalidFilter { .. }), "{err}");
        }
    }
}
