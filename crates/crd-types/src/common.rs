//! Types shared by several kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which procedure to run.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Dump, encrypt with the public key, upload.
    Backup,
    /// Download, decrypt with the private key, restore.
    Restore,
}

impl Operation {
    /// Both operations, in a stable order.
    pub const ALL: [Operation; 2] = [Operation::Backup, Operation::Restore];

    /// The wire name (`backup`, `restore`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Restore => "restore",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Operation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "backup" => Ok(Operation::Backup),
            "restore" => Ok(Operation::Restore),
            other => Err(format!(
                "unknown operation {other:?}: expected backup or restore"
            )),
        }
    }
}

/// A child object owned by a ScheduledBackup or RequestedBackupAction.
///
/// The original identified children by a random tracking id (its Jobs used `generateName`); children now have
/// deterministic names, and `trackingId` is kept only so old status documents still parse.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildReference {
    /// e.g. `batch/v1`, `v1`.
    pub api_version: String,
    /// e.g. `CronJob`, `ConfigMap`.
    pub kind: String,
    /// Object name (same namespace as the owner).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Legacy tracking id of the original operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
}

/// Health of one Job-like child (a Job, or an Argo Workflow).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobHealthStatus {
    /// Which child.
    #[serde(flatten)]
    pub child: ChildReference,
    /// Human-readable state, with the Job's failure message when it failed.
    #[serde(default)]
    pub message: String,
    /// Finished successfully.
    #[serde(default)]
    pub succeeded: bool,
    /// Started and not finished (a Job still retrying within its backoff limit is running, not failed).
    #[serde(default)]
    pub running: bool,
    /// Finished unsuccessfully (the Job's `Failed` condition is True).
    #[serde(default)]
    pub failed: bool,
}

/// Schema of `status.conditions`: a list-map keyed by `type`, so that several controllers can each own their
/// own condition types through server-side apply without clobbering each other's.
pub(crate) fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = <Vec<Condition>>::json_schema(generator);
    let object = schema.ensure_object();
    object.insert("x-kubernetes-list-type".into(), "map".into());
    object.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}
