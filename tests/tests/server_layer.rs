//! The facade's `server_layer()` over a real TCP listener: one request gets an id, a span
//! in the caller's trace, RED metrics by route template, and one JSON access line that
//! carries the same request id and trace id.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use telltale::Telemetry;

/// A log sink the test can read.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn json(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .expect("utf-8 log")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_identified_traced_measured_and_logged_once() {
    let lines = Lines::default();
    let telemetry = Telemetry::builder("facade-test")
        .environment("test")
        .version("9.9.9")
        .log_writer(lines.clone())
        .traceresponse(true)
        .prometheus()
        .init()
        .expect("telemetry");
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                tracing::info!("handling order");
                "order"
            }),
        )
        .merge(telemetry.metrics_router())
        .layer(telemetry.server_layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let client = reqwest::Client::new();
    let res = client
        .get(format!("http://{addr}/orders/8812"))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&request_id).unwrap().get_version_num(), 7);
    let traceresponse = res.headers()["traceresponse"].to_str().unwrap().to_owned();
    assert!(
        traceresponse.starts_with(&format!("00-{trace_id}-")),
        "{traceresponse}"
    );
    assert_eq!(res.text().await.unwrap(), "order");

    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = metrics
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_count")
                && l.contains("http_route=\"/orders/{id}\"")
        })
        .unwrap_or_else(|| panic!("no RED series for the route template:\n{metrics}"));
    assert!(
        series.contains("http_request_method=\"GET\"")
            && series.contains("http_response_status_code=\"200\"")
    );
    assert!(series.contains("service=\"facade-test\""), "{series}");
    assert!(series.ends_with(" 1"), "{series}");
    assert!(
        !metrics.contains("/orders/8812"),
        "the raw path never becomes a label"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let mine = loop {
        let mine: Vec<Value> = lines
            .json()
            .into_iter()
            .filter(|v| v["request_id"] == request_id.as_str())
            .collect();
        if mine.iter().any(|v| v["target"] == "telltale::access") {
            break mine;
        }
        assert!(
            Instant::now() < deadline,
            "no access line for {request_id}: {:?}",
            lines.json()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let access: Vec<&Value> = mine
        .iter()
        .filter(|v| v["target"] == "telltale::access")
        .collect();
    assert_eq!(access.len(), 1, "exactly one access line per request");
    assert_eq!(access[0]["route"], "/orders/{id}");
    assert_eq!(access[0]["path"], "/orders/8812");
    assert_eq!(access[0]["status"], 200);
    let handler_line = mine
        .iter()
        .find(|v| v["message"] == "handling order")
        .expect("handler log line");
    for line in [access[0], handler_line] {
        assert_eq!(line["trace_id"], trace_id, "{line}");
        assert_eq!(line["service"], "facade-test");
        assert_eq!(line["version"], "9.9.9");
    }
    assert_eq!(handler_line["span_id"], access[0]["span_id"]);
    assert!(
        traceresponse.contains(access[0]["span_id"].as_str().unwrap()),
        "traceresponse names the server span"
    );

    // Asked for OpenMetrics, the latency buckets carry the sampled request's trace id.
    let openmetrics = client
        .get(format!("http://{addr}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        openmetrics
            .lines()
            .any(|l| l.starts_with("http_server_request_duration_seconds_bucket")
                && l.contains(&format!("# {{trace_id=\"{trace_id}\""))),
        "no exemplar with the trace id:\n{openmetrics}"
    );

    // /metrics itself is excluded from access logs and RED metrics by default.
    assert!(!lines.json().iter().any(|v| v["path"] == "/metrics"));
    server.abort();
}
