//! `spec.cronJob.runOnCreate`: the first run right after the ScheduledBackup becomes Ready, as a
//! RequestedBackupAction the action-controller executes like any other.
//!
//! Once per generation that turns it on: the action is named `<sb>-on-create-<generation>` and the generation is
//! recorded in `status.runOnCreateGeneration`. A restart between the create and the status write finds the action
//! by its name (AlreadyExists is success), so it never makes two; turning `runOnCreate` off clears the record, and
//! turning it on again runs again.

use crd_types::constants::{field_managers::SCHEDULED_CONTROLLER, labels};
use crd_types::{
    KindType, RequestedBackupAction, RequestedBackupActionSpec, ScheduledBackup, ScheduledBackupRef,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use crate::Context;
use crate::error::Error;

/// The action to create now, `(name, generation)`: `runOnCreate` is on and no action was recorded for it yet.
pub fn wanted(sb: &ScheduledBackup) -> Option<(String, i64)> {
    let recorded = sb.status.as_ref().and_then(|s| s.run_on_create_generation);
    let generation = sb.metadata.generation?;
    (sb.spec.cron_job.run_on_create == Some(true) && recorded.is_none()).then(|| {
        (
            crd_types::names::run_on_create_action(&sb.name_any(), generation),
            generation,
        )
    })
}

/// The action: `spec.operation` of this ScheduledBackup, owned by it (deleted with it), labelled like its children.
pub fn action(sb: &ScheduledBackup, name: &str, uid: &str) -> RequestedBackupAction {
    let sb_name = sb.name_any();
    let mut action = RequestedBackupAction::new(
        name,
        RequestedBackupActionSpec {
            action: sb.spec.operation,
            target_version: None,
            scheduled_backup_ref: ScheduledBackupRef {
                name: sb_name.clone(),
            },
            kind_type: KindType::Job,
            ttl_seconds_after_finished: None,
        },
    );
    let mut action_labels: std::collections::BTreeMap<String, String> = [
        (
            labels::SCHEDULED_BACKUP.to_string(),
            crd_types::names::label_value(&sb_name),
        ),
        (
            labels::APP_MANAGED_BY.to_string(),
            SCHEDULED_CONTROLLER.to_string(),
        ),
    ]
    .into();
    // In the SB's shard: the action-controller of that shard is the one that sees the SB and its PodTemplate.
    if let Some(shard) = sb.labels().get(labels::SHARD) {
        action_labels.insert(labels::SHARD.to_string(), shard.clone());
    }
    action.metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: sb.namespace(),
        labels: Some(action_labels),
        owner_references: Some(vec![OwnerReference {
            api_version: crd_types::constants::API_VERSION.to_string(),
            kind: "ScheduledBackup".to_string(),
            name: sb_name,
            uid: uid.to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..Default::default()
    };
    action
}

/// Creates the action [`wanted`] names, if any; returns the generation to record. An action of that name that
/// already exists is the one this controller created before a restart.
pub async fn ensure(
    ctx: &Context,
    sb: &ScheduledBackup,
    namespace: &str,
    uid: &str,
) -> Result<Option<i64>, Error> {
    let Some((name, generation)) = wanted(sb) else {
        return Ok(None);
    };
    let api: Api<RequestedBackupAction> = Api::namespaced(ctx.client.clone(), namespace);
    match api
        .create(&PostParams::default(), &action(sb, &name, uid))
        .await
    {
        Ok(_) => {
            ctx.metrics.api_write("requestedbackupactions", "create");
            ctx.events
                .publish(
                    sb,
                    kube::runtime::events::EventType::Normal,
                    "RunOnCreate",
                    "Create",
                    format!("spec.cronJob.runOnCreate: created RequestedBackupAction {name}"),
                )
                .await;
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => {
            return Err(Error::kube(format!(
                "creating RequestedBackupAction {namespace}/{name} (spec.cronJob.runOnCreate)"
            ))(error));
        }
    }
    Ok(Some(generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(run_on_create: Option<bool>, recorded: Option<i64>) -> ScheduledBackup {
        let mut sb: ScheduledBackup = serde_saphyr::from_str(
            r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {name: app1, namespace: team-a, uid: u-1, generation: 4}
spec:
  operation: backup
  cronJob: {enabled: false}
  templateRef: {kind: internal, name: pg15}
  gpgKeySecretRef: {secretName: keys}
  tokenSecretRef: {secretName: token, tokenKey: token}
"#,
        )
        .unwrap();
        sb.spec.cron_job.run_on_create = run_on_create;
        sb.status = Some(crd_types::ScheduledBackupStatus {
            run_on_create_generation: recorded,
            ..Default::default()
        });
        sb
    }

    #[test]
    fn an_action_is_wanted_once_per_generation_that_turns_run_on_create_on() {
        assert_eq!(
            wanted(&sb(Some(true), None)),
            Some(("app1-on-create-4".into(), 4))
        );
        // Already made for an earlier generation: later spec edits do not run again.
        assert_eq!(wanted(&sb(Some(true), Some(2))), None);
        assert_eq!(wanted(&sb(Some(false), None)), None);
        assert_eq!(wanted(&sb(None, None)), None);
    }

    #[test]
    fn the_action_runs_the_sbs_operation_and_is_owned_by_it() {
        let a = action(&sb(Some(true), None), "app1-on-create-4", "u-1");
        assert_eq!(a.spec.action, crd_types::Operation::Backup);
        assert_eq!(a.spec.scheduled_backup_ref.name, "app1");
        assert_eq!(a.spec.kind_type, KindType::Job);
        assert_eq!(a.metadata.namespace.as_deref(), Some("team-a"));
        let owner = &a.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ScheduledBackup", "u-1", Some(true))
        );
        assert_eq!(
            a.metadata.labels.as_ref().unwrap()[labels::SCHEDULED_BACKUP],
            "app1"
        );
        assert!(
            !a.metadata.labels.unwrap().contains_key(labels::SHARD),
            "an unsharded SB's action is in the default shard"
        );
    }

    #[test]
    fn the_action_is_in_the_shard_of_its_scheduled_backup() {
        let mut sharded = sb(Some(true), None);
        sharded.metadata.labels = Some([(labels::SHARD.to_string(), "a".to_string())].into());
        let a = action(&sharded, "app1-on-create-4", "u-1");
        assert_eq!(a.metadata.labels.unwrap()[labels::SHARD], "a");
    }
}
