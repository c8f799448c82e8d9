//! The key Secret: what a generated one looks like, and whether an existing one is usable.
//!
//! Pure functions. The layout follows the original operator (`pkg/gpg/secret.go`) so that Secrets it created keep
//! working, with two deliberate differences: the Secret carries the key's fingerprint and algorithm, and it has
//! **no ownerReference**, because deleting a ScheduledBackup must not garbage-collect the only key that decrypts
//! its backups.

use std::collections::BTreeMap;

use crd_types::GpgKeySecretRef;
use crd_types::constants::{annotations, labels};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

use crate::keys::{self, Fingerprint, GeneratedKey, KeyError};

/// Data key holding the key's e-mail, as the original wrote it.
pub const EMAIL_DATA_KEY: &str = "e-mail.txt";

/// The Secret to create for a freshly generated key: `reference.secretName` in `namespace`, data under the
/// configured names (with the original's fallbacks), an empty passphrase, and the e-mail.
pub fn desired_secret(
    namespace: &str,
    reference: &GpgKeySecretRef,
    email: &str,
    key: &GeneratedKey,
) -> Secret {
    let data = BTreeMap::from([
        (
            reference.private_key_name().to_string(),
            bytes(&key.private_armored),
        ),
        (
            reference.public_key_name().to_string(),
            bytes(&key.public_armored),
        ),
        // Generated keys have no passphrase; the key is still written because consumers of the original's
        // Secrets may read it.
        (reference.passphrase_key_name().to_string(), bytes("")),
        (EMAIL_DATA_KEY.to_string(), bytes(email)),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(reference.secret_name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                labels::TYPE.to_string(),
                labels::GPG_SECRET_TYPE.to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (annotations::EMAIL.to_string(), email.to_string()),
                (
                    annotations::FINGERPRINT.to_string(),
                    key.fingerprint.to_string(),
                ),
                (
                    annotations::ALGORITHM.to_string(),
                    key.algorithm.as_str().to_string(),
                ),
            ])),
            // Deliberately none: see the module documentation.
            owner_references: None,
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The offline `gpg-keygen generate` output: a freshly generated key Secret as a YAML manifest, for GitOps users
/// who encrypt (seal) it themselves. Without `namespace` the manifest has none, so `kubectl -n` decides.
pub fn generate_manifest(
    namespace: Option<&str>,
    reference: &GpgKeySecretRef,
    email: &str,
    algorithm: crd_types::KeyAlgorithm,
) -> anyhow::Result<String> {
    let key = keys::generate(email, algorithm)?;
    let mut secret = desired_secret(namespace.unwrap_or_default(), reference, email, &key);
    secret.metadata.namespace = namespace.map(str::to_string);
    Ok(serde_saphyr::to_string(&secret)?)
}

fn bytes(s: &str) -> ByteString {
    ByteString(s.as_bytes().to_vec())
}

/// Verdict on an existing key Secret. The controller only ever reports it; it never repairs a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Both keys are present, parse and belong together.
    Valid {
        /// Fingerprint of the primary key.
        fingerprint: Fingerprint,
    },
    /// The configured private and/or public data keys are absent or empty (names in a stable order: private
    /// first, as configured).
    Incomplete {
        /// The missing data keys.
        missing: Vec<String>,
    },
    /// Both keys are present but unusable.
    Invalid {
        /// Why (never contains key material).
        reason: KeyError,
    },
}

/// Assesses an existing Secret against the reference: reads `data` and `stringData` (a `stringData` value wins,
/// as on the API server), counts an empty value as missing, then validates the pair.
///
/// The passphrase and `e-mail.txt` are not required, as in the original: Secrets made by hand often lack them.
pub fn assess(existing: &Secret, reference: &GpgKeySecretRef) -> Assessment {
    let private_name = reference.private_key_name();
    let public_name = reference.public_key_name();
    let private = value(existing, private_name);
    let public = value(existing, public_name);

    let missing: Vec<String> = [(private_name, &private), (public_name, &public)]
        .into_iter()
        .filter(|(_, v)| v.as_ref().is_none_or(|v| v.is_empty()))
        .map(|(name, _)| name.to_string())
        .collect();
    if !missing.is_empty() {
        return Assessment::Incomplete { missing };
    }
    let (Some(private), Some(public)) = (private, public) else {
        unreachable!("both values were checked present above");
    };
    // Non-UTF-8 bytes cannot be ASCII armor; let validation report it as "not armored".
    let private = String::from_utf8_lossy(&private);
    let public = String::from_utf8_lossy(&public);
    match keys::validate(&public, &private) {
        Ok(fingerprint) => Assessment::Valid { fingerprint },
        Err(reason) => Assessment::Invalid { reason },
    }
}

fn value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    let from_string_data = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.as_bytes().to_vec());
    from_string_data.or_else(|| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
    })
}

#[cfg(test)]
mod tests;
