//! SLOs as code: Prometheus recording and burn-rate alert rules, Alertmanager routes,
//! Grafana dashboards and runbooks from one spec.
//!
//! ```
//! use telltale_slo::spec::{ServiceSpec, Slo};
//!
//! let spec = ServiceSpec::builder("orders-api")
//!     .label("team", "orders")
//!     .dependency("inventory")
//!     .slo(Slo::availability("availability", 99.9))
//!     .slo(Slo::latency("latency", 99.0, 0.25))
//!     .build()
//!     .unwrap();
//! let out = telltale_slo::generate(&spec);
//! assert!(out.files.contains_key("prometheus/orders-api.rules.yaml"));
//! assert!(out.files.contains_key("alertmanager/alertmanager.yaml"));
//! assert!(out.files.contains_key("grafana/orders-api.json"));
//! assert!(out.files.contains_key("runbooks/OrdersApiAvailabilitySloBurn.md"));
//!
//! // Every metric the rules and the dashboard read is one telltale emits.
//! for name in telltale_slo::referenced_metric_names(&spec) {
//!     assert!(telltale_slo::known_metric_names().contains(&name), "{name}");
//! }
//! ```
//!
//! The command-line tool does the same from YAML:
//! `telltale-slo generate examples/orders-api/slo.yaml --out target/slo` and
//! `telltale-slo budget --prometheus http://127.0.0.1:9090 examples/orders-api/slo.yaml`.
//! See `docs/slo.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alertmanager;
pub mod budget;
pub mod dashboard;
mod decimal;
pub mod promql;
pub mod rules;
pub mod runbook;
pub mod spec;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use telltale_metrics::names::{client, job, legacy, meta, otel};

pub use decimal::{Decimal, ParseDecimalError};
pub use spec::{ServiceSpec, Slo, SpecError};

/// Generated files, keyed by path relative to the output directory (`/`-separated),
/// in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Relative path → content.
    pub files: BTreeMap<String, String>,
}

/// Generates rules, Alertmanager config, dashboard and runbooks for a validated spec.
pub fn generate(spec: &ServiceSpec) -> Generated {
    let mut files = BTreeMap::new();
    files.insert(
        format!("prometheus/{}.rules.yaml", spec.service),
        rules::rules_yaml(spec),
    );
    files.insert(
        format!("prometheus/{}.rules.md", spec.service),
        rules::rules_markdown(spec),
    );
    files.insert(
        "alertmanager/alertmanager.yaml".to_owned(),
        alertmanager::alertmanager_yaml(spec),
    );
    let dash = serde_json::to_string_pretty(&dashboard::dashboard(spec)).unwrap_or_default();
    files.insert(format!("grafana/{}.json", spec.service), dash + "\n");
    for (name, text) in runbook::runbooks(spec) {
        files.insert(format!("runbooks/{name}.md"), text);
    }
    Generated { files }
}

impl Generated {
    /// Writes every file under `dir`, each atomically (a temporary file in the same
    /// directory, flushed, then renamed into place): a reader sees the old or the new
    /// file, never half of one. Generation happens before anything is written, so an
    /// invalid spec writes nothing.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> std::io::Result<()> {
        let dir = dir.as_ref();
        for rel in self.files.keys() {
            if let Some(parent) = dir.join(rel).parent() {
                std::fs::create_dir_all(parent)?;
            }
        }
        for (rel, content) in &self.files {
            write_atomic(&dir.join(rel), content.as_bytes())?;
        }
        Ok(())
    }
}

/// Writes `content` to `path` through a temporary sibling file and a rename.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Every metric name the generated rules and dashboard select (`foo` of each `foo{...}`),
/// sorted; recording rules (names with `:`) are left out. Compare it with a real
/// `/metrics` scrape, or with [`known_metric_names`].
pub fn referenced_metric_names(spec: &ServiceSpec) -> BTreeSet<String> {
    let set = rules::rule_set(spec);
    let mut exprs: Vec<String> = set.recording.iter().map(|r| r.expr.clone()).collect();
    exprs.extend(set.alerts.iter().chain(&set.warnings).map(|a| a.expr.clone()));
    exprs.extend(dashboard::dashboard_exprs(spec));
    for slo in &spec.slos {
        exprs.extend(budget::budget_queries(spec, slo));
    }
    promql::metric_names_in(exprs.iter().map(String::as_str))
}

/// Every label name the generated rules, dashboard and budget queries match on or
/// aggregate by, sorted. (Panel legends also use `instance`, which Prometheus adds.)
pub fn referenced_label_names(spec: &ServiceSpec) -> BTreeSet<String> {
    let set = rules::rule_set(spec);
    let mut exprs: Vec<String> = set.recording.iter().map(|r| r.expr.clone()).collect();
    exprs.extend(set.alerts.iter().chain(&set.warnings).map(|a| a.expr.clone()));
    exprs.extend(dashboard::dashboard_exprs(spec));
    let mut out = promql::label_names_in(exprs.iter().map(String::as_str));
    // Recording rules' own labels are not read from telltale's metrics.
    out.remove("slo");
    out
}

/// What the rules and dashboard read that a real `/metrics` scrape (Prometheus text
/// format) lacks: `metric NAME` and `label NAME` entries, sorted. Empty = everything is
/// there. Scrape after traffic that exercises each path (a 5xx, a dependency call), since
/// some series only appear once observed.
///
/// ```
/// use telltale_slo::{ServiceSpec, Slo, missing_from_scrape};
///
/// let spec = ServiceSpec::builder("orders-api")
///     .slo(Slo::availability("availability", 99.9))
///     .build()
///     .unwrap();
/// let scrape = "http_server_request_duration_seconds_count{service=\"orders-api\",http_route=\"/\"} 3\n";
/// let missing = missing_from_scrape(&spec, scrape);
/// assert!(missing.contains(&"metric build_info".to_owned()));
/// assert!(!missing.iter().any(|m| m.ends_with(" http_server_request_duration_seconds_count")));
/// ```
pub fn missing_from_scrape(spec: &ServiceSpec, exposition: &str) -> Vec<String> {
    let mut metrics = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for line in exposition.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        metrics.insert(line[..end].to_owned());
        if line[end..].starts_with('{') {
            labels.extend(promql::label_names_in([
                &line[..line.rfind('}').map_or(line.len(), |i| i + 1)]
            ]));
        }
    }
    let mut missing: Vec<String> = referenced_metric_names(spec)
        .into_iter()
        .filter(|m| !metrics.contains(m))
        .map(|m| format!("metric {m}"))
        .collect();
    missing.extend(
        referenced_label_names(spec)
            .into_iter()
            .filter(|l| !labels.contains(l))
            .map(|l| format!("label {l}")),
    );
    missing
}

/// Exposition names of every series telltale emits that rules and dashboards may read:
/// the constants of `telltale_metrics::names`, with `_bucket`/`_count`/`_sum` for
/// histograms.
pub fn known_metric_names() -> BTreeSet<String> {
    let histograms = [
        otel::HTTP_SERVER_REQUEST_DURATION,
        otel::HTTP_CLIENT_REQUEST_DURATION,
        otel::RPC_SERVER_CALL_DURATION,
        otel::RPC_CLIENT_CALL_DURATION,
        otel::HTTP_SERVER_REQUEST_BODY_SIZE,
        otel::HTTP_SERVER_RESPONSE_BODY_SIZE,
        legacy::HTTP_REQUEST_DURATION,
        job::MESSAGING_PROCESS_DURATION,
        job::QUEUE_WAIT,
    ];
    let mut out: BTreeSet<String> = [
        otel::HTTP_SERVER_ACTIVE_REQUESTS,
        legacy::HTTP_REQUESTS_TOTAL,
        legacy::HTTP_REQUESTS_IN_FLIGHT,
        client::ATTEMPTS_TOTAL,
        client::RETRIES_TOTAL,
        client::RETRIES_SKIPPED_TOTAL,
        client::CIRCUIT_BREAKER_STATE,
        client::CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
        client::CIRCUIT_BREAKER_REJECTED_TOTAL,
        client::BULKHEAD_REJECTED_TOTAL,
        meta::BUILD_INFO,
        meta::CARDINALITY_OVERFLOW_TOTAL,
        meta::PROCESS_CPU_SECONDS_TOTAL,
        meta::PROCESS_RESIDENT_MEMORY_BYTES,
        meta::PROCESS_OPEN_FDS,
        meta::PROCESS_START_TIME_SECONDS,
        meta::PROCESS_THREADS,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for h in histograms {
        for suffix in ["_bucket", "_count", "_sum"] {
            out.insert(format!("{h}{suffix}"));
        }
    }
    out
}
