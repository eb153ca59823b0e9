//! Keyed reservations over real HTTP: taken once however often they are sent, given
//! back by `DELETE /reservations/{key}`, and a late retry after the release is refused.

use inventory::{Faults, Inventory};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The inventory on a free loopback port; the server task ends with the test's runtime.
async fn serve(inv: Inventory) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, inventory::app(inv, Faults::none())).await });
    base
}

async fn reserve(base: &str, key: Option<&str>, sku: &str, quantity: u32) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/reservations"))
        .json(&json!({ "sku": sku, "quantity": quantity }));
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

async fn release(base: &str, key: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .delete(format!("{base}/reservations/{key}"))
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_reservation_sent_twice_with_one_key_takes_the_stock_once() {
    let inv = Inventory::with_stock([("sku-a", 10)]);
    let base = serve(inv.clone()).await;
    let (status, first) = reserve(&base, Some("order-1"), "sku-a", 3).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = reserve(&base, Some("order-1"), "sku-a", 3).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(first, again, "the retry is answered the first reservation");
    assert_eq!(inv.available("sku-a"), Some(7));

    let (status, body) = reserve(&base, Some("order-1"), "sku-a", 4).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(inv.available("sku-a"), Some(7));

    // Without a key every request takes stock, as before.
    reserve(&base, None, "sku-a", 1).await;
    reserve(&base, None, "sku-a", 1).await;
    assert_eq!(inv.available("sku-a"), Some(5));
}

#[tokio::test]
async fn a_release_gives_the_stock_back_and_a_late_retry_is_refused() {
    let inv = Inventory::with_stock([("sku-a", 10)]);
    let base = serve(inv.clone()).await;
    assert_eq!(
        reserve(&base, Some("order-2"), "sku-a", 4).await.0,
        StatusCode::OK
    );
    assert_eq!(inv.available("sku-a"), Some(6));

    let (status, body) = release(&base, "order-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "sku": "sku-a", "quantity": 4, "remaining": 10 }));
    assert_eq!(inv.available("sku-a"), Some(10));

    let (status, body) = release(&base, "order-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "released once only: {body}");
    let (status, body) = reserve(&base, Some("order-2"), "sku-a", 4).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(inv.available("sku-a"), Some(10));

    // Released before the reservation arrived (the caller gave up on it first).
    assert_eq!(release(&base, "order-3").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        reserve(&base, Some("order-3"), "sku-a", 1).await.0,
        StatusCode::GONE
    );
    assert_eq!(inv.available("sku-a"), Some(10));
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let inv = Inventory::with_stock([("sku-a", 10)]);
    let base = serve(inv.clone()).await;
    let long = "k".repeat(inventory::MAX_KEY_LEN + 1);
    let (status, body) = reserve(&base, Some(&long), "sku-a", 1).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("Idempotency-Key"),
        "{body}"
    );
    assert_eq!(release(&base, &long).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(inv.available("sku-a"), Some(10));
}
