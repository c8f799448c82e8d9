//! scheduled-controller: turns each `ScheduledBackup` into the objects that run its procedure.
//!
//! - **Watches**: ScheduledBackups; the ConfigMaps, Secrets, PodTemplates and CronJobs it manages (label
//!   `app.kubernetes.io/managed-by=backup-maker-scheduled-controller`); Jobs labelled `riotkit.org/scheduled-backup`;
//!   ClusterBackupProcedureTemplates (mapped to the SBs using them); Secret metadata (mapped to the SBs whose
//!   token, vars or key Secret it is); the Pods of the Jobs (labelled `riotkit.org/scheduled-backup`, cached
//!   stripped to their containers' terminated states: why a run failed).
//! - **Writes** (server-side apply, field manager `backup-maker-scheduled-controller`): per operation a ConfigMap
//!   (script), a Secret (`HelmValues.env`) and a PodTemplate (the pod the action-controller runs for an action of
//!   that operation, Job settings as annotations: the only thing the two controllers share is this object), the
//!   CronJob of `spec.operation` when enabled, and `.status`; with `spec.cronJob.runOnCreate`, one
//!   RequestedBackupAction per generation that enables it (created, never changed).
//!   Children this SB no longer needs are deleted. Nothing is written when everything already matches.
//! - **Owns conditions**: `Ready`, `TemplateRendered`, `ChildrenApplied`, `LastRunSucceeded`, `Overdue` (requeued
//!   at the exact moment it would turn `True`; gpg-keygen owns
//!   `GPGKeyReady`, which this controller waits for).

pub mod apply;
pub mod dereference;
pub mod diff;
pub mod error;
pub mod health;
pub mod memo;
pub mod pods;
pub mod reconcile;
pub mod run_on_create;
pub mod status;
pub mod validate;

use std::future::Future;
use std::sync::Arc;

use controller_runtime::cache::{Watches, cached, cached_with, scoped_api};
use controller_runtime::index::ReverseIndex;
use controller_runtime::lean::{self, LeanCache, lean_cached};
use controller_runtime::metrics::ControllerMetrics;
use crd_types::constants::{field_managers::SCHEDULED_CONTROLLER, labels};
use crd_types::{ClusterBackupProcedureTemplate, ScheduledBackup};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodTemplate, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, controller, watcher};
use kube::{Api, Client, ResourceExt};

pub use error::Error;

/// Name used for metrics, events and the leader Lease.
pub const NAME: &str = "scheduled-controller";

/// How the controller runs (shared by every controller binary).
pub use controller_runtime::runtime::ControllerConfig as Config;

/// Watch caches the reconcile reads instead of the API.
pub struct Stores {
    /// Managed ConfigMaps (metadata; content only until checked, see [`controller_runtime::lean`]).
    pub config_maps: LeanCache<ConfigMap>,
    /// Managed Secrets (likewise).
    pub secrets: LeanCache<Secret>,
    /// Managed PodTemplates (likewise; read by the action-controller).
    pub pod_templates: LeanCache<PodTemplate>,
    /// Managed CronJobs (likewise, keeping status, schedule and `suspend`).
    pub cron_jobs: LeanCache<CronJob>,
    /// Jobs labelled with a ScheduledBackup (metadata and status).
    pub jobs: Store<Job>,
    /// Those Jobs by the uid of their owner (a CronJob's runs without scanning every Job).
    pub jobs_by_owner: Arc<ReverseIndex<Job>>,
    /// The Pods of those Jobs, stripped to their terminated states (see [`pods`]).
    pub pods: Store<Pod>,
    /// Those Pods by the uid of their Job.
    pub pods_by_owner: Arc<ReverseIndex<Pod>>,
    /// All procedure templates.
    pub templates: Store<ClusterBackupProcedureTemplate>,
}

/// Shared by every reconcile.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Event publisher (reporter `scheduled-controller`).
    pub events: controller_runtime::events::Publisher,
    /// Watch caches.
    pub stores: Stores,
    /// Metrics.
    pub metrics: ControllerMetrics,
    /// Our last status writes, until the watch cache has them.
    pub written: controller_runtime::cache::LastWrite<ScheduledBackup>,
    /// Retry delays after transient failures.
    pub backoff: controller_runtime::cache::Backoff<ScheduledBackup>,
    /// Foreign objects SBs wait for (name collisions), watched by name until they are gone.
    pub blocked: controller_runtime::blocked::BlockedOn<ScheduledBackup>,
    /// The inputs of each SB's last apply pass (a resync with unchanged inputs reads and renders nothing).
    pub memo: Arc<memo::Memo>,
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
    let managed = watcher::Config::default().labels(&format!(
        "{}={SCHEDULED_CONTROLLER}",
        labels::APP_MANAGED_BY
    ));
    let labelled_jobs = watcher::Config::default().labels(labels::SCHEDULED_BACKUP);
    // `--shard-selector`: children, their Jobs and Pods carry their SB's shard label (not the referenced Secrets).
    let (managed, labelled_jobs) = (
        config.shard.watch(managed),
        config.shard.watch(labelled_jobs),
    );

    // Each kind is watched once: the reflector feeds both the cache and the controller's trigger. Readiness
    // follows the watches' lists (not `Store::wait_until_ready`, whose wake-up a second waiter can lose to the
    // Controller waiting on the same store); an API server outage restarts them all.
    let watches = Watches::new(
        client.clone(),
        config.health.clone(),
        config.metrics.clone(),
    );
    let (config_maps, cm_stream) = lean_cached(
        scoped_api::<ConfigMap>(&client, ns.as_deref()),
        managed.clone(),
        &watches,
        lean::config_map,
        |_| {},
    );
    let (secrets, secret_stream) = lean_cached(
        scoped_api::<Secret>(&client, ns.as_deref()),
        managed.clone(),
        &watches,
        lean::secret,
        |_| {},
    );
    let (pod_templates, pod_template_stream) = lean_cached(
        scoped_api::<PodTemplate>(&client, ns.as_deref()),
        managed.clone(),
        &watches,
        lean::pod_template,
        |_| {},
    );
    let (cron_jobs, cron_stream) = lean_cached(
        scoped_api::<CronJob>(&client, ns.as_deref()),
        managed,
        &watches,
        lean::cron_job,
        |_| {},
    );
    let jobs_by_owner = Arc::new(ReverseIndex::new(|job: &Job| {
        job.owner_references()
            .iter()
            .map(|o| o.uid.clone())
            .collect()
    }));
    // Jobs are only read for their outcome: cached as metadata and status.
    let (jobs, job_stream) = lean::projected(
        scoped_api::<Job>(&client, ns.as_deref()),
        labelled_jobs,
        &watches,
        lean::job,
        {
            let index = jobs_by_owner.clone();
            move |event| index.observe(event)
        },
    );
    let pods_by_owner = Arc::new(ReverseIndex::new(pods::owners));
    let (pods, pod_stream) = pods::cached(
        scoped_api::<Pod>(&client, ns.as_deref()),
        config
            .shard
            .watch(watcher::Config::default().labels(labels::SCHEDULED_BACKUP)),
        &watches,
        pods_by_owner.clone(),
    );
    let (templates, template_stream) = cached(
        Api::<ClusterBackupProcedureTemplate>::all(client.clone()),
        watcher::Config::default(),
        &watches,
    );
    // Template → SBs and Secret → SBs, kept from the SB watch: an event costs O(its users), never a scan of every
    // SB (every Secret event of the cluster arrives here).
    let by_template = Arc::new(ReverseIndex::new(template_of));
    let by_secret = Arc::new(ReverseIndex::new(secrets_of));
    let memo = Arc::new(memo::Memo::default());
    let (sbs, sb_stream) = cached_with(
        scoped_api::<ScheduledBackup>(&client, ns.as_deref()),
        config.shard.watch(watcher::Config::default()),
        &watches,
        {
            let (by_template, by_secret, memo) =
                (by_template.clone(), by_secret.clone(), memo.clone());
            move |event| {
                by_template.observe(event);
                by_secret.observe(event);
                if let watcher::Event::Delete(sb) = event
                    && let Some(uid) = sb.uid()
                {
                    memo.forget(&uid);
                }
            }
        },
    );
    // Referenced Secrets (token, vars, key) are only mapped to SBs, never cached: metadata is enough.
    let secret_meta: Api<PartialObjectMeta<Secret>> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let secret_refs =
        controller_runtime::cache::touched(secret_meta, watcher::Config::default(), &watches);

    let controller = Controller::for_stream(sb_stream, sbs.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency));

    let (blocked, unblocked) = controller_runtime::blocked::BlockedOn::new();
    let context = Arc::new(Context {
        client: client.clone(),
        events: controller_runtime::events::Publisher::new(
            client.clone(),
            NAME,
            config.instance.clone(),
            config.metrics.clone(),
        ),
        stores: Stores {
            config_maps,
            secrets,
            pod_templates,
            cron_jobs,
            jobs,
            jobs_by_owner,
            pods,
            pods_by_owner,
            templates,
        },
        metrics: config.metrics.clone(),
        written: Default::default(),
        backoff: Default::default(),
        blocked,
        memo: memo.clone(),
    });

    let results = controller
        .owns_stream(cm_stream)
        .owns_stream(secret_stream)
        .owns_stream(pod_template_stream)
        .owns_stream(cron_stream)
        .watches_stream(job_stream, |job: Job| {
            let sb = job.labels().get(labels::SCHEDULED_BACKUP).cloned();
            sb.zip(job.namespace())
                .map(|(name, ns)| ObjectRef::new(&name).within(&ns))
        })
        // A failed Pod's termination message is read when its Job fails; the Pod may arrive after the Job.
        .watches_stream(pod_stream, |pod: Pod| {
            let sb = pod.labels().get(labels::SCHEDULED_BACKUP).cloned();
            sb.zip(pod.namespace())
                .map(|(name, ns)| ObjectRef::new(&name).within(&ns))
        })
        .watches_stream(
            template_stream,
            move |template: ClusterBackupProcedureTemplate| by_template.get(&template.name_any()),
        )
        .watches_stream(secret_refs, move |secret| {
            let key = secret_key(secret.namespace().as_deref(), &secret.name_any());
            let users = by_secret.get(&key);
            if !users.is_empty() {
                memo.secret_changed(&key);
            }
            users
        })
        .reconcile_on(unblocked)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, context);
    controller_runtime::runtime::drain(results).await;
    Ok(())
}

/// Index key of a Secret: `namespace/name`.
fn secret_key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

/// Index keys of the Secrets an SB refers to (token, vars, key), in its namespace.
pub fn secrets_of(sb: &ScheduledBackup) -> Vec<String> {
    let namespace = sb.namespace();
    let mut names = vec![
        &sb.spec.token_secret_ref.secret_name,
        &sb.spec.gpg_key_secret_ref.secret_name,
    ];
    names.extend(sb.spec.vars_secret_ref.as_ref().map(|v| &v.secret_name));
    names
        .into_iter()
        .map(|name| secret_key(namespace.as_deref(), name))
        .collect()
}

/// Index key of the ClusterBackupProcedureTemplate an SB renders (none for built-in templates).
pub fn template_of(sb: &ScheduledBackup) -> Vec<String> {
    if sb.spec.template_ref.kind == "ClusterBackupProcedureTemplate" {
        vec![sb.spec.template_ref.name.clone()]
    } else {
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(template_kind: &str, vars_secret: Option<&str>) -> ScheduledBackup {
        let mut spec = serde_json::json!({
            "operation": "backup",
            "templateRef": {"kind": template_kind, "name": "pg"},
            "gpgKeySecretRef": {"secretName": "keys"},
            "tokenSecretRef": {"secretName": "token"},
        });
        if let Some(name) = vars_secret {
            spec["varsSecretRef"] = serde_json::json!({"secretName": name});
        }
        let mut sb = ScheduledBackup::new("app", serde_json::from_value(spec).unwrap());
        sb.metadata.namespace = Some("team-a".into());
        sb
    }

    #[test]
    fn an_sb_is_indexed_under_each_secret_it_refers_to_in_its_namespace() {
        assert_eq!(
            secrets_of(&sb("internal", Some("vars"))),
            ["team-a/token", "team-a/keys", "team-a/vars"]
        );
        assert_eq!(
            secrets_of(&sb("internal", None)),
            ["team-a/token", "team-a/keys"]
        );
    }

    #[test]
    fn only_a_cluster_template_reference_is_indexed() {
        assert_eq!(
            template_of(&sb("ClusterBackupProcedureTemplate", None)),
            ["pg"]
        );
        assert!(template_of(&sb("internal", None)).is_empty());
    }
}
