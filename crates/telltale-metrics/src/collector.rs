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
//! per scrape and writes them into the exposition, after the recorder's families, with
//! the same global labels.
//!
//! The text format wants every sample of a family together, under one `# HELP` and one
//! `# TYPE` line. Several collectors may write the same family (two connection pools),
//! so [`Exposition`] gathers the samples by family and writes each family once, whole, in
//! the order families were first written. Label values are escaped as the format
//! requires: `\` as `\\`, `"` as `\"`, a line feed as `\n`.

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

/// Writes families in the Prometheus text format, adding the global labels to every
/// sample. Samples are gathered by family and written when the scrape's collectors are
/// done, so a family's samples stay together whichever collector wrote them.
#[derive(Debug)]
pub struct Exposition<'a> {
    out: &'a mut String,
    global_labels: &'a str,
    /// In the order first written.
    families: Vec<FamilyText>,
}

#[derive(Debug)]
struct FamilyText {
    name: String,
    /// The `# HELP` and `# TYPE` lines; empty until [`Exposition::family`] is called.
    header: String,
    samples: String,
}

impl<'a> Exposition<'a> {
    pub(crate) fn new(out: &'a mut String, global_labels: &'a str) -> Self {
        Exposition {
            out,
            global_labels,
            families: Vec::new(),
        }
    }

    fn family_text(&mut self, name: &str) -> &mut FamilyText {
        // A scrape has a few dozen families at most: a scan beats a map here.
        let i = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(FamilyText {
                    name: name.to_owned(),
                    header: String::new(),
                    samples: String::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    /// Declares a family: its `# HELP` and `# TYPE` lines. A family declared again in the
    /// same scrape (two pools) keeps its first declaration; its samples all go under it.
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) {
        let family = self.family_text(name);
        if !family.header.is_empty() {
            return;
        }
        let kind = match kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = write!(family.header, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// Adds one sample of `name` with the global labels and `labels`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let global_labels = self.global_labels;
        let out = &mut self.family_text(name).samples;
        out.push_str(name);
        out.push('{');
        out.push_str(global_labels);
        let mut first = global_labels.is_empty();
        for (k, v) in labels {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_into(out, v);
            out.push('"');
        }
        let _ = writeln!(out, "}} {}", format_value(value));
    }

    /// Writes the gathered families, each whole.
    pub(crate) fn finish(self) {
        for f in self.families {
            self.out.push_str(&f.header);
            self.out.push_str(&f.samples);
        }
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
