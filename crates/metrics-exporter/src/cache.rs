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
