//! Error budget consumed and remaining, read from a running Prometheus.
//!
//! ```no_run
//! use telltale_slo::budget;
//! use telltale_slo::spec::ServiceSpec;
//!
//! let spec = ServiceSpec::from_yaml_file("examples/orders-api/slo.yaml").unwrap();
//! for report in budget::budget("http://127.0.0.1:9090", &spec).unwrap() {
//!     println!("{report}");
//! }
//! ```
//!
//! Uses the HTTP API (`/api/v1/query`) with `ureq`, a blocking client: the CLI needs no
//! async runtime (telltale-slo must not depend on tokio).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::decimal::Decimal;
use crate::promql;
use crate::spec::{ServiceSpec, Slo};

/// Minutes in a week.
pub const WEEK_MINUTES: u64 = 7 * 24 * 60;

/// The budget of one SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetReport {
    /// SLO name.
    pub slo: String,
    /// Objective, percent.
    pub objective: Decimal,
    /// Compliance window.
    pub window: String,
    /// Error budget as a ratio (`0.001`).
    pub error_budget: Decimal,
    /// Error ratio over the window; `Some(0.0)` when no request (job run) failed, `None`
    /// when Prometheus has no traffic for the SLO in the window.
    pub error_ratio: Option<f64>,
    /// Share of the budget spent (may exceed 1).
    pub consumed: Option<f64>,
    /// Share left, `1 - consumed` (negative when overspent).
    pub remaining: Option<f64>,
    /// For a job SLO, its queue: the "requests" below are then job runs.
    pub queue: Option<String>,
    /// Requests (job runs) in the window.
    pub requests_in_window: Option<f64>,
    /// A week's budget in minutes of full outage: `10080 × budget`.
    pub week_budget_minutes: f64,
    /// A week's budget in failed requests (job runs), at last week's traffic.
    pub week_budget_requests: Option<f64>,
}

impl fmt::Display for BudgetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: Option<f64>| v.map_or("no data".to_owned(), |v| format!("{:.2}%", v * 100.0));
        write!(
            f,
            "{}: objective {}% over {}; consumed {}, remaining {}; week budget {:.2} min, {} {}",
            self.slo,
            self.objective,
            self.window,
            pct(self.consumed),
            pct(self.remaining),
            self.week_budget_minutes,
            self.week_budget_requests
                .map_or("no data".to_owned(), |r| format!("{r:.0}")),
            if self.queue.is_some() {
                "job runs"
            } else {
                "requests"
            },
        )
    }
}

/// Why the budget could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The HTTP request failed.
    #[error("querying Prometheus at {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<ureq::Error>,
    },
    /// Prometheus answered with an error or an unexpected body.
    #[error("Prometheus rejected `{query}`: {message}")]
    Query {
        /// The query.
        query: String,
        /// Prometheus' message.
        message: String,
    },
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// A minimal Prometheus HTTP API client.
#[derive(Debug, Clone)]
pub struct PrometheusClient {
    base: String,
    agent: ureq::Agent,
}

impl PrometheusClient {
    /// A client for `base` (`http://host:9090`), with a 30 s timeout per query.
    pub fn new(base: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        PrometheusClient {
            base: base.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// Evaluates an instant query; the value of its single sample (`None` if the result
    /// is empty or NaN).
    pub fn query_scalar(&self, query: &str) -> Result<Option<f64>, BudgetError> {
        let url = format!("{}/api/v1/query", self.base);
        let http = |e| BudgetError::Http {
            url: url.clone(),
            source: Box::new(e),
        };
        let mut resp = self.agent.get(&url).query("query", query).call().map_err(http)?;
        let body = resp.body_mut().read_to_string().map_err(http)?;
        let bad = |message: String| BudgetError::Query {
            query: query.to_owned(),
            message,
        };
        let parsed: ApiResponse =
            serde_json::from_str(&body).map_err(|e| bad(format!("unexpected response ({e}): {body}")))?;
        if parsed.status != "success" {
            return Err(bad(parsed.error.unwrap_or(body)));
        }
        let data = parsed.data.ok_or_else(|| bad("no data".to_owned()))?;
        let value = match data.result_type.as_str() {
            "vector" => data
                .result
                .as_array()
                .and_then(|a| a.first())
                .and_then(|s| s.get("value"))
                .cloned(),
            "scalar" => Some(data.result),
            other => return Err(bad(format!("expected a vector, got {other}"))),
        };
        Ok(value
            .and_then(|v| v.get(1).and_then(|s| s.as_str()).map(str::to_owned))
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite()))
    }
}

/// The queries a report is made of: (error ratio over the window, requests in the
/// window, requests in the last 7 days).
pub fn budget_queries(spec: &ServiceSpec, slo: &Slo) -> [String; 3] {
    let w = slo.window.as_str();
    let total =
        |window: &str| promql::total_rate(spec, slo, window).replacen("sum(rate(", "sum(increase(", 1);
    [promql::error_ratio_one_line(spec, slo, w), total(w), total("7d")]
}

/// Reads every SLO's budget.
pub fn budget(prometheus: &str, spec: &ServiceSpec) -> Result<Vec<BudgetReport>, BudgetError> {
    let client = PrometheusClient::new(prometheus);
    spec.slos
        .iter()
        .map(|slo| {
            let [ratio_q, window_q, week_q] = budget_queries(spec, slo);
            let error_ratio = client.query_scalar(&ratio_q)?;
            let requests_in_window = client.query_scalar(&window_q)?;
            let week_requests = client.query_scalar(&week_q)?;
            let budget = slo.error_budget();
            let b = budget.to_f64();
            let consumed = error_ratio.map(|r| r / b);
            Ok(BudgetReport {
                slo: slo.name.clone(),
                objective: slo.objective,
                window: slo.window.to_string(),
                error_budget: budget,
                error_ratio,
                consumed,
                remaining: consumed.map(|c| 1.0 - c),
                queue: slo.queue.clone(),
                requests_in_window,
                week_budget_minutes: WEEK_MINUTES as f64 * b,
                week_budget_requests: week_requests.map(|r| r * b),
            })
        })
        .collect()
}
