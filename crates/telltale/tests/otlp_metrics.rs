//! OTLP metrics over gRPC, next to Prometheus: a real axum server behind `server_layer()`,
//! a known mix of 2xx/4xx/5xx requests over real TCP, and a real OTLP/gRPC receiver that
//! must get `http.server.request.duration` with the same counts by status, the
//! semantic-conventions attributes and the service's resource — while `/metrics` still
//! shows the same counts (both recorders get every metric).
//!
//! The facade installs global state (the `metrics` recorder), so this binary has one test.

mod support;

use std::time::Duration;

use telltale::Telemetry;
use telltale::otlp_metrics::DEFAULT_DURATION_BUCKETS;
use telltale::trace::export::OtlpProtocol;
use telltale_test_support::otlp::{OtlpReceiver, Transport, attribute, attribute_is_int, number_value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_push_next_to_prometheus_carries_the_request_mix() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let telemetry = Telemetry::builder("orders-api")
        .version("1.2.3")
        .environment("test")
        .prometheus()
        .otlp_metrics(receiver.endpoint(), OtlpProtocol::Grpc)
        .otlp_metrics_interval(Duration::from_millis(100))
        .init()
        .unwrap();
    assert!(telemetry.otlp_meter_provider().is_some());
    let addr = support::serve(&telemetry).await;

    support::send_mix(addr).await;
    // The application's own metrics go the same way, names and labels unchanged.
    metrics::counter!("jobs_total", "queue" => "emails").increment(3);
    metrics::gauge!("queue_depth", "queue" => "emails").set(7.0);

    // Pushed periodically (every 100 ms): wait for an export that holds the whole mix and
    // the application's metrics.
    let metrics = support::wait_for_the_mix(&receiver, |ms| {
        ms.iter().any(|m| m.name() == "jobs_total") && ms.iter().any(|m| m.name() == "queue_depth")
    })
    .await;
    let duration = support::latest_duration(&metrics).unwrap();
    assert_eq!(duration.transport, Transport::Grpc);
    assert_eq!(duration.unit(), "s");
    assert_eq!(duration.service_name, "orders-api");
    assert_eq!(
        duration.resource_attr("service.version").as_deref(),
        Some("1.2.3")
    );
    assert_eq!(
        duration.resource_attr("deployment.environment.name").as_deref(),
        Some("test")
    );
    let instance = duration.resource_attr("service.instance.id").unwrap_or_default();
    assert_eq!(instance.len(), 36, "a UUID per process: {instance:?}");
    // The traces' resource names the same instance, so a backend can join the signals.
    let traces = telltale::trace::export::service_resource("orders-api", None, None, &[], &|_| None).unwrap();
    let trace_instance = traces
        .get(&telltale::opentelemetry::Key::from_static_str(
            "service.instance.id",
        ))
        .map(|v| v.to_string());
    assert_eq!(trace_instance.as_deref(), Some(instance.as_str()));
    assert_eq!(
        duration.resource_attr("process.pid"),
        Some(std::process::id().to_string())
    );
    for p in duration.histogram_points() {
        let status = attribute(&p.attributes, "http.response.status_code").unwrap();
        assert!(
            attribute_is_int(&p.attributes, "http.response.status_code"),
            "{p:?}"
        );
        assert_eq!(
            attribute(&p.attributes, "http.request.method").as_deref(),
            Some("GET")
        );
        let route = attribute(&p.attributes, "http.route").unwrap();
        let expected_route = match status.as_str() {
            "200" => "/ok",
            "404" => "/missing",
            _ => "/down",
        };
        assert_eq!(route, expected_route);
        // Only server errors carry error.type; 4xx are the client's fault.
        assert_eq!(
            attribute(&p.attributes, "error.type").is_some(),
            status == "503",
            "{status}: {p:?}"
        );
        // No Prometheus-style label leaks through, and the global labels are resource
        // attributes, not data point attributes.
        for kv in &p.attributes {
            assert!(
                !kv.key.contains('_') || kv.key.ends_with("status_code"),
                "{}",
                kv.key
            );
            assert_ne!(kv.key, "service");
        }
        // The same bucket boundaries as the Prometheus side.
        assert_eq!(p.explicit_bounds, DEFAULT_DURATION_BUCKETS);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
    }

    // The in-flight gauge went up and back down: 0 with nothing in flight.
    let active = metrics
        .iter()
        .rev()
        .find(|m| m.name() == "http.server.active_requests")
        .expect("the in-flight gauge is pushed");
    assert!(active.is_gauge(), "{:?}", active.metric);
    assert!(
        active.number_points().iter().all(|p| number_value(p) == 0.0),
        "{:?}",
        active.number_points()
    );

    let jobs = metrics
        .iter()
        .rev()
        .find(|m| m.name() == "jobs_total")
        .expect("the application's counter is pushed");
    assert!(jobs.is_monotonic_sum(), "{:?}", jobs.metric);
    let [point] = jobs.number_points() else {
        panic!("one series: {:?}", jobs.number_points())
    };
    assert_eq!(number_value(point), 3.0);
    assert_eq!(attribute(&point.attributes, "queue").as_deref(), Some("emails"));
    let depth = metrics
        .iter()
        .rev()
        .find(|m| m.name() == "queue_depth")
        .expect("the application's gauge is pushed");
    assert!(depth.is_gauge());
    assert_eq!(
        depth.number_points().iter().map(number_value).collect::<Vec<_>>(),
        [7.0]
    );

    // Prometheus got every observation too (the fan-out), under its own names.
    let text = support::client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (status, route, n) in [(200, "/ok", 5), (404, "/missing", 3)] {
        let line = format!(
            r#"http_server_request_duration_seconds_count{{service="orders-api",environment="test",version="1.2.3",http_request_method="GET",http_route="{route}",http_response_status_code="{status}"}} {n}"#
        );
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }

    telemetry.shutdown();
}
