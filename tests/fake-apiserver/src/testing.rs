//! Test helpers written against a plain `kube::Client`, so the same test code drives the fake
//! and a real cluster without a kubelet (where Pods only change phase when a test says so).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::FakeError;

/// How a Job's Pod ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every container exits 0 (`Completed`).
    Succeeded,
    /// Every container exits with `exit_code` (`Error`) and this termination message.
    Failed {
        /// The containers' exit code.
        exit_code: i32,
        /// `state.terminated.message` of each container.
        message: String,
    },
}

/// How long [`finish_job_pod`] waits for the Job's Pod to appear.
const POD_WAIT: Duration = Duration::from_secs(10);

/// Does what the kubelet would do for the running Pod of Job `job` in `namespace`: waits until
/// the job controller has created it (label `batch.kubernetes.io/job-name=<job>`), then patches
/// `pods/status` to phase `Succeeded` or `Failed` with a terminated state for every container.
/// The job controller (the fake's, or a real cluster's) then updates the Job. Returns the Pod
/// as patched.
pub async fn finish_job_pod(
    client: kube::Client,
    namespace: &str,
    job: &str,
    outcome: Outcome,
) -> Result<Pod, FakeError> {
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let selector = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    let deadline = tokio::time::Instant::now() + POD_WAIT;
    let pod = loop {
        let running = pods.list(&selector).await?.items.into_iter().find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_none_or(|phase| phase != "Succeeded" && phase != "Failed")
        });
        if let Some(pod) = running {
            break pod;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FakeError::Timeout(POD_WAIT));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string();
    let (phase, exit_code, reason, message) = match &outcome {
        Outcome::Succeeded => ("Succeeded", 0, "Completed", None),
        Outcome::Failed { exit_code, message } => {
            ("Failed", *exit_code, "Error", Some(message.clone()))
        }
    };
    let statuses: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            let mut terminated = json!({"exitCode": exit_code, "reason": reason,
                                        "startedAt": now, "finishedAt": now});
            if let Some(m) = &message {
                terminated["message"] = json!(m);
            }
            json!({"name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                   "ready": false, "restartCount": 0, "started": false,
                   "state": {"terminated": terminated}})
        })
        .collect();
    let patch = json!({"status": {"phase": phase, "containerStatuses": statuses}});
    let name = pod.metadata.name.clone().unwrap_or_default();
    Ok(pods
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}
