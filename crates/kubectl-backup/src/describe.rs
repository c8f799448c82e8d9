//! `kubectl backup describe SB|rba/NAME`, in the layout of `kubectl describe`: fields, then sections
//! (conditions, children, runs, events), `<none>` for empty ones.

use std::io::Write;

use crd_types::{RequestedBackupAction, ScheduledBackup};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::lookup;
use crate::output::{Cell, relative, short, short_age, table};
use crate::status;
use crate::{Result, Session, Target};

/// How many Jobs and actions are shown.
const RECENT: usize = 5;
/// How many events are shown (the newest).
const EVENTS: usize = 10;

/// `kubectl backup describe`.
pub async fn describe(session: &Session, target: &Target, out: &mut dyn Write) -> Result<()> {
    match target {
        Target::ScheduledBackup(name) => describe_scheduled_backup(session, name, out).await,
        Target::Action(name) => describe_action(session, name, out).await,
    }
}

fn when(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or_else(
        || "<none>".to_string(),
        |t| {
            format!(
                "{} ({})",
                t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                relative(t, now)
            )
        },
    )
}

fn time(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

fn field(out: &mut dyn Write, key: &str, value: impl std::fmt::Display) -> std::io::Result<()> {
    writeln!(out, "{:<17}{value}", format!("{key}:"))
}

fn section(
    out: &mut dyn Write,
    session: &Session,
    title: &str,
    headers: &[&str],
    rows: Vec<Vec<Cell>>,
) -> std::io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "{title}: <none>");
    }
    writeln!(out, "{title}:")?;
    for line in table(headers, &rows, &session.style).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

fn conditions(
    out: &mut dyn Write,
    session: &Session,
    conditions: &[Condition],
) -> std::io::Result<()> {
    let mut sorted = conditions.to_vec();
    sorted.sort_by(|a, b| a.type_.cmp(&b.type_));
    let rows = sorted
        .iter()
        .map(|c| {
            let status = if c.status == "True" || c.status == "False" {
                session.style.verdict(c.status == "True", "True", "False")
            } else {
                c.status.as_str().into()
            };
            vec![
                c.type_.as_str().into(),
                status,
                c.reason.as_str().into(),
                short_age(session.now.duration_since(c.last_transition_time.0)).into(),
                short(&c.message, 100).into(),
            ]
        })
        .collect();
    section(
        out,
        session,
        "Conditions",
        &["Type", "Status", "Reason", "Age", "Message"],
        rows,
    )
}

fn job_result(job: &Job) -> String {
    let status = job.status.clone().unwrap_or_default();
    let is = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == t && c.status == "True")
    };
    if is("Complete") {
        "Succeeded".into()
    } else if is("Failed") {
        "Failed".into()
    } else if status.active.unwrap_or(0) > 0 || status.start_time.is_some() {
        "Running".into()
    } else {
        "Pending".into()
    }
}

fn job_message(job: &Job, pods: &[Pod]) -> String {
    let from_pod = pods
        .iter()
        .filter(|p| lookup::pod_of_job(p, job))
        .find_map(lookup::termination_message);
    let from_condition = job.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed" && c.status == "True")
            .map(|c| c.message.clone().unwrap_or_default())
    });
    short(&from_pod.or(from_condition).unwrap_or_default(), 80)
}

fn runs(out: &mut dyn Write, session: &Session, jobs: &[Job], pods: &[Pod]) -> std::io::Result<()> {
    let rows = jobs
        .iter()
        .take(RECENT)
        .map(|job| {
            let status = job.status.clone().unwrap_or_default();
            let started = time(&status.start_time);
            let duration = match (started, time(&status.completion_time)) {
                (Some(s), Some(e)) => short_age(e.duration_since(s)),
                _ => "-".into(),
            };
            let result = job_result(job);
            let result = match result.as_str() {
                "Succeeded" | "Failed" => {
                    session
                        .style
                        .verdict(result == "Succeeded", "Succeeded", "Failed")
                }
                _ => result.into(),
            };
            vec![
                job.name_any().into(),
                result,
                started
                    .map_or_else(|| "-".into(), |t| relative(t, session.now))
                    .into(),
                duration.into(),
                {
                    let m = job_message(job, pods);
                    if m.is_empty() { "-".into() } else { m.into() }
                },
            ]
        })
        .collect();
    section(
        out,
        session,
        "Last Runs",
        &["Job", "Result", "Started", "Duration", "Message"],
        rows,
    )
}

/// An event as shown: (time, type, reason, from, message).
type EventRow = (Option<Timestamp>, String, String, String, String);

/// Events about `kind`/`name`, newest last: events.k8s.io/v1 (what the controllers write), or core v1 when
/// that API cannot be read. Listing is namespace-wide and filtered here: field selectors on `regarding.*`
/// are not served everywhere.
async fn events(
    session: &Session,
    kind: &str,
    name: &str,
) -> std::result::Result<Vec<EventRow>, String> {
    let client = session.client.clone();
    let ns = &session.namespace;
    let modern: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let mut rows: Vec<EventRow> = match modern.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.name.as_deref() == Some(name) && r.kind.as_deref() == Some(kind)
                })
            })
            .map(|e| {
                let at = e
                    .series
                    .as_ref()
                    .map(|s| s.last_observed_time.0)
                    .or(e.event_time.as_ref().map(|t| t.0))
                    .or(time(&e.deprecated_last_timestamp))
                    .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0));
                (
                    at,
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.reporting_controller.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect(),
        Err(modern_error) => {
            let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, ns);
            core.list(&ListParams::default())
                .await
                .map_err(|e| format!("cannot list events ({modern_error}; {e})"))?
                .items
                .into_iter()
                .filter(|e| {
                    e.involved_object.name.as_deref() == Some(name)
                        && e.involved_object.kind.as_deref() == Some(kind)
                })
                .map(|e| {
                    let at = time(&e.last_timestamp)
                        .or(e.event_time.as_ref().map(|t| t.0))
                        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0));
                    (
                        at,
                        e.type_.unwrap_or_default(),
                        e.reason.unwrap_or_default(),
                        e.reporting_component
                            .or(e.source.and_then(|s| s.component))
                            .unwrap_or_default(),
                        e.message.unwrap_or_default(),
                    )
                })
                .collect()
        }
    };
    rows.sort_by_key(|r| r.0);
    let skip = rows.len().saturating_sub(EVENTS);
    Ok(rows.into_iter().skip(skip).collect())
}

async fn events_section(
    out: &mut dyn Write,
    session: &Session,
    kind: &str,
    name: &str,
) -> Result<()> {
    match events(session, kind, name).await {
        Ok(events) => {
            let rows = events
                .into_iter()
                .map(|(at, type_, reason, from, message)| {
                    vec![
                        type_.as_str().into(),
                        reason.into(),
                        at.map_or_else(
                            || "-".to_string(),
                            |t| short_age(session.now.duration_since(t)),
                        )
                        .into(),
                        from.into(),
                        short(&message, 120).into(),
                    ]
                })
                .collect();
            section(
                out,
                session,
                "Events",
                &["Type", "Reason", "Age", "From", "Message"],
                rows,
            )?;
        }
        Err(message) => writeln!(out, "Events: <{message}>")?,
    }
    Ok(())
}

async fn describe_scheduled_backup(
    session: &Session,
    name: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let object = lookup::scheduled_backup_value(session, name).await?;
    let sb: ScheduledBackup = lookup::typed(&object, &format!("ScheduledBackup {name}"))?;
    let row = status::row(&object, session.now)?;
    let st = sb.status.clone().unwrap_or_default();
    let now = session.now;
    field(out, "Name", sb.name_any())?;
    field(out, "Namespace", sb.namespace().unwrap_or_default())?;
    field(
        out,
        "Created",
        when(sb.creation_timestamp().map(|t| t.0), now),
    )?;
    field(out, "Operation", sb.spec.operation)?;
    field(
        out,
        "Template",
        format!(
            "{} ({})",
            sb.spec.template_ref.name, sb.spec.template_ref.kind
        ),
    )?;
    let schedule = match &row.schedule {
        None => "disabled (spec.cronJob.enabled is false)".to_string(),
        Some(s) => format!(
            "{s} ({}){}",
            row.time_zone.as_deref().unwrap_or("UTC"),
            if row.suspended { ", suspended" } else { "" }
        ),
    };
    field(out, "Schedule", schedule)?;
    field(out, "Key Secret", &sb.spec.gpg_key_secret_ref.secret_name)?;
    field(out, "Token Secret", &sb.spec.token_secret_ref.secret_name)?;
    if let Some(vars) = sb
        .spec
        .vars_secret_ref
        .as_ref()
        .filter(|v| !v.secret_name.is_empty())
    {
        field(out, "Vars Secret", &vars.secret_name)?;
    }
    field(
        out,
        "Healthy",
        st.healthy
            .map_or("<unknown>".to_string(), |h| h.to_string()),
    )?;
    field(out, "Last Schedule", when(row.last_schedule, now))?;
    field(out, "Last Success", when(row.last_success, now))?;
    field(out, "Last Failure", when(row.last_failure_time, now))?;
    field(out, "Next Run", when(row.next_run, now))?;
    field(
        out,
        "Overdue",
        match row.overdue {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        },
    )?;
    if let Some(message) = &row.last_failure {
        writeln!(out, "Last Failure Message:")?;
        for line in message.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    conditions(out, session, &st.conditions)?;
    let children = st
        .owned_references
        .iter()
        .map(|c| vec![c.kind.as_str().into(), c.name.as_str().into()])
        .collect();
    section(out, session, "Children", &["Kind", "Name"], children)?;
    let selector = lookup::sb_selector(name);
    let jobs = lookup::jobs(session, &selector).await?;
    let pods = lookup::pods(session, &selector).await.unwrap_or_default();
    runs(out, session, &jobs, &pods)?;
    let actions = lookup::actions_of(session, name).await?;
    let rows = actions
        .iter()
        .take(RECENT)
        .map(|a| {
            vec![
                a.name_any().into(),
                a.spec.action.as_str().into(),
                a.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .map_or("-", |p| p.as_str())
                    .into(),
                a.creation_timestamp()
                    .map_or("-".to_string(), |t| short_age(now.duration_since(t.0)))
                    .into(),
            ]
        })
        .collect();
    section(
        out,
        session,
        "Actions",
        &["Name", "Action", "Phase", "Age"],
        rows,
    )?;
    events_section(out, session, "ScheduledBackup", name).await
}

async fn describe_action(session: &Session, name: &str, out: &mut dyn Write) -> Result<()> {
    let action: RequestedBackupAction = lookup::action(session, name).await?;
    let st = action.status.clone().unwrap_or_default();
    let now = session.now;
    field(out, "Name", action.name_any())?;
    field(out, "Namespace", action.namespace().unwrap_or_default())?;
    field(
        out,
        "Created",
        when(action.creation_timestamp().map(|t| t.0), now),
    )?;
    field(out, "Action", action.spec.action)?;
    field(
        out,
        "ScheduledBackup",
        &action.spec.scheduled_backup_ref.name,
    )?;
    if let Some(v) = &action.spec.target_version {
        field(out, "Target Version", v)?;
    }
    field(out, "Executor", format!("{:?}", action.spec.kind_type))?;
    field(out, "Phase", st.phase.map_or("<none>", |p| p.as_str()))?;
    field(out, "Started", when(time(&st.start_time), now))?;
    field(out, "Completed", when(time(&st.completion_time), now))?;
    conditions(out, session, &st.conditions)?;
    let children = st
        .owned_references
        .iter()
        .map(|c| vec![c.kind.as_str().into(), c.name.as_str().into()])
        .collect();
    section(out, session, "Children", &["Kind", "Name"], children)?;
    let selector = lookup::action_selector(name);
    let jobs = lookup::jobs(session, &selector).await?;
    let pods = lookup::pods(session, &selector).await.unwrap_or_default();
    runs(out, session, &jobs, &pods)?;
    let pod_rows = pods
        .iter()
        .map(|p| {
            let s = p.status.clone().unwrap_or_default();
            vec![
                p.name_any().into(),
                s.phase.unwrap_or_else(|| "Pending".into()).into(),
                time(&s.start_time)
                    .map_or("-".to_string(), |t| relative(t, now))
                    .into(),
            ]
        })
        .collect();
    section(
        out,
        session,
        "Pods",
        &["Name", "Phase", "Started"],
        pod_rows,
    )?;
    if let Some(message) = pods.iter().find_map(lookup::termination_message) {
        writeln!(out, "Termination Message:")?;
        for line in message.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    events_section(out, session, "RequestedBackupAction", name).await
}
