//! The policy as a tower `Layer` for HTTP clients (hyper-util's client, tonic `Channel`s).
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::ServiceBuilder;
//! use telltale_resilience::{ClientPolicy, Retry};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let policy = ClientPolicy::builder("inventory")
//!     .timeout(Duration::from_millis(300))
//!     .retry(Retry::exponential())
//!     .build()
//!     .unwrap();
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let service = ServiceBuilder::new().layer(policy.layer()).service(client);
//! # let _ = service;
//! # }
//! ```
//!
//! # Bodies
//!
//! The request body type must implement [`RetryBody`]: `Full<Bytes>` (hyper clients)
//! and, with feature `tonic`, `tonic::body::Body`. A body of known size up to the replay
//! cap is buffered before the first attempt. A body of unknown size (a gRPC request) is
//! recorded while the first attempt sends it, like linkerd's replay body: if it was read
//! to the end within the cap, it can be replayed; otherwise the call is not retried.
//! A `tonic::body::Body` is first read as far as it is ready without waiting: a unary
//! call's one message always is, so the call can be replayed even when the first attempt
//! never read it (tonic drops the request unread when the connection is refused). A
//! streaming call sends the part read ahead first, then the rest as it comes.
//!
//! # gRPC
//!
//! For gRPC requests (`content-type: application/grpc…`) the time this attempt may take
//! (the per-attempt timeout, or what is left of the overall deadline if less) is sent as
//! `grpc-timeout`, so the server can give up when the client does. `grpc-status`
//! `UNAVAILABLE` in the response headers (trailers-only responses, which is how tonic and
//! grpc-go servers answer a call that fails before its first message) is retried when the
//! call may be repeated: `idempotency-key` metadata, or a policy with
//! [`Retry::retry_non_idempotent`](crate::Retry::retry_non_idempotent) (see
//! [what is retried](crate::retry#what-is-retried)). A
//! status carried in trailers after response headers is not retried, as gRFC A6
//! prescribes (the call is committed once headers arrive). With a tonic `Channel`, the
//! circuit breaker and the attempt counter still see it: the response body is wrapped
//! (it stays a `tonic::body::Body`) and classifies the attempt when the trailers arrive
//! (see [`policy`](crate::policy#grpc-status-in-trailers)). Other response body types
//! are classified at the headers: for gRPC over a raw hyper client, map its `Incoming`
//! body into `tonic::body::Body` (one box per response) inside the policy layer, and the
//! trailers reach the breaker too (feature `tonic`):
//!
//! ```
//! # #[cfg(feature = "tonic")] {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use telltale_resilience::{CircuitBreaker, ClientPolicy};
//! use tower::ServiceBuilder;
//! use tower::util::MapResponseLayer;
//!
//! let policy = ClientPolicy::builder("inventory-grpc")
//!     .circuit_breaker(CircuitBreaker::consecutive_failures(5))
//!     .build()
//!     .unwrap();
//! let h2 = Client::builder(TokioExecutor::new())
//!     .http2_only(true)
//!     .build_http::<Full<Bytes>>();
//! let client = ServiceBuilder::new()
//!     .layer(policy.layer())
//!     .layer(MapResponseLayer::new(|res: http::Response<hyper::body::Incoming>| {
//!         res.map(tonic::body::Body::new)
//!     }))
//!     .service(h2);
//! # let _ = client;
//! # }
//! ```
//!
//! The client metrics and spans see the trailers status either way (they end at the
//! body's end).
//!
//! The service's future is boxed (the retry loop is an `async fn`): one allocation per
//! logical call.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use telltale_core::headers::{GRPC_TIMEOUT, IDEMPOTENCY_KEY};
use tower::{Layer, Service, ServiceExt};

use crate::error::{BoxError, ResilienceError};
use crate::policy::{AttemptCtx, Attempts, BodyEnd, BoxFuture, CallSpec, ClientPolicy, PendingVerdict};
use crate::retry::reason;

// === RetryBody ===

/// A request body type the retry layer can replay.
pub trait RetryBody: Body<Data = Bytes> + Send + Sized + 'static {
    /// A body holding these bytes (for a replayed attempt).
    fn from_bytes(bytes: Bytes) -> Self;

    /// Wraps the body so the bytes it sends are recorded (for bodies of unknown size).
    /// The default does not record: such bodies are sent once.
    fn record(self, recorder: Recorder) -> Self {
        drop(recorder);
        self
    }
}

impl RetryBody for Full<Bytes> {
    fn from_bytes(bytes: Bytes) -> Self {
        Full::new(bytes)
    }
}

#[cfg(feature = "tonic")]
impl RetryBody for tonic::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        tonic::body::Body::new(Full::new(bytes))
    }

    fn record(self, recorder: Recorder) -> Self {
        tonic::body::Body::new(RecordingBody {
            inner: self,
            recorder,
        })
    }
}

/// Where a [`RecordingBody`] keeps what it sent.
#[derive(Debug, Clone)]
pub struct Recorder(Arc<Mutex<Recording>>);

#[derive(Debug)]
struct Recording {
    buf: BytesMut,
    cap: usize,
    overflow: bool,
    complete: bool,
}

impl Recorder {
    fn new(cap: usize) -> Self {
        Recorder(Arc::new(Mutex::new(Recording {
            buf: BytesMut::new(),
            cap,
            overflow: false,
            complete: false,
        })))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Recording) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The recorded body if it was sent completely within the cap.
    fn take(&self) -> Result<Bytes, &'static str> {
        self.with(|r| {
            if r.overflow {
                Err(reason::BODY_TOO_LARGE)
            } else if !r.complete {
                Err(reason::BODY_STREAMING)
            } else {
                Ok(std::mem::take(&mut r.buf).freeze())
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A body that records the bytes it yields, up to a cap, for replay.
    #[derive(Debug)]
    pub struct RecordingBody<B> {
        #[pin]
        inner: B,
        recorder: Recorder,
    }
}

impl<B: Body<Data = Bytes>> Body for RecordingBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll_frame(cx));
        this.recorder.with(|r| match &res {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if !r.overflow && r.buf.len() + data.len() <= r.cap {
                        r.buf.extend_from_slice(data);
                    } else {
                        r.overflow = true;
                        r.buf = BytesMut::new();
                    }
                }
            }
            Some(Err(_)) => r.overflow = true,
            None => r.complete = true,
        });
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.recorder.with(|r| r.complete = true);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A response body that classifies its attempt when it ends (gRPC status in
    /// trailers; see [`PendingVerdict`]).
    struct VerdictBody<B> {
        #[pin]
        inner: B,
        verdict: Option<PendingVerdict>,
    }
}

impl<B: Body<Data = Bytes>> Body for VerdictBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll_frame(cx));
        let end = match &res {
            Some(Ok(frame)) => frame.trailers_ref().map(BodyEnd::Trailers),
            Some(Err(_)) => Some(BodyEnd::Error),
            None => Some(BodyEnd::NoTrailers),
        };
        if let Some(end) = end
            && let Some(verdict) = this.verdict.take()
        {
            verdict.finish(end);
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        // While the verdict is pending, ask to be polled once more: the end (with or
        // without trailers) is what gives it.
        self.verdict.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === Read-ahead (tonic) ===

/// What [`read_ahead`] got from a body.
#[cfg(feature = "tonic")]
enum ReadAhead {
    /// The whole body, within the cap.
    All(Bytes),
    /// The frames it had ready before it would wait (or went over the cap), in order.
    Some(std::collections::VecDeque<Frame<Bytes>>),
    /// The body failed (an encoding error of the caller's message).
    Failed(tonic::Status),
}

/// Reads the frames `body` has ready without waiting, until it ends, would wait, yields
/// trailers or passes `cap` bytes. A unary gRPC call's body (one encoded message) is
/// ready at once, so it ends here and can be replayed even when the first attempt never
/// reads it: tonic drops a request unpolled when its connection fails, so recording the
/// body as it is sent (what streaming calls rely on) would see nothing. A streaming call
/// whose stream is not ready yet is sent as usual, its ready prefix first.
#[cfg(feature = "tonic")]
async fn read_ahead(body: &mut tonic::body::Body, cap: usize) -> ReadAhead {
    use std::collections::VecDeque;
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut len = 0usize;
    std::future::poll_fn(|cx| {
        loop {
            if body.is_end_stream() {
                break;
            }
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(None) => break,
                Poll::Ready(Some(Ok(frame))) => {
                    let more = match frame.data_ref() {
                        Some(data) => {
                            len = len.saturating_add(data.len());
                            len <= cap
                        }
                        None => false,
                    };
                    frames.push_back(frame);
                    if !more {
                        return Poll::Ready(Ok(false));
                    }
                }
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Err(status)),
                // Registered the waker; nothing is lost if it fires later.
                Poll::Pending => return Poll::Ready(Ok(false)),
            }
        }
        Poll::Ready(Ok(true))
    })
    .await
    .map_or_else(ReadAhead::Failed, |ended| {
        if ended {
            let mut all = BytesMut::with_capacity(len);
            for f in &frames {
                if let Some(d) = f.data_ref() {
                    all.extend_from_slice(d);
                }
            }
            ReadAhead::All(all.freeze())
        } else {
            ReadAhead::Some(frames)
        }
    })
}

#[cfg(feature = "tonic")]
pin_project_lite::pin_project! {
    /// Frames already read from `inner`, then the rest of `inner`.
    struct Prefixed<B> {
        prefix: std::collections::VecDeque<Frame<Bytes>>,
        #[pin]
        inner: B,
    }
}

#[cfg(feature = "tonic")]
impl<B: Body<Data = Bytes>> Body for Prefixed<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        match this.prefix.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => this.inner.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let ready: u64 = self
            .prefix
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(ready));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(ready));
        }
        hint
    }
}

// === Layer and Service ===

/// The policy as a tower layer (see the module docs).
#[derive(Debug, Clone)]
pub struct ClientPolicyLayer {
    policy: ClientPolicy,
}

impl ClientPolicy {
    /// The policy as a tower layer for HTTP clients and tonic channels.
    pub fn layer(&self) -> ClientPolicyLayer {
        ClientPolicyLayer { policy: self.clone() }
    }
}

impl<S> Layer<S> for ClientPolicyLayer {
    type Service = ClientPolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientPolicyService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`ClientPolicyLayer`].
#[derive(Debug, Clone)]
pub struct ClientPolicyService<S> {
    inner: S,
    policy: ClientPolicy,
}

enum Replay {
    /// Bytes to rebuild the body from.
    Bytes(Bytes),
    /// Being recorded by the first attempt.
    Recorded(Recorder),
    /// Cannot be replayed.
    No(&'static str),
}

struct TowerAttempts<S, B> {
    inner: S,
    parts: http::request::Parts,
    first: Option<B>,
    replay: Replay,
    grpc: bool,
    dependency: Arc<str>,
}

impl<S, B, ResB> Attempts for TowerAttempts<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: RetryBody,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;

    fn send(&mut self, ctx: AttemptCtx) -> BoxFuture<'_, Result<Response<ResB>, ResilienceError>> {
        let body = match self.first.take() {
            Some(b) => Some(b),
            None => match &self.replay {
                Replay::Bytes(b) => Some(B::from_bytes(b.clone())),
                _ => None,
            },
        };
        let mut req = Request::from_parts(clone_parts(&self.parts), ());
        if self.grpc
            && let Some(limit) = ctx.limit
        {
            req.headers_mut()
                .insert(GRPC_TIMEOUT, crate::grpc_timeout::header_value(limit));
        }
        let dependency = self.dependency.clone();
        let inner = &mut self.inner;
        Box::pin(async move {
            let Some(body) = body else {
                return Err(ResilienceError::Other {
                    dependency,
                    source: "request body could not be replayed".into(),
                });
            };
            let req = req.map(|()| body);
            let svc = inner
                .ready()
                .await
                .map_err(|e| ResilienceError::from_transport(&dependency, e.into()))?;
            svc.call(req)
                .await
                .map_err(|e| ResilienceError::from_transport(&dependency, e.into()))
        })
    }

    fn defer(
        &mut self,
        response: &mut Response<ResB>,
        verdict: PendingVerdict,
    ) -> Result<(), PendingVerdict> {
        // Only a body type that can hold the wrapper without changing the service's
        // response type can carry the verdict: tonic's type-erased `Body`.
        #[cfg(feature = "tonic")]
        if let Some(body) =
            (response.body_mut() as &mut dyn std::any::Any).downcast_mut::<tonic::body::Body>()
        {
            let inner = std::mem::take(body);
            *body = tonic::body::Body::new(VerdictBody {
                inner,
                verdict: Some(verdict),
            });
            return Ok(());
        }
        let _ = response;
        Err(verdict)
    }

    fn replayable(&mut self) -> Result<(), &'static str> {
        if let Replay::Recorded(rec) = &self.replay {
            self.replay = match rec.take() {
                Ok(b) => Replay::Bytes(b),
                Err(why) => Replay::No(why),
            };
        }
        match &self.replay {
            Replay::Bytes(_) => Ok(()),
            Replay::No(why) => Err(why),
            Replay::Recorded(_) => Err(reason::BODY_STREAMING),
        }
    }
}

fn clone_parts(p: &http::request::Parts) -> http::request::Parts {
    let mut req = Request::new(());
    *req.method_mut() = p.method.clone();
    *req.uri_mut() = p.uri.clone();
    *req.version_mut() = p.version;
    *req.headers_mut() = p.headers.clone();
    *req.extensions_mut() = p.extensions.clone();
    req.into_parts().0
}

impl<S, B, ResB> Service<Request<B>> for ClientPolicyService<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: RetryBody,
    B::Error: Into<BoxError>,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = ResilienceError;
    type Future = BoxFuture<'static, Result<Response<ResB>, ResilienceError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each attempt waits for the inner service's readiness itself (a retry needs it
        // again, after the back-off), so this service is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, inner);
        let policy = self.policy.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let dependency = policy.0.name.clone();
            let idempotent = telltale_core::method::is_idempotent(&parts.method)
                || parts.headers.contains_key(IDEMPOTENCY_KEY);
            let grpc = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            let host = policy.wants_host().then(|| {
                let a = parts.uri.authority();
                let port = parts.uri.port_u16().unwrap_or(
                    if parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
                        443
                    } else {
                        80
                    },
                );
                format!("{}:{}", a.map_or("", |a| a.host()), port)
            });
            let cap = policy.max_replay_body();
            let (first, replay) = if !policy.retries() {
                (body, Replay::No(reason::MAX_ATTEMPTS))
            } else {
                match body.size_hint().exact() {
                    Some(n) if n as usize <= cap => {
                        let bytes = body
                            .collect()
                            .await
                            .map_err(|e| ResilienceError::Other {
                                dependency: dependency.clone(),
                                source: e.into(),
                            })?
                            .to_bytes();
                        (B::from_bytes(bytes.clone()), Replay::Bytes(bytes))
                    }
                    Some(_) => (body, Replay::No(reason::BODY_TOO_LARGE)),
                    #[allow(unused_labels, unused_mut)]
                    None => 'read: {
                        let mut body = body;
                        // tonic drops a request unread when its connection fails: what
                        // the body has ready (a unary call's one message) is read now,
                        // so that call can be replayed. See `read_ahead`.
                        #[cfg(feature = "tonic")]
                        if let Some(b) =
                            (&mut body as &mut dyn std::any::Any).downcast_mut::<tonic::body::Body>()
                        {
                            match read_ahead(b, cap).await {
                                ReadAhead::All(bytes) => {
                                    break 'read (B::from_bytes(bytes.clone()), Replay::Bytes(bytes));
                                }
                                ReadAhead::Some(prefix) => {
                                    let rest = std::mem::take(b);
                                    *b = tonic::body::Body::new(Prefixed { prefix, inner: rest });
                                }
                                ReadAhead::Failed(status) => {
                                    return Err(ResilienceError::Other {
                                        dependency: dependency.clone(),
                                        source: status.into(),
                                    });
                                }
                            }
                        }
                        let rec = Recorder::new(cap);
                        (body.record(rec.clone()), Replay::Recorded(rec))
                    }
                }
            };
            let mut attempts = TowerAttempts {
                inner,
                parts,
                first: Some(first),
                replay,
                grpc,
                dependency,
            };
            // A deadline the caller gave the call (tonic's `Request::set_timeout`) bounds
            // every attempt and the header each one sends, which is rewritten with the
            // time left: never longer than the caller asked.
            let callers_deadline = grpc
                .then(|| attempts.parts.headers.get(GRPC_TIMEOUT))
                .flatten()
                .and_then(crate::grpc_timeout::decode);
            let spec = CallSpec {
                idempotent,
                host: host.as_deref(),
                grpc,
                deadline: callers_deadline,
            };
            policy.run(spec, &mut attempts).await
        })
    }
}
