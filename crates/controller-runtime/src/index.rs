//! Reverse indexes kept up to date from a watch (the linkerd2 policy-controller pattern): "which ScheduledBackups
//! refer to Secret `ns/x`" answered in O(answer), instead of scanning the whole watch store on every Secret event
//! in the cluster (O(N) per event, O(N²) per resync).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::RwLock;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

/// The keys an object is found under (e.g. `namespace/secret-name` for every Secret it refers to).
pub type KeysOf<K> = Box<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// Objects of kind `K` by the keys [`KeysOf`] gives them.
pub struct ReverseIndex<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    keys_of: KeysOf<K>,
    state: RwLock<State<K>>,
}

struct State<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    by_key: HashMap<String, HashSet<ObjectRef<K>>>,
    keys: HashMap<ObjectRef<K>, Vec<String>>,
    /// A re-list in progress: the objects it has listed so far, to drop the ones it did not list at its end.
    relisting: Option<HashSet<ObjectRef<K>>>,
}

impl<K> ReverseIndex<K>
where
    K: Resource + Clone,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    /// An empty index filing objects under `keys_of(object)`.
    pub fn new(keys_of: impl Fn(&K) -> Vec<String> + Send + Sync + 'static) -> Self {
        ReverseIndex {
            keys_of: Box::new(keys_of),
            state: RwLock::new(State {
                by_key: HashMap::new(),
                keys: HashMap::new(),
                relisting: None,
            }),
        }
    }

    /// The objects filed under `key`.
    pub fn get(&self, key: &str) -> Vec<ObjectRef<K>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .by_key
            .get(key)
            .map(|refs| refs.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Follows one watch event.
    pub fn observe(&self, event: &watcher::Event<K>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(object) => state.file(object, &self.keys_of),
            watcher::Event::Delete(object) => state.unfile(&ObjectRef::from_obj(object)),
            watcher::Event::Init => state.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(object) => {
                state.file(object, &self.keys_of);
                if let Some(listed) = &mut state.relisting {
                    listed.insert(ObjectRef::from_obj(object));
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = state.relisting.take() {
                    let gone: Vec<_> = state
                        .keys
                        .keys()
                        .filter(|r| !listed.contains(*r))
                        .cloned()
                        .collect();
                    for object in gone {
                        state.unfile(&object);
                    }
                }
            }
        }
    }
}

impl<K: Resource> State<K>
where
    K::DynamicType: Eq + Hash + Clone + Default,
{
    fn file(&mut self, object: &K, keys_of: &KeysOf<K>) {
        let reference = ObjectRef::from_obj(object);
        self.unfile(&reference);
        let keys = keys_of(object);
        for key in &keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(reference.clone());
        }
        self.keys.insert(reference, keys);
    }

    fn unfile(&mut self, reference: &ObjectRef<K>) {
        for key in self.keys.remove(reference).unwrap_or_default() {
            if let Some(refs) = self.by_key.get_mut(&key) {
                refs.remove(reference);
                if refs.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

/// Per key (e.g. a Secret's `namespace/name`), how many watch events it had. Something computed from an object
/// at epoch E is stale once its epoch moved: cheaper than comparing content, and safe across a re-list (which
/// bumps every key it touches).
#[derive(Default)]
pub struct Epochs(std::sync::Mutex<HashMap<String, u64>>);

impl Epochs {
    /// `key` had a watch event.
    pub fn bump(&self, key: &str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default() += 1;
    }

    /// The epoch of `key` (0 before its first event).
    pub fn get(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str, refers_to: &[&str]) -> ConfigMap {
        let data: std::collections::BTreeMap<String, String> = refers_to
            .iter()
            .map(|r| (r.to_string(), String::new()))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns"}, "data": data
        }))
        .unwrap()
    }

    fn index() -> ReverseIndex<ConfigMap> {
        ReverseIndex::new(|cm: &ConfigMap| {
            cm.data
                .clone()
                .unwrap_or_default()
                .into_keys()
                .map(|k| format!("ns/{k}"))
                .collect()
        })
    }

    fn names(refs: Vec<ObjectRef<ConfigMap>>) -> Vec<String> {
        let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn objects_are_found_by_each_key_and_move_when_their_keys_change() {
        let index = index();
        index.observe(&watcher::Event::Apply(cm("a", &["s1", "s2"])));
        index.observe(&watcher::Event::Apply(cm("b", &["s2"])));
        assert_eq!(names(index.get("ns/s1")), ["a"]);
        assert_eq!(names(index.get("ns/s2")), ["a", "b"]);
        index.observe(&watcher::Event::Apply(cm("a", &["s3"])));
        assert!(index.get("ns/s1").is_empty());
        assert_eq!(names(index.get("ns/s2")), ["b"]);
        assert_eq!(names(index.get("ns/s3")), ["a"]);
        index.observe(&watcher::Event::Delete(cm("b", &["s2"])));
        assert!(index.get("ns/s2").is_empty());
    }

    #[test]
    fn a_relist_drops_objects_deleted_while_the_watch_was_down() {
        let index = index();
        index.observe(&watcher::Event::Apply(cm("gone", &["s1"])));
        index.observe(&watcher::Event::Apply(cm("kept", &["s1"])));
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(cm("kept", &["s1"])));
        index.observe(&watcher::Event::InitDone);
        assert_eq!(names(index.get("ns/s1")), ["kept"]);
    }
}
