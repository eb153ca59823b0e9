//! The `/metrics` text as a strict Prometheus parser reads it: families whole, label
//! values escaped the same way by the exporter and by our scrape-time collectors.

mod common;

use common::{ParsedSample, parse_text_format};
use telltale_metrics::collector::{Exposition, MetricKind};
use telltale_metrics::names::{labels as l, saturation};
use telltale_metrics::saturation::{PoolStats, pool, queue};
use telltale_metrics::{ClientMetrics, PrometheusConfig};

fn family<'a>(samples: &'a [ParsedSample], name: &str) -> Vec<&'a ParsedSample> {
    samples.iter().filter(|s| s.name == name).collect()
}

/// Two pools and two queues write the same families: each family must come out once,
/// with all its samples together, or Prometheus rejects the whole scrape.
#[test]
fn two_pools_make_one_contiguous_family_each() {
    let prom = PrometheusConfig::new("svc").build().unwrap();
    let handle = prom.handle();
    let stats = |used| {
        move || PoolStats {
            used,
            idle: 1,
            pending: 0,
            max: Some(10),
        }
    };
    handle.register_collector(pool("primary", stats(3)));
    handle.register_collector(pool("replica", stats(5)));
    handle.register_collector(queue("emails", || 2, Some(100)));
    handle.register_collector(queue("webhooks", || 4, Some(50)));
    // A collector that writes a sample before declaring its family, and then again.
    handle.register_collector(|out: &mut Exposition<'_>| {
        out.sample("late_declared", &[("k", "a")], 1.0);
        out.family(
            "late_declared",
            MetricKind::Gauge,
            "Declared after its first sample.",
        );
        out.sample("late_declared", &[("k", "b")], 2.0);
    });
    let text = handle.render();
    let samples = parse_text_format(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let usage = family(&samples, saturation::DB_CLIENT_CONNECTIONS_USAGE);
    let pools: Vec<(&str, &str, f64)> = usage
        .iter()
        .map(|s| (s.label("pool_name").unwrap(), s.label("state").unwrap(), s.value))
        .collect();
    assert_eq!(
        pools,
        [
            ("primary", "used", 3.0),
            ("primary", "idle", 1.0),
            ("replica", "used", 5.0),
            ("replica", "idle", 1.0)
        ]
    );
    assert_eq!(family(&samples, saturation::DB_CLIENT_CONNECTIONS_MAX).len(), 2);
    assert_eq!(family(&samples, saturation::QUEUE_DEPTH).len(), 2);
    assert_eq!(family(&samples, saturation::QUEUE_CAPACITY).len(), 2);
    assert_eq!(family(&samples, "late_declared").len(), 2);
    for name in [saturation::DB_CLIENT_CONNECTIONS_USAGE, "late_declared"] {
        assert_eq!(
            text.matches(&format!("# TYPE {name} gauge\n")).count(),
            1,
            "{text}"
        );
        // The declaration comes before the family's first sample.
        let first_sample = text.find(&format!("\n{name}{{")).unwrap();
        assert!(
            text.find(&format!("# TYPE {name} ")).unwrap() < first_sample,
            "{text}"
        );
    }
}

/// A value with every character the text format escapes, and the sequences a lazy
/// escaper gets wrong (`\\`, `\"`, a trailing backslash).
const HOSTILE: &str = "a\\b\\\\c\"d\\\"e\nf}g,h=\"i\\";

/// Label values come back exactly as given, whoever wrote the series: the exporter
/// (global labels, build_info, dependency metrics) or our collectors (pool, queue).
#[test]
fn hostile_label_values_round_trip_through_exporter_and_collectors() {
    let prom = PrometheusConfig::new(HOSTILE)
        .environment(HOSTILE)
        .version(HOSTILE)
        .commit(HOSTILE)
        .build()
        .unwrap();
    let handle = prom.handle();
    handle.register_collector(pool(HOSTILE, PoolStats::default));
    handle.register_collector(queue(HOSTILE, || 1, None));
    let deps = ClientMetrics::with_options(HOSTILE, prom.recorder(), 100).unwrap();
    deps.record(
        &http::Method::GET,
        HOSTILE,
        Ok(http::StatusCode::OK),
        std::time::Duration::from_millis(3),
    );
    let text = handle.render();
    let samples = parse_text_format(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let by = |name: &str| {
        samples
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    let build_info = by("build_info");
    let usage = by(saturation::DB_CLIENT_CONNECTIONS_USAGE);
    let depth = by(saturation::QUEUE_DEPTH);
    let client = by("http_client_request_duration_seconds_count");
    for s in [build_info, usage, depth, client] {
        for key in [l::SERVICE, l::ENVIRONMENT, l::VERSION] {
            assert_eq!(s.label(key), Some(HOSTILE), "{key} of {}:\n{text}", s.name);
        }
    }
    assert_eq!(build_info.label(l::COMMIT), Some(HOSTILE), "{text}");
    assert_eq!(usage.label(saturation::POOL_NAME), Some(HOSTILE), "{text}");
    assert_eq!(depth.label(saturation::QUEUE), Some(HOSTILE), "{text}");
    assert_eq!(client.label(l::PEER_SERVICE), Some(HOSTILE), "{text}");
    assert_eq!(client.label(l::SERVER_ADDRESS), Some(HOSTILE), "{text}");
    // Both halves write the global labels identically, byte for byte.
    let prefix = |line_start: &str| {
        let line = text.lines().find(|l| l.starts_with(line_start)).unwrap();
        line[line.find('{').unwrap()..line.find(",state=").unwrap_or(line.len())].to_owned()
    };
    let exporter = prefix("build_info{");
    let collector = prefix("db_client_connections_usage{");
    let globals = &collector[..collector.find(",pool_name=").unwrap()];
    assert!(exporter.starts_with(globals), "{exporter}\n{globals}");
}
