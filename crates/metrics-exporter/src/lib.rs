//! Backup-health Prometheus exporter, and the shared runtime every controller binary uses:
//! flags ([`cli`]), logging ([`telemetry`]), reconcile metrics ([`metrics`]), readiness ([`health`]),
//! the /metrics /healthz /readyz server ([`server`]), Lease leader election ([`leader`]) and the
//! shutdown signal ([`shutdown`]).

pub mod cache;
pub mod cli;
pub mod exporter;
pub mod exposition;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod runtime;
pub mod schedule;
pub mod server;
pub mod shutdown;
pub mod telemetry;
