//! An Alertmanager configuration (valid for Alertmanager 0.25) routing the generated alerts.
//!
//! ```
//! use telltale_slo::alertmanager;
//! use telltale_slo::spec::{ServiceSpec, Slo};
//!
//! let spec = ServiceSpec::builder("orders-api")
//!     .slo(Slo::availability("availability", 99.9))
//!     .build()
//!     .unwrap();
//! let yaml = alertmanager::alertmanager_yaml(&spec);
//! assert!(yaml.contains("mute_time_intervals"));
//! ```
//!
//! - `page` alerts go to the `page` receiver and are re-sent every 30 minutes while they
//!   fire (escalation by repetition: an unacknowledged page keeps paging);
//!   `ticket` alerts go to the `ticket` receiver every 12 hours; `warning` alerts to the
//!   `ticket` receiver once a day.
//! - Alerts are grouped by `service` and `slo`.
//! - A page inhibits tickets of the same service and SLO, and warnings of the same service.
//! - Tickets and warnings are muted during quiet hours (weekdays 20:00–08:00 UTC and
//!   weekends: `time_intervals` + `mute_time_intervals`); pages never are.
//! - Webhook URLs are placeholders on the reserved `.invalid` domain: replace them.

use crate::promql::eq;
use crate::spec::ServiceSpec;
use crate::yaml::Node;

/// Name of the quiet-hours time interval.
pub const QUIET_HOURS: &str = "quiet-hours";
/// Placeholder URL of the page receiver's webhook.
pub const PAGE_WEBHOOK_PLACEHOLDER: &str = "http://replace-me.invalid/page-webhook";
/// Placeholder URL of the ticket receiver's webhook.
pub const TICKET_WEBHOOK_PLACEHOLDER: &str = "http://replace-me.invalid/ticket-webhook";

fn strs(items: &[&str]) -> Node {
    Node::Seq(items.iter().map(|s| Node::str(*s)).collect())
}

fn receiver(name: &str, url: &str) -> Node {
    Node::map()
        .with_str("name", name)
        .with(
            "webhook_configs",
            Node::Seq(vec![
                Node::map()
                    .with_str("url", url)
                    .with("send_resolved", Node::plain("true"))
                    .build(),
            ]),
        )
        .build()
}

/// The configuration file.
pub fn alertmanager_yaml(spec: &ServiceSpec) -> String {
    let service = eq("service", &spec.service);
    let severity_route = |severity: &str, receiver: &str, wait: &str, repeat: &str, mute: bool| {
        let mut m = Node::map()
            .with("matchers", strs(&[&eq("severity", severity)]))
            .with_str("receiver", receiver)
            .with("group_wait", Node::plain(wait))
            .with("repeat_interval", Node::plain(repeat));
        if mute {
            m = m.with("mute_time_intervals", strs(&[QUIET_HOURS]));
        }
        m.build()
    };
    let route = Node::map()
        .with_str("receiver", "ticket")
        .with("group_by", strs(&["service", "slo"]))
        .with("group_wait", Node::plain("30s"))
        .with("group_interval", Node::plain("5m"))
        .with("repeat_interval", Node::plain("12h"))
        .with(
            "routes",
            Node::Seq(vec![
                Node::map()
                    .with("matchers", strs(&[&service]))
                    .with_str("receiver", "ticket")
                    .with(
                        "routes",
                        Node::Seq(vec![
                            severity_route("page", "page", "10s", "30m", false),
                            severity_route("ticket", "ticket", "1m", "12h", true),
                            severity_route("warning", "ticket", "5m", "24h", true),
                        ]),
                    )
                    .build(),
            ]),
        )
        .build();
    let inhibit = Node::Seq(vec![
        Node::map()
            .with("source_matchers", strs(&[&eq("severity", "page")]))
            .with("target_matchers", strs(&[&eq("severity", "ticket")]))
            .with("equal", strs(&["service", "slo"]))
            .build(),
        Node::map()
            .with("source_matchers", strs(&[&eq("severity", "page")]))
            .with("target_matchers", strs(&[&eq("severity", "warning")]))
            .with("equal", strs(&["service"]))
            .build(),
    ]);
    let times = |start: &str, end: &str| {
        Node::map()
            .with_str("start_time", start)
            .with_str("end_time", end)
            .build()
    };
    let time_intervals = Node::Seq(vec![
        Node::map()
            .with_str("name", QUIET_HOURS)
            .with(
                "time_intervals",
                Node::Seq(vec![
                    Node::map()
                        .with(
                            "times",
                            Node::Seq(vec![times("00:00", "08:00"), times("20:00", "24:00")]),
                        )
                        .build(),
                    Node::map()
                        .with("weekdays", strs(&["saturday", "sunday"]))
                        .build(),
                ]),
            )
            .build(),
    ]);
    let doc = Node::map()
        .with(
            "global",
            Node::map().with("resolve_timeout", Node::plain("5m")).build(),
        )
        .with("route", route)
        .with("inhibit_rules", inhibit)
        .with("time_intervals", time_intervals)
        .with(
            "receivers",
            Node::Seq(vec![
                receiver("page", PAGE_WEBHOOK_PLACEHOLDER),
                receiver("ticket", TICKET_WEBHOOK_PLACEHOLDER),
            ]),
        )
        .build();
    format!(
        "# Generated by telltale-slo for {}. Alertmanager 0.25.\n# REPLACE the placeholder webhook URLs (replace-me.invalid) with your paging and ticketing endpoints.\n# Quiet hours are in UTC.\n{}",
        spec.service,
        crate::yaml::to_string(&doc)
    )
}
