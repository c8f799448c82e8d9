use std::sync::OnceLock;

use crd_types::KeyAlgorithm;

use super::*;
use crate::keys::KeyPart;

fn key() -> &'static GeneratedKey {
    static KEY: OnceLock<GeneratedKey> = OnceLock::new();
    KEY.get_or_init(|| keys::generate("backups@example.org", KeyAlgorithm::Ed25519).unwrap())
}

fn reference(private: &str, public: &str, passphrase: &str) -> GpgKeySecretRef {
    GpgKeySecretRef {
        secret_name: "backup-keys".into(),
        public_key: public.into(),
        private_key: private.into(),
        passphrase_key: passphrase.into(),
        email: Some("backups@example.org".into()),
        create_if_not_exists: true,
        algorithm: None,
    }
}

fn data_text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// A Secret holding `entries` in `data`.
fn secret_with(entries: &[(&str, &str)]) -> Secret {
    Secret {
        data: Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), bytes(v)))
                .collect(),
        ),
        ..Secret::default()
    }
}

#[test]
fn default_layout_uses_the_original_fallback_names() {
    let secret = desired_secret(
        "backups",
        &reference("", "", ""),
        "backups@example.org",
        key(),
    );
    let data = secret.data.as_ref().unwrap();
    let mut names: Vec<&str> = data.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["e-mail.txt", "key", "key.pub", "passphrase"]);
    assert_eq!(data_text(&secret, "key"), key().private_armored);
    assert_eq!(data_text(&secret, "key.pub"), key().public_armored);
    assert_eq!(data_text(&secret, "passphrase"), "");
    assert_eq!(data_text(&secret, "e-mail.txt"), "backups@example.org");
    assert_eq!(secret.metadata.name.as_deref(), Some("backup-keys"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("backups"));
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert!(secret.string_data.is_none());
}

#[test]
fn custom_key_names_are_used_as_configured() {
    let secret = desired_secret(
        "backups",
        &reference("private", "public", "pw"),
        "backups@example.org",
        key(),
    );
    let data = secret.data.as_ref().unwrap();
    let mut names: Vec<&str> = data.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["e-mail.txt", "private", "public", "pw"]);
    assert_eq!(data_text(&secret, "private"), key().private_armored);
    assert_eq!(data_text(&secret, "public"), key().public_armored);
}

#[test]
fn generated_secret_is_labelled_and_annotated_with_email_fingerprint_and_algorithm() {
    let secret = desired_secret(
        "backups",
        &reference("", "", ""),
        "backups@example.org",
        key(),
    );
    let labels = secret.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["riotkit.org/type"], "GPGSecret");
    let annotations = secret.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["riotkit.org/e-mail"], "backups@example.org");
    assert_eq!(
        annotations["riotkit.org/gpg-fingerprint"],
        key().fingerprint.as_str()
    );
    assert_eq!(annotations["riotkit.org/gpg-algorithm"], "ed25519");
}

#[test]
fn generated_secret_is_not_owned_by_the_scheduled_backup() {
    let secret = desired_secret(
        "backups",
        &reference("", "", ""),
        "backups@example.org",
        key(),
    );
    assert!(secret.metadata.owner_references.is_none());
}

#[test]
fn generated_secret_assesses_as_valid() {
    for r in [reference("", "", ""), reference("private", "public", "pw")] {
        let secret = desired_secret("backups", &r, "backups@example.org", key());
        assert_eq!(
            assess(&secret, &r),
            Assessment::Valid {
                fingerprint: key().fingerprint.clone()
            }
        );
    }
}

#[test]
fn secret_without_either_key_is_incomplete_naming_both() {
    let secret = secret_with(&[("token", "abc")]);
    assert_eq!(
        assess(&secret, &reference("", "", "")),
        Assessment::Incomplete {
            missing: vec!["key".into(), "key.pub".into()]
        }
    );
}

#[test]
fn secret_with_keys_under_other_names_is_incomplete_for_the_configured_names() {
    // The original's shipped example: keys stored as key/key.pub, SB configured with private/public.
    let secret = secret_with(&[
        ("key", &key().private_armored),
        ("key.pub", &key().public_armored),
    ]);
    assert_eq!(
        assess(&secret, &reference("private", "public", "")),
        Assessment::Incomplete {
            missing: vec!["private".into(), "public".into()]
        }
    );
}

#[test]
fn empty_value_counts_as_missing() {
    let secret = secret_with(&[("key", &key().private_armored), ("key.pub", "")]);
    assert_eq!(
        assess(&secret, &reference("", "", "")),
        Assessment::Incomplete {
            missing: vec!["key.pub".into()]
        }
    );
}

#[test]
fn secret_without_any_data_is_incomplete() {
    assert_eq!(
        assess(&Secret::default(), &reference("", "", "")),
        Assessment::Incomplete {
            missing: vec!["key".into(), "key.pub".into()]
        }
    );
}

#[test]
fn string_data_is_read_and_wins_over_data() {
    let mut secret = secret_with(&[("key", "garbage"), ("key.pub", &key().public_armored)]);
    secret.string_data = Some(BTreeMap::from([(
        "key".to_string(),
        key().private_armored.clone(),
    )]));
    assert!(matches!(
        assess(&secret, &reference("", "", "")),
        Assessment::Valid { .. }
    ));
}

#[test]
fn passphrase_and_email_are_not_required() {
    let secret = secret_with(&[
        ("key", &key().private_armored),
        ("key.pub", &key().public_armored),
    ]);
    assert!(matches!(
        assess(&secret, &reference("", "", "")),
        Assessment::Valid { .. }
    ));
}

#[test]
fn unparsable_keys_are_invalid() {
    let secret = secret_with(&[("key", "not a key"), ("key.pub", &key().public_armored)]);
    assert_eq!(
        assess(&secret, &reference("", "", "")),
        Assessment::Invalid {
            reason: KeyError::NotArmored {
                part: KeyPart::Private,
                header: "PRIVATE KEY BLOCK"
            }
        }
    );
}

#[test]
fn non_utf8_data_is_invalid_not_a_panic() {
    let mut secret = secret_with(&[("key.pub", &key().public_armored)]);
    secret
        .data
        .as_mut()
        .unwrap()
        .insert("key".into(), ByteString(vec![0xff, 0xfe, 0x00, 0x01]));
    assert!(matches!(
        assess(&secret, &reference("", "", "")),
        Assessment::Invalid {
            reason: KeyError::NotArmored { .. }
        }
    ));
}

#[test]
fn mismatched_pair_is_invalid() {
    let other = keys::generate("other@example.org", KeyAlgorithm::Ed25519).unwrap();
    let secret = secret_with(&[
        ("key", &other.private_armored),
        ("key.pub", &key().public_armored),
    ]);
    assert!(matches!(
        assess(&secret, &reference("", "", "")),
        Assessment::Invalid {
            reason: KeyError::Mismatch { .. }
        }
    ));
}

#[test]
fn original_example_secret_with_truncated_keys_is_invalid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/original/backup-keys.secret.yaml"
    );
    let secret: Secret = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(matches!(
        assess(&secret, &reference("", "", "")),
        Assessment::Invalid {
            reason: KeyError::Unparsable { .. }
        }
    ));
}

#[test]
fn generated_manifest_parses_back_into_a_valid_key_secret() {
    let r = reference("private", "public", "");
    let yaml = generate_manifest(
        Some("backups"),
        &r,
        "backups@example.org",
        KeyAlgorithm::Ed25519,
    )
    .unwrap();
    assert!(yaml.contains("kind: Secret"), "{yaml}");
    let secret: Secret = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(secret.metadata.namespace.as_deref(), Some("backups"));
    assert_eq!(secret.metadata.name.as_deref(), Some("backup-keys"));
    let Assessment::Valid { fingerprint } = assess(&secret, &r) else {
        panic!("manifest does not hold a valid pair: {yaml}");
    };
    assert_eq!(
        secret.metadata.annotations.unwrap()["riotkit.org/gpg-fingerprint"],
        fingerprint.as_str()
    );
}

#[test]
fn generated_manifest_without_namespace_leaves_it_to_kubectl() {
    let yaml = generate_manifest(
        None,
        &reference("", "", ""),
        "backups@example.org",
        KeyAlgorithm::Ed25519,
    )
    .unwrap();
    let secret: Secret = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(secret.metadata.namespace, None);
}
