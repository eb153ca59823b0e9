//! Server-side protection over a real TCP listener.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use common::{metric, metrics};
use http::StatusCode;
use telltale_core::RequestId;
use telltale_resilience::server::{CatchPanicLayer, ConcurrencyLimitLayer, request_timeout};
use tokio::sync::Semaphore;

async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, task)
}

async fn boom() -> &'static str {
    panic!("kaboom")
}

#[tokio::test]
async fn panics_become_500_with_the_request_id_and_are_counted() {
    metrics();
    let app = Router::new()
        .route("/boom", get(boom))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::map_request(|mut req: Request| async move {
            req.extensions_mut().insert(RequestId::parse("req-7").unwrap());
            req
        }));
    let (url, task) = serve(app).await;
    let before = metric("telltale_server_panics_total", &[]);
    let resp = reqwest::get(format!("{url}/boom")).await.unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["x-request-id"], "req-7");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["request_id"], "req-7");
    assert!(metric("telltale_server_panics_total", &[]) >= before + 1.0);
    task.abort();
}

#[tokio::test]
async fn request_timeout_answers_the_configured_status() {
    assert!(request_timeout(Duration::from_secs(1), StatusCode::REQUEST_TIMEOUT).is_err());
    assert!(request_timeout(Duration::ZERO, StatusCode::GATEWAY_TIMEOUT).is_err());
    let app = Router::new()
        .route("/hang", get(std::future::pending::<&'static str>))
        .layer(request_timeout(Duration::from_millis(100), StatusCode::GATEWAY_TIMEOUT).unwrap());
    let (url, task) = serve(app).await;
    let started = std::time::Instant::now();
    let resp = reqwest::get(format!("{url}/hang")).await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_millis(100) + Duration::from_secs(2));
    task.abort();
}

#[tokio::test]
async fn overload_is_shed_with_503_and_retry_after() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                let g = g.clone();
                async move {
                    let _ = g.acquire().await;
                    "done"
                }
            }),
        )
        .layer(ConcurrencyLimitLayer::shed(1, Duration::from_secs(3)).unwrap());
    let (url, task) = serve(app).await;
    let first = tokio::spawn(reqwest::get(format!("{url}/work")));
    // Wait (bounded) until the first request holds the only slot.
    let client = reqwest::Client::new();
    let mut shed = None;
    for _ in 0..400 {
        let r = client
            .get(format!("{url}/work"))
            .timeout(Duration::from_millis(50))
            .send()
            .await;
        if let Ok(r) = r
            && r.status() == 503
        {
            shed = Some(r);
            break;
        }
    }
    let shed = shed.expect("second request shed");
    assert_eq!(shed.headers()["retry-after"], "3");
    gate.add_permits(1000);
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    task.abort();
}

#[tokio::test]
async fn concurrency_limit_makes_excess_requests_wait_not_fail() {
    assert!(ConcurrencyLimitLayer::wait(0).is_err());
    let gate = Arc::new(Semaphore::new(0));
    let in_app = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (g, n) = (gate.clone(), in_app.clone());
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                let (g, n) = (g.clone(), n.clone());
                async move {
                    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = g.acquire().await;
                    "done"
                }
            }),
        )
        .layer(ConcurrencyLimitLayer::wait(1).unwrap());
    let (url, task) = serve(app).await;
    let a = tokio::spawn(reqwest::get(format!("{url}/work")));
    let b = tokio::spawn(reqwest::get(format!("{url}/work")));
    assert!(
        common::eventually(Duration::from_secs(5), || {
            in_app.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await
    );
    // Only one request is in the application; the other waits (bounded check).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(in_app.load(std::sync::atomic::Ordering::SeqCst), 1);
    gate.add_permits(1000);
    assert_eq!(a.await.unwrap().unwrap().status(), 200);
    assert_eq!(b.await.unwrap().unwrap().status(), 200);
    assert_eq!(in_app.load(std::sync::atomic::Ordering::SeqCst), 2);
    task.abort();
}

/// The events of one message and their `suppressed` counts, from plain-text lines.
fn throttled(lines: &[String], message: &str) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l.contains(message))
        .map(|l| {
            let at = l.find("suppressed=").expect("a suppressed count") + "suppressed=".len();
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_overload_logs_one_shed_line_a_second_and_counts_every_shed() {
    use tower::{Layer, Service, ServiceExt};
    metrics();
    let out = common::Captured::default();
    let _guard = tracing::subscriber::set_default(out.subscriber());
    let mut svc = ConcurrencyLimitLayer::shed(1, Duration::from_secs(1))
        .unwrap()
        .layer(tower::service_fn(|_req: http::Request<String>| async {
            std::future::pending::<Result<http::Response<String>, std::convert::Infallible>>().await
        }));
    let before = metric("telltale_server_shed_total", &[]);
    let req = || http::Request::get("/orders").body(String::new()).unwrap();
    // The first call takes the only slot and never finishes.
    let _held = svc.ready().await.unwrap().call(req());
    let mut shed = async |n: usize| {
        for _ in 0..n {
            let res = svc.ready().await.unwrap().call(req()).await.unwrap();
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    shed(50).await;
    assert_eq!(throttled(&out.lines(), "overloaded"), [0], "{:#?}", out.lines());
    tokio::time::advance(Duration::from_secs(1)).await;
    shed(1).await;
    assert_eq!(throttled(&out.lines(), "overloaded"), [0, 49]);
    assert_eq!(metric("telltale_server_shed_total", &[]) - before, 51.0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_full_bulkhead_logs_one_line_a_second_and_counts_every_rejection() {
    use telltale_resilience::bulkhead::Bulkhead;
    metrics();
    let out = common::Captured::default();
    let _guard = tracing::subscriber::set_default(out.subscriber());
    let bulkhead = Bulkhead::new(1).build("throttled-dep").unwrap();
    let rejected = || {
        metric(
            "telltale_bulkhead_rejected_total",
            &[("peer_service", "throttled-dep")],
        )
    };
    let _slot = bulkhead.acquire().await.unwrap();
    for _ in 0..30 {
        assert!(bulkhead.acquire().await.is_err());
    }
    assert_eq!(throttled(&out.lines(), "bulkhead full"), [0]);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        bulkhead.clone().acquire().await.is_err(),
        "clones share the limit"
    );
    assert_eq!(throttled(&out.lines(), "bulkhead full"), [0, 29]);
    assert_eq!(rejected(), 31.0);
}
