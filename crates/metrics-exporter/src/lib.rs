//! The backup-health Prometheus exporter: last success/failure, overdue and next run per ScheduledBackup, action
//! totals, computed at scrape time from watch caches ([`exporter`]). Its plumbing (flags, server, readiness) is
//! the shared `controller-runtime`.

pub mod exporter;
