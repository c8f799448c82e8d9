//! The in-memory object store and its write pipeline.
//!
//! Every write goes through the same steps as in the apiserver: identity and server-owned
//! metadata are preserved, the status subresource split is enforced, CRD defaults are applied,
//! `generation` bumps only for changes outside metadata and status, and a write whose result is
//! identical to the stored object is a no-op (no new resourceVersion, no watch event). Every
//! real change gets the next resourceVersion and an entry in the (bounded) event log that
//! watches replay from.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use rand::Rng as _;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, broadcast};

use crate::ResourceInfo;
use crate::apply::{self, Manager, Managers};
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

/// `propagationPolicy` of a DELETE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// The owner goes at once; the garbage collector deletes dependents afterwards.
    #[default]
    Background,
    /// The owner waits (finalizer `foregroundDeletion`) for its blocking dependents.
    Foreground,
    /// Dependents lose their reference (finalizer `orphan`), then the owner goes.
    Orphan,
}

/// Options of a DELETE.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    pub(crate) propagation: Propagation,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_rv: Option<String>,
}

#[derive(Clone)]
struct Stored {
    value: Value,
    managers: Managers,
}

/// `fieldValidation` of a write request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Unknown fields are dropped silently.
    Ignore,
    /// Unknown fields are dropped with one `Warning` header each (the default).
    #[default]
    Warn,
    /// Unknown fields fail the request.
    Strict,
}

/// What the HTTP layer tells the write pipeline about the request in progress, and the
/// warnings the write produced for it (see `routes::write`).
#[derive(Debug, Default)]
pub(crate) struct RequestContext {
    pub(crate) field_validation: FieldValidation,
    /// The write is the result of a JSON/merge/strategic patch (its strict-decoding error
    /// quotes the patched object, recording e1).
    pub(crate) patch: bool,
    pub(crate) warnings: Vec<String>,
}

/// The whole server state. Lives behind one mutex; no lock is held across an await.
pub(crate) struct Store {
    pub(crate) registry: Registry,
    schemas: HashMap<(String, String), Arc<Value>>,
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
    /// Whether the garbage-collector task is running ([`ensure_gc_task`]).
    gc_running: bool,
    /// Built-in controllers and namespace enforcement (`kcm`, `namespaces`).
    pub(crate) options: crate::kcm::Options,
    /// The API request being served (`fieldValidation`, warnings); `None` for writes of the
    /// built-in controllers and test helpers, whose warnings go nowhere.
    pub(crate) request: Option<RequestContext>,
    /// Inside [`Store::dry_run`]: changes are neither logged nor broadcast.
    dry_run: bool,
}

pub(crate) fn now() -> String {
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

/// Built-in kinds are Go structs whose `data`/`binaryData` maps are `omitempty`: an empty map is
/// not stored (recordings g1, g2: a ConfigMap sent with `data: {}` comes back without `data`).
fn drop_empty_maps(res: &ResourceInfo, obj: &mut Value) {
    if !crate::registry::is_builtin_group(&res.group) {
        return;
    }
    if let Some(o) = obj.as_object_mut() {
        for field in ["data", "binaryData"] {
            if o.get(field)
                .is_some_and(|v| v.as_object().is_some_and(|m| m.is_empty()) || v.is_null())
            {
                o.remove(field);
            }
        }
    }
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

/// Whether the type's strategy maintains `metadata.generation`: custom resources always do;
/// of the built-in types the fake serves only the workload kinds with a `spec` (Job, CronJob,
/// Pod) do. ConfigMaps, Secrets, Events, Namespaces, ServiceAccounts and Leases never carry it
/// (recordings a3, f1, d2, h1).
pub(crate) fn tracks_generation(res: &ResourceInfo) -> bool {
    match res.group.as_str() {
        "" => res.plural == "pods",
        "batch" => true,
        "events.k8s.io" | "coordination.k8s.io" => false,
        _ => true,
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
            schemas: schemas.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            objects: BTreeMap::new(),
            rv: 1,
            log: VecDeque::new(),
            log_capacity: log_capacity.max(1),
            compacted_through: 0,
            events,
            changed: Arc::new(Notify::new()),
            writes: BTreeMap::new(),
            write_log: Vec::new(),
            gc_running: false,
            options: crate::kcm::Options::default(),
            request: None,
            dry_run: false,
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
        if self.dry_run {
            return;
        }
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

    /// `dryRun=All`: runs a write with everything it checks (admission, validation, conflicts)
    /// and then forgets it: no object, resourceVersion or watch event is kept.
    pub(crate) fn dry_run<T>(&mut self, write: impl FnOnce(&mut Self) -> T) -> T {
        let objects = self.objects.clone();
        let rv = self.rv;
        self.dry_run = true;
        let out = write(self);
        self.dry_run = false;
        self.objects = objects;
        self.rv = rv;
        out
    }

    /// Decoding of a written object as the apiserver does it: an `apiVersion`/`kind` of another
    /// type is 400; fields the schema does not declare fail the request under `Strict`, or are
    /// reported as warnings (`Warn`, the default) and dropped (recordings e1, e2).
    fn decode(&mut self, res: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
        if let Some(sent) = obj["apiVersion"].as_str()
            && sent != res.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({sent}) does not match the expected API version ({})",
                res.api_version()
            )));
        }
        if let Some(sent) = obj["kind"].as_str()
            && sent != res.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({sent}) does not match the expected kind ({})",
                res.kind
            )));
        }
        let Some(schema) = self.decoding_schema(res) else {
            return Ok(());
        };
        let unknown = crate::openapi::unknown_fields(schema.root(), obj);
        if unknown.is_empty() {
            return Ok(());
        }
        let listed: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        let (mode, patch) = self
            .request
            .as_ref()
            .map_or((FieldValidation::Warn, false), |r| {
                (r.field_validation, r.patch)
            });
        match mode {
            FieldValidation::Strict if patch => {
                let mut shown = obj.clone();
                normalize(&mut shown);
                // Quotes the patched object (managedFields included on a cluster; the fake has
                // none to quote).
                let cause = format!(
                    "Invalid value: {:?}: strict decoding error: {}",
                    serde_json::to_string(&shown).unwrap_or_default(),
                    listed.join(", ")
                );
                return Err(ApiError::invalid_with_details(
                    format!(" \"\" is invalid: patch: {cause}"),
                    json!({"causes": [{"reason": "FieldValueInvalid", "message": cause, "field": "patch"}]}),
                ));
            }
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(format!(
                    "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                    listed.join(", "),
                    kind = res.kind,
                    version = res.version,
                )));
            }
            FieldValidation::Warn => {
                if let Some(request) = self.request.as_mut() {
                    request.warnings.extend(listed);
                }
            }
            FieldValidation::Ignore => {}
        }
        crate::openapi::prune(schema.root(), obj);
        Ok(())
    }

    /// Validation every API write of a type gets from its schema: a registered CRD's structural
    /// schema and CEL rules; for every type, the one-controller rule of `ownerReferences`.
    fn validate(
        &self,
        res: &ResourceInfo,
        name: &str,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        crate::validation::owner_references(res, name, obj, old.is_some())?;
        if let Some(schema) = self.schemas.get(&(res.group.clone(), res.plural.clone())) {
            crate::validation::custom_resource(res, name, schema, obj, old)?;
        }
        Ok(())
    }

    /// The schema that decides which fields a write may carry: a registered CRD's, or a built-in
    /// type's. A custom type served without its CRD (only registered by name) keeps whatever it
    /// is sent, even when the recorded OpenAPI documents describe it.
    fn decoding_schema(&self, res: &ResourceInfo) -> Option<crate::openapi::TypeSchema> {
        self.type_schema(res)
            .filter(|s| s.is_crd() || crate::registry::is_builtin_group(&res.group))
    }

    /// The schema of a served type: its registered CRD's, else the recorded OpenAPI document's.
    pub(crate) fn type_schema(&self, res: &ResourceInfo) -> Option<crate::openapi::TypeSchema> {
        match self.schemas.get(&(res.group.clone(), res.plural.clone())) {
            Some(crd) => Some(crate::openapi::TypeSchema::Crd(crd.clone())),
            None => crate::openapi::builtin(&res.group, &res.version, &res.kind)
                .map(crate::openapi::TypeSchema::Builtin),
        }
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
        crate::namespaces::check_create(self, res, namespace, &name)?;
        let key = ObjKey::new(res, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&res.plural, &name));
        }
        if !keep_status {
            self.decode(res, &mut obj)?;
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        if res.has_status && !keep_status {
            obj.as_object_mut().map(|o| o.remove("status"));
        }
        self.defaults(res, &mut obj);
        fold_string_data(res, &mut obj);
        drop_empty_maps(res, &mut obj);
        let uid = random_uid();
        let write = crate::builtin::Write {
            res,
            name: &name,
            namespace,
            uid: &uid,
            old: None,
            target: Target::Main,
            validate: !keep_status,
            keep_status,
        };
        crate::builtin::admit(&write, &mut obj)?;
        if !keep_status {
            self.validate(res, &name, &obj, None)?;
        }
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
            m.insert("uid".into(), json!(uid));
            m.insert("creationTimestamp".into(), json!(now()));
            if tracks_generation(res) {
                m.insert("generation".into(), json!(1));
            }
            m.insert("resourceVersion".into(), json!(rv.to_string()));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
        }
        let mut managers = Managers::new();
        if let Some(manager) = manager {
            let schema = self.type_schema(res);
            apply::record_update(
                &json!({}),
                &obj,
                &mut managers,
                &Manager::update(manager, false, &res.api_version()),
                schema.as_ref().map(|s| s.root()),
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
        // The body's name is checked before the object is looked up (recording f1: 400, not 404).
        if let Some(sent) = meta_str(&candidate, "name").filter(|n| *n != key.name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({sent}) does not match the name on the URL ({})",
                key.name
            )));
        }
        let old = self
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.plural, &key.name))?;
        if target != Target::Internal {
            self.check_precondition(key, &candidate)?;
        }
        let new = self.commit(res, key, candidate, target)?;
        let schema = self.type_schema(res);
        if let (Some(manager), Some(stored)) = (manager, self.objects.get_mut(key)) {
            let who = Manager::update(manager, target == Target::Status, &res.api_version());
            apply::record_update(
                &old,
                &new,
                &mut stored.managers,
                &who,
                schema.as_ref().map(|s| s.root()),
            );
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
        let api_version = config["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = config["kind"].as_str().unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() {
            // recording c5: the apiserver cannot tell the type without both.
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
            return Err(ApiError::bad_request(format!(
                "invalid object type: {group}/{version}, Kind={kind}"
            )));
        }
        if let Some(sent) = meta_str(&config, "name").filter(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({sent}) does not match the name on the URL ({name})"
            )));
        }
        let schema = self.type_schema(res);
        let root = schema.as_ref().map(|s| s.root());
        if let Some(decoding) = self.decoding_schema(res)
            && let Some(first) = crate::openapi::unknown_fields(decoding.root(), &config).first()
        {
            // The apiserver cannot build a typed patch object from an undeclared field: a 500
            // without reason, whatever `fieldValidation` says (recordings c5, e1).
            let gv = if res.group.is_empty() {
                format!("/{}", res.version)
            } else {
                res.api_version()
            };
            return Err(ApiError::internal(format!(
                "failed to create typed patch object (/{name}; {gv}, Kind={}): .{first}: field not declared in schema",
                res.kind
            )));
        }
        let key = ObjKey::new(res, namespace, name);
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
        let who = Manager::apply(manager, target == Target::Status, &api_version);
        let Some(stored) = self.objects.get_mut(&key) else {
            if target == Target::Status {
                return Err(ApiError::not_found(&res.plural, name));
            }
            let mut managers = Managers::new();
            let mut obj = apply::apply(&json!({}), &config, &mut managers, &who, force, root)
                .map_err(|c| ApiError::apply_conflict(&c))?;
            meta(&mut obj).insert("name".into(), json!(name));
            let created = self.create(res, namespace, obj, None, false)?;
            if let Some(stored) = self.objects.get_mut(&key) {
                stored.managers = managers;
            }
            return Ok((created, true));
        };
        let mut managers = stored.managers.clone();
        let merged = apply::apply(&stored.value, &config, &mut managers, &who, force, root)
            .map_err(|c| ApiError::apply_conflict(&c))?;
        // A stale `metadata.resourceVersion` in the configuration is checked after the field
        // conflicts (recording c5: conflict first, with force the 409 "has been modified").
        self.check_precondition(&key, &config)?;
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
        let mut candidate = candidate;
        if target != Target::Internal {
            self.decode(res, &mut candidate)?;
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
                drop_empty_maps(res, &mut new);
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
        let uid = meta_str(&old, "uid").unwrap_or_default();
        let write = crate::builtin::Write {
            res,
            name: &key.name,
            namespace: &key.namespace,
            uid: &uid,
            old: Some(&old),
            target,
            validate: target != Target::Internal,
            keep_status: false,
        };
        crate::builtin::admit(&write, &mut new)?;
        if target != Target::Internal {
            self.validate(res, &key.name, &new, Some(&old))?;
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
        if tracks_generation(res) && spec_part(&old) != spec_part(&new) {
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
        let old_rv = old["metadata"].get("resourceVersion").cloned();
        self.record(key, EventType::Modified, new.clone(), Some(old));
        if new["metadata"].get("deletionTimestamp").is_some()
            && finalizers(&new).is_empty()
            && !crate::namespaces::held_by_spec_finalizers(res, &new)
        {
            // The apiserver answers the update that releases the last finalizer with the object
            // as written, at its previous resourceVersion (recording g2).
            self.remove_now(key);
            let mut answer = new;
            if let Some(old_rv) = old_rv {
                meta(&mut answer).insert("resourceVersion".into(), old_rv);
            }
            return Ok(answer);
        }
        Ok(new)
    }

    /// DELETE. Without finalizers (and with the Background policy) the object is removed at
    /// once ([`Deletion::Removed`]); otherwise it gets a `deletionTimestamp` and stays
    /// ([`Deletion::Marked`]). Foreground adds the `foregroundDeletion` finalizer and Orphan the
    /// `orphan` finalizer, which the garbage collector ([`Self::collect_garbage`]) resolves.
    pub(crate) fn delete(
        &mut self,
        res: &ResourceInfo,
        key: &ObjKey,
        opts: &DeleteOptions,
    ) -> Result<Deletion, ApiError> {
        let current = self
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.plural, &key.name))?;
        if let Some(uid) = &opts.precondition_uid {
            let stored = meta_str(&current, "uid").unwrap_or_default();
            if *uid != stored {
                return Err(ApiError::precondition_failed(
                    &res.kind,
                    &key.name,
                    format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({stored}). The object might have been deleted and then recreated"
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            let stored = meta_str(&current, "resourceVersion").unwrap_or_default();
            if *rv != stored {
                return Err(ApiError::precondition_failed(
                    &res.kind,
                    &key.name,
                    format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({stored}). The object might have been modified"
                    ),
                ));
            }
        }
        if let Some(terminating) = crate::namespaces::delete(self, res, key, &current) {
            return terminating.map(Deletion::Marked);
        }
        let policy_finalizer = match opts.propagation {
            Propagation::Foreground => Some("foregroundDeletion"),
            Propagation::Orphan => Some("orphan"),
            Propagation::Background => None,
        };
        let mut fins = finalizers(&current);
        if let Some(f) = policy_finalizer
            && !fins.iter().any(|x| x == f)
        {
            fins.push(json!(f));
        }
        if fins.is_empty() {
            return self
                .remove_now(key)
                .map(Deletion::Removed)
                .ok_or_else(|| ApiError::not_found(&res.plural, &key.name));
        }
        if current["metadata"].get("deletionTimestamp").is_some() && fins == finalizers(&current) {
            return Ok(Deletion::Marked(current));
        }
        let mut marked = current.clone();
        let rv = self.next_rv();
        {
            let m = meta(&mut marked);
            if !m.contains_key("deletionTimestamp") {
                m.insert("deletionTimestamp".into(), json!(now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            m.insert("finalizers".into(), Value::Array(fins));
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        if let Some(stored) = self.objects.get_mut(key) {
            stored.value = marked.clone();
        }
        self.record(key, EventType::Modified, marked.clone(), Some(current));
        Ok(Deletion::Marked(marked))
    }

    /// Removes an object for good and emits DELETED. Its dependents are left to the garbage
    /// collector, which runs shortly after (as the kube-controller-manager's does).
    pub(crate) fn remove_now(&mut self, key: &ObjKey) -> Option<Value> {
        let stored = self.objects.remove(key)?;
        let mut gone = stored.value;
        let rv = self.next_rv();
        meta(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
        self.record(key, EventType::Deleted, gone.clone(), None);
        Some(gone)
    }

    /// Keys of every stored object (for a controller resync).
    pub(crate) fn all_keys(&self) -> Vec<ObjKey> {
        self.objects.keys().cloned().collect()
    }

    /// Keys of the objects in one namespace.
    pub(crate) fn keys_in_namespace(&self, namespace: &str) -> Vec<ObjKey> {
        self.objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect()
    }

    /// Stores `value` as the new state of an existing object with the next resourceVersion and
    /// a MODIFIED event, bypassing the write pipeline (server-side state transitions such as a
    /// Namespace turning `Terminating`).
    pub(crate) fn replace_raw(&mut self, key: &ObjKey, mut value: Value) -> Value {
        let previous = self.get(key).cloned();
        let rv = self.next_rv();
        meta(&mut value).insert("resourceVersion".into(), json!(rv.to_string()));
        if let Some(stored) = self.objects.get_mut(key) {
            stored.value = value.clone();
        }
        self.record(key, EventType::Modified, value.clone(), previous);
        value
    }

    /// Rewrites one stored object as the garbage collector does (not a counted write).
    fn gc_write(&mut self, key: &ObjKey, change: impl FnOnce(&mut Value)) {
        let (Some(res), Some(mut obj)) = (self.info(key), self.get(key).cloned()) else {
            return;
        };
        change(&mut obj);
        // Cannot fail: identity is unchanged and no finalizer is added.
        let _ = self.commit(&res, key, obj, Target::Internal);
    }

    /// One pass of the garbage collector; returns whether it changed anything. Per object:
    /// owners being deleted with `orphan` lose the references from their dependents and then the
    /// finalizer; owners with `foregroundDeletion` get their dependents deleted and lose the
    /// finalizer once no `blockOwnerDeletion` dependent is left; a dependent whose owners are all
    /// gone (or never existed) is deleted, one with a surviving owner only loses the dangling
    /// references.
    pub(crate) fn collect_garbage(&mut self) -> bool {
        let before = self.rv;
        // Only objects being deleted (owners) and objects with owners (dependents) take part in a
        // pass, and dependents are copied only when some owner is being deleted: copying every
        // stored object each pass (every 50 ms while anything changes) dominated large stores.
        let has_owners = |v: &Value| {
            v["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        };
        let deleting: Vec<(ObjKey, Value)> = self
            .objects
            .iter()
            .filter(|(_, s)| s.value["metadata"].get("deletionTimestamp").is_some())
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect();
        let snapshot: Vec<(ObjKey, Value)> = if deleting.is_empty() {
            Vec::new()
        } else {
            self.objects
                .iter()
                .filter(|(_, s)| has_owners(&s.value))
                .map(|(k, s)| (k.clone(), s.value.clone()))
                .collect()
        };
        let owned: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(_, s)| has_owners(&s.value))
            .map(|(k, _)| k.clone())
            .collect();
        let refs_to = |v: &Value, uid: &Value| {
            v["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == *uid))
        };
        for (key, obj) in &deleting {
            let uid = obj["metadata"]["uid"].clone();
            let fins = finalizers(obj);
            if fins.iter().any(|f| f == "orphan") {
                for (dep, _) in snapshot.iter().filter(|(_, d)| refs_to(d, &uid)) {
                    self.gc_write(dep, |d| {
                        if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                            refs.retain(|r| r["uid"] != uid);
                        }
                    });
                }
                self.gc_write(key, |o| drop_finalizer(o, "orphan"));
            } else if fins.iter().any(|f| f == "foregroundDeletion") {
                let mut blocking = false;
                for (dep, d) in snapshot.iter().filter(|(_, d)| refs_to(d, &uid)) {
                    if let Some(res) = self.info(dep)
                        && d["metadata"].get("deletionTimestamp").is_none()
                    {
                        let _ = self.delete(&res, dep, &DeleteOptions::default());
                    }
                    let blocks = d["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|r| r["uid"] == uid && r["blockOwnerDeletion"] == true);
                    blocking |= blocks && self.get(dep).is_some();
                }
                if !blocking {
                    self.gc_write(key, |o| drop_finalizer(o, "foregroundDeletion"));
                }
            }
        }
        // The uids stored now, rebuilt after a delete: one lookup per owner reference instead of
        // a scan of every object (that scan made a pass quadratic in the number of objects).
        let mut uids: Option<HashSet<String>> = None;
        for key in &owned {
            // Re-read: the owner pass above may have changed or removed it.
            let Some(obj) = self.get(key) else {
                continue;
            };
            let Some(refs) = obj["metadata"]["ownerReferences"].as_array() else {
                continue;
            };
            let existing = uids.get_or_insert_with(|| {
                self.objects
                    .values()
                    .filter_map(|s| s.value["metadata"]["uid"].as_str().map(str::to_owned))
                    .collect()
            });
            let missing: Vec<Value> = refs
                .iter()
                .map(|r| r["uid"].clone())
                .filter(|uid| !uid.as_str().is_some_and(|u| existing.contains(u)))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let all_missing = missing.len() == refs.len();
            let deleting = obj["metadata"].get("deletionTimestamp").is_some();
            if all_missing {
                if !deleting && let Some(res) = self.info(key) {
                    let _ = self.delete(&res, key, &DeleteOptions::default());
                    uids = None;
                }
            } else {
                self.gc_write(key, |d| {
                    if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| !missing.contains(&r["uid"]));
                    }
                });
            }
        }
        self.rv != before
    }
}

fn drop_finalizer(obj: &mut Value, name: &str) {
    if let Some(fins) = obj["metadata"]["finalizers"].as_array_mut() {
        fins.retain(|f| f != name);
    }
}

/// How long after a change the garbage collector looks at it: long enough that a client sees
/// the intermediate state (owner gone, dependent still there), as on a cluster (recordings g2,
/// g3: each step was visible at the next 0.2 s poll).
pub(crate) const GC_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Starts the garbage-collector task for this store if it is not running and a Tokio runtime is
/// available. The task ends with the runtime or when the server is dropped.
pub(crate) fn ensure_gc_task(store: &Arc<std::sync::Mutex<Store>>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let wake = {
        let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
        if guard.gc_running {
            return;
        }
        guard.gc_running = true;
        guard.changed.clone()
    };
    let weak = Arc::downgrade(store);
    /// Marks the task stopped when the runtime drops it.
    struct Running(std::sync::Weak<std::sync::Mutex<Store>>);
    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(store) = self.0.upgrade() {
                store.lock().unwrap_or_else(|p| p.into_inner()).gc_running = false;
            }
        }
    }
    let running = Running(weak.clone());
    tokio::spawn(async move {
        let _running = running;
        let mut pending = true;
        loop {
            if !pending {
                let notified = wake.notified();
                // Re-check the server is alive every second so the task does not outlive it.
                pending = tokio::time::timeout(std::time::Duration::from_secs(1), notified)
                    .await
                    .is_ok();
                if weak.strong_count() == 0 {
                    return;
                }
                if !pending {
                    continue;
                }
            }
            tokio::time::sleep(GC_DELAY).await;
            let Some(store) = weak.upgrade() else { return };
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            // A change made by the pass itself is looked at in the next pass.
            pending = guard.collect_garbage();
        }
    });
}

/// Result of [`Store::delete`].
#[derive(Clone, Debug)]
pub(crate) enum Deletion {
    /// Gone; the object as it was removed.
    Removed(Value),
    /// Kept with a `deletionTimestamp` until its finalizers are removed.
    Marked(Value),
}

impl Deletion {
    /// The object, removed or marked.
    pub(crate) fn into_object(self) -> Value {
        match self {
            Self::Removed(v) | Self::Marked(v) => v,
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
        assert!(s.collect_garbage());
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
        assert!(
            s.get(&ObjKey::new(&cm(), "ns", "child")).is_some(),
            "dependents go in a later garbage-collector pass"
        );
        assert!(s.collect_garbage());
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
