//! The Orders API's own routes: `GET /orders`, `GET /orders/{id}`, `POST /orders`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use telltale::RequestId;
use telltale::client::DependencyClient;

use crate::store::{Order, Store};

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

/// An error answer: a status and a JSON body naming the request id, so a user's bug
/// report leads straight to the log lines and the trace.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    request_id: Option<RequestId>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
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

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
}

async fn list_orders(
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
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

async fn get_order(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Order>, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "order id must be a UUID"));
    }
    match state.store.get(&id).await? {
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

async fn create_order(
    State(state): State<AppState>,
    Json(new): Json<NewOrder>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    if !(1..=1000).contains(&new.quantity) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity must be from 1 to 1000",
        ));
    }
    if new.sku.is_empty() || new.sku.len() > 64 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sku must be 1 to 64 characters",
        ));
    }
    reserve_stock(&state, &new).await?;
    let order = Order {
        id: uuid::Uuid::now_v7().to_string(),
        sku: new.sku,
        quantity: new.quantity,
        status: "placed".to_owned(),
        created_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    };
    // The fulfilment job is stored with the order, carrying this request's trace context
    // and id: the worker's run continues this trace (see `crate::worker`).
    let context = telltale::job::JobContext::current().encode();
    state
        .store
        .insert_with_job(&order, crate::worker::QUEUE, &context)
        .await?;
    tracing::info!(order_id = %order.id, sku = %order.sku, quantity = order.quantity, "order placed");
    Ok((StatusCode::CREATED, Json(order)))
}

async fn reserve_stock(state: &AppState, new: &NewOrder) -> Result<(), ApiError> {
    let url = format!("{}/reservations", state.inventory_url);
    let res = state
        .inventory
        .post(url)
        .json(&serde_json::json!({ "sku": new.sku, "quantity": new.quantity }))
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "inventory call failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "inventory unavailable, try again later",
            )
        })?;
    match res.status() {
        s if s.is_success() => Ok(()),
        StatusCode::NOT_FOUND => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown sku")),
        StatusCode::CONFLICT => Err(ApiError::new(StatusCode::CONFLICT, "not enough stock")),
        s => {
            tracing::warn!(status = s.as_u16(), "inventory refused the reservation");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "inventory unavailable, try again later",
            ))
        }
    }
}
