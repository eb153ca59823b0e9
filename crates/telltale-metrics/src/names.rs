//! Every metric and label name telltale emits, in one place.
//!
//! Dashboards, alerts and SLO rules (telltale-slo) are generated from these constants, and
//! a test pins them: renaming one is a breaking change for every user's dashboards.
//! This module is always available, even with `default-features = false`, so tools that
//! only need the names (telltale-slo) depend on nothing else.
//!
//! Names are the Prometheus exposition names. The OpenTelemetry instrument names they come
//! from are given in each doc comment (`http.server.request.duration` with unit `s`
//! becomes `http_server_request_duration_seconds`).
//!
//! ```
//! use telltale_metrics::names::{otel, LabelNames, Scheme};
//!
//! assert_eq!(otel::HTTP_SERVER_REQUEST_DURATION, "http_server_request_duration_seconds");
//! let labels = LabelNames::for_scheme(Scheme::OpenTelemetry);
//! assert_eq!(labels.route, "http_route");
//! assert_eq!(LabelNames::for_scheme(Scheme::Legacy).status, "status");
//! ```

/// Which naming scheme the server RED metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// OpenTelemetry HTTP semantic conventions (default):
    /// `http_server_request_duration_seconds{http_request_method, http_route, http_response_status_code, error_type}`.
    #[default]
    OpenTelemetry,
    /// The names many existing dashboards use:
    /// `http_requests_total` and `http_request_duration_seconds{method, route, status}`.
    Legacy,
}

/// Server-side label names of one [`Scheme`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelNames {
    /// The HTTP method label.
    pub method: &'static str,
    /// The route template label.
    pub route: &'static str,
    /// The status code label.
    pub status: &'static str,
    /// The error type label (present only on failed requests).
    pub error_type: &'static str,
    /// The request duration histogram (its `_count` is the request counter).
    pub duration: &'static str,
    /// A separate request counter, when the scheme has one.
    pub requests_total: Option<&'static str>,
    /// The in-flight gauge.
    pub in_flight: &'static str,
}

impl LabelNames {
    /// The names for a scheme.
    pub const fn for_scheme(scheme: Scheme) -> Self {
        match scheme {
            Scheme::OpenTelemetry => LabelNames {
                method: labels::HTTP_REQUEST_METHOD,
                route: labels::HTTP_ROUTE,
                status: labels::HTTP_RESPONSE_STATUS_CODE,
                error_type: labels::ERROR_TYPE,
                duration: otel::HTTP_SERVER_REQUEST_DURATION,
                requests_total: None,
                in_flight: otel::HTTP_SERVER_ACTIVE_REQUESTS,
            },
            Scheme::Legacy => LabelNames {
                method: legacy::labels::METHOD,
                route: legacy::labels::ROUTE,
                status: legacy::labels::STATUS,
                error_type: labels::ERROR_TYPE,
                duration: legacy::HTTP_REQUEST_DURATION,
                requests_total: Some(legacy::HTTP_REQUESTS_TOTAL),
                in_flight: legacy::HTTP_REQUESTS_IN_FLIGHT,
            },
        }
    }
}

/// Metric names of the OpenTelemetry scheme (the default).
pub mod otel {
    /// `http.server.request.duration` (s), histogram.
    pub const HTTP_SERVER_REQUEST_DURATION: &str = "http_server_request_duration_seconds";
    /// `http.server.active_requests`, gauge.
    pub const HTTP_SERVER_ACTIVE_REQUESTS: &str = "http_server_active_requests";
    /// `http.server.request.body.size` (By), histogram (opt-in).
    pub const HTTP_SERVER_REQUEST_BODY_SIZE: &str = "http_server_request_body_size_bytes";
    /// `http.server.response.body.size` (By), histogram (opt-in).
    pub const HTTP_SERVER_RESPONSE_BODY_SIZE: &str = "http_server_response_body_size_bytes";
    /// `rpc.server.call.duration` (s), histogram, for gRPC servers.
    pub const RPC_SERVER_CALL_DURATION: &str = "rpc_server_call_duration_seconds";
    /// `http.client.request.duration` (s), histogram, per outbound dependency.
    pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http_client_request_duration_seconds";
    /// `rpc.client.call.duration` (s), histogram, per outbound gRPC dependency.
    pub const RPC_CLIENT_CALL_DURATION: &str = "rpc_client_call_duration_seconds";
}

/// Metric names of the legacy scheme.
pub mod legacy {
    /// Request counter.
    pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
    /// Request duration histogram (s).
    pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";
    /// In-flight gauge.
    pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";

    /// Label names of the legacy scheme.
    pub mod labels {
        /// HTTP method.
        pub const METHOD: &str = "method";
        /// Route template.
        pub const ROUTE: &str = "route";
        /// Status code.
        pub const STATUS: &str = "status";
    }
}

/// Metrics about outbound dependencies beyond the RED histogram: attempts, retries,
/// circuit breakers, bulkheads.
pub mod client {
    /// Attempts made (one logical call may make several), counter. Labels: `peer_service`, `outcome`.
    pub const ATTEMPTS_TOTAL: &str = "telltale_client_attempts_total";
    /// Retries decided, counter. Labels: `peer_service`, `reason`.
    pub const RETRIES_TOTAL: &str = "telltale_client_retries_total";
    /// Retries refused, counter. Labels: `peer_service`, `reason` (`budget_exhausted`,
    /// `not_idempotent`, `body_too_large`, `max_attempts`, `deadline`).
    pub const RETRIES_SKIPPED_TOTAL: &str = "telltale_client_retries_skipped_total";
    /// Circuit breaker state, gauge: one series per state with value 1 for the current one.
    /// Labels: `peer_service`, `state` (`closed`, `open`, `half_open`, `forced_open`, `disabled`, `metrics_only`).
    pub const CIRCUIT_BREAKER_STATE: &str = "telltale_circuit_breaker_state";
    /// Circuit breaker transitions, counter. Labels: `peer_service`, `from`, `to`.
    pub const CIRCUIT_BREAKER_TRANSITIONS_TOTAL: &str = "telltale_circuit_breaker_transitions_total";
    /// Calls rejected by an open breaker, counter. Labels: `peer_service`.
    pub const CIRCUIT_BREAKER_REJECTED_TOTAL: &str = "telltale_circuit_breaker_rejected_total";
    /// Calls rejected by a bulkhead, counter. Labels: `peer_service`.
    pub const BULKHEAD_REJECTED_TOTAL: &str = "telltale_bulkhead_rejected_total";
}

/// Metrics about telltale itself and the process.
pub mod meta {
    /// Build information, gauge = 1. Labels: `version`, `commit` (plus the global labels).
    pub const BUILD_INFO: &str = "build_info";
    /// Observations folded into the `overflow` series by the label-set cap (one per
    /// observation whose label set found no room), counter. Label: `metric`.
    pub const CARDINALITY_OVERFLOW_TOTAL: &str = "telltale_metrics_cardinality_overflow_total";
    /// The label value that overflowing label sets are folded into.
    pub const OVERFLOW_LABEL_VALUE: &str = "overflow";
    /// OpenTelemetry's value for an attribute whose real value is not known to the
    /// instrumentation: `rpc_service`/`rpc_method` of a call to a gRPC service or method
    /// the server does not have (see `telltale_metrics::grpc`).
    ///
    /// ```
    /// use telltale_metrics::names::meta;
    ///
    /// // Calls to a gRPC method the server does not have, in PromQL:
    /// let unknown = format!("rpc_server_call_duration_seconds_count{{rpc_method=\"{}\"}}", meta::OTHER_LABEL_VALUE);
    /// assert_eq!(unknown, r#"rpc_server_call_duration_seconds_count{rpc_method="_OTHER"}"#);
    /// ```
    pub const OTHER_LABEL_VALUE: &str = "_OTHER";
    /// Process CPU seconds, counter.
    pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
    /// Process resident memory, gauge.
    pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
    /// Open file descriptors, gauge.
    pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
    /// Process start time (Unix seconds), gauge.
    pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";
    /// OS threads, gauge.
    pub const PROCESS_THREADS: &str = "process_threads";
    /// Maximum open file descriptors (the soft limit), gauge.
    pub const PROCESS_MAX_FDS: &str = "process_max_fds";
    /// tokio runtime worker threads, gauge.
    pub const TOKIO_WORKERS: &str = "tokio_workers";
    /// Tasks in the tokio runtime's global (injection) queue, gauge.
    pub const TOKIO_GLOBAL_QUEUE_DEPTH: &str = "tokio_global_queue_depth";
    /// Alive tasks in the tokio runtime, gauge.
    pub const TOKIO_ALIVE_TASKS: &str = "tokio_alive_tasks";
    /// Time tokio workers spent busy, summed over workers, counter (seconds). Busy ratio:
    /// `rate(tokio_worker_busy_seconds_total[1m]) / tokio_workers`.
    pub const TOKIO_WORKER_BUSY_SECONDS_TOTAL: &str = "tokio_worker_busy_seconds_total";
}

/// Saturation gauges for capacity planning (sampled at scrape time, see
/// `telltale_metrics::saturation`).
pub mod saturation {
    /// `db.client.connections.usage` (the OpenTelemetry name before `db.client.connection.count`,
    /// whose Prometheus form `_count` promtool rejects on a gauge): connections of a pool by
    /// state (`used`, `idle`), gauge. Labels: `pool_name`, `state`.
    pub const DB_CLIENT_CONNECTIONS_USAGE: &str = "db_client_connections_usage";
    /// `db.client.connections.pending_requests`: callers waiting for a connection, gauge.
    /// Label: `pool_name`.
    pub const DB_CLIENT_CONNECTIONS_PENDING_REQUESTS: &str = "db_client_connections_pending_requests";
    /// `db.client.connections.max`: the pool's maximum size, gauge. Label: `pool_name`.
    pub const DB_CLIENT_CONNECTIONS_MAX: &str = "db_client_connections_max";
    /// Items waiting in an in-process queue, gauge. Label: `queue`.
    pub const QUEUE_DEPTH: &str = "telltale_queue_depth";
    /// The capacity of an in-process queue, gauge. Label: `queue`.
    pub const QUEUE_CAPACITY: &str = "telltale_queue_capacity";
    /// Label: the pool's name.
    pub const POOL_NAME: &str = "pool_name";
    /// Label: the queue's name.
    pub const QUEUE: &str = "queue";
    /// `state` value: connections in use.
    pub const STATE_USED: &str = "used";
    /// `state` value: idle connections.
    pub const STATE_IDLE: &str = "idle";
}

/// Background job metrics (see `telltale_metrics::job`).
pub mod job {
    /// `messaging.process.duration`: time to process one job run, histogram (seconds).
    /// Labels: `messaging_system`, `messaging_operation_name` (`process`),
    /// `messaging_destination_name` (the queue), and `error_type` when the run failed.
    pub const MESSAGING_PROCESS_DURATION: &str = "messaging_process_duration_seconds";
    /// Time a job waited between enqueue and the start of its run, histogram (seconds).
    /// Labels: `messaging_system`, `messaging_destination_name`.
    pub const QUEUE_WAIT: &str = "telltale_job_queue_wait_seconds";
    /// Label: `messaging.system`.
    pub const MESSAGING_SYSTEM: &str = "messaging_system";
    /// Label: `messaging.operation.name`.
    pub const MESSAGING_OPERATION_NAME: &str = "messaging_operation_name";
    /// Label: `messaging.destination.name`, the queue.
    pub const MESSAGING_DESTINATION_NAME: &str = "messaging_destination_name";
}

/// Label names (OpenTelemetry attribute names with `.` turned into `_`).
pub mod labels {
    /// `http.request.method`.
    pub const HTTP_REQUEST_METHOD: &str = "http_request_method";
    /// `http.route`.
    pub const HTTP_ROUTE: &str = "http_route";
    /// `http.response.status_code`.
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http_response_status_code";
    /// `error.type`.
    pub const ERROR_TYPE: &str = "error_type";
    /// `server.address`: the dependency's host for outbound calls.
    pub const SERVER_ADDRESS: &str = "server_address";
    /// `peer.service`: the dependency's logical name.
    pub const PEER_SERVICE: &str = "peer_service";
    /// `rpc.system`.
    pub const RPC_SYSTEM: &str = "rpc_system";
    /// `rpc.service`.
    pub const RPC_SERVICE: &str = "rpc_service";
    /// `rpc.method`.
    pub const RPC_METHOD: &str = "rpc_method";
    /// `rpc.grpc.status_code`.
    pub const RPC_GRPC_STATUS_CODE: &str = "rpc_grpc_status_code";
    /// Global label: service name.
    pub const SERVICE: &str = "service";
    /// Global label: deployment environment.
    pub const ENVIRONMENT: &str = "environment";
    /// Global label / build_info label: version.
    pub const VERSION: &str = "version";
    /// build_info label: commit.
    pub const COMMIT: &str = "commit";
    /// Circuit-breaker state label.
    pub const STATE: &str = "state";
    /// Outcome label on attempts (`success`, `error`).
    pub const OUTCOME: &str = "outcome";
    /// Reason label on retries.
    pub const REASON: &str = "reason";
    /// Metric name label on the overflow counter.
    pub const METRIC: &str = "metric";
}

/// Default histogram buckets for request durations, in seconds: the OpenTelemetry HTTP
/// semantic conventions' recommendation.
pub const DEFAULT_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_pinned() {
        // Dashboards, alerts and SLO rules depend on these exact strings.
        assert_eq!(
            otel::HTTP_SERVER_REQUEST_DURATION,
            "http_server_request_duration_seconds"
        );
        assert_eq!(otel::HTTP_SERVER_ACTIVE_REQUESTS, "http_server_active_requests");
        assert_eq!(
            otel::HTTP_CLIENT_REQUEST_DURATION,
            "http_client_request_duration_seconds"
        );
        assert_eq!(otel::RPC_SERVER_CALL_DURATION, "rpc_server_call_duration_seconds");
        assert_eq!(legacy::HTTP_REQUESTS_TOTAL, "http_requests_total");
        assert_eq!(legacy::HTTP_REQUEST_DURATION, "http_request_duration_seconds");
        assert_eq!(client::CIRCUIT_BREAKER_STATE, "telltale_circuit_breaker_state");
        assert_eq!(meta::BUILD_INFO, "build_info");
        assert_eq!(
            [meta::OVERFLOW_LABEL_VALUE, meta::OTHER_LABEL_VALUE],
            ["overflow", "_OTHER"]
        );
        assert_eq!(
            [
                job::MESSAGING_PROCESS_DURATION,
                job::QUEUE_WAIT,
                job::MESSAGING_SYSTEM,
                job::MESSAGING_OPERATION_NAME,
                job::MESSAGING_DESTINATION_NAME,
            ],
            [
                "messaging_process_duration_seconds",
                "telltale_job_queue_wait_seconds",
                "messaging_system",
                "messaging_operation_name",
                "messaging_destination_name",
            ]
        );
        assert_eq!(
            [
                labels::HTTP_REQUEST_METHOD,
                labels::HTTP_ROUTE,
                labels::HTTP_RESPONSE_STATUS_CODE,
                labels::ERROR_TYPE
            ],
            [
                "http_request_method",
                "http_route",
                "http_response_status_code",
                "error_type"
            ]
        );
        assert_eq!(DEFAULT_DURATION_BUCKETS.len(), 14);
        assert_eq!(
            [
                meta::TOKIO_WORKERS,
                meta::TOKIO_GLOBAL_QUEUE_DEPTH,
                meta::TOKIO_ALIVE_TASKS,
                meta::TOKIO_WORKER_BUSY_SECONDS_TOTAL,
                meta::PROCESS_MAX_FDS,
            ],
            [
                "tokio_workers",
                "tokio_global_queue_depth",
                "tokio_alive_tasks",
                "tokio_worker_busy_seconds_total",
                "process_max_fds",
            ]
        );
        assert_eq!(
            [
                saturation::DB_CLIENT_CONNECTIONS_USAGE,
                saturation::DB_CLIENT_CONNECTIONS_PENDING_REQUESTS,
                saturation::DB_CLIENT_CONNECTIONS_MAX,
                saturation::QUEUE_DEPTH,
                saturation::QUEUE_CAPACITY,
            ],
            [
                "db_client_connections_usage",
                "db_client_connections_pending_requests",
                "db_client_connections_max",
                "telltale_queue_depth",
                "telltale_queue_capacity",
            ]
        );
    }
}
