//! Shared by the OTLP metrics tests: a real axum server behind `server_layer()`, a known
//! mix of requests over real TCP, and the check of what the receiver got.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use telltale::Telemetry;
use telltale_test_support::otlp::{ReceivedMetric, attribute};

/// The mix sent, in this order: status code → requests. The empty-bodied 404s and 503s
/// are observed when hyper drops their body, which may be just after the client has the
/// response; sent first on the one keep-alive connection, each is done before the next
/// request is read. The last ones, 200s with a body, are observed before their body is
/// written, so the mix is complete in the recorder once `send_mix` returns.
pub const MIX: [(u16, u64); 3] = [(404, 3), (503, 2), (200, 5)];

/// Serves `/ok` (200), `/missing` (404) and `/down` (503) behind the facade's layer, and
/// `/metrics` when Prometheus is on.
pub async fn serve(telemetry: &Telemetry) -> SocketAddr {
    let app: Router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .merge(telemetry.metrics_router())
        .layer(telemetry.server_layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Sends [`MIX`] over real TCP and checks each status.
pub async fn send_mix(addr: SocketAddr) {
    let client = client();
    for (status, n) in MIX {
        let path = match status {
            200 => "/ok",
            404 => "/missing",
            _ => "/down",
        };
        for _ in 0..n {
            let res = client.get(format!("http://{addr}{path}")).send().await.unwrap();
            assert_eq!(res.status().as_u16(), status);
            res.bytes().await.unwrap();
        }
    }
}

/// The newest `http.server.request.duration` received (exports are cumulative).
pub fn latest_duration(metrics: &[ReceivedMetric]) -> Option<&ReceivedMetric> {
    metrics
        .iter()
        .rev()
        .find(|m| m.name() == "http.server.request.duration")
}

/// Request counts by `http.response.status_code` in a duration histogram.
pub fn counts_by_status(m: &ReceivedMetric) -> BTreeMap<u16, u64> {
    let mut counts = BTreeMap::new();
    for p in m.histogram_points() {
        let status = attribute(&p.attributes, "http.response.status_code")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        *counts.entry(status).or_insert(0) += p.count;
    }
    counts
}

pub fn expected_counts() -> BTreeMap<u16, u64> {
    MIX.into_iter().collect()
}

/// Whether the newest duration histogram holds exactly the mix.
pub fn has_the_mix(metrics: &[ReceivedMetric]) -> bool {
    latest_duration(metrics).is_some_and(|m| counts_by_status(m) == expected_counts())
}

/// Waits (bounded) until an export with the whole mix and whatever else `more` asks for has
/// arrived; panics with the newest counts otherwise. Returns everything received.
pub async fn wait_for_the_mix(
    receiver: &telltale_test_support::otlp::OtlpReceiver,
    more: impl Fn(&[ReceivedMetric]) -> bool,
) -> Vec<ReceivedMetric> {
    receiver
        .wait_for_metrics(
            |ms| has_the_mix(ms) && more(ms),
            std::time::Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|got| {
            panic!(
                "no export with the mix {:?}; newest duration histogram: {:?}",
                expected_counts(),
                latest_duration(&got).map(counts_by_status)
            )
        })
}

/// The newest export of each OS process metric holds a plausible reading of this process.
#[cfg(feature = "otlp-metrics")]
pub fn assert_process_metrics(metrics: &[ReceivedMetric]) {
    use telltale::otlp_metrics::process;
    use telltale_test_support::otlp::number_value;
    let newest = |name: &str| {
        metrics
            .iter()
            .rev()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("no {name} among {:?}", names(metrics)))
    };
    let single = |name: &str| {
        let m = newest(name);
        assert!(!m.is_monotonic_sum(), "{name}: {m:?}");
        let points = m.number_points();
        assert_eq!(points.len(), 1, "{name}: {points:?}");
        number_value(&points[0])
    };

    let cpu = newest(process::CPU_TIME);
    assert!(cpu.is_monotonic_sum(), "{cpu:?}");
    assert_eq!(cpu.unit(), "s");
    let mut modes: Vec<(String, f64)> = cpu
        .number_points()
        .iter()
        .map(|p| {
            (
                attribute(&p.attributes, process::CPU_MODE).unwrap_or_default(),
                number_value(p),
            )
        })
        .collect();
    modes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        modes.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["system", "user"],
        "{modes:?}"
    );
    assert!(modes.iter().all(|(_, s)| s.is_finite() && *s >= 0.0), "{modes:?}");

    let rss = single(process::MEMORY_USAGE);
    let virt = single(process::MEMORY_VIRTUAL);
    assert!(rss > 1_000_000.0, "resident {rss} bytes");
    assert!(virt >= rss, "virtual {virt} < resident {rss}");
    assert_eq!(newest(process::MEMORY_USAGE).unit(), "By");
    // The test's runtime has two workers besides the main thread.
    assert!(single(process::THREAD_COUNT) >= 3.0);
    // stdin, stdout, stderr and at least the receiver's and the server's sockets.
    assert!(single(process::UNIX_FILE_DESCRIPTOR_COUNT) >= 5.0);

    let uptime = newest(process::UPTIME);
    assert!(uptime.is_gauge(), "{uptime:?}");
    let up = number_value(&uptime.number_points()[0]);
    assert!((0.0..3600.0).contains(&up), "uptime {up} s");
}

fn names(metrics: &[ReceivedMetric]) -> std::collections::BTreeSet<&str> {
    metrics.iter().map(|m| m.name()).collect()
}

/// Telemetry for the end-to-end facade tests: JSON log lines into `logs`, Prometheus, and
/// every span exported to `receiver` over OTLP/gRPC.
pub fn traced_telemetry(
    service: &str,
    logs: &telltale::log::CaptureWriter,
    receiver: &telltale_test_support::otlp::OtlpReceiver,
) -> Telemetry {
    Telemetry::builder(service)
        .log_writer(logs.clone())
        .log_format(telltale::log::LogFormat::Json)
        .prometheus()
        .otlp(receiver.endpoint(), telltale::trace::export::OtlpProtocol::Grpc)
        .sampling(telltale::Sampling::always())
        .init()
        .unwrap()
}
