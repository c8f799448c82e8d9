//! API server outages: every controller is back at work within seconds of the API server's return, nothing is
//! done twice, and `/readyz` says false while the API server is away.
//!
//! The fake server is served over HTTP and switched off in two ways a real control plane restart looks like:
//! refusing connections (the process is gone) and accepting connections without ever answering (a hung process
//! or a dead load-balancer target), for 5 s and 60 s, with and without etcd compaction on the way back (resumed
//! watches then get `410 Gone` and must re-list). On a real cluster the outage is whatever
//! `BMC_E2E_APISERVER_RESTART` does (a command that restarts the API server), or none.

use std::time::{Duration, Instant};

use crd_types::constants::{condition_types as ct, labels};
use crd_types::{RequestedBackupAction, ScheduledBackup};
use e2e::Env;
use fake_apiserver::OutageMode;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;

/// Target: new work is handled this soon after the API server answers again.
const RECOVERY_TARGET: Duration = Duration::from_secs(10);

fn app(name: &str) -> String {
    format!(
        r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {{name: {name}}}
spec:
  operation: backup
  cronJob: {{enabled: true, scheduleEvery: "0 2 * * *"}}
  templateRef: {{kind: internal, name: pg15}}
  gpgKeySecretRef: {{secretName: {name}-gpg, createIfNotExists: true, email: backups@example.org}}
  tokenSecretRef: {{secretName: token, tokenKey: token}}
  vars: |
    Params: {{hostname: db.example.svc, port: 5432, db: app, user: app, password: pw}}
    Repository: {{url: "https://backups.example.org", passphrase: "", recipient: backups@example.org, collectionId: c-1}}
"#
    )
}

const TOKEN: &str =
    "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\nstringData: {token: jwt}\n";

fn action(name: &str, sb: &str) -> String {
    format!(
        "apiVersion: riotkit.org/v1alpha1\nkind: RequestedBackupAction\nmetadata: {{name: {name}}}\nspec:\n  action: backup\n  scheduledBackupRef: {{name: {sb}}}\n"
    )
}

fn ready(sb: &ScheduledBackup) -> bool {
    sb.status
        .as_ref()
        .and_then(|s| crd_types::conditions::find(&s.conditions, ct::READY))
        .is_some_and(|c| c.status == "True")
}

async fn jobs_of(env: &Env, action: &str) -> Vec<Job> {
    let selector = format!("{}={action}", labels::REQUESTED_BACKUP_ACTION);
    env.api::<Job>()
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("listing Jobs")
        .items
}

/// The exporter has a series for ScheduledBackup `name`.
fn exported(env: &Env, name: &str) -> bool {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&env.registry.gather())
        .unwrap_or_default();
    text.contains(&format!("scheduledbackup=\"{name}\""))
}

/// Takes the API server away for `length`, watching that every controller reports not ready meanwhile.
async fn outage(env: &Env, mode: OutageMode, length: Duration, compact: bool) {
    let Some(http) = &env.http else {
        match std::env::var("BMC_E2E_APISERVER_RESTART") {
            Ok(command) if !command.is_empty() => {
                let status = std::process::Command::new("sh")
                    .args(["-c", &command])
                    .status()
                    .expect("running BMC_E2E_APISERVER_RESTART");
                assert!(status.success(), "{command}: {status}");
            }
            _ => eprintln!(
                "BMC_E2E_APISERVER_RESTART is unset: the real-cluster outage scenario runs without an outage"
            ),
        }
        return;
    };
    http.outage(mode).await.expect("outage starts");
    let start = Instant::now();
    let mut unready = std::collections::BTreeSet::new();
    while start.elapsed() < length {
        for (name, running) in &env.controllers {
            if !running.health.is_ready() {
                unready.insert(*name);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if compact {
        env.fake.as_ref().unwrap().compact_event_log();
    }
    http.restore().await.expect("outage ends");
    let all: std::collections::BTreeSet<_> = env.controllers.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        unready, all,
        "/readyz must be false during the outage for every controller"
    );
}

/// Everything converged, then an outage, then new work: a new ScheduledBackup (key, children, Ready, exported)
/// and a new action (one Job) must be handled within [`RECOVERY_TARGET`] of the API server's return.
async fn work_resumes_after_an_outage(
    mut env: Env,
    mode: OutageMode,
    length: Duration,
    compact: bool,
) {
    env.start_all();
    env.create_yaml(TOKEN).await.unwrap();
    env.create_yaml(&app("before")).await.unwrap();
    env.wait_for::<ScheduledBackup>("before", "Ready", ready)
        .await;
    env.wait_all_ready().await;

    outage(&env, mode, length, compact).await;
    let back = Instant::now();
    env.create_yaml(&app("after")).await.unwrap();
    env.create_yaml(&action("run-after", "before"))
        .await
        .unwrap();

    let deadline = back + RECOVERY_TARGET;
    loop {
        let sb_ready = env
            .api::<ScheduledBackup>()
            .get_opt("after")
            .await
            .unwrap()
            .is_some_and(|sb| ready(&sb));
        let job = !jobs_of(&env, "run-after").await.is_empty();
        let seen = exported(&env, "after");
        if sb_ready && job && seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{mode:?} outage of {length:?} (compaction: {compact}): not done {RECOVERY_TARGET:?} after the API server returned: SB Ready {sb_ready}, Job {job}, exported {seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = back.elapsed();
    eprintln!(
        "{mode:?} outage of {length:?} (compaction: {compact}): new work done {recovered:?} after the API server returned"
    );

    // Nothing twice: one Job for the action, one key per ScheduledBackup, and every controller ready again.
    env.wait_for::<RequestedBackupAction>("run-after", "processed", |a| {
        a.status.as_ref().is_some_and(|s| s.processed)
    })
    .await;
    env.settle().await;
    assert_eq!(
        jobs_of(&env, "run-after").await.len(),
        1,
        "one Job per action"
    );
    let keys = env
        .api::<Secret>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-gpg"))
        })
        .count();
    assert_eq!(keys, 2, "one key Secret per ScheduledBackup");
    env.wait_all_ready().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5s_refused_outage() {
    work_resumes_after_an_outage(
        Env::fake().await,
        OutageMode::Refuse,
        Duration::from_secs(5),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5s_refused_outage_with_compaction() {
    work_resumes_after_an_outage(
        Env::fake().await,
        OutageMode::Refuse,
        Duration::from_secs(5),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5s_hanging_outage() {
    work_resumes_after_an_outage(
        Env::fake().await,
        OutageMode::Hang,
        Duration::from_secs(5),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5s_hanging_outage_with_compaction() {
    work_resumes_after_an_outage(
        Env::fake().await,
        OutageMode::Hang,
        Duration::from_secs(5),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60s_refused_outage() {
    work_resumes_after_an_outage(
        Env::fake().await,
        OutageMode::Refuse,
        Duration::from_secs(60),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60s_refused_outage_with_compaction() {
    work_resumes_after_an_outage(
        Env::fake().await,
        OutageMode::Refuse,
        Duration::from_secs(60),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60s_hanging_outage() {
    work_resumes_after_an_outage(
        Env::fake().await,
        OutageMode::Hang,
        Duration::from_secs(60),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60s_hanging_outage_with_compaction() {
    work_resumes_after_an_outage(
        Env::fake().await,
        OutageMode::Hang,
        Duration::from_secs(60),
        true,
    )
    .await;
}

/// The same on the cluster of `BMC_E2E_KUBECONFIG`, with the outage `BMC_E2E_APISERVER_RESTART` causes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(bmc_real_cluster),
    ignore = "BMC_E2E_KUBECONFIG is unset: the real-cluster variant of the outage scenario is skipped"
)]
async fn an_outage_on_a_real_cluster() {
    work_resumes_after_an_outage(
        Env::real("outage").await.unwrap(),
        OutageMode::Refuse,
        Duration::ZERO,
        false,
    )
    .await;
}
