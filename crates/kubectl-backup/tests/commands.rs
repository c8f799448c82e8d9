//! Every command of the plugin against the in-process fake API server (with `pods/log` and RBAC refusals added
//! by `support::TestCluster`). Table output is compared with golden files under `tests/golden/`
//! (`UPDATE_GOLDEN=1 cargo test -p kubectl-backup` rewrites them); JSON and YAML output is parsed.

mod support;

use std::time::Duration;

use fake_apiserver::testing::{Outcome, finish_job_pod};
use http::Method;
use kubectl_backup::cli::{LogsArgs, OutputFormat, RunArgs, StatusArgs, SuspendArgs};
use kubectl_backup::{Error, Session, Style, Target};
use serde_json::{Value, json};
use support::{SharedOutput, TestCluster, assert_golden, redact_created};

const CLUSTER: &str = include_str!("fixtures/cluster.yaml");

fn cluster() -> TestCluster {
    let cluster = TestCluster::new();
    cluster.seed(CLUSTER);
    cluster
}

async fn status_text(session: &Session, output: OutputFormat, names: &[&str]) -> String {
    let mut out = Vec::new();
    let args = StatusArgs {
        names: names.iter().map(|n| n.to_string()).collect(),
        output,
    };
    kubectl_backup::status::status(session, &args, &mut out)
        .await
        .unwrap();
    String::from_utf8(out).unwrap()
}

// ---------------------------------------------------------------- status

#[tokio::test]
async fn status_prints_one_row_per_scheduled_backup_of_the_namespace() {
    let c = cluster();
    let text = status_text(&c.session("prod"), OutputFormat::Table, &[]).await;
    assert_golden("status.txt", &text);
}

#[tokio::test]
async fn status_all_namespaces_adds_the_namespace_column() {
    let c = cluster();
    let session = Session {
        all_namespaces: true,
        ..c.session("ignored")
    };
    assert_golden(
        "status-all-namespaces.txt",
        &status_text(&session, OutputFormat::Table, &[]).await,
    );
}

#[tokio::test]
async fn status_wide_adds_operation_time_zone_and_run_times() {
    let c = cluster();
    assert_golden(
        "status-wide.txt",
        &status_text(&c.session("prod"), OutputFormat::Wide, &[]).await,
    );
}

#[tokio::test]
async fn status_json_is_an_array_of_rows_with_timestamps_and_derived_values() {
    let c = cluster();
    let text = status_text(&c.session("prod"), OutputFormat::Json, &["app2", "app1"]).await;
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app1", "app2"], "sorted by name");
    assert_eq!(rows[0]["lastSuccess"], "2030-03-01T01:02:30Z");
    assert_eq!(
        rows[0]["nextRun"], "2030-03-02T01:00:00Z",
        "02:00 Europe/Berlin"
    );
    assert_eq!(rows[0]["overdue"], false);
    assert_eq!(rows[0]["ready"], true);
    assert_eq!(rows[1]["overdue"], true);
    assert_eq!(rows[1]["consecutiveFailures"], 2);
    assert_eq!(
        rows[1]["lastFailure"],
        "Job app2-backup-29002 failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
    );
}

#[tokio::test]
async fn status_yaml_holds_the_same_rows_as_json() {
    let c = cluster();
    let session = c.session("staging");
    let yaml = status_text(&session, OutputFormat::Yaml, &[]).await;
    let json = status_text(&session, OutputFormat::Json, &[]).await;
    let from_yaml: Value = serde_saphyr::from_str(&yaml).unwrap();
    let from_json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(from_yaml, from_json);
    assert_eq!(
        from_json[0]["schedule"], "17 */6 * * *",
        "the effective schedule"
    );
}

#[tokio::test]
async fn status_of_a_missing_scheduled_backup_lists_the_ones_that_exist() {
    let c = cluster();
    let args = StatusArgs {
        names: vec!["ap1".into()],
        output: OutputFormat::Table,
    };
    let err = kubectl_backup::status::status(&c.session("prod"), &args, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ScheduledBackup \"ap1\" not found in namespace \"prod\"; it has: app1, app2, app3, app4"
    );
}

#[tokio::test]
async fn status_in_an_empty_namespace_says_so() {
    let c = cluster();
    let text = status_text(&c.session("empty"), OutputFormat::Table, &[]).await;
    assert_eq!(text, "No ScheduledBackups found in namespace empty.\n");
}

#[tokio::test]
async fn status_without_list_permission_names_the_verb_and_resource() {
    let c = cluster();
    c.forbid(
        Method::GET,
        "/scheduledbackups",
        "list",
        "scheduledbackups.riotkit.org",
    );
    let err =
        kubectl_backup::status::status(&c.session("prod"), &StatusArgs::default(), &mut Vec::new())
            .await
            .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "forbidden: your user may not list scheduledbackups.riotkit.org in namespace prod"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn status_uses_colour_and_symbols_only_on_a_terminal() {
    let c = cluster();
    let plain = status_text(&c.session("prod"), OutputFormat::Table, &["app2"]).await;
    assert!(!plain.contains('\x1b') && !plain.contains('✓') && !plain.contains('⚠'));
    let tty = Session {
        style: Style {
            tty: true,
            color: true,
        },
        ..c.session("prod")
    };
    let fancy = status_text(&tty, OutputFormat::Table, &["app2"]).await;
    assert!(fancy.contains("\x1b[32m✓ True\x1b[0m"), "{fancy}");
    assert!(fancy.contains("\x1b[31m⚠ yes\x1b[0m"), "{fancy}");
    let no_color = Session {
        style: Style::detect(true, Some(std::ffi::OsStr::new("1"))),
        ..c.session("prod")
    };
    let symbols_only = status_text(&no_color, OutputFormat::Table, &["app2"]).await;
    assert!(symbols_only.contains("✓ True") && !symbols_only.contains('\x1b'));
}

// ---------------------------------------------------------------- run

fn run_args(sb: &str) -> RunArgs {
    RunArgs {
        scheduled_backup: sb.into(),
        ..Default::default()
    }
}

fn actions_of(c: &TestCluster, sb: &str) -> Vec<Value> {
    c.fake
        .list_in("requestedbackupactions", "prod")
        .into_iter()
        .filter(|a| a["spec"]["scheduledBackupRef"]["name"] == sb)
        .collect()
}

#[tokio::test]
async fn run_creates_an_action_with_a_generated_name_and_prints_it() {
    let c = cluster();
    let mut out = Vec::new();
    let name = kubectl_backup::run::run(
        &c.session("prod"),
        &run_args("app1"),
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(
        name.starts_with("app1-backup-") && name.len() == "app1-backup-".len() + 5,
        "{name}"
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("requestedbackupaction.riotkit.org/{name} created\n")
    );
    let action = c.fake.get("requestedbackupactions", "prod", &name).unwrap();
    assert_eq!(action["spec"]["action"], "backup");
    assert_eq!(action["spec"]["kindType"], "Job");
    assert!(action["spec"].get("targetVersion").is_none());
}

#[tokio::test]
async fn run_restore_passes_the_version_and_the_workflow_executor() {
    let c = cluster();
    let args = RunArgs {
        restore: true,
        version: Some("v42".into()),
        workflow: true,
        ..run_args("app1")
    };
    let name = kubectl_backup::run::run(
        &c.session("prod"),
        &args,
        &mut Vec::new(),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(name.starts_with("app1-restore-"), "{name}");
    let action = c.fake.get("requestedbackupactions", "prod", &name).unwrap();
    assert_eq!(
        (
            &action["spec"]["action"],
            &action["spec"]["targetVersion"],
            &action["spec"]["kindType"]
        ),
        (&json!("restore"), &json!("v42"), &json!("Workflow"))
    );
}

#[tokio::test]
async fn run_for_a_missing_scheduled_backup_creates_nothing_and_lists_what_exists() {
    let c = cluster();
    let err = kubectl_backup::run::run(
        &c.session("prod"),
        &run_args("app9"),
        &mut Vec::new(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().ends_with("it has: app1, app2, app3, app4"),
        "{err}"
    );
    assert_eq!(
        c.fake.list_in("requestedbackupactions", "prod").len(),
        1,
        "only the fixture's"
    );
}

/// A Role that can read backups but not run them.
const READ_ONLY: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: jane, namespace: prod}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: backup-viewer, namespace: prod}
rules:
  - apiGroups: [riotkit.org]
    resources: [scheduledbackups, requestedbackupactions]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: jane-views-backups, namespace: prod}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: backup-viewer}
subjects: [{kind: ServiceAccount, name: jane, namespace: prod}]
"#;

#[tokio::test]
async fn run_without_create_permission_names_the_verb_and_resource() {
    // The fake API server's own RBAC answers, as kube-apiserver's authorizer would.
    let c = TestCluster::with_rbac(READ_ONLY);
    c.seed(CLUSTER);
    let jane = c.session_as("prod", "jane");
    let rows = status_text(&jane, OutputFormat::Json, &[]).await;
    assert!(rows.contains("\"app1\""), "reading is allowed: {rows}");
    let err = kubectl_backup::run::run(
        &jane,
        &run_args("app1"),
        &mut Vec::new(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "forbidden: your user may not create requestedbackupactions.riotkit.org in namespace prod"
        ),
        "{err}"
    );
    assert!(matches!(err, Error::Forbidden { .. }));
}

/// Starts `run --wait` in the background; returns the output, the task, and the action's name once created.
async fn start_waiting(
    c: &TestCluster,
    args: RunArgs,
    interrupt: impl std::future::Future<Output = ()> + Send + 'static,
) -> (
    SharedOutput,
    tokio::task::JoinHandle<kubectl_backup::Result<String>>,
    String,
) {
    let out = SharedOutput::default();
    let session = c.session("prod");
    let task = tokio::spawn({
        let mut out = out.clone();
        async move {
            kubectl_backup::run::run(
                &session,
                &RunArgs { wait: true, ..args },
                &mut out,
                interrupt,
            )
            .await
        }
    });
    let sb = "app1";
    c.fake
        .wait_for(Duration::from_secs(5), |s| {
            s.list("requestedbackupactions")
                .iter()
                .any(|a| a["spec"]["scheduledBackupRef"]["name"] == sb)
        })
        .await
        .unwrap();
    let name = actions_of(c, sb)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    (out, task, name)
}

/// What the action-controller would create for `action`: its Job. The fake's job controller then makes the
/// Pod, whose name is returned.
async fn executor(c: &TestCluster, action: &str) -> String {
    let labels = json!({"riotkit.org/scheduled-backup": "app1", "riotkit.org/requested-backup-action": action});
    c.fake
        .insert(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": action, "namespace": "prod", "labels": labels},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": {
                "restartPolicy": "Never", "containers": [{"name": "backup-maker", "image": "backup-maker"}]}}}}))
        .unwrap();
    let selector = format!("batch.kubernetes.io/job-name={action}");
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kube::Client::new(c.clone(), "prod"), "prod");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let list = pods
            .list(&kube::api::ListParams::default().labels(&selector))
            .await
            .unwrap();
        if let Some(pod) = list.items.first() {
            return pod.metadata.name.clone().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job controller made no Pod"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ends the Job's Pod as the kubelet would (the fake's job controller then finishes the Job).
async fn finish_pod(c: &TestCluster, job: &str, outcome: Outcome) {
    finish_job_pod(kube::Client::new(c.clone(), "prod"), "prod", job, outcome)
        .await
        .unwrap();
}

fn set_phase(c: &TestCluster, action: &str, phase: &str, failed_message: Option<&str>) {
    c.fake
        .modify("requestedbackupactions", "prod", action, |a| {
            a["status"] = json!({"processed": true, "phase": phase});
            if let Some(message) = failed_message {
                a["status"]["conditions"] = json!([{"type": "Failed", "status": "True", "reason": "JobFailed",
                    "message": message, "lastTransitionTime": "2030-03-01T12:01:00Z"}]);
            }
        })
        .unwrap();
}

async fn wait_for_output(out: &SharedOutput, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !out.text().contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle:?} never printed; output:\n{}",
            out.text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn run_wait_follows_the_job_and_pod_and_exits_zero_on_success() {
    let c = cluster();
    let (out, task, name) = start_waiting(&c, run_args("app1"), std::future::pending()).await;
    wait_for_output(&out, "waiting for the action-controller").await;
    set_phase(&c, &name, "Pending", None);
    let pod = executor(&c, &name).await;
    // The kubelet cannot pull the image yet.
    c.fake
        .modify("pods", "prod", &pod, |p| {
            p["status"] = json!({"phase": "Pending", "containerStatuses": [{"name": "backup-maker", "ready": false,
                "restartCount": 0, "image": "x", "imageID": "", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]})
        })
        .unwrap();
    wait_for_output(&out, &format!("pod {pod}: Pending (ImagePullBackOff)")).await;
    set_phase(&c, &name, "Running", None);
    c.fake
        .modify("pods", "prod", &pod, |p| {
            p["status"] = json!({"phase": "Running"})
        })
        .unwrap();
    wait_for_output(&out, &format!("rba/{name}: Running · job {name}: ")).await;
    wait_for_output(&out, &format!("pod {pod}: Running")).await;
    finish_pod(&c, &name, Outcome::Succeeded).await;
    wait_for_output(
        &out,
        &format!("job {name}: succeeded · pod {pod}: Succeeded (Completed)"),
    )
    .await;
    set_phase(&c, &name, "Succeeded", None);
    let result = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.unwrap(), name);
    let text = out.text();
    assert!(
        text.contains(&format!("rba/{name} Succeeded after ")),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no terminal control codes when not on a terminal"
    );
}

#[tokio::test]
async fn run_wait_fails_with_the_containers_termination_message() {
    let c = cluster();
    let (_out, task, name) = start_waiting(&c, run_args("app1"), std::future::pending()).await;
    executor(&c, &name).await;
    finish_pod(
        &c,
        &name,
        Outcome::Failed {
            exit_code: 1,
            message: "pg_dump: error: connection to server failed: FATAL: password authentication failed\n"
                .into(),
        },
    )
    .await;
    set_phase(
        &c,
        &name,
        "Failed",
        Some("Job failed: BackoffLimitExceeded"),
    );
    let err = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::ActionFailed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "rba/{name} failed: pg_dump: error: connection to server failed: FATAL: password authentication failed"
        )
    );
    assert_eq!(err.exit_code(), 1);
}

#[tokio::test]
async fn run_wait_without_a_termination_message_reports_the_actions_failed_condition() {
    let c = cluster();
    let (_out, task, name) = start_waiting(&c, run_args("app1"), std::future::pending()).await;
    set_phase(
        &c,
        &name,
        "Failed",
        Some("Job app1-x failed: DeadlineExceeded"),
    );
    let err = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("rba/{name} failed: Job app1-x failed: DeadlineExceeded")
    );
}

#[tokio::test]
async fn run_wait_gives_up_after_the_timeout_and_leaves_the_action_running() {
    let c = cluster();
    let args = RunArgs {
        timeout: Some(Duration::from_millis(300)),
        ..run_args("app1")
    };
    let (_out, task, name) = start_waiting(&c, args, std::future::pending()).await;
    set_phase(&c, &name, "Running", None);
    let err = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 124);
    assert!(err.to_string().contains("last state Running"), "{err}");
    assert!(err.to_string().contains("it keeps running"), "{err}");
    let action = c.fake.get("requestedbackupactions", "prod", &name).unwrap();
    assert_eq!(
        action["status"]["phase"], "Running",
        "the action is left alone"
    );
}

#[tokio::test]
async fn ctrl_c_stops_waiting_but_not_the_action() {
    let c = cluster();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (out, task, name) = start_waiting(&c, run_args("app1"), async {
        let _ = stopped.await;
    })
    .await;
    set_phase(&c, &name, "Running", None);
    wait_for_output(&out, "Running").await;
    c.fake.reset_counters();
    stop.send(()).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 130);
    assert!(
        err.to_string()
            .contains(&format!("rba/{name} keeps running")),
        "{err}"
    );
    assert_eq!(
        c.fake.total_writes(),
        0,
        "stopping to wait writes nothing: {:?}",
        c.fake.write_log()
    );
    assert!(
        c.fake
            .get("requestedbackupactions", "prod", &name)
            .is_some()
    );
}

#[tokio::test]
async fn run_wait_reports_an_action_deleted_while_waiting() {
    let c = cluster();
    let (_out, task, name) = start_waiting(&c, run_args("app1"), std::future::pending()).await;
    c.fake
        .delete("requestedbackupactions", "prod", &name)
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("rba/{name} was deleted before it finished")
    );
}

#[tokio::test]
async fn run_wait_on_a_terminal_draws_one_live_line() {
    let c = cluster();
    let out = SharedOutput::default();
    let session = Session {
        style: Style {
            tty: true,
            color: false,
        },
        ..c.session("prod")
    };
    let task = tokio::spawn({
        let mut out = out.clone();
        async move {
            let args = RunArgs {
                wait: true,
                ..run_args("app1")
            };
            kubectl_backup::run::run(&session, &args, &mut out, std::future::pending()).await
        }
    });
    wait_for_output(&out, "\r\x1b[2K").await;
    let name = actions_of(&c, "app1")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    set_phase(&c, &name, "Succeeded", None);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = out.text();
    let last = text.rsplit("\r\x1b[2K").next().unwrap();
    assert!(
        last.starts_with(&format!("✓ rba/{name} Succeeded after ")),
        "{text:?}"
    );
    assert_eq!(
        text.matches('\n').count(),
        2,
        "the created line and the final line: {text:?}"
    );
}

// ---------------------------------------------------------------- describe

async fn describe_text(c: &TestCluster, target: &str) -> String {
    let mut out = Vec::new();
    kubectl_backup::describe::describe(
        &c.session("prod"),
        &Target::parse(target).unwrap(),
        &mut out,
    )
    .await
    .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn describe_scheduled_backup_shows_conditions_children_runs_actions_and_its_own_events() {
    let c = cluster();
    let text = describe_text(&c, "app1").await;
    let sb = c.fake.get("scheduledbackups", "prod", "app1").unwrap();
    assert_golden("describe-sb.txt", &redact_created(&text, &sb));
}

#[tokio::test]
async fn describe_action_shows_its_job_pod_termination_message_and_events() {
    let c = cluster();
    let text = describe_text(&c, "rba/app2-backup-k8x2z").await;
    let action = c
        .fake
        .get("requestedbackupactions", "prod", "app2-backup-k8x2z")
        .unwrap();
    assert_golden("describe-rba.txt", &redact_created(&text, &action));
}

#[tokio::test]
async fn describe_a_missing_action_lists_recent_ones() {
    let c = cluster();
    let err = kubectl_backup::describe::describe(
        &c.session("prod"),
        &Target::Action("nope".into()),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "RequestedBackupAction \"nope\" not found in namespace \"prod\"; it has: app2-backup-k8x2z"
    );
}

#[tokio::test]
async fn describe_falls_back_to_core_events_when_events_k8s_io_is_forbidden() {
    let c = cluster();
    c.forbid(
        Method::GET,
        "/apis/events.k8s.io/",
        "list",
        "events.events.k8s.io",
    );
    c.seed(
        r#"
apiVersion: v1
kind: Event
metadata: {name: app1.core, namespace: prod}
involvedObject: {apiVersion: riotkit.org/v1alpha1, kind: ScheduledBackup, name: app1, namespace: prod}
type: Warning
reason: InvalidSchedule
message: "spec.cronJob.scheduleEvery is not valid"
source: {component: backup-maker-scheduled-controller}
lastTimestamp: "2030-03-01T11:00:00Z"
"#,
    );
    let text = describe_text(&c, "sb/app1").await;
    let events = text.split("Events:").nth(1).unwrap();
    assert!(events.contains("Warning   InvalidSchedule   60m   backup-maker-scheduled-controller   spec.cronJob.scheduleEvery is not valid"), "{events}");
    assert!(
        !events.contains("Succeeded"),
        "the events.k8s.io event is not readable: {events}"
    );
}

// ---------------------------------------------------------------- logs

async fn logs_text(c: &TestCluster, target: &str, follow: bool) -> kubectl_backup::Result<String> {
    let mut out = Vec::new();
    let args = LogsArgs {
        target: target.into(),
        follow,
    };
    kubectl_backup::logs::logs(&c.session("prod"), &args, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn logs_of_a_scheduled_backup_are_those_of_its_most_recent_runs_pod() {
    let c = cluster();
    c.log("app1-backup-28999-4fj9s", "old run\n");
    c.log(
        "app1-backup-29001-x7k2p",
        "dumping app1\nuploaded version v7\n",
    );
    assert_eq!(
        logs_text(&c, "app1", false).await.unwrap(),
        "dumping app1\nuploaded version v7\n"
    );
}

#[tokio::test]
async fn logs_of_an_action_follow_its_pod_until_the_log_ends() {
    let c = cluster();
    let feed = c.log_stream("app2-backup-k8x2z-9wq4d");
    let out = SharedOutput::default();
    let session = c.session("prod");
    let task = tokio::spawn({
        let mut out = out.clone();
        async move {
            let args = LogsArgs {
                target: "rba/app2-backup-k8x2z".into(),
                follow: true,
            };
            kubectl_backup::logs::logs(&session, &args, &mut out).await
        }
    });
    feed.send("line 1\n".into()).unwrap();
    wait_for_output(&out, "line 1\n").await;
    assert!(!task.is_finished(), "following waits for more");
    feed.send("line 2\n".into()).unwrap();
    drop(feed);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(out.text(), "line 1\nline 2\n");
    assert!(
        c.requests()
            .iter()
            .any(|r| r.contains("/pods/app2-backup-k8x2z-9wq4d/log?") && r.contains("follow=true")),
        "{:?}",
        c.requests()
    );
}

#[tokio::test]
async fn logs_of_a_scheduled_backup_that_never_ran_say_how_to_start_one() {
    let c = cluster();
    let err = logs_text(&c, "app3", false).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "ScheduledBackup app3 has no runs yet: start one with `kubectl backup run app3`"
    );
}

#[tokio::test]
async fn logs_without_pods_log_permission_names_the_subresource() {
    let c = cluster();
    c.forbid(Method::GET, "/log", "get", "pods/log");
    let err = logs_text(&c, "app1", false).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("forbidden: your user may not get pods/log in namespace prod"),
        "{err}"
    );
}

// ---------------------------------------------------------------- suspend / resume

async fn suspend(
    c: &TestCluster,
    sb: &str,
    on: bool,
    force: bool,
) -> kubectl_backup::Result<String> {
    let mut out = Vec::new();
    let args = SuspendArgs {
        scheduled_backup: sb.into(),
        force,
    };
    kubectl_backup::suspend::set_suspended(&c.session("prod"), &args, on, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn suspend_and_resume_apply_only_the_suspend_field_as_kubectl_backup() {
    let c = cluster();
    let before = c.fake.get("scheduledbackups", "prod", "app1").unwrap();
    assert_eq!(
        suspend(&c, "app1", true, false).await.unwrap(),
        "scheduledbackup.riotkit.org/app1 suspended\n"
    );
    let after = c.fake.get("scheduledbackups", "prod", "app1").unwrap();
    assert_eq!(after["spec"]["cronJob"]["suspend"], true);
    let mut expected = before["spec"].clone();
    expected["cronJob"]["suspend"] = json!(true);
    assert_eq!(after["spec"], expected, "nothing else in the spec changes");
    assert_eq!(after["status"], before["status"]);
    assert!(
        c.requests().iter().any(|r| r.starts_with("PATCH ")
            && r.contains("/scheduledbackups/app1?")
            && r.contains("fieldManager=kubectl-backup")),
        "{:?}",
        c.requests()
    );
    suspend(&c, "app1", false, false).await.unwrap();
    let resumed = c.fake.get("scheduledbackups", "prod", "app1").unwrap();
    assert_eq!(resumed["spec"]["cronJob"]["suspend"], false);
}

#[tokio::test]
async fn suspend_does_not_override_a_gitops_owner_unless_forced() {
    let c = cluster();
    // A GitOps tool applies the ScheduledBackup with suspend: false.
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        kube::Client::new(c.clone(), "prod"),
        "prod",
        &kube::discovery::ApiResource::erase::<crd_types::ScheduledBackup>(&()),
    );
    api.patch(
        "app1",
        &kube::api::PatchParams::apply("argocd-controller"),
        &kube::api::Patch::Apply(
            json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
            "spec": {"cronJob": {"suspend": false}}}),
        ),
    )
    .await
    .unwrap();
    let err = suspend(&c, "app1", true, false).await.unwrap_err();
    assert!(matches!(err, Error::FieldConflict { .. }), "{err:?}");
    assert!(err.to_string().contains("pass --force"), "{err}");
    assert_eq!(
        c.fake.get("scheduledbackups", "prod", "app1").unwrap()["spec"]["cronJob"]["suspend"],
        false
    );
    suspend(&c, "app1", true, true).await.unwrap();
    assert_eq!(
        c.fake.get("scheduledbackups", "prod", "app1").unwrap()["spec"]["cronJob"]["suspend"],
        true
    );
}

#[tokio::test]
async fn suspending_an_unscheduled_backup_notes_that_it_has_no_schedule() {
    let c = cluster();
    let text = suspend(&c, "app3", true, false).await.unwrap();
    assert!(
        text.contains("note: spec.cronJob.enabled is false"),
        "{text}"
    );
}

#[tokio::test]
async fn suspend_of_a_missing_scheduled_backup_lists_the_ones_that_exist() {
    let c = cluster();
    let err = suspend(&c, "app5", true, false).await.unwrap_err();
    assert!(
        err.to_string().ends_with("it has: app1, app2, app3, app4"),
        "{err}"
    );
}
