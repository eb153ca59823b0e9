//! Trace-context propagation: W3C `traceparent`/`tracestate`, W3C Baggage (and B3 and
//! Jaeger behind features).
