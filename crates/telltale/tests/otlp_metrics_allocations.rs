//! Recording through the OTLP bridge allocates nothing once a key's handle exists: the
//! instrument and the attribute slice are built once per key (counted with dhat).
//!
//! The facade installs global state (the `metrics` recorder), so this binary has one test.

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

use std::time::Duration;

use telltale::Telemetry;
use telltale::trace::export::OtlpProtocol;

const N: u64 = 10_000;

#[test]
fn recording_on_an_existing_key_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // Nothing listens there; no export happens within the hour-long interval.
    let telemetry = Telemetry::builder("alloc")
        .otlp_metrics("http://127.0.0.1:9", OtlpProtocol::Grpc)
        .otlp_metrics_interval(Duration::from_secs(3600))
        .init()
        .unwrap();
    let histogram = metrics::histogram!(
        "http_server_request_duration_seconds",
        "http_request_method" => "GET",
        "http_route" => "/orders/{id}",
        "http_response_status_code" => "200"
    );
    let counter = metrics::counter!("jobs_total", "queue" => "emails");
    let gauge = metrics::gauge!("http_server_active_requests");
    // The first observation creates the SDK's series for the attribute set.
    histogram.record(0.01);
    counter.increment(1);
    gauge.increment(1.0);
    gauge.decrement(1.0);

    let before = dhat::HeapStats::get().total_blocks;
    for i in 0..N {
        histogram.record(i as f64 / N as f64);
        counter.increment(1);
        gauge.increment(1.0);
        gauge.decrement(1.0);
    }
    let allocations = dhat::HeapStats::get().total_blocks - before;
    // dhat counts every thread: the SDK's reader thread, just started, may allocate a few
    // blocks meanwhile (0 to 4 measured, for 10 000 or 200 000 rounds alike). One
    // allocation per record would be at least N.
    assert!(allocations < N / 100, "{allocations} allocations for {N} rounds");

    telemetry.shutdown();
}
