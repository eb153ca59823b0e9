//! A collector that accepts connections and never answers must not slow requests, and
//! `Telemetry::shutdown()` must give up on it in bounded time.
//!
//! The facade installs global state (the `metrics` recorder), so this binary has one test.

mod support;

use std::time::{Duration, Instant};

use telltale::Telemetry;
use telltale::trace::export::OtlpProtocol;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_collector_never_blocks_requests_and_shutdown_is_bounded() {
    // Accepts TCP connections and holds them open without a byte of reply.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = hung.accept().await {
            conns.push(c);
        }
    });

    let telemetry = Telemetry::builder("stuck")
        .otlp(format!("http://{hung_addr}"), OtlpProtocol::Grpc)
        .sampling(telltale::Sampling::always())
        .otlp_metrics(format!("http://{hung_addr}"), OtlpProtocol::Grpc)
        .otlp_metrics_interval(Duration::from_millis(20))
        .init()
        .unwrap();
    let addr = support::serve(&telemetry).await;

    // Many export attempts are hanging meanwhile; each round of the mix stays fast.
    for _ in 0..5 {
        let started = Instant::now();
        support::send_mix(addr).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "10 loopback requests took {:?}",
            started.elapsed()
        );
    }

    // Shutdown waits for the last push and the last span export at most 5 s each, at the
    // same time: not forever, and not 5 s per signal one after the other (10 s).
    let started = Instant::now();
    telemetry.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
    held.abort();
}
