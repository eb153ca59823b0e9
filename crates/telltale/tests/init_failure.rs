//! A refused `init` installs nothing global. Its own process: it sets process-wide
//! globals (a `metrics` recorder, the tracing subscriber, the OpenTelemetry provider).

use telltale::Telemetry;
use telltale_trace::opentelemetry::global;
use telltale_trace::opentelemetry::trace::{Span as _, Tracer as _};

/// Header names the global propagator injects (none until one is installed).
fn global_propagator_fields() -> usize {
    global::get_text_map_propagator(|p| p.fields().count())
}

fn global_span_records() -> bool {
    global::tracer("init-failure-test").start("probe").is_recording()
}

#[test]
fn a_refused_init_leaves_no_global_provider_and_a_later_init_installs_it() {
    // Something else got there first.
    metrics::set_global_recorder(metrics::NoopRecorder).expect("first recorder");
    assert!(!global_span_records(), "no provider before init");
    assert_eq!(global_propagator_fields(), 0);

    let err = Telemetry::builder("svc")
        .prometheus()
        .json_logs()
        .init()
        .expect_err("a recorder is already installed");
    assert!(err.to_string().contains("already installed"), "{err}");
    // Neither the subscriber nor the OpenTelemetry provider was installed; before the
    // fix both were: a provider that its guard, dropped with the error, had shut down.
    assert!(!tracing::dispatcher::has_been_set());
    assert!(!global_span_records());
    assert_eq!(global_propagator_fields(), 0, "no propagator installed either");

    // Without Prometheus the same configuration succeeds and installs both.
    let telemetry = Telemetry::builder("svc").json_logs().init().expect("init");
    assert!(tracing::dispatcher::has_been_set());
    assert!(global_span_records());
    assert!(
        global_propagator_fields() >= 3,
        "traceparent, tracestate, baggage"
    );

    // A second init is refused (the subscriber is taken) and leaves the first one's
    // provider in place: before the fix it replaced it with its own, shut down with the
    // error, and spans stopped recording.
    let err = Telemetry::builder("svc2")
        .json_logs()
        .init()
        .expect_err("a subscriber is already set");
    assert!(err.to_string().contains("already installed"), "{err}");
    assert!(
        global_span_records(),
        "the first init's provider is still the global one"
    );
    drop(telemetry);
}
