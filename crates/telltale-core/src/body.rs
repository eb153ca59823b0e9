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
    }

    impl<B: Body, O: BodyObserver> PinnedDrop for ObservedBody<B, O> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(observer) = this.observer.take() {
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
        }
    }
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
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
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
