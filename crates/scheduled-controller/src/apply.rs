//! Applying the desired children with server-side apply, and pruning the ones that should no longer exist.
//!
//! Each child is compared with the watch cache first, so a converged ScheduledBackup costs no writes. A child
//! whose name is taken by an object this ScheduledBackup does not own is never touched.

use std::fmt::Debug;

use crd_types::constants::field_managers::SCHEDULED_CONTROLLER;
use crd_types::{ChildReference, ScheduledBackup};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Context;
use crate::diff::contains;
use crate::error::Error;

/// What an apply pass changed, for events.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    /// `Kind/name` of children created or updated.
    pub applied: Vec<String>,
    /// `Kind/name` of children deleted.
    pub pruned: Vec<String>,
}

/// True when `object` is controlled by the owner with this uid.
pub fn controlled_by<K: Resource>(object: &K, owner_uid: &str) -> bool {
    object
        .owner_references()
        .iter()
        .any(|o| o.uid == owner_uid && o.controller == Some(true))
}

/// The ScheduledBackup whose children are synced: its uid (ownership) and its reference (to wake it up).
pub struct ScheduledBackupRef<'a> {
    /// `metadata.uid`.
    pub uid: &'a str,
    /// For [`controller_runtime::blocked::BlockedOn`].
    pub waiter: ObjectRef<ScheduledBackup>,
}

/// Applies `desired` objects of one kind, then deletes this owner's objects of that kind not in `desired`.
/// Returns the objects as they now are (from the cache, or the apply response), so status can be computed from
/// what was just applied even before the watch delivers it.
pub async fn sync_kind<K>(
    ctx: &Context,
    store: &Store<K>,
    namespace: &str,
    owner: &ScheduledBackupRef<'_>,
    desired: &[K],
    changes: &mut Changes,
    applied: &mut Vec<ChildReference>,
) -> Result<Vec<K>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let kind = K::kind(&()).to_string();
    let plural = K::plural(&()).to_string();
    let mut current = Vec::with_capacity(desired.len());
    for object in desired {
        let name = object.name_any();
        let cached = store.get(&ObjectRef::new(&name).within(namespace));
        // The cache only holds objects labelled as ours; a foreign object with the name must be looked up.
        let observed = match cached {
            Some(o) => Some(o.as_ref().clone()),
            None => api
                .get_opt(&name)
                .await
                .map_err(Error::kube(format!("reading {kind} {name}")))?,
        };
        if let Some(observed) = &observed {
            if !controlled_by(observed, owner.uid) {
                // Proceed as soon as the foreign object is gone, not at the next resync.
                ctx.blocked.wait_until_gone::<K>(
                    &ctx.client,
                    namespace,
                    &name,
                    owner.waiter.clone(),
                );
                return Err(Error::NameCollision {
                    kind: kind.clone(),
                    namespace: namespace.to_string(),
                    name,
                });
            }
            let observed_json = serde_json::to_value(observed).unwrap_or_default();
            let desired_json = serde_json::to_value(object).unwrap_or_default();
            if observed.meta().deletion_timestamp.is_none()
                && contains(&observed_json, &desired_json)
            {
                applied.push(reference::<K>(&name));
                current.push(observed.clone());
                continue;
            }
        }
        let result = api
            .patch(
                &name,
                &PatchParams::apply(SCHEDULED_CONTROLLER).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(Error::write(&kind, namespace, &name))?;
        current.push(result);
        ctx.metrics.api_write(&plural, "apply");
        changes.applied.push(format!("{kind}/{name}"));
        applied.push(reference::<K>(&name));
    }

    // Children have deterministic names (one per operation), so the candidates are looked up by name: pruning
    // costs O(1) per SB, never a scan of the whole cache.
    let wanted: Vec<String> = desired.iter().map(|o| o.name_any()).collect();
    let stale: Vec<String> = crd_types::Operation::ALL
        .into_iter()
        .map(|op| crd_types::names::child_name(&owner.waiter.name, op))
        .filter(|name| !wanted.contains(name))
        .filter(|name| {
            store
                .get(&ObjectRef::new(name).within(namespace))
                .is_some_and(|o| controlled_by(o.as_ref(), owner.uid))
        })
        .collect();
    for name in stale {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("pruning {kind} {name}"))(e)),
        }
        ctx.metrics.api_write(&plural, "delete");
        changes.pruned.push(format!("{kind}/{name}"));
    }
    Ok(current)
}

fn reference<K: Resource<DynamicType = ()>>(name: &str) -> ChildReference {
    ChildReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: name.to_string(),
        tracking_id: None,
    }
}
