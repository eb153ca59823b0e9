//! The `worker` binary against a real Postgres: it fulfils the jobs orders-api enqueues
//! (continuing their trace and request id in its logs), retries a failing job with
//! back-off until it is marked failed, takes back a job whose worker died, shows both in its metrics, reports readiness from
//! the database, logs a lost database once (not per attempt), and stops on SIGTERM.

use std::process::Command;
use std::time::{Duration, SystemTime};

use orders_api::store::{Order, Store};
use orders_api::worker::QUEUE;
use serde_json::Value;
use telltale::job::JobContext;
use telltale_test_support::PostgresServer;
use telltale_test_support::service::{JsonLogProcess, wait_for};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    match agent.get(url).call() {
        Ok(mut res) => (
            res.status().as_u16(),
            res.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

fn start_worker(database_url: &str) -> (JsonLogProcess, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_worker"));
    cmd.env("DATABASE_URL", database_url)
        .env("PORT", "0")
        .env("RUST_LOG", "info")
        .env("TELLTALE_LOG_FORMAT", "json");
    let (worker, addr) = JsonLogProcess::start(cmd, "worker admin listening");
    (worker, format!("http://{addr}"))
}

fn order(id: &str) -> Order {
    Order {
        id: id.to_owned(),
        sku: "sku-apple".to_owned(),
        quantity: 1,
        status: "placed".to_owned(),
        created_at_ms: 1,
    }
}

fn series(metrics: &str, name: &str, with: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l.contains(with))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_worker_process_fulfils_jobs_retries_failures_and_reports_its_health() {
    let mut pg = PostgresServer::start().expect("postgres");
    let url = pg.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(Store::connect(Some(&url))).unwrap();
    rt.block_on(store.migrate()).unwrap();

    // What orders-api stores for a placed order: the order and its job, with the
    // request's context (here written as the request would have had it).
    let mut cx = JobContext::decode(&format!(
        "traceparent: 00-{TRACE_ID}-00f067aa0ba902b7-01\nx-request-id: worker-req-1\n"
    ));
    cx.set_enqueued_at(SystemTime::now());
    let good = "0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e10";
    rt.block_on(store.insert_with_job(&order(good), QUEUE, &cx.encode()))
        .unwrap();
    // A job whose order is gone: every run fails.
    let gone = "0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e11";
    rt.block_on(store.insert_with_job(&order(gone), QUEUE, &cx.encode()))
        .unwrap();
    let Store::Postgres(pool) = &store else {
        unreachable!()
    };
    rt.block_on(
        sqlx::query("DELETE FROM orders WHERE id = $1")
            .bind(gone)
            .execute(pool),
    )
    .unwrap();

    // A job a dead worker took long ago (running, started at the epoch): past its lease,
    // it is taken again.
    let orphan = "0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e12";
    rt.block_on(store.insert_with_job(&order(orphan), QUEUE, &cx.encode()))
        .unwrap();
    rt.block_on(
        sqlx::query("UPDATE jobs SET state = 'running', attempts = 1, started_at_ms = 1 WHERE order_id = $1")
            .bind(orphan)
            .execute(pool),
    )
    .unwrap();

    let (mut worker, base) = start_worker(&url);

    wait_for(Duration::from_secs(30), "the order is fulfilled", || {
        let o = rt.block_on(store.get(good)).unwrap()?;
        (o.status == "fulfilled").then_some(())
    });
    wait_for(Duration::from_secs(30), "the orphaned job is run again", || {
        let o = rt.block_on(store.get(orphan)).unwrap()?;
        (o.status == "fulfilled").then_some(())
    });
    let done = wait_for(Duration::from_secs(10), "the job's completion line", || {
        worker
            .json_lines()
            .into_iter()
            .find(|v| v["message"] == "job completed")
    });
    assert_eq!(done["request_id"], "worker-req-1", "{done}");
    assert_eq!(done["trace_id"], TRACE_ID, "{done}");
    assert_eq!(done["service"], "orders-worker", "{done}");
    let fulfilled = worker
        .json_lines()
        .into_iter()
        .find(|v| v["message"] == "order fulfilled")
        .expect("the job's own line");
    assert_eq!(fulfilled["request_id"], "worker-req-1");
    assert_eq!(fulfilled["span_id"], done["span_id"]);

    // The failing job: three runs (1 s, then 2 s apart), then marked failed.
    let state = || -> (String, i64) {
        use sqlx::Row;
        let row = rt
            .block_on(
                sqlx::query("SELECT state, attempts FROM jobs WHERE order_id = $1")
                    .bind(gone)
                    .fetch_one(pool),
            )
            .unwrap();
        (row.get("state"), row.get("attempts"))
    };
    wait_for(
        Duration::from_secs(30),
        "the failing job is marked failed",
        || (state().0 == "failed").then_some(()),
    );
    assert_eq!(state(), ("failed".to_owned(), 3));
    let failures: Vec<Value> = worker
        .json_lines()
        .into_iter()
        .filter(|v| v["message"] == "job failed")
        .collect();
    assert_eq!(failures.len(), 3, "{failures:#?}");
    for f in &failures {
        assert_eq!(f["level"], "ERROR");
        assert_eq!(f["error_type"], "unknown_order");
        assert_eq!(f["request_id"], "worker-req-1");
    }

    // The depth gauge is refreshed once a second: wait until it shows the queue empty.
    let metrics = wait_for(Duration::from_secs(10), "queue depth 0 on /metrics", || {
        let (status, metrics) = get(&format!("{base}/metrics"));
        assert_eq!(status, 200);
        (series(&metrics, "telltale_queue_depth{", r#"queue="fulfil_order""#) == Some(0.0)).then_some(metrics)
    });
    let ok = r#"messaging_destination_name="fulfil_order"}"#;
    assert_eq!(
        series(&metrics, "messaging_process_duration_seconds_count{", ok),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            "messaging_process_duration_seconds_count{",
            r#"error_type="unknown_order""#
        ),
        Some(3.0),
        "{metrics}"
    );
    assert!(metrics.contains(r#"messaging_system="postgresql""#), "{metrics}");
    assert_eq!(
        series(&metrics, "telltale_job_queue_wait_seconds_count{", "fulfil_order"),
        Some(5.0),
        "{metrics}"
    );
    // examples/worker/slo.yaml's rules and dashboard read only series this /metrics has.
    let spec = telltale_slo::ServiceSpec::from_yaml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/slo.yaml"))
        .expect("slo.yaml is valid");
    assert_eq!(spec.service, "orders-worker");
    let missing = telltale_slo::missing_from_scrape(&spec, &metrics);
    assert!(
        missing.is_empty(),
        "referenced by rules or dashboard but absent from /metrics: {missing:?}\n{metrics}"
    );
    assert_eq!(get(&format!("{base}/readyz")).0, 200);

    // The database goes away: not ready, one warning however long it lasts; back: ready.
    pg.stop().expect("stop postgres");
    wait_for(
        Duration::from_secs(15),
        "/readyz 503 without the database",
        || (get(&format!("{base}/readyz")).0 == 503).then_some(()),
    );
    wait_for(Duration::from_secs(15), "the lost-queue warning", || {
        (worker.count("worker cannot reach the job queue; retrying") == 1).then_some(())
    });
    assert_eq!(
        get(&format!("{base}/healthz")).0,
        200,
        "liveness never checks the database"
    );
    pg.start_again().expect("start postgres again");
    wait_for(
        Duration::from_secs(30),
        "/readyz 200 with the database back",
        || (get(&format!("{base}/readyz")).0 == 200).then_some(()),
    );
    wait_for(
        Duration::from_secs(30),
        "the worker reaches the queue again",
        || (worker.count("worker reached the job queue again") == 1).then_some(()),
    );
    assert_eq!(worker.count("worker cannot reach the job queue; retrying"), 1);

    // SIGTERM: drains, stops the worker loop, exits 0.
    let status = worker
        .terminate(Duration::from_secs(30))
        .expect("the worker exits within 30 s of SIGTERM");
    assert!(status.success(), "{status}");
    wait_for(Duration::from_secs(5), "the stop lines are read", || {
        (worker.count("worker stopped") >= 1).then_some(())
    });
}
