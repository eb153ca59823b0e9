//! Prometheus recording rules and multi-window, multi-burn-rate alerts (Google SRE
//! Workbook, chapter 5), plus non-paging warnings.
//!
//! ```
//! use telltale_slo::rules;
//! use telltale_slo::spec::{ServiceSpec, Slo};
//!
//! let spec = ServiceSpec::builder("orders-api")
//!     .slo(Slo::availability("availability", 99.9))
//!     .build()
//!     .unwrap();
//! let set = rules::rule_set(&spec);
//! let page = set.alerts.iter().find(|a| a.labels.contains(&("window".into(), "1h/5m".into()))).unwrap();
//! assert!(page.expr.contains("> 0.0144"));
//! let yaml = rules::rules_yaml(&spec);
//! assert!(yaml.contains("record: slo:sli_error:ratio_rate3d"));
//! ```
//!
//! For each SLO: one recording rule per window in [`RULE_WINDOWS`](crate::promql::RULE_WINDOWS),
//! labelled `service` and `slo`; one alert rule per window pair of [`BURN_WINDOWS`], all with
//! the same alert name and a `window` label naming the pair; an `absent()` alert so a dead
//! exporter is not read as a perfect SLO; for latency SLOs a warning when the objective's
//! quantile is above the threshold. Per service: a 5xx-ratio warning and, per dependency, an
//! error-ratio and a circuit-breaker-open warning.
//!
//! Burn-rate thresholds follow the SLO's window (see [`burn_windows`]): the workbook's
//! 14.4/6/3/1 are those of a 30-day window; a 28-day window pages at 13.44× over 1h. A pair
//! whose error-ratio threshold is 1 or more could never fire, since an error ratio cannot
//! exceed 1: it is left out, and its runbook and a comment in the rule file say so.
//! Validation rejects an SLO left without a paging pair.
//!
//! ```
//! use telltale_slo::rules;
//! use telltale_slo::spec::{ServiceSpec, Slo};
//!
//! // 90% over 30 days: 14.4 × 0.1 = 1.44 can never be exceeded, so no 1h/5m page.
//! let spec = ServiceSpec::builder("orders-api")
//!     .slo(Slo::availability("availability", 90.0))
//!     .build()
//!     .unwrap();
//! let set = rules::rule_set(&spec);
//! assert!(!set.alerts.iter().any(|a| a.label("window") == Some("1h/5m")));
//! assert!(set.alerts.iter().any(|a| a.label("window") == Some("6h/30m")));
//! ```

use crate::decimal::Decimal;
use crate::promql::{self, RULE_WINDOWS};
use crate::spec::{ServiceSpec, Slo, SloKind, Window};
use crate::yaml::Node;

/// Who is told: `page` wakes someone, `ticket` and `warning` wait for working hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Urgent: a human must act now.
    Page,
    /// Act within a working day.
    Ticket,
    /// Informational, non-paging.
    Warning,
}

impl Severity {
    /// The `severity` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
            Severity::Warning => "warning",
        }
    }
}

/// One row of the SRE Workbook's multi-window, multi-burn-rate table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurnWindow {
    /// Long window.
    pub long: &'static str,
    /// Short window (1/12 of the long one): the alert stops soon after the errors do.
    pub short: &'static str,
    /// Burn-rate factor for a 30-day SLO window (the workbook's), as exact decimal text;
    /// [`burn_for`](Self::burn_for) gives it for any window.
    pub burn: &'static str,
    /// Severity.
    pub severity: Severity,
    /// Share of the SLO window's error budget consumed over the long window when the
    /// alert fires, percent.
    pub budget_consumed_percent: &'static str,
}

/// Fractional digits burn factors are rounded to when the SLO window does not give an
/// exact decimal (`0.1 × 28d / 3d = 0.9333`).
pub const BURN_DECIMALS: u32 = 4;

impl BurnWindow {
    /// `1h/5m`: the value of the `window` label.
    pub fn label(&self) -> String {
        format!("{}/{}", self.long, self.short)
    }

    /// The burn factor for a 30-day SLO window, as a decimal.
    pub fn burn(&self) -> Decimal {
        self.burn.parse().unwrap_or(Decimal::ZERO)
    }

    /// The long window, in seconds.
    pub fn long_seconds(&self) -> u64 {
        Window::parse(self.long).map_or(0, |w| w.seconds())
    }

    /// The burn factor for an SLO over `slo_window`: consumed share × SLO window / long
    /// window (the workbook's formula), rounded to [`BURN_DECIMALS`] fractional digits.
    /// 14.4 for 30d and 1h, 13.44 for 28d and 1h.
    ///
    /// ```
    /// use telltale_slo::rules::BURN_WINDOWS;
    /// use telltale_slo::spec::Window;
    ///
    /// let page = &BURN_WINDOWS[0];
    /// assert_eq!(page.burn_for(&Window::days(30)).to_string(), "14.4");
    /// assert_eq!(page.burn_for(&Window::days(28)).to_string(), "13.44");
    /// assert_eq!(BURN_WINDOWS[3].burn_for(&Window::days(28)).to_string(), "0.9333");
    /// ```
    pub fn burn_for(&self, slo_window: &Window) -> Decimal {
        let consumed: Decimal = self.budget_consumed_percent.parse().unwrap_or(Decimal::ZERO);
        let window = i128::from(slo_window.seconds());
        consumed
            .mul(&Decimal::new(window, 0))
            .div_rounded(100 * self.long_seconds().max(1), BURN_DECIMALS)
    }
}

/// Page at 14.4× over 1h and 5m and at 6× over 6h and 30m; ticket at 3× over 1d and 2h
/// and at 1× over 3d and 6h (the factors of a 30-day SLO window: 2%, 5%, 10% and 10% of
/// the budget spent over the long window; [`BurnWindow::burn_for`] scales them to others).
pub const BURN_WINDOWS: [BurnWindow; 4] = [
    BurnWindow {
        long: "1h",
        short: "5m",
        burn: "14.4",
        severity: Severity::Page,
        budget_consumed_percent: "2",
    },
    BurnWindow {
        long: "6h",
        short: "30m",
        burn: "6",
        severity: Severity::Page,
        budget_consumed_percent: "5",
    },
    BurnWindow {
        long: "1d",
        short: "2h",
        burn: "3",
        severity: Severity::Ticket,
        budget_consumed_percent: "10",
    },
    BurnWindow {
        long: "3d",
        short: "6h",
        burn: "1",
        severity: Severity::Ticket,
        budget_consumed_percent: "10",
    },
];

/// A row of [`BURN_WINDOWS`] applied to one SLO.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloBurnWindow {
    /// The window pair.
    pub pair: BurnWindow,
    /// Its burn factor for the SLO's window ([`BurnWindow::burn_for`]).
    pub burn: Decimal,
    /// The error-ratio threshold: burn × error budget.
    pub threshold: Decimal,
}

impl SloBurnWindow {
    /// Whether the alert can ever fire: its threshold is below 1, the largest error ratio.
    /// Pairs that cannot are left out of the rules.
    pub fn can_fire(&self) -> bool {
        self.threshold < Decimal::new(1, 0)
    }
}

/// Every row of [`BURN_WINDOWS`] for `slo`, with the burn factor and threshold of its
/// window, including the rows that cannot fire ([`SloBurnWindow::can_fire`]).
pub fn burn_windows(slo: &Slo) -> Vec<SloBurnWindow> {
    BURN_WINDOWS
        .iter()
        .map(|pair| {
            let burn = pair.burn_for(&slo.window);
            SloBurnWindow {
                pair: *pair,
                burn,
                threshold: promql::burn_threshold(slo, &burn),
            }
        })
        .collect()
}

/// A recording rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRule {
    /// Recorded series name.
    pub record: String,
    /// PromQL.
    pub expr: String,
    /// Labels added (`service`, `slo`).
    pub labels: Vec<(String, String)>,
}

/// What kind of alert a rule is; runbooks are written per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertKind {
    /// Error budget burn for an SLO.
    Burn {
        /// The SLO's name.
        slo: String,
    },
    /// The SLI's metrics are absent.
    Absent {
        /// The SLO's name.
        slo: String,
    },
    /// A latency SLO's quantile is above its threshold.
    LatencyAboveThreshold {
        /// The SLO's name.
        slo: String,
    },
    /// The service's 5xx ratio is above the warning level.
    ErrorRatio,
    /// A dependency's error ratio is above the warning level.
    DependencyErrors,
    /// A dependency's circuit breaker is open.
    BreakerOpen,
}

/// An alert rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// Alert name (several rules may share one: burn alerts differ by `window`).
    pub alert: String,
    /// PromQL.
    pub expr: String,
    /// `for` duration, if any.
    pub for_: Option<String>,
    /// Labels, in output order.
    pub labels: Vec<(String, String)>,
    /// Annotations, in output order.
    pub annotations: Vec<(String, String)>,
    /// What it is about.
    pub kind: AlertKind,
}

impl AlertRule {
    /// A label's value.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Everything for one service.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    /// Recording rules.
    pub recording: Vec<RecordingRule>,
    /// SLO alerts (burn and absent).
    pub alerts: Vec<AlertRule>,
    /// Non-paging warnings.
    pub warnings: Vec<AlertRule>,
}

/// `orders-api` + `availability` -> `OrdersApiAvailability`.
pub fn camel(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        for word in part.split(|c: char| !c.is_ascii_alphanumeric()) {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
        }
    }
    out
}

/// Alert name of an SLO's burn-rate alerts.
pub fn burn_alert_name(spec: &ServiceSpec, slo: &Slo) -> String {
    format!("{}SloBurn", camel(&[&spec.service, &slo.name]))
}

fn slo_selector(spec: &ServiceSpec, slo: &Slo) -> String {
    format!(
        "{{{},{}}}",
        promql::eq("service", &spec.service),
        promql::eq("slo", &slo.name)
    )
}

fn base_labels(spec: &ServiceSpec, slo: Option<&Slo>) -> Vec<(String, String)> {
    let mut l = vec![("service".to_owned(), spec.service.clone())];
    if let Some(slo) = slo {
        l.push(("slo".to_owned(), slo.name.clone()));
    }
    l.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    l
}

fn runbook_url(spec: &ServiceSpec, alert: &str) -> String {
    format!("{}/{alert}.md", spec.runbook_base)
}

fn describe_slo(spec: &ServiceSpec, slo: &Slo) -> String {
    match (&slo.queue, &slo.kind) {
        (None, SloKind::Availability) => format!(
            "{}% of requests not failing with {} over {}",
            slo.objective,
            promql::server_error_phrase(spec),
            slo.window
        ),
        (None, SloKind::Latency { threshold_seconds }) => format!(
            "{}% of requests faster than {threshold_seconds} s over {}",
            slo.objective, slo.window
        ),
        (Some(queue), SloKind::Availability) => format!(
            "{}% of {queue} job runs not failing over {}",
            slo.objective, slo.window
        ),
        (Some(queue), SloKind::Latency { threshold_seconds }) => format!(
            "{}% of {queue} job runs faster than {threshold_seconds} s over {}",
            slo.objective, slo.window
        ),
    }
}

/// Builds the rules for a spec.
pub fn rule_set(spec: &ServiceSpec) -> RuleSet {
    let mut recording = Vec::new();
    let mut alerts = Vec::new();
    let mut warnings = Vec::new();
    for slo in &spec.slos {
        for w in RULE_WINDOWS {
            recording.push(RecordingRule {
                record: promql::recording_rule_name(w),
                expr: promql::error_ratio(spec, slo, w),
                labels: vec![
                    ("service".to_owned(), spec.service.clone()),
                    ("slo".to_owned(), slo.name.clone()),
                ],
            });
        }
        let name = burn_alert_name(spec, slo);
        let sel = slo_selector(spec, slo);
        let budget = slo.error_budget();
        for sbw in burn_windows(slo).iter().filter(|w| w.can_fire()) {
            let (bw, burn, threshold) = (&sbw.pair, sbw.burn, sbw.threshold);
            let expr = format!(
                "(\n  {long}{sel} > {threshold}\nand\n  {short}{sel} > {threshold}\n)\n/ {budget}",
                long = promql::recording_rule_name(bw.long),
                short = promql::recording_rule_name(bw.short),
            );
            let mut labels = base_labels(spec, Some(slo));
            labels.push(("severity".to_owned(), bw.severity.as_str().to_owned()));
            labels.push(("window".to_owned(), bw.label()));
            alerts.push(AlertRule {
                alert: name.clone(),
                expr,
                for_: None,
                labels,
                annotations: vec![
                    (
                        "summary".to_owned(),
                        format!(
                            "{} {} SLO: error budget burning {burn}x too fast over {} and {}",
                            spec.service, slo.name, bw.long, bw.short
                        ),
                    ),
                    (
                        "description".to_owned(),
                        format!(
                            "The {} SLO ({}) burns its error budget at {{{{ $value | printf \"%.2f\" }}}}x the sustainable rate over the last {} (threshold {burn}x, confirmed over {}). At {burn}x, {}% of the {} budget is gone when this fires.",
                            slo.name,
                            describe_slo(spec, slo),
                            bw.long,
                            bw.short,
                            bw.budget_consumed_percent,
                            slo.window
                        ),
                    ),
                    ("runbook_url".to_owned(), runbook_url(spec, &name)),
                ],
                kind: AlertKind::Burn {
                    slo: slo.name.clone(),
                },
            });
        }
        let absent_name = format!("{}SliMissing", camel(&[&spec.service, &slo.name]));
        let mut labels = base_labels(spec, Some(slo));
        labels.push(("severity".to_owned(), Severity::Page.as_str().to_owned()));
        alerts.push(AlertRule {
            alert: absent_name.clone(),
            expr: promql::absent_expr(spec, slo),
            for_: Some("10m".to_owned()),
            labels,
            annotations: vec![
                (
                    "summary".to_owned(),
                    format!("{} {} SLI has no data", spec.service, slo.name),
                ),
                (
                    "description".to_owned(),
                    format!(
                        "No series for the {} SLI of {} for 10 minutes: the exporter, the scrape or the service is down, or the metric was renamed. The SLO cannot be evaluated; this is not a perfect SLO.",
                        slo.name, spec.service
                    ),
                ),
                ("runbook_url".to_owned(), runbook_url(spec, &absent_name)),
            ],
            kind: AlertKind::Absent {
                slo: slo.name.clone(),
            },
        });
        if let SloKind::Latency { threshold_seconds } = slo.kind {
            let q = slo.objective.percent_to_ratio();
            let alert = format!("{}AboveThreshold", camel(&[&spec.service, &slo.name]));
            let mut labels = base_labels(spec, Some(slo));
            labels.push(("severity".to_owned(), Severity::Warning.as_str().to_owned()));
            warnings.push(AlertRule {
                alert: alert.clone(),
                expr: format!(
                    "{} > {threshold_seconds}",
                    promql::latency_quantile(spec, slo, &q.to_string(), "5m")
                ),
                for_: Some("10m".to_owned()),
                labels,
                annotations: vec![
                    (
                        "summary".to_owned(),
                        format!(
                            "{} p{} latency above {threshold_seconds} s",
                            spec.service,
                            slo.objective
                        ),
                    ),
                    (
                        "description".to_owned(),
                        format!(
                            "The {q} quantile of {} duration over 5m is {{{{ $value | humanizeDuration }}}}, above the {} SLO threshold of {threshold_seconds} s.",
                            match &slo.queue {
                                Some(queue) => format!("{queue} job run"),
                                None => "request".to_owned(),
                            },
                            slo.name
                        ),
                    ),
                    ("runbook_url".to_owned(), runbook_url(spec, &alert)),
                ],
                kind: AlertKind::LatencyAboveThreshold {
                    slo: slo.name.clone(),
                },
            });
        }
    }
    // A worker answers no requests: its 5xx ratio would never have a value.
    if spec.serves_requests() {
        let alert = format!("{}ErrorRatioHigh", camel(&[&spec.service]));
        let mut labels = base_labels(spec, None);
        labels.push(("severity".to_owned(), Severity::Warning.as_str().to_owned()));
        warnings.push(AlertRule {
            alert: alert.clone(),
            expr: format!(
                "(\n{}\n) > {}",
                promql::service_error_ratio(spec, "5m"),
                spec.warnings.error_ratio
            ),
            for_: Some("5m".to_owned()),
            labels,
            annotations: vec![
                (
                    "summary".to_owned(),
                    format!("{} error ratio above {}", spec.service, spec.warnings.error_ratio),
                ),
                (
                    "description".to_owned(),
                    format!(
                        "{{{{ $value | humanizePercentage }}}} of requests failed with {} over the last 5m.",
                        promql::server_error_phrase(spec)
                    ),
                ),
                ("runbook_url".to_owned(), runbook_url(spec, &alert)),
            ],
            kind: AlertKind::ErrorRatio,
        });
    }
    for dep in &spec.dependencies {
        let mut labels = base_labels(spec, None);
        labels.push(("dependency".to_owned(), dep.clone()));
        labels.push(("severity".to_owned(), Severity::Warning.as_str().to_owned()));
        let alert = format!("{}DependencyErrorRatioHigh", camel(&[&spec.service]));
        warnings.push(AlertRule {
            alert: alert.clone(),
            expr: format!(
                "(\n{}\n) > {}",
                promql::dependency_error_ratio(spec, dep, "5m"),
                spec.warnings.dependency_error_ratio
            ),
            for_: Some("5m".to_owned()),
            labels: labels.clone(),
            annotations: vec![
                (
                    "summary".to_owned(),
                    format!("{} calls to {dep} are failing", spec.service),
                ),
                (
                    "description".to_owned(),
                    format!("{{{{ $value | humanizePercentage }}}} of calls from {} to {dep} failed over the last 5m (warning above {}).", spec.service, spec.warnings.dependency_error_ratio),
                ),
                ("runbook_url".to_owned(), runbook_url(spec, &alert)),
            ],
            kind: AlertKind::DependencyErrors,
        });
        let alert = format!("{}DependencyCircuitOpen", camel(&[&spec.service]));
        warnings.push(AlertRule {
            alert: alert.clone(),
            expr: promql::breaker_open(spec, dep),
            for_: Some("1m".to_owned()),
            labels,
            annotations: vec![
                (
                    "summary".to_owned(),
                    format!("{} circuit breaker to {dep} is open", spec.service),
                ),
                (
                    "description".to_owned(),
                    format!("The circuit breaker of {} for {dep} has been open for a minute: calls fail fast without reaching {dep}.", spec.service),
                ),
                ("runbook_url".to_owned(), runbook_url(spec, &alert)),
            ],
            kind: AlertKind::BreakerOpen,
        });
    }
    RuleSet {
        recording,
        alerts,
        warnings,
    }
}

fn pairs(items: &[(String, String)]) -> Node {
    let mut m = Node::map();
    for (k, v) in items {
        m = m.with_str(k, v.clone());
    }
    m.build()
}

fn alert_node(a: &AlertRule) -> Node {
    let mut m = Node::map()
        .with_str("alert", a.alert.clone())
        .with_str("expr", a.expr.clone());
    if let Some(f) = &a.for_ {
        m = m.with("for", Node::plain(f.clone()));
    }
    m.with("labels", pairs(&a.labels))
        .with("annotations", pairs(&a.annotations))
        .build()
}

/// The Prometheus rule file (three groups: recording, SLO alerts, warnings).
pub fn rules_yaml(spec: &ServiceSpec) -> String {
    let set = rule_set(spec);
    let recording: Vec<Node> = set
        .recording
        .iter()
        .map(|r| {
            Node::map()
                .with_str("record", r.record.clone())
                .with_str("expr", r.expr.clone())
                .with("labels", pairs(&r.labels))
                .build()
        })
        .collect();
    let group = |suffix: &str, rules: Vec<Node>| {
        Node::map()
            .with_str("name", format!("{}-{suffix}", spec.service))
            .with("interval", Node::plain("1m"))
            .with("rules", Node::Seq(rules))
            .build()
    };
    let doc = Node::map()
        .with(
            "groups",
            Node::Seq(vec![
                group("slo-recording", recording),
                group("slo-alerts", set.alerts.iter().map(alert_node).collect()),
                group("warnings", set.warnings.iter().map(alert_node).collect()),
            ]),
        )
        .build();
    format!(
        "# Generated by telltale-slo from the {} spec. Do not edit: change the spec and regenerate.\n{}{}",
        spec.service,
        left_out_comments(spec),
        crate::yaml::to_string(&doc)
    )
}

/// Why a burn-rate pair is missing from the rules: its threshold is 1 or more.
pub(crate) fn left_out_reason(slo: &Slo, w: &SloBurnWindow) -> String {
    format!(
        "its threshold {} ({}x burn × {} budget) is not below 1, the largest possible error ratio, so it could never fire at objective {}% over {}",
        w.threshold,
        w.burn,
        slo.error_budget(),
        slo.objective,
        slo.window
    )
}

/// `# ...` lines naming the burn-rate pairs left out of the rules.
fn left_out_comments(spec: &ServiceSpec) -> String {
    let mut out = String::new();
    for slo in &spec.slos {
        for w in burn_windows(slo).iter().filter(|w| !w.can_fire()) {
            out.push_str(&format!(
                "# SLO {}: no {} alert for window {}: {}.\n",
                slo.name,
                w.pair.severity.as_str(),
                w.pair.label(),
                left_out_reason(slo, w)
            ));
        }
    }
    out
}

/// A Markdown listing of every generated rule with its PromQL (what `docs/slo.md` shows
/// for orders-api; also written next to the rule file).
pub fn rules_markdown(spec: &ServiceSpec) -> String {
    use std::fmt::Write;
    let set = rule_set(spec);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Recording rules of `{}`\n\nOne series per SLO and window, labelled `service` and `slo`; every window reads the raw counters over that window.\n",
        spec.service
    );
    for r in &set.recording {
        let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let _ = writeln!(
            out,
            "`{}{{{}}}`\n\n```promql\n{}\n```\n",
            r.record,
            labels.join(","),
            r.expr
        );
    }
    let _ = writeln!(out, "### Alert rules of `{}`\n", spec.service);
    for a in set.alerts.iter().chain(&set.warnings) {
        let mut extra = Vec::new();
        for key in ["severity", "window", "dependency"] {
            if let Some(v) = a.label(key) {
                extra.push(format!("{key}=\"{v}\""));
            }
        }
        let for_ = a
            .for_
            .as_deref()
            .map(|f| format!(", for {f}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "`{}` ({}{for_})\n\n```promql\n{}\n```\n",
            a.alert,
            extra.join(", "),
            a.expr
        );
    }
    out.trim_end().to_owned() + "\n"
}
