//! History limits: finished RequestedBackupActions of a ScheduledBackup beyond
//! `spec.successfulActionsHistoryLimit` / `spec.failedActionsHistoryLimit` (default 10 each) are deleted, oldest
//! first, when another action of that ScheduledBackup finishes. Their executors go with them (ownerReference).
//! Running or pending actions are never touched; without the ScheduledBackup nothing is deleted (its limits are
//! unknown).

use std::sync::Arc;

use crd_types::{ActionPhase, RequestedBackupAction};
use jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use tracing::info;

use crate::Context;
use crate::error::Error;
use crate::index::ActionsBySb;
use crate::lean::CachedScheduledBackup;

/// When an action finished, for ordering: its `completionTime`, else its creation.
fn finished_at(action: &RequestedBackupAction) -> Option<Timestamp> {
    action
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .or(action.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// The finished actions of `sb` beyond its limits, oldest first, as `(name, uid)`. `actions` may hold actions of
/// any ScheduledBackup and namespace.
pub fn beyond_limits<'a>(
    sb: &CachedScheduledBackup,
    actions: impl IntoIterator<Item = &'a RequestedBackupAction>,
) -> Vec<(String, String)> {
    let (keep_succeeded, keep_failed) = sb.actions_history_limits();
    let (namespace, name) = (sb.namespace(), sb.name_any());
    let mine: Vec<&RequestedBackupAction> = actions
        .into_iter()
        .filter(|a| a.namespace() == namespace && a.spec.scheduled_backup_ref.name == name)
        .collect();
    let mut out = Vec::new();
    for (phase, keep) in [
        (ActionPhase::Succeeded, keep_succeeded),
        (ActionPhase::Failed, keep_failed),
    ] {
        let mut finished: Vec<&RequestedBackupAction> = mine
            .iter()
            .copied()
            .filter(|a| a.status.as_ref().and_then(|s| s.phase) == Some(phase))
            .collect();
        // Newest first; the name breaks ties so the choice is stable.
        finished.sort_by_key(|a| std::cmp::Reverse((finished_at(a), a.name_any())));
        let mut beyond: Vec<(String, String)> = finished
            .into_iter()
            .skip(keep)
            .filter_map(|a| Some((a.name_any(), a.uid()?)))
            .collect();
        beyond.reverse();
        out.extend(beyond);
    }
    out
}

/// The cached finished actions of the ScheduledBackup `namespace/sb_name`, found through the index: its own
/// history only, never a scan of every action.
pub fn finished_of(
    actions: &Store<RequestedBackupAction>,
    index: &ActionsBySb,
    namespace: &str,
    sb_name: &str,
) -> Vec<Arc<RequestedBackupAction>> {
    index
        .finished(namespace, sb_name)
        .iter()
        .filter_map(|reference| actions.get(reference))
        .collect()
}

/// Deletes the finished actions of the ScheduledBackup `namespace/sb_name` beyond its limits. `just_finished` is
/// the action this reconcile just finished, newer than its cached copy.
pub async fn prune(
    ctx: &Context,
    namespace: &str,
    sb_name: &str,
    just_finished: &RequestedBackupAction,
) -> Result<(), Error> {
    let Some(sb) = ctx
        .scheduled_backups
        .get(&ObjectRef::new(sb_name).within(namespace))
    else {
        return Ok(());
    };
    let cached = finished_of(&ctx.actions, &ctx.actions_by_sb, namespace, sb_name);
    let uid = just_finished.uid();
    let actions = cached
        .iter()
        .map(|a| a.as_ref())
        .filter(|a| a.uid() != uid)
        .chain(std::iter::once(just_finished));
    let api: Api<RequestedBackupAction> = Api::namespaced(ctx.client.clone(), namespace);
    for (name, uid) in beyond_limits(&sb, actions) {
        // By uid: a newer action that took the name of a deleted one is never deleted by mistake.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                ctx.metrics.api_write("requestedbackupactions", "delete");
                info!(action = %name, scheduled_backup = %sb_name, "deleted a finished action beyond the history limit");
            }
            // Already gone, or replaced by a newer action of the same name.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => {
                return Err(Error::kube(format!(
                    "deleting finished RequestedBackupAction {namespace}/{name} beyond the history limit"
                ))(error));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sb(limits: serde_json::Value) -> CachedScheduledBackup {
        let mut spec = json!({"operation": "backup", "templateRef": {"kind": "internal", "name": "pg15"},
            "gpgKeySecretRef": {"secretName": "k"}, "tokenSecretRef": {"secretName": "t"}});
        for (k, v) in limits.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let typed: crd_types::ScheduledBackup = serde_json::from_value(
            json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
            "metadata": {"name": "app1", "namespace": "ns"}, "spec": spec}),
        )
        .unwrap();
        CachedScheduledBackup::from(&typed)
    }

    fn action(name: &str, sb: &str, phase: Option<&str>, done: &str) -> RequestedBackupAction {
        let status = match phase {
            Some(p) => json!({"phase": p, "completionTime": done}),
            None => json!({}),
        };
        serde_json::from_value(json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"action": "backup", "scheduledBackupRef": {"name": sb}}, "status": status}))
        .unwrap()
    }

    #[test]
    fn the_oldest_finished_actions_beyond_each_limit_go_and_running_ones_stay() {
        let actions = [
            action("s1", "app1", Some("Succeeded"), "2026-01-01T01:00:00Z"),
            action("s2", "app1", Some("Succeeded"), "2026-01-01T02:00:00Z"),
            action("s3", "app1", Some("Succeeded"), "2026-01-01T03:00:00Z"),
            action("f1", "app1", Some("Failed"), "2026-01-01T01:30:00Z"),
            action("f2", "app1", Some("Failed"), "2026-01-01T02:30:00Z"),
            action("running", "app1", Some("Running"), "2026-01-01T00:00:00Z"),
            action("pending", "app1", None, "2026-01-01T00:00:00Z"),
            action(
                "other-sb",
                "app2",
                Some("Succeeded"),
                "2026-01-01T00:00:00Z",
            ),
        ];
        let limits =
            sb(json!({"successfulActionsHistoryLimit": 1, "failedActionsHistoryLimit": 1}));
        assert_eq!(
            beyond_limits(&limits, &actions),
            [
                ("s1".to_string(), "uid-s1".to_string()),
                ("s2".into(), "uid-s2".into()),
                ("f1".into(), "uid-f1".into())
            ]
        );
        let none_kept =
            sb(json!({"successfulActionsHistoryLimit": 0, "failedActionsHistoryLimit": 5}));
        assert_eq!(beyond_limits(&none_kept, &actions).len(), 3);
        // Default 10 each: nothing to delete here.
        assert!(beyond_limits(&sb(json!({})), &actions).is_empty());
    }

    #[test]
    fn history_reads_only_the_finished_actions_of_its_own_scheduled_backup() {
        let (store, mut writer) = kube::runtime::reflector::store();
        let index = ActionsBySb::default();
        let mut other_ns = action(
            "elsewhere",
            "app1",
            Some("Succeeded"),
            "2026-01-01T00:00:00Z",
        );
        other_ns.metadata.namespace = Some("other".into());
        for a in [
            action("s1", "app1", Some("Succeeded"), "2026-01-01T01:00:00Z"),
            action("f1", "app1", Some("Failed"), "2026-01-01T01:30:00Z"),
            action("running", "app1", Some("Running"), "2026-01-01T00:00:00Z"),
            action(
                "other-sb",
                "app2",
                Some("Succeeded"),
                "2026-01-01T00:00:00Z",
            ),
            other_ns,
        ] {
            let event = kube::runtime::watcher::Event::Apply(a);
            index.observe(&event);
            writer.apply_watcher_event(&event);
        }
        let mut names: Vec<String> = finished_of(&store, &index, "ns", "app1")
            .iter()
            .map(|a| a.name_any())
            .collect();
        names.sort();
        assert_eq!(names, ["f1", "s1"]);
        // A deleted action is no longer history.
        let gone = kube::runtime::watcher::Event::Delete(action(
            "s1",
            "app1",
            Some("Succeeded"),
            "2026-01-01T01:00:00Z",
        ));
        index.observe(&gone);
        writer.apply_watcher_event(&gone);
        let names: Vec<String> = finished_of(&store, &index, "ns", "app1")
            .iter()
            .map(|a| a.name_any())
            .collect();
        assert_eq!(names, ["f1"]);
    }
}
