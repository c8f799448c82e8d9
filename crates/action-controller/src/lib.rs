//! action-controller: runs each `RequestedBackupAction` ("back up / restore now") as exactly one Job, or one Argo
//! Workflow, and follows it to the end.
//!
//! - **Watches**: RequestedBackupActions; Jobs labelled `riotkit.org/requested-backup-action` (their status changes
//!   re-trigger the owning action); ScheduledBackups (an action waiting for its SB proceeds when the SB appears or
//!   becomes Ready); the PodTemplates the scheduled-controller manages (an action waiting for `<sb>-<operation>`
//!   proceeds when it appears); and, once discovery finds Argo Workflows installed, labelled
//!   `argoproj.io/v1alpha1` Workflows.
//! - **Caches lean** ([`lean`]): each watched object is cut down to what is read before it is cached (a Job to
//!   its identity, owners and status; a ScheduledBackup to its history limits and `Ready`; a finished action to
//!   its phase and times). SB events find the waiting actions, and history limits an SB's finished ones, through an index
//!   ([`index`]) kept from the action watch: no lookup scans every action.
//! - **Reads nothing else**: the executor is built from the PodTemplate ([`crd_types::executor`]); no template is
//!   rendered and no Secret is read, so its ClusterRole grants neither Secrets nor procedure templates.
//! - **Writes**: one executor per action, created with POST under a name derived from the action
//!   ([`crd_types::names::job_name`]) and owned `controller: true` by it (so deleting the action deletes it); the
//!   action's `.status` by server-side apply (field manager `backup-maker-action-controller`), only when it
//!   differs from what is stored; Events on the action on transitions only.
//! - **Owns**: the whole action status: `phase`, `processed`, `startTime`, `completionTime`, conditions `Ready`,
//!   `Complete`, `Failed`, `ownedReferences`, `childrenResourcesHealth`, `healthy`.
//! - **Reads once**: the Pods of a Job that failed, for the failed container's termination message ([`failure`]).
//! - **Deletes**: finished actions of a ScheduledBackup beyond its `successfulActionsHistoryLimit` /
//!   `failedActionsHistoryLimit` (default 10 each), oldest first, when another of its actions finishes
//!   ([`history`]).
//! - **Never**: re-creates an executor, adopts an object it does not control, or touches a finished action
//!   (`Succeeded`/`Failed` actions cost no API call at all).

pub mod error;
pub mod executor;
pub mod failure;
pub mod history;
pub mod index;
pub mod lean;
pub mod reconcile;
pub mod status;

use std::future::Future;
use std::sync::Arc;

use controller_runtime::cache::{Watches, scoped_api};
use controller_runtime::metrics::ControllerMetrics;
use crd_types::RequestedBackupAction;
use crd_types::constants::{field_managers::SCHEDULED_CONTROLLER, labels};
use k8s_openapi::api::core::v1::PodTemplate;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, controller, watcher};
use kube::{Client, ResourceExt};

pub use error::Error;

/// Name used for metrics, events and the leader Lease.
pub const NAME: &str = "action-controller";

/// How the controller runs (shared by every controller binary).
pub use controller_runtime::runtime::ControllerConfig as Config;

/// Shared by every reconcile.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Event publisher (reporter `action-controller`).
    pub events: controller_runtime::events::Publisher,
    /// Jobs labelled with an action.
    pub jobs: Store<lean::CachedJob>,
    /// ScheduledBackups (their Ready condition gates actions; their history limits).
    pub scheduled_backups: Store<lean::CachedScheduledBackup>,
    /// Every action (finished ones cut down to their phase and times, see [`lean::action`]).
    pub actions: Store<RequestedBackupAction>,
    /// Those actions by ScheduledBackup, waiting or finished (history limits read one SB's finished actions).
    pub actions_by_sb: Arc<index::ActionsBySb>,
    /// The PodTemplates the scheduled-controller hands off (one per ScheduledBackup and operation).
    pub pod_templates: Store<PodTemplate>,
    /// Actions waiting for a PodTemplate, woken by its watch.
    pub waiting: executor::WaitingForPodTemplates,
    /// Argo discovery and the Workflow watch.
    pub workflows: executor::Workflows,
    /// Metrics.
    pub metrics: ControllerMetrics,
    /// Our last status writes, until the watch cache has them.
    pub written: controller_runtime::cache::LastWrite<RequestedBackupAction>,
    /// Retry delays after transient failures.
    pub backoff: controller_runtime::cache::Backoff<RequestedBackupAction>,
}

/// The actions a ScheduledBackup event wakes: those of that SB that have not finished, from the index (finished
/// actions are never visited).
pub fn waiting_on(
    index: &index::ActionsBySb,
    sb: &lean::CachedScheduledBackup,
) -> Vec<ObjectRef<RequestedBackupAction>> {
    index.waiting(&sb.namespace().unwrap_or_default(), &sb.name_any())
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    // Every errors-by-reason series exists at 0 from start-up: dashboards show 0 and increase() sees the first error.
    config.metrics.register_reasons(error::REASONS);
    let ns = &config.namespace;

    // Each watched kind is watched once: the reflector feeds both the cache and the controller's trigger. Every
    // cache holds only what this controller reads (see `lean`): at 10,000 SBs with their finished actions and
    // Jobs, full copies would dominate the process's memory.
    let watches = Watches::new(
        client.clone(),
        config.health.clone(),
        config.metrics.clone(),
    );
    let (jobs, job_stream) = lean::cached_lean(
        scoped_api::<lean::CachedJob>(&client, ns.as_deref()),
        // `--shard-selector` on every cache: Jobs carry their action's shard label, PodTemplates their SB's.
        config
            .shard
            .watch(watcher::Config::default().labels(labels::REQUESTED_BACKUP_ACTION)),
        &watches,
        lean::job,
        |_| {},
    );
    let (scheduled_backups, sb_stream) = lean::cached_lean(
        scoped_api::<lean::CachedScheduledBackup>(&client, ns.as_deref()),
        config.shard.watch(watcher::Config::default()),
        &watches,
        lean::scheduled_backup,
        |_| {},
    );
    // Only the scheduled-controller's own PodTemplates (the label it puts on every child).
    // The executor is built from the whole PodTemplate: only what no one reads goes.
    let (pod_templates, pod_template_stream) = lean::cached_lean(
        scoped_api::<PodTemplate>(&client, ns.as_deref()),
        config
            .shard
            .watch(watcher::Config::default().labels(&format!(
                "{}={SCHEDULED_CONTROLLER}",
                labels::APP_MANAGED_BY
            ))),
        &watches,
        lean::strip_common,
        |_| {},
    );
    let actions_by_sb = Arc::new(index::ActionsBySb::default());
    let (actions, action_stream) = lean::cached_lean(
        scoped_api::<RequestedBackupAction>(&client, ns.as_deref()),
        config.shard.watch(watcher::Config::default()),
        &watches,
        lean::action,
        {
            let index = actions_by_sb.clone();
            move |event| index.observe(event)
        },
    );
    let (workflow_trigger, workflow_events) = futures::channel::mpsc::unbounded();

    let controller = Controller::for_stream(action_stream, actions.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency));

    let context = Arc::new(Context {
        client: client.clone(),
        events: controller_runtime::events::Publisher::new(
            client.clone(),
            NAME,
            config.instance.clone(),
            config.metrics.clone(),
        ),
        jobs,
        scheduled_backups,
        actions: actions.clone(),
        actions_by_sb: actions_by_sb.clone(),
        pod_templates,
        waiting: Default::default(),
        workflows: executor::Workflows::new(workflow_trigger, config.namespace.clone()),
        metrics: config.metrics.clone(),
        written: Default::default(),
        backoff: Default::default(),
    });

    let woken = context.clone();
    let results = controller
        .owns_stream(job_stream)
        .watches_stream(sb_stream, move |sb: lean::CachedScheduledBackup| {
            waiting_on(&actions_by_sb, &sb)
        })
        .watches_stream(pod_template_stream, move |pod_template: PodTemplate| {
            woken.waiting.woken_by(&ObjectRef::from_obj(&pod_template))
        })
        .reconcile_on(workflow_events)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, context);
    controller_runtime::runtime::drain(results).await;
    Ok(())
}
