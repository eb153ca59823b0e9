//! The response future and body shared by the HTTP and gRPC server layers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use telltale_core::body::{BodyEnd, BodyObserver, ObservedBody};

use crate::grpc::GrpcObservation;
use crate::server::HttpObservation;

/// The response body of the metrics layers: the inner body, watched to its end so the
/// duration covers streaming bodies and a client hang-up is seen.
pub type MetricsBody<B> = ObservedBody<B, RequestObservation>;

/// One request being measured (opaque). It records exactly once: at the end of the
/// response body, on a service error, or when the response future or body is dropped early.
pub struct RequestObservation(Kind);

enum Kind {
    Http(HttpObservation),
    Grpc(GrpcObservation),
}

impl RequestObservation {
    pub(crate) fn http(o: HttpObservation) -> Self {
        RequestObservation(Kind::Http(o))
    }

    pub(crate) fn grpc(o: GrpcObservation) -> Self {
        RequestObservation(Kind::Grpc(o))
    }

    /// The response head: its status, and for gRPC its headers (`grpc-status` in a
    /// trailers-only response). Prefer [`on_response`](Self::on_response), which also
    /// sees the response's extensions (the
    /// [`HandlerPanic`](telltale_core::outcome::HandlerPanic) marker).
    pub fn on_head(&mut self, status: StatusCode, headers: &HeaderMap) {
        match &mut self.0 {
            Kind::Http(o) => o.on_head(status),
            Kind::Grpc(o) => o.on_head(status, headers),
        }
    }

    /// The response head, whole: as [`on_head`](Self::on_head), and a response that an
    /// inner catch-panic layer marked with [`HandlerPanic`] is recorded with
    /// `error_type="panic"` (HTTP) instead of its status code.
    ///
    /// ```
    /// use telltale_core::body::{BodyEnd, BodyObserver};
    /// use telltale_core::outcome::HandlerPanic;
    /// use telltale_metrics::{MetricsLayer, PrometheusConfig};
    ///
    /// let prom = PrometheusConfig::new("svc").build().unwrap();
    /// let part = MetricsLayer::builder().recorder(prom.recorder()).build().unwrap().part();
    /// let req = http::Request::get("/boom").body(String::new()).unwrap();
    /// let mut observation = part.on_request(&req).unwrap();
    /// let mut res = http::Response::new(());
    /// *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    /// res.extensions_mut().insert(HandlerPanic("boom".into()));
    /// observation.on_response(&res);
    /// observation.on_end(BodyEnd::Complete { trailers: None, bytes: 0 });
    /// assert!(prom.handle().render().contains(r#"error_type="panic""#));
    /// ```
    ///
    /// [`HandlerPanic`]: telltale_core::outcome::HandlerPanic
    pub fn on_response<B>(&mut self, res: &Response<B>) {
        match &mut self.0 {
            Kind::Http(o) => o.on_response(res),
            Kind::Grpc(o) => o.on_head(res.status(), res.headers()),
        }
    }

    /// The service returned an error instead of a response: recorded as a 500.
    pub fn on_service_error(self) {
        match self.0 {
            Kind::Http(o) => o.on_service_error(),
            Kind::Grpc(o) => o.on_service_error(),
        }
    }

    /// The service panicked before its response head (a composed service that catches
    /// the panic knows it; a lone metrics layer sees its future dropped in the middle of a
    /// poll): recorded as a 500 with `error_type="panic"` (gRPC: `UNKNOWN`).
    pub fn on_panic(self) {
        match self.0 {
            Kind::Http(o) => o.on_panic(),
            Kind::Grpc(o) => o.on_service_error(),
        }
    }

    /// The request was abandoned before its response head (the client went away, or a
    /// timeout above gave up): recorded with status 499.
    pub fn on_cancel(self) {
        match self.0 {
            Kind::Http(o) => o.on_cancel(),
            Kind::Grpc(o) => o.on_cancel(),
        }
    }
}

impl RequestObservation {
    /// The end of the response body, at `now` (a composed service reads the clock once for
    /// all its parts); the same as [`BodyObserver::on_end`] otherwise.
    pub fn on_end_at(self, end: BodyEnd<'_>, now: std::time::Instant) {
        match self.0 {
            Kind::Http(o) => o.on_body_end(&end, now),
            Kind::Grpc(o) => o.on_body_end(&end, now),
        }
    }
}

impl BodyObserver for RequestObservation {
    fn on_end(self, end: BodyEnd<'_>) {
        self.on_end_at(end, std::time::Instant::now());
    }
}

impl std::fmt::Debug for RequestObservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestObservation")
    }
}

pin_project! {
    /// Response future of [`MetricsService`](crate::MetricsService) and
    /// [`GrpcMetricsService`](crate::GrpcMetricsService).
    pub struct ResponseFuture<F> {
        #[pin]
        pub(crate) inner: F,
        pub(crate) observation: Option<RequestObservation>,
        // Set while the inner future is polled: still set when this future is dropped,
        // the poll never returned (the handler panicked).
        pub(crate) in_poll: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(o) = this.observation.take() {
                if *this.in_poll {
                    // The handler panicked (a catch-panic layer outside answers 500).
                    o.on_panic();
                } else {
                    // Dropped before the response head: the client went away (or a
                    // timeout above us fired). Counted once, as a cancelled request.
                    o.on_cancel();
                }
            }
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<MetricsBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        *this.in_poll = true;
        let polled = this.inner.poll(cx);
        *this.in_poll = false;
        let result = ready!(polled);
        let observation = this.observation.take();
        Poll::Ready(match result {
            Ok(res) => match observation {
                None => Ok(res.map(ObservedBody::unobserved)),
                Some(mut o) => {
                    o.on_response(&res);
                    // A HEAD answer is handled by the observation (no body expected).
                    let declared = telltale_core::body::declared_length(false, &res);
                    Ok(res.map(|b| ObservedBody::new(b, o).with_declared_length(declared)))
                }
            },
            Err(e) => {
                if let Some(o) = observation {
                    o.on_service_error();
                }
                Err(e)
            }
        })
    }
}
