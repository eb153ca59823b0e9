//! Readiness against real Postgres and Redis servers (started per test by
//! telltale-test-support) and real TCP listeners on 127.0.0.1.

#![cfg(all(feature = "sqlx", feature = "redis", feature = "http-check"))]

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::postgres::PgPoolOptions;
use telltale_health::{CheckError, Health, ReadinessCheck, checks};
use telltale_test_support::{PostgresServer, RedisServer, free_port};
use tokio::net::TcpListener;

// === harness ===

/// Everything logged by any test in this binary, and the metrics recorder.
struct Globals {
    logs: Arc<Mutex<Vec<u8>>>,
    metrics: PrometheusHandle,
}

#[derive(Clone)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn globals() -> &'static Globals {
    static GLOBALS: OnceLock<Globals> = OnceLock::new();
    GLOBALS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = LogSink(logs.clone());
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .init();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        metrics::set_global_recorder(recorder).expect("only this harness installs a recorder");
        Globals { logs, metrics }
    })
}

fn logs() -> String {
    String::from_utf8_lossy(&globals().logs.lock().unwrap()).into_owned()
}

/// An axum server on 127.0.0.1:0, aborted on drop.
struct App {
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl App {
    async fn serve(router: Router) -> Self {
        globals();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        App {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            task,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }
}

/// Polls `f` until it returns true; fails after `deadline`.
async fn poll_until<F, Fut>(what: &str, deadline: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A listener that accepts connections and never answers (holds the sockets).
async fn black_hole() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_up_is_ready() {
    let pg = blocking(PostgresServer::start).unwrap();
    let redis = blocking(RedisServer::start).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&pg.url())
        .unwrap();
    let sqlite = sqlx::sqlite::SqlitePool::connect("sqlite::memory:")
        .await
        .unwrap();
    let redis_client = redis::Client::open(redis.url()).unwrap();
    let redis_conn = redis_client.get_multiplexed_async_connection().await.unwrap();
    let upstream = App::serve(Router::new().route("/ping", axum::routing::get(|| async { "pong" }))).await;

    let health = Health::builder()
        .check("up-pg", checks::sqlx(pool))
        .check("up-sqlite", checks::sqlx(sqlite))
        .check("up-redis", checks::redis_client(redis_client))
        .check("up-redis-conn", checks::redis(redis_conn))
        .check("up-tcp", checks::tcp(pg.addr().to_string()))
        .check(
            "up-http",
            checks::http(&format!("{}/ping", upstream.base)).unwrap(),
        )
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let app = App::serve(health.router()).await;

    assert_eq!(app.get("/readyz").await, (200, "ok".to_string()));
    let (status, body) = app.get("/readyz?verbose").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "[+]up-pg ok\n[+]up-sqlite ok\n[+]up-redis ok\n[+]up-redis-conn ok\n[+]up-tcp ok\n[+]up-http ok\nreadyz check passed"
    );
    let (status, json) = app.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(json["status"], "ok");
    assert!(json["checks"]["up-pg"]["last_success"].is_string());
    let text = globals().metrics.render();
    assert!(
        text.contains(r#"telltale_health_check_status{check="up-pg"} 1"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_readiness_within_one_ttl_and_recovers() {
    let mut pg = blocking(PostgresServer::start).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(&pg.url())
        .unwrap();
    let ttl = Duration::from_millis(300);
    let timeout = Duration::from_secs(2);
    let health = Health::builder()
        .check("outage-pg", checks::sqlx(pool))
        .timeout(timeout)
        .cache_for(ttl)
        .build()
        .unwrap();
    let app = App::serve(health.router()).await;
    poll_until("readiness with postgres up", Duration::from_secs(30), || async {
        app.get("/readyz").await.0 == 200
    })
    .await;

    // Only this outage's events count (nothing before the first 200).
    let log_start = logs().len();
    blocking(|| pg.stop()).unwrap();
    let stopped = Instant::now();
    let end = stopped + ttl + timeout + Duration::from_secs(5);
    let body = loop {
        assert_eq!(
            app.get("/healthz").await.0,
            200,
            "liveness must not follow a dependency"
        );
        let (status, body) = app.get("/readyz").await;
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < end,
            "still {status} {body:?} after postgres stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // One TTL for the cached "ok" to expire, then one run bounded by the timeout.
    assert!(
        stopped.elapsed() < ttl + timeout + Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(body, "[-]outage-pg failed: reason withheld\nreadyz check failed");
    let (_, verbose) = app.get("/readyz?verbose").await;
    assert!(verbose.starts_with("[-]outage-pg failed: "), "{verbose}");
    let text = globals().metrics.render();
    assert!(
        text.contains(r#"telltale_health_check_status{check="outage-pg"} 0"#),
        "{text}"
    );

    blocking(|| pg.start_again()).unwrap();
    poll_until(
        "readiness after postgres came back",
        Duration::from_secs(30),
        || async {
            assert_eq!(app.get("/livez").await.0, 200);
            app.get("/readyz").await.0 == 200
        },
    )
    .await;
    // one log event per change, not one per probe
    let log = logs();
    let lines: Vec<&str> = log[log_start..]
        .lines()
        .filter(|l| l.contains("outage-pg"))
        .collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("health check failing"))
            .count(),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("health check recovered"))
            .count(),
        1,
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_never_answers_times_out_within_the_check_timeout() {
    let (addr, hole) = black_hole().await;
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(60))
        .connect_lazy(&format!("postgres://app:pw@{addr}/db"))
        .unwrap();
    let timeout = Duration::from_millis(300);
    let health = Health::builder()
        .check("hung-pg", checks::sqlx(pool.clone()))
        .check(
            "hung-pg-acquire",
            checks::sqlx(pool).acquire_timeout(Duration::from_millis(100)),
        )
        .check("hung-http", checks::http(&format!("http://{addr}/")).unwrap())
        .check(
            "hung-redis",
            checks::redis_client(redis::Client::open(format!("redis://{addr}/")).unwrap()),
        )
        .check("hung-tcp", checks::tcp(addr.to_string()))
        .timeout(timeout)
        .build()
        .unwrap();
    let app = App::serve(health.router()).await;

    let start = Instant::now();
    let (status, body) = app.get("/readyz?verbose").await;
    let took = start.elapsed();
    assert_eq!(status, 503);
    assert!(took < timeout + Duration::from_secs(2), "readyz took {took:?}");
    assert_eq!(
        body,
        "[-]hung-pg failed: timed out after 300ms\n\
         [-]hung-pg-acquire failed: no connection from the pool within 100ms (pool exhausted or database unreachable)\n\
         [-]hung-http failed: timed out after 300ms\n\
         [-]hung-redis failed: timed out after 300ms\n\
         [+]hung-tcp ok\n\
         readyz check failed"
    );
    hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_probes_share_one_check_run_per_ttl() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let health = Health::builder()
        .check(
            "counted",
            checks::from_fn(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                // A slow dependency, so that the probes overlap the run.
                async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok(())
                }
            }),
        )
        .cache_for(Duration::from_secs(600))
        .build()
        .unwrap();
    let app = App::serve(health.router()).await;
    for round in 1..=2 {
        let probes = (0..100).map(|_| app.get("/readyz"));
        let results = futures_util::future::join_all(probes).await;
        assert!(results.iter().all(|r| r.0 == 200), "round {round}");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_appear_in_responses_or_logs() {
    const SECRET: &str = "Leaky-S3cret-77";
    let pg = blocking(PostgresServer::start).unwrap();
    let bad_url = format!("postgres://postgres:{SECRET}@127.0.0.1:{}/postgres", pg.port());
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy(&bad_url)
        .unwrap();
    let echo_url = bad_url.clone();
    let closed_port = free_port();
    let health = Health::builder()
        // real server, wrong password
        .check("leak-pg", checks::sqlx(pool))
        // a driver that echoes its connection string
        .check(
            "leak-echo",
            checks::from_fn(move || {
                let url = echo_url.clone();
                async move { Err(CheckError::msg(format!("cannot connect to {url}: refused"))) }
            }),
        )
        .check(
            "leak-dsn",
            checks::from_fn(|| async {
                Err(CheckError::msg(format!(
                    "connect failed: host=127.0.0.1 user=app password={SECRET} dbname=orders"
                )))
            }),
        )
        .check(
            "leak-redis",
            checks::redis_client(
                redis::Client::open(format!("redis://:{SECRET}@127.0.0.1:{closed_port}/")).unwrap(),
            )
            .non_critical(),
        )
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let app = App::serve(health.router()).await;

    let mut bodies = Vec::new();
    for path in [
        "/readyz",
        "/readyz?verbose",
        "/readyz/leak-pg?verbose",
        "/readyz/leak-echo?verbose",
        "/readyz/leak-dsn?verbose",
        "/readyz/leak-redis?verbose",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 503, "{path}: {body}");
        bodies.push(body);
    }
    bodies.push(app.get_json("/readyz").await.1.to_string());
    for body in &bodies {
        assert!(!body.contains(SECRET), "password leaked: {body}");
    }
    let verbose = &bodies[1];
    assert!(verbose.contains("[-]leak-pg failed: "), "{verbose}");
    assert!(verbose.contains("password authentication failed"), "{verbose}");
    assert!(verbose.contains("postgres://postgres:***@127.0.0.1"), "{verbose}");
    assert!(verbose.contains("password=*** dbname=orders"), "{verbose}");

    let log = logs();
    for check in ["leak-pg", "leak-echo", "leak-dsn", "leak-redis"] {
        assert!(
            log.lines()
                .any(|l| l.contains("health check failing") && l.contains(check)),
            "no failure event for {check}:\n{log}"
        );
    }
    for line in log.lines() {
        assert!(!line.contains(SECRET), "password leaked into a log line: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_degrades_readiness_and_recovers() {
    let mut redis = blocking(RedisServer::start).unwrap();
    let health = Health::builder()
        .check(
            "cache",
            checks::redis_client(redis::Client::open(redis.url()).unwrap()).non_critical(),
        )
        .cache_for(Duration::from_millis(100))
        .build()
        .unwrap();
    let app = App::serve(health.router()).await;
    assert_eq!(app.get("/readyz").await, (200, "ok".to_string()));

    blocking(|| redis.stop()).unwrap();
    poll_until("cache failing", Duration::from_secs(10), || async {
        app.get("/readyz/cache").await.0 == 503
    })
    .await;
    // non-critical: still ready, but degraded
    assert_eq!(app.get("/readyz").await, (200, "degraded".to_string()));

    blocking(|| redis.start_again()).unwrap();
    poll_until("cache back", Duration::from_secs(10), || async {
        app.get("/readyz").await == (200, "ok".to_string())
    })
    .await;
}
