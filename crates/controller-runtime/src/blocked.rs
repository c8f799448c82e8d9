//! Objects a reconcile is blocked on, watched by name until they are gone.
//!
//! A controller never overwrites an object it does not own; when one sits on a name it needs (a name collision),
//! it waits. The foreign object is not in any watch cache (caches hold our labelled objects only), so without this
//! its deletion would go unnoticed until the next resync. Each blocker gets one metadata watch with a
//! `metadata.name` field selector (cheap for the API server, no extra RBAC beyond list/watch of the kind) that
//! ends as soon as the object is gone and then triggers a reconcile of the waiting object
//! (`Controller::reconcile_on`).

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// (waiter, blocker "Kind/name") → the watch of that blocker.
type BlockerWatches<W> = Arc<Mutex<HashMap<(ObjectRef<W>, String), AbortHandle>>>;

/// Who is blocked on what, and the trigger stream that wakes the waiters.
pub struct BlockedOn<W: Resource>
where
    W::DynamicType: Eq + Hash + Clone,
{
    wake: mpsc::UnboundedSender<ObjectRef<W>>,
    watches: BlockerWatches<W>,
}

impl<W> BlockedOn<W>
where
    W: Resource + 'static,
    W::DynamicType: Eq + Hash + Clone + Send + Sync + Debug,
{
    /// The registry and the stream of waiters to reconcile (give it to `Controller::reconcile_on`).
    pub fn new() -> (Self, impl Stream<Item = ObjectRef<W>> + Send + 'static) {
        let (wake, woken) = mpsc::unbounded_channel();
        let stream = futures::stream::unfold(woken, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let blocked = BlockedOn {
            wake,
            watches: Default::default(),
        };
        (blocked, stream)
    }

    /// `waiter` cannot proceed while the `B` called `name` exists in `namespace`: reconcile it as soon as that
    /// object is gone. Registering the same pair again is a no-op.
    pub fn wait_until_gone<B>(
        &self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
        waiter: ObjectRef<W>,
    ) where
        B: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
        B::DynamicType: Default,
    {
        let blocker = format!("{}/{name}", B::kind(&B::DynamicType::default()));
        let key = (waiter.clone(), blocker);
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if watches.get(&key).is_some_and(|h| !h.is_finished()) {
            return;
        }
        let meta: Api<PartialObjectMeta<B>> = Api::namespaced(client.clone(), namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let wake = self.wake.clone();
        let registry = self.watches.clone();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(meta, config).default_backoff());
            let mut exists = false;
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::InitApply(_)) | Ok(watcher::Event::Apply(_)) => {
                        exists = true
                    }
                    Ok(watcher::Event::InitDone) if !exists => break,
                    Ok(watcher::Event::Delete(_)) => break,
                    _ => {}
                }
            }
            registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&task_key);
            let _ = wake.send(task_key.0);
        });
        watches.insert(key, task.abort_handle());
    }

    /// `waiter` is no longer blocked (it reconciled, or was deleted): stop watching its blockers.
    pub fn release(&self, waiter: &ObjectRef<W>) {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches.retain(|(w, _), handle| {
            let keep = w != waiter;
            if !keep {
                handle.abort();
            }
            keep
        });
    }
}
