//! Bench: the action-controller's per-event cost and cache memory at 1,000 and 10,000 ScheduledBackups, each with
//! one finished action and its finished Job (the shape of issue #15's scale bench).
//!
//! For each N, the caches are filled exactly as the watches fill them (the same projections and index), then:
//! - **SB event → waiting actions** (every SB status write of the scheduled-controller arrives here): the mean
//!   time of one [`action_controller::waiting_on`] over all N SBs, next to the whole-store scan it replaced;
//! - **history limits of one SB** ([`action_controller::history::finished_of`]), next to the scan it replaced;
//! - **memory**: serialized bytes per cached object (full vs lean) and the process's resident memory growth per
//!   SB for the lean caches (action + Job + SB), measured before the full copies are built for comparison.
//!
//! Target: the per-event cost at 10k within 1.3× of the cost at 1k. `cargo bench -p action-controller --bench
//! scale`; `BENCH_SIZES=1000,10000` changes the sizes.

#[path = "../tests/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use action_controller::index::ActionsBySb;
use action_controller::lean::{CachedJob, CachedScheduledBackup};
use action_controller::{history, lean, reconcile, waiting_on};
use crd_types::{RequestedBackupAction, ScheduledBackup};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplate;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

/// Counts live heap bytes, so the caches' memory is measured exactly (resident memory also holds what the
/// allocator kept from freed temporaries, such as the full objects before their projection).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn managed_fields() -> Value {
    json!([
        {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "riotkit.org/v1alpha1",
         "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
                      "f:spec": {".": {}, "f:action": {}, "f:scheduledBackupRef": {".": {}, "f:name": {}}}}},
        {"manager": "backup-maker-action-controller", "operation": "Apply", "apiVersion": "riotkit.org/v1alpha1",
         "time": "2026-01-01T00:05:00Z", "fieldsType": "FieldsV1", "subresource": "status",
         "fieldsV1": {"f:status": {"f:completionTime": {}, "f:conditions": {}, "f:healthy": {}, "f:phase": {},
                                   "f:processed": {}, "f:startTime": {}, "f:ownedReferences": {},
                                   "f:childrenResourcesHealth": {}}}},
    ])
}

/// A finished action of SB `sb` in `namespace`, as the API server stores it after our status write.
fn finished_action(name: &str, namespace: &str, sb: &str) -> RequestedBackupAction {
    let spec = json!({"action": "backup", "scheduledBackupRef": {"name": sb}});
    serde_json::from_value(json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
                     "resourceVersion": "100", "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
                     "annotations": {lean::LAST_APPLIED: serde_json::to_string(&json!({"apiVersion": "riotkit.org/v1alpha1",
                         "kind": "RequestedBackupAction", "metadata": {"name": name, "namespace": namespace}, "spec": spec})).unwrap()},
                     "managedFields": managed_fields()},
        "spec": spec,
        "status": {"processed": true, "phase": "Succeeded", "startTime": "2026-01-01T00:00:01Z",
                   "completionTime": "2026-01-01T00:05:00Z", "observedGeneration": 1, "healthy": true,
                   "conditions": [
                       {"type": "Ready", "status": "True", "reason": "Succeeded", "message": format!("Job {name} succeeded"),
                        "lastTransitionTime": "2026-01-01T00:05:00Z", "observedGeneration": 1},
                       {"type": "Complete", "status": "True", "reason": "JobSucceeded", "message": format!("Job {name} succeeded"),
                        "lastTransitionTime": "2026-01-01T00:05:00Z", "observedGeneration": 1},
                       {"type": "Failed", "status": "False", "reason": "JobSucceeded", "message": format!("Job {name} succeeded"),
                        "lastTransitionTime": "2026-01-01T00:05:00Z", "observedGeneration": 1}],
                   "ownedReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name}],
                   "childrenResourcesHealth": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                       "message": format!("Job {name} succeeded"), "succeeded": true, "running": false, "failed": false}]},
    }))
    .unwrap()
}

/// The finished Job of `action`, built from the SB's real PodTemplate (rendered from the bundled example).
fn finished_job(pod_template: &PodTemplate, action: &RequestedBackupAction) -> Job {
    let mut job = crd_types::executor::job(pod_template, action).expect("the example builds a Job");
    job.metadata.name = Some(action.name_any());
    job.metadata.namespace = action.namespace();
    job.metadata.uid = Some(format!("job-{}", action.uid().unwrap_or_default()));
    job.metadata.resource_version = Some("101".into());
    job.metadata.owner_references = crd_types::executor::executor_owner(action).map(|o| vec![o]);
    job.metadata.managed_fields = serde_json::from_value(managed_fields()).ok();
    job.status = serde_json::from_value(json!({
        "startTime": "2026-01-01T00:00:01Z", "completionTime": "2026-01-01T00:05:00Z", "succeeded": 1,
        "ready": 0, "terminating": 0, "uncountedTerminatedPods": {},
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": "2026-01-01T00:05:00Z", "lastTransitionTime": "2026-01-01T00:05:00Z"},
            {"type": "Complete", "status": "True", "lastProbeTime": "2026-01-01T00:05:00Z", "lastTransitionTime": "2026-01-01T00:05:00Z"}]
    }))
    .ok();
    job
}

fn scheduled_backup(template: &Value, name: &str, namespace: &str) -> ScheduledBackup {
    let mut sb = template.clone();
    sb["metadata"] = json!({"name": name, "namespace": namespace, "uid": format!("sb-{namespace}-{name}"),
                            "resourceVersion": "50", "generation": 1, "managedFields": managed_fields()});
    serde_json::from_value(sb).unwrap()
}

struct Caches<J, S>
where
    J: Resource<DynamicType = ()> + Clone + 'static,
    S: Resource<DynamicType = ()> + Clone + 'static,
{
    actions: Store<RequestedBackupAction>,
    jobs: Store<J>,
    sbs: Store<S>,
    index: ActionsBySb,
    /// Keeps the writers (and with them the stores' contents) alive.
    _writers: Box<dyn std::any::Any>,
}

/// The three caches after a list of `sbs` SBs with one finished action and Job each (and one waiting action of the
/// first SB). Jobs and SBs are cached as `job_of` and `sb_of` make them; actions through the controller's
/// projection when `project`.
fn fill<J, S>(
    sbs: &[ScheduledBackup],
    pod_template: &PodTemplate,
    project: bool,
    job_of: impl Fn(Job) -> J,
    sb_of: impl Fn(&ScheduledBackup) -> S,
) -> Caches<J, S>
where
    J: Resource<DynamicType = ()> + Clone + 'static,
    S: Resource<DynamicType = ()> + Clone + 'static,
{
    let (actions, mut action_writer) = reflector::store();
    let (jobs, mut job_writer) = reflector::store();
    let (sb_store, mut sb_writer) = reflector::store();
    let index = ActionsBySb::default();
    let mut waiting = finished_action("waiting", "team-0", &sbs[0].name_any());
    waiting.status = None;
    for (i, sb) in sbs.iter().enumerate() {
        let namespace = sb.namespace().unwrap();
        let mut action = finished_action(&format!("run-{i}"), &namespace, &sb.name_any());
        let job = job_of(finished_job(pod_template, &action));
        let sb = sb_of(sb);
        if project {
            lean::action(&mut action);
        }
        let event = Event::Apply(action);
        index.observe(&event);
        action_writer.apply_watcher_event(&event);
        job_writer.apply_watcher_event(&Event::Apply(job));
        sb_writer.apply_watcher_event(&Event::Apply(sb));
    }
    let event = Event::Apply(waiting);
    index.observe(&event);
    action_writer.apply_watcher_event(&event);
    Caches {
        actions,
        jobs,
        sbs: sb_store,
        index,
        _writers: Box::new((action_writer, job_writer, sb_writer)),
    }
}

/// The whole-store scan `waiting_on` used to be.
fn waiting_by_scan(actions: &Store<RequestedBackupAction>, sb: &CachedScheduledBackup) -> usize {
    let (namespace, name) = (sb.namespace(), sb.name_any());
    actions
        .state()
        .iter()
        .filter(|a| {
            a.namespace() == namespace
                && a.spec.scheduled_backup_ref.name == name
                && !reconcile::is_terminal(a)
        })
        .count()
}

/// The whole-store scan history limits used to be.
fn history_by_scan(actions: &Store<RequestedBackupAction>, sb: &CachedScheduledBackup) -> usize {
    let (namespace, name) = (sb.namespace(), sb.name_any());
    let state = actions.state();
    let mine = state
        .iter()
        .filter(|a| a.namespace() == namespace && a.spec.scheduled_backup_ref.name == name);
    history::beyond_limits(sb, mine.map(|a| a.as_ref())).len()
}

/// Mean time of `f` over every SB, repeated until at least `budget` has passed.
fn per_event(
    sbs: &[Arc<CachedScheduledBackup>],
    budget: Duration,
    mut f: impl FnMut(&CachedScheduledBackup),
) -> Duration {
    let started = Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < budget {
        for sb in sbs {
            f(sb);
        }
        calls += sbs.len() as u32;
    }
    started.elapsed() / calls
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let fake = support::server(false);
    support::seed(&fake);
    let pod_template: PodTemplate = serde_json::from_value(
        fake.get(
            "podtemplates",
            support::NS,
            &format!("{}-backup", support::SB),
        )
        .expect("seeded PodTemplate"),
    )
    .unwrap();
    let example_sb = fake
        .get("scheduledbackups", support::NS, support::SB)
        .unwrap();

    println!(
        "action-controller scale: N ScheduledBackups, one finished action and Job each (+1 waiting action)"
    );
    let mut first: Option<(Duration, Duration)> = None;
    for &n in &sizes {
        let sbs: Vec<ScheduledBackup> = (0..n)
            .map(|i| scheduled_backup(&example_sb, &sb_name(i), &namespace(i)))
            .collect();
        let before = live_bytes();
        let caches = fill(&sbs, &pod_template, true, cached_job, cached_sb);
        let lean_bytes = live_bytes().saturating_sub(before);
        assert_eq!(caches.actions.state().len(), n + 1);
        // The same SBs are asked about at every N (the first SAMPLE): only the size of the stores differs.
        let sample: Vec<Arc<CachedScheduledBackup>> = (0..n.min(SAMPLE))
            .map(|i| {
                caches
                    .sbs
                    .get(&ObjectRef::new(&sb_name(i)).within(&namespace(i)))
                    .expect("cached SB")
            })
            .collect();

        let budget = Duration::from_millis(500);
        let mut found = 0;
        let index_event = per_event(&sample, budget, |sb| {
            found += black_box(waiting_on(&caches.index, sb)).len();
        });
        assert!(found > 0, "the waiting action is found");
        let scan_event = per_event(&sample, budget, |sb| {
            black_box(waiting_by_scan(&caches.actions, sb));
        });
        let index_history = per_event(&sample, budget, |sb| {
            let history = history::finished_of(
                &caches.actions,
                &caches.index,
                &sb.namespace().unwrap(),
                &sb.name_any(),
            );
            black_box(history::beyond_limits(
                sb,
                history.iter().map(|a| a.as_ref()),
            ));
        });
        let scan_history = per_event(&sample, Duration::from_millis(200), |sb| {
            black_box(history_by_scan(&caches.actions, sb));
        });

        let before = live_bytes();
        let full = fill(&sbs, &pod_template, false, |job| job, |sb| sb.clone());
        let full_bytes = live_bytes().saturating_sub(before);
        let (full_action, full_job, full_sb) = per_object(&full, n);
        let (lean_action, lean_job, lean_sb) = per_object(&caches, n);
        let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);

        println!("N = {n}");
        println!(
            "  SB event → waiting actions: {:>9.0} ns (index)   {:>11.0} ns (scan of every action, before)",
            index_event.as_nanos() as f64,
            scan_event.as_nanos() as f64
        );
        println!(
            "  history of one SB:          {:>9.0} ns (index)   {:>11.0} ns (scan of every action, before)",
            index_history.as_nanos() as f64,
            scan_history.as_nanos() as f64
        );
        println!(
            "  cached JSON bytes per object, full → lean: action {full_action:.0} → {lean_action:.0}, Job {full_job:.0} → {lean_job:.0}, SB {full_sb:.0} → {lean_sb:.0}"
        );
        println!(
            "  heap of the caches and index (SB + action + Job per SB): lean {:.1} MiB ({:.2} KiB per SB), full {:.1} MiB ({:.2} KiB per SB)",
            mib(lean_bytes),
            lean_bytes as f64 / 1024.0 / n as f64,
            mib(full_bytes),
            full_bytes as f64 / 1024.0 / n as f64,
        );
        match first {
            None => first = Some((index_event, index_history)),
            Some((event0, history0)) => println!(
                "  per-event cost vs N = {}: SB event {:.2}×, history {:.2}× (target ≤ 1.3×)",
                sizes[0],
                index_event.as_secs_f64() / event0.as_secs_f64(),
                index_history.as_secs_f64() / history0.as_secs_f64()
            ),
        }
        drop(full);
        drop(caches);
    }
    println!(
        "  (process resident memory at the end: {} MiB)",
        rss_kib() / 1024
    );
}

const SAMPLE: usize = 1_000;

/// Serialized bytes per cached action, Job and SB.
fn per_object<J, S>(c: &Caches<J, S>, n: usize) -> (f64, f64, f64)
where
    J: Resource<DynamicType = ()> + Clone + serde::Serialize + 'static,
    S: Resource<DynamicType = ()> + Clone + serde::Serialize + 'static,
{
    let n = n as f64;
    let actions: usize = c
        .actions
        .state()
        .iter()
        .map(|a| lean::json_size(a.as_ref()))
        .sum();
    let jobs: usize = c
        .jobs
        .state()
        .iter()
        .map(|j| lean::json_size(j.as_ref()))
        .sum();
    let sbs: usize = c
        .sbs
        .state()
        .iter()
        .map(|s| lean::json_size(s.as_ref()))
        .sum();
    (actions as f64 / n, jobs as f64 / n, sbs as f64 / n)
}

/// A Job as the watch decodes it into the controller's cache.
fn cached_job(job: Job) -> CachedJob {
    let mut cached: CachedJob =
        serde_json::from_value(serde_json::to_value(&job).unwrap()).unwrap();
    lean::job(&mut cached);
    cached
}

/// A ScheduledBackup as the watch decodes it into the controller's cache.
fn cached_sb(sb: &ScheduledBackup) -> CachedScheduledBackup {
    let mut cached: CachedScheduledBackup =
        serde_json::from_value(serde_json::to_value(sb).unwrap()).unwrap();
    lean::scheduled_backup(&mut cached);
    cached
}

fn sb_name(i: usize) -> String {
    format!("app-{i}")
}

fn namespace(i: usize) -> String {
    format!("team-{}", i % 10)
}
