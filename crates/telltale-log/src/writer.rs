//! The non-blocking writer that never blocks a request and never drops a line silently,
//! and an in-memory writer for tests.
//!
//! ```
//! use telltale_log::LogConfig;
//!
//! let config = LogConfig::new("svc").buffered_lines_limit(1024);
//! let (writer, guard) = config.non_blocking(std::io::sink()).unwrap();
//! let layer = config.json_layer(writer).unwrap();
//! # drop(layer);
//! assert_eq!(guard.dropped_lines(), 0);
//! drop(guard); // flushes what is buffered
//! ```
//!
//! # Why not tracing-appender
//!
//! `tracing_appender::non_blocking()` copies every line into a new `Vec`, sends it through a
//! channel that wakes the writer thread, and in lossy mode throws lines away when the
//! channel is full — silently: it counts them in an `ErrorCounter` that nothing reads.
//! Measured, the allocation, the cross-thread free and the wake-up cost more than
//! formatting the line itself (see `docs/perf/log.md`). [`LogWriter`] instead appends each
//! line to one shared buffer under a short lock (no allocation once the buffer has grown,
//! no system call); a background thread swaps that buffer for an empty one about every
//! millisecond — at once when it is half full — and writes the whole batch with one call.
//! When [`buffered_lines_limit`](crate::LogConfig::buffered_lines_limit) lines or
//! [`buffered_bytes_limit`](crate::LogConfig::buffered_bytes_limit) bytes are waiting,
//! further lines are dropped, never blocking the caller, and counted: the
//! `telltale_log_dropped_lines_total` counter (the `metrics` facade) and one line on
//! stderr at most once per [`drop_report_interval`](crate::LogConfig::drop_report_interval).
//! [`LogGuard`] writes what is buffered when dropped and reports the total dropped, if any.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

use crate::keys;

/// How often the writer thread collects lines while lines keep coming.
const TICK: Duration = Duration::from_millis(1);
/// How long the writer thread sleeps when nothing was written (a new line wakes it).
const IDLE: Duration = Duration::from_millis(100);
/// How long dropping the guard waits for the last lines to be written.
const FLUSH_DEADLINE: Duration = Duration::from_secs(2);
/// Batch buffers above this are shrunk back after a burst.
const KEEP_CAPACITY: usize = 1 << 20;

/// A [`MakeWriter`] handing lines to a background thread through a bounded buffer,
/// counting and reporting the lines dropped when the buffer is full.
/// Made by [`LogConfig::non_blocking`](crate::LogConfig::non_blocking).
#[derive(Clone, Debug)]
pub struct LogWriter {
    queue: Arc<Queue>,
}

/// Writes buffered log lines when dropped, and reports lines that were dropped.
/// Keep it alive for as long as the program logs (bind it in `main`: `let _guard = ...`).
#[must_use = "dropping the guard stops the log writer thread; bind it to a variable in main"]
#[derive(Debug)]
pub struct LogGuard {
    queue: Arc<Queue>,
    worker: Option<JoinHandle<()>>,
    done: Option<mpsc::Receiver<()>>,
}

#[derive(Debug)]
struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    limit: usize,
    byte_limit: usize,
    dropped: AtomicUsize,
    drops: DropReporter,
}

#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    lines: usize,
    /// The writer thread sleeps for [`IDLE`] and wants a wake-up for the next line.
    idle: bool,
    closing: bool,
}

#[derive(Debug)]
struct DropReporter {
    /// Drops already added to the metric.
    accounted: AtomicUsize,
    /// Milliseconds since `epoch` of the last stderr report; `u64::MAX` = never.
    last_report_ms: AtomicU64,
    epoch: Instant,
    interval_ms: u64,
}

const NEVER: u64 = u64::MAX;

impl Queue {
    /// Appends one line; `false` when the buffer is full and the line was dropped.
    #[inline]
    fn push(&self, line: &[u8]) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let before = p.buf.len();
        if p.lines >= self.limit || line.len() > self.byte_limit - before {
            drop(p);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.drops.account(dropped, self.limit, self.byte_limit);
            return false;
        }
        p.buf.extend_from_slice(line);
        p.lines += 1;
        // No system call per line: the writer thread is woken only from idle sleep or when
        // the buffer is half full, in lines or in bytes (so a burst cannot fill it while it
        // waits for a tick).
        let half_bytes = self.byte_limit / 2;
        let wake = (p.idle && p.lines == 1)
            || p.lines == self.limit / 2 + 1
            || (before <= half_bytes && p.buf.len() > half_bytes);
        if wake {
            p.idle = false;
        }
        drop(p);
        if wake {
            self.wake.notify_one();
        }
        true
    }

    fn run<T: Write>(&self, mut out: T) {
        let mut batch: Vec<u8> = Vec::new();
        let mut was_empty = false;
        loop {
            let closing = {
                let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if !p.closing && p.lines <= self.limit / 2 && p.buf.len() <= self.byte_limit / 2 {
                    p.idle = was_empty;
                    let wait = if was_empty { IDLE } else { TICK };
                    p = self
                        .wake
                        .wait_timeout(p, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    p.idle = false;
                }
                std::mem::swap(&mut p.buf, &mut batch);
                p.lines = 0;
                p.closing
            };
            was_empty = batch.is_empty();
            if !was_empty {
                // A failing sink (closed stdout) cannot be reported anywhere better.
                let _ = out.write_all(&batch);
                let _ = out.flush();
                batch.clear();
                if batch.capacity() > KEEP_CAPACITY {
                    batch.shrink_to(KEEP_CAPACITY / 4);
                }
            }
            if closing {
                let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if p.lines == 0 {
                    return;
                }
                std::mem::swap(&mut p.buf, &mut batch);
                p.lines = 0;
                drop(p);
                let _ = out.write_all(&batch);
                let _ = out.flush();
                return;
            }
        }
    }
}

impl DropReporter {
    #[cold]
    fn account(&self, dropped: usize, limit: usize, byte_limit: usize) {
        let accounted = self.accounted.load(Ordering::Relaxed);
        if dropped <= accounted
            || self
                .accounted
                .compare_exchange(accounted, dropped, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return; // another thread is accounting for these
        }
        metrics::counter!(keys::DROPPED_LINES_TOTAL).increment((dropped - accounted) as u64);
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NEVER - 1);
        let last = self.last_report_ms.load(Ordering::Relaxed);
        let due = last == NEVER || now.saturating_sub(last) >= self.interval_ms;
        if due
            && self
                .last_report_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            // Straight to stderr: the log pipeline is the thing that is full.
            eprintln!(
                "telltale-log: {dropped} log lines dropped so far: the writer could not keep up \
                 (buffer full: {limit} lines or {byte_limit} bytes); see metric {}",
                keys::DROPPED_LINES_TOTAL
            );
        }
    }
}

impl LogWriter {
    pub(crate) fn new<T: Write + Send + 'static>(
        writer: T,
        limit: usize,
        byte_limit: usize,
        report_interval: Duration,
    ) -> (LogWriter, LogGuard) {
        // Make the counter visible at 0 (when a recorder is already installed), so a
        // dashboard can tell "no drops" from "not reported".
        metrics::describe_counter!(
            keys::DROPPED_LINES_TOTAL,
            metrics::Unit::Count,
            "Log lines dropped because the non-blocking log writer's buffer was full."
        );
        metrics::counter!(keys::DROPPED_LINES_TOTAL).increment(0);
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            limit: limit.max(1),
            byte_limit: byte_limit.max(1),
            dropped: AtomicUsize::new(0),
            drops: DropReporter {
                accounted: AtomicUsize::new(0),
                last_report_ms: AtomicU64::new(NEVER),
                epoch: Instant::now(),
                interval_ms: u64::try_from(report_interval.as_millis()).unwrap_or(u64::MAX),
            },
        });
        let (done_tx, done) = mpsc::channel();
        let worker_queue = queue.clone();
        let worker = std::thread::Builder::new()
            .name("telltale-log".into())
            .spawn(move || {
                worker_queue.run(writer);
                let _ = done_tx.send(());
            })
            .ok();
        (
            LogWriter { queue: queue.clone() },
            LogGuard {
                queue,
                worker,
                done: Some(done),
            },
        )
    }
}

/// The writer for one line, from [`LogWriter`]: each `write` call is one line.
#[derive(Debug)]
pub struct LogLineWriter<'a> {
    queue: &'a Queue,
}

impl Write for LogLineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A dropped line is counted and reported, not an error for the caller.
        self.queue.push(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(|_| ())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogLineWriter { queue: &self.queue }
    }
}

impl LogGuard {
    /// Lines dropped so far because the buffer was full.
    pub fn dropped_lines(&self) -> usize {
        self.queue.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        {
            let mut p = self.queue.pending.lock().unwrap_or_else(PoisonError::into_inner);
            p.closing = true;
        }
        self.queue.wake.notify_one();
        // Wait (bounded: a stuck sink must not hang the shutdown) for the last batch.
        if let Some(done) = self.done.take()
            && done.recv_timeout(FLUSH_DEADLINE).is_ok()
            && let Some(worker) = self.worker.take()
        {
            let _ = worker.join();
        }
        let total = self.dropped_lines();
        self.queue
            .drops
            .account(total, self.queue.limit, self.queue.byte_limit);
        if total > 0 {
            eprintln!(
                "telltale-log: {total} log lines were dropped in total because the writer could \
                 not keep up (buffer of {} lines); raise LogConfig::buffered_lines_limit or log less",
                self.queue.limit
            );
        }
    }
}

// === CaptureWriter ===

/// An in-memory [`MakeWriter`] for tests: every line written is kept, to be read back
/// with [`lines`](CaptureWriter::lines) or [`json_lines`](CaptureWriter::json_lines).
///
/// ```
/// use telltale_log::{CaptureWriter, LogConfig};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let capture = CaptureWriter::new();
/// let layer = LogConfig::new("svc").json_layer(capture.clone()).unwrap();
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     tracing::warn!("careful");
/// });
/// assert_eq!(capture.json_lines().unwrap()[0]["level"], "WARN");
/// ```
#[derive(Clone, Debug, Default)]
pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

/// The writer for one line, from [`CaptureWriter`].
#[derive(Debug)]
pub struct CaptureLineWriter<'a>(&'a Mutex<Vec<u8>>);

impl Write for CaptureLineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Also a plain [`Write`], for APIs that take one (e.g. the facade's `log_writer`).
impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        CaptureLineWriter(&self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CaptureWriter {
    type Writer = CaptureLineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureLineWriter(&self.0)
    }
}

impl CaptureWriter {
    /// An empty capture.
    pub fn new() -> Self {
        CaptureWriter::default()
    }

    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// The lines written so far, without their newlines.
    pub fn lines(&self) -> Vec<String> {
        self.contents().lines().map(str::to_owned).collect()
    }

    /// Each line parsed as JSON; an error if any line is not valid JSON.
    pub fn json_lines(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        self.lines().iter().map(|l| serde_json::from_str(l)).collect()
    }

    /// Forgets what was written.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A writer that blocks until told to go, so the buffer fills up.
    struct Gate(mpsc::Receiver<()>);
    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_dropped_when_full_are_counted_and_reported() {
        let (tx, rx) = mpsc::channel();
        let (writer, guard) = LogWriter::new(Gate(rx), 2, usize::MAX, Duration::from_secs(3600));
        let recorder = metrics_util_free::Counting::default();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..50 {
                writer.make_writer().write_all(b"line\n").unwrap();
            }
        });
        // The worker holds at most one batch, taken before the gate blocked it (up to the
        // buffer's two lines), and the buffer two more: at least 46 of the 50 were dropped.
        // (48 when the worker took nothing before the last line, 47 when it took one.)
        let dropped = guard.dropped_lines();
        assert!((46..=48).contains(&dropped), "dropped {dropped}");
        assert_eq!(recorder.total(), dropped as u64);
        for _ in 0..50 {
            let _ = tx.send(());
        }
        drop(tx);
        drop(guard);
    }

    /// A [`Gate`] that keeps what it writes.
    struct GateInto(mpsc::Receiver<()>, Arc<Mutex<Vec<u8>>>);
    impl Write for GateInto {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            self.1.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_byte_limit_bounds_the_buffer_when_lines_are_large() {
        let (tx, rx) = mpsc::channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        // Room for 1,000 lines but only 100 bytes: ten of the 10-byte lines below.
        let (writer, guard) = LogWriter::new(GateInto(rx, out.clone()), 1000, 100, Duration::from_secs(3600));
        // A line longer than the whole buffer is dropped, even into an empty buffer.
        writer.make_writer().write_all(&[b'x'; 101]).unwrap();
        assert_eq!(guard.dropped_lines(), 1);
        for i in 0..50 {
            writer
                .make_writer()
                .write_all(format!("line-{i:04}\n").as_bytes())
                .unwrap();
        }
        // At most ten lines wait in the buffer and ten in the batch the worker holds at
        // the gate; at least ten wait in one or the other.
        let dropped = guard.dropped_lines();
        assert!((31..=41).contains(&dropped), "dropped {dropped}");
        for _ in 0..10 {
            let _ = tx.send(());
        }
        drop(tx);
        drop(guard);
        // Every kept line is written whole; the dropped ones are missing, not cut.
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50 - (dropped - 1), "{text}");
        assert!(
            lines.iter().all(|l| l.len() == 9 && l.starts_with("line-")),
            "{text}"
        );
    }

    /// A minimal `metrics` recorder summing one counter, to avoid a dev-dependency.
    mod metrics_util_free {
        use metrics::{
            Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
        };
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};

        #[derive(Default)]
        pub(crate) struct Counting(Arc<Sum>);
        #[derive(Default)]
        pub(crate) struct Sum(AtomicU64);
        impl CounterFn for Sum {
            fn increment(&self, value: u64) {
                self.0.fetch_add(value, Ordering::Relaxed);
            }
            fn absolute(&self, value: u64) {
                self.0.store(value, Ordering::Relaxed);
            }
        }
        impl Counting {
            pub(crate) fn total(&self) -> u64 {
                self.0.0.load(Ordering::Relaxed)
            }
        }
        impl Recorder for Counting {
            fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
            fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
                assert_eq!(key.name(), super::keys::DROPPED_LINES_TOTAL);
                Counter::from_arc(self.0.clone())
            }
            fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
                Gauge::noop()
            }
            fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
                Histogram::noop()
            }
        }
    }
}
