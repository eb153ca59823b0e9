//! A collector that refuses connections: every push fails, and each failure is counted in
//! `telltale_otlp_metrics_export_failures_total`, which `/metrics` shows while the
//! collector is down (a WARN every 30 s was the only sign before).
//!
//! The facade installs global state (the `metrics` recorder), so this binary has one test.

mod support;

use std::time::{Duration, Instant};

use telltale::Telemetry;
use telltale::otlp_metrics::EXPORT_FAILURES;
use telltale::trace::export::OtlpProtocol;

/// The value of the counter `name` (one series; the recorder adds a `service` label) in a
/// Prometheus text exposition.
fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !rest.starts_with([' ', '{']) {
            return None;
        }
        rest.rsplit(' ').next()?.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_push_is_counted_on_metrics() {
    // A port with nothing listening: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    let telemetry = Telemetry::builder("unheard")
        .prometheus()
        .otlp_metrics(format!("http://{closed}"), OtlpProtocol::Grpc)
        .otlp_metrics_interval(Duration::from_millis(50))
        .init()
        .unwrap();
    let addr = support::serve(&telemetry).await;
    support::send_mix(addr).await;

    let client = support::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let text = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // Two failures, so the counter counts each one rather than being set once.
        if counter(&text, EXPORT_FAILURES).is_some_and(|n| n >= 2) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no two failed pushes counted in 30 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The requests themselves were served and recorded as usual.
    assert!(
        last.contains("http_server_request_duration_seconds_count"),
        "{last}"
    );
    telemetry.shutdown();
}
