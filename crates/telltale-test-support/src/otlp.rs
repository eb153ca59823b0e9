//! A real OTLP receiver for tests (feature `otlp`).
//!
//! It implements the OpenTelemetry Collector's `TraceService` and `MetricsService` (from
//! `opentelemetry-proto`) over gRPC on `127.0.0.1:0`, and `POST /v1/traces` and
//! `POST /v1/metrics` over HTTP/protobuf on a second loopback port, and keeps every span
//! and metric it receives, with its resource's `service.name`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use telltale_test_support::otlp::OtlpReceiver;
//!
//! let receiver = OtlpReceiver::start().await?;
//! let endpoint = receiver.endpoint(); // "http://127.0.0.1:PORT", for an OTLP/gRPC exporter
//! let http = receiver.http_endpoint(); // "http://127.0.0.1:PORT2", for OTLP/HTTP (protobuf)
//! # let _ = (endpoint, http);
//! let spans = receiver
//!     .wait_for_spans(|spans| spans.iter().any(|s| s.name() == "GET /orders/{id}"), Duration::from_secs(10))
//!     .await
//!     .expect("the server span arrives");
//! assert_eq!(spans[0].service_name, "orders-api");
//!
//! let metrics = receiver
//!     .wait_for_metrics(|ms| ms.iter().any(|m| m.name() == "http.server.request.duration"), Duration::from_secs(10))
//!     .await
//!     .expect("the duration histogram arrives");
//! let latest = metrics.iter().rev().find(|m| m.name() == "http.server.request.duration").unwrap();
//! let requests: u64 = latest.histogram_points().iter().map(|p| p.count).sum();
//! # let _ = requests;
//! # Ok(()) }
//! ```
//!
//! Metric exporters send cumulative totals by default: every export repeats each series
//! with its running count, so the newest [`ReceivedMetric`] of a name is the one to read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
pub use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric, NumberDataPoint};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio::sync::{Notify, oneshot};

/// How an export reached the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a protobuf body.
    HttpProtobuf,
}

/// One span as received, with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource's `service.name` (empty if absent).
    pub service_name: String,
    /// The span as sent on the wire.
    pub span: Span,
}

impl ReceivedSpan {
    /// The span name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id as hex, or an empty string for a root span.
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// An attribute's value as text (strings as-is, numbers and booleans formatted).
    pub fn attr(&self, key: &str) -> Option<String> {
        attr_text(&self.span.attributes, key)
    }

    /// Whether the span's status is Error.
    pub fn is_error(&self) -> bool {
        self.span.status.as_ref().is_some_and(|s| s.code == 2)
    }
}

/// One metric as received (one per metric per export), with its resource's attributes.
#[derive(Debug, Clone)]
pub struct ReceivedMetric {
    /// The resource's `service.name` (empty if absent).
    pub service_name: String,
    /// Every attribute of the resource.
    pub resource: Vec<KeyValue>,
    /// How it arrived.
    pub transport: Transport,
    /// The metric as sent on the wire.
    pub metric: Metric,
}

impl ReceivedMetric {
    /// The metric name (e.g. `http.server.request.duration`).
    pub fn name(&self) -> &str {
        &self.metric.name
    }

    /// The unit (e.g. `s`), empty if none.
    pub fn unit(&self) -> &str {
        &self.metric.unit
    }

    /// A resource attribute's value as text.
    pub fn resource_attr(&self, key: &str) -> Option<String> {
        attr_text(&self.resource, key)
    }

    /// The data points of a histogram (empty for other kinds).
    pub fn histogram_points(&self) -> &[HistogramDataPoint] {
        match &self.metric.data {
            Some(Data::Histogram(h)) => &h.data_points,
            _ => &[],
        }
    }

    /// The data points of a sum (counter) or gauge (empty for histograms).
    pub fn number_points(&self) -> &[NumberDataPoint] {
        match &self.metric.data {
            Some(Data::Sum(s)) => &s.data_points,
            Some(Data::Gauge(g)) => &g.data_points,
            _ => &[],
        }
    }

    /// Whether the metric is a monotonic sum (what a counter becomes).
    pub fn is_monotonic_sum(&self) -> bool {
        matches!(&self.metric.data, Some(Data::Sum(s)) if s.is_monotonic)
    }

    /// Whether the metric is a gauge.
    pub fn is_gauge(&self) -> bool {
        matches!(&self.metric.data, Some(Data::Gauge(_)))
    }

    /// The aggregation temporality of a sum or histogram (`None` for a gauge, or a value
    /// the protocol does not define).
    pub fn temporality(&self) -> Option<AggregationTemporality> {
        let raw = match &self.metric.data {
            Some(Data::Sum(s)) => s.aggregation_temporality,
            Some(Data::Histogram(h)) => h.aggregation_temporality,
            Some(Data::ExponentialHistogram(h)) => h.aggregation_temporality,
            _ => return None,
        };
        AggregationTemporality::try_from(raw).ok()
    }
}

/// An attribute's value as text (strings as-is, numbers and booleans formatted), e.g. of a
/// data point: `attribute(&point.attributes, "http.response.status_code")`.
pub fn attribute(attrs: &[KeyValue], key: &str) -> Option<String> {
    attr_text(attrs, key)
}

/// Whether an attribute is sent as an integer (as semantic conventions want for status codes).
pub fn attribute_is_int(attrs: &[KeyValue], key: &str) -> bool {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .is_some_and(|v| matches!(v, Value::IntValue(_)))
}

/// A number data point's value as `f64` (integers converted).
pub fn number_value(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

fn attr_text(attrs: &[KeyValue], key: &str) -> Option<String> {
    let v = attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[derive(Default)]
struct Shared {
    spans: Mutex<Vec<ReceivedSpan>>,
    metrics: Mutex<Vec<ReceivedMetric>>,
    notify: Notify,
}

impl Shared {
    fn add_spans(&self, request: ExportTraceServiceRequest) {
        let mut received = Vec::new();
        for rs in request.resource_spans {
            let service_name = rs
                .resource
                .as_ref()
                .and_then(|r| attr_text(&r.attributes, "service.name"))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    received.push(ReceivedSpan {
                        service_name: service_name.clone(),
                        span,
                    });
                }
            }
        }
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(received);
        self.notify.notify_waiters();
    }

    fn add_metrics(&self, request: ExportMetricsServiceRequest, transport: Transport) {
        let mut received = Vec::new();
        for rm in request.resource_metrics {
            let resource = rm.resource.map(|r| r.attributes).unwrap_or_default();
            let service_name = attr_text(&resource, "service.name").unwrap_or_default();
            for sm in rm.scope_metrics {
                for metric in sm.metrics {
                    received.push(ReceivedMetric {
                        service_name: service_name.clone(),
                        resource: resource.clone(),
                        transport,
                        metric,
                    });
                }
            }
        }
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(received);
        self.notify.notify_waiters();
    }
}

struct Collector(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add_spans(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.add_metrics(request.into_inner(), Transport::Grpc);
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

const PROTOBUF: &str = "application/x-protobuf";

async fn http_metrics(State(shared): State<Arc<Shared>>, body: Bytes) -> axum::response::Response {
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            shared.add_metrics(request, Transport::HttpProtobuf);
            let body = ExportMetricsServiceResponse {
                partial_success: None,
            }
            .encode_to_vec();
            ([(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn http_traces(State(shared): State<Arc<Shared>>, body: Bytes) -> axum::response::Response {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            shared.add_spans(request);
            let body = ExportTraceServiceResponse {
                partial_success: None,
            }
            .encode_to_vec();
            ([(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// A running OTLP receiver (gRPC and HTTP/protobuf); stops when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    http_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("addr", &self.addr)
            .field("http_addr", &self.http_addr)
            .finish()
    }
}

impl OtlpReceiver {
    /// Starts the receiver on two free ports of `127.0.0.1` (inside a tokio runtime).
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http_addr = http_listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let grpc = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(shared.clone())))
            .add_service(MetricsServiceServer::new(Collector(shared.clone())))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        let http = axum::serve(
            http_listener,
            axum::Router::new()
                .route("/v1/metrics", axum::routing::post(http_metrics))
                .route("/v1/traces", axum::routing::post(http_traces))
                .with_state(shared.clone()),
        );
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = grpc => {}
                _ = http.into_future() => {}
                _ = stopped => {}
            }
        });
        Ok(OtlpReceiver {
            addr,
            http_addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// The endpoint for an OTLP/gRPC exporter: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the gRPC receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base endpoint for an OTLP/HTTP (protobuf) exporter: `http://127.0.0.1:PORT`;
    /// it serves `POST /v1/metrics` and `POST /v1/traces`.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared
            .spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every metric received so far, oldest first (one entry per metric per export).
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.shared
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until `pred` holds for the spans received so far, or `deadline` passes.
    /// `Ok(spans)` when it held, `Err(spans)` (what was received) when it timed out.
    pub async fn wait_for_spans(
        &self,
        pred: impl Fn(&[ReceivedSpan]) -> bool,
        deadline: Duration,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        self.wait_for(|| self.spans(), pred, deadline).await
    }

    /// Waits until `pred` holds for the metrics received so far, or `deadline` passes.
    /// `Ok(metrics)` when it held, `Err(metrics)` (what was received) when it timed out.
    /// Woken by each export, so it never sleeps longer than it must.
    pub async fn wait_for_metrics(
        &self,
        pred: impl Fn(&[ReceivedMetric]) -> bool,
        deadline: Duration,
    ) -> Result<Vec<ReceivedMetric>, Vec<ReceivedMetric>> {
        self.wait_for(|| self.metrics(), pred, deadline).await
    }

    async fn wait_for<T>(
        &self,
        get: impl Fn() -> Vec<T>,
        pred: impl Fn(&[T]) -> bool,
        deadline: Duration,
    ) -> Result<Vec<T>, Vec<T>> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            // Created before the check, so an export landing in between still wakes us.
            let notified = self.shared.notify.notified();
            let items = get();
            if pred(&items) {
                return Ok(items);
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                let items = get();
                return if pred(&items) { Ok(items) } else { Err(items) };
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}
