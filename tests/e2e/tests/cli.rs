//! The `kubectl backup` plugin driving the whole system: its library (the code behind the binary) talks to the
//! controllers only through the API, so this scenario runs on the in-process API server and, when
//! `BMC_E2E_KUBECONFIG` is set at build time, on that real cluster.

use std::time::Duration;

use crd_types::constants::{condition_types as ct, labels};
use crd_types::{RequestedBackupAction, ScheduledBackup};
use e2e::{APP, Env};
use fake_apiserver::testing::{Outcome, finish_job_pod};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::ResourceExt;
use kube::api::ListParams;
use kubectl_backup::cli::{OutputFormat, RunArgs, StatusArgs, SuspendArgs};
use kubectl_backup::{Error, Session, Target};
use serde_json::Value;

/// Waits for the action-controller's Job of the only action of `sb` that has none finished yet, and returns
/// the action's name and the Job's.
async fn running_job(env: &Env, exclude: &[String]) -> (String, String) {
    let deadline = tokio::time::Instant::now() + e2e::TIMEOUT;
    loop {
        let jobs = env
            .api::<Job>()
            .list(&ListParams::default().labels(labels::REQUESTED_BACKUP_ACTION))
            .await
            .unwrap()
            .items;
        if let Some(job) = jobs.iter().find(|j| !exclude.contains(&j.name_any())) {
            let action = job.labels()[labels::REQUESTED_BACKUP_ACTION].clone();
            return (action, job.name_any());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the action-controller created no Job"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status_rows(session: &Session) -> Vec<Value> {
    let mut out = Vec::new();
    let args = StatusArgs {
        names: vec![],
        output: OutputFormat::Json,
    };
    kubectl_backup::status::status(session, &args, &mut out)
        .await
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

/// `status`, `run --wait` to success and to failure (with the container's termination message), `describe`
/// of the failed action, and `suspend` reaching the CronJob.
async fn plugin_runs_backups_and_explains_failures(mut env: Env) {
    env.start_gpg_keygen();
    env.start_scheduled_controller();
    env.start_action_controller();
    env.create_yaml(APP).await.unwrap();
    env.wait_for::<ScheduledBackup>("app1", "Ready=True", |sb| {
        sb.status
            .as_ref()
            .is_some_and(|s| crd_types::conditions::is_true(&s.conditions, ct::READY))
    })
    .await;
    let session = Session::new(env.client.clone(), env.namespace.clone());

    let rows = status_rows(&session).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (&rows[0]["name"], &rows[0]["ready"], &rows[0]["schedule"]),
        (
            &Value::from("app1"),
            &Value::from(true),
            &Value::from("0 2 * * *")
        )
    );

    // A backup that succeeds.
    let wait = |session: Session| {
        tokio::spawn(async move {
            let args = RunArgs {
                scheduled_backup: "app1".into(),
                wait: true,
                timeout: Some(e2e::TIMEOUT),
                ..Default::default()
            };
            let mut out = Vec::new();
            let result =
                kubectl_backup::run::run(&session, &args, &mut out, std::future::pending()).await;
            (result, String::from_utf8(out).unwrap())
        })
    };
    let task = wait(session.clone());
    let (first, first_job) = running_job(&env, &[]).await;
    finish_job_pod(
        env.client.clone(),
        &env.namespace,
        &first_job,
        Outcome::Succeeded,
    )
    .await
    .unwrap();
    let (result, out) = task.await.unwrap();
    assert_eq!(result.unwrap(), first);
    assert!(
        out.contains(&format!("rba/{first} Succeeded after ")),
        "{out}"
    );

    // A backup that fails (HelmValues.backoffLimit 0: no retry): the message is the container's termination message.
    let task = wait(session.clone());
    let (second, second_job) = running_job(&env, &[first_job]).await;
    finish_job_pod(
        env.client.clone(),
        &env.namespace,
        &second_job,
        Outcome::Failed {
            exit_code: 3,
            message: "pg_dump: error: connection to server at \"db.example.svc\" failed: Connection refused\n"
                .into(),
        },
    )
    .await
    .unwrap();
    let (result, _) = task.await.unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, Error::ActionFailed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "rba/{second} failed: pg_dump: error: connection to server at \"db.example.svc\" failed: Connection refused"
        )
    );
    let action: RequestedBackupAction = env.api().get(&second).await.unwrap();
    assert_eq!(
        action.status.unwrap().phase.map(|p| p.as_str()),
        Some("Failed")
    );

    let mut described = Vec::new();
    kubectl_backup::describe::describe(&session, &Target::Action(second.clone()), &mut described)
        .await
        .unwrap();
    let described = String::from_utf8(described).unwrap();
    assert!(described.contains("Phase:           Failed"), "{described}");
    assert!(
        described.contains("Termination Message:\n  pg_dump: error: connection to server"),
        "{described}"
    );

    // Suspending reaches the CronJob through the scheduled-controller.
    let args = SuspendArgs {
        scheduled_backup: "app1".into(),
        force: false,
    };
    kubectl_backup::suspend::set_suspended(&session, &args, true, &mut Vec::new())
        .await
        .unwrap();
    env.wait_for::<CronJob>("app1-backup", "spec.suspend=true", |cj| {
        cj.spec.as_ref().and_then(|s| s.suspend) == Some(true)
    })
    .await;
    let rows = status_rows(&session).await;
    assert_eq!(rows[0]["suspended"], true);
    assert_eq!(rows[0]["nextRun"], Value::Null);
    env.cleanup().await;
}

#[tokio::test]
async fn plugin_runs_backups_and_explains_failures_on_the_fake_api_server() {
    plugin_runs_backups_and_explains_failures(Env::fake().await).await;
}

/// The same scenario on the cluster named by `BMC_E2E_KUBECONFIG` (a fresh namespace).
#[tokio::test]
#[cfg_attr(
    not(bmc_real_cluster),
    ignore = "BMC_E2E_KUBECONFIG is unset: the real-cluster variant of the plugin scenario is skipped"
)]
async fn plugin_runs_backups_and_explains_failures_on_a_real_cluster() {
    plugin_runs_backups_and_explains_failures(Env::real("cli").await.unwrap()).await;
}
