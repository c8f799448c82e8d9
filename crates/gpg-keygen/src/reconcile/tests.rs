use std::collections::BTreeMap;

use crd_types::ScheduledBackupSpec;
use k8s_openapi::ByteString;

use super::*;

fn backup(namespace: &str, name: &str, secret_name: &str) -> Arc<ScheduledBackup> {
    let spec: ScheduledBackupSpec = serde_json::from_value(json!({
        "operation": "backup",
        "templateRef": {"name": "pg15", "kind": "internal"},
        "gpgKeySecretRef": {"secretName": secret_name},
        "tokenSecretRef": {"secretName": "token"},
    }))
    .unwrap();
    let mut sb = ScheduledBackup::new(name, spec);
    sb.metadata.namespace = Some(namespace.to_string());
    Arc::new(sb)
}

fn reference(secret_name: &str) -> GpgKeySecretRef {
    backup("ns", "sb", secret_name)
        .spec
        .gpg_key_secret_ref
        .clone()
}

#[test]
fn secret_maps_to_the_backups_in_its_namespace_that_reference_it() {
    let backups = vec![
        backup("a", "uses-keys", "keys"),
        backup("a", "also-uses-keys", "keys"),
        backup("a", "other-secret", "other"),
        backup("b", "same-name-other-namespace", "keys"),
    ];
    let index = controller_runtime::index::ReverseIndex::new(key_secret_of);
    for sb in backups {
        index.observe(&kube::runtime::watcher::Event::Apply(sb.as_ref().clone()));
    }
    let mut names: Vec<String> = index
        .get(&secret_key(Some("a"), "keys"))
        .into_iter()
        .map(|r| r.name)
        .collect();
    names.sort();
    assert_eq!(names, vec!["also-uses-keys", "uses-keys"]);
    assert!(index.get(&secret_key(Some("c"), "keys")).is_empty());
}

#[test]
fn status_patch_carries_only_the_gpg_key_ready_condition() {
    let condition = conditions::condition(
        &[],
        condition_types::GPG_KEY_READY,
        "True",
        reasons::KEY_SECRET_VALID,
        "ok",
        Some(3),
        Time("2025-01-01T00:00:00Z".parse().unwrap()),
    );
    let patch = status_patch(&condition);
    assert_eq!(patch["apiVersion"], "riotkit.org/v1alpha1");
    assert_eq!(patch["kind"], "ScheduledBackup");
    assert_eq!(patch.as_object().unwrap().len(), 3, "{patch}");
    let status = patch["status"].as_object().unwrap();
    assert_eq!(status.len(), 1, "only conditions: {patch}");
    let conditions = status["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0]["type"], "GPGKeyReady");
    assert_eq!(conditions[0]["observedGeneration"], 3);
    // Identical input, identical bytes: what makes a re-apply a no-op.
    assert_eq!(
        serde_json::to_vec(&patch).unwrap(),
        serde_json::to_vec(&status_patch(&condition.clone())).unwrap()
    );
}

#[test]
fn incomplete_message_names_secret_missing_and_present_keys_and_the_fix() {
    let secret = Secret {
        data: Some(BTreeMap::from([
            ("key".to_string(), ByteString(b"x".to_vec())),
            ("key.pub".to_string(), ByteString(b"y".to_vec())),
        ])),
        ..Secret::default()
    };
    let verdict = Verdict::from_assessment(
        Assessment::Incomplete {
            missing: vec!["private".into(), "public".into()],
        },
        &secret,
        &reference("backup-keys"),
    );
    let (status, reason, message) = verdict.condition_parts(&reference("backup-keys"));
    assert_eq!((status, reason), ("False", "KeySecretIncomplete"));
    for needle in [
        "\"backup-keys\"",
        "\"private\", \"public\"",
        "it has: \"key\", \"key.pub\"",
        "never modifies",
        "spec.gpgKeySecretRef",
    ] {
        assert!(message.contains(needle), "{needle} not in {message}");
    }
}

#[test]
fn invalid_message_names_the_data_keys_and_the_problem() {
    let verdict = Verdict::from_assessment(
        Assessment::Invalid {
            reason: keys::KeyError::Unparsable {
                part: keys::KeyPart::Private,
            },
        },
        &Secret::default(),
        &reference("backup-keys"),
    );
    let (status, reason, message) = verdict.condition_parts(&reference("backup-keys"));
    assert_eq!((status, reason), ("False", "KeySecretInvalid"));
    assert!(message.contains("\"key\" (private)"), "{message}");
    assert!(message.contains("does not parse"), "{message}");
}

#[test]
fn verdicts_map_to_success_or_user_input_errors() {
    let fingerprint = keys::generate("a@example.org", KeyAlgorithm::Ed25519)
        .unwrap()
        .fingerprint;
    assert!(Verdict::Valid(fingerprint).into_result().is_ok());
    for (verdict, reason) in [
        (Verdict::NotFound("m".into()), "KeySecretNotFound"),
        (Verdict::Incomplete("m".into()), "KeySecretIncomplete"),
        (Verdict::Invalid("m".into()), "KeySecretInvalid"),
    ] {
        let err = verdict.into_result().unwrap_err();
        assert_eq!(err.reason(), reason);
        assert!(err.is_user_input());
    }
}
