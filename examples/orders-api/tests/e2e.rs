//! End to end: the real `orders-api` binary, a real Postgres and a real Prometheus.
//!
//! These prove the reference service's acceptance criteria: readiness flips when the
//! database is unreachable (and liveness does not), every log line is JSON carrying the
//! request's id (in the fulfilment worker's lines too), an SLO burn alert generated from `slo.yaml` fires in a real Prometheus
//! when 10% of requests fail, and the generated dashboards and rules reference only
//! metrics the service really emits.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{OrdersApi, agent};
use serde_json::Value;
use telltale_test_support::service::wait_for;
use telltale_test_support::{PostgresServer, PrometheusServer};

#[test]
fn readiness_flips_when_the_database_is_unreachable_and_liveness_stays_up() {
    let mut pg = PostgresServer::start().expect("postgres");
    let url = pg.url();
    let api = OrdersApi::start(&[("DATABASE_URL", url.as_str())]);

    wait_for(
        Duration::from_secs(30),
        "/readyz 200 with the database up",
        || (api.get("/readyz").0 == 200).then_some(()),
    );
    let created = agent()
        .post(&format!("{}/orders", api.base))
        .send_json(serde_json::json!({ "sku": "sku-apple", "quantity": 1 }))
        .expect("POST /orders");
    assert_eq!(created.status().as_u16(), 201);

    pg.stop().expect("stop postgres");
    let (_, body) = wait_for(
        Duration::from_secs(15),
        "/readyz 503 with the database down",
        || {
            let (status, body) = api.get("/readyz?verbose");
            (status == 503).then_some((status, body))
        },
    );
    assert!(body.contains("[-]db"), "the failing check is named: {body}");
    assert!(body.contains("[+]inventory"), "{body}");
    assert!(
        !body.contains(pg.url().split('@').next().unwrap_or("postgres://")),
        "no connection string leaks: {body}"
    );
    assert_eq!(api.get("/healthz").0, 200, "liveness never checks dependencies");
    assert_eq!(api.get("/livez").0, 200);

    pg.start_again().expect("start postgres again");
    wait_for(
        Duration::from_secs(30),
        "/readyz 200 once the database is back",
        || (api.get("/readyz").0 == 200).then_some(()),
    );
    assert_eq!(api.get("/healthz").0, 200);
}

#[test]
fn a_database_down_at_start_gets_its_tables_once_it_comes_up() {
    let mut pg = PostgresServer::start().expect("postgres");
    pg.stop().expect("stop postgres");
    let api = OrdersApi::start(&[("DATABASE_URL", pg.url().as_str())]);
    assert_eq!(api.get("/readyz").0, 503, "not ready without its database");

    pg.start_again().expect("start postgres");
    // Orders can be placed (and are fulfilled): both tables were created after start.
    let order = wait_for(Duration::from_secs(30), "POST /orders succeeds", || {
        let mut res = agent()
            .post(&format!("{}/orders", api.base))
            .send_json(serde_json::json!({ "sku": "sku-apple", "quantity": 1 }))
            .ok()?;
        (res.status().as_u16() == 201).then(|| res.body_mut().read_json::<Value>().unwrap())
    });
    let id = order["id"].as_str().unwrap().to_owned();
    wait_for(Duration::from_secs(30), "the order is fulfilled", || {
        let (status, body) = api.get(&format!("/orders/{id}"));
        (status == 200 && body.contains(r#""status":"fulfilled""#)).then_some(())
    });
    let messages: Vec<String> = api
        .json_lines()
        .iter()
        .filter_map(|v| v["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        messages.iter().any(|m| m == "database reachable: tables ready"),
        "{messages:?}"
    );
}

#[test]
fn every_log_line_is_json_and_a_request_s_lines_share_its_id() {
    let api = OrdersApi::start(&[]);
    let res = agent()
        .post(&format!("{}/orders", api.base))
        .header("x-request-id", "e2e-order-42")
        .send_json(serde_json::json!({ "sku": "sku-apple", "quantity": 2 }))
        .expect("POST /orders");
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers()["x-request-id"], "e2e-order-42");

    let mine = wait_for(Duration::from_secs(10), "the access line of the request", || {
        let mine: Vec<Value> = api
            .json_lines()
            .into_iter()
            .filter(|v| v["request_id"] == "e2e-order-42")
            .collect();
        mine.iter()
            .any(|v| v["target"] == "telltale::access")
            .then_some(mine)
    });
    let messages: Vec<&str> = mine.iter().filter_map(|v| v["message"].as_str()).collect();
    assert!(messages.contains(&"order placed"), "{messages:?}");
    let access = mine.iter().find(|v| v["target"] == "telltale::access").unwrap();
    assert_eq!(access["route"], "/orders");
    assert_eq!(access["status"], 201);
    assert_eq!(access["method"], "POST");

    for v in api.json_lines() {
        for key in [
            "timestamp",
            "level",
            "service",
            "environment",
            "version",
            "target",
            "message",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert_eq!(v["service"], "orders-api");
    }
}

#[test]
fn under_a_warn_filter_error_lines_still_carry_their_trace_id() {
    // `warn` for everything but the service's own start-up line: the request span is INFO,
    // and dropping it would leave every error line of a request without its trace.
    let api = OrdersApi::start(&[("RUST_LOG", "warn,orders_api=info"), ("FAULT_ERROR_RATE", "1")]);
    let res = agent()
        .get(&format!("{}/orders", api.base))
        .header("x-request-id", "e2e-warn-1")
        .call()
        .expect("GET /orders");
    assert_eq!(res.status().as_u16(), 500);

    let access = wait_for(
        Duration::from_secs(10),
        "the access line of the failed request",
        || {
            api.json_lines()
                .into_iter()
                .find(|v| v["request_id"] == "e2e-warn-1" && v["target"] == "telltale::access")
        },
    );
    assert_eq!(access["level"], "ERROR", "{access}");
    assert!(
        access["trace_id"].as_str().is_some_and(|t| t.len() == 32),
        "{access}"
    );
    assert!(
        access["span_id"].as_str().is_some_and(|s| s.len() == 16),
        "{access}"
    );
    // The filter still filters: no INFO line but the service's own.
    let lines = api.json_lines();
    let info: Vec<&Value> = lines
        .iter()
        .filter(|v| {
            v["level"] == "INFO" && !v["target"].as_str().is_some_and(|t| t.starts_with("orders_api"))
        })
        .collect();
    assert!(info.is_empty(), "{info:?}");
}

#[test]
fn ten_percent_injected_errors_fire_the_page_alert_in_a_real_prometheus() {
    let api = OrdersApi::start(&[("FAULT_ERROR_RATE", "0.1")]);
    let spec = telltale_slo::ServiceSpec::from_yaml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/slo.yaml"))
        .expect("slo.yaml is valid");
    let generated = telltale_slo::generate(&spec);
    let rules = generated
        .files
        .iter()
        .find(|(path, _)| path.ends_with(".rules.yaml"))
        .map(|(_, text)| text.clone())
        .expect("rules file");
    // Same rules, evaluated every second instead of every minute, so the test is quick.
    let rules = rules.replace("interval: 1m", "interval: 1s");
    let target = api.base.trim_start_matches("http://");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yaml]\nscrape_configs:\n  - job_name: orders-api\n    static_configs:\n      - targets: ['{target}']\n"
    );
    let prom = PrometheusServer::start(&config, &[("rules.yaml", &rules)]).expect("prometheus");

    // Traffic until the alert fires: 10% of it fails with 500.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (base, stop) = (api.base.clone(), stop.clone());
        std::thread::spawn(move || {
            let agent = agent();
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 20_000 {
                let _ = agent.get(&format!("{base}/orders")).call();
                sent += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let firing = prom
        .wait_for(Duration::from_secs(120), "the 1h/5m page alert fires", |p| {
            p.alerts().ok()?.into_iter().find(|a| {
                a["labels"]["alertname"] == "OrdersApiAvailabilitySloBurn"
                    && a["labels"]["window"] == "1h/5m"
                    && a["state"] == "firing"
            })
        })
        .unwrap_or_else(|e| panic!("{e}\norders-api output:\n{}", api.output()));
    let ratio = prom
        .query_value(r#"slo:sli_error:ratio_rate5m{service="orders-api",slo="availability"}"#)
        .expect("error ratio recorded");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();

    assert_eq!(firing["labels"]["severity"], "page");
    assert!(
        firing["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or("")
            .ends_with(".md"),
        "{firing}"
    );
    assert!(
        (0.03..=0.2).contains(&ratio),
        "5m error ratio {ratio} should be near the injected 10%"
    );
    // 4xx are not errors: the ratio counts only the injected 500s.
    let server_errors = prom
        .query_value(r#"sum(http_server_request_duration_seconds_count{service="orders-api",http_response_status_code="500"})"#)
        .unwrap_or(0.0);
    assert!(server_errors > 0.0);
}

#[test]
fn generated_rules_and_dashboard_use_only_metrics_the_service_emits() {
    let api = OrdersApi::start(&[("FAULT_ERROR_RATE", "0.5")]);
    // Traffic that exercises every series the SLO tooling reads: successes, injected
    // 5xx, and inventory calls (dependency metrics and breaker state).
    for i in 0..40 {
        let _ = agent()
            .post(&format!("{}/orders", api.base))
            .send_json(serde_json::json!({ "sku": "sku-pear", "quantity": 1 + i % 3 }));
        let _ = api.get("/orders");
    }
    // The embedded worker fulfils the placed orders in the background: the job SLO's
    // series appear once it has run some.
    let metrics = wait_for(
        Duration::from_secs(30),
        "/metrics with the fulfilment jobs' series",
        || {
            let (status, metrics) = api.get("/metrics");
            assert_eq!(status, 200);
            (metrics.contains("messaging_process_duration_seconds_count{")
                && metrics.contains("telltale_job_queue_wait_seconds_bucket{"))
            .then_some(metrics)
        },
    );
    let spec = telltale_slo::ServiceSpec::from_yaml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/slo.yaml"))
        .expect("slo.yaml is valid");
    assert!(
        spec.slos
            .iter()
            .any(|s| s.queue.as_deref() == Some("fulfil_order"))
    );
    let missing = telltale_slo::missing_from_scrape(&spec, &metrics);
    assert!(
        missing.is_empty(),
        "referenced by rules or dashboard but absent from /metrics: {missing:?}\n{metrics}"
    );
}

#[test]
fn one_trace_spans_the_http_and_grpc_hops_and_logs_carry_its_id() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = rt
        .block_on(telltale_test_support::otlp::OtlpReceiver::start())
        .expect("otlp receiver");
    let endpoint = receiver.endpoint();
    let api = OrdersApi::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let res = agent()
        .post(&format!("{}/orders", api.base))
        .header("traceparent", &traceparent)
        .header("x-request-id", "e2e-traced-1")
        .send_json(serde_json::json!({ "sku": "sku-apple", "quantity": 1 }))
        .expect("POST /orders");
    assert_eq!(res.status().as_u16(), 201);
    let order: Value = res.into_body().read_json().expect("order JSON");
    let order_id = order["id"].as_str().expect("order id").to_owned();
    let mut res = agent()
        .get(&format!("{}/stock/sku-apple", api.base))
        .header("traceparent", &traceparent)
        .call()
        .expect("GET /stock");
    assert_eq!(
        res.status().as_u16(),
        200,
        "{}",
        res.body_mut().read_to_string().unwrap_or_default()
    );

    // The embedded worker fulfils the order.
    wait_for(Duration::from_secs(30), "the worker fulfils the order", || {
        let (status, body) = api.get(&format!("/orders/{order_id}"));
        (status == 200 && body.contains(r#""status":"fulfilled""#)).then_some(())
    });

    // Server span of POST /orders, its HTTP client span to the inventory, the inventory's
    // server span; server span of GET /stock, its gRPC client span, the gRPC server span;
    // the worker's span for the order's fulfilment job.
    let spans = rt
        .block_on(receiver.wait_for_spans(
            |spans| {
                spans.iter().filter(|s| s.trace_id() == trace_id).count() >= 7
                    && spans.iter().any(|s| s.name() == "process fulfil_order")
            },
            Duration::from_secs(30),
        ))
        .unwrap_or_else(|got| panic!("spans of the trace not received; got {got:#?}"));
    let spans: Vec<_> = spans.into_iter().filter(|s| s.trace_id() == trace_id).collect();
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
    };
    let post = find("POST /orders");
    assert_eq!(
        post.parent_span_id(),
        "00f067aa0ba902b7",
        "continues the caller's trace"
    );
    assert_eq!(post.attr("http.route").as_deref(), Some("/orders"));
    assert_eq!(post.attr("http.response.status_code").as_deref(), Some("201"));
    assert_eq!(post.attr("request_id").as_deref(), Some("e2e-traced-1"));
    let client = spans
        .iter()
        .find(|s| s.name() == "POST" && s.parent_span_id() == post.span_id())
        .unwrap_or_else(|| panic!("no client span under POST /orders: {spans:#?}"));
    assert_eq!(client.attr("peer.service").as_deref(), Some("inventory"));
    let reserve = find("POST /reservations");
    assert_eq!(
        reserve.parent_span_id(),
        client.span_id(),
        "the inventory's span is a child of the client span"
    );

    // The fulfilment job, run later by the worker, continues the request's trace.
    let job = find("process fulfil_order");
    assert_eq!(job.span.kind, 5, "a consumer span");
    assert_eq!(
        job.parent_span_id(),
        post.span_id(),
        "the job is a child of the request that enqueued it"
    );
    assert_eq!(
        job.attr("messaging.destination.name").as_deref(),
        Some("fulfil_order")
    );
    assert_eq!(job.attr("request_id").as_deref(), Some("e2e-traced-1"));
    assert!(!job.is_error());

    let stock = find("GET /stock/{sku}");
    let grpc_server = spans
        .iter()
        .find(|s| {
            s.attr("rpc.method").as_deref() == Some("GetStock") && s.parent_span_id() != stock.span_id()
        })
        .unwrap_or_else(|| panic!("no gRPC server span: {spans:#?}"));
    let grpc_client = spans
        .iter()
        .find(|s| s.span_id() == grpc_server.parent_span_id())
        .unwrap_or_else(|| panic!("the gRPC server span's parent is not in the trace: {spans:#?}"));
    assert_eq!(
        grpc_client.parent_span_id(),
        stock.span_id(),
        "gRPC client span under GET /stock"
    );
    assert_eq!(grpc_server.attr("rpc.grpc.status_code").as_deref(), Some("0"));

    // Logs meet traces: the lines of the traced request carry its trace id.
    let lines = wait_for(Duration::from_secs(10), "log lines of the traced request", || {
        let mine: Vec<Value> = api
            .json_lines()
            .into_iter()
            .filter(|v| v["request_id"] == "e2e-traced-1")
            .collect();
        mine.iter()
            .any(|v| v["target"] == "telltale::access")
            .then_some(mine)
    });
    for line in &lines {
        assert_eq!(line["trace_id"], trace_id, "{line}");
        assert!(line["span_id"].as_str().is_some_and(|s| s.len() == 16), "{line}");
    }
    let done = wait_for(Duration::from_secs(10), "the job's completion line", || {
        api.json_lines()
            .into_iter()
            .find(|v| v["target"] == "telltale::job" && v["request_id"] == "e2e-traced-1")
    });
    assert_eq!(done["trace_id"], trace_id, "{done}");
    assert_eq!(done["span_id"], job.span_id().as_str(), "{done}");
    assert_eq!(done["outcome"], "ok", "{done}");
    let access = lines.iter().find(|v| v["target"] == "telltale::access").unwrap();
    assert_eq!(
        access["span_id"],
        post.span_id().as_str(),
        "the access line is inside the server span"
    );

    // The same endpoint receives the RED metrics (feature `otlp-metrics`), under their
    // semantic-convention names: the POST /orders above is one 201 on route /orders.
    use telltale_test_support::otlp::attribute;
    fn is_post_orders(attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> bool {
        attribute(attrs, "http.route").as_deref() == Some("/orders")
            && attribute(attrs, "http.request.method").as_deref() == Some("POST")
    }
    let metrics = rt
        .block_on(receiver.wait_for_metrics(
            |m| {
                m.iter().any(|m| {
                    m.name() == "http.server.request.duration"
                        && m.histogram_points().iter().any(|p| is_post_orders(&p.attributes))
                })
            },
            Duration::from_secs(30),
        ))
        .unwrap_or_else(|got| panic!("no http.server.request.duration for POST /orders: {got:#?}"));
    let duration = metrics
        .iter()
        .rev()
        .find(|m| {
            m.name() == "http.server.request.duration"
                && m.histogram_points().iter().any(|p| is_post_orders(&p.attributes))
        })
        .unwrap();
    assert_eq!(duration.service_name, "orders-api");
    assert_eq!(duration.unit(), "s");
    let point = duration
        .histogram_points()
        .iter()
        .find(|p| is_post_orders(&p.attributes))
        .unwrap();
    assert_eq!(point.count, 1, "{point:?}");
    assert_eq!(
        attribute(&point.attributes, "http.response.status_code").as_deref(),
        Some("201")
    );
}
