//! Applying the desired children with server-side apply, and pruning the ones that should no longer exist.
//!
//! Each child is compared with the watch cache first, so a converged ScheduledBackup costs no writes. A child
//! whose name is taken by an object this ScheduledBackup does not own is never touched.

use std::fmt::Debug;

use controller_runtime::cache::Watched;
use controller_runtime::lean::LeanCache;
use crd_types::constants::annotations::SPEC_HASH;
use crd_types::constants::field_managers::SCHEDULED_CONTROLLER;
use crd_types::{ChildReference, ScheduledBackup};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
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
/// Returns the objects as they now are (stripped from the cache, or the full apply response), so status can be
/// computed from what was just applied even before the watch delivers it.
///
/// Each desired object is applied with its hash as the `riotkit.org/spec-hash` annotation: a cached child whose
/// hash differs is applied without comparing content (the cache keeps none, see
/// [`controller_runtime::lean`]); one whose hash matches is compared only when its version is unchecked (a
/// hand edit, a restart).
pub async fn sync_kind<K>(
    ctx: &Context,
    cache: &LeanCache<K>,
    namespace: &str,
    owner: &ScheduledBackupRef<'_>,
    desired: &[K],
    changes: &mut Changes,
    applied: &mut Vec<(ChildReference, String)>,
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
        let object = &with_spec_hash(object);
        let name = object.name_any();
        let hash = object.annotations()[SPEC_HASH].clone();
        let cached = cache.get(namespace, &name);
        if let Some(observed) = &cached {
            if !controlled_by(observed.as_ref(), owner.uid) {
                return Err(collision::<K>(ctx, owner, namespace, name));
            }
            if unchanged(cache, observed, object) {
                applied.push((reference::<K>(&name), hash));
                current.push(observed.as_ref().clone());
                continue;
            }
        } else {
            // The cache only holds objects labelled as ours; a foreign object with the name must be looked up.
            let foreign = api
                .get_opt(&name)
                .await
                .map_err(Error::kube(format!("reading {kind} {name}")))?;
            if foreign.is_some_and(|o| !controlled_by(&o, owner.uid)) {
                return Err(collision::<K>(ctx, owner, namespace, name));
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
        cache.applied(&result);
        current.push(result);
        ctx.metrics.api_write(&plural, "apply");
        changes.applied.push(format!("{kind}/{name}"));
        applied.push((reference::<K>(&name), hash));
    }

    // Children have deterministic names (one per operation), so the candidates are looked up by name: pruning
    // costs O(1) per SB, never a scan of the whole cache.
    let wanted: Vec<String> = desired.iter().map(|o| o.name_any()).collect();
    let stale: Vec<String> = crd_types::Operation::ALL
        .into_iter()
        .map(|op| crd_types::names::child_name(&owner.waiter.name, op))
        .filter(|name| !wanted.contains(name))
        .filter(|name| {
            cache
                .get(namespace, name)
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

/// `object` with the hash of its content as the `riotkit.org/spec-hash` annotation.
pub fn with_spec_hash<K: Resource + Serialize + Clone>(object: &K) -> K {
    let hash = template_engine::object_hash(object);
    let mut object = object.clone();
    object
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SPEC_HASH.to_string(), hash);
    object
}

/// True when the cached (stripped) child already holds `desired` (which carries its spec hash): same hash, not
/// being deleted, and its content checked against `desired` when its version is unchecked.
fn unchanged<K>(cache: &LeanCache<K>, observed: &K, desired: &K) -> bool
where
    K: Watched + Serialize,
{
    let hash = |o: &K| o.annotations().get(SPEC_HASH).cloned();
    observed.meta().deletion_timestamp.is_none()
        && hash(observed) == hash(desired)
        && cache.content_matches(observed, |full| {
            contains(
                &serde_json::to_value(full).unwrap_or_default(),
                &serde_json::to_value(desired).unwrap_or_default(),
            )
        })
}

/// True when the cache holds child `name` owned by `owner_uid`, not being deleted, carrying spec hash `hash`
/// and with its content verified: what a remembered pass ([`crate::memo`]) needs to be reused.
pub fn current<K: Watched>(
    cache: &LeanCache<K>,
    namespace: &str,
    name: &str,
    owner_uid: &str,
    hash: &str,
) -> bool {
    cache.get(namespace, name).is_some_and(|o| {
        controlled_by(o.as_ref(), owner_uid)
            && o.meta().deletion_timestamp.is_none()
            && o.annotations().get(SPEC_HASH).map(String::as_str) == Some(hash)
            && cache.content_matches(&o, |_| false)
    })
}

/// Waits (by name) for a foreign object holding a child's name to go, and reports the collision.
fn collision<K>(
    ctx: &Context,
    owner: &ScheduledBackupRef<'_>,
    namespace: &str,
    name: String,
) -> Error
where
    K: Watched<Scope = k8s_openapi::NamespaceResourceScope>,
{
    // Proceed as soon as the foreign object is gone, not at the next resync.
    ctx.blocked
        .wait_until_gone::<K>(&ctx.client, namespace, &name, owner.waiter.clone());
    Error::NameCollision {
        kind: K::kind(&()).to_string(),
        namespace: namespace.to_string(),
        name,
    }
}

fn reference<K: Resource<DynamicType = ()>>(name: &str) -> ChildReference {
    ChildReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: name.to_string(),
        tracking_id: None,
    }
}
