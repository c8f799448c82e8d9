//! Pure: the status of a RequestedBackupAction, computed from what its executor (Job or Argo Workflow) reports.
//!
//! Fixes the original's health semantics (original-operator.md §3.8, §8.2 #4): a Job that has not started is
//! `Pending`, not "succeeded"; a Job whose pod failed but which still retries within `backoffLimit` is `Running`,
//! not "failed"; only the Job's `Complete`/`Failed` conditions finish an action, and a failure carries the Job's
//! condition reason and message. Timestamps come from the executor, never from "now", except a condition's
//! `lastTransitionTime` when its status changes, so an unchanged world yields a byte-identical status (no write).

use crd_types::conditions::{condition, status_str};
use crd_types::constants::{condition_types as ct, reasons};
use crd_types::{
    ActionPhase, ChildReference, JobHealthStatus, RequestedBackupAction,
    RequestedBackupActionStatus,
};
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

/// Where the executor is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Created, nothing started yet.
    Pending,
    /// Started and not finished (possibly retrying a failed pod).
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished unsuccessfully, with the executor's reason (e.g. `BackoffLimitExceeded`) and message.
    Failed {
        /// The executor's failure reason, CamelCase when it gives one.
        reason: String,
        /// The executor's failure message.
        message: String,
    },
}

/// What the executor reports, reduced to what the action's status needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorView {
    /// `apiVersion`, `kind` and name of the executor.
    pub reference: ChildReference,
    /// Lifecycle.
    pub progress: Progress,
    /// When it started.
    pub start_time: Option<Time>,
    /// When it finished.
    pub completion_time: Option<Time>,
}

/// Why a reconcile ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// No executor: the action waits, is blocked by a user error, or (when `terminal`) can never run.
    NotStarted {
        /// Stable CamelCase reason (`WaitingForScheduledBackup`, `NoScriptForOperation`, `InvalidSpec`...).
        reason: &'static str,
        /// What is wrong and how to fix it.
        message: String,
        /// The action is finished (Failed) and will never be retried.
        terminal: bool,
    },
    /// The executor exists.
    Executor(ExecutorView),
}

fn job_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The view of a Job, from its conditions (pod counters lie while the Job retries within `backoffLimit`).
pub fn job_view(job: &Job) -> ExecutorView {
    let name = job.metadata.name.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let reference = ChildReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name,
        tracking_id: None,
    };
    let (progress, completion_time) = if let Some(failed) = job_condition(job, "Failed") {
        let progress = Progress::Failed {
            reason: failed
                .reason
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| reasons::JOB_FAILED.to_string()),
            message: failed
                .message
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the Job failed".to_string()),
        };
        (progress, failed.last_transition_time.clone())
    } else if let Some(complete) = job_condition(job, "Complete") {
        (
            Progress::Succeeded,
            status
                .completion_time
                .clone()
                .or_else(|| complete.last_transition_time.clone()),
        )
    } else if status.start_time.is_some() || status.active.unwrap_or(0) > 0 {
        (Progress::Running, None)
    } else {
        (Progress::Pending, None)
    };
    ExecutorView {
        reference,
        progress,
        start_time: status.start_time,
        completion_time,
    }
}

fn parse_time(value: &Value) -> Option<Time> {
    value
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(Time)
}

/// The view of an Argo `Workflow` (as JSON): `status.phase` Pending/Running/Succeeded/Failed/Error.
pub fn workflow_view(workflow: &Value) -> ExecutorView {
    let name = workflow["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let status = &workflow["status"];
    let reference = ChildReference {
        api_version: crate::executor::WORKFLOW_API_VERSION.into(),
        kind: "Workflow".into(),
        name,
        tracking_id: None,
    };
    let message = status["message"].as_str().filter(|m| !m.is_empty());
    let progress = match status["phase"].as_str().unwrap_or_default() {
        "Running" => Progress::Running,
        "Succeeded" => Progress::Succeeded,
        phase @ ("Failed" | "Error") => Progress::Failed {
            reason: format!("Workflow{phase}"),
            message: message.unwrap_or("the Workflow failed").to_string(),
        },
        // "", "Pending" and anything a newer Argo might add: not started as far as we can tell.
        _ => Progress::Pending,
    };
    let finished = matches!(progress, Progress::Succeeded | Progress::Failed { .. });
    ExecutorView {
        reference,
        progress,
        start_time: parse_time(&status["startedAt"]),
        completion_time: if finished {
            parse_time(&status["finishedAt"])
        } else {
            None
        },
    }
}

/// The phase an outcome puts the action in.
pub fn phase(outcome: &Outcome) -> ActionPhase {
    match outcome {
        Outcome::NotStarted { terminal: true, .. } => ActionPhase::Failed,
        Outcome::NotStarted {
            terminal: false, ..
        } => ActionPhase::Pending,
        Outcome::Executor(view) => match view.progress {
            Progress::Pending => ActionPhase::Pending,
            Progress::Running => ActionPhase::Running,
            Progress::Succeeded => ActionPhase::Succeeded,
            Progress::Failed { .. } => ActionPhase::Failed,
        },
    }
}

/// The health entry of the executor (`childrenResourcesHealth`).
pub fn health(view: &ExecutorView) -> JobHealthStatus {
    let what = format!("{} {}", view.reference.kind, view.reference.name);
    let (message, succeeded, running, failed) = match &view.progress {
        Progress::Pending => (format!("{what} has not started yet"), false, false, false),
        Progress::Running => (format!("{what} is running"), false, true, false),
        Progress::Succeeded => (format!("{what} succeeded"), true, false, false),
        Progress::Failed { reason, message } => (
            format!("{what} failed ({reason}): {message}"),
            false,
            false,
            true,
        ),
    };
    JobHealthStatus {
        child: view.reference.clone(),
        message,
        succeeded,
        running,
        failed,
    }
}

/// The complete status this controller owns for `rba`, given the outcome of this reconcile.
pub fn desired_status(
    rba: &RequestedBackupAction,
    outcome: &Outcome,
    now: Time,
) -> RequestedBackupActionStatus {
    let previous = rba.status.clone().unwrap_or_default();
    let generation = rba.metadata.generation;
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        condition(
            &previous.conditions,
            type_,
            status_str(ok),
            reason,
            message,
            generation,
            now.clone(),
        )
    };
    let phase = phase(outcome);
    let mut status = RequestedBackupActionStatus {
        phase: Some(phase),
        observed_generation: generation,
        last_applied_spec_hash: None,
        ..Default::default()
    };
    match outcome {
        Outcome::NotStarted {
            reason,
            message,
            terminal,
        } => {
            status
                .conditions
                .push(cond(ct::READY, false, reason, message.clone()));
            if *terminal {
                status
                    .conditions
                    .push(cond(ct::FAILED, true, reason, message.clone()));
            }
            // An executor that once existed stays reported (e.g. one deleted before it finished).
            status.processed = previous.processed;
            status.owned_references = previous.owned_references.clone();
            status.start_time = previous.start_time.clone();
            status.healthy = Some(false);
        }
        Outcome::Executor(view) => {
            let what = format!("{} {}", view.reference.kind, view.reference.name);
            let ready = match &view.progress {
                Progress::Pending => cond(
                    ct::READY,
                    true,
                    reasons::PENDING,
                    format!("{what} created, not started yet"),
                ),
                Progress::Running => cond(
                    ct::READY,
                    true,
                    reasons::RUNNING,
                    format!("{what} is running"),
                ),
                Progress::Succeeded => cond(
                    ct::READY,
                    true,
                    reasons::SUCCEEDED,
                    format!("{what} succeeded"),
                ),
                Progress::Failed { reason, message } => cond(
                    ct::READY,
                    false,
                    reasons::JOB_FAILED,
                    format!("{what} failed ({reason}): {message}"),
                ),
            };
            status.conditions.push(ready);
            match &view.progress {
                Progress::Succeeded => {
                    status.conditions.push(cond(
                        ct::COMPLETE,
                        true,
                        reasons::SUCCEEDED,
                        format!("{what} succeeded"),
                    ));
                }
                Progress::Failed { reason, message } => {
                    status.conditions.push(cond(
                        ct::FAILED,
                        true,
                        reason,
                        format!("{what} failed: {message}"),
                    ));
                }
                Progress::Pending | Progress::Running => {}
            }
            status.processed = true;
            status.start_time = view.start_time.clone();
            status.completion_time = view.completion_time.clone();
            status.owned_references = vec![view.reference.clone()];
            let entry = health(view);
            status.healthy = Some(!entry.failed);
            status.children_resources_health = vec![entry];
        }
    }
    status
}

/// The part of a stored status this controller owns, for comparison (`lastAppliedSpecHash` is a legacy field
/// nobody writes any more).
pub fn owned_part(status: &RequestedBackupActionStatus) -> RequestedBackupActionStatus {
    RequestedBackupActionStatus {
        last_applied_spec_hash: None,
        ..status.clone()
    }
}

/// Equal statuses, with conditions compared as a set keyed by type (their stored order is not ours to keep).
pub fn same_status(a: &RequestedBackupActionStatus, b: &RequestedBackupActionStatus) -> bool {
    let sorted = |s: &RequestedBackupActionStatus| {
        let mut s = owned_part(s);
        s.conditions.sort_by(|x, y| x.type_.cmp(&y.type_));
        s
    };
    sorted(a) == sorted(b)
}

/// The `Ready` condition of a status.
pub fn ready(status: &RequestedBackupActionStatus) -> Option<&Condition> {
    crd_types::conditions::find(&status.conditions, ct::READY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn job(status: Value) -> Job {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "restore-abc", "namespace": "team-a"},
            "spec": {"template": {"spec": {"containers": []}}},
            "status": status,
        }))
        .unwrap()
    }

    fn rba(status: Value) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": "restore-abc", "namespace": "team-a", "uid": "u-1", "generation": 1},
            "spec": {"action": "restore", "scheduledBackupRef": {"name": "app1"}, "kindType": "Job"},
            "status": status,
        }))
        .unwrap()
    }

    fn find<'a>(s: &'a RequestedBackupActionStatus, type_: &str) -> Option<&'a Condition> {
        crd_types::conditions::find(&s.conditions, type_)
    }

    #[test]
    fn a_created_job_that_has_not_started_is_pending_not_succeeded() {
        let view = job_view(&job(json!({})));
        assert_eq!(view.progress, Progress::Pending);
        let h = health(&view);
        assert!(!h.succeeded && !h.running && !h.failed, "{h:?}");
        assert_eq!(phase(&Outcome::Executor(view)), ActionPhase::Pending);
    }

    #[test]
    fn a_started_job_with_an_active_pod_is_running() {
        let view = job_view(&job(
            json!({"startTime": "2026-01-01T00:00:00Z", "active": 1}),
        ));
        assert_eq!(view.progress, Progress::Running);
        assert_eq!(view.start_time, Some(t("2026-01-01T00:00:00Z")));
        assert!(health(&view).running);
    }

    #[test]
    fn a_job_retrying_within_its_backoff_limit_is_running_not_failed() {
        let view = job_view(&job(
            json!({"startTime": "2026-01-01T00:00:00Z", "active": 1, "failed": 2}),
        ));
        assert_eq!(view.progress, Progress::Running);
        let h = health(&view);
        assert!(h.running && !h.failed);
    }

    #[test]
    fn a_complete_job_succeeded_with_its_completion_time() {
        let view = job_view(&job(json!({
            "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:42Z", "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:43Z"}],
        })));
        assert_eq!(view.progress, Progress::Succeeded);
        assert_eq!(view.completion_time, Some(t("2026-01-01T00:00:42Z")));
        assert!(health(&view).succeeded);
    }

    #[test]
    fn a_failed_job_carries_its_condition_reason_and_message() {
        let view = job_view(&job(json!({
            "startTime": "2026-01-01T00:00:00Z", "failed": 7,
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-01-01T00:05:00Z"}],
        })));
        assert_eq!(
            view.progress,
            Progress::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "Job has reached the specified backoff limit".into()
            }
        );
        assert_eq!(view.completion_time, Some(t("2026-01-01T00:05:00Z")));
        let status = desired_status(
            &rba(json!({})),
            &Outcome::Executor(view),
            t("2026-01-01T00:05:01Z"),
        );
        assert_eq!(status.phase, Some(ActionPhase::Failed));
        let failed = find(&status, ct::FAILED).unwrap();
        assert_eq!(
            (failed.status.as_str(), failed.reason.as_str()),
            ("True", "BackoffLimitExceeded")
        );
        assert!(
            failed.message.contains("backoff limit"),
            "{}",
            failed.message
        );
        assert_eq!(find(&status, ct::READY).unwrap().status, "False");
        assert_eq!(status.healthy, Some(false));
        assert!(status.children_resources_health[0].failed);
    }

    #[test]
    fn a_false_failed_condition_does_not_fail_the_action() {
        let view = job_view(&job(
            json!({"active": 1, "conditions": [{"type": "Failed", "status": "False"}]}),
        ));
        assert_eq!(view.progress, Progress::Running);
    }

    #[test]
    fn workflow_phases_map_to_action_phases() {
        let wf = |phase: &str| {
            json!({"metadata": {"name": "wf"}, "status": {"phase": phase, "message": "child 'main' failed",
                   "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z"}})
        };
        let p = |phase: &str| super::phase(&Outcome::Executor(workflow_view(&wf(phase))));
        assert_eq!(p(""), ActionPhase::Pending);
        assert_eq!(p("Pending"), ActionPhase::Pending);
        assert_eq!(p("Running"), ActionPhase::Running);
        assert_eq!(p("Succeeded"), ActionPhase::Succeeded);
        assert_eq!(p("Failed"), ActionPhase::Failed);
        assert_eq!(p("Error"), ActionPhase::Failed);
        let failed = workflow_view(&wf("Error"));
        assert_eq!(
            failed.progress,
            Progress::Failed {
                reason: "WorkflowError".into(),
                message: "child 'main' failed".into()
            }
        );
        assert_eq!(failed.completion_time, Some(t("2026-01-01T00:01:00Z")));
        assert_eq!(failed.reference.api_version, "argoproj.io/v1alpha1");
        assert_eq!(
            workflow_view(&wf("Running")).completion_time,
            None,
            "a running Workflow has not finished"
        );
    }

    #[test]
    fn a_succeeded_action_is_processed_complete_healthy_and_references_its_job() {
        let view = job_view(&job(json!({
            "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:42Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        })));
        let status = desired_status(
            &rba(json!({})),
            &Outcome::Executor(view),
            t("2026-01-01T00:01:00Z"),
        );
        assert_eq!(status.phase, Some(ActionPhase::Succeeded));
        assert!(status.processed);
        assert_eq!(find(&status, ct::COMPLETE).unwrap().status, "True");
        assert!(find(&status, ct::FAILED).is_none());
        assert_eq!(status.healthy, Some(true));
        assert_eq!(status.start_time, Some(t("2026-01-01T00:00:00Z")));
        assert_eq!(status.completion_time, Some(t("2026-01-01T00:00:42Z")));
        assert_eq!(
            status.owned_references,
            vec![ChildReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: "restore-abc".into(),
                tracking_id: None
            }]
        );
        assert_eq!(status.observed_generation, Some(1));
    }

    #[test]
    fn waiting_is_pending_not_processed_and_not_terminal() {
        let outcome = Outcome::NotStarted {
            reason: reasons::WAITING_FOR_SCHEDULED_BACKUP,
            message: "ScheduledBackup team-a/app1 is not Ready yet".into(),
            terminal: false,
        };
        let status = desired_status(&rba(json!({})), &outcome, t("2026-01-01T00:00:00Z"));
        assert_eq!(status.phase, Some(ActionPhase::Pending));
        assert!(!status.processed);
        let ready = find(&status, ct::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "WaitingForScheduledBackup")
        );
        assert!(find(&status, ct::FAILED).is_none());
    }

    #[test]
    fn an_invalid_spec_is_terminal_failed() {
        let outcome = Outcome::NotStarted {
            reason: reasons::INVALID_SPEC,
            message: "targetVersion on a backup".into(),
            terminal: true,
        };
        let status = desired_status(&rba(json!({})), &outcome, t("2026-01-01T00:00:00Z"));
        assert_eq!(status.phase, Some(ActionPhase::Failed));
        assert!(status.phase.unwrap().is_terminal());
        assert_eq!(find(&status, ct::FAILED).unwrap().reason, "InvalidSpec");
    }

    #[test]
    fn re_computing_an_unchanged_status_later_is_identical() {
        let view = job_view(&job(
            json!({"startTime": "2026-01-01T00:00:00Z", "active": 1}),
        ));
        let first = desired_status(
            &rba(json!({})),
            &Outcome::Executor(view.clone()),
            t("2026-01-01T00:00:01Z"),
        );
        let stored = rba(serde_json::to_value(&first).unwrap());
        let second = desired_status(&stored, &Outcome::Executor(view), t("2026-03-01T00:00:00Z"));
        assert_eq!(first, second);
        assert!(same_status(stored.status.as_ref().unwrap(), &second));
    }

    #[test]
    fn condition_order_and_the_legacy_hash_do_not_count_as_a_difference() {
        let view = job_view(&job(
            json!({"conditions": [{"type": "Complete", "status": "True"}]}),
        ));
        let a = desired_status(
            &rba(json!({})),
            &Outcome::Executor(view),
            t("2026-01-01T00:00:01Z"),
        );
        let mut b = a.clone();
        b.conditions.reverse();
        b.last_applied_spec_hash = Some("old".into());
        assert!(same_status(&a, &b));
        let mut c = a.clone();
        c.processed = false;
        assert!(!same_status(&a, &c));
    }
}
