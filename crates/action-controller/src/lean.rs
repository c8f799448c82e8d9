//! Lean watch caches: every watched object is cut down to what this controller reads before the reflector stores
//! it, so memory grows with what the controller needs, not with what users and other controllers put in objects
//! (a Job's pod template, an SB's run history, a finished action's failure output).
//!
//! Jobs and ScheduledBackups are decoded straight into cache types of their own ([`CachedJob`],
//! [`CachedScheduledBackup`]): a k8s-openapi `Job` with `spec: None` still has the inline size of its spec, so
//! the saving comes from the type, not from clearing fields. Actions and PodTemplates keep their own types (the
//! reconcile and the executor builder read them), cut down in place.
//!
//! Nothing here compares a cached object with a desired one: executors are created once and never updated (no
//! drift to correct), so a Job's spec is never needed after its creation.

use std::sync::Arc;

use controller_runtime::cache::{Watched, Watches, restarting_watch};
use crd_types::constants::condition_types;
use crd_types::scheduled_backup::DEFAULT_ACTIONS_HISTORY_LIMIT;
use crd_types::{RequestedBackupAction, RequestedBackupActionStatus, ScheduledBackup};
use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

/// Written by `kubectl apply` (client-side): a full copy of the object, never read here.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no controller reads from any object: `managedFields` and kubectl's last-applied copy.
pub fn strip_common<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A Job as this controller caches it: metadata and status only. The watch decodes Jobs straight into it, so
/// the spec (the whole pod template) is never even allocated; a `Job` with `spec: None` would still carry the
/// spec's inline size (about 3 KB per Job).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CachedJob {
    /// Identity, labels, owners, deletion.
    pub metadata: ObjectMeta,
    /// What the Job controller reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
}

impl Resource for CachedJob {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "Job".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "batch".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "jobs".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<&CachedJob> for Job {
    /// The cached Job as a `Job` without a spec (what [`crate::status::job_view`] and the executor code read).
    fn from(cached: &CachedJob) -> Job {
        Job {
            metadata: cached.metadata.clone(),
            spec: None,
            status: cached.status.clone(),
        }
    }
}

/// A Job as the controller reads it: identity, owners (who controls it, which action it triggers), deletion, and
/// the status fields [`crate::status::job_view`] reads. Its labels go too: the watch selects by label on the
/// server, and nothing here reads them (about 0.7 KB per Job).
pub fn job(job: &mut CachedJob) {
    let meta = std::mem::take(&mut job.metadata);
    job.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        owner_references: meta.owner_references,
        deletion_timestamp: meta.deletion_timestamp,
        ..Default::default()
    };
    job.status = job.status.take().map(|status| JobStatus {
        conditions: status.conditions,
        start_time: status.start_time,
        completion_time: status.completion_time,
        active: status.active,
        succeeded: status.succeeded,
        failed: status.failed,
        ..Default::default()
    });
}

/// A ScheduledBackup as this controller caches it: identity, its history limits and its `Ready` condition (which
/// gates its actions). Decoded straight from the watch: the rest of its spec (vars, template, secrets) and
/// status (run history, children) is never allocated.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CachedScheduledBackup {
    /// Identity.
    pub metadata: ObjectMeta,
    /// The history limits.
    #[serde(default)]
    pub spec: HistoryLimits,
    /// The `Ready` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReadyStatus>,
}

/// `spec.successfulActionsHistoryLimit` / `spec.failedActionsHistoryLimit` of a ScheduledBackup.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryLimits {
    /// Finished successful actions to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_actions_history_limit: Option<i32>,
    /// Finished failed actions to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_actions_history_limit: Option<i32>,
}

/// The conditions of a ScheduledBackup's status (only `Ready` once projected).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ReadyStatus {
    /// Conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl CachedScheduledBackup {
    /// `(successful, failed)` finished actions to keep, defaulted as the ScheduledBackup's own spec does.
    pub fn actions_history_limits(&self) -> (usize, usize) {
        let limit = |v: Option<i32>| {
            v.map_or(DEFAULT_ACTIONS_HISTORY_LIMIT, |n| {
                usize::try_from(n).unwrap_or(0)
            })
        };
        (
            limit(self.spec.successful_actions_history_limit),
            limit(self.spec.failed_actions_history_limit),
        )
    }

    /// Its conditions (empty without a status).
    pub fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default()
    }
}

impl From<&ScheduledBackup> for CachedScheduledBackup {
    /// What the cache holds of a typed ScheduledBackup (the same as decoding its JSON, then [`scheduled_backup`]).
    fn from(sb: &ScheduledBackup) -> Self {
        let mut cached = CachedScheduledBackup {
            metadata: sb.metadata.clone(),
            spec: HistoryLimits {
                successful_actions_history_limit: sb.spec.successful_actions_history_limit,
                failed_actions_history_limit: sb.spec.failed_actions_history_limit,
            },
            status: sb.status.as_ref().map(|s| ReadyStatus {
                conditions: s.conditions.clone(),
            }),
        };
        scheduled_backup(&mut cached);
        cached
    }
}

impl Resource for CachedScheduledBackup {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        ScheduledBackup::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        ScheduledBackup::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        ScheduledBackup::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        ScheduledBackup::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Keeps a cached ScheduledBackup's identity and `Ready` condition.
pub fn scheduled_backup(sb: &mut CachedScheduledBackup) {
    let meta = std::mem::take(&mut sb.metadata);
    sb.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        generation: meta.generation,
        deletion_timestamp: meta.deletion_timestamp,
        ..Default::default()
    };
    if let Some(status) = &mut sb.status {
        status
            .conditions
            .retain(|c| c.type_ == condition_types::READY);
        status.conditions.shrink_to_fit();
    }
}

/// An action as the controller reads it. One that has not finished is kept whole (its status is compared with
/// the desired one, so an unchanged world writes nothing). A finished one is never acted on again: it keeps
/// only what says it finished and what history limits order by (phase, times); its conditions (with the failed
/// container's output) and children go.
pub fn action(action: &mut RequestedBackupAction) {
    strip_common(action);
    if !crate::reconcile::is_terminal(action) {
        return;
    }
    action.status = action
        .status
        .take()
        .map(|status| RequestedBackupActionStatus {
            processed: status.processed,
            phase: status.phase,
            start_time: status.start_time,
            completion_time: status.completion_time,
            observed_generation: status.observed_generation,
            ..Default::default()
        });
}

/// A watch cache of `api` whose objects are cut down by `project` before they are stored (and before `observe`,
/// which keeps an index, sees them), and the stream of the objects it saw. Like
/// [`controller_runtime::cache::cached_with`], plus the projection (which belongs there; kept local to this crate
/// while the runtime is being changed by others).
pub fn cached_lean<K>(
    api: Api<K>,
    config: watcher::Config,
    watches: &Arc<Watches>,
    project: impl FnMut(&mut K) + Send + 'static,
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Watched,
{
    let (store, writer) = reflector::store();
    let events = restarting_watch(api, config, watches)
        .modify(project)
        .inspect(move |event| {
            if let Ok(event) = event {
                observe(event);
            }
        });
    let stream = reflector::reflector(writer, events)
        .filter_map(|event| std::future::ready(event.ok().map(Ok)))
        .touched_objects();
    (store, stream)
}

/// Serialized size of an object (a proxy for what caching it costs), for tests and the bench.
pub fn json_size<K: serde::Serialize>(object: &K) -> usize {
    serde_json::to_vec(object).map(|v| v.len()).unwrap_or(0)
}

/// True when `object` carries nothing [`strip_common`] removes.
pub fn is_stripped<K: Resource>(object: &K) -> bool {
    object.meta().managed_fields.is_none() && !object.annotations().contains_key(LAST_APPLIED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::controlled_by;
    use crate::status::job_view;
    use kube::runtime::reflector::ObjectRef;
    use serde_json::{Value, json};

    fn managed_fields() -> Value {
        json!([{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "batch/v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:active": {}}}}])
    }

    fn full_job(status: Value) -> Job {
        serde_json::from_value(job_json(status)).unwrap()
    }

    /// A Job as the watch decodes it into the cache, projected.
    fn cached(status: Value) -> CachedJob {
        let mut cached: CachedJob = serde_json::from_value(job_json(status)).unwrap();
        job(&mut cached);
        cached
    }

    fn job_json(status: Value) -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": "a1", "namespace": "ns", "uid": "job-uid", "resourceVersion": "42",
                "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1,
                "labels": {"riotkit.org/requested-backup-action": "a1"},
                "annotations": {"note": "x", LAST_APPLIED: "{\"big\": true}"},
                "finalizers": ["batch.kubernetes.io/job-tracking"],
                "ownerReferences": [{"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
                                     "name": "a1", "uid": "action-uid", "controller": true, "blockOwnerDeletion": true}],
                "managedFields": managed_fields(),
            },
            "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "backup-maker", "image": "i", "command": ["/bin/sh", "-c", "a long script"],
                 "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}}},
            "status": status,
        })
    }

    #[test]
    fn a_cached_job_keeps_identity_owners_and_status_and_loses_its_spec_and_labels() {
        let status = json!({
            "active": 0, "failed": 3, "startTime": "2026-01-01T00:00:01Z", "ready": 0,
            "uncountedTerminatedPods": {"failed": ["p1"]},
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                            "lastTransitionTime": "2026-01-01T00:05:00Z"}]
        });
        let original = full_job(status.clone());
        let lean = cached(status);
        assert_eq!(
            serde_json::to_value(&lean).unwrap(),
            json!({
                "metadata": {
                    "name": "a1", "namespace": "ns", "uid": "job-uid", "resourceVersion": "42",
                    "ownerReferences": [{"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
                                         "name": "a1", "uid": "action-uid", "controller": true, "blockOwnerDeletion": true}],
                },
                "status": {"active": 0, "failed": 3, "startTime": "2026-01-01T00:00:01Z",
                    "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                    "message": "Job has reached the specified backoff limit",
                                    "lastTransitionTime": "2026-01-01T00:05:00Z"}]},
            })
        );
        // What the controller reads of it is unchanged.
        assert_eq!(job_view(&Job::from(&lean)), job_view(&original));
        assert!(controlled_by(&lean, "action-uid"));
        assert!(!controlled_by(&lean, "job-uid"));
        assert_eq!(
            ObjectRef::from_obj(&lean),
            ObjectRef::<CachedJob>::new("a1").within("ns")
        );
        assert_eq!(
            CachedJob::url_path(&(), Some("ns")),
            Job::url_path(&(), Some("ns")),
            "watched at the Jobs' own URL"
        );
        assert!(json_size(&lean) < json_size(&original) / 2);
        assert!(
            std::mem::size_of::<CachedJob>() < std::mem::size_of::<Job>() / 2,
            "no room for a spec in the cached type"
        );
    }

    #[test]
    fn every_job_progress_reads_the_same_from_the_lean_copy() {
        for status in [
            json!(null),
            json!({}),
            json!({"active": 1}),
            json!({"startTime": "2026-01-01T00:00:01Z", "active": 1, "failed": 1}),
            json!({"startTime": "2026-01-01T00:00:01Z", "completionTime": "2026-01-01T00:01:00Z", "succeeded": 1,
                   "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:01:00Z"}]}),
        ] {
            let original = full_job(status.clone());
            assert_eq!(job_view(&Job::from(&cached(status))), job_view(&original));
        }
    }

    #[test]
    fn managed_fields_and_the_last_applied_copy_go_and_other_annotations_stay() {
        let mut pod_template: k8s_openapi::api::core::v1::PodTemplate =
            serde_json::from_value(json!({
                "metadata": {"name": "app1-backup", "namespace": "ns", "managedFields": managed_fields(),
                             "annotations": {LAST_APPLIED: "{}", "riotkit.org/backoff-limit": "2"}},
                "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}
            }))
            .unwrap();
        assert!(!is_stripped(&pod_template));
        let before = pod_template.template.clone();
        strip_common(&mut pod_template);
        assert!(is_stripped(&pod_template));
        assert_eq!(
            pod_template.annotations().keys().collect::<Vec<_>>(),
            ["riotkit.org/backoff-limit"]
        );
        assert_eq!(
            pod_template.template, before,
            "the executor is built from it"
        );
        // No annotation left: none at all, not an empty map.
        let mut only_last_applied: Job = serde_json::from_value(
            json!({"metadata": {"name": "j", "annotations": {LAST_APPLIED: "{}"}}}),
        )
        .unwrap();
        strip_common(&mut only_last_applied);
        assert_eq!(only_last_applied.metadata.annotations, None);
    }

    fn sb() -> ScheduledBackup {
        serde_json::from_value(sb_json()).unwrap()
    }

    fn sb_json() -> Value {
        json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
            "metadata": {"name": "app1", "namespace": "ns", "uid": "sb-uid", "resourceVersion": "7", "generation": 3,
                         "labels": {"team": "a"}, "annotations": {LAST_APPLIED: "{}"}, "managedFields": managed_fields()},
            "spec": {"operation": "backup", "templateRef": {"kind": "internal", "name": "pg15"},
                     "gpgKeySecretRef": {"secretName": "k"}, "tokenSecretRef": {"secretName": "t"},
                     "successfulActionsHistoryLimit": 2, "failedActionsHistoryLimit": 1},
            "status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "WaitingForKeySecret", "message": "m",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "LastRunSucceeded", "status": "False", "reason": "JobFailed", "message": "a long output",
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "lastFailureMessage": "a long output", "consecutiveFailures": 3,
                "childrenResourcesHealth": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j",
                                             "message": "failed", "succeeded": false, "running": false, "failed": true}]}
        })
    }

    #[test]
    fn a_cached_scheduled_backup_is_its_identity_history_limits_and_ready_condition() {
        // As the watch decodes it: nothing else is ever allocated.
        let mut decoded: CachedScheduledBackup = serde_json::from_value(sb_json()).unwrap();
        scheduled_backup(&mut decoded);
        assert_eq!(
            serde_json::to_value(&decoded).unwrap(),
            json!({
                "metadata": {"name": "app1", "namespace": "ns", "uid": "sb-uid", "resourceVersion": "7", "generation": 3},
                "spec": {"successfulActionsHistoryLimit": 2, "failedActionsHistoryLimit": 1},
                "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "WaitingForKeySecret",
                    "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
            })
        );
        let typed = sb();
        assert_eq!(
            decoded,
            CachedScheduledBackup::from(&typed),
            "watched and typed agree"
        );
        assert_eq!(
            decoded.actions_history_limits(),
            typed.spec.actions_history_limits()
        );
        let mut unlimited = sb_json();
        unlimited["spec"] = json!({"operation": "backup"});
        let unlimited: CachedScheduledBackup = serde_json::from_value(unlimited).unwrap();
        assert_eq!(
            unlimited.actions_history_limits(),
            (DEFAULT_ACTIONS_HISTORY_LIMIT, DEFAULT_ACTIONS_HISTORY_LIMIT)
        );
        assert_eq!(
            CachedScheduledBackup::url_path(&(), Some("ns")),
            ScheduledBackup::url_path(&(), Some("ns")),
            "watched at the ScheduledBackups' own URL"
        );
        assert!(
            std::mem::size_of::<CachedScheduledBackup>() < std::mem::size_of::<ScheduledBackup>()
        );
        // The gate reads its Ready condition.
        let gate = crate::executor::check_scheduled_backup(Some(&decoded), "ns", "app1")
            .unwrap_err()
            .to_string();
        assert!(gate.contains("WaitingForKeySecret"), "{gate}");
    }

    fn rba(status: Value) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": "a1", "namespace": "ns", "uid": "u1", "resourceVersion": "9",
                         "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"l": "v"},
                         "annotations": {LAST_APPLIED: "{}", "keep": "me"}, "managedFields": managed_fields()},
            "spec": {"action": "backup", "scheduledBackupRef": {"name": "app1"}},
            "status": status,
        }))
        .unwrap()
    }

    fn finished_status(phase: &str) -> Value {
        json!({"processed": true, "phase": phase, "startTime": "2026-01-01T00:00:01Z",
               "completionTime": "2026-01-01T00:05:00Z", "observedGeneration": 1, "healthy": false,
               "conditions": [{"type": "Failed", "status": "True", "reason": "JobFailed",
                               "message": "output: a very long termination message", "lastTransitionTime": "2026-01-01T00:05:00Z"}],
               "ownedReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "a1"}]})
    }

    #[test]
    fn an_action_that_has_not_finished_is_cached_whole_but_for_managed_fields_and_last_applied() {
        let running = json!({"processed": true, "phase": "Running", "healthy": true,
            "conditions": [{"type": "Ready", "status": "False", "reason": "Running", "message": "m",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let original = rba(running);
        let mut lean = original.clone();
        action(&mut lean);
        assert_eq!(lean.status, original.status);
        assert_eq!(lean.spec, original.spec);
        assert_eq!(lean.labels(), original.labels());
        assert_eq!(lean.annotations().keys().collect::<Vec<_>>(), ["keep"]);
        assert!(is_stripped(&lean));
    }

    #[test]
    fn a_finished_action_keeps_its_phase_and_times_for_history_and_loses_its_conditions() {
        for phase in ["Succeeded", "Failed"] {
            let original = rba(finished_status(phase));
            let mut lean = action_of(&original);
            assert!(crate::reconcile::is_terminal(&lean));
            let status = lean.status.take().unwrap();
            let before = original.status.clone().unwrap();
            assert_eq!(
                (
                    status.phase,
                    status.processed,
                    &status.start_time,
                    &status.completion_time
                ),
                (
                    before.phase,
                    before.processed,
                    &before.start_time,
                    &before.completion_time
                )
            );
            assert!(status.conditions.is_empty() && status.owned_references.is_empty());
            assert_eq!(status.healthy, None);
        }
        // History limits choose the same actions from lean copies.
        let limits = {
            let mut sb = sb();
            sb.spec.successful_actions_history_limit = Some(0);
            CachedScheduledBackup::from(&sb)
        };
        let full = [rba(finished_status("Succeeded"))];
        let lean = [action_of(&full[0])];
        assert_eq!(
            crate::history::beyond_limits(&limits, &lean),
            crate::history::beyond_limits(&limits, &full)
        );
        assert_eq!(crate::history::beyond_limits(&limits, &lean).len(), 1);
    }

    fn action_of(original: &RequestedBackupAction) -> RequestedBackupAction {
        let mut lean = original.clone();
        action(&mut lean);
        lean
    }
}
