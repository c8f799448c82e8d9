//! `ClusterBackupProcedureTemplate`: a reusable procedure (image plus backup and restore script templates).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A cluster-wide procedure template. Scripts use the original's Go-template syntax (`{{ .Params.password }}`)
/// or Tera syntax; see docs/templates.md.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "riotkit.org",
    version = "v1alpha1",
    doc = "A cluster-wide backup/restore procedure: container image plus script templates.",
    kind = "ClusterBackupProcedureTemplate",
    status = "ClusterBackupProcedureTemplateStatus",
    shortname = "cbpt",
    category = "backups",
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[cfg_attr(test, kube(cel))]
#[x_kube(validation = Rule::new("self.image != ''").message("spec.image must name the container image that runs the scripts"))]
#[serde(rename_all = "camelCase")]
pub struct ClusterBackupProcedureTemplateSpec {
    /// Container image with `backup-maker`, `gpg`, `bash` and the tools the scripts call.
    pub image: String,
    /// Backup script template.
    pub backup: String,
    /// Restore script template. Optional: a backup-only template rejects restore actions with a clear condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
}

/// The template has no observed state; the subresource exists for compatibility with the original.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ClusterBackupProcedureTemplateStatus {}
