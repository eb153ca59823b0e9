//! Dropped lines reach `telltale_log_dropped_lines_total` through the `metrics` facade.
//! (Its own test binary: the recorder is process-wide.)

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use telltale_log::{LogConfig, keys};
use tracing_subscriber::fmt::MakeWriter as _;

/// Sums `telltale_log_dropped_lines_total`.
#[derive(Default)]
struct Sum(AtomicU64);

impl CounterFn for Sum {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

struct DroppedLines(Arc<Sum>);

impl Recorder for DroppedLines {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        assert_eq!(key.name(), keys::DROPPED_LINES_TOTAL);
        Counter::from_arc(self.0.clone())
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn lines_written_after_the_guard_is_dropped_are_counted_as_dropped() {
    let sum = Arc::new(Sum::default());
    metrics::set_global_recorder(DroppedLines(sum.clone())).expect("the only recorder");

    let sink = telltale_log::CaptureWriter::new();
    let (writer, guard) = LogConfig::new("svc").non_blocking(sink.clone()).unwrap();
    writer.make_writer().write_all(b"before\n").unwrap();
    drop(guard); // writes "before"
    for _ in 0..10 {
        writer.make_writer().write_all(b"after\n").unwrap();
    }

    let written = sink.contents();
    assert_eq!(written, "before\n");
    // Not written (no writer thread is left, and the caller must not block on the sink),
    // but not lost unseen either.
    assert_eq!(sum.0.load(Ordering::Relaxed), 10);
}
