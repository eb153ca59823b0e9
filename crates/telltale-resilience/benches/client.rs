//! The full client stack (outer no-op middleware slot + deadline, retry, breaker,
//! bulkhead, per-attempt timeout) on a successful call, against bare reqwest, to the
//! same local axum server in the same run.
//!
//! `cargo bench -p telltale-resilience --features reqwest --bench client -- --warm-up-time 1 --measurement-time 3`

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use telltale_resilience::{Bulkhead, CircuitBreaker, ClientPolicy, Retry};
use tower::{Service, ServiceExt};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/orders/{id}",
            get(|| async { "{\"id\":42,\"status\":\"shipped\"}" }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/orders/42")
    });

    let bare = reqwest::Client::new();
    let policy = ClientPolicy::builder("bench")
        .timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(10))
        .retry(Retry::exponential().max_attempts(3).budget(0.2))
        .circuit_breaker(CircuitBreaker::failure_rate(0.5).min_calls(20))
        .bulkhead(Bulkhead::new(1024))
        .build()
        .unwrap();
    let full = policy.reqwest(reqwest::Client::new());

    let mut g = c.benchmark_group("client_get");
    g.bench_function("bare_reqwest", |b| {
        b.to_async(&rt).iter(|| async {
            let r = bare.get(&url).send().await.unwrap();
            r.bytes().await.unwrap()
        })
    });
    g.bench_function("full_resilience_stack", |b| {
        b.to_async(&rt).iter(|| async {
            let r = full.get(&url).send().await.unwrap();
            r.bytes().await.unwrap()
        })
    });
    // The machine is shared and noisy: measure bare reqwest again after the full stack,
    // and reqwest-middleware with no middleware, to bracket the comparison.
    let mw_only = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();
    g.bench_function("reqwest_middleware_empty", |b| {
        b.to_async(&rt).iter(|| async {
            let r = mw_only.get(&url).send().await.unwrap();
            r.bytes().await.unwrap()
        })
    });
    g.bench_function("bare_reqwest_again", |b| {
        b.to_async(&rt).iter(|| async {
            let r = bare.get(&url).send().await.unwrap();
            r.bytes().await.unwrap()
        })
    });
    g.finish();

    // The stack's own cost, without the network: the same policy as a tower layer over
    // a service that answers at once, against that service alone.
    let mut g = c.benchmark_group("in_process");
    let answer = || {
        tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        })
    };
    let bare_svc = answer();
    let policy_svc = tower::ServiceBuilder::new()
        .layer(policy.layer())
        .service(answer());
    g.bench_function("bare_service", |b| {
        b.to_async(&rt).iter(|| {
            let mut s = bare_svc;
            async move {
                let req = http::Request::get("http://inventory/orders/42")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                s.ready().await.unwrap().call(req).await.unwrap()
            }
        })
    });
    g.bench_function("policy_layer", |b| {
        b.to_async(&rt).iter(|| {
            let mut s = policy_svc.clone();
            async move {
                let req = http::Request::get("http://inventory/orders/42")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                s.ready().await.unwrap().call(req).await.unwrap()
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
