//! PromQL for SLIs, warnings and dashboards, built from a validated spec.
//!
//! ```
//! use telltale_slo::promql;
//! use telltale_slo::spec::{ServiceSpec, Slo};
//!
//! let spec = ServiceSpec::builder("orders-api")
//!     .slo(Slo::availability("availability", 99.9))
//!     .build()
//!     .unwrap();
//! let ratio = promql::error_ratio(&spec, &spec.slos[0], "1h");
//! // A failed request: a 5xx, or a response whose body failed while streaming.
//! assert!(ratio.contains("error_type!=\"\""));
//! assert!(ratio.contains("[1h]"));
//! ```
//!
//! Long-window ratios are computed from the raw counters over the long window
//! (`(sum(rate(errors[3d])) or vector(0)) / sum(rate(total[3d]))`), so they are weighted by
//! traffic; an average of short-window ratios would give a quiet night the same weight as a
//! busy day. `or vector(0)`: a service that never failed has no error series at all, and
//! its ratio is 0, not "no data"; without traffic (no total series) it stays empty.

use std::collections::BTreeSet;

use telltale_metrics::names::{self, Scheme, client};

use crate::decimal::Decimal;
use crate::spec::{ServiceSpec, Slo, SloKind};

/// The windows recording rules are written for (the multi-window alerts need them all).
pub const RULE_WINDOWS: &[&str] = &["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// Name of the recording rule holding an SLO's error ratio over `window`.
pub fn recording_rule_name(window: &str) -> String {
    format!("slo:sli_error:ratio_rate{window}")
}

/// Label matcher `name="value"` with the value escaped for PromQL.
pub fn eq(name: &str, value: &str) -> String {
    format!("{name}={}", quote(value))
}

/// A PromQL double-quoted string.
pub fn quote(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub(crate) fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Matchers selecting the service only.
pub fn service_matchers(spec: &ServiceSpec) -> Vec<String> {
    vec![eq(&spec.service_label, &spec.service)]
}

/// Matchers selecting the SLO's requests (service, routes, selectors) or, for a job SLO,
/// its queue's runs (service, queue, selectors).
pub fn slo_matchers(spec: &ServiceSpec, slo: &Slo) -> Vec<String> {
    let mut m = service_matchers(spec);
    if let Some(queue) = &slo.queue {
        m.push(eq(names::job::MESSAGING_DESTINATION_NAME, queue));
    }
    let labels = spec.label_names();
    match slo.routes.as_slice() {
        [] => {}
        [one] => m.push(eq(labels.route, one)),
        many => {
            let alternatives: Vec<String> = many.iter().map(|r| regex_escape(r)).collect();
            m.push(format!("{}=~{}", labels.route, quote(&alternatives.join("|"))));
        }
    }
    for (k, v) in &slo.selectors {
        m.push(eq(k, v));
    }
    m
}

fn selector(metric: &str, matchers: &[String]) -> String {
    format!("{metric}{{{}}}", matchers.join(","))
}

/// The duration histogram an SLO reads: the scheme's request histogram, or for a job SLO
/// `messaging_process_duration_seconds`.
pub fn duration_histogram<'a>(spec: &'a ServiceSpec, slo: &Slo) -> &'a str {
    if slo.queue.is_some() {
        names::job::MESSAGING_PROCESS_DURATION
    } else {
        spec.label_names().duration
    }
}

/// The series counting every request (or job run) of the SLO (`_count` of the
/// histogram, or the counter).
pub fn total_series(spec: &ServiceSpec, slo: &Slo) -> String {
    let histogram = duration_histogram(spec, slo);
    let metric = slo.metric.as_deref().unwrap_or(histogram);
    if metric == histogram {
        format!("{metric}_count")
    } else {
        metric.to_owned()
    }
}

/// The `le` matcher for a bucket boundary. The exporter writes `le` as Rust prints the
/// number (`1`, `100000`, `1000000`, `0.00005`) while Prometheus 3 normalises it at
/// ingestion as Go's OpenMetrics formatting does (`1.0`, `100000.0`, `1e+06`, `5e-05`):
/// the matcher accepts both spellings (`le="0.25"` when they agree).
///
/// ```
/// use telltale_slo::promql::le_matcher;
///
/// assert_eq!(le_matcher(0.25), r#"le="0.25""#);
/// assert_eq!(le_matcher(1.0), r#"le=~"1(\\.0)?""#);
/// assert_eq!(le_matcher(1e6), r#"le=~"1000000|1e\\+06""#);
/// assert_eq!(le_matcher(0.00005), r#"le=~"0\\.00005|5e-05""#);
/// ```
pub fn le_matcher(threshold: f64) -> String {
    let rust = format!("{threshold}");
    let go = format_openmetrics_float(threshold);
    if go == rust {
        eq("le", &rust)
    } else if go == format!("{rust}.0") {
        format!("le=~\"{rust}(\\\\.0)?\"")
    } else {
        format!(
            "le=~{}",
            quote(&format!("{}|{}", regex_escape(&rust), regex_escape(&go)))
        )
    }
}

/// How Prometheus 3 writes a float label value such as `le` (Go's
/// `formatOpenMetricsFloat`): `strconv.FormatFloat(f, 'g', -1, 64)`, i.e. the shortest
/// digits that round-trip, in exponent form when the decimal exponent is below -4 or at
/// least 6 (`1e+06`, `5e-05`, exponent of two or more digits with its sign), then `.0`
/// appended when the text has neither `.` nor `e` (`100000.0`); `1.0`, `0.0`, `-1.0`,
/// `NaN`, `+Inf`, `-Inf` as special cases.
pub(crate) fn format_openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if f == 0.0 {
        return "0.0".to_owned();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    // Rust's `{:e}` gives the same shortest round-trip digits as Go: `1.2345e-7`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let text = if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{first}{dot}{rest}e{exp_sign}{:02}", exp.unsigned_abs())
    } else {
        // The decimal point goes after `exp + 1` digits.
        let point = exp + 1;
        let n = digits.len() as i32;
        if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point >= n {
            format!("{digits}{}", "0".repeat((point - n) as usize))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        }
    };
    if text.contains(['.', 'e']) {
        format!("{sign}{text}")
    } else {
        format!("{sign}{text}.0")
    }
}

/// What a failed request is, for alert and runbook text: in the OpenTelemetry scheme a
/// 5xx or a body cut off while streaming; in the legacy scheme a 5xx.
pub const fn server_error_phrase(spec: &ServiceSpec) -> &'static str {
    match spec.scheme {
        Scheme::OpenTelemetry => "a server error (5xx, or a response body that failed while streaming)",
        Scheme::Legacy => "a server error (5xx)",
    }
}

/// The matcher of a failed request. OpenTelemetry scheme: `error_type!=""`, set on every
/// 5xx and on a response whose body failed while streaming (its status, often 200, was
/// already sent; the client got a cut-off answer). Legacy scheme: `status=~"5.."`, its
/// only signal (it has no `error_type`), so body failures after a 2xx are not counted.
pub fn server_error_matcher(spec: &ServiceSpec) -> String {
    match spec.scheme {
        Scheme::OpenTelemetry => format!("{}!=\"\"", names::labels::ERROR_TYPE),
        Scheme::Legacy => format!("{}=~\"5..\"", spec.label_names().status),
    }
}

/// `sum(rate(total[window]))` for the SLO.
pub fn total_rate(spec: &ServiceSpec, slo: &Slo, window: &str) -> String {
    format!(
        "sum(rate({}[{window}]))",
        selector(&total_series(spec, slo), &slo_matchers(spec, slo))
    )
}

/// `sum(rate(good_or_bad[window]))`: for availability the failed requests (5xx or a
/// failed body, see [`server_error_matcher`]; for jobs the runs with an `error_type`), for latency the requests (or runs) within the
/// threshold (the `le` bucket).
pub fn numerator_rate(spec: &ServiceSpec, slo: &Slo, window: &str) -> String {
    let mut m = slo_matchers(spec, slo);
    match slo.kind {
        SloKind::Availability => {
            m.push(if slo.queue.is_some() {
                format!("{}!=\"\"", names::labels::ERROR_TYPE)
            } else {
                server_error_matcher(spec)
            });
            format!("sum(rate({}[{window}]))", selector(&total_series(spec, slo), &m))
        }
        SloKind::Latency { threshold_seconds } => {
            m.push(le_matcher(threshold_seconds));
            format!(
                "sum(rate({}[{window}]))",
                selector(&format!("{}_bucket", duration_histogram(spec, slo)), &m)
            )
        }
    }
}

/// The SLI error ratio over `window`, from raw counters (traffic-weighted). For
/// availability the error rate is `(… or vector(0))`: with no error series at all (a
/// service that never failed) the ratio is 0, not empty; it is empty only without traffic.
/// Both sides are label-less sums, so the division matches and recording rules carry just
/// their own `service` and `slo` labels.
pub fn error_ratio(spec: &ServiceSpec, slo: &Slo, window: &str) -> String {
    let num = numerator_rate(spec, slo, window);
    let total = total_rate(spec, slo, window);
    match slo.kind {
        SloKind::Availability => format!("({num} or vector(0))\n/\n{total}"),
        SloKind::Latency { .. } => format!("1 - (\n  {num}\n  /\n  {total}\n)"),
    }
}

/// [`error_ratio`] on one line (for dashboards and the `budget` queries).
pub fn error_ratio_one_line(spec: &ServiceSpec, slo: &Slo, window: &str) -> String {
    error_ratio(spec, slo, window)
        .replace("\n  ", " ")
        .replace('\n', " ")
}

/// Selector of the absent() alert: the service's total series, or for a job SLO its
/// queue's (and, for latency, the exact threshold bucket, so a changed bucket layout is
/// noticed too).
pub fn absent_expr(spec: &ServiceSpec, slo: &Slo) -> String {
    let mut m = service_matchers(spec);
    if let Some(queue) = &slo.queue {
        m.push(eq(names::job::MESSAGING_DESTINATION_NAME, queue));
    }
    match slo.kind {
        SloKind::Availability => format!("absent({})", selector(&total_series(spec, slo), &m)),
        SloKind::Latency { threshold_seconds } => {
            m.push(le_matcher(threshold_seconds));
            format!(
                "absent({})",
                selector(&format!("{}_bucket", duration_histogram(spec, slo)), &m)
            )
        }
    }
}

/// Quantile `q` of the SLO's request (or job run) duration over `window`.
pub fn latency_quantile(spec: &ServiceSpec, slo: &Slo, q: &str, window: &str) -> String {
    format!(
        "histogram_quantile({q}, sum by (le) (rate({}[{window}])))",
        selector(
            &format!("{}_bucket", duration_histogram(spec, slo)),
            &slo_matchers(spec, slo)
        )
    )
}

/// The service's failed-request ratio over `window` (all routes): 5xx, and in the
/// OpenTelemetry scheme also bodies that failed while streaming.
pub fn service_error_ratio(spec: &ServiceSpec, window: &str) -> String {
    let count = format!("{}_count", spec.label_names().duration);
    let m = service_matchers(spec);
    let mut bad = m.clone();
    bad.push(server_error_matcher(spec));
    format!(
        "sum(rate({}[{window}]))\n/\nsum(rate({}[{window}]))",
        selector(&count, &bad),
        selector(&count, &m)
    )
}

/// Matchers of one dependency's client metrics.
pub fn dependency_matchers(spec: &ServiceSpec, dependency: &str) -> Vec<String> {
    let mut m = service_matchers(spec);
    m.push(eq(names::labels::PEER_SERVICE, dependency));
    m
}

/// A dependency's error ratio over `window` (client `error_type` set = failed call).
pub fn dependency_error_ratio(spec: &ServiceSpec, dependency: &str, window: &str) -> String {
    let count = format!("{}_count", names::otel::HTTP_CLIENT_REQUEST_DURATION);
    let m = dependency_matchers(spec, dependency);
    let mut bad = m.clone();
    bad.push(format!("{}!=\"\"", names::labels::ERROR_TYPE));
    format!(
        "sum(rate({}[{window}]))\n/\nsum(rate({}[{window}]))",
        selector(&count, &bad),
        selector(&count, &m)
    )
}

/// 1 when the dependency's circuit breaker is open.
pub fn breaker_open(spec: &ServiceSpec, dependency: &str) -> String {
    let mut m = dependency_matchers(spec, dependency);
    m.push(eq(names::labels::STATE, "open"));
    format!("max({}) == 1", selector(client::CIRCUIT_BREAKER_STATE, &m))
}

/// A threshold `burn × budget`, printed exactly. `burn` is the factor for the SLO's window,
/// [`BurnWindow::burn_for`](crate::rules::BurnWindow::burn_for) (see also
/// [`rules::burn_windows`](crate::rules::burn_windows)).
pub fn burn_threshold(slo: &Slo, burn: &Decimal) -> Decimal {
    slo.error_budget().mul(burn)
}

/// Metric names (`foo` of every `foo{...}` selector) referenced by `exprs`, without
/// recording rules (names with `:`).
pub fn metric_names_in<'a>(exprs: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for expr in exprs {
        let bytes = expr.as_bytes();
        let mut in_string = false;
        let mut start = None;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'"' && (i == 0 || bytes[i - 1] != b'\\') {
                in_string = !in_string;
                start = None;
                continue;
            }
            if in_string {
                continue;
            }
            if b.is_ascii_alphanumeric() || b == b'_' || b == b':' {
                if start.is_none() {
                    start = Some(i);
                }
            } else {
                if let (b'{', Some(s)) = (b, start) {
                    let name = &expr[s..i];
                    if !name.contains(':') && !name.starts_with(|c: char| c.is_ascii_digit()) {
                        out.insert(name.to_owned());
                    }
                }
                start = None;
            }
        }
    }
    out
}

/// Label names used in `{...}` matchers and in `by (...)` clauses of `exprs`.
pub fn label_names_in<'a>(exprs: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for expr in exprs {
        // Matchers: `{a="x",b=~"y"}`; braces inside quoted values are skipped.
        let mut in_string = false;
        let mut in_matchers = false;
        let mut prev = ' ';
        let mut name = String::new();
        for c in expr.chars() {
            if in_string {
                if c == '"' && prev != '\\' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            } else if c == '{' {
                in_matchers = true;
                name.clear();
            } else if c == '}' {
                in_matchers = false;
            } else if in_matchers {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                } else {
                    if matches!(c, '=' | '!') && !name.is_empty() {
                        out.insert(std::mem::take(&mut name));
                    }
                    name.clear();
                }
            }
            prev = c;
        }
        // Grouping: `by (a, b)`.
        let mut rest = expr;
        while let Some(at) = rest.find("by (") {
            let after = &rest[at + 4..];
            let Some(close) = after.find(')') else { break };
            for l in after[..close].split(',') {
                out.insert(l.trim().to_owned());
            }
            rest = &after[close..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_floats_as_prometheus_3_does() {
        for (f, go) in [
            (1e6, "1e+06"),
            (0.00005, "5e-05"),
            (100_000.0, "100000.0"),
            (0.25, "0.25"),
            (0.0001, "0.0001"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (-1.0, "-1.0"),
            (2.5, "2.5"),
            (10.0, "10.0"),
            (0.005, "0.005"),
            (123_456.0, "123456.0"),
            (999_999.0, "999999.0"),
            (1_234_567.0, "1.234567e+06"),
            (1_500_000.0, "1.5e+06"),
            (0.000_123, "0.000123"),
            (0.000_012_5, "1.25e-05"),
            (1.5e-7, "1.5e-07"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.0, "-2.0"),
            (-0.00005, "-5e-05"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_openmetrics_float(f), go, "{f:?}");
        }
    }

    #[test]
    fn le_matcher_accepts_the_exporter_and_the_prometheus_3_spelling() {
        assert_eq!(le_matcher(0.25), r#"le="0.25""#);
        assert_eq!(le_matcher(2.5), r#"le="2.5""#);
        assert_eq!(le_matcher(1.0), r#"le=~"1(\\.0)?""#);
        assert_eq!(le_matcher(100_000.0), r#"le=~"100000(\\.0)?""#);
        assert_eq!(le_matcher(1e6), r#"le=~"1000000|1e\\+06""#);
        assert_eq!(le_matcher(0.00005), r#"le=~"0\\.00005|5e-05""#);
        assert_eq!(le_matcher(0.0001), r#"le="0.0001""#);
        assert_eq!(le_matcher(1.5e-7), r#"le=~"0\\.00000015|1\\.5e-07""#);
    }
}
