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
//!
//! [`ProcessSnapshot`] is the same reading (CPU split into user and system, and virtual
//! memory too) for other exporters: the facade's OTLP push sends it under the
//! semantic-convention names (`process.cpu.time`, `process.memory.usage`, …).

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

/// One reading of the process's figures, for exporters other than `/metrics` (the OTLP
/// push reads one per export). A figure the system does not offer is `None`; off Linux,
/// all are.
///
/// ```
/// use telltale_metrics::process::ProcessSnapshot;
///
/// let now = ProcessSnapshot::read();
/// # #[cfg(target_os = "linux")]
/// assert!(now.resident_bytes.is_some_and(|b| b > 0.0));
/// # #[cfg(target_os = "linux")]
/// assert!(now.threads.is_some_and(|t| t >= 1.0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct ProcessSnapshot {
    /// CPU time spent in user mode, in seconds.
    pub cpu_user_seconds: Option<f64>,
    /// CPU time spent in the kernel on the process's behalf, in seconds.
    pub cpu_system_seconds: Option<f64>,
    /// OS threads.
    pub threads: Option<f64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    /// Resident memory (RSS), in bytes.
    pub resident_bytes: Option<f64>,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<f64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<f64>,
}

impl ProcessSnapshot {
    /// Reads `/proc/self/{stat,status,limits,fd}` and `/proc/stat` now.
    pub fn read() -> Self {
        if !cfg!(target_os = "linux") {
            return ProcessSnapshot::default();
        }
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let stat = read("/proc/self/stat").as_deref().and_then(parse_stat);
        let boot = read("/proc/stat").as_deref().and_then(|s| kv_number(s, "btime"));
        let status = read("/proc/self/status");
        let kib = |key: &str| {
            status
                .as_deref()
                .and_then(|s| kv_number(s, key))
                .map(|kb| kb * 1024.0)
        };
        ProcessSnapshot {
            cpu_user_seconds: stat.as_ref().map(|s| s.user_seconds),
            cpu_system_seconds: stat.as_ref().map(|s| s.system_seconds),
            threads: stat.as_ref().map(|s| s.threads),
            start_time_seconds: stat
                .as_ref()
                .zip(boot)
                .map(|(s, btime)| btime + s.start_ticks / USER_HZ),
            resident_bytes: kib("VmRSS:"),
            virtual_bytes: kib("VmSize:"),
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64),
            max_fds: read("/proc/self/limits")
                .as_deref()
                .and_then(|s| kv_number(s, "Max open files")),
        }
    }
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Stat {
    pub(crate) user_seconds: f64,
    pub(crate) system_seconds: f64,
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
        user_seconds: field(14)? / USER_HZ,
        system_seconds: field(15)? / USER_HZ,
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
        let now = ProcessSnapshot::read();
        if let Some(cpu) = now
            .cpu_user_seconds
            .zip(now.cpu_system_seconds)
            .map(|(u, s)| u + s)
        {
            out.family(
                meta::PROCESS_CPU_SECONDS_TOTAL,
                MetricKind::Counter,
                "Total user and system CPU time spent in seconds.",
            );
            out.sample(meta::PROCESS_CPU_SECONDS_TOTAL, &[], cpu);
        }
        let mut gauge = |name: &str, help: &str, value: Option<f64>| {
            if let Some(v) = value {
                out.family(name, MetricKind::Gauge, help);
                out.sample(name, &[], v);
            }
        };
        gauge(
            meta::PROCESS_THREADS,
            "Number of OS threads in the process.",
            now.threads,
        );
        gauge(
            meta::PROCESS_START_TIME_SECONDS,
            "Start time of the process since unix epoch in seconds.",
            now.start_time_seconds,
        );
        gauge(
            meta::PROCESS_RESIDENT_MEMORY_BYTES,
            "Resident memory size in bytes.",
            now.resident_bytes,
        );
        gauge(
            meta::PROCESS_OPEN_FDS,
            "Number of open file descriptors.",
            now.open_fds,
        );
        gauge(
            meta::PROCESS_MAX_FDS,
            "Maximum number of open file descriptors.",
            now.max_fds,
        );
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
                user_seconds: 2.5,
                system_seconds: 0.5,
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
