//! Metric and label names, pinned by a test: dashboards and alerts depend on them.
//!
//! ```
//! use telltale_health::names;
//! assert_eq!(names::CHECK_STATUS, "telltale_health_check_status");
//! ```

/// Gauge, 1 when the check passed on its last run, 0 when it failed. Label [`CHECK`].
pub const CHECK_STATUS: &str = "telltale_health_check_status";
/// Histogram of check run durations in seconds (timeouts included). Label [`CHECK`].
pub const CHECK_DURATION_SECONDS: &str = "telltale_health_check_duration_seconds";
/// The label holding the check's registered name.
pub const CHECK: &str = "check";

#[cfg(test)]
mod tests {
    #[test]
    fn metric_names_are_pinned() {
        assert_eq!(super::CHECK_STATUS, "telltale_health_check_status");
        assert_eq!(
            super::CHECK_DURATION_SECONDS,
            "telltale_health_check_duration_seconds"
        );
        assert_eq!(super::CHECK, "check");
    }
}
