//! An in-process fake Kubernetes API server for tests.
//!
//! [`FakeApiServer`] is a tower `Service` that `kube::Client::new(service, "default")` accepts,
//! so the real `kube::runtime::Controller`, watcher, reflector, `Api<K>` calls, server-side apply
//! and the event `Recorder` run against an in-memory store with the apiserver semantics
//! controllers depend on (see the crate README for what is and is not modelled).
//!
//! ```no_run
//! # async fn demo() {
//! use fake_apiserver::FakeApiServer;
//! let server = FakeApiServer::new();
//! let client = server.client();
//! // ... run controllers with `client`, then:
//! server.reset_counters();
//! assert_eq!(server.total_writes(), 0);
//! # }
//! ```
//!
//! Module map: `registry` (served types, discovery), `store` (objects, write pipeline, event log,
//! garbage collection), `routes` (HTTP), `watch` (streaming), `patch` (JSON/merge patch),
//! `apply` (server-side apply field ownership), `selectors`, `defaults` (CRD defaulting),
//! `errors` (metav1 Status bodies and [`FakeError`]), `auth` (identities, RBAC, the
//! OwnerReferencesPermissionEnforcement plugin, per-user write audit), `http` (serving over
//! HTTP on 127.0.0.1 with outages), `outage` (per-route delays and hangs).

mod apply;
mod auth;
mod builtin;
mod defaults;
mod errors;
#[path = "http.rs"]
mod http_server;
mod jobcontroller;
mod kcm;
mod list;
mod namespaces;
mod openapi;
mod outage;
mod patch;
mod registry;
mod routes;
mod selectors;
mod store;
pub mod testing;
mod validation;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use serde_json::Value;

pub use auth::{ADMIN_USER, AuditRecord, Rbac, service_account_token, service_account_user};
pub use errors::FakeError;
pub use http_server::HttpHandle;
pub use outage::{OutageMode, RouteRequest, RouteRuleId};
pub use registry::ResourceInfo;
pub use routes::ResponseBody;
pub use store::{Verb, WriteRecord};

use registry::Registry;
use store::{DeleteOptions, ObjKey, Store, Target};

/// Default number of retained watch events before old resourceVersions answer 410.
const DEFAULT_EVENT_LOG_CAPACITY: usize = 10_000;

/// Configures a [`FakeApiServer`]: which resources it serves, CRD defaults, log size.
#[derive(Debug)]
pub struct FakeApiServerBuilder {
    registry: Registry,
    schemas: HashMap<(String, String), Value>,
    log_capacity: usize,
    access: auth::Access,
    workloads: kcm::Options,
}

impl FakeApiServerBuilder {
    /// Serves one more resource type (or replaces one with the same group and plural).
    /// Argo Workflows is opt-in: `.resource(ResourceInfo::argo_workflows())`.
    pub fn resource(mut self, info: ResourceInfo) -> Self {
        self.registry.add(info);
        self
    }

    /// Loads CustomResourceDefinition YAML (one or more `---` separated documents): registers
    /// each CRD's storage version and applies its schema `default:` values on every write
    /// (create, update, patch, apply; main resource and status). Panics with the parse error, since a broken fixture is a test bug;
    /// use [`Self::try_crd_defaults_from_yaml`] to handle it.
    pub fn crd_defaults_from_yaml(self, yaml: &str) -> Self {
        match self.try_crd_defaults_from_yaml(yaml) {
            Ok(builder) => builder,
            Err(e) => panic!("{e}"),
        }
    }

    /// Fallible [`Self::crd_defaults_from_yaml`].
    pub fn try_crd_defaults_from_yaml(mut self, yaml: &str) -> Result<Self, FakeError> {
        for crd in defaults::parse_crds(yaml)? {
            self.schemas.insert(
                (crd.info.group.clone(), crd.info.plural.clone()),
                crd.schema,
            );
            self.registry.add(crd.info);
        }
        Ok(self)
    }

    /// How many watch events are retained; a watch from an older resourceVersion gets
    /// `410 Expired`, as after etcd compaction.
    pub fn event_log_capacity(mut self, capacity: usize) -> Self {
        self.log_capacity = capacity;
        self
    }

    /// Switches the built-in job and cronjob controllers on (the default) or off. Off, Jobs get
    /// no Pods and no status unless a test writes them (as on a cluster where the Job's
    /// `spec.managedBy` names another controller).
    pub fn job_controller(mut self, enabled: bool) -> Self {
        self.workloads.job_controller = enabled;
        self
    }

    /// Enforces namespace existence: creating an object in a Namespace that was never created
    /// answers 404 `namespaces "x" not found`, as on a cluster. `default`, `kube-system`,
    /// `kube-public` and `kube-node-lease` exist from the start. Off by default, because most
    /// tests use namespaces they never create; namespace termination is modelled either way.
    pub fn strict_namespaces(mut self) -> Self {
        self.workloads.strict_namespaces = true;
        self
    }

    /// Builds the server.
    pub fn build(self) -> FakeApiServer {
        let mut store = Store::new(self.registry, self.schemas, self.log_capacity);
        store.options = self.workloads;
        if self.workloads.strict_namespaces {
            namespaces::seed_system_namespaces(&mut store);
        }
        FakeApiServer {
            store: Arc::new(Mutex::new(store)),
            access: Arc::new(self.access),
            route_rules: Arc::default(),
            kcm: Arc::default(),
        }
    }
}

/// The fake apiserver. Cheap to clone; clones share state. Also a tower `Service`.
#[derive(Clone)]
pub struct FakeApiServer {
    store: Arc<Mutex<Store>>,
    access: Arc<auth::Access>,
    route_rules: Arc<outage::RouteRules>,
    /// The job, cronjob and namespace controllers' task.
    kcm: Arc<kcm::Kcm>,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer")
            .field("resource_version", &self.resource_version())
            .finish_non_exhaustive()
    }
}

impl Default for FakeApiServer {
    fn default() -> Self {
        Self::new()
    }
}

/// A read-only view of the stored objects, handed to [`FakeApiServer::wait_for`] predicates.
pub struct StateView<'a> {
    store: &'a Store,
}

impl StateView<'_> {
    /// One object; `namespace` is ignored for cluster-scoped types. Unknown resource → `None`.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = self.store.registry.by_name(resource)?;
        self.store.get(&ObjKey::new(res, namespace, name)).cloned()
    }

    /// All objects of a resource (`plural` or `plural.group`) across namespaces.
    pub fn list(&self, resource: &str) -> Vec<Value> {
        self.list_in(resource, None)
    }

    fn list_in(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(res) = self.store.registry.by_name(resource) else {
            return Vec::new();
        };
        self.store
            .list(res, namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl FakeApiServer {
    /// A builder preloaded with [`ResourceInfo::defaults`].
    pub fn builder() -> FakeApiServerBuilder {
        let mut registry = Registry::default();
        for info in ResourceInfo::defaults() {
            registry.add(info);
        }
        FakeApiServerBuilder {
            registry,
            schemas: HashMap::new(),
            log_capacity: DEFAULT_EVENT_LOG_CAPACITY,
            access: auth::Access::default(),
            workloads: kcm::Options::default(),
        }
    }

    /// A server with the default resource set and nothing else.
    pub fn new() -> Self {
        Self::builder().build()
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        store::ensure_gc_task(&self.store);
        self.kcm.ensure_running(&self.store);
        // A panicking test thread must not wedge every other request.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A `kube::Client` talking to this server, default namespace `default`.
    /// Must be called inside a Tokio runtime (kube spawns its request buffer task).
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version()
    }

    /// One object by resource (`plural` or `plural.group`), namespace (`""` for cluster-scoped)
    /// and name.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        StateView {
            store: &self.lock(),
        }
        .get(resource, namespace, name)
    }

    /// All objects of a resource across namespaces, ordered by namespace and name.
    pub fn list(&self, resource: &str) -> Vec<Value> {
        StateView {
            store: &self.lock(),
        }
        .list(resource)
    }

    /// All objects of a resource in one namespace.
    pub fn list_in(&self, resource: &str, namespace: &str) -> Vec<Value> {
        StateView {
            store: &self.lock(),
        }
        .list_in(resource, Some(namespace))
    }

    /// Seeds an object (identified by its `apiVersion`, `kind`, `metadata.namespace` and
    /// `metadata.name`): creates it, or replaces an existing one. `.status` is kept, watchers
    /// see the change, and no write is counted.
    pub fn insert(&self, object: Value) -> Result<Value, FakeError> {
        let api_version = object["apiVersion"].as_str().unwrap_or("").to_owned();
        let kind = object["kind"].as_str().unwrap_or("").to_owned();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| FakeError::InvalidObject("metadata.name is required".to_owned()))?
            .to_owned();
        let mut store = self.lock();
        let res = store
            .registry
            .by_type(&api_version, &kind)
            .cloned()
            .ok_or(FakeError::UnknownType { api_version, kind })?;
        if res.namespaced && namespace.is_empty() {
            return Err(FakeError::InvalidObject(format!(
                "{} {name} is namespaced; set metadata.namespace",
                res.kind
            )));
        }
        let key = ObjKey::new(&res, &namespace, &name);
        if store.get(&key).is_some() {
            Ok(store.update(&res, &key, object, Target::Internal, None)?)
        } else {
            Ok(store.create(&res, &namespace, object, None, true)?)
        }
    }

    /// Changes a stored object in place (status included), as another actor in the cluster
    /// would. Not counted as a write. A raw backdoor: built-in defaults still apply, but no
    /// validation runs (a Job status the apiserver would reject is stored as given), and the
    /// built-in job controller may rewrite what it owns; to finish a Job as on a cluster use
    /// [`testing::finish_job_pod`].
    /// Identity and server-owned metadata (uid, resourceVersion, generation, deletionTimestamp)
    /// cannot be changed this way; use [`Self::delete`] to start a deletion.
    pub fn modify(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, FakeError> {
        let mut store = self.lock();
        let res = store
            .registry
            .by_name(resource)
            .cloned()
            .ok_or_else(|| FakeError::UnknownResource(resource.to_owned()))?;
        let key = ObjKey::new(&res, namespace, name);
        let mut object = store.get(&key).cloned().ok_or_else(|| {
            FakeError::InvalidObject(format!("{resource} {namespace}/{name} does not exist"))
        })?;
        change(&mut object);
        Ok(store.update(&res, &key, object, Target::Internal, None)?)
    }

    /// Deletes an object as a user would (finalizers and garbage collection apply), without
    /// counting a write. Returns the object as deleted or as marked for deletion.
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) -> Result<Value, FakeError> {
        let mut store = self.lock();
        let res = store
            .registry
            .by_name(resource)
            .cloned()
            .ok_or_else(|| FakeError::UnknownResource(resource.to_owned()))?;
        let key = ObjKey::new(&res, namespace, name);
        Ok(store
            .delete(&res, &key, &DeleteOptions::default())?
            .into_object())
    }

    /// What the cronjob controller does when the schedule of CronJob `namespace/name` fires
    /// now: creates the Job `<name>-<minutes since epoch>` from `spec.jobTemplate` (owned by the
    /// CronJob, annotated `batch.kubernetes.io/cronjob-scheduled-timestamp`) and records it in
    /// `status.active` and `status.lastScheduleTime`; `lastSuccessfulTime` follows when the Job
    /// completes. `Ok(None)` if the CronJob is suspended or `concurrencyPolicy: Forbid` holds
    /// it back. Not counted as a write. On a real cluster a test creates the Job itself.
    pub fn fire_cronjob(&self, namespace: &str, name: &str) -> Result<Option<Value>, FakeError> {
        self.fire_cronjob_at(namespace, name, std::time::SystemTime::now())
    }

    /// [`Self::fire_cronjob`] for a schedule time of the caller's choosing (minute resolution).
    pub fn fire_cronjob_at(
        &self,
        namespace: &str,
        name: &str,
        scheduled: std::time::SystemTime,
    ) -> Result<Option<Value>, FakeError> {
        let scheduled = jiff::Timestamp::try_from(scheduled)
            .map_err(|e| FakeError::InvalidObject(format!("schedule time: {e}")))?;
        let mut store = self.lock();
        Ok(jobcontroller::fire_cronjob(
            &mut store, namespace, name, scheduled,
        )?)
    }

    /// Drops the whole watch event log, so every watch resuming from an older resourceVersion
    /// gets `410 Expired` and must re-list (simulates etcd compaction).
    pub fn compact_event_log(&self) {
        self.lock().compact();
    }

    /// Write requests received per (resource, verb) since the last reset. The resource is the
    /// plural, with `/status` appended for status-subresource writes (e.g. `scheduledbackups/status`).
    /// Every request counts, including no-ops and rejected ones.
    pub fn writes(&self) -> BTreeMap<(String, Verb), u64> {
        self.lock().writes.clone()
    }

    /// Write requests for one resource (as in [`Self::writes`]) and verb.
    pub fn write_count(&self, resource: &str, verb: Verb) -> u64 {
        self.lock()
            .writes
            .get(&(resource.to_owned(), verb))
            .copied()
            .unwrap_or(0)
    }

    /// All write requests since the last reset.
    pub fn total_writes(&self) -> u64 {
        self.lock().writes.values().sum()
    }

    /// Every write request since the last reset, in order (for diagnosing unexpected writes).
    pub fn write_log(&self) -> Vec<WriteRecord> {
        self.lock().write_log.clone()
    }

    /// Zeroes the write counters and the write log.
    pub fn reset_counters(&self) {
        let mut store = self.lock();
        store.writes.clear();
        store.write_log.clear();
        self.access.reset();
    }

    /// Events (core `v1` and `events.k8s.io/v1`) about the object called `name`: those whose
    /// `regarding` or `involvedObject` names it.
    pub fn events_for(&self, name: &str) -> Vec<Value> {
        let mut events = self.list("events");
        events.extend(self.list("events.events.k8s.io"));
        events.retain(|e| e["regarding"]["name"] == name || e["involvedObject"]["name"] == name);
        events
    }

    /// Waits until `predicate` holds for the stored state, re-checking after every change.
    /// Fails with [`FakeError::Timeout`] after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&StateView<'_>) -> bool,
    ) -> Result<(), FakeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let changed = self.lock().changed.clone();
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            // Register before checking, so a change between check and wait is not lost.
            notified.as_mut().enable();
            if predicate(&StateView {
                store: &self.lock(),
            }) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(FakeError::Timeout(timeout));
            }
        }
    }

    /// Waits until no stored object has changed for `quiet_for` (controllers have settled),
    /// failing with [`FakeError::Timeout`] after `timeout`. No-op writes do not change state, so
    /// follow this with a write-count assertion to catch controllers that keep writing anyway.
    pub async fn wait_until_quiet(
        &self,
        quiet_for: Duration,
        timeout: Duration,
    ) -> Result<(), FakeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let changed = self.lock().changed.clone();
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let quiet_until = tokio::time::Instant::now() + quiet_for;
            if quiet_until > deadline {
                return Err(FakeError::Timeout(timeout));
            }
            if tokio::time::timeout_at(quiet_until, notified)
                .await
                .is_err()
            {
                return Ok(());
            }
        }
    }
}

impl<B> tower::Service<Request<B>> for FakeApiServer
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route_rules = self.route_rules.clone();
        if routes::is_version(req.method(), req.uri().path()) {
            // Answered without the store (authentication only, see auth), still subject to the route rules.
            let (store, access) = (self.store.clone(), self.access.clone());
            return Box::pin(async move {
                route_rules.hold(&outage::RouteRequest::of(&req)).await;
                Ok(access.handle(&store, req).await)
            });
        }
        store::ensure_gc_task(&self.store);
        self.kcm.ensure_running(&self.store);
        let store = self.store.clone();
        let access = self.access.clone();
        Box::pin(async move {
            route_rules.hold(&outage::RouteRequest::of(&req)).await;
            Ok(access.handle(&store, req).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn version_is_answered_while_the_store_is_busy() {
        let fake = FakeApiServer::new();
        let client = fake.client();
        // A long request holding the store (a large list, an expensive apply) must not delay /version.
        let (held, busy) = std::sync::mpsc::channel();
        let store = fake.clone();
        let holder = std::thread::spawn(move || {
            let _guard = store.lock();
            held.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(3));
        });
        busy.recv().unwrap();
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            client.apiserver_version(),
        )
        .await;
        assert!(
            matches!(answer, Ok(Ok(_))),
            "no /version answer while the store was held"
        );
        holder.join().unwrap();
    }
}
