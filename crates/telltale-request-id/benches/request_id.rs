//! Per-request cost of `RequestIdLayer` over a bare `tower::service_fn`.
//!
//! Run: `cargo bench -p telltale-request-id --bench request_id -- --warm-up-time 1 --measurement-time 3`
//!
//! Services are built once and reused; each iteration builds a request, calls
//! `poll_ready` and `call` and polls the response future to completion with a no-op
//! waker (the handler is always ready, so no runtime is needed and none is measured).

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use telltale_request_id::RequestId;
use telltale_request_id::RequestIdLayer;
use tower::{Layer, Service, service_fn};

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const VALID_ID: HeaderValue = HeaderValue::from_static("0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e10");

fn run<S>(svc: &mut S, req: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => unreachable!("service_fn is always ready"),
    }
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(res)) => res,
        _ => unreachable!("the handler completes on first poll"),
    }
}

fn request(id: Option<&HeaderValue>) -> Request<()> {
    let mut req = Request::new(());
    if let Some(id) = id {
        req.headers_mut().insert("x-request-id", id.clone());
    }
    req
}

fn bench(c: &mut Criterion) {
    // Like any axum handler, this one answers with a header (content-type), so the
    // response header map is already allocated, as it is in a real server.
    let handler = || {
        service_fn(|_req: Request<()>| async {
            let mut res = Response::new(());
            res.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
            Ok::<_, Infallible>(res)
        })
    };
    let valid = VALID_ID;
    let invalid = HeaderValue::from_static("has space");

    let mut g = c.benchmark_group("request_id");
    let mut bare = handler();
    g.bench_function("bare/with_id", |b| {
        b.iter(|| black_box(run(&mut bare, request(Some(&valid)))))
    });
    g.bench_function("bare/no_id", |b| {
        b.iter(|| black_box(run(&mut bare, request(None))))
    });

    let mut layered = RequestIdLayer::new().layer(handler());
    g.bench_function("layer/valid_id", |b| {
        b.iter(|| black_box(run(&mut layered, request(Some(&valid)))))
    });
    g.bench_function("layer/no_id_uuid_v7", |b| {
        b.iter(|| black_box(run(&mut layered, request(None))))
    });
    g.bench_function("layer/invalid_id_uuid_v7", |b| {
        b.iter(|| black_box(run(&mut layered, request(Some(&invalid)))))
    });

    let mut v4 = RequestIdLayer::new().with_uuid_v4().layer(handler());
    g.bench_function("layer/no_id_uuid_v4", |b| {
        b.iter(|| black_box(run(&mut v4, request(None))))
    });
    g.finish();

    c.bench_function("generate/uuid_v7", |b| {
        b.iter(telltale_request_id::generate::uuid_v7)
    });
    c.bench_function("generate/uuid_v4", |b| {
        b.iter(telltale_request_id::generate::uuid_v4)
    });
    // The same id made with uuid's own `now_v7()` (global mutex) and the usual
    // `HeaderValue::from_str` copy, for comparison.
    c.bench_function("generate/uuid_crate_now_v7_formatted", |b| {
        b.iter(|| {
            let mut buf = [0u8; 36];
            let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
            RequestId::parse(text).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
