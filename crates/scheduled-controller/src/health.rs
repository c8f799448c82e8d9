//! Pure: what the CronJob and its Jobs say about the last runs.
//!
//! Fixes the original's health semantics: a Job not yet started is not "succeeded", a Job still retrying within
//! its backoff limit is "running", not "failed", and failures carry the Job's condition message.

use crd_types::{ChildReference, JobHealthStatus};
use k8s_openapi::api::batch::v1::{CronJob, Job};
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
}

fn newest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Summarises the CronJob and the Jobs it spawned. `previous` keeps the last-run times monotonic after the
/// CronJob's history limit deletes old Jobs.
pub fn summarise(cron_job: Option<&CronJob>, jobs: &[&Job], previous: &RunsSummary) -> RunsSummary {
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
                (at, Err((name, why)))
            }
            JobOutcome::Pending | JobOutcome::Running => continue,
        };
        let at = at.map(|t| t.0);
        if summary.last_finished.is_none() || at > last_finished_at {
            last_finished_at = at;
            summary.last_finished = Some(result);
        }
    }
    if summary.last_finished.is_none() {
        summary.last_finished = previous.last_finished.clone();
    }

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
        let summary = summarise(None, &[&ok, &failed, &running], &RunsSummary::default());
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
        let summary = summarise(None, &[&job(SUCCEEDED)], &previous);
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
        let summary = summarise(Some(&cron), &[], &RunsSummary::default());
        assert_eq!(summary.health[0].child.kind, "CronJob");
        assert_eq!(
            summary.health[0].message,
            "CronJob app1-backup is suspended"
        );
        assert_eq!(summary.last_schedule_time, Some(t("2026-01-04T02:00:00Z")));
        assert_eq!(summary.last_finished, None);
    }
}
