//! Liveness, readiness and startup endpoints with time-bounded, cached dependency
//! checks and graceful drain.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use telltale_health::{checks, Health, ReadinessCheck as _}; // `ReadinessCheck` for `.non_critical()`
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let health = Health::builder()
//!     .check("broker", checks::tcp("127.0.0.1:5672"))
//!     .check("search", checks::tcp("127.0.0.1:9200").non_critical())
//!     .timeout(Duration::from_millis(300))   // per check, default 500 ms
//!     .cache_for(Duration::from_secs(2))     // default 1 s
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/orders", get(|| async { "[]" }))
//!     .merge(health.router()); // /healthz /livez /readyz /readyz/{name} /startupz
//! # let _ = app; Ok(()) }
//! ```
//!
//! Serving with graceful drain (SIGTERM/SIGINT: readiness turns 503 at once, the server
//! keeps serving for `drain_delay`, then stops accepting and gives in-flight requests
//! up to `grace_deadline`; a second signal stops at once):
//!
//! ```no_run
//! # async fn f(app: axum::Router, health: telltale_health::Health) -> std::io::Result<()> {
//! use telltale_health::ShutdownConfig;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! telltale_health::serve(listener, app, &health, ShutdownConfig::default()).await
//! # }
//! ```
//!
//! # Endpoints (Kubernetes conventions)
//!
//! - `/healthz` and `/livez`: always 200 `{"status":"ok"}` while the process serves
//!   HTTP. They never run dependency checks: a database outage must not get the pod
//!   restarted. They stay 200 while draining.
//! - `/readyz`: 200 `ok`; 200 `degraded` when only non-critical checks fail; 503 when a
//!   critical check fails (the failing checks are named, reasons withheld) or while
//!   draining (`draining`). `?verbose` prints one line per check (`[+]db ok`,
//!   `[-]cache failed: <reason>`); `?exclude=name` (repeatable) ignores a check, an
//!   unknown name is reported as a warning, not a failure. With
//!   `Accept: application/json` the answer is JSON: overall status and, per check,
//!   status, critical, duration_ms, error (the reason with `?verbose`, else
//!   `"reason withheld"`; `null` when the check passed), last_success (RFC 3339).
//! - `/readyz/{name}`: one check (404 for an unknown one), 200 or 503 as it passes or
//!   fails, in the same formats.
//! - While draining, every readiness answer, `/readyz` and `/readyz/{name}` alike, is
//!   503 `draining` (`readyz check failed: draining` with `?verbose`,
//!   `{"status":"draining"}` as JSON), and no check is run. Unlike kube-apiserver's
//!   per-check endpoints, which report only their check, `/readyz/{name}` does not
//!   keep answering 200: a load balancer may be pointed at it, and a draining process
//!   must invite no traffic. The word `draining` is shown without `?verbose`: it is
//!   not a check's reason (which may name hosts or users), and withholding it would
//!   read as the check failing.
//! - `/startupz`: 503 until every startup check has passed once, then 200 for good.
//!
//! Every answer carries `Cache-Control: no-cache, no-store, must-revalidate`.
//!
//! # Bounded, cached, single-flight
//!
//! The checks run concurrently, each under its timeout, so `/readyz` answers within the
//! largest timeout even when a dependency hangs. Results are cached for
//! [`cache_for`](HealthBuilder::cache_for) (or refreshed by a background task with
//! [`refresh_every`](HealthBuilder::refresh_every)), and probes arriving while a run is
//! under way wait for that run instead of starting their own: however many probes
//! arrive, a dependency sees at most one check per TTL.
//!
//! # Signals
//!
//! Per check, a gauge [`names::CHECK_STATUS`] (1/0) and a histogram
//! [`names::CHECK_DURATION_SECONDS`], labelled [`names::CHECK`], through the `metrics`
//! facade; one `tracing` event when a check starts failing or recovers, never one per
//! probe. Error texts have credentials masked ([`redact`]).
//!
//! # Cargo features
//!
//! `sqlx` (`checks::sqlx`), `redis` (`checks::redis`, `checks::redis_client`),
//! `http-check` (`checks::http`), `tonic` (feed tonic-health's `HealthReporter`, see
//! `HealthBuilder::grpc_reporter`). All off by default.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
pub mod checks;
#[cfg(feature = "tonic")]
mod grpc;
pub mod names;
pub mod redact;
mod registry;
mod router;
mod shutdown;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use check::{CheckError, CheckSpec, ConfiguredCheck, IntoCheck, ReadinessCheck};
pub use shutdown::{ShutdownConfig, serve, serve_with_shutdown};

use registry::{Entry, Inner, Refresh};

/// Default timeout of each check.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// Default time results are cached.
pub const DEFAULT_CACHE_FOR: Duration = Duration::from_secs(1);

/// The health registry: checks, cached results, drain state. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.entries.iter().map(|e| &*e.name).collect();
        f.debug_struct("Health")
            .field("checks", &names)
            .field("draining", &self.inner.is_draining())
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Starts a builder with no checks, 500 ms timeout and 1 s cache.
    pub fn builder() -> HealthBuilder {
        HealthBuilder::default()
    }

    /// The router serving the liveness, readiness and startup paths; mount it with
    /// `Router::merge`. Works with any router state type. While draining, `/readyz`
    /// and every `/readyz/{name}` answer 503 `draining` (see the
    /// [crate docs](crate#endpoints-kubernetes-conventions)).
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router::router(self.inner.clone())
    }

    /// Turns readiness to 503 `draining` (and the gRPC status to not serving), for
    /// good. Liveness is unaffected. Returns `false` if it was already draining.
    ///
    /// HTTP readiness answers 503 from the moment this returns. So does the gRPC health
    /// service, unless another update to it was under way at that very moment (a
    /// readiness run setting it, microseconds); then it follows as soon as that update
    /// is done. Await [`drain`](Self::drain) instead to know it has.
    pub fn start_draining(&self) -> bool {
        let started = self.inner.start_draining();
        #[cfg(feature = "tonic")]
        self.inner.publish_drain_now();
        started
    }

    /// Starts draining, as [`start_draining`](Self::start_draining) does, and
    /// completes once every readiness answer says so: HTTP at once, and with a
    /// [gRPC reporter](HealthBuilder::grpc_reporter), once the overall service `""`
    /// and each named service are set to NOT_SERVING. From then on every gRPC `Check`
    /// answers NOT_SERVING, every open `Watch` stream has been sent NOT_SERVING, and
    /// no readiness run sets them back. Resolves to `false` if it was already
    /// draining (after making sure of the same).
    ///
    /// Draining starts when `drain` is called, not when the future is first polled;
    /// dropping the future does not undo it. [`serve`] counts its drain delay from
    /// when this completes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let health = telltale_health::Health::builder().build().unwrap();
    /// assert!(health.drain().await);
    /// assert!(health.is_draining());
    /// assert!(!health.is_ready().await);
    /// assert!(!health.drain().await); // already draining
    /// # }
    /// ```
    pub fn drain(&self) -> impl Future<Output = bool> + Send + 'static {
        let started = self.start_draining();
        #[cfg(feature = "tonic")]
        let inner = self.inner.clone();
        async move {
            #[cfg(feature = "tonic")]
            inner.publish_grpc(registry::Verdict::Draining).await;
            started
        }
    }

    /// Whether [`start_draining`](Self::start_draining) was called (or a signal came).
    pub fn is_draining(&self) -> bool {
        self.inner.is_draining()
    }

    /// A future that completes once draining has started: on SIGTERM or SIGINT (Ctrl-C)
    /// (after which it starts draining itself), or when
    /// [`start_draining`](Self::start_draining) is called. As with
    /// [`drain`](Self::drain), it completes only once the gRPC health service (if any)
    /// answers NOT_SERVING too.
    ///
    /// Signal handlers are installed when this is *called* (inside a Tokio runtime), not
    /// when first polled, so a signal arriving in between is not lost (and does not kill
    /// the process). Outside a runtime they are installed on first poll.
    ///
    /// To wire it into `axum::serve` yourself, wait for the drain delay after it:
    ///
    /// ```no_run
    /// # async fn f(listener: tokio::net::TcpListener, app: axum::Router, health: telltale_health::Health) -> std::io::Result<()> {
    /// let drained = health.drain_on_signal();
    /// axum::serve(listener, app)
    ///     .with_graceful_shutdown(async move {
    ///         drained.await;
    ///         tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    ///     })
    ///     .await
    /// # }
    /// ```
    /// [`serve`] does this and also bounds the wait for in-flight requests.
    pub fn drain_on_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        shutdown::drain_on_signal(self.clone())
    }

    /// Runs the readiness checks now if the cached results are stale, and returns
    /// whether the service is ready (200). For tests and for wiring readiness elsewhere.
    pub async fn is_ready(&self) -> bool {
        let snap = self.inner.snapshot().await;
        self.inner.verdict(&snap, &[]).serving()
    }
}

/// Paths served by [`Health::router`].
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) liveness: Vec<String>,
    pub(crate) readiness: String,
    pub(crate) startup: String,
}

impl Paths {
    /// What axum would refuse (it panics when the router is built) or route elsewhere:
    /// route syntax, a segment starting with `:` (axum 0.7's syntax, refused by 0.8), a
    /// path used twice, a path under the readiness path (its `/{name}` answers per check).
    fn validate(&self) -> Result<(), HealthConfigError> {
        let all: Vec<&String> = self
            .liveness
            .iter()
            .chain([&self.readiness, &self.startup])
            .collect();
        for path in &all {
            if !path.starts_with('/')
                || path.len() < 2
                || path.contains(['{', '}', '*', '?'])
                || path.split('/').any(|segment| segment.starts_with(':'))
            {
                return Err(HealthConfigError::InvalidPath(path.to_string()));
            }
        }
        let readiness_one = format!("{}/", self.readiness.trim_end_matches('/'));
        for (i, path) in all.iter().enumerate() {
            if all[..i].contains(path) || (*path != &self.readiness && path.starts_with(&readiness_one)) {
                return Err(HealthConfigError::PathClash(path.to_string()));
            }
        }
        Ok(())
    }
}

/// Longest `cache_for`, `refresh_every` and check timeout accepted: a day. Longer, and
/// readiness would no longer say anything about the present (and a refresh period near
/// `Duration::MAX` overflows the clock).
pub const MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for Paths {
    fn default() -> Self {
        Self {
            liveness: vec!["/healthz".into(), "/livez".into()],
            readiness: "/readyz".into(),
            startup: "/startupz".into(),
        }
    }
}

/// Builds a [`Health`]; see [`Health::builder`]. Problems are reported by
/// [`build`](Self::build), never later.
pub struct HealthBuilder {
    checks: Vec<(String, CheckSpec)>,
    startup: Vec<(String, CheckSpec)>,
    timeout: Duration,
    refresh: Refresh,
    paths: Paths,
    #[cfg(feature = "tonic")]
    grpc: Option<grpc::GrpcReporter>,
}

impl Default for HealthBuilder {
    fn default() -> Self {
        Self {
            checks: Vec::new(),
            startup: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            refresh: Refresh::OnDemand(DEFAULT_CACHE_FOR),
            paths: Paths::default(),
            #[cfg(feature = "tonic")]
            grpc: None,
        }
    }
}

impl fmt::Debug for HealthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthBuilder")
            .field("checks", &self.checks.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HealthBuilder {
    /// Registers a readiness check under `name` (unique, non-empty; used in responses,
    /// logs and the `check` metric label). Critical unless made
    /// [`non_critical`](ReadinessCheck::non_critical).
    pub fn check(mut self, name: impl Into<String>, check: impl IntoCheck) -> Self {
        self.checks.push((name.into(), check.into_check()));
        self
    }

    /// Registers a startup check: `/startupz` answers 200 once all of them have
    /// passed once (and never runs them again). Names share the namespace of
    /// readiness checks.
    pub fn startup_check(mut self, name: impl Into<String>, check: impl IntoCheck) -> Self {
        self.startup.push((name.into(), check.into_check()));
        self
    }

    /// Default timeout of each check (default 500 ms). Must be non-zero and at most
    /// [`MAX_REFRESH`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the checks on demand and caches the results for `ttl` (default 1 s).
    /// Must be non-zero and at most [`MAX_REFRESH`].
    pub fn cache_for(mut self, ttl: Duration) -> Self {
        self.refresh = Refresh::OnDemand(ttl);
        self
    }

    /// Runs the checks in a background task every `interval` instead; probes only read
    /// the latest results. [`build`](Self::build) must then be called inside a Tokio
    /// runtime. The task ends when the last `Health` clone (and router) is dropped.
    /// Must be non-zero and at most [`MAX_REFRESH`].
    ///
    /// Should the task stop early (its runtime was dropped, say `build` ran in a
    /// set-up runtime), readiness does not freeze at its last answer: once the results
    /// are older than two intervals plus the longest check timeout, probes run the
    /// checks themselves.
    pub fn refresh_every(mut self, interval: Duration) -> Self {
        self.refresh = Refresh::Background(interval);
        self
    }

    /// Liveness paths (default `/healthz` and `/livez`).
    pub fn liveness_paths<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.paths.liveness = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Readiness path (default `/readyz`; one check at `{path}/{name}`).
    pub fn readiness_path(mut self, path: impl Into<String>) -> Self {
        self.paths.readiness = path.into();
        self
    }

    /// Startup path (default `/startupz`).
    pub fn startup_path(mut self, path: impl Into<String>) -> Self {
        self.paths.startup = path.into();
        self
    }

    /// Feeds the gRPC Health Checking Protocol: the overall service `""` and each of
    /// `services` (e.g. `"orders.v1.Orders"`) are set to serving / not serving whenever
    /// readiness changes, and to not serving for good when draining starts (see
    /// [`Health::drain`] for exactly when). This needs the checks to run without HTTP
    /// probes, so a background refresh is started (every TTL, unless
    /// [`refresh_every`](Self::refresh_every) is set): call [`build`](Self::build)
    /// inside a Tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (reporter, grpc_health_service) = tonic_health::server::health_reporter();
    /// let health = telltale_health::Health::builder()
    ///     .grpc_reporter(reporter, ["orders.v1.Orders"])
    ///     .build()
    ///     .unwrap();
    /// // tonic::transport::Server::builder().add_service(grpc_health_service)...
    /// # let _ = (health, grpc_health_service); }
    /// ```
    #[cfg(feature = "tonic")]
    pub fn grpc_reporter<I, N>(mut self, reporter: tonic_health::server::HealthReporter, services: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        self.grpc = Some(grpc::GrpcReporter::new(reporter, services));
        self
    }

    /// Validates the configuration and builds the registry.
    pub fn build(self) -> Result<Health, HealthConfigError> {
        if self.timeout.is_zero() {
            return Err(HealthConfigError::ZeroDuration("timeout"));
        }
        if self.timeout > MAX_REFRESH {
            return Err(HealthConfigError::TooLong("timeout", MAX_REFRESH));
        }
        let interval = match self.refresh {
            Refresh::OnDemand(d) if d.is_zero() => {
                return Err(HealthConfigError::ZeroDuration("cache_for"));
            }
            Refresh::Background(d) if d.is_zero() => {
                return Err(HealthConfigError::ZeroDuration("refresh_every"));
            }
            Refresh::OnDemand(d) if d > MAX_REFRESH => {
                return Err(HealthConfigError::TooLong("cache_for", MAX_REFRESH));
            }
            Refresh::Background(d) if d > MAX_REFRESH => {
                return Err(HealthConfigError::TooLong("refresh_every", MAX_REFRESH));
            }
            Refresh::Background(d) => Some(d),
            Refresh::OnDemand(d) => {
                #[cfg(feature = "tonic")]
                let d = self.grpc.as_ref().map(|_| d);
                #[cfg(not(feature = "tonic"))]
                let d = {
                    let _ = d;
                    None
                };
                d
            }
        };
        let mut seen = HashSet::new();
        let mut entries = |list: Vec<(String, CheckSpec)>| -> Result<Vec<Entry>, HealthConfigError> {
            list.into_iter()
                .map(|(name, spec)| {
                    validate_name(&name)?;
                    if !seen.insert(name.clone()) {
                        return Err(HealthConfigError::DuplicateName(name));
                    }
                    let timeout = spec.timeout.unwrap_or(self.timeout);
                    if timeout.is_zero() {
                        return Err(HealthConfigError::ZeroDuration("check timeout"));
                    }
                    if timeout > MAX_REFRESH {
                        return Err(HealthConfigError::TooLong("check timeout", MAX_REFRESH));
                    }
                    Ok(Entry {
                        name: name.into(),
                        check: spec.check,
                        critical: spec.critical,
                        timeout,
                    })
                })
                .collect()
        };
        let checks = entries(self.checks)?;
        let startup = entries(self.startup)?;
        self.paths.validate()?;
        let handle = match interval {
            Some(_) => Some(tokio::runtime::Handle::try_current().map_err(|_| HealthConfigError::NoRuntime)?),
            None => None,
        };
        let inner = Arc::new(Inner::new(
            checks,
            startup,
            self.refresh,
            self.paths,
            #[cfg(feature = "tonic")]
            self.grpc,
        ));
        if let (Some(interval), Some(handle)) = (interval, handle) {
            registry::spawn_refresher(&inner, interval, &handle);
        }
        Ok(Health { inner })
    }
}

fn validate_name(name: &str) -> Result<(), HealthConfigError> {
    if name.is_empty() {
        return Err(HealthConfigError::EmptyName);
    }
    // Names appear in URLs (`/readyz/{name}`, `?exclude=`) and metric labels.
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(HealthConfigError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// A configuration mistake found by [`HealthBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthConfigError {
    /// A duration that must be positive is zero.
    ZeroDuration(&'static str),
    /// A check was registered with an empty name.
    EmptyName,
    /// A check name has characters other than ASCII letters, digits, `-`, `_`, `.`, `:`.
    InvalidName(String),
    /// Two checks share a name.
    DuplicateName(String),
    /// A path does not start with `/` or has route syntax in it (`{ } * ?`, or a segment
    /// starting with `:`).
    InvalidPath(String),
    /// A path is used twice, or lies under the readiness path, whose `/{name}` answers
    /// for one check.
    PathClash(String),
    /// A duration is longer than [`MAX_REFRESH`].
    TooLong(&'static str, Duration),
    /// `refresh_every` or a gRPC reporter needs a background task, but `build` was not
    /// called inside a Tokio runtime.
    NoRuntime,
}

impl fmt::Display for HealthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroDuration(what) => write!(f, "health: {what} must be greater than zero"),
            Self::EmptyName => f.write_str("health: a check name must not be empty"),
            Self::InvalidName(n) => write!(
                f,
                "health: check name {n:?} may only contain ASCII letters, digits, '-', '_', '.', ':'"
            ),
            Self::DuplicateName(n) => write!(f, "health: two checks are named {n:?}; names must be unique"),
            Self::InvalidPath(p) => write!(
                f,
                "health: path {p:?} must start with '/' and must not contain route syntax ({{ }} * ? or a segment starting with ':')"
            ),
            Self::PathClash(p) => write!(
                f,
                "health: path {p:?} is used twice, or lies under the readiness path (whose /{{name}} answers for one check); give each endpoint its own path"
            ),
            Self::TooLong(what, max) => write!(
                f,
                "health: {what} must be at most {}s (readiness older than that says nothing about now)",
                max.as_secs()
            ),
            Self::NoRuntime => f.write_str(
                "health: refresh_every and grpc_reporter start a background task; call build() inside a Tokio runtime",
            ),
        }
    }
}

impl std::error::Error for HealthConfigError {}

#[cfg(test)]
mod tests;
