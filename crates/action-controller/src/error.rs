//! Errors of the action-controller. Each has a stable CamelCase `reason()` used in the `Ready` condition, events
//! and the `reconcile_errors_total` metric. User-facing errors name the object, the field and the fix and are
//! reported in status; transient ones (API failures) are retried with backoff and leave status as it was.

use std::time::Duration;

use crd_types::constants::reasons;

/// Everything a reconcile can end with besides "the executor exists".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The action's spec can never run (e.g. `targetVersion` on a backup that got past admission). Terminal.
    #[error("{0}")]
    InvalidSpec(String),
    /// The referenced ScheduledBackup does not exist (yet).
    #[error(
        "ScheduledBackup {namespace}/{name} (spec.scheduledBackupRef.name) does not exist: create it, or fix the name; the action starts as soon as it exists and is Ready. With sharded controllers it may only be in another shard: the action must carry its ScheduledBackup's riotkit.org/shard label (or none if the ScheduledBackup has none)"
    )]
    ScheduledBackupNotFound {
        /// The action's (and the ScheduledBackup's) namespace.
        namespace: String,
        /// `spec.scheduledBackupRef.name`.
        name: String,
    },
    /// The ScheduledBackup exists but its helper objects are not applied yet (its `Ready` condition is not True).
    #[error("waiting for ScheduledBackup {namespace}/{name} to become Ready: {detail}")]
    WaitingForScheduledBackup {
        /// Namespace.
        namespace: String,
        /// ScheduledBackup name.
        name: String,
        /// The ScheduledBackup's own `Ready` reason and message, or why it is missing.
        detail: String,
    },
    /// The ScheduledBackup is Ready but the PodTemplate of the requested operation is not (yet) there, or is not
    /// its own. The PodTemplate watch wakes the action up.
    #[error(
        "waiting for PodTemplate {namespace}/{name}, which the scheduled-controller applies for the {operation} operation of ScheduledBackup {namespace}/{scheduled_backup}: {detail}; the action starts as soon as it is there"
    )]
    WaitingForPodTemplate {
        /// Namespace.
        namespace: String,
        /// `<sb>-<operation>`.
        name: String,
        /// The ScheduledBackup.
        scheduled_backup: String,
        /// `backup` or `restore`.
        operation: String,
        /// Why it cannot be used and what to do.
        detail: String,
    },
    /// The PodTemplate exists but no executor can be built from it (e.g. an annotation edited by hand). The
    /// scheduled-controller corrects it on its next reconcile, which wakes the action up.
    #[error(
        "PodTemplate {namespace}/{name} cannot run this action: {detail}. The scheduled-controller restores it from the ScheduledBackup; if this persists, check that the scheduled-controller is running"
    )]
    InvalidPodTemplate {
        /// Namespace.
        namespace: String,
        /// `<sb>-<operation>`.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// `kindType: Workflow` but Argo Workflows is not installed.
    #[error(
        "Argo Workflows is not installed (no workflows.argoproj.io CRD): install it or use kindType: Job (checked again every {}s)",
        crate::executor::DISCOVERY_TTL.as_secs()
    )]
    ExecutorNotInstalled,
    /// The executor's name is taken by an object this action does not own.
    #[error(
        "{kind} {namespace}/{name} already exists and is not owned by this RequestedBackupAction: it is never adopted or overwritten; delete or rename it, or create the action under another name"
    )]
    NameCollision {
        /// `Job` or `Workflow`.
        kind: String,
        /// Namespace.
        namespace: String,
        /// The executor name.
        name: String,
    },
    /// The executor was created (status says so) but is gone before its result was seen. Terminal: an action
    /// runs at most once, so it is never re-created.
    #[error(
        "{kind} {namespace}/{name} was deleted before its result was observed: the action is not retried; create a new RequestedBackupAction to run it again"
    )]
    ExecutorDeleted {
        /// `Job` or `Workflow`.
        kind: String,
        /// Namespace.
        namespace: String,
        /// The executor name.
        name: String,
    },
    /// The API server refused the executor (a 4xx other than 409/429) because of a value from the action or its
    /// ScheduledBackup. Terminal: the action's spec is immutable, so sending the same object again cannot help.
    #[error(transparent)]
    ExecutorRejected(controller_runtime::api::Refused),
    /// The action has no namespace or uid (never the case for objects from the apiserver).
    #[error("RequestedBackupAction is missing {0}")]
    MissingObjectKey(&'static str),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed while {action}: {error}")]
    Kube {
        /// What was being done.
        action: String,
        /// The client error; printed in the message, so it is not also the `source()`.
        error: kube::Error,
    },
}

/// Reason of an executor that vanished before it finished.
pub const EXECUTOR_DELETED: &str = "ExecutorDeleted";
/// Reason of a PodTemplate no executor can be built from.
pub const INVALID_POD_TEMPLATE: &str = "InvalidPodTemplate";

/// Every value [`Error::reason`] returns, for `ControllerMetrics::register_reasons`: the errors-by-reason series
/// exist at 0 from start-up.
pub const REASONS: &[&str] = &[
    reasons::INVALID_SPEC,
    reasons::SCHEDULED_BACKUP_NOT_FOUND,
    reasons::WAITING_FOR_SCHEDULED_BACKUP,
    reasons::WAITING_FOR_POD_TEMPLATE,
    INVALID_POD_TEMPLATE,
    reasons::EXECUTOR_NOT_INSTALLED,
    reasons::NAME_COLLISION,
    EXECUTOR_DELETED,
    reasons::REJECTED_BY_API_SERVER,
    "InvalidObject",
    "KubeApiError",
];

impl controller_runtime::metrics::ErrorReason for Error {
    fn reason(&self) -> &'static str {
        Error::reason(self)
    }
}

impl Error {
    /// Stable label for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => reasons::INVALID_SPEC,
            Error::ScheduledBackupNotFound { .. } => reasons::SCHEDULED_BACKUP_NOT_FOUND,
            Error::WaitingForScheduledBackup { .. } => reasons::WAITING_FOR_SCHEDULED_BACKUP,
            Error::WaitingForPodTemplate { .. } => reasons::WAITING_FOR_POD_TEMPLATE,
            Error::InvalidPodTemplate { .. } => INVALID_POD_TEMPLATE,
            Error::ExecutorNotInstalled => reasons::EXECUTOR_NOT_INSTALLED,
            Error::NameCollision { .. } => reasons::NAME_COLLISION,
            Error::ExecutorDeleted { .. } => EXECUTOR_DELETED,
            Error::ExecutorRejected(_) => reasons::REJECTED_BY_API_SERVER,
            Error::MissingObjectKey(_) => "InvalidObject",
            Error::Kube { .. } => "KubeApiError",
        }
    }

    /// Shown in status (the user must act or wait); `false` for transient errors, retried with backoff.
    pub fn is_user_facing(&self) -> bool {
        !matches!(self, Error::MissingObjectKey(_) | Error::Kube { .. })
    }

    /// The action can never run: it becomes `Failed` and is not looked at again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Error::InvalidSpec(_) | Error::ExecutorDeleted { .. } | Error::ExecutorRejected(_)
        )
    }

    /// When to look again without a watch event. The ScheduledBackup, its PodTemplates and the executor are
    /// watched, so waiting for them needs no timer; Argo's CRD is not watched, so it is re-checked periodically.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::ScheduledBackupNotFound { .. }
            | Error::WaitingForScheduledBackup { .. }
            | Error::WaitingForPodTemplate { .. }
            | Error::InvalidPodTemplate { .. } => None,
            Error::InvalidSpec(_) | Error::ExecutorDeleted { .. } | Error::ExecutorRejected(_) => {
                None
            }
            Error::ExecutorNotInstalled => Some(crate::executor::DISCOVERY_TTL),
            _ => Some(Duration::from_secs(60)),
        }
    }

    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |error| Error::Kube { action, error }
    }

    /// A failed create of executor `kind namespace/name`: terminal when the API server refused what we sent
    /// ([`controller_runtime::api::refusal`]), otherwise transient.
    pub(crate) fn create(
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> Error {
        const FIX: &str = "Fix the RequestedBackupAction field or the ScheduledBackup setting that sets this value, then create a new RequestedBackupAction";
        let (kind, namespace, name) = (kind.to_string(), namespace.to_string(), name.to_string());
        move |error| {
            controller_runtime::api::classify_write(
                error, "creating", &kind, &namespace, &name, FIX,
            )
            .map_or_else(Error::ExecutorRejected, |(action, error)| Error::Kube {
                action,
                error,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_errors_are_shown_and_api_errors_are_retried() {
        let collision = Error::NameCollision {
            kind: "Job".into(),
            namespace: "a".into(),
            name: "x".into(),
        };
        assert!(collision.is_user_facing());
        assert_eq!(collision.reason(), "NameCollision");
        assert!(collision.to_string().contains("Job a/x"));
        let api = Error::Kube {
            action: "creating Job".into(),
            error: kube::Error::LinesCodecMaxLineLengthExceeded,
        };
        assert!(!api.is_user_facing());
        assert!(!Error::ExecutorNotInstalled.is_terminal());
    }

    #[test]
    fn only_invalid_specs_and_lost_executors_are_terminal() {
        assert!(Error::InvalidSpec("x".into()).is_terminal());
        assert!(
            Error::ExecutorDeleted {
                kind: "Job".into(),
                namespace: "a".into(),
                name: "x".into()
            }
            .is_terminal()
        );
        let waiting = Error::WaitingForScheduledBackup {
            namespace: "a".into(),
            name: "sb".into(),
            detail: "d".into(),
        };
        assert!(!waiting.is_terminal());
        assert_eq!(
            waiting.retry_after(),
            None,
            "the ScheduledBackup watch wakes the action up"
        );
    }

    /// Index of the variant; exhaustive, so a new variant does not compile until it is listed here (and then
    /// `every_variant_reason_is_in_reasons` fails until it has a sample).
    fn variant(e: &Error) -> usize {
        match e {
            Error::InvalidSpec(_) => 0,
            Error::ScheduledBackupNotFound { .. } => 1,
            Error::WaitingForScheduledBackup { .. } => 2,
            Error::WaitingForPodTemplate { .. } => 3,
            Error::InvalidPodTemplate { .. } => 4,
            Error::ExecutorNotInstalled => 5,
            Error::NameCollision { .. } => 6,
            Error::ExecutorDeleted { .. } => 7,
            Error::ExecutorRejected(_) => 8,
            Error::MissingObjectKey(_) => 9,
            Error::Kube { .. } => 10,
        }
    }

    #[test]
    fn every_variant_reason_is_in_reasons() {
        let (ns, name) = (|| "a".to_owned(), || "x".to_owned());
        let samples = [
            Error::InvalidSpec("x".into()),
            Error::ScheduledBackupNotFound {
                namespace: ns(),
                name: name(),
            },
            Error::WaitingForScheduledBackup {
                namespace: ns(),
                name: name(),
                detail: "d".into(),
            },
            Error::WaitingForPodTemplate {
                namespace: ns(),
                name: "sb-backup".into(),
                scheduled_backup: "sb".into(),
                operation: "backup".into(),
                detail: "d".into(),
            },
            Error::InvalidPodTemplate {
                namespace: ns(),
                name: "sb-backup".into(),
                detail: "d".into(),
            },
            Error::ExecutorNotInstalled,
            Error::NameCollision {
                kind: "Job".into(),
                namespace: ns(),
                name: name(),
            },
            Error::ExecutorDeleted {
                kind: "Job".into(),
                namespace: ns(),
                name: name(),
            },
            Error::ExecutorRejected(controller_runtime::api::Refused {
                kind: "Job".into(),
                namespace: ns(),
                name: name(),
                detail: "d".into(),
                fix: "f",
            }),
            Error::MissingObjectKey("uid"),
            Error::Kube {
                action: "creating Job".into(),
                error: kube::Error::LinesCodecMaxLineLengthExceeded,
            },
        ];
        let covered: std::collections::BTreeSet<usize> = samples.iter().map(variant).collect();
        assert_eq!(covered.len(), 11, "one sample per variant");
        for e in &samples {
            assert!(
                REASONS.contains(&e.reason()),
                "{} is not in REASONS",
                e.reason()
            );
        }
        let distinct: std::collections::BTreeSet<&str> =
            samples.iter().map(Error::reason).collect();
        assert_eq!(
            distinct.len(),
            REASONS.len(),
            "no reason in REASONS that nothing returns"
        );
    }

    #[test]
    fn the_missing_argo_message_says_what_to_do() {
        let m = Error::ExecutorNotInstalled.to_string();
        assert!(m.starts_with("Argo Workflows is not installed (no workflows.argoproj.io CRD): install it or use kindType: Job"), "{m}");
    }
}
