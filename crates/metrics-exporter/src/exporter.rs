//! The backup-health exporter: per-ScheduledBackup and per-action gauges computed from reflector
//! stores at scrape time.
//!
//! A custom [`prometheus::core::Collector`] reads the stores on every scrape, so series appear and
//! disappear with their objects (a deleted ScheduledBackup leaves no stale gauge behind) and the
//! computed values (next run, overdue) are always relative to the scrape time. The exporter only
//! lists and watches: it makes no API writes at all.

use crd_types::constants::{condition_types, labels};
use crd_types::schedule::{self, OverdueAfter, Schedule};
use crd_types::{ActionPhase, RequestedBackupAction, ScheduledBackup};
use futures::FutureExt as _;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGaugeVec, Opts};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// `backup_maker_last_success_timestamp_seconds{namespace,scheduledbackup,operation}`.
pub const LAST_SUCCESS: &str = "backup_maker_last_success_timestamp_seconds";
/// `backup_maker_last_failure_timestamp_seconds{namespace,scheduledbackup,operation}`.
pub const LAST_FAILURE: &str = "backup_maker_last_failure_timestamp_seconds";
/// `backup_maker_last_duration_seconds{namespace,scheduledbackup,operation}`.
pub const LAST_DURATION: &str = "backup_maker_last_duration_seconds";
/// `backup_maker_scheduledbackup_ready{namespace,scheduledbackup,operation}`.
pub const READY: &str = "backup_maker_scheduledbackup_ready";
/// `backup_maker_next_scheduled_timestamp_seconds{namespace,scheduledbackup,operation}`.
pub const NEXT_SCHEDULED: &str = "backup_maker_next_scheduled_timestamp_seconds";
/// `backup_maker_last_schedule_timestamp_seconds{namespace,scheduledbackup,operation}`.
pub const LAST_SCHEDULE: &str = "backup_maker_last_schedule_timestamp_seconds";
/// `backup_maker_backup_overdue{namespace,scheduledbackup,operation}`.
pub const OVERDUE: &str = "backup_maker_backup_overdue";
/// `backup_maker_actions_total{namespace,action,result}`.
pub const ACTIONS_TOTAL: &str = "backup_maker_actions_total";
/// `backup_maker_actions_running{namespace}`.
pub const ACTIONS_RUNNING: &str = "backup_maker_actions_running";
/// `backup_maker_exporter_ready`: 1 once every watch cache holds its initial list. Always exposed, so an alert can
/// tell "no backups" from "no exporter" (without it, every backup alert silently resolves when the exporter dies).
pub const EXPORTER_READY: &str = "backup_maker_exporter_ready";

/// Every family the exporter's collector produces, for docs and rule/dashboard checks.
pub const FAMILIES: &[&str] = &[
    LAST_SUCCESS,
    LAST_FAILURE,
    LAST_DURATION,
    READY,
    NEXT_SCHEDULED,
    LAST_SCHEDULE,
    OVERDUE,
    ACTIONS_TOTAL,
    ACTIONS_RUNNING,
    EXPORTER_READY,
];

const SB_LABELS: &[&str] = &["namespace", "scheduledbackup", "operation"];

/// Outcome of one finished Job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinishedJob {
    /// Whether it succeeded.
    pub succeeded: bool,
    /// When it finished (completionTime, else the Complete/Failed condition's transition time).
    pub finished: Timestamp,
    /// Run time in seconds (finish − startTime), when the start is known.
    pub duration_seconds: Option<f64>,
}

/// Classifies a Job: `None` while it runs (a Job retrying within its backoff limit is running, not failed).
pub fn finished_job(job: &Job) -> Option<FinishedJob> {
    let status = job.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let true_condition = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    let (succeeded, cond) = if let Some(c) = true_condition("Complete") {
        (true, c)
    } else if let Some(c) = true_condition("Failed") {
        (false, c)
    } else {
        return None;
    };
    let finished = status
        .completion_time
        .as_ref()
        .or(cond.last_transition_time.as_ref())
        .map(|t| t.0)?;
    let duration_seconds = status
        .start_time
        .as_ref()
        .map(|s| finished.duration_since(s.0).as_secs_f64())
        .filter(|d| *d >= 0.0);
    Some(FinishedJob {
        succeeded,
        finished,
        duration_seconds,
    })
}

/// What the Jobs of one (namespace, ScheduledBackup, operation) say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobSummary {
    /// Finish time of the latest succeeded Job.
    pub last_success: Option<Timestamp>,
    /// Finish time of the latest failed Job.
    pub last_failure: Option<Timestamp>,
    /// The latest finished Job (either outcome).
    pub latest: Option<FinishedJob>,
}

impl JobSummary {
    fn add(&mut self, job: FinishedJob) {
        let slot = if job.succeeded {
            &mut self.last_success
        } else {
            &mut self.last_failure
        };
        *slot = max_opt(*slot, Some(job.finished));
        if self.latest.is_none_or(|l| job.finished >= l.finished) {
            self.latest = Some(job);
        }
    }
}

fn max_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

type SbKey = (String, String, String);

/// Groups finished Jobs by their `riotkit.org/scheduled-backup` and `riotkit.org/operation` labels.
pub fn summarize_jobs<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> HashMap<SbKey, JobSummary> {
    let mut out: HashMap<SbKey, JobSummary> = HashMap::new();
    for job in jobs {
        let l = job.labels();
        let (Some(sb), Some(op)) = (l.get(labels::SCHEDULED_BACKUP), l.get(labels::OPERATION))
        else {
            continue;
        };
        if let Some(done) = finished_job(job) {
            let key = (job.namespace().unwrap_or_default(), sb.clone(), op.clone());
            out.entry(key).or_default().add(done);
        }
    }
    out
}

/// The values exported for one ScheduledBackup. `None` means "no series".
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledBackupValues {
    /// Namespace label.
    pub namespace: String,
    /// ScheduledBackup name label.
    pub name: String,
    /// `spec.operation` label.
    pub operation: String,
    /// Latest success (status or Jobs, whichever is newer).
    pub last_success: Option<Timestamp>,
    /// Latest failure (status or Jobs, whichever is newer).
    pub last_failure: Option<Timestamp>,
    /// Duration of the latest finished Job.
    pub last_duration_seconds: Option<f64>,
    /// `Ready` condition is True.
    pub ready: bool,
    /// When the CronJob last scheduled a Job.
    pub last_schedule: Option<Timestamp>,
    /// Next run; `None` when not scheduled (disabled, suspended, invalid).
    pub next_scheduled: Option<Timestamp>,
    /// Overdue flag; `None` when not scheduled.
    pub overdue: Option<bool>,
}

/// Computes the exported values of one ScheduledBackup from its status, its Jobs' summary and its
/// CronJob (if the scheduled-controller created one).
pub fn scheduled_backup_values(
    sb: &ScheduledBackup,
    jobs: Option<&JobSummary>,
    cron_job: Option<&CronJob>,
    now: Timestamp,
    grace: SignedDuration,
) -> ScheduledBackupValues {
    let status = sb.status.as_ref();
    let jobs = jobs.copied().unwrap_or_default();
    let last_success = max_opt(
        status
            .and_then(|s| s.last_successful_time.as_ref())
            .map(|t| t.0),
        jobs.last_success,
    );
    let last_failure = max_opt(
        status
            .and_then(|s| s.last_failed_time.as_ref())
            .map(|t| t.0),
        jobs.last_failure,
    );
    let ready = status
        .is_some_and(|s| crd_types::conditions::is_true(&s.conditions, condition_types::READY));
    let cj_status = cron_job.and_then(|c| c.status.as_ref());
    let last_schedule = max_opt(
        status
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0),
        cj_status
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0),
    );
    let cron = &sb.spec.cron_job;
    let suspended = cron.suspend == Some(true)
        || cron_job
            .and_then(|c| c.spec.as_ref())
            .and_then(|s| s.suspend)
            == Some(true);
    // The SB's effective schedule (`H` resolved from its namespace/name) and overdue rule, from the same
    // crd-types code as the scheduled-controller's `Overdue` condition; `grace` is the default rule's grace.
    let active_schedule: Option<(Schedule, OverdueAfter)> = if cron.enabled && !suspended {
        let (namespace, name) = (sb.namespace().unwrap_or_default(), sb.name_any());
        cron.schedule(&namespace, &name)
            .ok()
            .zip(cron.overdue_after(grace).ok())
    } else {
        None
    };
    let created = sb
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::MIN, |t| t.0);
    let (next_scheduled, overdue) = match &active_schedule {
        Some((s, policy)) => (
            s.next_after(now),
            Some(schedule::is_overdue_at(
                s,
                *policy,
                last_success,
                created,
                now,
            )),
        ),
        None => (None, None),
    };
    ScheduledBackupValues {
        namespace: sb.namespace().unwrap_or_default(),
        name: sb.name_any(),
        operation: sb.spec.operation.as_str().to_owned(),
        last_success,
        last_failure,
        last_duration_seconds: jobs.latest.and_then(|j| j.duration_seconds),
        ready,
        last_schedule,
        next_scheduled,
        overdue,
    }
}

/// Counts terminal actions once each (by uid), so `backup_maker_actions_total` only grows while
/// the process lives. On start the counter is seeded from the actions that already exist.
#[derive(Default)]
struct ActionCounter {
    counted: HashSet<String>,
    /// `(namespace, action)` pairs whose series exist.
    series: HashSet<(String, String)>,
    /// The first scrape after the action cache synced has counted the existing actions.
    seeded: bool,
}

/// Source of "now"; tests pin it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The reflector stores the collector reads.
#[derive(Clone)]
pub struct Stores {
    /// ScheduledBackups.
    pub scheduled_backups: Store<ScheduledBackup>,
    /// RequestedBackupActions.
    pub actions: Store<RequestedBackupAction>,
    /// Jobs labelled `riotkit.org/scheduled-backup`.
    pub jobs: Store<Job>,
    /// CronJobs labelled `riotkit.org/scheduled-backup`.
    pub cron_jobs: Store<CronJob>,
}

/// The scrape-time collector of every backup-health family.
pub struct BackupCollector {
    stores: Stores,
    grace: SignedDuration,
    clock: Clock,
    descs: Vec<Desc>,
    actions_total: IntCounterVec,
    counter: Mutex<ActionCounter>,
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

fn sb_gauges() -> [(&'static str, GaugeVec); 7] {
    [
        (
            LAST_SUCCESS,
            gauge_vec(
                LAST_SUCCESS,
                "Unix time of the latest successful run (ScheduledBackup status or its Jobs).",
                SB_LABELS,
            ),
        ),
        (
            LAST_FAILURE,
            gauge_vec(
                LAST_FAILURE,
                "Unix time of the latest failed run (ScheduledBackup status or its Jobs).",
                SB_LABELS,
            ),
        ),
        (
            LAST_DURATION,
            gauge_vec(
                LAST_DURATION,
                "Run time of the latest finished Job in seconds.",
                SB_LABELS,
            ),
        ),
        (
            READY,
            gauge_vec(
                READY,
                "1 when the ScheduledBackup's Ready condition is True, else 0.",
                SB_LABELS,
            ),
        ),
        (
            NEXT_SCHEDULED,
            gauge_vec(
                NEXT_SCHEDULED,
                "Unix time of the next scheduled run (cron expression in its timeZone).",
                SB_LABELS,
            ),
        ),
        (
            LAST_SCHEDULE,
            gauge_vec(
                LAST_SCHEDULE,
                "Unix time the CronJob last scheduled a Job.",
                SB_LABELS,
            ),
        ),
        (
            OVERDUE,
            gauge_vec(
                OVERDUE,
                "1 when no run succeeded since the previous expected run plus the grace period.",
                SB_LABELS,
            ),
        ),
    ]
}

fn running_gauge() -> IntGaugeVec {
    IntGaugeVec::new(
        Opts::new(ACTIONS_RUNNING, "RequestedBackupActions in phase Running."),
        &["namespace"],
    )
    .expect("valid metric definition")
}

fn exporter_ready_gauge() -> Gauge {
    Gauge::with_opts(Opts::new(
        EXPORTER_READY,
        "1 once every watch cache of this exporter holds its initial list, else 0.",
    ))
    .expect("valid metric definition")
}

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

impl BackupCollector {
    /// A collector over `stores`; `grace` is how long after an expected run a missing success
    /// counts as overdue.
    pub fn new(stores: Stores, grace: SignedDuration) -> Self {
        Self::with_clock(stores, grace, Arc::new(Timestamp::now))
    }

    /// Like [`Self::new`] with an explicit clock (tests).
    pub fn with_clock(stores: Stores, grace: SignedDuration, clock: Clock) -> Self {
        let actions_total = IntCounterVec::new(
            Opts::new(ACTIONS_TOTAL, "Finished RequestedBackupActions observed, by action (backup|restore) and result (succeeded|failed)."),
            &["namespace", "action", "result"],
        )
        .expect("valid metric definition");
        let mut descs: Vec<Desc> = sb_gauges()
            .iter()
            .flat_map(|(_, g)| g.desc().into_iter().cloned())
            .collect();
        descs.extend(actions_total.desc().into_iter().cloned());
        descs.extend(running_gauge().desc().into_iter().cloned());
        descs.extend(exporter_ready_gauge().desc().into_iter().cloned());
        Self {
            stores,
            grace,
            clock,
            descs,
            actions_total,
            counter: Mutex::new(ActionCounter::default()),
        }
    }

    /// Whether every store has its initial list.
    fn synced(&self) -> bool {
        fn ready<K: kube::Resource + Clone>(store: &Store<K>) -> bool
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            store
                .wait_until_ready()
                .now_or_never()
                .is_some_and(|r| r.is_ok())
        }
        let s = &self.stores;
        ready(&s.scheduled_backups) && ready(&s.actions) && ready(&s.jobs) && ready(&s.cron_jobs)
    }

    fn collect_actions(&self) -> IntGaugeVec {
        let running = running_gauge();
        let actions = self.stores.actions.state();
        let mut counter = self.counter.lock().unwrap_or_else(|e| e.into_inner());
        // Until the cache has synced, and at the first scrape after, every finished action is an old one: it is
        // counted at once, so that a restart does not look like a burst of new failures.
        let seeding = !counter.seeded;
        counter.seeded = self
            .stores
            .actions
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok());
        let mut present = HashSet::with_capacity(actions.len());
        let mut namespaces: BTreeMap<String, i64> = BTreeMap::new();
        for rba in &actions {
            let ns = rba.namespace().unwrap_or_default();
            let action = rba.spec.action.as_str();
            // Both results exist at 0 from the first sight of an action kind in a namespace, so
            // increase() sees the first failure instead of treating it as a new series.
            for result in ["succeeded", "failed"] {
                self.actions_total.with_label_values(&[&ns, action, result]);
            }
            let new_series = counter.series.insert((ns.clone(), action.to_owned()));
            let phase = rba.status.as_ref().and_then(|s| s.phase);
            *namespaces.entry(ns.clone()).or_default() +=
                i64::from(phase == Some(ActionPhase::Running));
            let uid = rba
                .uid()
                .unwrap_or_else(|| format!("{ns}/{}", rba.name_any()));
            present.insert(uid.clone());
            let result = match phase {
                Some(ActionPhase::Succeeded) => "succeeded",
                Some(ActionPhase::Failed) => "failed",
                _ => continue,
            };
            // A series' first sample is invisible to increase(): an action finished before this scrape, in a
            // namespace without series for its kind yet, would never fire BackupActionFailed. Expose the 0 now
            // and count the action at the next scrape.
            if new_series && !seeding {
                continue;
            }
            if counter.counted.insert(uid) {
                self.actions_total
                    .with_label_values(&[&ns, action, result])
                    .inc();
            }
        }
        // Forget deleted actions; their uids never come back.
        counter.counted.retain(|uid| present.contains(uid));
        for (ns, n) in namespaces {
            running.with_label_values(&[&ns]).set(n);
        }
        running
    }
}

impl Collector for BackupCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let now = (self.clock)();
        let jobs = self.stores.jobs.state();
        let summaries = summarize_jobs(jobs.iter().map(|j| j.as_ref()));
        let cron_jobs: HashMap<(String, String), Arc<CronJob>> = self
            .stores
            .cron_jobs
            .state()
            .into_iter()
            .filter_map(|c| {
                let sb = c.labels().get(labels::SCHEDULED_BACKUP)?.clone();
                Some(((c.namespace().unwrap_or_default(), sb), c))
            })
            .collect();
        let gauges = sb_gauges();
        for sb in self.stores.scheduled_backups.state() {
            let ns = sb.namespace().unwrap_or_default();
            let name = sb.name_any();
            let key = (
                ns.clone(),
                name.clone(),
                sb.spec.operation.as_str().to_owned(),
            );
            let v = scheduled_backup_values(
                &sb,
                summaries.get(&key),
                cron_jobs.get(&(ns, name)).map(|c| c.as_ref()),
                now,
                self.grace,
            );
            let l = [v.namespace.as_str(), v.name.as_str(), v.operation.as_str()];
            let values = [
                v.last_success.map(seconds),
                v.last_failure.map(seconds),
                v.last_duration_seconds,
                Some(if v.ready { 1.0 } else { 0.0 }),
                v.next_scheduled.map(seconds),
                v.last_schedule.map(seconds),
                v.overdue.map(|o| if o { 1.0 } else { 0.0 }),
            ];
            for ((_, gauge), value) in gauges.iter().zip(values) {
                if let Some(value) = value {
                    gauge.with_label_values(&l).set(value);
                }
            }
        }
        let running = self.collect_actions();
        let mut out: Vec<MetricFamily> = gauges.iter().flat_map(|(_, g)| g.collect()).collect();
        out.extend(self.actions_total.collect());
        out.extend(running.collect());
        let ready = exporter_ready_gauge();
        ready.set(if self.synced() { 1.0 } else { 0.0 });
        out.extend(ready.collect());
        // A family without samples is dropped: an empty cluster exposes no backup series at all.
        out.retain(|mf| !mf.get_metric().is_empty());
        out
    }
}

/// Settings of [`run`].
#[derive(Clone)]
pub struct ExporterConfig {
    /// Watch one namespace instead of the whole cluster.
    pub namespace: Option<String>,
    /// How long after an expected run a missing success counts as overdue.
    pub overdue_grace: SignedDuration,
    /// The registry served on /metrics; [`run`] registers its collector here.
    pub registry: prometheus::Registry,
    /// Readiness: set once every store has its initial list.
    pub health: controller_runtime::health::Health,
}

/// A watch cache of `api` on the shared watch plumbing (restarts after an outage, readiness), drained by a task.
fn spawn_reflector<K>(
    api: kube::Api<K>,
    config: kube::runtime::watcher::Config,
    watches: &std::sync::Arc<controller_runtime::cache::Watches>,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: controller_runtime::cache::Watched,
{
    use futures::StreamExt;
    let (reader, stream) = controller_runtime::cache::cached(api, config, watches);
    let task = tokio::spawn(stream.for_each(|_| std::future::ready(())));
    (reader, task)
}

/// Runs the exporter until `shutdown` resolves: starts read-only watches of ScheduledBackups,
/// RequestedBackupActions, and the CronJobs and Jobs labelled `riotkit.org/scheduled-backup`,
/// registers the [`BackupCollector`] in `config.registry`, and marks the process ready once every
/// store holds its initial list. It never writes to the API.
pub async fn run(
    client: kube::Client,
    config: ExporterConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let ns = config.namespace.as_deref();
    let all = kube::runtime::watcher::Config::default();
    // Only Jobs and CronJobs our controllers made: keeps memory bounded in busy clusters.
    let ours = all.clone().labels(labels::SCHEDULED_BACKUP);
    // Readiness follows the watches (false while one is re-listing after a failure or an outage).
    let watches =
        controller_runtime::cache::Watches::new(client.clone(), config.health.clone(), None);
    let (scheduled_backups, t1) = spawn_reflector(
        controller_runtime::cache::scoped_api::<ScheduledBackup>(&client, ns),
        all.clone(),
        &watches,
    );
    let (actions, t2) = spawn_reflector(
        controller_runtime::cache::scoped_api::<RequestedBackupAction>(&client, ns),
        all,
        &watches,
    );
    let (jobs, t3) = spawn_reflector(
        controller_runtime::cache::scoped_api::<Job>(&client, ns),
        ours.clone(),
        &watches,
    );
    let (cron_jobs, t4) = spawn_reflector(
        controller_runtime::cache::scoped_api::<CronJob>(&client, ns),
        ours,
        &watches,
    );
    let tasks = [t1, t2, t3, t4];
    let stores = Stores {
        scheduled_backups,
        actions,
        jobs,
        cron_jobs,
    };
    config
        .registry
        .register(Box::new(BackupCollector::new(
            stores.clone(),
            config.overdue_grace,
        )))
        .context("cannot register the backup collector (registered twice in one registry?)")?;

    let synced = async {
        let _ = futures::join!(
            stores.scheduled_backups.wait_until_ready(),
            stores.actions.wait_until_ready(),
            stores.jobs.wait_until_ready(),
            stores.cron_jobs.wait_until_ready(),
        );
    };
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        () = synced => {
            tracing::info!("all watches synced; serving backup metrics");
            shutdown.as_mut().await;
        }
        () = shutdown.as_mut() => {}
    }
    for t in &tasks {
        t.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use controller_runtime::exposition::{Exposition, parse};
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub(crate) fn sb(
        ns: &str,
        name: &str,
        op: &str,
        cron: serde_json::Value,
        status: serde_json::Value,
    ) -> ScheduledBackup {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"),
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"operation": op, "cronJob": cron,
                     "templateRef": {"name": "pg15", "kind": "internal"},
                     "gpgKeySecretRef": {"secretName": "gpg"},
                     "tokenSecretRef": {"secretName": "token"}},
            "status": status,
        }))
        .unwrap()
    }

    pub(crate) fn job(
        ns: &str,
        name: &str,
        sb: &str,
        op: &str,
        outcome: &str,
        start: &str,
        end: &str,
    ) -> Job {
        let mut status = json!({"startTime": start});
        match outcome {
            "Complete" => {
                status["completionTime"] = json!(end);
                status["succeeded"] = json!(1);
                status["conditions"] =
                    json!([{"type": "Complete", "status": "True", "lastTransitionTime": end}]);
            }
            "Failed" => {
                status["failed"] = json!(1);
                status["conditions"] =
                    json!([{"type": "Failed", "status": "True", "lastTransitionTime": end}]);
            }
            _ => status["active"] = json!(1),
        }
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                         "labels": {labels::SCHEDULED_BACKUP: sb, labels::OPERATION: op}},
            "spec": {"template": {"spec": {"containers": []}}},
            "status": status,
        }))
        .unwrap()
    }

    fn rba(ns: &str, name: &str, action: &str, phase: Option<&str>) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}")},
            "spec": {"action": action, "scheduledBackupRef": {"name": "db"}},
            "status": match phase { Some(p) => json!({"phase": p}), None => json!({}) },
        }))
        .unwrap()
    }

    struct Fixture {
        sbs: Writer<ScheduledBackup>,
        rbas: Writer<RequestedBackupAction>,
        jobs: Writer<Job>,
        cron_jobs: Writer<CronJob>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                sbs: Writer::default(),
                rbas: Writer::default(),
                jobs: Writer::default(),
                cron_jobs: Writer::default(),
            }
        }
        fn stores(&self) -> Stores {
            Stores {
                scheduled_backups: self.sbs.as_reader(),
                actions: self.rbas.as_reader(),
                jobs: self.jobs.as_reader(),
                cron_jobs: self.cron_jobs.as_reader(),
            }
        }
    }

    const HOUR: SignedDuration = SignedDuration::from_hours(1);

    fn scrape(c: BackupCollector) -> (prometheus::Registry, impl Fn() -> Exposition) {
        let r = prometheus::Registry::new();
        r.register(Box::new(c)).unwrap();
        let r2 = r.clone();
        (r, move || {
            parse(
                &prometheus::TextEncoder::new()
                    .encode_to_string(&r2.gather())
                    .unwrap(),
            )
            .unwrap()
        })
    }

    fn fixed(now: &str) -> Clock {
        let now = ts(now);
        Arc::new(move || now)
    }

    #[test]
    fn running_jobs_are_not_finished_and_failed_jobs_use_the_condition_time() {
        assert_eq!(
            finished_job(&job(
                "n",
                "j",
                "db",
                "backup",
                "Active",
                "2025-01-01T02:00:00Z",
                ""
            )),
            None
        );
        let f = finished_job(&job(
            "n",
            "j",
            "db",
            "backup",
            "Failed",
            "2025-01-01T02:00:00Z",
            "2025-01-01T02:00:30Z",
        ))
        .unwrap();
        assert!(!f.succeeded);
        assert_eq!(f.finished, ts("2025-01-01T02:00:30Z"));
        assert_eq!(f.duration_seconds, Some(30.0));
        let s = finished_job(&job(
            "n",
            "j",
            "db",
            "backup",
            "Complete",
            "2025-01-01T02:00:00Z",
            "2025-01-01T02:02:00Z",
        ))
        .unwrap();
        assert!(s.succeeded);
        assert_eq!(s.duration_seconds, Some(120.0));
    }

    #[test]
    fn job_summary_keeps_the_latest_of_each_outcome_and_the_latest_duration() {
        let jobs = [
            job(
                "n",
                "a",
                "db",
                "backup",
                "Complete",
                "2025-01-01T02:00:00Z",
                "2025-01-01T02:01:00Z",
            ),
            job(
                "n",
                "b",
                "db",
                "backup",
                "Failed",
                "2025-01-02T02:00:00Z",
                "2025-01-02T02:00:10Z",
            ),
            job(
                "n",
                "c",
                "db",
                "backup",
                "Complete",
                "2025-01-03T02:00:00Z",
                "2025-01-03T02:05:00Z",
            ),
            job(
                "n",
                "d",
                "db",
                "restore",
                "Failed",
                "2025-01-04T02:00:00Z",
                "2025-01-04T02:00:01Z",
            ),
            job(
                "m",
                "e",
                "db",
                "backup",
                "Complete",
                "2025-01-05T02:00:00Z",
                "2025-01-05T02:00:01Z",
            ),
        ];
        let s = summarize_jobs(&jobs);
        let k = |ns: &str, op: &str| (ns.to_owned(), "db".to_owned(), op.to_owned());
        let backup = s[&k("n", "backup")];
        assert_eq!(backup.last_success, Some(ts("2025-01-03T02:05:00Z")));
        assert_eq!(backup.last_failure, Some(ts("2025-01-02T02:00:10Z")));
        assert_eq!(backup.latest.unwrap().duration_seconds, Some(300.0));
        assert_eq!(s[&k("n", "restore")].last_success, None);
        assert_eq!(
            s[&k("m", "backup")].last_success,
            Some(ts("2025-01-05T02:00:01Z"))
        );
    }

    #[test]
    fn status_and_jobs_are_merged_taking_the_newer_time() {
        let b = sb(
            "n",
            "db",
            "backup",
            json!({"enabled": true, "scheduleEvery": "0 2 * * *"}),
            json!({"lastSuccessfulTime": "2025-01-09T02:03:00Z", "lastFailedTime": "2025-01-08T02:03:00Z",
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                   "lastTransitionTime": "2025-01-01T00:00:00Z"}]}),
        );
        let jobs = [job(
            "n",
            "x",
            "db",
            "backup",
            "Complete",
            "2025-01-10T02:00:00Z",
            "2025-01-10T02:04:00Z",
        )];
        let s = summarize_jobs(&jobs);
        let v = scheduled_backup_values(
            &b,
            s.get(&("n".into(), "db".into(), "backup".into())),
            None,
            ts("2025-01-10T12:00:00Z"),
            HOUR,
        );
        assert_eq!(v.last_success, Some(ts("2025-01-10T02:04:00Z")));
        assert_eq!(v.last_failure, Some(ts("2025-01-08T02:03:00Z")));
        assert_eq!(v.last_duration_seconds, Some(240.0));
        assert!(v.ready);
        assert_eq!(v.next_scheduled, Some(ts("2025-01-11T02:00:00Z")));
        assert_eq!(v.overdue, Some(false));
    }

    #[test]
    fn disabled_suspended_or_invalid_schedules_have_no_next_run_or_overdue() {
        let now = ts("2025-01-10T12:00:00Z");
        for cron in [
            json!({"enabled": false, "scheduleEvery": "0 2 * * *"}),
            json!({"enabled": true, "scheduleEvery": "0 2 * * *", "suspend": true}),
            json!({"enabled": true, "scheduleEvery": "0 0 2 * * *"}),
            json!({"enabled": true, "scheduleEvery": "0 2 * * *", "timeZone": "Mars/Olympus"}),
        ] {
            let v = scheduled_backup_values(
                &sb("n", "db", "backup", cron.clone(), json!({})),
                None,
                None,
                now,
                HOUR,
            );
            assert_eq!((v.next_scheduled, v.overdue), (None, None), "{cron}");
            assert!(!v.ready);
        }
    }

    #[test]
    fn a_spread_schedule_is_evaluated_as_the_concrete_expression_of_its_sb() {
        let b = sb(
            "n",
            "db",
            "backup",
            json!({"enabled": true, "scheduleEvery": "H 2 * * *"}),
            json!({}),
        );
        let minute = crd_types::spread::seed("n", "db") % 60;
        let v = scheduled_backup_values(&b, None, None, ts("2025-01-10T12:00:00Z"), HOUR);
        assert_eq!(
            v.next_scheduled,
            Some(ts(&format!("2025-01-11T02:{minute:02}:00Z")))
        );
    }

    #[test]
    fn the_exporter_and_the_controller_agree_on_overdue_including_overdue_after() {
        let b = sb(
            "n",
            "db",
            "backup",
            json!({"enabled": true, "scheduleEvery": "0 2 * * *", "overdueAfter": "50h"}),
            json!({"lastSuccessfulTime": "2025-01-10T02:04:00Z"}),
        );
        let deadline = ts("2025-01-12T04:04:00Z");
        let v = |now: Timestamp| scheduled_backup_values(&b, None, None, now, HOUR).overdue;
        assert_eq!(v(deadline - SignedDuration::from_nanos(1)), Some(false));
        assert_eq!(v(deadline), Some(true));
        // The deadline the scheduled-controller requeues at and flips its condition on.
        let cron = &b.spec.cron_job;
        assert_eq!(
            schedule::overdue_deadline(
                &cron.schedule("n", "db").unwrap(),
                cron.overdue_after(schedule::DEFAULT_OVERDUE_GRACE).unwrap(),
                Some(ts("2025-01-10T02:04:00Z")),
                ts("2025-01-01T00:00:00Z"),
            ),
            Some(deadline)
        );
    }

    #[test]
    fn a_suspended_cronjob_suspends_the_schedule_too() {
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "db-backup", "namespace": "n", "labels": {labels::SCHEDULED_BACKUP: "db"}},
            "spec": {"schedule": "0 2 * * *", "suspend": true, "jobTemplate": {}},
            "status": {"lastScheduleTime": "2025-01-10T02:00:00Z"},
        }))
        .unwrap();
        let b = sb(
            "n",
            "db",
            "backup",
            json!({"enabled": true, "scheduleEvery": "0 2 * * *"}),
            json!({}),
        );
        let v = scheduled_backup_values(&b, None, Some(&cj), ts("2025-01-10T12:00:00Z"), HOUR);
        assert_eq!(v.overdue, None);
        assert_eq!(v.last_schedule, Some(ts("2025-01-10T02:00:00Z")));
    }

    #[test]
    fn never_succeeded_scheduled_backup_is_overdue_after_first_expected_run_plus_grace() {
        let b = sb(
            "n",
            "db",
            "backup",
            json!({"enabled": true, "scheduleEvery": "0 2 * * *", "timeZone": "Europe/Berlin"}),
            json!({}),
        );
        // Created 2025-01-01T00:00Z = 01:00 Berlin; first run 02:00 Berlin = 01:00Z.
        let v = |now: &str| scheduled_backup_values(&b, None, None, ts(now), HOUR).overdue;
        assert_eq!(v("2025-01-01T01:59:00Z"), Some(false));
        assert_eq!(v("2025-01-01T02:00:00Z"), Some(true));
    }

    #[test]
    fn scrape_exposes_every_family_with_types_and_exact_labels() {
        let mut f = Fixture::new();
        f.sbs.apply_watcher_event(&Event::Apply(sb(
            "team-a",
            "db",
            "backup",
            json!({"enabled": true, "scheduleEvery": "0 2 * * *"}),
            json!({"lastSuccessfulTime": "2025-01-09T02:03:00Z"}),
        )));
        f.jobs.apply_watcher_event(&Event::Apply(job(
            "team-a",
            "j1",
            "db",
            "backup",
            "Failed",
            "2025-01-10T02:00:00Z",
            "2025-01-10T02:00:20Z",
        )));
        f.rbas.apply_watcher_event(&Event::Apply(rba(
            "team-a",
            "r1",
            "backup",
            Some("Running"),
        )));
        f.rbas.apply_watcher_event(&Event::Apply(rba(
            "team-a",
            "r2",
            "restore",
            Some("Succeeded"),
        )));
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-01-10T12:00:00Z"),
        ));
        let e = scrape();
        let l = [
            ("namespace", "team-a"),
            ("scheduledbackup", "db"),
            ("operation", "backup"),
        ];
        assert_eq!(
            e.value(LAST_SUCCESS, &l),
            Some(seconds(ts("2025-01-09T02:03:00Z")))
        );
        assert_eq!(
            e.value(LAST_FAILURE, &l),
            Some(seconds(ts("2025-01-10T02:00:20Z")))
        );
        assert_eq!(e.value(LAST_DURATION, &l), Some(20.0));
        assert_eq!(e.value(READY, &l), Some(0.0));
        assert_eq!(
            e.value(NEXT_SCHEDULED, &l),
            Some(seconds(ts("2025-01-11T02:00:00Z")))
        );
        assert_eq!(e.value(OVERDUE, &l), Some(1.0));
        assert_eq!(
            e.value(ACTIONS_RUNNING, &[("namespace", "team-a")]),
            Some(1.0)
        );
        let a = |action: &str, result: &str| {
            e.value(
                ACTIONS_TOTAL,
                &[
                    ("namespace", "team-a"),
                    ("action", action),
                    ("result", result),
                ],
            )
        };
        assert_eq!(a("restore", "succeeded"), Some(1.0));
        assert_eq!(a("restore", "failed"), Some(0.0));
        assert_eq!(a("backup", "failed"), Some(0.0));
        for name in FAMILIES.iter().filter(|n| **n != LAST_SCHEDULE) {
            let expected = if *name == ACTIONS_TOTAL {
                "counter"
            } else {
                "gauge"
            };
            assert_eq!(e.type_of(name), Some(expected), "{name}");
            assert!(e.help.contains_key(*name), "HELP of {name}");
        }
        for s in &e.samples {
            let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
            let expected: &[&str] = match s.name.as_str() {
                ACTIONS_TOTAL => &["action", "namespace", "result"],
                ACTIONS_RUNNING => &["namespace"],
                EXPORTER_READY => &[],
                _ => &["namespace", "operation", "scheduledbackup"],
            };
            assert_eq!(keys, expected, "labels of {}", s.name);
        }
    }

    #[test]
    fn series_disappear_when_the_scheduled_backup_is_deleted() {
        let mut f = Fixture::new();
        let a = sb(
            "n",
            "a",
            "backup",
            json!({"enabled": true, "scheduleEvery": "@daily"}),
            json!({}),
        );
        let b = sb("n", "b", "restore", json!({}), json!({}));
        f.sbs.apply_watcher_event(&Event::Apply(a.clone()));
        f.sbs.apply_watcher_event(&Event::Apply(b));
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-01-10T12:00:00Z"),
        ));
        assert_eq!(scrape().series(READY).count(), 2);
        f.sbs.apply_watcher_event(&Event::Delete(a));
        let e = scrape();
        assert_eq!(e.series(READY).count(), 1);
        assert_eq!(e.value(READY, &[("scheduledbackup", "a")]), None);
        assert_eq!(e.value(NEXT_SCHEDULED, &[("scheduledbackup", "a")]), None);
        assert_eq!(
            e.value(READY, &[("scheduledbackup", "b"), ("operation", "restore")]),
            Some(0.0)
        );
    }

    #[test]
    fn empty_stores_expose_only_the_readiness_gauge() {
        let f = Fixture::new();
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-01-10T12:00:00Z"),
        ));
        let e = scrape();
        let names: Vec<&str> = e.samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [EXPORTER_READY]);
    }

    #[test]
    fn the_readiness_gauge_is_one_once_every_watch_cache_has_its_initial_list() {
        let mut f = Fixture::new();
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-01-10T12:00:00Z"),
        ));
        assert_eq!(scrape().value(EXPORTER_READY, &[]), Some(0.0));
        f.sbs.apply_watcher_event(&Event::InitDone);
        f.rbas.apply_watcher_event(&Event::InitDone);
        f.jobs.apply_watcher_event(&Event::InitDone);
        assert_eq!(
            scrape().value(EXPORTER_READY, &[]),
            Some(0.0),
            "the CronJob cache has not listed yet"
        );
        f.cron_jobs.apply_watcher_event(&Event::InitDone);
        assert_eq!(scrape().value(EXPORTER_READY, &[]), Some(1.0));
        assert_eq!(scrape().type_of(EXPORTER_READY), Some("gauge"));
    }

    #[test]
    fn an_action_finished_before_its_first_scrape_is_counted_one_scrape_after_its_series_appear_at_zero()
     {
        let mut f = Fixture::new();
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-01-10T12:00:00Z"),
        ));
        let failed = |e: &Exposition, ns: &str| {
            e.value(
                ACTIONS_TOTAL,
                &[
                    ("namespace", ns),
                    ("action", "restore"),
                    ("result", "failed"),
                ],
            )
        };
        // The exporter starts with an old failed action: the first scrape after the sync counts it at once.
        f.rbas.apply_watcher_event(&Event::Init);
        f.rbas.apply_watcher_event(&Event::InitApply(rba(
            "old",
            "r0",
            "restore",
            Some("Failed"),
        )));
        f.rbas.apply_watcher_event(&Event::InitDone);
        assert_eq!(failed(&scrape(), "old"), Some(1.0));
        // Later, a namespace's first restore fails before the next scrape: 0 first, then 1, so that
        // increase() (and BackupActionFailed) sees the failure.
        f.rbas
            .apply_watcher_event(&Event::Apply(rba("n", "r1", "restore", Some("Failed"))));
        assert_eq!(failed(&scrape(), "n"), Some(0.0));
        assert_eq!(failed(&scrape(), "n"), Some(1.0));
        assert_eq!(failed(&scrape(), "n"), Some(1.0));
        // Once the series exist, a new failure counts at the scrape that sees it.
        f.rbas
            .apply_watcher_event(&Event::Apply(rba("n", "r2", "restore", Some("Failed"))));
        assert_eq!(failed(&scrape(), "n"), Some(2.0));
    }

    #[test]
    fn finished_actions_are_counted_once_and_deletion_does_not_decrement() {
        let mut f = Fixture::new();
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-01-10T12:00:00Z"),
        ));
        let total = |e: &Exposition, result: &str| {
            e.value(
                ACTIONS_TOTAL,
                &[("namespace", "n"), ("action", "backup"), ("result", result)],
            )
        };
        f.rbas
            .apply_watcher_event(&Event::Apply(rba("n", "r1", "backup", Some("Pending"))));
        let e = scrape();
        assert_eq!(
            (total(&e, "succeeded"), total(&e, "failed")),
            (Some(0.0), Some(0.0))
        );
        f.rbas
            .apply_watcher_event(&Event::Apply(rba("n", "r1", "backup", Some("Running"))));
        assert_eq!(
            scrape().value(ACTIONS_RUNNING, &[("namespace", "n")]),
            Some(1.0)
        );
        f.rbas
            .apply_watcher_event(&Event::Apply(rba("n", "r1", "backup", Some("Failed"))));
        let e = scrape();
        assert_eq!(total(&e, "failed"), Some(1.0));
        assert_eq!(e.value(ACTIONS_RUNNING, &[("namespace", "n")]), Some(0.0));
        // Scraping again does not count the same action twice.
        assert_eq!(total(&scrape(), "failed"), Some(1.0));
        f.rbas
            .apply_watcher_event(&Event::Delete(rba("n", "r1", "backup", Some("Failed"))));
        let e = scrape();
        assert_eq!(total(&e, "failed"), Some(1.0));
        assert_eq!(e.value(ACTIONS_RUNNING, &[("namespace", "n")]), None);
    }
}
