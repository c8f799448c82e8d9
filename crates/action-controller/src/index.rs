//! Actions by ScheduledBackup, kept up to date from the action watch: an SB or PodTemplate event finds the actions
//! still waiting on that SB, and history limits find that SB's finished actions, each in O(answer) instead of a
//! scan of every action in the cluster (at 10,000 SBs with their finished actions, one scan per SB status write
//! makes a resync O(N²)).
//!
//! Each action is filed under exactly one key: `waiting:<namespace>/<sb>` until it finishes, then
//! `finished:<namespace>/<sb>`. A finished action is therefore never visited when an SB event wakes waiters.

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use controller_runtime::index::ReverseIndex;
use crd_types::RequestedBackupAction;

use crate::reconcile::is_terminal;

/// Actions by their ScheduledBackup, split into waiting (not finished) and finished.
pub struct ActionsBySb(ReverseIndex<RequestedBackupAction>);

impl Default for ActionsBySb {
    fn default() -> Self {
        ActionsBySb(ReverseIndex::new(|action: &RequestedBackupAction| {
            vec![key_of(action)]
        }))
    }
}

fn sb_key(namespace: &str, sb_name: &str) -> String {
    format!("{namespace}/{sb_name}")
}

/// The one key an action is filed under.
fn key_of(action: &RequestedBackupAction) -> String {
    let sb = sb_key(
        action.namespace().as_deref().unwrap_or_default(),
        &action.spec.scheduled_backup_ref.name,
    );
    if is_terminal(action) {
        format!("finished:{sb}")
    } else {
        format!("waiting:{sb}")
    }
}

impl ActionsBySb {
    /// Follows one event of the action watch.
    pub fn observe(&self, event: &watcher::Event<RequestedBackupAction>) {
        self.0.observe(event);
    }

    /// Actions of the ScheduledBackup `namespace/sb_name` that have not finished.
    pub fn waiting(&self, namespace: &str, sb_name: &str) -> Vec<ObjectRef<RequestedBackupAction>> {
        self.0
            .get(&format!("waiting:{}", sb_key(namespace, sb_name)))
    }

    /// Finished (Succeeded or Failed) actions of the ScheduledBackup `namespace/sb_name`.
    pub fn finished(
        &self,
        namespace: &str,
        sb_name: &str,
    ) -> Vec<ObjectRef<RequestedBackupAction>> {
        self.0
            .get(&format!("finished:{}", sb_key(namespace, sb_name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(name: &str, namespace: &str, sb: &str, phase: Option<&str>) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
            "spec": {"action": "backup", "scheduledBackupRef": {"name": sb}},
            "status": phase.map(|p| json!({"phase": p})).unwrap_or(json!({})),
        }))
        .unwrap()
    }

    fn names(refs: Vec<ObjectRef<RequestedBackupAction>>) -> Vec<String> {
        let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn an_action_is_waiting_until_it_finishes_then_only_finished_and_gone_once_deleted() {
        let index = ActionsBySb::default();
        index.observe(&watcher::Event::Apply(action("a1", "ns", "app1", None)));
        index.observe(&watcher::Event::Apply(action(
            "a2",
            "ns",
            "app1",
            Some("Running"),
        )));
        assert_eq!(names(index.waiting("ns", "app1")), ["a1", "a2"]);
        assert!(index.finished("ns", "app1").is_empty());

        // Modified: finished, it moves and no SB event wakes it any more.
        index.observe(&watcher::Event::Apply(action(
            "a2",
            "ns",
            "app1",
            Some("Succeeded"),
        )));
        assert_eq!(names(index.waiting("ns", "app1")), ["a1"]);
        assert_eq!(names(index.finished("ns", "app1")), ["a2"]);
        index.observe(&watcher::Event::Apply(action(
            "a1",
            "ns",
            "app1",
            Some("Failed"),
        )));
        assert!(index.waiting("ns", "app1").is_empty());
        assert_eq!(names(index.finished("ns", "app1")), ["a1", "a2"]);

        index.observe(&watcher::Event::Delete(action(
            "a2",
            "ns",
            "app1",
            Some("Succeeded"),
        )));
        assert_eq!(names(index.finished("ns", "app1")), ["a1"]);
    }

    #[test]
    fn actions_are_kept_apart_by_namespace_and_scheduled_backup() {
        let index = ActionsBySb::default();
        index.observe(&watcher::Event::Apply(action("a1", "ns", "app1", None)));
        index.observe(&watcher::Event::Apply(action("a2", "ns", "app2", None)));
        index.observe(&watcher::Event::Apply(action("a3", "other", "app1", None)));
        assert_eq!(names(index.waiting("ns", "app1")), ["a1"]);
        assert_eq!(names(index.waiting("ns", "app2")), ["a2"]);
        assert_eq!(names(index.waiting("other", "app1")), ["a3"]);
        assert!(index.waiting("ns", "app3").is_empty());
    }

    #[test]
    fn a_relist_forgets_actions_deleted_while_the_watch_was_down() {
        let index = ActionsBySb::default();
        index.observe(&watcher::Event::Apply(action("gone", "ns", "app1", None)));
        index.observe(&watcher::Event::Apply(action(
            "done",
            "ns",
            "app1",
            Some("Succeeded"),
        )));
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(action(
            "done",
            "ns",
            "app1",
            Some("Succeeded"),
        )));
        index.observe(&watcher::Event::InitDone);
        assert!(index.waiting("ns", "app1").is_empty());
        assert_eq!(names(index.finished("ns", "app1")), ["done"]);
    }
}
