//! Issue 16's restore drill: a second ScheduledBackup of app1's collection with `operation: restore`, a CronJob and
//! vars pointing at a scratch database. Its CronJob fires, the restore Job's Pod ends well, and the exporter shows
//! the collection's last successful restore and the drill's overdue gauge (what `BackupRestoreDrillOverdue`
//! reads) going from 1 (never restored within `overdueAfter`) to 0. On the in-process API server, and once more on
//! the cluster named by `BMC_E2E_KUBECONFIG` when it is set at build time.

use std::time::Duration;

use crd_types::ScheduledBackup;
use crd_types::constants::condition_types as ct;
use e2e::{APP, Env, condition};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::Resource;
use kube::api::PostParams;
use metrics_exporter::exporter::{DRILL_OVERDUE, LAST_RESTORE};

/// The drill: app1's collection (`c-1`, as in app1's vars) restored every Sunday into a scratch database, overdue
/// 8 s after creation without a successful restore (short for the test; a weekly drill would say `192h`).
const DRILL: &str = r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {name: app1-drill}
spec:
  operation: restore
  cronJob: {enabled: true, scheduleEvery: "H 4 * * 0", overdueAfter: 8s}
  templateRef: {kind: internal, name: pg15}
  gpgKeySecretRef: {secretName: app1-gpg}
  tokenSecretRef: {secretName: app1-token, tokenKey: token}
  vars: |
    Params: {hostname: scratch-postgres.example.svc, port: 5432, db: app1_drill, user: drill, password: scratch}
    Repository: {url: "https://backups.example.org", passphrase: "", recipient: backups@example.org, collectionId: c-1}
    HelmValues: {backoffLimit: 0}
"#;

/// `(last successful restore, drill overdue)` of collection c-1 as the exporter serves them now.
fn collection_series(env: &Env) -> (Option<f64>, Option<f64>) {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&env.registry.gather())
        .unwrap();
    let e = controller_runtime::exposition::parse(&text).unwrap();
    let l = [
        ("namespace", env.namespace.as_str()),
        ("collection_id", "c-1"),
    ];
    (e.value(LAST_RESTORE, &l), e.value(DRILL_OVERDUE, &l))
}

/// Polls the exporter until `want` holds, failing with the last values after [`e2e::TIMEOUT`].
async fn until_exported(env: &Env, what: &str, want: impl Fn((Option<f64>, Option<f64>)) -> bool) {
    let deadline = tokio::time::Instant::now() + e2e::TIMEOUT;
    loop {
        let seen = collection_series(env);
        if want(seen) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the exporter never showed {what}; last (restore, overdue): {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fires CronJob `name` as the cronjob controller would: the fake's own, or (on a real cluster, where the schedule
/// is days away) a Job made from its template. Returns the Job's name.
async fn fire(env: &Env, name: &str) -> String {
    if let Some(fake) = &env.fake {
        let job = fake
            .fire_cronjob(&env.namespace, name)
            .unwrap()
            .expect("the drill's CronJob is neither suspended nor busy");
        return job["metadata"]["name"].as_str().unwrap().to_owned();
    }
    let cron: CronJob = env.api().get(name).await.unwrap();
    let template = cron.spec.clone().unwrap().job_template;
    let mut job = Job {
        metadata: template.metadata.unwrap_or_default(),
        spec: template.spec,
        status: None,
    };
    let job_name = format!("{name}-manual");
    job.metadata.name = Some(job_name.clone());
    job.metadata.owner_references = Some(vec![cron.controller_owner_ref(&()).unwrap()]);
    env.api::<Job>()
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    job_name
}

async fn a_restore_drill_reports_the_collections_last_restore_and_overdue(mut env: Env) {
    env.start_gpg_keygen();
    env.start_scheduled_controller();
    env.start_metrics_exporter();
    env.create_yaml(APP).await.unwrap();
    env.create_yaml(DRILL).await.unwrap();
    env.wait_for::<ScheduledBackup>("app1-drill", "Ready=True", |sb| {
        condition(sb, ct::READY).is_some_and(|(s, _, _)| s == "True")
    })
    .await;

    // Never restored: the drill is overdue once its 8 s have passed, and there is no restore timestamp yet.
    until_exported(
        &env,
        "the drill overdue before any restore",
        |(restore, overdue)| restore.is_none() && overdue == Some(1.0),
    )
    .await;

    // The weekly run: the CronJob fires, the restore into the scratch database succeeds.
    let job = fire(&env, "app1-drill-restore").await;
    env.finish_job(&job, true).await;
    let finished: Job = env.api().get(&job).await.unwrap();
    let completed = finished
        .status
        .and_then(|s| s.completion_time)
        .expect("a completed Job has a completionTime")
        .0;
    let completed = completed.as_millisecond() as f64 / 1000.0;
    until_exported(
        &env,
        "the restore's completion time and the drill back on time",
        |(restore, overdue)| restore == Some(completed) && overdue == Some(0.0),
    )
    .await;
    // The drill's own ScheduledBackup records the run as any other run.
    env.wait_for::<ScheduledBackup>("app1-drill", "the restore recorded", |sb| {
        sb.status
            .as_ref()
            .is_some_and(|s| s.last_successful_time.is_some())
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn scenario_a_restore_drill_reports_the_collections_last_restore_and_overdue() {
    a_restore_drill_reports_the_collections_last_restore_and_overdue(Env::fake().await).await;
}

#[tokio::test]
#[cfg_attr(
    not(bmc_real_cluster),
    ignore = "BMC_E2E_KUBECONFIG is unset: the real-cluster variant of this scenario is skipped"
)]
async fn restore_drill_scenario_on_a_real_cluster() {
    a_restore_drill_reports_the_collections_last_restore_and_overdue(
        Env::real("s18").await.unwrap(),
    )
    .await;
}
