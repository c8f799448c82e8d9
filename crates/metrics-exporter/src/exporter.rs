//! The backup-health exporter: per-ScheduledBackup, per-collection and per-action series computed at scrape
//! time from the watch caches.
//!
//! A custom [`prometheus::core::Collector`] reads the caches on every scrape, so series appear and
//! disappear with their objects (a deleted ScheduledBackup leaves no stale gauge behind) and the
//! computed values (next run, overdue) are always relative to the scrape time. ScheduledBackups are
//! cached whole (a scrape renders each of them); Jobs, CronJobs and RequestedBackupActions only as the
//! small aggregates of [`crate::projection`], kept current from their watch events, so a scrape costs
//! O(ScheduledBackups + collections + namespaces) and never scans or clones the Jobs or actions. The
//! exporter only lists and watches: it makes no API writes at all.

use crate::projection::{
    Actions, CronJobInfo, CronJobs, Fold, JobRuns, JobSummary, Projection, SpecIndex, max_opt,
};
use crd_types::constants::{condition_types, labels};
use crd_types::schedule::{self, OverdueAfter, Schedule};
use crd_types::{Operation, RequestedBackupAction, ScheduledBackup};
use futures::FutureExt as _;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGaugeVec, Opts};
use std::collections::BTreeMap;
use std::sync::Arc;

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
/// `backup_maker_last_successful_restore_timestamp_seconds{namespace,collection_id}`.
pub const LAST_RESTORE: &str = "backup_maker_last_successful_restore_timestamp_seconds";
/// `backup_maker_restore_drill_overdue{namespace,collection_id}`.
pub const DRILL_OVERDUE: &str = "backup_maker_restore_drill_overdue";
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
    LAST_RESTORE,
    DRILL_OVERDUE,
    ACTIONS_TOTAL,
    ACTIONS_RUNNING,
    EXPORTER_READY,
];

const SB_LABELS: &[&str] = &["namespace", "scheduledbackup", "operation"];
const COLLECTION_LABELS: &[&str] = &["namespace", "collection_id"];

pub use crate::projection::{FinishedJob, finished_job};

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

/// The effective schedule (`schedule`: [`crate::projection::effective_schedule`] of `sb`) and overdue rule of a
/// ScheduledBackup that runs on a schedule: `None` when its CronJob is disabled, suspended (on the SB or on the
/// CronJob) or its schedule or `overdueAfter` invalid. The same crd-types code as the scheduled-controller's
/// `Overdue` condition; `grace` is the default rule's grace.
pub fn active_schedule<'a>(
    sb: &ScheduledBackup,
    schedule: Option<&'a Schedule>,
    cron_job: Option<&CronJobInfo>,
    grace: SignedDuration,
) -> Option<(&'a Schedule, OverdueAfter)> {
    let cron = &sb.spec.cron_job;
    let suspended = cron.suspend == Some(true) || cron_job.is_some_and(|c| c.suspended);
    if !cron.enabled || suspended {
        return None;
    }
    schedule.zip(cron.overdue_after(grace).ok())
}

fn created(sb: &ScheduledBackup) -> Timestamp {
    sb.metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::MIN, |t| t.0)
}

/// Computes the exported values of one ScheduledBackup from its status, its parsed effective schedule, its Jobs'
/// summary and its CronJob (if the scheduled-controller created one).
pub fn scheduled_backup_values(
    sb: &ScheduledBackup,
    schedule: Option<&Schedule>,
    jobs: Option<&JobSummary>,
    cron_job: Option<&CronJobInfo>,
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
    let last_schedule = max_opt(
        status
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0),
        cron_job.and_then(|c| c.last_schedule),
    );
    let (next_scheduled, overdue) = match active_schedule(sb, schedule, cron_job, grace) {
        Some((s, policy)) => (
            s.next_after(now),
            Some(schedule::is_overdue_at(
                s,
                policy,
                last_success,
                created(sb),
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

/// Per collection (`namespace`, `collection_id`): the latest successful restore and whether a restore drill
/// is overdue.
#[derive(Default)]
struct CollectionState {
    last_restore: Option<Timestamp>,
    /// `(schedule, rule, created)` of every scheduled restore ScheduledBackup (drill) of the collection.
    drills: Vec<(Schedule, OverdueAfter, Timestamp)>,
}

impl CollectionState {
    /// 1 when some drill of the collection has had no successful restore of it within its allowed time; `None`
    /// without a scheduled drill.
    fn drill_overdue(&self, now: Timestamp) -> Option<bool> {
        (!self.drills.is_empty()).then(|| {
            self.drills.iter().any(|(s, policy, created)| {
                schedule::is_overdue_at(s, *policy, self.last_restore, *created, now)
            })
        })
    }
}

/// Source of "now"; tests pin it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The caches the collector reads: ScheduledBackups whole, everything else as [`crate::projection`] aggregates.
#[derive(Clone)]
pub struct Stores {
    /// ScheduledBackups.
    pub scheduled_backups: Store<ScheduledBackup>,
    /// The collection id and parsed schedule of each ScheduledBackup (from the same watch).
    pub specs: Arc<Projection<SpecIndex>>,
    /// RequestedBackupActions.
    pub actions: Arc<Projection<Actions>>,
    /// Finished Jobs labelled `riotkit.org/scheduled-backup`.
    pub jobs: Arc<Projection<JobRuns>>,
    /// CronJobs labelled `riotkit.org/scheduled-backup`.
    pub cron_jobs: Arc<Projection<CronJobs>>,
}

/// [`Stores`] fed by hand with watch events, as [`run`]'s watches feed them (tests and benches).
pub struct Feed {
    scheduled_backups: Writer<ScheduledBackup>,
    stores: Stores,
}

impl Default for Feed {
    fn default() -> Self {
        let scheduled_backups = Writer::default();
        let stores = Stores {
            scheduled_backups: scheduled_backups.as_reader(),
            specs: Default::default(),
            actions: Default::default(),
            jobs: Default::default(),
            cron_jobs: Default::default(),
        };
        Self {
            scheduled_backups,
            stores,
        }
    }
}

impl Feed {
    /// The stores this feed writes.
    pub fn stores(&self) -> Stores {
        self.stores.clone()
    }

    /// A ScheduledBackup watch event.
    pub fn scheduled_backup(&mut self, event: Event<ScheduledBackup>) {
        self.stores.specs.observe(&event);
        self.scheduled_backups.apply_watcher_event(&event);
    }

    /// A RequestedBackupAction watch event.
    pub fn action(&self, event: Event<RequestedBackupAction>) {
        self.stores.actions.observe(&event);
    }

    /// A Job watch event.
    pub fn job(&self, event: Event<Job>) {
        self.stores.jobs.observe(&event);
    }

    /// A CronJob watch event.
    pub fn cron_job(&self, event: Event<CronJob>) {
        self.stores.cron_jobs.observe(&event);
    }
}

/// The scrape-time collector of every backup-health family.
pub struct BackupCollector {
    stores: Stores,
    grace: SignedDuration,
    clock: Clock,
    descs: Vec<Desc>,
    actions_total: IntCounterVec,
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

fn collection_gauges() -> [GaugeVec; 2] {
    [
        gauge_vec(
            LAST_RESTORE,
            "Unix time of the latest successful restore of the collection (restore ScheduledBackup runs or restore RequestedBackupActions).",
            COLLECTION_LABELS,
        ),
        gauge_vec(
            DRILL_OVERDUE,
            "1 when a scheduled restore drill of the collection has had no successful restore within its allowed time.",
            COLLECTION_LABELS,
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
        descs.extend(
            collection_gauges()
                .iter()
                .flat_map(|g| g.desc().into_iter().cloned()),
        );
        descs.extend(actions_total.desc().into_iter().cloned());
        descs.extend(running_gauge().desc().into_iter().cloned());
        descs.extend(exporter_ready_gauge().desc().into_iter().cloned());
        Self {
            stores,
            grace,
            clock,
            descs,
            actions_total,
        }
    }

    /// Whether every cache has its initial list.
    fn synced(&self) -> bool {
        let s = &self.stores;
        s.scheduled_backups
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok())
            && s.specs.is_ready()
            && s.actions.is_ready()
            && s.jobs.is_ready()
            && s.cron_jobs.is_ready()
    }

    /// The per-ScheduledBackup gauges, and per collection its latest restore and drills.
    fn collect_scheduled_backups(
        &self,
        now: Timestamp,
        gauges: &[(&'static str, GaugeVec)],
    ) -> BTreeMap<(String, String), CollectionState> {
        let jobs = self.stores.jobs.lock();
        let cron_jobs = self.stores.cron_jobs.lock();
        let specs = self.stores.specs.lock();
        let actions = self.stores.actions.lock();
        let mut by_collection: BTreeMap<(String, String), CollectionState> = BTreeMap::new();
        for sb in self.stores.scheduled_backups.state() {
            let op = sb.spec.operation;
            let key = (
                sb.namespace().unwrap_or_default(),
                sb.name_any(),
                op.as_str().to_owned(),
            );
            let cron_job = cron_jobs.get(&key);
            let derived = specs.get(&(key.0.clone(), key.1.clone()));
            let schedule = derived.and_then(|d| d.schedule.as_ref());
            let v = scheduled_backup_values(
                &sb,
                schedule,
                jobs.summary(&key),
                cron_job,
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
            let (ns, name, _) = key;
            let Some(collection) = derived.and_then(|d| d.collection.as_deref()) else {
                continue;
            };
            // A restore of this SB's collection: a run of a restore SB (its status or its Jobs), or a restore
            // started by an action from any SB of the collection (its Job, or the action itself once the Job is
            // gone or when a Workflow ran it).
            let restore_job = (
                ns.clone(),
                name.clone(),
                Operation::Restore.as_str().to_owned(),
            );
            let restored = [
                (op == Operation::Restore)
                    .then_some(v.last_success)
                    .flatten(),
                jobs.summary(&restore_job).and_then(|s| s.last_success),
                actions.last_restore(&ns, &name),
            ]
            .into_iter()
            .fold(None, max_opt);
            let state = by_collection
                .entry((ns, collection.to_owned()))
                .or_default();
            state.last_restore = max_opt(state.last_restore, restored);
            if op == Operation::Restore
                && let Some((s, policy)) = active_schedule(&sb, schedule, cron_job, self.grace)
            {
                state.drills.push((s.clone(), policy, created(&sb)));
            }
        }
        by_collection
    }

    fn collect_actions(&self) -> IntGaugeVec {
        let running = running_gauge();
        let mut actions = self.stores.actions.lock();
        actions.count(&self.actions_total, self.stores.actions.is_ready());
        for (ns, n) in actions.running() {
            running.with_label_values(&[ns]).set(n);
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
        let gauges = sb_gauges();
        let collections = self.collect_scheduled_backups(now, &gauges);
        let [last_restore, drill_overdue] = collection_gauges();
        for ((ns, collection), state) in &collections {
            let l = [ns.as_str(), collection.as_str()];
            if let Some(t) = state.last_restore {
                last_restore.with_label_values(&l).set(seconds(t));
            }
            if let Some(overdue) = state.drill_overdue(now) {
                drill_overdue
                    .with_label_values(&l)
                    .set(if overdue { 1.0 } else { 0.0 });
            }
        }
        let running = self.collect_actions();
        let mut out: Vec<MetricFamily> = gauges.iter().flat_map(|(_, g)| g.collect()).collect();
        out.extend(last_restore.collect());
        out.extend(drill_overdue.collect());
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
    /// `--shard-selector`: only this shard's ScheduledBackups, actions, Jobs and CronJobs (all carry the label).
    pub shard: controller_runtime::shard::Shard,
}

/// Folds the events of a watch of `api` (on the shared watch plumbing: restarts after an outage, readiness) into
/// `projection`, in a task. The objects themselves are dropped once folded.
fn spawn_projection<K, F>(
    api: kube::Api<K>,
    config: kube::runtime::watcher::Config,
    watches: &Arc<controller_runtime::cache::Watches>,
    projection: Arc<Projection<F>>,
) -> tokio::task::JoinHandle<()>
where
    K: controller_runtime::cache::Watched,
    F: Fold<K> + 'static,
{
    use futures::StreamExt;
    let events = controller_runtime::cache::restarting_watch(api, config, watches);
    tokio::spawn(events.for_each(move |event| {
        if let Ok(event) = event {
            projection.observe(&event);
        }
        std::future::ready(())
    }))
}

/// Runs the exporter until `shutdown` resolves: starts read-only watches of ScheduledBackups,
/// RequestedBackupActions, and the CronJobs and Jobs labelled `riotkit.org/scheduled-backup`,
/// registers the [`BackupCollector`] in `config.registry`, and marks the process ready once every
/// cache holds its initial list. It never writes to the API.
pub async fn run(
    client: kube::Client,
    config: ExporterConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use controller_runtime::cache::{cached_with, scoped_api};
    use futures::StreamExt;
    let ns = config.namespace.as_deref();
    let all = kube::runtime::watcher::Config::default();
    // Only Jobs and CronJobs our controllers made: keeps the watches small in busy clusters.
    let ours = config
        .shard
        .watch(all.clone().labels(labels::SCHEDULED_BACKUP));
    // `--shard-selector` (after `labels`, which replaces a selector): every kind here carries the shard label.
    let all = config.shard.watch(all);
    // Readiness follows the watches (false while one is re-listing after a failure or an outage).
    let watches =
        controller_runtime::cache::Watches::new(client.clone(), config.health.clone(), None);
    let specs = Arc::new(Projection::<SpecIndex>::default());
    let observer = specs.clone();
    let (scheduled_backups, sb_events) = cached_with(
        scoped_api::<ScheduledBackup>(&client, ns),
        all.clone(),
        &watches,
        move |event| observer.observe(event),
    );
    let stores = Stores {
        scheduled_backups,
        specs,
        actions: Default::default(),
        jobs: Default::default(),
        cron_jobs: Default::default(),
    };
    let tasks = [
        tokio::spawn(sb_events.for_each(|_| std::future::ready(()))),
        spawn_projection(
            scoped_api::<RequestedBackupAction>(&client, ns),
            all,
            &watches,
            stores.actions.clone(),
        ),
        spawn_projection(
            scoped_api::<Job>(&client, ns),
            ours.clone(),
            &watches,
            stores.jobs.clone(),
        ),
        spawn_projection(
            scoped_api::<CronJob>(&client, ns),
            ours,
            &watches,
            stores.cron_jobs.clone(),
        ),
    ];
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
            stores.specs.wait_until_ready(),
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
    use kube::runtime::watcher::Event;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::Mutex;

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

    fn in_collection(mut sb: ScheduledBackup, collection: &str) -> ScheduledBackup {
        sb.spec.collection_id = Some(collection.to_owned());
        sb
    }

    fn rba(ns: &str, name: &str, action: &str, phase: Option<&str>) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}")},
            "spec": {"action": action, "scheduledBackupRef": {"name": "db"}},
            "status": match phase {
                Some("Succeeded") => json!({"phase": "Succeeded", "completionTime": "2025-01-10T03:00:00Z"}),
                Some(p) => json!({"phase": p}),
                None => json!({}),
            },
        }))
        .unwrap()
    }

    /// Summaries of `jobs` as the Job projection files them.
    fn summarize_jobs(jobs: &[Job]) -> HashMap<(String, String, String), JobSummary> {
        let mut runs = JobRuns::default();
        for j in jobs {
            runs.apply((j.namespace().unwrap(), j.name_any()), j);
        }
        jobs.iter()
            .filter_map(|j| {
                let l = j.labels();
                let key = (
                    j.namespace().unwrap(),
                    l[labels::SCHEDULED_BACKUP].clone(),
                    l[labels::OPERATION].clone(),
                );
                runs.summary(&key).map(|s| (key, *s))
            })
            .collect()
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

    /// [`scheduled_backup_values`] with the schedule parsed as the spec index parses it.
    fn values(
        sb: &ScheduledBackup,
        jobs: Option<&JobSummary>,
        cron_job: Option<&CronJobInfo>,
        now: Timestamp,
        grace: SignedDuration,
    ) -> ScheduledBackupValues {
        let schedule = crate::projection::effective_schedule(sb);
        scheduled_backup_values(sb, schedule.as_ref(), jobs, cron_job, now, grace)
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
        let v = values(
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
            let v = values(
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
        let v = values(&b, None, None, ts("2025-01-10T12:00:00Z"), HOUR);
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
        let v = |now: Timestamp| values(&b, None, None, now, HOUR).overdue;
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
        let v = values(
            &b,
            None,
            Some(&CronJobInfo::of(&cj)),
            ts("2025-01-10T12:00:00Z"),
            HOUR,
        );
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
        let v = |now: &str| values(&b, None, None, ts(now), HOUR).overdue;
        assert_eq!(v("2025-01-01T01:59:00Z"), Some(false));
        assert_eq!(v("2025-01-01T02:00:00Z"), Some(true));
    }

    #[test]
    fn scrape_exposes_every_family_with_types_and_exact_labels() {
        let mut f = Feed::default();
        f.scheduled_backup(Event::Apply(in_collection(
            sb(
                "team-a",
                "db",
                "backup",
                json!({"enabled": true, "scheduleEvery": "0 2 * * *"}),
                json!({"lastSuccessfulTime": "2025-01-09T02:03:00Z"}),
            ),
            "c1",
        )));
        f.scheduled_backup(Event::Apply(in_collection(
            sb(
                "team-a",
                "db-drill",
                "restore",
                json!({"enabled": true, "scheduleEvery": "0 4 * * 0"}),
                json!({}),
            ),
            "c1",
        )));
        f.job(Event::Apply(job(
            "team-a",
            "j1",
            "db",
            "backup",
            "Failed",
            "2025-01-10T02:00:00Z",
            "2025-01-10T02:00:20Z",
        )));
        f.action(Event::Apply(rba("team-a", "r1", "backup", Some("Running"))));
        f.action(Event::Apply(rba(
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
        assert_eq!(
            e.value(
                LAST_RESTORE,
                &[("namespace", "team-a"), ("collection_id", "c1")]
            ),
            Some(seconds(ts("2025-01-10T03:00:00Z"))),
            "the restore action of db restored db's collection"
        );
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
                LAST_RESTORE | DRILL_OVERDUE => &["collection_id", "namespace"],
                _ => &["namespace", "operation", "scheduledbackup"],
            };
            assert_eq!(keys, expected, "labels of {}", s.name);
        }
    }

    #[test]
    fn series_disappear_when_the_scheduled_backup_is_deleted() {
        let mut f = Feed::default();
        let a = sb(
            "n",
            "a",
            "backup",
            json!({"enabled": true, "scheduleEvery": "@daily"}),
            json!({}),
        );
        let b = sb("n", "b", "restore", json!({}), json!({}));
        f.scheduled_backup(Event::Apply(a.clone()));
        f.scheduled_backup(Event::Apply(b));
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-01-10T12:00:00Z"),
        ));
        assert_eq!(scrape().series(READY).count(), 2);
        f.scheduled_backup(Event::Delete(a));
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
        let f = Feed::default();
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
        let mut f = Feed::default();
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-01-10T12:00:00Z"),
        ));
        assert_eq!(scrape().value(EXPORTER_READY, &[]), Some(0.0));
        f.scheduled_backup(Event::InitDone);
        f.action(Event::InitDone);
        f.job(Event::InitDone);
        assert_eq!(
            scrape().value(EXPORTER_READY, &[]),
            Some(0.0),
            "the CronJob cache has not listed yet"
        );
        f.cron_job(Event::InitDone);
        assert_eq!(scrape().value(EXPORTER_READY, &[]), Some(1.0));
        assert_eq!(scrape().type_of(EXPORTER_READY), Some("gauge"));
    }

    #[test]
    fn an_action_finished_before_its_first_scrape_is_counted_one_scrape_after_its_series_appear_at_zero()
     {
        let f = Feed::default();
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
        f.action(Event::Init);
        f.action(Event::InitApply(rba(
            "old",
            "r0",
            "restore",
            Some("Failed"),
        )));
        f.action(Event::InitDone);
        assert_eq!(failed(&scrape(), "old"), Some(1.0));
        // Later, a namespace's first restore fails before the next scrape: 0 first, then 1, so that
        // increase() (and BackupActionFailed) sees the failure.
        f.action(Event::Apply(rba("n", "r1", "restore", Some("Failed"))));
        assert_eq!(failed(&scrape(), "n"), Some(0.0));
        assert_eq!(failed(&scrape(), "n"), Some(1.0));
        assert_eq!(failed(&scrape(), "n"), Some(1.0));
        // Once the series exist, a new failure counts at the scrape that sees it.
        f.action(Event::Apply(rba("n", "r2", "restore", Some("Failed"))));
        assert_eq!(failed(&scrape(), "n"), Some(2.0));
    }

    #[test]
    fn finished_actions_are_counted_once_and_deletion_does_not_decrement() {
        let f = Feed::default();
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
        f.action(Event::Apply(rba("n", "r1", "backup", Some("Pending"))));
        let e = scrape();
        assert_eq!(
            (total(&e, "succeeded"), total(&e, "failed")),
            (Some(0.0), Some(0.0))
        );
        f.action(Event::Apply(rba("n", "r1", "backup", Some("Running"))));
        assert_eq!(
            scrape().value(ACTIONS_RUNNING, &[("namespace", "n")]),
            Some(1.0)
        );
        f.action(Event::Apply(rba("n", "r1", "backup", Some("Failed"))));
        let e = scrape();
        assert_eq!(total(&e, "failed"), Some(1.0));
        assert_eq!(e.value(ACTIONS_RUNNING, &[("namespace", "n")]), Some(0.0));
        // Scraping again does not count the same action twice.
        assert_eq!(total(&scrape(), "failed"), Some(1.0));
        f.action(Event::Delete(rba("n", "r1", "backup", Some("Failed"))));
        let e = scrape();
        assert_eq!(total(&e, "failed"), Some(1.0));
        assert_eq!(e.value(ACTIONS_RUNNING, &[("namespace", "n")]), None);
    }

    fn restore_job(ns: &str, name: &str, sb: &str, outcome: &str, end: &str) -> Job {
        job(
            ns,
            name,
            sb,
            "restore",
            outcome,
            "2025-01-01T00:00:00Z",
            end,
        )
    }

    fn restore_action(
        ns: &str,
        name: &str,
        sb: &str,
        phase: &str,
        done: &str,
    ) -> RequestedBackupAction {
        let mut a = rba(ns, name, "restore", Some(phase));
        a.spec.scheduled_backup_ref.name = sb.to_owned();
        a.status.as_mut().unwrap().completion_time = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(done)),
        );
        a
    }

    #[test]
    fn the_last_restore_of_a_collection_is_the_newest_of_its_restore_runs_and_restore_actions() {
        let mut f = Feed::default();
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-02-01T00:00:00Z"),
        ));
        let last =
            |ns: &str| scrape().value(LAST_RESTORE, &[("namespace", ns), ("collection_id", "c1")]);
        // The nightly backup and its weekly drill share collection c1 (the backup through spec.vars).
        let mut backup = sb(
            "n",
            "db",
            "backup",
            json!({"enabled": true, "scheduleEvery": "0 2 * * *"}),
            json!({"lastSuccessfulTime": "2025-01-31T02:03:00Z"}),
        );
        backup.spec.vars = "Repository: {collectionId: c1}\n".into();
        f.scheduled_backup(Event::Apply(backup));
        assert_eq!(last("n"), None, "a backup is not a restore");
        f.scheduled_backup(Event::Apply(in_collection(
            sb(
                "n",
                "db-drill",
                "restore",
                json!({"enabled": true, "scheduleEvery": "0 4 * * 0"}),
                json!({"lastSuccessfulTime": "2025-01-05T04:10:00Z"}),
            ),
            "c1",
        )));
        assert_eq!(
            last("n"),
            Some(seconds(ts("2025-01-05T04:10:00Z"))),
            "the drill's status"
        );
        // The drill's CronJob Job, newer than its status.
        f.job(Event::Apply(restore_job(
            "n",
            "db-drill-1",
            "db-drill",
            "Complete",
            "2025-01-12T04:09:00Z",
        )));
        assert_eq!(last("n"), Some(seconds(ts("2025-01-12T04:09:00Z"))));
        // Failed restores, a backup action and another namespace's collection of the same id do not count.
        f.job(Event::Apply(restore_job(
            "n",
            "db-drill-2",
            "db-drill",
            "Failed",
            "2025-01-19T04:09:00Z",
        )));
        f.action(Event::Apply(restore_action(
            "n",
            "r-failed",
            "db",
            "Failed",
            "2025-01-20T00:00:00Z",
        )));
        f.action(Event::Apply(rba("n", "b-1", "backup", Some("Succeeded"))));
        f.job(Event::Apply(restore_job(
            "other",
            "x",
            "db",
            "Complete",
            "2025-01-30T00:00:00Z",
        )));
        assert_eq!(last("n"), Some(seconds(ts("2025-01-12T04:09:00Z"))));
        assert_eq!(
            last("other"),
            None,
            "no ScheduledBackup says which collection other/db is"
        );
        // A one-off restore from the backup's ScheduledBackup restores the same collection.
        f.action(Event::Apply(restore_action(
            "n",
            "r-1",
            "db",
            "Succeeded",
            "2025-01-25T10:00:00Z",
        )));
        assert_eq!(last("n"), Some(seconds(ts("2025-01-25T10:00:00Z"))));
        // Its Job, labelled with the backup's ScheduledBackup and operation restore, counts too (a Workflow has none).
        f.job(Event::Apply(restore_job(
            "n",
            "r-2-job",
            "db",
            "Complete",
            "2025-01-26T10:00:00Z",
        )));
        assert_eq!(last("n"), Some(seconds(ts("2025-01-26T10:00:00Z"))));
        // Deleting the evidence falls back to what remains.
        f.job(Event::Delete(restore_job(
            "n",
            "r-2-job",
            "db",
            "Complete",
            "2025-01-26T10:00:00Z",
        )));
        f.action(Event::Delete(restore_action(
            "n",
            "r-1",
            "db",
            "Succeeded",
            "2025-01-25T10:00:00Z",
        )));
        assert_eq!(last("n"), Some(seconds(ts("2025-01-12T04:09:00Z"))));
    }

    #[test]
    fn a_drill_is_overdue_when_its_collection_had_no_restore_within_its_allowed_time() {
        let mut f = Feed::default();
        let now = Arc::new(Mutex::new(ts("2025-01-03T01:59:59Z")));
        let clock = now.clone();
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            Arc::new(move || *clock.lock().unwrap()),
        ));
        let at = |t: &str| {
            *now.lock().unwrap() = ts(t);
            scrape().value(
                DRILL_OVERDUE,
                &[("namespace", "n"), ("collection_id", "c1")],
            )
        };
        f.scheduled_backup(Event::Apply(in_collection(
            sb(
                "n",
                "db",
                "backup",
                json!({"enabled": true, "scheduleEvery": "0 2 * * *"}),
                json!({}),
            ),
            "c1",
        )));
        assert_eq!(
            at("2025-01-10T00:00:00Z"),
            None,
            "no drill, no drill series"
        );
        // Created 2025-01-01T00:00Z, allowed 50h: never restored, it is overdue from 2025-01-03T02:00Z.
        let drill = in_collection(
            sb(
                "n",
                "db-drill",
                "restore",
                json!({"enabled": true, "scheduleEvery": "0 4 * * 0", "overdueAfter": "50h"}),
                json!({}),
            ),
            "c1",
        );
        f.scheduled_backup(Event::Apply(drill.clone()));
        assert_eq!(at("2025-01-03T01:59:59Z"), Some(0.0));
        assert_eq!(at("2025-01-03T02:00:00Z"), Some(1.0));
        // A successful one-off restore of the collection (from the backup's ScheduledBackup) satisfies the drill
        // for another 50h.
        f.action(Event::Apply(restore_action(
            "n",
            "r-1",
            "db",
            "Succeeded",
            "2025-01-04T00:00:00Z",
        )));
        assert_eq!(at("2025-01-06T01:59:59Z"), Some(0.0));
        assert_eq!(at("2025-01-06T02:00:00Z"), Some(1.0));
        // A suspended drill is not watched.
        let mut suspended = drill.clone();
        suspended.spec.cron_job.suspend = Some(true);
        f.scheduled_backup(Event::Apply(suspended));
        assert_eq!(at("2025-01-06T02:00:00Z"), None);
        // Nor one whose CronJob is suspended.
        f.scheduled_backup(Event::Apply(drill));
        f.cron_job(Event::Apply(
            serde_json::from_value(json!({
                "metadata": {"name": "db-drill-restore", "namespace": "n",
                             "labels": {labels::SCHEDULED_BACKUP: "db-drill", labels::OPERATION: "restore"}},
                "spec": {"schedule": "0 4 * * 0", "suspend": true, "jobTemplate": {}},
            }))
            .unwrap(),
        ));
        assert_eq!(at("2025-01-06T02:00:00Z"), None);
    }

    #[test]
    fn a_scheduled_backup_without_a_collection_id_in_its_spec_has_no_collection_series() {
        let mut f = Feed::default();
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-02-01T00:00:00Z"),
        ));
        // Its collection id may come from the vars Secret, which never reaches a label.
        f.scheduled_backup(Event::Apply(sb(
            "n",
            "drill",
            "restore",
            json!({"enabled": true, "scheduleEvery": "@weekly"}),
            json!({"lastSuccessfulTime": "2025-01-05T04:10:00Z"}),
        )));
        let e = scrape();
        assert_eq!(e.series(LAST_RESTORE).count(), 0);
        assert_eq!(e.series(DRILL_OVERDUE).count(), 0);
        assert_eq!(e.series(OVERDUE).count(), 1, "its own series stay");
    }

    #[test]
    fn a_changed_schedule_is_parsed_again_and_a_deleted_scheduled_backup_forgotten() {
        let mut f = Feed::default();
        let (_r, scrape) = scrape(BackupCollector::with_clock(
            f.stores(),
            HOUR,
            fixed("2025-01-10T12:00:00Z"),
        ));
        let next = || scrape().value(NEXT_SCHEDULED, &[("scheduledbackup", "db")]);
        let at = |schedule: &str| {
            sb(
                "n",
                "db",
                "backup",
                json!({"enabled": true, "scheduleEvery": schedule}),
                json!({}),
            )
        };
        f.scheduled_backup(Event::Apply(at("0 2 * * *")));
        assert_eq!(next(), Some(seconds(ts("2025-01-11T02:00:00Z"))));
        f.scheduled_backup(Event::Apply(at("0 13 * * *")));
        assert_eq!(next(), Some(seconds(ts("2025-01-10T13:00:00Z"))));
        f.scheduled_backup(Event::Delete(at("0 13 * * *")));
        assert_eq!(next(), None);
        assert!(
            f.stores()
                .specs
                .lock()
                .get(&("n".into(), "db".into()))
                .is_none()
        );
    }
}
