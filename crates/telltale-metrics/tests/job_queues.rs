//! Job metrics bounds are per process: queue names past `MAX_QUEUES` share one `_OTHER`
//! series (with one WARN), and all `JobMetrics` of one queue share its `MAX_ERROR_TYPES`.
//!
//! The bounds are process-wide state, so this binary has one test.

#![cfg(feature = "prometheus")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use telltale_metrics::job::{MAX_ERROR_TYPES, MAX_QUEUES, OTHER_ERROR_TYPE, OTHER_QUEUE};
use telltale_metrics::{JobMetrics, PrometheusConfig};
use tracing_subscriber::layer::SubscriberExt;

/// Counts WARN events of target `telltale_metrics`.
#[derive(Clone, Default)]
struct Warnings(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() == "telltale_metrics" && *meta.level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `messaging_process_duration_seconds_count` series whose labels contain `needle`, with
/// their values.
fn runs<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with("messaging_process_duration_seconds_count") && l.contains(needle))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect()
}

#[test]
fn queue_names_and_error_types_are_bounded_per_process() {
    let warnings = Warnings::default();
    let _log = tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let prom = PrometheusConfig::new("worker").build().unwrap();

    // `_OTHER` named outright before any overflow: its own error types, no place taken
    // among MAX_QUEUES, and no WARN yet.
    JobMetrics::new(OTHER_QUEUE)
        .recorder(prom.recorder())
        .record(Duration::from_millis(1), Some("early"));
    assert_eq!(warnings.0.load(Ordering::Relaxed), 0);

    // One queue's error types, through two values made for it: 16 in all, not 16 each.
    let a = JobMetrics::new("emails").recorder(prom.recorder());
    let b = JobMetrics::new("emails").recorder(prom.recorder());
    const KINDS: [&str; 20] = [
        "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12", "k13", "k14", "k15",
        "k16", "k17", "k18", "k19",
    ];
    for kind in &KINDS[..10] {
        a.record(Duration::from_millis(1), Some(kind));
    }
    for kind in &KINDS[10..] {
        b.record(Duration::from_millis(1), Some(kind));
    }
    // A kind admitted through `b` is its own series through `a` too.
    a.record(Duration::from_millis(1), Some("k12"));
    let text = prom.handle().render();
    let emails = "messaging_destination_name=\"emails\"";
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("messaging_process_duration_seconds_count") && l.contains(emails))
        .collect();
    assert_eq!(errors.len(), MAX_ERROR_TYPES + 1, "{text}");
    assert_eq!(runs(&text, "error_type=\"k12\""), ["2"], "{text}");
    assert_eq!(
        runs(&text, &format!("error_type=\"{OTHER_ERROR_TYPE}\"")),
        ["4"],
        "k16..k19:\n{text}"
    );

    // Queue names: `emails` plus MAX_QUEUES - 1 more are recorded by name; past them,
    // new names (made one per job, say) share one series.
    for i in 1..MAX_QUEUES + 10 {
        JobMetrics::new(format!("queue-{i}"))
            .recorder(prom.recorder())
            .record(Duration::from_millis(1), None);
    }
    // A name admitted before the cap keeps its own series afterwards.
    JobMetrics::new("queue-1")
        .recorder(prom.recorder())
        .record(Duration::from_millis(1), None);
    let text = prom.handle().render();
    assert_eq!(
        runs(&text, "messaging_destination_name=\"queue-1\""),
        ["2"],
        "{text}"
    );
    let last_named = format!("messaging_destination_name=\"queue-{}\"", MAX_QUEUES - 1);
    assert_eq!(runs(&text, &last_named), ["1"], "{text}");
    let first_over = format!("messaging_destination_name=\"queue-{MAX_QUEUES}\"");
    assert!(runs(&text, &first_over).is_empty(), "{text}");
    let other = format!("messaging_destination_name=\"{OTHER_QUEUE}\"");
    let other_ok: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("messaging_process_duration_seconds_count")
                && l.contains(&other)
                && !l.contains("error_type")
        })
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(other_ok, ["10"], "{text}");
    assert_eq!(runs(&text, "error_type=\"early\""), ["1"], "{text}");
    let named = text
        .lines()
        .filter(|l| {
            l.starts_with("messaging_process_duration_seconds_count")
                && !l.contains("error_type")
                && !l.contains(OTHER_QUEUE)
        })
        .count();
    assert_eq!(named, MAX_QUEUES - 1, "queue-1 .. queue-127 ({text})");
    assert_eq!(warnings.0.load(Ordering::Relaxed), 1, "one WARN for the overflow");
}
