//! One bench pass for N ScheduledBackups: converge, compare with a bare client, add history,
//! measure memory, and resync (outage + compaction, then a cold restart).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Serialize;
use serde_json::Value;

use crate::analysis::{self, WriteAudit};
use crate::controllers::{CONTROLLERS, Controller};
use crate::error::BenchError;
use crate::procfs::Memory;
use crate::seed;
use crate::serve::Served;

/// How a pass runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory of the controller binaries.
    pub bin_dir: PathBuf,
    /// Directory for kubeconfigs and controller logs.
    pub run_dir: PathBuf,
    /// Longest wait for any one phase.
    pub timeout: Duration,
    /// Concurrent requests of the bare client.
    pub bare_tasks: usize,
}

/// How long nothing may change before a phase counts as finished.
const QUIET: Duration = Duration::from_millis(1500);
/// CPU a controller may use per poll interval and still count as idle (USER_HZ ticks are 10 ms).
const IDLE_CPU_PER_POLL: f64 = 0.02;
const POLL: Duration = Duration::from_millis(250);

/// One number per controller.
pub type PerController<T> = BTreeMap<String, T>;

/// Convergence of N new ScheduledBackups.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Converge {
    /// Seconds to insert the SBs and their Secrets into the fake (part of `ready_s`).
    pub seed_s: f64,
    /// Seconds from the first insert until every SB is `Ready=True` and `GPGKeyReady=True`.
    pub ready_s: f64,
    /// Seconds until, additionally, no stored object changed and no controller used CPU for 1.5 s.
    pub quiet_s: f64,
    /// Child objects per SB by kind (owned by the SB), plus `Secret (key)` for the generated key.
    pub objects_per_sb: BTreeMap<String, f64>,
    /// Writes per SB, all controllers.
    pub writes_per_sb: f64,
    /// The ceiling: one write per child object (key Secret included) + GPGKeyReady + status + one Event.
    pub target_writes_per_sb: f64,
    /// The write audit.
    pub audit: WriteAudit,
    /// Requests (reads too) per controller: `verb resource` -> count.
    pub requests: PerController<BTreeMap<String, u64>>,
    /// CPU seconds per controller.
    pub cpu_s: PerController<f64>,
}

/// The bare client creating the same objects.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Bare {
    /// Objects created (children and key Secrets).
    pub objects: usize,
    /// Seconds.
    pub seconds: f64,
    /// Controllers' `ready_s` / `seconds`.
    pub ratio: f64,
}

/// A phase after convergence (history added, or a resync).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Phase {
    /// Seconds until quiet (from the phase's trigger).
    pub seconds: f64,
    /// The write audit.
    pub audit: WriteAudit,
    /// Requests per controller.
    pub requests: PerController<BTreeMap<String, u64>>,
    /// CPU seconds per controller.
    pub cpu_s: PerController<f64>,
    /// Reconciles per controller (from its `/metrics`).
    pub reconciles: PerController<f64>,
}

/// Everything measured for one N.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// ScheduledBackups.
    pub n: usize,
    /// Namespaces they live in.
    pub namespaces: usize,
    /// Memory per controller once started, before any SB exists.
    pub memory_empty: PerController<Memory>,
    /// Convergence.
    pub converge: Converge,
    /// The bare client.
    pub bare: Bare,
    /// Memory per controller once converged.
    pub memory_converged: PerController<Memory>,
    /// 3 finished Jobs + 1 finished action (with its Job) per SB added.
    pub history: Phase,
    /// Memory per controller with the history (steady = `rss_kib`, peak = `hwm_kib`).
    pub memory_steady: PerController<Memory>,
    /// API server outage with compaction: every watch re-lists, everything is reconciled.
    pub resync_outage: Phase,
    /// Every controller killed and started again (cold start on the full cluster).
    pub resync_restart: Phase,
    /// Memory per controller after the cold start.
    pub memory_restarted: PerController<Memory>,
    /// `ready_s` per SB, milliseconds.
    pub converge_ms_per_sb: f64,
    /// Convergence CPU of all controllers per SB, milliseconds.
    pub cpu_ms_per_sb: f64,
}

/// The fake as the e2e suite configures it: the CRDs' defaults, Argo Workflows served, the
/// chart's RBAC, OwnerReferencesPermissionEnforcement; and a watch history long enough that
/// no watch expires during a pass (a real API server keeps about 5 minutes), so only the
/// deliberate compaction makes the controllers re-list.
pub fn fake(rbac: bool) -> FakeApiServer {
    let mut builder = FakeApiServer::builder()
        .resource(fake_apiserver::ResourceInfo::argo_workflows())
        .event_log_capacity(2_000_000);
    for crd in crd_types::all_crds() {
        builder = builder.crd_defaults_from_yaml(&serde_json::to_string(&crd).unwrap_or_default());
    }
    if rbac {
        // The chart's rendered manifests always parse (the e2e suite asserts it).
        if let Ok(rbac) = fake_apiserver::Rbac::try_from_manifests(
            crate::RELEASE_MANIFESTS,
            crate::RELEASE_NAMESPACE,
        ) {
            builder = builder
                .rbac(rbac)
                .owner_references_permission_enforcement(true);
        }
    }
    builder.build()
}

fn timeout(what: &str, limit: Duration) -> BenchError {
    BenchError::Timeout {
        what: what.to_owned(),
        seconds: limit.as_secs(),
    }
}

/// Number of SBs with `Ready=True` and `GPGKeyReady=True`.
async fn ready_count(fake: &FakeApiServer) -> usize {
    let mut count = 0;
    // One pass under the store lock (the predicate holds at once).
    let _ = fake
        .wait_for(Duration::from_secs(1), |s| {
            count = s
                .list("scheduledbackups")
                .iter()
                .filter(|sb| {
                    seed::condition_true(sb, "Ready") && seed::condition_true(sb, "GPGKeyReady")
                })
                .count();
            true
        })
        .await;
    count
}

fn cpu_all(controllers: &[Controller]) -> Result<PerController<f64>, BenchError> {
    controllers
        .iter()
        .map(|c| Ok((c.name.to_owned(), c.cpu()?)))
        .collect()
}

fn memory_all(controllers: &[Controller]) -> Result<PerController<Memory>, BenchError> {
    controllers
        .iter()
        .map(|c| Ok((c.name.to_owned(), c.memory()?)))
        .collect()
}

async fn reconciles_all(controllers: &[Controller]) -> PerController<f64> {
    let mut out = BTreeMap::new();
    // The exporter reconciles nothing, and rendering its /metrics (every SB's series) costs CPU: scraping it
    // here every poll would keep it busy and the cluster would never look quiet.
    for c in controllers.iter().filter(|c| c.name != "metrics-exporter") {
        if let Some(n) = c.reconciles().await {
            out.insert(c.name.to_owned(), n);
        }
    }
    out
}

fn delta(after: &PerController<f64>, before: &PerController<f64>) -> PerController<f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}

/// Waits until no stored object changed, no controller's reconcile count moved and none used
/// more than idle CPU for [`QUIET`]; returns the time from `since` to the last activity seen.
async fn settle(
    fake: &FakeApiServer,
    controllers: &mut [Controller],
    since: Instant,
    limit: Duration,
) -> Result<Duration, BenchError> {
    let mut last_activity = Instant::now();
    let mut rv = fake.resource_version();
    let mut cpu = cpu_all(controllers)?;
    let mut reconciles = reconciles_all(controllers).await;
    loop {
        tokio::time::sleep(POLL).await;
        for c in controllers.iter_mut() {
            c.check_alive()?;
        }
        let now_rv = fake.resource_version();
        let now_cpu = cpu_all(controllers)?;
        let now_reconciles = reconciles_all(controllers).await;
        let busy = now_rv != rv
            || now_reconciles != reconciles
            || delta(&now_cpu, &cpu)
                .values()
                .any(|d| *d > IDLE_CPU_PER_POLL);
        if busy {
            last_activity = Instant::now();
        } else if last_activity.elapsed() >= QUIET {
            return Ok(last_activity.saturating_duration_since(since));
        }
        if since.elapsed() > limit {
            return Err(timeout("the controllers to settle", limit));
        }
        (rv, cpu, reconciles) = (now_rv, now_cpu, now_reconciles);
    }
}

fn start_all(options: &Options, served: &Served) -> Result<Vec<Controller>, BenchError> {
    CONTROLLERS
        .iter()
        .map(|name| Controller::start(name, &options.bin_dir, served, &options.run_dir))
        .collect()
}

async fn wait_all_ready(controllers: &mut [Controller], limit: Duration) -> Result<(), BenchError> {
    for c in controllers.iter_mut() {
        c.wait_ready(limit).await?;
    }
    Ok(())
}

fn phase_counters(
    fake: &FakeApiServer,
    served: &Served,
) -> (WriteAudit, PerController<BTreeMap<String, u64>>) {
    (
        analysis::audit(&fake.audit_log(), &fake.write_log()),
        analysis::requests_by_controller(&served.requests.snapshot()),
    )
}

fn reset(fake: &FakeApiServer, served: &Served) {
    fake.reset_counters();
    served.requests.reset();
}

fn owner_sb(object: &Value) -> Option<&Value> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "ScheduledBackup")
}

/// The objects the controllers created for the SBs: children owned by an SB and key Secrets.
fn created_objects(fake: &FakeApiServer) -> Vec<Value> {
    let mut out = Vec::new();
    for resource in ["configmaps", "secrets", "podtemplates", "cronjobs"] {
        for o in fake.list(resource) {
            let key_secret = o["metadata"]["labels"][crd_types::constants::labels::TYPE]
                == crd_types::constants::labels::GPG_SECRET_TYPE;
            if owner_sb(&o).is_some() || key_secret {
                out.push(o);
            }
        }
    }
    out
}

fn objects_per_sb(objects: &[Value], n: usize) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for o in objects {
        let kind = match (o["kind"].as_str().unwrap_or("?"), owner_sb(o).is_some()) {
            ("Secret", false) => "Secret (key)".to_owned(),
            (kind, _) => kind.to_owned(),
        };
        *counts.entry(kind).or_insert(0.0) += 1.0 / n as f64;
    }
    counts
}

fn api_resource(object: &Value) -> ApiResource {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = format!("{}s", kind.to_lowercase());
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

/// A bare client with `tasks` concurrent requests creating `objects` (with their owner
/// ScheduledBackups seeded first, so owner references stay valid) on a fresh fake over HTTP.
pub async fn bare_client(
    objects: &[Value],
    sbs: &[Value],
    tasks: usize,
) -> Result<(usize, Duration), BenchError> {
    let fresh = fake(false);
    let mut uids = BTreeMap::new();
    for sb in sbs {
        let ns = sb["metadata"]["namespace"].as_str().unwrap_or_default();
        if fresh.get("namespaces", "", ns).is_none() {
            fresh.insert(seed::namespace(ns))?;
        }
        let stored = fresh.insert(seed::as_created(sb))?;
        uids.insert(
            sb["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            stored["metadata"]["uid"].clone(),
        );
    }
    let bodies: Vec<(ApiResource, String, DynamicObject)> = objects
        .iter()
        .map(|o| {
            let mut body = seed::as_created(o);
            if let Some(refs) = body["metadata"]["ownerReferences"].as_array_mut() {
                for r in refs {
                    if let Some(uid) = r["uid"].as_str().and_then(|u| uids.get(u)) {
                        r["uid"] = uid.clone();
                    }
                }
            }
            let ns = body["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let object: DynamicObject = serde_json::from_value(body)
                .map_err(|e| BenchError::Proc(format!("a created object: {e}")))?;
            Ok((api_resource(o), ns, object))
        })
        .collect::<Result<_, BenchError>>()?;
    let served = Served::start(&fresh)?;
    let client = served.admin_client()?;
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (client, bodies, next) = (client.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((resource, ns, object)) = bodies.get(i) else {
                        return Ok::<(), kube::Error>(());
                    };
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), ns, resource);
                    api.create(&PostParams::default(), object).await?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await
            .map_err(|e| BenchError::Proc(format!("a bare client task: {e}")))??;
    }
    let elapsed = started.elapsed();
    Ok((fresh.total_writes() as usize, elapsed))
}

/// One pass with `n` ScheduledBackups.
pub async fn run(n: usize, options: &Options) -> Result<Report, BenchError> {
    let limit = options.timeout;
    let mut report = Report {
        n,
        namespaces: seed::namespaces(n).len(),
        ..Report::default()
    };
    let fake = fake(true);
    let served = Served::start(&fake)?;
    for ns in seed::namespaces(n) {
        fake.insert(seed::namespace(&ns))?;
    }
    let mut controllers = start_all(options, &served)?;
    wait_all_ready(&mut controllers, limit).await?;
    settle(&fake, &mut controllers, Instant::now(), limit).await?;
    report.memory_empty = memory_all(&controllers)?;

    // 1. Converge n new ScheduledBackups.
    println!("  converging {n} ScheduledBackups ...");
    reset(&fake, &served);
    let cpu_before = cpu_all(&controllers)?;
    let started = Instant::now();
    for i in 0..n {
        for s in seed::secrets(i) {
            fake.insert(s)?;
        }
        fake.insert(seed::scheduled_backup(i))?;
    }
    report.converge.seed_s = started.elapsed().as_secs_f64();
    loop {
        if ready_count(&fake).await == n {
            break;
        }
        for c in controllers.iter_mut() {
            c.check_alive()?;
        }
        if started.elapsed() > limit {
            return Err(timeout(
                &format!(
                    "{n} ScheduledBackups to become Ready ({} are)",
                    ready_count(&fake).await
                ),
                limit,
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    report.converge.ready_s = started.elapsed().as_secs_f64();
    report.converge.quiet_s = settle(&fake, &mut controllers, started, limit)
        .await?
        .as_secs_f64()
        .max(report.converge.ready_s);
    report.converge.cpu_s = delta(&cpu_all(&controllers)?, &cpu_before);
    (report.converge.audit, report.converge.requests) = phase_counters(&fake, &served);
    let created = created_objects(&fake);
    report.converge.objects_per_sb = objects_per_sb(&created, n);
    report.converge.writes_per_sb = report.converge.audit.total as f64 / n as f64;
    report.converge.target_writes_per_sb =
        report.converge.objects_per_sb.values().sum::<f64>() + 3.0;
    report.memory_converged = memory_all(&controllers)?;
    report.converge_ms_per_sb = 1000.0 * report.converge.ready_s / n as f64;
    report.cpu_ms_per_sb = 1000.0 * report.converge.cpu_s.values().sum::<f64>() / n as f64;

    // The bare client, on a fresh fake in this process (the controllers idle meanwhile).
    println!(
        "  bare client creating the same {} objects ...",
        created.len()
    );
    let sbs = fake.list("scheduledbackups");
    let (objects, elapsed) = bare_client(&created, &sbs, options.bare_tasks).await?;
    report.bare = Bare {
        objects,
        seconds: elapsed.as_secs_f64(),
        ratio: report.converge.ready_s / elapsed.as_secs_f64(),
    };
    drop(sbs);

    // 3. History: 3 finished Jobs per CronJob, 1 finished action (with its Job) per SB.
    println!("  adding 3 finished Jobs and 1 finished action per ScheduledBackup ...");
    reset(&fake, &served);
    let cpu_before = cpu_all(&controllers)?;
    let reconciles_before = reconciles_all(&controllers).await;
    let now = jiff::Timestamp::now();
    let started = Instant::now();
    for cronjob in fake.list("cronjobs") {
        for job in seed::cronjob_history(&cronjob, now) {
            fake.insert(job)?;
        }
        let ns = cronjob["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        if let Some(sb) = owner_sb(&cronjob).and_then(|r| r["name"].as_str()) {
            let action = fake.insert(seed::action(ns, sb))?;
            fake.insert(seed::action_job(&action, &cronjob, now))?;
        }
    }
    report.history.seconds = settle(&fake, &mut controllers, started, limit)
        .await?
        .as_secs_f64();
    report.history.cpu_s = delta(&cpu_all(&controllers)?, &cpu_before);
    report.history.reconciles = delta(&reconciles_all(&controllers).await, &reconciles_before);
    (report.history.audit, report.history.requests) = phase_counters(&fake, &served);
    report.memory_steady = memory_all(&controllers)?;

    // 5a. Resync: an outage, the history compacted meanwhile, every watch re-lists.
    println!("  resync after an API server outage with compaction ...");
    reset(&fake, &served);
    let cpu_before = cpu_all(&controllers)?;
    let reconciles_before = reconciles_all(&controllers).await;
    served.outage().await;
    fake.compact_event_log();
    tokio::time::sleep(Duration::from_secs(2)).await;
    served.restore().await;
    let started = Instant::now();
    report.resync_outage.seconds = settle(&fake, &mut controllers, started, limit)
        .await?
        .as_secs_f64();
    report.resync_outage.cpu_s = delta(&cpu_all(&controllers)?, &cpu_before);
    report.resync_outage.reconciles =
        delta(&reconciles_all(&controllers).await, &reconciles_before);
    (report.resync_outage.audit, report.resync_outage.requests) = phase_counters(&fake, &served);

    // 5b. Resync: every controller killed and started again.
    println!("  resync after restarting every controller ...");
    for c in controllers.iter_mut() {
        c.kill();
    }
    drop(controllers);
    reset(&fake, &served);
    let started = Instant::now();
    let mut controllers = start_all(options, &served)?;
    wait_all_ready(&mut controllers, limit).await?;
    report.resync_restart.seconds = settle(&fake, &mut controllers, started, limit)
        .await?
        .as_secs_f64();
    report.resync_restart.cpu_s = cpu_all(&controllers)?;
    report.resync_restart.reconciles = reconciles_all(&controllers).await;
    (report.resync_restart.audit, report.resync_restart.requests) = phase_counters(&fake, &served);
    report.memory_restarted = memory_all(&controllers)?;
    Ok(report)
}

/// A fresh directory for one run's kubeconfigs and logs.
pub fn run_dir(base: &Path, n: usize) -> Result<PathBuf, BenchError> {
    let dir = base.join(format!("n{n}"));
    std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}
