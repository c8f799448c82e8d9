//! What the exporter keeps of the objects it watches besides ScheduledBackups: a few fields per Job, CronJob and
//! RequestedBackupAction, folded from the watch events into small aggregates keyed by ScheduledBackup. A scrape
//! looks each ScheduledBackup up in them (O(1)) instead of cloning and scanning whole stores, and no Job,
//! CronJob or action object stays in memory: a CronJob carries a whole Pod template, and a failed action's
//! conditions carry the failed container's output.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crd_types::constants::labels;
use crd_types::schedule::Schedule;
use crd_types::{ActionPhase, Operation, RequestedBackupAction, ScheduledBackup};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use prometheus::IntCounterVec;

/// `(namespace, name)` of a watched object.
pub type ObjKey = (String, String);

/// `(namespace, ScheduledBackup name, operation)`: what the Jobs and CronJobs of one ScheduledBackup are
/// filed under (their `riotkit.org/scheduled-backup` and `riotkit.org/operation` labels).
pub type SbKey = (String, String, String);

fn obj_key<K: kube::Resource>(object: &K) -> ObjKey {
    let meta = object.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn sb_key<K: kube::Resource>(object: &K) -> Option<SbKey> {
    let labels = object.meta().labels.as_ref()?;
    let (sb, op) = (
        labels.get(labels::SCHEDULED_BACKUP)?,
        labels.get(labels::OPERATION)?,
    );
    Some((
        object.meta().namespace.clone().unwrap_or_default(),
        sb.clone(),
        op.clone(),
    ))
}

/// A fold of the objects of kind `K` into what the exporter reads of them.
pub trait Fold<K>: Default + Send {
    /// Files `object` (created or changed) under `key`, replacing what was filed there.
    fn apply(&mut self, key: ObjKey, object: &K);
    /// Forgets the object filed under `key`.
    fn delete(&mut self, key: &ObjKey);
    /// Every key filed (to forget, at the end of a re-list, the objects deleted while the watch was down).
    fn keys(&self) -> Vec<ObjKey>;
}

struct Inner<F> {
    fold: F,
    /// A re-list in progress: the keys it has listed so far.
    relisting: Option<HashSet<ObjKey>>,
}

/// A [`Fold`] kept current from one watch's events, readable by the scrape.
pub struct Projection<F> {
    inner: Mutex<Inner<F>>,
    ready: tokio::sync::watch::Sender<bool>,
}

impl<F: Default> Default for Projection<F> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                fold: F::default(),
                relisting: None,
            }),
            ready: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl<F> Projection<F> {
    /// Follows one watch event.
    pub fn observe<K: kube::Resource>(&self, event: &Event<K>)
    where
        F: Fold<K>,
    {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(object) => inner.fold.apply(obj_key(object), object),
            Event::Delete(object) => inner.fold.delete(&obj_key(object)),
            Event::Init => inner.relisting = Some(HashSet::new()),
            Event::InitApply(object) => {
                let key = obj_key(object);
                if let Some(listed) = &mut inner.relisting {
                    listed.insert(key.clone());
                }
                inner.fold.apply(key, object);
            }
            Event::InitDone => {
                if let Some(listed) = inner.relisting.take() {
                    for gone in inner.fold.keys() {
                        if !listed.contains(&gone) {
                            inner.fold.delete(&gone);
                        }
                    }
                }
                drop(inner);
                self.ready.send_replace(true);
            }
        }
    }

    /// The current fold, locked (the scrape's read: watch events wait meanwhile, so keep it short).
    pub fn lock(&self) -> Locked<'_, F> {
        Locked(self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether the watch has delivered its initial list.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the watch has delivered its initial list.
    pub async fn wait_until_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }
}

/// A locked [`Projection`]'s fold.
pub struct Locked<'a, F>(std::sync::MutexGuard<'a, Inner<F>>);

impl<F> std::ops::Deref for Locked<'_, F> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.0.fold
    }
}

impl<F> std::ops::DerefMut for Locked<'_, F> {
    fn deref_mut(&mut self) -> &mut F {
        &mut self.0.fold
    }
}

// ------------------------------------------------------------------------------------------------
// Jobs
// ------------------------------------------------------------------------------------------------

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

/// What the finished Jobs of one (namespace, ScheduledBackup, operation) say.
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

/// The newer of two optional times.
pub fn max_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Finished Jobs labelled with a ScheduledBackup and operation, summarised per [`SbKey`]. A Job is three
/// fields here; running Jobs and unlabelled ones are not kept at all.
#[derive(Default)]
pub struct JobRuns {
    filed: HashMap<ObjKey, SbKey>,
    runs: HashMap<SbKey, HashMap<String, FinishedJob>>,
    summaries: HashMap<SbKey, JobSummary>,
}

impl JobRuns {
    /// The summary of the Jobs of `key`.
    pub fn summary(&self, key: &SbKey) -> Option<&JobSummary> {
        self.summaries.get(key)
    }

    /// How many finished Jobs are filed.
    pub fn len(&self) -> usize {
        self.filed.len()
    }

    /// Whether no finished Job is filed.
    pub fn is_empty(&self) -> bool {
        self.filed.is_empty()
    }

    /// Recomputes the summary of `key` from its own Jobs only (a handful: the CronJob's history limit plus the
    /// actions' Jobs), never from all Jobs.
    fn resummarize(&mut self, key: &SbKey) {
        match self.runs.get(key) {
            Some(runs) if !runs.is_empty() => {
                let mut summary = JobSummary::default();
                runs.values().for_each(|j| summary.add(*j));
                self.summaries.insert(key.clone(), summary);
            }
            _ => {
                self.runs.remove(key);
                self.summaries.remove(key);
            }
        }
    }
}

impl Fold<Job> for JobRuns {
    fn apply(&mut self, key: ObjKey, job: &Job) {
        self.delete(&key);
        let (Some(sb), Some(done)) = (sb_key(job), finished_job(job)) else {
            return;
        };
        self.runs
            .entry(sb.clone())
            .or_default()
            .insert(key.1.clone(), done);
        self.filed.insert(key, sb.clone());
        self.resummarize(&sb);
    }

    fn delete(&mut self, key: &ObjKey) {
        if let Some(sb) = self.filed.remove(key) {
            if let Some(runs) = self.runs.get_mut(&sb) {
                runs.remove(&key.1);
            }
            self.resummarize(&sb);
        }
    }

    fn keys(&self) -> Vec<ObjKey> {
        self.filed.keys().cloned().collect()
    }
}

// ------------------------------------------------------------------------------------------------
// CronJobs
// ------------------------------------------------------------------------------------------------

/// What the exporter reads of a ScheduledBackup's CronJob.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CronJobInfo {
    /// `spec.suspend`.
    pub suspended: bool,
    /// `status.lastScheduleTime`.
    pub last_schedule: Option<Timestamp>,
}

impl CronJobInfo {
    /// The fields of `cron_job` the exporter reads.
    pub fn of(cron_job: &CronJob) -> Self {
        Self {
            suspended: cron_job.spec.as_ref().and_then(|s| s.suspend) == Some(true),
            last_schedule: cron_job
                .status
                .as_ref()
                .and_then(|s| s.last_schedule_time.as_ref())
                .map(|t| t.0),
        }
    }
}

/// The CronJobs labelled with a ScheduledBackup and operation, by [`SbKey`].
#[derive(Default)]
pub struct CronJobs {
    filed: HashMap<ObjKey, (SbKey, CronJobInfo)>,
    by_sb: HashMap<SbKey, ObjKey>,
}

impl CronJobs {
    /// The CronJob of `key`.
    pub fn get(&self, key: &SbKey) -> Option<&CronJobInfo> {
        self.filed.get(self.by_sb.get(key)?).map(|(_, info)| info)
    }
}

impl Fold<CronJob> for CronJobs {
    fn apply(&mut self, key: ObjKey, cron_job: &CronJob) {
        self.delete(&key);
        if let Some(sb) = sb_key(cron_job) {
            self.by_sb.insert(sb.clone(), key.clone());
            self.filed.insert(key, (sb, CronJobInfo::of(cron_job)));
        }
    }

    fn delete(&mut self, key: &ObjKey) {
        if let Some((sb, _)) = self.filed.remove(key)
            && self.by_sb.get(&sb) == Some(key)
        {
            self.by_sb.remove(&sb);
        }
    }

    fn keys(&self) -> Vec<ObjKey> {
        self.filed.keys().cloned().collect()
    }
}

// ------------------------------------------------------------------------------------------------
// RequestedBackupActions
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ActionRecord {
    uid: String,
    scheduled_backup: String,
    running: bool,
    /// When a restore succeeded (only restores: the only finish time the exporter reports).
    restored: Option<Timestamp>,
}

/// When a successful action finished: `status.completionTime`, else its `Complete` condition's transition.
fn succeeded_at(rba: &RequestedBackupAction) -> Option<Timestamp> {
    let status = rba.status.as_ref()?;
    if status.phase != Some(ActionPhase::Succeeded) {
        return None;
    }
    status.completion_time.as_ref().map(|t| t.0).or_else(|| {
        crd_types::conditions::find(&status.conditions, "Complete")
            .filter(|c| c.status == "True")
            .map(|c| c.last_transition_time.0)
    })
}

/// RequestedBackupActions as the exporter counts them: running ones per namespace, finished ones waiting to be
/// counted in `backup_maker_actions_total`, and the latest successful restore per ScheduledBackup.
#[derive(Default)]
pub struct Actions {
    records: HashMap<ObjKey, ActionRecord>,
    /// Per namespace: actions present, and how many of them run.
    namespaces: BTreeMap<String, (usize, i64)>,
    /// `(namespace, ScheduledBackup)` → its successful restores (action name → finish time).
    restores: HashMap<(String, String), HashMap<String, Timestamp>>,
    /// Every `(namespace, action)` pair ever seen; its counter series exist from the scrape after it was seen.
    kinds: HashSet<(String, Operation)>,
    /// Pairs whose series a scrape has created.
    registered: HashSet<(String, Operation)>,
    /// Finished actions not counted yet, by uid.
    pending: HashMap<String, (String, Operation, &'static str)>,
    /// Finished actions counted, by uid (forgotten when the action is deleted: a uid never comes back).
    counted: HashSet<String>,
    /// The scrape after the initial list has counted the actions that existed before this process.
    seeded: bool,
}

impl Actions {
    /// Latest successful restore of ScheduledBackup `namespace/name` by an action that still exists.
    pub fn last_restore(&self, namespace: &str, name: &str) -> Option<Timestamp> {
        self.restores
            .get(&(namespace.to_owned(), name.to_owned()))?
            .values()
            .copied()
            .max()
    }

    /// `(namespace, running actions)` for every namespace with at least one action.
    pub fn running(&self) -> impl Iterator<Item = (&str, i64)> {
        self.namespaces
            .iter()
            .map(|(ns, (_, running))| (ns.as_str(), *running))
    }

    /// Counts the finished actions in `total` at a scrape; `synced` says whether the initial list is complete.
    ///
    /// Until the cache has synced, and at the first scrape after, every finished action is an old one: it is
    /// counted at once, so that a restart does not look like a burst of new failures. Later, an action of a
    /// `(namespace, action)` pair whose series this scrape creates waits for the next scrape: a series' first
    /// sample is invisible to `increase()`, so its 0 must be exposed first.
    pub fn count(&mut self, total: &IntCounterVec, synced: bool) {
        let seeding = !self.seeded;
        self.seeded = synced;
        let mut fresh = HashSet::new();
        for (ns, action) in &self.kinds {
            if self.registered.insert((ns.clone(), *action)) {
                // Both results at 0 from the first sight, so increase() sees the first failure.
                for result in ["succeeded", "failed"] {
                    total.with_label_values(&[ns, action.as_str(), result]);
                }
                fresh.insert((ns.clone(), *action));
            }
        }
        let counted = &mut self.counted;
        self.pending.retain(|uid, (ns, action, result)| {
            if !seeding && fresh.contains(&(ns.clone(), *action)) {
                return true;
            }
            total
                .with_label_values(&[ns.as_str(), action.as_str(), *result])
                .inc();
            counted.insert(uid.clone());
            false
        });
    }

    /// Removes the record of `key` from the aggregates (not from the counting state).
    fn unfile(&mut self, key: &ObjKey) -> Option<ActionRecord> {
        let record = self.records.remove(key)?;
        if let Some(ns) = self.namespaces.get_mut(&key.0) {
            ns.0 -= 1;
            ns.1 -= i64::from(record.running);
            if ns.0 == 0 {
                self.namespaces.remove(&key.0);
            }
        }
        self.file_restore(key, &record, false);
        Some(record)
    }

    fn file_restore(&mut self, key: &ObjKey, record: &ActionRecord, add: bool) {
        let Some(at) = record.restored else { return };
        let sb = (key.0.clone(), record.scheduled_backup.clone());
        if add {
            self.restores
                .entry(sb)
                .or_default()
                .insert(key.1.clone(), at);
        } else if let Some(by_name) = self.restores.get_mut(&sb) {
            by_name.remove(&key.1);
            if by_name.is_empty() {
                self.restores.remove(&sb);
            }
        }
    }
}

impl Fold<RequestedBackupAction> for Actions {
    fn apply(&mut self, key: ObjKey, rba: &RequestedBackupAction) {
        // An update keeps the uid's counting state: a finished action is counted once.
        self.unfile(&key);
        let phase = rba.status.as_ref().and_then(|s| s.phase);
        let action = rba.spec.action;
        let record = ActionRecord {
            uid: rba.uid().unwrap_or_else(|| format!("{}/{}", key.0, key.1)),
            scheduled_backup: rba.spec.scheduled_backup_ref.name.clone(),
            running: phase == Some(ActionPhase::Running),
            restored: (action == Operation::Restore)
                .then(|| succeeded_at(rba))
                .flatten(),
        };
        let ns = self.namespaces.entry(key.0.clone()).or_default();
        ns.0 += 1;
        ns.1 += i64::from(record.running);
        self.kinds.insert((key.0.clone(), action));
        let result = match phase {
            Some(ActionPhase::Succeeded) => Some("succeeded"),
            Some(ActionPhase::Failed) => Some("failed"),
            _ => None,
        };
        if let Some(result) = result
            && !self.counted.contains(&record.uid)
        {
            self.pending
                .insert(record.uid.clone(), (key.0.clone(), action, result));
        }
        self.file_restore(&key, &record, true);
        self.records.insert(key, record);
    }

    fn delete(&mut self, key: &ObjKey) {
        // A deleted action's uid never comes back: forget it.
        if let Some(record) = self.unfile(key) {
            self.pending.remove(&record.uid);
            self.counted.remove(&record.uid);
        }
    }

    fn keys(&self) -> Vec<ObjKey> {
        self.records.keys().cloned().collect()
    }
}

// ------------------------------------------------------------------------------------------------
// Collections of ScheduledBackups
// ------------------------------------------------------------------------------------------------

/// The collection a ScheduledBackup backs up to or restores from, as far as its spec says: `Repository.collectionId`
/// in `spec.vars`, else `spec.collectionId` (the template engine's precedence). A collection id set only through
/// the vars Secret is not seen: a label must never carry a Secret's value.
pub fn collection_id(sb: &ScheduledBackup) -> Option<String> {
    let from_vars = serde_saphyr::from_str::<serde_json::Value>(&sb.spec.vars)
        .ok()
        .and_then(|vars| match &vars["Repository"]["collectionId"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    from_vars
        .or_else(|| sb.spec.collection_id.clone())
        .filter(|c| !c.is_empty())
}

/// The effective schedule of a ScheduledBackup with an enabled CronJob (`H` resolved from its namespace/name, in
/// its time zone); `None` when disabled or invalid.
pub fn effective_schedule(sb: &ScheduledBackup) -> Option<Schedule> {
    let cron = &sb.spec.cron_job;
    let meta = &sb.metadata;
    cron.enabled
        .then(|| {
            cron.schedule(
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
            )
            .ok()
        })
        .flatten()
}

/// What the exporter derives from one ScheduledBackup's spec.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// [`collection_id`].
    pub collection: Option<String>,
    /// [`effective_schedule`].
    pub schedule: Option<Schedule>,
}

/// The collection id and parsed schedule of every ScheduledBackup, derived once per change of the ScheduledBackup
/// rather than at every scrape (parsing a cron expression costs more than everything else a scrape does per
/// ScheduledBackup).
#[derive(Default)]
pub struct SpecIndex {
    by_sb: HashMap<ObjKey, Derived>,
}

impl SpecIndex {
    /// What was derived from ScheduledBackup `namespace/name`.
    pub fn get(&self, key: &ObjKey) -> Option<&Derived> {
        self.by_sb.get(key)
    }
}

impl Fold<ScheduledBackup> for SpecIndex {
    fn apply(&mut self, key: ObjKey, sb: &ScheduledBackup) {
        let derived = Derived {
            collection: collection_id(sb),
            schedule: effective_schedule(sb),
        };
        self.by_sb.insert(key, derived);
    }

    fn delete(&mut self, key: &ObjKey) {
        self.by_sb.remove(key);
    }

    fn keys(&self) -> Vec<ObjKey> {
        self.by_sb.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn job(name: &str, sb: &str, op: &str, end: Option<&str>) -> Job {
        let status = match end {
            Some(end) => json!({"startTime": "2025-01-01T00:00:00Z", "completionTime": end,
                                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": end}]}),
            None => json!({"startTime": "2025-01-01T00:00:00Z", "active": 1}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "n",
                         "labels": {labels::SCHEDULED_BACKUP: sb, labels::OPERATION: op}},
            "spec": {"template": {"spec": {"containers": [{"name": "backup", "image": "pg"}]}}},
            "status": status,
        }))
        .unwrap()
    }

    fn key(sb: &str, op: &str) -> SbKey {
        ("n".into(), sb.into(), op.into())
    }

    #[test]
    fn the_job_index_follows_adds_changes_relabels_and_deletes() {
        let p = Projection::<JobRuns>::default();
        let last = |sb: &str| {
            p.lock()
                .summary(&key(sb, "backup"))
                .and_then(|s| s.last_success)
        };
        // A running Job is not kept at all.
        p.observe(&Event::Apply(job("a", "db", "backup", None)));
        assert!(p.lock().is_empty());
        p.observe(&Event::Apply(job(
            "a",
            "db",
            "backup",
            Some("2025-01-01T00:05:00Z"),
        )));
        p.observe(&Event::Apply(job(
            "b",
            "db",
            "backup",
            Some("2025-01-02T00:05:00Z"),
        )));
        assert_eq!(last("db"), Some(ts("2025-01-02T00:05:00Z")));
        assert_eq!(p.lock().len(), 2);
        // The newest is deleted: the summary falls back to the other one.
        p.observe(&Event::Delete(job(
            "b",
            "db",
            "backup",
            Some("2025-01-02T00:05:00Z"),
        )));
        assert_eq!(last("db"), Some(ts("2025-01-01T00:05:00Z")));
        // Relabelled to another ScheduledBackup: it moves, and the old key is gone.
        p.observe(&Event::Apply(job(
            "a",
            "web",
            "backup",
            Some("2025-01-01T00:05:00Z"),
        )));
        assert_eq!(last("db"), None);
        assert_eq!(last("web"), Some(ts("2025-01-01T00:05:00Z")));
        assert_eq!(p.lock().len(), 1);
        // Jobs of the other operation are filed apart.
        p.observe(&Event::Apply(job(
            "r",
            "web",
            "restore",
            Some("2025-01-03T00:00:00Z"),
        )));
        assert_eq!(last("web"), Some(ts("2025-01-01T00:05:00Z")));
    }

    #[test]
    fn a_relist_forgets_what_was_deleted_while_the_watch_was_down_and_marks_the_projection_ready() {
        let p = Projection::<JobRuns>::default();
        p.observe(&Event::Apply(job(
            "gone",
            "db",
            "backup",
            Some("2025-01-02T00:05:00Z"),
        )));
        p.observe(&Event::Apply(job(
            "kept",
            "db",
            "backup",
            Some("2025-01-01T00:05:00Z"),
        )));
        assert!(!p.is_ready());
        p.observe(&Event::Init);
        p.observe(&Event::InitApply(job(
            "kept",
            "db",
            "backup",
            Some("2025-01-01T00:05:00Z"),
        )));
        p.observe(&Event::<Job>::InitDone);
        assert!(p.is_ready());
        assert_eq!(p.lock().len(), 1);
        assert_eq!(
            p.lock().summary(&key("db", "backup")).unwrap().last_success,
            Some(ts("2025-01-01T00:05:00Z"))
        );
    }

    fn cron_job(name: &str, sb: &str, op: &str, suspend: bool) -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "n",
                         "labels": {labels::SCHEDULED_BACKUP: sb, labels::OPERATION: op}},
            "spec": {"schedule": "0 2 * * *", "suspend": suspend, "jobTemplate": {}},
            "status": {"lastScheduleTime": "2025-01-10T02:00:00Z"},
        }))
        .unwrap()
    }

    #[test]
    fn the_cron_job_index_finds_a_scheduled_backups_cron_job_by_operation_until_it_is_deleted() {
        let p = Projection::<CronJobs>::default();
        p.observe(&Event::Apply(cron_job("db-backup", "db", "backup", false)));
        let info = |op: &str| p.lock().get(&key("db", op)).copied();
        assert_eq!(
            info("backup"),
            Some(CronJobInfo {
                suspended: false,
                last_schedule: Some(ts("2025-01-10T02:00:00Z"))
            })
        );
        assert_eq!(info("restore"), None);
        p.observe(&Event::Apply(cron_job("db-backup", "db", "backup", true)));
        assert!(info("backup").unwrap().suspended);
        p.observe(&Event::Delete(cron_job("db-backup", "db", "backup", true)));
        assert_eq!(info("backup"), None);
    }

    fn action(name: &str, ns: &str, op: &str, sb: &str, phase: &str) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}")},
            "spec": {"action": op, "scheduledBackupRef": {"name": sb}},
            "status": {"phase": phase, "completionTime": "2025-01-10T03:00:00Z",
                       "conditions": [{"type": "Failed", "status": "True", "reason": "JobFailed",
                                       "message": "pg_restore: error: ... (the container's output)",
                                       "lastTransitionTime": "2025-01-10T03:00:00Z"}]},
        }))
        .unwrap()
    }

    #[test]
    fn the_action_index_keeps_running_counts_and_restores_right_through_updates_and_deletes() {
        let p = Projection::<Actions>::default();
        let running = |p: &Projection<Actions>| {
            p.lock()
                .running()
                .map(|(ns, n)| (ns.to_owned(), n))
                .collect::<Vec<_>>()
        };
        p.observe(&Event::Apply(action("r1", "a", "restore", "db", "Running")));
        p.observe(&Event::Apply(action("r2", "a", "backup", "db", "Running")));
        p.observe(&Event::Apply(action("r3", "b", "backup", "db", "Pending")));
        assert_eq!(running(&p), [("a".into(), 2), ("b".into(), 0)]);
        assert_eq!(p.lock().last_restore("a", "db"), None);
        // r1 succeeds: one fewer running, and a restore of a/db.
        p.observe(&Event::Apply(action(
            "r1",
            "a",
            "restore",
            "db",
            "Succeeded",
        )));
        assert_eq!(running(&p), [("a".into(), 1), ("b".into(), 0)]);
        assert_eq!(
            p.lock().last_restore("a", "db"),
            Some(ts("2025-01-10T03:00:00Z"))
        );
        assert_eq!(p.lock().last_restore("b", "db"), None);
        // Deleting the namespace's last action drops the namespace; deleting the restore forgets it.
        p.observe(&Event::Delete(action("r3", "b", "backup", "db", "Pending")));
        p.observe(&Event::Delete(action(
            "r1",
            "a",
            "restore",
            "db",
            "Succeeded",
        )));
        assert_eq!(running(&p), [("a".into(), 1)]);
        assert_eq!(p.lock().last_restore("a", "db"), None);
    }

    #[test]
    fn an_update_of_a_counted_action_does_not_count_it_again_but_a_new_action_counts() {
        let p = Projection::<Actions>::default();
        let total = IntCounterVec::new(
            prometheus::Opts::new("t", "t"),
            &["namespace", "action", "result"],
        )
        .unwrap();
        let failed = || total.with_label_values(&["a", "backup", "failed"]).get();
        p.observe(&Event::Apply(action("r1", "a", "backup", "db", "Failed")));
        p.lock().count(&total, true);
        assert_eq!(
            failed(),
            1,
            "the first scrape counts what existed before it"
        );
        // A label or status update of the same action (same uid).
        p.observe(&Event::Apply(action("r1", "a", "backup", "db", "Failed")));
        p.lock().count(&total, true);
        assert_eq!(failed(), 1);
        p.observe(&Event::Apply(action("r2", "a", "backup", "db", "Failed")));
        p.lock().count(&total, true);
        assert_eq!(failed(), 2);
    }

    #[test]
    fn the_collection_id_comes_from_the_vars_then_the_spec_never_from_elsewhere() {
        let sb = |vars: &str, spec: Option<&str>| -> ScheduledBackup {
            serde_json::from_value(json!({
                "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
                "metadata": {"name": "db", "namespace": "n"},
                "spec": {"operation": "restore", "collectionId": spec, "vars": vars,
                         "templateRef": {"name": "pg15", "kind": "internal"},
                         "gpgKeySecretRef": {"secretName": "g"}, "tokenSecretRef": {"secretName": "t"},
                         "varsSecretRef": {"secretName": "v"}},
            }))
            .unwrap()
        };
        let vars = "Params: {hostname: scratch}\nRepository: {url: x, collectionId: from-vars}\n";
        assert_eq!(
            collection_id(&sb(vars, Some("from-spec"))).as_deref(),
            Some("from-vars"),
            "vars win over spec.collectionId, as in the template engine"
        );
        assert_eq!(
            collection_id(&sb("Repository: {collectionId: 42}\n", None)).as_deref(),
            Some("42")
        );
        assert_eq!(
            collection_id(&sb("Params: {}\n", Some("from-spec"))).as_deref(),
            Some("from-spec")
        );
        assert_eq!(collection_id(&sb("Params: {}\n", Some(""))), None);
        assert_eq!(collection_id(&sb("not: [yaml", None)), None);
        let p = Projection::<SpecIndex>::default();
        let collection = |p: &Projection<SpecIndex>| {
            p.lock()
                .get(&("n".into(), "db".into()))
                .and_then(|d| d.collection.clone())
        };
        p.observe(&Event::Apply(sb(vars, None)));
        assert_eq!(collection(&p).as_deref(), Some("from-vars"));
        p.observe(&Event::Apply(sb("", None)));
        assert_eq!(collection(&p), None);
    }
}
