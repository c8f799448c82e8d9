//! `RequestedBackupAction`: run one backup or restore now, from a ScheduledBackup in the same namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::common::{ChildReference, JobHealthStatus, Operation, conditions_schema};

/// A one-shot backup or restore, executed by exactly one Job (or Argo Workflow).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "riotkit.org",
    version = "v1alpha1",
    doc = "Run one backup or restore now from a ScheduledBackup, with exactly one Job or Argo Workflow.",
    kind = "RequestedBackupAction",
    namespaced,
    status = "RequestedBackupActionStatus",
    shortname = "rba",
    category = "backups",
    printcolumn(name = "Action", type_ = "string", json_path = ".spec.action"),
    printcolumn(name = "Scheduled Backup", type_ = "string", json_path = ".spec.scheduledBackupRef.name"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.spec == oldSelf.spec").message("spec of a RequestedBackupAction is immutable: create a new action instead")
)]
#[cfg_attr(test, kube(cel))]
#[x_kube(validation = Rule::new("!has(self.targetVersion) || self.targetVersion == '' || self.action == 'restore'").message("spec.targetVersion is only allowed with action: restore (a backup always creates a new version)"))]
#[serde(rename_all = "camelCase")]
pub struct RequestedBackupActionSpec {
    /// `backup` or `restore`.
    pub action: Operation,
    /// Version to restore (`RESTORE_VERSION` in the Job; `latest` when unset). Only with `action: restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// The ScheduledBackup (same namespace) whose procedure to run.
    pub scheduled_backup_ref: ScheduledBackupRef,
    /// Executor: a Kubernetes `Job` (default) or an Argo Workflows `Workflow`.
    #[serde(default)]
    pub kind_type: KindType,
    /// Passed to the Job: delete it this many seconds after it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Reference to a ScheduledBackup in the action's namespace (cross-namespace references are impossible by design:
/// the action's creator must be allowed to read the procedure's Secrets).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.name != ''").message("spec.scheduledBackupRef.name must name a ScheduledBackup in this namespace"))]
pub struct ScheduledBackupRef {
    /// ScheduledBackup name.
    pub name: String,
}

/// Which executor runs the procedure.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum KindType {
    /// A `batch/v1` Job.
    #[default]
    Job,
    /// An `argoproj.io/v1alpha1` Workflow.
    Workflow,
}

/// Lifecycle of an action.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ActionPhase {
    /// Waiting for the ScheduledBackup, or the executor has not started.
    Pending,
    /// The executor runs.
    Running,
    /// Finished successfully (terminal).
    Succeeded,
    /// Finished unsuccessfully (terminal).
    Failed,
}

impl ActionPhase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionPhase::Pending => "Pending",
            ActionPhase::Running => "Running",
            ActionPhase::Succeeded => "Succeeded",
            ActionPhase::Failed => "Failed",
        }
    }

    /// Succeeded or Failed: nothing will change any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, ActionPhase::Succeeded | ActionPhase::Failed)
    }
}

/// Observed state of an action.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestedBackupActionStatus {
    /// The executor was created (kept from the original; `phase` tells more).
    #[serde(default)]
    pub processed: bool,
    /// Pending, Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ActionPhase>,
    /// When the executor started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the executor finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// `Ready`, `Complete`, `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Generation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The executor object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owned_references: Vec<ChildReference>,
    /// Health of the executor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children_resources_health: Vec<JobHealthStatus>,
    /// False once the executor failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Kept for compatibility with the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec_hash: Option<String>,
}
