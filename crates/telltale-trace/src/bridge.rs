//! Optional: `tracing` spans as OpenTelemetry spans, through `tracing-opentelemetry`.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! use telltale_trace::TracingConfig;
//!
//! let (tracing, _guard) = TracingConfig::new("svc").set_global(false).build().unwrap();
//! let subscriber = tracing_subscriber::registry().with(tracing.tracing_layer());
//! # drop(subscriber);
//! ```
//!
//! telltale's own server/client layers do not need this: their spans are made directly.
//! Add it when the application's `#[instrument]`/`info_span!` spans should appear in the
//! traces. The layer:
//! - skips telltale's request spans (target [`SPAN_TARGET`]),
//!   so a request is never exported twice (the bridged span's parent is found through the
//!   OpenTelemetry context telltale attaches while the handler runs);
//! - puts [`TraceIds`] into each bridged span's extensions, so log lines inside it carry
//!   that span's id.
//!
//! The bridge costs what `tracing-opentelemetry` costs for every span it sees (see
//! `docs/perf/trace.md`); it is opt-in for that reason.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use telltale_core::trace_ids::TraceIds;
use tracing::Subscriber;
use tracing::span::Id;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::names::SPAN_TARGET;

/// The bridge layer over `provider` (see the [module docs](self)).
pub fn bridge_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("telltale-trace-bridge"))
        .with_filter(filter_fn(|meta| meta.target() != SPAN_TARGET))
        .and_then(BridgeIds)
}

/// Copies a bridged span's OpenTelemetry ids into [`TraceIds`] for the logs.
#[derive(Debug, Clone, Copy)]
struct BridgeIds;

impl<S> Layer<S> for BridgeIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // On first enter rather than on creation: a span is created inside the dispatcher's
    // `get_default`, where the dispatcher (needed to ask tracing-opentelemetry for the
    // span's context) is not reachable; entering goes through the span's own handle.
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(data) = ctx.span(id) else { return };
        if data.metadata().target() == SPAN_TARGET || data.extensions().get::<TraceIds>().is_some() {
            return;
        }
        drop(data);
        let cx = tracing::dispatcher::get_default(|d| tracing_opentelemetry::get_otel_context(id, d));
        let Some(cx) = cx else { return };
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let ids = TraceIds::new(
            u128::from_be_bytes(sc.trace_id().to_bytes()),
            u64::from_be_bytes(sc.span_id().to_bytes()),
            sc.is_sampled(),
        );
        if let Some(data) = ctx.span(id) {
            data.extensions_mut().replace(ids);
        }
    }
}
