//! OpenMetrics exemplars: the trace id of a recent request on each latency histogram
//! series, so a dashboard can jump from a slow bucket to a trace.
//!
//! ```
//! use telltale_metrics::{MetricsLayer, PrometheusConfig};
//!
//! let prom = PrometheusConfig::new("svc").exemplars(true).build().unwrap();
//! let layer = MetricsLayer::builder()
//!     .recorder(prom.recorder())
//!     .exemplars(prom.handle().exemplars().unwrap())
//!     .build()
//!     .unwrap();
//! # let _ = layer;
//! ```
//!
//! # Why this is done here, and how
//!
//! `metrics-exporter-prometheus` (and the `metrics` facade) have no notion of exemplars,
//! and no Rust metrics crate offers them for this stack. The smallest sound way:
//!
//! 1. **Capture**: when a request starts, [`MetricsLayer`](crate::MetricsLayer) takes the
//!    [`TraceIds`] of the request — from the request extensions, from the server span
//!    telltale-trace's layer is calling this one in
//!    ([`in_call`](telltale_core::trace_ids::in_call)), or from the current `tracing`
//!    span's extensions, where telltale-trace puts them — and keeps them only
//!    if the trace is sampled (an exemplar must point at a trace that exists).
//! 2. **Store**: each duration-histogram series owns one slot holding its *latest*
//!    exemplar (trace id, span id, value, timestamp). Slots are created with the series,
//!    so they are bounded by the same cardinality cap; writing one is a `try_lock`
//!    (skipped if another request is writing: "latest" needs no queue).
//! 3. **Expose**: when the scraper asks for `application/openmetrics-text` (Prometheus
//!    does by default), `/metrics` converts the exporter's text output to OpenMetrics
//!    (counter families named without `_total`, no blank lines, `# EOF`) and appends
//!    `# {trace_id="…",span_id="…"} value timestamp` to the first `_bucket` line whose
//!    `le` holds the exemplar's value. Other scrapers get the plain text format.
//!
//! Prometheus stores exemplars with `--enable-feature=exemplar-storage`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::Label;
use telltale_core::trace_ids::TraceIds;

use crate::collector::escape_into;

#[derive(Debug, Clone, Copy)]
struct Exemplar {
    ids: TraceIds,
    value: f64,
    timestamp: f64,
}

/// The latest exemplar of one histogram series.
#[derive(Debug, Default)]
pub(crate) struct Slot(Mutex<Option<Exemplar>>);

impl Slot {
    pub(crate) fn set(&self, ids: TraceIds, value: f64) {
        if let Ok(mut g) = self.0.try_lock() {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            *g = Some(Exemplar {
                ids,
                value,
                timestamp,
            });
        }
    }

    fn get(&self) -> Option<Exemplar> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type SlotKey = (Box<str>, String);

/// The exemplar side-table of one recorder; cheap to clone. See the [module docs](self).
#[derive(Clone, Default)]
pub struct Exemplars {
    slots: Arc<RwLock<HashMap<SlotKey, Arc<Slot>>>>,
}

impl std::fmt::Debug for Exemplars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exemplars").finish_non_exhaustive()
    }
}

impl Exemplars {
    /// The slot of the series `metric{labels}` (labels in registration order), created
    /// once when the series is. Bounded by the callers' cardinality caps.
    pub(crate) fn slot(&self, metric: &str, labels: &[Label]) -> Arc<Slot> {
        let key = (
            Box::from(metric),
            label_key(labels.iter().map(|l| (l.key(), l.value()))),
        );
        self.slots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone()
    }

    /// Converts the exporter's text output to OpenMetrics, with exemplars on the buckets.
    /// `global_labels` is the rendered global label prefix of every series.
    pub(crate) fn to_openmetrics(&self, text: &str, global_labels: &str) -> String {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(text.len() + text.len() / 8);
        let mut pending_help: Option<&str> = None;
        // (series key, exemplar already attached) of the bucket lines being walked.
        let mut current: Option<(&str, bool)> = None;
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                pending_help = Some(rest);
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
                let (name, kind) = match (kind, name.strip_suffix("_total")) {
                    ("counter", Some(base)) => (base, "counter"),
                    ("counter", None) => (name, "unknown"),
                    _ => (name, kind),
                };
                if let Some(help) = pending_help.take() {
                    let text = help.split_once(' ').map(|(_, t)| t).unwrap_or("");
                    out.push_str("# HELP ");
                    out.push_str(name);
                    out.push(' ');
                    out.push_str(text);
                    out.push('\n');
                }
                out.push_str("# TYPE ");
                out.push_str(name);
                out.push(' ');
                out.push_str(kind);
                out.push('\n');
                continue;
            }
            out.push_str(line);
            if let Some(ex) = bucket_exemplar(line, global_labels, &slots, &mut current) {
                write_exemplar(&mut out, &ex);
            }
            out.push('\n');
        }
        out.push_str("# EOF\n");
        out
    }
}

/// The exemplar to attach to this `_bucket` line, if it is the first bucket of its
/// series whose bound holds the exemplar's value.
fn bucket_exemplar<'a>(
    line: &'a str,
    global_labels: &str,
    slots: &HashMap<SlotKey, Arc<Slot>>,
    current: &mut Option<(&'a str, bool)>,
) -> Option<Exemplar> {
    let (series, _) = line.rsplit_once(' ')?;
    let (name, labels) = series.split_once('{')?;
    let metric = name.strip_suffix("_bucket")?;
    let labels = labels.strip_suffix('}')?;
    let (full_key, le) = labels.rsplit_once(",le=\"")?;
    let le = le.strip_suffix('"')?;
    let le = if le == "+Inf" {
        f64::INFINITY
    } else {
        le.parse().ok()?
    };
    let key = full_key
        .strip_prefix(global_labels)
        .map(|k| k.strip_prefix(',').unwrap_or(k))
        .unwrap_or(full_key);
    // `name{labels-without-le`: identifies the series across its bucket lines.
    let series_id = &series[..name.len() + 1 + full_key.len()];
    match current {
        Some((id, attached)) if *id == series_id => {
            if *attached {
                return None;
            }
        }
        _ => *current = Some((series_id, false)),
    }
    let slot = slots.get(&(Box::from(metric), key.to_owned()))?;
    let ex = slot.get()?;
    if ex.value <= le {
        if let Some((_, attached)) = current {
            *attached = true;
        }
        Some(ex)
    } else {
        None
    }
}

fn write_exemplar(out: &mut String, ex: &Exemplar) {
    let (mut t, mut s) = ([0u8; 32], [0u8; 16]);
    out.push_str(" # {trace_id=\"");
    out.push_str(ex.ids.trace_id_hex(&mut t));
    out.push_str("\",span_id=\"");
    out.push_str(ex.ids.span_id_hex(&mut s));
    out.push_str("\"} ");
    out.push_str(&ex.value.to_string());
    out.push(' ');
    out.push_str(&format!("{:.3}", ex.timestamp));
}

fn label_key<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        escape_into(&mut s, v);
        s.push('"');
    }
    s
}

/// The sampled trace ids of the request: from its extensions, else from the current
/// `tracing` span (telltale-trace puts them in the span's extensions).
///
/// The span is looked up through the dispatcher's current span, not `Span::current()`,
/// which would clone a handle (the dispatcher's `Arc` and the span's reference count) only
/// to drop it again, closing bookkeeping included. With telltale-log's `LogFilter`, this
/// took 55–70 ns per request off `server_layer()` (docs/performance.md, session 5).
pub(crate) fn current_trace_ids(ext: &http::Extensions) -> Option<TraceIds> {
    let ids = match ext
        .get::<TraceIds>()
        .copied()
        .or_else(telltale_core::trace_ids::in_call)
    {
        Some(ids) => ids,
        None => tracing::dispatcher::get_default(|dispatch| {
            use tracing_subscriber::registry::LookupSpan;
            let current = dispatch.current_span();
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
            registry
                .span(current.id()?)?
                .scope()
                .find_map(|s| s.extensions().get::<TraceIds>().copied())
        })?,
    };
    ids.sampled.then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemplar_goes_on_the_first_bucket_holding_its_value_and_counters_lose_total() {
        let ex = Exemplars::default();
        let labels = [Label::new("route", "/a"), Label::new("status", "200")];
        ex.slot("lat", &labels).set(TraceIds::new(0xabc, 0x1, true), 0.03);
        let text = "# HELP reqs_total Requests.\n# TYPE reqs_total counter\nreqs_total{service=\"s\",route=\"/a\"} 3\n\n\
# TYPE lat histogram\n\
lat_bucket{service=\"s\",route=\"/a\",status=\"200\",le=\"0.01\"} 0\n\
lat_bucket{service=\"s\",route=\"/a\",status=\"200\",le=\"0.05\"} 1\n\
lat_bucket{service=\"s\",route=\"/a\",status=\"200\",le=\"+Inf\"} 1\n\
lat_sum{service=\"s\",route=\"/a\",status=\"200\"} 0.03\n\
lat_count{service=\"s\",route=\"/a\",status=\"200\"} 1\n\n";
        let om = ex.to_openmetrics(text, "service=\"s\"");
        let lines: Vec<&str> = om.lines().collect();
        assert_eq!(lines[0], "# HELP reqs Requests.");
        assert_eq!(lines[1], "# TYPE reqs counter");
        assert_eq!(
            lines[4],
            "lat_bucket{service=\"s\",route=\"/a\",status=\"200\",le=\"0.01\"} 0"
        );
        assert!(
            lines[5].starts_with(
                "lat_bucket{service=\"s\",route=\"/a\",status=\"200\",le=\"0.05\"} 1 # {trace_id=\"00000000000000000000000000000abc\",span_id=\"0000000000000001\"} 0.03 "
            ),
            "{om}"
        );
        assert!(!lines[6].contains('#'), "{om}");
        assert_eq!(*lines.last().unwrap(), "# EOF");
        assert!(!om.contains("\n\n"));
    }
}
