//! The action-controller against the in-process fake API server: one executor per action (across crashes, with
//! adoption and collisions), built from the ScheduledBackup's PodTemplate; phase transitions driven the way the
//! Kubernetes Job controller drives a Job; waiting for the ScheduledBackup and for its PodTemplate; Argo Workflows
//! with and without its CRD; and zero writes after convergence.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use fake_apiserver::Verb;
use fake_apiserver::testing::{Outcome, finish_job_pod};
use serde_json::{Value, json};
use support::*;

fn job(server: &fake_apiserver::FakeApiServer, name: &str) -> Option<Value> {
    server.get("jobs", NS, name)
}

async fn wait_job(server: &fake_apiserver::FakeApiServer, name: &str) -> Value {
    let found = server
        .wait_for(Duration::from_secs(10), |s| {
            s.get("jobs", NS, name).is_some()
        })
        .await;
    assert!(
        found.is_ok(),
        "Job {name} was not created; actions: {:#?}",
        server.list("requestedbackupactions")
    );
    job(server, name).unwrap()
}

/// Ends the running Pod of Job `name` as a kubelet would; the fake's job controller then updates the Job.
async fn finish_pod(server: &fake_apiserver::FakeApiServer, name: &str, outcome: Outcome) {
    finish_job_pod(server.client(), NS, name, outcome)
        .await
        .unwrap();
}

fn failed(message: &str) -> Outcome {
    Outcome::Failed {
        exit_code: 1,
        message: message.into(),
    }
}

/// Waits until the Job satisfies `predicate` (the job controller writes asynchronously).
async fn wait_job_state(
    server: &fake_apiserver::FakeApiServer,
    name: &str,
    predicate: impl Fn(&Value) -> bool,
) -> Value {
    server
        .wait_for(Duration::from_secs(10), |s| {
            s.get("jobs", NS, name).is_some_and(|j| predicate(&j))
        })
        .await
        .unwrap_or_else(|_| panic!("Job {name}: {:#?}", server.get("jobs", NS, name)));
    server.get("jobs", NS, name).unwrap()
}

#[tokio::test]
async fn a_backup_action_gets_exactly_one_owned_job_and_then_makes_no_writes() {
    let server = server(false);
    seed(&server);
    let created = server
        .insert(action("backup-now", json!({"action": "backup"})))
        .unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let controller = start(server.client());

    let job = wait_job(&server, "backup-now").await;
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["uid"].as_str(), owner["controller"].as_bool()),
        (Some(uid.as_str()), Some(true)),
        "{job:#}"
    );
    assert_eq!(owner["kind"], "RequestedBackupAction");
    assert_eq!(
        job["metadata"]["labels"]["riotkit.org/requested-backup-action"],
        "backup-now"
    );
    assert_eq!(job["metadata"]["labels"]["riotkit.org/operation"], "backup");

    let rba = wait_action(&server, "backup-now", "processed and Pending", |a| {
        a["status"]["processed"] == true
    })
    .await;
    assert_eq!(rba["status"]["phase"], "Pending");
    assert_eq!(ready_reason(&rba).as_deref(), Some("Pending"));
    assert_eq!(
        rba["status"]["ownedReferences"],
        json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "backup-now"}])
    );
    let health = &rba["status"]["childrenResourcesHealth"][0];
    assert_eq!(
        (health["succeeded"].as_bool(), health["running"].as_bool()),
        (Some(false), Some(false)),
        "not started is not succeeded"
    );
    assert_eq!(event_reasons(&server, "backup-now"), vec!["JobCreated"]);

    assert_quiet(&server, Duration::from_millis(500), "a converged action").await;
    assert_eq!(server.list_in("jobs", NS).len(), 1);
    let writes = |resource: &str, verb: &str| {
        counter(
            &controller.registry,
            "backup_maker_api_writes_total",
            &[("resource", resource), ("verb", verb)],
        )
    };
    assert_eq!(writes("jobs", "create"), 1.0);
    assert!(writes("requestedbackupactions/status", "apply") >= 1.0);
    assert!(
        counter(
            &controller.registry,
            "backup_maker_reconcile_total",
            &[("result", "success")]
        ) >= 1.0
    );
    assert_no_secret_values(&server);
    assert!(
        controller.health.is_ready(),
        "readiness flips once the caches are synced"
    );
    controller.stop().await;
}

#[tokio::test]
async fn the_action_phase_follows_the_job_conditions_to_succeeded_and_then_stops_writing() {
    let server = server(false);
    seed(&server);
    server
        .insert(action("b1", json!({"action": "backup"})))
        .unwrap();
    let controller = start(server.client());
    wait_job(&server, "b1").await;

    // The job controller starts a Pod and marks the Job active.
    let started = wait_job_state(&server, "b1", |j| j["status"]["active"] == 1).await;
    let rba = wait_action(&server, "b1", "Running", |a| {
        a["status"]["phase"] == "Running"
    })
    .await;
    assert_eq!(rba["status"]["startTime"], started["status"]["startTime"]);
    assert_eq!(rba["status"]["childrenResourcesHealth"][0]["running"], true);

    // A failed pod retried within backoffLimit: still running, not failed.
    finish_pod(&server, "b1", failed("transient")).await;
    wait_job_state(&server, "b1", |j| {
        j["status"]["failed"] == 1 && j["status"]["active"] == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rba = server.get("requestedbackupactions", NS, "b1").unwrap();
    assert_eq!(rba["status"]["phase"], "Running");
    assert_eq!(rba["status"]["healthy"], true);

    finish_pod(&server, "b1", Outcome::Succeeded).await;
    let done = wait_job_state(&server, "b1", |j| j["status"]["completionTime"].is_string()).await;
    let rba = wait_action(&server, "b1", "Succeeded", |a| {
        a["status"]["phase"] == "Succeeded"
    })
    .await;
    assert_eq!(
        rba["status"]["completionTime"],
        done["status"]["completionTime"]
    );
    assert_eq!(condition(&rba, "Complete").unwrap()["status"], "True");
    assert_eq!(rba["status"]["healthy"], true);
    assert_eq!(
        event_reasons(&server, "b1"),
        vec!["JobCreated", "JobSucceeded"]
    );

    // Terminal: nothing the Job does any more causes a write.
    assert_quiet(&server, Duration::from_millis(300), "a succeeded action").await;
    server
        .modify("jobs", NS, "b1", |j| {
            j["metadata"]["annotations"] = json!({"touched": "yes"})
        })
        .unwrap();
    server
        .modify("requestedbackupactions", NS, "b1", |a| {
            a["metadata"]["labels"] = json!({"touched": "yes"})
        })
        .unwrap();
    assert_quiet(
        &server,
        Duration::from_millis(300),
        "a succeeded action after its Job and itself changed",
    )
    .await;
    controller.stop().await;
}

#[tokio::test]
async fn a_job_that_exhausts_its_backoff_limit_fails_the_action_with_the_job_message() {
    let server = server(false);
    seed(&server);
    server
        .insert(action("b2", json!({"action": "backup"})))
        .unwrap();
    let controller = start(server.client());
    wait_job(&server, "b2").await;
    // Every Pod fails, until the Job's backoff limit is exhausted.
    let job_failed = |j: &Value| {
        j["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Failed" && c["status"] == "True")
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let failed_job = loop {
        let job = server.get("jobs", NS, "b2").unwrap();
        if job_failed(&job) {
            break job;
        }
        let running = server.list_in("pods", NS).into_iter().any(|p| {
            p["metadata"]["labels"]["job-name"] == "b2"
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        });
        if running {
            finish_pod(&server, "b2", failed("pg_dump: connection refused")).await;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let failed_at = failed_job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap()["lastTransitionTime"]
        .clone();
    let rba = wait_action(&server, "b2", "Failed", |a| {
        a["status"]["phase"] == "Failed"
    })
    .await;
    let failed = condition(&rba, "Failed").unwrap();
    assert_eq!(
        (failed["status"].as_str(), failed["reason"].as_str()),
        (Some("True"), Some("BackoffLimitExceeded"))
    );
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("Job has reached the specified backoff limit"),
        "{failed}"
    );
    // Why, without `kubectl logs`: the failed container's termination message.
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .ends_with("; output: pg_dump: connection refused"),
        "{failed}"
    );
    assert_eq!(rba["status"]["completionTime"], failed_at);
    assert_eq!(rba["status"]["healthy"], false);
    assert_eq!(rba["status"]["childrenResourcesHealth"][0]["failed"], true);
    let events = server.events_for("b2");
    let job_failed = events
        .iter()
        .find(|e| e["reason"] == "JobFailed")
        .expect("a JobFailed event");
    assert_eq!(job_failed["type"], "Warning");
    assert!(
        job_failed["note"]
            .as_str()
            .unwrap_or_default()
            .contains("BackoffLimitExceeded"),
        "{job_failed:#}"
    );
    assert!(
        job_failed["note"]
            .as_str()
            .unwrap_or_default()
            .contains("output: pg_dump: connection refused"),
        "{job_failed:#}"
    );
    assert_quiet(&server, Duration::from_millis(300), "a failed action").await;
    controller.stop().await;
}

#[tokio::test]
async fn a_crash_between_job_creation_and_status_write_never_creates_a_second_job() {
    let server = server(false);
    seed(&server);
    server
        .insert(action("crashy", json!({"action": "backup"})))
        .unwrap();

    // First life: the Job gets created, every status write fails, the controller retries and then dies.
    let faulty = Faulty::new(&server);
    faulty.fail_status_writes.store(true, Ordering::SeqCst);
    let first = start(faulty.client());
    wait_job(&server, "crashy").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while faulty.failed_status_writes.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the controller never tried to write status"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.abort().await;
    let rba = server.get("requestedbackupactions", NS, "crashy").unwrap();
    assert!(
        rba["status"].is_null() || rba["status"]["processed"] != true,
        "the status write never succeeded: {rba:#}"
    );

    // Second life: a fresh controller (empty caches) must adopt the Job, not create another.
    faulty.fail_status_writes.store(false, Ordering::SeqCst);
    let second = start(server.client());
    let rba = wait_action(&server, "crashy", "processed", |a| {
        a["status"]["processed"] == true
    })
    .await;
    assert_eq!(rba["status"]["ownedReferences"][0]["name"], "crashy");
    assert_eq!(
        server.list_in("jobs", NS).len(),
        1,
        "exactly one Job across the crash"
    );
    assert_eq!(
        event_reasons(&server, "crashy")
            .iter()
            .filter(|r| *r == "JobCreated")
            .count(),
        1
    );
    assert_quiet(&server, Duration::from_millis(300), "the adopted action").await;
    second.stop().await;
}

#[tokio::test]
async fn a_job_already_owned_by_the_action_is_adopted_without_a_create() {
    let server = server(false);
    seed(&server);
    let created = server
        .insert(action("adopt-me", json!({"action": "backup"})))
        .unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap();
    server
        .insert(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "adopt-me", "namespace": NS,
                         "labels": {"riotkit.org/requested-backup-action": "adopt-me"},
                         "ownerReferences": [{"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
                                              "name": "adopt-me", "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "busybox"}], "restartPolicy": "Never"}}},
            "status": {"startTime": "2026-02-01T02:00:00Z", "active": 1},
        }))
        .unwrap();
    let controller = start(server.client());
    let rba = wait_action(&server, "adopt-me", "Running", |a| {
        a["status"]["phase"] == "Running"
    })
    .await;
    assert_eq!(rba["status"]["processed"], true);
    assert_eq!(
        server.write_count("jobs", Verb::Create),
        0,
        "{:#?}",
        server.write_log()
    );
    assert!(!event_reasons(&server, "adopt-me").contains(&"JobCreated".to_string()));
    controller.stop().await;
}

#[tokio::test]
async fn a_foreign_job_with_the_executor_name_is_a_name_collision_and_is_never_adopted() {
    let server = server(false);
    seed(&server);
    server
        .insert(action("taken", json!({"action": "backup"})))
        .unwrap();
    let foreign = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "taken", "namespace": NS},
        "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "busybox"}], "restartPolicy": "Never"}}},
    });
    server.insert(foreign).unwrap();
    let controller = start(server.client());
    let rba = wait_action(&server, "taken", "NameCollision", |a| {
        ready_reason(a).as_deref() == Some("NameCollision")
    })
    .await;
    let ready = condition(&rba, "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("Job default/taken"),
        "{ready}"
    );
    assert_eq!(
        rba["status"]["phase"], "Pending",
        "not terminal: the user may remove the foreign Job"
    );
    assert_ne!(rba["status"]["processed"], true);
    let job = job(&server, "taken").unwrap();
    assert!(
        job["metadata"]["ownerReferences"].is_null(),
        "the foreign Job is untouched: {job:#}"
    );
    assert!(event_reasons(&server, "taken").contains(&"NameCollision".to_string()));
    controller.stop().await;
}

#[tokio::test]
async fn an_action_waits_for_its_scheduled_backup_to_exist_and_be_ready_then_runs() {
    let server = server(false);
    server
        .insert(action("early", json!({"action": "backup"})))
        .unwrap();
    let controller = start(server.client());

    let rba = wait_action(&server, "early", "ScheduledBackupNotFound", |a| {
        ready_reason(a).as_deref() == Some("ScheduledBackupNotFound")
    })
    .await;
    assert_eq!(rba["status"]["phase"], "Pending");
    assert!(
        condition(&rba, "Ready").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("default/app1")
    );
    assert_quiet(
        &server,
        Duration::from_millis(300),
        "an action waiting for a missing ScheduledBackup",
    )
    .await;

    server.insert(scheduled_backup(false)).unwrap();
    seed_pod_template(&server, "backup");
    let rba = wait_action(&server, "early", "WaitingForScheduledBackup", |a| {
        ready_reason(a).as_deref() == Some("WaitingForScheduledBackup")
    })
    .await;
    assert!(
        condition(&rba, "Ready").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("WaitingForKeySecret"),
        "{rba:#}"
    );
    assert!(job(&server, "early").is_none());

    server
        .modify("scheduledbackups", NS, SB, |sb| {
            sb["status"]["conditions"] = json!([ready_condition(true)])
        })
        .unwrap();
    wait_job(&server, "early").await;
    wait_action(&server, "early", "processed", |a| {
        a["status"]["processed"] == true
    })
    .await;
    assert_eq!(
        event_reasons(&server, "early"),
        vec![
            "ScheduledBackupNotFound",
            "WaitingForScheduledBackup",
            "JobCreated"
        ]
    );
    let waits = |reason: &str| {
        counter(
            &controller.registry,
            "backup_maker_reconcile_errors_total",
            &[("reason", reason)],
        )
    };
    assert!(
        waits("ScheduledBackupNotFound") >= 1.0 && waits("WaitingForScheduledBackup") >= 1.0,
        "waiting counts by reason"
    );
    assert_no_secret_values(&server);
    controller.stop().await;
}

#[tokio::test]
async fn a_restore_with_target_version_and_ttl_reaches_the_job() {
    let server = server(false);
    seed(&server);
    // HelmValues.backoffLimit / activeDeadlineSeconds, as the scheduled-controller hands them off.
    server
        .modify("podtemplates", NS, "app1-restore", |pt| {
            pt["metadata"]["annotations"] = json!({
                "riotkit.org/backoff-limit": "0",
                "riotkit.org/active-deadline-seconds": "120",
            })
        })
        .unwrap();
    server
        .insert(action(
            "restore-v3",
            json!({"action": "restore", "targetVersion": "v3", "ttlSecondsAfterFinished": 300}),
        ))
        .unwrap();
    let controller = start(server.client());
    let job = wait_job(&server, "restore-v3").await;
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 300);
    assert_eq!(
        (
            &job["spec"]["backoffLimit"],
            &job["spec"]["activeDeadlineSeconds"]
        ),
        (&json!(0), &json!(120))
    );
    let pod_template = server.get("podtemplates", NS, "app1-restore").unwrap();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["command"], pod_template["template"]["spec"]["containers"][0]["command"],
        "the restore PodTemplate's pod runs"
    );
    assert_eq!(
        job["spec"]["template"]["spec"]["volumes"],
        pod_template["template"]["spec"]["volumes"]
    );
    assert_eq!(
        job["metadata"]["labels"]["riotkit.org/operation"],
        "restore"
    );
    let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        env.iter()
            .any(|e| e["name"] == "RESTORE_VERSION" && e["value"] == "v3"),
        "{env:#?}"
    );
    let text = job.to_string();
    assert!(
        !text.contains("it's a secret"),
        "Secret values never end up in the Job spec"
    );
    controller.stop().await;
}

#[tokio::test]
async fn a_target_version_on_a_backup_fails_the_action_for_good_without_a_job() {
    let server = server(false);
    seed(&server);
    server
        .insert(action(
            "bad",
            json!({"action": "backup", "targetVersion": "v1"}),
        ))
        .unwrap();
    let controller = start(server.client());
    let rba = wait_action(&server, "bad", "Failed", |a| {
        a["status"]["phase"] == "Failed"
    })
    .await;
    assert_eq!(condition(&rba, "Failed").unwrap()["reason"], "InvalidSpec");
    assert!(job(&server, "bad").is_none());
    assert_eq!(event_reasons(&server, "bad"), vec!["InvalidSpec"]);
    server
        .modify("requestedbackupactions", NS, "bad", |a| {
            a["metadata"]["annotations"] = json!({"poke": "1"})
        })
        .unwrap();
    assert_quiet(
        &server,
        Duration::from_millis(300),
        "a terminal invalid action",
    )
    .await;
    controller.stop().await;
}

#[tokio::test]
async fn an_action_waits_for_its_pod_template_and_its_watch_starts_it() {
    // A Ready ScheduledBackup whose template has no restore script: the scheduled-controller applies no
    // app1-restore PodTemplate, so a restore waits, quietly, until one appears.
    let server = server(false);
    server.insert(scheduled_backup(true)).unwrap();
    seed_pod_template(&server, "backup");
    server
        .insert(action("restore-1", json!({"action": "restore"})))
        .unwrap();
    let controller = start(server.client());

    let rba = wait_action(&server, "restore-1", "WaitingForPodTemplate", |a| {
        ready_reason(a).as_deref() == Some("WaitingForPodTemplate")
    })
    .await;
    assert_eq!(rba["status"]["phase"], "Pending", "not terminal");
    let message = condition(&rba, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("waiting for PodTemplate default/app1-restore, which the scheduled-controller applies for the restore operation of ScheduledBackup default/app1: it does not exist"),
        "{message}"
    );
    assert!(
        message.contains("has a restore script"),
        "what to do: {message}"
    );
    assert!(job(&server, "restore-1").is_none());
    let events = server.events_for("restore-1");
    let waiting = events
        .iter()
        .find(|e| e["reason"] == "WaitingForPodTemplate")
        .expect("a WaitingForPodTemplate event");
    assert_eq!(
        waiting["type"], "Normal",
        "waiting for the other controller is normal"
    );
    assert_quiet(
        &server,
        Duration::from_millis(300),
        "an action waiting for its PodTemplate",
    )
    .await;

    // The template got a restore script; the scheduled-controller applies the PodTemplate. Its watch (not the
    // 10-minute resync) starts the action.
    seed_pod_template(&server, "restore");
    let job = wait_job(&server, "restore-1").await;
    assert_eq!(
        job["metadata"]["labels"]["riotkit.org/operation"],
        "restore"
    );
    assert_eq!(
        event_reasons(&server, "restore-1"),
        vec!["WaitingForPodTemplate", "JobCreated"]
    );
    controller.stop().await;
}

#[tokio::test]
async fn a_pod_template_the_scheduled_backup_does_not_control_is_never_run() {
    let server = server(false);
    server.insert(scheduled_backup(true)).unwrap();
    let mut foreign = pod_templates(&server, SB, None)
        .into_iter()
        .find(|p| p["metadata"]["name"] == "app1-backup")
        .unwrap();
    foreign["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
    foreign["template"]["spec"]["containers"][0]["image"] = json!("evil/exfiltrate");
    server.insert(foreign).unwrap();
    server
        .insert(action("b1", json!({"action": "backup"})))
        .unwrap();
    let controller = start(server.client());
    let rba = wait_action(&server, "b1", "WaitingForPodTemplate", |a| {
        ready_reason(a).as_deref() == Some("WaitingForPodTemplate")
    })
    .await;
    assert!(
        condition(&rba, "Ready").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("is not controlled by ScheduledBackup default/app1"),
        "{rba:#}"
    );
    assert!(server.list("jobs").is_empty(), "the foreign pod never runs");

    // The scheduled-controller replaces it with its own: the action proceeds.
    server.delete("podtemplates", NS, "app1-backup").unwrap();
    seed_pod_template(&server, "backup");
    let job = wait_job(&server, "b1").await;
    assert_ne!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "evil/exfiltrate"
    );
    controller.stop().await;
}

#[tokio::test]
async fn a_pod_template_with_a_malformed_job_setting_waits_until_it_is_corrected() {
    let server = server(false);
    seed(&server);
    server
        .modify("podtemplates", NS, "app1-backup", |pt| {
            pt["metadata"]["annotations"]["riotkit.org/backoff-limit"] = json!("two")
        })
        .unwrap();
    server
        .insert(action("b1", json!({"action": "backup"})))
        .unwrap();
    let controller = start(server.client());
    let rba = wait_action(&server, "b1", "InvalidPodTemplate", |a| {
        ready_reason(a).as_deref() == Some("InvalidPodTemplate")
    })
    .await;
    let message = condition(&rba, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("PodTemplate default/app1-backup")
            && message.contains("riotkit.org/backoff-limit"),
        "{message}"
    );
    assert!(job(&server, "b1").is_none());
    assert_eq!(rba["status"]["phase"], "Pending");

    // The scheduled-controller's drift correction wakes the action up through the PodTemplate watch.
    server
        .modify("podtemplates", NS, "app1-backup", |pt| {
            pt["metadata"]["annotations"]["riotkit.org/backoff-limit"] = json!("3")
        })
        .unwrap();
    let job = wait_job(&server, "b1").await;
    assert_eq!(job["spec"]["backoffLimit"], 3);
    controller.stop().await;
}

#[tokio::test]
async fn workflow_mode_without_argo_installed_says_so_and_creates_nothing() {
    let server = server(false);
    seed(&server);
    server
        .insert(action(
            "wf",
            json!({"action": "backup", "kindType": "Workflow"}),
        ))
        .unwrap();
    let controller = start(server.client());
    let rba = wait_action(&server, "wf", "ExecutorNotInstalled", |a| {
        ready_reason(a).as_deref() == Some("ExecutorNotInstalled")
    })
    .await;
    let message = condition(&rba, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("Argo Workflows is not installed (no workflows.argoproj.io CRD): install it or use kindType: Job"),
        "{message}"
    );
    assert_eq!(rba["status"]["phase"], "Pending");
    assert!(job(&server, "wf").is_none());
    assert_eq!(event_reasons(&server, "wf"), vec!["ExecutorNotInstalled"]);
    assert_quiet(
        &server,
        Duration::from_millis(300),
        "an action waiting for Argo",
    )
    .await;
    controller.stop().await;
}

#[tokio::test]
async fn workflow_mode_with_argo_creates_one_owned_workflow_and_follows_its_phase() {
    let server = server(true);
    seed(&server);
    let created = server
        .insert(action(
            "wf",
            json!({"action": "backup", "kindType": "Workflow"}),
        ))
        .unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let controller = start(server.client());

    let ok = server
        .wait_for(Duration::from_secs(10), |s| {
            s.get("workflows", NS, "wf").is_some()
        })
        .await;
    assert!(
        ok.is_ok(),
        "no Workflow: {:#?}",
        server.get("requestedbackupactions", NS, "wf")
    );
    let wf = server.get("workflows", NS, "wf").unwrap();
    assert_eq!(wf["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    let pod_template = server.get("podtemplates", NS, "app1-backup").unwrap();
    let template = &wf["spec"]["templates"][0];
    assert_eq!(
        template["container"]["image"], pod_template["template"]["spec"]["containers"][0]["image"],
        "the backup PodTemplate's container runs in the Workflow"
    );
    assert_eq!(
        template["retryStrategy"]["limit"],
        pod_template["metadata"]["annotations"]["riotkit.org/backoff-limit"]
    );
    assert_eq!(
        wf["spec"]["volumes"],
        pod_template["template"]["spec"]["volumes"]
    );
    assert_eq!(wf["metadata"]["ownerReferences"][0]["controller"], true);
    assert!(job(&server, "wf").is_none(), "a Workflow action has no Job");
    let rba = wait_action(&server, "wf", "processed", |a| {
        a["status"]["processed"] == true
    })
    .await;
    assert_eq!(
        rba["status"]["ownedReferences"],
        json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": "wf"}])
    );

    // Argo's controller moves the Workflow along; its watch (not the 30 s poll) brings the action along.
    server
        .modify("workflows", NS, "wf", |w| {
            w["status"] = json!({"phase": "Running", "startedAt": "2026-02-01T02:00:00Z"})
        })
        .unwrap();
    let rba = wait_action(&server, "wf", "Running", |a| {
        a["status"]["phase"] == "Running"
    })
    .await;
    assert_eq!(rba["status"]["startTime"], "2026-02-01T02:00:00Z");
    server
        .modify("workflows", NS, "wf", |w| {
            w["status"] = json!({"phase": "Error", "message": "child 'main' exited with 3",
                                 "startedAt": "2026-02-01T02:00:00Z", "finishedAt": "2026-02-01T02:01:00Z"})
        })
        .unwrap();
    let rba = wait_action(&server, "wf", "Failed", |a| {
        a["status"]["phase"] == "Failed"
    })
    .await;
    assert!(
        condition(&rba, "Failed").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("exited with 3")
    );
    assert_eq!(rba["status"]["completionTime"], "2026-02-01T02:01:00Z");
    assert_eq!(server.list_in("workflows", NS).len(), 1);
    controller.stop().await;
}

#[tokio::test]
async fn deleting_the_action_deletes_its_job() {
    let server = server(false);
    seed(&server);
    server
        .insert(action("gone", json!({"action": "backup"})))
        .unwrap();
    let controller = start(server.client());
    wait_job(&server, "gone").await;
    wait_action(&server, "gone", "processed", |a| {
        a["status"]["processed"] == true
    })
    .await;
    server.delete("requestedbackupactions", NS, "gone").unwrap();
    let deleted = server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("jobs", NS, "gone").is_none()
        })
        .await;
    assert!(
        deleted.is_ok(),
        "the Job is garbage-collected with its owner"
    );
    controller.stop().await;
}

#[tokio::test]
async fn a_job_deleted_before_its_result_was_seen_fails_the_action_and_is_not_recreated() {
    let server = server(false);
    seed(&server);
    server
        .insert(action("lost", json!({"action": "backup"})))
        .unwrap();
    let controller = start(server.client());
    wait_job(&server, "lost").await;
    wait_action(&server, "lost", "processed", |a| {
        a["status"]["processed"] == true
    })
    .await;
    server.delete("jobs", NS, "lost").unwrap();
    let rba = wait_action(&server, "lost", "Failed", |a| {
        a["status"]["phase"] == "Failed"
    })
    .await;
    assert_eq!(
        condition(&rba, "Failed").unwrap()["reason"],
        "ExecutorDeleted"
    );
    assert!(
        job(&server, "lost").is_none(),
        "an action runs at most once"
    );
    assert_eq!(server.write_count("jobs", Verb::Create), 1);
    controller.stop().await;
}

#[tokio::test]
async fn an_owned_job_the_cache_cannot_see_is_adopted_after_already_exists() {
    // A Job from a previous life that the label-filtered cache does not show (as when the cache lags behind our
    // own create): the POST answers 409 AlreadyExists, the GET finds it controlled by this action, it is adopted.
    let server = server(false);
    seed(&server);
    let created = server
        .insert(action("lagging", json!({"action": "backup"})))
        .unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap();
    server
        .insert(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "lagging", "namespace": NS,
                         "ownerReferences": [{"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
                                              "name": "lagging", "uid": uid, "controller": true}]},
            "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "busybox"}], "restartPolicy": "Never"}}},
        }))
        .unwrap();
    let controller = start(server.client());
    let rba = wait_action(&server, "lagging", "processed", |a| {
        a["status"]["processed"] == true
    })
    .await;
    // The job controller already started the adopted Job's Pod.
    assert!(
        matches!(ready_reason(&rba).as_deref(), Some("Pending" | "Running")),
        "{rba:#}"
    );
    assert_eq!(server.list_in("jobs", NS).len(), 1);
    assert_eq!(
        server.write_count("jobs", Verb::Create),
        1,
        "one POST, answered 409"
    );
    assert!(
        !event_reasons(&server, "lagging").contains(&"JobCreated".to_string()),
        "adopting is not creating"
    );
    controller.stop().await;
}

#[tokio::test]
async fn two_controllers_racing_on_one_action_create_one_job() {
    // Leader election normally keeps a second replica idle; even without it, the deterministic name makes the
    // loser of the race get 409 and adopt.
    let server = server(false);
    seed(&server);
    for i in 0..5 {
        server
            .insert(action(&format!("race-{i}"), json!({"action": "backup"})))
            .unwrap();
    }
    let a = start(server.client());
    let b = start(server.client());
    for i in 0..5 {
        wait_action(&server, &format!("race-{i}"), "processed", |a| {
            a["status"]["processed"] == true
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.list_in("jobs", NS).len(), 5, "one Job per action");
    for i in 0..5 {
        let created = event_reasons(&server, &format!("race-{i}"))
            .iter()
            .filter(|r| *r == "JobCreated")
            .count();
        assert_eq!(
            created, 1,
            "race-{i}: only the winner reports a created Job"
        );
        let reasons = event_reasons(&server, &format!("race-{i}"));
        assert!(
            !reasons.contains(&"NameCollision".to_string()),
            "race-{i}: the loser adopts, it does not collide: {reasons:?}"
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_scheduled_backup_in_another_namespace_is_never_used() {
    // scheduledBackupRef has no namespace: an SB of the same name elsewhere does not count.
    let server = server(false);
    seed(&server);
    let mut elsewhere = action("cross", json!({"action": "backup"}));
    elsewhere["metadata"]["namespace"] = json!("team-b");
    server.insert(elsewhere).unwrap();
    let controller = start(server.client());
    let found = server
        .wait_for(Duration::from_secs(10), |s| {
            s.get("requestedbackupactions", "team-b", "cross")
                .is_some_and(|a| ready_reason(&a).as_deref() == Some("ScheduledBackupNotFound"))
        })
        .await;
    assert!(
        found.is_ok(),
        "{:#?}",
        server.get("requestedbackupactions", "team-b", "cross")
    );
    assert!(server.list("jobs").is_empty());
    controller.stop().await;
}

#[tokio::test]
async fn an_executor_the_api_server_refuses_fails_the_action_once_and_names_the_field() {
    let server = server(false);
    server.insert(scheduled_backup(true)).unwrap();
    // A PodTemplate carrying a Job setting the API server refuses (422 on the Job).
    let mut pt = pod_templates(&server, SB, None)
        .into_iter()
        .find(|p| p["metadata"]["name"] == format!("{SB}-backup").as_str())
        .unwrap();
    pt["metadata"]["annotations"][crd_types::constants::annotations::BACKOFF_LIMIT] = json!("-1");
    server.insert(pt).unwrap();
    server
        .insert(action("refused", json!({"action": "backup"})))
        .unwrap();
    let controller = start(server.client());
    let rba = wait_action(&server, "refused", "Failed", |a| {
        a["status"]["phase"] == "Failed"
    })
    .await;
    assert_eq!(
        ready_reason(&rba).as_deref(),
        Some("RejectedByAPIServer"),
        "{rba:#}"
    );
    let message = condition(&rba, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("spec.backoffLimit: Invalid value: -1"),
        "{message}"
    );
    assert!(event_reasons(&server, "refused").contains(&"RejectedByAPIServer".to_string()));
    // Terminal: the same Job is never sent again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(server.write_count("jobs", Verb::Create), 1);
    controller.stop().await;
}

#[tokio::test]
async fn finished_actions_beyond_the_scheduled_backups_history_limits_are_deleted_oldest_first() {
    let server = server(false);
    let mut sb = scheduled_backup(true);
    sb["spec"]["successfulActionsHistoryLimit"] = json!(1);
    sb["spec"]["failedActionsHistoryLimit"] = json!(0);
    server.insert(sb).unwrap();
    seed_pod_template(&server, "backup");
    seed_pod_template(&server, "restore");
    let controller = start(server.client());
    let exists = |name: &str| server.get("requestedbackupactions", NS, name).is_some();

    // A running action is never touched, whatever the limits.
    server
        .insert(action("running", json!({"action": "backup"})))
        .unwrap();
    wait_job(&server, "running").await;

    for name in ["first", "second"] {
        server
            .insert(action(name, json!({"action": "backup"})))
            .unwrap();
        wait_job(&server, name).await;
        finish_pod(&server, name, Outcome::Succeeded).await;
        wait_action(&server, name, "Succeeded", |a| {
            a["status"]["phase"] == "Succeeded"
        })
        .await;
        // Completion times have a resolution of one second: keep the two apart.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    server
        .wait_for(Duration::from_secs(10), |s| {
            s.get("requestedbackupactions", NS, "first").is_none()
        })
        .await
        .expect("the oldest success beyond the limit of 1 is deleted");
    assert!(exists("second") && exists("running"));

    // A limit of 0 keeps no failed action: it goes as soon as it finished.
    server
        .insert(action("broken", json!({"action": "backup"})))
        .unwrap();
    wait_job(&server, "broken").await;
    // Every Pod fails until the Job's backoff limit is exhausted, and the action fails.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while exists("broken") {
        let running = server.list_in("pods", NS).into_iter().any(|p| {
            p["metadata"]["labels"]["job-name"] == "broken"
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        });
        if running {
            finish_pod(&server, "broken", failed("pg_dump: error")).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a failed action beyond a limit of 0 is deleted: {:#?}",
            server.get("requestedbackupactions", NS, "broken")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(exists("second") && exists("running"));
    controller.stop().await;
}

#[tokio::test]
async fn a_scheduled_backup_change_wakes_its_running_action_and_never_its_finished_ones() {
    let server = server(false);
    seed(&server);
    let controller = start(server.client());
    for name in ["done-1", "done-2", "done-3"] {
        server
            .insert(action(name, json!({"action": "backup"})))
            .unwrap();
        wait_job(&server, name).await;
        finish_pod(&server, name, Outcome::Succeeded).await;
        wait_action(&server, name, "Succeeded", |a| {
            a["status"]["phase"] == "Succeeded"
        })
        .await;
    }
    server
        .insert(action("running", json!({"action": "backup"})))
        .unwrap();
    wait_job_state(&server, "running", |j| j["status"]["active"] == 1).await;
    wait_action(&server, "running", "Running", |a| {
        a["status"]["phase"] == "Running"
    })
    .await;
    assert_quiet(&server, Duration::from_millis(300), "before the SB changes").await;

    let reconciles = || counter(&controller.registry, "backup_maker_reconcile_total", &[]);
    for round in 1..=3 {
        let before = reconciles();
        // What the scheduled-controller's status writes look like to this controller: an SB event.
        server
            .modify("scheduledbackups", NS, SB, |sb| {
                sb["metadata"]["labels"] = json!({"round": round.to_string()})
            })
            .unwrap();
        // A reconcile writes nothing here: poll the metric, not the server.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while reconciles() == before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the running action is woken (round {round})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            reconciles() - before,
            1.0,
            "only the running action is reconciled, none of the 3 finished ones (round {round})"
        );
    }
    assert_eq!(server.list_in("requestedbackupactions", NS).len(), 4);
    controller.stop().await;
}
