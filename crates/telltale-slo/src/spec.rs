//! The SLO spec: what a service promises, written once in YAML or built in Rust.
//!
//! ```
//! use telltale_slo::spec::{ServiceSpec, Slo};
//!
//! let spec = ServiceSpec::builder("orders-api")
//!     .label("team", "orders")
//!     .runbook_base("https://runbooks.example.com/orders-api")
//!     .dependency("inventory")
//!     .slo(Slo::availability("availability", 99.9))
//!     .slo(Slo::latency("latency", 99.0, 0.25))
//!     .build()
//!     .unwrap();
//! assert_eq!(spec.slos.len(), 2);
//!
//! // The same spec in YAML; errors name the file, line and the fix.
//! let yaml = "service: orders-api\nslos:\n  - name: availability\n    kind: availability\n    objective: 100\n";
//! let err = ServiceSpec::from_yaml_str(yaml, "slo.yaml").unwrap_err();
//! assert!(err.to_string().starts_with("slo.yaml:5:"), "{err}");
//! ```
//!
//! YAML keys (unknown keys are an error):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `service` | service name, matched by the `service_label` label | required |
//! | `scheme` | `otel` or `legacy` metric names (see `telltale_metrics::names`) | `otel` |
//! | `service_label` | label carrying the service name on the metrics | `service` |
//! | `labels` | extra labels on every alert, for routing (`team`, `tier`); values without `{{`/`}}` | none |
//! | `runbook_base` | URL the `runbook_url` annotations start with (without `{{`/`}}`) | `https://runbooks.example.invalid/<service>` |
//! | `buckets` | the duration histogram's bucket boundaries, seconds | `DEFAULT_DURATION_BUCKETS` |
//! | `dependencies` | outbound dependencies (`peer_service` values) to warn about | none |
//! | `warnings.error_ratio` | non-paging warning above this failed-request ratio over 5m | `0.05` |
//! | `warnings.dependency_error_ratio` | warning above this dependency error ratio over 5m | `0.1` |
//! | `slos[].name` | SLO name, `[a-z0-9_-]`, unique even ignoring `-`/`_` (`checkout-latency` and `checkout_latency` would share alert names) | required |
//! | `slos[].kind` | `availability` (not failed: 5xx or failed body) or `latency` (faster than `threshold`) | required |
//! | `slos[].objective` | percent, `0 < objective < 100`, at most six nines, high enough to leave a paging burn-rate alert (over 30d: above 100 - 100/6 ≈ 83.33) | required |
//! | `slos[].window` | compliance window, `3d` (the slowest burn-rate alert's long window) to `366d`: `30d`, `4w`, `720h`; burn-rate thresholds scale with it | `30d` |
//! | `slos[].threshold` | latency SLOs: seconds, one of the `buckets` | required for latency |
//! | `slos[].routes` | only these route templates | all routes |
//! | `slos[].queue` | a background-job SLO over this queue's runs instead of requests (see below); without `{{`/`}}` | none |
//! | `slos[].selectors` | extra exact label matchers (method or route label of the scheme, `environment`; with `queue`: `messaging_system`, `environment`) | none |
//! | `slos[].metric` | the histogram (or, legacy availability, counter) to read | the scheme's |
//! | `slos[].description` | free text for runbooks | none |
//!
//! # Background jobs
//!
//! With `queue`, an SLO measures the runs of that queue's jobs (as recorded by
//! `telltale::job`: `messaging_process_duration_seconds{messaging_destination_name=…}`,
//! the same name in both schemes) instead of HTTP requests:
//!
//! - `availability`: runs that do not fail, i.e. have no `error_type` label (a failure, a
//!   panic or a run cancelled midway all set it);
//! - `latency`: runs faster than `threshold`.
//!
//! A job SLO cannot also name `routes` or `metric`.
//!
//! ```
//! use telltale_slo::spec::{ServiceSpec, Slo};
//!
//! let spec = ServiceSpec::builder("orders-api")
//!     .slo(Slo::availability("fulfilment", 99.0).queue("fulfil_order"))
//!     .build()
//!     .unwrap();
//! assert_eq!(spec.slos[0].queue.as_deref(), Some("fulfil_order"));
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;
use telltale_metrics::names::{self, LabelNames, Scheme};

use crate::decimal::Decimal;
use crate::rules::{self, BURN_WINDOWS, Severity};

/// Labels that telltale-slo sets itself on rules and alerts; a user label may not reuse them.
pub const RESERVED_LABELS: &[&str] = &[
    "alertname",
    "severity",
    "slo",
    "window",
    "dependency",
    "service",
    "le",
];

// === SpecError ===

/// A spec that cannot be used, with where it is wrong and how to fix it.
///
/// Displays as `file:line:column: path: message; fix: ...` (file and line when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(Box<SpecErrorDetails>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct SpecErrorDetails {
    file: Option<String>,
    line: Option<u64>,
    column: Option<u64>,
    path: String,
    message: String,
    fix: String,
}

impl SpecError {
    fn new(path: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        SpecError(Box::new(SpecErrorDetails {
            file: None,
            line: None,
            column: None,
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
        }))
    }

    fn at(mut self, file: &str, location: Option<(u64, u64)>) -> Self {
        self.0.file = Some(file.to_owned());
        if let Some((line, column)) = location {
            self.0.line = Some(line);
            self.0.column = Some(column);
        }
        self
    }

    /// The file the spec came from, when it came from one.
    pub fn file(&self) -> Option<&str> {
        self.0.file.as_deref()
    }

    /// 1-based line, when known.
    pub fn line(&self) -> Option<u64> {
        self.0.line
    }

    /// 1-based column, when known.
    pub fn column(&self) -> Option<u64> {
        self.0.column
    }

    /// Where in the spec (`slos[1].threshold`); empty for syntax errors.
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// What to change.
    pub fn fix(&self) -> &str {
        &self.0.fix
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        let file = e.file.as_deref().unwrap_or("<spec>");
        match (e.line, e.column) {
            (Some(l), Some(c)) => write!(f, "{file}:{l}:{c}: ")?,
            (Some(l), None) => write!(f, "{file}:{l}: ")?,
            _ => write!(f, "{file}: ")?,
        }
        if !e.path.is_empty() {
            write!(f, "{}: ", e.path)?;
        }
        write!(f, "{}; fix: {}", e.message, e.fix)
    }
}

impl std::error::Error for SpecError {}

// === Window ===

/// A duration written the Prometheus way (`30d`, `4w`, `720h`, `5m`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    seconds: u64,
    text: String,
}

impl Window {
    /// A window of whole days (its length saturates at `u64::MAX` seconds; validation
    /// accepts at most 366 days).
    pub fn days(days: u64) -> Self {
        Window {
            seconds: days.saturating_mul(86_400),
            text: format!("{days}d"),
        }
    }

    /// Parses `<number><unit>` with unit `m`, `h`, `d` or `w`; `None` for anything else,
    /// zero, or a length that does not fit in `u64` seconds (`99999999999999w`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
        let (n, unit) = text.split_at(unit_at);
        let n: u64 = n.parse().ok()?;
        let mult = match unit {
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return None,
        };
        let seconds = n.checked_mul(mult)?;
        (n > 0).then(|| Window {
            seconds,
            text: text.to_owned(),
        })
    }

    /// Length in seconds.
    pub const fn seconds(&self) -> u64 {
        self.seconds
    }

    /// As written, valid in PromQL range selectors.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// === Slo ===

/// What an SLO measures.
#[derive(Debug, Clone, PartialEq)]
pub enum SloKind {
    /// Share of requests that are not server errors (HTTP 5xx, or a body that failed while
    /// streaming; see [`crate::promql::server_error_matcher`]).
    Availability,
    /// Share of requests faster than `threshold_seconds`, a histogram bucket boundary.
    Latency {
        /// The bucket boundary, in seconds.
        threshold_seconds: f64,
    },
}

impl SloKind {
    /// `availability` or `latency`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            SloKind::Availability => "availability",
            SloKind::Latency { .. } => "latency",
        }
    }
}

/// One objective of a service.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Slo {
    /// Unique name within the service (`availability`, `latency`).
    pub name: String,
    /// What is measured.
    pub kind: SloKind,
    /// Objective in percent (`99.9`). [`ServiceSpecBuilder::build`] validates this field
    /// (strictly between 0 and 100, at most six nines, and high enough to leave a paging
    /// burn-rate alert), also when it was set after [`Slo::availability`] or
    /// [`Slo::latency`].
    pub objective: Decimal,
    /// Compliance window (default 30 days).
    pub window: Window,
    /// Route templates the SLO covers; empty = all.
    pub routes: Vec<String>,
    /// A background-job SLO: the queue whose runs it measures (see the
    /// [module docs](self#background-jobs)); `None` = HTTP or gRPC requests.
    pub queue: Option<String>,
    /// Extra exact-match label selectors.
    pub selectors: BTreeMap<String, String>,
    /// Metric override (validated against the scheme); `None` = the scheme's default.
    pub metric: Option<String>,
    /// Free text for the runbook.
    pub description: Option<String>,
    /// The percentage given to the constructor, only to report one that has no exact
    /// decimal (NaN, or more than 30 digits such as `1e-30`): `objective` is then 0.
    objective_raw: f64,
}

impl Slo {
    /// An availability SLO: `objective` percent of requests do not fail (5xx or failed body), over 30 days.
    pub fn availability(name: impl Into<String>, objective_percent: f64) -> Self {
        Self::new(name.into(), SloKind::Availability, objective_percent)
    }

    /// A latency SLO: `objective` percent of requests finish within `threshold_seconds`
    /// (which must be a bucket boundary), over 30 days.
    pub fn latency(name: impl Into<String>, objective_percent: f64, threshold_seconds: f64) -> Self {
        Self::new(
            name.into(),
            SloKind::Latency { threshold_seconds },
            objective_percent,
        )
    }

    fn new(name: String, kind: SloKind, objective_raw: f64) -> Self {
        Slo {
            name,
            kind,
            objective: Decimal::from_f64(objective_raw).unwrap_or(Decimal::ZERO),
            window: Window::days(30),
            routes: Vec::new(),
            queue: None,
            selectors: BTreeMap::new(),
            metric: None,
            description: None,
            objective_raw,
        }
    }

    /// Sets the compliance window.
    pub fn window(mut self, window: Window) -> Self {
        self.window = window;
        self
    }

    /// Restricts the SLO to a route template (call again for more).
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.routes.push(route.into());
        self
    }

    /// Makes this a background-job SLO over `queue`'s runs (its
    /// `messaging_destination_name`) instead of requests.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Adds an exact-match label selector.
    pub fn selector(mut self, label: impl Into<String>, value: impl Into<String>) -> Self {
        self.selectors.insert(label.into(), value.into());
        self
    }

    /// Reads another metric than the scheme's default.
    pub fn metric(mut self, metric: impl Into<String>) -> Self {
        self.metric = Some(metric.into());
        self
    }

    /// Free text shown in the runbook.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// The error budget as a ratio (`0.001` for 99.9).
    pub fn error_budget(&self) -> Decimal {
        self.objective.error_budget()
    }
}

// === ServiceSpec ===

/// Thresholds of the non-paging warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warnings {
    /// Warn when the service's failed-request ratio over 5m is above this (default `0.05`).
    pub error_ratio: Decimal,
    /// Warn when a dependency's error ratio over 5m is above this (default `0.1`).
    pub dependency_error_ratio: Decimal,
}

impl Default for Warnings {
    fn default() -> Self {
        Warnings {
            error_ratio: Decimal::new(5, 2),
            dependency_error_ratio: Decimal::new(1, 1),
        }
    }
}

/// A validated spec for one service. Build it with [`ServiceSpec::builder`] or
/// [`ServiceSpec::from_yaml_str`]/[`ServiceSpec::from_yaml_file`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServiceSpec {
    /// Service name.
    pub service: String,
    /// Metric naming scheme.
    pub scheme: Scheme,
    /// The label that carries the service name (default `service`).
    pub service_label: String,
    /// Routing labels added to every alert (team, tier).
    pub labels: BTreeMap<String, String>,
    /// Runbook URL base; `runbook_url` = base + `/` + alert name.
    pub runbook_base: String,
    /// Histogram bucket boundaries (seconds), ascending.
    pub buckets: Vec<f64>,
    /// Dependencies (`peer_service` values) to watch.
    pub dependencies: Vec<String>,
    /// Warning thresholds.
    pub warnings: Warnings,
    /// The objectives.
    pub slos: Vec<Slo>,
}

impl ServiceSpec {
    /// Starts a spec for `service` with the defaults in the module table.
    pub fn builder(service: impl Into<String>) -> ServiceSpecBuilder {
        ServiceSpecBuilder {
            service: service.into(),
            scheme: Scheme::OpenTelemetry,
            service_label: names::labels::SERVICE.to_owned(),
            labels: BTreeMap::new(),
            runbook_base: None,
            buckets: None,
            dependencies: Vec::new(),
            warning_error_ratio: None,
            warning_dependency_error_ratio: None,
            slos: Vec::new(),
        }
    }

    /// Whether the service answers requests: `false` for a worker, a spec whose SLOs are
    /// all job SLOs (`queue`). A worker's rules leave out the error-ratio warning and its
    /// dashboard the request panels, which would only ever be empty.
    ///
    /// ```
    /// use telltale_slo::spec::{ServiceSpec, Slo};
    ///
    /// let fulfil = Slo::availability("fulfilment", 99.0).queue("fulfil_order");
    /// let worker = ServiceSpec::builder("orders-worker").slo(fulfil.clone()).build().unwrap();
    /// assert!(!worker.serves_requests());
    /// let api = ServiceSpec::builder("orders-api")
    ///     .slo(Slo::availability("availability", 99.9))
    ///     .slo(fulfil)
    ///     .build()
    ///     .unwrap();
    /// assert!(api.serves_requests());
    /// ```
    pub fn serves_requests(&self) -> bool {
        self.slos.is_empty() || self.slos.iter().any(|s| s.queue.is_none())
    }

    /// The server label names of the spec's scheme.
    pub const fn label_names(&self) -> LabelNames {
        LabelNames::for_scheme(self.scheme)
    }

    /// Reads and validates a YAML spec file.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, SpecError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            SpecError::new(
                "",
                format!("cannot read the spec: {e}"),
                "pass the path of an existing, readable YAML file",
            )
            .at(&file, None)
        })?;
        Self::from_yaml_str(&text, &file)
    }

    /// Parses and validates a YAML spec; `file` is only used in error messages.
    pub fn from_yaml_str(yaml: &str, file: &str) -> Result<Self, SpecError> {
        let raw: RawSpec = serde_saphyr::from_str(yaml).map_err(|e| {
            let loc = e.location();
            let message = e.without_snippet().to_string();
            // The plain message may end with its own " at line X column Y"; keep it short.
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .trim()
                .to_owned();
            let fix = if message.contains("unknown field") {
                "remove the key or correct its spelling (the keys are listed in docs/slo.md)"
            } else if message.contains("unknown variant") {
                "use one of the values listed"
            } else if message.contains("missing field") {
                "add the missing key"
            } else {
                "correct the YAML at this position (see docs/slo.md for the format)"
            };
            SpecError::new("", message, fix).at(file, loc.map(|l| (l.line(), l.column())))
        })?;
        let mut locs = Locations::default();
        let builder = raw.into_builder(&mut locs);
        builder.build().map_err(|e| {
            let location = locs.find(e.path());
            e.at(file, location)
        })
    }
}

/// Builds a [`ServiceSpec`]; [`build`](Self::build) validates everything.
#[derive(Debug, Clone)]
pub struct ServiceSpecBuilder {
    service: String,
    scheme: Scheme,
    service_label: String,
    labels: BTreeMap<String, String>,
    runbook_base: Option<String>,
    buckets: Option<Vec<f64>>,
    dependencies: Vec<String>,
    warning_error_ratio: Option<f64>,
    warning_dependency_error_ratio: Option<f64>,
    slos: Vec<Slo>,
}

impl ServiceSpecBuilder {
    /// Metric naming scheme (default OpenTelemetry).
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// The label carrying the service name on the metrics (default `service`; `job` is common).
    pub fn service_label(mut self, label: impl Into<String>) -> Self {
        self.service_label = label.into();
        self
    }

    /// A routing label on every alert.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// Runbook URL base.
    pub fn runbook_base(mut self, url: impl Into<String>) -> Self {
        self.runbook_base = Some(url.into());
        self
    }

    /// Histogram bucket boundaries, if not `DEFAULT_DURATION_BUCKETS`.
    pub fn buckets(mut self, buckets: impl Into<Vec<f64>>) -> Self {
        self.buckets = Some(buckets.into());
        self
    }

    /// A dependency (`peer_service` value) to warn about.
    pub fn dependency(mut self, name: impl Into<String>) -> Self {
        self.dependencies.push(name.into());
        self
    }

    /// Warning threshold on the service's failed-request ratio (default `0.05`).
    pub fn warn_error_ratio(mut self, ratio: f64) -> Self {
        self.warning_error_ratio = Some(ratio);
        self
    }

    /// Warning threshold on a dependency's error ratio (default `0.1`).
    pub fn warn_dependency_error_ratio(mut self, ratio: f64) -> Self {
        self.warning_dependency_error_ratio = Some(ratio);
        self
    }

    /// Adds an SLO.
    pub fn slo(mut self, slo: Slo) -> Self {
        self.slos.push(slo);
        self
    }

    /// Validates and returns the spec.
    pub fn build(self) -> Result<ServiceSpec, SpecError> {
        let scheme_labels = LabelNames::for_scheme(self.scheme);
        if !is_name(&self.service, true) {
            return Err(SpecError::new(
                "service",
                format!(
                    "service name `{}` is empty or has characters other than letters, digits, `-`, `_`, `.`",
                    self.service
                ),
                "use a name such as orders-api",
            ));
        }
        if !is_label_name(&self.service_label) {
            return Err(SpecError::new(
                "service_label",
                format!("`{}` is not a Prometheus label name", self.service_label),
                "use `service` (telltale's global label) or `job`",
            ));
        }
        for name in self.labels.keys() {
            let path = format!("labels.{name}");
            if !is_label_name(name) {
                return Err(SpecError::new(
                    path,
                    format!("`{name}` is not a Prometheus label name"),
                    "use letters, digits and `_`, not starting with a digit (e.g. team, tier)",
                ));
            }
            if RESERVED_LABELS.contains(&name.as_str()) || name.starts_with("__") {
                return Err(SpecError::new(
                    path,
                    format!("label `{name}` is set by telltale-slo itself"),
                    format!("rename it; reserved: {}", RESERVED_LABELS.join(", ")),
                ));
            }
            template_free(&path, &self.labels[name], "the label value")?;
        }
        let runbook_base = self
            .runbook_base
            .unwrap_or_else(|| format!("https://runbooks.example.invalid/{}", self.service));
        if !(runbook_base.starts_with("https://") || runbook_base.starts_with("http://")) {
            return Err(SpecError::new(
                "runbook_base",
                format!("`{runbook_base}` is not an http(s) URL"),
                "write the URL your runbooks are published under, e.g. https://runbooks.example.com/orders-api",
            ));
        }
        template_free("runbook_base", &runbook_base, "the URL")?;
        let runbook_base = runbook_base.trim_end_matches('/').to_owned();
        let buckets = self
            .buckets
            .unwrap_or_else(|| names::DEFAULT_DURATION_BUCKETS.to_vec());
        if buckets.is_empty()
            || buckets.iter().any(|b| !b.is_finite() || *b <= 0.0)
            || buckets.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(SpecError::new(
                "buckets",
                "buckets must be positive, finite and strictly ascending",
                "copy the boundaries your histogram really uses (telltale's default is 0.005 … 10)",
            ));
        }
        let mut seen = HashSet::new();
        for (i, dep) in self.dependencies.iter().enumerate() {
            if !is_name(dep, true) {
                return Err(SpecError::new(
                    format!("dependencies[{i}]"),
                    format!("dependency `{dep}` is not a valid peer_service value"),
                    "use the name given to the client's `.dependency(...)`, e.g. inventory",
                ));
            }
            if !seen.insert(dep.as_str()) {
                return Err(SpecError::new(
                    format!("dependencies[{i}]"),
                    format!("dependency `{dep}` is listed twice"),
                    "remove the duplicate",
                ));
            }
        }
        let ratio = |v: Option<f64>, default: Decimal, path: &str| -> Result<Decimal, SpecError> {
            match v {
                None => Ok(default),
                Some(v) if v > 0.0 && v < 1.0 => Decimal::from_f64(v).ok_or_else(|| {
                    SpecError::new(
                        path,
                        format!("{v} has more than 30 digits, more than thresholds are computed with"),
                        "round it, e.g. 0.05 for 5%",
                    )
                }),
                Some(v) => Err(SpecError::new(
                    path,
                    format!("{v} is not a ratio between 0 and 1 (exclusive)"),
                    "write a ratio such as 0.05 for 5%",
                )),
            }
        };
        let defaults = Warnings::default();
        let warnings = Warnings {
            error_ratio: ratio(
                self.warning_error_ratio,
                defaults.error_ratio,
                "warnings.error_ratio",
            )?,
            dependency_error_ratio: ratio(
                self.warning_dependency_error_ratio,
                defaults.dependency_error_ratio,
                "warnings.dependency_error_ratio",
            )?,
        };
        if self.slos.is_empty() {
            return Err(SpecError::new(
                "slos",
                "the spec has no SLOs",
                "add at least one, e.g. `- {name: availability, kind: availability, objective: 99.9}`",
            ));
        }
        let mut names_seen: HashMap<&str, usize> = HashMap::new();
        let mut alert_names_seen: HashMap<String, (usize, &str)> = HashMap::new();
        for (i, slo) in self.slos.iter().enumerate() {
            let at = |field: &str| format!("slos[{i}].{field}");
            if !is_name(&slo.name, false) {
                return Err(SpecError::new(
                    at("name"),
                    format!(
                        "SLO name `{}` must be lower case letters, digits, `-` or `_`",
                        slo.name
                    ),
                    "use a name such as availability or checkout-latency",
                ));
            }
            if let Some(first) = names_seen.insert(&slo.name, i) {
                return Err(SpecError::new(
                    at("name"),
                    format!("SLO name `{}` is already used by slos[{first}]", slo.name),
                    "give every SLO of a service a different name",
                ));
            }
            // Alert and runbook names camel-case the SLO name (`checkout-latency` and
            // `checkout_latency` both give `…CheckoutLatencySloBurn`): two SLOs would share
            // alerts and one runbook would overwrite the other. Compared without case too,
            // since runbook files may live on a case-insensitive file system.
            let camel = rules::camel(&[&slo.name]);
            if let Some((first, other)) = alert_names_seen.insert(camel.to_ascii_lowercase(), (i, &slo.name))
            {
                return Err(SpecError::new(
                    at("name"),
                    format!(
                        "SLO name `{}` gives the same alert and runbook names as `{other}` (slos[{first}]): {}SloBurn",
                        slo.name,
                        rules::camel(&[&self.service, &slo.name])
                    ),
                    "give the SLOs names that differ in more than `-`, `_` and case",
                ));
            }
            // The rules use `objective`, a public field that may have been changed after
            // the constructor: validate it, not the constructor's argument. The argument
            // only explains a 0 that stands for a number with no exact decimal.
            let o = slo.objective;
            let raw = slo.objective_raw;
            if o == Decimal::ZERO && Decimal::from_f64(raw).is_none() && raw > 0.0 && raw < 100.0 {
                return Err(SpecError::new(
                    at("objective"),
                    format!(
                        "objective {raw} has more than 30 digits, more than objectives are computed with"
                    ),
                    "write the objective in percent with fewer digits, e.g. 99.9",
                ));
            }
            if o == Decimal::ZERO && Decimal::from_f64(raw).is_none() {
                return Err(SpecError::new(
                    at("objective"),
                    format!("objective {raw} is not a percentage strictly between 0 and 100"),
                    "write the objective in percent, e.g. 99.9 (100 leaves no error budget)",
                ));
            }
            if !(o > Decimal::ZERO && o < Decimal::HUNDRED) {
                return Err(SpecError::new(
                    at("objective"),
                    format!("objective {o} is not a percentage strictly between 0 and 100"),
                    "write the objective in percent, e.g. 99.9 (100 leaves no error budget)",
                ));
            }
            if slo.objective.error_budget().to_f64() < 1e-6 {
                return Err(SpecError::new(
                    at("objective"),
                    format!("objective {o} leaves an error budget below 0.0001%"),
                    "use at most six nines (99.9999)",
                ));
            }
            if let Some(text) = window_error(slo) {
                return Err(SpecError::new(
                    at("window"),
                    format!("window `{text}` is not a duration"),
                    "write a whole number and a unit (m, h, d or w), e.g. 30d",
                ));
            }
            // A burn-rate pair reads the error ratio over its long window; a long window
            // longer than the SLO window measures more than the SLO promises.
            let slowest = BURN_WINDOWS
                .iter()
                .max_by_key(|w| w.long_seconds())
                .copied()
                .unwrap_or(BURN_WINDOWS[0]);
            if slo.window.seconds() < slowest.long_seconds() || slo.window.seconds() > 366 * 86_400 {
                return Err(SpecError::new(
                    at("window"),
                    format!(
                        "window {} is outside {}..366d (at least the long window of the slowest burn-rate alert, {})",
                        slo.window,
                        slowest.long,
                        slowest.label()
                    ),
                    "use a compliance window such as 28d or 30d",
                ));
            }
            let pairs = rules::burn_windows(slo);
            let pages: Vec<_> = pairs
                .iter()
                .filter(|w| w.pair.severity == Severity::Page)
                .collect();
            if !pages.iter().any(|w| w.can_fire()) {
                // The last page pair to remain is the one with the smallest burn factor:
                // it can fire while budget × burn < 1, i.e. objective > 100 - 100 / burn.
                let min_burn = pages.iter().map(|w| w.burn).min().unwrap_or(Decimal::ZERO);
                let cut_off = 100.0 - 100.0 / min_burn.to_f64();
                let thresholds: Vec<String> = pages
                    .iter()
                    .map(|w| format!("{} over {}", w.threshold, w.pair.label()))
                    .collect();
                return Err(SpecError::new(
                    at("objective"),
                    format!(
                        "objective {o} over {} leaves no paging burn-rate alert: its page thresholds ({}) are not below 1, and an error ratio never exceeds 1; over {} the objective must be above 100 - 100/{min_burn} ≈ {cut_off:.2}%",
                        slo.window,
                        thresholds.join(", "),
                        slo.window
                    ),
                    "raise the objective, or use a shorter window (burn-rate thresholds scale with it)",
                ));
            }
            if let SloKind::Latency { threshold_seconds } = slo.kind {
                if threshold_seconds.is_nan() {
                    return Err(SpecError::new(
                        at("threshold"),
                        "a latency SLO needs a `threshold` in seconds",
                        "add e.g. `threshold: 0.25` (a bucket boundary of the histogram)",
                    ));
                }
                if !buckets.contains(&threshold_seconds) {
                    let list: Vec<String> = buckets.iter().map(|b| format!("{b}")).collect();
                    return Err(SpecError::new(
                        at("threshold"),
                        format!(
                            "latency threshold {threshold_seconds} s is not a bucket boundary of the histogram, so the share of faster requests cannot be counted exactly"
                        ),
                        format!(
                            "use one of the boundaries [{}] or list your histogram's boundaries under `buckets`",
                            list.join(", ")
                        ),
                    ));
                }
            }
            if let Some(queue) = &slo.queue {
                // Any label value works (matchers are quoted and regex-escaped); only an
                // empty, huge or control-character name is a mistake.
                if queue.is_empty() || queue.len() > 255 || queue.chars().any(char::is_control) {
                    return Err(SpecError::new(
                        at("queue"),
                        format!("queue {queue:?} is not a queue name"),
                        "use the name given to `Telemetry::job(...)` (1 to 255 characters), e.g. fulfil_order",
                    ));
                }
                // The queue name is also written into the alerts' descriptions.
                template_free(&at("queue"), queue, "the queue name")?;
                if !slo.routes.is_empty() {
                    return Err(SpecError::new(
                        format!("slos[{i}].routes[0]"),
                        "a job SLO (with `queue`) has no routes",
                        "remove `routes`, or `queue` to make it a request SLO",
                    ));
                }
                if slo.metric.is_some() {
                    return Err(SpecError::new(
                        at("metric"),
                        format!(
                            "a job SLO (with `queue`) always reads {}",
                            names::job::MESSAGING_PROCESS_DURATION
                        ),
                        "remove `metric`",
                    ));
                }
            }
            if let Some(metric) = &slo.metric {
                let allowed = allowed_metrics(self.scheme, &slo.kind);
                if !allowed.contains(&metric.as_str()) {
                    return Err(SpecError::new(
                        at("metric"),
                        format!(
                            "unknown metric `{metric}` for kind {} with scheme {}",
                            slo.kind.as_str(),
                            scheme_name(self.scheme)
                        ),
                        format!("use one of: {} (or remove the key)", allowed.join(", ")),
                    ));
                }
            }
            let allowed_labels: &[&str] = if slo.queue.is_some() {
                &[names::job::MESSAGING_SYSTEM, names::labels::ENVIRONMENT]
            } else {
                &[
                    scheme_labels.method,
                    scheme_labels.route,
                    names::labels::ENVIRONMENT,
                ]
            };
            for label in slo.selectors.keys() {
                if !allowed_labels.contains(&label.as_str()) {
                    return Err(SpecError::new(
                        at("selectors"),
                        if slo.queue.is_some() {
                            format!("unknown label `{label}` for a job SLO")
                        } else {
                            format!("unknown label `{label}` for scheme {}", scheme_name(self.scheme))
                        },
                        if slo.queue.is_some() {
                            format!(
                                "select on one of: {} (the queue goes under `queue`)",
                                allowed_labels.join(", ")
                            )
                        } else {
                            format!(
                                "select on one of: {} (routes go under `routes`)",
                                allowed_labels.join(", ")
                            )
                        },
                    ));
                }
            }
            for (j, route) in slo.routes.iter().enumerate() {
                if !route.starts_with('/') {
                    return Err(SpecError::new(
                        format!("slos[{i}].routes[{j}]"),
                        format!("route `{route}` is not a route template"),
                        "write the template as the router declares it, e.g. /orders/{id}",
                    ));
                }
            }
        }
        Ok(ServiceSpec {
            service: self.service,
            scheme: self.scheme,
            service_label: self.service_label,
            labels: self.labels,
            runbook_base,
            buckets,
            dependencies: self.dependencies,
            warnings,
            slos: self.slos,
        })
    }
}

/// Metrics a SLO of this kind may read under this scheme (the first is the default).
pub fn allowed_metrics(scheme: Scheme, kind: &SloKind) -> Vec<&'static str> {
    let labels = LabelNames::for_scheme(scheme);
    let mut v = vec![labels.duration];
    if let (Some(total), SloKind::Availability) = (labels.requests_total, kind) {
        v.push(total);
    }
    v
}

/// `otel` or `legacy`, as written in specs.
pub const fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::OpenTelemetry => "otel",
        Scheme::Legacy => "legacy",
    }
}

fn is_name(s: &str, allow_upper_and_dot: bool) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || b == b'_'
                || (allow_upper_and_dot && (b.is_ascii_uppercase() || b == b'.'))
        })
}

/// Rejects `{{` and `}}` in text that ends up in alert labels or annotations, which
/// Prometheus expands as Go templates: `{{` there breaks loading the rules or is replaced.
///
/// Rejected rather than escaped: these values (routing labels, a queue name, a URL) never
/// need braces, and an escaped value (`{{ "{{" }}`) would read differently in the rule file
/// than in the alert, in Alertmanager matchers and in the runbooks.
fn template_free(path: &str, value: &str, what: &str) -> Result<(), SpecError> {
    if value.contains("{{") || value.contains("}}") {
        return Err(SpecError::new(
            path,
            format!(
                "{what} `{value}` contains `{{{{` or `}}}}`, which Prometheus reads as a template in alert labels and annotations"
            ),
            "remove the double braces",
        ));
    }
    Ok(())
}

fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

// === YAML ===

#[derive(Default)]
struct Locations(HashMap<String, (u64, u64)>);

impl Locations {
    fn put<T>(&mut self, path: impl Into<String>, s: &Spanned<T>) {
        let l = s.referenced;
        if l.line() > 0 {
            self.0.insert(path.into(), (l.line(), l.column()));
        }
    }

    /// The location of `path`, or of the closest enclosing path that has one.
    fn find(&self, path: &str) -> Option<(u64, u64)> {
        let mut p = path.to_owned();
        loop {
            if let Some(l) = self.0.get(&p) {
                return Some(*l);
            }
            // `slos[1].routes[0]` -> `slos[1].routes` -> `slos[1]` -> `slos[1].name`.
            if let Some(i) = p.rfind(['.', '[']) {
                p.truncate(i);
                if let Some(l) = self.0.get(&format!("{p}.name")) {
                    return Some(*l);
                }
            } else {
                return None;
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    service: Spanned<String>,
    #[serde(default)]
    scheme: Option<Spanned<RawScheme>>,
    #[serde(default)]
    service_label: Option<Spanned<String>>,
    #[serde(default)]
    labels: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    runbook_base: Option<Spanned<String>>,
    #[serde(default)]
    buckets: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    dependencies: Vec<Spanned<String>>,
    #[serde(default)]
    warnings: Option<RawWarnings>,
    #[serde(default)]
    slos: Vec<RawSlo>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawScheme {
    Otel,
    Legacy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWarnings {
    #[serde(default)]
    error_ratio: Option<Spanned<f64>>,
    #[serde(default)]
    dependency_error_ratio: Option<Spanned<f64>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Availability,
    Latency,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    name: Spanned<String>,
    kind: Spanned<RawKind>,
    objective: Spanned<f64>,
    #[serde(default)]
    window: Option<Spanned<String>>,
    #[serde(default)]
    threshold: Option<Spanned<f64>>,
    #[serde(default)]
    routes: Vec<Spanned<String>>,
    #[serde(default)]
    queue: Option<Spanned<String>>,
    #[serde(default)]
    selectors: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    metric: Option<Spanned<String>>,
    #[serde(default)]
    description: Option<String>,
}

/// Marker for a window that did not parse; caught in `into_builder`.
const BAD_WINDOW: &str = "\u{0}bad";

impl RawSpec {
    fn into_builder(self, locs: &mut Locations) -> ServiceSpecBuilder {
        locs.put("service", &self.service);
        let mut b = ServiceSpec::builder(self.service.value);
        if let Some(s) = self.scheme {
            locs.put("scheme", &s);
            b = b.scheme(match s.value {
                RawScheme::Otel => Scheme::OpenTelemetry,
                RawScheme::Legacy => Scheme::Legacy,
            });
        }
        if let Some(s) = self.service_label {
            locs.put("service_label", &s);
            b = b.service_label(s.value);
        }
        if let Some(l) = self.labels {
            for k in l.value.keys() {
                locs.put(format!("labels.{k}"), &l);
            }
            for (k, v) in l.value {
                b = b.label(k, v);
            }
        }
        if let Some(r) = self.runbook_base {
            locs.put("runbook_base", &r);
            b = b.runbook_base(r.value);
        }
        if let Some(bk) = self.buckets {
            locs.put("buckets", &bk);
            b = b.buckets(bk.value);
        }
        for (i, d) in self.dependencies.into_iter().enumerate() {
            locs.put(format!("dependencies[{i}]"), &d);
            b = b.dependency(d.value);
        }
        if let Some(w) = self.warnings {
            if let Some(r) = w.error_ratio {
                locs.put("warnings.error_ratio", &r);
                b = b.warn_error_ratio(r.value);
            }
            if let Some(r) = w.dependency_error_ratio {
                locs.put("warnings.dependency_error_ratio", &r);
                b = b.warn_dependency_error_ratio(r.value);
            }
        }
        for (i, s) in self.slos.into_iter().enumerate() {
            let at = |f: &str| format!("slos[{i}].{f}");
            locs.put(at("name"), &s.name);
            locs.put(at("kind"), &s.kind);
            locs.put(at("objective"), &s.objective);
            let mut slo = match s.kind.value {
                RawKind::Availability => Slo::availability(s.name.value, s.objective.value),
                RawKind::Latency => match &s.threshold {
                    Some(t) => Slo::latency(s.name.value, s.objective.value, t.value),
                    // NaN is never a bucket: reported as a missing threshold below.
                    None => Slo::latency(s.name.value, s.objective.value, f64::NAN),
                },
            };
            if let Some(t) = &s.threshold {
                locs.put(at("threshold"), t);
            } else {
                locs.put(at("threshold"), &s.kind);
            }
            if let Some(w) = s.window {
                locs.put(at("window"), &w);
                slo = slo.window(Window::parse(&w.value).unwrap_or(Window {
                    seconds: 0,
                    text: format!("{BAD_WINDOW}{}", w.value),
                }));
            }
            for (j, r) in s.routes.into_iter().enumerate() {
                locs.put(format!("slos[{i}].routes[{j}]"), &r);
                slo = slo.route(r.value);
            }
            if let Some(q) = s.queue {
                locs.put(at("queue"), &q);
                slo = slo.queue(q.value);
            }
            if let Some(sel) = s.selectors {
                locs.put(at("selectors"), &sel);
                for (k, v) in sel.value {
                    slo = slo.selector(k, v);
                }
            }
            if let Some(m) = s.metric {
                locs.put(at("metric"), &m);
                slo = slo.metric(m.value);
            }
            if let Some(d) = s.description {
                slo = slo.description(d);
            }
            b = b.slo(slo);
        }
        b
    }
}

/// A window that did not parse reaches `build()` through a marker, so the builder and
/// YAML share one validator.
fn window_error(slo: &Slo) -> Option<String> {
    slo.window.as_str().strip_prefix(BAD_WINDOW).map(str::to_owned)
}
