//! `ScheduledBackup`: a backup or restore procedure, rendered from a template plus variables and Secrets into
//! helper ConfigMaps/Secrets and, when `spec.cronJob.enabled`, a CronJob.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::common::{ChildReference, JobHealthStatus, Operation, conditions_schema};
use crate::schedule::{OverdueAfter, Schedule, ScheduleError};

/// A backup or restore procedure, optionally scheduled as a CronJob.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "riotkit.org",
    version = "v1alpha1",
    doc = "A backup or restore procedure rendered into helper ConfigMaps/Secrets and, when enabled, a CronJob.",
    kind = "ScheduledBackup",
    namespaced,
    status = "ScheduledBackupStatus",
    shortname = "sb",
    category = "backups",
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".spec.cronJob.scheduleEvery"
    ),
    printcolumn(name = "Operation", type_ = "string", json_path = ".spec.operation"),
    printcolumn(
        name = "Template",
        type_ = "string",
        json_path = ".spec.templateRef.name"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Last Success",
        type_ = "date",
        json_path = ".status.lastSuccessfulTime"
    ),
    printcolumn(
        name = "Next Run",
        type_ = "date",
        json_path = ".status.nextScheduleTime"
    ),
    printcolumn(
        name = "Overdue",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Overdue\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[cfg_attr(test, kube(cel))]
#[x_kube(validation = Rule::new("!has(self.successfulActionsHistoryLimit) || self.successfulActionsHistoryLimit >= 0").message("spec.successfulActionsHistoryLimit must be 0 or more (0 keeps no finished successful action)"))]
#[x_kube(validation = Rule::new("!has(self.failedActionsHistoryLimit) || self.failedActionsHistoryLimit >= 0").message("spec.failedActionsHistoryLimit must be 0 or more (0 keeps no finished failed action)"))]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBackupSpec {
    /// The operation that gets a CronJob when `cronJob.enabled` (both operations always get helper objects).
    pub operation: Operation,

    /// Scheduling. With `enabled: false` the ScheduledBackup only serves RequestedBackupActions.
    #[serde(default)]
    pub cron_job: CronJobSpec,

    /// Server-side collection id. Injected as `Repository.collectionId` when `vars` does not set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_id: Option<String>,

    /// Which procedure template to render.
    pub template_ref: TemplateRef,

    /// The Secret holding the GPG key pair (public key for backups, private key for restores).
    pub gpg_key_secret_ref: GpgKeySecretRef,

    /// The Secret holding the Backup Repository access token (JWT).
    pub token_secret_ref: TokenSecretRef,

    /// Optional Secret whose keys (dotted paths such as `Params.password`) override `vars`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars_secret_ref: Option<VarsSecretRef>,

    /// Template variables: a YAML document with top-level maps `Params`, `Repository` and `HelmValues`.
    #[serde(default)]
    pub vars: String,

    /// Finished successful RequestedBackupActions of this ScheduledBackup to keep (default 10; 0 keeps none): the
    /// action-controller deletes the oldest beyond it (their Jobs go with them). Running actions are never touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_actions_history_limit: Option<i32>,

    /// Finished failed RequestedBackupActions of this ScheduledBackup to keep (default 10; 0 keeps none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_actions_history_limit: Option<i32>,
}

/// Finished actions of each outcome a ScheduledBackup keeps when its spec does not say.
pub const DEFAULT_ACTIONS_HISTORY_LIMIT: usize = 10;

impl ScheduledBackupSpec {
    /// `(successful, failed)` finished actions to keep.
    pub fn actions_history_limits(&self) -> (usize, usize) {
        let limit = |v: Option<i32>| {
            v.map_or(DEFAULT_ACTIONS_HISTORY_LIMIT, |n| {
                usize::try_from(n).unwrap_or(0)
            })
        };
        (
            limit(self.successful_actions_history_limit),
            limit(self.failed_actions_history_limit),
        )
    }
}

/// Scheduling of the ScheduledBackup's CronJob.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!self.enabled || (has(self.scheduleEvery) && self.scheduleEvery != '')").message("spec.cronJob.scheduleEvery is required when spec.cronJob.enabled is true: set a 5-field cron expression such as \"0 2 * * *\""))]
#[x_kube(validation = Rule::new("!has(self.scheduleEvery) || !(self.scheduleEvery.startsWith('CRON_TZ=') || self.scheduleEvery.startsWith('TZ='))").message("spec.cronJob.scheduleEvery must not start with CRON_TZ= or TZ= (Kubernetes rejects it): put the zone in spec.cronJob.timeZone"))]
#[x_kube(validation = Rule::new("!has(self.scheduleEvery) || !self.scheduleEvery.matches('^ *[^ ]+ +[^ ]+ +([^ ]+ +){0,2}[Hh]')").message("spec.cronJob.scheduleEvery accepts H only in the minute and hour fields (e.g. \"H 2 * * *\"), not in day-of-month, month or day-of-week"))]
#[x_kube(validation = Rule::new("!has(self.overdueAfter) || (self.overdueAfter.matches('^([0-9]+h)?([0-9]+m)?([0-9]+s)?$') && self.overdueAfter != '' && duration(self.overdueAfter) > duration('0s'))").message("spec.cronJob.overdueAfter must be a positive duration of hours, minutes and seconds such as \"26h\", \"90m\" or \"1h30m\""))]
#[x_kube(validation = Rule::new("!has(self.startingDeadlineSeconds) || self.startingDeadlineSeconds >= 10").message("spec.cronJob.startingDeadlineSeconds must be at least 10: a shorter deadline can skip runs that start a few seconds late"))]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    /// Create a CronJob for `spec.operation`.
    #[serde(default)]
    pub enabled: bool,

    /// Cron expression (Kubernetes syntax: 5 fields or `@daily`-style macros), plus spread forms: `H` in the
    /// minute or hour field (`H 2 * * *`, `H H * * 0`, `H/15 * * * *`) and `@hourly-random`, `@daily-random`,
    /// `@weekly-random`. `H` becomes a value derived from a hash of `namespace/name` (stable across restarts and
    /// versions); the CronJob gets the concrete expression, shown in `status.effectiveSchedule`.
    #[serde(default = "default_schedule", skip_serializing_if = "Option::is_none")]
    // Bounded so the CEL rules on it stay cheap for the apiserver's cost estimate.
    #[schemars(length(max = 256))]
    pub schedule_every: Option<String>,

    /// IANA time zone of the schedule (e.g. `Europe/Berlin`); the controller's zone (UTC) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,

    /// Suspend future runs without deleting the CronJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// What to do when a run is still going at the next tick. Default `Forbid`: two uploads to one collection
    /// at once are refused by the Backup Repository server anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,

    /// Finished successful Jobs to keep (Kubernetes default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub successful_jobs_history_limit: Option<i32>,

    /// Finished failed Jobs to keep (Kubernetes default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failed_jobs_history_limit: Option<i32>,

    /// How late a missed run may still start, in seconds (the CronJob's `startingDeadlineSeconds`, at least 10).
    /// Default 3600: after the cluster or its CronJob controller was down, each ScheduledBackup starts at most its
    /// one most recent missed run, and only when that run was due within the last hour; older misses wait for the
    /// next scheduled time instead of all starting at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,

    /// How long without a successful run makes the ScheduledBackup `Overdue`, counted from the last success (or
    /// from creation): hours, minutes and seconds such as `26h` or `1h30m`. Default: the first scheduled run after
    /// the last success plus 1 h (one schedule interval + 1 h for a run that succeeds on time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub overdue_after: Option<String>,

    /// Run `spec.operation` once as soon as the ScheduledBackup is Ready, without waiting for the schedule: the
    /// scheduled-controller creates the RequestedBackupAction `<name>-on-create-<generation>` once per generation
    /// that turns this on (turning it off and on again runs again). Works with `enabled: false` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_on_create: Option<bool>,
}

/// The CronJob's `startingDeadlineSeconds` when `spec.cronJob.startingDeadlineSeconds` is not set.
pub const DEFAULT_STARTING_DEADLINE_SECONDS: i64 = 3600;

impl CronJobSpec {
    /// The expression as written, or the default when unset or empty.
    pub fn expression(&self) -> &str {
        self.schedule_every
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(DEFAULT_SCHEDULE)
    }

    /// The concrete expression the CronJob of the ScheduledBackup `namespace/name` gets (`H` and the `-random`
    /// macros resolved, see [`crate::spread`]); any other expression unchanged.
    pub fn effective_schedule(&self, namespace: &str, name: &str) -> Result<String, ScheduleError> {
        crate::spread::resolve(self.expression(), namespace, name)
    }

    /// The effective schedule parsed in `timeZone`, as the CronJob controller evaluates it.
    pub fn schedule(&self, namespace: &str, name: &str) -> Result<Schedule, ScheduleError> {
        let concrete = self.effective_schedule(namespace, name)?;
        crate::schedule::parse_kubernetes_cron(&concrete, self.time_zone.as_deref())
    }

    /// The CronJob's `startingDeadlineSeconds`.
    pub fn starting_deadline_seconds(&self) -> i64 {
        self.starting_deadline_seconds
            .unwrap_or(DEFAULT_STARTING_DEADLINE_SECONDS)
    }

    /// The overdue rule: `overdueAfter` when set, else the next run after the last success plus `default_grace`.
    pub fn overdue_after(
        &self,
        default_grace: jiff::SignedDuration,
    ) -> Result<OverdueAfter, String> {
        match self.overdue_after.as_deref() {
            Some(text) => crate::schedule::parse_overdue_after(text).map(OverdueAfter::Fixed),
            None => Ok(OverdueAfter::NextRunPlus(default_grace)),
        }
    }

    /// Whether runs are scheduled at all: enabled and not suspended.
    pub fn is_active(&self) -> bool {
        self.enabled && self.suspend != Some(true)
    }
}

/// The original's CRD default: every night at 02:00.
pub const DEFAULT_SCHEDULE: &str = "00 02 * * *";

fn default_schedule() -> Option<String> {
    Some(DEFAULT_SCHEDULE.to_string())
}

impl Default for CronJobSpec {
    fn default() -> Self {
        CronJobSpec {
            enabled: false,
            schedule_every: default_schedule(),
            time_zone: None,
            suspend: None,
            concurrency_policy: None,
            successful_jobs_history_limit: None,
            failed_jobs_history_limit: None,
            starting_deadline_seconds: None,
            overdue_after: None,
            run_on_create: None,
        }
    }
}

/// CronJob concurrency policy.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    Allow,
    /// Skip a tick while a run is active (the default).
    #[default]
    Forbid,
    /// Cancel the running Job and start a new one.
    Replace,
}

impl ConcurrencyPolicy {
    /// The Kubernetes value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConcurrencyPolicy::Allow => "Allow",
            ConcurrencyPolicy::Forbid => "Forbid",
            ConcurrencyPolicy::Replace => "Replace",
        }
    }
}

/// Reference to a procedure template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.name != ''").message("spec.templateRef.name must not be empty: name a ClusterBackupProcedureTemplate or a built-in template such as pg15"))]
#[x_kube(validation = Rule::new("self.kind in ['internal', 'ClusterBackupProcedureTemplate']").message("spec.templateRef.kind must be 'internal' (a built-in template) or 'ClusterBackupProcedureTemplate'"))]
pub struct TemplateRef {
    /// Template name: a ClusterBackupProcedureTemplate's name, or a built-in one (`pg15`, `mysql-dump`, `tar`, ...).
    pub name: String,
    /// `internal` or `ClusterBackupProcedureTemplate`. Kept a string (not an enum) so that an object stored before
    /// validation existed still deserialises and gets a clear status condition instead of breaking the watch.
    pub kind: String,
}

/// Parsed `templateRef.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateKind {
    /// A template built into the controller.
    Internal,
    /// A cluster-scoped ClusterBackupProcedureTemplate.
    ClusterBackupProcedureTemplate,
}

impl TemplateRef {
    /// The kind, or an error message naming the field and the accepted values.
    pub fn template_kind(&self) -> Result<TemplateKind, String> {
        match self.kind.as_str() {
            "internal" => Ok(TemplateKind::Internal),
            "ClusterBackupProcedureTemplate" => Ok(TemplateKind::ClusterBackupProcedureTemplate),
            other => Err(format!(
                "spec.templateRef.kind {other:?} is not a template kind: use 'internal' for a built-in template or 'ClusterBackupProcedureTemplate'"
            )),
        }
    }
}

/// Where the GPG key pair lives. Every data-key name falls back to the original's default when empty.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.secretName != ''").message("spec.gpgKeySecretRef.secretName must not be empty"))]
#[x_kube(validation = Rule::new("!self.createIfNotExists || (has(self.email) && self.email != '')").message("spec.gpgKeySecretRef.email is required when createIfNotExists is true: it becomes the key's user id"))]
#[serde(rename_all = "camelCase")]
pub struct GpgKeySecretRef {
    /// Secret name, in the ScheduledBackup's namespace.
    pub secret_name: String,
    /// Data key of the armored public key (default `key.pub`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub public_key: String,
    /// Data key of the armored private key (default `key`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// Data key of the key's passphrase (default `passphrase`; generated keys have an empty one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub passphrase_key: String,
    /// User id e-mail of a generated key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Generate the key pair when the Secret does not exist (an existing Secret is never modified).
    #[serde(default)]
    pub create_if_not_exists: bool,
    /// Algorithm of a generated key (default `ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<KeyAlgorithm>,
}

impl GpgKeySecretRef {
    /// Data key of the private key, with the original's fallback.
    pub fn private_key_name(&self) -> &str {
        non_empty_or(&self.private_key, "key")
    }
    /// Data key of the public key, with the original's fallback.
    pub fn public_key_name(&self) -> &str {
        non_empty_or(&self.public_key, "key.pub")
    }
    /// Data key of the passphrase, with the original's fallback.
    pub fn passphrase_key_name(&self) -> &str {
        non_empty_or(&self.passphrase_key, "passphrase")
    }
}

fn non_empty_or<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() { fallback } else { value }
}

/// Key algorithm of generated keys.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    /// Ed25519 signing key plus Curve25519 encryption subkey (GnuPG 2.2+), what the original generated.
    #[default]
    Ed25519,
    /// RSA-4096 primary key and subkey (slow to generate; for consumers without ECC support).
    Rsa4096,
}

impl KeyAlgorithm {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa4096 => "rsa4096",
        }
    }
}

/// Where the Backup Repository access token lives.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.secretName != ''").message("spec.tokenSecretRef.secretName must not be empty"))]
#[serde(rename_all = "camelCase")]
pub struct TokenSecretRef {
    /// Secret name, in the ScheduledBackup's namespace.
    pub secret_name: String,
    /// Data key holding the token (default `token`).
    #[serde(default = "default_token_key")]
    pub token_key: String,
}

fn default_token_key() -> String {
    "token".to_string()
}

/// A Secret whose keys are merged into `vars`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VarsSecretRef {
    /// Secret name; empty means "no vars Secret" (the original accepted `{}`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    /// Import only these keys (exact match). Empty imports every key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_only_keys: Vec<String>,
}

/// Observed state of a ScheduledBackup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBackupStatus {
    /// `Ready` (summary), `TemplateRendered`, `ChildrenApplied`, `LastRunSucceeded`, `Overdue`, and
    /// `GPGKeyReady` (owned by gpg-keygen).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Generation the scheduled-controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Children this ScheduledBackup owns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owned_references: Vec<ChildReference>,
    /// Health of the CronJob's most recent Jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children_resources_health: Vec<JobHealthStatus>,
    /// Ready, the most recent run did not fail, and not `Overdue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Hash of the spec the children were rendered from (kept for compatibility with the original).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec_hash: Option<String>,
    /// When the CronJob last scheduled a Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When a run last finished successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// When a run last failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_time: Option<Time>,
    /// The concrete cron expression of the CronJob (`H` and `-random` macros resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_schedule: Option<String>,
    /// When the CronJob runs next (unset when disabled or suspended). Changes only when a run is scheduled or the
    /// schedule changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// How long the most recently finished run took (`1h2m3s` form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_duration: Option<String>,
    /// Failed runs since the last successful one (0 after a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<i32>,
    /// Why the last failed run failed: the end of the backup container's output (its termination message, at most
    /// 1 KiB), or the Job's failure reason when the Pod is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_message: Option<String>,
    /// The generation whose `spec.cronJob.runOnCreate` made the RequestedBackupAction
    /// `<name>-on-create-<generation>`; cleared when `runOnCreate` is turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_on_create_generation: Option<i64>,
}
