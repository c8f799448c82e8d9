//! Why a run failed, from its Pods: the failed container's termination message (the end of its log, kept by the
//! kubelet with `terminationMessagePolicy: FallbackToLogsOnError`), cut to a size fit for a status field, a
//! condition and an Event. Here because the scheduled-controller (for a CronJob's runs) and the action-controller
//! (for an action's Job) must report the same text.

use k8s_openapi::api::core::v1::Pod;

/// The backup container's name in every rendered pod (its message wins over a sidecar's).
pub const CONTAINER_NAME: &str = "backup-maker";

/// At most this much of a container's termination message reaches status, conditions and Events: the kubelet
/// keeps up to 4 KiB (or 80 lines) of log, of which the last lines say why.
pub const MAX_FAILURE_OUTPUT: usize = 1024;

/// The end of `text`, at most `max` bytes, cut on a UTF-8 character boundary (and marked when cut).
pub fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_owned();
    }
    const MARK: &str = "…";
    let mut start = text.len() - (max - MARK.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{MARK}{}", &text[start..])
}

/// The termination message of the failed container of Job `job`'s newest failed Pod (the backup container
/// first), cut to [`MAX_FAILURE_OUTPUT`]. Pods are matched by the `batch.kubernetes.io/job-name` label the job
/// controller sets.
pub fn failure_output(job: &str, pods: &[&Pod]) -> Option<String> {
    let mut failed: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("batch.kubernetes.io/job-name"))
                .is_some_and(|j| j == job)
        })
        .collect();
    failed.sort_by_key(|p| {
        std::cmp::Reverse((
            p.metadata.creation_timestamp.clone().map(|t| t.0),
            p.metadata.name.clone(),
        ))
    });
    failed.into_iter().find_map(|pod| {
        let mut statuses: Vec<_> = pod
            .status
            .as_ref()?
            .container_statuses
            .iter()
            .flatten()
            .collect();
        statuses.sort_by_key(|c| c.name != CONTAINER_NAME);
        statuses.into_iter().find_map(|c| {
            let terminated = c.state.as_ref()?.terminated.as_ref()?;
            let message = terminated.message.as_deref()?.trim();
            (terminated.exit_code != 0 && !message.is_empty())
                .then(|| tail(message, MAX_FAILURE_OUTPUT))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_pod(job: &str, created: &str, containers: &[(&str, i32, &str)]) -> Pod {
        let statuses: Vec<serde_json::Value> = containers
            .iter()
            .map(|(name, code, message)| {
                serde_json::json!({"name": name, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": code, "message": message}}})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{job}-{created}"), "creationTimestamp": created,
                         "labels": {"batch.kubernetes.io/job-name": job}},
            "status": {"phase": "Failed", "containerStatuses": statuses}
        }))
        .unwrap()
    }

    #[test]
    fn the_newest_failed_pod_of_the_job_speaks() {
        let pods = [
            failed_pod(
                "j",
                "2026-01-04T02:00:01Z",
                &[("backup-maker", 1, "first try")],
            ),
            failed_pod(
                "j",
                "2026-01-04T02:05:00Z",
                &[("backup-maker", 2, " disk full\n")],
            ),
            failed_pod(
                "other",
                "2026-01-04T02:06:00Z",
                &[("backup-maker", 1, "not ours")],
            ),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(failure_output("j", &refs).as_deref(), Some("disk full"));
        assert_eq!(failure_output("none", &refs), None);
    }

    #[test]
    fn the_backup_containers_message_wins_and_a_zero_exit_says_nothing() {
        let pod = failed_pod(
            "j",
            "2026-01-04T02:00:01Z",
            &[
                ("sidecar", 1, "sidecar died"),
                ("backup-maker", 3, "upload refused"),
            ],
        );
        assert_eq!(
            failure_output("j", &[&pod]).as_deref(),
            Some("upload refused")
        );
        let ok = failed_pod("j", "2026-01-04T02:00:01Z", &[("backup-maker", 0, "done")]);
        assert_eq!(failure_output("j", &[&ok]), None);
    }

    #[test]
    fn a_long_output_keeps_its_last_kibibyte_cut_on_a_character_boundary() {
        let long = format!("start {}", "ü".repeat(2000));
        let cut = tail(&long, MAX_FAILURE_OUTPUT);
        assert!(cut.len() <= MAX_FAILURE_OUTPUT, "{}", cut.len());
        assert!(cut.len() >= MAX_FAILURE_OUTPUT - 4, "{}", cut.len());
        assert!(cut.starts_with('…') && cut.ends_with('ü') && !cut.contains("start"));
        assert_eq!(tail("  short\n", 1024), "short");
    }
}
