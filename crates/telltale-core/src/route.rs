//! The route label: what identifies "the same endpoint" in metrics, span names and logs.
//!
//! The label is the route *template* (`/orders/{id}`), never the raw path
//! (`/orders/8812`): raw paths make one metric series per id and one span name per
//! request, and a scanner hitting random URLs would exhaust the metrics backend. A
//! request that matched no route gets the fixed label [`UNMATCHED`].
//!
//! With axum, the template comes from `MatchedPath`, which axum inserts when a route
//! matches. Layers that need it must be added with `Router::layer` (they then run
//! after routing); a layer wrapped around the whole `Router` from outside sees no
//! `MatchedPath` and labels everything [`UNMATCHED`].
//!
//! ```
//! use telltale_core::route::{self, RouteLabel};
//!
//! let req = http::Request::get("/orders/8812").body(()).unwrap();
//! assert_eq!(route::from_request(&req).as_str(), route::UNMATCHED);
//!
//! let grpc = RouteLabel::grpc("/orders.v1.Orders/Get").unwrap();
//! assert_eq!(grpc.as_str(), "/orders.v1.Orders/Get");
//! assert_eq!(route::grpc_service_method("/orders.v1.Orders/Get"), Some(("orders.v1.Orders", "Get")));
//! ```

use std::fmt;
use std::sync::Arc;

/// The label for requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// A route label: a template, a gRPC full method, or [`UNMATCHED`].
///
/// Cheap to clone; made from axum's `MatchedPath` it shares the router's string instead
/// of copying it, so labelling a request does not allocate.
#[derive(Clone)]
pub struct RouteLabel(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl std::hash::Hash for RouteLabel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl RouteLabel {
    /// The label for a request that matched no route.
    pub const fn unmatched() -> Self {
        RouteLabel(Repr::Static(UNMATCHED))
    }

    /// A label from a fixed template.
    pub const fn from_static(template: &'static str) -> Self {
        RouteLabel(Repr::Static(template))
    }

    /// A label from a template string known to be bounded (e.g. a router's template).
    pub fn from_template(template: impl Into<Arc<str>>) -> Self {
        RouteLabel(Repr::Shared(template.into()))
    }

    /// The label for a gRPC request path `/package.Service/Method`, or `None` when the
    /// path is not of that shape (the caller should then use [`RouteLabel::unmatched`]).
    pub fn grpc(path: &str) -> Option<Self> {
        grpc_service_method(path).map(|_| RouteLabel(Repr::Shared(Arc::from(path))))
    }

    /// Whether this is the [`UNMATCHED`] label.
    pub fn is_unmatched(&self) -> bool {
        self.as_str() == UNMATCHED
    }

    /// The label text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
            #[cfg(feature = "axum")]
            Repr::Matched(m) => m.as_str(),
        }
    }
}

impl fmt::Display for RouteLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RouteLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RouteLabel").field(&self.as_str()).finish()
    }
}

/// The route label of a request: axum's `MatchedPath` when present (feature `axum`),
/// otherwise a [`RouteLabel`] a layer put in the extensions, otherwise [`UNMATCHED`].
pub fn from_request<B>(req: &http::Request<B>) -> RouteLabel {
    from_extensions(req.extensions())
}

/// As [`from_request`], from the extensions alone.
pub fn from_extensions(ext: &http::Extensions) -> RouteLabel {
    #[cfg(feature = "axum")]
    if let Some(mp) = ext.get::<axum::extract::MatchedPath>() {
        return RouteLabel(Repr::Matched(mp.clone()));
    }
    ext.get::<RouteLabel>()
        .cloned()
        .unwrap_or_else(RouteLabel::unmatched)
}

/// The template text of a request's route without allocating, or [`UNMATCHED`].
pub fn template_str(ext: &http::Extensions) -> &str {
    #[cfg(feature = "axum")]
    if let Some(mp) = ext.get::<axum::extract::MatchedPath>() {
        return mp.as_str();
    }
    ext.get::<RouteLabel>()
        .map(RouteLabel::as_str)
        .unwrap_or(UNMATCHED)
}

/// Splits a gRPC path `/package.Service/Method` into `("package.Service", "Method")`.
///
/// Returns `None` unless the path has exactly two non-empty segments made of the
/// characters protobuf identifiers use (letters, digits, `_` and, in the service, `.`).
pub fn grpc_service_method(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    let ident = |s: &str, dots: bool| {
        !s.is_empty()
            && s.len() <= 256
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dots && b == b'.'))
    };
    (ident(service, true) && ident(method, false)).then_some((service, method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_paths_parse_and_junk_does_not() {
        assert_eq!(grpc_service_method("/a.B/C"), Some(("a.B", "C")));
        for bad in ["", "/", "//", "/a.B/", "/a.B/C/D", "a.B/C", "/a B/C", "/a.B/C.D"] {
            assert_eq!(grpc_service_method(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_route_label_in_extensions_is_used_when_no_matched_path() {
        let mut req = http::Request::get("/x").body(()).unwrap();
        assert!(from_request(&req).is_unmatched());
        req.extensions_mut().insert(RouteLabel::from_static("/x"));
        assert_eq!(from_request(&req).as_str(), "/x");
        assert_eq!(template_str(req.extensions()), "/x");
    }

    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn axum_matched_path_is_the_label_and_unmatched_is_fixed() {
        use axum::{Router, routing::get};
        use tower::ServiceExt;

        let app =
            Router::new()
                .route("/orders/{id}", get(|| async { "ok" }))
                .layer(axum::middleware::from_fn(
                    |req: axum::extract::Request, next: axum::middleware::Next| async move {
                        let label = from_request(&req).as_str().to_owned();
                        let mut res = next.run(req).await;
                        res.headers_mut().insert("x-route", label.parse().unwrap());
                        res
                    },
                ));
        let res = app
            .clone()
            .oneshot(
                http::Request::get("/orders/8812")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.headers()["x-route"], "/orders/{id}");
        let res = app
            .oneshot(
                http::Request::get("/nope/123")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["x-route"], UNMATCHED);
    }
}
