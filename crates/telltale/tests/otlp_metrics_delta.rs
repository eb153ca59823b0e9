//! OTLP metrics with delta temporality, over gRPC to a real receiver: every sum and
//! histogram arrives marked delta, and each export carries only what happened since the
//! previous one, so the exports add up to exactly the requests sent, however the 100 ms
//! intervals cut them.
//!
//! The facade installs global state (the `metrics` recorder), so this binary has one test.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use telltale::Telemetry;
use telltale::otlp_metrics::{Temporality, process};
use telltale::trace::export::OtlpProtocol;
use telltale_test_support::otlp::{AggregationTemporality, ReceivedMetric};

/// Request counts by status, summed over every duration histogram received.
fn summed_counts(metrics: &[ReceivedMetric]) -> BTreeMap<u16, u64> {
    let mut sum = BTreeMap::new();
    for m in metrics
        .iter()
        .filter(|m| m.name() == "http.server.request.duration")
    {
        for (status, n) in support::counts_by_status(m) {
            *sum.entry(status).or_insert(0) += n;
        }
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_exports_add_up_to_the_requests_sent() {
    let receiver = telltale_test_support::otlp::OtlpReceiver::start().await.unwrap();
    let telemetry = Telemetry::builder("ledger")
        .otlp_metrics(receiver.endpoint(), OtlpProtocol::Grpc)
        .otlp_metrics_interval(Duration::from_millis(100))
        .otlp_metrics_temporality(Temporality::Delta)
        .init()
        .unwrap();
    let addr = support::serve(&telemetry).await;

    support::send_mix(addr).await;
    let expected = support::expected_counts();
    let got = receiver
        .wait_for_metrics(|ms| summed_counts(ms) == expected, Duration::from_secs(20))
        .await
        .unwrap_or_else(|got| panic!("exports sum to {:?}, want {expected:?}", summed_counts(&got)));
    // Histograms and counters are deltas; up-down counters stay cumulative (the
    // specification's delta preference keeps them so).
    let temporality = |name: &str| {
        got.iter()
            .find(|m| m.name() == name)
            .and_then(|m| m.temporality())
    };
    let delta = AggregationTemporality::Delta;
    assert_eq!(temporality("http.server.request.duration"), Some(delta));
    assert_eq!(temporality(process::CPU_TIME), Some(delta));
    assert_eq!(
        temporality(process::MEMORY_USAGE),
        Some(AggregationTemporality::Cumulative)
    );
    for m in got
        .iter()
        .filter(|m| m.is_monotonic_sum() || !m.histogram_points().is_empty())
    {
        assert_eq!(m.temporality(), Some(delta), "{}", m.name());
    }
    support::assert_process_metrics(&got);

    // Two more requests: cumulative exports would resend the mix every interval, and the
    // sum would run past this.
    let client = support::client();
    for _ in 0..2 {
        let res = client.get(format!("http://{addr}/ok")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        res.bytes().await.unwrap();
    }
    let mut expected = expected;
    *expected.entry(200).or_insert(0) += 2;
    receiver
        .wait_for_metrics(|ms| summed_counts(ms) == expected, Duration::from_secs(20))
        .await
        .unwrap_or_else(|got| panic!("exports sum to {:?}, want {expected:?}", summed_counts(&got)));
    telemetry.shutdown();
    assert_eq!(
        summed_counts(&receiver.metrics()),
        expected,
        "after the last push"
    );
}
