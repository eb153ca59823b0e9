//! OTLP metrics over HTTP/protobuf, alone (no Prometheus): the request mix reaches a real
//! `POST /v1/metrics` receiver. The export interval is left at its 60 s default, so the
//! metrics can only arrive through the final push of `Telemetry::shutdown()`.
//!
//! The facade installs global state (the `metrics` recorder), so this binary has one test.

mod support;

use telltale::Telemetry;
use telltale::trace::export::OtlpProtocol;
use telltale_test_support::otlp::{AggregationTemporality, OtlpReceiver, Transport, attribute};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_push_alone_sends_the_request_mix_at_shutdown() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let telemetry = Telemetry::builder("billing")
        .version("0.9.0")
        .otlp_metrics(receiver.http_endpoint(), OtlpProtocol::HttpProtobuf)
        .init()
        .unwrap();
    assert!(telemetry.metrics_handle().is_none(), "no Prometheus asked for");
    let addr = support::serve(&telemetry).await;

    support::send_mix(addr).await;
    assert!(
        receiver.metrics().is_empty(),
        "nothing is pushed before the 60 s interval"
    );

    // shutdown() blocks this worker while the last push goes out; the receiver runs on
    // the other one.
    telemetry.shutdown();

    let metrics = support::wait_for_the_mix(&receiver, |_| true).await;
    support::assert_process_metrics(&metrics);
    let duration = support::latest_duration(&metrics).unwrap();
    assert_eq!(duration.transport, Transport::HttpProtobuf);
    assert_eq!(duration.unit(), "s");
    assert_eq!(
        duration.temporality(),
        Some(AggregationTemporality::Cumulative),
        "the default"
    );
    assert_eq!(duration.service_name, "billing");
    assert_eq!(
        duration.resource_attr("service.version").as_deref(),
        Some("0.9.0")
    );
    assert_eq!(duration.resource_attr("deployment.environment.name"), None);
    for p in duration.histogram_points() {
        assert_eq!(
            attribute(&p.attributes, "http.request.method").as_deref(),
            Some("GET")
        );
        assert!(attribute(&p.attributes, "http.route").is_some(), "{p:?}");
    }
}
