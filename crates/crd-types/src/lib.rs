//! Rust types of the `riotkit.org/v1alpha1` API, wire-compatible with the original Go operator's manifests.
//!
//! - [`ScheduledBackup`] (namespaced): a backup or restore procedure rendered into helper objects and a CronJob.
//! - [`RequestedBackupAction`] (namespaced): "run a backup/restore now" from a ScheduledBackup.
//! - [`ClusterBackupProcedureTemplate`] (cluster-scoped): image plus backup/restore script templates.
//!
//! Shared constants (group, labels, condition types and reasons, field managers) live in [`constants`],
//! and the condition helpers every controller uses in [`conditions`]. What two controllers must agree on without
//! linking each other lives here too: object names ([`names`]) and the executor of an action built from the
//! PodTemplate a ScheduledBackup hands off ([`executor`]).

// kube-derive printcolumn(...) lists repeat `type_ = "string"`, which clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod conditions;
pub mod constants;
pub mod executor;
pub mod names;
pub mod pod_failure;
pub mod procedure_template;
pub mod requested_backup_action;
pub mod schedule;
pub mod scheduled_backup;
pub mod spread;

pub use common::{ChildReference, JobHealthStatus, Operation};
pub use procedure_template::{ClusterBackupProcedureTemplate, ClusterBackupProcedureTemplateSpec};
pub use requested_backup_action::{
    ActionPhase, KindType, RequestedBackupAction, RequestedBackupActionSpec,
    RequestedBackupActionStatus, ScheduledBackupRef,
};
pub use scheduled_backup::{
    ConcurrencyPolicy, CronJobSpec, GpgKeySecretRef, KeyAlgorithm, ScheduledBackup,
    ScheduledBackupSpec, ScheduledBackupStatus, TemplateKind, TemplateRef, TokenSecretRef,
    VarsSecretRef,
};

use kube::CustomResourceExt;

/// Every CustomResourceDefinition of the API, in a stable order (used by `cargo xtask gen-crds`).
pub fn all_crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![
        ClusterBackupProcedureTemplate::crd(),
        RequestedBackupAction::crd(),
        ScheduledBackup::crd(),
    ]
}

#[cfg(test)]
mod tests;
