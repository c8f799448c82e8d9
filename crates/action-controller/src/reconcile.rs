//! The thin driver for one RequestedBackupAction: terminal? → ensure the executor → status → events.

use std::sync::Arc;
use std::time::Duration;

use crd_types::constants::{condition_types as ct, field_managers::ACTION_CONTROLLER};
use crd_types::{ActionPhase, KindType, RequestedBackupAction, RequestedBackupActionStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::Context;
use crate::error::Error;
use crate::executor::{self, Located};
use crate::status::{Outcome, Progress, desired_status, ready, same_status};

/// Requeue of an action whose executor runs: a safety net only, Job (and Workflow) changes arrive by watch.
pub const RESYNC: Duration = Duration::from_secs(10 * 60);

/// Re-read of a running Workflow, in case its watch could not be started or missed an event.
pub const WORKFLOW_POLL: Duration = Duration::from_secs(30);

/// Reconciles one RequestedBackupAction.
#[tracing::instrument(skip_all, fields(namespace = rba.namespace().unwrap_or_default(), name = rba.name_any()))]
pub async fn reconcile(
    rba: Arc<RequestedBackupAction>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let result = ctx.metrics.track(reconcile_inner(&rba, &ctx)).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&ObjectRef::from_obj(rba.as_ref()));
    }
    result
}

/// True once the action finished: it is never acted on again (no reads, no writes).
pub fn is_terminal(rba: &RequestedBackupAction) -> bool {
    rba.status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(ActionPhase::is_terminal)
}

async fn reconcile_inner(
    cached: &RequestedBackupAction,
    ctx: &Context,
) -> Result<(Action, Option<&'static str>), Error> {
    // The watch cache may not have our last status write yet: start from the newest state we know.
    let rba = &ctx.written.fresh(cached);
    if is_terminal(rba) || rba.meta().deletion_timestamp.is_some() {
        // A deleted action's executor goes with the garbage collector (ownerReference).
        ctx.waiting.release(&ObjectRef::from_obj(rba));
        return Ok((Action::await_change(), None));
    }
    let namespace = rba
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let uid = rba.uid().ok_or(Error::MissingObjectKey("metadata.uid"))?;

    let (outcome, requeue, failure) = match executor::ensure(ctx, rba, &namespace, &uid).await {
        Ok(Located { mut view, created }) => {
            crate::failure::add_output(ctx, &namespace, &mut view).await;
            if created {
                let what = format!(
                    "{} {namespace}/{}",
                    view.reference.kind, view.reference.name
                );
                info!(executor = %what, "created the executor");
                let note = format!(
                    "created {what} to {} from ScheduledBackup {}",
                    rba.spec.action, rba.spec.scheduled_backup_ref.name
                );
                publish(ctx, rba, EventType::Normal, "JobCreated", note).await;
            }
            let finished = matches!(view.progress, Progress::Succeeded | Progress::Failed { .. });
            let requeue = match (finished, rba.spec.kind_type) {
                (true, _) => Action::await_change(),
                (false, KindType::Job) => Action::requeue(RESYNC),
                (false, KindType::Workflow) => Action::requeue(WORKFLOW_POLL),
            };
            (Outcome::Executor(view), requeue, None)
        }
        Err(error) if error.is_user_facing() => {
            let requeue = match error.retry_after() {
                _ if error.is_terminal() => Action::await_change(),
                Some(after) => Action::requeue(after),
                None => Action::requeue(RESYNC),
            };
            let outcome = Outcome::NotStarted {
                reason: error.reason(),
                message: error.to_string(),
                terminal: error.is_terminal(),
            };
            (outcome, requeue, Some(error.reason()))
        }
        // Transient: error_policy backs off; status is left as it was.
        Err(error) => return Err(error),
    };

    let status = desired_status(rba, &outcome, Time(jiff::Timestamp::now()));
    let finished = status.phase.is_some_and(ActionPhase::is_terminal);
    write_status(ctx, rba, &namespace, status.clone()).await?;
    if finished {
        let mut done = rba.clone();
        done.status = Some(status);
        // Not worth failing the finished action for: the next finished action of its SB prunes again.
        if let Err(error) =
            crate::history::prune(ctx, &namespace, &rba.spec.scheduled_backup_ref.name, &done).await
        {
            warn!(error = %error, "could not delete finished actions beyond the history limit");
        }
    }
    Ok((requeue, failure))
}

/// Server-side applies the status, only when it differs from what is stored; then publishes transition events.
async fn write_status(
    ctx: &Context,
    rba: &RequestedBackupAction,
    namespace: &str,
    status: RequestedBackupActionStatus,
) -> Result<(), Error> {
    let before = rba.status.clone().unwrap_or_default();
    if rba.status.is_some() && same_status(&before, &status) {
        return Ok(());
    }
    let api: Api<RequestedBackupAction> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": crd_types::constants::API_VERSION,
        "kind": "RequestedBackupAction",
        "status": status,
    });
    let written = api
        .patch_status(
            &rba.name_any(),
            &PatchParams::apply(ACTION_CONTROLLER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::kube("writing RequestedBackupAction status"))?;
    ctx.written.remember(&written);
    ctx.metrics
        .api_write("requestedbackupactions/status", "apply");
    for (type_, reason, note) in transition_events(&before, &status) {
        publish(ctx, rba, type_, reason, note).await;
    }
    Ok(())
}

/// Events for what changed between two statuses: a finished executor, or a new reason for not being Ready
/// (once per change, not once per retry).
pub fn transition_events(
    before: &RequestedBackupActionStatus,
    after: &RequestedBackupActionStatus,
) -> Vec<(EventType, String, String)> {
    let mut events = Vec::new();
    let finished = after.phase != before.phase;
    let ready_after = ready(after);
    match after.phase {
        Some(ActionPhase::Succeeded) if finished => {
            let note = crd_types::conditions::find(&after.conditions, ct::COMPLETE)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            events.push((EventType::Normal, "JobSucceeded".to_string(), note));
        }
        Some(ActionPhase::Failed) if finished => {
            let failed = crd_types::conditions::find(&after.conditions, ct::FAILED);
            // An executor failure is JobFailed (its reason in the note); an action that could not run at all keeps
            // its own reason (InvalidSpec, ExecutorDeleted).
            let reason = if after.processed
                && ready_after
                    .is_some_and(|r| r.reason == crd_types::constants::reasons::JOB_FAILED)
            {
                "JobFailed".to_string()
            } else {
                failed
                    .map(|c| c.reason.clone())
                    .unwrap_or_else(|| "JobFailed".into())
            };
            let note = failed
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_default();
            events.push((EventType::Warning, reason, note));
        }
        _ => {
            if let Some(r) = ready_after
                && r.status == "False"
                && ready(before).is_none_or(|b| b.reason != r.reason)
            {
                // Waiting for the other controller to do its part is normal; anything else needs the user.
                let type_ = if [
                    crd_types::constants::reasons::WAITING_FOR_SCHEDULED_BACKUP,
                    crd_types::constants::reasons::WAITING_FOR_POD_TEMPLATE,
                ]
                .contains(&r.reason.as_str())
                {
                    EventType::Normal
                } else {
                    EventType::Warning
                };
                events.push((type_, r.reason.clone(), r.message.clone()));
            }
        }
    }
    events
}

async fn publish(
    ctx: &Context,
    rba: &RequestedBackupAction,
    type_: EventType,
    reason: impl Into<String>,
    note: String,
) {
    let reason = reason.into();
    ctx.events
        .publish(rba, type_, &reason, "Reconcile", note)
        .await;
}

/// Transient errors back off; user errors never reach here (they are reported in status).
pub fn error_policy(rba: Arc<RequestedBackupAction>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.failed(ObjectRef::from_obj(rba.as_ref()));
    warn!(error = %error, reason = error.reason(), retry_in = ?delay, "reconcile failed, retrying");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{ExecutorView, Outcome, desired_status, job_view};
    use k8s_openapi::api::batch::v1::Job;
    use serde_json::{Value, json};

    fn rba(status: Value) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": "a1", "namespace": "team-a", "uid": "u-1", "generation": 1},
            "spec": {"action": "backup", "scheduledBackupRef": {"name": "app1"}},
            "status": status,
        }))
        .unwrap()
    }

    fn view(job_status: Value) -> ExecutorView {
        let job: Job =
            serde_json::from_value(json!({"metadata": {"name": "a1"}, "status": job_status}))
                .unwrap();
        job_view(&job)
    }

    fn now() -> Time {
        Time("2026-01-01T00:00:00Z".parse().unwrap())
    }

    fn reasons(events: &[(EventType, String, String)]) -> Vec<&str> {
        events.iter().map(|(_, r, _)| r.as_str()).collect()
    }

    #[test]
    fn a_job_failure_is_one_job_failed_event_with_the_job_reason() {
        let before = desired_status(
            &rba(json!({})),
            &Outcome::Executor(view(json!({"active": 1}))),
            now(),
        );
        let failed = view(
            json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "limit"}]}),
        );
        let after = desired_status(
            &rba(serde_json::to_value(&before).unwrap()),
            &Outcome::Executor(failed),
            now(),
        );
        let events = transition_events(&before, &after);
        assert_eq!(reasons(&events), vec!["JobFailed"]);
        assert_eq!(events[0].0, EventType::Warning);
        assert!(
            events[0].2.contains("BackoffLimitExceeded"),
            "{}",
            events[0].2
        );
        assert!(
            transition_events(&after, &after).is_empty(),
            "no event without a transition"
        );
    }

    #[test]
    fn waiting_events_fire_once_per_reason_change() {
        let waiting = |reason: &'static str| Outcome::NotStarted {
            reason,
            message: "m".into(),
            terminal: false,
        };
        let empty = RequestedBackupActionStatus::default();
        let a = desired_status(&rba(json!({})), &waiting("ScheduledBackupNotFound"), now());
        assert_eq!(
            reasons(&transition_events(&empty, &a)),
            vec!["ScheduledBackupNotFound"]
        );
        assert!(transition_events(&a, &a).is_empty());
        let b = desired_status(
            &rba(serde_json::to_value(&a).unwrap()),
            &waiting("WaitingForScheduledBackup"),
            now(),
        );
        let events = transition_events(&a, &b);
        assert_eq!(reasons(&events), vec!["WaitingForScheduledBackup"]);
        assert_eq!(events[0].0, EventType::Normal);
    }

    #[test]
    fn success_is_one_job_succeeded_event() {
        let before = desired_status(
            &rba(json!({})),
            &Outcome::Executor(view(json!({"active": 1}))),
            now(),
        );
        let done = view(json!({"conditions": [{"type": "Complete", "status": "True"}]}));
        let after = desired_status(&rba(json!({})), &Outcome::Executor(done), now());
        assert_eq!(
            reasons(&transition_events(&before, &after)),
            vec!["JobSucceeded"]
        );
    }

    #[test]
    fn an_invalid_spec_event_keeps_its_reason() {
        let invalid = Outcome::NotStarted {
            reason: "InvalidSpec",
            message: "m".into(),
            terminal: true,
        };
        let after = desired_status(&rba(json!({})), &invalid, now());
        assert_eq!(
            reasons(&transition_events(
                &RequestedBackupActionStatus::default(),
                &after
            )),
            vec!["InvalidSpec"]
        );
    }

    #[test]
    fn terminal_actions_are_recognised_from_status() {
        assert!(is_terminal(&rba(json!({"phase": "Succeeded"}))));
        assert!(is_terminal(&rba(json!({"phase": "Failed"}))));
        assert!(!is_terminal(&rba(json!({"phase": "Running"}))));
        assert!(!is_terminal(&rba(json!({}))));
    }
}
