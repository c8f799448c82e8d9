//! The scale bench of issue #15: N ScheduledBackups converging with the four controller binaries,
//! each in its own process as its chart ServiceAccount, against the fake API server served over
//! HTTP from this process. See `docs/scale.md`. Run it with
//! `cargo run --release -p scale-bench -- --sbs 1000,5000,10000`.

pub mod analysis;
pub mod bench;
pub mod controllers;
pub mod error;
pub mod procfs;
pub mod report;
pub mod seed;
pub mod serve;

/// The rendered chart (default values): its ServiceAccounts and RBAC are what the controllers get.
pub const RELEASE_MANIFESTS: &str = include_str!("../../../deploy/manifests/backup-maker.yaml");
/// The chart's release namespace, where the ServiceAccounts live.
pub const RELEASE_NAMESPACE: &str = "backup-maker";
