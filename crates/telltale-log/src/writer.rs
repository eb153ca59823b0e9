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
//! Dropping a line costs the caller one atomic add; the writer thread adds the drops to
//! the counter and writes the stderr line between batches (so both lag while the sink is
//! stuck in a write), because a full stderr pipe blocks whoever writes to it, and that
//! must not be a request. [`LogGuard::dropped_lines`] is always exact.
//! [`LogGuard`] writes what is buffered when dropped and reports the total dropped, if
//! any; lines written after that are counted as dropped (see [`LogGuard`]).

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, TryLockError, mpsc};
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
///
/// # When it is dropped
///
/// 1. The writer thread is told to stop; lines still arrive in the buffer until it takes
///    its last batch, and that batch is written. Dropping the guard waits for this at most
///    two seconds, so a sink that is stuck cannot hang the shutdown (the lines it holds are
///    then written only if the sink recovers before the process exits).
/// 2. Lines written after that (from another thread still logging, or once the guard is
///    gone) are **not written**: the writer thread no longer runs, and writing them on the
///    caller's thread would block it on the sink. They are counted as dropped instead, in
///    `telltale_log_dropped_lines_total`, so none vanishes unseen.
/// 3. If any line was dropped, the total goes to stderr.
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
    /// Lines dropped so far. Dropping a line on the request path touches nothing else:
    /// the writer thread adds the drops to the metric and reports them (see [`Reporter`]).
    dropped: AtomicUsize,
    drops: Reporter,
}

#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    lines: usize,
    /// The writer thread sleeps for [`IDLE`] and wants a wake-up for the next line.
    idle: bool,
    /// The guard was dropped: the writer thread takes its last batch.
    closing: bool,
    /// The writer thread took its last batch: new lines are dropped (and counted).
    closed: bool,
}

/// Where dropped lines are reported: the `telltale_log_dropped_lines_total` counter, and a
/// line of text (stderr) at most once per interval. Only the writer thread and the guard
/// use it, never the request path: writing to a full stderr pipe blocks, and a request
/// must not wait on it.
pub(crate) struct DropReport {
    /// The counter, looked up each time drops are added (a recorder may be installed after
    /// the writer is made).
    pub(crate) counter: Box<dyn Fn() -> metrics::Counter + Send + Sync>,
    pub(crate) out: Box<dyn Write + Send>,
    pub(crate) interval: Duration,
}

impl DropReport {
    /// The metric through the `metrics` facade, and stderr.
    pub(crate) fn stderr(interval: Duration) -> Self {
        DropReport {
            counter: Box::new(|| metrics::counter!(keys::DROPPED_LINES_TOTAL)),
            out: Box::new(io::stderr()),
            interval,
        }
    }
}

/// A [`DropReport`] shared by the writer thread and the guard.
struct Reporter {
    /// Drops already added to the metric. Raised with `fetch_max`, so each drop is added
    /// exactly once whichever thread adds it.
    accounted: AtomicUsize,
    counter: Box<dyn Fn() -> metrics::Counter + Send + Sync>,
    out: Mutex<Box<dyn Write + Send>>,
    interval: Duration,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("accounted", &self.accounted)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The writer thread's record of what it reported on stderr.
struct ReportState {
    /// The drop count last seen (and added to the metric).
    seen: usize,
    /// The drop count last written to the report.
    reported: usize,
    last_report: Option<Instant>,
}

impl Reporter {
    /// Adds the drops up to `total` that are not in the metric yet.
    fn account(&self, total: usize) {
        let before = self.accounted.fetch_max(total, Ordering::AcqRel);
        if total > before {
            (self.counter)().increment((total - before) as u64);
        }
    }
}

impl Queue {
    /// Appends one line; `false` when the buffer is full and the line was dropped.
    #[inline]
    fn push(&self, line: &[u8]) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let before = p.buf.len();
        if p.lines >= self.limit || line.len() > self.byte_limit - before || p.closed {
            let closed = p.closed;
            drop(p);
            // The only work a dropped line costs the caller: no metric, no stderr.
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if closed {
                self.after_close(dropped);
            }
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

    /// A line dropped after the writer thread stopped: with no thread left to add it to the
    /// metric on its tick, the caller does (shutdown only; an atomic and a counter
    /// increment, never stderr).
    #[cold]
    #[inline(never)]
    fn after_close(&self, dropped: usize) {
        self.drops.account(dropped);
    }

    fn run<T: Write>(&self, mut out: T) {
        let mut batch: Vec<u8> = Vec::new();
        let mut was_empty = false;
        let mut report = ReportState {
            seen: 0,
            reported: 0,
            last_report: None,
        };
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
                // The last batch: under the same lock, so no line lands in the buffer after it.
                p.closed = p.closing;
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
            // The guard reports the total when closing.
            self.report_drops(&mut report, !closing);
            if closing {
                return;
            }
        }
    }

    /// The writer thread's tick: adds new drops to the metric and, at most once per
    /// interval, writes how many were dropped so far.
    fn report_drops(&self, state: &mut ReportState, write: bool) {
        let total = self.dropped.load(Ordering::Relaxed);
        if total != state.seen {
            self.drops.account(total);
            state.seen = total;
        }
        if !write || total == state.reported {
            return;
        }
        let now = Instant::now();
        if state
            .last_report
            .is_some_and(|last| now.saturating_duration_since(last) < self.drops.interval)
        {
            return;
        }
        state.last_report = Some(now);
        state.reported = total;
        let mut out = self.drops.out.lock().unwrap_or_else(PoisonError::into_inner);
        // Straight to stderr: the log pipeline is the thing that is full.
        let _ = writeln!(
            out,
            "telltale-log: {total} log lines dropped so far: the writer could not keep up \
             (buffer full: {} lines or {} bytes); see metric {}",
            self.limit,
            self.byte_limit,
            keys::DROPPED_LINES_TOTAL
        );
        let _ = out.flush();
    }
}

impl LogWriter {
    pub(crate) fn new<T: Write + Send + 'static>(
        writer: T,
        limit: usize,
        byte_limit: usize,
        report_interval: Duration,
    ) -> (LogWriter, LogGuard) {
        LogWriter::with_drop_report(writer, limit, byte_limit, DropReport::stderr(report_interval))
    }

    /// [`new`](LogWriter::new) reporting dropped lines to `report`.
    pub(crate) fn with_drop_report<T: Write + Send + 'static>(
        writer: T,
        limit: usize,
        byte_limit: usize,
        report: DropReport,
    ) -> (LogWriter, LogGuard) {
        // Make the counter visible at 0 (when a recorder is already installed), so a
        // dashboard can tell "no drops" from "not reported".
        metrics::describe_counter!(
            keys::DROPPED_LINES_TOTAL,
            metrics::Unit::Count,
            "Log lines dropped because the non-blocking log writer's buffer was full."
        );
        (report.counter)().increment(0);
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            limit: limit.max(1),
            byte_limit: byte_limit.max(1),
            dropped: AtomicUsize::new(0),
            drops: Reporter {
                accounted: AtomicUsize::new(0),
                counter: report.counter,
                out: Mutex::new(report.out),
                interval: report.interval,
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
            // No writer thread (it could not be started): nothing will take the buffer.
            p.closed |= self.worker.is_none();
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
        self.queue.drops.account(total);
        if total > 0 {
            // Not if the writer thread is stuck writing a report: that sink is stuck too.
            let out = match self.queue.drops.out.try_lock() {
                Ok(out) => Some(out),
                Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut out) = out {
                let _ = writeln!(
                    out,
                    "telltale-log: {total} log lines were dropped in total because the writer could \
                     not keep up (buffer of {} lines); raise LogConfig::buffered_lines_limit or log less",
                    self.queue.limit
                );
                let _ = out.flush();
            }
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

    /// A counter summing what is added, and a report sink keeping what is written.
    #[derive(Clone, Default)]
    struct Reports {
        sum: Arc<counter_sum::Sum>,
        text: Arc<Mutex<Vec<u8>>>,
    }

    impl Reports {
        fn drop_report(&self) -> DropReport {
            let sum = self.sum.clone();
            DropReport {
                counter: Box::new(move || metrics::Counter::from_arc(sum.clone())),
                out: Box::new(SharedText(self.text.clone())),
                interval: Duration::from_secs(3600),
            }
        }

        fn counted(&self) -> usize {
            self.sum.total() as usize
        }

        fn text(&self) -> String {
            String::from_utf8(self.text.lock().unwrap().clone()).unwrap()
        }

        /// Waits (bounded) until the counter holds `n`.
        fn wait_for_count(&self, n: usize) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.counted() != n {
                assert!(
                    Instant::now() < deadline,
                    "the counter holds {}, not {n}",
                    self.counted()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    struct SharedText(Arc<Mutex<Vec<u8>>>);
    impl Write for SharedText {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_dropped_when_full_are_counted_and_reported() {
        let (tx, rx) = mpsc::channel();
        let reports = Reports::default();
        let (writer, guard) = LogWriter::with_drop_report(Gate(rx), 2, usize::MAX, reports.drop_report());
        for _ in 0..50 {
            writer.make_writer().write_all(b"line\n").unwrap();
        }
        // The worker holds at most one batch, taken before the gate blocked it (up to the
        // buffer's two lines), and the buffer two more: at least 46 of the 50 were dropped.
        // (48 when the worker took nothing before the last line, 47 when it took one.)
        let dropped = guard.dropped_lines();
        assert!((46..=48).contains(&dropped), "dropped {dropped}");
        for _ in 0..50 {
            let _ = tx.send(());
        }
        // The writer thread adds them to the metric and reports them once it is free.
        reports.wait_for_count(dropped);
        drop(tx);
        drop(guard);
        assert_eq!(reports.counted(), dropped, "each drop counted once");
        let text = reports.text();
        assert!(
            text.contains(&format!("{dropped} log lines dropped so far")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{dropped} log lines were dropped in total")),
            "{text}"
        );
    }

    /// A report sink that blocks, as stderr does when it is a pipe nobody reads.
    struct StuckReport {
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    }
    impl Write for StuckReport {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.release.recv(); // until released, or the test ends
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_dropped_line_never_waits_for_the_drop_report() {
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let sum = Arc::new(counter_sum::Sum::default());
        let counter_sum = sum.clone();
        let report = DropReport {
            counter: Box::new(move || metrics::Counter::from_arc(counter_sum.clone())),
            out: Box::new(StuckReport {
                entered: entered_tx,
                release: release_rx,
            }),
            interval: Duration::from_millis(1),
        };
        // Room for 1,000 lines of at most 100 bytes: a longer line is always dropped.
        let (writer, guard) = LogWriter::with_drop_report(io::sink(), 1000, 100, report);
        let too_long = [b'x'; 101];

        // The "request": it drops a line, then (once the report is stuck) drops and writes
        // more. Every write must return whatever the report sink does.
        let (first_tx, first) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let request = {
            let writer = writer.clone();
            std::thread::spawn(move || {
                writer.make_writer().write_all(&too_long).unwrap();
                let _ = first_tx.send(());
                if go_rx.recv_timeout(Duration::from_secs(10)).is_ok() {
                    for _ in 0..100 {
                        writer.make_writer().write_all(&too_long).unwrap();
                        writer.make_writer().write_all(b"short line\n").unwrap();
                    }
                    let _ = done_tx.send(());
                }
            })
        };
        first
            .recv_timeout(Duration::from_secs(10))
            .expect("writing a dropped line returned");
        // The writer thread reports the drop, and is now stuck in the report sink.
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer thread reports drops");
        go.send(()).unwrap();
        done.recv_timeout(Duration::from_secs(10))
            .expect("lines are dropped and written while the report sink is stuck");
        // The 101 long lines, and the short ones beyond the nine (of 11 bytes) that fit in
        // the 100 bytes while the writer thread is stuck.
        let dropped = guard.dropped_lines();
        assert_eq!(dropped, 101 + 91);
        request.join().unwrap();

        drop(release);
        drop(guard);
        assert_eq!(sum.total(), dropped as u64, "every drop in the metric once");
    }

    #[test]
    fn the_metric_gets_every_drop_once_when_many_threads_drop_at_once() {
        for _ in 0..20 {
            let (tx, rx) = mpsc::channel();
            let reports = Reports::default();
            let (writer, guard) = LogWriter::with_drop_report(Gate(rx), 1, usize::MAX, reports.drop_report());
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (writer, barrier) = (writer.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        for _ in 0..200 {
                            writer.make_writer().write_all(b"x\n").unwrap();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let dropped = guard.dropped_lines();
            assert!(dropped >= 1600 - 2, "dropped {dropped}");
            drop(tx); // the gate opens for good
            // The writer thread's tick catches the metric up: neither short nor over.
            reports.wait_for_count(dropped);
            drop(guard);
            assert_eq!(reports.counted(), dropped);
        }
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

    /// A counter summing what is added, without a `metrics` recorder (the writer thread
    /// adds to it, and a recorder installed for the test thread would not see it).
    mod counter_sum {
        use metrics::CounterFn;
        use std::sync::atomic::{AtomicU64, Ordering};

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
        impl Sum {
            pub(crate) fn total(&self) -> u64 {
                self.0.load(Ordering::Relaxed)
            }
        }
    }
}
