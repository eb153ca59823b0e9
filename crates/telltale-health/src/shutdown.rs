//! Graceful drain: readiness first, then connections, with a deadline.
//!
//! Order matters on Kubernetes: when a pod is deleted, the kubelet sends SIGTERM while
//! endpoints controllers and load balancers are still routing to it. So on the signal
//! readiness turns 503 at once, the server keeps serving for `drain_delay` (long enough
//! for the probes to notice and the endpoints to update), then stops accepting and
//! waits for in-flight requests — at most `grace_deadline`, after which it returns
//! anyway (keep `drain_delay + grace_deadline` below the pod's
//! `terminationGracePeriodSeconds`, default 30 s).

use std::future::{Future, IntoFuture};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::Health;

/// Timings of a graceful shutdown.
///
/// ```
/// use std::time::Duration;
/// let config = telltale_health::ShutdownConfig {
///     drain_delay: Duration::from_secs(10),
///     grace_deadline: Duration::from_secs(15),
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// How long to keep serving after readiness turned 503, so load balancers stop
    /// sending (default 5 s).
    pub drain_delay: Duration,
    /// How long in-flight requests may take after the server stopped accepting; the
    /// server returns when it passes (default 20 s).
    pub grace_deadline: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_delay: Duration::from_secs(5),
            grace_deadline: Duration::from_secs(20),
        }
    }
}

/// Serves `router` on `listener` until SIGTERM or SIGINT, then drains gracefully:
/// readiness 503 at once, keep serving for `drain_delay`, stop accepting, wait for
/// in-flight requests up to `grace_deadline`.
///
/// A second signal during the drain stops at once, without waiting for the rest of
/// `drain_delay` or for in-flight requests: the developer pressing Ctrl-C twice, or an
/// operator who means it.
///
/// Returns `Ok(())` after a graceful (or deadline-cut, or second-signal) shutdown.
/// Connections still open then are left to be dropped with the runtime (when `main`
/// returns).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    health: &Health,
    config: ShutdownConfig,
) -> io::Result<()> {
    let mut signals = Signals::install();
    let mut drained = health.inner.draining.subscribe();
    let (started, trigger) = tokio::sync::oneshot::channel::<()>();
    // One listener for both signals, kept for the whole drain: the first starts the
    // drain, the next ends it.
    let second_signal = async move {
        tokio::select! {
            name = signals.recv() => {
                tracing::info!(signal = name, "shutdown signal received");
            }
            _ = drained.wait_for(|d| *d) => {}
        }
        let _ = started.send(());
        let name = signals.recv().await;
        tracing::warn!(
            signal = name,
            "second shutdown signal: stopping now, without waiting for the drain"
        );
    };
    let trigger = async move {
        let _ = trigger.await;
    };
    tokio::select! {
        result = serve_with_shutdown(listener, router, health, config, trigger) => result,
        () = second_signal => Ok(()),
    }
}

/// [`serve`] with your own trigger instead of the signals: the drain starts when
/// `trigger` completes (or when [`Health::start_draining`] is called).
pub async fn serve_with_shutdown<F>(
    listener: TcpListener,
    router: Router,
    health: &Health,
    config: ShutdownConfig,
    trigger: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let stop_accepting = Arc::new(Notify::new());
    let graceful = {
        let health = health.clone();
        let stop_accepting = stop_accepting.clone();
        let mut drained = health.inner.draining.subscribe();
        async move {
            tokio::select! {
                () = trigger => {}
                _ = drained.wait_for(|d| *d) => {}
            }
            // The delay counts from when every readiness answer, gRPC's too, says so.
            health.drain().await;
            tokio::time::sleep(config.drain_delay).await;
            tracing::info!(
                grace_deadline_ms = config.grace_deadline.as_millis() as u64,
                "drain delay over: no longer accepting connections, waiting for in-flight requests"
            );
            // `notify_one` keeps a permit if nobody waits yet.
            stop_accepting.notify_one();
        }
    };
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(graceful)
        .into_future();
    let deadline = async {
        stop_accepting.notified().await;
        tokio::time::sleep(config.grace_deadline).await;
    };
    tokio::select! {
        result = server => {
            tracing::info!("server stopped");
            result
        }
        () = deadline => {
            tracing::warn!(
                grace_deadline_ms = config.grace_deadline.as_millis() as u64,
                "grace deadline passed with requests still in flight: stopping anyway"
            );
            Ok(())
        }
    }
}

pub(crate) fn drain_on_signal(health: Health) -> impl Future<Output = ()> + Send + 'static {
    // Install the handlers now when we can (see `Health::drain_on_signal`).
    let signals = tokio::runtime::Handle::try_current()
        .ok()
        .map(|_| Signals::install());
    let mut drained = health.inner.draining.subscribe();
    async move {
        let mut signals = match signals {
            Some(s) => s,
            None => Signals::install(),
        };
        tokio::select! {
            name = signals.recv() => {
                tracing::info!(signal = name, "shutdown signal received");
            }
            _ = drained.wait_for(|d| *d) => {}
        }
        health.drain().await;
    }
}

struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let install = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(signal = name, error = %e, "cannot install signal handler");
                    None
                }
            };
            Self {
                term: install(SignalKind::terminate(), "SIGTERM"),
                int: install(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for the first signal; never completes when none could be installed.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut self.term) => "SIGTERM",
                () = next(&mut self.int) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}
