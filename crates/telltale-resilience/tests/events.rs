//! Every retry decision and every breaker transition is a `tracing` event, emitted
//! inside the caller's (client) span.
#![cfg(feature = "reqwest")]

mod common;

use std::time::Duration;

use common::{Captured, FlakyServer, Script};
use telltale_resilience::{CircuitBreaker, ClientPolicy, Retry};
use tracing::Instrument;

#[tokio::test(flavor = "current_thread")]
async fn decisions_and_transitions_are_events_on_the_client_span() {
    let out = Captured::default();
    let _guard = tracing::subscriber::set_default(out.subscriber());

    let server = FlakyServer::start(Script::FailFirst(1, 503)).await;
    let policy = ClientPolicy::builder("events")
        .retry(
            Retry::exponential()
                .base(Duration::from_millis(1))
                .cap(Duration::from_millis(5)),
        )
        .circuit_breaker(CircuitBreaker::consecutive_failures(3).open_for(Duration::from_secs(600)))
        .build()
        .unwrap();
    let client = policy.reqwest(reqwest::Client::new());

    let span = tracing::info_span!("client_call", peer = "events");
    let resp = client.get(server.url("/")).send().instrument(span).await.unwrap();
    assert_eq!(resp.status(), 200);
    let span = tracing::info_span!("client_call", peer = "events");
    let resp = client
        .post(server.url("/"))
        .send()
        .instrument(span)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let failing = FlakyServer::start(Script::Always(500)).await;
    for _ in 0..3 {
        let _ = client.post(failing.url("/")).send().await.unwrap();
    }

    let lines = out.lines();
    let retrying: Vec<_> = lines.iter().filter(|l| l.contains("retrying")).collect();
    assert_eq!(retrying.len(), 1, "{lines:#?}");
    assert!(
        retrying[0].contains("client_call"),
        "inside the caller's span: {}",
        retrying[0]
    );
    assert!(
        retrying[0].contains("reason=\"status_503\"") || retrying[0].contains("reason=status_503"),
        "{}",
        retrying[0]
    );
    let opened: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("circuit breaker opened"))
        .collect();
    assert_eq!(opened.len(), 1, "one event per transition: {lines:#?}");
    assert!(opened[0].contains("WARN"));
}

#[tokio::test(flavor = "current_thread")]
async fn refused_retries_say_why() {
    let out = Captured::default();
    let _guard = tracing::subscriber::set_default(out.subscriber());

    let server = FlakyServer::start(Script::Always(503)).await;
    let policy = ClientPolicy::builder("events-skip")
        .retry(
            Retry::exponential()
                .base(Duration::from_millis(1))
                .cap(Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    let client = policy.reqwest(reqwest::Client::new());
    let _ = client.post(server.url("/")).body("x").send().await.unwrap();
    let lines = out.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("not retrying") && l.contains("not_idempotent")),
        "{lines:#?}"
    );
}

#[test]
fn the_first_host_past_the_per_host_bound_is_logged_once() {
    use telltale_resilience::breaker::{BreakerRegistry, OVERFLOW_HOST};
    let out = Captured::default();
    let _guard = tracing::subscriber::set_default(out.subscriber());
    let registry = BreakerRegistry::new("search", CircuitBreaker::consecutive_failures(5), 2).unwrap();
    for host in ["a:80", "b:80", "a:80"] {
        assert_eq!(registry.get(host).host(), Some(host));
    }
    assert!(out.lines().is_empty(), "{:#?}", out.lines());
    for host in ["c:80", "d:80", "c:80"] {
        assert_eq!(registry.get(host).host(), Some(OVERFLOW_HOST));
    }
    let full: Vec<String> = out
        .lines()
        .into_iter()
        .filter(|l| l.contains("per-host circuit breakers full"))
        .collect();
    assert_eq!(full.len(), 1, "{full:#?}");
    assert!(
        full[0].contains("WARN") && full[0].contains("c:80") && full[0].contains("max_hosts=2"),
        "{}",
        full[0]
    );
}
