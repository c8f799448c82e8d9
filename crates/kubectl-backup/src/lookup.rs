//! Reading the objects the commands show, with errors that name the object and list what exists instead.

use crd_types::constants::labels;
use crd_types::{RequestedBackupAction, ScheduledBackup};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, ListParams};
use kube::discovery::ApiResource;
use kube::{Api, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Result, Session};

/// `scheduledbackups.riotkit.org`, as RBAC names it.
pub const SB_RESOURCE: &str = "scheduledbackups.riotkit.org";
/// `requestedbackupactions.riotkit.org`, as RBAC names it.
pub const RBA_RESOURCE: &str = "requestedbackupactions.riotkit.org";

/// ScheduledBackups read untyped, so status fields newer than this plugin's types are not lost
/// (see [`crate::status`]).
pub fn sb_api(session: &Session, all_namespaces: bool) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<ScheduledBackup>(&());
    if all_namespaces {
        Api::all_with(session.client.clone(), &resource)
    } else {
        Api::namespaced_with(session.client.clone(), &session.namespace, &resource)
    }
}

/// A typed view of an untyped object.
pub fn typed<K: DeserializeOwned>(object: &Value, what: &str) -> Result<K> {
    serde_json::from_value(object.clone()).map_err(|e| {
        Error::Input(format!(
            "{what} does not match the riotkit.org/v1alpha1 schema this plugin knows: {e}"
        ))
    })
}

/// One ScheduledBackup as JSON; a missing one is an error listing the ones that exist in the namespace.
pub async fn scheduled_backup_value(session: &Session, name: &str) -> Result<Value> {
    let found = sb_api(session, false).get_opt(name).await.map_err(|e| {
        Error::api(
            e,
            format!(
                "reading ScheduledBackup {name} in namespace {}",
                session.namespace
            ),
            "get",
            SB_RESOURCE,
        )
    })?;
    match found {
        Some(object) => Ok(serde_json::to_value(object).map_err(|e| Error::Input(e.to_string()))?),
        None => Err(Error::ScheduledBackupNotFound {
            name: name.to_string(),
            namespace: session.namespace.clone(),
            existing: scheduled_backup_names(session).await,
        }),
    }
}

/// One ScheduledBackup, typed.
pub async fn scheduled_backup(session: &Session, name: &str) -> Result<ScheduledBackup> {
    typed(
        &scheduled_backup_value(session, name).await?,
        &format!("ScheduledBackup {name}"),
    )
}

/// Names of the ScheduledBackups in the session's namespace (empty when they cannot be listed: this only
/// decorates another error).
pub async fn scheduled_backup_names(session: &Session) -> Vec<String> {
    let api: Api<ScheduledBackup> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut names: Vec<String> = api
        .list_metadata(&ListParams::default())
        .await
        .map(|l| l.items.iter().map(|o| o.name_any()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// One RequestedBackupAction; a missing one is an error listing the most recent ones.
pub async fn action(session: &Session, name: &str) -> Result<RequestedBackupAction> {
    let api: Api<RequestedBackupAction> =
        Api::namespaced(session.client.clone(), &session.namespace);
    let found = api.get_opt(name).await.map_err(|e| {
        Error::api(
            e,
            format!(
                "reading RequestedBackupAction {name} in namespace {}",
                session.namespace
            ),
            "get",
            RBA_RESOURCE,
        )
    })?;
    match found {
        Some(action) => Ok(action),
        None => {
            let mut existing = api
                .list_metadata(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            existing.sort_by_key(|a| std::cmp::Reverse(a.creation_timestamp()));
            Err(Error::ActionNotFound {
                name: name.to_string(),
                namespace: session.namespace.clone(),
                existing: existing.iter().take(10).map(|a| a.name_any()).collect(),
            })
        }
    }
}

/// Actions of a ScheduledBackup, newest first.
pub async fn actions_of(session: &Session, sb: &str) -> Result<Vec<RequestedBackupAction>> {
    let api: Api<RequestedBackupAction> =
        Api::namespaced(session.client.clone(), &session.namespace);
    let mut actions: Vec<_> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            Error::api(
                e,
                format!("listing RequestedBackupActions in {}", session.namespace),
                "list",
                RBA_RESOURCE,
            )
        })?
        .items
        .into_iter()
        .filter(|a| a.spec.scheduled_backup_ref.name == sb)
        .collect();
    actions.sort_by_key(|a| std::cmp::Reverse(a.creation_timestamp()));
    Ok(actions)
}

/// Label selector of everything spawned for a ScheduledBackup (CronJob runs and actions).
pub fn sb_selector(sb: &str) -> String {
    format!(
        "{}={}",
        labels::SCHEDULED_BACKUP,
        template_engine::label_value(sb)
    )
}

/// Label selector of an action's Job or Workflow and their Pods.
pub fn action_selector(action: &str) -> String {
    format!(
        "{}={}",
        labels::REQUESTED_BACKUP_ACTION,
        template_engine::label_value(action)
    )
}

/// Jobs matching a label selector, newest first (creation times have second resolution: ties go by name, which
/// for CronJob runs is the scheduled minute).
pub async fn jobs(session: &Session, selector: &str) -> Result<Vec<Job>> {
    let api: Api<Job> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut jobs = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| {
            Error::api(
                e,
                format!("listing Jobs in {}", session.namespace),
                "list",
                "jobs.batch",
            )
        })?
        .items;
    jobs.sort_by_key(|j| std::cmp::Reverse((j.creation_timestamp(), j.name_any())));
    Ok(jobs)
}

/// Pods matching a label selector, newest first.
pub async fn pods(session: &Session, selector: &str) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut pods = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| {
            Error::api(
                e,
                format!("listing Pods in {}", session.namespace),
                "list",
                "pods",
            )
        })?
        .items;
    pods.sort_by_key(|p| std::cmp::Reverse((p.creation_timestamp(), p.name_any())));
    Ok(pods)
}

/// Whether `pod` belongs to `job`: its controller reference, or the Job controller's `job-name` labels.
pub fn pod_of_job(pod: &Pod, job: &Job) -> bool {
    let uid = job.metadata.uid.as_deref();
    let name = job.name_any();
    pod.owner_references()
        .iter()
        .any(|o| o.kind == "Job" && (Some(o.uid.as_str()) == uid || o.name == name))
        || ["batch.kubernetes.io/job-name", "job-name"]
            .iter()
            .any(|l| pod.labels().get(*l) == Some(&name))
}

/// The termination message of the first container that ended with a non-empty one (what
/// `terminationMessagePolicy: FallbackToLogsOnError` keeps of a failed container's log).
pub fn termination_message(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .filter(|t| t.exit_code != 0)
        .find_map(|t| t.message.clone().filter(|m| !m.trim().is_empty()))
}
