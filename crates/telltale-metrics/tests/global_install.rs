//! The global recorder: installable once per process, so this is its own test binary.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use telltale_metrics::{MetricsLayer, PrometheusConfig, PrometheusError};
use tower::ServiceExt;

#[tokio::test]
async fn install_once_then_a_clear_error_and_layers_record_globally() {
    let handle = PrometheusConfig::new("global-svc")
        .version("9.9.9")
        .install()
        .expect("first install");
    let err = PrometheusConfig::new("again").install().unwrap_err();
    assert!(matches!(err, PrometheusError::RecorderAlreadyInstalled));
    assert!(err.to_string().contains("already installed"), "{err}");

    let app = Router::new()
        .route("/x", get(|| async { "x" }))
        .layer(MetricsLayer::new());
    let res = app
        .oneshot(Request::get("/x").body(Body::empty()).unwrap())
        .await
        .unwrap();
    // Read the body to its end: dropping it unread is a client hang-up (499).
    http_body_util::BodyExt::collect(res.into_body()).await.unwrap();
    let text = handle.render();
    assert!(
        text.contains(r#"http_server_request_duration_seconds_count{service="global-svc",version="9.9.9",http_request_method="GET",http_route="/x",http_response_status_code="200"} 1"#),
        "{text}"
    );
}
