//! Inventory: the stock service the Orders API depends on.
//!
//! A small axum service over an in-memory stock table. The Orders API calls it through
//! telltale's resilient client, so one trace spans both services and the dependency's
//! RED metrics, retries and circuit breaker can be watched. Fault injection
//! (`FAULT_ERROR_RATE`, `FAULT_DELAY_MS`) makes it fail or slow on demand.
//!
//! ```
//! use inventory::{Faults, Inventory};
//!
//! let inv = Inventory::with_stock([("sku-1", 5)]);
//! assert_eq!(inv.available("sku-1"), Some(5));
//! let _router: axum::Router = inventory::app(inv, Faults::none());
//! ```

pub mod grpc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// The stock table.
#[derive(Clone, Default)]
pub struct Inventory {
    stock: Arc<Mutex<HashMap<String, u32>>>,
}

impl Inventory {
    /// A table with the given stock levels.
    pub fn with_stock<'a>(items: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let stock = items.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Inventory {
            stock: Arc::new(Mutex::new(stock)),
        }
    }

    /// The demo stock: a few SKUs with plenty available.
    pub fn demo() -> Self {
        Inventory::with_stock([("sku-apple", 1_000_000), ("sku-pear", 1_000_000), ("sku-rare", 1)])
    }

    /// Units available for a SKU, `None` when the SKU is unknown.
    pub fn available(&self, sku: &str) -> Option<u32> {
        self.stock.lock().ok()?.get(sku).copied()
    }

    /// Takes `quantity` units, or says why not.
    pub fn reserve(&self, sku: &str, quantity: u32) -> Result<u32, ReserveError> {
        let mut stock = self.stock.lock().map_err(|_| ReserveError::Unavailable)?;
        let have = stock.get_mut(sku).ok_or(ReserveError::UnknownSku)?;
        if *have < quantity {
            return Err(ReserveError::Insufficient { available: *have });
        }
        *have -= quantity;
        Ok(*have)
    }
}

/// Why a reservation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveError {
    /// No such SKU.
    UnknownSku,
    /// Not enough stock.
    Insufficient {
        /// Units left.
        available: u32,
    },
    /// The table is unusable (a previous holder panicked).
    Unavailable,
}

/// Faults to inject, for demos and tests of the caller's resilience.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Share of reservation requests answered 503 (0.0..=1.0).
    pub error_rate: f64,
    /// Delay added to every reservation.
    pub delay: Duration,
}

impl Faults {
    /// No faults.
    pub const fn none() -> Self {
        Faults {
            error_rate: 0.0,
            delay: Duration::ZERO,
        }
    }

    /// From `FAULT_ERROR_RATE` (0..=1) and `FAULT_DELAY_MS`; malformed values are an error.
    pub fn from_env() -> Result<Self, String> {
        let error_rate = match std::env::var("FAULT_ERROR_RATE") {
            Ok(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("FAULT_ERROR_RATE must be a number from 0 to 1, got {v:?}"))?,
            Err(_) => 0.0,
        };
        let delay = match std::env::var("FAULT_DELAY_MS") {
            Ok(v) => Duration::from_millis(
                v.parse::<u64>()
                    .map_err(|_| format!("FAULT_DELAY_MS must be whole milliseconds, got {v:?}"))?,
            ),
            Err(_) => Duration::ZERO,
        };
        Ok(Faults { error_rate, delay })
    }
}

#[derive(Clone)]
struct AppState {
    inventory: Inventory,
    faults: Faults,
}

/// A reservation request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReservationRequest {
    /// The SKU.
    pub sku: String,
    /// Units wanted (at least 1).
    pub quantity: u32,
}

/// A granted reservation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    /// The SKU.
    pub sku: String,
    /// Units reserved.
    pub quantity: u32,
    /// Units left after this reservation.
    pub remaining: u32,
}

/// The inventory routes: `GET /stock/{sku}` and `POST /reservations`.
pub fn app(inventory: Inventory, faults: Faults) -> Router {
    Router::new()
        .route("/stock/{sku}", get(stock))
        .route("/reservations", post(reserve))
        .with_state(AppState { inventory, faults })
}

async fn stock(State(state): State<AppState>, Path(sku): Path<String>) -> Response {
    match state.inventory.available(&sku) {
        Some(n) => Json(serde_json::json!({ "sku": sku, "available": n })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "unknown sku" })),
        )
            .into_response(),
    }
}

async fn reserve(State(state): State<AppState>, Json(req): Json<ReservationRequest>) -> Response {
    if !state.faults.delay.is_zero() {
        tokio::time::sleep(state.faults.delay).await;
    }
    if state.faults.error_rate > 0.0 && fastrand::f64() < state.faults.error_rate {
        tracing::warn!(sku = %req.sku, "injected fault: answering 503");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": "injected fault" })),
        )
            .into_response();
    }
    if req.quantity == 0 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "error": "quantity must be at least 1" })),
        )
            .into_response();
    }
    match state.inventory.reserve(&req.sku, req.quantity) {
        Ok(remaining) => {
            tracing::info!(sku = %req.sku, quantity = req.quantity, remaining, "reserved");
            Json(Reservation {
                sku: req.sku,
                quantity: req.quantity,
                remaining,
            })
            .into_response()
        }
        Err(ReserveError::UnknownSku) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "unknown sku" })),
        )
            .into_response(),
        Err(ReserveError::Insufficient { available }) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": "insufficient stock", "available": available })),
        )
            .into_response(),
        Err(ReserveError::Unavailable) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_takes_stock_and_refuses_overdraw() {
        let inv = Inventory::with_stock([("a", 3)]);
        assert_eq!(inv.reserve("a", 2), Ok(1));
        assert_eq!(
            inv.reserve("a", 2),
            Err(ReserveError::Insufficient { available: 1 })
        );
        assert_eq!(inv.reserve("b", 1), Err(ReserveError::UnknownSku));
    }
}
