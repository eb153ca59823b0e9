//! The loadgen binary against the real Orders API (served in this test process over real
//! TCP, its logs captured): schedule, reports, failures that can be found in the API's
//! access log by request id and trace id, SIGTERM, bad configuration, an unreachable
//! target.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use telltale::log::CaptureWriter;
use telltale::{Sampling, Telemetry};
use telltale_test_support::service::{JsonLogProcess, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn loadgen(target: &str, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.env_clear()
        .env("TELLTALE_LOG_FORMAT", "json")
        .env("TARGET_URL", target);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn finished(lg: &JsonLogProcess) -> Option<Value> {
    lg.json_lines()
        .into_iter()
        .find(|l| l["message"] == "load finished")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_drives_the_orders_api_and_its_failures_are_found_by_request_and_trace_id() {
    // The Orders API, in process, 20% of /orders requests failing on purpose.
    let api_logs = CaptureWriter::new();
    let telemetry = Telemetry::builder("orders-api")
        .environment("test")
        .log_writer(api_logs.clone())
        .sampling(Sampling::ratio(0.05).keep_errors())
        .prometheus()
        .init()
        .expect("telemetry");
    let config = orders_api::Config::from_lookup(|k| match k {
        "FAULT_ERROR_RATE" => Some("0.2".into()),
        "WORKER" => Some("off".into()),
        _ => None,
    })
    .expect("config");
    let service = orders_api::build(&config, &telemetry).await.expect("orders-api");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, service.router.clone()).into_future());

    // 100 requests a second for 2 seconds, reports every half second.
    let cmd = loadgen(
        &target,
        &[
            ("RATE", "100"),
            ("DURATION", "2"),
            ("REPORT_EVERY", "0.5"),
            ("MIX", "get:40,list:20,create:40"),
        ],
    );
    let (mut lg, addr) = tokio::task::spawn_blocking(move || JsonLogProcess::start(cmd, "loadgen started"))
        .await
        .unwrap();
    assert_eq!(addr, format!("{target}/"));
    let report = tokio::task::spawn_blocking(move || {
        let done = wait_for(LIMIT, "load finished", || finished(&lg));
        let status = lg.terminate(LIMIT).expect("loadgen exits");
        (done, status, lg.json_lines())
    });
    let (done, status, lines) = report.await.unwrap();
    assert!(status.success(), "{status:?}");

    // The schedule: 200 due in 2 s (open loop), every one sent and answered.
    let n = |k: &str| done[k].as_u64().unwrap_or_else(|| panic!("{k} in {done}"));
    assert!((195..=201).contains(&(n("sent") + n("skipped"))), "{done}");
    assert_eq!(n("completed"), n("sent"), "{done}");
    assert_eq!(n("transport_errors"), 0, "{done}");
    assert!(n("ok") > 0, "{done}");
    // 20% injected faults on ~200 requests: 40 expected, far outside 10..90 only by a bug.
    assert!((10..=90).contains(&n("server_errors")), "{done}");
    assert!(done["p50_ms"].as_f64().unwrap() > 0.0, "{done}");
    assert!(
        done["p99_ms"].as_f64().unwrap() >= done["p50_ms"].as_f64().unwrap(),
        "{done}"
    );
    let reports = lines.iter().filter(|l| l["message"] == "load report").count();
    assert!(reports >= 3, "{reports} interval reports");

    // Every failure the load generator saw is in the API's access log under the same
    // request id, as a 500 with a trace id.
    let failed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request failed")
        .collect();
    assert_eq!(failed.len() as u64, n("server_errors"));
    let access: Vec<Value> = api_logs
        .json_lines()
        .unwrap()
        .into_iter()
        .filter(|l| l["target"] == "telltale::access")
        .collect();
    for f in &failed {
        assert_eq!(f["level"], "WARN");
        assert_eq!(f["status"], 500);
        let id = f["request_id"].as_str().expect("failure has a request id");
        let line = access
            .iter()
            .find(|a| a["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id}"));
        assert_eq!(line["status"], 500, "{line}");
        assert!(line["trace_id"].as_str().is_some_and(|t| t.len() == 32), "{line}");
        // The load generator's own line names the same trace, and the call's span (the
        // parent of the API's server span).
        assert_eq!(f["trace_id"], line["trace_id"], "{f}\n{line}");
        assert!(f["span_id"].as_str().is_some_and(|s| s.len() == 16), "{f}");
    }
    // Every request reached the API: one access line (with its own request id) each.
    let ids: std::collections::HashSet<&str> =
        access.iter().filter_map(|a| a["request_id"].as_str()).collect();
    assert!(
        ids.len() as u64 >= n("completed"),
        "{} ids for {} requests",
        ids.len(),
        n("completed")
    );

    // Until SIGTERM: reports, then the whole run's figures, exit 0.
    let cmd = loadgen(&target, &[("RATE", "50"), ("REPORT_EVERY", "0.2")]);
    tokio::task::spawn_blocking(move || {
        let (mut lg, _) = JsonLogProcess::start(cmd, "loadgen started");
        wait_for(LIMIT, "a load report", || {
            lg.json_lines()
                .into_iter()
                .find(|l| l["message"] == "load report" && l["sent"].as_u64() > Some(0))
        });
        let status = lg.terminate(LIMIT).expect("loadgen stops on SIGTERM");
        assert!(status.success(), "{status:?}");
        let done = finished(&lg).expect("a final report after SIGTERM");
        assert!(done["completed"].as_u64() > Some(0), "{done}");
    })
    .await
    .unwrap();

    server.abort();
    drop(service);
    drop(telemetry);
}

#[test]
fn an_unreachable_target_is_reported_as_transport_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cmd = loadgen(
        &format!("http://127.0.0.1:{port}"),
        &[("RATE", "20"), ("DURATION", "1"), ("TIMEOUT", "2")],
    );
    let (mut lg, _) = JsonLogProcess::start(cmd, "loadgen started");
    let done = wait_for(LIMIT, "load finished", || finished(&lg));
    assert!(lg.terminate(LIMIT).expect("exits").success());
    let completed = done["completed"].as_u64().unwrap();
    assert!(completed > 0, "{done}");
    assert_eq!(done["transport_errors"].as_u64(), Some(completed), "{done}");
    assert_eq!(done["error_ratio"].as_f64(), Some(1.0), "{done}");
    let failure = lg
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "request failed")
        .expect("failures are logged");
    let error = failure["error"].as_str().unwrap();
    assert!(error.contains("onnect") || error.contains("refused"), "{error}");
    assert!(failure["request_id"].as_str().is_some(), "{failure}");
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    for (var, value) in [("RATE", "-5"), ("MIX", "browse:1"), ("TARGET_URL", "localhost")] {
        let out = loadgen("http://127.0.0.1:1", &[(var, value)]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(var) && stderr.contains(value),
            "{var}={value}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "no load was started");
    }
}
