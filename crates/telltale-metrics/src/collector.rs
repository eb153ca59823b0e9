//! Metrics sampled when `/metrics` is scraped: [`Collector`]s registered on a
//! [`MetricsHandle`](crate::MetricsHandle).
//!
//! ```
//! use telltale_metrics::collector::{Collector, Exposition, MetricKind};
//! use telltale_metrics::PrometheusConfig;
//!
//! struct Answer;
//! impl Collector for Answer {
//!     fn collect(&self, out: &mut Exposition<'_>) {
//!         out.family("answer", MetricKind::Gauge, "The answer.");
//!         out.sample("answer", &[], 42.0);
//!     }
//! }
//!
//! let prom = PrometheusConfig::new("svc").build().unwrap();
//! prom.handle().register_collector(Answer);
//! assert!(prom.handle().render().contains("answer{service=\"svc\"} 42\n"));
//! ```
//!
//! Why not gauges in the `metrics` facade? Process, runtime and pool figures are cheap to
//! read but pointless to update between scrapes, and some are float counters (CPU
//! seconds) that the facade's integer counters cannot hold. A collector reads them once
//! per scrape and writes them straight into the exposition, after the recorder's
//! families, with the same global labels.

use std::fmt::Write as _;

/// The type line of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
}

/// Sampled at scrape time; see the [module docs](self).
pub trait Collector: Send + Sync + 'static {
    /// Writes this collector's families.
    fn collect(&self, out: &mut Exposition<'_>);
}

impl<F> Collector for F
where
    F: Fn(&mut Exposition<'_>) + Send + Sync + 'static,
{
    fn collect(&self, out: &mut Exposition<'_>) {
        self(out)
    }
}

/// Writes families in the Prometheus text format, adding the global labels to every sample.
#[derive(Debug)]
pub struct Exposition<'a> {
    out: &'a mut String,
    global_labels: &'a str,
    written: Vec<String>,
}

impl<'a> Exposition<'a> {
    pub(crate) fn new(out: &'a mut String, global_labels: &'a str) -> Self {
        Exposition {
            out,
            global_labels,
            written: Vec::new(),
        }
    }

    /// Writes the `# HELP` and `# TYPE` lines of a family; call before its samples. A
    /// family already written in this scrape (two pools) is not written twice.
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) {
        if self.written.iter().any(|w| w == name) {
            return;
        }
        self.written.push(name.to_owned());
        let kind = match kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// Writes one sample of `name` with the global labels and `labels`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.out.push('{');
        self.out.push_str(self.global_labels);
        let mut first = self.global_labels.is_empty();
        for (k, v) in labels {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_into(self.out, v);
            self.out.push('"');
        }
        let _ = writeln!(self.out, "}} {}", format_value(value));
    }
}

pub(crate) fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        v.to_string()
    }
}

/// Renders `k="v",...` for the global labels.
pub(crate) fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        escape_into(&mut s, v);
        s.push('"');
    }
    s
}
