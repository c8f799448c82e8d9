//! Pure: what the CronJob and its Jobs say about the last runs.
//!
//! Fixes the original's health semantics: a Job not yet started is not "succeeded", a Job still retrying within
//! its backoff limit is "running", not "failed", and failures carry the Job's condition message plus the end of
//! the failed container's output (its termination message, `FallbackToLogsOnError`).

use crd_types::{ChildReference, JobHealthStatus};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// How many of the CronJob's most recent Jobs are reported in status.
pub const REPORTED_JOBS: usize = 3;

/// Outcome of one Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// Created, no pod started yet.
    Pending,
    /// Started and not finished (possibly retrying a failed pod).
    Running,
    /// `Complete=True`, at the given time.
    Succeeded(Option<Time>),
    /// `Failed=True`, at the given time, with the condition's reason and message.
    Failed(Option<Time>, String),
}

fn condition_true<'a>(
    job: &'a Job,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The outcome of a Job from its conditions (not from pod counters, which lie during retries).
pub fn job_outcome(job: &Job) -> JobOutcome {
    if let Some(failed) = condition_true(job, "Failed") {
        let reason = failed.reason.clone().unwrap_or_default();
        let message = failed.message.clone().unwrap_or_default();
        let text = match (reason.is_empty(), message.is_empty()) {
            (false, false) => format!("{reason}: {message}"),
            (false, true) => reason,
            (true, false) => message,
            (true, true) => "the Job failed".to_string(),
        };
        return JobOutcome::Failed(failed.last_transition_time.clone(), text);
    }
    if condition_true(job, "Complete").is_some() {
        let at = job.status.as_ref().and_then(|s| s.completion_time.clone());
        return JobOutcome::Succeeded(at.or_else(|| {
            condition_true(job, "Complete")?
                .last_transition_time
                .clone()
        }));
    }
    let started = job
        .status
        .as_ref()
        .is_some_and(|s| s.start_time.is_some() || s.active.unwrap_or(0) > 0);
    if started {
        JobOutcome::Running
    } else {
        JobOutcome::Pending
    }
}

/// Status entry for one Job.
pub fn job_health(job: &Job) -> JobHealthStatus {
    let name = job.metadata.name.clone().unwrap_or_default();
    let child = ChildReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: name.clone(),
        tracking_id: None,
    };
    let (message, succeeded, running, failed) = match job_outcome(job) {
        JobOutcome::Pending => (
            format!("Job {name} has not started yet"),
            false,
            false,
            false,
        ),
        JobOutcome::Running => (format!("Job {name} is running"), false, true, false),
        JobOutcome::Succeeded(_) => (format!("Job {name} succeeded"), true, false, false),
        JobOutcome::Failed(_, why) => (format!("Job {name} failed: {why}"), false, false, true),
    };
    JobHealthStatus {
        child,
        message,
        succeeded,
        running,
        failed,
    }
}

pub use crd_types::pod_failure::{MAX_FAILURE_OUTPUT, failure_output, tail};

/// Go's `time.Duration` text (`45s`, `5m3s`, `1h0m5s`), as `kubectl` users know it.
pub fn duration_text(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// What the runs of one ScheduledBackup say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunsSummary {
    /// Health of the CronJob and its most recent Jobs, newest first.
    pub health: Vec<JobHealthStatus>,
    /// The CronJob last scheduled a Job.
    pub last_schedule_time: Option<Time>,
    /// Newest successful finish.
    pub last_successful_time: Option<Time>,
    /// Newest failure.
    pub last_failed_time: Option<Time>,
    /// The most recently finished Job: `Ok(job name)` when it succeeded, `Err((job name, message))` when it failed.
    pub last_finished: Option<Result<String, (String, String)>>,
    /// How long the most recently finished Job ran (`Go` duration text).
    pub last_run_duration: Option<String>,
    /// Failed runs since the last success.
    pub consecutive_failures: Option<i32>,
    /// Why the newest failed run failed: its container's output, else the Job's failure reason.
    pub last_failure_message: Option<String>,
}

fn newest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Summarises the CronJob and the Jobs it spawned (and their Pods, for the failure output). `previous` keeps the
/// last-run times monotonic after the CronJob's history limit deletes old Jobs, and carries the count of
/// consecutive failures: failures are counted as they are first seen (finished after the recorded last failure),
/// and a success newer than the recorded one resets the count.
pub fn summarise(
    cron_job: Option<&CronJob>,
    jobs: &[&Job],
    pods: &[&Pod],
    previous: &RunsSummary,
) -> RunsSummary {
    let mut jobs: Vec<&Job> = jobs.to_vec();
    // Newest first; the name breaks ties so the order is stable.
    jobs.sort_by(|a, b| {
        let key = |j: &Job| {
            (
                j.metadata.creation_timestamp.clone().map(|t| t.0),
                j.metadata.name.clone(),
            )
        };
        key(b).cmp(&key(a))
    });

    let mut summary = RunsSummary {
        last_schedule_time: newest(
            previous.last_schedule_time.clone(),
            cron_job.and_then(|c| c.status.as_ref()?.last_schedule_time.clone()),
        ),
        last_successful_time: newest(
            previous.last_successful_time.clone(),
            cron_job.and_then(|c| c.status.as_ref()?.last_successful_time.clone()),
        ),
        last_failed_time: previous.last_failed_time.clone(),
        ..Default::default()
    };
    let mut last_finished_at: Option<jiff::Timestamp> = None;
    let mut failures: Vec<jiff::Timestamp> = Vec::new();
    let mut newest_failure: Option<(Option<jiff::Timestamp>, String)> = None;
    for job in &jobs {
        let name = job.metadata.name.clone().unwrap_or_default();
        let (at, result) = match job_outcome(job) {
            JobOutcome::Succeeded(at) => {
                summary.last_successful_time =
                    newest(summary.last_successful_time.take(), at.clone());
                (at, Ok(name))
            }
            JobOutcome::Failed(at, why) => {
                summary.last_failed_time = newest(summary.last_failed_time.take(), at.clone());
                failures.extend(at.as_ref().map(|t| t.0));
                let why = match failure_output(&name, pods) {
                    Some(output) => format!("{why}; output: {output}"),
                    None => why,
                };
                let at_ts = at.as_ref().map(|t| t.0);
                if newest_failure.as_ref().is_none_or(|(t, _)| at_ts > *t) {
                    newest_failure = Some((at_ts, why.clone()));
                }
                (at, Err((name, why)))
            }
            JobOutcome::Pending | JobOutcome::Running => continue,
        };
        let at = at.map(|t| t.0);
        if summary.last_finished.is_none() || at > last_finished_at {
            last_finished_at = at;
            summary.last_finished = Some(result);
            let started = job.status.as_ref().and_then(|s| s.start_time.as_ref());
            summary.last_run_duration = started
                .zip(at)
                .map(|(start, end)| duration_text(end.duration_since(start.0).as_secs()));
        }
    }
    if summary.last_finished.is_none() {
        summary.last_finished = previous.last_finished.clone();
    }
    if summary.last_run_duration.is_none() {
        summary.last_run_duration = previous.last_run_duration.clone();
    }
    summary.last_failure_message = newest_failure
        .map(|(_, why)| why)
        .or_else(|| previous.last_failure_message.clone());

    let after = |since: Option<&Time>| {
        failures
            .iter()
            .filter(|f| since.is_none_or(|s| **f > s.0))
            .count() as i32
    };
    let newer_success = summary.last_successful_time.as_ref().map(|t| t.0)
        > previous.last_successful_time.as_ref().map(|t| t.0);
    summary.consecutive_failures = if newer_success {
        Some(after(summary.last_successful_time.as_ref()))
    } else {
        let counted_until = newest(
            previous.last_failed_time.clone(),
            previous.last_successful_time.clone(),
        );
        let new = after(counted_until.as_ref());
        match previous.consecutive_failures {
            Some(count) => Some(count + new),
            None if new > 0 => Some(new),
            None => None,
        }
    };

    if let Some(cron_job) = cron_job {
        let name = cron_job.metadata.name.clone().unwrap_or_default();
        let active = cron_job
            .status
            .as_ref()
            .and_then(|s| s.active.as_ref())
            .map_or(0, Vec::len);
        let suspended = cron_job
            .spec
            .as_ref()
            .and_then(|s| s.suspend)
            .unwrap_or(false);
        let message = if suspended {
            format!("CronJob {name} is suspended")
        } else if active > 0 {
            format!("CronJob {name} has {active} active Job(s)")
        } else {
            format!("CronJob {name} is scheduled")
        };
        summary.health.push(JobHealthStatus {
            child: ChildReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name,
                tracking_id: None,
            },
            message,
            succeeded: false,
            running: active > 0,
            failed: false,
        });
    }
    summary
        .health
        .extend(jobs.iter().take(REPORTED_JOBS).map(|j| job_health(j)));
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> Job {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const NOT_STARTED: &str =
        "metadata: {name: app1-backup-1, creationTimestamp: '2026-01-01T02:00:00Z'}\nstatus: {}\n";
    const RETRYING: &str = "metadata: {name: app1-backup-2, creationTimestamp: '2026-01-02T02:00:00Z'}\nstatus: {startTime: '2026-01-02T02:00:01Z', active: 1, failed: 1}\n";
    const SUCCEEDED: &str = r#"
metadata: {name: app1-backup-3, creationTimestamp: '2026-01-03T02:00:00Z'}
status:
  startTime: '2026-01-03T02:00:01Z'
  completionTime: '2026-01-03T02:05:00Z'
  succeeded: 1
  conditions: [{type: Complete, status: 'True', lastTransitionTime: '2026-01-03T02:05:00Z'}]
"#;
    const FAILED: &str = r#"
metadata: {name: app1-backup-4, creationTimestamp: '2026-01-04T02:00:00Z'}
status:
  startTime: '2026-01-04T02:00:01Z'
  failed: 3
  conditions:
  - {type: Failed, status: 'True', reason: BackoffLimitExceeded, message: Job has reached the specified backoff limit, lastTransitionTime: '2026-01-04T02:09:00Z'}
"#;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn a_job_not_yet_started_is_not_succeeded() {
        let health = job_health(&job(NOT_STARTED));
        assert!(
            !health.succeeded && !health.running && !health.failed,
            "{health:?}"
        );
        assert!(health.message.contains("has not started"));
    }

    #[test]
    fn a_job_retrying_within_its_backoff_limit_is_running_not_failed() {
        let health = job_health(&job(RETRYING));
        assert!(health.running && !health.failed, "{health:?}");
    }

    #[test]
    fn a_failed_job_reports_its_condition_message() {
        let health = job_health(&job(FAILED));
        assert!(health.failed && !health.running && !health.succeeded);
        assert_eq!(
            health.message,
            "Job app1-backup-4 failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
        );
        assert_eq!(health.child.api_version, "batch/v1");
    }

    #[test]
    fn a_complete_job_succeeded_at_its_completion_time() {
        assert_eq!(
            job_outcome(&job(SUCCEEDED)),
            JobOutcome::Succeeded(Some(t("2026-01-03T02:05:00Z")))
        );
    }

    #[test]
    fn the_newest_finished_job_decides_the_last_run() {
        let (ok, failed, running) = (job(SUCCEEDED), job(FAILED), job(RETRYING));
        let summary = summarise(
            None,
            &[&ok, &failed, &running],
            &[],
            &RunsSummary::default(),
        );
        assert_eq!(
            summary.last_successful_time,
            Some(t("2026-01-03T02:05:00Z"))
        );
        assert_eq!(summary.last_failed_time, Some(t("2026-01-04T02:09:00Z")));
        assert!(
            matches!(summary.last_finished, Some(Err((ref name, _))) if name == "app1-backup-4")
        );
        // Newest first, at most REPORTED_JOBS.
        let names: Vec<_> = summary
            .health
            .iter()
            .map(|h| h.child.name.as_str())
            .collect();
        assert_eq!(names, ["app1-backup-4", "app1-backup-3", "app1-backup-2"]);
    }

    #[test]
    fn last_run_times_survive_the_deletion_of_old_jobs() {
        let previous = RunsSummary {
            last_failed_time: Some(t("2025-12-01T00:00:00Z")),
            ..Default::default()
        };
        let summary = summarise(None, &[&job(SUCCEEDED)], &[], &previous);
        assert_eq!(summary.last_failed_time, Some(t("2025-12-01T00:00:00Z")));
        assert_eq!(
            summary.last_successful_time,
            Some(t("2026-01-03T02:05:00Z"))
        );
    }

    #[test]
    fn the_cronjob_is_reported_with_its_state() {
        let cron: CronJob = serde_saphyr::from_str(
            "metadata: {name: app1-backup}\nspec: {schedule: '0 2 * * *', suspend: true, jobTemplate: {spec: {template: {}}}}\nstatus: {lastScheduleTime: '2026-01-04T02:00:00Z'}\n",
        )
        .unwrap();
        let summary = summarise(Some(&cron), &[], &[], &RunsSummary::default());
        assert_eq!(summary.health[0].child.kind, "CronJob");
        assert_eq!(
            summary.health[0].message,
            "CronJob app1-backup is suspended"
        );
        assert_eq!(summary.last_schedule_time, Some(t("2026-01-04T02:00:00Z")));
        assert_eq!(summary.last_finished, None);
    }

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
    fn a_failed_run_says_why_with_the_end_of_the_containers_output() {
        let pods = [
            failed_pod(
                "app1-backup-4",
                "2026-01-04T02:00:01Z",
                &[("backup-maker", 1, "pg_dump: error: connection refused\n")],
            ),
            failed_pod(
                "app1-backup-4",
                "2026-01-04T02:05:00Z",
                &[("backup-maker", 2, "disk full")],
            ),
            failed_pod(
                "other-job",
                "2026-01-04T02:06:00Z",
                &[("backup-maker", 1, "not ours")],
            ),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let summary = summarise(None, &[&job(FAILED)], &refs, &RunsSummary::default());
        let expected =
            "BackoffLimitExceeded: Job has reached the specified backoff limit; output: disk full";
        assert_eq!(
            summary.last_finished,
            Some(Err(("app1-backup-4".into(), expected.into())))
        );
        assert_eq!(summary.last_failure_message.as_deref(), Some(expected));
        // Without the Pod (garbage-collected), the Job's reason is all there is.
        let summary = summarise(None, &[&job(FAILED)], &[], &RunsSummary::default());
        assert_eq!(
            summary.last_failure_message.as_deref(),
            Some("BackoffLimitExceeded: Job has reached the specified backoff limit")
        );
    }

    #[test]
    fn the_failure_output_prefers_the_container_the_template_engine_renders() {
        assert_eq!(
            crd_types::pod_failure::CONTAINER_NAME,
            template_engine::CONTAINER_NAME
        );
    }

    #[test]
    fn the_duration_of_the_newest_finished_run_is_in_go_form() {
        let summary = summarise(
            None,
            &[&job(SUCCEEDED), &job(FAILED)],
            &[],
            &RunsSummary::default(),
        );
        // FAILED: started 02:00:01, failed 02:09:00.
        assert_eq!(summary.last_run_duration.as_deref(), Some("8m59s"));
        assert_eq!(duration_text(3605), "1h0m5s");
        assert_eq!(duration_text(45), "45s");
    }

    fn failed_at(name: &str, at: &str) -> Job {
        job(&format!(
            "metadata: {{name: {name}, creationTimestamp: '{at}'}}\nstatus:\n  startTime: '{at}'\n  conditions: [{{type: Failed, status: 'True', reason: BackoffLimitExceeded, lastTransitionTime: '{at}'}}]\n"
        ))
    }

    #[test]
    fn consecutive_failures_count_each_failure_once_and_a_success_resets_them() {
        let first = failed_at("j-1", "2026-01-05T02:00:00Z");
        let s1 = summarise(None, &[&first], &[], &RunsSummary::default());
        assert_eq!(s1.consecutive_failures, Some(1));
        // Seen again (a later reconcile): not counted twice.
        let again = summarise(None, &[&first], &[], &s1);
        assert_eq!(again.consecutive_failures, Some(1));
        // The history limit deleted j-1; j-2 failed: 2.
        let second = failed_at("j-2", "2026-01-06T02:00:00Z");
        let s2 = summarise(None, &[&second], &[], &again);
        assert_eq!(s2.consecutive_failures, Some(2));
        // A success resets; a failure after it counts from 0.
        let ok = job(SUCCEEDED.replace("2026-01-03", "2026-01-07").as_str());
        let s3 = summarise(None, &[&second, &ok], &[], &s2);
        assert_eq!(s3.consecutive_failures, Some(0));
        let third = failed_at("j-3", "2026-01-08T02:00:00Z");
        let s4 = summarise(None, &[&ok, &third], &[], &s3);
        assert_eq!(s4.consecutive_failures, Some(1));
        // Nothing ever finished: no count at all.
        assert_eq!(
            summarise(None, &[], &[], &RunsSummary::default()).consecutive_failures,
            None
        );
    }
}
