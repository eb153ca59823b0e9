//! The names dashboards, log pipelines and alerts depend on: JSON keys, the access-log
//! target and field names, and the metric name. Pinned by tests; change them only with
//! a CHANGELOG entry.
//!
//! ```
//! use telltale_log::keys;
//! assert_eq!(keys::RESERVED[0], keys::TIMESTAMP);
//! assert_eq!(keys::ACCESS_TARGET, "telltale::access");
//! ```

/// RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-21T05:44:03.123Z`.
pub const TIMESTAMP: &str = "timestamp";
/// `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR`.
pub const LEVEL: &str = "level";
/// The service name given to [`LogConfig::new`](crate::LogConfig::new).
pub const SERVICE: &str = "service";
/// The deployment environment (`null` when not configured).
pub const ENVIRONMENT: &str = "environment";
/// The service version (`null` when not configured).
pub const VERSION: &str = "version";
/// The event's `tracing` target (module path unless set).
pub const TARGET: &str = "target";
/// The event's message (`""` when the event has none).
pub const MESSAGE: &str = "message";
/// W3C trace id, 32 hex digits (`null` outside a traced span).
pub const TRACE_ID: &str = "trace_id";
/// W3C span id, 16 hex digits (`null` outside a traced span).
pub const SPAN_ID: &str = "span_id";
/// The request id (`null` outside a request).
pub const REQUEST_ID: &str = "request_id";

/// Every reserved key, in the order they appear in a line. They come first, and every
/// line has all of them.
pub const RESERVED: [&str; 10] = [
    TIMESTAMP,
    LEVEL,
    SERVICE,
    ENVIRONMENT,
    VERSION,
    TARGET,
    MESSAGE,
    TRACE_ID,
    SPAN_ID,
    REQUEST_ID,
];

/// Prefix given to an event or span field whose name is a reserved key
/// (a field `level` is written as `fields.level`).
pub const COLLISION_PREFIX: &str = "fields.";

/// The value written instead of a redacted field or header.
pub const REDACTED: &str = "[REDACTED]";

/// The `tracing` target of access-log events (filter with `RUST_LOG=telltale::access=off`).
pub const ACCESS_TARGET: &str = "telltale::access";

/// Access-log field: normalised HTTP method (`_OTHER` for non-standard ones).
pub const ACCESS_METHOD: &str = "method";
/// Access-log field: route template, or `unmatched`; never the raw path.
pub const ACCESS_ROUTE: &str = "route";
/// Access-log field: the request path without its query string.
pub const ACCESS_PATH: &str = "path";
/// Access-log field: response status code (499 when the client hung up before the response).
pub const ACCESS_STATUS: &str = "status";
/// Access-log field: time from the request entering the layer to the end of the response body, in ms (µs precision).
pub const ACCESS_DURATION_MS: &str = "duration_ms";
/// Access-log field: response body bytes sent.
pub const ACCESS_BYTES: &str = "bytes";
/// Access-log field: how the response ended: `complete`, `error` (the body or the
/// service failed) or `aborted` (the client went away).
pub const ACCESS_END: &str = "end";
/// Access-log field: allow-listed request headers, redacted, as `{"name": "value", ...}` text.
pub const ACCESS_REQUEST_HEADERS: &str = "request_headers";

/// Counter of log lines dropped because the non-blocking writer's buffer was full.
pub const DROPPED_LINES_TOTAL: &str = "telltale_log_dropped_lines_total";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_pinned() {
        assert_eq!(
            RESERVED,
            [
                "timestamp",
                "level",
                "service",
                "environment",
                "version",
                "target",
                "message",
                "trace_id",
                "span_id",
                "request_id"
            ]
        );
        assert_eq!(COLLISION_PREFIX, "fields.");
        assert_eq!(REDACTED, "[REDACTED]");
        assert_eq!(ACCESS_TARGET, "telltale::access");
        assert_eq!(
            [
                ACCESS_METHOD,
                ACCESS_ROUTE,
                ACCESS_PATH,
                ACCESS_STATUS,
                ACCESS_DURATION_MS,
                ACCESS_BYTES,
                ACCESS_END,
                ACCESS_REQUEST_HEADERS
            ],
            [
                "method",
                "route",
                "path",
                "status",
                "duration_ms",
                "bytes",
                "end",
                "request_headers"
            ]
        );
        assert_eq!(DROPPED_LINES_TOTAL, "telltale_log_dropped_lines_total");
    }
}
