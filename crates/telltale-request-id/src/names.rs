//! Metric and label names recorded by this crate, in one place (dashboards and alerts
//! depend on them; a test pins them).
//!
//! ```
//! use telltale_request_id::names;
//! assert_eq!(names::REJECTED_TOTAL, "telltale_request_id_rejected_total");
//! assert_eq!(names::REASON, "reason");
//! ```
//!
//! [`REJECTED_TOTAL`] is a counter, incremented (through the [`metrics`] facade, so
//! whichever recorder is installed receives it) each time the server layer drops a
//! present but invalid incoming id and generates a new one. Its [`REASON`] label is one
//! of [`REASONS`], from [`telltale_core::InvalidRequestId::reason`].

/// Counter: incoming request ids rejected by the server layer, by [`REASON`].
pub const REJECTED_TOTAL: &str = "telltale_request_id_rejected_total";

/// Label on [`REJECTED_TOTAL`]: why the incoming id was rejected.
pub const REASON: &str = "reason";

/// Every value the [`REASON`] label takes (bounded: no label value comes from request data).
pub const REASONS: [&str; 3] = ["empty", "too_long", "forbidden_character"];

#[cfg(test)]
mod tests {
    use super::*;
    use telltale_core::InvalidRequestId;

    #[test]
    fn names_are_pinned() {
        assert_eq!(REJECTED_TOTAL, "telltale_request_id_rejected_total");
        assert_eq!(REASON, "reason");
        assert_eq!(REASONS, ["empty", "too_long", "forbidden_character"]);
    }

    #[test]
    fn reasons_match_core() {
        assert_eq!(InvalidRequestId::Empty.reason(), REASONS[0]);
        assert_eq!(InvalidRequestId::TooLong.reason(), REASONS[1]);
        assert_eq!(InvalidRequestId::ForbiddenByte(3).reason(), REASONS[2]);
    }
}
