//! The thin driver: dereference → validate → build → apply → status, for one ScheduledBackup.
//!
//! Children are applied in dependency order: ConfigMaps and Secrets, then the PodTemplates that mount them (what
//! actions run), then the CronJob.

use std::sync::Arc;
use std::time::Duration;

use crd_types::constants::condition_types::GPG_KEY_READY;
use crd_types::constants::field_managers::SCHEDULED_CONTROLLER;
use crd_types::{ChildReference, ScheduledBackup, ScheduledBackupStatus};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::Context;
use crate::apply::{Changes, sync_kind};
use crate::dereference::dereference;
use crate::error::Error;
use crate::health::summarise;
use crate::status::{Outcome, Scheduling, desired_status, owned_part, previous_runs};

/// Requeue of a converged object: a safety net only, every real change arrives through a watch.
pub const RESYNC: Duration = Duration::from_secs(10 * 60);

/// Reconciles one ScheduledBackup.
#[tracing::instrument(skip_all, fields(namespace = sb.namespace().unwrap_or_default(), name = sb.name_any()))]
pub async fn reconcile(sb: Arc<ScheduledBackup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = ctx.metrics.track(reconcile_inner(&sb, &ctx)).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&ObjectRef::from_obj(sb.as_ref()));
    }
    result
}

async fn reconcile_inner(
    cached: &ScheduledBackup,
    ctx: &Context,
) -> Result<(Action, Option<&'static str>), Error> {
    // The watch cache may not have our last status write yet: start from the newest state we know.
    let sb = &ctx.written.fresh(cached);
    if sb.meta().deletion_timestamp.is_some() {
        // Children go with the garbage collector (ownerReferences); the key Secret is not owned and stays.
        if let Some(uid) = sb.uid() {
            ctx.memo.forget(&uid);
        }
        return Ok((Action::await_change(), None));
    }
    if let Some(wait) = awaiting_first_key_report(sb, jiff::Timestamp::now()) {
        // gpg-keygen reports on every new SB within moments, and its status write wakes this one up: a
        // "waiting for the key" status now would be obsolete by then (one write per SB for nothing).
        return Ok((Action::requeue(wait), None));
    }
    let namespace = sb
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let uid = sb.uid().ok_or(Error::MissingObjectKey("metadata.uid"))?;

    let mut applied_cron_job = None;
    let outcome = match converge(ctx, sb, &namespace, &uid).await {
        Ok(converged) => {
            // Nothing blocks it any more: stop watching former blockers.
            ctx.blocked.release(&ObjectRef::from_obj(sb));
            publish_changes(ctx, sb, &converged.changes).await;
            // Render warnings are announced when the children they concern change, and stay visible in the
            // TemplateRendered condition.
            if !converged.changes.applied.is_empty() {
                for warning in &converged.warnings {
                    publish(
                        ctx,
                        sb,
                        EventType::Warning,
                        "RenderWarning",
                        "Render",
                        warning.clone(),
                    )
                    .await;
                }
            }
            applied_cron_job = converged.cron_job;
            let mut notes = converged.notes;
            notes.extend(converged.warnings.iter().map(|w| format!("warning: {w}")));
            Outcome::Applied {
                children: converged.children,
                hash: converged.hash,
                notes,
            }
        }
        Err(error) => match error.step() {
            Some(step) => Outcome::Failed {
                step,
                reason: error.reason(),
                message: error.to_string(),
            },
            // Transient: let error_policy back off; status is left as it was.
            None => return Err(error),
        },
    };
    let failure = match &outcome {
        Outcome::Failed { reason, .. } => Some(*reason),
        Outcome::Applied { .. } => None,
    };

    let runs = observe_runs(ctx, sb, &namespace, &uid, applied_cron_job);
    let scheduling = Scheduling::of(sb);
    let now = jiff::Timestamp::now();
    let mut status = desired_status(sb, &outcome, &runs, &scheduling, Time(now));
    if matches!(outcome, Outcome::Applied { .. })
        && let Some(generation) = crate::run_on_create::ensure(ctx, sb, &namespace, &uid).await?
    {
        status.run_on_create_generation = Some(generation);
    }
    write_status(ctx, sb, &namespace, status).await?;
    // Back exactly when Overdue would turn True (no polling); a new success arrives through the Job watch.
    let overdue_in = crate::status::overdue_deadline(sb, &scheduling, &runs)
        .filter(|deadline| *deadline > now)
        .and_then(|deadline| Duration::try_from(deadline.duration_since(now)).ok());
    Ok((Action::requeue(requeue_after(overdue_in)), failure))
}

/// How long a new ScheduledBackup waits for gpg-keygen's first `GPGKeyReady` before this controller reports
/// that it is waiting (then with the hint to check that gpg-keygen runs).
pub const KEY_REPORT_GRACE: Duration = Duration::from_secs(30);

/// Pure: the time left to wait silently for gpg-keygen's first report on `sb`: `GPGKeyReady` absent and the SB
/// younger than [`KEY_REPORT_GRACE`]. `None` once the condition exists (whatever it says) or the grace is over.
pub fn awaiting_first_key_report(sb: &ScheduledBackup, now: jiff::Timestamp) -> Option<Duration> {
    let conditions = sb.status.as_ref().map(|s| s.conditions.as_slice());
    if crd_types::conditions::find(conditions.unwrap_or_default(), GPG_KEY_READY).is_some() {
        return None;
    }
    let created = sb.metadata.creation_timestamp.as_ref()?.0;
    let age = Duration::try_from(now.duration_since(created)).unwrap_or_default();
    KEY_REPORT_GRACE
        .checked_sub(age)
        .filter(|left| !left.is_zero())
}

/// The resync, or sooner when `Overdue` flips before it.
pub fn requeue_after(overdue_in: Option<Duration>) -> Duration {
    overdue_in.map_or(RESYNC, |d| d.min(RESYNC))
}

/// What a successful apply pass produced.
struct Converged {
    children: Vec<ChildReference>,
    hash: String,
    notes: Vec<String>,
    warnings: Vec<String>,
    changes: Changes,
    cron_job: Option<CronJob>,
}

/// Everything up to and including the apply. A user-facing error stops here, before anything is written.
async fn converge(
    ctx: &Context,
    sb: &ScheduledBackup,
    namespace: &str,
    uid: &str,
) -> Result<Converged, Error> {
    // validate (pure) → dereference → build → apply: a bad spec costs no API read.
    crate::validate::validate(sb)?;
    // Before any read: an input that changes during the reads changes the fingerprint.
    let fingerprint = ctx.memo.fingerprint(ctx, sb);
    if let Some(pass) = ctx.memo.get(uid, fingerprint)
        && pass
            .children
            .iter()
            .all(|(child, hash)| child_current(ctx, namespace, uid, child, hash))
    {
        return Ok(Converged {
            children: pass.children.into_iter().map(|(child, _)| child).collect(),
            hash: pass.hash,
            notes: pass.notes,
            warnings: pass.warnings,
            changes: Changes::default(),
            cron_job: None,
        });
    }
    let deps = dereference(&ctx.client, &ctx.stores.templates, sb, namespace).await?;
    crate::dereference::check_key_secret(&ctx.client, sb, namespace).await?;
    let inputs = template_engine::Inputs {
        scheduled_backup: sb,
        template: &deps.template,
        token_secret: &deps.token_secret,
        vars_secret: deps.vars_secret.as_ref(),
    };
    let desired = template_engine::desired_children(&inputs)?;

    let mut changes = Changes::default();
    let mut children = Vec::new();
    let stores = &ctx.stores;
    let owner = crate::apply::ScheduledBackupRef {
        uid,
        waiter: ObjectRef::from_obj(sb),
    };
    sync_kind(
        ctx,
        &stores.config_maps,
        namespace,
        &owner,
        &desired.config_maps,
        &mut changes,
        &mut children,
    )
    .await?;
    sync_kind(
        ctx,
        &stores.secrets,
        namespace,
        &owner,
        &desired.secrets,
        &mut changes,
        &mut children,
    )
    .await?;
    // After the ConfigMaps and Secrets its pod mounts: an action that sees the PodTemplate finds them in place.
    sync_kind(
        ctx,
        &stores.pod_templates,
        namespace,
        &owner,
        &desired.pod_templates,
        &mut changes,
        &mut children,
    )
    .await?;
    let cron_jobs: Vec<_> = desired.cron_job.into_iter().collect();
    let cron_job = sync_kind(
        ctx,
        &stores.cron_jobs,
        namespace,
        &owner,
        &cron_jobs,
        &mut changes,
        &mut children,
    )
    .await?
    .pop();
    ctx.memo.remember(
        uid,
        crate::memo::Pass {
            fingerprint,
            children: children.clone(),
            hash: desired.hash.clone(),
            notes: desired.skipped.clone(),
            warnings: desired.warnings.clone(),
        },
    );
    Ok(Converged {
        children: children.into_iter().map(|(child, _)| child).collect(),
        hash: desired.hash,
        notes: desired.skipped,
        warnings: desired.warnings,
        changes,
        cron_job,
    })
}

/// Whether a remembered child is in the cache as the remembered pass left it.
fn child_current(
    ctx: &Context,
    namespace: &str,
    uid: &str,
    child: &ChildReference,
    hash: &str,
) -> bool {
    use crate::apply::current;
    let stores = &ctx.stores;
    let name = &child.name;
    match child.kind.as_str() {
        "ConfigMap" => current(&stores.config_maps, namespace, name, uid, hash),
        "Secret" => current(&stores.secrets, namespace, name, uid, hash),
        "PodTemplate" => current(&stores.pod_templates, namespace, name, uid, hash),
        "CronJob" => current(&stores.cron_jobs, namespace, name, uid, hash),
        _ => false,
    }
}

/// Jobs spawned by this ScheduledBackup's CronJob (not those of actions), from the watch cache. `applied` is the
/// CronJob this reconcile just applied or saw, which the cache may not hold yet; after a failed apply the
/// cache's copy is used.
fn observe_runs(
    ctx: &Context,
    sb: &ScheduledBackup,
    namespace: &str,
    uid: &str,
    applied: Option<CronJob>,
) -> crate::health::RunsSummary {
    // By deterministic name and by owner uid: O(runs of this SB), never a scan of every CronJob or Job.
    let cron_job = applied.map(Arc::new).or_else(|| {
        let name = crd_types::names::child_name(&sb.name_any(), sb.spec.operation);
        ctx.stores
            .cron_jobs
            .get(namespace, &name)
            .filter(|c| crate::apply::controlled_by(c.as_ref(), uid))
    });
    let cron_uid = cron_job.as_ref().and_then(|c| c.uid());
    let jobs: Vec<Arc<Job>> = cron_uid
        .map(|cron_uid| ctx.stores.jobs_by_owner.get(&cron_uid))
        .unwrap_or_default()
        .iter()
        .filter_map(|job| ctx.stores.jobs.get(job))
        .collect();
    let job_refs: Vec<&Job> = jobs.iter().map(|j| j.as_ref()).collect();
    // Only the Pods of failed Jobs matter (their termination messages), found through the owner index.
    let pods: Vec<Arc<k8s_openapi::api::core::v1::Pod>> = jobs
        .iter()
        .filter(|j| {
            matches!(
                crate::health::job_outcome(j),
                crate::health::JobOutcome::Failed(..)
            )
        })
        .filter_map(|j| j.uid())
        .flat_map(|job_uid| ctx.stores.pods_by_owner.get(&job_uid))
        .filter_map(|pod| ctx.stores.pods.get(&pod))
        .collect();
    let pod_refs: Vec<&k8s_openapi::api::core::v1::Pod> = pods.iter().map(|p| p.as_ref()).collect();
    summarise(
        cron_job.as_deref(),
        &job_refs,
        &pod_refs,
        &previous_runs(sb),
    )
}

/// Server-side applies the status this controller owns, only when it differs from what is stored.
async fn write_status(
    ctx: &Context,
    sb: &ScheduledBackup,
    namespace: &str,
    status: ScheduledBackupStatus,
) -> Result<(), Error> {
    let current = owned_part(&sb.status.clone().unwrap_or_default());
    if same_status(&current, &status) {
        return Ok(());
    }
    let before = sb.status.clone().unwrap_or_default();
    let api: Api<ScheduledBackup> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": crd_types::constants::API_VERSION,
        "kind": "ScheduledBackup",
        "status": status,
    });
    let written = api
        .patch_status(
            &sb.name_any(),
            &PatchParams::apply(SCHEDULED_CONTROLLER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::kube("writing ScheduledBackup status"))?;
    ctx.metrics.api_write("scheduledbackups/status", "apply");
    ctx.written.remember(&written);
    publish_status_events(ctx, sb, &before, &status).await;
    Ok(())
}

/// Conditions compare as a set keyed by type: their order in the stored list is not ours to keep.
fn same_status(a: &ScheduledBackupStatus, b: &ScheduledBackupStatus) -> bool {
    let sorted = |s: &ScheduledBackupStatus| {
        let mut s = s.clone();
        s.conditions.sort_by(|x, y| x.type_.cmp(&y.type_));
        s
    };
    sorted(a) == sorted(b)
}

async fn publish(
    ctx: &Context,
    sb: &ScheduledBackup,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    ctx.events.publish(sb, type_, reason, action, note).await;
}

async fn publish_changes(ctx: &Context, sb: &ScheduledBackup, changes: &Changes) {
    if !changes.applied.is_empty() {
        info!(children = ?changes.applied, "applied children");
        publish(
            ctx,
            sb,
            EventType::Normal,
            "ChildrenApplied",
            "Apply",
            format!("applied {}", changes.applied.join(", ")),
        )
        .await;
    }
    if !changes.pruned.is_empty() {
        info!(children = ?changes.pruned, "pruned children");
        publish(
            ctx,
            sb,
            EventType::Normal,
            "ChildrenPruned",
            "Prune",
            format!("deleted {}", changes.pruned.join(", ")),
        )
        .await;
    }
}

/// Events for what changed in status: a new error (once per change, not per retry) and finished runs.
async fn publish_status_events(
    ctx: &Context,
    sb: &ScheduledBackup,
    before: &ScheduledBackupStatus,
    after: &ScheduledBackupStatus,
) {
    use crd_types::constants::condition_types::READY;
    let ready_before = crd_types::conditions::find(&before.conditions, READY);
    if let Some(ready) = crd_types::conditions::find(&after.conditions, READY)
        && ready.status == "False"
        && ready_before.is_none_or(|b| b.reason != ready.reason || b.message != ready.message)
    {
        warn!(reason = %ready.reason, message = %ready.message, "ScheduledBackup is not ready");
        publish(
            ctx,
            sb,
            EventType::Warning,
            &ready.reason,
            "Reconcile",
            ready.message.clone(),
        )
        .await;
    }
    if after.last_successful_time.is_some()
        && after.last_successful_time != before.last_successful_time
    {
        publish(
            ctx,
            sb,
            EventType::Normal,
            "JobSucceeded",
            "ObserveRun",
            "a scheduled run succeeded".into(),
        )
        .await;
    }
    use crd_types::constants::condition_types::OVERDUE;
    let overdue_before = crd_types::conditions::is_true(&before.conditions, OVERDUE);
    if let Some(overdue) = crd_types::conditions::find(&after.conditions, OVERDUE)
        && overdue.status == "True"
        && !overdue_before
    {
        warn!(message = %overdue.message, "ScheduledBackup is overdue");
        publish(
            ctx,
            sb,
            EventType::Warning,
            "Overdue",
            "CheckSchedule",
            overdue.message.clone(),
        )
        .await;
    }
    // Also when only the message changed: the failed container's output can arrive after the Job's failure.
    if after.last_failed_time.is_some()
        && (after.last_failed_time != before.last_failed_time
            || after.last_failure_message != before.last_failure_message)
    {
        let message = crd_types::conditions::find(
            &after.conditions,
            crd_types::constants::condition_types::LAST_RUN_SUCCEEDED,
        )
        .map(|c| c.message.clone())
        .unwrap_or_else(|| "a scheduled run failed".into());
        publish(
            ctx,
            sb,
            EventType::Warning,
            "JobFailed",
            "ObserveRun",
            message,
        )
        .await;
    }
}

/// Transient errors back off; user errors never reach here (they are reported in status).
pub fn error_policy(sb: Arc<ScheduledBackup>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.failed(ObjectRef::from_obj(sb.as_ref()));
    warn!(error = %error, reason = error.reason(), retry_in = ?delay, "reconcile failed, retrying");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(created: &str, key_condition: Option<&str>) -> ScheduledBackup {
        let conditions: Vec<serde_json::Value> = key_condition
            .map(|status| json!({"type": "GPGKeyReady", "status": status, "reason": "R", "message": "m", "lastTransitionTime": created}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
            "metadata": {"name": "app", "namespace": "ns", "creationTimestamp": created},
            "spec": {"operation": "backup", "templateRef": {"kind": "internal", "name": "pg15"},
                     "gpgKeySecretRef": {"secretName": "keys"}, "tokenSecretRef": {"secretName": "token"}},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn at(ts: &str) -> jiff::Timestamp {
        ts.parse().unwrap()
    }

    #[test]
    fn a_new_sb_waits_silently_for_the_first_key_report_until_the_grace_ends() {
        let new = sb("2026-01-01T00:00:00Z", None);
        assert_eq!(
            awaiting_first_key_report(&new, at("2026-01-01T00:00:10Z")),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            awaiting_first_key_report(&new, at("2026-01-01T00:00:30Z")),
            None
        );
        assert_eq!(
            awaiting_first_key_report(&new, at("2026-01-01T01:00:00Z")),
            None
        );
    }

    #[test]
    fn any_key_report_ends_the_silent_wait() {
        for status in ["True", "False"] {
            let reported = sb("2026-01-01T00:00:00Z", Some(status));
            assert_eq!(
                awaiting_first_key_report(&reported, at("2026-01-01T00:00:01Z")),
                None
            );
        }
    }
}
