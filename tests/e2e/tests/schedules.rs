//! Issue 16's scheduling and results scenarios: a spread schedule, why a run failed and `Overdue`, seen on the
//! ScheduledBackup itself (what ArgoCD users see) and by the exporter; `runOnCreate`. On the in-process API server, and once
//! more on the cluster named by `BMC_E2E_KUBECONFIG` when it is set at build time.

use crd_types::constants::{condition_types as ct, labels};
use crd_types::{RequestedBackupAction, ScheduledBackup};
use e2e::{Env, condition, events_for};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::Resource;
use kube::api::{ListParams, PostParams};

/// Overdue this long after creation (or the last success): short enough for a test, long enough to be Ready first.
const OVERDUE_AFTER_SECS: i64 = 8;

const SPREAD_APP: &str = r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {name: spread1}
spec:
  operation: backup
  cronJob: {enabled: true, scheduleEvery: "H 2 * * *", timeZone: Europe/Berlin, overdueAfter: 8s}
  templateRef: {kind: internal, name: pg15}
  gpgKeySecretRef: {secretName: spread1-gpg, createIfNotExists: true, email: backups@example.org}
  tokenSecretRef: {secretName: spread1-token, tokenKey: token}
  vars: |
    Params: {hostname: db.example.svc, port: 5432, db: app, user: app, password: pw}
    Repository: {url: "https://backups.example.org", passphrase: "", recipient: backups@example.org, collectionId: c-2}
    HelmValues: {backoffLimit: 0}
---
apiVersion: v1
kind: Secret
metadata: {name: spread1-token}
stringData: {token: eyJhbGciOi.jwt}
"#;

/// A Job as the CronJob controller would create it from the CronJob's template.
async fn run_cron_job(env: &Env, cron_name: &str, job_name: &str) {
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

fn overdue_series(env: &Env) -> Option<f64> {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&env.registry.gather())
        .unwrap();
    controller_runtime::exposition::parse(&text).unwrap().value(
        "backup_maker_backup_overdue",
        &[("scheduledbackup", "spread1"), ("operation", "backup")],
    )
}

async fn spread_schedule_failure_output_and_overdue_reach_the_scheduled_backup(mut env: Env) {
    env.start_gpg_keygen();
    env.start_scheduled_controller();
    env.start_metrics_exporter();
    env.create_yaml(SPREAD_APP).await.unwrap();
    let sb = env
        .wait_for::<ScheduledBackup>("spread1", "Ready=True", |sb| {
            condition(sb, ct::READY).is_some_and(|(s, _, _)| s == "True")
        })
        .await;

    // Spread: the CronJob and the status carry the concrete expression of this SB.
    let minute = crd_types::spread::seed(&env.namespace, "spread1") % 60;
    let concrete = format!("{minute} 2 * * *");
    let cron: CronJob = env.api().get("spread1-backup").await.unwrap();
    let spec = cron.spec.unwrap();
    assert_eq!(spec.schedule, concrete);
    assert_eq!(spec.starting_deadline_seconds, Some(3600));
    let status = sb.status.clone().unwrap();
    assert_eq!(
        status.effective_schedule.as_deref(),
        Some(concrete.as_str())
    );
    let next = status.next_schedule_time.expect("a next run").0;
    let berlin = next.to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    assert_eq!(
        (berlin.hour(), i64::from(berlin.minute())),
        (2, minute as i64)
    );

    // Why it failed: the container's own last words, on the SB.
    run_cron_job(&env, "spread1-backup", "spread1-backup-1").await;
    env.finish_job("spread1-backup-1", false).await;
    let output = "pg_dump: error: connection to server failed";
    let sb = env
        .wait_for::<ScheduledBackup>("spread1", "the failure output", |sb| {
            sb.status.as_ref().is_some_and(|s| {
                s.last_failure_message
                    .as_deref()
                    .is_some_and(|m| m.contains(output))
                    && s.consecutive_failures == Some(1)
            })
        })
        .await;
    let (status, reason, message) = condition(&sb, ct::LAST_RUN_SUCCEEDED).unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "JobFailed"));
    assert!(message.contains(output), "{message}");
    assert!(sb.status.unwrap().last_run_duration.is_some());
    let events = events_for(&env, "spread1").await;
    assert!(
        events
            .iter()
            .any(|(t, r, note)| t == "Warning" && r == "JobFailed" && note.contains(output)),
        "{events:?}"
    );

    // Overdue: no success within overdueAfter of creation; the condition, its Event and the exporter agree.
    let sb = env
        .wait_for::<ScheduledBackup>("spread1", "Overdue=True", |sb| {
            condition(sb, ct::OVERDUE).is_some_and(|(s, _, _)| s == "True")
        })
        .await;
    let created = sb.meta().creation_timestamp.clone().unwrap().0;
    assert!(
        jiff::Timestamp::now() >= created + jiff::SignedDuration::from_secs(OVERDUE_AFTER_SECS)
    );
    assert_eq!(condition(&sb, ct::READY).unwrap().0, "True");
    assert_eq!(sb.status.as_ref().unwrap().healthy, Some(false));
    let events = events_for(&env, "spread1").await;
    assert!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "Overdue"),
        "{events:?}"
    );
    let deadline = tokio::time::Instant::now() + e2e::TIMEOUT;
    while overdue_series(&env) != Some(1.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the exporter does not say overdue"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A success clears Overdue and the failure count.
    run_cron_job(&env, "spread1-backup", "spread1-backup-2").await;
    env.finish_job("spread1-backup-2", true).await;
    env.wait_for::<ScheduledBackup>("spread1", "Overdue=False after a success", |sb| {
        condition(sb, ct::OVERDUE).is_some_and(|(s, _, _)| s == "False")
            && sb.status.as_ref().unwrap().consecutive_failures == Some(0)
            && sb.status.as_ref().unwrap().healthy == Some(true)
    })
    .await;
    env.cleanup().await;
}

const ON_CREATE: &str = r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {name: oncreate1}
spec:
  operation: backup
  cronJob: {enabled: true, scheduleEvery: "@daily-random", runOnCreate: true}
  templateRef: {kind: internal, name: pg15}
  gpgKeySecretRef: {secretName: oncreate1-gpg, createIfNotExists: true, email: backups@example.org}
  tokenSecretRef: {secretName: oncreate1-token, tokenKey: token}
  vars: |
    Params: {hostname: db.example.svc, port: 5432, db: app, user: app, password: pw}
    Repository: {url: "https://backups.example.org", passphrase: "", recipient: backups@example.org, collectionId: c-3}
    HelmValues: {backoffLimit: 0}
---
apiVersion: v1
kind: Secret
metadata: {name: oncreate1-token}
stringData: {token: eyJhbGciOi.jwt}
"#;

async fn run_on_create_runs_the_first_backup_right_away_once(mut env: Env) {
    env.start_gpg_keygen();
    env.start_scheduled_controller();
    env.start_action_controller();
    env.create_yaml(ON_CREATE).await.unwrap();
    env.wait_for::<ScheduledBackup>("oncreate1", "the on-create action recorded", |sb| {
        sb.status
            .as_ref()
            .is_some_and(|s| s.run_on_create_generation == Some(1))
    })
    .await;
    let action = "oncreate1-on-create-1";
    let selector = format!("{}={action}", labels::REQUESTED_BACKUP_ACTION);
    let deadline = tokio::time::Instant::now() + e2e::TIMEOUT;
    let job = loop {
        let jobs = env
            .api::<Job>()
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items;
        if let Some(job) = jobs.into_iter().next() {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Job for {action}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    env.finish_job(job.metadata.name.as_deref().unwrap(), true)
        .await;
    env.wait_for::<RequestedBackupAction>(action, "phase Succeeded", |a| {
        a.status.as_ref().and_then(|s| s.phase).map(|p| p.as_str()) == Some("Succeeded")
    })
    .await;
    // Restarting the scheduled-controller makes no second action.
    env.kill("scheduled-controller");
    env.start_scheduled_controller();
    env.settle().await;
    let actions = env
        .api::<RequestedBackupAction>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(actions.len(), 1, "{actions:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn scenario_spread_schedule_failure_output_and_overdue_reach_the_scheduled_backup() {
    spread_schedule_failure_output_and_overdue_reach_the_scheduled_backup(Env::fake().await).await;
}

#[tokio::test]
async fn scenario_run_on_create_runs_the_first_backup_right_away_once() {
    run_on_create_runs_the_first_backup_right_away_once(Env::fake().await).await;
}

#[tokio::test]
#[cfg_attr(
    not(bmc_real_cluster),
    ignore = "BMC_E2E_KUBECONFIG is unset: the real-cluster variants of these scenarios are skipped"
)]
async fn schedules_scenarios_on_a_real_cluster() {
    spread_schedule_failure_output_and_overdue_reach_the_scheduled_backup(
        Env::real("s16").await.unwrap(),
    )
    .await;
    run_on_create_runs_the_first_backup_right_away_once(Env::real("s17").await.unwrap()).await;
}
