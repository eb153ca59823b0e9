//! A response-body wrapper that reports, exactly once, how the body ended.
//!
//! Request duration, the server span and the access log must all end when the
//! response **body** ends, not when the handler returns the response head: a streaming
//! or SSE response is otherwise measured as a few microseconds. [`ObservedBody`] wraps
//! a body and calls its [`BodyObserver`] once, with a [`BodyEnd`] saying whether the
//! body completed (with its trailers, where gRPC puts `grpc-status`), failed, or was
//! dropped unfinished because the client went away.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use std::sync::{Arc, Mutex};
//! use telltale_core::body::{BodyEnd, BodyObserver, ObservedBody};
//!
//! struct Record(Arc<Mutex<Option<(bool, u64)>>>);
//! impl BodyObserver for Record {
//!     fn on_end(self, end: BodyEnd<'_>) {
//!         *self.0.lock().unwrap() = Some((matches!(end, BodyEnd::Complete { .. }), end.bytes()));
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let seen = Arc::new(Mutex::new(None));
//! let body = ObservedBody::new(Full::new(Bytes::from_static(b"hello")), Record(seen.clone()));
//! let collected = body.collect().await.unwrap().to_bytes();
//! assert_eq!(&collected[..], b"hello");
//! assert_eq!(*seen.lock().unwrap(), Some((true, 5)));
//! # }
//! ```

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How a body ended. `Copy`, so one end can be told to several observers.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum BodyEnd<'a> {
    /// The body was sent to the end.
    Complete {
        /// Trailers, when the body ended with a trailers frame (gRPC status lives here).
        trailers: Option<&'a HeaderMap>,
        /// Data bytes sent.
        bytes: u64,
    },
    /// The body failed while streaming.
    Error {
        /// The body's error.
        error: &'a dyn fmt::Display,
        /// Data bytes sent before the failure.
        bytes: u64,
    },
    /// The body was dropped before its end: the peer hung up (or the server gave up).
    Dropped {
        /// Data bytes sent before the drop.
        bytes: u64,
    },
}

impl fmt::Debug for BodyEnd<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyEnd::Complete { trailers, bytes } => f
                .debug_struct("Complete")
                .field("trailers", trailers)
                .field("bytes", bytes)
                .finish(),
            BodyEnd::Error { error, bytes } => f
                .debug_struct("Error")
                .field("error", &format_args!("{error}"))
                .field("bytes", bytes)
                .finish(),
            BodyEnd::Dropped { bytes } => f.debug_struct("Dropped").field("bytes", bytes).finish(),
        }
    }
}

impl BodyEnd<'_> {
    /// Data bytes sent.
    pub fn bytes(&self) -> u64 {
        match self {
            BodyEnd::Complete { bytes, .. } | BodyEnd::Error { bytes, .. } | BodyEnd::Dropped { bytes } => {
                *bytes
            }
        }
    }

    /// The trailers, if the body completed with some.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        match self {
            BodyEnd::Complete { trailers, .. } => *trailers,
            _ => None,
        }
    }
}

/// Told once how an [`ObservedBody`] ended.
pub trait BodyObserver: Send + 'static {
    /// Called exactly once: at the end of the stream, on a body error, or on drop.
    fn on_end(self, end: BodyEnd<'_>);
}

impl<F> BodyObserver for F
where
    F: for<'a> FnOnce(BodyEnd<'a>) + Send + 'static,
{
    fn on_end(self, end: BodyEnd<'_>) {
        self(end)
    }
}

pin_project! {
    /// A body that reports its end to a [`BodyObserver`]. See the [module docs](self).
    pub struct ObservedBody<B: Body, O: BodyObserver> {
        #[pin]
        inner: B,
        observer: Option<O>,
        bytes: u64,
        declared: Option<u64>,
        // Set while the inner body is polled: dropped with it set, the poll panicked.
        in_poll: bool,
    }

    impl<B: Body, O: BodyObserver> PinnedDrop for ObservedBody<B, O> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(observer) = this.observer.take() {
                if *this.in_poll {
                    // Unwinding from a panic inside the body's `poll_frame`: the body
                    // failed, the client did not go away.
                    observer.on_end(BodyEnd::Error { error: &BodyPanicked, bytes: *this.bytes });
                    return;
                }
                // An empty body is never polled by hyper; it ended, it was not abandoned.
                // Nor is a body once the `Content-Length` it declared has been sent: hyper's
                // HTTP/1 writer stops there without asking a stream for its end.
                if this.inner.is_end_stream() || this.declared.is_some_and(|n| *this.bytes >= n) {
                    observer.on_end(BodyEnd::Complete { trailers: None, bytes: *this.bytes });
                } else {
                    observer.on_end(BodyEnd::Dropped { bytes: *this.bytes });
                }
            }
        }
    }
}

impl<B: Body, O: BodyObserver> ObservedBody<B, O> {
    /// Wraps `inner`, reporting its end to `observer`.
    pub fn new(inner: B, observer: O) -> Self {
        ObservedBody {
            inner,
            observer: Some(observer),
            bytes: 0,
            declared: None,
            in_poll: false,
        }
    }

    /// The length the response declared (its `Content-Length`, see [`content_length`]):
    /// dropped once that many bytes have been read, the body is complete, not abandoned.
    /// Over HTTP/1.1 hyper stops polling a body when the declared length is written, so a
    /// stream with a `Content-Length` (a file served by tower-http's `ServeDir`, say) is
    /// dropped without ever reporting its end.
    pub fn with_declared_length(mut self, declared: Option<u64>) -> Self {
        self.declared = declared;
        self
    }

    /// A body that reports nothing (the observer already fired or was not wanted).
    pub fn unobserved(inner: B) -> Self {
        ObservedBody {
            inner,
            observer: None,
            bytes: 0,
            declared: None,
            in_poll: false,
        }
    }
}

/// The error a body that panicked while streaming is reported with ([`BodyEnd::Error`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyPanicked;

impl fmt::Display for BodyPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response body panicked while streaming")
    }
}

/// The body length `res` will be sent with, for [`ObservedBody::with_declared_length`]:
/// `0` when no body is sent at all (the answer to a `HEAD` request, `head_request`; a 1xx,
/// 204 or 304), else its `Content-Length`, else its body's exact size hint, which hyper
/// sends as the `Content-Length` when there is none. hyper drops such a body without
/// polling it to its end (or at all): with this, that drop is the body's normal end, not
/// a client that went away.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use telltale_core::body::declared_length;
///
/// let res = http::Response::new(Full::new(Bytes::from_static(b"hello")));
/// assert_eq!(declared_length(false, &res), Some(5)); // the size hint
/// assert_eq!(declared_length(true, &res), Some(0)); // HEAD: nothing is sent
/// ```
pub fn declared_length<B: Body>(head_request: bool, res: &http::Response<B>) -> Option<u64> {
    let status = res.status();
    if head_request
        || status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
    {
        return Some(0);
    }
    content_length(res.headers()).or_else(|| res.body().size_hint().exact())
}

/// The `Content-Length` of `headers`, if it holds one valid length (for
/// [`ObservedBody::with_declared_length`]).
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    let value = crate::headers::first(headers, &http::header::CONTENT_LENGTH)?;
    std::str::from_utf8(value.as_bytes()).ok()?.parse().ok()
}

impl<B, O> Body for ObservedBody<B, O>
where
    B: Body,
    B::Error: fmt::Display,
    O: BodyObserver,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        *this.in_poll = true;
        let polled = this.inner.as_mut().poll_frame(cx);
        *this.in_poll = false;
        let polled = ready!(polled);
        match &polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.remaining() as u64;
                    if this.inner.is_end_stream()
                        && let Some(o) = this.observer.take()
                    {
                        o.on_end(BodyEnd::Complete {
                            trailers: None,
                            bytes: *this.bytes,
                        });
                    }
                } else if let Some(trailers) = frame.trailers_ref()
                    && let Some(o) = this.observer.take()
                {
                    o.on_end(BodyEnd::Complete {
                        trailers: Some(trailers),
                        bytes: *this.bytes,
                    });
                }
            }
            Some(Err(error)) => {
                if let Some(o) = this.observer.take() {
                    o.on_end(BodyEnd::Error {
                        error,
                        bytes: *this.bytes,
                    });
                }
            }
            None => {
                if let Some(o) = this.observer.take() {
                    o.on_end(BodyEnd::Complete {
                        trailers: None,
                        bytes: *this.bytes,
                    });
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body + fmt::Debug, O: BodyObserver> fmt::Debug for ObservedBody<B, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedBody")
            .field("inner", &self.inner)
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, StreamBody};
    use std::sync::{Arc, Mutex};

    #[derive(Debug, PartialEq)]
    enum Seen {
        Complete(Option<String>, u64),
        Error(String, u64),
        Dropped(u64),
    }

    fn recorder() -> (Arc<Mutex<Vec<Seen>>>, impl BodyObserver) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let obs = move |end: BodyEnd<'_>| {
            let v = match end {
                BodyEnd::Complete { trailers, bytes } => Seen::Complete(
                    trailers
                        .and_then(|t| t.get("grpc-status"))
                        .map(|v| v.to_str().unwrap().to_owned()),
                    bytes,
                ),
                BodyEnd::Error { error, bytes } => Seen::Error(error.to_string(), bytes),
                BodyEnd::Dropped { bytes } => Seen::Dropped(bytes),
            };
            s.lock().unwrap().push(v);
        };
        (seen, obs)
    }

    fn stream(
        frames: Vec<Result<Frame<Bytes>, std::io::Error>>,
    ) -> impl Body<Data = Bytes, Error = std::io::Error> {
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn empty_body_dropped_unpolled_counts_as_complete() {
        let (seen, obs) = recorder();
        drop(ObservedBody::new(Empty::<Bytes>::new(), obs));
        assert_eq!(*seen.lock().unwrap(), vec![Seen::Complete(None, 0)]);
    }

    #[tokio::test]
    async fn trailers_are_reported_with_byte_count() {
        let (seen, obs) = recorder();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "13".parse().unwrap());
        let body = ObservedBody::new(
            stream(vec![
                Ok(Frame::data(Bytes::from_static(b"abc"))),
                Ok(Frame::trailers(trailers)),
            ]),
            obs,
        );
        let _ = body.collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![Seen::Complete(Some("13".into()), 3)]);
    }

    #[tokio::test]
    async fn error_mid_stream_is_reported_once() {
        let (seen, obs) = recorder();
        let body = ObservedBody::new(
            stream(vec![
                Ok(Frame::data(Bytes::from_static(b"ab"))),
                Err(std::io::Error::other("boom")),
            ]),
            obs,
        );
        assert!(body.collect().await.is_err());
        assert_eq!(*seen.lock().unwrap(), vec![Seen::Error("boom".into(), 2)]);
    }

    /// Five bytes, announced by an exact size hint, with no end of its own: after them it
    /// waits forever, or (`panics`) panics.
    struct Hello {
        sent: bool,
        panics: bool,
    }

    impl Body for Hello {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if std::mem::replace(&mut self.sent, true) {
                assert!(!self.panics, "stream broke");
                return Poll::Pending;
            }
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"hello")))))
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(5)
        }
    }

    #[tokio::test]
    async fn a_panic_while_polling_is_an_error_not_a_hang_up() {
        let (seen, obs) = recorder();
        let body = ObservedBody::new(
            Hello {
                sent: false,
                panics: true,
            },
            obs,
        );
        let polled = tokio::spawn(body.collect()).await;
        assert!(polled.unwrap_err().is_panic());
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Seen::Error(BodyPanicked.to_string(), 5)]
        );
    }

    #[tokio::test]
    async fn a_body_dropped_after_its_declared_length_is_complete() {
        // HEAD: hyper never polls the body.
        let res = http::Response::new(http_body_util::Full::new(Bytes::from_static(b"hello")));
        let (seen, obs) = recorder();
        drop(
            ObservedBody::new(
                StreamBody::new(futures_util::stream::pending::<
                    Result<Frame<Bytes>, std::io::Error>,
                >()),
                obs,
            )
            .with_declared_length(declared_length(true, &res)),
        );
        assert_eq!(*seen.lock().unwrap(), vec![Seen::Complete(None, 0)]);
        // A stream whose exact size hint hyper sent as the Content-Length: dropped once
        // that many bytes went out, without being asked for its end.
        let (seen, obs) = recorder();
        let sized = http::Response::new(Hello {
            sent: false,
            panics: false,
        });
        let declared = declared_length(false, &sized);
        assert_eq!(declared, Some(5));
        let mut body = ObservedBody::new(sized.into_body(), obs).with_declared_length(declared);
        let frame = Pin::new(&mut body)
            .poll_frame(&mut Context::from_waker(std::task::Waker::noop()))
            .map(|f| f.unwrap().unwrap().into_data().unwrap());
        assert_eq!(frame, Poll::Ready(Bytes::from_static(b"hello")));
        drop(body);
        assert_eq!(*seen.lock().unwrap(), vec![Seen::Complete(None, 5)]);
        // Not for a GET with a 200 and no length: dropped unread is a hang-up.
        let res = http::Response::new(StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, std::io::Error>,
        >()));
        assert_eq!(declared_length(false, &res), None);
        let mut no_content = http::Response::new(());
        *no_content.status_mut() = http::StatusCode::NO_CONTENT;
        let no_content = no_content.map(|()| http_body_util::Empty::<Bytes>::new());
        assert_eq!(declared_length(false, &no_content), Some(0));
    }

    #[tokio::test]
    async fn dropped_midway_is_reported_as_dropped() {
        let (seen, obs) = recorder();
        let mut body = ObservedBody::new(
            stream(vec![
                Ok(Frame::data(Bytes::from_static(b"ab"))),
                Ok(Frame::data(Bytes::from_static(b"cd"))),
            ]),
            obs,
        );
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "ab");
        drop(body);
        assert_eq!(*seen.lock().unwrap(), vec![Seen::Dropped(2)]);
    }
}
