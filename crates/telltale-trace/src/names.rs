//! Metric names (for the `metrics` facade) and span attribute keys, in one place.
//!
//! Dashboards and alerts depend on these names; a test pins them.
//!
//! ```
//! assert_eq!(telltale_trace::names::TAIL_TRACES_KEPT, "telltale_trace_tail_traces_kept_total");
//! assert_eq!(telltale_trace::names::attr::HTTP_ROUTE, "http.route");
//! ```

/// Counter: local traces the tail sampler exported although the head decision was
/// "not sampled". Label [`LABEL_REASON`]: `error` or `slow`.
pub const TAIL_TRACES_KEPT: &str = "telltale_trace_tail_traces_kept_total";
/// Counter: spans the tail sampler could not hold and dropped. Label [`LABEL_REASON`]:
/// `max_traces` (too many traces held), `max_spans_per_trace`, `max_age` (the trace's
/// local root never ended in time, or a span ended after its root).
pub const TAIL_SPANS_OVERFLOW: &str = "telltale_trace_tail_spans_overflow_total";
/// Gauge: local traces currently held by the tail sampler.
pub const TAIL_TRACES_HELD: &str = "telltale_trace_tail_traces_held";
/// Counter: spans dropped because the export queue was full (collector slow or down).
pub const EXPORT_SPANS_DROPPED: &str = "telltale_trace_export_spans_dropped_total";
/// Counter: export calls that failed or timed out.
pub const EXPORT_FAILURES: &str = "telltale_trace_export_failures_total";
/// Counter: spans handed to the exporter in successful export calls.
pub const EXPORT_SPANS: &str = "telltale_trace_export_spans_total";

/// Label on [`TAIL_TRACES_KEPT`] and [`TAIL_SPANS_OVERFLOW`].
pub const LABEL_REASON: &str = "reason";

/// The `tracing` target of the spans this crate creates to carry a request's, a job run's
/// or a call's ids (at INFO; telltale-log's filter keeps them at every level, so lines
/// inside a request carry its ids whatever `RUST_LOG` says).
pub const SPAN_TARGET: &str = telltale_core::trace_ids::SPAN_TARGET;

/// OpenTelemetry semantic-convention attribute keys used on spans.
pub mod attr {
    /// `http.request.method`
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    /// `http.request.method_original` (when the method was normalised to `_OTHER`)
    pub const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
    /// `http.route`
    pub const HTTP_ROUTE: &str = "http.route";
    /// `http.response.status_code`
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// `url.path`
    pub const URL_PATH: &str = "url.path";
    /// `url.query` (only when opted in, with sensitive values redacted)
    pub const URL_QUERY: &str = "url.query";
    /// `url.scheme`
    pub const URL_SCHEME: &str = "url.scheme";
    /// `url.full` (client spans; query secrets redacted)
    pub const URL_FULL: &str = "url.full";
    /// `server.address`
    pub const SERVER_ADDRESS: &str = "server.address";
    /// `server.port`
    pub const SERVER_PORT: &str = "server.port";
    /// `network.protocol.version`
    pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
    /// `user_agent.original`
    pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
    /// `client.address`
    pub const CLIENT_ADDRESS: &str = "client.address";
    /// `client.port`
    pub const CLIENT_PORT: &str = "client.port";
    /// `error.type`
    pub const ERROR_TYPE: &str = "error.type";
    /// `messaging.system` (job spans): what carries the jobs (`kafka`, `postgresql`, …).
    pub const MESSAGING_SYSTEM: &str = "messaging.system";
    /// `messaging.operation.type` (job spans: `process`).
    pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
    /// `messaging.operation.name` (job spans: `process`).
    pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
    /// `messaging.destination.name` (job spans): the queue.
    pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
    /// `request_id` (telltale's request id, same key as in the JSON logs)
    pub const REQUEST_ID: &str = "request_id";
    /// `peer.service` (the dependency's name on client spans)
    pub const PEER_SERVICE: &str = "peer.service";
    /// `rpc.system`
    pub const RPC_SYSTEM: &str = "rpc.system";
    /// `rpc.service`
    pub const RPC_SERVICE: &str = "rpc.service";
    /// `rpc.method`
    pub const RPC_METHOD: &str = "rpc.method";
    /// `rpc.grpc.status_code`
    pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
    /// `exception.type` (on `exception` events)
    pub const EXCEPTION_TYPE: &str = "exception.type";
    /// `exception.message` (on `exception` events)
    pub const EXCEPTION_MESSAGE: &str = "exception.message";
    /// `telltale.client_disconnected`: the peer hung up before the response body ended.
    pub const CLIENT_DISCONNECTED: &str = "telltale.client_disconnected";
    /// `http.response.body.size`
    pub const HTTP_RESPONSE_BODY_SIZE: &str = "http.response.body.size";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_pinned() {
        assert_eq!(TAIL_TRACES_KEPT, "telltale_trace_tail_traces_kept_total");
        assert_eq!(TAIL_SPANS_OVERFLOW, "telltale_trace_tail_spans_overflow_total");
        assert_eq!(TAIL_TRACES_HELD, "telltale_trace_tail_traces_held");
        assert_eq!(EXPORT_SPANS_DROPPED, "telltale_trace_export_spans_dropped_total");
        assert_eq!(EXPORT_FAILURES, "telltale_trace_export_failures_total");
        assert_eq!(EXPORT_SPANS, "telltale_trace_export_spans_total");
        assert_eq!(LABEL_REASON, "reason");
        assert_eq!(attr::HTTP_RESPONSE_STATUS_CODE, "http.response.status_code");
        assert_eq!(attr::RPC_GRPC_STATUS_CODE, "rpc.grpc.status_code");
    }
}
