//! The backup-health Prometheus exporter: last success/failure, overdue and next run per ScheduledBackup, last
//! restore and restore-drill overdue per collection, action totals, computed at scrape time from watch caches
//! ([`exporter`]) and the small aggregates of the other watched kinds ([`projection`]). Its plumbing (flags,
//! server, readiness) is the shared `controller-runtime`.

pub mod exporter;
pub mod projection;
