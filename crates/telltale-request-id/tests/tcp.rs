//! End-to-end behaviour over a real TCP listener (axum::serve on 127.0.0.1:0), with
//! reqwest, hyper-util and hand-written HTTP/1.1 as clients.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::{Router, routing::get};
#[cfg(feature = "reqwest")]
use telltale_request_id::RequestIdMiddleware;
use telltale_request_id::{PropagateRequestIdLayer, RequestId, RequestIdLayer, current_request_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;

/// A server on an ephemeral port; aborted when dropped, so no test leaves it running.
struct TestServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(app: Router) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer { addr, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The application under test: CatchPanicLayer inside RequestIdLayer, as documented.
fn app() -> Router {
    Router::new()
        .route(
            "/current",
            get(|id: RequestId| async move {
                let before = current_request_id();
                tokio::task::yield_now().await;
                let after = current_request_id();
                assert_eq!(before, after, "current id stable across .await");
                assert_eq!(before.as_ref(), Some(&id), "extractor and task-local agree");
                id.to_string()
            }),
        )
        .route(
            "/handler-sets",
            get(|| async { ([("x-request-id", "set-by-handler")], "ok") }),
        )
        .route(
            "/error",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed") }),
        )
        .route(
            "/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler panicked on purpose (test)");
                }
                "unreachable"
            }),
        )
        .layer(CatchPanicLayer::new())
        .layer(RequestIdLayer::new())
}

fn response_id(headers: &HeaderMap) -> &str {
    let mut all = headers.get_all("x-request-id").iter();
    let id = all.next().expect("response has x-request-id");
    assert!(all.next().is_none(), "exactly one x-request-id");
    id.to_str().unwrap()
}

fn assert_uuid_v7(id: &str) {
    let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id:?} is not a UUID: {e}"));
    assert_eq!(uuid.get_version_num(), 7, "{id}");
    assert_eq!(id, uuid.hyphenated().to_string(), "lower-case hyphenated");
}

#[tokio::test]
async fn valid_incoming_ids_are_kept_and_echoed() {
    let server = TestServer::start(app()).await;
    let client = http_client();
    let max = "x".repeat(128);
    for id in [
        "a",
        "0190b7b4-6c1e-7a52-9d4e-3f1b2c8a9e10",
        "Root=1-5f84c7a9-abc;Parent=xyz",
        "!#$%&()*+,-./:;<=>?@[]^_`{|}~",
        max.as_str(),
    ] {
        let res = client
            .get(server.url("/current"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(response_id(res.headers()), id);
        assert_eq!(res.text().await.unwrap(), id, "handler saw the incoming id");
    }
}

#[tokio::test]
async fn invalid_incoming_ids_are_replaced_by_fresh_uuid_v7() {
    let server = TestServer::start(app()).await;
    let client = http_client();
    let too_long = "x".repeat(129);
    let bad: Vec<(&str, HeaderValue)> = vec![
        ("empty", HeaderValue::from_static("")),
        ("129 chars", HeaderValue::from_str(&too_long).unwrap()),
        (
            "non-ASCII",
            HeaderValue::from_bytes("caf\u{e9}-\u{1f600}".as_bytes()).unwrap(),
        ),
        ("double quotes", HeaderValue::from_static("\"quoted\"")),
        ("single quotes", HeaderValue::from_static("'quoted'")),
        ("backslash", HeaderValue::from_static("a\\b")),
        ("space", HeaderValue::from_static("a b")),
        ("tab", HeaderValue::from_static("a\tb")),
    ];
    let mut seen = std::collections::HashSet::new();
    for (what, value) in bad {
        let res = client
            .get(server.url("/current"))
            .header("x-request-id", value.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{what}");
        let id = response_id(res.headers()).to_owned();
        assert_ne!(id.as_bytes(), value.as_bytes(), "{what}");
        assert_uuid_v7(&id);
        assert_eq!(res.text().await.unwrap(), id, "{what}: handler saw the new id");
        assert!(seen.insert(id), "{what}: ids are fresh per request");
    }
}

/// Writes one HTTP/1.1 request by hand (clients refuse to send these bytes) and
/// returns the raw response.
async fn raw_request(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn raw_header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn newline_and_control_characters_never_come_back() {
    let server = TestServer::start(app()).await;
    // A newline cannot reach a header value: HTTP/1.1 ends the header line there (the
    // rest becomes a separate header, which is never echoed) or hyper refuses the
    // request with 400 before any layer runs. Either way no raw byte comes back.
    let cases: [(&str, &[u8], Option<&str>); 5] = [
        ("bare LF", b"abc\ninjected: yes", Some("abc")),
        ("bare CR", b"abc\rinjected: yes", None),
        ("obs-fold", b"abc\r\n injected", None),
        ("NUL", b"abc\x00def", None),
        ("ESC", b"abc\x1b[31mred", None),
    ];
    for (what, value, kept) in cases {
        let mut req =
            b"GET /current HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nx-request-id: ".to_vec();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n\r\n");
        let res = raw_request(server.addr, &req).await;
        assert!(!res.contains("injected"), "{what}: {res:?}");
        assert!(!res.contains('\u{1b}') && !res.contains('\0'), "{what}: {res:?}");
        match kept {
            Some(id) => {
                assert!(res.starts_with("HTTP/1.1 200"), "{what}: {res:?}");
                assert_eq!(raw_header(&res, "x-request-id"), Some(id), "{what}");
            }
            None => assert!(res.starts_with("HTTP/1.1 400"), "{what}: {res:?}"),
        }
    }

    // A tab and obs-text do reach the application (HTTP allows them in values): replaced.
    for value in [&b"abc\tdef"[..], &b"abc\xffdef"[..]] {
        let mut req =
            b"GET /current HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nx-request-id: ".to_vec();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n\r\n");
        let res = raw_request(server.addr, &req).await;
        assert!(res.starts_with("HTTP/1.1 200"), "{res:?}");
        assert_uuid_v7(raw_header(&res, "x-request-id").unwrap());
    }
}

#[tokio::test]
async fn missing_ids_are_generated_unique_uuid_v7() {
    let server = TestServer::start(app()).await;
    let client = http_client();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let res = client.get(server.url("/current")).send().await.unwrap();
        let id = response_id(res.headers()).to_owned();
        assert_uuid_v7(&id);
        assert_eq!(
            res.text().await.unwrap(),
            id,
            "current_request_id() == response header"
        );
        assert!(seen.insert(id));
    }
}

#[tokio::test]
async fn handler_set_header_is_not_overwritten() {
    let server = TestServer::start(app()).await;
    let res = http_client()
        .get(server.url("/handler-sets"))
        .header("x-request-id", "incoming-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response_id(res.headers()), "set-by-handler");
}

#[tokio::test]
async fn not_found_error_and_panic_responses_carry_the_id() {
    let server = TestServer::start(app()).await;
    let client = http_client();
    for (path, status) in [("/no/such/route", 404), ("/error", 500), ("/panic", 500)] {
        let res = client
            .get(server.url(path))
            .header("x-request-id", "keep-me")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(response_id(res.headers()), "keep-me", "{path}");

        let res = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert_uuid_v7(response_id(res.headers()));
    }
}

// === outbound propagation ===

/// An upstream that answers with the x-request-id it received (or `<none>`).
fn upstream() -> Router {
    Router::new().route(
        "/received",
        get(|headers: HeaderMap| async move {
            headers
                .get("x-request-id")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_else(|| "<none>".to_owned())
        }),
    )
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn reqwest_middleware_sends_the_current_id() {
    let upstream = TestServer::start(upstream()).await;
    let client = reqwest_middleware::ClientBuilder::new(http_client())
        .with(RequestIdMiddleware::new())
        .build();
    let upstream_url = upstream.url("/received");
    let front = TestServer::start(
        Router::new()
            .route(
                "/call",
                get(move || {
                    let client = client.clone();
                    let url = upstream_url.clone();
                    async move { client.get(url).send().await.unwrap().text().await.unwrap() }
                }),
            )
            .layer(RequestIdLayer::new()),
    )
    .await;

    for incoming in [Some("front-1"), None] {
        let mut req = http_client().get(front.url("/call"));
        if let Some(id) = incoming {
            req = req.header("x-request-id", id);
        }
        let res = req.send().await.unwrap();
        let id = response_id(res.headers()).to_owned();
        if let Some(incoming) = incoming {
            assert_eq!(id, incoming);
        }
        assert_eq!(res.text().await.unwrap(), id, "upstream received the front's id");
    }
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn reqwest_middleware_extension_explicit_header_and_no_scope() {
    let upstream = TestServer::start(upstream()).await;
    let client = reqwest_middleware::ClientBuilder::new(http_client())
        .with(RequestIdMiddleware::new())
        .build();
    let url = upstream.url("/received");

    let outside = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(outside, "<none>", "nothing added outside a request");

    let with_ext = client
        .get(&url)
        .with_extension(RequestId::parse("ext-7").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(with_ext.text().await.unwrap(), "ext-7");

    let explicit = telltale_request_id::with_request_id(RequestId::parse("cur-1").unwrap(), async {
        client
            .get(&url)
            .header("x-request-id", "explicit-1")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(explicit, "explicit-1", "an existing header is not overwritten");
}

#[tokio::test]
async fn tower_client_layer_sends_the_current_id() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let upstream = TestServer::start(upstream()).await;
    let transport = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let client = ServiceBuilder::new()
        .layer(PropagateRequestIdLayer::new())
        .service(transport);
    let upstream_url = upstream.url("/received");
    let front = TestServer::start(
        Router::new()
            .route(
                "/call",
                get(move || {
                    let client = client.clone();
                    let uri = upstream_url.clone();
                    async move {
                        let req = http::Request::get(uri).body(Body::empty()).unwrap();
                        let res = client.oneshot(req).await.unwrap();
                        let body = http_body_util::BodyExt::collect(res.into_body())
                            .await
                            .unwrap()
                            .to_bytes();
                        String::from_utf8(body.to_vec()).unwrap()
                    }
                }),
            )
            .layer(RequestIdLayer::new()),
    )
    .await;

    let res = http_client()
        .get(front.url("/call"))
        .header("x-request-id", "front-tower-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response_id(res.headers()), "front-tower-1");
    assert_eq!(res.text().await.unwrap(), "front-tower-1");

    let res = http_client().get(front.url("/call")).send().await.unwrap();
    let id = response_id(res.headers()).to_owned();
    assert_uuid_v7(&id);
    assert_eq!(res.text().await.unwrap(), id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_see_their_own_id() {
    let server = TestServer::start(app()).await;
    let client = http_client();
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            let url = server.url("/current");
            tokio::spawn(async move {
                let sent = format!("concurrent-{i}");
                let res = client
                    .get(url)
                    .header("x-request-id", &sent)
                    .send()
                    .await
                    .unwrap();
                let echoed = response_id(res.headers()).to_owned();
                let seen = res.text().await.unwrap();
                (sent, echoed, seen)
            })
        })
        .collect();
    for call in calls {
        let (sent, echoed, seen) = call.await.unwrap();
        assert_eq!(echoed, sent);
        assert_eq!(seen, sent, "the handler's current id is its own request's");
    }
}

/// Pins the documented layer order: with `CatchPanicLayer` *outside* the request-id
/// layer, a panic unwinds through it and the 500 has no id. (Inside, see
/// `not_found_error_and_panic_responses_carry_the_id`, it does.)
#[tokio::test]
async fn catch_panic_outside_the_layer_loses_the_id() {
    let app: Router = Router::new()
        .route(
            "/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler panicked on purpose (test)");
                }
                "unreachable"
            }),
        )
        .layer(RequestIdLayer::new())
        .layer(CatchPanicLayer::new());
    let req = http::Request::get("/panic")
        .header("x-request-id", "lost-1")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 500);
    assert!(res.headers().get("x-request-id").is_none());
}
