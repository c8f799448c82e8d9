//! The in-memory object store and its write pipeline.
//!
//! Every write goes through the same steps as in the apiserver: identity and server-owned
//! metadata are preserved, the status subresource split is enforced, CRD defaults are applied,
//! `generation` bumps only for changes outside metadata and status, and a write whose result is
//! identical to the stored object is a no-op (no new resourceVersion, no watch event). Every
//! real change gets the next resourceVersion and an entry in the (bounded) event log that
//! watches replay from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use rand::Rng as _;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, broadcast};

use crate::ResourceInfo;
use crate::apply::{self, Managers};
use crate::defaults::apply_defaults;
use crate::errors::ApiError;
use crate::registry::Registry;

/// Identity of a stored object. `namespace` is empty for cluster-scoped objects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjKey {
    pub(crate) group: String,
    pub(crate) plural: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl ObjKey {
    pub(crate) fn new(res: &ResourceInfo, namespace: &str, name: &str) -> Self {
        Self {
            group: res.group.clone(),
            plural: res.plural.clone(),
            namespace: if res.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }
}

/// A watch event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the event log and broadcast to open watches.
#[derive(Clone, Debug)]
pub(crate) struct LogEntry {
    pub(crate) rv: u64,
    pub(crate) key: ObjKey,
    pub(crate) event: EventType,
    pub(crate) object: Value,
    /// The object before a MODIFIED change, so a selector watch can turn it into ADDED/DELETED.
    pub(crate) previous: Option<Value>,
}

/// A write verb, as counted for "zero writes after convergence" assertions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH with a JSON, merge or strategic-merge patch.
    Patch,
    /// PATCH with `application/apply-patch+yaml` (server-side apply).
    Apply,
    /// DELETE (of one object or a collection).
    Delete,
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Apply => "apply",
            Self::Delete => "delete",
        })
    }
}

/// One write request received over HTTP, for diagnosing unexpected writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteRecord {
    /// Resource plural, with `/status` appended for status-subresource writes.
    pub resource: String,
    /// The verb.
    pub verb: Verb,
    /// Namespace (empty for cluster-scoped or collection writes across namespaces).
    pub namespace: String,
    /// Object name (empty for POST with `generateName` that failed, or collection deletes).
    pub name: String,
    /// HTTP status code of the answer.
    pub code: u16,
    /// Whether the request changed stored state (a no-op write leaves this `false`).
    pub changed: bool,
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The main resource: `.status` is ignored for types with a status subresource.
    Main,
    /// The `/status` subresource: only `.status` changes.
    Status,
    /// Test seeding and garbage collection: everything but identity may change.
    Internal,
}

/// Options of a DELETE.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    pub(crate) orphan: bool,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_rv: Option<String>,
}

struct Stored {
    value: Value,
    managers: Managers,
}

/// The whole server state. Lives behind one mutex; no lock is held across an await.
pub(crate) struct Store {
    pub(crate) registry: Registry,
    schemas: HashMap<(String, String), Value>,
    objects: BTreeMap<ObjKey, Stored>,
    rv: u64,
    log: VecDeque<Arc<LogEntry>>,
    log_capacity: usize,
    /// Every event with a resourceVersion at or below this has been dropped from the log.
    pub(crate) compacted_through: u64,
    pub(crate) events: broadcast::Sender<Arc<LogEntry>>,
    pub(crate) changed: Arc<Notify>,
    pub(crate) writes: BTreeMap<(String, Verb), u64>,
    pub(crate) write_log: Vec<WriteRecord>,
}

fn now() -> String {
    let ts = jiff::Timestamp::now();
    jiff::Timestamp::from_second(ts.as_second())
        .unwrap_or(ts)
        .to_string()
}

fn random_uid() -> String {
    let n: u128 = rand::thread_rng().r#gen();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn random_suffix() -> String {
    // The apiserver's alphabet for generateName: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

fn meta_str(obj: &Value, field: &str) -> Option<String> {
    obj["metadata"][field].as_str().map(str::to_owned)
}

/// Drops empty optional metadata collections, as the apiserver's `omitempty` encoding does, so
/// `finalizers: []` and an absent list compare equal.
fn normalize(obj: &mut Value) {
    let m = meta(obj);
    for field in ["finalizers", "labels", "annotations", "ownerReferences"] {
        let empty = match m.get(field) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            m.remove(field);
        }
    }
    m.remove("managedFields");
}

/// Secrets: `stringData` is write-only and merged into base64 `data`.
fn fold_string_data(res: &ResourceInfo, obj: &mut Value) {
    if !(res.group.is_empty() && res.plural == "secrets") {
        return;
    }
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in string_data {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

fn finalizers(obj: &Value) -> Vec<Value> {
    obj["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

impl Store {
    pub(crate) fn new(
        registry: Registry,
        schemas: HashMap<(String, String), Value>,
        log_capacity: usize,
    ) -> Self {
        let (events, _) = broadcast::channel(16 * 1024);
        Self {
            registry,
            schemas,
            objects: BTreeMap::new(),
            rv: 1,
            log: VecDeque::new(),
            log_capacity: log_capacity.max(1),
            compacted_through: 0,
            events,
            changed: Arc::new(Notify::new()),
            writes: BTreeMap::new(),
            write_log: Vec::new(),
        }
    }

    /// The current (latest) resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    fn info(&self, key: &ObjKey) -> Option<ResourceInfo> {
        self.registry
            .by_group_plural(&key.group, &key.plural)
            .cloned()
    }

    pub(crate) fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key).map(|s| &s.value)
    }

    /// All objects of one resource, optionally in one namespace, ordered by namespace and name.
    pub(crate) fn list<'a>(
        &'a self,
        res: &'a ResourceInfo,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Value)> + 'a {
        self.objects
            .iter()
            .filter(move |(k, _)| {
                k.group == res.group
                    && k.plural == res.plural
                    && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(k, s)| (k, &s.value))
    }

    /// Events retained after `rv`, or `None` if some of them were compacted away.
    pub(crate) fn events_since(&self, rv: u64) -> Option<Vec<Arc<LogEntry>>> {
        if rv < self.compacted_through {
            return None;
        }
        Some(self.log.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Forgets every retained event, so any watch from an older resourceVersion gets 410.
    pub(crate) fn compact(&mut self) {
        self.log.clear();
        self.compacted_through = self.rv;
    }

    fn record(&mut self, key: &ObjKey, event: EventType, object: Value, previous: Option<Value>) {
        let entry = Arc::new(LogEntry {
            rv: self.rv,
            key: key.clone(),
            event,
            object,
            previous,
        });
        self.log.push_back(entry.clone());
        while self.log.len() > self.log_capacity {
            if let Some(dropped) = self.log.pop_front() {
                self.compacted_through = dropped.rv;
            }
        }
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(entry);
        self.changed.notify_waiters();
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn defaults(&self, res: &ResourceInfo, obj: &mut Value) {
        if let Some(schema) = self.schemas.get(&(res.group.clone(), res.plural.clone())) {
            apply_defaults(schema, obj);
        }
    }

    /// Counts one write request.
    pub(crate) fn count(&mut self, record: WriteRecord) {
        *self
            .writes
            .entry((record.resource.clone(), record.verb))
            .or_default() += 1;
        self.write_log.push(record);
    }

    /// POST. `keep_status` is set for test seeding; API creates drop `.status` on types with a
    /// status subresource, as the apiserver does.
    pub(crate) fn create(
        &mut self,
        res: &ResourceInfo,
        namespace: &str,
        mut obj: Value,
        manager: Option<&str>,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object".to_owned(),
            ));
        }
        let name = match (meta_str(&obj, "name"), meta_str(&obj, "generateName")) {
            (Some(name), _) if !name.is_empty() => name,
            (_, Some(prefix)) if !prefix.is_empty() => loop {
                let candidate = format!("{prefix}{}", random_suffix());
                if !self
                    .objects
                    .contains_key(&ObjKey::new(res, namespace, &candidate))
                {
                    break candidate;
                }
            },
            _ => {
                return Err(ApiError::invalid(
                    &res.plural,
                    "",
                    "metadata.name: Required value: name or generateName is required".to_owned(),
                ));
            }
        };
        if res.namespaced {
            if let Some(ns) = meta_str(&obj, "namespace").filter(|ns| ns != namespace) {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
                )));
            }
            if namespace.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "{} is namespaced; POST to /namespaces/{{ns}}/{}",
                    res.plural, res.plural
                )));
            }
        }
        let key = ObjKey::new(res, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&res.plural, &name));
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        if res.has_status && !keep_status {
            obj.as_object_mut().map(|o| o.remove("status"));
        }
        self.defaults(res, &mut obj);
        fold_string_data(res, &mut obj);
        normalize(&mut obj);
        let rv = self.next_rv();
        {
            let m = meta(&mut obj);
            m.insert("name".into(), json!(name));
            if res.namespaced {
                m.insert("namespace".into(), json!(namespace));
            } else {
                m.remove("namespace");
            }
            m.insert("uid".into(), json!(random_uid()));
            m.insert("creationTimestamp".into(), json!(now()));
            m.insert("generation".into(), json!(1));
            m.insert("resourceVersion".into(), json!(rv.to_string()));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
        }
        let mut managers = Managers::new();
        if let Some(manager) = manager {
            apply::record_update(
                &json!({}),
                &obj,
                &mut managers,
                &(manager.to_owned(), false),
            );
        }
        self.objects.insert(
            key.clone(),
            Stored {
                value: obj.clone(),
                managers,
            },
        );
        self.record(&key, EventType::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Validates a client-sent `resourceVersion` precondition.
    fn check_precondition(&self, key: &ObjKey, candidate: &Value) -> Result<(), ApiError> {
        let current = self.get(key).and_then(|v| meta_str(v, "resourceVersion"));
        match meta_str(candidate, "resourceVersion").filter(|rv| !rv.is_empty()) {
            Some(sent) if Some(&sent) != current.as_ref() => {
                Err(ApiError::conflict(&key.plural, &key.name))
            }
            _ => Ok(()),
        }
    }

    /// PUT, or the result of a JSON/merge patch: replaces the object (within `target`).
    pub(crate) fn update(
        &mut self,
        res: &ResourceInfo,
        key: &ObjKey,
        candidate: Value,
        target: Target,
        manager: Option<&str>,
    ) -> Result<Value, ApiError> {
        let old = self
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.plural, &key.name))?;
        if target != Target::Internal {
            self.check_precondition(key, &candidate)?;
        }
        let new = self.commit(res, key, candidate, target)?;
        if let (Some(manager), Some(stored)) = (manager, self.objects.get_mut(key)) {
            let who = (manager.to_owned(), target == Target::Status);
            apply::record_update(&old, &new, &mut stored.managers, &who);
        }
        Ok(new)
    }

    /// Server-side apply. Returns the object and whether it was created.
    #[allow(clippy::too_many_arguments)] // mirrors the request: where, what, who, how
    pub(crate) fn apply(
        &mut self,
        res: &ResourceInfo,
        namespace: &str,
        name: &str,
        mut config: Value,
        target: Target,
        manager: &str,
        force: bool,
    ) -> Result<(Value, bool), ApiError> {
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "an apply configuration must be an object".to_owned(),
            ));
        }
        if let Some(sent) = meta_str(&config, "name").filter(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({sent}) does not match the name on the URL ({name})"
            )));
        }
        let key = ObjKey::new(res, namespace, name);
        self.check_precondition(&key, &config)?;
        match target {
            Target::Status => {
                config = json!({"status": config.get("status").cloned().unwrap_or(Value::Null)})
            }
            _ if res.has_status => {
                config.as_object_mut().map(|o| o.remove("status"));
            }
            _ => {}
        }
        fold_string_data(res, &mut config);
        let who = (manager.to_owned(), target == Target::Status);
        let Some(stored) = self.objects.get_mut(&key) else {
            if target == Target::Status {
                return Err(ApiError::not_found(&res.plural, name));
            }
            let mut managers = Managers::new();
            let mut obj = apply::apply(&json!({}), &config, &mut managers, &who, force)
                .map_err(|c| ApiError::apply_conflict(&res.plural, name, &c))?;
            meta(&mut obj).insert("name".into(), json!(name));
            let created = self.create(res, namespace, obj, None, false)?;
            if let Some(stored) = self.objects.get_mut(&key) {
                stored.managers = managers;
            }
            return Ok((created, true));
        };
        let mut managers = stored.managers.clone();
        let merged = apply::apply(&stored.value, &config, &mut managers, &who, force)
            .map_err(|c| ApiError::apply_conflict(&res.plural, name, &c))?;
        let result = self.commit(res, &key, merged, target)?;
        if let Some(stored) = self.objects.get_mut(&key) {
            stored.managers = managers;
        }
        Ok((result, false))
    }

    /// The shared update pipeline. Returns the stored object (unchanged for a no-op).
    fn commit(
        &mut self,
        res: &ResourceInfo,
        key: &ObjKey,
        candidate: Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        let old = self
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.plural, &key.name))?;
        if !candidate.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object".to_owned(),
            ));
        }
        if let Some(sent) = meta_str(&candidate, "name").filter(|n| *n != key.name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({sent}) does not match the name on the URL ({})",
                key.name
            )));
        }
        let mut new = match target {
            Target::Status => {
                let mut merged = old.clone();
                match candidate.get("status") {
                    Some(status) if !status.is_null() => merged["status"] = status.clone(),
                    _ => {
                        merged.as_object_mut().map(|o| o.remove("status"));
                    }
                }
                merged
            }
            Target::Main | Target::Internal => {
                let mut new = candidate;
                if target == Target::Main && res.has_status {
                    match old.get("status") {
                        Some(status) => new["status"] = status.clone(),
                        None => {
                            new.as_object_mut().map(|o| o.remove("status"));
                        }
                    }
                }
                fold_string_data(res, &mut new);
                new
            }
        };
        // The apiserver defaults the whole object (status included) on every write.
        self.defaults(res, &mut new);
        new["apiVersion"] = json!(res.api_version());
        new["kind"] = json!(res.kind);
        {
            let server_owned = [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ];
            let old_meta = old["metadata"].clone();
            let m = meta(&mut new);
            for field in server_owned {
                match old_meta.get(field) {
                    Some(v) => m.insert(field.to_owned(), v.clone()),
                    None => m.remove(field),
                };
            }
        }
        normalize(&mut new);
        if old["metadata"].get("deletionTimestamp").is_some() {
            let before = finalizers(&old);
            if let Some(added) = finalizers(&new).iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &res.plural,
                    &key.name,
                    format!(
                        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [{}]",
                        added.as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        if spec_part(&old) != spec_part(&new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta(&mut new).insert("generation".into(), json!(generation));
        }
        if new == old {
            return Ok(old);
        }
        let rv = self.next_rv();
        meta(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        if let Some(stored) = self.objects.get_mut(key) {
            stored.value = new.clone();
        }
        self.record(key, EventType::Modified, new.clone(), Some(old));
        if new["metadata"].get("deletionTimestamp").is_some() && finalizers(&new).is_empty() {
            return Ok(self.remove_now(key, false).unwrap_or(new));
        }
        Ok(new)
    }

    /// DELETE: with finalizers the object only gets a `deletionTimestamp`; without, it is
    /// removed and its dependents are garbage-collected (unless orphaned).
    pub(crate) fn delete(
        &mut self,
        res: &ResourceInfo,
        key: &ObjKey,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let current = self
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.plural, &key.name))?;
        let uid_mismatch = opts
            .precondition_uid
            .as_ref()
            .is_some_and(|uid| Some(uid) != meta_str(&current, "uid").as_ref());
        let rv_mismatch = opts
            .precondition_rv
            .as_ref()
            .is_some_and(|rv| Some(rv) != meta_str(&current, "resourceVersion").as_ref());
        if uid_mismatch || rv_mismatch {
            return Err(ApiError::conflict(&res.plural, &key.name));
        }
        if !finalizers(&current).is_empty() {
            if current["metadata"].get("deletionTimestamp").is_some() {
                return Ok(current);
            }
            let mut marked = current.clone();
            let rv = self.next_rv();
            {
                let m = meta(&mut marked);
                m.insert("deletionTimestamp".into(), json!(now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                m.insert("resourceVersion".into(), json!(rv.to_string()));
            }
            if let Some(stored) = self.objects.get_mut(key) {
                stored.value = marked.clone();
            }
            self.record(key, EventType::Modified, marked.clone(), Some(current));
            return Ok(marked);
        }
        self.remove_now(key, opts.orphan)
            .ok_or_else(|| ApiError::not_found(&res.plural, &key.name))
    }

    /// Removes an object for good, emits DELETED, then collects its dependents.
    fn remove_now(&mut self, key: &ObjKey, orphan: bool) -> Option<Value> {
        let stored = self.objects.remove(key)?;
        let mut gone = stored.value;
        let rv = self.next_rv();
        meta(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
        self.record(key, EventType::Deleted, gone.clone(), None);
        if !orphan && let Some(uid) = meta_str(&gone, "uid") {
            self.collect_garbage(&uid);
        }
        Some(gone)
    }

    /// What the garbage collector does when an owner disappears: a dependent whose other owners
    /// are all gone is deleted (respecting its finalizers); one with a surviving owner only loses
    /// the reference to the deleted owner.
    fn collect_garbage(&mut self, owner_uid: &str) {
        let refs_owner = |v: &Value| {
            v["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner_uid))
        };
        let dependents: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, s)| refs_owner(&s.value))
            .map(|(k, _)| k.clone())
            .collect();
        for key in dependents {
            let Some(obj) = self.get(&key).cloned() else {
                continue;
            };
            let Some(res) = self.info(&key) else {
                continue;
            };
            let other_owner_alive = obj["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["uid"].as_str())
                .filter(|uid| *uid != owner_uid)
                .any(|uid| {
                    self.objects
                        .values()
                        .any(|s| s.value["metadata"]["uid"] == uid)
                });
            if other_owner_alive {
                let mut trimmed = obj.clone();
                if let Some(refs) = trimmed["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != owner_uid);
                }
                // Cannot fail: the object exists and identity is unchanged.
                let _ = self.commit(&res, &key, trimmed, Target::Internal);
            } else {
                let _ = self.delete(&res, &key, &DeleteOptions::default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let mut registry = Registry::default();
        for r in ResourceInfo::defaults() {
            registry.add(r);
        }
        Store::new(registry, HashMap::new(), 100)
    }

    fn cm() -> ResourceInfo {
        ResourceInfo::new("", "v1", "ConfigMap", "configmaps", true, false)
    }

    fn sb() -> ResourceInfo {
        ResourceInfo::new(
            "riotkit.org",
            "v1alpha1",
            "ScheduledBackup",
            "scheduledbackups",
            true,
            true,
        )
    }

    #[test]
    fn generate_name_gets_a_five_character_random_suffix() {
        let mut s = store();
        let a = s
            .create(
                &cm(),
                "ns",
                json!({"metadata": {"generateName": "job-"}}),
                None,
                false,
            )
            .unwrap();
        let name = a["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("job-") && name.len() == 9, "{name}");
    }

    #[test]
    fn generation_bumps_only_for_changes_outside_metadata_and_status() {
        let mut s = store();
        let obj = s
            .create(
                &sb(),
                "ns",
                json!({"metadata": {"name": "a"}, "spec": {"x": 1}}),
                None,
                false,
            )
            .unwrap();
        let key = ObjKey::new(&sb(), "ns", "a");
        assert_eq!(obj["metadata"]["generation"], 1);
        let mut labelled = obj.clone();
        labelled["metadata"]["labels"] = json!({"l": "1"});
        let v = s.update(&sb(), &key, labelled, Target::Main, None).unwrap();
        assert_eq!(v["metadata"]["generation"], 1);
        let v = s
            .update(
                &sb(),
                &key,
                json!({"status": {"p": 1}}),
                Target::Status,
                None,
            )
            .unwrap();
        assert_eq!(v["metadata"]["generation"], 1);
        let mut spec = v.clone();
        spec["spec"]["x"] = json!(2);
        let v = s.update(&sb(), &key, spec, Target::Main, None).unwrap();
        assert_eq!(v["metadata"]["generation"], 2);
    }

    #[test]
    fn event_log_is_bounded_and_old_versions_report_compaction() {
        let mut s = Store::new(store().registry, HashMap::new(), 2);
        for i in 0..4 {
            s.create(
                &cm(),
                "ns",
                json!({"metadata": {"name": format!("c{i}")}}),
                None,
                false,
            )
            .unwrap();
        }
        assert!(s.events_since(1).is_none());
        assert_eq!(s.events_since(s.resource_version() - 2).unwrap().len(), 2);
    }

    #[test]
    fn dependent_with_a_surviving_owner_only_loses_the_reference() {
        let mut s = store();
        let a = s
            .create(&cm(), "ns", json!({"metadata": {"name": "a"}}), None, false)
            .unwrap();
        let b = s
            .create(&cm(), "ns", json!({"metadata": {"name": "b"}}), None, false)
            .unwrap();
        let owner = |o: &Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]});
        s.create(
            &cm(),
            "ns",
            json!({"metadata": {"name": "child", "ownerReferences": [owner(&a), owner(&b)]}}),
            None,
            false,
        )
        .unwrap();
        s.delete(
            &cm(),
            &ObjKey::new(&cm(), "ns", "a"),
            &DeleteOptions::default(),
        )
        .unwrap();
        let child = s
            .get(&ObjKey::new(&cm(), "ns", "child"))
            .expect("child survives");
        assert_eq!(child["metadata"]["ownerReferences"], json!([owner(&b)]));
        s.delete(
            &cm(),
            &ObjKey::new(&cm(), "ns", "b"),
            &DeleteOptions::default(),
        )
        .unwrap();
        assert!(s.get(&ObjKey::new(&cm(), "ns", "child")).is_none());
    }

    #[test]
    fn secret_string_data_is_folded_into_base64_data() {
        let mut s = store();
        let secret = ResourceInfo::new("", "v1", "Secret", "secrets", true, false);
        let v = s
            .create(
                &secret,
                "ns",
                json!({"metadata": {"name": "s"}, "stringData": {"k": "hello"}}),
                None,
                false,
            )
            .unwrap();
        assert_eq!(v["data"]["k"], "aGVsbG8=");
        assert!(v.get("stringData").is_none());
    }
}
