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
//! // A keyed reservation is taken once, however often it is asked for, and can be undone.
//! assert_eq!(inv.reserve_once("order-1", "sku-1", 2).unwrap().remaining, 3);
//! assert_eq!(inv.reserve_once("order-1", "sku-1", 2).unwrap().remaining, 3);
//! assert_eq!(inv.available("sku-1"), Some(3));
//! inv.release("order-1").unwrap();
//! assert_eq!(inv.available("sku-1"), Some(5));
//! let _router: axum::Router = inventory::app(inv, Faults::none());
//! ```
//!
//! # Reservations a caller can retry and undo
//!
//! `POST /reservations` with an `Idempotency-Key` header (1 to 128 visible ASCII
//! characters; the Orders API sends the order id) takes the stock once: the same key sent
//! again, by a retry whose first attempt did reach the inventory, answers the first
//! reservation again without taking more. The same key with another SKU or quantity is a
//! mistake and answers 422. `DELETE /reservations/{key}` gives the stock back (200 with
//! the released reservation), for a caller that could not complete what it reserved for;
//! 404 when nothing is held under the key. Either way the key is then marked released,
//! so a reservation attempt still on its way (a retry the caller has given up on) cannot
//! take the stock afterwards: it answers 410.
//!
//! The keys of the last [`MAX_REMEMBERED_RESERVATIONS`] reservations are remembered (a
//! bounded table, oldest forgotten first), far more than the seconds between a
//! reservation and its retry or release need. A reservation without a key is taken
//! every time it is sent, as before.

pub mod grpc;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use telltale::core::headers::IDEMPOTENCY_KEY;

/// How many keyed reservations (held or released) are remembered; older ones are
/// forgotten first. See [the module docs](self#reservations-a-caller-can-retry-and-undo).
pub const MAX_REMEMBERED_RESERVATIONS: usize = 10_000;

/// The longest accepted reservation key (an `Idempotency-Key`), in bytes.
pub const MAX_KEY_LEN: usize = 128;

/// The stock table, and the keyed reservations made against it.
#[derive(Clone, Default)]
pub struct Inventory {
    table: Arc<Mutex<Table>>,
}

#[derive(Default)]
struct Table {
    stock: HashMap<String, u32>,
    /// Keyed reservations, by key; `seq` tells a live entry from a stale `order` slot.
    keyed: HashMap<String, (u64, Keyed)>,
    /// Keys in the order they were recorded, for forgetting the oldest first.
    order: VecDeque<(u64, String)>,
    next_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Keyed {
    /// Stock taken under the key; `remaining` as it was answered then.
    Held {
        sku: String,
        quantity: u32,
        remaining: u32,
    },
    /// Given back (or released before it was ever taken).
    Released,
}

impl Table {
    /// Records `entry` under `key`, forgetting the oldest keys beyond the bound.
    fn remember(&mut self, key: &str, entry: Keyed) {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.keyed.insert(key.to_owned(), (seq, entry));
        self.order.push_back((seq, key.to_owned()));
        while self.order.len() > MAX_REMEMBERED_RESERVATIONS {
            if let Some((old, k)) = self.order.pop_front()
                && self.keyed.get(&k).is_some_and(|(s, _)| *s == old)
            {
                self.keyed.remove(&k);
            }
        }
    }
}

impl Inventory {
    /// A table with the given stock levels.
    pub fn with_stock<'a>(items: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let stock = items.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Inventory {
            table: Arc::new(Mutex::new(Table {
                stock,
                ..Table::default()
            })),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Table>, ReserveError> {
        self.table.lock().map_err(|_| ReserveError::Unavailable)
    }

    /// The demo stock: a few SKUs with plenty available.
    pub fn demo() -> Self {
        Inventory::with_stock([("sku-apple", 1_000_000), ("sku-pear", 1_000_000), ("sku-rare", 1)])
    }

    /// Units available for a SKU, `None` when the SKU is unknown.
    pub fn available(&self, sku: &str) -> Option<u32> {
        self.table.lock().ok()?.stock.get(sku).copied()
    }

    /// Takes `quantity` units, or says why not.
    pub fn reserve(&self, sku: &str, quantity: u32) -> Result<u32, ReserveError> {
        take(&mut self.lock()?.stock, sku, quantity)
    }

    /// Takes `quantity` units under `key`, once: asked again with the same key (a retry),
    /// answers the first reservation without taking more. See
    /// [the module docs](self#reservations-a-caller-can-retry-and-undo).
    pub fn reserve_once(&self, key: &str, sku: &str, quantity: u32) -> Result<Reserved, ReserveError> {
        let mut table = self.lock()?;
        match table.keyed.get(key).map(|(_, e)| e) {
            Some(Keyed::Held {
                sku: held,
                quantity: q,
                remaining,
            }) => {
                return if held == sku && *q == quantity {
                    Ok(Reserved {
                        remaining: *remaining,
                        repeated: true,
                    })
                } else {
                    Err(ReserveError::KeyReused)
                };
            }
            Some(Keyed::Released) => return Err(ReserveError::Released),
            None => {}
        }
        let remaining = take(&mut table.stock, sku, quantity)?;
        table.remember(
            key,
            Keyed::Held {
                sku: sku.to_owned(),
                quantity,
                remaining,
            },
        );
        Ok(Reserved {
            remaining,
            repeated: false,
        })
    }

    /// Gives back the stock reserved under `key`. The key is marked released either way,
    /// so a reservation under it that arrives later is refused ([`ReserveError::Released`]).
    pub fn release(&self, key: &str) -> Result<Released, ReleaseError> {
        let mut table = self.table.lock().map_err(|_| ReleaseError::Unavailable)?;
        let held = match table.keyed.get(key).map(|(_, e)| e.clone()) {
            Some(Keyed::Released) => return Err(ReleaseError::NotHeld),
            Some(Keyed::Held { sku, quantity, .. }) => Some((sku, quantity)),
            None => None,
        };
        table.remember(key, Keyed::Released);
        let (sku, quantity) = held.ok_or(ReleaseError::NotHeld)?;
        let have = table.stock.entry(sku.clone()).or_insert(0);
        *have = have.saturating_add(quantity);
        Ok(Released {
            remaining: *have,
            sku,
            quantity,
        })
    }
}

fn take(stock: &mut HashMap<String, u32>, sku: &str, quantity: u32) -> Result<u32, ReserveError> {
    let have = stock.get_mut(sku).ok_or(ReserveError::UnknownSku)?;
    if *have < quantity {
        return Err(ReserveError::Insufficient { available: *have });
    }
    *have -= quantity;
    Ok(*have)
}

/// A keyed reservation granted by [`Inventory::reserve_once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// Units left after this reservation (as they were when it was first taken).
    pub remaining: u32,
    /// The key had this reservation already: nothing more was taken.
    pub repeated: bool,
}

/// Stock given back by [`Inventory::release`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The SKU.
    pub sku: String,
    /// Units given back.
    pub quantity: u32,
    /// Units available now.
    pub remaining: u32,
}

/// Why a release failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseError {
    /// Nothing is held under the key (never reserved, released already, or forgotten).
    NotHeld,
    /// The table is unusable (a previous holder panicked).
    Unavailable,
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
    /// The key holds a reservation of another SKU or quantity.
    KeyReused,
    /// The key was released: a late retry of a reservation its caller gave up on.
    Released,
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

/// The inventory routes: `GET /stock/{sku}`, `POST /reservations` and
/// `DELETE /reservations/{key}`.
pub fn app(inventory: Inventory, faults: Faults) -> Router {
    Router::new()
        .route("/stock/{sku}", get(stock))
        .route("/reservations", post(reserve))
        .route("/reservations/{key}", delete(release))
        .with_state(AppState { inventory, faults })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// A usable reservation key: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

const BAD_KEY: &str = "Idempotency-Key must be 1 to 128 visible ASCII characters";

async fn stock(State(state): State<AppState>, Path(sku): Path<String>) -> Response {
    match state.inventory.available(&sku) {
        Some(n) => Json(serde_json::json!({ "sku": sku, "available": n })).into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown sku"),
    }
}

async fn reserve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<ReservationRequest>,
) -> Response {
    if !state.faults.delay.is_zero() {
        tokio::time::sleep(state.faults.delay).await;
    }
    if state.faults.error_rate > 0.0 && fastrand::f64() < state.faults.error_rate {
        tracing::warn!(sku = %req.sku, "injected fault: answering 503");
        return error(StatusCode::SERVICE_UNAVAILABLE, "injected fault");
    }
    if req.quantity == 0 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "quantity must be at least 1");
    }
    let key = match headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if valid_key(k) => Some(k),
        Some(_) => return error(StatusCode::BAD_REQUEST, BAD_KEY),
    };
    let result = match key {
        Some(key) => state.inventory.reserve_once(key, &req.sku, req.quantity),
        None => state
            .inventory
            .reserve(&req.sku, req.quantity)
            .map(|remaining| Reserved {
                remaining,
                repeated: false,
            }),
    };
    match result {
        Ok(Reserved { remaining, repeated }) => {
            if repeated {
                tracing::info!(sku = %req.sku, quantity = req.quantity, key, "reservation asked again: answered, nothing more taken");
            } else {
                tracing::info!(sku = %req.sku, quantity = req.quantity, remaining, key, "reserved");
            }
            Json(Reservation {
                sku: req.sku,
                quantity: req.quantity,
                remaining,
            })
            .into_response()
        }
        Err(ReserveError::UnknownSku) => error(StatusCode::NOT_FOUND, "unknown sku"),
        Err(ReserveError::Insufficient { available }) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": "insufficient stock", "available": available })),
        )
            .into_response(),
        Err(ReserveError::KeyReused) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency-Key already used for another sku or quantity",
        ),
        Err(ReserveError::Released) => {
            tracing::info!(sku = %req.sku, key, "reservation refused: its key was released");
            error(StatusCode::GONE, "reservation was released")
        }
        Err(ReserveError::Unavailable) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn release(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    if !valid_key(&key) {
        return error(StatusCode::BAD_REQUEST, BAD_KEY);
    }
    match state.inventory.release(&key) {
        Ok(released) => {
            tracing::info!(sku = %released.sku, quantity = released.quantity, remaining = released.remaining, key, "reservation released");
            Json(released).into_response()
        }
        Err(ReleaseError::NotHeld) => error(StatusCode::NOT_FOUND, "no reservation held under this key"),
        Err(ReleaseError::Unavailable) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
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

    #[test]
    fn a_keyed_reservation_is_taken_once() {
        let inv = Inventory::with_stock([("a", 5)]);
        let first = inv.reserve_once("k1", "a", 2).unwrap();
        assert_eq!(
            first,
            Reserved {
                remaining: 3,
                repeated: false
            }
        );
        let again = inv.reserve_once("k1", "a", 2).unwrap();
        assert_eq!(
            again,
            Reserved {
                remaining: 3,
                repeated: true
            }
        );
        assert_eq!(inv.available("a"), Some(3));
        assert_eq!(inv.reserve_once("k1", "a", 1), Err(ReserveError::KeyReused));
        assert_eq!(inv.reserve_once("k2", "b", 1), Err(ReserveError::UnknownSku));
    }

    #[test]
    fn release_gives_the_stock_back_once_and_refuses_late_reservations() {
        let inv = Inventory::with_stock([("a", 5)]);
        inv.reserve_once("k1", "a", 2).unwrap();
        let released = inv.release("k1").unwrap();
        assert_eq!((released.quantity, released.remaining), (2, 5));
        assert_eq!(inv.release("k1"), Err(ReleaseError::NotHeld));
        assert_eq!(inv.available("a"), Some(5));
        assert_eq!(inv.reserve_once("k1", "a", 2), Err(ReserveError::Released));
        // Released before it was ever taken (the reservation still on its way).
        assert_eq!(inv.release("k2"), Err(ReleaseError::NotHeld));
        assert_eq!(inv.reserve_once("k2", "a", 1), Err(ReserveError::Released));
        assert_eq!(inv.available("a"), Some(5));
    }

    #[test]
    fn the_remembered_keys_are_bounded_oldest_forgotten_first() {
        let inv = Inventory::with_stock([("a", u32::MAX)]);
        for i in 0..MAX_REMEMBERED_RESERVATIONS + 10 {
            inv.reserve_once(&format!("k{i}"), "a", 1).unwrap();
        }
        let table = inv.table.lock().unwrap();
        assert_eq!(table.keyed.len(), MAX_REMEMBERED_RESERVATIONS);
        assert_eq!(table.order.len(), MAX_REMEMBERED_RESERVATIONS);
        assert!(!table.keyed.contains_key("k0"));
        assert!(
            table
                .keyed
                .contains_key(&format!("k{}", MAX_REMEMBERED_RESERVATIONS + 9))
        );
    }
}
