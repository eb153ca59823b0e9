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

/// `words` as hex digits into `out` (eight per word; `out` is exactly that long).
#[inline]
fn hex_into<'a>(words: &[u32], out: &'a mut [u8]) -> &'a str {
    for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&crate::ascii::hex8(*w));
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
        let t = self.trace_id;
        hex_into(
            &[(t >> 96) as u32, (t >> 64) as u32, (t >> 32) as u32, t as u32],
            buf,
        )
    }

    /// Writes the span id as 16 lowercase hex digits into `buf` and returns it.
    pub fn span_id_hex<'a>(&self, buf: &'a mut [u8; 16]) -> &'a str {
        let s = self.span_id;
        hex_into(&[(s >> 32) as u32, s as u32], buf)
    }
}

// === the ids of the server span being called ===
//
// telltale-trace's server layer sets these while it calls its inner service, so a layer
// inside it (RED metrics, for its exemplar) reads them with one thread-local load instead
// of asking the `tracing` dispatcher for the current span, looking it up in the registry
// and reading its extensions (about 450 instructions per request, callgrind). The composed
// server layer also sets them while it writes a request's access line, which has no
// parent span: telltale-log's formats read them when no span in scope has ids.

thread_local! {
    static CALLING: std::cell::Cell<Option<TraceIds>> = const { std::cell::Cell::new(None) };
}

/// The ids of the server span whose layer is calling its inner service on this thread, if
/// any: set for the duration of that `call` (not of the response future's polls) by
/// [`calling`], and while a server layer writes a request's access line.
///
/// ```
/// use telltale_core::trace_ids::{self, TraceIds};
///
/// let ids = TraceIds::new(1, 2, true);
/// assert_eq!(trace_ids::in_call(), None);
/// {
///     let _call = trace_ids::calling(ids);
///     assert_eq!(trace_ids::in_call(), Some(ids));
/// }
/// assert_eq!(trace_ids::in_call(), None);
/// ```
pub fn in_call() -> Option<TraceIds> {
    CALLING.with(std::cell::Cell::get)
}

/// Makes `ids` what [`in_call`] returns on this thread until the guard is dropped (then the
/// previous value is back, so nested layers restore each other's).
pub fn calling(ids: TraceIds) -> CallingGuard {
    CallingGuard {
        prev: CALLING.with(|c| c.replace(Some(ids))),
        _not_send: std::marker::PhantomData,
    }
}

/// Restores the previous [`in_call`] value when dropped. Made by [`calling`].
#[must_use = "the ids are current only while the guard lives"]
#[derive(Debug)]
pub struct CallingGuard {
    prev: Option<TraceIds>,
    // A thread-local's guard: it must be dropped on the thread that made it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for CallingGuard {
    fn drop(&mut self) {
        CALLING.with(|c| c.set(self.prev));
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
        let ids = TraceIds::new(0x4bf92f3577b34da6a3ce929d0e0e4736, u64::MAX - 1, true);
        assert_eq!(ids.trace_id_hex(&mut a), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ids.span_id_hex(&mut b), "fffffffffffffffe");
    }

    #[test]
    fn calling_guards_nest_and_restore() {
        let (outer, inner) = (TraceIds::new(1, 1, true), TraceIds::new(1, 2, false));
        let a = calling(outer);
        {
            let _b = calling(inner);
            assert_eq!(in_call(), Some(inner));
        }
        assert_eq!(in_call(), Some(outer));
        drop(a);
        assert_eq!(in_call(), None);
        // Another thread sees its own value.
        let _c = calling(outer);
        assert_eq!(std::thread::spawn(in_call).join().unwrap(), None);
    }
}
