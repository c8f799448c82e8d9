//! The Pods of the ScheduledBackups' Jobs, cached only for why a run failed: the failed container's termination
//! message (`FallbackToLogsOnError` puts the end of its log there).
//!
//! Label-selected (`riotkit.org/scheduled-backup`, which the rendered pod template carries), and each Pod is cut
//! down to what that needs before it is cached: its identity, labels, owners, phase and the containers'
//! terminated states. No spec, no environment, no annotations.

use std::sync::Arc;

use controller_runtime::cache::Watches;
use controller_runtime::index::ReverseIndex;
use futures::Stream;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
};
use kube::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

/// Keeps only what [`crate::health::failure_output`] reads.
pub fn strip(pod: &mut Pod) {
    pod.spec = None;
    pod.metadata.annotations = None;
    pod.metadata.managed_fields = None;
    pod.status = pod.status.take().map(|status| PodStatus {
        phase: status.phase,
        container_statuses: status.container_statuses.map(|statuses| {
            statuses
                .into_iter()
                .map(|c| ContainerStatus {
                    state: c.state.and_then(|s| s.terminated).map(|t| ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: t.exit_code,
                            message: t.message,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    name: c.name,
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    });
}

/// A cache of the stripped Pods of `api` selected by `config`, filed in `by_owner` by their owners' uids (a Job's
/// Pods without a scan), and the stream of Pods it saw (to map to their ScheduledBackup).
pub fn cached(
    api: Api<Pod>,
    config: watcher::Config,
    watches: &Arc<Watches>,
    by_owner: Arc<ReverseIndex<Pod>>,
) -> (
    Store<Pod>,
    impl Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
) {
    controller_runtime::lean::projected(api, config, watches, strip, move |event| {
        by_owner.observe(event)
    })
}

/// Owner uids of a Pod (its Job's).
pub fn owners(pod: &Pod) -> Vec<String> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .map(|o| o.uid.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_pod_keeps_its_identity_and_terminated_states_and_nothing_else() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"batch.kubernetes.io/job-name": "j"},
                         "annotations": {"big": "x"}, "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "job-uid"}]},
            "spec": {"containers": [{"name": "backup-maker", "env": [{"name": "PASSWORD", "value": "secret"}]}]},
            "status": {"phase": "Failed", "podIP": "10.0.0.1", "containerStatuses": [
                {"name": "backup-maker", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "boom", "startedAt": "2026-01-01T00:00:00Z"}}},
                {"name": "sidecar", "image": "i", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}
            ]}
        }))
        .unwrap();
        strip(&mut pod);
        let json = serde_json::to_value(&pod).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"batch.kubernetes.io/job-name": "j"},
                             "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "job-uid"}]},
                "status": {"phase": "Failed", "containerStatuses": [
                    {"name": "backup-maker", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 1, "message": "boom"}}},
                    {"name": "sidecar", "image": "", "imageID": "", "ready": false, "restartCount": 0}
                ]}
            })
        );
        assert_eq!(owners(&pod), ["job-uid"]);
        assert_eq!(
            crate::health::failure_output("j", &[&pod]).as_deref(),
            Some("boom")
        );
    }
}
