//! The generated files pass the real tools (`promtool`, `amtool`), and the alerts behave
//! as the SRE Workbook predicts on synthetic series (`promtool test rules`).
//!
//! The tools come from Debian's `prometheus` and `prometheus-alertmanager` packages
//! (`scripts/test` installs them). Missing tools fail the tests: they are the point.

use std::path::PathBuf;
use std::process::Command;

use telltale_slo::rules::{BURN_WINDOWS, burn_alert_name};
use telltale_slo::{ServiceSpec, generate};

fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH or in /usr/bin: install Debian's `prometheus` (promtool) \
                 and `prometheus-alertmanager` (amtool) packages, as scripts/test does"
            )
        })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn example() -> ServiceSpec {
    ServiceSpec::from_yaml_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/orders-api/slo.yaml"
    ))
    .unwrap()
}

fn generated_dir(spec: &ServiceSpec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    generate(spec).write_to(dir.path()).unwrap();
    dir
}

#[test]
fn generated_rules_pass_promtool_check_rules() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/orders-api/slo.yaml"
    ))
    .unwrap();
    let with_routes = base.replace(
        "    window: 30d\n    description: Orders",
        "    window: 30d\n    routes: [\"/orders/{id}\", \"/orders\"]\n    selectors: {http_request_method: GET}\n    description: Orders",
    );
    let legacy = base.replace("scheme: otel", "scheme: legacy");
    let legacy_counter = legacy.replace(
        "    objective: 99.9\n",
        "    objective: 99.9\n    metric: http_requests_total\n",
    );
    let integer_bucket = base.replace("threshold: 0.25", "threshold: 1");
    let job_latency = base
        .replace(
            "    queue: fulfil_order\n",
            "    queue: fulfil_order\n    selectors: {messaging_system: sqlite}\n",
        )
        .replace(
            "kind: availability\n    queue",
            "kind: latency\n    threshold: 2.5\n    queue",
        );
    assert!(job_latency.contains("kind: latency\n    threshold: 2.5\n    queue: fulfil_order"));
    // 12 rules per SLO (7 recording, 4 burn, 1 absent), one latency warning per latency
    // SLO, and the service and dependency warnings.
    for (yaml, count) in [
        (base.clone(), 40),
        (with_routes, 40),
        (legacy, 40),
        (legacy_counter, 40),
        (integer_bucket, 40),
        (job_latency, 41),
    ] {
        let spec = ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap();
        let dir = generated_dir(&spec);
        let rules = dir.path().join("prometheus/orders-api.rules.yaml");
        let out = run(Command::new(tool("promtool"))
            .arg("check")
            .arg("rules")
            .arg(&rules));
        assert!(out.contains(&format!("SUCCESS: {count} rules found")), "{out}");
    }
}

#[test]
fn a_worker_spec_generates_job_rules_and_no_request_series() {
    let spec = ServiceSpec::from_yaml_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/worker/slo.yaml"
    ))
    .unwrap();
    assert_eq!(spec.service, "orders-worker");
    assert!(!spec.serves_requests());
    let dir = generated_dir(&spec);
    let rules = dir.path().join("prometheus/orders-worker.rules.yaml");
    let out = run(Command::new(tool("promtool"))
        .arg("check")
        .arg("rules")
        .arg(&rules));
    // Two job SLOs of 12 rules each, the latency warning, no service 5xx warning and no
    // dependency warnings (none listed).
    assert!(out.contains("SUCCESS: 25 rules found"), "{out}");
    let text = std::fs::read_to_string(&rules).unwrap();
    assert!(!text.contains("http_"), "{text}");
    assert!(!text.contains("ErrorRatioHigh"), "{text}");
    assert!(
        text.contains(r#"messaging_destination_name="fulfil_order""#),
        "{text}"
    );
    let exprs = telltale_slo::dashboard::dashboard_exprs(&spec);
    assert!(!exprs.iter().any(|e| e.contains("http_")), "{exprs:#?}");
    assert!(exprs.iter().any(|e| e.contains("process_cpu_seconds_total")));
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("messaging_process_duration_seconds"))
    );
    assert!(
        !dir.path().join("runbooks/OrdersWorkerErrorRatioHigh.md").exists(),
        "no runbook for an alert that is not generated"
    );
}

#[test]
fn generated_alertmanager_config_passes_amtool_check_config() {
    let dir = generated_dir(&example());
    let out = run(Command::new(tool("amtool"))
        .arg("check-config")
        .arg(dir.path().join("alertmanager/alertmanager.yaml")));
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(out.contains("2 inhibit rules"), "{out}");
}

#[test]
fn generation_is_deterministic_and_thresholds_are_exact() {
    let spec = example();
    assert_eq!(generate(&spec), generate(&spec));
    let rules = &generate(&spec).files["prometheus/orders-api.rules.yaml"];
    for t in [
        "> 0.0144", "> 0.006", "> 0.003", "> 0.001", "> 0.144", "> 0.06", "> 0.03", "> 0.01",
    ] {
        assert!(rules.contains(t), "missing threshold {t}");
    }
    assert!(!rules.contains("00000000"), "float artefact in:\n{rules}");
    // Long windows come from raw counters over the long window, not averaged short ratios.
    assert!(rules.contains("[3d]))"));
    assert!(!rules.contains("avg_over_time"));
}

#[test]
fn alertmanager_routes_pages_and_tickets_to_their_receivers() {
    let dir = generated_dir(&example());
    let config = dir.path().join("alertmanager/alertmanager.yaml");
    for (severity, receiver) in [("page", "page"), ("ticket", "ticket"), ("warning", "ticket")] {
        let out = run(Command::new(tool("amtool"))
            .args(["config", "routes", "test"])
            .arg(format!("--config.file={}", config.display()))
            .arg("service=orders-api")
            .arg("slo=availability")
            .arg(format!("severity={severity}")));
        assert_eq!(
            out.lines().next().map(str::trim),
            Some(receiver),
            "severity {severity}: {out}"
        );
    }
}

#[test]
fn docs_show_the_promql_of_every_generated_rule() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/slo.md")).unwrap();
    assert!(
        docs.contains(&telltale_slo::rules::rules_markdown(&example())),
        "docs/slo.md is out of date: regenerate its last section from \
         `telltale-slo generate examples/orders-api/slo.yaml` (prometheus/orders-api.rules.md)"
    );
    assert!(
        docs.contains("cargo run -p telltale-slo -- generate examples/orders-api/slo.yaml --out target/slo")
    );
}

// === promtool test rules ===

const OK: &str = r#"http_server_request_duration_seconds_count{service="orders-api",http_route="/orders/{id}",http_request_method="GET",http_response_status_code="200"}"#;
const ERR: &str = r#"http_server_request_duration_seconds_count{service="orders-api",http_route="/orders/{id}",http_request_method="GET",http_response_status_code="503",error_type="503"}"#;

const JOB_OK: &str = r#"messaging_process_duration_seconds_count{service="orders-api",messaging_system="sqlite",messaging_operation_name="process",messaging_destination_name="fulfil_order"}"#;
const JOB_ERR: &str = r#"messaging_process_duration_seconds_count{service="orders-api",messaging_system="sqlite",messaging_operation_name="process",messaging_destination_name="fulfil_order",error_type="database"}"#;

/// A counter's cumulative values, one per minute, from per-minute increments.
fn counter(minutes: u32, per_minute: impl Fn(u32) -> u64) -> String {
    let mut v = 0u64;
    let mut out = vec!["0".to_owned()];
    for m in 1..=minutes {
        v += per_minute(m);
        out.push(v.to_string());
    }
    out.join(" ")
}

fn series(name: &str, values: String) -> String {
    format!(
        "      - series: {}\n        values: \"{values}\"\n",
        serde_json::to_string(name).unwrap()
    )
}

/// `count(ALERTS{...})` is 1 (`Some(1)`) or empty (`None`) at `minute`.
fn expect_alerts(selector: &str, minute: u32, firing: bool) -> String {
    let samples = if firing {
        "\n          - labels: '{}'\n            value: 1"
    } else {
        " []"
    };
    format!(
        "      - expr: 'count(ALERTS{{{selector},alertstate=\"firing\"}})'\n        eval_time: {minute}m\n        exp_samples:{samples}\n"
    )
}

fn test_case(name: &str, input: &[String], checks: &[String]) -> String {
    format!(
        "  # {name}\n  - interval: 1m\n    input_series:\n{}    promql_expr_test:\n{}",
        input.concat(),
        checks.concat()
    )
}

#[test]
fn burn_rate_alerts_fire_resolve_and_stay_quiet_as_the_workbook_predicts() {
    let spec = example();
    let availability = &spec.slos[0];
    let burn = burn_alert_name(&spec, availability);
    let budget = availability.error_budget().to_f64();
    let page = BURN_WINDOWS[0];
    assert_eq!(page.label(), "1h/5m");

    // Workbook: detection time = burn × budget / error ratio × long window.
    // 14.4 × 0.001 / 0.1 × 60 min = 8.64 min for a steady 10% error rate.
    let error_ratio = 0.1;
    let predicted_min = page.burn().to_f64() * budget / error_ratio * 60.0;
    assert!((predicted_min - 8.64).abs() < 1e-9, "{predicted_min}");
    let start = 120u32; // two clean hours first, so the 1h window is full of traffic
    let stop = 180u32;
    let end = 240u32;
    let page_1h = format!("alertname=\"{burn}\",window=\"1h/5m\"");
    let any_page = format!("alertname=\"{burn}\",severity=\"page\"");

    // 100 requests a minute; 10% are 503s between `start` and `stop`.
    let steady = test_case(
        "steady 10% errors page within the predicted time and resolve when they stop",
        &[
            series(
                OK,
                counter(end, |m| if m > start && m <= stop { 90 } else { 100 }),
            ),
            series(ERR, counter(end, |m| if m > start && m <= stop { 10 } else { 0 })),
        ],
        &[
            expect_alerts(&any_page, start, false),
            // Just before the predicted time: not yet.
            expect_alerts(&page_1h, start + predicted_min.floor() as u32, false),
            // One evaluation interval (and one scrape) after it: firing.
            expect_alerts(&page_1h, start + predicted_min.ceil() as u32 + 1, true),
            expect_alerts(&page_1h, stop, true),
            // 5m after the errors stop the short window is clean: the 1h/5m page resolves.
            expect_alerts(&page_1h, stop + 7, false),
            // 30m after, the 6h/30m page too.
            expect_alerts(&any_page, stop + 32, false),
        ],
    );

    // 0.05% errors (burn 0.5) for six hours: nothing fires.
    let low = test_case(
        "0.05% errors fire nothing",
        &[
            series(OK, counter(360, |_| 1999)),
            series(ERR, counter(360, |_| 1)),
        ],
        &[
            expect_alerts(&format!("alertname=\"{burn}\""), 120, false),
            expect_alerts(&format!("alertname=\"{burn}\""), 359, false),
            expect_alerts("alertname=\"OrdersApiAvailabilitySliMissing\"", 359, false),
            expect_alerts("alertname=\"OrdersApiErrorRatioHigh\"", 359, false),
        ],
    );

    // A 5-minute spike of 10% errors: the 5m window is far above 14.4x, but the 1h window
    // stays below (0.1 × 5/60 = 0.0083 < 0.0144): no page.
    let spike = test_case(
        "a 5-minute error spike alone does not page",
        &[
            series(OK, counter(200, |m| if m > 120 && m <= 125 { 90 } else { 100 })),
            series(ERR, counter(200, |m| if m > 120 && m <= 125 { 10 } else { 0 })),
        ],
        (121..=140)
            .step_by(2)
            .chain([160, 199])
            .map(|m| expect_alerts(&any_page, m, false))
            .collect::<Vec<_>>()
            .as_slice(),
    );

    // Latency: all requests take 0.1 s, then from minute 60 they take 0.5 s.
    let h = "http_server_request_duration_seconds";
    let bucket = |le: &str, slow: bool| {
        let name = format!(
            "{h}_bucket{{service=\"orders-api\",http_route=\"/orders/{{id}}\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"{le}\"}}"
        );
        series(
            &name,
            counter(120, move |m| if m > 60 && !slow { 0 } else { 100 }),
        )
    };
    let latency = test_case(
        "a latency breach fires the latency warning",
        &[
            bucket("0.1", false),
            bucket("0.25", false),
            bucket("0.5", true),
            bucket("1", true),
            bucket("+Inf", true),
            series(OK, counter(120, |_| 100)),
        ],
        &[
            expect_alerts("alertname=\"OrdersApiLatencyAboveThreshold\"", 55, false),
            // 5m rate window + `for: 10m` + evaluation slack.
            expect_alerts("alertname=\"OrdersApiLatencyAboveThreshold\"", 80, true),
            expect_alerts("alertname=\"OrdersApiAvailabilitySloBurn\"", 80, false),
        ],
    );

    // A service whose metrics vanished: the SLI-missing alerts fire (after `for: 10m`).
    let absent = test_case(
        "missing SLI metrics fire the absent alert",
        &[series(
            r#"http_server_request_duration_seconds_count{service="other-api",http_response_status_code="200"}"#,
            counter(30, |_| 100),
        )],
        &[
            expect_alerts("alertname=\"OrdersApiAvailabilitySliMissing\"", 5, false),
            expect_alerts("alertname=\"OrdersApiAvailabilitySliMissing\"", 15, true),
            expect_alerts("alertname=\"OrdersApiLatencySliMissing\"", 15, true),
        ],
    );

    // Each window pair fires on its own, labelled with its pair: 1% errors (burn 10) page
    // through 6h/30m only; 0.4% errors (burn 4) open a 1d/2h ticket and no page.
    let pair = |w: &str| format!("alertname=\"{burn}\",window=\"{w}\"");
    let burn_10 = test_case(
        "burn 10x pages through 6h/30m, not 1h/5m",
        &[
            series(OK, counter(120, |_| 990)),
            series(ERR, counter(120, |_| 10)),
        ],
        &[
            expect_alerts(&pair("6h/30m"), 60, true),
            expect_alerts(&pair("1h/5m"), 60, false),
            expect_alerts(&pair("1h/5m"), 119, false),
        ],
    );
    let burn_4 = test_case(
        "burn 4x opens a 1d/2h ticket and does not page",
        &[
            series(OK, counter(180, |_| 996)),
            series(ERR, counter(180, |_| 4)),
        ],
        &[
            expect_alerts(&pair("1d/2h"), 179, true),
            expect_alerts(&pair("3d/6h"), 179, true),
            expect_alerts(&any_page, 179, false),
        ],
    );

    // The job SLO (99% of fulfil_order runs succeed): 20% of runs failing is a burn of
    // 20, above the 1h/5m page's 14.4. Workbook: 14.4 × 0.01 / 0.2 × 60 min = 43.2 min.
    let fulfilment = spec
        .slos
        .iter()
        .find(|s| s.queue.is_some())
        .expect("the example has a job SLO");
    let job_burn = burn_alert_name(&spec, fulfilment);
    assert_eq!(job_burn, "OrdersApiFulfilmentSloBurn");
    let job_budget = fulfilment.error_budget().to_f64();
    let job_predicted = page.burn().to_f64() * job_budget / 0.2 * 60.0;
    assert!((job_predicted - 43.2).abs() < 1e-9, "{job_predicted}");
    let job_page_1h = format!("alertname=\"{job_burn}\",window=\"1h/5m\"");
    let job = test_case(
        "20% failed job runs page the job SLO, not the request SLO",
        &[
            series(OK, counter(end, |_| 100)),
            series(
                JOB_OK,
                counter(end, |m| if m > start && m <= stop { 40 } else { 50 }),
            ),
            series(
                JOB_ERR,
                counter(end, |m| if m > start && m <= stop { 10 } else { 0 }),
            ),
        ],
        &[
            expect_alerts(&format!("alertname=\"{job_burn}\""), start, false),
            expect_alerts(&job_page_1h, start + job_predicted.floor() as u32, false),
            expect_alerts(&job_page_1h, start + job_predicted.ceil() as u32 + 1, true),
            expect_alerts(&any_page, stop, false),
            expect_alerts("alertname=\"OrdersApiFulfilmentSliMissing\"", stop, false),
            expect_alerts(&job_page_1h, stop + 7, false),
        ],
    );
    // 0.5% of runs failing (burn 0.5): nothing fires.
    let job_low = test_case(
        "0.5% failed job runs fire nothing",
        &[
            series(OK, counter(360, |_| 100)),
            series(JOB_OK, counter(360, |_| 199)),
            series(JOB_ERR, counter(360, |_| 1)),
        ],
        &[
            expect_alerts(&format!("alertname=\"{job_burn}\""), 120, false),
            expect_alerts(&format!("alertname=\"{job_burn}\""), 359, false),
            expect_alerts("alertname=\"OrdersApiFulfilmentSliMissing\"", 359, false),
        ],
    );
    // No job series for the service (the worker is down or idle since its start): the
    // job SLI-missing alert fires after `for: 10m`.
    let job_absent = test_case(
        "missing job series fire the job SLI-missing alert",
        &[series(OK, counter(30, |_| 100))],
        &[
            expect_alerts("alertname=\"OrdersApiFulfilmentSliMissing\"", 5, false),
            expect_alerts("alertname=\"OrdersApiFulfilmentSliMissing\"", 15, true),
            expect_alerts("alertname=\"OrdersApiAvailabilitySliMissing\"", 15, false),
        ],
    );

    promtool_test_rules(
        &spec,
        &format!("{steady}{low}{spike}{latency}{absent}{burn_10}{burn_4}{job}{job_low}{job_absent}"),
    );
}

fn shorten(yaml: &str) -> String {
    yaml.lines()
        .map(|l| if l.len() > 200 { &l[..200] } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `promtool test rules` on `tests` against the rule file of `spec`.
fn promtool_test_rules(spec: &ServiceSpec, tests: &str) {
    let dir = generated_dir(spec);
    let test_yaml = format!(
        "rule_files:\n  - prometheus/{}.rules.yaml\nevaluation_interval: 1m\ntests:\n{tests}",
        spec.service
    );
    let test_file = dir.path().join("slo-test.yaml");
    std::fs::write(&test_file, &test_yaml).unwrap();
    let out = Command::new(tool("promtool"))
        .arg("test")
        .arg("rules")
        .arg(&test_file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("SUCCESS"),
        "promtool test rules failed:\n{text}\n--- test file ---\n{}",
        shorten(&test_yaml)
    );
}

/// `expr` has one label-less (`labels` = `{}`) or labelled sample `value` at `minute`.
fn expect_value(expr: &str, minute: u32, labels: &str, value: f64) -> String {
    format!(
        "      - expr: {}\n        eval_time: {minute}m\n        exp_samples:\n          - labels: {}\n            value: {value}\n",
        serde_json::to_string(expr).unwrap(),
        serde_json::to_string(labels).unwrap()
    )
}

fn recorded(window: &str, slo: &str) -> String {
    format!("slo:sli_error:ratio_rate{window}{{service=\"orders-api\",slo=\"{slo}\"}}")
}

#[test]
fn burn_thresholds_follow_the_slo_window() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/orders-api/slo.yaml"
    ))
    .unwrap()
    .replace("window: 30d", "window: 28d");
    let spec = ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap();
    let out = generate(&spec);
    let rules = &out.files["prometheus/orders-api.rules.yaml"];
    // budget × consumed share × 28d / long window: 0.001 × 0.02 × 672h / 1h = 0.01344, …
    for t in [
        "> 0.01344\n",
        "> 0.0056\n",
        "> 0.0028\n",
        "> 0.0009333\n",
        "> 0.1344\n",
    ] {
        assert!(rules.contains(t), "missing threshold {t} in:\n{rules}");
    }
    for stale in ["> 0.0144\n", "> 0.006\n", "> 0.003\n", "of a 30-day budget"] {
        assert!(
            !rules.contains(stale),
            "30-day value {stale} in a 28d spec:\n{rules}"
        );
    }
    assert!(
        rules.contains("error budget burning 13.44x too fast over 1h and 5m"),
        "{rules}"
    );
    assert!(
        rules.contains("At 13.44x, 2% of the 28d budget is gone"),
        "{rules}"
    );
    let book = &out.files["runbooks/OrdersApiAvailabilitySloBurn.md"];
    assert!(
        book.contains("| `1h/5m` | 13.44x | page | 0.01344 | 2% of the 28d budget |"),
        "{book}"
    );
    assert!(
        book.contains("| `3d/6h` | 0.9333x | ticket | 0.0009333 | 10% of the 28d budget |"),
        "{book}"
    );
    assert!(!book.contains("30 days"), "{book}");
    let dir = generated_dir(&spec);
    let check = run(Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(dir.path().join("prometheus/orders-api.rules.yaml")));
    assert!(check.contains("SUCCESS: 40 rules found"), "{check}");

    // 30 days (720h) keeps the workbook's factors.
    let rules = &generate(&example()).files["prometheus/orders-api.rules.yaml"];
    assert!(
        rules.contains("At 14.4x, 2% of the 30d budget is gone"),
        "{rules}"
    );
    let spec = ServiceSpec::from_yaml_str(&yaml.replace("window: 28d", "window: 720h"), "slo.yaml").unwrap();
    let rules = &generate(&spec).files["prometheus/orders-api.rules.yaml"];
    for t in ["> 0.0144\n", "> 0.006\n", "> 0.003\n", "> 0.001\n"] {
        assert!(rules.contains(t), "missing threshold {t} in:\n{rules}");
    }
}

#[test]
fn burn_pairs_that_cannot_fire_are_left_out_and_explained() {
    // 90% over 30d: the 1h/5m page would need an error ratio above 14.4 × 0.1 = 1.44.
    let spec = ServiceSpec::from_yaml_str(
        "service: orders-api\nslos:\n  - name: availability\n    kind: availability\n    objective: 90\n",
        "slo.yaml",
    )
    .unwrap();
    let out = generate(&spec);
    let rules = &out.files["prometheus/orders-api.rules.yaml"];
    assert!(!rules.contains("window: 1h/5m"), "{rules}");
    assert!(!rules.contains("> 1.44"), "{rules}");
    for t in ["> 0.6\n", "> 0.3\n", "> 0.1\n"] {
        assert!(rules.contains(t), "missing threshold {t} in:\n{rules}");
    }
    assert!(
        rules.contains("# SLO availability: no page alert for window 1h/5m: its threshold 1.44 (14.4x burn × 0.1 budget) is not below 1"),
        "{rules}"
    );
    let book = &out.files["runbooks/OrdersApiAvailabilitySloBurn.md"];
    assert!(
        book.contains("| `1h/5m` | 14.4x | page | 1.44 (left out) |"),
        "{book}"
    );
    assert!(
        book.contains("**No `1h/5m` alert:** its threshold 1.44"),
        "{book}"
    );
    assert!(!book.contains("Window `1h/5m`"), "{book}");
    assert!(book.contains("Window `6h/30m` (severity page)"), "{book}");
    // 7 recording rules, 3 burn pairs, the absent alert and the 5xx warning.
    let dir = generated_dir(&spec);
    let check = run(Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(dir.path().join("prometheus/orders-api.rules.yaml")));
    assert!(check.contains("SUCCESS: 12 rules found"), "{check}");
    // The example's objectives keep all four pairs, and the rule file has no such comment.
    let rules = &generate(&example()).files["prometheus/orders-api.rules.yaml"];
    assert!(!rules.contains("# SLO "), "{rules}");
}

/// The dashboard's error-ratio query, over 5m.
fn dashboard_errors(spec: &ServiceSpec) -> String {
    telltale_slo::dashboard::dashboard(spec)["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Errors (failed-request ratio)")
        .map(|p| {
            p["targets"][0]["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m")
        })
        .unwrap()
}

#[test]
fn a_service_without_errors_has_an_error_ratio_of_zero_not_no_data() {
    // Only successful requests and job runs: no 5xx series, no `error_type` series.
    let spec = example();
    let dash_errors = dashboard_errors(&spec);
    let budget_ratio = |slo: usize| {
        // The budget command's error-ratio query, over 1h instead of the 30d window (the
        // test has two hours of data; the query is the same).
        telltale_slo::budget::budget_queries(&spec, &spec.slos[slo])[0].replace("[30d]", "[1h]")
    };
    let availability_sli = format!(
        "1 - ({})",
        telltale_slo::promql::error_ratio_one_line(&spec, &spec.slos[0], "1h")
    );
    let case = test_case(
        "no error series: every ratio is 0",
        &[
            series(OK, counter(120, |_| 100)),
            series(JOB_OK, counter(120, |_| 10)),
        ],
        &[
            expect_value(
                &recorded("5m", "availability"),
                60,
                &recorded("5m", "availability"),
                0.0,
            ),
            expect_value(
                &recorded("3d", "availability"),
                60,
                &recorded("3d", "availability"),
                0.0,
            ),
            expect_value(
                &recorded("1h", "fulfilment"),
                60,
                &recorded("1h", "fulfilment"),
                0.0,
            ),
            expect_value(&dash_errors, 60, "{}", 0.0),
            expect_value(&budget_ratio(0), 119, "{}", 0.0),
            expect_value(&budget_ratio(2), 119, "{}", 0.0),
            expect_value(&availability_sli, 119, "{}", 1.0),
            expect_alerts("alertname=~\".*SloBurn\"", 119, false),
            expect_alerts("alertname=\"OrdersApiAvailabilitySliMissing\"", 119, false),
        ],
    );
    // No traffic at all stays "no data" (and the SLI-missing alert says why).
    let other =
        r#"http_server_request_duration_seconds_count{service="other-api",http_response_status_code="200"}"#;
    let idle = test_case(
        "no traffic: no ratio",
        &[series(other, counter(30, |_| 100))],
        &[format!(
            "      - expr: {}\n        eval_time: 20m\n        exp_samples: []\n",
            serde_json::to_string(&recorded("5m", "availability")).unwrap()
        )],
    );
    promtool_test_rules(&spec, &format!("{case}{idle}"));
}

#[test]
fn a_response_whose_body_failed_after_its_200_counts_as_an_error_and_a_499_does_not() {
    // telltale-metrics keeps the status that was sent (200) and sets `error_type="body"`
    // when the body fails while streaming: the client got a cut-off answer. A client that
    // hung up is a 499 without `error_type`: not the server's failure.
    let spec = example();
    let base = r#"http_server_request_duration_seconds_count{service="orders-api",http_route="/orders/{id}",http_request_method="GET",http_response_status_code="#;
    let body_failed = format!(r#"{base}"200",error_type="body"}}"#);
    let hung_up = format!(r#"{base}"499"}}"#);
    // Per minute: 95 fine, 2 failed bodies, 3 hang-ups: 2% failed. Rounded to 4 places:
    // promtool compares floats exactly.
    let round = |expr: &str| format!("round({}, 0.0001)", expr.replace('\n', " "));
    let case = test_case(
        "failed bodies count, hang-ups do not",
        &[
            series(OK, counter(60, |_| 95)),
            series(&body_failed, counter(60, |_| 2)),
            series(&hung_up, counter(60, |_| 3)),
        ],
        &[
            expect_value(
                &round(&recorded("5m", "availability")),
                30,
                r#"{service="orders-api",slo="availability"}"#,
                0.02,
            ),
            expect_value(
                &round(&telltale_slo::promql::error_ratio(&spec, &spec.slos[0], "1h")),
                30,
                "{}",
                0.02,
            ),
            expect_value(&round(&dashboard_errors(&spec)), 30, "{}", 0.02),
            expect_value(
                &round(&telltale_slo::promql::service_error_ratio(&spec, "5m")),
                30,
                "{}",
                0.02,
            ),
        ],
    );
    promtool_test_rules(&spec, &case);
}

#[test]
fn le_matchers_match_the_exporter_and_the_prometheus_3_spelling() {
    // Bucket bounds whose Rust and Go (Prometheus 3) spellings differ: 0.00005 / 5e-05 and
    // 1000000 / 1e+06.
    let spec = ServiceSpec::from_yaml_str(
        "service: orders-api\nbuckets: [0.00005, 0.25, 1000000]\nslos:\n  - name: tiny\n    kind: latency\n    objective: 99\n    threshold: 0.00005\n  - name: huge\n    kind: latency\n    objective: 99\n    threshold: 1000000\n",
        "slo.yaml",
    )
    .unwrap();
    let h = "http_server_request_duration_seconds";
    let case = |name: &str, tiny: &str, huge: &str| {
        let bucket = |le: &str| {
            series(
                &format!("{h}_bucket{{service=\"orders-api\",http_route=\"/\",le=\"{le}\"}}"),
                counter(60, |_| 100),
            )
        };
        test_case(
            name,
            &[
                bucket(tiny),
                bucket("0.25"),
                bucket(huge),
                bucket("+Inf"),
                series(
                    &format!(
                        "{h}_count{{service=\"orders-api\",http_route=\"/\",http_response_status_code=\"200\"}}"
                    ),
                    counter(60, |_| 100),
                ),
            ],
            &[
                // Every request is within both bounds: error ratio 0 (not 1, not empty).
                expect_value(&recorded("5m", "tiny"), 30, &recorded("5m", "tiny"), 0.0),
                expect_value(&recorded("5m", "huge"), 30, &recorded("5m", "huge"), 0.0),
                expect_alerts("alertname=\"OrdersApiTinySliMissing\"", 30, false),
                expect_alerts("alertname=\"OrdersApiHugeSliMissing\"", 30, false),
            ],
        )
    };
    promtool_test_rules(
        &spec,
        &format!(
            "{}{}",
            case("exporter spelling", "0.00005", "1000000"),
            case("Prometheus 3 spelling", "5e-05", "1e+06")
        ),
    );
}
