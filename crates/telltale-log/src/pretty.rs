//! The human-readable development format (`TELLTALE_LOG_FORMAT=pretty`): tracing-subscriber's
//! own full format, with the trace and span ids of the request appended to each line.
//!
//! tracing-subscriber prints a span's *fields*; the ids telltale-trace gives a request
//! live in the span's extensions (as [`TraceIds`]), where the JSON format reads them.
//! This event formatter reads them the same way (the innermost span of the event's scope
//! that has them) and ends the line with ` trace_id=… span_id=…`, so a line seen in a
//! terminal can be looked up in the trace backend just as a JSON line can. A line written
//! outside any traced span is tracing-subscriber's, unchanged.

use std::fmt;

use telltale_core::trace_ids::TraceIds;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The pretty format's event formatter. See the [module docs](self).
pub(crate) struct PrettyFormat {
    inner: Format<Full, SystemTime>,
}

impl PrettyFormat {
    /// tracing-subscriber's full format, with ANSI colours when `ansi`.
    pub(crate) fn new(ansi: bool) -> Self {
        PrettyFormat {
            // The format, not the writer, carries the colour choice: the inner format
            // writes through a plain `Writer` that holds back the line's end.
            inner: tracing_subscriber::fmt::format().with_ansi(ansi),
        }
    }
}

impl<S, N> FormatEvent<S, N> for PrettyFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = ctx
            .event_scope()
            .and_then(|scope| {
                scope
                    .into_iter()
                    .find_map(|span| span.extensions().get::<TraceIds>().copied())
            })
            // As the JSON format: the ids a server layer set for its access line.
            .or_else(telltale_core::trace_ids::in_call);
        let Some(ids) = ids else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut held = HoldLineEnd {
            out: writer.by_ref(),
            newline: false,
        };
        self.inner.format_event(ctx, Writer::new(&mut held), event)?;
        let (mut t, mut s) = ([0u8; 32], [0u8; 16]);
        write!(
            held.out,
            " trace_id={} span_id={}",
            ids.trace_id_hex(&mut t),
            ids.span_id_hex(&mut s)
        )?;
        if held.newline {
            held.out.write_char('\n')?;
        }
        Ok(())
    }
}

/// Passes text through but holds back a trailing `\n` until more text follows, so the
/// ids can be written before the line's end.
struct HoldLineEnd<'a> {
    out: Writer<'a>,
    newline: bool,
}

impl fmt::Write for HoldLineEnd<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.newline) {
            self.out.write_char('\n')?;
        }
        match s.strip_suffix('\n') {
            Some(body) => {
                self.newline = true;
                self.out.write_str(body)
            }
            None => self.out.write_str(s),
        }
    }
}
