//! `render_documents` (what `render` prints) and golden files of the rendered objects.
//!
//! Goldens live in tests/golden/; regenerate them with `UPDATE_GOLDEN=1 cargo test -p template-engine`.
//! Without it, any difference fails the test.

use std::path::PathBuf;

use crd_types::{Operation, RequestedBackupAction};
use serde_json::Value;
use template_engine::{EXAMPLE, builtin_names, parse_documents, render_documents};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn original(file: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/original")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "golden file {} is missing: run UPDATE_GOLDEN=1 cargo test -p template-engine",
            path.display()
        )
    });
    pretty_assertions::assert_eq!(
        expected,
        actual,
        "rendered output differs from {}; if intended, regenerate with UPDATE_GOLDEN=1",
        path.display()
    );
}

/// Every object in the output has apiVersion, kind, metadata.name; returns the kinds.
fn kinds(out: &str) -> Vec<String> {
    let docs = parse_documents(out).unwrap();
    docs.iter()
        .map(|d| {
            assert!(d["apiVersion"].is_string(), "{d}");
            assert!(d["metadata"]["name"].is_string(), "{d}");
            d["kind"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn the_bundled_example_renders_every_child_with_secrets_redacted() {
    let docs = parse_documents(EXAMPLE).unwrap();
    let out = render_documents(&docs, None, None, false).unwrap();
    assert_eq!(
        kinds(&out),
        [
            "ConfigMap",
            "Secret",
            "ConfigMap",
            "Secret",
            "PodTemplate",
            "PodTemplate",
            "CronJob"
        ]
    );
    assert!(
        !out.contains("eyJhbGciOiJIUzI1NiJ9"),
        "the token never appears"
    );
    assert!(!out.contains("it's a secret"), "the password never appears");
    check_golden("example-pg15.yaml", &out);
}

#[test]
fn helper_secret_values_are_redacted_unless_show_secrets() {
    let example = EXAMPLE.replace(
        "    HelmValues:\n",
        "    HelmValues:\n      env: {MY_SETTING: visible-value}\n",
    );
    let docs = parse_documents(&example).unwrap();
    let hidden = render_documents(&docs, None, None, false).unwrap();
    let shown = render_documents(&docs, None, None, true).unwrap();
    // base64("visible-value")
    assert!(!hidden.contains("dmlzaWJsZS12YWx1ZQ=="));
    assert!(hidden.contains("# values redacted: pass --show-secrets to print them"));
    assert!(shown.contains("dmlzaWJsZS12YWx1ZQ=="));
}

#[test]
fn the_operation_override_moves_the_cron_job() {
    let docs = parse_documents(EXAMPLE).unwrap();
    let out = render_documents(&docs, Some(Operation::Restore), None, false).unwrap();
    let docs = parse_documents(&out).unwrap();
    let cj = docs.iter().find(|d| d["kind"] == "CronJob").unwrap();
    assert_eq!(cj["metadata"]["name"], "app1-restore");
}

#[test]
fn an_action_renders_only_its_executor() {
    let docs = parse_documents(EXAMPLE).unwrap();
    let rba: RequestedBackupAction = serde_saphyr::from_str(
        "apiVersion: riotkit.org/v1alpha1\nkind: RequestedBackupAction\nmetadata: {name: restore-now, namespace: default}\nspec: {action: restore, targetVersion: v2, scheduledBackupRef: {name: app1}}\n",
    )
    .unwrap();
    let out = render_documents(&docs, None, Some(&rba), false).unwrap();
    assert_eq!(kinds(&out), ["Job"]);
    check_golden("example-pg15-restore-action.yaml", &out);
    let wrong: RequestedBackupAction = serde_saphyr::from_str(
        "apiVersion: riotkit.org/v1alpha1\nkind: RequestedBackupAction\nmetadata: {name: x}\nspec: {action: backup, scheduledBackupRef: {name: other}}\n",
    )
    .unwrap();
    let e = render_documents(&docs, None, Some(&wrong), false).unwrap_err();
    assert!(e.to_string().contains("`other`"), "{e}");
}

#[test]
fn missing_inputs_are_reported_with_the_field_and_the_fix() {
    let docs = parse_documents(EXAMPLE).unwrap();
    let sb_only: Vec<Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ScheduledBackup")
        .cloned()
        .collect();
    let e = render_documents(&sb_only, None, None, false).unwrap_err();
    assert_eq!(e.reason(), "SecretNotFound");
    assert!(
        e.to_string()
            .contains("Secret `app1-backup-token` (spec.tokenSecretRef")
            && e.to_string().contains("-f"),
        "{e}"
    );
    let e = render_documents(&[], None, None, false).unwrap_err();
    assert!(e.to_string().contains("no ScheduledBackup"), "{e}");
    let bad = parse_documents(&EXAMPLE.replace("name: pg15", "name: pg99")).unwrap();
    let e = render_documents(&bad, None, None, false).unwrap_err();
    assert_eq!(e.reason(), "TemplateNotFound");
    assert!(e.to_string().contains("pg15"), "lists the built-ins: {e}");
}

#[test]
fn the_original_examples_render_with_their_go_template() {
    let mut docs = parse_documents(&original("scheduledbackup.yaml")).unwrap();
    docs.extend(parse_documents(&original("pg13.yaml")).unwrap());
    docs.extend(parse_documents(&original("backup-keys.secret.yaml")).unwrap());
    let out = render_documents(&docs, None, None, false).unwrap();
    assert_eq!(
        kinds(&out),
        [
            "ConfigMap",
            "Secret",
            "ConfigMap",
            "Secret",
            "PodTemplate",
            "PodTemplate",
            "CronJob"
        ]
    );
    // The original template pastes the password raw: it still works, with a warning on top.
    assert!(
        out.starts_with("# warning: template \"pg13\" prints the value of key `Params.password` of Secret `backup-keys`"),
        "{out}"
    );
    assert!(out.contains("--password 'this is a test'"));
    // The token is never pasted: the original template reads it into BM_AUTH_TOKEN, which the pod has already.
    assert!(!out.contains("aaaa-bbb-ccc"));
    check_golden("original-app1.yaml", &out);
    let triggered: RequestedBackupAction =
        serde_saphyr::from_str(&original("triggered-backup.yaml")).unwrap();
    let out = render_documents(&docs, None, Some(&triggered), false).unwrap();
    check_golden("original-triggered-backup.yaml", &out);
}

/// One ScheduledBackup per built-in template, with every variable set.
fn builtin_docs(name: &str) -> Vec<Value> {
    let params = if name == "tar" {
        "Params:\n      path: /var/lib/data\n".to_string()
    } else {
        "Params:\n      hostname: db.example.svc\n      db: app\n      user: backup\n".to_string()
    };
    let yaml = format!(
        r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {{name: {name}-app, namespace: backups, uid: 0a0a0a0a-1b1b-2c2c-3d3d-4e4e4e4e4e4e}}
spec:
  operation: backup
  cronJob: {{enabled: true, scheduleEvery: "15 1 * * *"}}
  collectionId: {name}-collection
  templateRef: {{kind: internal, name: {name}}}
  gpgKeySecretRef: {{secretName: keys, createIfNotExists: true, email: ops@example.org}}
  tokenSecretRef: {{secretName: token, tokenKey: token}}
  varsSecretRef: {{secretName: vars}}
  vars: |
    {params}    Repository:
      url: https://backups.example.org
---
apiVersion: v1
kind: Secret
metadata: {{name: token, namespace: backups}}
stringData: {{token: t0k3n}}
---
apiVersion: v1
kind: Secret
metadata: {{name: vars, namespace: backups}}
stringData: {{Params.password: "p'w"}}
"#
    );
    parse_documents(&yaml).unwrap()
}

#[test]
fn golden_files_of_every_builtin_template() {
    for name in builtin_names() {
        let out = render_documents(&builtin_docs(name), None, None, true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!out.contains("t0k3n") && !out.contains("p'w"), "{name}");
        check_golden(&format!("builtin-{name}.yaml"), &out);
    }
}
