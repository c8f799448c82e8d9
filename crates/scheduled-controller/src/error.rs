//! Errors of the scheduled-controller. User-facing ones name the object, the field and the fix; each has a
//! stable CamelCase `reason()` used in conditions, events and the `reconcile_errors_total` metric.

use crd_types::constants::reasons;

use crate::status::Step;

/// Everything a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `spec.templateRef.kind` is not `internal` or `ClusterBackupProcedureTemplate`.
    #[error("{0}")]
    InvalidTemplateKind(String),
    /// The referenced template does not exist.
    #[error("{0}")]
    TemplateNotFound(String),
    /// A referenced Secret (token, vars) is missing or lacks a key.
    #[error("{0}")]
    SecretNotFound(String),
    /// The key Secret is missing or gpg-keygen has not validated it.
    #[error("{0}")]
    WaitingForKeySecret(String),
    /// The cron expression or time zone is not valid Kubernetes CronJob syntax.
    #[error("{0}")]
    InvalidSchedule(String),
    /// Rendering failed (missing variable, bad vars, ...).
    #[error(transparent)]
    Render(#[from] template_engine::Error),
    /// A child's name is taken by an object this ScheduledBackup does not own.
    #[error(
        "{kind} {namespace}/{name} already exists and is not owned by this ScheduledBackup: it is never overwritten; rename or delete it, or rename the ScheduledBackup"
    )]
    NameCollision {
        /// Kind of the foreign object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API server refused a child (a 4xx other than 409/429): a value that came from the ScheduledBackup, its
    /// template or vars is not valid for that Kubernetes object. Retrying cannot help; a change of input will.
    #[error(transparent)]
    ChildRejected(controller_runtime::api::Refused),
    /// The ScheduledBackup has no namespace or uid (never the case for objects from the apiserver).
    #[error("ScheduledBackup is missing {0}")]
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

impl controller_runtime::metrics::ErrorReason for Error {
    fn reason(&self) -> &'static str {
        Error::reason(self)
    }
}

/// Every value [`Error::reason`] returns (the template engine's included), for
/// `ControllerMetrics::register_reasons`: the errors-by-reason series exist at 0 from start-up.
pub const REASONS: &[&str] = &[
    reasons::INVALID_TEMPLATE_KIND,
    reasons::TEMPLATE_NOT_FOUND,
    reasons::SECRET_NOT_FOUND,
    reasons::WAITING_FOR_KEY_SECRET,
    reasons::INVALID_SCHEDULE,
    reasons::NAME_COLLISION,
    reasons::REJECTED_BY_API_SERVER,
    reasons::INVALID_VARS,
    reasons::RENDER_FAILED,
    reasons::NO_SCRIPT_FOR_OPERATION,
    reasons::INVALID_SPEC,
    "InvalidObject",
    "KubeApiError",
];

impl Error {
    /// Stable label for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidTemplateKind(_) => reasons::INVALID_TEMPLATE_KIND,
            Error::TemplateNotFound(_) => reasons::TEMPLATE_NOT_FOUND,
            Error::SecretNotFound(_) => reasons::SECRET_NOT_FOUND,
            Error::WaitingForKeySecret(_) => reasons::WAITING_FOR_KEY_SECRET,
            Error::InvalidSchedule(_) => reasons::INVALID_SCHEDULE,
            Error::Render(e) => e.reason(),
            Error::NameCollision { .. } => reasons::NAME_COLLISION,
            Error::ChildRejected(_) => reasons::REJECTED_BY_API_SERVER,
            Error::MissingObjectKey(_) => "InvalidObject",
            Error::Kube { .. } => "KubeApiError",
        }
    }

    /// The pipeline step of a user-facing error (shown in status); `None` for transient errors, which are
    /// retried with backoff instead.
    pub fn step(&self) -> Option<Step> {
        match self {
            Error::InvalidTemplateKind(_)
            | Error::TemplateNotFound(_)
            | Error::SecretNotFound(_)
            | Error::InvalidSchedule(_) => Some(Step::Dependencies),
            Error::WaitingForKeySecret(_) => Some(Step::KeySecret),
            Error::Render(_) => Some(Step::Render),
            Error::NameCollision { .. } | Error::ChildRejected(_) => Some(Step::Apply),
            Error::MissingObjectKey(_) | Error::Kube { .. } => None,
        }
    }

    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |error| Error::Kube { action, error }
    }

    /// A failed write of child `kind namespace/name`: the user's input when the API server refused what we sent
    /// ([`controller_runtime::api::refusal`]), otherwise transient.
    pub(crate) fn write(
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> Error {
        const FIX: &str = "Fix the ScheduledBackup field, template or variable that sets this value; the ScheduledBackup is retried when it, its template or its Secrets change";
        let (kind, namespace, name) = (kind.to_string(), namespace.to_string(), name.to_string());
        move |error| {
            controller_runtime::api::classify_write(
                error, "applying", &kind, &namespace, &name, FIX,
            )
            .map_or_else(Error::ChildRejected, |(action, error)| Error::Kube {
                action,
                error,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index of the variant; exhaustive, so a new variant does not compile until it is listed here (and then
    /// `every_variant_reason_is_in_reasons` fails until it has a sample).
    fn variant(e: &Error) -> usize {
        match e {
            Error::InvalidTemplateKind(_) => 0,
            Error::TemplateNotFound(_) => 1,
            Error::SecretNotFound(_) => 2,
            Error::WaitingForKeySecret(_) => 3,
            Error::InvalidSchedule(_) => 4,
            Error::Render(_) => 5,
            Error::NameCollision { .. } => 6,
            Error::ChildRejected(_) => 7,
            Error::MissingObjectKey(_) => 8,
            Error::Kube { .. } => 9,
        }
    }

    #[test]
    fn every_variant_reason_is_in_reasons() {
        let samples = [
            Error::InvalidTemplateKind("x".into()),
            Error::TemplateNotFound("x".into()),
            Error::SecretNotFound("x".into()),
            Error::WaitingForKeySecret("x".into()),
            Error::InvalidSchedule("x".into()),
            Error::Render(template_engine::Error::InvalidVars("x".into())),
            Error::NameCollision {
                kind: "CronJob".into(),
                namespace: "a".into(),
                name: "x".into(),
            },
            Error::ChildRejected(controller_runtime::api::Refused {
                kind: "CronJob".into(),
                namespace: "a".into(),
                name: "x".into(),
                detail: "d".into(),
                fix: "f",
            }),
            Error::MissingObjectKey("uid"),
            Error::Kube {
                action: "applying".into(),
                error: kube::Error::LinesCodecMaxLineLengthExceeded,
            },
        ];
        let covered: std::collections::BTreeSet<usize> = samples.iter().map(variant).collect();
        assert_eq!(covered.len(), 10, "one sample per variant");
        for e in &samples {
            assert!(
                REASONS.contains(&e.reason()),
                "{} is not in REASONS",
                e.reason()
            );
        }
        // Render errors report the template engine's reasons.
        for r in template_engine::REASONS {
            assert!(
                REASONS.contains(r),
                "template-engine reason {r} is not in REASONS"
            );
        }
    }
}
