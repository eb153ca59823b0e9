//! Per-request cost of `RequestIdLayer` over a bare `tower::service_fn` and inside a real
//! axum router (against the bare router and a no-op layer), with tower-http's
//! `SetRequestId` + `PropagateRequestId` measured alongside for comparison.
//!
//! Run: `cargo bench -p telltale-request-id --bench request_id -- --warm-up-time 1 --measurement-time 3`
//!
//! Services are built once and reused; each iteration builds a request, calls
//! `poll_ready` and `call` and polls the response future to completion with a no-op
//! waker (the handler is always ready, so no runtime is needed and none is measured).
//!
//! After the criterion groups, the same cases run interleaved, many short rounds each,
//! and the minimum per round is printed: on a shared, noisy machine the minimum is the
//! steadiest estimate of the uncontended cost, and interleaving exposes bare and layered
//! services to the same noise.
//!
//! `REQUEST_ID_BENCH_ONLY=<case> target/release/deps/request_id-*` runs one case a
//! million times (`REQUEST_ID_BENCH_ITERS` to change) and exits, for `perf record`,
//! `strace -c` (syscalls) or `valgrind --tool=dhat` (allocations).

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use criterion::Criterion;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use telltale_request_id::{RequestId, RequestIdLayer};
use tower::{Layer, Service, service_fn};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const INVALID_ID: HeaderValue = HeaderValue::from_static("has space");

/// Stands in for axum's `MatchedPath`, which the router inserts into every routed
/// request's extensions.
#[derive(Clone)]
struct RouteMarker;

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

/// Like any axum handler, it answers with a header (content-type), so the response
/// header map is allocated by the handler, as in a real server.
fn plain_handler()
-> impl Service<Request<()>, Response = Response<()>, Error = Infallible, Future: Send> + Clone {
    service_fn(|_req: Request<()>| async {
        let mut res = Response::new(());
        res.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
        Ok::<_, Infallible>(res)
    })
}

/// As `plain_handler`, and also inserts an extension as axum's router does
/// (`MatchedPath`): the request's extension map then exists whether or not the
/// request-id layer runs first.
fn axum_like_handler()
-> impl Service<Request<()>, Response = Response<()>, Error = Infallible, Future: Send> + Clone {
    service_fn(|mut req: Request<()>| async move {
        req.extensions_mut().insert(RouteMarker);
        let mut res = Response::new(());
        res.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
        Ok::<_, Infallible>(res)
    })
}

/// The headers a request typically carries by the time it reaches a service behind a
/// proxy: what hyper hands the service, in wire order, the request id last (proxies
/// append it). Used by the `browser/*` cases, so that a layer's header lookup is
/// measured in a map of realistic size and not only in a map of one.
fn browser_request(id: Option<&HeaderValue>) -> Request<()> {
    use http::header::{
        ACCEPT, ACCEPT_ENCODING, ACCEPT_LANGUAGE, AUTHORIZATION, CONTENT_LENGTH, HOST, USER_AGENT,
    };
    const FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
    const FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
    const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
    let mut req = Request::new(());
    let h = req.headers_mut();
    h.reserve(12);
    for (name, value) in [
        (HOST, "orders.internal:8080"),
        (
            USER_AGENT,
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/145.0",
        ),
        (ACCEPT, "application/json"),
        (ACCEPT_ENCODING, "gzip, deflate, br"),
        (ACCEPT_LANGUAGE, "en-GB,en;q=0.5"),
        (AUTHORIZATION, "Bearer eyJhbGciOi.e30.sig"),
        (CONTENT_LENGTH, "0"),
        (FORWARDED_FOR, "203.0.113.7, 10.0.0.12"),
        (FORWARDED_PROTO, "https"),
        (
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ] {
        h.append(name, HeaderValue::from_static(value));
    }
    if let Some(id) = id {
        h.append("x-request-id", id.clone());
    }
    req
}

type Case = (&'static str, Box<dyn FnMut()>);

/// `ids` are sent in turn (none: no header). Valid cases cycle through distinct random
/// UUIDs, as real traffic does: one fixed id would let the branch predictor learn the
/// validation loop and flatter the layer.
fn case<S>(name: &'static str, svc: S, ids: Vec<HeaderValue>) -> Case
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible> + 'static,
{
    case_with(name, svc, ids, request)
}

/// As [`case`], with the request built by `make` (e.g. [`browser_request`]).
fn case_with<S>(
    name: &'static str,
    mut svc: S,
    ids: Vec<HeaderValue>,
    make: fn(Option<&HeaderValue>) -> Request<()>,
) -> Case
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible> + 'static,
{
    let mut next = 0;
    (
        name,
        Box::new(move || {
            let id = ids.get(next % ids.len().max(1));
            next = next.wrapping_add(1);
            black_box(run(&mut svc, make(id)));
        }),
    )
}

/// What wraps the route in the `axum/*` cases.
#[derive(Clone, Copy)]
enum Wrap {
    /// Nothing: the bare router.
    None,
    /// A layer that does nothing (`MapRequestLayer` with the identity): what axum itself
    /// charges for any `Router::layer` (the boxed route service cloned per request, the
    /// response mapped back into `axum::body::Body`), paid once by `server_layer()`'s
    /// whole stack and by every other layer a user adds.
    Noop,
    /// A layer that only inserts one small extension (a `u64`): what any layer that adds
    /// a request extension pays inside a router, whose map already holds axum's three
    /// (`OriginalUri`, `MatchedPath`, the path parameters) and must grow for a fourth.
    Extension,
    /// `RequestIdLayer`.
    RequestId,
    /// The peer: tower-http's `SetRequestId` (any incoming value kept, else a UUIDv4)
    /// and `PropagateRequestId`, as its docs compose them.
    TowerHttp,
}

/// tower-http's request-id pair, for comparison: it keeps whatever value arrives (no
/// validation), generates UUIDv4s through `uuid` (here with `fast-rng`, so no system
/// call), has no current-id scope, and copies the id from the request headers to the
/// response.
fn tower_http_pair() -> (SetRequestIdLayer<MakeRequestUuid>, PropagateRequestIdLayer) {
    (
        SetRequestIdLayer::x_request_id(MakeRequestUuid),
        PropagateRequestIdLayer::x_request_id(),
    )
}

/// A real axum `Router` (one route, a handler answering with a content-type header),
/// finished with `.with_state(())` as `axum::serve` does: the "bare service" as an axum
/// user has it. The router inserts `MatchedPath` into every routed request.
fn axum_router(wrap: Wrap) -> axum::Router {
    let router = axum::Router::new().route(
        "/orders/{id}",
        axum::routing::get(|| async { ([(CONTENT_TYPE, TEXT_PLAIN)], "") }),
    );
    let router = match wrap {
        Wrap::None => router,
        Wrap::Noop => router.layer(tower::util::MapRequestLayer::new(
            |r: Request<axum::body::Body>| r,
        )),
        Wrap::Extension => router.layer(tower::util::MapRequestLayer::new(
            |mut r: Request<axum::body::Body>| {
                r.extensions_mut().insert(black_box(42u64));
                r
            },
        )),
        Wrap::RequestId => router.layer(RequestIdLayer::new()),
        Wrap::TowerHttp => router.layer(tower_http_pair()),
    };
    router.with_state(())
}

fn axum_case(name: &'static str, mut router: axum::Router, ids: Vec<HeaderValue>) -> Case {
    let mut next = 0;
    (
        name,
        Box::new(move || {
            let mut req = Request::get("/orders/42")
                .body(axum::body::Body::empty())
                .unwrap();
            if let Some(id) = ids.get(next % ids.len().max(1)) {
                req.headers_mut().insert("x-request-id", id.clone());
            }
            next = next.wrapping_add(1);
            let mut cx = Context::from_waker(Waker::noop());
            let mut fut = pin!(Service::call(&mut router, req));
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(res)) => {
                    black_box(res);
                }
                _ => unreachable!("the handler completes on first poll"),
            }
        }),
    )
}

fn random_ids() -> Vec<HeaderValue> {
    (0..1024)
        .map(|_| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap())
        .collect()
}

fn cases() -> Vec<Case> {
    let valid = random_ids;
    let invalid = || vec![INVALID_ID];
    vec![
        case("bare/valid_id", plain_handler(), valid()),
        case("bare/no_id", plain_handler(), vec![]),
        case(
            "layer/valid_id",
            RequestIdLayer::new().layer(plain_handler()),
            valid(),
        ),
        case(
            "layer/no_id_uuid_v7",
            RequestIdLayer::new().layer(plain_handler()),
            vec![],
        ),
        case(
            "layer/invalid_id_uuid_v7",
            RequestIdLayer::new().layer(plain_handler()),
            invalid(),
        ),
        case(
            "layer/no_id_uuid_v4",
            RequestIdLayer::new().with_uuid_v4().layer(plain_handler()),
            vec![],
        ),
        case(
            "tower_http/valid_id",
            tower_http_pair().layer(plain_handler()),
            valid(),
        ),
        case(
            "tower_http/no_id_uuid_v4",
            tower_http_pair().layer(plain_handler()),
            vec![],
        ),
        case("axum_like/bare/valid_id", axum_like_handler(), valid()),
        case(
            "axum_like/layer/valid_id",
            RequestIdLayer::new().layer(axum_like_handler()),
            valid(),
        ),
        case("axum_like/bare/no_id", axum_like_handler(), vec![]),
        case(
            "axum_like/layer/no_id_uuid_v7",
            RequestIdLayer::new().layer(axum_like_handler()),
            vec![],
        ),
        case_with("browser/bare/valid_id", plain_handler(), valid(), browser_request),
        case_with(
            "browser/layer/valid_id",
            RequestIdLayer::new().layer(plain_handler()),
            valid(),
            browser_request,
        ),
        case_with("browser/bare/no_id", plain_handler(), vec![], browser_request),
        case_with(
            "browser/layer/no_id_uuid_v7",
            RequestIdLayer::new().layer(plain_handler()),
            vec![],
            browser_request,
        ),
        axum_case("axum/bare/valid_id", axum_router(Wrap::None), valid()),
        axum_case("axum/noop_layer/valid_id", axum_router(Wrap::Noop), valid()),
        axum_case("axum/ext_layer/valid_id", axum_router(Wrap::Extension), valid()),
        axum_case("axum/layer/valid_id", axum_router(Wrap::RequestId), valid()),
        axum_case("axum/bare/no_id", axum_router(Wrap::None), vec![]),
        axum_case("axum/noop_layer/no_id", axum_router(Wrap::Noop), vec![]),
        axum_case("axum/ext_layer/no_id", axum_router(Wrap::Extension), vec![]),
        axum_case("axum/layer/no_id_uuid_v7", axum_router(Wrap::RequestId), vec![]),
        axum_case("axum/tower_http/valid_id", axum_router(Wrap::TowerHttp), valid()),
        axum_case(
            "axum/tower_http/no_id_uuid_v4",
            axum_router(Wrap::TowerHttp),
            vec![],
        ),
    ]
}

/// A branch-free variant of telltale-core's validation loop, to measure what it would
/// save (see docs/perf/request-id.md): `&` instead of `&&` lets LLVM vectorise it and
/// removes the data-dependent branches that random hex ids mispredict.
#[allow(clippy::manual_range_contains)] // explicit `&` on purpose: no short-circuit branches
fn validate_branch_free(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len() <= telltale_core::request_id::MAX_LEN
        && bytes.iter().fold(true, |ok, &b| {
            ok & (b >= 0x21) & (b <= 0x7e) & (b != b'"') & (b != b'\'') & (b != b'\\')
        })
}

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_id");
    for (name, mut f) in cases() {
        g.bench_function(name, |b| b.iter(&mut f));
    }
    g.finish();

    let ids = random_ids();
    let mut at = 0;
    c.bench_function("validate/core_from_header_random_uuid", |b| {
        b.iter(|| {
            at = (at + 1) % ids.len();
            RequestId::from_header(black_box(&ids[at])).is_ok()
        })
    });
    c.bench_function("validate/branch_free_random_uuid", |b| {
        b.iter(|| {
            at = (at + 1) % ids.len();
            validate_branch_free(black_box(ids[at].as_bytes()))
        })
    });

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

/// Interleaved rounds; prints the minimum ns/request of each case and its delta over
/// the matching bare case.
fn interleaved_minimum() {
    // `REQUEST_ID_BENCH_ROUNDS=<rounds>x<per round>` to change (e.g. `3000x200`: more,
    // shorter rounds give the minimum more chances to land in a quiet moment).
    let (rounds, per_round) = std::env::var("REQUEST_ID_BENCH_ROUNDS")
        .ok()
        .and_then(|v| {
            let (r, p) = v.split_once('x')?;
            Some((r.parse::<usize>().ok()?, p.parse::<u32>().ok()?.max(1)))
        })
        .unwrap_or((300, 2_000));
    let mut cases = cases();
    let mut best = vec![f64::MAX; cases.len()];
    for _ in 0..rounds {
        for ((_, f), best) in cases.iter_mut().zip(best.iter_mut()) {
            let start = Instant::now();
            for _ in 0..per_round {
                f();
            }
            *best = best.min(start.elapsed().as_secs_f64() * 1e9 / f64::from(per_round));
        }
    }
    let ns = |name: &str| {
        let at = cases.iter().position(|(n, _)| *n == name).unwrap();
        best[at]
    };
    println!("\ninterleaved minimum over {rounds} rounds x {per_round} requests (ns/request):");
    for (name, _) in &cases {
        let own = ns(name);
        // The matching bare case: same family (the prefix before `layer/`, `bare/`...),
        // same id case.
        let family = ["axum_like/", "axum/", "browser/"]
            .into_iter()
            .find(|f| name.starts_with(f))
            .unwrap_or("");
        let id_case = if name.contains("no_id") {
            "no_id"
        } else {
            "valid_id"
        };
        let baseline = &format!("{family}bare/{id_case}");
        if name.contains("/bare/") || name.starts_with("bare/") {
            println!("  {name:<32} {own:>8.1}");
        } else if name.starts_with("axum/layer/") || name.starts_with("axum/tower_http/") {
            let (noop, ext) = if name.contains("no_id") {
                ("axum/noop_layer/no_id", "axum/ext_layer/no_id")
            } else {
                ("axum/noop_layer/valid_id", "axum/ext_layer/valid_id")
            };
            println!(
                "  {name:<32} {own:>8.1}  (+{:.1} over {baseline}, +{:.1} over {noop}, +{:.1} over {ext})",
                own - ns(baseline),
                own - ns(noop),
                own - ns(ext)
            );
        } else {
            println!(
                "  {name:<32} {own:>8.1}  (+{:.1} over {baseline})",
                own - ns(baseline)
            );
        }
    }
}

fn main() {
    if let Ok(only) = std::env::var("REQUEST_ID_BENCH_ONLY") {
        let (_, mut f) = cases()
            .into_iter()
            .find(|(n, _)| *n == only)
            .unwrap_or_else(|| panic!("no case {only:?}"));
        let iterations = std::env::var("REQUEST_ID_BENCH_ITERS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        for _ in 0..iterations {
            f();
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip it there.
    if std::env::args().any(|a| a == "--bench") {
        interleaved_minimum();
    }
}
