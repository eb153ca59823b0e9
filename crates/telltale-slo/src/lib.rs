//! SLOs as code: Prometheus recording and burn-rate alert rules, Alertmanager routes, Grafana dashboards and runbooks from one spec.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
