//! Pure: the status the scheduled-controller owns, computed from the reconcile outcome and the observed runs.
//!
//! Only what this controller owns is produced here: every condition but `GPGKeyReady` (gpg-keygen's) and every
//! other status field. Timestamps come from the objects, never from "now", except a condition's
//! `lastTransitionTime` when its status changes: an unchanged world yields a byte-identical status. "Now" only
//! decides which side of a moment computed from the objects we are on (`Overdue`, the next run after a missed
//! one), so the status changes at those moments and never in between.

use crd_types::conditions::condition;
use crd_types::constants::{condition_types as ct, reasons};
use crd_types::schedule::{self, OverdueAfter, Schedule};
use crd_types::{ChildReference, ScheduledBackup, ScheduledBackupStatus};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use crate::health::RunsSummary;

/// What the spec's schedule means for status, computed once per reconcile.
#[derive(Clone, Debug, Default)]
pub struct Scheduling {
    /// The concrete expression of the CronJob, when it is enabled and valid.
    pub effective: Option<String>,
    /// The schedule runs are expected on and the overdue rule: enabled, not suspended, valid.
    pub expected: Option<(Schedule, OverdueAfter)>,
}

impl Scheduling {
    /// The scheduling of `sb` (with the default overdue grace of the exporter).
    pub fn of(sb: &ScheduledBackup) -> Self {
        let cron = &sb.spec.cron_job;
        if !cron.enabled {
            return Self::default();
        }
        let (namespace, name) = (sb.namespace().unwrap_or_default(), sb.name_any());
        let (Ok(effective), Ok(parsed), Ok(policy)) = (
            cron.effective_schedule(&namespace, &name),
            cron.schedule(&namespace, &name),
            cron.overdue_after(schedule::DEFAULT_OVERDUE_GRACE),
        ) else {
            return Self::default();
        };
        Self {
            effective: Some(effective),
            expected: cron.is_active().then_some((parsed, policy)),
        }
    }
}

/// When the SB turns `Overdue` given these runs (see [`crd_types::schedule::overdue_deadline`]); `None` when no run
/// is expected.
pub fn overdue_deadline(
    sb: &ScheduledBackup,
    scheduling: &Scheduling,
    runs: &RunsSummary,
) -> Option<Timestamp> {
    let (schedule, policy) = scheduling.expected.as_ref()?;
    let created = sb
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    schedule::overdue_deadline(
        schedule,
        *policy,
        runs.last_successful_time.as_ref().map(|t| t.0),
        created,
    )
}

/// The next run: the first scheduled time after the CronJob's last one, or, when that has passed without a run
/// (missed, or nothing ran yet), the first one after now. Both change only when a scheduled time passes.
pub fn next_schedule_time(
    schedule: &Schedule,
    last_schedule: Option<&Time>,
    now: Timestamp,
) -> Option<Time> {
    last_schedule
        .and_then(|t| schedule.next_after(t.0))
        .filter(|next| *next > now)
        .or_else(|| schedule.next_after(now))
        .map(Time)
}

/// Where the reconcile pipeline stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A step failed; `rendered` tells whether the template rendered before that.
    Failed {
        step: Step,
        reason: &'static str,
        message: String,
    },
    /// Everything was applied.
    Applied {
        children: Vec<ChildReference>,
        hash: String,
        notes: Vec<String>,
    },
}

/// The pipeline step an error belongs to, which decides the conditions it shows in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Fetching what the SB refers to, or validating it (before rendering).
    Dependencies,
    /// The key Secret is not ready yet.
    KeySecret,
    /// Rendering the template.
    Render,
    /// Applying children.
    Apply,
}

/// The status this controller should own, given what happened.
pub fn desired_status(
    sb: &ScheduledBackup,
    outcome: &Outcome,
    runs: &RunsSummary,
    scheduling: &Scheduling,
    now: Time,
) -> ScheduledBackupStatus {
    let previous = sb.status.clone().unwrap_or_default();
    let generation = sb.metadata.generation;
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        condition(
            &previous.conditions,
            type_,
            crd_types::conditions::status_str(ok),
            reason,
            message,
            generation,
            now.clone(),
        )
    };
    let unknown = |type_: &str, reason: &str, message: String| {
        condition(
            &previous.conditions,
            type_,
            "Unknown",
            reason,
            message,
            generation,
            now.clone(),
        )
    };

    let mut conditions: Vec<Condition> = Vec::new();
    let (ready, owned, hash) = match outcome {
        Outcome::Applied {
            children,
            hash,
            notes,
        } => {
            let mut rendered = "the template rendered for every operation".to_string();
            for note in notes {
                rendered.push_str("; ");
                rendered.push_str(note);
            }
            conditions.push(cond(
                ct::TEMPLATE_RENDERED,
                true,
                reasons::RENDERED,
                rendered,
            ));
            conditions.push(cond(
                ct::CHILDREN_APPLIED,
                true,
                reasons::APPLIED,
                format!("{} child object(s) applied", children.len()),
            ));
            (
                cond(
                    ct::READY,
                    true,
                    reasons::READY,
                    "helper objects and schedule are in place".into(),
                ),
                children.clone(),
                Some(hash.clone()),
            )
        }
        Outcome::Failed {
            step,
            reason,
            message,
        } => {
            match step {
                Step::Render => {
                    conditions.push(cond(ct::TEMPLATE_RENDERED, false, reason, message.clone()));
                }
                Step::Apply => {
                    conditions.push(cond(
                        ct::TEMPLATE_RENDERED,
                        true,
                        reasons::RENDERED,
                        "the template rendered".into(),
                    ));
                    conditions.push(cond(ct::CHILDREN_APPLIED, false, reason, message.clone()));
                }
                Step::Dependencies | Step::KeySecret => {
                    conditions.push(unknown(
                        ct::TEMPLATE_RENDERED,
                        reason,
                        "not rendered: waiting for the referenced objects (see Ready)".into(),
                    ));
                }
            }
            // Children applied earlier stay in place and stay reported.
            (
                cond(ct::READY, false, reason, message.clone()),
                previous.owned_references.clone(),
                previous.last_applied_spec_hash.clone(),
            )
        }
    };

    let last_run = match &runs.last_finished {
        Some(Ok(job)) => cond(
            ct::LAST_RUN_SUCCEEDED,
            true,
            reasons::SUCCEEDED,
            format!("Job {job} succeeded"),
        ),
        Some(Err((job, why))) => cond(
            ct::LAST_RUN_SUCCEEDED,
            false,
            reasons::JOB_FAILED,
            format!("Job {job} failed: {why}"),
        ),
        None => match crd_types::conditions::find(&previous.conditions, ct::LAST_RUN_SUCCEEDED) {
            // Keep the verdict of Jobs the CronJob's history limit already deleted.
            Some(kept) if kept.reason != reasons::NO_RUNS_YET => kept.clone(),
            _ => unknown(
                ct::LAST_RUN_SUCCEEDED,
                reasons::NO_RUNS_YET,
                "no run has finished yet".into(),
            ),
        },
    };
    let last_run_failed = last_run.status == "False";
    let is_ready = ready.status == "True";
    conditions.push(last_run);
    conditions.insert(0, ready);

    // Messages name moments computed from the objects, never "now", so they stay identical between flips.
    let overdue = match overdue_deadline(sb, scheduling, runs) {
        None => cond(
            ct::OVERDUE,
            false,
            reasons::NOT_SCHEDULED,
            "no run is expected: the CronJob is disabled or suspended, or its schedule is invalid"
                .into(),
        ),
        Some(deadline) => {
            let since = match &runs.last_successful_time {
                Some(t) => format!("the last success at {}", t.0),
                None => "creation (no run has succeeded yet)".to_string(),
            };
            if now.0 >= deadline {
                cond(
                    ct::OVERDUE,
                    true,
                    reasons::NO_RECENT_SUCCESS,
                    format!(
                        "no run has succeeded since {since}; one was due to succeed by {deadline} (spec.cronJob.overdueAfter)"
                    ),
                )
            } else {
                cond(
                    ct::OVERDUE,
                    false,
                    reasons::ON_SCHEDULE,
                    format!("the next run must succeed by {deadline}"),
                )
            }
        }
    };
    let is_overdue = overdue.status == "True";
    conditions.push(overdue);

    let next_schedule_time = scheduling.expected.as_ref().and_then(|(schedule, _)| {
        next_schedule_time(schedule, runs.last_schedule_time.as_ref(), now.0)
    });

    ScheduledBackupStatus {
        conditions,
        observed_generation: generation,
        owned_references: owned,
        children_resources_health: runs.health.clone(),
        healthy: Some(is_ready && !last_run_failed && !is_overdue),
        last_applied_spec_hash: hash,
        last_schedule_time: runs.last_schedule_time.clone(),
        last_successful_time: runs.last_successful_time.clone(),
        last_failed_time: runs.last_failed_time.clone(),
        effective_schedule: scheduling.effective.clone(),
        next_schedule_time,
        last_run_duration: runs.last_run_duration.clone(),
        consecutive_failures: runs.consecutive_failures,
        last_failure_message: runs.last_failure_message.clone(),
        // Kept while runOnCreate stays on (the reconcile records a new one after creating its action).
        run_on_create_generation: previous
            .run_on_create_generation
            .filter(|_| sb.spec.cron_job.run_on_create == Some(true)),
    }
}

/// The part of an observed status this controller owns (everything but gpg-keygen's condition), for comparison.
pub fn owned_part(status: &ScheduledBackupStatus) -> ScheduledBackupStatus {
    let mut owned = status.clone();
    owned.conditions.retain(|c| c.type_ != ct::GPG_KEY_READY);
    owned
}

/// Previous run times as recorded in status, so they survive the deletion of old Jobs.
pub fn previous_runs(sb: &ScheduledBackup) -> RunsSummary {
    let status = sb.status.clone().unwrap_or_default();
    RunsSummary {
        last_schedule_time: status.last_schedule_time,
        last_successful_time: status.last_successful_time,
        last_failed_time: status.last_failed_time,
        last_run_duration: status.last_run_duration,
        consecutive_failures: status.consecutive_failures,
        last_failure_message: status.last_failure_message,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crd_types::constants::condition_types as ct;

    fn sb(status: &str) -> ScheduledBackup {
        let yaml = format!(
            r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {{name: app1, namespace: default, uid: u-1, generation: 3, creationTimestamp: "2026-01-01T00:00:00Z"}}
spec:
  operation: backup
  cronJob: {{enabled: true, scheduleEvery: "0 2 * * *"}}
  templateRef: {{kind: internal, name: pg15}}
  gpgKeySecretRef: {{secretName: keys, createIfNotExists: true, email: a@b.c}}
  tokenSecretRef: {{secretName: token, tokenKey: token}}
status: {status}
"#
        );
        serde_saphyr::from_str(&yaml).unwrap()
    }

    fn desired(
        sb: &ScheduledBackup,
        outcome: &Outcome,
        runs: &RunsSummary,
        now: Time,
    ) -> ScheduledBackupStatus {
        desired_status(sb, outcome, runs, &Scheduling::of(sb), now)
    }

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn applied() -> Outcome {
        Outcome::Applied {
            children: vec![ChildReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "app1-backup".into(),
                tracking_id: None,
            }],
            hash: "abc".into(),
            notes: vec![],
        }
    }

    fn find<'a>(s: &'a ScheduledBackupStatus, t: &str) -> &'a Condition {
        crd_types::conditions::find(&s.conditions, t).unwrap()
    }

    #[test]
    fn an_applied_sb_is_ready_with_observed_generation() {
        let status = desired(
            &sb("{}"),
            &applied(),
            &RunsSummary::default(),
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(find(&status, ct::READY).status, "True");
        assert_eq!(find(&status, ct::CHILDREN_APPLIED).status, "True");
        assert_eq!(find(&status, ct::LAST_RUN_SUCCEEDED).status, "Unknown");
        assert_eq!(find(&status, ct::READY).observed_generation, Some(3));
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.healthy, Some(true));
        assert_eq!(status.last_applied_spec_hash.as_deref(), Some("abc"));
    }

    #[test]
    fn re_computing_an_unchanged_status_is_identical_even_later() {
        let first = desired(
            &sb("{}"),
            &applied(),
            &RunsSummary::default(),
            t("2026-01-01T00:00:00Z"),
        );
        let stored = sb(&serde_json::to_string(&first).unwrap());
        // Later, but before the first run is due (02:00) and overdue (03:00).
        let second = desired(
            &stored,
            &applied(),
            &RunsSummary::default(),
            t("2026-01-01T01:59:59Z"),
        );
        assert_eq!(
            first, second,
            "a converged SB must produce a byte-identical status (zero writes)"
        );
    }

    #[test]
    fn a_render_error_keeps_children_and_says_why() {
        let first = desired(
            &sb("{}"),
            &applied(),
            &RunsSummary::default(),
            t("2026-01-01T00:00:00Z"),
        );
        let stored = sb(&serde_json::to_string(&first).unwrap());
        let failed = Outcome::Failed {
            step: Step::Render,
            reason: "RenderFailed",
            message: "template pg15 line 7: Params.password is missing".into(),
        };
        let status = desired(
            &stored,
            &failed,
            &RunsSummary::default(),
            t("2026-01-02T00:00:00Z"),
        );
        let ready = find(&status, ct::READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "RenderFailed")
        );
        assert!(ready.message.contains("Params.password"));
        assert_eq!(find(&status, ct::TEMPLATE_RENDERED).status, "False");
        assert_eq!(
            status.owned_references, first.owned_references,
            "children applied earlier stay reported"
        );
        assert_eq!(status.healthy, Some(false));
        assert_eq!(ready.last_transition_time, t("2026-01-02T00:00:00Z"));
    }

    #[test]
    fn waiting_for_the_key_secret_leaves_rendering_unknown() {
        let waiting = Outcome::Failed {
            step: Step::KeySecret,
            reason: "WaitingForKeySecret",
            message: "key Secret default/keys does not exist yet".into(),
        };
        let status = desired(
            &sb("{}"),
            &waiting,
            &RunsSummary::default(),
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(find(&status, ct::READY).reason, "WaitingForKeySecret");
        assert_eq!(find(&status, ct::TEMPLATE_RENDERED).status, "Unknown");
    }

    #[test]
    fn a_failed_last_run_makes_the_sb_unhealthy_and_the_verdict_outlives_the_job() {
        let runs = RunsSummary {
            last_finished: Some(Err(("app1-backup-9".into(), "BackoffLimitExceeded".into()))),
            ..Default::default()
        };
        let status = desired(&sb("{}"), &applied(), &runs, t("2026-01-01T00:00:00Z"));
        assert_eq!(find(&status, ct::LAST_RUN_SUCCEEDED).reason, "JobFailed");
        assert_eq!(status.healthy, Some(false));
        let stored = sb(&serde_json::to_string(&status).unwrap());
        let later = desired(
            &stored,
            &applied(),
            &RunsSummary::default(),
            t("2026-01-05T00:00:00Z"),
        );
        assert_eq!(find(&later, ct::LAST_RUN_SUCCEEDED).reason, "JobFailed");
    }

    #[test]
    fn gpg_keygen_conditions_are_not_ours() {
        let stored = sb(
            r#"{conditions: [{type: GPGKeyReady, status: "True", reason: KeySecretValid, message: ok, lastTransitionTime: "2026-01-01T00:00:00Z"}]}"#,
        );
        assert!(
            owned_part(stored.status.as_ref().unwrap())
                .conditions
                .is_empty()
        );
        let status = desired(
            &stored,
            &applied(),
            &RunsSummary::default(),
            t("2026-01-01T00:00:00Z"),
        );
        assert!(crd_types::conditions::find(&status.conditions, ct::GPG_KEY_READY).is_none());
    }

    fn sb_with_cron(cron: &str) -> ScheduledBackup {
        let mut sb = sb("{}");
        sb.spec.cron_job = serde_saphyr::from_str(cron).unwrap();
        sb
    }

    fn succeeded_at(at: &str) -> RunsSummary {
        RunsSummary {
            last_successful_time: Some(t(at)),
            last_finished: Some(Ok("app1-backup-1".into())),
            ..Default::default()
        }
    }

    #[test]
    fn overdue_flips_exactly_at_the_deadline_and_ready_stays_about_configuration() {
        let sb = sb("{}");
        let runs = succeeded_at("2026-01-02T02:04:00Z");
        // Daily at 02:00 UTC: the next run after the success is 01-03 02:00; plus 1 h of grace.
        let deadline = jiff::Timestamp::from_second(
            "2026-01-03T03:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second(),
        )
        .unwrap();
        assert_eq!(
            overdue_deadline(&sb, &Scheduling::of(&sb), &runs),
            Some(deadline)
        );
        let before = desired(
            &sb,
            &applied(),
            &runs,
            Time(deadline - jiff::SignedDuration::from_nanos(1)),
        );
        let overdue = find(&before, ct::OVERDUE);
        assert_eq!(
            (overdue.status.as_str(), overdue.reason.as_str()),
            ("False", "OnSchedule")
        );
        assert_eq!(
            overdue.message,
            "the next run must succeed by 2026-01-03T03:00:00Z"
        );
        assert_eq!(before.healthy, Some(true));
        let stored = sb_stored(&sb, &before);
        let at = desired(&stored, &applied(), &runs, Time(deadline));
        let overdue = find(&at, ct::OVERDUE);
        assert_eq!(
            (overdue.status.as_str(), overdue.reason.as_str()),
            ("True", "NoRecentSuccess")
        );
        assert!(
            overdue
                .message
                .contains("since the last success at 2026-01-02T02:04:00Z"),
            "{}",
            overdue.message
        );
        assert_eq!(overdue.last_transition_time, Time(deadline));
        assert_eq!(
            find(&at, ct::READY).status,
            "True",
            "Ready is about configuration"
        );
        assert_eq!(at.healthy, Some(false), "healthy folds in Overdue");
        // A new success clears it.
        let stored = sb_stored(&sb, &at);
        let later = desired(
            &stored,
            &applied(),
            &succeeded_at("2026-01-03T03:10:00Z"),
            t("2026-01-03T03:11:00Z"),
        );
        assert_eq!(find(&later, ct::OVERDUE).status, "False");
        assert_eq!(later.healthy, Some(true));
    }

    fn sb_stored(sb: &ScheduledBackup, status: &ScheduledBackupStatus) -> ScheduledBackup {
        let mut stored = sb.clone();
        stored.status = Some(status.clone());
        stored
    }

    #[test]
    fn overdue_follows_the_time_zone_across_the_spring_forward_night() {
        // 02:30 Europe/Berlin does not exist on 2025-03-30: that run happens at 03:00 CEST = 01:00Z.
        let mut sb =
            sb_with_cron("{enabled: true, scheduleEvery: '30 2 * * *', timeZone: Europe/Berlin}");
        sb.metadata.creation_timestamp = Some(t("2025-01-01T00:00:00Z"));
        let runs = succeeded_at("2025-03-29T01:40:00Z");
        let scheduling = Scheduling::of(&sb);
        let deadline = overdue_deadline(&sb, &scheduling, &runs).unwrap();
        assert_eq!(
            deadline,
            "2025-03-30T02:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        let just_before = Time(deadline - jiff::SignedDuration::from_nanos(1));
        assert_eq!(
            find(&desired(&sb, &applied(), &runs, just_before), ct::OVERDUE).status,
            "False"
        );
        assert_eq!(
            find(
                &desired(&sb, &applied(), &runs, Time(deadline)),
                ct::OVERDUE
            )
            .status,
            "True"
        );
    }

    #[test]
    fn an_overdue_after_replaces_the_default_rule() {
        let sb = sb_with_cron("{enabled: true, scheduleEvery: '0 2 * * *', overdueAfter: 50h}");
        let runs = succeeded_at("2026-01-02T02:04:00Z");
        assert_eq!(
            overdue_deadline(&sb, &Scheduling::of(&sb), &runs),
            Some("2026-01-04T04:04:00Z".parse().unwrap())
        );
    }

    #[test]
    fn without_an_expected_run_nothing_is_overdue_and_there_is_no_next_run() {
        for cron in [
            "{enabled: false, scheduleEvery: '0 2 * * *'}",
            "{enabled: true, suspend: true, scheduleEvery: '0 2 * * *'}",
        ] {
            let sb = sb_with_cron(cron);
            let status = desired(
                &sb,
                &applied(),
                &RunsSummary::default(),
                t("2027-01-01T00:00:00Z"),
            );
            let overdue = find(&status, ct::OVERDUE);
            assert_eq!(
                (overdue.status.as_str(), overdue.reason.as_str()),
                ("False", "NotScheduled"),
                "{cron}"
            );
            assert_eq!(status.next_schedule_time, None, "{cron}");
            assert_eq!(status.healthy, Some(true), "{cron}");
        }
        // Suspended still shows which expression the CronJob has.
        let sb = sb_with_cron("{enabled: true, suspend: true, scheduleEvery: 'H 2 * * *'}");
        let status = desired(
            &sb,
            &applied(),
            &RunsSummary::default(),
            t("2026-01-01T00:00:00Z"),
        );
        let minute = crd_types::spread::seed("default", "app1") % 60;
        assert_eq!(status.effective_schedule, Some(format!("{minute} 2 * * *")));
    }

    #[test]
    fn the_next_run_changes_only_when_a_run_is_scheduled_not_on_every_reconcile() {
        let sb = sb_with_cron("{enabled: true, scheduleEvery: 'H 2 * * *'}");
        let minute = crd_types::spread::seed("default", "app1") % 60;
        let runs = RunsSummary {
            last_schedule_time: Some(t(&format!("2026-01-01T02:{minute:02}:00Z"))),
            ..Default::default()
        };
        let expected = Some(t(&format!("2026-01-02T02:{minute:02}:00Z")));
        for now in [
            "2026-01-01T02:59:00Z",
            "2026-01-01T13:00:00Z",
            "2026-01-02T01:59:59Z",
        ] {
            let status = desired(&sb, &applied(), &runs, t(now));
            assert_eq!(status.next_schedule_time, expected, "{now}");
        }
        // The CronJob ran again: the next one is a day later.
        let ran = RunsSummary {
            last_schedule_time: expected.clone(),
            ..Default::default()
        };
        let status = desired(&sb, &applied(), &ran, t("2026-01-02T03:00:00Z"));
        assert_eq!(
            status.next_schedule_time,
            Some(t(&format!("2026-01-03T02:{minute:02}:00Z")))
        );
        // A run missed (the cluster was down): the next one after now, not one in the past.
        let status = desired(&sb, &applied(), &runs, t("2026-01-05T12:00:00Z"));
        assert_eq!(
            status.next_schedule_time,
            Some(t(&format!("2026-01-06T02:{minute:02}:00Z")))
        );
    }

    #[test]
    fn run_results_reach_the_status() {
        let runs = RunsSummary {
            last_failed_time: Some(t("2026-01-01T02:09:00Z")),
            last_finished: Some(Err((
                "app1-backup-1".into(),
                "BackoffLimitExceeded; output: disk full".into(),
            ))),
            last_run_duration: Some("9m0s".into()),
            consecutive_failures: Some(2),
            last_failure_message: Some("BackoffLimitExceeded; output: disk full".into()),
            ..Default::default()
        };
        let status = desired(&sb("{}"), &applied(), &runs, t("2026-01-01T02:10:00Z"));
        assert_eq!(status.last_run_duration.as_deref(), Some("9m0s"));
        assert_eq!(status.consecutive_failures, Some(2));
        assert_eq!(
            status.last_failure_message.as_deref(),
            Some("BackoffLimitExceeded; output: disk full")
        );
        assert!(
            find(&status, ct::LAST_RUN_SUCCEEDED)
                .message
                .contains("output: disk full")
        );
        // They outlive the Jobs: read back as the previous runs.
        let previous = previous_runs(&sb_stored(&sb("{}"), &status));
        assert_eq!(previous.consecutive_failures, Some(2));
        assert_eq!(previous.last_run_duration.as_deref(), Some("9m0s"));
        assert_eq!(previous.last_failure_message, status.last_failure_message);
    }

    #[test]
    fn the_run_on_create_record_stays_while_it_is_on_and_goes_when_it_is_turned_off() {
        let mut on = sb_with_cron("{enabled: false, runOnCreate: true}");
        on.status = Some(ScheduledBackupStatus {
            run_on_create_generation: Some(2),
            ..Default::default()
        });
        let now = t("2026-01-01T00:00:00Z");
        let status = desired(&on, &applied(), &RunsSummary::default(), now.clone());
        assert_eq!(status.run_on_create_generation, Some(2));
        let mut off = on.clone();
        off.spec.cron_job.run_on_create = Some(false);
        let status = desired(&off, &applied(), &RunsSummary::default(), now);
        assert_eq!(status.run_on_create_generation, None);
    }
}
