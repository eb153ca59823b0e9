//! The HTTP contract of the real `orders-api` binary at its edges: every error is the
//! JSON `ApiError` body with the request id (the extractors' rejections too), inputs
//! are bounded before they reach a dependency, an order id is a UUID in any of its
//! forms, and a request that never completes is answered by the server's own timeout.

mod common;

use std::time::Duration;

use common::{OrdersApi, agent, raw_exchange};
use serde_json::Value;
use telltale_test_support::service::wait_for;

/// Checks an error answer: `status`, a JSON body with a non-empty `error` and the
/// request's id.
fn assert_api_error(res: &mut ureq::http::Response<ureq::Body>, status: u16, request_id: &str) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    let body: Value = res.body_mut().read_json().expect("a JSON body");
    assert_eq!(content_type, "application/json", "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert_eq!(body["request_id"], request_id, "{body}");
    body
}

#[test]
fn malformed_requests_get_the_json_error_body_with_their_request_id() {
    let api = OrdersApi::start(&[]);
    let post = |id: &str| {
        agent()
            .post(&format!("{}/orders", api.base))
            .header("x-request-id", id)
    };

    let mut res = post("bad-json-1")
        .header("content-type", "application/json")
        .send(r#"{"sku": "sku-apple", "quantity": "#)
        .unwrap();
    assert_api_error(&mut res, 400, "bad-json-1");

    let mut res = post("bad-json-2")
        .header("content-type", "application/json")
        .send(r#"{"sku": "sku-apple"}"#)
        .unwrap();
    let body = assert_api_error(&mut res, 422, "bad-json-2");
    assert!(
        body["error"].as_str().unwrap().contains("quantity"),
        "says what is wrong: {body}"
    );

    let mut res = post("bad-type-1")
        .header("content-type", "text/plain")
        .send(r#"{"sku": "sku-apple", "quantity": 1}"#)
        .unwrap();
    assert_api_error(&mut res, 415, "bad-type-1");

    let mut res = agent()
        .get(&format!("{}/orders?limit=many", api.base))
        .header("x-request-id", "bad-query-1")
        .call()
        .unwrap();
    assert_api_error(&mut res, 400, "bad-query-1");
}

#[test]
fn an_order_is_found_by_any_form_of_its_uuid() {
    let api = OrdersApi::start(&[]);
    let (status, order) = api.place_order("sku-apple", 1);
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    assert_eq!(id, uuid.hyphenated().to_string(), "stored in the canonical form");

    for form in [
        id.clone(),
        id.to_uppercase(),
        uuid.simple().to_string(),
        uuid.urn().to_string(),
        uuid.braced().to_string().to_uppercase(),
    ] {
        let (status, body) = api.get_json(&format!("/orders/{form}"), "uuid-forms");
        assert_eq!(status, 200, "GET /orders/{form}: {body}");
        assert_eq!(body["id"], id.as_str(), "{body}");
    }
    let (status, body) = api.get_json("/orders/not-a-uuid", "uuid-bad");
    assert_eq!(
        (status, &body["request_id"]),
        (400, &Value::from("uuid-bad")),
        "{body}"
    );
}

#[test]
fn a_stock_query_with_an_overlong_sku_is_a_json_400_not_a_503() {
    let api = OrdersApi::start(&[]);
    for len in [65, 20_000] {
        let sku = "s".repeat(len);
        let mut res = agent()
            .get(&format!("{}/stock/{sku}", api.base))
            .header("x-request-id", "long-sku")
            .call()
            .unwrap();
        let body = assert_api_error(&mut res, 400, "long-sku");
        assert!(body["error"].as_str().unwrap().contains("64"), "{body}");
    }
    // 64 is still a SKU: the inventory answers it does not know it.
    let (status, body) = api.get_json(&format!("/stock/{}", "s".repeat(64)), "sku-64");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["request_id"], "sku-64", "{body}");
    assert!(api.stock("sku-apple") > 0);
}

#[test]
fn a_request_whose_body_never_arrives_is_answered_by_the_request_timeout() {
    let api = OrdersApi::start(&[("REQUEST_TIMEOUT_MS", "300")]);
    // 100 bytes announced, 7 sent, then nothing: the handler waits for the rest.
    let request = b"POST /orders HTTP/1.1\r\nhost: orders\r\ncontent-type: application/json\r\n\
x-request-id: slow-body-1\r\ncontent-length: 100\r\n\r\n{\"sku\":";
    // A generous bound: the answer is due after 300 ms; without the timeout it never comes.
    let answer = raw_exchange(&api.addr, request, Duration::from_secs(20));
    assert!(answer.starts_with("HTTP/1.1 503"), "answer: {answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("x-request-id: slow-body-1"),
        "{answer:?}"
    );
    let access = wait_for(
        Duration::from_secs(10),
        "the access line of the slow request",
        || {
            api.access_lines("POST", "/orders")
                .into_iter()
                .find(|v| v["request_id"] == "slow-body-1")
        },
    );
    assert_eq!(
        access["status"], 503,
        "the server layer sees the timeout: {access}"
    );
    // The service still answers.
    assert_eq!(api.get("/orders").0, 200);
}
