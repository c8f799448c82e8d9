//! Watch caches for controllers: one watch per kind feeds both a reflector store (read by reconciles) and the
//! controller's trigger stream, and readiness follows the caches' first complete lists.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use crate::health::Health;

/// Counts watch caches that completed their first list; marks the process ready when all have.
///
/// Readiness is taken from the watch streams, not from `Store::wait_until_ready`: a second task waiting on a
/// store the `Controller` also waits on can lose the wake-up and never resolve (kube-runtime 5).
pub struct Synced {
    remaining: AtomicUsize,
    health: Health,
}

impl Synced {
    /// Readiness after `caches` first lists.
    pub fn new(caches: usize, health: Health) -> Arc<Self> {
        Arc::new(Synced {
            remaining: caches.into(),
            health,
        })
    }

    fn one_done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.health.set_ready(true);
        }
    }
}

/// A watch cache of `api` and the stream of objects it saw (for `Controller::for_stream`, `owns_stream`,
/// `watches_stream`). `managedFields` are dropped before caching: controllers never read them, and on a real
/// apiserver they are often the largest part of an object.
pub fn cached<K>(
    api: Api<K>,
    config: watcher::Config,
    synced: &Arc<Synced>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let synced = synced.clone();
    let mut first_list = true;
    let stream = reflector::reflector(
        writer,
        watcher(api, config).modify(|object: &mut K| {
            object.managed_fields_mut().clear();
        }),
    )
    .inspect(move |event| {
        if first_list && matches!(event, Ok(watcher::Event::InitDone)) {
            first_list = false;
            synced.one_done();
        }
    })
    .default_backoff()
    .touched_objects();
    (store, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_every_cache_synced() {
        let health = Health::default();
        let synced = Synced::new(2, health.clone());
        synced.one_done();
        assert!(!health.is_ready());
        synced.one_done();
        assert!(health.is_ready());
    }
}

/// The object a controller's last status write returned, per object, until the watch cache catches up.
///
/// A reconcile can start (triggered by a child's watch event) before the object's own watch event for our last
/// status write arrived. Computing from that stale copy would write the status again — often with new condition
/// timestamps, which is a real change and one more round trip. The write's response is the newest state we
/// know, so it is used instead. Resource versions are compared numerically, which is what etcd-backed
/// apiservers produce; a non-numeric version disables this for that object.
pub struct LastWrite<K>(std::sync::Mutex<std::collections::HashMap<String, (u64, K)>>);

impl<K> Default for LastWrite<K> {
    fn default() -> Self {
        LastWrite(Default::default())
    }
}

fn version<K: Resource>(object: &K) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

impl<K: Resource + Clone> LastWrite<K> {
    /// Records the object a write returned.
    pub fn remember(&self, written: &K) {
        if let (Some(uid), Some(rv)) = (written.meta().uid.clone(), version(written)) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid, (rv, written.clone()));
        }
    }

    /// `cached`, or the object our last write returned when that is newer; forgets entries the cache has
    /// caught up with.
    pub fn fresh(&self, cached: &K) -> K {
        let (Some(uid), Some(cached_rv)) = (cached.meta().uid.as_deref(), version(cached)) else {
            return cached.clone();
        };
        let mut memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match memo.get(uid) {
            Some((written_rv, written)) if *written_rv > cached_rv => written.clone(),
            Some(_) => {
                memo.remove(uid);
                cached.clone()
            }
            None => cached.clone(),
        }
    }
}

#[cfg(test)]
mod last_write_tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(rv: &str, value: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "namespace": "n", "uid": "u1", "resourceVersion": rv},
            "data": {"v": value}
        }))
        .unwrap()
    }

    fn value(cm: &ConfigMap) -> &str {
        &cm.data.as_ref().unwrap()["v"]
    }

    #[test]
    fn a_stale_cached_copy_is_replaced_by_what_we_wrote() {
        let memo = LastWrite::default();
        memo.remember(&cm("12", "written"));
        assert_eq!(value(&memo.fresh(&cm("10", "stale"))), "written");
    }

    #[test]
    fn a_cache_that_caught_up_wins_and_the_entry_is_forgotten() {
        let memo = LastWrite::default();
        memo.remember(&cm("12", "written"));
        assert_eq!(value(&memo.fresh(&cm("13", "newer"))), "newer");
        assert!(memo.0.lock().unwrap().is_empty());
    }

    #[test]
    fn non_numeric_versions_disable_the_memo() {
        let memo = LastWrite::default();
        memo.remember(&cm("12", "written"));
        assert_eq!(value(&memo.fresh(&cm("abc", "cached"))), "cached");
    }
}

/// Exponential retry delays for transient failures, per object: 5 s, 10 s, 20 s … capped at 5 minutes, and
/// back to 5 s once the object reconciles successfully. (User errors are reported in status and retried when
/// the referenced object changes; this is only for API errors and the like.)
pub struct Backoff<K: Resource>(
    std::sync::Mutex<std::collections::HashMap<kube::runtime::reflector::ObjectRef<K>, u32>>,
);

impl<K: Resource> Default for Backoff<K>
where
    K::DynamicType: std::hash::Hash + Eq,
{
    fn default() -> Self {
        Backoff(Default::default())
    }
}

/// Shortest retry delay.
pub const BACKOFF_MIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest retry delay.
pub const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(300);

impl<K: Resource> Backoff<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    /// Records one more consecutive failure of `object` and returns how long to wait before retrying.
    pub fn failed(&self, object: kube::runtime::reflector::ObjectRef<K>) -> std::time::Duration {
        let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(object).or_insert(0);
        *count = count.saturating_add(1);
        let factor = 1u32 << (*count - 1).min(10);
        (BACKOFF_MIN * factor).min(BACKOFF_MAX)
    }

    /// Forgets the failures of `object` after a successful reconcile.
    pub fn succeeded(&self, object: &kube::runtime::reflector::ObjectRef<K>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(object);
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::ObjectRef;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_success() {
        let backoff = Backoff::<ConfigMap>::default();
        let a = || ObjectRef::new("a").within("n");
        let delays: Vec<u64> = (0..8).map(|_| backoff.failed(a()).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            backoff.failed(ObjectRef::new("b").within("n")).as_secs(),
            5,
            "per object"
        );
        backoff.succeeded(&a());
        assert_eq!(backoff.failed(a()).as_secs(), 5);
    }
}

/// An API for a namespaced kind: one namespace when `--namespace` is set, else the whole cluster.
pub fn scoped_api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
