//! Renders backup/restore procedures and the Kubernetes objects that run them.
//!
//! Pure code, no API calls: controllers fetch the ScheduledBackup, its template and the Secrets it references,
//! and call [`desired_children`] (what a ScheduledBackup owns) or [`action_executor`] (the Job or Argo Workflow of
//! a RequestedBackupAction). [`render_documents`] does the same from YAML documents for the `render` command.
//!
//! - Templates: Go `text/template` syntax written for the original operator keeps working (it is translated to
//!   Tera); a first line `{# tera #}` selects Tera syntax. See docs/templates.md.
//! - Variables: template defaults < `spec.vars` < injected values < vars-Secret keys (see [`vars`]).
//! - Secrets are never copied into rendered objects: Secret values reach the pod as env vars with
//!   `secretKeyRef` to the user's Secret, the GPG key is mounted straight from the key Secret.

use std::collections::BTreeMap;

use crd_types::{
    ClusterBackupProcedureTemplate, Operation, RequestedBackupAction, ScheduledBackup,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};

mod builtin;
mod digest;
mod engine;
mod error;
mod gotmpl;
mod names;
mod objects;
mod render;
pub mod vars;

pub use builtin::{GENERIC_IMAGE, builtin, builtin_names};
pub use engine::{Syntax, TERA_MARKER, detect_syntax, go_indent, go_quote, shell_quote};
pub use error::{Error, REASONS};
pub use names::{MAX_CRONJOB_NAME, MAX_LABEL_VALUE, child_name, job_name, label_value};
pub use objects::{
    CONTAINER_NAME, DEFAULT_BACKOFF_LIMIT, GPG_KEY_FILE, HELM_VALUES_KEYS, LEGACY_HELM_VALUES_KEYS,
    RUN_AS_USER, SCRIPT_DIR, SECRETS_DIR, TOKEN_ENV_NAME, child_labels,
    default_pod_security_context, default_security_context,
};
pub use render::{EXAMPLE, parse_documents, render_documents};

/// A procedure template: image plus backup and (optional) restore script templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureTemplate {
    /// Template name (`pg15`, or the ClusterBackupProcedureTemplate's name); used in error messages.
    pub name: String,
    /// Container image that runs the scripts.
    pub image: String,
    /// Backup script template.
    pub backup: String,
    /// Restore script template; `None` for backup-only templates.
    pub restore: Option<String>,
    /// A built-in template (`templateRef.kind: internal`); built-ins have variable defaults.
    pub builtin: bool,
}

impl From<&ClusterBackupProcedureTemplate> for ProcedureTemplate {
    fn from(t: &ClusterBackupProcedureTemplate) -> Self {
        ProcedureTemplate {
            name: t.metadata.name.clone().unwrap_or_default(),
            image: t.spec.image.clone(),
            backup: t.spec.backup.clone(),
            restore: t.spec.restore.clone(),
            builtin: false,
        }
    }
}

/// Everything one render needs, already fetched by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The ScheduledBackup (its uid, when set, becomes the owner of the children).
    pub scheduled_backup: &'a ScheduledBackup,
    /// Its template (from [`builtin`] or a ClusterBackupProcedureTemplate).
    pub template: &'a ProcedureTemplate,
    /// The Secret named by `spec.tokenSecretRef`.
    pub token_secret: &'a Secret,
    /// The Secret named by `spec.varsSecretRef`, when set.
    pub vars_secret: Option<&'a Secret>,
}

/// Everything a ScheduledBackup should own.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// One script ConfigMap per rendered operation (`<sb>-backup`, `<sb>-restore`).
    pub config_maps: Vec<ConfigMap>,
    /// One helper Secret per rendered operation, holding only `HelmValues.env` entries.
    pub secrets: Vec<Secret>,
    /// The CronJob for `spec.operation`, when `spec.cronJob.enabled`.
    pub cron_job: Option<CronJob>,
    /// The pod template per rendered operation (what Jobs of actions reuse).
    pub pod_templates: BTreeMap<Operation, PodTemplateSpec>,
    /// sha256 (hex) of the rendered children, for `status.lastAppliedSpecHash`.
    pub hash: String,
    /// Operations not rendered, with the reason (e.g. a template without a restore script).
    pub skipped: Vec<String>,
    /// Things the user should fix that do not block the render (e.g. a Secret value pasted into a script
    /// without `shell_quote`, or a `HelmValues` key of the original chart that has no effect). Surface them as
    /// Warning events.
    pub warnings: Vec<String>,
}

/// The executor of a RequestedBackupAction.
// The variants are the controllers' contract; a Job is applied right after being built, so its size on the
// stack does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// A `batch/v1` Job.
    Job(Job),
    /// An `argoproj.io/v1alpha1` Workflow (no typed API available), as JSON.
    Workflow(serde_json::Value),
}

/// Everything a ScheduledBackup should own: ConfigMap + Secret per operation (restore skipped, with a note in
/// [`Desired::skipped`], when the template has no restore script), the CronJob for `spec.operation` when
/// `cronJob.enabled`, and the pod template per operation. Children carry an ownerReference (controller,
/// blockOwnerDeletion) to the ScheduledBackup when it has a uid.
pub fn desired_children(inputs: &Inputs) -> Result<Desired, Error> {
    objects::desired_children(inputs)
}

/// The executor of an action: a Job named [`job_name`] of the action, owned by it, with the ScheduledBackup's
/// pod template for `spec.action`, `RESTORE_VERSION` when `targetVersion` is set, `ttlSecondsAfterFinished`,
/// labels (scheduled-backup, operation, requested-backup-action) and `backoffLimit` (default
/// [`DEFAULT_BACKOFF_LIMIT`]); or an Argo Workflow with one container template for `kindType: Workflow`.
pub fn action_executor(inputs: &Inputs, action: &RequestedBackupAction) -> Result<Executor, Error> {
    objects::action_executor(inputs, action)
}
