//! The `RUST_LOG` filter as installed: [`LogFilter`].
//!
//! ```
//! use telltale_log::filter::LogFilter;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! // Target and level directives only: served by `Targets`, no per-span bookkeeping.
//! let filter = LogFilter::parse("info,orders_api=debug").unwrap();
//! assert!(!filter.is_dynamic());
//! // A span directive needs `EnvFilter`.
//! assert!(LogFilter::parse("warn,[checkout]=debug").unwrap().is_dynamic());
//! assert!(LogFilter::parse("info,[[[").is_err());
//!
//! let subscriber = tracing_subscriber::registry().with(filter);
//! # let _ = subscriber;
//! ```
//!
//! # Why not always `EnvFilter`
//!
//! tracing-subscriber 0.3's `EnvFilter` takes a lock on its span table in `on_new_span`,
//! `on_enter`, `on_exit` and `on_close`, **even when no directive names a span or a
//! field**. Those callbacks run several times per request: the request span is entered
//! on every poll of the response future and of the body. Together with a cheaper
//! exemplar lookup in telltale-metrics, skipping them took 55–70 ns per request off
//! telltale's `server_layer()` (docs/performance.md, session 5).
//!
//! Most filters (`info`, `info,sqlx=warn`) are plain `target=level` lists. For them
//! [`LogFilter`] uses tracing-subscriber's own [`Targets`]. `Targets` parses the same
//! static directives into the same matcher that `EnvFilter` uses for them, so the two
//! enable exactly the same events and spans. A filter with a span or field directive
//! (`[span]`, `[{field=value}]`) gets `EnvFilter`, unchanged.
//!
//! Where `Targets`' parser reads the text differently, the directives are first put the
//! way `EnvFilter` reads them: an empty directive (`info,`, `info,,app=debug`, a stray
//! comma in `RUST_LOG`) is ignored, as `EnvFilter` ignores it (`Targets` alone would read
//! it as a global `error`, turning `info,` into errors only), and `target=` with no level
//! means `target=trace`.
//!
//! # Trace ids at every level
//!
//! The spans that carry a request's, a job run's or a call's trace ids (target
//! [`SPAN_TARGET`], made by telltale-trace at INFO) are kept whatever the directives say,
//! unless they turn logging off altogether. They write no line of their own. Without them
//! a filter such as `warn` would drop the request span, and every WARN and ERROR line of
//! a request, its access line included, would have `trace_id: null`: the lines an on-call
//! engineer most needs to follow to a trace. With a filter of your own instead of
//! `LogFilter`, add the directive `telltale_trace=info` for the same effect.
//!
//! ```
//! use telltale_core::trace_ids::SPAN_TARGET;
//! use telltale_log::filter::LogFilter;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(LogFilter::parse("warn").unwrap());
//! tracing::subscriber::with_default(subscriber, || {
//!     assert!(tracing::info_span!(target: "app", "checkout").is_disabled());
//!     assert!(!tracing::info_span!(target: SPAN_TARGET, "request").is_disabled());
//! });
//! ```

use std::borrow::Cow;
use std::fmt;

use tracing::level_filters::LevelFilter;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};

use telltale_core::trace_ids::SPAN_TARGET;

/// A global filter layer built from `RUST_LOG` syntax; see the [module docs](self).
pub struct LogFilter(Inner);

// Both boxed: `Targets` is about 500 bytes (its directives inline), `EnvFilter` 1,800.
enum Inner {
    Static(Box<Targets>),
    Dynamic(Box<EnvFilter>),
}

impl LogFilter {
    /// Parses `directives` (`EnvFilter` syntax). An invalid directive is an error, not
    /// skipped: the message is `EnvFilter`'s. Empty directives (`info,`) are ignored, as
    /// `EnvFilter` ignores them.
    pub fn parse(directives: &str) -> Result<LogFilter, tracing_subscriber::filter::ParseError> {
        // `EnvFilter` validates the whole syntax (and is the fallback for anything
        // `Targets` cannot parse).
        let env = EnvFilter::builder().parse(directives)?;
        if directives.contains('[') {
            return Ok(LogFilter(Inner::Dynamic(Box::new(env))));
        }
        Ok(LogFilter(match static_directives(directives) {
            Some(targets) => Inner::Static(Box::new(targets)),
            None => Inner::Dynamic(Box::new(env)),
        }))
    }

    /// Whether the filter has span or field directives (and so uses `EnvFilter`).
    pub fn is_dynamic(&self) -> bool {
        matches!(self.0, Inner::Dynamic(_))
    }
}

/// `directives` (with no span or field directive) as `Targets`, read as `EnvFilter` reads
/// them; `None` if `Targets` cannot parse them.
fn static_directives(directives: &str) -> Option<Targets> {
    let directives: Vec<Cow<'_, str>> = directives
        .split(',')
        // `EnvFilter` skips empty directives; `Targets` would read each as a global `error`.
        .filter(|d| !d.is_empty())
        .map(|d| match d.strip_suffix('=') {
            // `EnvFilter` reads `target=` as `target=trace`; `Targets` as `target=error`.
            Some(target) if !target.contains('=') => Cow::Owned(format!("{target}=trace")),
            _ => Cow::Borrowed(d),
        })
        .collect();
    if directives.is_empty() {
        // Nothing left: `EnvFilter` enables nothing either.
        return Some(Targets::new());
    }
    directives.join(",").parse().ok()
}

impl fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Static(t) => f.debug_tuple("LogFilter").field(t).finish(),
            Inner::Dynamic(e) => f.debug_tuple("LogFilter").field(e).finish(),
        }
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Static(t) => {
                let mut first = true;
                for (target, level) in t.iter() {
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{target}={level}")?;
                }
                if let Some(level) = t.default_level() {
                    if !first {
                        f.write_str(",")?;
                    }
                    write!(f, "{level}")?;
                }
                Ok(())
            }
            Inner::Dynamic(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl LogFilter {
    /// Whether `metadata` is a span that carries trace ids (see "Trace ids at every level"),
    /// kept unless the filter turns logging off.
    fn keeps_ids_span(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_span() && metadata.target() == SPAN_TARGET && self.hint() != Some(LevelFilter::OFF)
    }

    fn hint(&self) -> Option<LevelFilter> {
        match &self.0 {
            Inner::Static(t) => <Targets as Layer<tracing_subscriber::Registry>>::max_level_hint(t),
            Inner::Dynamic(e) => <EnvFilter as Layer<tracing_subscriber::Registry>>::max_level_hint(e),
        }
    }
}

/// Forwards to the chosen filter, but for the spans that carry trace ids (see "Trace ids
/// at every level"). `Targets` only filters (`register_callsite`, `enabled`,
/// `max_level_hint`); the span callbacks matter to `EnvFilter` alone.
impl<S: Subscriber> Layer<S> for LogFilter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Asked first even for the spans kept anyway: `EnvFilter` registers span
        // callsites here, so a `[request]=debug` directive still matches inside them.
        let interest = match &self.0 {
            Inner::Static(t) => <Targets as Layer<S>>::register_callsite(t, metadata),
            Inner::Dynamic(e) => <EnvFilter as Layer<S>>::register_callsite(e, metadata),
        };
        if self.keeps_ids_span(metadata) {
            Interest::always()
        } else {
            interest
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // At least INFO, the spans' level, so their callsites are not turned off before
        // `register_callsite` is asked. Other INFO callsites then cost one cached
        // `Interest::never` check each.
        match self.hint() {
            Some(LevelFilter::OFF) => Some(LevelFilter::OFF),
            Some(level) => Some(level.max(LevelFilter::INFO)),
            None => None,
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        if self.keeps_ids_span(metadata) {
            return true;
        }
        match &self.0 {
            Inner::Static(t) => Layer::<S>::enabled(t, metadata, ctx),
            Inner::Dynamic(e) => Layer::<S>::enabled(e, metadata, ctx),
        }
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        match &self.0 {
            Inner::Static(t) => Layer::<S>::event_enabled(t, event, ctx),
            Inner::Dynamic(e) => Layer::<S>::event_enabled(e, event, ctx),
        }
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if let Inner::Dynamic(e) = &self.0 {
            Layer::<S>::on_new_span(e, attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Inner::Dynamic(e) = &self.0 {
            Layer::<S>::on_record(e, id, values, ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Inner::Dynamic(e) = &self.0 {
            Layer::<S>::on_enter(e, id, ctx);
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Inner::Dynamic(e) = &self.0 {
            Layer::<S>::on_exit(e, id, ctx);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if let Inner::Dynamic(e) = &self.0 {
            Layer::<S>::on_close(e, id, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CaptureWriter;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// The events each filter lets through, from the same program, written by the JSON
    /// layer: `Targets` and `EnvFilter` must agree on every static directive.
    fn seen(filter: impl Layer<tracing_subscriber::Registry> + Send + Sync + 'static) -> Vec<String> {
        let capture = CaptureWriter::new();
        let layer = crate::LogConfig::new("svc").json_layer(capture.clone()).unwrap();
        let subscriber = tracing_subscriber::registry().with(filter).with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "app", "app trace");
            tracing::debug!(target: "app", "app debug");
            tracing::info!(target: "app", "app info");
            tracing::debug!(target: "app::db", "app::db debug");
            tracing::warn!(target: "app::db", "app::db warn");
            tracing::info!(target: "application", "application info");
            tracing::info!(target: "sqlx::query", "sqlx info");
            tracing::error!(target: "sqlx::query", "sqlx error");
            let span = tracing::info_span!(target: "app", "checkout");
            span.in_scope(|| tracing::debug!(target: "other", "other debug in checkout"));
        });
        capture
            .json_lines()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn static_directives_use_targets_and_enable_what_env_filter_enables() {
        for directives in [
            "info",
            "warn,app=debug",
            "app::db=warn,app=trace",
            "error,sqlx=off,app=info",
            "app",
            "off",
            "trace",
            "info,app[{user}]=debug", // field names: `[` keeps EnvFilter
        ] {
            let ours = LogFilter::parse(directives).unwrap();
            assert_eq!(ours.is_dynamic(), directives.contains('['), "{directives}");
            let env = EnvFilter::builder().parse(directives).unwrap();
            assert_eq!(seen(ours), seen(env), "{directives}");
        }
    }

    #[test]
    fn empty_directives_are_ignored_as_env_filter_ignores_them() {
        // A stray comma in RUST_LOG: `Targets` alone reads an empty directive as a global
        // `error`, so `info,` logged errors only.
        for directives in [
            "info,",
            "warn,",
            "debug,",
            ",info",
            "info,,app=debug",
            "info,app=debug,",
            ",app=debug",
            "error,,",
            "info,app=warn,,",
            "trace,app::db=off,",
            ",",
            ",,",
            "",
            // `target=` with no level: `EnvFilter` reads it as `trace`.
            "app=",
            "warn,app=",
            "app=,info",
        ] {
            let ours = LogFilter::parse(directives).unwrap();
            assert!(!ours.is_dynamic(), "{directives:?} stays on the fast path");
            let env = EnvFilter::builder().parse(directives).unwrap();
            assert_eq!(seen(ours), seen(env), "{directives:?}");
        }
        // The case from the report: errors and infos both logged.
        let seen = seen(LogFilter::parse("info,").unwrap());
        assert!(
            seen.contains(&"app info".to_owned()) && seen.contains(&"sqlx error".to_owned()),
            "{seen:?}"
        );
    }

    #[test]
    fn span_directives_keep_env_filter_and_work() {
        let filter = LogFilter::parse("warn,[checkout]=debug").unwrap();
        assert!(filter.is_dynamic());
        let seen = seen(filter);
        assert!(seen.contains(&"other debug in checkout".to_owned()), "{seen:?}");
        assert!(!seen.contains(&"app info".to_owned()), "{seen:?}");
    }

    #[test]
    fn invalid_directives_are_errors() {
        for bad in ["info,[[[", "app=loud", "a=b=c"] {
            assert!(LogFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_round_trips_through_parse() {
        let filter = LogFilter::parse("warn,app=debug,app::db=error").unwrap();
        let again = LogFilter::parse(&filter.to_string()).unwrap();
        assert!(!again.is_dynamic());
        assert_eq!(seen(filter), seen(again));
    }

    #[test]
    fn spans_that_carry_trace_ids_are_kept_at_every_level_but_off() {
        for (directives, kept) in [
            ("warn", true),
            ("error,sqlx=off", true),
            ("error,[checkout]=debug", true), // EnvFilter
            ("warn,[request]=debug", true),   // a directive naming the ids span itself
            ("info", true),
            ("off", false),
        ] {
            let capture = CaptureWriter::new();
            let layer = crate::LogConfig::new("svc").json_layer(capture.clone()).unwrap();
            let filter = LogFilter::parse(directives).unwrap();
            let subscriber = tracing_subscriber::registry().with(filter).with(layer);
            tracing::subscriber::with_default(subscriber, || {
                let ids = tracing::info_span!(target: SPAN_TARGET, "request", request_id = "r-1");
                assert_eq!(!ids.is_disabled(), kept, "{directives}");
                ids.in_scope(|| {
                    tracing::error!(target: "app", "failed");
                    tracing::debug!(target: "app", "detail");
                });
                if directives != "info" {
                    // Other spans still follow the directives.
                    assert!(
                        tracing::info_span!(target: "app", "other").is_disabled(),
                        "{directives}"
                    );
                }
            });
            let lines = capture.json_lines().unwrap();
            if kept {
                // `[request]=debug` also lets the DEBUG line inside the span through.
                let want = if directives.contains("[request]") { 2 } else { 1 };
                assert_eq!(lines.len(), want, "{directives}: {lines:?}");
                assert_eq!(lines[0]["request_id"], "r-1", "{directives}");
            } else {
                assert!(lines.is_empty(), "{directives}: {lines:?}");
            }
        }
    }
}
