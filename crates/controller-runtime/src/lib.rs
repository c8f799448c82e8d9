//! The shared runtime of every controller binary, so no binary re-implements its plumbing: flags ([`cli`]),
//! logging ([`telemetry`]), reconcile metrics ([`metrics`]), readiness ([`health`]), the /metrics /healthz /readyz
//! server ([`server`]), Lease leader election ([`leader`]), sharding by label selector ([`shard`]), the shutdown signal ([`shutdown`]), watch caches,
//! last-write memory and per-object backoff ([`cache`]), the start-up path ([`runtime`]) and a parser of the
//! Prometheus text format for tests ([`exposition`]).

pub mod api;
pub mod blocked;
pub mod cache;
pub mod cli;
pub mod client;
pub mod events;
pub mod exposition;
pub mod health;
pub mod index;
pub mod leader;
pub mod lean;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod shutdown;
pub mod telemetry;
