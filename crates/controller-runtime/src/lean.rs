//! Lean watch caches of the children a controller applies: the store holds each child stripped of its content
//! (a ConfigMap without `data`, a CronJob without its pod template), and the full object is kept only while its
//! content is unverified.
//!
//! Why: caching children whole to diff them costs tens of KB per ScheduledBackup (scripts, pod specs), most of
//! the controller's memory at scale. Two facts make the content unnecessary once checked:
//! - what the controller *wants* changes are seen without it: every child carries a hash of the desired object
//!   as an annotation (kept in the stripped copy), so a new desired object differs by its hash;
//! - what *someone else* changes bumps the child's `resourceVersion`: a version the controller has not checked
//!   keeps its full object here until a reconcile has compared it ([`LeanCache::content_matches`]), so a hand
//!   edit or a deleted key is still seen and corrected.
//!
//! The versions known to hold what the controller wants are remembered per uid: our own apply responses
//! ([`LeanCache::applied`]) and the versions a reconcile compared. After a restart nothing is remembered: the
//! list keeps every child whole until its owner's first reconcile has compared it (the start-up peak), then the
//! cache shrinks to metadata.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::Stream;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplate, Secret};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::cache::{Watched, Watches, cached_mapped};

/// A watch cache of stripped objects plus the full objects whose content no reconcile has checked yet.
pub struct LeanCache<K: Watched> {
    store: Store<K>,
    state: Arc<Mutex<Verification<K>>>,
}

/// Per uid: the resourceVersion known to hold what the controller wants, or the full unchecked object.
struct Verification<K> {
    verified: HashMap<String, String>,
    unchecked: HashMap<String, Arc<K>>,
    /// During a re-list: the uids listed so far (the others were deleted while the watch was down).
    relisting: Option<HashSet<String>>,
}

impl<K> Default for Verification<K> {
    fn default() -> Self {
        Verification {
            verified: HashMap::new(),
            unchecked: HashMap::new(),
            relisting: None,
        }
    }
}

impl<K: Watched> Verification<K> {
    /// Follows one event of the (unstripped) watch.
    fn observe(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => self.seen(object),
            watcher::Event::InitApply(object) => {
                if let (Some(listed), Some(uid)) = (&mut self.relisting, object.uid()) {
                    listed.insert(uid);
                }
                self.seen(object);
            }
            watcher::Event::Delete(object) => {
                if let Some(uid) = object.uid() {
                    self.verified.remove(&uid);
                    self.unchecked.remove(&uid);
                }
            }
            watcher::Event::Init => self.relisting = Some(HashSet::new()),
            watcher::Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    self.verified.retain(|uid, _| listed.contains(uid));
                    self.unchecked.retain(|uid, _| listed.contains(uid));
                }
            }
        }
    }

    fn seen(&mut self, object: &K) {
        let Some(uid) = object.uid() else { return };
        if self.verified.get(&uid) == object.resource_version().as_ref() {
            self.unchecked.remove(&uid);
        } else {
            self.unchecked.insert(uid, Arc::new(object.clone()));
        }
    }
}

/// True when resourceVersion `a` is known to be older than `b`. Versions are opaque to clients; the API server's
/// are etcd revisions (integers), and anything else is treated as not comparable.
fn older(a: &str, b: &str) -> bool {
    matches!((a.parse::<u64>(), b.parse::<u64>()), (Ok(a), Ok(b)) if a < b)
}

impl<K: Watched> LeanCache<K> {
    /// The stripped object `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    /// Whether the content of `object` (a stripped object from this cache) holds what the caller wants: true
    /// when its version was verified before, else `wanted` decides on the full object, and a match is
    /// remembered (the full object is dropped). False when nothing is known (the caller then applies).
    pub fn content_matches(&self, object: &K, wanted: impl FnOnce(&K) -> bool) -> bool {
        let (Some(uid), Some(version)) = (object.uid(), object.resource_version()) else {
            return false;
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.unchecked.get(&uid) {
            Some(full) if full.resource_version().as_ref() == Some(&version) => {
                if !wanted(full) {
                    return false;
                }
                state.unchecked.remove(&uid);
                state.verified.insert(uid, version);
                true
            }
            // The full object is of another version than the cache's: compare again when the watch has both.
            Some(_) => false,
            None => state.verified.get(&uid) == Some(&version),
        }
    }

    /// Remembers the object an apply returned as holding what the controller wants.
    pub fn applied(&self, object: &K) {
        let (Some(uid), Some(version)) = (object.uid(), object.resource_version()) else {
            return;
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // An unchecked copy of this version or an older one is superseded; a newer one (changed after our
        // apply) still needs its check.
        let superseded = state.unchecked.get(&uid).is_some_and(|full| {
            full.resource_version()
                .is_some_and(|v| v == version || older(&v, &version))
        });
        if superseded {
            state.unchecked.remove(&uid);
        }
        state.verified.insert(uid, version);
    }

    /// How many full objects are held (unchecked), for tests and benches.
    pub fn unchecked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unchecked
            .len()
    }
}

/// A [`LeanCache`] of `api` selected by `config`: `strip` removes the content from what the store keeps, and
/// `observe` sees every event (stripped) to keep an index current. Also the stream of the objects it saw
/// (stripped), for the controller's triggers.
pub fn lean_cached<K>(
    api: kube::Api<K>,
    config: watcher::Config,
    watches: &Arc<Watches>,
    strip: fn(&mut K),
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (
    LeanCache<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Watched,
{
    let state = Arc::new(Mutex::new(Verification::default()));
    let recorder = state.clone();
    let (store, stream) = cached_mapped(api, config, watches, move |event| {
        // The verification sees the full object; the store and `observe` the stripped one.
        recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(&event);
        let event = event.modify(strip);
        observe(&event);
        event
    });
    (LeanCache { store, state }, stream)
}

/// A watch cache of `api` keeping each object as `strip` leaves it, for kinds that are only read (a Job's
/// outcome), never compared with a desired object: no full copy is ever kept. `observe` sees every stripped
/// event (to keep an index current).
pub fn projected<K>(
    api: kube::Api<K>,
    config: watcher::Config,
    watches: &Arc<Watches>,
    strip: fn(&mut K),
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Watched,
{
    cached_mapped(api, config, watches, move |event| {
        let event = event.modify(strip);
        observe(&event);
        event
    })
}

/// Strips a ConfigMap to its metadata.
pub fn config_map(object: &mut ConfigMap) {
    object.data = None;
    object.binary_data = None;
}

/// Strips a Secret to its metadata (and its type).
pub fn secret(object: &mut Secret) {
    object.data = None;
    object.string_data = None;
}

/// Strips a PodTemplate to its metadata.
pub fn pod_template(object: &mut PodTemplate) {
    object.template = None;
}

/// Strips a CronJob to its metadata, status, schedule and `suspend` (what a ScheduledBackup's status reports).
pub fn cron_job(object: &mut CronJob) {
    object.spec = object.spec.take().map(|spec| CronJobSpec {
        schedule: spec.schedule,
        suspend: spec.suspend,
        time_zone: spec.time_zone,
        ..Default::default()
    });
}

/// Strips a Job to its metadata and status: what its outcome is read from. Jobs are never diffed.
pub fn job(object: &mut Job) {
    object.spec = None;
    object.metadata.annotations = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(uid: &str, version: &str, script: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "app1-backup", "namespace": "ns", "uid": uid, "resourceVersion": version},
            "data": {"backup.sh": script},
        }))
        .unwrap()
    }

    fn cache(events: &[watcher::Event<ConfigMap>]) -> LeanCache<ConfigMap> {
        let (store, mut writer) = kube::runtime::reflector::store();
        let mut state = Verification::default();
        for event in events {
            state.observe(event);
            writer.apply_watcher_event(&event.clone().modify(config_map));
        }
        LeanCache {
            store,
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn has_script(object: &ConfigMap) -> bool {
        object
            .data
            .as_ref()
            .is_some_and(|d| d.get("backup.sh").map(String::as_str) == Some("new"))
    }

    #[test]
    fn the_store_keeps_no_content_and_a_checked_version_drops_its_full_copy() {
        let cache = cache(&[watcher::Event::Apply(cm("u1", "5", "new"))]);
        let lean = cache.get("ns", "app1-backup").unwrap();
        assert!(lean.data.is_none());
        assert_eq!(cache.unchecked(), 1);
        assert!(cache.content_matches(&lean, has_script));
        assert_eq!(cache.unchecked(), 0);
        // Known now: no comparison (the closure would fail the check).
        assert!(cache.content_matches(&lean, |_| false));
    }

    #[test]
    fn a_content_that_differs_is_reported_and_kept_for_the_next_check() {
        let cache = cache(&[watcher::Event::Apply(cm("u1", "5", "edited by hand"))]);
        let lean = cache.get("ns", "app1-backup").unwrap();
        assert!(!cache.content_matches(&lean, has_script));
        assert_eq!(cache.unchecked(), 1);
    }

    #[test]
    fn our_apply_response_is_known_and_a_later_edit_is_checked_again() {
        let cache = cache(&[]);
        cache.applied(&cm("u1", "7", "new"));
        let mut state = cache.state.lock().unwrap();
        // The watch delivers our version: nothing kept whole.
        state.observe(&watcher::Event::Apply(cm("u1", "7", "new")));
        assert!(state.unchecked.is_empty());
        // Someone edits it: a new version, kept whole until a reconcile compared it.
        state.observe(&watcher::Event::Apply(cm("u1", "8", "edited by hand")));
        assert_eq!(state.unchecked.len(), 1);
        drop(state);
        let lean = {
            let mut edited = cm("u1", "8", "");
            config_map(&mut edited);
            edited
        };
        assert!(!cache.content_matches(&lean, has_script));
    }

    #[test]
    fn an_apply_response_supersedes_an_older_unchecked_copy_but_not_a_newer_one() {
        let cache = cache(&[watcher::Event::Apply(cm("u1", "5", "old"))]);
        cache.applied(&cm("u1", "6", "new"));
        assert_eq!(cache.unchecked(), 0);
        let cache = self::cache(&[watcher::Event::Apply(cm("u1", "9", "edited"))]);
        cache.applied(&cm("u1", "6", "new"));
        assert_eq!(cache.unchecked(), 1);
    }

    #[test]
    fn a_relist_forgets_objects_deleted_while_the_watch_was_down() {
        let cache = cache(&[
            watcher::Event::Apply(cm("u1", "5", "new")),
            watcher::Event::Init,
            watcher::Event::InitDone,
        ]);
        assert_eq!(cache.unchecked(), 0);
        cache.applied(&cm("u2", "3", "new"));
        let mut state = cache.state.lock().unwrap();
        state.observe(&watcher::Event::Delete(cm("u2", "4", "new")));
        assert!(state.verified.is_empty());
    }

    #[test]
    fn stripped_kinds_keep_what_status_reads() {
        let mut cron: CronJob = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c"},
            "spec": {"schedule": "5 2 * * *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "y"}]}}}}},
            "status": {"lastScheduleTime": "2026-01-01T02:05:00Z"},
        }))
        .unwrap();
        cron_job(&mut cron);
        let spec = cron.spec.as_ref().unwrap();
        assert_eq!(
            (spec.schedule.as_str(), spec.suspend),
            ("5 2 * * *", Some(true))
        );
        assert!(spec.job_template.spec.is_none());
        assert!(cron.status.unwrap().last_schedule_time.is_some());
    }
}
