//! HTTP endpoints: liveness, readiness (all checks or one), startup.
//!
//! While draining, every readiness path answers 503 `draining` (`readyz check failed:
//! draining` with `?verbose`, `{"status":"draining"}` as JSON) without running the
//! checks: `/readyz` and `/readyz/{name}` alike, since load balancers may be pointed at
//! either. An unknown `{name}` is still 404. Liveness stays 200.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use crate::registry::{CheckResult, Inner, Verdict};

const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache, no-store, must-revalidate");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const WITHHELD: &str = "reason withheld";

pub(crate) fn router<S>(inner: Arc<Inner>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = Router::new();
    for path in &inner.paths.liveness {
        router = router.route(path, get(liveness));
    }
    let one = format!("{}/{{name}}", inner.paths.readiness.trim_end_matches('/'));
    router
        .route(&inner.paths.readiness, get(readiness))
        .route(&one, get(readiness_one))
        .route(&inner.paths.startup, get(startup))
        .with_state(inner)
}

/// What the prober asked for.
struct Ask {
    verbose: bool,
    json: bool,
    exclude: Vec<String>,
}

impl Ask {
    fn new(query: Option<&str>, headers: &HeaderMap) -> Self {
        let mut ask = Ask {
            verbose: false,
            json: headers
                .get_all(ACCEPT)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains("application/json"))),
            exclude: Vec::new(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "verbose" => ask.verbose = !matches!(value, "false" | "0"),
                // Bounded: a probe URL with thousands of excludes gets the first 64.
                "exclude" if ask.exclude.len() < 64 => ask.exclude.push(percent_decode(value)),
                _ => {}
            }
        }
        ask
    }
}

/// Check names are ASCII letters, digits and `-_.:`; a client may still encode them.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(status: StatusCode, json: bool, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, if json { JSON } else { TEXT });
    headers.insert(CACHE_CONTROL, NO_CACHE);
    headers.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    response
}

fn status_code(serving: bool) -> StatusCode {
    if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn liveness() -> Response {
    respond(StatusCode::OK, true, r#"{"status":"ok"}"#.to_string())
}

async fn readiness(
    State(inner): State<Arc<Inner>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ask = Ask::new(query.as_deref(), &headers);
    if inner.is_draining() {
        return draining(&ask);
    }

    let mut excluded = Vec::new();
    let mut unknown = Vec::new();
    for name in &ask.exclude {
        match inner.entries.iter().position(|e| &*e.name == name) {
            Some(i) => excluded.push(i),
            None => unknown.push(name.as_str()),
        }
    }
    if !unknown.is_empty() {
        // debug, not warn: a misconfigured probe would otherwise log on every probe.
        tracing::debug!(?unknown, "readyz: cannot exclude unknown checks");
    }

    let snap = inner.snapshot().await;
    let verdict = inner.verdict(&snap, &excluded);
    if verdict == Verdict::Draining {
        // It began while the checks ran.
        return draining(&ask);
    }
    let status = status_code(verdict.serving());

    if ask.json {
        let mut checks = Map::new();
        for (i, (entry, result)) in inner.entries.iter().zip(&snap.results).enumerate() {
            let mut detail = check_json(entry.critical, result, ask.verbose);
            if excluded.contains(&i) {
                detail["excluded"] = Value::Bool(true);
            }
            checks.insert(entry.name.to_string(), detail);
        }
        let mut body = json!({ "status": verdict.as_str(), "checks": checks });
        if !unknown.is_empty() {
            body["warnings"] = json!([unknown_warning(&unknown)]);
        }
        return respond(status, true, body.to_string());
    }

    let mut body = String::new();
    if ask.verbose || verdict == Verdict::Failed {
        for (i, (entry, result)) in inner.entries.iter().zip(&snap.results).enumerate() {
            if excluded.contains(&i) {
                let _ = writeln!(body, "[+]{} excluded: ok", entry.name);
            } else if ask.verbose || (!result.ok() && entry.critical) {
                line(
                    &mut body,
                    &entry.name,
                    result.error.as_ref().map(|e| e.message()),
                    ask.verbose,
                );
            }
        }
        if !unknown.is_empty() {
            let _ = writeln!(body, "{}", unknown_warning(&unknown));
        }
    }
    match (verdict, ask.verbose) {
        (Verdict::Ok, false) => body.push_str("ok"),
        (Verdict::Degraded, false) => body.push_str("degraded"),
        (Verdict::Ok, true) => body.push_str("readyz check passed"),
        (Verdict::Degraded, true) => body.push_str("readyz check degraded"),
        (Verdict::Failed, _) | (Verdict::Draining, _) => body.push_str("readyz check failed"),
    }
    respond(status, false, body)
}

async fn readiness_one(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ask = Ask::new(query.as_deref(), &headers);
    let Some(i) = inner.entries.iter().position(|e| *e.name == *name) else {
        return respond(
            StatusCode::NOT_FOUND,
            false,
            "no check with this name".to_string(),
        );
    };
    // A load balancer may probe one check instead of `/readyz`: it must stop sending
    // all the same. (kube-apiserver's `/readyz/<check>` reports only that check; a
    // draining process invites no traffic on any readiness path.)
    if inner.is_draining() {
        return draining(&ask);
    }
    let snap = inner.snapshot().await;
    if inner.is_draining() {
        // It began while the check ran.
        return draining(&ask);
    }
    let (entry, result) = (&inner.entries[i], &snap.results[i]);
    let status = status_code(result.ok());
    if ask.json {
        return respond(
            status,
            true,
            check_json(entry.critical, result, ask.verbose).to_string(),
        );
    }
    let mut body = String::new();
    line(
        &mut body,
        &entry.name,
        result.error.as_ref().map(|e| e.message()),
        ask.verbose,
    );
    body.push_str(if result.ok() { "ok" } else { "readyz check failed" });
    respond(status, false, body)
}

/// Every readiness answer while draining, `/readyz` and `/readyz/{name}` alike: 503
/// without asking the dependencies (the answer is 503 whatever they say). The word
/// `draining` is shown without `?verbose`: the withholding rule is for the reasons
/// checks give, which may name hosts and users; this one names nothing, and saying
/// `[-]db failed: reason withheld` instead would blame a check that did not fail.
fn draining(ask: &Ask) -> Response {
    let body = if ask.json {
        json!({ "status": Verdict::Draining.as_str() }).to_string()
    } else if ask.verbose {
        "readyz check failed: draining".to_string()
    } else {
        "draining".to_string()
    };
    respond(StatusCode::SERVICE_UNAVAILABLE, ask.json, body)
}

async fn startup(State(inner): State<Arc<Inner>>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let ask = Ask::new(query.as_deref(), &headers);
    match inner.startup().await {
        Ok(()) => {
            let body = if ask.json {
                r#"{"status":"ok"}"#.to_string()
            } else {
                "ok".to_string()
            };
            respond(StatusCode::OK, ask.json, body)
        }
        Err(failed) => {
            if ask.json {
                let checks: Map<String, Value> = failed
                    .iter()
                    .map(|(i, e)| {
                        let name = inner.startup[*i].name.to_string();
                        let error = if ask.verbose { e.message() } else { WITHHELD };
                        (name, json!({ "status": "failed", "error": error }))
                    })
                    .collect();
                let body = json!({ "status": "failed", "checks": checks }).to_string();
                return respond(StatusCode::SERVICE_UNAVAILABLE, true, body);
            }
            let mut body = String::new();
            for (i, e) in &failed {
                line(&mut body, &inner.startup[*i].name, Some(e.message()), ask.verbose);
            }
            body.push_str("startupz check failed");
            respond(StatusCode::SERVICE_UNAVAILABLE, false, body)
        }
    }
}

/// `[+]name ok` or `[-]name failed: reason` (the reason only when verbose: an
/// unauthenticated prober learns which check fails, not why).
fn line(body: &mut String, name: &str, error: Option<&str>, verbose: bool) {
    let _ = match error {
        None => writeln!(body, "[+]{name} ok"),
        Some(e) if verbose => writeln!(body, "[-]{name} failed: {}", e.replace('\n', " ")),
        Some(_) => writeln!(body, "[-]{name} failed: {WITHHELD}"),
    };
}

fn unknown_warning(unknown: &[&str]) -> String {
    let names: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
    format!(
        "warn: some health checks cannot be excluded: no matches for {}",
        names.join(", ")
    )
}

/// One check as JSON. The failure's reason only when `verbose`, as in the text answers:
/// asking for JSON must not be a way around withholding it.
fn check_json(critical: bool, result: &CheckResult, verbose: bool) -> Value {
    let error = result
        .error
        .as_ref()
        .map(|e| if verbose { e.message() } else { WITHHELD });
    json!({
        "status": if result.ok() { "ok" } else { "failed" },
        "critical": critical,
        "duration_ms": (result.duration.as_secs_f64() * 1e6).round() / 1e3,
        "error": error,
        "last_success": result.last_success.map(rfc3339),
        "checked_at": rfc3339(result.checked_at),
    })
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
