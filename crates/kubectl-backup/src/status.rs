//! `kubectl backup status`: one row per ScheduledBackup.
//!
//! Results the controllers may add to the status later (`status.effectiveSchedule`, `nextScheduleTime`,
//! `consecutiveFailures`, `lastFailureMessage`, an `Overdue` condition) are read by name from the raw object
//! and win when present; until then the row is derived from what exists: the spec's schedule, the
//! `LastRunSucceeded` condition, `childrenResourcesHealth`, and the exporter's overdue rule
//! ([`crd_types::schedule::is_overdue`] with a one-hour grace).

use std::io::Write;

use crd_types::constants::condition_types;
use crd_types::schedule::{self, Schedule};
use crd_types::{JobHealthStatus, ScheduledBackup};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::ListParams;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::{OutputFormat, StatusArgs};
use crate::lookup::{self, SB_RESOURCE};
use crate::output::{Cell, Color, Style, relative, short, table};
use crate::{Error, Result, Session};

/// How long after an expected run a missing success counts as overdue (the exporter's default).
pub const OVERDUE_GRACE: SignedDuration = SignedDuration::from_hours(1);

/// Condition type of the scheduled-controller's future `Overdue` condition.
const OVERDUE_CONDITION: &str = "Overdue";

/// Longest last-failure text in the narrow table.
const SHORT_FAILURE: usize = 48;

/// Status fields newer than the `crd_types` of this plugin, all optional.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct NewerResults {
    effective_schedule: Option<String>,
    next_schedule_time: Option<Time>,
    consecutive_failures: Option<u32>,
    last_failure_message: Option<String>,
}

/// One ScheduledBackup's row, as printed by `-o json|yaml`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `backup` or `restore`.
    pub operation: String,
    /// Template name.
    pub template: String,
    /// Effective cron expression; `None` when the CronJob is disabled.
    pub schedule: Option<String>,
    /// Time zone of the schedule.
    pub time_zone: Option<String>,
    /// `spec.cronJob.suspend`.
    pub suspended: bool,
    /// The `Ready` condition; `None` before the controller wrote one.
    pub ready: Option<bool>,
    /// When a run last succeeded.
    pub last_success: Option<Timestamp>,
    /// When a run last failed.
    pub last_failure_time: Option<Timestamp>,
    /// When the CronJob last started a run.
    pub last_schedule: Option<Timestamp>,
    /// The next scheduled run (none when disabled, suspended or the schedule is invalid).
    pub next_run: Option<Timestamp>,
    /// No success within the expected interval plus grace; `None` when not scheduled.
    pub overdue: Option<bool>,
    /// Failed runs since the last success.
    pub consecutive_failures: Option<u32>,
    /// True when `consecutiveFailures` is a lower bound (counted from the few runs status reports).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub consecutive_failures_at_least: bool,
    /// Why the most recent failed run failed.
    pub last_failure: Option<String>,
}

fn ts(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    crd_types::conditions::find(conditions, type_)
}

/// Failures at the head of the newest-first run list (still-running runs skipped); a lower bound when every
/// reported run failed.
fn leading_failures(runs: &[JobHealthStatus]) -> (u32, bool) {
    let finished: Vec<_> = runs.iter().filter(|r| r.succeeded || r.failed).collect();
    let n = finished.iter().take_while(|r| r.failed).count();
    (n as u32, n > 0 && n == finished.len())
}

/// The row of one ScheduledBackup (raw JSON, so newer status fields are seen) at `now`.
pub fn row(object: &Value, now: Timestamp) -> Result<Row> {
    let sb: ScheduledBackup = lookup::typed(object, "a ScheduledBackup")?;
    let newer: NewerResults = object
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let status = sb.status.clone().unwrap_or_default();
    let cron = &sb.spec.cron_job;
    let suspended = cron.suspend == Some(true);
    let schedule_text = cron.enabled.then(|| {
        newer
            .effective_schedule
            .clone()
            .or_else(|| cron.schedule_every.clone())
            .unwrap_or_default()
    });
    let parsed: Option<Schedule> = schedule_text
        .as_deref()
        .and_then(|s| schedule::parse_kubernetes_cron(s, cron.time_zone.as_deref()).ok());
    let active = parsed.as_ref().filter(|_| !suspended);
    let last_success = ts(&status.last_successful_time);
    let created = sb.creation_timestamp().map_or(Timestamp::MIN, |t| t.0);

    let next_run = if suspended || !cron.enabled {
        None
    } else {
        ts(&newer.next_schedule_time).or_else(|| active.and_then(|s| s.next_after(now)))
    };
    let overdue = match find(&status.conditions, OVERDUE_CONDITION) {
        Some(c) => Some(c.status == "True"),
        None => active.map(|s| schedule::is_overdue(s, last_success, created, now, OVERDUE_GRACE)),
    };
    let (consecutive_failures, at_least) = match newer.consecutive_failures {
        Some(n) => (Some(n), false),
        None if status.children_resources_health.is_empty() => (None, false),
        None => {
            let (n, at_least) = leading_failures(&status.children_resources_health);
            (Some(n), at_least)
        }
    };
    let last_run = find(&status.conditions, condition_types::LAST_RUN_SUCCEEDED);
    let last_failure = newer
        .last_failure_message
        .clone()
        .or_else(|| {
            last_run
                .filter(|c| {
                    c.status == "False" && c.reason != crd_types::constants::reasons::NO_RUNS_YET
                })
                .map(|c| c.message.clone())
        })
        .or_else(|| {
            status
                .children_resources_health
                .iter()
                .find(|r| r.failed)
                .map(|r| r.message.clone())
        })
        .filter(|m| !m.trim().is_empty());

    Ok(Row {
        namespace: sb.namespace().unwrap_or_default(),
        name: sb.name_any(),
        operation: sb.spec.operation.to_string(),
        template: sb.spec.template_ref.name.clone(),
        schedule: schedule_text,
        time_zone: cron.time_zone.clone(),
        suspended,
        ready: find(&status.conditions, condition_types::READY).map(|c| c.status == "True"),
        last_success,
        last_failure_time: ts(&status.last_failed_time),
        last_schedule: ts(&status.last_schedule_time),
        next_run,
        overdue,
        consecutive_failures,
        consecutive_failures_at_least: at_least,
        last_failure,
    })
}

/// Rows of the ScheduledBackups `args` selects, sorted by namespace and name.
pub async fn rows(session: &Session, names: &[String]) -> Result<Vec<Row>> {
    let objects: Vec<Value> = if names.is_empty() {
        let scope = if session.all_namespaces {
            "all namespaces".to_string()
        } else {
            format!("namespace {}", session.namespace)
        };
        lookup::sb_api(session, session.all_namespaces)
            .list(&ListParams::default())
            .await
            .map_err(|e| {
                Error::api(
                    e,
                    format!("listing ScheduledBackups in {scope}"),
                    "list",
                    SB_RESOURCE,
                )
            })?
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .collect()
    } else {
        let mut objects = Vec::new();
        for name in names {
            objects.push(lookup::scheduled_backup_value(session, name).await?);
        }
        objects
    };
    let mut rows = objects
        .iter()
        .map(|o| row(o, session.now))
        .collect::<Result<Vec<_>>>()?;
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(rows)
}

/// `kubectl backup status`.
pub async fn status(session: &Session, args: &StatusArgs, out: &mut dyn Write) -> Result<()> {
    let rows = rows(session, &args.names).await?;
    match args.output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        OutputFormat::Yaml => {
            let yaml = serde_saphyr::to_string(&rows).map_err(|e| Error::Input(e.to_string()))?;
            write!(out, "{yaml}")?;
        }
        OutputFormat::Table | OutputFormat::Wide if rows.is_empty() => {
            let scope = if session.all_namespaces {
                "any namespace".to_string()
            } else {
                format!("namespace {}", session.namespace)
            };
            writeln!(out, "No ScheduledBackups found in {scope}.")?;
        }
        format => {
            let wide = format == OutputFormat::Wide;
            write!(
                out,
                "{}",
                render_table(&rows, session, wide, session.all_namespaces)
            )?;
        }
    }
    Ok(())
}

/// The table (narrow or wide), with a NAMESPACE column for `-A`.
pub fn render_table(rows: &[Row], session: &Session, wide: bool, namespaces: bool) -> String {
    let style = &session.style;
    let now = session.now;
    let mut headers = Vec::new();
    if namespaces {
        headers.push("NAMESPACE");
    }
    headers.push("NAME");
    if wide {
        headers.push("OPERATION");
    }
    headers.extend(["TEMPLATE", "SCHEDULE"]);
    if wide {
        headers.push("TIME ZONE");
    }
    headers.extend(["READY", "LAST SUCCESS"]);
    if wide {
        headers.extend(["LAST SCHEDULE", "LAST FAILED"]);
    }
    headers.extend(["NEXT RUN", "OVERDUE", "FAILURES", "LAST FAILURE"]);

    let time = |t: Option<Timestamp>, none: &str| -> Cell {
        t.map_or_else(|| none.into(), |t| relative(t, now).into())
    };
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            let mut c: Vec<Cell> = Vec::new();
            if namespaces {
                c.push(r.namespace.as_str().into());
            }
            c.push(r.name.as_str().into());
            if wide {
                c.push(r.operation.as_str().into());
            }
            c.push(r.template.as_str().into());
            c.push(r.schedule.as_deref().unwrap_or("-").into());
            if wide {
                c.push(r.time_zone.as_deref().unwrap_or("-").into());
            }
            c.push(match r.ready {
                Some(ready) => style.verdict(ready, "True", "False"),
                None => Cell::colored("Unknown", Color::Yellow),
            });
            c.push(time(r.last_success, "never"));
            if wide {
                c.push(time(r.last_schedule, "-"));
                c.push(time(r.last_failure_time, "-"));
            }
            c.push(match (r.next_run, r.suspended, &r.schedule) {
                (_, true, Some(_)) => Cell::colored("suspended", Color::Yellow),
                (Some(t), _, _) => relative(t, now).into(),
                (None, _, _) => "-".into(),
            });
            c.push(match r.overdue {
                Some(true) if style.tty => Cell::colored("⚠ yes", Color::Red),
                Some(true) => Cell::colored("yes", Color::Red),
                Some(false) => "no".into(),
                None => "-".into(),
            });
            c.push(match r.consecutive_failures {
                Some(n) => Cell::colored(
                    format!(
                        "{n}{}",
                        if r.consecutive_failures_at_least {
                            "+"
                        } else {
                            ""
                        }
                    ),
                    if n > 0 { Color::Red } else { Color::None },
                ),
                None => "-".into(),
            });
            c.push(match &r.last_failure {
                Some(m) if wide => short(m, usize::MAX).into(),
                Some(m) => short(m, SHORT_FAILURE).into(),
                None => "-".into(),
            });
            c
        })
        .collect();
    table(&headers, &cells, style as &Style)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2030-03-01T12:00:00Z".parse().unwrap()
    }

    fn sb(status: Value, cron: Value) -> Value {
        json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
            "metadata": {"name": "app1", "namespace": "prod", "creationTimestamp": "2030-01-01T00:00:00Z"},
            "spec": {
                "operation": "backup", "cronJob": cron,
                "templateRef": {"kind": "internal", "name": "pg15"},
                "gpgKeySecretRef": {"secretName": "k"}, "tokenSecretRef": {"secretName": "t", "tokenKey": "token"}
            },
            "status": status
        })
    }

    fn nightly() -> Value {
        json!({"enabled": true, "scheduleEvery": "0 2 * * *"})
    }

    fn run(name: &str, failed: bool, message: &str) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "name": name, "succeeded": !failed, "failed": failed,
               "running": false, "message": message})
    }

    #[test]
    fn a_schedule_without_a_success_since_the_last_expected_run_is_overdue() {
        let fresh = row(
            &sb(
                json!({"lastSuccessfulTime": "2030-03-01T02:10:00Z"}),
                nightly(),
            ),
            now(),
        )
        .unwrap();
        assert_eq!(fresh.overdue, Some(false));
        assert_eq!(
            fresh.next_run,
            Some("2030-03-02T02:00:00Z".parse().unwrap())
        );
        let stale = row(
            &sb(
                json!({"lastSuccessfulTime": "2030-02-27T02:10:00Z"}),
                nightly(),
            ),
            now(),
        )
        .unwrap();
        assert_eq!(stale.overdue, Some(true));
    }

    #[test]
    fn newer_status_fields_win_over_derived_values_when_the_controllers_write_them() {
        let status = json!({
            "effectiveSchedule": "17 2 * * *",
            "nextScheduleTime": "2030-03-02T02:17:00Z",
            "consecutiveFailures": 7,
            "lastFailureMessage": "pg_dump: connection refused",
            "conditions": [{"type": "Overdue", "status": "True", "reason": "Overdue", "message": "",
                            "lastTransitionTime": "2030-03-01T03:00:00Z"}],
            "lastSuccessfulTime": "2030-03-01T02:10:00Z",
            "childrenResourcesHealth": [run("j1", false, "ok")]
        });
        let r = row(
            &sb(
                status,
                json!({"enabled": true, "scheduleEvery": "H 2 * * *"}),
            ),
            now(),
        )
        .unwrap();
        assert_eq!(r.schedule.as_deref(), Some("17 2 * * *"));
        assert_eq!(r.next_run, Some("2030-03-02T02:17:00Z".parse().unwrap()));
        assert_eq!(r.consecutive_failures, Some(7));
        assert_eq!(
            r.last_failure.as_deref(),
            Some("pg_dump: connection refused")
        );
        assert_eq!(
            r.overdue,
            Some(true),
            "the Overdue condition wins over the computation"
        );
    }

    #[test]
    fn failures_are_counted_from_the_newest_reported_runs_skipping_running_ones() {
        let mut running = run("j0", false, "");
        running["running"] = json!(true);
        running["succeeded"] = json!(false);
        let status = json!({"childrenResourcesHealth": [
            running, run("j1", true, "BackoffLimitExceeded: x"), run("j2", true, "y"), run("j3", false, "")
        ]});
        let r = row(&sb(status, nightly()), now()).unwrap();
        assert_eq!(
            (r.consecutive_failures, r.consecutive_failures_at_least),
            (Some(2), false)
        );
        assert_eq!(r.last_failure.as_deref(), Some("BackoffLimitExceeded: x"));
        let all_failed =
            json!({"childrenResourcesHealth": [run("j1", true, "a"), run("j2", true, "b")]});
        let r = row(&sb(all_failed, nightly()), now()).unwrap();
        assert_eq!(
            (r.consecutive_failures, r.consecutive_failures_at_least),
            (Some(2), true)
        );
    }

    #[test]
    fn disabled_and_suspended_schedules_have_no_next_run_and_are_never_overdue() {
        let disabled = row(&sb(json!({}), json!({"enabled": false})), now()).unwrap();
        assert_eq!(
            (
                disabled.schedule.as_deref(),
                disabled.next_run,
                disabled.overdue
            ),
            (None, None, None)
        );
        let suspended = row(
            &sb(
                json!({}),
                json!({"enabled": true, "scheduleEvery": "0 2 * * *", "suspend": true}),
            ),
            now(),
        )
        .unwrap();
        assert!(suspended.suspended);
        assert_eq!((suspended.next_run, suspended.overdue), (None, None));
    }

    #[test]
    fn a_failed_last_run_condition_is_the_last_failure_but_no_runs_yet_is_not() {
        let cond = |reason: &str, message: &str| {
            json!({"conditions": [{"type": "LastRunSucceeded", "status": "False", "reason": reason,
                                   "message": message, "lastTransitionTime": "2030-03-01T02:00:00Z"}]})
        };
        let failed = row(
            &sb(cond("JobFailed", "Job app1-backup-1 failed"), nightly()),
            now(),
        )
        .unwrap();
        assert_eq!(
            failed.last_failure.as_deref(),
            Some("Job app1-backup-1 failed")
        );
        let none = row(
            &sb(cond("NoRunsYet", "no run has finished yet"), nightly()),
            now(),
        )
        .unwrap();
        assert_eq!(none.last_failure, None);
    }
}
