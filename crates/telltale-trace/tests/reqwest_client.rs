//! The reqwest middleware's client span, against a real axum server on loopback: it ends
//! when the response body ends (not at the head), the response keeps its URL, status and
//! length, and failed calls are errors.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::{Router, body::Body, routing::get};
use bytes::Bytes;
use opentelemetry::trace::Status;
use telltale_core::trace_ids::TraceIds;
use telltale_trace::reqwest::TracingMiddleware;
use telltale_trace::{Sampling, SpanPipeline};
use tokio::sync::mpsc;

use support::{Collect, attr};

type Chunks = mpsc::Receiver<Result<Bytes, Infallible>>;

/// A server with `/stream` (its body is whatever the test sends down the channel, ended
/// when the sender is dropped) and `/fixed` (a 5-byte body).
async fn server(chunks: Chunks) -> (String, tokio::task::JoinHandle<()>) {
    let chunks = Arc::new(Mutex::new(Some(chunks)));
    let app =
        Router::new()
            .route(
                "/stream",
                get(move || {
                    let rx = chunks.lock().unwrap().take().expect("one streaming request");
                    async move {
                        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                            rx.recv().await.map(|c| (c, rx))
                        });
                        Body::from_stream(stream)
                    }
                }),
            )
            .route("/fixed", get(|| async { "fixed" }))
            .route(
                "/traceparent",
                get(|headers: http::HeaderMap| async move {
                    headers
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                }),
            );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

fn client(p: SpanPipeline) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::new(p).dependency("inventory"))
        .build()
}

#[tokio::test]
async fn the_client_span_ends_when_the_body_has_been_read() {
    let collect = Collect::default();
    let p = SpanPipeline::new(&Sampling::always(), collect.clone()).unwrap();
    let (tx, rx) = mpsc::channel(4);
    let (base, server) = server(rx).await;
    let client = client(p);

    tx.send(Ok(Bytes::from_static(b"first;"))).await.unwrap();
    let mut res = client.get(format!("{base}/stream")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.url().as_str(),
        format!("{base}/stream"),
        "the URL survives the wrapping"
    );
    assert!(
        res.remote_addr().is_some(),
        "extensions (remote address) survive the wrapping"
    );
    let first = res.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"first;");
    assert!(
        collect.spans().is_empty(),
        "the head and the first chunk do not end the span"
    );

    let released = SystemTime::now();
    tx.send(Ok(Bytes::from_static(b"last"))).await.unwrap();
    drop(tx);
    let rest = res.bytes().await.unwrap();
    assert_eq!(&rest[..], b"last");

    let spans = collect.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span.name, "GET");
    assert_eq!(span.span_kind, opentelemetry::trace::SpanKind::Client);
    assert_eq!(attr(span, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(span, "peer.service").as_deref(), Some("inventory"));
    assert_eq!(span.status, Status::Unset);
    assert!(
        span.end_time >= released,
        "the span ended at the body's end, after the last chunk was released"
    );
    server.abort();
}

#[tokio::test]
async fn a_response_dropped_unread_still_ends_its_span_and_lengths_survive() {
    let collect = Collect::default();
    let p = SpanPipeline::new(&Sampling::always(), collect.clone()).unwrap();
    let (_tx, rx) = mpsc::channel(1);
    let (base, server) = server(rx).await;
    let client = client(p);

    let res = client.get(format!("{base}/fixed")).send().await.unwrap();
    assert_eq!(res.content_length(), Some(5), "the size hint passes through");
    assert!(collect.spans().is_empty());
    drop(res);
    let spans = collect.spans();
    assert_eq!(spans.len(), 1, "dropping the response ends the span");
    assert_eq!(spans[0].status, Status::Unset, "an unread body is not an error");

    let text = client
        .get(format!("{base}/fixed"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "fixed");
    assert_eq!(collect.spans().len(), 2);
    server.abort();
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_and_unsampled_calls_are_untouched() {
    let collect = Collect::default();
    let p = SpanPipeline::new(&Sampling::always(), collect.clone()).unwrap();
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client(p).get(format!("http://127.0.0.1:{port}/x")).send().await;
    assert!(err.is_err());
    let spans = collect.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(attr(&spans[0], "error.type").as_deref(), Some("connect"));
    assert!(matches!(spans[0].status, Status::Error { .. }));

    // Not recorded: the response is passed through as reqwest made it.
    let collect = Collect::default();
    let p = SpanPipeline::new(&Sampling::never(), collect.clone()).unwrap();
    let (_tx, rx) = mpsc::channel(1);
    let (base, server) = server(rx).await;
    let res = client(p).get(format!("{base}/fixed")).send().await.unwrap();
    assert_eq!(res.content_length(), Some(5));
    assert_eq!(res.text().await.unwrap(), "fixed");
    assert!(collect.spans().is_empty());
    server.abort();
}

#[tokio::test]
async fn every_response_names_its_trace_sampled_or_not() {
    let (_tx, rx) = mpsc::channel(1);
    let (base, server) = server(rx).await;
    for sampling in [Sampling::always(), Sampling::never()] {
        let collect = Collect::default();
        let p = SpanPipeline::new(&sampling, collect.clone()).unwrap();
        let res = client(p).get(format!("{base}/traceparent")).send().await.unwrap();
        let ids = *res.extensions().get::<TraceIds>().expect("trace ids");
        let (mut t, mut s) = ([0u8; 32], [0u8; 16]);
        // What the server was sent: the same trace, the client span as parent, and the
        // sampled bit of the flags (the other bits say how the id was made).
        let sent = res.text().await.unwrap();
        let prefix = format!("00-{}-{}-", ids.trace_id_hex(&mut t), ids.span_id_hex(&mut s));
        let flags = sent
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{sent} vs {prefix}"));
        let flags = u8::from_str_radix(flags, 16).unwrap();
        assert_eq!(flags & 1 == 1, ids.sampled, "{sent}");
        let spans = collect.spans();
        if ids.sampled {
            assert_eq!(spans.len(), 1);
            assert_eq!(
                u128::from_be_bytes(spans[0].span_context.trace_id().to_bytes()),
                ids.trace_id
            );
            assert_eq!(
                u64::from_be_bytes(spans[0].span_context.span_id().to_bytes()),
                ids.span_id
            );
        } else {
            assert!(spans.is_empty(), "not recorded, still named");
        }
    }
    server.abort();
}
