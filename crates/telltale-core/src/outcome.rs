//! What counts as an error, on which side, for HTTP and gRPC; and the `error.type` values.
//!
//! The rules follow the OpenTelemetry semantic conventions:
//!
//! | side | HTTP | gRPC |
//! |---|---|---|
//! | server | 5xx is an error; 4xx is the client's fault, not ours | `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS` are errors |
//! | client | 4xx and 5xx are errors, and so is any transport failure | every code but `OK` is an error |
//!
//! ```
//! use http::StatusCode;
//! use telltale_core::outcome::{self, ErrorType, GrpcCode};
//!
//! assert_eq!(outcome::server_http(StatusCode::BAD_GATEWAY).error_type(), Some(ErrorType::Status("502")));
//! assert!(outcome::server_grpc(GrpcCode::Internal).is_error());
//! assert!(!outcome::server_grpc(GrpcCode::NotFound).is_error());
//! assert!(outcome::client_grpc(GrpcCode::NotFound).is_error());
//! assert_eq!(ErrorType::Timeout.as_str(), "timeout");
//! ```

use http::{HeaderMap, StatusCode};

/// Whether an operation succeeded, and if not, its `error.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not an error for this side.
    Success,
    /// An error, with its `error.type` value.
    Error(ErrorType),
}

impl Outcome {
    /// Whether this is an error.
    pub const fn is_error(&self) -> bool {
        matches!(self, Outcome::Error(_))
    }

    /// The `error.type` when this is an error.
    pub const fn error_type(&self) -> Option<ErrorType> {
        match self {
            Outcome::Success => None,
            Outcome::Error(e) => Some(*e),
        }
    }
}

/// The `error.type` attribute / label value. A closed set, so it is safe as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// An HTTP status code that counts as an error, as its three-digit label.
    Status(&'static str),
    /// A gRPC status code that counts as an error, by its canonical name.
    Grpc(GrpcCode),
    /// A timeout (per attempt or overall deadline).
    Timeout,
    /// Could not connect (refused, DNS, TLS handshake).
    Connect,
    /// The connection failed after it was established (reset, broken pipe, protocol error).
    Transport,
    /// A circuit breaker was open: the call was not made.
    CircuitOpen,
    /// The retry budget was exhausted.
    BudgetExhausted,
    /// A bulkhead or concurrency limit rejected the call.
    Rejected,
    /// The handler panicked.
    Panic,
    /// The response body failed while streaming.
    Body,
    /// Anything else.
    Other,
}

impl ErrorType {
    /// The label text.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ErrorType::Status(s) => s,
            ErrorType::Grpc(code) => code.name(),
            ErrorType::Timeout => "timeout",
            ErrorType::Connect => "connect",
            ErrorType::Transport => "transport",
            ErrorType::CircuitOpen => "circuit_open",
            ErrorType::BudgetExhausted => "budget_exhausted",
            ErrorType::Rejected => "rejected",
            ErrorType::Panic => "panic",
            ErrorType::Body => "body",
            ErrorType::Other => "_OTHER",
        }
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Marks a 500 response that a catch-panic layer produced from a handler panic, in the
/// response's extensions. Layers outside it (the server span, the access log) then record
/// a panic (`error.type = panic`, an exception event) rather than an ordinary 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerPanic(pub std::borrow::Cow<'static, str>);

/// Server side, HTTP: 5xx is an error; everything else is not.
pub fn server_http(status: StatusCode) -> Outcome {
    if status.is_server_error() {
        Outcome::Error(ErrorType::Status(crate::status::label(status)))
    } else {
        Outcome::Success
    }
}

/// Client side, HTTP: 4xx and 5xx are errors.
pub fn client_http(status: StatusCode) -> Outcome {
    if status.is_client_error() || status.is_server_error() {
        Outcome::Error(ErrorType::Status(crate::status::label(status)))
    } else {
        Outcome::Success
    }
}

/// Server side, gRPC: only the codes that mean the server failed are errors.
pub fn server_grpc(code: GrpcCode) -> Outcome {
    use GrpcCode::*;
    match code {
        Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss => {
            Outcome::Error(ErrorType::Grpc(code))
        }
        _ => Outcome::Success,
    }
}

/// Client side, gRPC: everything but `OK` is an error.
pub fn client_grpc(code: GrpcCode) -> Outcome {
    if code == GrpcCode::Ok {
        Outcome::Success
    } else {
        Outcome::Error(ErrorType::Grpc(code))
    }
}

/// gRPC status codes.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code for a number; numbers outside 0..=16 are `Unknown`, as the gRPC spec says.
    pub const fn from_i32(n: i32) -> GrpcCode {
        use GrpcCode::*;
        match n {
            0 => Ok,
            1 => Cancelled,
            2 => Unknown,
            3 => InvalidArgument,
            4 => DeadlineExceeded,
            5 => NotFound,
            6 => AlreadyExists,
            7 => PermissionDenied,
            8 => ResourceExhausted,
            9 => FailedPrecondition,
            10 => Aborted,
            11 => OutOfRange,
            12 => Unimplemented,
            13 => Internal,
            14 => Unavailable,
            15 => DataLoss,
            16 => Unauthenticated,
            _ => Unknown,
        }
    }

    /// The numeric code.
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// The numeric code as a `'static` label (`"0"` … `"16"`), for metric labels.
    pub const fn number_label(self) -> &'static str {
        const LABELS: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        ];
        LABELS[self as usize]
    }

    /// The canonical upper-case name (`OK`, `NOT_FOUND`, …), as OpenTelemetry uses for `error.type`.
    pub const fn name(self) -> &'static str {
        use GrpcCode::*;
        match self {
            Ok => "OK",
            Cancelled => "CANCELLED",
            Unknown => "UNKNOWN",
            InvalidArgument => "INVALID_ARGUMENT",
            DeadlineExceeded => "DEADLINE_EXCEEDED",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            PermissionDenied => "PERMISSION_DENIED",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            FailedPrecondition => "FAILED_PRECONDITION",
            Aborted => "ABORTED",
            OutOfRange => "OUT_OF_RANGE",
            Unimplemented => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
            DataLoss => "DATA_LOSS",
            Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code a gRPC client infers from the HTTP status of a response that carries no
    /// `grpc-status` (gRPC's `doc/http-grpc-status-mapping.md`): a proxy or load balancer
    /// answered instead of the server.
    ///
    /// ```
    /// use telltale_core::outcome::GrpcCode;
    ///
    /// assert_eq!(GrpcCode::from_http_status(http::StatusCode::SERVICE_UNAVAILABLE), GrpcCode::Unavailable);
    /// assert_eq!(GrpcCode::from_http_status(http::StatusCode::NOT_FOUND), GrpcCode::Unimplemented);
    /// assert_eq!(GrpcCode::from_http_status(http::StatusCode::INTERNAL_SERVER_ERROR), GrpcCode::Unknown);
    /// ```
    pub const fn from_http_status(status: http::StatusCode) -> GrpcCode {
        match status.as_u16() {
            400 => GrpcCode::Internal,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::Unimplemented,
            429 | 502 | 503 | 504 => GrpcCode::Unavailable,
            _ => GrpcCode::Unknown,
        }
    }

    /// Reads `grpc-status` from a header map (response headers for trailers-only
    /// responses, or trailers). `None` when absent; a malformed value is `Unknown`.
    pub fn from_headers(headers: &HeaderMap) -> Option<GrpcCode> {
        let v = headers.get(crate::headers::GRPC_STATUS)?;
        Some(
            std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .map(GrpcCode::from_i32)
                .unwrap_or(GrpcCode::Unknown),
        )
    }
}

/// Whether a response is gRPC (its `content-type` starts with `application/grpc`).
pub fn is_grpc_response(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_5xx_only() {
        for code in 100u16..=599 {
            let s = StatusCode::from_u16(code).unwrap();
            assert_eq!(server_http(s).is_error(), code >= 500, "{code}");
            assert_eq!(client_http(s).is_error(), code >= 400, "{code}");
        }
    }

    #[test]
    fn grpc_server_error_codes_match_semconv() {
        let errors: Vec<i32> = (0..=16)
            .filter(|&n| server_grpc(GrpcCode::from_i32(n)).is_error())
            .collect();
        assert_eq!(errors, vec![2, 4, 12, 13, 14, 15]);
        assert_eq!(
            (0..=16)
                .filter(|&n| client_grpc(GrpcCode::from_i32(n)).is_error())
                .count(),
            16
        );
    }

    #[test]
    fn grpc_status_header_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(GrpcCode::from_headers(&h), None);
        h.insert(crate::headers::GRPC_STATUS, "14".parse().unwrap());
        assert_eq!(GrpcCode::from_headers(&h), Some(GrpcCode::Unavailable));
        h.insert(crate::headers::GRPC_STATUS, "banana".parse().unwrap());
        assert_eq!(GrpcCode::from_headers(&h), Some(GrpcCode::Unknown));
        h.insert(crate::headers::GRPC_STATUS, "99".parse().unwrap());
        assert_eq!(GrpcCode::from_headers(&h), Some(GrpcCode::Unknown));
        for n in 0..=16 {
            assert_eq!(GrpcCode::from_i32(n).as_i32(), n);
            assert_eq!(GrpcCode::from_i32(n).number_label(), n.to_string());
        }
    }
}
