//! axum extractors (feature `axum`).
//!
//! `RequestId` can be taken directly in a handler once the request-id layer ran:
//!
//! ```
//! use axum::{routing::get, Router};
//! use telltale_core::RequestId;
//!
//! async fn handler(id: RequestId) -> String {
//!     format!("your request is {id}")
//! }
//! // Optional form, for handlers that may run without the layer:
//! async fn maybe(id: Option<RequestId>) -> String {
//!     id.map(|id| id.to_string()).unwrap_or_default()
//! }
//! let app: Router = Router::new().route("/", get(handler)).route("/m", get(maybe));
//! ```

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::RequestId;

/// The request had no [`RequestId`]: the request-id layer is not installed in front of
/// this handler. Answers 500 with a message saying so.
#[derive(Debug, Clone, Copy)]
pub struct MissingRequestId;

impl std::fmt::Display for MissingRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no request id on this request: add telltale's RequestIdLayer (or server_layer()) \
             with Router::layer so it runs before this handler",
        )
    }
}

impl std::error::Error for MissingRequestId {}

impl IntoResponse for MissingRequestId {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

fn lookup(parts: &Parts) -> Option<RequestId> {
    parts
        .extensions
        .get::<RequestId>()
        .cloned()
        .or_else(crate::current_request_id)
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = MissingRequestId;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        lookup(parts).ok_or(MissingRequestId)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(lookup(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, body::Body, routing::get};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn missing_layer_is_a_500_that_says_what_to_add() {
        let app: Router = Router::new().route("/", get(|id: RequestId| async move { id.to_string() }));
        let res = app
            .oneshot(http::Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 500);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(std::str::from_utf8(&body).unwrap().contains("RequestIdLayer"));
    }

    #[tokio::test]
    async fn id_in_extensions_is_extracted() {
        let app: Router = Router::new().route("/", get(|id: RequestId| async move { id.to_string() }));
        let mut req = http::Request::get("/").body(Body::empty()).unwrap();
        req.extensions_mut().insert(RequestId::parse("abc-1").unwrap());
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "abc-1");
    }
}
