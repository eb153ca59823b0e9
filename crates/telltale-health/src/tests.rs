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
    assert_eq!(db["error"], "down: postgres://app:***@db/orders");
    // the time of the last success survives the failure
    assert!(db["last_success"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["checks"]["cache"]["status"], "ok");
    assert_eq!(v["checks"]["cache"]["critical"], false);
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
    migrated.store(true, Ordering::SeqCst);
    assert_eq!(get(&health, "/startupz", false).await.0, StatusCode::OK);
    migrated.store(false, Ordering::SeqCst);
    assert_eq!(get(&health, "/startupz", false).await.0, StatusCode::OK);
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
