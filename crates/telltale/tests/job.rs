//! Background jobs through the facade, end to end: a real axum server behind
//! `server_layer()` captures a `JobContext` inside a request; jobs run with it (success,
//! failure, panic, cancellation, no context) and call the server back through telltale's
//! reqwest client. A real OTLP/gRPC receiver gets the spans; `/metrics` and the JSON log
//! lines are read back.
//!
//! The facade installs global state (tracing subscriber, metrics recorder), so this binary
//! has one test.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::Value;
use telltale::Telemetry;
use telltale::job::JobContext;
use telltale_test_support::otlp::{OtlpReceiver, ReceivedSpan};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const QUEUE: &str = "fulfil_order";
/// OTLP's `SpanKind` numbers.
const KIND_SERVER: i32 = 2;
const KIND_CLIENT: i32 = 3;
const KIND_CONSUMER: i32 = 5;

async fn serve(telemetry: &Telemetry) -> SocketAddr {
    let app = Router::new()
        // Enqueue: the context is what a real handler would store with the job.
        .route("/enqueue", post(|| async { JobContext::current().encode() }))
        // Called back by the jobs: echoes the request id it received.
        .route(
            "/whoami",
            get(|headers: HeaderMap| async move {
                headers
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            }),
        )
        .layer(telemetry.server_layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn spans_named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name() == name).collect()
}

fn count(text: &str, metric: &str, labels_contain: &[&str], exclude: &str) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with(metric) && labels_contain.iter().all(|c| l.contains(c)))
        .filter(|l| exclude.is_empty() || !l.contains(exclude))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .reduce(|a, b| a + b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_continues_the_trace_and_request_id_of_the_request_that_enqueued_it() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let logs = telltale::log::CaptureWriter::new();
    let telemetry = support::traced_telemetry("orders-worker", &logs, &receiver);
    let addr = serve(&telemetry).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // 1. A request enqueues: its context (trace, request id, time) is captured.
    let res = http
        .post(format!("http://{addr}/enqueue"))
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .header("x-request-id", "order-req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stored = res.text().await.unwrap();
    assert!(
        stored.contains("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{stored}"
    );
    assert!(stored.contains("x-request-id: order-req-1"), "{stored}");
    assert!(stored.contains("enqueued-at: "), "{stored}");

    // 2. The worker runs jobs with it.
    let job = telemetry.job(QUEUE).system("postgresql");
    let cx = JobContext::decode(&stored);
    let client = telltale::client::reqwest(reqwest::Client::builder().no_proxy().build().unwrap())
        .dependency("self")
        .build()
        .unwrap();
    let seen = job
        .run(&cx, async {
            tracing::info!(target: "worker", "fulfilling");
            assert_eq!(
                telltale::current_request_id().map(|id| id.to_string()).as_deref(),
                Some("order-req-1")
            );
            let res = client.get(format!("http://{addr}/whoami")).send().await?;
            Ok::<_, reqwest_middleware::Error>(res.text().await?)
        })
        .await
        .unwrap();
    assert_eq!(seen, "order-req-1", "the request id travels on the job's calls");

    let failed: Result<(), String> = job.run(&cx, async { Err("out of stock".to_owned()) }).await;
    assert_eq!(failed, Err("out of stock".to_owned()));

    let panicking = {
        let (job, cx) = (job.clone(), cx.clone());
        tokio::spawn(async move {
            job.run(&cx, async {
                if std::hint::black_box(true) {
                    panic!("the job panicked on purpose");
                }
                Ok::<(), String>(())
            })
            .await
        })
    };
    assert!(panicking.await.unwrap_err().is_panic(), "the panic goes on");

    let cancelled = tokio::time::timeout(
        Duration::from_millis(20),
        job.run(&cx, std::future::pending::<Result<(), String>>()),
    )
    .await;
    assert!(cancelled.is_err());

    job.run(&JobContext::empty(), async { Ok::<(), String>(()) })
        .await
        .unwrap();

    // 3. Metrics: one series per outcome; waits for the four runs that had a context.
    let text = telemetry.metrics_handle().unwrap().render();
    let duration = "messaging_process_duration_seconds_count{";
    let labels = [
        "messaging_system=\"postgresql\"",
        "messaging_operation_name=\"process\"",
        "messaging_destination_name=\"fulfil_order\"",
    ];
    assert_eq!(count(&text, duration, &labels, "error_type"), Some(2), "{text}");
    for kind in ["error", "panic", "cancelled"] {
        let label = format!("error_type=\"{kind}\"");
        let mut with = labels.to_vec();
        with.push(&label);
        assert_eq!(count(&text, duration, &with, ""), Some(1), "{kind}: {text}");
    }
    assert_eq!(
        count(
            &text,
            "telltale_job_queue_wait_seconds_count{",
            &["messaging_destination_name=\"fulfil_order\""],
            ""
        ),
        Some(4),
        "{text}"
    );

    // 4. Spans: flushed by shutdown, then read from the receiver.
    telemetry.shutdown();
    let spans = receiver
        .wait_for_spans(
            |s| spans_named(s, "process fulfil_order").len() == 5,
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|s| {
            panic!(
                "job spans missing: {:#?}",
                s.iter().map(|s| s.name().to_owned()).collect::<Vec<_>>()
            )
        });
    let enqueue = spans_named(&spans, "POST /enqueue");
    assert_eq!(enqueue.len(), 1);
    let enqueue = enqueue[0];
    assert_eq!(enqueue.trace_id(), TRACE_ID);
    let jobs = spans_named(&spans, "process fulfil_order");
    let (in_trace, new_root): (Vec<&ReceivedSpan>, Vec<&ReceivedSpan>) =
        jobs.into_iter().partition(|s| s.trace_id() == TRACE_ID);
    assert_eq!(
        in_trace.len(),
        4,
        "every run with the context joins the request's trace"
    );
    for s in &in_trace {
        assert_eq!(s.span.kind, KIND_CONSUMER);
        assert_eq!(
            s.parent_span_id(),
            enqueue.span_id(),
            "child of the enqueuing request's span"
        );
        assert_eq!(s.attr("messaging.operation.type").as_deref(), Some("process"));
        assert_eq!(s.attr("messaging.destination.name").as_deref(), Some(QUEUE));
        assert_eq!(s.attr("messaging.system").as_deref(), Some("postgresql"));
        assert_eq!(s.attr("request_id").as_deref(), Some("order-req-1"));
    }
    let by_error = |kind: &str| {
        in_trace
            .iter()
            .filter(|s| s.attr("error.type").as_deref() == Some(kind))
            .inspect(|s| assert!(s.is_error(), "{kind} is an error status"))
            .count()
    };
    assert_eq!(
        (by_error("error"), by_error("panic"), by_error("cancelled")),
        (1, 1, 1)
    );
    let ok = in_trace.iter().find(|s| s.attr("error.type").is_none()).unwrap();
    assert!(!ok.is_error());
    let call = spans
        .iter()
        .find(|s| s.span.kind == KIND_CLIENT && s.parent_span_id() == ok.span_id())
        .expect("the job's outbound call is its child");
    let whoami = spans_named(&spans, "GET /whoami");
    assert_eq!(whoami.len(), 1);
    assert_eq!(whoami[0].span.kind, KIND_SERVER);
    assert_eq!(whoami[0].trace_id(), TRACE_ID);
    assert_eq!(whoami[0].parent_span_id(), call.span_id());
    assert_eq!(new_root.len(), 1);
    assert_eq!(new_root[0].parent_span_id(), "", "no context: a new trace");
    assert_eq!(new_root[0].attr("request_id"), None);

    // 5. Logs: the line inside the job and the completion lines carry the request's ids.
    let lines = logs.json_lines().expect("every line is JSON");
    let inside = lines
        .iter()
        .find(|l| l["message"] == "fulfilling")
        .expect("the job's own line");
    assert_eq!(inside["request_id"], "order-req-1");
    assert_eq!(inside["trace_id"], TRACE_ID);
    assert_eq!(inside["span_id"], ok.span_id());
    let done: Vec<&Value> = lines.iter().filter(|l| l["target"] == "telltale::job").collect();
    assert_eq!(done.len(), 5, "one line per run: {done:#?}");
    let completed: Vec<_> = done.iter().filter(|l| l["message"] == "job completed").collect();
    assert_eq!(completed.len(), 2);
    for l in &completed {
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["job"], QUEUE);
        assert_eq!(l["outcome"], "ok");
        assert!(l["duration_ms"].as_f64().unwrap() >= 0.0, "{l}");
    }
    let failed: Vec<_> = done.iter().filter(|l| l["message"] == "job failed").collect();
    assert_eq!(failed.len(), 3);
    for l in &failed {
        assert_eq!(l["level"], "ERROR");
        assert_eq!(l["outcome"], "error");
        assert_eq!(l["request_id"], "order-req-1");
        assert_eq!(l["trace_id"], TRACE_ID);
        assert!(l["queue_wait_ms"].as_u64().is_some(), "{l}");
    }
    let out_of_stock = failed.iter().find(|l| l["error_type"] == "error").unwrap();
    assert_eq!(out_of_stock["error"], "out of stock");
    assert!(failed.iter().any(|l| l["error_type"] == "panic"));
    assert!(failed.iter().any(|l| l["error_type"] == "cancelled"));
}
