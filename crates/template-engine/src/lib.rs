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

use crd_types::{
    ClusterBackupProcedureTemplate, Operation, RequestedBackupAction, ScheduledBackup,
};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplate, Secret};

mod builtin;
mod digest;
mod engine;
mod error;
mod gotmpl;
mod objects;
mod render;
pub mod vars;

pub use builtin::{GENERIC_IMAGE, builtin, builtin_names};
pub use digest::object_hash;
pub use engine::{Syntax, TERA_MARKER, detect_syntax, go_indent, go_quote, shell_quote};
pub use error::{Error, REASONS};
// Names and the executor are shared with the action-controller, which does not link this crate.
pub use crd_types::executor::{DEFAULT_BACKOFF_LIMIT, Executor};
pub use crd_types::names::{MAX_CRONJOB_NAME, MAX_LABEL_VALUE, child_name, job_name, label_value};
pub use objects::{
    CONTAINER_NAME, GPG_KEY_FILE, HELM_VALUES_KEYS, LEGACY_HELM_VALUES_KEYS, RUN_AS_USER,
    SCRIPT_DIR, SECRETS_DIR, TOKEN_ENV_NAME, child_labels, default_pod_security_context,
    default_security_context,
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
    /// One core/v1 PodTemplate per rendered operation (`<sb>-backup`, `<sb>-restore`): the pod the CronJob's Job
    /// runs, with the Job-level settings as annotations ([`crd_types::executor::JobSettings`]). The
    /// action-controller builds an action's Job or Workflow from it.
    pub pod_templates: Vec<PodTemplate>,
    /// sha256 (hex) of the rendered children, for `status.lastAppliedSpecHash`.
    pub hash: String,
    /// Operations not rendered, with the reason (e.g. a template without a restore script).
    pub skipped: Vec<String>,
    /// Things the user should fix that do not block the render (e.g. a Secret value pasted into a script
    /// without `shell_quote`, or a `HelmValues` key of the original chart that has no effect). Surface them as
    /// Warning events.
    pub warnings: Vec<String>,
}

impl Desired {
    /// The PodTemplate of `op` (by its `riotkit.org/operation` label), when the template has a script for it.
    pub fn pod_template(&self, op: Operation) -> Option<&PodTemplate> {
        self.pod_templates.iter().find(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(crd_types::constants::labels::OPERATION))
                .is_some_and(|v| v == op.as_str())
        })
    }
}

/// Everything a ScheduledBackup should own: ConfigMap + Secret per operation (restore skipped, with a note in
/// [`Desired::skipped`], when the template has no restore script), the CronJob for `spec.operation` when
/// `cronJob.enabled`, and the PodTemplate per operation. Children carry an ownerReference (controller,
/// blockOwnerDeletion) to the ScheduledBackup when it has a uid.
pub fn desired_children(inputs: &Inputs) -> Result<Desired, Error> {
    objects::desired_children(inputs)
}

/// The executor of an action, exactly as the action-controller builds it: the ScheduledBackup's children are
/// rendered and the PodTemplate of `spec.action` goes through [`crd_types::executor::build`] (a Job named
/// [`job_name`] of the action, owned by it, `RESTORE_VERSION` when `targetVersion` is set,
/// `ttlSecondsAfterFinished`, labels, `backoffLimit`; or an Argo Workflow for `kindType: Workflow`).
pub fn action_executor(inputs: &Inputs, action: &RequestedBackupAction) -> Result<Executor, Error> {
    objects::action_executor(inputs, action)
}
