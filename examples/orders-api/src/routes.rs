//! The Orders API's own routes: `GET /orders`, `GET /orders/{id}`, `POST /orders`.
//!
//! Every error answer is an [`ApiError`]: its status and a JSON body naming the request
//! id. That includes requests the extractors refuse (malformed JSON, a wrong
//! `Content-Type`, a bad query string or path), through [`ApiExtract`].
//!
//! # Placing an order
//!
//! 1. The order gets its id, and its stock is reserved at the inventory with that id as
//!    `Idempotency-Key`: a retried reservation (the client retries 5xx and timeouts) is
//!    answered without taking the stock twice.
//! 2. The order and its fulfilment job are stored in one transaction.
//! 3. If storing fails, the reservation is released (`DELETE /reservations/{id}`), so no
//!    stock stays taken for an order that does not exist. So is a reservation whose
//!    outcome is unknown (a timeout, a 5xx): it may have been taken, and the release also
//!    stops a reservation attempt still on its way from taking it later. A release that
//!    fails is logged at ERROR with the order id, SKU and quantity.
//!
//! Steps 1 to 3 run in a task of their own: a client that hangs up (or the server's
//! request timeout) drops the request's future, and that must not stop the work between
//! the reservation and the insert.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use telltale::RequestId;
use telltale::client::DependencyClient;
use telltale::core::headers::IDEMPOTENCY_KEY;
use telltale::resilience::ResilienceError;

use crate::store::{Order, Store};

/// The longest SKU accepted, in bytes (`POST /orders`, `GET /stock/{sku}`).
pub const MAX_SKU_LEN: usize = 64;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Order storage.
    pub store: Store,
    /// The inventory client (telltale's resilient client).
    pub inventory: DependencyClient,
    /// Inventory base URL, e.g. `http://127.0.0.1:8081`.
    pub inventory_url: String,
}

/// The routes, without telemetry (the caller adds `telemetry.server_layer()`).
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{id}", get(get_order))
        .with_state(state)
}

// === ApiError ===

/// An error answer: a status and a JSON body naming the request id, so a user's bug
/// report leads straight to the log lines and the trace.
///
/// `{"error": "no such order", "request_id": "01a1…"}`
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    request_id: Option<RequestId>,
}

impl ApiError {
    /// An error with this status and message, for the current request.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            request_id: telltale::current_request_id(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.message,
            "request_id": self.request_id.as_ref().map(RequestId::as_str),
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}

/// The extractors' rejections keep their status and text (which says what is wrong with
/// the request) and get the JSON body and request id.
macro_rules! from_rejection {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(r: $rejection) -> Self {
                ApiError::new(r.status(), r.body_text())
            }
        }
    )*};
}
from_rejection!(JsonRejection, QueryRejection, PathRejection);

// === ApiExtract ===

/// Runs the extractor `E` (`Json`, `Query`, `Path`, …) and answers its rejection as an
/// [`ApiError`], so a malformed request gets the same JSON error body as any other
/// error, with its request id, instead of axum's plain text.
///
/// ```
/// use axum::Json;
/// use orders_api::routes::{ApiExtract, NewOrder};
///
/// async fn create(ApiExtract(Json(order)): ApiExtract<Json<NewOrder>>) -> String {
///     order.sku
/// }
/// let _app: axum::Router = axum::Router::new().route("/", axum::routing::post(create));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiExtract<E>(pub E);

impl<S, E> FromRequestParts<S> for ApiExtract<E>
where
    S: Send + Sync,
    E: FromRequestParts<S>,
    ApiError: From<E::Rejection>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(ApiExtract(E::from_request_parts(parts, state).await?))
    }
}

impl<S, E> FromRequest<S> for ApiExtract<E>
where
    S: Send + Sync,
    E: FromRequest<S>,
    ApiError: From<E::Rejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(ApiExtract(E::from_request(req, state).await?))
    }
}

// === handlers ===

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
}

async fn list_orders(
    State(state): State<AppState>,
    ApiExtract(Query(p)): ApiExtract<Query<ListParams>>,
) -> Result<Json<Vec<Order>>, ApiError> {
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit must be from 1 to 100",
        ));
    }
    Ok(Json(state.store.list(limit).await?))
}

async fn get_order(
    State(state): State<AppState>,
    ApiExtract(Path(id)): ApiExtract<Path<String>>,
) -> Result<Json<Order>, ApiError> {
    // Any form of a UUID (upper case, without hyphens, `urn:uuid:…`, braced) names the
    // order; it is stored, and looked up, in the hyphenated lower-case form.
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "order id must be a UUID"));
    };
    match state.store.get(&id.hyphenated().to_string()).await? {
        Some(order) => Ok(Json(order)),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such order")),
    }
}

/// The body of `POST /orders`.
#[derive(Debug, Deserialize)]
pub struct NewOrder {
    /// What to order.
    pub sku: String,
    /// How many (1 to 1000).
    pub quantity: i64,
}

/// `Err` unless `sku` is 1 to [`MAX_SKU_LEN`] bytes long.
pub fn check_sku(sku: &str, status: StatusCode) -> Result<(), ApiError> {
    if sku.is_empty() || sku.len() > MAX_SKU_LEN {
        return Err(ApiError::new(
            status,
            format!("sku must be 1 to {MAX_SKU_LEN} characters"),
        ));
    }
    Ok(())
}

async fn create_order(
    State(state): State<AppState>,
    ApiExtract(Json(new)): ApiExtract<Json<NewOrder>>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    if !(1..=1000).contains(&new.quantity) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity must be from 1 to 1000",
        ));
    }
    check_sku(&new.sku, StatusCode::UNPROCESSABLE_ENTITY)?;
    // In a task of its own, so a client hanging up (which drops this future) cannot stop
    // it between the reservation and the insert; see the module docs.
    let placing = tokio::spawn(in_request_scope(place_order(state, new)));
    match placing.await {
        Ok(placed) => placed.map(|order| (StatusCode::CREATED, Json(order))),
        // A panic stays a panic: the panic layer answers it (500, logged, counted).
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down, try again later",
        )),
    }
}

/// `fut` inside the current request's context, for running it on a task of its own: its
/// `tracing` span (log lines keep the trace and request ids), its OpenTelemetry context
/// (client spans and the job's stored context stay children of the request's span) and
/// its request id (sent on to the inventory).
fn in_request_scope<F>(fut: F) -> impl Future<Output = F::Output> + Send + 'static
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    use telltale::opentelemetry::context::FutureExt as _;
    use tracing::Instrument as _;
    let fut = fut.with_current_context().instrument(tracing::Span::current());
    let id = telltale::current_request_id();
    async move {
        match id {
            Some(id) => telltale::with_request_id(id, fut).await,
            None => fut.await,
        }
    }
}

async fn place_order(state: AppState, new: NewOrder) -> Result<Order, ApiError> {
    let order = Order {
        id: uuid::Uuid::now_v7().hyphenated().to_string(),
        sku: new.sku,
        quantity: new.quantity,
        status: "placed".to_owned(),
        created_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    };
    reserve_stock(&state, &order).await?;
    // The fulfilment job is stored with the order, carrying this request's trace context
    // and id: the worker's run continues this trace (see `crate::worker`).
    let context = telltale::job::JobContext::current().encode();
    if let Err(e) = state
        .store
        .insert_with_job(&order, crate::worker::QUEUE, &context)
        .await
    {
        let err = ApiError::from(e);
        release_stock(&state, &order).await;
        return Err(err);
    }
    tracing::info!(order_id = %order.id, sku = %order.sku, quantity = order.quantity, "order placed");
    Ok(order)
}

fn inventory_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "inventory unavailable, try again later",
    )
}

/// Reserves the order's stock under its id. An outcome that leaves unknown whether the
/// stock was taken is undone with [`release_stock`] before the error is returned.
async fn reserve_stock(state: &AppState, order: &Order) -> Result<(), ApiError> {
    let url = format!("{}/reservations", state.inventory_url);
    let sent = state
        .inventory
        .post(url)
        .header(IDEMPOTENCY_KEY, order.id.as_str())
        .json(&serde_json::json!({ "sku": order.sku, "quantity": order.quantity }))
        .send()
        .await;
    let res = match sent {
        Ok(res) => res,
        Err(e) => {
            tracing::warn!(error = %e, "inventory call failed");
            // Unless the client refused the call itself (circuit breaker open), an attempt
            // may have reached the inventory: a timeout, or an answer lost on the way back.
            let never_sent = ResilienceError::from_reqwest_middleware(&e)
                .is_some_and(ResilienceError::is_rejected_locally);
            if !never_sent {
                release_stock(state, order).await;
            }
            return Err(inventory_unavailable());
        }
    };
    match res.status() {
        s if s.is_success() => Ok(()),
        StatusCode::NOT_FOUND => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown sku")),
        StatusCode::CONFLICT => Err(ApiError::new(StatusCode::CONFLICT, "not enough stock")),
        s => {
            tracing::warn!(status = s.as_u16(), "inventory refused the reservation");
            release_stock(state, order).await;
            Err(inventory_unavailable())
        }
    }
}

/// Gives back the stock reserved for `order`, if any (`DELETE /reservations/{id}`, which
/// also stops a reservation still on its way from taking it later).
async fn release_stock(state: &AppState, order: &Order) {
    let url = format!("{}/reservations/{}", state.inventory_url, order.id);
    match state.inventory.delete(url).send().await {
        Ok(res) if res.status().is_success() => tracing::info!(
            order_id = %order.id, sku = %order.sku, quantity = order.quantity,
            "reservation released: the order was not stored"
        ),
        Ok(res) if res.status() == StatusCode::NOT_FOUND => {
            tracing::info!(order_id = %order.id, "no reservation to release")
        }
        Ok(res) => tracing::error!(
            order_id = %order.id, sku = %order.sku, quantity = order.quantity, status = res.status().as_u16(),
            "reservation not released: its stock may stay taken for an order that was not stored"
        ),
        Err(e) => tracing::error!(
            order_id = %order.id, sku = %order.sku, quantity = order.quantity, error = %e,
            "reservation not released: its stock may stay taken for an order that was not stored"
        ),
    }
}
