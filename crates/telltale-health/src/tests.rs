//! Router behaviour over `oneshot`, builder validation, metrics. Real servers and the
//! real-TCP cases are in `tests/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{CheckError, Health, HealthConfigError, ReadinessCheck, checks};

fn flag_check(flag: &Arc<AtomicBool>) -> impl ReadinessCheck + use<> {
    let flag = flag.clone();
    checks::from_fn(move || {
        let up = flag.load(Ordering::SeqCst);
        async move {
            if up {
                Ok(())
            } else {
                Err(CheckError::msg("down: postgres://app:hunter2@db/orders"))
            }
        }
    })
}

async fn get(health: &Health, uri: &str, json: bool) -> (StatusCode, String, http::HeaderMap) {
    let mut req = Request::get(uri);
    if json {
        req = req.header("accept", "application/json");
    }
    let res = health
        .router::<()>()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), headers)
}

struct Fixture {
    health: Health,
    db: Arc<AtomicBool>,
    cache: Arc<AtomicBool>,
}

fn fixture() -> Fixture {
    let db = Arc::new(AtomicBool::new(true));
    let cache = Arc::new(AtomicBool::new(true));
    let health = Health::builder()
        .check("db", flag_check(&db))
        .check("cache", flag_check(&cache).non_critical())
        // Every probe sees fresh results.
        .cache_for(Duration::from_nanos(1))
        .build()
        .unwrap();
    Fixture { health, db, cache }
}

#[tokio::test]
async fn liveness_is_ok_json_on_both_paths_and_ignores_checks() {
    let f = fixture();
    f.db.store(false, Ordering::SeqCst);
    for path in ["/healthz", "/livez"] {
        let (status, body, headers) = get(&f.health, path, false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"status":"ok"}"#);
        assert_eq!(headers["cache-control"], "no-cache, no-store, must-revalidate");
    }
}

#[tokio::test]
async fn readyz_is_terse_ok_when_all_pass() {
    let f = fixture();
    let (status, body, headers) = get(&f.health, "/readyz", false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(headers["cache-control"], "no-cache, no-store, must-revalidate");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn failing_non_critical_check_degrades_but_stays_200() {
    let f = fixture();
    f.cache.store(false, Ordering::SeqCst);
    let (status, body, _) = get(&f.health, "/readyz", false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "degraded"));
    let (status, body, _) = get(&f.health, "/readyz?verbose", false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "[+]db ok\n[-]cache failed: down: postgres://app:***@db/orders\nreadyz check degraded"
    );
}

#[tokio::test]
async fn failing_critical_check_is_503_naming_it_with_reason_withheld() {
    let f = fixture();
    f.db.store(false, Ordering::SeqCst);
    let (status, body, _) = get(&f.health, "/readyz", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "[-]db failed: reason withheld\nreadyz check failed");
}

#[tokio::test]
async fn exclude_skips_a_check_and_unknown_names_only_warn() {
    let f = fixture();
    f.db.store(false, Ordering::SeqCst);
    let (status, body, _) = get(&f.health, "/readyz?exclude=db&verbose", false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "[+]db excluded: ok\n[+]cache ok\nreadyz check passed");

    let (status, body, _) = get(&f.health, "/readyz?exclude=nope&exclude=%64b&verbose=1", false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(r#"warn: some health checks cannot be excluded: no matches for "nope""#),
        "{body}"
    );
}

#[tokio::test]
async fn single_check_path_answers_for_that_check_only() {
    let f = fixture();
    f.cache.store(false, Ordering::SeqCst);
    let (status, body, _) = get(&f.health, "/readyz/db", false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "[+]db ok\nok"));
    let (status, body, _) = get(&f.health, "/readyz/cache?verbose", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with("[-]cache failed: down:"), "{body}");
    let (status, _, _) = get(&f.health, "/readyz/unknown", false).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn json_detail_has_status_duration_error_and_last_success() {
    let f = fixture();
    get(&f.health, "/readyz", false).await; // one success on record
    f.db.store(false, Ordering::SeqCst);
    let (status, body, headers) = get(&f.health, "/readyz", true).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "failed");
    let db = &v["checks"]["db"];
    assert_eq!(db["status"], "failed");
    assert_eq!(db["critical"], true);
    assert!(db["duration_ms"].is_number());
    // The reason only with `?verbose`, as in the text answer.
    assert_eq!(db["error"], "reason withheld");
    assert!(!body.contains("postgres"), "{body}");
    // the time of the last success survives the failure
    assert!(db["last_success"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["checks"]["cache"]["status"], "ok");
    assert_eq!(v["checks"]["cache"]["critical"], false);
    assert!(v["checks"]["cache"]["error"].is_null());
    let (_, body, _) = get(&f.health, "/readyz?verbose", true).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["checks"]["db"]["error"], "down: postgres://app:***@db/orders");
    for (path, withheld) in [("/readyz/db", true), ("/readyz/db?verbose", false)] {
        let (status, body, _) = get(&f.health, path, true).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"] == "reason withheld", withheld, "{path}: {body}");
        assert_eq!(
            body.contains("postgres://app:***@db"),
            !withheld,
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn draining_turns_readiness_503_and_leaves_liveness_200() {
    let f = fixture();
    assert!(f.health.start_draining());
    assert!(!f.health.start_draining());
    let (status, body, _) = get(&f.health, "/readyz", false).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    );
    let (_, body, _) = get(&f.health, "/readyz", true).await;
    assert_eq!(body, r#"{"status":"draining"}"#);
    let (status, _, _) = get(&f.health, "/healthz", false).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_single_check_path_answers_503_draining_while_draining() {
    let f = fixture();
    assert_eq!(get(&f.health, "/readyz/db", false).await.0, StatusCode::OK);
    f.health.start_draining();
    // The same answer as `/readyz`, in every format: the check passes, but a load
    // balancer probing it must stop sending all the same.
    for (query, json, body) in [
        ("", false, "draining"),
        ("?verbose", false, "readyz check failed: draining"),
        ("", true, r#"{"status":"draining"}"#),
        ("?verbose", true, r#"{"status":"draining"}"#),
    ] {
        for path in ["/readyz/db", "/readyz/cache", "/readyz"] {
            let uri = format!("{path}{query}");
            let (status, got, headers) = get(&f.health, &uri, json).await;
            assert_eq!(
                (status, got.as_str()),
                (StatusCode::SERVICE_UNAVAILABLE, body),
                "{uri} json={json}"
            );
            let content_type = if json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            assert_eq!(headers["content-type"], content_type, "{uri}");
        }
    }
    let (status, _, _) = get(&f.health, "/readyz/unknown", false).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&f.health, "/livez", false).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readiness_answers_draining_when_the_drain_begins_during_its_checks() {
    for path in ["/readyz/db", "/readyz", "/readyz?verbose"] {
        // The check starts the drain while it runs: the probe came in before the
        // drain, its answer goes out after it.
        let slot: Arc<std::sync::Mutex<Option<Health>>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let health = {
            let (slot, runs) = (slot.clone(), runs.clone());
            Health::builder()
                .check(
                    "db",
                    checks::from_fn(move || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        if let Some(health) = slot.lock().unwrap().take() {
                            health.start_draining();
                        }
                        async { Ok(()) }
                    }),
                )
                .cache_for(Duration::from_nanos(1))
                .build()
                .unwrap()
        };
        *slot.lock().unwrap() = Some(health.clone());
        let want = if path.ends_with("verbose") {
            "readyz check failed: draining"
        } else {
            "draining"
        };
        for _ in 0..2 {
            let (status, body, _) = get(&health, path, false).await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::SERVICE_UNAVAILABLE, want),
                "{path}"
            );
        }
        // Once draining, probes no longer run the check.
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{path}");
    }
}

#[tokio::test]
async fn startupz_passes_once_and_then_stays_passed() {
    let migrated = Arc::new(AtomicBool::new(false));
    let health = Health::builder()
        .startup_check("migrations", flag_check(&migrated))
        .build()
        .unwrap();
    let (status, body, _) = get(&health, "/startupz", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "[-]migrations failed: reason withheld\nstartupz check failed"
    );
    let (_, body, _) = get(&health, "/startupz", true).await;
    assert_eq!(
        body,
        r#"{"checks":{"migrations":{"error":"reason withheld","status":"failed"}},"status":"failed"}"#
    );
    let (_, body, _) = get(&health, "/startupz?verbose", true).await;
    assert!(body.contains("down: postgres://app:***@db/orders"), "{body}");
    migrated.store(true, Ordering::SeqCst);
    assert_eq!(get(&health, "/startupz", false).await.0, StatusCode::OK);
    migrated.store(false, Ordering::SeqCst);
    assert_eq!(get(&health, "/startupz", false).await.0, StatusCode::OK);
}

/// A check that takes `took`, counting its runs and the most it ever had under way at once.
#[derive(Clone, Default)]
struct Counted {
    runs: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
}

impl Counted {
    fn check(&self, took: Duration) -> impl ReadinessCheck + use<> {
        let c = self.clone();
        checks::from_fn(move || {
            let c = c.clone();
            async move {
                c.runs.fetch_add(1, Ordering::SeqCst);
                let now = c.running.fetch_add(1, Ordering::SeqCst) + 1;
                c.most_at_once.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(took).await;
                c.running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
    }
}

// Paused time: it moves only when every task waits, so the probe's 50 ms deadline always
// passes while the 300 ms check is under way.
#[tokio::test(start_paused = true)]
async fn a_probe_that_gives_up_leaves_its_run_to_the_probes_behind_it() {
    let counted = Counted::default();
    let health = Health::builder()
        .check("slow", counted.check(Duration::from_millis(300)))
        .timeout(Duration::from_secs(2))
        .cache_for(Duration::from_secs(600))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    // A kubelet with a short `timeoutSeconds`: the probe is dropped while its run goes on.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), get(&health, "/readyz", false)).await;
    assert!(gave_up.is_err());
    let (status, body, _) = get(&health, "/readyz", false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(
        counted.runs.load(Ordering::SeqCst),
        1,
        "the second probe reused the first run"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn startup_probes_that_give_up_do_not_throw_the_run_away() {
    let counted = Counted::default();
    let health = Health::builder()
        .startup_check("migrations", counted.check(Duration::from_millis(300)))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // Two probes that each give up after 100 ms, 150 ms apart, as a kubelet with
    // `timeoutSeconds` shorter than the check would send them.
    for _ in 0..2 {
        let gave_up =
            tokio::time::timeout(Duration::from_millis(100), get(&health, "/startupz", false)).await;
        assert!(gave_up.is_err());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first run (started at 0, done at 300 ms) passed: the probe at 300 ms says so
    // without running the check again.
    let (status, body, _) = get(&health, "/startupz", false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(counted.runs.load(Ordering::SeqCst), 1);
    assert_eq!(counted.most_at_once.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_startup_probe_that_waited_for_a_failing_run_answers_with_it() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let health = Health::builder()
        .startup_check(
            "migrations",
            checks::from_fn(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Err::<(), _>(CheckError::msg("not yet"))
                }
            }),
        )
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let (first, second) = tokio::join!(get(&health, "/startupz?verbose", false), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        get(&health, "/startupz?verbose", false).await
    });
    for (status, body, _) in [first, second] {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with("[-]migrations failed: not yet"), "{body}");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the waiting probe did not start a run"
    );
    // A probe after the run has finished starts a new one.
    get(&health, "/startupz", false).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn paths_are_configurable() {
    let health = Health::builder()
        .liveness_paths(["/live"])
        .readiness_path("/ready")
        .startup_path("/started")
        .build()
        .unwrap();
    assert_eq!(get(&health, "/live", false).await.0, StatusCode::OK);
    assert_eq!(get(&health, "/ready", false).await.0, StatusCode::OK);
    assert_eq!(get(&health, "/started", false).await.0, StatusCode::OK);
    assert_eq!(get(&health, "/healthz", false).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_hanging_check_times_out_and_a_panicking_one_fails_alone() {
    let health = Health::builder()
        .check(
            "hangs",
            checks::from_fn(std::future::pending::<Result<(), CheckError>>),
        )
        .check(
            "panics",
            checks::from_fn(|| async { panic!("boom") as Result<(), CheckError> }).non_critical(),
        )
        .check("fine", checks::from_fn(|| async { Ok(()) }))
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let (status, body, _) = get(&health, "/readyz?verbose", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "[-]hangs failed: timed out after 50ms\n[-]panics failed: check panicked\n[+]fine ok\nreadyz check failed"
    );
}

#[tokio::test]
async fn results_are_cached_for_the_ttl() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let health = Health::builder()
        .check(
            "counted",
            checks::from_fn(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            }),
        )
        .cache_for(Duration::from_secs(600))
        .build()
        .unwrap();
    for _ in 0..5 {
        assert!(health.is_ready().await);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn background_refresh_runs_without_probes() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let health = Health::builder()
        .check(
            "counted",
            checks::from_fn(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            }),
        )
        .refresh_every(Duration::from_millis(10))
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while runs.load(Ordering::SeqCst) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no background runs");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(health.is_ready().await);
}

#[test]
fn builder_rejects_nonsense() {
    let ok = || checks::from_fn(|| async { Ok(()) });
    let err = |b: crate::HealthBuilder| b.build().unwrap_err();
    assert_eq!(
        err(Health::builder().timeout(Duration::ZERO)),
        HealthConfigError::ZeroDuration("timeout")
    );
    assert_eq!(
        err(Health::builder().cache_for(Duration::ZERO)),
        HealthConfigError::ZeroDuration("cache_for")
    );
    assert_eq!(
        err(Health::builder().check("", ok())),
        HealthConfigError::EmptyName
    );
    assert_eq!(
        err(Health::builder().check("db", ok()).startup_check("db", ok())),
        HealthConfigError::DuplicateName("db".into())
    );
    assert_eq!(
        err(Health::builder().check("a b", ok())),
        HealthConfigError::InvalidName("a b".into())
    );
    assert_eq!(
        err(Health::builder().readiness_path("readyz")),
        HealthConfigError::InvalidPath("readyz".into())
    );
    assert_eq!(
        err(Health::builder().check("x", ok().with_timeout(Duration::ZERO))),
        HealthConfigError::ZeroDuration("check timeout")
    );
    // outside a runtime, a background refresh cannot start
    assert_eq!(
        err(Health::builder().refresh_every(Duration::from_secs(1))),
        HealthConfigError::NoRuntime
    );
    assert!(
        err(Health::builder().timeout(Duration::ZERO))
            .to_string()
            .contains("timeout must be greater than zero")
    );
    // Absurdly long: refused, not an overflow when the refresher's clock adds it.
    let too_long = crate::MAX_REFRESH + Duration::from_secs(1);
    for (builder, what) in [
        (Health::builder().cache_for(Duration::MAX), "cache_for"),
        (Health::builder().refresh_every(Duration::MAX), "refresh_every"),
        (Health::builder().refresh_every(too_long), "refresh_every"),
        (Health::builder().timeout(Duration::MAX), "timeout"),
        (
            Health::builder().check("x", ok().with_timeout(too_long)),
            "check timeout",
        ),
    ] {
        let e = err(builder);
        assert_eq!(e, HealthConfigError::TooLong(what, crate::MAX_REFRESH));
        assert!(e.to_string().contains("at most 86400s"), "{e}");
    }
    assert!(Health::builder().cache_for(crate::MAX_REFRESH).build().is_ok());
}

/// Paths axum would refuse when the router is built (a panic there), or route elsewhere.
#[test]
fn builder_rejects_paths_the_router_cannot_serve() {
    let err = |b: crate::HealthBuilder| b.build().unwrap_err();
    for path in ["/:ready", "/health/:name", "/a{b}"] {
        assert_eq!(
            err(Health::builder().readiness_path(path)),
            HealthConfigError::InvalidPath(path.into())
        );
    }
    for (builder, path) in [
        (
            Health::builder().liveness_paths(["/healthz", "/healthz"]),
            "/healthz",
        ),
        (Health::builder().readiness_path("/healthz"), "/healthz"),
        (Health::builder().startup_path("/readyz"), "/readyz"),
        // Would answer in place of a check named `db` at `/readyz/{name}`.
        (Health::builder().startup_path("/readyz/db"), "/readyz/db"),
        (
            Health::builder()
                .readiness_path("/health/")
                .liveness_paths(["/health/live"]),
            "/health/live",
        ),
    ] {
        let e = err(builder);
        assert_eq!(e, HealthConfigError::PathClash(path.into()));
        assert!(e.to_string().contains("used twice"), "{e}");
    }
    // What is accepted builds a router.
    let health = Health::builder()
        .liveness_paths(["/live", "/health/live"])
        .readiness_path("/health/ready")
        .startup_path("/health/started")
        .build()
        .unwrap();
    let _router: axum::Router = health.router();
}

#[test]
fn readiness_does_not_freeze_when_the_background_refresher_is_gone() {
    let db = Arc::new(AtomicBool::new(true));
    // Built in a set-up runtime that is then dropped, and its refresher with it.
    let setup = tokio::runtime::Runtime::new().unwrap();
    let health = setup.block_on(async {
        Health::builder()
            .check("db", flag_check(&db))
            .refresh_every(Duration::from_millis(20))
            .timeout(Duration::from_millis(50))
            .build()
            .unwrap()
    });
    drop(setup);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(get(&health, "/readyz", false).await.0, StatusCode::OK);
        db.store(false, Ordering::SeqCst);
        // Results older than 2 × 20 ms + 50 ms are stale: a probe runs the checks itself.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if get(&health, "/readyz", false).await.0 == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "readiness froze at 200");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

#[test]
fn check_metrics_are_recorded_per_check() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let f = fixture();
            f.cache.store(false, Ordering::SeqCst);
            get(&f.health, "/readyz", false).await;
        });
    });
    let text = handle.render();
    assert!(
        text.contains(r#"telltale_health_check_status{check="db"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"telltale_health_check_status{check="cache"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"telltale_health_check_duration_seconds_count{check="db"} 1"#),
        "{text}"
    );
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn grpc_health_follows_readiness_and_drain() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_server::Health as _;
    use tonic_health::server::HealthService;

    let (reporter, _server) = tonic_health::server::health_reporter();
    let service = HealthService::from_health_reporter(reporter.clone());
    let db = Arc::new(AtomicBool::new(true));
    let health = Health::builder()
        .check("db", flag_check(&db))
        .cache_for(Duration::from_millis(10))
        .grpc_reporter(reporter, ["orders.v1.Orders"])
        .build()
        .unwrap();

    let wait_for = |want: ServingStatus| {
        let service = &service;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            for name in ["", "orders.v1.Orders"] {
                loop {
                    let got = service
                        .check(tonic::Request::new(HealthCheckRequest { service: name.into() }))
                        .await
                        .map(|r| r.into_inner().status);
                    if got.is_ok_and(|s| s == want as i32) {
                        break;
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{name:?} never became {want:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    };
    wait_for(ServingStatus::Serving).await;
    db.store(false, Ordering::SeqCst);
    wait_for(ServingStatus::NotServing).await;
    db.store(true, Ordering::SeqCst);
    wait_for(ServingStatus::Serving).await;
    health.start_draining();
    wait_for(ServingStatus::NotServing).await;
}

// === gRPC health and the start of the drain ===

#[cfg(feature = "tonic")]
mod grpc {
    use std::time::Duration;

    use futures_util::{FutureExt as _, StreamExt as _};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_server::Health as _;
    use tonic_health::server::HealthService;

    use crate::registry::Verdict;
    use crate::{Health, checks};

    const SERVICES: [&str; 2] = ["", "orders.v1.Orders"];

    /// Passing checks, refreshed once at start-up (and then not for an hour).
    fn passing() -> (Health, HealthService) {
        let (reporter, _server) = tonic_health::server::health_reporter();
        let service = HealthService::from_health_reporter(reporter.clone());
        let health = Health::builder()
            .check("db", checks::from_fn(|| async { Ok(()) }))
            .refresh_every(Duration::from_secs(3600))
            .grpc_reporter(reporter, ["orders.v1.Orders"])
            .build()
            .unwrap();
        (health, service)
    }

    /// The status gRPC `Check` answers now, without yielding to other tasks.
    async fn check(service: &HealthService, name: &str) -> Option<ServingStatus> {
        let request = tonic::Request::new(HealthCheckRequest { service: name.into() });
        let status = service.check(request).await.ok()?.into_inner().status;
        ServingStatus::try_from(status).ok()
    }

    /// Waits (bounded) for the start-up run to have set every service to serving.
    async fn serving_after_first_run(service: &HealthService) {
        tokio::time::timeout(Duration::from_secs(10), async {
            for name in SERVICES {
                while check(service, name).await != Some(ServingStatus::Serving) {
                    tokio::task::yield_now().await;
                }
            }
        })
        .await
        .expect("the first readiness run sets every service serving");
    }

    fn assert_not_serving_now(statuses: [Option<ServingStatus>; 2], when: &str) {
        for (name, status) in SERVICES.iter().zip(statuses) {
            assert_eq!(status, Some(ServingStatus::NotServing), "{name:?} {when}");
        }
    }

    // Tests run on the current-thread runtime: no other task runs between two lines
    // without an `.await` that yields, so "at once" means at once.

    #[tokio::test]
    async fn grpc_check_answers_not_serving_as_soon_as_start_draining_returns() {
        let (health, service) = passing();
        serving_after_first_run(&service).await;
        assert!(health.start_draining());
        let statuses = [
            check(&service, SERVICES[0]).await,
            check(&service, SERVICES[1]).await,
        ];
        assert_not_serving_now(statuses, "right after start_draining returned");
    }

    #[tokio::test]
    async fn drain_waits_for_an_update_under_way_then_grpc_answers_not_serving() {
        let (health, service) = passing();
        serving_after_first_run(&service).await;
        // A readiness run is setting the gRPC status at the very moment the drain
        // begins: `start_draining` cannot set it before returning, `drain` waits.
        let run_under_way = health.inner.grpc.as_ref().unwrap().hold_for_test().await;
        let drain = health.drain();
        assert!(health.is_draining(), "HTTP readiness turns at once");
        let mut drain = std::pin::pin!(drain);
        assert!(futures_util::poll!(drain.as_mut()).is_pending());
        drop(run_under_way);
        assert!(drain.await);
        let statuses = [
            check(&service, SERVICES[0]).await,
            check(&service, SERVICES[1]).await,
        ];
        assert_not_serving_now(statuses, "once drain() completed");
    }

    #[tokio::test]
    async fn a_readiness_run_that_finished_before_the_drain_cannot_set_grpc_back_to_serving() {
        let (health, service) = passing();
        serving_after_first_run(&service).await;
        let mut watches = Vec::new();
        for name in SERVICES {
            let request = tonic::Request::new(HealthCheckRequest { service: name.into() });
            let mut watch = service.watch(request).await.unwrap().into_inner();
            let first = watch.next().await.unwrap().unwrap().status;
            assert_eq!(first, ServingStatus::Serving as i32, "{name:?}");
            watches.push(watch);
        }

        assert!(health.drain().await);
        // The interleaving: a run computed its verdict (`Ok`: not draining yet) just
        // before the drain began, and sets the gRPC status just after it did.
        health.inner.publish_grpc(Verdict::Ok).await;

        let statuses = [
            check(&service, SERVICES[0]).await,
            check(&service, SERVICES[1]).await,
        ];
        assert_not_serving_now(statuses, "after a stale run's update");
        for (name, watch) in SERVICES.iter().zip(&mut watches) {
            // `Watch` sends the latest status once per change: NOT_SERVING, and
            // nothing after it.
            let sent = watch.next().now_or_never().flatten().map(|r| r.unwrap().status);
            assert_eq!(sent, Some(ServingStatus::NotServing as i32), "{name:?} watch");
            assert!(
                watch.next().now_or_never().is_none(),
                "{name:?} watch: nothing after"
            );
        }
    }
}
