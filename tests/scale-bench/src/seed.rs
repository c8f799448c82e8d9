//! The objects a bench run seeds: per ScheduledBackup its namespace (100 SBs each, so a namespace
//! holds as much at 10k as at 1k), token and vars Secrets, and the SB itself, shaped like the
//! bundled example (built-in `pg15` template, spread schedule, CronJob enabled, a key generated
//! per SB); then, once converged, the history a running cluster accumulates: finished Jobs of the
//! CronJob and a finished RequestedBackupAction with its Job.

use serde_json::{Value, json};

/// ScheduledBackups per namespace.
pub const SBS_PER_NAMESPACE: usize = 100;

/// Namespace and name of ScheduledBackup `i`.
pub fn sb_key(i: usize) -> (String, String) {
    (format!("team-{}", i / SBS_PER_NAMESPACE), format!("db-{i}"))
}

/// Namespaces needed for `n` SBs.
pub fn namespaces(n: usize) -> Vec<String> {
    (0..n.div_ceil(SBS_PER_NAMESPACE))
        .map(|k| format!("team-{k}"))
        .collect()
}

/// A Namespace.
pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// The token and vars Secrets of SB `i`.
pub fn secrets(i: usize) -> [Value; 2] {
    let (ns, name) = sb_key(i);
    [
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": format!("{name}-backup-token"), "namespace": ns},
            "stringData": {"token": "eyJhbGciOiJIUzI1NiJ9.example.token"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": format!("{name}-backup-vars"), "namespace": ns},
            "stringData": {"Params.password": format!("pw-{i}")}}),
    ]
}

/// ScheduledBackup `i`, as `examples/scheduledbackup-pg15.yaml` with its own names.
pub fn scheduled_backup(i: usize) -> Value {
    let (ns, name) = sb_key(i);
    json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "operation": "backup",
            "cronJob": {"enabled": true, "scheduleEvery": "H 2 * * *", "timeZone": "Europe/Berlin"},
            "collectionId": format!("{name}-db"),
            "templateRef": {"kind": "internal", "name": "pg15"},
            "gpgKeySecretRef": {"secretName": format!("{name}-backup-keys"), "createIfNotExists": true, "email": "backups@example.org"},
            "tokenSecretRef": {"secretName": format!("{name}-backup-token"), "tokenKey": "token"},
            "varsSecretRef": {"secretName": format!("{name}-backup-vars"), "importOnlyKeys": ["Params.password"]},
            "vars": format!("Params:\n  hostname: postgres.{name}.svc.cluster.local\n  port: 5432\n  db: {name}\n  user: backup\nRepository:\n  url: \"https://backups.example.org\"\nHelmValues:\n  resources:\n    requests: {{cpu: 100m, memory: 128Mi}}\n    limits: {{memory: 512Mi}}\n")
        }
    })
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A finished Job status as the job controller leaves it (`SuccessCriteriaMet` + `Complete`, or
/// `FailureTarget` + `Failed`), started at `start` and finished 5 minutes later.
fn finished_status(succeeded: bool, start: jiff::Timestamp) -> Value {
    let end = rfc3339(start + jiff::SignedDuration::from_mins(5));
    let cond = |t: &str, reason: &str| json!({"type": t, "status": "True", "reason": reason, "message": "", "lastProbeTime": end, "lastTransitionTime": end});
    if succeeded {
        json!({"startTime": rfc3339(start), "completionTime": end, "succeeded": 1, "ready": 0, "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [cond("SuccessCriteriaMet", "CompletionsReached"), cond("Complete", "CompletionsReached")]})
    } else {
        json!({"startTime": rfc3339(start), "failed": 1, "ready": 0, "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [cond("FailureTarget", "BackoffLimitExceeded"), cond("Failed", "BackoffLimitExceeded")]})
    }
}

/// Three finished Jobs of `cronjob` as its controller creates them (name `<cronjob>-<minutes>`,
/// the jobTemplate's labels and spec, owned by the CronJob, the scheduled-timestamp annotation):
/// the nights 3, 2 and 1 days before `now`, the oldest failed. Within the default history limits
/// (3 successful, 1 failed), so the cronjob controller keeps them all.
pub fn cronjob_history(cronjob: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let meta = &cronjob["metadata"];
    let template = &cronjob["spec"]["jobTemplate"];
    (1..=3)
        .map(|days_ago: i64| {
            let scheduled = now - jiff::SignedDuration::from_hours(24 * days_ago);
            let minutes = scheduled.as_second() / 60;
            json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {
                    "name": format!("{}-{minutes}", meta["name"].as_str().unwrap_or_default()),
                    "namespace": meta["namespace"],
                    "labels": template["metadata"]["labels"].clone(),
                    "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": rfc3339(scheduled)},
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": meta["name"],
                        "uid": meta["uid"], "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": template["spec"].clone(),
                "status": finished_status(days_ago != 3, scheduled)
            })
        })
        .collect()
}

/// A manual backup of SB `sb` (namespace, name) that ran 4 days before `now`.
pub fn action(namespace: &str, sb: &str) -> Value {
    json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
        "metadata": {"name": format!("{sb}-manual-1"), "namespace": namespace},
        "spec": {"action": "backup", "scheduledBackupRef": {"name": sb}}
    })
}

/// The finished Job of `action` (as stored, with its uid) as the action-controller creates it:
/// named like the action, labelled with it, owned by it, from the CronJob's job template.
pub fn action_job(action: &Value, cronjob: &Value, now: jiff::Timestamp) -> Value {
    let meta = &action["metadata"];
    let template = &cronjob["spec"]["jobTemplate"];
    let name = meta["name"].as_str().unwrap_or_default();
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[crd_types::constants::labels::REQUESTED_BACKUP_ACTION] =
        json!(crd_types::names::label_value(name));
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": crd_types::names::job_name(name), "namespace": meta["namespace"], "labels": labels,
            "ownerReferences": [{"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
                "name": name, "uid": meta["uid"], "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": template["spec"].clone(),
        "status": finished_status(true, now - jiff::SignedDuration::from_hours(96))
    })
}

/// A ScheduledBackup's condition `type_` is `True`.
pub fn condition_true(sb: &Value, type_: &str) -> bool {
    sb["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    })
}

/// The fields a client sends when it creates `object` (no server-set metadata, no status).
pub fn as_created(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(meta) = o["metadata"].as_object_mut() {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
    }
    if let Some(map) = o.as_object_mut() {
        map.remove("status");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_holds_one_hundred_scheduled_backups() {
        assert_eq!(sb_key(0).0, "team-0");
        assert_eq!(sb_key(99).0, "team-0");
        assert_eq!(sb_key(100), ("team-1".to_owned(), "db-100".to_owned()));
        assert_eq!(namespaces(1000).len(), 10);
        assert_eq!(namespaces(20), ["team-0"]);
    }

    #[test]
    fn the_seeded_objects_are_accepted_and_defaulted_by_the_fake_with_the_crds() {
        let mut builder = fake_apiserver::FakeApiServer::builder();
        for crd in crd_types::all_crds() {
            builder = builder.crd_defaults_from_yaml(&serde_json::to_string(&crd).unwrap());
        }
        let fake = builder.build();
        for s in secrets(7) {
            fake.insert(s).unwrap();
        }
        let sb = fake.insert(scheduled_backup(7)).unwrap();
        // Parses as the controllers' type, so the bench exercises the real spec and not a typo.
        let typed: crd_types::ScheduledBackup = serde_json::from_value(sb).unwrap();
        assert!(typed.spec.gpg_key_secret_ref.create_if_not_exists);
        let stored = fake.insert(action("team-0", "db-7")).unwrap();
        assert!(
            stored["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| !u.is_empty())
        );
    }

    #[test]
    fn cronjob_history_is_two_successes_after_one_failure_owned_by_the_cronjob() {
        let cj = json!({"metadata": {"name": "db-1-backup", "namespace": "team-0", "uid": "u-cj"},
            "spec": {"jobTemplate": {"metadata": {"labels": {"riotkit.org/scheduled-backup": "db-1"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}});
        let now: jiff::Timestamp = "2026-03-10T12:00:00Z".parse().unwrap();
        let jobs = cronjob_history(&cj, now);
        let outcome = |j: &Value| {
            j["status"]["conditions"][1]["type"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            jobs.iter().map(outcome).collect::<Vec<_>>(),
            ["Complete", "Complete", "Failed"]
        );
        assert_eq!(jobs[0]["metadata"]["ownerReferences"][0]["uid"], "u-cj");
        assert_eq!(
            jobs[0]["metadata"]["labels"]["riotkit.org/scheduled-backup"],
            "db-1"
        );
        // `<cronjob>-<minutes since epoch>` of the night before.
        assert_eq!(
            jobs[0]["metadata"]["name"],
            format!("db-1-backup-{}", (now.as_second() - 86_400) / 60)
        );
    }

    #[test]
    fn what_a_client_creates_has_no_server_fields_or_status() {
        let o = json!({"kind": "ConfigMap", "metadata": {"name": "c", "uid": "u", "resourceVersion": "5",
            "ownerReferences": [{"uid": "x"}]}, "data": {"a": "b"}, "status": {"x": 1}});
        assert_eq!(
            as_created(&o),
            json!({"kind": "ConfigMap", "metadata": {"name": "c", "ownerReferences": [{"uid": "x"}]}, "data": {"a": "b"}})
        );
    }
}
