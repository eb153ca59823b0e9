//! The full client stack through reqwest against a real, scripted, flaky server.
#![cfg(feature = "reqwest")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FlakyServer, ResettingServer, Script, eventually, metric, metrics};
use telltale_resilience::backoff::Jitter;
use telltale_resilience::{Bulkhead, CircuitBreaker, CircuitState, ClientPolicy, ResilienceError, Retry};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

fn fast_retry() -> Retry {
    Retry::exponential().base(2 * MS).cap(20 * MS)
}

fn client(policy: &ClientPolicy) -> reqwest_middleware::ClientWithMiddleware {
    policy.reqwest(reqwest::Client::new())
}

fn resilience_error(e: &reqwest_middleware::Error) -> &ResilienceError {
    ResilienceError::from_reqwest_middleware(e).unwrap_or_else(|| panic!("not a ResilienceError: {e:?}"))
}

#[tokio::test]
async fn retries_until_success_with_delays_inside_backoff_bounds() {
    metrics();
    let server = FlakyServer::start(Script::FailFirst(2, 503)).await;
    let policy = ClientPolicy::builder("retry-ok")
        .retry(Retry::exponential().base(20 * MS).cap(200 * MS).max_attempts(3))
        .build()
        .unwrap();
    let resp = client(&policy).get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.calls(), 3);
    // Full jitter: the delay before retry k is at most base × 2^(k-1); the gap the
    // server sees adds the request round trip (generous allowance for a noisy machine).
    let gaps = server.gaps();
    assert!(gaps[0] <= 20 * MS + Duration::from_secs(1), "{gaps:?}");
    assert!(gaps[1] <= 40 * MS + Duration::from_secs(1), "{gaps:?}");
    let labels = [("peer_service", "retry-ok"), ("reason", "status_503")];
    assert_eq!(metric("telltale_client_retries_total", &labels), 2.0);
    assert_eq!(
        metric(
            "telltale_client_attempts_total",
            &[("peer_service", "retry-ok"), ("outcome", "error")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            "telltale_client_attempts_total",
            &[("peer_service", "retry-ok"), ("outcome", "success")]
        ),
        1.0
    );
}

#[tokio::test]
async fn gives_up_after_max_attempts_and_returns_the_last_response() {
    metrics();
    let server = FlakyServer::start(Script::Always(502)).await;
    let policy = ClientPolicy::builder("give-up")
        .retry(fast_retry().max_attempts(4))
        .build()
        .unwrap();
    let resp = client(&policy).get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(server.calls(), 4);
    let skipped = [("peer_service", "give-up"), ("reason", "max_attempts")];
    assert_eq!(metric("telltale_client_retries_skipped_total", &skipped), 1.0);
}

#[tokio::test]
async fn non_retryable_status_is_not_retried() {
    let server = FlakyServer::start(Script::Always(500)).await;
    let policy = ClientPolicy::builder("no-500")
        .retry(fast_retry())
        .build()
        .unwrap();
    let resp = client(&policy).get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = FlakyServer::start(Script::RetryAfter(1, 429, "1")).await;
    let policy = ClientPolicy::builder("retry-after")
        .retry(fast_retry().max_attempts(2))
        .build()
        .unwrap();
    let resp = client(&policy).get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.calls(), 2);
    // A lower bound: a sleep never ends early, so this is not a flaky timing assertion.
    assert!(
        server.gaps()[0] >= Duration::from_millis(990),
        "{:?}",
        server.gaps()
    );
}

#[tokio::test]
async fn retry_after_beyond_the_cap_gives_up() {
    metrics();
    let server = FlakyServer::start(Script::RetryAfter(1, 503, "120")).await;
    let policy = ClientPolicy::builder("retry-after-cap")
        .retry(fast_retry().retry_after_cap(Duration::from_secs(5)))
        .build()
        .unwrap();
    let resp = client(&policy).get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(server.calls(), 1);
    let skipped = [
        ("peer_service", "retry-after-cap"),
        ("reason", "retry_after_too_long"),
    ];
    assert_eq!(metric("telltale_client_retries_skipped_total", &skipped), 1.0);
}

#[tokio::test]
async fn post_is_not_retried_unless_it_carries_an_idempotency_key() {
    metrics();
    let server = FlakyServer::start(Script::Always(503)).await;
    let policy = ClientPolicy::builder("post").retry(fast_retry()).build().unwrap();
    let c = client(&policy);
    let resp = c.post(server.url("/")).body("order").send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(server.calls(), 1);
    let skipped = [("peer_service", "post"), ("reason", "not_idempotent")];
    assert_eq!(metric("telltale_client_retries_skipped_total", &skipped), 1.0);

    let resp = c
        .post(server.url("/"))
        .header("idempotency-key", "k-1")
        .body("order")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(server.calls(), 1 + 3);
    // Every replay carried the same body.
    let bodies = server.shared.bodies.lock().unwrap().clone();
    assert!(bodies.iter().all(|b| b == "order"), "{bodies:?}");
}

#[tokio::test]
async fn bodies_over_the_replay_cap_are_sent_once() {
    metrics();
    let server = FlakyServer::start(Script::Always(503)).await;
    let policy = ClientPolicy::builder("big-body")
        .retry(fast_retry().max_replay_body(8))
        .build()
        .unwrap();
    let resp = client(&policy)
        .put(server.url("/"))
        .body("0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(server.calls(), 1);
    let skipped = [("peer_service", "big-body"), ("reason", "body_too_large")];
    assert_eq!(metric("telltale_client_retries_skipped_total", &skipped), 1.0);
}

#[tokio::test]
async fn budget_caps_amplification_under_total_failure() {
    let server = FlakyServer::start(Script::Always(503)).await;
    let (ratio, floor, window) = (0.2, 1u32, Duration::from_secs(10));
    let policy = ClientPolicy::builder("budget")
        .retry(
            Retry::exponential()
                .base(MS)
                .cap(2 * MS)
                .max_attempts(10)
                .budget(ratio)
                .budget_floor(floor, window),
        )
        .build()
        .unwrap();
    let c = client(&policy);
    let requests = 60u32;
    let started = Instant::now();
    let mut exhausted = 0;
    for _ in 0..requests {
        match c.get(server.url("/")).send().await {
            Ok(r) => assert_eq!(r.status(), 503),
            Err(e) => {
                assert!(matches!(
                    resilience_error(&e),
                    ResilienceError::BudgetExhausted { .. }
                ));
                exhausted += 1;
            }
        }
    }
    // The floor refills over time: count the whole windows the test spanned.
    let windows = (started.elapsed().as_secs_f64() / window.as_secs_f64())
        .ceil()
        .max(1.0);
    let bound = (1.0 + ratio) * f64::from(requests) + f64::from(floor) * window.as_secs_f64() * windows;
    let calls = f64::from(server.calls());
    assert!(calls <= bound, "server saw {calls} calls, bound {bound}");
    // Without the budget it would be 10 × 60 = 600.
    assert!(calls > f64::from(requests));
    assert!(exhausted > 0);
}

#[tokio::test]
async fn breaker_opens_fails_fast_half_opens_reopens_and_closes() {
    metrics();
    let server = FlakyServer::start(Script::Switch).await;
    let policy = ClientPolicy::builder("breaker")
        .circuit_breaker(
            CircuitBreaker::failure_rate(0.5)
                .sliding_window(4)
                .min_calls(4)
                .half_open_calls(1)
                .open_for(Duration::from_millis(150)),
        )
        .build()
        .unwrap();
    let breaker = policy.circuit_breaker().unwrap().clone();
    let c = client(&policy);
    for _ in 0..4 {
        assert_eq!(c.get(server.url("/")).send().await.unwrap().status(), 503);
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(policy.readiness().is_err());
    let seen = server.calls();
    for _ in 0..5 {
        let e = c.get(server.url("/")).send().await.unwrap_err();
        assert!(matches!(
            resilience_error(&e),
            ResilienceError::CircuitOpen { .. }
        ));
    }
    assert_eq!(server.calls(), seen, "an open breaker makes no call");
    assert_eq!(
        metric(
            "telltale_circuit_breaker_rejected_total",
            &[("peer_service", "breaker")]
        ),
        5.0
    );
    assert_eq!(
        metric(
            "telltale_circuit_breaker_state",
            &[("peer_service", "breaker"), ("state", "open")]
        ),
        1.0
    );

    // Half-open after the wait; a failed trial re-opens it.
    assert!(
        eventually(Duration::from_secs(5), || breaker.state()
            == CircuitState::HalfOpen)
        .await
    );
    assert_eq!(c.get(server.url("/")).send().await.unwrap().status(), 503);
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(server.calls(), seen + 1);

    // Half-open again; a successful trial closes it.
    assert!(
        eventually(Duration::from_secs(5), || breaker.state()
            == CircuitState::HalfOpen)
        .await
    );
    server.set_failing(false);
    assert_eq!(c.get(server.url("/")).send().await.unwrap().status(), 200);
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert!(policy.readiness().is_ok());
    let t = |from, to| {
        metric(
            "telltale_circuit_breaker_transitions_total",
            &[("peer_service", "breaker"), ("from", from), ("to", to)],
        )
    };
    assert_eq!(t("closed", "open"), 1.0);
    assert_eq!(t("open", "half_open"), 2.0);
    assert_eq!(t("half_open", "open"), 1.0);
    assert_eq!(t("half_open", "closed"), 1.0);
}

#[tokio::test]
async fn breaker_shared_by_many_tasks_stays_consistent() {
    let server = FlakyServer::start(Script::Always(503)).await;
    let policy = ClientPolicy::builder("breaker-concurrent")
        .circuit_breaker(
            CircuitBreaker::failure_rate(0.5)
                .sliding_window(20)
                .min_calls(20)
                .open_for(Duration::from_secs(600)),
        )
        .build()
        .unwrap();
    let c = client(&policy);
    // 20 tasks, each making 10 calls one after the other.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            let url = server.url("/");
            tokio::spawn(async move {
                let mut out = Vec::new();
                for _ in 0..10 {
                    out.push(c.get(url.clone()).send().await);
                }
                out
            })
        })
        .collect();
    let mut rejected = 0u32;
    let mut answered = 0u32;
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap());
    }
    for r in results {
        match r {
            Ok(r) => {
                assert_eq!(r.status(), 503);
                answered += 1;
            }
            Err(e) => {
                assert!(matches!(
                    resilience_error(&e),
                    ResilienceError::CircuitOpen { .. }
                ));
                rejected += 1;
            }
        }
    }
    assert_eq!(answered + rejected, 200);
    assert_eq!(
        server.calls(),
        answered,
        "every answered call reached the server, no other did"
    );
    assert!(
        answered >= 20,
        "the breaker needs min_calls before it trips: {answered}"
    );
    assert!(rejected > 0);
    assert_eq!(policy.circuit_breaker().unwrap().state(), CircuitState::Open);
}

#[tokio::test]
async fn hung_server_hits_the_per_attempt_timeout() {
    let server = FlakyServer::start(Script::Hang).await;
    let policy = ClientPolicy::builder("hang-timeout")
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = client(&policy).get(server.url("/")).send().await.unwrap_err();
    assert!(
        matches!(resilience_error(&e), ResilienceError::Timeout { .. }),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(100) + Duration::from_secs(2));
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn hung_server_hits_the_overall_deadline_never_more() {
    let server = FlakyServer::start(Script::Hang).await;
    let policy = ClientPolicy::builder("hang-deadline")
        .timeout(Duration::from_millis(100))
        .deadline(Duration::from_millis(350))
        .retry(fast_retry().max_attempts(20).no_budget())
        .build()
        .unwrap();
    let started = Instant::now();
    let e = client(&policy).get(server.url("/")).send().await.unwrap_err();
    let elapsed = started.elapsed();
    let err = resilience_error(&e);
    assert!(
        matches!(
            err,
            ResilienceError::DeadlineExceeded { .. } | ResilienceError::Timeout { .. }
        ),
        "{err:?}"
    );
    assert_eq!(err.error_type().as_str(), "timeout");
    assert!(
        elapsed < Duration::from_millis(350) + Duration::from_secs(2),
        "{elapsed:?}"
    );
    // Timed-out attempts are retried until the deadline: 100 ms each in 350 ms.
    assert!((2..=4).contains(&server.calls()), "{}", server.calls());
}

#[tokio::test]
async fn reset_connections_are_transport_errors_and_retried_for_get() {
    let server = ResettingServer::start().await;
    let policy = ClientPolicy::builder("reset")
        .retry(fast_retry().max_attempts(3))
        .build()
        .unwrap();
    let e = client(&policy)
        .get(format!("http://{}/", server.addr))
        .send()
        .await
        .unwrap_err();
    assert_eq!(resilience_error(&e).error_type().as_str(), "transport", "{e:?}");
    assert!(
        eventually(Duration::from_secs(2), || server
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst)
            == 3)
        .await,
        "accepted {}",
        server.accepted.load(std::sync::atomic::Ordering::SeqCst)
    );
}

#[tokio::test]
async fn refused_connections_are_connect_errors() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let policy = ClientPolicy::builder("refused")
        .retry(fast_retry().max_attempts(2))
        .build()
        .unwrap();
    let e = client(&policy)
        .post(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    let err = resilience_error(&e);
    assert_eq!(err.error_type().as_str(), "connect", "{err:?}");
    assert!(err.to_string().contains("could not connect to `refused`"));
}

#[tokio::test]
async fn bulkhead_rejects_beyond_its_limit_after_a_bounded_wait() {
    let server = FlakyServer::start(Script::Slow(400)).await;
    let policy = ClientPolicy::builder("bulkhead")
        .bulkhead(Bulkhead::new(2).max_wait(Duration::from_millis(20)))
        .build()
        .unwrap();
    let c = client(&policy);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            let url = server.url("/");
            tokio::spawn(async move { c.get(url).send().await })
        })
        .collect();
    let mut full = 0;
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            assert!(matches!(
                resilience_error(&e),
                ResilienceError::BulkheadFull { .. }
            ));
            full += 1;
        }
    }
    assert_eq!(full, 1);
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn decorrelated_jitter_policy_retries() {
    let server = FlakyServer::start(Script::FailFirst(1, 504)).await;
    let policy = ClientPolicy::builder("decorrelated")
        .retry(
            Retry::decorrelated()
                .base(MS)
                .cap(10 * MS)
                .jitter(Jitter::Decorrelated),
        )
        .build()
        .unwrap();
    assert_eq!(
        client(&policy)
            .get(server.url("/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn outer_middlewares_run_before_the_policy_and_see_the_error_type() {
    use reqwest_middleware::{Middleware, Next};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);
    struct Recorder(Arc<Seen>);
    impl Middleware for Recorder {
        fn handle<'a, 'b, 'c, 'd>(
            &'a self,
            req: reqwest::Request,
            ext: &'b mut http::Extensions,
            next: Next<'c>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = reqwest_middleware::Result<reqwest::Response>> + Send + 'd>,
        >
        where
            'a: 'd,
            'b: 'd,
            'c: 'd,
            Self: 'd,
        {
            Box::pin(async move {
                let r = next.run(req, ext).await;
                let et = ext
                    .get::<telltale_core::outcome::ErrorType>()
                    .map(|e| e.as_str().to_owned());
                self.0.0.lock().unwrap().push(et.unwrap_or_else(|| "none".into()));
                r
            })
        }
    }
    let rec = Arc::new(Seen::default());
    let server = FlakyServer::start(Script::Hang).await;
    let policy = ClientPolicy::builder("outer")
        .timeout(Duration::from_millis(50))
        .with_outer_middleware(Arc::new(Recorder(rec.clone())))
        .build()
        .unwrap();
    let _ = client(&policy).get(server.url("/")).send().await.unwrap_err();
    assert_eq!(
        *rec.0.lock().unwrap(),
        vec!["timeout".to_owned()],
        "one logical call seen outside"
    );
}

#[tokio::test]
async fn per_host_breakers_isolate_a_failing_host() {
    let bad = FlakyServer::start(Script::Always(503)).await;
    let good = FlakyServer::start(Script::Ok).await;
    let policy = ClientPolicy::builder("per-host")
        .circuit_breaker(CircuitBreaker::consecutive_failures(2).open_for(Duration::from_secs(600)))
        .per_host_breakers(8)
        .build()
        .unwrap();
    let c = client(&policy);
    for _ in 0..2 {
        assert_eq!(c.get(bad.url("/")).send().await.unwrap().status(), 503);
    }
    let e = c.get(bad.url("/")).send().await.unwrap_err();
    assert!(matches!(
        resilience_error(&e),
        ResilienceError::CircuitOpen { .. }
    ));
    assert_eq!(c.get(good.url("/")).send().await.unwrap().status(), 200);
    assert_eq!(bad.calls(), 2);
    let registry = policy.breaker_registry().unwrap();
    let bad_host = format!("127.0.0.1:{}", bad.addr.port());
    assert_eq!(registry.get(&bad_host).state(), CircuitState::Open);
    let status = policy.readiness().unwrap_err();
    assert!(status.contains(&bad_host), "{status}");
}

#[tokio::test]
async fn backoff_that_cannot_fit_before_the_deadline_is_skipped() {
    metrics();
    let server = FlakyServer::start(Script::RetryAfter(5, 503, "2")).await;
    let policy = ClientPolicy::builder("deadline-skip")
        .deadline(Duration::from_millis(500))
        .retry(fast_retry())
        .build()
        .unwrap();
    let resp = client(&policy).get(server.url("/")).send().await.unwrap();
    assert_eq!(
        resp.status(),
        503,
        "the last answer is returned, not a made-up error"
    );
    assert_eq!(server.calls(), 1);
    let skipped = [("peer_service", "deadline-skip"), ("reason", "deadline")];
    assert_eq!(metric("telltale_client_retries_skipped_total", &skipped), 1.0);
}

#[tokio::test]
async fn max_total_time_stops_retrying() {
    metrics();
    let server = FlakyServer::start(Script::Always(503)).await;
    let policy = ClientPolicy::builder("max-total")
        .retry(
            Retry::exponential()
                .base(40 * MS)
                .cap(40 * MS)
                .jitter(Jitter::None)
                .max_attempts(100)
                .max_total_time(Duration::from_millis(100))
                .no_budget(),
        )
        .build()
        .unwrap();
    let resp = client(&policy).get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!((1..=3).contains(&server.calls()), "{}", server.calls());
    let skipped = [("peer_service", "max-total"), ("reason", "deadline")];
    assert_eq!(metric("telltale_client_retries_skipped_total", &skipped), 1.0);
}

#[tokio::test]
async fn dependency_metrics_middleware_sees_the_resilience_error_type() {
    use telltale_metrics::ClientMetrics;
    use telltale_metrics::client::ClientMetricsMiddleware;

    metrics();
    let server = FlakyServer::start(Script::Ok).await;
    let policy = ClientPolicy::builder("labelled")
        .circuit_breaker(CircuitBreaker::consecutive_failures(1))
        .with_outer_middleware(Arc::new(ClientMetricsMiddleware::new(
            ClientMetrics::for_dependency("labelled"),
        )))
        .build()
        .unwrap();
    policy.circuit_breaker().unwrap().force_open();
    let e = client(&policy).get(server.url("/")).send().await.unwrap_err();
    assert!(matches!(
        resilience_error(&e),
        ResilienceError::CircuitOpen { .. }
    ));
    assert_eq!(server.calls(), 0);
    let count = metric(
        "http_client_request_duration_seconds_count",
        &[("peer_service", "labelled"), ("error_type", "circuit_open")],
    );
    assert_eq!(count, 1.0, "{}", metrics().render());
}

/// "No limit" spelled `Duration::MAX`, and a server asking for an absurd wait: answers,
/// never a clock overflow on the request path.
#[tokio::test]
async fn limits_too_long_for_the_clock_are_no_limits_and_never_panic() {
    metrics();
    let ok = FlakyServer::start(Script::FailFirst(1, 503)).await;
    let policy = ClientPolicy::builder("huge-limits")
        .deadline(Duration::MAX)
        .retry(fast_retry().max_total_time(Duration::MAX).no_budget())
        .build()
        .unwrap();
    let resp = client(&policy).get(ok.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(ok.calls(), 2);

    // Retry-After beyond u64 seconds, under a cap of `Duration::MAX`, with a deadline:
    // the wait cannot fit before the deadline, so the 503 is the answer.
    let asks = FlakyServer::start(Script::RetryAfter(1, 503, "99999999999999999999")).await;
    let policy = ClientPolicy::builder("huge-retry-after")
        .deadline(Duration::from_secs(30))
        .retry(fast_retry().retry_after_cap(Duration::MAX).no_budget())
        .build()
        .unwrap();
    let resp = client(&policy).get(asks.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(asks.calls(), 1);
    let skipped = [("peer_service", "huge-retry-after"), ("reason", "deadline")];
    assert_eq!(metric("telltale_client_retries_skipped_total", &skipped), 1.0);

    // Under the default cap, the same header is "too long": not retried at once.
    let asks = FlakyServer::start(Script::RetryAfter(1, 503, "99999999999999999999")).await;
    let policy = ClientPolicy::builder("unparsable-retry-after")
        .retry(fast_retry().no_budget())
        .build()
        .unwrap();
    let resp = client(&policy).get(asks.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(asks.calls(), 1);
    let skipped = [
        ("peer_service", "unparsable-retry-after"),
        ("reason", "retry_after_too_long"),
    ];
    assert_eq!(metric("telltale_client_retries_skipped_total", &skipped), 1.0);
}

/// The reqwest client's own timeout is a timeout (`error.type` `timeout`, retried only
/// when timeouts are), not a transport error.
#[tokio::test]
async fn the_inner_clients_own_timeout_is_a_timeout() {
    metrics();
    let server = FlakyServer::start(Script::Hang).await;
    let inner = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let policy = ClientPolicy::builder("client-timeout")
        .retry(fast_retry().retry_on_timeout(false).no_budget())
        .build()
        .unwrap();
    let e = policy
        .reqwest(inner.clone())
        .get(server.url("/"))
        .send()
        .await
        .unwrap_err();
    let err = resilience_error(&e);
    assert!(matches!(err, ResilienceError::ClientTimeout { .. }), "{err:?}");
    assert_eq!(err.error_type().as_str(), "timeout");
    assert!(err.to_string().contains("its own timeout"), "{err}");
    assert_eq!(server.calls(), 1, "not retried: timeouts are not");

    let policy = ClientPolicy::builder("client-timeout-retried")
        .retry(fast_retry().max_attempts(3).no_budget())
        .build()
        .unwrap();
    let e = policy
        .reqwest(inner)
        .get(server.url("/"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(resilience_error(&e).error_type().as_str(), "timeout");
    assert_eq!(server.calls(), 1 + 3);
    let retried = [("peer_service", "client-timeout-retried"), ("reason", "timeout")];
    assert_eq!(metric("telltale_client_retries_total", &retried), 2.0);
}

/// The failed attempt opens the breaker: the retry it wanted would be refused, so the
/// caller gets the dependency's own 503 (not `CircuitOpen`), and no budget, retry count
/// or back-off is spent on it.
#[tokio::test]
async fn a_retry_the_breaker_would_refuse_is_skipped_and_the_answer_returned() {
    metrics();
    let server = FlakyServer::start(Script::Always(503)).await;
    let policy = ClientPolicy::builder("breaker-before-retry")
        .circuit_breaker(CircuitBreaker::consecutive_failures(1).open_for(Duration::from_secs(60)))
        .retry(fast_retry().max_attempts(3))
        .build()
        .unwrap();
    let budget_before = policy.retry_budget().unwrap().available();
    let resp = client(&policy).get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(server.calls(), 1);
    assert_eq!(policy.retry_budget().unwrap().available(), budget_before);
    let labels = |reason| [("peer_service", "breaker-before-retry"), ("reason", reason)];
    assert_eq!(
        metric("telltale_client_retries_skipped_total", &labels("circuit_open")),
        1.0
    );
    assert_eq!(
        metric("telltale_client_retries_total", &labels("status_503")),
        0.0
    );
}
