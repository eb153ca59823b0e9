//! Our `/metrics` output checked by the real tools: `promtool check metrics`, and a real
//! Prometheus server scraping a running axum app and answering PromQL.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::{eventually, serve};
use http::StatusCode;
use telltale_metrics::names::Scheme;
use telltale_metrics::{GrpcMetricsLayer, MetricsLayer, Prometheus, PrometheusConfig, metrics_router};

const PROMTOOL: &str = "/usr/bin/promtool";

fn prom() -> Prometheus {
    PrometheusConfig::new("orders-api")
        .environment("test")
        .version("1.0.0")
        .commit("deadbeef")
        .build()
        .unwrap()
}

fn app(prom: &Prometheus, scheme: Scheme) -> Router {
    let layer = MetricsLayer::builder()
        .scheme(scheme)
        .recorder(prom.recorder())
        .body_sizes(true)
        .build()
        .unwrap();
    Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route("/bad", get(|| async { StatusCode::BAD_REQUEST }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(layer)
        .merge(metrics_router(prom.handle()))
}

async fn hit(addr: SocketAddr, path: &str, times: usize) {
    let client = reqwest::Client::new();
    for _ in 0..times {
        client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn promtool_accepts_our_exposition() {
    let prom = prom();
    let addr = serve(app(&prom, Scheme::OpenTelemetry)).await;
    hit(addr, "/orders/1", 3).await;
    hit(addr, "/bad", 1).await;
    hit(addr, "/fail", 1).await;
    hit(addr, "/nope", 1).await;
    // Other families in the same registry: legacy names, gRPC, client, overflow.
    let legacy = MetricsLayer::builder()
        .scheme(Scheme::Legacy)
        .recorder(prom.recorder())
        .max_label_sets(2)
        .build()
        .unwrap();
    let legacy_addr = serve(
        Router::new()
            .route("/a", get(|| async { "a" }))
            .route("/b", get(|| async { "b" }))
            .layer(legacy),
    )
    .await;
    hit(legacy_addr, "/a", 1).await;
    hit(legacy_addr, "/b", 1).await;
    let _ = GrpcMetricsLayer::with_options(prom.recorder(), 10).unwrap();
    let deps = telltale_metrics::ClientMetrics::with_options("inventory", prom.recorder(), 10).unwrap();
    deps.record_attempt(telltale_core::outcome::Outcome::Success);
    deps.record(
        &http::Method::GET,
        "inventory.local",
        Ok(StatusCode::OK),
        Duration::from_millis(3),
    );

    // Scrape-time collectors: process, tokio runtime, pool and queue saturation.
    let handle = prom.handle();
    handle.register_collector(telltale_metrics::process::ProcessCollector::new());
    handle.register_collector(telltale_metrics::runtime::RuntimeCollector::current());
    for name in ["main", "replica"] {
        handle.register_collector(telltale_metrics::saturation::pool(name, || {
            telltale_metrics::saturation::PoolStats {
                used: 3,
                idle: 2,
                pending: 0,
                max: Some(10),
            }
        }));
    }
    handle.register_collector(telltale_metrics::saturation::queue("jobs", || 4, Some(64)));

    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{PROMTOOL} not runnable ({e}): install Debian's `prometheus` package (scripts/test does)")
        });
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("http_requests_total") && text.contains("overflow"),
        "{text}"
    );
    // Process figures are plausible, not just present.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = common::sample(&text, "process_start_time_seconds", &[]).unwrap();
    assert!(
        start <= now + 1.0 && start > now - 86_400.0,
        "start {start} now {now}"
    );
    assert!(common::sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(common::sample(&text, "process_threads", &[]).unwrap() >= 1.0);
    assert!(common::sample(&text, "process_open_fds", &[]).unwrap() >= 3.0);
    for family in [
        "process_cpu_seconds_total{",
        "process_resident_memory_bytes{",
        "process_open_fds{",
        "process_max_fds{",
        "process_threads{",
        "process_start_time_seconds{",
        "tokio_workers{",
        "tokio_global_queue_depth{",
        "tokio_worker_busy_seconds_total{",
        "db_client_connections_usage{service=\"orders-api\",environment=\"test\",version=\"1.0.0\",pool_name=\"replica\",state=\"idle\"} 2",
        "telltale_queue_depth{",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
}

/// A real Prometheus (telltale-test-support's, killed on drop) scraping `target` every
/// second, queried asynchronously from the test's runtime.
struct PrometheusServer {
    _server: telltale_test_support::PrometheusServer,
    addr: String,
}

impl PrometheusServer {
    fn start(target: SocketAddr, extra_args: &[&str]) -> Self {
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
        );
        let server =
            telltale_test_support::PrometheusServer::start_with(&config, &[], extra_args, |_| Ok(()))
                .unwrap_or_else(|e| panic!("{e}"));
        let addr = server.url().trim_start_matches("http://").to_owned();
        PrometheusServer {
            _server: server,
            addr,
        }
    }

    /// The single value of an instant query, or `None` when the result is empty.
    async fn query(&self, promql: &str) -> Option<f64> {
        let url = reqwest::Url::parse_with_params(
            &format!("http://{}/api/v1/query", self.addr),
            &[("query", promql)],
        )
        .unwrap();
        let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
        let result = body["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }

    /// The label sets of an instant query's result.
    async fn series(&self, promql: &str) -> Vec<serde_json::Value> {
        let url = reqwest::Url::parse_with_params(
            &format!("http://{}/api/v1/query", self.addr),
            &[("query", promql)],
        )
        .unwrap();
        let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        body["data"]["result"]
            .as_array()
            .map(|r| r.iter().map(|s| s["metric"].clone()).collect())
            .unwrap_or_default()
    }

    async fn wait_for(&self, promql: &str, expected: f64) {
        eventually(
            Duration::from_secs(60),
            &format!("{promql} == {expected}"),
            || async { (self.query(promql).await == Some(expected)).then_some(()) },
        )
        .await;
    }
}

const COUNT: &str = "http_server_request_duration_seconds_count";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_series_rates_and_error_ratio() {
    let prom = prom();
    let addr = serve(app(&prom, Scheme::OpenTelemetry)).await;
    // Phase 1, before the first scrape: every series exists with its phase-1 count, so
    // the rate window below sees only phase 2's increase. Each series' phase-1 count is
    // the same fraction of its phase-2 increase, so rate()'s extrapolation (limited near
    // zero per series) is the same factor for all of them and the ratio is exact.
    hit(addr, "/orders/7", 6).await;
    hit(addr, "/bad", 2).await;
    hit(addr, "/fail", 2).await;
    let server = PrometheusServer::start(addr, &[]);
    server
        .wait_for(&format!("sum({COUNT}{{job=\"app\"}})"), 10.0)
        .await;

    // Phase 2: a known mix, so rates have two points to work with.
    hit(addr, "/orders/8", 30).await;
    hit(addr, "/bad", 10).await;
    hit(addr, "/fail", 10).await;
    server
        .wait_for(&format!("sum({COUNT}{{job=\"app\"}})"), 60.0)
        .await;

    // Series and labels, pinned.
    let ok = server
        .series(&format!("{COUNT}{{http_route=\"/orders/{{id}}\"}}"))
        .await;
    assert_eq!(ok.len(), 1, "{ok:?}");
    let s = &ok[0];
    for (k, v) in [
        ("service", "orders-api"),
        ("environment", "test"),
        ("version", "1.0.0"),
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
        ("job", "app"),
    ] {
        assert_eq!(s[k], v, "{k} in {s}");
    }
    assert!(s.get("error_type").is_none(), "{s}");
    assert_eq!(
        server
            .query(&format!("{COUNT}{{http_route=\"/orders/{{id}}\"}}"))
            .await,
        Some(36.0)
    );
    assert_eq!(
        server
            .query(&format!("{COUNT}{{http_response_status_code=\"400\"}}"))
            .await,
        Some(12.0)
    );
    assert_eq!(
        server.query(&format!("{COUNT}{{error_type=\"500\"}}")).await,
        Some(12.0)
    );
    assert_eq!(
        server
            .query("build_info{commit=\"deadbeef\",version=\"1.0.0\"}")
            .await,
        Some(1.0)
    );

    // Rates over the window, and the error ratio: only 5xx are errors (10 of phase 2's 50;
    // every series has the same scrape timestamps, so extrapolation cancels out).
    let rate = server.query(&format!("sum(rate({COUNT}[1m]))")).await.unwrap();
    assert!(rate > 0.0, "rate {rate}");
    let ratio = server
        .query(&format!(
            "sum(rate({COUNT}{{http_response_status_code=~\"5..\"}}[1m])) / sum(rate({COUNT}[1m]))"
        ))
        .await
        .unwrap();
    assert!((ratio - 0.2).abs() < 1e-6, "error ratio {ratio}");
    let by_error_type = server
        .query(&format!(
            "sum(rate({COUNT}{{error_type!=\"\"}}[1m])) / sum(rate({COUNT}[1m]))"
        ))
        .await
        .unwrap();
    assert!(
        (by_error_type - 0.2).abs() < 1e-6,
        "error ratio by error_type {by_error_type}"
    );
    let p99 = server
        .query(
            "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket[1m])))",
        )
        .await
        .unwrap();
    assert!(p99 > 0.0 && p99 <= 10.0, "p99 {p99}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_stores_trace_id_exemplars_from_openmetrics() {
    use telltale_core::trace_ids::TraceIds;

    let prom = PrometheusConfig::new("orders-api")
        .exemplars(true)
        .build()
        .unwrap();
    let layer = MetricsLayer::builder()
        .recorder(prom.recorder())
        .exemplars(prom.handle().exemplars().unwrap())
        .build()
        .unwrap();
    // Stands in for the trace layer: a sampled trace id on every request.
    let trace = axum::middleware::from_fn(
        |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
            req.extensions_mut().insert(TraceIds::new(
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                true,
            ));
            next.run(req).await
        },
    );
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(layer)
        .layer(trace)
        .merge(metrics_router(prom.handle()));
    let addr = serve(app).await;
    hit(addr, "/orders/1", 3).await;

    // What Prometheus asks for, answered in OpenMetrics with the exemplar.
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let om = res.text().await.unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"}"),
        "{om}"
    );
    // Plain scrapers still get the text format.
    let plain = reqwest::get(format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(!plain.text().await.unwrap().contains("trace_id"));

    let server = PrometheusServer::start(addr, &["--enable-feature=exemplar-storage"]);
    server.wait_for("up{job=\"app\"}", 1.0).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let url = reqwest::Url::parse_with_params(
        &format!("http://{}/api/v1/query_exemplars", server.addr),
        &[
            ("query", "http_server_request_duration_seconds_bucket"),
            ("start", &(now - 600).to_string()),
            ("end", &(now + 600).to_string()),
        ],
    )
    .unwrap();
    let exemplar = eventually(Duration::from_secs(60), "an exemplar in Prometheus", || {
        let url = url.clone();
        async move {
            let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            let first = body["data"].as_array()?.first()?.clone();
            Some(first)
        }
    })
    .await;
    assert_eq!(
        exemplar["seriesLabels"]["http_route"], "/orders/{id}",
        "{exemplar}"
    );
    assert_eq!(
        exemplar["exemplars"][0]["labels"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{exemplar}"
    );
}
