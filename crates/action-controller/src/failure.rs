//! Why an action's Job failed, in the action's own status: the failed container's termination message (the end of
//! its log, `FallbackToLogsOnError`), read once, when the action is about to turn `Failed`, from the Job's Pods.
//! No Pod watch or cache: failures are rare and the action never changes again after it.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use tracing::warn;

use crate::Context;
use crate::status::{ExecutorView, Progress};

/// Appends the failed container's output to a failed Job's message (unchanged when there is none, or when the Pods
/// cannot be read: the Job's own reason still says that it failed).
pub async fn add_output(ctx: &Context, namespace: &str, view: &mut ExecutorView) {
    let Progress::Failed { message, .. } = &mut view.progress else {
        return;
    };
    if view.reference.kind != "Job" {
        return;
    }
    let job = view.reference.name.clone();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = format!("batch.kubernetes.io/job-name={job}");
    match api.list(&ListParams::default().labels(&selector)).await {
        Ok(pods) => {
            let pods: Vec<&Pod> = pods.items.iter().collect();
            if let Some(output) = crd_types::pod_failure::failure_output(&job, &pods) {
                *message = with_output(message, &output);
            }
        }
        Err(error) => warn!(%error, job, "could not read the failed Job's Pods for its output"),
    }
}

/// `message; output: <output>` (just the output when the Job gave no message).
pub fn with_output(message: &str, output: &str) -> String {
    if message.is_empty() {
        format!("output: {output}")
    } else {
        format!("{message}; output: {output}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_follows_the_jobs_message() {
        assert_eq!(
            with_output(
                "Job has reached the specified backoff limit",
                "pg_dump: error"
            ),
            "Job has reached the specified backoff limit; output: pg_dump: error"
        );
        assert_eq!(with_output("", "pg_dump: error"), "output: pg_dump: error");
    }
}
