//! The controller's error type.
//!
//! Two families share the enum: transient API/runtime failures (retried with backoff) and outcomes caused by the
//! user's objects (reported on the ScheduledBackup's `GPGKeyReady` condition and in a Warning Event, then retried
//! only when something changes). Both carry a stable `reason()` for the errors-by-reason metric.

use crd_types::constants::reasons;

use crate::keys::KeyError;

/// Why a reconcile did not end with a usable key Secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ScheduledBackup has no namespace (a cluster-scoped object cannot reference a Secret).
    #[error("ScheduledBackup {name} has no metadata.namespace")]
    MissingNamespace {
        /// ScheduledBackup name.
        name: String,
    },
    /// Reading the key Secret failed.
    #[error("cannot read Secret {namespace}/{name}: {error}")]
    ReadSecret {
        /// Secret namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The API error; printed in the message, so it is not also the `source()`.
        error: kube::Error,
    },
    /// Creating the key Secret failed (other than AlreadyExists, which is adopted).
    #[error("cannot create Secret {namespace}/{name}: {error}")]
    CreateSecret {
        /// Secret namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The API error; printed in the message, so it is not also the `source()`.
        error: kube::Error,
    },
    /// The create answered AlreadyExists, and the Secret was gone again by the time it was read.
    #[error("Secret {namespace}/{name} was created by someone else and deleted again; retrying")]
    SecretVanished {
        /// Secret namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// rPGP could not generate a key.
    #[error(transparent)]
    Generate(KeyError),
    /// The blocking key-generation task panicked or was cancelled.
    #[error("key generation for Secret {namespace}/{name} did not finish: {detail}")]
    GenerationAborted {
        /// Secret namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The join error.
        detail: String,
    },
    /// Writing the `GPGKeyReady` condition failed.
    #[error(
        "cannot apply the GPGKeyReady condition to ScheduledBackup {namespace}/{name}: {error}"
    )]
    ApplyStatus {
        /// ScheduledBackup namespace.
        namespace: String,
        /// ScheduledBackup name.
        name: String,
        /// The API error; printed in the message, so it is not also the `source()`.
        error: kube::Error,
    },
    /// User-caused: the Secret is missing and may not (or cannot) be generated. The condition explains the fix.
    #[error("{message}")]
    KeySecretNotFound {
        /// The condition message.
        message: String,
    },
    /// User-caused: the Secret lacks the configured data keys.
    #[error("{message}")]
    KeySecretIncomplete {
        /// The condition message.
        message: String,
    },
    /// User-caused: the Secret's keys are unusable.
    #[error("{message}")]
    KeySecretInvalid {
        /// The condition message.
        message: String,
    },
}

/// Every value [`Error::reason`] returns, for `ControllerMetrics::register_reasons`: the errors-by-reason
/// series exist at 0 from start-up.
pub const REASONS: &[&str] = &[
    "MissingNamespace",
    "SecretReadFailed",
    "SecretCreateFailed",
    "SecretVanished",
    "KeyGenerationFailed",
    "KeyGenerationAborted",
    "StatusApplyFailed",
    reasons::KEY_SECRET_NOT_FOUND,
    reasons::KEY_SECRET_INCOMPLETE,
    reasons::KEY_SECRET_INVALID,
];

impl Error {
    /// Stable CamelCase label for metrics, Events and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::MissingNamespace { .. } => "MissingNamespace",
            Error::ReadSecret { .. } => "SecretReadFailed",
            Error::CreateSecret { .. } => "SecretCreateFailed",
            Error::SecretVanished { .. } => "SecretVanished",
            Error::Generate(_) => "KeyGenerationFailed",
            Error::GenerationAborted { .. } => "KeyGenerationAborted",
            Error::ApplyStatus { .. } => "StatusApplyFailed",
            Error::KeySecretNotFound { .. } => reasons::KEY_SECRET_NOT_FOUND,
            Error::KeySecretIncomplete { .. } => reasons::KEY_SECRET_INCOMPLETE,
            Error::KeySecretInvalid { .. } => reasons::KEY_SECRET_INVALID,
        }
    }

    /// True when only a change to the user's objects can fix it: no point retrying with backoff.
    pub fn is_user_input(&self) -> bool {
        matches!(
            self,
            Error::MissingNamespace { .. }
                | Error::KeySecretNotFound { .. }
                | Error::KeySecretIncomplete { .. }
                | Error::KeySecretInvalid { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index of the variant; exhaustive, so a new variant does not compile until it is listed here (and then
    /// `every_variant_reason_is_in_reasons` fails until it has a sample).
    fn variant(e: &Error) -> usize {
        match e {
            Error::MissingNamespace { .. } => 0,
            Error::ReadSecret { .. } => 1,
            Error::CreateSecret { .. } => 2,
            Error::SecretVanished { .. } => 3,
            Error::Generate(_) => 4,
            Error::GenerationAborted { .. } => 5,
            Error::ApplyStatus { .. } => 6,
            Error::KeySecretNotFound { .. } => 7,
            Error::KeySecretIncomplete { .. } => 8,
            Error::KeySecretInvalid { .. } => 9,
        }
    }

    #[test]
    fn every_variant_reason_is_in_reasons() {
        let (namespace, name) = (|| "a".to_owned(), || "k".to_owned());
        let api = || kube::Error::LinesCodecMaxLineLengthExceeded;
        let samples = [
            Error::MissingNamespace { name: name() },
            Error::ReadSecret {
                namespace: namespace(),
                name: name(),
                error: api(),
            },
            Error::CreateSecret {
                namespace: namespace(),
                name: name(),
                error: api(),
            },
            Error::SecretVanished {
                namespace: namespace(),
                name: name(),
            },
            Error::Generate(KeyError::Generation {
                algorithm: "ed25519",
                detail: "d".into(),
            }),
            Error::GenerationAborted {
                namespace: namespace(),
                name: name(),
                detail: "d".into(),
            },
            Error::ApplyStatus {
                namespace: namespace(),
                name: name(),
                error: api(),
            },
            Error::KeySecretNotFound {
                message: "m".into(),
            },
            Error::KeySecretIncomplete {
                message: "m".into(),
            },
            Error::KeySecretInvalid {
                message: "m".into(),
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
    }
}
