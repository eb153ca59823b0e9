//! Open-loop load for the Orders API, through telltale's client stack.
//!
//! `cargo run -p loadgen` sends 20 requests a second to `http://127.0.0.1:8080` (a
//! `cargo run -p orders-api` next door) until Ctrl-C: 60% `GET /orders/{id}` of orders it
//! placed, 20% `GET /orders`, 20% `POST /orders`. Every call:
//!
//! - carries a fresh request id (UUIDv7) and W3C trace context, through the same
//!   `telltale::client` stack a service uses, so each request is easy to find in the
//!   Orders API's logs and traces;
//! - is timed into a latency histogram. Every `REPORT_EVERY` seconds a `load report` log
//!   line gives the counts by outcome, the achieved rate, the error ratio and p50/p90/p99/
//!   max. `load finished` gives the same for the whole run;
//! - when it fails (5xx, or no response), is logged as `request failed` at WARN with its
//!   `request_id`, and for a 5xx its `trace_id` (the ids its response carried): the
//!   Orders API's access line for it has the same `request_id` and `trace_id`.
//!
//! The load is **open-loop**: requests start on a fixed schedule whether or not earlier
//! ones have finished, as independent users do, so a slow server sees the queue build
//! instead of a politely slowing client (the "coordinated omission" of closed-loop load
//! tools). At most `CONCURRENCY` are in flight; a request due while that many are
//! outstanding is not sent and is counted as `skipped`, so saturation shows in the report.
//!
//! Pair it with `FAULT_ERROR_RATE=0.1 cargo run -p orders-api` to watch the error ratio,
//! the dashboards and the burn-rate alerts of `examples/orders-api/slo.yaml` react.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TARGET_URL` | base URL of the Orders API | `http://127.0.0.1:8080` |
//! | `TARGET_SERVICE` | its name, for the client's metrics and spans | `orders-api` |
//! | `RATE` | requests started per second (0 < rate ≤ 100,000) | `20` |
//! | `DURATION` | seconds to run; `0` runs until SIGINT/SIGTERM | `0` |
//! | `CONCURRENCY` | most requests in flight (1–10,000) | `64` |
//! | `MIX` | weights of `get`, `list` and `create` | `get:60,list:20,create:20` |
//! | `SKUS` | SKUs `create` orders, comma-separated | `sku-apple,sku-pear` |
//! | `TIMEOUT` | seconds before a request counts as a transport error | `5` |
//! | `REPORT_EVERY` | seconds between `load report` lines | `5` |
//!
//! ```
//! let config = loadgen::Config::from_lookup(|k| match k {
//!     "RATE" => Some("50".into()),
//!     "MIX" => Some("list:1,create:3".into()),
//!     _ => None,
//! })
//! .unwrap();
//! assert_eq!(config.rate, 50.0);
//! assert_eq!(config.target.as_str(), "http://127.0.0.1:8080/");
//!
//! let err = loadgen::Config::from_lookup(|k| (k == "RATE").then(|| "fast".into())).unwrap_err();
//! assert!(err.to_string().contains("RATE"), "{err}");
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest_middleware::ClientWithMiddleware;
use telltale::core::trace_ids::TraceIds;
use telltale::trace::client::call_span;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// How many created order ids are remembered for `get`.
const KNOWN_ORDERS: usize = 1024;

// === Config ===

/// What to send, how fast and for how long; see the [crate docs](crate) for the variables.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the Orders API (ends with `/`).
    pub target: reqwest::Url,
    /// Its name, for the client's metrics and spans.
    pub target_service: String,
    /// Requests started per second.
    pub rate: f64,
    /// How long to run; `None` until stopped.
    pub duration: Option<Duration>,
    /// Most requests in flight.
    pub concurrency: usize,
    /// The mix of operations.
    pub mix: Mix,
    /// SKUs to order.
    pub skus: Vec<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Time between interval reports.
    pub report_every: Duration,
}

/// A configuration value that cannot be used, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn bad(var: &str, value: &str, want: &str) -> ConfigError {
    ConfigError(format!("{var} must be {want}, got {value:?}"))
}

/// Seconds as a float within `min..=max` (`min` itself allowed only when `zero_ok`).
fn seconds(var: &str, value: &str, zero_ok: bool, max: f64) -> Result<Duration, ConfigError> {
    let want = if zero_ok {
        format!("a number of seconds from 0 to {max}")
    } else {
        format!("a number of seconds above 0, at most {max}")
    };
    match value.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s <= max && (s > 0.0 || (zero_ok && s == 0.0)) => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(bad(var, value, &want)),
    }
}

impl Config {
    /// Reads the variables from the environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get` (unset or blank: the default).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());

        let target_text = get("TARGET_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let mut target = reqwest::Url::parse(target_text.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| bad("TARGET_URL", &target_text, "an http:// or https:// URL"))?;
        if !target.path().ends_with('/') {
            let path = format!("{}/", target.path());
            target.set_path(&path);
        }

        let rate = match get("RATE") {
            None => 20.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 && r <= 100_000.0 => r,
                _ => return Err(bad("RATE", &v, "requests per second above 0, at most 100000")),
            },
        };
        let duration = match get("DURATION") {
            None => None,
            Some(v) => Some(seconds("DURATION", &v, true, 365.0 * 86_400.0)?).filter(|d| !d.is_zero()),
        };
        let concurrency = match get("CONCURRENCY") {
            None => 64,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => n,
                _ => return Err(bad("CONCURRENCY", &v, "a whole number from 1 to 10000")),
            },
        };
        let mix = match get("MIX") {
            None => Mix::default(),
            Some(v) => v.parse()?,
        };
        let skus: Vec<String> = get("SKUS")
            .unwrap_or_else(|| "sku-apple,sku-pear".into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if skus.is_empty() || skus.iter().any(|s| s.len() > 64) {
            return Err(bad(
                "SKUS",
                &get("SKUS").unwrap_or_default(),
                "comma-separated SKUs of 1 to 64 characters",
            ));
        }
        let timeout = match get("TIMEOUT") {
            None => Duration::from_secs(5),
            Some(v) => seconds("TIMEOUT", &v, false, 3600.0)?,
        };
        let report_every = match get("REPORT_EVERY") {
            None => Duration::from_secs(5),
            Some(v) => seconds("REPORT_EVERY", &v, false, 86_400.0)?,
        };
        Ok(Config {
            target,
            target_service: get("TARGET_SERVICE").unwrap_or_else(|| "orders-api".into()),
            rate,
            duration,
            concurrency,
            mix,
            skus,
            timeout,
            report_every,
        })
    }
}

// === Mix ===

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /orders/{id}` of an order this run placed (`list` until there is one).
    Get,
    /// `GET /orders`.
    List,
    /// `POST /orders` for one of the SKUs.
    Create,
}

impl Op {
    const ALL: [Op; 3] = [Op::Get, Op::List, Op::Create];

    /// `get`, `list` or `create`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::List => "list",
            Op::Create => "create",
        }
    }
}

/// Relative weights of the operations, as `MIX` writes them: `get:60,list:20,create:20`
/// (an operation left out has weight 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            weights: [60, 20, 20],
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Mix, ConfigError> {
        let want = "name:weight pairs of get, list and create, e.g. get:60,list:20,create:20";
        let mut weights = [None; 3];
        for part in s.split(',') {
            let (name, weight) = part.split_once(':').ok_or_else(|| bad("MIX", s, want))?;
            let at = Op::ALL
                .iter()
                .position(|op| op.as_str() == name.trim())
                .ok_or_else(|| bad("MIX", s, want))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| bad("MIX", s, want))?;
            if weights[at].replace(weight).is_some() {
                return Err(bad("MIX", s, "each of get, list and create at most once"));
            }
        }
        let weights = weights.map(|w| w.unwrap_or(0));
        if weights.iter().all(|w| *w == 0) {
            return Err(bad("MIX", s, "weights that are not all 0"));
        }
        Ok(Mix { weights })
    }
}

/// As `MIX` writes it: `get:60,list:20,create:20`.
impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (op, w)) in Op::ALL.iter().zip(self.weights).enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{w}", op.as_str())?;
        }
        Ok(())
    }
}

impl Mix {
    /// The operation for a uniform draw `r` in `0..total weight`.
    fn pick_at(&self, mut r: u64) -> Op {
        for (op, w) in Op::ALL.iter().zip(self.weights) {
            if r < u64::from(w) {
                return *op;
            }
            r -= u64::from(w);
        }
        Op::List
    }

    /// A random operation, in proportion to the weights.
    pub fn pick(&self, rng: &mut fastrand::Rng) -> Op {
        let total: u64 = self.weights.iter().map(|w| u64::from(*w)).sum();
        self.pick_at(rng.u64(0..total.max(1)))
    }
}

// === Histogram ===

/// Latencies in buckets growing by 10% from 10 µs to about 4 minutes: p50/p90/p99 within
/// 10%, in 180 counters whatever the run's length.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max: Duration,
}

const FIRST_BOUND_SECS: f64 = 10e-6;
const GROWTH: f64 = 1.1;
const BUCKETS: usize = 180;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl Histogram {
    fn bound(i: usize) -> Duration {
        Duration::from_secs_f64(FIRST_BOUND_SECS * GROWTH.powi(i as i32))
    }

    /// Counts one latency.
    pub fn record(&mut self, d: Duration) {
        let ratio = d.as_secs_f64() / FIRST_BOUND_SECS;
        let i = if ratio <= 1.0 {
            0
        } else {
            (ratio.ln() / GROWTH.ln()).ceil() as usize
        };
        self.counts[i.min(BUCKETS - 1)] += 1;
        self.count += 1;
        self.max = self.max.max(d);
    }

    /// How many were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest recorded.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The `q` quantile (0..=1): the upper bound of its bucket, at most the maximum;
    /// zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::bound(i).min(self.max);
            }
        }
        self.max
    }
}

// === Report ===

/// Counts and latencies of a stretch of the run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests sent.
    pub sent: u64,
    /// Requests due while `CONCURRENCY` were in flight, not sent.
    pub skipped: u64,
    /// Answered 1xx–3xx.
    pub ok: u64,
    /// Answered 4xx.
    pub client_errors: u64,
    /// Answered 5xx.
    pub server_errors: u64,
    /// No answer (refused, reset, timed out).
    pub transport_errors: u64,
    /// Latency of the answered and the failed requests.
    pub latency: Histogram,
}

impl Report {
    /// Requests that finished, one way or another.
    pub fn completed(&self) -> u64 {
        self.ok + self.client_errors + self.server_errors + self.transport_errors
    }

    /// Server and transport errors over completed requests (0 when none completed).
    pub fn error_ratio(&self) -> f64 {
        let done = self.completed();
        if done == 0 {
            0.0
        } else {
            (self.server_errors + self.transport_errors) as f64 / done as f64
        }
    }

    /// Writes the report as one INFO line with `message` (`load report`, `load finished`).
    pub fn log(&self, message: &str, elapsed: Duration) {
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        let secs = elapsed.as_secs_f64().max(1e-9);
        tracing::info!(
            elapsed_s = (secs * 100.0).round() / 100.0,
            sent = self.sent,
            completed = self.completed(),
            skipped = self.skipped,
            ok = self.ok,
            client_errors = self.client_errors,
            server_errors = self.server_errors,
            transport_errors = self.transport_errors,
            rate = (self.completed() as f64 / secs * 10.0).round() / 10.0,
            error_ratio = (self.error_ratio() * 1e4).round() / 1e4,
            p50_ms = ms(self.latency.quantile(0.5)),
            p90_ms = ms(self.latency.quantile(0.9)),
            p99_ms = ms(self.latency.quantile(0.99)),
            max_ms = ms(self.latency.max()),
            "{message}"
        );
    }
}

// === run ===

enum Outcome {
    Status(u16),
    Transport(String),
}

#[derive(Default)]
struct Shared {
    interval: Report,
    total: Report,
}

impl Shared {
    fn count(&mut self, f: impl Fn(&mut Report)) {
        f(&mut self.interval);
        f(&mut self.total);
    }
}

/// Sends the load until `config.duration` has passed or `stop` completes, then waits (at
/// most the request timeout) for the requests in flight, and returns the whole run's
/// report. Logs a `load report` every `config.report_every`.
pub async fn run(config: &Config, client: ClientWithMiddleware, stop: impl Future<Output = ()>) -> Report {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let known = Arc::new(Mutex::new(VecDeque::with_capacity(KNOWN_ORDERS)));
    let permits = Arc::new(Semaphore::new(config.concurrency));
    let start = Instant::now();
    let end = config.duration.map(|d| start + d);
    let mut rng = fastrand::Rng::new();
    let mut due = start;
    let mut report_at = start + config.report_every;
    let mut interval_start = start;
    let period = Duration::from_secs_f64(1.0 / config.rate);
    let mut n: u64 = 0;
    tokio::pin!(stop);

    loop {
        if end.is_some_and(|e| due >= e) {
            break;
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep_until(report_at) => {
                let interval = std::mem::take(&mut lock(&shared).interval);
                interval.log("load report", report_at - interval_start);
                interval_start = report_at;
                report_at += config.report_every;
                continue;
            }
            () = tokio::time::sleep_until(due) => {}
        }
        n += 1;
        // Due times come from the start, not the last send: a late wake-up does not slow
        // the schedule, the next requests are simply due at once.
        due = start + period.mul_f64(n as f64);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            lock(&shared).count(|r| r.skipped += 1);
            continue;
        };
        lock(&shared).count(|r| r.sent += 1);
        let op = config.mix.pick(&mut rng);
        let sku = config.skus[rng.usize(..config.skus.len())].clone();
        let quantity = rng.u32(1..=3);
        let (client, target, shared, known) = (
            client.clone(),
            config.target.clone(),
            shared.clone(),
            known.clone(),
        );
        tokio::spawn(telltale::with_request_id(
            telltale::request_id::generate::uuid_v7(),
            async move {
                let began = Instant::now();
                let (op, outcome, ids) = send(&client, &target, op, &sku, quantity, &known).await;
                let took = began.elapsed();
                match &outcome {
                    // Inside the call's ids: the line's `trace_id` is the failed call's.
                    Outcome::Status(s) if *s >= 500 => match ids {
                        Some(ids) => call_span(ids)
                            .in_scope(|| tracing::warn!(op = op.as_str(), status = s, "request failed")),
                        None => tracing::warn!(op = op.as_str(), status = s, "request failed"),
                    },
                    Outcome::Transport(error) => {
                        tracing::warn!(op = op.as_str(), error = %error, "request failed");
                    }
                    Outcome::Status(_) => {}
                }
                lock(&shared).count(|r| {
                    match &outcome {
                        Outcome::Status(s) if *s >= 500 => r.server_errors += 1,
                        Outcome::Status(s) if *s >= 400 => r.client_errors += 1,
                        Outcome::Status(_) => r.ok += 1,
                        Outcome::Transport(_) => r.transport_errors += 1,
                    }
                    r.latency.record(took);
                });
                drop(permit);
            },
        ));
    }

    // Wait for what is in flight; a request outlives its timeout only if the client
    // ignores it, and then the report says so by `completed < sent`.
    let all = u32::try_from(config.concurrency).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(config.timeout + Duration::from_secs(1), permits.acquire_many(all)).await;
    let total = lock(&shared).total.clone();
    total.log("load finished", start.elapsed());
    total
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One request; returns the operation actually sent (`get` falls back to `list` until an
/// order exists), how it ended, and the trace ids its response carried.
async fn send(
    client: &ClientWithMiddleware,
    target: &reqwest::Url,
    op: Op,
    sku: &str,
    quantity: u32,
    known: &Mutex<VecDeque<String>>,
) -> (Op, Outcome, Option<TraceIds>) {
    let url = |path: &str| target.join(path).unwrap_or_else(|_| target.clone());
    let pick = || {
        let known = lock(known);
        (!known.is_empty()).then(|| known[fastrand::usize(..known.len())].clone())
    };
    let (op, request) = match (op, if op == Op::Get { pick() } else { None }) {
        (Op::Get, Some(id)) => (Op::Get, client.get(url(&format!("orders/{id}")))),
        (Op::Create, _) => (
            Op::Create,
            client
                .post(url("orders"))
                .json(&serde_json::json!({ "sku": sku, "quantity": quantity })),
        ),
        _ => (Op::List, client.get(url("orders"))),
    };
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return (op, Outcome::Transport(error_chain(&e)), None),
    };
    let status = response.status().as_u16();
    let ids = response.extensions().get::<TraceIds>().copied();
    // Read the whole body: the request is not over (nor its server span) until it is.
    match response.bytes().await {
        Ok(body) => {
            if op == Op::Create
                && status == 201
                && let Ok(order) = serde_json::from_slice::<serde_json::Value>(&body)
                && let Some(id) = order["id"].as_str()
            {
                let mut known = lock(known);
                if known.len() == KNOWN_ORDERS {
                    known.pop_front();
                }
                known.push_back(id.to_owned());
            }
            (op, Outcome::Status(status), ids)
        }
        Err(e) => (op, Outcome::Transport(error_chain(&e)), ids),
    }
}

/// An error with its causes (`reqwest`'s own message is often just "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults_need_nothing() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.target.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(c.rate, 20.0);
        assert_eq!(c.duration, None);
        assert_eq!(c.concurrency, 64);
        assert_eq!(c.mix, Mix::default());
        assert_eq!(c.skus, ["sku-apple", "sku-pear"]);
    }

    #[test]
    fn a_target_with_a_path_keeps_it() {
        let c = cfg(&[("TARGET_URL", "http://api.internal:9000/v1")]).unwrap();
        assert_eq!(
            c.target.join("orders").unwrap().as_str(),
            "http://api.internal:9000/v1/orders"
        );
        assert_eq!(cfg(&[("DURATION", "0")]).unwrap().duration, None);
        assert_eq!(
            cfg(&[("DURATION", "1.5")]).unwrap().duration,
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn bad_values_are_errors_that_name_the_variable() {
        for (var, value) in [
            ("TARGET_URL", "ftp://x"),
            ("TARGET_URL", "not a url"),
            ("RATE", "0"),
            ("RATE", "-3"),
            ("RATE", "NaN"),
            ("RATE", "1e9"),
            ("DURATION", "-1"),
            ("DURATION", "inf"),
            ("CONCURRENCY", "0"),
            ("CONCURRENCY", "many"),
            ("MIX", "get"),
            ("MIX", "fetch:3"),
            ("MIX", "get:0,list:0"),
            ("MIX", "get:1,get:2"),
            ("MIX", "get:-1"),
            ("SKUS", ",,"),
            ("TIMEOUT", "0"),
            ("REPORT_EVERY", "soon"),
        ] {
            let err = cfg(&[(var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{var}={value}: {err}");
            assert!(err.contains(&format!("{value:?}")), "{var}={value}: {err}");
        }
    }

    #[test]
    fn mix_picks_in_proportion_to_the_weights() {
        let mix: Mix = "list:1,create:3".parse().unwrap();
        assert_eq!(mix.to_string(), "get:0,list:1,create:3");
        assert_eq!(mix.to_string().parse::<Mix>().unwrap(), mix);
        assert_eq!(mix.pick_at(0), Op::List);
        assert_eq!(mix.pick_at(1), Op::Create);
        assert_eq!(mix.pick_at(3), Op::Create);
        let mut rng = fastrand::Rng::with_seed(7);
        let creates = (0..40_000).filter(|_| mix.pick(&mut rng) == Op::Create).count();
        assert!((29_000..31_000).contains(&creates), "{creates}");
        assert!((0..1000).all(|_| mix.pick(&mut rng) != Op::Get));
    }

    #[test]
    fn histogram_quantiles_are_within_ten_percent() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        let mut rng = fastrand::Rng::with_seed(3);
        let mut samples: Vec<Duration> = (0..10_000)
            .map(|_| Duration::from_micros(rng.u64(50..200_000)))
            .collect();
        for s in &samples {
            h.record(*s);
        }
        samples.sort();
        for q in [0.5, 0.9, 0.99] {
            let exact = samples[(q * samples.len() as f64) as usize - 1].as_secs_f64();
            let got = h.quantile(q).as_secs_f64();
            assert!(got >= exact && got <= exact * 1.1, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(1.0), *samples.last().unwrap());
        assert_eq!(h.count(), 10_000);
        // Out of range both ways stays in the end buckets.
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(100_000));
        assert_eq!(h.max(), Duration::from_secs(100_000));
    }
}
