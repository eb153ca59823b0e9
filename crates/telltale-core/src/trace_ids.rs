//! Trace and span ids as plain data, so logs can carry them without depending on OpenTelemetry.
//!
//! telltale-trace puts a [`TraceIds`] into the `tracing` span extensions of every span it
//! creates or bridges; telltale-log looks for the innermost one in an event's span scope
//! and writes `trace_id` and `span_id` from it. Neither crate depends on the other.
//!
//! ```
//! use telltale_core::trace_ids::TraceIds;
//!
//! let ids = TraceIds::new(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, true);
//! let mut buf = [0u8; 32];
//! assert_eq!(ids.trace_id_hex(&mut buf), "4bf92f3577b34da6a3ce929d0e0e4736");
//! let mut buf = [0u8; 16];
//! assert_eq!(ids.span_id_hex(&mut buf), "00f067aa0ba902b7");
//! ```

/// The `tracing` target of the spans telltale-trace makes to carry [`TraceIds`] (a
/// request's, a job run's, a returned call's). They write no line of their own; telltale-log's
/// filter keeps them at every level, so a WARN or ERROR line inside a request carries the
/// request's `trace_id` even under `RUST_LOG=warn`.
pub const SPAN_TARGET: &str = "telltale_trace";

/// The ids of one span: W3C trace id (16 bytes) and span id (8 bytes), plus the sampled flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceIds {
    /// The 128-bit trace id.
    pub trace_id: u128,
    /// The 64-bit span id.
    pub span_id: u64,
    /// Whether the trace is sampled (will be exported).
    pub sampled: bool,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(mut v: u128, out: &mut [u8]) -> &str {
    for slot in out.iter_mut().rev() {
        *slot = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(out).unwrap_or_default()
}

impl TraceIds {
    /// Ids from their numeric values.
    pub const fn new(trace_id: u128, span_id: u64, sampled: bool) -> Self {
        TraceIds {
            trace_id,
            span_id,
            sampled,
        }
    }

    /// Writes the trace id as 32 lowercase hex digits into `buf` and returns it.
    pub fn trace_id_hex<'a>(&self, buf: &'a mut [u8; 32]) -> &'a str {
        hex_into(self.trace_id, buf)
    }

    /// Writes the span id as 16 lowercase hex digits into `buf` and returns it.
    pub fn span_id_hex<'a>(&self, buf: &'a mut [u8; 16]) -> &'a str {
        hex_into(u128::from(self.span_id), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_zero_padded_lowercase() {
        let ids = TraceIds::new(0xAB, 0x1, false);
        let (mut a, mut b) = ([0u8; 32], [0u8; 16]);
        assert_eq!(ids.trace_id_hex(&mut a), format!("{:032x}", 0xABu128));
        assert_eq!(ids.span_id_hex(&mut b), "0000000000000001");
    }
}
