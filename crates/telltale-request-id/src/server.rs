//! The server layer: keep a valid incoming request id or generate one, expose it to the
//! request, echo it on the response.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use telltale_request_id::{RequestId, RequestIdLayer};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let app = Router::new()
//!     .route("/", get(|id: RequestId| async move { id.to_string() }))
//!     .layer(RequestIdLayer::new().with_uuid_v4());
//!
//! let req = Request::get("/").header("x-request-id", "order-7f3a").body(Body::empty()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["x-request-id"], "order-7f3a");
//! # }
//! ```
//!
//! Per request, [`RequestIdService`]:
//!
//! 1. reads the configured header (default `x-request-id`, first value only);
//! 2. keeps it if [`RequestId::from_header`] accepts it, otherwise generates a new id
//!    (UUIDv7 unless configured otherwise). A present but invalid value is a rejection:
//!    a `DEBUG` event on target `telltale_request_id` with the reason and the value
//!    ASCII-escaped and cut to 64 bytes, and the counter
//!    [`REJECTED_TOTAL`]`{reason}`, whose handle per reason
//!    is resolved on first use and then reused;
//! 3. inserts the [`RequestId`] into the request extensions (for the axum extractor and
//!    for layers inside this one, whose `call` runs before the response future);
//! 4. polls the inner response future inside
//!    [`with_request_id`], so
//!    [`current_request_id`](telltale_core::current_request_id) works anywhere in the
//!    handler and in the logger;
//! 5. sets the header on the response unless the response already has it.
//!
//! An `Err` from the inner service is passed through untouched (it has no headers to set):
//! axum routers never return one; for other services, turn errors into responses inside
//! this layer (e.g. axum's `HandleErrorLayer`) so they carry the id too.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use metrics::Counter;
use pin_project_lite::pin_project;
use telltale_core::headers::X_REQUEST_ID;
use telltale_core::{InvalidRequestId, RequestId, WithRequestId, with_request_id};
use tower::{Layer, Service};

use crate::generate;
use crate::names::{REASON, REASONS, REJECTED_TOTAL};

/// Longest prefix of a rejected value written (escaped) into the debug event.
const LOGGED_PREFIX: usize = 64;

// === impl RequestIdLayer ===

/// Layer that gives every request a validated id; see the [module docs](self).
///
/// Defaults: header `x-request-id`, UUIDv7 for generated ids.
#[derive(Clone)]
pub struct RequestIdLayer {
    header: HeaderName,
    generator: Generator,
}

impl RequestIdLayer {
    /// The layer with its defaults: header `x-request-id`, UUIDv7 for new ids.
    pub const fn new() -> Self {
        RequestIdLayer {
            header: X_REQUEST_ID,
            generator: Generator::UuidV7,
        }
    }

    /// Reads and writes `name` instead of `x-request-id` (e.g. `x-correlation-id`).
    pub fn with_header_name(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// Generates UUIDv7 ids (time-ordered; the default).
    pub fn with_uuid_v7(mut self) -> Self {
        self.generator = Generator::UuidV7;
        self
    }

    /// Generates UUIDv4 ids (fully random).
    pub fn with_uuid_v4(mut self) -> Self {
        self.generator = Generator::UuidV4;
        self
    }

    /// Generates ids with `make`. It is called once per request that arrives without a
    /// valid id, on the request path: keep it cheap and panic-free. Returning a
    /// [`RequestId`] means the id is validated when it is made, not per request.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use telltale_request_id::{RequestId, RequestIdLayer};
    ///
    /// static NEXT: AtomicU64 = AtomicU64::new(1);
    /// let layer = RequestIdLayer::new().with_generator(|| {
    ///     let n = NEXT.fetch_add(1, Ordering::Relaxed);
    ///     RequestId::parse(&format!("req-{n}")).expect("digits are valid")
    /// });
    /// # let _ = layer;
    /// ```
    pub fn with_generator(mut self, make: impl Fn() -> RequestId + Send + Sync + 'static) -> Self {
        self.generator = Generator::Custom(Arc::new(make));
        self
    }

    /// The header this layer reads and writes.
    pub fn header_name(&self) -> &HeaderName {
        &self.header
    }
}

impl Default for RequestIdLayer {
    fn default() -> Self {
        RequestIdLayer::new()
    }
}

impl fmt::Debug for RequestIdLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestIdLayer")
            .field("header", &self.header)
            .field("generator", &self.generator)
            .finish()
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService {
            inner,
            part: self.part(),
        }
    }
}

impl RequestIdLayer {
    /// What this layer does to each request and response, without a service or future of
    /// its own: for composing several server layers into one service (as
    /// `telltale::Telemetry::server_layer` does), so a request pays for one response
    /// future instead of one per layer. Each call makes a part with its own rejection
    /// counter handles, as [`layer`](Layer::layer) does.
    pub fn part(&self) -> RequestIdPart {
        RequestIdPart {
            shared: Arc::new(Shared {
                header: self.header.clone(),
                generator: self.generator.clone(),
                rejected: Default::default(),
            }),
        }
    }
}

// === impl RequestIdPart ===

/// [`RequestIdLayer`]'s work on one request, for a composed service (see
/// [`RequestIdLayer::part`]). A service using it must also run the response future inside
/// [`with_request_id`] with the returned id, as [`RequestIdService`] does.
///
/// ```
/// use http::{Request, Response};
/// use telltale_request_id::RequestIdLayer;
///
/// let part = RequestIdLayer::new().part();
/// let mut req = Request::get("/").header("x-request-id", "abc-123").body(()).unwrap();
/// let id = part.on_request(&mut req);
/// assert_eq!(req.extensions().get::<telltale_core::RequestId>(), Some(&id));
///
/// let mut res = Response::new(());
/// part.on_response(&mut res, id);
/// assert_eq!(res.headers()["x-request-id"], "abc-123");
/// ```
#[derive(Clone)]
pub struct RequestIdPart {
    shared: Arc<Shared>,
}

impl fmt::Debug for RequestIdPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestIdPart")
            .field("header", &self.shared.header)
            .field("generator", &self.shared.generator)
            .finish()
    }
}

impl RequestIdPart {
    /// Keeps the request's valid id or makes a new one (recording a rejection), puts it in
    /// the request's extensions and returns it.
    #[inline]
    pub fn on_request<B>(&self, req: &mut Request<B>) -> RequestId {
        let id = self.shared.resolve(req.headers());
        req.extensions_mut().insert(id.clone());
        id
    }

    /// The header this part reads and writes.
    pub fn header(&self) -> &HeaderName {
        &self.shared.header
    }

    /// Puts `id` on the response unless the handler set the header itself.
    #[inline]
    pub fn on_response<B>(&self, res: &mut Response<B>, id: RequestId) {
        set_unless_present(res, self.shared.header.clone(), id);
    }

    /// [`on_response`](Self::on_response) for a service that kept only the
    /// [`header`](Self::header) name in its per-request state, not the part.
    #[inline]
    pub fn on_response_with_header<B>(res: &mut Response<B>, header: HeaderName, id: RequestId) {
        set_unless_present(res, header, id);
    }
}

/// Never overwrite: a handler that set the header (e.g. echoing an upstream id on
/// purpose) wins.
#[inline]
fn set_unless_present<B>(res: &mut Response<B>, header: HeaderName, id: RequestId) {
    if let Entry::Vacant(slot) = res.headers_mut().entry(header) {
        slot.insert(id.into());
    }
}

// === impl Generator ===

#[derive(Clone)]
enum Generator {
    UuidV7,
    UuidV4,
    Custom(Arc<dyn Fn() -> RequestId + Send + Sync>),
}

impl Generator {
    #[inline]
    fn generate(&self) -> RequestId {
        match self {
            Generator::UuidV7 => generate::uuid_v7(),
            Generator::UuidV4 => generate::uuid_v4(),
            Generator::Custom(make) => make(),
        }
    }
}

impl fmt::Debug for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Generator::UuidV7 => "UuidV7",
            Generator::UuidV4 => "UuidV4",
            Generator::Custom(_) => "Custom",
        })
    }
}

// === impl RequestIdService ===

/// Service made by [`RequestIdLayer`]; see the [module docs](self).
pub struct RequestIdService<S> {
    inner: S,
    part: RequestIdPart,
}

/// Configuration and metric handles shared by the clones of one service.
struct Shared {
    header: HeaderName,
    generator: Generator,
    /// One counter handle per entry of [`REASONS`], resolved on first rejection.
    rejected: [OnceLock<Counter>; 3],
}

impl Shared {
    #[inline]
    fn resolve(&self, headers: &HeaderMap) -> RequestId {
        // A scan for small maps, not always `headers.get`: see `headers::SCAN_UP_TO`.
        match telltale_core::headers::first(headers, &self.header) {
            None => self.generator.generate(),
            Some(value) => match RequestId::from_header(value) {
                Ok(id) => id,
                Err(why) => self.reject(why, value),
            },
        }
    }

    #[cold]
    #[inline(never)]
    fn reject(&self, why: InvalidRequestId, value: &HeaderValue) -> RequestId {
        let fresh = self.generator.generate();
        let at = match why {
            InvalidRequestId::Empty => 0,
            InvalidRequestId::TooLong => 1,
            InvalidRequestId::ForbiddenByte(_) => 2,
        };
        self.rejected[at]
            .get_or_init(|| metrics::counter!(REJECTED_TOTAL, REASON => REASONS[at]))
            .increment(1);
        tracing::debug!(
            target: "telltale_request_id",
            header = %self.header,
            reason = why.reason(),
            detail = %why,
            len = value.len(),
            value = %Escaped(value.as_bytes()),
            request_id = %fresh,
            "rejected incoming request id, generated a new one"
        );
        fresh
    }
}

/// A header value for a log line: ASCII-escaped (`\n`, `\"`, `\\`, `\xNN`), never raw,
/// and cut to [`LOGGED_PREFIX`] bytes so a huge value cannot bloat the log.
struct Escaped<'a>(&'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self.0.len().min(LOGGED_PREFIX);
        write!(f, "{}", self.0[..cut].escape_ascii())?;
        if cut < self.0.len() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl<S: Clone> Clone for RequestIdService<S> {
    fn clone(&self) -> Self {
        RequestIdService {
            inner: self.inner.clone(),
            part: self.part.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RequestIdService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestIdService")
            .field("inner", &self.inner)
            .field("header", &self.part.shared.header)
            .field("generator", &self.part.shared.generator)
            .finish()
    }
}

impl<S> RequestIdService<S> {
    /// Wraps `inner` with the default configuration (same as `RequestIdLayer::new().layer(inner)`).
    pub fn new(inner: S) -> Self {
        RequestIdLayer::new().layer(inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestIdService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let id = self.part.on_request(&mut req);
        // The id is current while the response future is polled, not during the inner
        // `call` below: code that runs in `call` (inner layers) reads it from the request
        // extensions set just above, which saves a second scope entry per request.
        ResponseFuture {
            inner: with_request_id(id, self.inner.call(req)),
            header: Some(self.part.shared.header.clone()),
        }
    }
}

// === impl ResponseFuture ===

pin_project! {
    /// Response future of [`RequestIdService`]: runs the inner future with the current
    /// request id set, then puts the id on the response.
    pub struct ResponseFuture<F> {
        // Holds the id (the task-local's slot) and hands it back once `F` completes, so
        // the response header costs no extra clone.
        #[pin]
        inner: WithRequestId<F>,
        header: Option<HeaderName>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut res = ready!(this.inner.as_mut().poll(cx))?;
        if let Some(header) = this.header.take()
            && let Some(id) = this.inner.as_mut().take_id()
        {
            set_unless_present(&mut res, header, id);
        }
        Poll::Ready(Ok(res))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{ServiceExt, service_fn};

    fn echo_current() -> impl Service<
        Request<()>,
        Response = Response<()>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<()>, Infallible>>,
    > + Clone {
        service_fn(|req: Request<()>| async move {
            let from_ext = req.extensions().get::<RequestId>().cloned();
            let current = telltale_core::current_request_id();
            assert_eq!(from_ext, current, "extension and task-local agree");
            let mut res = Response::new(());
            if let Some(id) = current {
                res.headers_mut()
                    .insert("x-seen", HeaderValue::from_str(id.as_str()).unwrap());
            }
            Ok(res)
        })
    }

    fn req(id: Option<&[u8]>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(id) = id {
            req.headers_mut()
                .insert(X_REQUEST_ID, HeaderValue::from_bytes(id).unwrap());
        }
        req
    }

    #[tokio::test]
    async fn valid_incoming_id_is_kept_in_extensions_task_local_and_response() {
        let svc = RequestIdLayer::new().layer(echo_current());
        let res = svc.oneshot(req(Some(b"abc-123"))).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "abc-123");
        assert_eq!(res.headers()["x-seen"], "abc-123");
    }

    #[tokio::test]
    async fn missing_id_is_generated_as_uuid_v7() {
        let svc = RequestIdLayer::new().layer(echo_current());
        let res = svc.oneshot(req(None)).await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
        assert_eq!(res.headers()["x-seen"], id);
    }

    #[tokio::test]
    async fn invalid_ids_are_replaced() {
        let long = vec![b'a'; 129];
        let bad: [&[u8]; 6] = [b"", &long, b"a b", b"\"quoted\"", "é".as_bytes(), b"tab\there"];
        for bad in bad {
            let svc = RequestIdLayer::new().layer(echo_current());
            let res = svc.oneshot(req(Some(bad))).await.unwrap();
            let id = res.headers()["x-request-id"].to_str().unwrap();
            assert_ne!(id.as_bytes(), bad);
            assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
        }
    }

    #[tokio::test]
    async fn v4_and_custom_generators() {
        let svc = RequestIdLayer::new().with_uuid_v4().layer(echo_current());
        let res = svc.oneshot(req(None)).await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);

        let svc = RequestIdLayer::new()
            .with_generator(|| RequestId::parse("fixed").unwrap())
            .layer(echo_current());
        let res = svc.oneshot(req(Some(b"bad id"))).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "fixed");
    }

    #[tokio::test]
    async fn custom_header_name() {
        let name = HeaderName::from_static("x-correlation-id");
        let svc = RequestIdLayer::new()
            .with_header_name(name.clone())
            .layer(echo_current());
        let mut r = req(Some(b"ignored-because-other-header"));
        r.headers_mut().insert(&name, HeaderValue::from_static("corr-1"));
        let res = svc.oneshot(r).await.unwrap();
        assert_eq!(res.headers()["x-correlation-id"], "corr-1");
        assert!(!res.headers().contains_key("x-request-id"));
    }

    #[tokio::test]
    async fn repeated_incoming_ids_keep_the_first() {
        let svc = RequestIdLayer::new().layer(echo_current());
        let mut r = req(Some(b"first-id"));
        r.headers_mut()
            .append(X_REQUEST_ID, HeaderValue::from_static("second-id"));
        let res = svc.oneshot(r).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "first-id");
        assert_eq!(res.headers()["x-seen"], "first-id");
    }

    #[tokio::test]
    async fn handler_set_header_is_not_overwritten() {
        let svc = RequestIdLayer::new().layer(service_fn(|_req: Request<()>| async {
            let mut res = Response::new(());
            res.headers_mut()
                .insert(X_REQUEST_ID, HeaderValue::from_static("from-handler"));
            Ok::<_, Infallible>(res)
        }));
        let res = svc.oneshot(req(Some(b"incoming"))).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "from-handler");
        assert_eq!(res.headers().get_all("x-request-id").iter().count(), 1);
    }

    #[tokio::test]
    async fn errors_pass_through() {
        let svc = RequestIdLayer::new().layer(service_fn(|_req: Request<()>| async {
            Err::<Response<()>, _>("boom")
        }));
        assert_eq!(svc.oneshot(req(None)).await.unwrap_err(), "boom");
    }

    #[test]
    fn escaped_values_never_carry_raw_control_characters_or_quotes() {
        let shown = Escaped(b"a\nb\"c\\d\xff").to_string();
        assert_eq!(shown, "a\\nb\\\"c\\\\d\\xff");
        let shown = Escaped(&[b'x'; 200]).to_string();
        assert_eq!(shown.len(), LOGGED_PREFIX + 3);
        assert!(shown.ends_with("..."));
    }

    #[test]
    fn layer_new_is_const_and_debug_prints_config() {
        const LAYER: RequestIdLayer = RequestIdLayer::new();
        assert_eq!(LAYER.header_name(), "x-request-id");
        assert_eq!(
            format!("{LAYER:?}"),
            "RequestIdLayer { header: \"x-request-id\", generator: UuidV7 }"
        );
    }
}
