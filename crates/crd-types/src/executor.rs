//! The executor of a RequestedBackupAction (a Job, or an Argo Workflow), built from the PodTemplate that its
//! ScheduledBackup hands off for the requested operation.
//!
//! This is the contract between two controllers that never link each other: the scheduled-controller applies
//! one core/v1 `PodTemplate` per operation (`<sb>-backup`, `<sb>-restore`, see [`crate::names::child_name`]) with
//! the pod template its CronJob's Job uses and the Job-level settings as annotations ([`JobSettings`]); the
//! action-controller reads that PodTemplate and calls [`build`]. The offline `render` command calls [`build`]
//! too, so what it prints is what the controller creates.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{EnvVar, PodTemplate, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use serde_json::{Value, json};

use crate::constants::{annotations, field_managers, labels};
use crate::names::{job_name, label_value};
use crate::{KindType, RequestedBackupAction};

/// Retries of a failed run before the Job is failed (Kubernetes' default of 6 would re-run a failing dump
/// against a production database six times).
pub const DEFAULT_BACKOFF_LIMIT: i32 = 2;

/// `apiVersion` of Argo Workflows' `Workflow`.
pub const WORKFLOW_API_VERSION: &str = "argoproj.io/v1alpha1";

/// Environment variable that carries `spec.targetVersion` to a restore.
pub const RESTORE_VERSION_ENV: &str = "RESTORE_VERSION";

/// The Job-level settings of a procedure (a PodTemplate holds only a pod), carried as `riotkit.org/...`
/// annotations on the PodTemplate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// Retries of a failed pod (`HelmValues.backoffLimit`).
    pub backoff_limit: i32,
    /// Deadline of the whole run (`HelmValues.activeDeadlineSeconds`).
    pub active_deadline_seconds: Option<i64>,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            backoff_limit: DEFAULT_BACKOFF_LIMIT,
            active_deadline_seconds: None,
        }
    }
}

impl JobSettings {
    /// The annotations that carry these settings.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([(
            annotations::BACKOFF_LIMIT.to_string(),
            self.backoff_limit.to_string(),
        )]);
        if let Some(deadline) = self.active_deadline_seconds {
            out.insert(
                annotations::ACTIVE_DEADLINE_SECONDS.to_string(),
                deadline.to_string(),
            );
        }
        out
    }

    /// Reads the settings back from a PodTemplate's annotations. A missing backoff limit is the default; a value
    /// that is not a number is refused (with a message naming the annotation), never guessed.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Self, String> {
        fn parse<T: std::str::FromStr>(
            annotations: &BTreeMap<String, String>,
            key: &str,
        ) -> Result<Option<T>, String> {
            annotations
                .get(key)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| format!("annotation {key} is {v:?}, not a whole number"))
                })
                .transpose()
        }
        Ok(Self {
            backoff_limit: parse(annotations, annotations::BACKOFF_LIMIT)?
                .unwrap_or(DEFAULT_BACKOFF_LIMIT),
            active_deadline_seconds: parse(annotations, annotations::ACTIVE_DEADLINE_SECONDS)?,
        })
    }
}

/// The executor of a RequestedBackupAction.
// A Job is created right after being built, so the size of the variant on the stack does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// A `batch/v1` Job.
    Job(Job),
    /// An `argoproj.io/v1alpha1` Workflow (no typed API available), as JSON.
    Workflow(Value),
}

/// The executor of `action` from the PodTemplate of its operation: a Job ([`job`]) or, for `kindType: Workflow`,
/// an Argo Workflow ([`workflow`]). Errors name what is wrong with the PodTemplate.
pub fn build(
    pod_template: &PodTemplate,
    action: &RequestedBackupAction,
) -> Result<Executor, String> {
    match action.spec.kind_type {
        KindType::Job => job(pod_template, action).map(Executor::Job),
        KindType::Workflow => workflow(pod_template, action).map(Executor::Workflow),
    }
}

/// What a Job and a Workflow share.
struct Prepared {
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
    settings: JobSettings,
    pod: PodTemplateSpec,
}

fn prepare(pod_template: &PodTemplate, action: &RequestedBackupAction) -> Result<Prepared, String> {
    let settings = JobSettings::from_annotations(
        pod_template
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&BTreeMap::new()),
    )?;
    let mut pod = pod_template
        .template
        .clone()
        .filter(|t| t.spec.is_some())
        .ok_or("it has no template.spec")?;
    let action_name = action.metadata.name.clone().unwrap_or_default();
    let meta = pod.metadata.get_or_insert_with(Default::default);
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.insert(
        labels::REQUESTED_BACKUP_ACTION.to_string(),
        label_value(&action_name),
    );
    labels.insert(
        labels::APP_MANAGED_BY.to_string(),
        field_managers::ACTION_CONTROLLER.to_string(),
    );
    // The executor is in its action's shard (the shard that watches it), not in the one its PodTemplate came from.
    match action
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::SHARD))
    {
        Some(shard) => labels.insert(labels::SHARD.to_string(), shard.clone()),
        None => labels.remove(labels::SHARD),
    };
    meta.labels = Some(labels.clone());
    if let Some(version) = action
        .spec
        .target_version
        .as_deref()
        .filter(|v| !v.is_empty())
        && let Some(spec) = pod.spec.as_mut()
    {
        for c in &mut spec.containers {
            c.env.get_or_insert_with(Vec::new).push(EnvVar {
                name: RESTORE_VERSION_ENV.to_string(),
                value: Some(version.to_string()),
                ..Default::default()
            });
        }
    }
    Ok(Prepared {
        name: job_name(&action_name),
        namespace: action
            .metadata
            .namespace
            .clone()
            .or_else(|| pod_template.metadata.namespace.clone()),
        labels,
        owner: executor_owner(action),
        settings,
        pod,
    })
}

/// The Job of `action`: named [`job_name`] of the action, in the action's namespace, owned by it
/// (`controller: true`, when it has a uid), labelled like the pod template plus
/// `riotkit.org/requested-backup-action`, the pod template with `RESTORE_VERSION` when `targetVersion` is set,
/// `backoffLimit`/`activeDeadlineSeconds` from the PodTemplate's annotations, `ttlSecondsAfterFinished` from the
/// action.
pub fn job(pod_template: &PodTemplate, action: &RequestedBackupAction) -> Result<Job, String> {
    let p = prepare(pod_template, action)?;
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(p.name),
            namespace: p.namespace,
            labels: Some(p.labels),
            owner_references: p.owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(p.settings.backoff_limit),
            active_deadline_seconds: p.settings.active_deadline_seconds,
            ttl_seconds_after_finished: action.spec.ttl_seconds_after_finished,
            template: p.pod,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The Argo Workflow of `action` (as JSON): named, owned and labelled like the [`job`], one container template
/// with the same pod settings, `retryStrategy.limit` = the backoff limit, `ttlStrategy` from the action.
pub fn workflow(
    pod_template: &PodTemplate,
    action: &RequestedBackupAction,
) -> Result<Value, String> {
    let p = prepare(pod_template, action)?;
    let spec = p.pod.spec.unwrap_or_default();
    let container = spec.containers.into_iter().next().unwrap_or_default();
    let entrypoint = container.name.clone();
    let mut wf_spec = json!({
        "entrypoint": entrypoint,
        "podMetadata": {"labels": p.labels},
        "securityContext": spec.security_context,
        "automountServiceAccountToken": spec.automount_service_account_token,
        "volumes": spec.volumes,
        "templates": [{
            "name": entrypoint,
            "retryStrategy": {"limit": p.settings.backoff_limit.to_string()},
            "container": container,
        }],
    });
    let obj = wf_spec.as_object_mut().expect("a JSON object literal");
    if let Some(sa) = spec.service_account_name {
        obj.insert("serviceAccountName".into(), json!(sa));
    }
    if let Some(ns) = spec.node_selector {
        obj.insert("nodeSelector".into(), json!(ns));
    }
    if let Some(t) = spec.tolerations {
        obj.insert("tolerations".into(), json!(t));
    }
    if let Some(a) = spec.affinity {
        obj.insert("affinity".into(), json!(a));
    }
    if let Some(d) = p.settings.active_deadline_seconds {
        obj.insert("activeDeadlineSeconds".into(), json!(d));
    }
    if let Some(ttl) = action.spec.ttl_seconds_after_finished {
        obj.insert("ttlStrategy".into(), json!({"secondsAfterCompletion": ttl}));
    }
    let mut metadata = json!({"name": p.name, "labels": p.labels});
    if let Some(ns) = p.namespace {
        metadata["namespace"] = json!(ns);
    }
    if let Some(o) = p.owner {
        metadata["ownerReferences"] = json!([o]);
    }
    Ok(json!({
        "apiVersion": WORKFLOW_API_VERSION,
        "kind": "Workflow",
        "metadata": metadata,
        "spec": wf_spec,
    }))
}

/// The action as its executor's controlling owner, with `blockOwnerDeletion` (like every child the controllers
/// create), so a foreground deletion of the action waits for its Job. `None` without a uid.
pub fn executor_owner(action: &RequestedBackupAction) -> Option<OwnerReference> {
    Some(OwnerReference {
        block_owner_deletion: Some(true),
        ..action.controller_owner_ref(&())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_template(annotations: Value) -> PodTemplate {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PodTemplate",
            "metadata": {"name": "app1-restore", "namespace": "team-a", "annotations": annotations},
            "template": {
                "metadata": {"labels": {"riotkit.org/scheduled-backup": "app1", "riotkit.org/operation": "restore"}},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": "dumper",
                    "containers": [{"name": "backup-maker", "image": "img", "env": [{"name": "A", "value": "1"}]}],
                    "volumes": [{"name": "script", "configMap": {"name": "app1-restore"}}],
                },
            },
        }))
        .unwrap()
    }

    fn action(spec: Value, uid: Option<&str>) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": "restore-v3", "namespace": "team-a", "uid": uid},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn the_job_and_its_pod_are_in_the_actions_shard_whatever_the_pod_templates_shard() {
        let mut pt = pod_template(json!({}));
        let pod_meta = pt.template.as_mut().unwrap().metadata.as_mut().unwrap();
        pod_meta
            .labels
            .as_mut()
            .unwrap()
            .insert(labels::SHARD.into(), "a".into());
        let spec = json!({"action": "restore", "scheduledBackupRef": {"name": "app1"}});
        let mut sharded = action(spec.clone(), Some("u-1"));
        sharded.metadata.labels = Some([(labels::SHARD.to_string(), "b".to_string())].into());
        let shard_of = |a: &RequestedBackupAction| {
            let Executor::Job(job) = build(&pt, a).unwrap() else {
                panic!("kindType defaults to Job")
            };
            let pod = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
            let job = job.metadata.labels.unwrap();
            assert_eq!(job.get(labels::SHARD), pod.get(labels::SHARD));
            job.get(labels::SHARD).cloned()
        };
        assert_eq!(shard_of(&sharded).as_deref(), Some("b"));
        assert_eq!(
            shard_of(&action(spec, Some("u-1"))),
            None,
            "an unlabelled action is in the default shard"
        );
        let workflow = workflow(&pt, &sharded).unwrap();
        assert_eq!(workflow["metadata"]["labels"][labels::SHARD], "b");
        assert_eq!(
            workflow["spec"]["podMetadata"]["labels"][labels::SHARD],
            "b"
        );
    }

    #[test]
    fn settings_survive_the_round_trip_through_annotations() {
        let settings = JobSettings {
            backoff_limit: 0,
            active_deadline_seconds: Some(3600),
        };
        assert_eq!(
            JobSettings::from_annotations(&settings.annotations()),
            Ok(settings)
        );
        let default = JobSettings::default();
        assert_eq!(
            default.annotations().keys().collect::<Vec<_>>(),
            vec![annotations::BACKOFF_LIMIT],
            "no deadline, no annotation"
        );
        assert_eq!(JobSettings::from_annotations(&BTreeMap::new()), Ok(default));
    }

    #[test]
    fn a_malformed_setting_is_refused_with_the_annotation_named() {
        let bad = BTreeMap::from([(annotations::BACKOFF_LIMIT.to_string(), "two".to_string())]);
        let e = JobSettings::from_annotations(&bad).unwrap_err();
        assert!(
            e.contains("riotkit.org/backoff-limit") && e.contains("two"),
            "{e}"
        );
    }

    #[test]
    fn a_restore_job_gets_the_pod_template_its_version_its_owner_and_the_job_settings() {
        let pt = pod_template(
            json!({"riotkit.org/backoff-limit": "4", "riotkit.org/active-deadline-seconds": "600"}),
        );
        let a = action(
            json!({"action": "restore", "targetVersion": "v3", "ttlSecondsAfterFinished": 300,
                   "scheduledBackupRef": {"name": "app1"}}),
            Some("u-1"),
        );
        let Executor::Job(job) = build(&pt, &a).unwrap() else {
            panic!("kindType defaults to Job")
        };
        assert_eq!(job.metadata.name.as_deref(), Some("restore-v3"));
        assert_eq!(job.metadata.namespace.as_deref(), Some("team-a"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller, owner.kind.as_str()),
            ("u-1", Some(true), "RequestedBackupAction")
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[labels::REQUESTED_BACKUP_ACTION], "restore-v3");
        assert_eq!(labels[labels::OPERATION], "restore");
        assert_eq!(
            labels[labels::APP_MANAGED_BY],
            field_managers::ACTION_CONTROLLER
        );
        let spec = job.spec.unwrap();
        assert_eq!(
            (
                spec.backoff_limit,
                spec.active_deadline_seconds,
                spec.ttl_seconds_after_finished
            ),
            (Some(4), Some(600), Some(300))
        );
        assert_eq!(
            spec.template.metadata.unwrap().labels.as_ref(),
            Some(labels)
        );
        let env = spec.template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        let names: Vec<_> = env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![("A", Some("1")), ("RESTORE_VERSION", Some("v3"))]
        );
    }

    #[test]
    fn without_a_target_version_no_restore_version_is_set_and_without_a_uid_no_owner() {
        let a = action(
            json!({"action": "restore", "scheduledBackupRef": {"name": "app1"}}),
            None,
        );
        let Executor::Job(job) = build(&pod_template(json!({})), &a).unwrap() else {
            panic!()
        };
        assert_eq!(job.metadata.owner_references, None);
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(DEFAULT_BACKOFF_LIMIT));
        let env = spec.template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        assert!(env.iter().all(|e| e.name != RESTORE_VERSION_ENV));
    }

    #[test]
    fn a_workflow_runs_the_same_container_with_the_backoff_limit_as_retries() {
        let pt = pod_template(json!({"riotkit.org/backoff-limit": "3"}));
        let a = action(
            json!({"action": "restore", "kindType": "Workflow", "targetVersion": "v1",
                   "scheduledBackupRef": {"name": "app1"}}),
            Some("u-1"),
        );
        let Executor::Workflow(wf) = build(&pt, &a).unwrap() else {
            panic!()
        };
        assert_eq!(wf["apiVersion"], WORKFLOW_API_VERSION);
        assert_eq!(wf["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let spec = &wf["spec"];
        assert_eq!(spec["entrypoint"], "backup-maker");
        assert_eq!(spec["serviceAccountName"], "dumper");
        assert_eq!(spec["volumes"][0]["configMap"]["name"], "app1-restore");
        assert_eq!(spec["templates"][0]["retryStrategy"]["limit"], "3");
        assert_eq!(spec["templates"][0]["container"]["image"], "img");
        assert_eq!(
            spec["templates"][0]["container"]["env"][1]["name"],
            "RESTORE_VERSION"
        );
        assert_eq!(
            spec["podMetadata"]["labels"][labels::REQUESTED_BACKUP_ACTION],
            "restore-v3"
        );
    }

    #[test]
    fn a_pod_template_without_a_pod_spec_is_refused() {
        let mut pt = pod_template(json!({}));
        pt.template = None;
        let a = action(
            json!({"action": "backup", "scheduledBackupRef": {"name": "app1"}}),
            None,
        );
        assert_eq!(build(&pt, &a).unwrap_err(), "it has no template.spec");
    }
}
