//! A Grafana dashboard (JSON model, importable) for one service.
//!
//! ```
//! use telltale_slo::dashboard;
//! use telltale_slo::spec::{ServiceSpec, Slo};
//!
//! let spec = ServiceSpec::builder("orders-api")
//!     .slo(Slo::availability("availability", 99.9))
//!     .build()
//!     .unwrap();
//! let json = dashboard::dashboard(&spec);
//! assert_eq!(json["title"], "orders-api");
//! assert!(dashboard::dashboard_exprs(&spec).iter().any(|e| e.contains("process_cpu_seconds_total")));
//! ```
//!
//! A service without a single failed request or job run shows an error ratio (and SLI) of
//! 0, not "no data" (see [`promql::error_ratio`]); only a service without traffic has none.
//!
//! Rows: golden signals (traffic, errors, latency p50/p95/p99, saturation: in-flight, CPU,
//! memory; a worker, whose SLOs are all job SLOs, gets only CPU and memory), SLOs (SLI, error budget remaining, burn rate per SLO), dependencies (rate,
//! errors, p99 latency, circuit-breaker state per `peer_service`; left out for a worker
//! that lists no `dependencies`). Deploy markers: a
//! `build_info` series with a new `version`/`commit` that did not exist 10 minutes
//! earlier. (`changes(build_info[..])` is always 0: the gauge is constantly 1 and a deploy
//! shows up as a *new series*, which this form detects.)
//! The Prometheus data source is the `datasource` variable.

use serde_json::{Value, json};
use telltale_metrics::names::{self, client, meta};

use crate::promql::{self, eq};
use crate::spec::ServiceSpec;

/// Grafana's dashboard JSON schema version written (Grafana 10.4 / 11).
pub const SCHEMA_VERSION: u64 = 39;

const DS: &str = "${datasource}";

struct Layout {
    panels: Vec<Value>,
    next_id: u64,
    y: u64,
    x: u64,
}

impl Layout {
    fn row(&mut self, title: &str) {
        if self.x > 0 {
            self.y += 8;
            self.x = 0;
        }
        let id = self.id();
        self.panels.push(json!({
            "type": "row", "id": id, "title": title, "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []
        }));
        self.y += 1;
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn panel(&mut self, kind: &str, title: &str, unit: &str, targets: &[(&str, String)]) {
        let w = 8;
        if self.x + w > 24 {
            self.x = 0;
            self.y += 8;
        }
        let id = self.id();
        let targets: Vec<Value> = targets
            .iter()
            .enumerate()
            .map(|(i, (legend, expr))| {
                json!({
                    "refId": ((b'A' + i as u8) as char).to_string(),
                    "datasource": {"type": "prometheus", "uid": DS},
                    "expr": expr,
                    "legendFormat": legend,
                })
            })
            .collect();
        self.panels.push(json!({
            "type": kind,
            "id": id,
            "title": title,
            "datasource": {"type": "prometheus", "uid": DS},
            "gridPos": {"h": 8, "w": w, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
            "targets": targets,
        }));
        self.x += w;
    }
}

/// `sum by (label) (rate(series[$__rate_interval]))`.
fn rate_by(label: &str, series: &str) -> String {
    format!("sum by ({label}) (rate({series}[$__rate_interval]))")
}

/// The share of `all` that is `bad`, by `label`.
fn ratio_by(label: &str, bad: &str, all: &str) -> String {
    format!("{} / {}", rate_by(label, bad), rate_by(label, all))
}

/// Quantile `q` of a histogram's `_bucket` series, by `label`.
fn quantile_by(q: &str, label: &str, buckets: &str) -> String {
    format!(
        "histogram_quantile({q}, {})",
        rate_by(&format!("{label}, le"), buckets)
    )
}

fn sel(metric: &str, matchers: &[String]) -> String {
    format!("{metric}{{{}}}", matchers.join(","))
}

/// The dashboard as Grafana JSON.
pub fn dashboard(spec: &ServiceSpec) -> Value {
    let l = spec.label_names();
    let svc = promql::service_matchers(spec);
    let mut lay = Layout {
        panels: Vec::new(),
        next_id: 0,
        y: 0,
        x: 0,
    };

    if spec.serves_requests() {
        lay.row("Golden signals");
        let count = format!("{}_count", l.duration);
        let bucket = format!("{}_bucket", l.duration);
        let mut bad = svc.clone();
        bad.push(promql::server_error_matcher(spec));
        let route_legend = format!("{{{{{}}}}}", l.route);
        lay.panel(
            "timeseries",
            "Traffic (requests/s by route)",
            "reqps",
            &[(&route_legend, rate_by(l.route, &sel(&count, &svc)))],
        );
        lay.panel(
            "timeseries",
            "Errors (failed-request ratio)",
            "percentunit",
            &[(
                "errors",
                // `or vector(0)`: no error series at all is 0%, not "no data".
                format!(
                    "(sum(rate({}[$__rate_interval])) or vector(0)) / sum(rate({}[$__rate_interval]))",
                    sel(&count, &bad),
                    sel(&count, &svc)
                ),
            )],
        );
        let q = |p: &str| {
            format!(
                "histogram_quantile({p}, sum by (le) (rate({}[$__rate_interval])))",
                sel(&bucket, &svc)
            )
        };
        lay.panel(
            "timeseries",
            "Latency",
            "s",
            &[("p50", q("0.5")), ("p95", q("0.95")), ("p99", q("0.99"))],
        );
        lay.panel(
            "timeseries",
            "Saturation: in-flight requests",
            "short",
            &[("in flight", format!("sum({})", sel(l.in_flight, &svc)))],
        );
    } else {
        // A worker: its traffic, errors and latency are the Jobs row's.
        lay.row("Saturation");
    }
    lay.panel(
        "timeseries",
        "Saturation: CPU (cores)",
        "short",
        &[(
            "{{instance}}",
            format!(
                "rate({}[$__rate_interval])",
                sel(meta::PROCESS_CPU_SECONDS_TOTAL, &svc)
            ),
        )],
    );
    lay.panel(
        "timeseries",
        "Saturation: resident memory",
        "bytes",
        &[("{{instance}}", sel(meta::PROCESS_RESIDENT_MEMORY_BYTES, &svc))],
    );

    lay.row("SLOs");
    for slo in &spec.slos {
        let budget = slo.error_budget();
        let ratio = promql::error_ratio_one_line(spec, slo, slo.window.as_str());
        lay.panel(
            "stat",
            &format!(
                "{}: SLI over {} (objective {}%)",
                slo.name, slo.window, slo.objective
            ),
            "percentunit",
            &[("SLI", format!("1 - ({ratio})"))],
        );
        lay.panel(
            "stat",
            &format!("{}: error budget remaining", slo.name),
            "percentunit",
            &[("remaining", format!("1 - ({ratio}) / {budget}"))],
        );
        let rec = |w: &str| {
            format!(
                "{}{{{},{}}} / {budget}",
                promql::recording_rule_name(w),
                eq("service", &spec.service),
                eq("slo", &slo.name)
            )
        };
        lay.panel(
            "timeseries",
            &format!("{}: burn rate", slo.name),
            "short",
            &[("1h", rec("1h")), ("6h", rec("6h")), ("3d", rec("3d"))],
        );
    }

    let queues: Vec<&str> = spec.slos.iter().filter_map(|slo| slo.queue.as_deref()).collect();
    if !queues.is_empty() {
        job_row(&mut lay, &svc, &queues);
    }

    // A worker that calls nothing has no dependency series to show.
    if spec.serves_requests() || !spec.dependencies.is_empty() {
        dependency_row(&mut lay, &svc);
    }

    let deploy = deploy_marker_expr(spec);
    json!({
        "uid": dashboard_uid(spec),
        "title": spec.service,
        "tags": ["telltale", "slo"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": true,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "templating": {"list": [{
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "options": [],
        }]},
        "annotations": {"list": [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": true, "hide": true, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"
            },
            {
                "name": "Deploys",
                "datasource": {"type": "prometheus", "uid": DS},
                "enable": true,
                "iconColor": "#8F3BB8",
                "expr": deploy,
                "step": "1m",
                "titleFormat": "Deploy",
                "textFormat": "version {{version}} commit {{commit}}",
                "tagKeys": "version,commit",
                "useValueForTime": false,
            }
        ]},
        "panels": lay.panels,
    })
}

/// The dashboard's Grafana uid: `telltale-<service>` when that fits Grafana's 40
/// characters; otherwise its first 31 characters, `-` and 8 hex digits of a stable hash
/// (FNV-1a) of the service name, so two long names with a common prefix still differ.
///
/// ```
/// use telltale_slo::dashboard::dashboard_uid;
/// use telltale_slo::spec::{ServiceSpec, Slo};
///
/// let spec = |name: &str| {
///     ServiceSpec::builder(name).slo(Slo::availability("availability", 99.9)).build().unwrap()
/// };
/// assert_eq!(dashboard_uid(&spec("orders-api")), "telltale-orders-api");
/// let a = dashboard_uid(&spec("payments-settlement-reconciliation-eu-west"));
/// let b = dashboard_uid(&spec("payments-settlement-reconciliation-us-east"));
/// assert!(a.len() <= 40 && b.len() <= 40);
/// assert_ne!(a, b);
/// assert!(a.starts_with("telltale-payments-settlement-r"));
/// ```
pub fn dashboard_uid(spec: &ServiceSpec) -> String {
    const MAX: usize = 40;
    let uid = format!("telltale-{}", spec.service);
    if uid.len() <= MAX {
        return uid;
    }
    // FNV-1a 64, folded to 32 bits: stable across builds and Rust versions (unlike
    // `DefaultHasher`), so a regenerated dashboard keeps its uid.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in spec.service.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let hash = format!("{:08x}", (h ^ (h >> 32)) as u32);
    let prefix: String = uid.chars().take(MAX - 1 - hash.len()).collect();
    format!("{prefix}-{hash}")
}

/// The "Jobs" row, for the queues the spec's job SLOs name: runs, failures, run time
/// and queue wait by queue.
fn job_row(lay: &mut Layout, svc: &[String], queues: &[&str]) {
    let q = names::job::MESSAGING_DESTINATION_NAME;
    let mut m = svc.to_vec();
    let mut distinct = queues.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    m.push(match distinct.as_slice() {
        [one] => eq(q, one),
        many => {
            let alternatives: Vec<String> = many.iter().map(|name| promql::regex_escape(name)).collect();
            format!("{q}=~{}", promql::quote(&alternatives.join("|")))
        }
    });
    let mut failed = m.clone();
    failed.push(format!("{}!=\"\"", names::labels::ERROR_TYPE));
    let count = format!("{}_count", names::job::MESSAGING_PROCESS_DURATION);
    let bucket = format!("{}_bucket", names::job::MESSAGING_PROCESS_DURATION);
    let wait = format!("{}_bucket", names::job::QUEUE_WAIT);
    let legend = format!("{{{{{q}}}}}");
    lay.row("Jobs");
    lay.panel(
        "timeseries",
        "Job runs/s by queue",
        "ops",
        &[(&legend, rate_by(q, &sel(&count, &m)))],
    );
    lay.panel(
        "timeseries",
        "Job failure ratio by queue",
        "percentunit",
        &[(&legend, ratio_by(q, &sel(&count, &failed), &sel(&count, &m)))],
    );
    lay.panel(
        "timeseries",
        "Job run time p99 by queue",
        "s",
        &[(&legend, quantile_by("0.99", q, &sel(&bucket, &m)))],
    );
    lay.panel(
        "timeseries",
        "Queue wait p95 by queue (enqueue to start)",
        "s",
        &[(&legend, quantile_by("0.95", q, &sel(&wait, &m)))],
    );
}

/// Calls, error ratio and p99 latency by `peer_service`, and the circuit breakers' state.
fn dependency_row(lay: &mut Layout, svc: &[String]) {
    lay.row("Dependencies");
    let client_count = format!("{}_count", names::otel::HTTP_CLIENT_REQUEST_DURATION);
    let client_bucket = format!("{}_bucket", names::otel::HTTP_CLIENT_REQUEST_DURATION);
    let mut client_bad = svc.to_vec();
    client_bad.push(format!("{}!=\"\"", names::labels::ERROR_TYPE));
    let peer = names::labels::PEER_SERVICE;
    lay.panel(
        "timeseries",
        "Dependency calls/s",
        "reqps",
        &[("{{peer_service}}", rate_by(peer, &sel(&client_count, svc)))],
    );
    lay.panel(
        "timeseries",
        "Dependency error ratio",
        "percentunit",
        &[(
            "{{peer_service}}",
            ratio_by(peer, &sel(&client_count, &client_bad), &sel(&client_count, svc)),
        )],
    );
    lay.panel(
        "timeseries",
        "Dependency latency p99",
        "s",
        &[(
            "{{peer_service}}",
            quantile_by("0.99", peer, &sel(&client_bucket, svc)),
        )],
    );
    lay.panel(
        "state-timeline",
        "Circuit breaker state",
        "short",
        &[(
            "{{peer_service}} {{state}}",
            format!(
                "max by ({peer}, {st}) ({}) == 1",
                sel(client::CIRCUIT_BREAKER_STATE, svc),
                st = names::labels::STATE
            ),
        )],
    );
}

/// The deploy-marker query: a `build_info` label set that is new in the last 10 minutes.
pub fn deploy_marker_expr(spec: &ServiceSpec) -> String {
    let svc = promql::service_matchers(spec);
    let by = format!("{}, {}", names::labels::VERSION, names::labels::COMMIT);
    let b = sel(meta::BUILD_INFO, &svc);
    format!("count by ({by}) ({b}) unless count by ({by}) ({b} offset 10m)")
}

/// Every PromQL expression of the dashboard (panels and annotations).
pub fn dashboard_exprs(spec: &ServiceSpec) -> Vec<String> {
    let mut out = Vec::new();
    collect_exprs(&dashboard(spec), &mut out);
    out
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "expr" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    collect_exprs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}
