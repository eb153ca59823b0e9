//! Process metrics read from `/proc` at scrape time (feature `process`, Linux).
//!
//! ```
//! use telltale_metrics::{process::ProcessCollector, PrometheusConfig};
//!
//! let prom = PrometheusConfig::new("svc").build().unwrap();
//! prom.handle().register_collector(ProcessCollector::new());
//! # #[cfg(target_os = "linux")]
//! assert!(prom.handle().render().contains("process_resident_memory_bytes{service=\"svc\"}"));
//! ```
//!
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_threads` and `process_start_time_seconds`: the names and
//! meanings of the Prometheus client libraries' process collector, so existing
//! dashboards work. Read with plain file reads, no dependency: crates that offer this
//! (`metrics-process`) update facade gauges on a timer instead of at scrape time. CPU
//! times are in clock ticks of `USER_HZ`, which Linux fixes at 100 on every mainstream
//! architecture. On other systems the collector writes nothing.

use crate::collector::{Collector, Exposition, MetricKind};
use crate::names::meta;

/// Collects process metrics; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector(());

impl ProcessCollector {
    /// The collector.
    pub const fn new() -> Self {
        ProcessCollector(())
    }
}

const USER_HZ: f64 = 100.0;

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Stat {
    pub(crate) cpu_seconds: f64,
    pub(crate) threads: f64,
    pub(crate) start_ticks: f64,
}

/// Parses `/proc/self/stat` (the command name may contain spaces and parentheses).
pub(crate) fn parse_stat(s: &str) -> Option<Stat> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields are numbered from 1; `rest` starts at field 3 (state).
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        threads: field(20)?,
        start_ticks: field(22)?,
    })
}

fn kv_number(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

impl Collector for ProcessCollector {
    fn collect(&self, out: &mut Exposition<'_>) {
        if !cfg!(target_os = "linux") {
            return;
        }
        let read = |p: &str| std::fs::read_to_string(p).ok();
        if let Some(stat) = read("/proc/self/stat").as_deref().and_then(parse_stat) {
            out.family(
                meta::PROCESS_CPU_SECONDS_TOTAL,
                MetricKind::Counter,
                "Total user and system CPU time spent in seconds.",
            );
            out.sample(meta::PROCESS_CPU_SECONDS_TOTAL, &[], stat.cpu_seconds);
            out.family(
                meta::PROCESS_THREADS,
                MetricKind::Gauge,
                "Number of OS threads in the process.",
            );
            out.sample(meta::PROCESS_THREADS, &[], stat.threads);
            if let Some(btime) = read("/proc/stat").as_deref().and_then(|s| kv_number(s, "btime")) {
                out.family(
                    meta::PROCESS_START_TIME_SECONDS,
                    MetricKind::Gauge,
                    "Start time of the process since unix epoch in seconds.",
                );
                out.sample(
                    meta::PROCESS_START_TIME_SECONDS,
                    &[],
                    btime + stat.start_ticks / USER_HZ,
                );
            }
        }
        if let Some(kb) = read("/proc/self/status")
            .as_deref()
            .and_then(|s| kv_number(s, "VmRSS:"))
        {
            out.family(
                meta::PROCESS_RESIDENT_MEMORY_BYTES,
                MetricKind::Gauge,
                "Resident memory size in bytes.",
            );
            out.sample(meta::PROCESS_RESIDENT_MEMORY_BYTES, &[], kb * 1024.0);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            out.family(
                meta::PROCESS_OPEN_FDS,
                MetricKind::Gauge,
                "Number of open file descriptors.",
            );
            out.sample(meta::PROCESS_OPEN_FDS, &[], dir.count() as f64);
        }
        if let Some(max) = read("/proc/self/limits")
            .as_deref()
            .and_then(|s| kv_number(s, "Max open files"))
        {
            out.family(
                meta::PROCESS_MAX_FDS,
                MetricKind::Gauge,
                "Maximum number of open file descriptors.",
            );
            out.sample(meta::PROCESS_MAX_FDS, &[], max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name_parses() {
        let line =
            "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 5000 1000 200";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                cpu_seconds: 3.0,
                threads: 7.0,
                start_ticks: 5000.0
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn limits_line_parses() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(kv_number(limits, "Max open files"), Some(1024.0));
    }
}
