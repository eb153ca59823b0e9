//! The registry: runs checks concurrently under their timeouts, caches the results,
//! makes concurrent probes share one run, and reports status changes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::check::{CheckError, DynCheck};
use crate::names;

/// How results are kept fresh.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refresh {
    /// Run on a probe when the last results are older than this.
    OnDemand(Duration),
    /// A background task runs every interval; probes only read (and run the checks
    /// themselves if its results are older than two intervals and the longest timeout).
    Background(Duration),
}

pub(crate) struct Entry {
    pub(crate) name: Arc<str>,
    pub(crate) check: Box<dyn DynCheck>,
    pub(crate) critical: bool,
    pub(crate) timeout: Duration,
}

/// One check's latest result.
#[derive(Debug, Clone)]
pub(crate) struct CheckResult {
    pub(crate) error: Option<CheckError>,
    pub(crate) duration: Duration,
    pub(crate) last_success: Option<SystemTime>,
    pub(crate) checked_at: SystemTime,
}

impl CheckResult {
    pub(crate) fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Results of one run of every readiness check, in registration order.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) taken: Instant,
    pub(crate) results: Vec<CheckResult>,
}

/// The overall verdict of `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Ok,
    Degraded,
    Failed,
    Draining,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Degraded => "degraded",
            Verdict::Failed => "failed",
            Verdict::Draining => "draining",
        }
    }

    pub(crate) fn serving(self) -> bool {
        matches!(self, Verdict::Ok | Verdict::Degraded)
    }
}

pub(crate) struct Inner {
    pub(crate) entries: Vec<Entry>,
    pub(crate) startup: Vec<Entry>,
    pub(crate) paths: crate::Paths,
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// With a background refresh: a snapshot older than this means the refresher has
    /// stopped (its runtime was dropped), and probes run the checks themselves.
    stale_after: Duration,
    /// Held while a run is under way, by the run's own task: concurrent probes wait for
    /// it, then read its results, instead of starting runs of their own.
    run_lock: Arc<tokio::sync::Mutex<()>>,
    startup_passed: AtomicBool,
    /// As `run_lock`, for the startup checks.
    startup_lock: Arc<tokio::sync::Mutex<()>>,
    /// How many startup runs have finished, and the failures of the last one.
    startup_last: Mutex<(u64, Vec<(usize, CheckError)>)>,
    pub(crate) draining: watch::Sender<bool>,
    #[cfg(feature = "tonic")]
    pub(crate) grpc: Option<crate::grpc::GrpcReporter>,
}

impl Inner {
    pub(crate) fn new(
        entries: Vec<Entry>,
        startup: Vec<Entry>,
        refresh: Refresh,
        paths: crate::Paths,
        #[cfg(feature = "tonic")] grpc: Option<crate::grpc::GrpcReporter>,
    ) -> Self {
        let longest_check = entries.iter().map(|e| e.timeout).max().unwrap_or_default();
        let stale_after = match refresh {
            Refresh::Background(every) => every.saturating_mul(2).saturating_add(longest_check),
            Refresh::OnDemand(ttl) => ttl,
        };
        Self {
            stale_after,
            startup_passed: AtomicBool::new(startup.is_empty()),
            entries,
            startup,
            paths,
            snapshot: Mutex::new(None),
            run_lock: Arc::new(tokio::sync::Mutex::new(())),
            startup_lock: Arc::new(tokio::sync::Mutex::new(())),
            startup_last: Mutex::new((0, Vec::new())),
            draining: watch::Sender::new(false),
            #[cfg(feature = "tonic")]
            grpc,
        }
    }

    pub(crate) fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        let guard = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        let snap = guard.as_ref()?;
        // On demand, `stale_after` is the TTL. In the background, a refresher that has
        // stopped must not freeze readiness at its last answer.
        (snap.taken.elapsed() < self.stale_after).then(|| snap.clone())
    }

    /// Current results: cached when fresh, else from one run shared by every caller
    /// that arrives while it is under way (single flight).
    pub(crate) async fn snapshot(self: &Arc<Self>) -> Arc<Snapshot> {
        if let Some(s) = self.fresh() {
            return s;
        }
        let guard = self.run_lock.clone().lock_owned().await;
        if let Some(s) = self.fresh() {
            return s;
        }
        // Run in a task of its own, which holds the lock until the results are stored: a
        // probe whose client hangs up (this future dropped) cancels neither the run nor
        // the wait of the probes behind it, which then read this run's results instead of
        // starting runs of their own.
        let inner = self.clone();
        let run = async move {
            let _guard = guard;
            inner.run_and_store().await
        };
        match tokio::spawn(run).await {
            Ok(s) => s,
            // Only when the runtime shuts down under us.
            Err(_) => Arc::new(Snapshot {
                taken: Instant::now(),
                results: self
                    .entries
                    .iter()
                    .map(|_| CheckResult {
                        error: Some(CheckError::msg("check run was cancelled")),
                        duration: Duration::ZERO,
                        last_success: None,
                        checked_at: SystemTime::now(),
                    })
                    .collect(),
            }),
        }
    }

    /// Runs every readiness check once, stores the results, reports changes.
    async fn run_and_store(self: Arc<Self>) -> Arc<Snapshot> {
        describe_metrics();
        let runs = (0..self.entries.len()).map(|i| run_one(self.clone(), Which::Readiness, i));
        let outcomes = futures_util::future::join_all(runs).await;

        let previous = self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = SystemTime::now();
        let mut results = Vec::with_capacity(outcomes.len());
        for (i, (error, duration)) in outcomes.into_iter().enumerate() {
            let entry = &self.entries[i];
            let before = previous.as_ref().map(|p| &p.results[i]);
            let last_success = if error.is_none() {
                Some(now)
            } else {
                before.and_then(|b| b.last_success)
            };
            report_change(entry, before.map(CheckResult::ok), error.as_ref());
            results.push(CheckResult {
                error,
                duration,
                last_success,
                checked_at: now,
            });
        }
        let snap = Arc::new(Snapshot {
            taken: Instant::now(),
            results,
        });
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap.clone());
        self.publish_grpc(self.verdict(&snap, &[])).await;
        snap
    }

    /// The overall verdict, ignoring the checks at the `excluded` indexes.
    pub(crate) fn verdict(&self, snap: &Snapshot, excluded: &[usize]) -> Verdict {
        if self.is_draining() {
            return Verdict::Draining;
        }
        let mut verdict = Verdict::Ok;
        for (i, (entry, result)) in self.entries.iter().zip(&snap.results).enumerate() {
            if result.ok() || excluded.contains(&i) {
                continue;
            }
            if entry.critical {
                return Verdict::Failed;
            }
            verdict = Verdict::Degraded;
        }
        verdict
    }

    /// Tells the gRPC health service (if any) whether to serve, after a run.
    ///
    /// Whether draining is decided again when the status is set, not taken from
    /// `verdict`: it was computed before this waited for its turn, and the drain may have
    /// begun since (see [`crate::grpc`]).
    pub(crate) async fn publish_grpc(&self, verdict: Verdict) {
        #[cfg(feature = "tonic")]
        if let Some(grpc) = &self.grpc {
            grpc.publish(|| verdict.serving() && !self.is_draining()).await;
        }
        #[cfg(not(feature = "tonic"))]
        let _ = verdict;
    }

    /// Sets the gRPC status to not serving before returning, unless another update to
    /// it is under way at this very moment; then a task does it as soon as that one is
    /// done (or, outside a Tokio runtime, the next background run). `Health::drain`
    /// awaits it instead.
    #[cfg(feature = "tonic")]
    pub(crate) fn publish_drain_now(self: &Arc<Self>) {
        use futures_util::FutureExt as _;
        if self.grpc.is_none() {
            return;
        }
        // `unconstrained`: a task that has used up its Tokio budget would get `Pending`
        // from every lock, contended or not.
        let now = tokio::task::unconstrained(self.publish_grpc(Verdict::Draining));
        if now.now_or_never().is_some() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let inner = self.clone();
            handle.spawn(async move { inner.publish_grpc(Verdict::Draining).await });
        }
    }

    /// `/startupz`: passes once every startup check has passed in the same run; after
    /// that, never runs them again.
    ///
    /// Single flight, as readiness: a probe arriving while a run is under way waits for it
    /// and answers with its outcome. The run is a task of its own, so a probe that gives
    /// up (a kubelet `timeoutSeconds` shorter than the checks) does not throw the run
    /// away: when it passes, the next probe sees it.
    pub(crate) async fn startup(self: &Arc<Self>) -> Result<(), Vec<(usize, CheckError)>> {
        if self.startup_passed.load(Ordering::Acquire) {
            return Ok(());
        }
        let finished_before = self.startup_last.lock().unwrap_or_else(|e| e.into_inner()).0;
        let guard = self.startup_lock.clone().lock_owned().await;
        if self.startup_passed.load(Ordering::Acquire) {
            return Ok(());
        }
        {
            let last = self.startup_last.lock().unwrap_or_else(|e| e.into_inner());
            if last.0 != finished_before {
                // A run finished while this probe waited: its outcome is the answer.
                return Err(last.1.clone());
            }
        }
        let inner = self.clone();
        let run = async move {
            let _guard = guard;
            inner.run_startup().await
        };
        tokio::spawn(run).await.unwrap_or_else(|_| {
            // Only when the runtime shuts down under us.
            Err(vec![(0, CheckError::msg("check run was cancelled"))])
        })
    }

    async fn run_startup(self: Arc<Self>) -> Result<(), Vec<(usize, CheckError)>> {
        let runs = (0..self.startup.len()).map(|i| run_one(self.clone(), Which::Startup, i));
        let outcomes = futures_util::future::join_all(runs).await;
        let failed: Vec<_> = outcomes
            .into_iter()
            .enumerate()
            .filter_map(|(i, (e, _))| e.map(|e| (i, e)))
            .collect();
        if failed.is_empty() {
            self.startup_passed.store(true, Ordering::Release);
            tracing::info!(checks = self.startup.len(), "startup checks passed");
        }
        let mut last = self.startup_last.lock().unwrap_or_else(|e| e.into_inner());
        last.0 += 1;
        last.1.clone_from(&failed);
        if failed.is_empty() { Ok(()) } else { Err(failed) }
    }

    pub(crate) fn start_draining(&self) -> bool {
        let was = self.draining.send_replace(true);
        if !was {
            tracing::info!("draining: readiness now answers 503 so load balancers stop sending");
        }
        !was
    }
}

#[derive(Clone, Copy)]
enum Which {
    Readiness,
    Startup,
}

/// Runs one check in a task of its own (a panicking check fails only itself) under its
/// timeout (the task is aborted when the timeout passes), and records its metrics.
async fn run_one(inner: Arc<Inner>, which: Which, i: usize) -> (Option<CheckError>, Duration) {
    let start = Instant::now();
    fn list(inner: &Inner, which: Which) -> &[Entry] {
        match which {
            Which::Readiness => &inner.entries,
            Which::Startup => &inner.startup,
        }
    }
    let timeout = list(&inner, which)[i].timeout;
    let task_inner = inner.clone();
    let mut task = tokio::spawn(async move { list(&task_inner, which)[i].check.run().await });
    let error = match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(e))) => Some(e),
        Ok(Err(join)) if join.is_panic() => Some(CheckError::msg("check panicked")),
        Ok(Err(_)) => Some(CheckError::msg("check was cancelled")),
        Err(_) => {
            task.abort();
            Some(CheckError::timed_out(timeout))
        }
    };
    let duration = start.elapsed();
    let name = list(&inner, which)[i].name.clone();
    record_metrics(&name, error.is_none(), duration);
    (error, duration)
}

fn describe_metrics() {
    // Per run rather than once: the recorder may be installed after the first run.
    metrics::describe_gauge!(
        names::CHECK_STATUS,
        "Whether the health check passed on its last run (1) or failed (0)."
    );
    metrics::describe_histogram!(
        names::CHECK_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of health check runs, timeouts included."
    );
}

fn record_metrics(name: &Arc<str>, ok: bool, duration: Duration) {
    // Looked up per run, not cached at build time: the recorder may be installed after
    // the registry is built. A run is rare (at most once per TTL), so this is cheap.
    let labels = [(names::CHECK, name.to_string())];
    metrics::gauge!(names::CHECK_STATUS, &labels).set(if ok { 1.0 } else { 0.0 });
    metrics::histogram!(names::CHECK_DURATION_SECONDS, &labels).record(duration.as_secs_f64());
}

/// One log event per status change, never one per probe.
fn report_change(entry: &Entry, before: Option<bool>, error: Option<&CheckError>) {
    match (before, error) {
        (Some(false) | None, None) => {
            if before.is_some() {
                tracing::info!(check = %entry.name, critical = entry.critical, "health check recovered");
            }
        }
        (Some(true) | None, Some(e)) => {
            tracing::warn!(check = %entry.name, critical = entry.critical, error = %e, "health check failing");
        }
        (Some(false), Some(_)) | (Some(true), None) => {}
    }
}

/// Re-runs the readiness checks every `interval` until the registry is dropped.
pub(crate) fn spawn_refresher(inner: &Arc<Inner>, interval: Duration, handle: &tokio::runtime::Handle) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    handle.spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(inner) = weak.upgrade() else { break };
            let guard = inner.run_lock.lock().await;
            inner.clone().run_and_store().await;
            drop(guard);
        }
    });
}
