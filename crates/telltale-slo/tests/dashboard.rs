//! The Grafana dashboard is importable JSON with the promised rows, and every query it
//! holds is valid PromQL (checked by promtool) over metrics telltale really emits.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use telltale_slo::dashboard::{SCHEMA_VERSION, dashboard, dashboard_exprs};
use telltale_slo::{ServiceSpec, known_metric_names, referenced_label_names, referenced_metric_names};

fn example(scheme: &str) -> ServiceSpec {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/orders-api/slo.yaml"
    ))
    .unwrap()
    .replace("scheme: otel", &format!("scheme: {scheme}"));
    ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap()
}

fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found: install Debian's `prometheus` package, as scripts/test does")
        })
}

#[test]
fn dashboard_has_golden_signals_slo_and_dependency_rows_and_deploy_markers() {
    let spec = example("otel");
    let d = dashboard(&spec);
    assert_eq!(d["schemaVersion"], SCHEMA_VERSION);
    let var = &d["templating"]["list"][0];
    assert_eq!(var["type"], "datasource");
    assert_eq!(var["query"], "prometheus");
    let panels = d["panels"].as_array().unwrap();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(rows, ["Golden signals", "SLOs", "Jobs", "Dependencies"]);
    let titles: Vec<&str> = panels.iter().map(|p| p["title"].as_str().unwrap()).collect();
    for wanted in [
        "Traffic",
        "Errors",
        "Latency",
        "in-flight",
        "CPU",
        "memory",
        "availability: SLI",
        "availability: error budget remaining",
        "availability: burn rate",
        "latency: burn rate",
        "fulfilment: SLI",
        "fulfilment: burn rate",
        "Job runs/s by queue",
        "Job failure ratio by queue",
        "Job run time p99 by queue",
        "Queue wait p95 by queue",
        "Dependency calls/s",
        "Dependency error ratio",
        "Dependency latency",
        "Circuit breaker state",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no panel {wanted}: {titles:?}"
        );
    }
    let latency = panels.iter().find(|p| p["title"] == "Latency").unwrap();
    let legends: Vec<&Value> = latency["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["legendFormat"])
        .collect();
    assert_eq!(legends, ["p50", "p95", "p99"]);
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], "${datasource}");
    }
    let deploys = &d["annotations"]["list"][1];
    assert_eq!(deploys["name"], "Deploys");
    assert!(
        deploys["expr"]
            .as_str()
            .unwrap()
            .contains("build_info{service=\"orders-api\"}")
    );
    // Unique panel ids, as Grafana requires.
    let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len());
}

#[test]
fn rules_and_dashboard_only_reference_metrics_and_labels_telltale_emits() {
    let known = known_metric_names();
    for scheme in ["otel", "legacy"] {
        let spec = example(scheme);
        let used = referenced_metric_names(&spec);
        assert!(used.contains("process_cpu_seconds_total"));
        assert!(used.contains("build_info"));
        assert!(used.contains("telltale_circuit_breaker_state"));
        for name in &used {
            assert!(
                known.contains(name),
                "{scheme}: `{name}` is not a telltale metric"
            );
        }
        let labels = referenced_label_names(&spec);
        let names = spec.label_names();
        for l in &labels {
            let ok = [
                names.method,
                names.route,
                names.status,
                names.error_type,
                "le",
                "service",
                "peer_service",
                "state",
                "version",
                "commit",
                "instance",
                "messaging_destination_name",
            ]
            .contains(&l.as_str());
            assert!(ok, "{scheme}: label `{l}` is not one telltale emits");
        }
    }
}

#[test]
fn label_scan_skips_braces_inside_route_values() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/orders-api/slo.yaml"
    ))
    .unwrap()
    .replace(
        "    window: 30d\n    description: Orders",
        "    window: 30d\n    routes: [\"/orders/{id}\", \"/orders\"]\n    selectors: {http_request_method: GET}\n    description: Orders",
    );
    let spec = ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap();
    assert_eq!(spec.slos[0].routes.len(), 2);
    let labels = referenced_label_names(&spec);
    assert!(labels.contains("http_route"), "{labels:?}");
    assert!(labels.contains("http_request_method"), "{labels:?}");
    assert!(!labels.iter().any(|l| l == "id"), "{labels:?}");
    let rules = &telltale_slo::generate(&spec).files["prometheus/orders-api.rules.yaml"];
    assert!(
        rules.contains(r#"http_route=~"/orders/\\{id\\}|/orders""#),
        "{rules}"
    );
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    // promtool parses each query as a recording rule.
    let spec = example("otel");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in dashboard_exprs(&spec).iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "5m");
        rules.push_str(&format!(
            "      - record: dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yaml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_from_scrape_lists_what_a_scrape_lacks() {
    let spec = example("otel");
    let scrape = r#"# HELP http_server_request_duration_seconds Duration of HTTP server requests.
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{service="orders-api",http_route="/orders/{id}",http_request_method="GET",http_response_status_code="200",le="0.25"} 1
http_server_request_duration_seconds_count{service="orders-api",http_route="/orders/{id}",http_request_method="GET",http_response_status_code="500",error_type="500"} 1
http_server_active_requests{service="orders-api"} 0
http_client_request_duration_seconds_bucket{service="orders-api",peer_service="inventory",le="0.25"} 1
http_client_request_duration_seconds_count{service="orders-api",peer_service="inventory",error_type="timeout"} 1
telltale_circuit_breaker_state{service="orders-api",peer_service="inventory",state="open"} 0
build_info{service="orders-api",version="0.1.0",commit="abc"} 1
process_cpu_seconds_total{service="orders-api"} 1.5
process_resident_memory_bytes{service="orders-api"} 1e6
messaging_process_duration_seconds_bucket{service="orders-api",messaging_system="sqlite",messaging_destination_name="fulfil_order",le="0.25"} 1
messaging_process_duration_seconds_count{service="orders-api",messaging_system="sqlite",messaging_destination_name="fulfil_order"} 1
telltale_job_queue_wait_seconds_bucket{service="orders-api",messaging_system="sqlite",messaging_destination_name="fulfil_order",le="0.25"} 1
"#;
    assert_eq!(
        telltale_slo::missing_from_scrape(&spec, scrape),
        Vec::<String>::new()
    );
    let without_build_info: String = scrape
        .lines()
        .filter(|l| !l.starts_with("build_info"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        telltale_slo::missing_from_scrape(&spec, &without_build_info),
        ["metric build_info", "label commit", "label version"]
    );
}

#[test]
fn long_service_names_get_distinct_uids_of_at_most_40_characters() {
    let spec = |service: &str| {
        ServiceSpec::builder(service)
            .slo(telltale_slo::Slo::availability("availability", 99.9))
            .build()
            .unwrap()
    };
    // Short names keep `telltale-<service>`, up to exactly 40 characters.
    assert_eq!(dashboard(&spec("orders-api"))["uid"], "telltale-orders-api");
    let exactly_40 = "a".repeat(31);
    assert_eq!(
        dashboard(&spec(&exactly_40))["uid"],
        format!("telltale-{exactly_40}")
    );
    // Two names sharing their first 40 characters of `telltale-<service>` (and more).
    let a = spec("payments-settlement-reconciliation-worker-eu-west-1");
    let b = spec("payments-settlement-reconciliation-worker-us-east-1");
    let (uid_a, uid_b) = (dashboard(&a)["uid"].clone(), dashboard(&b)["uid"].clone());
    let (uid_a, uid_b) = (uid_a.as_str().unwrap(), uid_b.as_str().unwrap());
    assert_ne!(uid_a, uid_b);
    for uid in [uid_a, uid_b] {
        assert!(uid.len() <= 40, "{uid}");
        assert!(uid.starts_with("telltale-payments-settlement-re"), "{uid}");
    }
    // Stable: the same name gives the same uid every time.
    assert_eq!(dashboard(&a)["uid"], dashboard(&a)["uid"]);
    // The runbooks point at the dashboard by that uid.
    let books = telltale_slo::runbook::runbooks(&a);
    assert!(
        books
            .values()
            .all(|b| b.contains(&format!("Grafana dashboard (`{uid_a}`)"))),
        "{books:#?}"
    );
}
