//! The cardinality guard under a scanner: 100,000 requests over real TCP to distinct
//! random paths, with random methods and random status codes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::Path;
use axum::routing::{any, get};
use bytes::Bytes;
use common::{sample, series, serve};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale_metrics::names::{labels as l, meta};
use telltale_metrics::{MetricsLayer, PrometheusConfig, metrics_router};

const REQUESTS: usize = 100_000;
const CONCURRENCY: usize = 32;
const CAP: usize = 50;
const DUR: &str = "http_server_request_duration_seconds_count";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_methods_and_statuses_stay_under_the_cap() {
    let prom = PrometheusConfig::new("scan").build().unwrap();
    let layer = MetricsLayer::builder()
        .recorder(prom.recorder())
        .max_label_sets(CAP)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/items/{id}", any(|| async { "item" }))
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move {
                StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT)
            }),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(layer)
        .merge(metrics_router(prom.handle()));
    let addr = serve(app).await;

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, next) = (client.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::new();
            while next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                let method = match rng.u8(0..4) {
                    0 => Method::GET,
                    1 => Method::POST,
                    // Random custom methods: must all become `_OTHER`.
                    _ => Method::from_bytes(format!("X{}", rng.u32(..)).as_bytes()).unwrap(),
                };
                let path = match rng.u8(0..3) {
                    0 => format!("/items/{}", rng.u64(..)),
                    1 => format!("/status/{}", rng.u16(200..600)),
                    _ => format!("/scan/{}/{}", rng.u64(..), rng.u64(..)),
                };
                let req = Request::builder()
                    .method(method)
                    .uri(format!("http://{addr}{path}"))
                    .body(Empty::new())
                    .unwrap();
                let res = client.request(req).await.unwrap();
                res.into_body().collect().await.unwrap();
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }

    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sets = series(&text, DUR);
    assert!(sets.len() <= CAP, "{} series > cap {CAP}", sets.len());
    // Every request was counted: the overflow series took the rest.
    let total: f64 = common::samples(&text, DUR, &[]).iter().sum();
    assert_eq!(total as usize, REQUESTS);
    let overflow = meta::OVERFLOW_LABEL_VALUE;
    assert!(
        sample(
            &text,
            DUR,
            &[
                (l::HTTP_ROUTE, overflow),
                (l::HTTP_REQUEST_METHOD, overflow),
                (l::HTTP_RESPONSE_STATUS_CODE, overflow)
            ]
        )
        .unwrap()
            > 0.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            meta::CARDINALITY_OVERFLOW_TOTAL,
            &[(l::METRIC, "http_server_request_duration_seconds")]
        )
        .unwrap()
            > 0.0
    );
    // 100,000 requests ended one way or another: the in-flight gauge did not leak.
    assert_eq!(
        sample(&text, "http_server_active_requests", &[]),
        Some(0.0),
        "{text}"
    );
    // No raw path or custom method leaked into a label.
    assert!(!text.contains("/scan/") && !text.contains("method=\"X"), "{text}");
}
