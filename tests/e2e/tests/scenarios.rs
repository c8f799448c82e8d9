//! The end-to-end scenarios of docs/testing.md, each run on the in-process API server and, when
//! `BMC_E2E_KUBECONFIG` is set at build time, once more on that real cluster.

use crd_types::constants::{condition_types as ct, labels};
use crd_types::{RequestedBackupAction, ScheduledBackup};
use e2e::{APP, Env, condition, events_for};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplate, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

fn is(sb: &ScheduledBackup, type_: &str, status: &str, reason: &str) -> bool {
    condition(sb, type_).is_some_and(|(s, r, _)| s == status && r == reason)
}

async fn ready_app(env: &Env) -> ScheduledBackup {
    env.create_yaml(APP).await.unwrap();
    env.wait_for::<ScheduledBackup>("app1", "Ready=True", |sb| {
        is(sb, ct::READY, "True", "Ready")
    })
    .await
}

/// Scenario 1: key Secret generated, children applied with owner references, Ready, then silence.
async fn scheduled_backup_converges_and_then_makes_zero_writes(mut env: Env) {
    env.start_gpg_keygen();
    env.start_scheduled_controller();
    env.start_action_controller();
    env.start_metrics_exporter();
    let sb = ready_app(&env).await;
    let uid = sb.uid().unwrap();
    env.wait_all_ready().await;

    let key: Secret = env.api().get("app1-gpg").await.unwrap();
    assert_eq!(
        key.labels().get(labels::TYPE).map(String::as_str),
        Some(labels::GPG_SECRET_TYPE)
    );
    assert!(
        key.owner_references().is_empty(),
        "the key Secret must not be owned by the ScheduledBackup"
    );
    assert!(
        is(&sb, ct::GPG_KEY_READY, "True", "KeySecretValid"),
        "{:?}",
        sb.status
    );

    for name in ["app1-backup", "app1-restore"] {
        let cm: ConfigMap = env.api().get(name).await.unwrap();
        let owner = &cm.owner_references()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            (uid.as_str(), Some(true)),
            "{name}"
        );
        let secret: Secret = env.api().get(name).await.unwrap();
        assert_eq!(secret.owner_references()[0].uid, uid);
        // The hand-off to the action-controller: owned like its siblings, Job settings as annotations.
        let pod_template: PodTemplate = env.api().get(name).await.unwrap();
        let owner = &pod_template.owner_references()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            (uid.as_str(), Some(true)),
            "{name}"
        );
        assert_eq!(
            pod_template
                .annotations()
                .get("riotkit.org/backoff-limit")
                .map(String::as_str),
            Some("0"),
            "HelmValues.backoffLimit"
        );
    }
    let cron: CronJob = env.api().get("app1-backup").await.unwrap();
    assert_eq!(cron.spec.as_ref().unwrap().schedule, "0 2 * * *");
    assert!(
        env.api::<CronJob>()
            .get_opt("app1-restore")
            .await
            .unwrap()
            .is_none(),
        "only spec.operation is scheduled"
    );
    let script = cm_script(&env, "app1-backup").await;
    assert!(
        !script.contains("s3cr3t") && !script.contains("eyJhbGciOi"),
        "secrets are never rendered into ConfigMaps:\n{script}"
    );

    env.settle().await;
    let before = env.controller_writes();
    if let Some(fake) = &env.fake {
        fake.reset_counters();
    }
    // Re-reconcile everything: a metadata change on the SB reaches every controller watching it.
    env.api::<ScheduledBackup>()
        .patch(
            "app1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"poke": "1"}}})),
        )
        .await
        .unwrap();
    env.settle().await;
    assert_eq!(
        env.controller_writes(),
        before,
        "a converged ScheduledBackup must cost zero API writes"
    );
    if let Some(fake) = &env.fake {
        let writes: Vec<_> = fake
            .write_log()
            .into_iter()
            .filter(|w| w.name != "app1" || w.resource != "scheduledbackups")
            .collect();
        assert!(writes.is_empty(), "writes after convergence: {writes:#?}");
    }
    env.cleanup().await;
}

async fn cm_script(env: &Env, name: &str) -> String {
    let cm: ConfigMap = env.api().get(name).await.unwrap();
    cm.data
        .unwrap_or_default()
        .into_values()
        .collect::<Vec<_>>()
        .join("\n")
}

/// A Job as the CronJob controller would create it from the CronJob's template.
async fn job_from_cron_job(env: &Env, cron_name: &str, job_name: &str) {
    let cron: CronJob = env.api().get(cron_name).await.unwrap();
    let template = cron.spec.clone().unwrap().job_template;
    let mut job = Job {
        metadata: template.metadata.unwrap_or_default(),
        spec: template.spec,
        status: None,
    };
    job.metadata.name = Some(job_name.into());
    job.metadata.owner_references = Some(vec![cron.controller_owner_ref(&()).unwrap()]);
    env.api::<Job>()
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
}

/// Scenario 2: simulated CronJob runs move status, events and the exporter's series.
async fn cronjob_runs_are_reported_in_status_events_and_metrics(mut env: Env) {
    env.start_gpg_keygen();
    env.start_scheduled_controller();
    env.start_metrics_exporter();
    ready_app(&env).await;

    job_from_cron_job(&env, "app1-backup", "app1-backup-1001").await;
    env.finish_job("app1-backup-1001", true).await;
    let sb = env
        .wait_for::<ScheduledBackup>("app1", "a recorded success", |sb| {
            sb.status
                .as_ref()
                .is_some_and(|s| s.last_successful_time.is_some())
                && is(sb, ct::LAST_RUN_SUCCEEDED, "True", "Succeeded")
        })
        .await;
    let status = sb.status.unwrap();
    assert_eq!(status.healthy, Some(true));
    assert!(
        status
            .children_resources_health
            .iter()
            .any(|h| h.child.name == "app1-backup-1001" && h.succeeded)
    );

    job_from_cron_job(&env, "app1-backup", "app1-backup-1002").await;
    env.finish_job("app1-backup-1002", false).await;
    let sb = env
        .wait_for::<ScheduledBackup>("app1", "a recorded failure", |sb| {
            is(sb, ct::LAST_RUN_SUCCEEDED, "False", "JobFailed")
        })
        .await;
    let status = sb.status.clone().unwrap();
    assert!(status.last_failed_time.is_some() && status.last_successful_time.is_some());
    assert_eq!(status.healthy, Some(false));
    let (_, _, message) = condition(&sb, ct::LAST_RUN_SUCCEEDED).unwrap();
    assert!(message.contains("BackoffLimitExceeded"), "{message}");
    let events = events_for(&env, "app1").await;
    assert!(
        events
            .iter()
            .any(|(t, r, _)| t == "Normal" && r == "JobSucceeded"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "JobFailed"),
        "{events:?}"
    );

    // The exporter sees both runs.
    let deadline = tokio::time::Instant::now() + e2e::TIMEOUT;
    loop {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&env.registry.gather())
            .unwrap();
        let exposition = controller_runtime::exposition::parse(&text).unwrap();
        let labels = [("scheduledbackup", "app1"), ("operation", "backup")];
        let success = exposition.value("backup_maker_last_success_timestamp_seconds", &labels);
        let failure = exposition.value("backup_maker_last_failure_timestamp_seconds", &labels);
        if success.is_some_and(|v| v > 0.0) && failure.is_some_and(|v| v > 0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "exporter series did not move:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    env.cleanup().await;
}

fn action(name: &str, op: &str, target: Option<&str>) -> String {
    let target = target
        .map(|t| format!("\n  targetVersion: {t}"))
        .unwrap_or_default();
    format!(
        "apiVersion: riotkit.org/v1alpha1\nkind: RequestedBackupAction\nmetadata: {{name: {name}}}\nspec:\n  action: {op}\n  scheduledBackupRef: {{name: app1}}{target}\n"
    )
}

async fn jobs_of_action(env: &Env, action: &str) -> Vec<Job> {
    let selector = format!("{}={action}", labels::REQUESTED_BACKUP_ACTION);
    env.api::<Job>()
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
}

/// Scenario 3: one Job per action, even across a crash; the phase follows the Job; targetVersion reaches restores.
async fn actions_run_exactly_one_job_each(mut env: Env) {
    env.start_gpg_keygen();
    env.start_scheduled_controller();
    env.start_action_controller();
    ready_app(&env).await;

    env.create_yaml(&action("backup-now", "backup", None))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + e2e::TIMEOUT;
    while jobs_of_action(&env, "backup-now").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Job for backup-now"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Crash right after the Job exists, possibly before the status write, and restart.
    env.kill("action-controller");
    env.start_action_controller();
    env.wait_for::<RequestedBackupAction>("backup-now", "processed", |a| {
        a.status.as_ref().is_some_and(|s| s.processed)
    })
    .await;
    env.settle().await;
    let jobs = jobs_of_action(&env, "backup-now").await;
    assert_eq!(
        jobs.len(),
        1,
        "exactly one Job per action: {:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    env.finish_job(&jobs[0].name_any(), true).await;
    env.wait_for::<RequestedBackupAction>("backup-now", "phase Succeeded", |a| {
        a.status.as_ref().and_then(|s| s.phase).map(|p| p.as_str()) == Some("Succeeded")
    })
    .await;

    env.create_yaml(&action("restore-v3", "restore", Some("v3")))
        .await
        .unwrap();
    let rba = env
        .wait_for::<RequestedBackupAction>("restore-v3", "processed", |a| {
            a.status.as_ref().is_some_and(|s| s.processed)
        })
        .await;
    let jobs = jobs_of_action(&env, "restore-v3").await;
    assert_eq!(jobs.len(), 1);
    let pod = jobs[0]
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let env_vars = pod.containers[0].env.clone().unwrap_or_default();
    assert!(
        env_vars
            .iter()
            .any(|e| e.name == "RESTORE_VERSION" && e.value.as_deref() == Some("v3")),
        "{env_vars:?}"
    );
    assert!(
        jobs[0]
            .owner_references()
            .iter()
            .any(|o| o.uid == rba.uid().unwrap() && o.controller == Some(true))
    );
    env.cleanup().await;
}

/// Scenario 4: every bad input gets its condition and a Warning event; a healthy neighbour is not disturbed.
async fn bad_input_is_reported_and_disturbs_nothing_else(mut env: Env) {
    env.start_gpg_keygen();
    env.start_scheduled_controller();
    ready_app(&env).await;
    let good_before: ConfigMap = env.api().get("app1-backup").await.unwrap();

    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "no-template",
            sb(
                "no-template",
                "kind: ClusterBackupProcedureTemplate, name: does-not-exist",
                "app1-token",
                "0 2 * * *",
                "",
            ),
            "TemplateNotFound",
            "does-not-exist",
        ),
        (
            "no-token",
            sb(
                "no-token",
                "kind: internal, name: pg15",
                "missing-token",
                "0 2 * * *",
                "",
            ),
            "SecretNotFound",
            "missing-token",
        ),
        (
            "bad-cron",
            sb(
                "bad-cron",
                "kind: internal, name: pg15",
                "app1-token",
                "0 2 * * * *",
                "",
            ),
            "InvalidSchedule",
            "5 fields",
        ),
        (
            "no-password",
            sb(
                "no-password",
                "kind: internal, name: pg15",
                "app1-token",
                "0 2 * * *",
                "Params: {hostname: db, port: 5432, db: app, user: app}",
            ),
            "RenderFailed",
            "Params.password",
        ),
    ];
    // A template kind typo never gets past admission (the CRD's CEL rule), on the fake as on a real cluster.
    let refused = env
        .create_yaml(&sb(
            "bad-kind",
            "kind: ClusterBackupProcedureTemplat, name: pg15",
            "app1-token",
            "0 2 * * *",
            "",
        ))
        .await
        .expect_err("a template kind typo is refused at admission");
    let text = format!("{refused:#}");
    assert!(
        text.contains("spec.templateRef") && text.contains("'internal'"),
        "{text}"
    );
    for (name, yaml, reason, needle) in &cases {
        env.create_yaml(yaml).await.unwrap();
        let sb = env
            .wait_for::<ScheduledBackup>(name, reason, |sb| is(sb, ct::READY, "False", reason))
            .await;
        let (_, _, message) = condition(&sb, ct::READY).unwrap();
        assert!(message.contains(needle), "{name}: {message}");
        let events = events_for(&env, name).await;
        assert!(
            events.iter().any(|(t, r, _)| t == "Warning" && r == reason),
            "{name}: {events:?}"
        );
        assert!(
            env.api::<ConfigMap>()
                .get_opt(&format!("{name}-backup"))
                .await
                .unwrap()
                .is_none(),
            "{name}: nothing applied"
        );
    }

    // Cases that need more than a different template, token Secret, schedule or vars.
    let more: Vec<(&str, serde_json::Value, &str, &str)> = vec![
        (
            "no-vars-secret",
            json!({"varsSecretRef": {"secretName": "missing-vars"}}),
            "SecretNotFound",
            "missing-vars",
        ),
        (
            "token-key",
            json!({"tokenSecretRef": {"secretName": "app1-token", "tokenKey": "jwt"}}),
            "SecretNotFound",
            "\"jwt\"",
        ),
        (
            "vars-not-yaml",
            json!({"vars": "Params: [unclosed"}),
            "InvalidVars",
            "spec.vars",
        ),
        (
            "vars-not-map",
            json!({"vars": "- a\n- b\n"}),
            "InvalidVars",
            "spec.vars",
        ),
        (
            "import-missing",
            json!({"varsSecretRef": {"secretName": "app1-vars", "importOnlyKeys": ["Params.nope"]}}),
            "SecretNotFound",
            "Params.nope",
        ),
    ];
    for (name, patch, reason, needle) in &more {
        let mut doc: serde_json::Value = serde_saphyr::from_str(&sb(
            name,
            "kind: internal, name: pg15",
            "app1-token",
            "0 2 * * *",
            "",
        ))
        .unwrap();
        for (key, value) in patch.as_object().unwrap() {
            doc["spec"][key] = value.clone();
        }
        env.create_yaml(&serde_json::to_string(&doc).unwrap())
            .await
            .unwrap();
        let sb = env
            .wait_for::<ScheduledBackup>(name, reason, |sb| is(sb, ct::READY, "False", reason))
            .await;
        let (_, _, message) = condition(&sb, ct::READY).unwrap();
        assert!(message.contains(needle), "{name}: {message}");
        assert!(
            events_for(&env, name)
                .await
                .iter()
                .any(|(t, r, _)| t == "Warning" && r == reason),
            "{name}"
        );
    }

    // A key Secret without the configured keys: gpg-keygen reports it and never touches it; the SB waits.
    let incomplete: Secret = serde_json::from_value(
        json!({"metadata": {"name": "half-keys"}, "stringData": {"unrelated": "x"}}),
    )
    .unwrap();
    env.api::<Secret>()
        .create(&PostParams::default(), &incomplete)
        .await
        .unwrap();
    let mut doc: serde_json::Value = serde_saphyr::from_str(&sb(
        "half",
        "kind: internal, name: pg15",
        "app1-token",
        "0 2 * * *",
        "",
    ))
    .unwrap();
    doc["spec"]["gpgKeySecretRef"]["secretName"] = json!("half-keys");
    env.create_yaml(&serde_json::to_string(&doc).unwrap())
        .await
        .unwrap();
    let half = env
        .wait_for::<ScheduledBackup>("half", "KeySecretIncomplete", |sb| {
            is(sb, ct::GPG_KEY_READY, "False", "KeySecretIncomplete")
                && is(sb, ct::READY, "False", "WaitingForKeySecret")
        })
        .await;
    assert!(
        condition(&half, ct::GPG_KEY_READY)
            .unwrap()
            .2
            .contains("half-keys")
    );
    assert!(
        events_for(&env, "half")
            .await
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "KeySecretIncomplete")
    );
    let untouched: Secret = env.api().get("half-keys").await.unwrap();
    assert_eq!(
        untouched.data.map(|d| d.len()),
        Some(1),
        "an existing key Secret is never modified"
    );

    // An action naming a ScheduledBackup that does not exist waits and says so.
    env.start_action_controller();
    let orphan = action("orphan", "backup", None).replace("name: app1", "name: nobody");
    env.create_yaml(&orphan).await.unwrap();
    env.wait_for::<RequestedBackupAction>("orphan", "ScheduledBackupNotFound", |a| {
        a.status
            .as_ref()
            .and_then(|s| crd_types::conditions::find(&s.conditions, ct::READY))
            .is_some_and(|c| c.reason == "ScheduledBackupNotFound")
    })
    .await;
    assert!(
        events_for(&env, "orphan")
            .await
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "ScheduledBackupNotFound")
    );
    assert!(jobs_of_action(&env, "orphan").await.is_empty());

    // A child name taken by a foreign object: reported, never overwritten.
    let foreign: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "taken-backup"}, "data": {"mine": "yes"}}),
    )
    .unwrap();
    env.api::<ConfigMap>()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    env.create_yaml(&sb(
        "taken",
        "kind: internal, name: pg15",
        "app1-token",
        "0 2 * * *",
        "",
    ))
    .await
    .unwrap();
    env.wait_for::<ScheduledBackup>("taken", "NameCollision", |sb| {
        is(sb, ct::READY, "False", "NameCollision")
    })
    .await;
    let after: ConfigMap = env.api().get("taken-backup").await.unwrap();
    assert_eq!(after.data, foreign.data);
    assert!(after.owner_references().is_empty());

    let good_after: ConfigMap = env.api().get("app1-backup").await.unwrap();
    assert_eq!(
        good_before.metadata.resource_version, good_after.metadata.resource_version,
        "the healthy neighbour was disturbed"
    );
    env.cleanup().await;
}

/// A ScheduledBackup sharing app1's Secrets, with the given template ref, token Secret, schedule and vars.
fn sb(name: &str, template: &str, token: &str, schedule: &str, vars: &str) -> String {
    let vars = if vars.is_empty() {
        "Params: {hostname: db, port: 5432, db: app, user: app}\n    Repository: {url: \"https://b.example.org\", passphrase: \"\", collectionId: c-1}".to_string()
    } else {
        format!(
            "{vars}\n    Repository: {{url: \"https://b.example.org\", passphrase: \"\", collectionId: c-1}}"
        )
    };
    let vars_ref = if name == "no-password" {
        ""
    } else {
        "\n  varsSecretRef: {secretName: app1-vars}"
    };
    format!(
        r#"apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {{name: {name}}}
spec:
  operation: backup
  cronJob: {{enabled: true, scheduleEvery: "{schedule}"}}
  templateRef: {{{template}}}
  gpgKeySecretRef: {{secretName: app1-gpg, createIfNotExists: true, email: backups@example.org}}
  tokenSecretRef: {{secretName: {token}, tokenKey: token}}{vars_ref}
  vars: |
    {vars}
"#
    )
}

/// Scenario 5: deleting a ScheduledBackup removes its children; the key Secret stays.
async fn deleting_a_scheduled_backup_keeps_its_key_secret(mut env: Env) {
    env.start_gpg_keygen();
    env.start_scheduled_controller();
    ready_app(&env).await;
    env.api::<ScheduledBackup>()
        .delete("app1", &DeleteParams::background())
        .await
        .unwrap();
    for name in ["app1-backup", "app1-restore"] {
        env.wait_gone::<ConfigMap>(name).await;
        env.wait_gone::<Secret>(name).await;
    }
    env.wait_gone::<CronJob>("app1-backup").await;
    let key: Secret = env
        .api()
        .get("app1-gpg")
        .await
        .expect("the key Secret survives");
    assert!(key.data.unwrap().contains_key("key"));
    env.cleanup().await;
}

#[tokio::test]
async fn scenario_1_scheduled_backup_converges_and_then_makes_zero_writes() {
    scheduled_backup_converges_and_then_makes_zero_writes(Env::fake().await).await;
}

#[tokio::test]
async fn scenario_2_cronjob_runs_are_reported_in_status_events_and_metrics() {
    cronjob_runs_are_reported_in_status_events_and_metrics(Env::fake().await).await;
}

#[tokio::test]
async fn scenario_3_actions_run_exactly_one_job_each() {
    actions_run_exactly_one_job_each(Env::fake().await).await;
}

#[tokio::test]
async fn scenario_4_bad_input_is_reported_and_disturbs_nothing_else() {
    bad_input_is_reported_and_disturbs_nothing_else(Env::fake().await).await;
}

#[tokio::test]
async fn scenario_5_deleting_a_scheduled_backup_keeps_its_key_secret() {
    deleting_a_scheduled_backup_keeps_its_key_secret(Env::fake().await).await;
}

/// Every scenario once more on the cluster named by `BMC_E2E_KUBECONFIG` (a fresh namespace each).
#[tokio::test]
#[cfg_attr(
    not(bmc_real_cluster),
    ignore = "BMC_E2E_KUBECONFIG is unset: the real-cluster variants of the e2e scenarios are skipped"
)]
async fn all_scenarios_on_a_real_cluster() {
    scheduled_backup_converges_and_then_makes_zero_writes(Env::real("s1").await.unwrap()).await;
    cronjob_runs_are_reported_in_status_events_and_metrics(Env::real("s2").await.unwrap()).await;
    actions_run_exactly_one_job_each(Env::real("s3").await.unwrap()).await;
    bad_input_is_reported_and_disturbs_nothing_else(Env::real("s4").await.unwrap()).await;
    deleting_a_scheduled_backup_keeps_its_key_secret(Env::real("s5").await.unwrap()).await;
}

/// The fake enforces the chart's RBAC on the controllers' identities: what the chart does not grant is refused
/// with the API server's own 403 (so a controller needing an ungranted verb fails this suite).
#[tokio::test]
async fn controllers_get_exactly_what_the_chart_grants() {
    let env = Env::fake().await;
    let sc = env.controller_client("scheduled-controller");
    let jobs: kube::Api<Job> = kube::Api::namespaced(sc.clone(), "default");
    assert!(
        jobs.list(&ListParams::default()).await.is_ok(),
        "granted: list jobs"
    );
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    match jobs.create(&PostParams::default(), &job).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert!(
                status.message.contains(
                    "User \"system:serviceaccount:backup-maker:backup-maker-scheduled-controller\" cannot create resource \"jobs\""
                ),
                "{}",
                status.message
            );
        }
        other => panic!("the scheduled-controller may not create Jobs: {other:?}"),
    }
    let exporter = env.controller_client("metrics-exporter");
    let secrets: kube::Api<Secret> = kube::Api::namespaced(exporter, "default");
    assert!(
        secrets.list(&ListParams::default()).await.is_err(),
        "the exporter reads no Secret"
    );
    // The action-controller runs PodTemplates: it may read those, and no Secret at all.
    let ac = env.controller_client("action-controller");
    let pod_templates: kube::Api<PodTemplate> = kube::Api::namespaced(ac.clone(), "default");
    assert!(
        pod_templates.list(&ListParams::default()).await.is_ok(),
        "granted: list podtemplates"
    );
    let secrets: kube::Api<Secret> = kube::Api::namespaced(ac, "default");
    match secrets.get("app1-token").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{}", status.message),
        other => panic!("the action-controller may not read Secrets: {other:?}"),
    }
    env.cleanup().await;
}

/// Leader election works with exactly the chart's leader-election Role (create; get, list, watch, patch by name).
#[tokio::test]
async fn leader_election_runs_on_the_charts_lease_role() {
    use controller_runtime::leader::{Elector, LeaseTiming};
    let env = Env::fake().await;
    for controller in ["gpg-keygen", "scheduled-controller", "action-controller"] {
        let lease = format!("{controller}-leader");
        let elector = Elector::new(
            env.controller_client(controller),
            e2e::RELEASE_NAMESPACE,
            &lease,
            "pod-1",
            LeaseTiming::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{controller}: {e}"));
        tokio::time::timeout(std::time::Duration::from_secs(5), elector.acquire())
            .await
            .unwrap_or_else(|_| panic!("{controller} did not acquire its Lease"));
        let held = elector.hold();
        assert!(*held.leading().borrow());
        held.release().await;
        let stored = env
            .fake
            .as_ref()
            .unwrap()
            .get("leases", e2e::RELEASE_NAMESPACE, &lease)
            .unwrap();
        assert!(
            stored["spec"]["holderIdentity"].is_null(),
            "{controller}: released: {stored:#}"
        );
    }
    env.cleanup().await;
}
