//! Pure: the status the scheduled-controller owns, computed from the reconcile outcome and the observed runs.
//!
//! Only what this controller owns is produced here: every condition but `GPGKeyReady` (gpg-keygen's) and every
//! other status field. Timestamps come from the objects, never from "now", except a condition's
//! `lastTransitionTime` when its status changes: an unchanged world yields a byte-identical status.

use crd_types::conditions::condition;
use crd_types::constants::{condition_types as ct, reasons};
use crd_types::{ChildReference, ScheduledBackup, ScheduledBackupStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::health::RunsSummary;

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

    ScheduledBackupStatus {
        conditions,
        observed_generation: generation,
        owned_references: owned,
        children_resources_health: runs.health.clone(),
        healthy: Some(is_ready && !last_run_failed),
        last_applied_spec_hash: hash,
        last_schedule_time: runs.last_schedule_time.clone(),
        last_successful_time: runs.last_successful_time.clone(),
        last_failed_time: runs.last_failed_time.clone(),
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
metadata: {{name: app1, namespace: default, uid: u-1, generation: 3}}
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
        let status = desired_status(
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
        let first = desired_status(
            &sb("{}"),
            &applied(),
            &RunsSummary::default(),
            t("2026-01-01T00:00:00Z"),
        );
        let stored = sb(&serde_json::to_string(&first).unwrap());
        let second = desired_status(
            &stored,
            &applied(),
            &RunsSummary::default(),
            t("2026-06-01T00:00:00Z"),
        );
        assert_eq!(
            first, second,
            "a converged SB must produce a byte-identical status (zero writes)"
        );
    }

    #[test]
    fn a_render_error_keeps_children_and_says_why() {
        let first = desired_status(
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
        let status = desired_status(
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
        let status = desired_status(
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
        let status = desired_status(&sb("{}"), &applied(), &runs, t("2026-01-01T00:00:00Z"));
        assert_eq!(find(&status, ct::LAST_RUN_SUCCEEDED).reason, "JobFailed");
        assert_eq!(status.healthy, Some(false));
        let stored = sb(&serde_json::to_string(&status).unwrap());
        let later = desired_status(
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
        let status = desired_status(
            &stored,
            &applied(),
            &RunsSummary::default(),
            t("2026-01-01T00:00:00Z"),
        );
        assert!(crd_types::conditions::find(&status.conditions, ct::GPG_KEY_READY).is_none());
    }
}
