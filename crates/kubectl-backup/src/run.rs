//! `kubectl backup run`: create a RequestedBackupAction and, with `--wait`, follow it to the end.
//!
//! Following watches the action (by name) and its Job and Pods (by the action's label), so a progress line can
//! say what Kubernetes is doing (e.g. `ImagePullBackOff`) while the action is still `Pending`. The outcome is
//! the action's `status.phase`, which the action-controller derives from the executor. On failure the message
//! is the container's termination message when there is one (the last lines of a failed container's log with
//! `terminationMessagePolicy: FallbackToLogsOnError`), else the action's or the Job's condition message.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use crd_types::constants::condition_types;
use crd_types::{
    ActionPhase, KindType, Operation, RequestedBackupAction, RequestedBackupActionSpec,
    ScheduledBackupRef,
};
use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::time::Instant;

use crate::cli::RunArgs;
use crate::error::human_duration;
use crate::lookup::{self, RBA_RESOURCE};
use crate::output::{Color, Style};
use crate::{Error, Result, Session};

/// The action the plugin creates for `args` (its name comes from `generateName`).
pub fn new_action(args: &RunArgs) -> RequestedBackupAction {
    let operation = args.operation();
    RequestedBackupAction {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-{}-", args.scheduled_backup, operation)),
            labels: Some(
                [(
                    "app.kubernetes.io/created-by".to_string(),
                    crate::FIELD_MANAGER.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: RequestedBackupActionSpec {
            action: operation,
            target_version: args
                .version
                .clone()
                .filter(|_| operation == Operation::Restore),
            scheduled_backup_ref: ScheduledBackupRef {
                name: args.scheduled_backup.clone(),
            },
            kind_type: if args.workflow {
                KindType::Workflow
            } else {
                KindType::Job
            },
            ttl_seconds_after_finished: None,
        },
        status: None,
    }
}

/// Puts the action in its ScheduledBackup's shard (`riotkit.org/shard`), where the controllers that see the SB
/// and its PodTemplate run it.
pub fn in_shard_of(action: &mut RequestedBackupAction, sb: &crd_types::ScheduledBackup) {
    let shard = crd_types::constants::labels::SHARD;
    if let Some(value) = sb.labels().get(shard) {
        action
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(shard.to_string(), value.clone());
    }
}

/// `kubectl backup run`: creates the action, prints its name, and with `--wait` follows it until it ends,
/// `args.timeout` passes, or `interrupt` resolves (Ctrl-C in the binary). Returns the action's name.
pub async fn run(
    session: &Session,
    args: &RunArgs,
    out: &mut (dyn Write + Send),
    interrupt: impl Future<Output = ()> + Send,
) -> Result<String> {
    // Fails with the list of existing ScheduledBackups, before anything is created.
    let sb = lookup::scheduled_backup(session, &args.scheduled_backup).await?;
    let api: Api<RequestedBackupAction> =
        Api::namespaced(session.client.clone(), &session.namespace);
    let mut action = new_action(args);
    in_shard_of(&mut action, &sb);
    let created = api
        .create(&PostParams::default(), &action)
        .await
        .map_err(|e| {
            Error::api(
                e,
                format!(
                    "creating a RequestedBackupAction for {} in namespace {}",
                    args.scheduled_backup, session.namespace
                ),
                "create",
                RBA_RESOURCE,
            )
        })?;
    let name = created.name_any();
    writeln!(out, "requestedbackupaction.riotkit.org/{name} created")?;
    if args.wait {
        follow(session, &name, args.timeout, out, interrupt).await?;
    }
    Ok(name)
}

/// What is known about a running action.
#[derive(Default, Debug, Clone)]
pub struct Progress {
    /// The action, once seen.
    pub action: Option<RequestedBackupAction>,
    /// Its Jobs by name (one, unless someone made more).
    pub jobs: BTreeMap<String, Job>,
    /// Its Pods by name.
    pub pods: BTreeMap<String, Pod>,
    /// Kinds that cannot be watched (e.g. no RBAC `watch` on pods): their state is not shown.
    pub unwatchable: std::collections::BTreeSet<&'static str>,
}

/// How a followed action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `phase: Succeeded`.
    Succeeded,
    /// `phase: Failed`, with the best failure message.
    Failed(String),
}

fn true_condition<'a>(
    job: &'a Job,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn job_state(job: &Job) -> String {
    if true_condition(job, "Complete").is_some() {
        return "succeeded".into();
    }
    if true_condition(job, "Failed").is_some() {
        return "failed".into();
    }
    // Between a Pod's end and the final condition the Job controller writes SuccessCriteriaMet/FailureTarget
    // with active back at 0: that is the end of a run, not a fresh Job.
    if ["SuccessCriteriaMet", "FailureTarget"]
        .iter()
        .any(|c| true_condition(job, c).is_some())
    {
        return "finishing".into();
    }
    let status = job.status.clone().unwrap_or_default();
    match (status.active.unwrap_or(0), status.failed.unwrap_or(0)) {
        (0, 0) if status.start_time.is_some() => "started".into(),
        (0, 0) => "created".into(),
        (active, 0) => format!("{active} active"),
        (active, failed) => format!("{active} active, {failed} failed (retrying)"),
    }
}

fn pod_state(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_else(|| "Pending".into());
    // A waiting reason such as ImagePullBackOff is what the user needs to see while nothing else moves.
    let detail = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref())
        .find_map(|s| {
            s.waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .or_else(|| s.terminated.as_ref().and_then(|t| t.reason.clone()))
        });
    match detail {
        Some(d) if d != phase => format!("{phase} ({d})"),
        _ => phase,
    }
}

impl Progress {
    /// The action's phase; `None` until the action-controller wrote one.
    pub fn phase(&self) -> Option<ActionPhase> {
        self.action.as_ref()?.status.as_ref()?.phase
    }

    /// One line: phase (with the waiting reason), Job state, newest Pod's state.
    pub fn summary(&self) -> String {
        let status = self.action.as_ref().and_then(|a| a.status.as_ref());
        let mut parts = vec![match self.phase() {
            Some(p) => p.as_str().to_string(),
            None => "waiting for the action-controller".to_string(),
        }];
        if let Some(ready) = status
            .and_then(|s| crd_types::conditions::find(&s.conditions, condition_types::READY))
            .filter(|c| c.status == "False" && !self.phase().is_some_and(ActionPhase::is_terminal))
        {
            parts[0] = format!("{} ({})", parts[0], ready.reason);
        }
        for (name, job) in &self.jobs {
            parts.push(format!("job {name}: {}", job_state(job)));
        }
        if let Some(pod) = self.newest_pod() {
            parts.push(format!("pod {}: {}", pod.name_any(), pod_state(pod)));
        }
        for kind in &self.unwatchable {
            parts.push(format!("{kind}: cannot watch"));
        }
        parts.join(" · ")
    }

    fn newest_pod(&self) -> Option<&Pod> {
        self.pods.values().max_by_key(|p| p.creation_timestamp())
    }

    /// The outcome once the phase is terminal.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.phase()? {
            ActionPhase::Succeeded => Some(Outcome::Succeeded),
            ActionPhase::Failed => Some(Outcome::Failed(self.failure_message())),
            _ => None,
        }
    }

    /// Container termination message (newest Pod first) › action `Failed` condition › Job `Failed` condition ›
    /// the action's health message.
    pub fn failure_message(&self) -> String {
        let mut pods: Vec<&Pod> = self.pods.values().collect();
        pods.sort_by_key(|p| std::cmp::Reverse(p.creation_timestamp()));
        let status = self.action.as_ref().and_then(|a| a.status.as_ref());
        pods.into_iter()
            .find_map(lookup::termination_message)
            .or_else(|| {
                status
                    .and_then(|s| {
                        crd_types::conditions::find(&s.conditions, condition_types::FAILED)
                    })
                    .filter(|c| c.status == "True" && !c.message.is_empty())
                    .map(|c| c.message.clone())
            })
            .or_else(|| {
                self.jobs.values().find_map(|j| {
                    let c = true_condition(j, "Failed")?;
                    Some(format!(
                        "{}: {}",
                        c.reason.clone().unwrap_or_default(),
                        c.message.clone().unwrap_or_default()
                    ))
                })
            })
            .or_else(|| {
                status?
                    .children_resources_health
                    .iter()
                    .find(|h| h.failed && !h.message.is_empty())
                    .map(|h| h.message.clone())
            })
            .unwrap_or_else(|| "no failure message was recorded".to_string())
            .trim_end()
            .to_string()
    }
}

/// One change seen by the watches (boxed: objects are large and sizes differ a lot).
enum Update {
    Action(Box<watcher::Event<RequestedBackupAction>>),
    Job(Box<watcher::Event<Job>>),
    Pod(Box<watcher::Event<Pod>>),
    /// The action cannot be watched: fatal.
    ActionError(watcher::Error),
    /// Jobs or Pods cannot be watched (e.g. RBAC): the phase alone still tells the outcome.
    Unavailable(&'static str),
}

fn apply<K: kube::Resource>(map: &mut BTreeMap<String, K>, event: watcher::Event<K>) {
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
            map.insert(o.name_any(), o);
        }
        watcher::Event::Delete(o) => {
            map.remove(&o.name_any());
        }
        watcher::Event::Init => map.clear(),
        watcher::Event::InitDone => {}
    }
}

/// Follows action `name` until it ends. Success prints a final line; failure, timeout and `interrupt` are
/// errors (the action itself keeps running in the last two cases).
pub async fn follow(
    session: &Session,
    name: &str,
    timeout: Option<Duration>,
    out: &mut (dyn Write + Send),
    interrupt: impl Future<Output = ()> + Send,
) -> Result<()> {
    let ns = &session.namespace;
    let selector = lookup::action_selector(name);
    let actions: Api<RequestedBackupAction> = Api::namespaced(session.client.clone(), ns);
    let jobs: Api<Job> = Api::namespaced(session.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(session.client.clone(), ns);
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let by_label = watcher::Config::default().labels(&selector);
    let mut updates: SelectAll<BoxStream<'static, Update>> = SelectAll::new();
    updates.push(
        watcher(actions, by_name)
            .map_ok(|e| Update::Action(Box::new(e)))
            .map(|r| r.unwrap_or_else(Update::ActionError))
            .boxed(),
    );
    updates.push(
        watcher(jobs, by_label.clone())
            .default_backoff()
            .map_ok(|e| Update::Job(Box::new(e)))
            .map(|r| r.unwrap_or(Update::Unavailable("Jobs")))
            .boxed(),
    );
    updates.push(
        watcher(pods, by_label)
            .default_backoff()
            .map_ok(|e| Update::Pod(Box::new(e)))
            .map(|r| r.unwrap_or(Update::Unavailable("Pods")))
            .boxed(),
    );

    let label = format!("rba/{name}");
    let style = session.style;
    let started = Instant::now();
    let deadline = timeout.map(|t| started + t);
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let mut progress = Progress::default();
    let mut action_listed = false;
    let mut last_line = String::new();
    let mut spinner = 0usize;
    tokio::pin!(interrupt);

    loop {
        let timed_out = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut interrupt => {
                clear_line(out, &style)?;
                return Err(Error::Interrupted { action: label });
            }
            () = timed_out => {
                clear_line(out, &style)?;
                return Err(Error::Timeout {
                    action: label,
                    after: timeout.unwrap_or_default(),
                    state: progress.summary(),
                });
            }
            update = updates.next() => match update {
                None => return Err(Error::ActionDeleted { action: label }),
                Some(Update::Action(event)) => {
                    match *event {
                        watcher::Event::Apply(a) | watcher::Event::InitApply(a) => progress.action = Some(a),
                        watcher::Event::Delete(_) => {
                            clear_line(out, &style)?;
                            return Err(Error::ActionDeleted { action: label });
                        }
                        watcher::Event::Init => {}
                        watcher::Event::InitDone => action_listed = true,
                    }
                    if action_listed && progress.action.is_none() {
                        clear_line(out, &style)?;
                        return Err(Error::ActionDeleted { action: label });
                    }
                }
                Some(Update::Job(event)) => apply(&mut progress.jobs, *event),
                Some(Update::Pod(event)) => apply(&mut progress.pods, *event),
                Some(Update::ActionError(e)) => {
                    if let watcher::Error::InitialListFailed(source)
                    | watcher::Error::WatchStartFailed(source)
                    | watcher::Error::WatchFailed(source) = e
                        && matches!(&source, kube::Error::Api(s) if matches!(s.code, 401 | 403 | 404))
                    {
                        clear_line(out, &style)?;
                        return Err(Error::api(source, format!("watching {label}"), "watch", RBA_RESOURCE));
                    }
                    // Anything else is transient: the watcher retries when polled again.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Some(Update::Unavailable(kind)) => {
                    progress.unwatchable.insert(kind);
                }
            },
            _ = ticker.tick(), if style.tty => {}
        }

        if let Some(outcome) = progress.outcome() {
            clear_line(out, &style)?;
            let elapsed = human_duration(started.elapsed());
            return match outcome {
                Outcome::Succeeded => {
                    let mark = if style.tty { "✓ " } else { "" };
                    writeln!(
                        out,
                        "{}",
                        style.paint(
                            Color::Green,
                            &format!("{mark}{label} Succeeded after {elapsed}")
                        )
                    )?;
                    Ok(())
                }
                Outcome::Failed(message) => {
                    // Pods may lag behind the action in the watch: read them once more for the termination message.
                    if let Ok(fresh) = lookup::pods(session, &selector).await {
                        progress.pods = fresh.into_iter().map(|p| (p.name_any(), p)).collect();
                    }
                    let fresh = progress.failure_message();
                    let message = if fresh == "no failure message was recorded" {
                        message
                    } else {
                        fresh
                    };
                    Err(Error::ActionFailed {
                        action: label,
                        message,
                    })
                }
            };
        }

        let summary = progress.summary();
        if style.tty {
            const FRAMES: [char; 4] = ['⠋', '⠙', '⠹', '⠸'];
            spinner = (spinner + 1) % FRAMES.len();
            write!(
                out,
                "\r\x1b[2K{} {label}  {summary}  {}",
                FRAMES[spinner],
                human_duration(Duration::from_secs(started.elapsed().as_secs()))
            )?;
            out.flush()?;
        } else if summary != last_line {
            writeln!(
                out,
                "[{:>6}] {label}: {summary}",
                human_duration(Duration::from_secs(started.elapsed().as_secs()))
            )?;
        }
        last_line = summary;
    }
}

fn clear_line(out: &mut (dyn Write + Send), style: &Style) -> std::io::Result<()> {
    if style.tty {
        write!(out, "\r\x1b[2K")?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": status})).unwrap()
    }

    fn condition(type_: &str) -> serde_json::Value {
        json!({"type": type_, "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"})
    }

    #[test]
    fn job_states_follow_the_job_controllers_status_sequence() {
        let state = |s| job_state(&job(s));
        assert_eq!(state(json!({})), "created");
        assert_eq!(
            state(json!({"startTime": "2030-01-01T00:00:00Z"})),
            "started"
        );
        assert_eq!(state(json!({"active": 1})), "1 active");
        assert_eq!(
            state(json!({"active": 1, "failed": 1})),
            "1 active, 1 failed (retrying)"
        );
        assert_eq!(
            state(json!({"active": 0, "conditions": [condition("FailureTarget")]})),
            "finishing"
        );
        assert_eq!(
            state(json!({"conditions": [condition("Complete")]})),
            "succeeded"
        );
        assert_eq!(
            state(json!({"conditions": [condition("Failed")]})),
            "failed"
        );
    }

    fn action(status: serde_json::Value) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": "a"},
            "spec": {"action": "backup", "scheduledBackupRef": {"name": "app1"}},
            "status": status
        }))
        .unwrap()
    }

    fn failed_pod(message: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": "Failed",
            "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                "state": {"terminated": {"exitCode": 1, "message": message}}}]}}))
        .unwrap()
    }

    #[test]
    fn the_failure_message_prefers_the_container_then_the_action_then_the_job() {
        let failed_action = action(
            json!({"phase": "Failed", "conditions": [{"type": "Failed", "status": "True",
            "reason": "JobFailed", "message": "Job a failed (BackoffLimitExceeded)", "lastTransitionTime": "2030-01-01T00:00:00Z"}]}),
        );
        let mut progress = Progress {
            action: Some(failed_action),
            jobs: [(
                "j".into(),
                job(json!({"conditions": [condition("Failed")]})),
            )]
            .into(),
            pods: [("p".into(), failed_pod("tar: /data: Cannot open\n"))].into(),
            ..Default::default()
        };
        assert_eq!(
            progress.outcome(),
            Some(Outcome::Failed("tar: /data: Cannot open".into()))
        );
        progress.pods.clear();
        assert_eq!(
            progress.failure_message(),
            "Job a failed (BackoffLimitExceeded)"
        );
        progress.action = Some(action(json!({"phase": "Failed"})));
        assert_eq!(
            progress.failure_message(),
            "BackoffLimitExceeded: Job has reached the specified backoff limit"
        );
        progress.jobs.clear();
        assert_eq!(
            progress.failure_message(),
            "no failure message was recorded"
        );
    }

    #[test]
    fn the_summary_says_why_an_action_waits() {
        let progress = Progress {
            action: Some(action(
                json!({"phase": "Pending", "conditions": [{"type": "Ready", "status": "False",
                "reason": "WaitingForScheduledBackup", "message": "", "lastTransitionTime": "2030-01-01T00:00:00Z"}]}),
            )),
            ..Default::default()
        };
        assert_eq!(progress.summary(), "Pending (WaitingForScheduledBackup)");
        assert_eq!(progress.outcome(), None);
        assert_eq!(
            Progress::default().summary(),
            "waiting for the action-controller"
        );
    }

    #[test]
    fn a_new_action_names_its_scheduled_backup_and_operation() {
        let args = RunArgs {
            scheduled_backup: "app1".into(),
            restore: true,
            version: Some("v3".into()),
            ..Default::default()
        };
        let action = new_action(&args);
        assert_eq!(
            action.metadata.generate_name.as_deref(),
            Some("app1-restore-")
        );
        assert_eq!(action.spec.target_version.as_deref(), Some("v3"));
        assert_eq!(action.spec.kind_type, KindType::Job);
    }

    #[test]
    fn a_new_action_joins_the_shard_of_its_scheduled_backup() {
        let mut action = new_action(&RunArgs {
            scheduled_backup: "app1".into(),
            ..Default::default()
        });
        let mut sb: crd_types::ScheduledBackup = serde_json::from_value(serde_json::json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
            "metadata": {"name": "app1", "labels": {"riotkit.org/shard": "a"}},
            "spec": {"operation": "backup", "templateRef": {"kind": "internal", "name": "pg15"},
                     "gpgKeySecretRef": {"secretName": "k"}, "tokenSecretRef": {"secretName": "t"}},
        }))
        .unwrap();
        in_shard_of(&mut action, &sb);
        let labels = action.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["riotkit.org/shard"], "a");
        assert_eq!(labels["app.kubernetes.io/created-by"], crate::FIELD_MANAGER);

        sb.metadata.labels = None;
        let mut unsharded = new_action(&RunArgs::default());
        in_shard_of(&mut unsharded, &sb);
        assert!(
            !unsharded
                .metadata
                .labels
                .unwrap()
                .contains_key("riotkit.org/shard")
        );
    }
}
