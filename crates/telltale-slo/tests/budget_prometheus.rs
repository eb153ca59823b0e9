//! `budget` against a real Prometheus (`/usr/bin/prometheus`) holding known history:
//! the test backfills three hours of counters with `promtool tsdb create-blocks-from
//! openmetrics`, starts Prometheus on a free loopback port, and reads the budget back.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use telltale_slo::ServiceSpec;
use telltale_slo::budget::{PrometheusClient, budget};
use telltale_test_support::PrometheusServer;

fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH or in /usr/bin: install Debian's `prometheus` package \
                 (prometheus and promtool), as scripts/test does"
            )
        })
}

const LABELS: &str = r#"service="orders-api",http_route="/orders/{id}",http_request_method="GET""#;

/// Three hours of history ending ten minutes ago, one sample a minute:
/// 2000 requests a minute, 1 of them a 503 (0.05%), 1990 within 0.25 s (99.5%); 200
/// `fulfil_order` job runs a minute, 1 of them failed (0.5%).
fn openmetrics(now: u64) -> String {
    let minutes = 180u64;
    let first = now - 600 - minutes * 60;
    let mut text = String::new();
    // One family per metric name, its series written contiguously (OpenMetrics).
    let _ = writeln!(text, "# TYPE http_server_request_duration_seconds_count unknown");
    for m in 0..=minutes {
        let _ = writeln!(
            text,
            "http_server_request_duration_seconds_count{{{LABELS},http_response_status_code=\"200\"}} {} {}",
            m * 1999,
            first + m * 60
        );
    }
    for m in 0..=minutes {
        let _ = writeln!(
            text,
            "http_server_request_duration_seconds_count{{{LABELS},http_response_status_code=\"503\",error_type=\"503\"}} {} {}",
            m,
            first + m * 60
        );
    }
    let _ = writeln!(text, "# TYPE http_server_request_duration_seconds_bucket unknown");
    for m in 0..=minutes {
        let _ = writeln!(
            text,
            "http_server_request_duration_seconds_bucket{{{LABELS},http_response_status_code=\"200\",le=\"0.25\"}} {} {}",
            m * 1990,
            first + m * 60
        );
    }
    let _ = writeln!(text, "# TYPE messaging_process_duration_seconds_count unknown");
    for (labels, per_minute) in [("", 199), (",error_type=\"database\"", 1)] {
        for m in 0..=minutes {
            let _ = writeln!(
                text,
                "messaging_process_duration_seconds_count{{service=\"orders-api\",messaging_system=\"sqlite\",messaging_destination_name=\"fulfil_order\"{labels}}} {} {}",
                m * per_minute,
                first + m * 60
            );
        }
    }
    text.push_str("# EOF\n");
    text
}

#[test]
fn budget_reads_consumed_and_remaining_budget_from_a_real_prometheus() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let prometheus = prometheus_with(
        openmetrics(now),
        "sum(http_server_request_duration_seconds_count offset 15m)",
    );
    let url = prometheus.url().to_owned();

    let spec = ServiceSpec::from_yaml_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/orders-api/slo.yaml"
    ))
    .unwrap();
    let reports = budget(&url, &spec).unwrap();
    assert_eq!(reports.len(), 3);
    for r in &reports {
        eprintln!("{r}");
        // availability: 0.05% errors of a 0.1% budget; latency: 0.5% slow of a 1% budget;
        // fulfilment: 0.5% failed runs of a 1% budget.
        let consumed = r.consumed.expect("data");
        assert!((consumed - 0.5).abs() < 0.01, "{r}");
        assert!((r.remaining.unwrap() - 0.5).abs() < 0.01, "{r}");
        let requests = r.requests_in_window.unwrap();
        // 180 minutes × 2000 requests (× 200 runs), give or take Prometheus'
        // extrapolation at the edges.
        let expected = if r.queue.is_some() { 36_000.0 } else { 360_000.0 };
        assert!((requests / expected - 1.0).abs() < 0.02, "{r}");
    }
    assert_eq!(reports[2].slo, "fulfilment");
    assert!(reports[2].to_string().ends_with(" job runs"), "{}", reports[2]);
    let availability = &reports[0];
    assert_eq!(availability.slo, "availability");
    assert!((availability.week_budget_minutes - 10.08).abs() < 1e-9);
    let week_requests = availability.week_budget_requests.unwrap();
    assert!((week_requests / 360.0 - 1.0).abs() < 0.02, "{availability}");
    assert!((reports[1].week_budget_minutes - 100.8).abs() < 1e-9);

    // The CLI prints the same.
    let out = Command::new(env!("CARGO_BIN_EXE_telltale-slo"))
        .args(["budget", "--prometheus", &url])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/orders-api/slo.yaml"
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("availability: objective 99.9% over 30d; consumed 50."),
        "{stdout}"
    );
    assert!(stdout.contains("week budget 10.08 min"), "{stdout}");
}

/// A Prometheus holding `history` (OpenMetrics text, backfilled), serving once
/// `ready_query` has a value.
fn prometheus_with(history: String, ready_query: &str) -> PrometheusServer {
    let prometheus = PrometheusServer::start_with_data("global:\n  scrape_interval: 1m\n", &[], |data| {
        let om = data.with_file_name("history.om");
        std::fs::write(&om, history)?;
        let out = Command::new(tool("promtool"))
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&om)
            .arg(data)
            .output()?;
        assert!(
            out.status.success(),
            "backfill failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let client = PrometheusClient::new(prometheus.url());
    prometheus
        .wait_for(Duration::from_secs(30), "serving the backfilled data", |_| {
            client
                .query_scalar(ready_query)
                .is_ok_and(|v| v.is_some())
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    prometheus
}

#[test]
fn budget_of_a_service_without_errors_is_untouched_not_no_data() {
    // Three hours of successful requests and job runs only: no 5xx series and no
    // `error_type` series exist at all.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let minutes = 180u64;
    let first = now - 600 - minutes * 60;
    let mut history = String::new();
    let _ = writeln!(
        history,
        "# TYPE http_server_request_duration_seconds_count unknown"
    );
    for m in 0..=minutes {
        let _ = writeln!(
            history,
            "http_server_request_duration_seconds_count{{{LABELS},http_response_status_code=\"200\"}} {} {}",
            m * 2000,
            first + m * 60
        );
    }
    let _ = writeln!(history, "# TYPE messaging_process_duration_seconds_count unknown");
    for m in 0..=minutes {
        let _ = writeln!(
            history,
            "messaging_process_duration_seconds_count{{service=\"orders-api\",messaging_system=\"sqlite\",messaging_destination_name=\"fulfil_order\"}} {} {}",
            m * 200,
            first + m * 60
        );
    }
    history.push_str("# EOF\n");
    let prometheus = prometheus_with(
        history,
        "sum(http_server_request_duration_seconds_count offset 15m)",
    );
    let spec = ServiceSpec::builder("orders-api")
        .slo(telltale_slo::Slo::availability("availability", 99.9))
        .slo(telltale_slo::Slo::availability("fulfilment", 99.0).queue("fulfil_order"))
        .build()
        .unwrap();
    let reports = budget(prometheus.url(), &spec).unwrap();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        eprintln!("{r}");
        assert_eq!(r.error_ratio, Some(0.0), "{r}");
        assert_eq!(r.consumed, Some(0.0), "{r}");
        assert_eq!(r.remaining, Some(1.0), "{r}");
        assert!(r.to_string().contains("consumed 0.00%, remaining 100.00%"), "{r}");
    }
    // A service with no traffic at all still has no data.
    let idle = ServiceSpec::builder("idle-api")
        .slo(telltale_slo::Slo::availability("availability", 99.9))
        .build()
        .unwrap();
    let reports = budget(prometheus.url(), &idle).unwrap();
    assert_eq!(reports[0].error_ratio, None, "{}", reports[0]);
    assert!(
        reports[0].to_string().contains("consumed no data"),
        "{}",
        reports[0]
    );
}

#[test]
fn budget_reports_an_unreachable_prometheus_as_an_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = ServiceSpec::builder("orders-api")
        .slo(telltale_slo::Slo::availability("availability", 99.9))
        .build()
        .unwrap();
    let err = budget(&format!("http://127.0.0.1:{port}"), &spec).unwrap_err();
    assert!(err.to_string().contains("querying Prometheus"), "{err}");
}
