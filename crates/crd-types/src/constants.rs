//! Names shared by every controller: API group, labels, condition types and reasons, field managers.
//!
//! Reasons are CamelCase and stable: dashboards, alerts and ArgoCD health checks match on them.

/// API group of every kind in this crate.
pub const GROUP: &str = "riotkit.org";
/// The only served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every kind in this crate.
pub const API_VERSION: &str = "riotkit.org/v1alpha1";

/// Labels put on every object the controllers create.
pub mod labels {
    /// Name of the ScheduledBackup an object belongs to (children, Jobs spawned by CronJobs and actions).
    pub const SCHEDULED_BACKUP: &str = "riotkit.org/scheduled-backup";
    /// `backup` or `restore`.
    pub const OPERATION: &str = "riotkit.org/operation";
    /// Name of the RequestedBackupAction that spawned a Job or Workflow.
    pub const REQUESTED_BACKUP_ACTION: &str = "riotkit.org/requested-backup-action";
    /// Kept for compatibility with the original operator, which labelled children with a tracking id.
    pub const JOB_TRACKING_ID: &str = "riotkit.org/job-tracking-id";
    /// Marks GPG key Secrets (value [`GPG_SECRET_TYPE`]).
    pub const TYPE: &str = "riotkit.org/type";
    /// Value of [`TYPE`] on key Secrets.
    pub const GPG_SECRET_TYPE: &str = "GPGSecret";
    /// `app.kubernetes.io/name`.
    pub const APP_NAME: &str = "app.kubernetes.io/name";
    /// `app.kubernetes.io/instance`.
    pub const APP_INSTANCE: &str = "app.kubernetes.io/instance";
    /// `app.kubernetes.io/component`.
    pub const APP_COMPONENT: &str = "app.kubernetes.io/component";
    /// `app.kubernetes.io/managed-by`.
    pub const APP_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// `app.kubernetes.io/part-of`.
    pub const APP_PART_OF: &str = "app.kubernetes.io/part-of";
    /// Value of `app.kubernetes.io/name` and `part-of`.
    pub const APP_NAME_VALUE: &str = "backup-maker";
    /// The shard a ScheduledBackup or RequestedBackupAction belongs to (`--shard-selector`, the way Flux shards
    /// with `sharding.fluxcd.io/key`). Set by the user on the SB; copied onto its children, the Jobs and Pods they
    /// spawn and the actions created for it, so a shard's watches see only its own objects. Objects without it
    /// belong to the default shard (`!riotkit.org/shard`).
    pub const SHARD: &str = "riotkit.org/shard";
}

/// Annotations.
pub mod annotations {
    /// The e-mail (user id) of a generated key, as the original operator wrote it.
    pub const EMAIL: &str = "riotkit.org/e-mail";
    /// Fingerprint of the primary key in a generated key Secret.
    pub const FINGERPRINT: &str = "riotkit.org/gpg-fingerprint";
    /// Algorithm of a generated key (`ed25519`, `rsa4096`).
    pub const ALGORITHM: &str = "riotkit.org/gpg-algorithm";
    /// Hash of the rendered spec, on children, so drift is visible to humans.
    pub const SPEC_HASH: &str = "riotkit.org/spec-hash";
    /// On a ScheduledBackup's PodTemplate: `backoffLimit` of the Job an action runs from it.
    pub const BACKOFF_LIMIT: &str = "riotkit.org/backoff-limit";
    /// On a ScheduledBackup's PodTemplate: `activeDeadlineSeconds` of the Job an action runs from it (absent: none).
    pub const ACTIVE_DEADLINE_SECONDS: &str = "riotkit.org/active-deadline-seconds";
}

/// Field managers for server-side apply, one per controller, so each owns only what it writes.
pub mod field_managers {
    /// gpg-keygen (owns the `GPGKeyReady` condition).
    pub const GPG_KEYGEN: &str = "backup-maker-gpg-keygen";
    /// scheduled-controller (owns SB children and every other SB condition).
    pub const SCHEDULED_CONTROLLER: &str = "backup-maker-scheduled-controller";
    /// action-controller (owns action Jobs/Workflows and the action status).
    pub const ACTION_CONTROLLER: &str = "backup-maker-action-controller";
}

/// Condition types.
pub mod condition_types {
    /// Summary condition (what ArgoCD and `kubectl wait` read).
    pub const READY: &str = "Ready";
    /// The procedure template rendered without error (SB).
    pub const TEMPLATE_RENDERED: &str = "TemplateRendered";
    /// Every child object was applied (SB).
    pub const CHILDREN_APPLIED: &str = "ChildrenApplied";
    /// The most recent run succeeded (SB).
    pub const LAST_RUN_SUCCEEDED: &str = "LastRunSucceeded";
    /// No run succeeded within the allowed time (SB, `spec.cronJob.overdueAfter`).
    pub const OVERDUE: &str = "Overdue";
    /// The key Secret exists and holds valid keys (owned by gpg-keygen).
    pub const GPG_KEY_READY: &str = "GPGKeyReady";
    /// The action's executor finished successfully (RBA).
    pub const COMPLETE: &str = "Complete";
    /// The action's executor failed (RBA).
    pub const FAILED: &str = "Failed";
}

/// Condition reasons (CamelCase, stable).
pub mod reasons {
    /// Everything is in place.
    pub const READY: &str = "Ready";
    /// Work is in progress.
    pub const RECONCILING: &str = "Reconciling";
    /// The key Secret does not exist yet, or gpg-keygen has not validated it.
    pub const WAITING_FOR_KEY_SECRET: &str = "WaitingForKeySecret";
    /// A key Secret was generated.
    pub const KEY_SECRET_CREATED: &str = "KeySecretCreated";
    /// The key Secret exists and is valid.
    pub const KEY_SECRET_VALID: &str = "KeySecretValid";
    /// The key Secret is missing and `createIfNotExists` is false.
    pub const KEY_SECRET_NOT_FOUND: &str = "KeySecretNotFound";
    /// The key Secret lacks the configured data keys.
    pub const KEY_SECRET_INCOMPLETE: &str = "KeySecretIncomplete";
    /// The key Secret's data does not parse as matching armored OpenPGP keys.
    pub const KEY_SECRET_INVALID: &str = "KeySecretInvalid";
    /// The template could not be found.
    pub const TEMPLATE_NOT_FOUND: &str = "TemplateNotFound";
    /// `templateRef.kind` is not a known kind.
    pub const INVALID_TEMPLATE_KIND: &str = "InvalidTemplateKind";
    /// A referenced Secret is missing or lacks a key.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// `spec.vars` or the vars Secret are invalid.
    pub const INVALID_VARS: &str = "InvalidVars";
    /// Template rendering failed (e.g. a missing variable).
    pub const RENDER_FAILED: &str = "RenderFailed";
    /// The rendered template is fine.
    pub const RENDERED: &str = "Rendered";
    /// The cron expression or time zone is invalid.
    pub const INVALID_SCHEDULE: &str = "InvalidSchedule";
    /// A child's name is taken by an object this resource does not own.
    pub const NAME_COLLISION: &str = "NameCollision";
    /// The API server refused an object we wrote because of a value taken from the user's input.
    pub const REJECTED_BY_API_SERVER: &str = "RejectedByAPIServer";
    /// Children were applied.
    pub const APPLIED: &str = "Applied";
    /// Applying a child failed.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// No run has finished yet.
    pub const NO_RUNS_YET: &str = "NoRunsYet";
    /// The last run succeeded.
    pub const SUCCEEDED: &str = "Succeeded";
    /// The last run failed.
    pub const JOB_FAILED: &str = "JobFailed";
    /// `Overdue=True`: no run succeeded within the allowed time.
    pub const NO_RECENT_SUCCESS: &str = "NoRecentSuccess";
    /// `Overdue=False`: a run succeeded within the allowed time (or none was due yet).
    pub const ON_SCHEDULE: &str = "OnSchedule";
    /// `Overdue=False`: the CronJob is disabled or suspended (or its schedule invalid), so no run is expected.
    pub const NOT_SCHEDULED: &str = "NotScheduled";
    /// The action waits for its ScheduledBackup to exist and be Ready.
    pub const WAITING_FOR_SCHEDULED_BACKUP: &str = "WaitingForScheduledBackup";
    /// The referenced ScheduledBackup does not exist.
    pub const SCHEDULED_BACKUP_NOT_FOUND: &str = "ScheduledBackupNotFound";
    /// The executor kind (e.g. Argo Workflow) is not installed in the cluster.
    pub const EXECUTOR_NOT_INSTALLED: &str = "ExecutorNotInstalled";
    /// The action's spec is invalid.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The executor is running.
    pub const RUNNING: &str = "Running";
    /// The executor was created and has not started.
    pub const PENDING: &str = "Pending";
    /// The template has no script for the requested operation.
    pub const NO_SCRIPT_FOR_OPERATION: &str = "NoScriptForOperation";
    /// The action waits for the PodTemplate of its operation (`<sb>-<operation>`, applied by the
    /// scheduled-controller).
    pub const WAITING_FOR_POD_TEMPLATE: &str = "WaitingForPodTemplate";
}
