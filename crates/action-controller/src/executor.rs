//! Create-or-adopt of the action's single executor (a Job, or an Argo Workflow), and Argo discovery.
//!
//! The executor is built from the PodTemplate the scheduled-controller applies for the ScheduledBackup's
//! operation (`<sb>-<operation>`, [`crd_types::executor`]): this controller renders no template and reads no Secret.
//!
//! Exactly one executor per action, ever: its name is derived from the action's name
//! ([`crd_types::names::job_name`]), it is created with POST (never apply, never `generateName`) and owned
//! `controller: true` by the action. A retry after a crash between "created" and "status written" gets
//! `409 AlreadyExists` and adopts the object it finds, but only if this action (by uid) controls it; anything
//! else is a name collision and is never touched. Once `status.processed` says the executor was created, it is
//! never created again: if it disappears, the action fails (see [`Error::ExecutorDeleted`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crd_types::constants::{field_managers::ACTION_CONTROLLER, labels};
use crd_types::executor;
use crd_types::names::{child_name, job_name, label_value};
use crd_types::{KindType, Operation, RequestedBackupAction};
use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplate;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Context;
use crate::error::Error;
use crate::lean::CachedScheduledBackup;
use crate::status::{ExecutorView, job_view, workflow_view};

/// `apiVersion` of Argo Workflows' `Workflow`.
pub const WORKFLOW_API_VERSION: &str = executor::WORKFLOW_API_VERSION;

/// How long an answer of discovery ("is Argo installed?") is trusted. A cluster where Argo gets installed is
/// noticed within this time without a restart; a busy controller asks discovery at most once per period.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(60);

/// The `ApiResource` of Argo's `Workflow` (a dynamic object: its CRD is optional and not ours).
pub fn workflow_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    )
}

/// A remembered yes/no with an expiry: Argo's presence changes rarely, and every Workflow action asks.
#[derive(Debug)]
pub struct DiscoveryCache {
    ttl: Duration,
    answer: Mutex<Option<(Instant, bool)>>,
}

impl DiscoveryCache {
    /// An empty cache whose answers expire after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            answer: Mutex::new(None),
        }
    }

    /// The remembered answer, unless it is older than the ttl at `now`.
    pub fn get(&self, now: Instant) -> Option<bool> {
        let answer = *self.answer.lock().unwrap_or_else(|p| p.into_inner());
        answer
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, yes)| yes)
    }

    /// Remembers `installed` as of `now`.
    pub fn put(&self, now: Instant, installed: bool) {
        *self.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, installed));
    }
}

/// Aborts a spawned task when dropped, so the lazily started Workflow watch ends with the controller.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Argo support: discovery (cached) and a watch of labelled Workflows, started the first time discovery says
/// Argo is installed, so a Workflow's phase change re-triggers its action like a Job's does.
pub struct Workflows {
    discovery: DiscoveryCache,
    watch: Mutex<Option<AbortOnDrop>>,
    trigger: UnboundedSender<ObjectRef<RequestedBackupAction>>,
    namespace: Option<String>,
}

impl Workflows {
    /// Argo support for a controller watching `namespace` (all when `None`); Workflow changes are sent to
    /// `trigger` as the owning action.
    pub fn new(
        trigger: UnboundedSender<ObjectRef<RequestedBackupAction>>,
        namespace: Option<String>,
    ) -> Self {
        Self {
            discovery: DiscoveryCache::new(DISCOVERY_TTL),
            watch: Mutex::new(None),
            trigger,
            namespace,
        }
    }

    /// Whether `argoproj.io/v1alpha1` serves `workflows`, from the cache or from discovery.
    pub async fn installed(&self, client: &Client) -> Result<bool, Error> {
        if let Some(known) = self.discovery.get(Instant::now()) {
            return Ok(known);
        }
        let installed = match client.list_api_group_resources(WORKFLOW_API_VERSION).await {
            Ok(list) => list.resources.iter().any(|r| r.name == "workflows"),
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(e) => {
                return Err(Error::kube(
                    "discovering argoproj.io/v1alpha1 (is Argo Workflows installed?)",
                )(e));
            }
        };
        self.discovery.put(Instant::now(), installed);
        if installed {
            self.start_watch(client);
        }
        Ok(installed)
    }

    fn start_watch(&self, client: &Client) {
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if watch.as_ref().is_some_and(|w| !w.0.is_finished()) {
            return;
        }
        let ar = workflow_resource();
        let api: Api<DynamicObject> = match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let config = watcher::Config::default().labels(labels::REQUESTED_BACKUP_ACTION);
        let trigger = self.trigger.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, config)
                .backoff(controller_runtime::cache::WatchRetry::default())
                .touched_objects()
                .boxed();
            while let Some(event) = stream.next().await {
                let Ok(workflow) = event else { continue };
                for owner in owning_actions(&workflow) {
                    if trigger.unbounded_send(owner).is_err() {
                        return; // The controller is gone.
                    }
                }
            }
        });
        *watch = Some(AbortOnDrop(task));
    }
}

/// The actions controlling `object` (at most one), from its ownerReferences.
fn owning_actions<K: Resource>(object: &K) -> Vec<ObjectRef<RequestedBackupAction>> {
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    object
        .owner_references()
        .iter()
        .filter(|o| {
            o.controller == Some(true)
                && o.kind == "RequestedBackupAction"
                && o.api_version == crd_types::constants::API_VERSION
        })
        .map(|o| ObjectRef::new(&o.name).within(&namespace))
        .collect()
}

/// True when `object` is controlled by the owner with this uid.
pub fn controlled_by<K: Resource>(object: &K, owner_uid: &str) -> bool {
    object
        .owner_references()
        .iter()
        .any(|o| o.uid == owner_uid && o.controller == Some(true))
}

/// The executor as found or created.
#[derive(Clone, Debug)]
pub struct Located {
    /// What it reports.
    pub view: ExecutorView,
    /// It was created by this reconcile (not found or adopted).
    pub created: bool,
}

/// Rejects what admission (CEL) should have rejected; an action that got through anyway fails for good.
pub fn validate(rba: &RequestedBackupAction) -> Result<(), Error> {
    let spec = &rba.spec;
    if spec.action == Operation::Backup
        && spec
            .target_version
            .as_deref()
            .is_some_and(|v| !v.is_empty())
    {
        return Err(Error::InvalidSpec(
            "spec.targetVersion is only allowed with action: restore (a backup always creates a new version): create a new action without targetVersion".into(),
        ));
    }
    Ok(())
}

/// Is the ScheduledBackup ready to lend its procedure? Its `Ready` condition (scheduled-controller's) must be
/// True, i.e. its ConfigMaps, Secrets and PodTemplates are applied.
pub fn check_scheduled_backup(
    sb: Option<&CachedScheduledBackup>,
    namespace: &str,
    name: &str,
) -> Result<(), Error> {
    let Some(sb) = sb else {
        return Err(Error::ScheduledBackupNotFound {
            namespace: namespace.into(),
            name: name.into(),
        });
    };
    match crd_types::conditions::find(
        sb.conditions(),
        crd_types::constants::condition_types::READY,
    ) {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(Error::WaitingForScheduledBackup {
            namespace: namespace.into(),
            name: name.into(),
            detail: format!(
                "its Ready condition is {} ({}): {}",
                c.status, c.reason, c.message
            ),
        }),
        None => Err(Error::WaitingForScheduledBackup {
            namespace: namespace.into(),
            name: name.into(),
            detail: "it has no Ready condition yet (is the scheduled-controller running?)".into(),
        }),
    }
}

/// Actions waiting for a PodTemplate, by the PodTemplate they wait for: a PodTemplate event wakes exactly those
/// actions (no scan of every action, finished ones included).
///
/// An action registers before it looks the PodTemplate up in the cache, so a PodTemplate that arrives between the
/// look-up and the registration still wakes it (the reflector fills the cache before it emits the event). An
/// action deleted while it waits is forgotten at the next event of its PodTemplate (waking a deleted object is a
/// no-op), so the index holds at most one entry per waiting or recently deleted action.
#[derive(Default)]
pub struct WaitingForPodTemplates {
    inner: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    by_template: HashMap<ObjectRef<PodTemplate>, HashSet<ObjectRef<RequestedBackupAction>>>,
    by_action: HashMap<ObjectRef<RequestedBackupAction>, ObjectRef<PodTemplate>>,
}

impl WaitingForPodTemplates {
    /// `action` waits for `template` (and no longer for any other).
    pub fn wait(&self, action: ObjectRef<RequestedBackupAction>, template: ObjectRef<PodTemplate>) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(previous) = w.by_action.insert(action.clone(), template.clone()) {
            w.remove(&previous, &action);
        }
        w.by_template.entry(template).or_default().insert(action);
    }

    /// `action` waits for nothing (it found its PodTemplate, finished, or was deleted).
    pub fn release(&self, action: &ObjectRef<RequestedBackupAction>) {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(template) = w.by_action.remove(action) {
            w.remove(&template, action);
        }
    }

    /// The actions to wake up for an event of `template`; they register again if they still have to wait.
    pub fn woken_by(
        &self,
        template: &ObjectRef<PodTemplate>,
    ) -> Vec<ObjectRef<RequestedBackupAction>> {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let actions = w.by_template.remove(template).unwrap_or_default();
        for action in &actions {
            w.by_action.remove(action);
        }
        actions.into_iter().collect()
    }

    /// How many actions wait (for tests and debugging).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_action
            .len()
    }

    /// No action waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Waiting {
    fn remove(
        &mut self,
        template: &ObjectRef<PodTemplate>,
        action: &ObjectRef<RequestedBackupAction>,
    ) {
        if let Some(set) = self.by_template.get_mut(template) {
            set.remove(action);
            if set.is_empty() {
                self.by_template.remove(template);
            }
        }
    }
}

/// The PodTemplate an action runs: `<sb>-<operation>` of its ScheduledBackup, which must be Ready and control it.
/// Reads only watch caches. The action is registered as waiting for the PodTemplate until one is found.
pub fn pod_template(
    ctx: &Context,
    rba: &RequestedBackupAction,
    namespace: &str,
) -> Result<Arc<PodTemplate>, Error> {
    let sb_name = &rba.spec.scheduled_backup_ref.name;
    let sb = ctx
        .scheduled_backups
        .get(&ObjectRef::new(sb_name).within(namespace));
    check_scheduled_backup(sb.as_deref(), namespace, sb_name)?;
    let sb_uid = sb.and_then(|sb| sb.uid()).unwrap_or_default();
    let operation = rba.spec.action;
    let name = child_name(sb_name, operation);
    let key = ObjectRef::new(&name).within(namespace);
    let action = ObjectRef::from_obj(rba);
    ctx.waiting.wait(action.clone(), key.clone());
    let waiting = |detail: String| Error::WaitingForPodTemplate {
        namespace: namespace.into(),
        name: name.clone(),
        scheduled_backup: sb_name.clone(),
        operation: operation.to_string(),
        detail,
    };
    let Some(found) = ctx.pod_templates.get(&key) else {
        return Err(waiting(format!(
            "it does not exist. The scheduled-controller applies it once the ScheduledBackup is Ready and its template has a {operation} script: if the template has none, add one (`kubectl describe sb {sb_name}`: the TemplateRendered condition lists skipped operations); otherwise check that the scheduled-controller is running"
        )));
    };
    if !controlled_by(found.as_ref(), &sb_uid) {
        // Only the ScheduledBackup's own pod may run with its Secrets.
        return Err(waiting(format!(
            "it is not controlled by ScheduledBackup {namespace}/{sb_name} (uid {sb_uid}), so it is never run: delete it, and the scheduled-controller applies the ScheduledBackup's own"
        )));
    }
    ctx.waiting.release(&action);
    Ok(found)
}

/// An executor kind: how to find, build and describe one.
struct Kind<K> {
    /// `Job` or `Workflow`, for messages.
    name: &'static str,
    /// Plural, for the writes metric.
    plural: &'static str,
    api: Api<K>,
    view: fn(&K) -> ExecutorView,
}

/// Where an existing executor is looked up first.
enum Lookup<K> {
    /// A watch cache's answer. It may lag behind our own create, so once the status says the executor was
    /// created, an empty answer is checked with the API.
    Cache(Option<K>),
    /// No cache: ask the API.
    Api,
}

/// Finds this action's executor, or builds it from its PodTemplate and creates it. Everything that prevents it is
/// an [`Error`].
pub async fn ensure(
    ctx: &Context,
    rba: &RequestedBackupAction,
    namespace: &str,
    uid: &str,
) -> Result<Located, Error> {
    validate(rba)?;
    let name = job_name(&rba.name_any());
    match rba.spec.kind_type {
        KindType::Job => {
            let cached = ctx
                .jobs
                .get(&ObjectRef::new(&name).within(namespace))
                .map(|j| Job::from(j.as_ref()));
            let kind = Kind {
                name: "Job",
                plural: "jobs",
                api: Api::<Job>::namespaced(ctx.client.clone(), namespace),
                view: job_view,
            };
            create_or_adopt(
                ctx,
                rba,
                kind,
                Lookup::Cache(cached),
                namespace,
                &name,
                uid,
                |pt| executor::job(pt, rba),
            )
            .await
        }
        KindType::Workflow => {
            if !ctx.workflows.installed(&ctx.client).await? {
                return Err(Error::ExecutorNotInstalled);
            }
            let kind = Kind {
                name: "Workflow",
                plural: "workflows",
                api: Api::<DynamicObject>::namespaced_with(
                    ctx.client.clone(),
                    namespace,
                    &workflow_resource(),
                ),
                view: |w| workflow_view(&serde_json::to_value(w).unwrap_or_default()),
            };
            create_or_adopt(ctx, rba, kind, Lookup::Api, namespace, &name, uid, |pt| {
                let workflow = executor::workflow(pt, rba)?;
                serde_json::from_value(workflow)
                    .map_err(|e| format!("the Workflow is not a Kubernetes object: {e}"))
            })
            .await
        }
    }
}

/// The one create-or-adopt step of both executor kinds: an existing executor this action controls is adopted
/// (never re-created once `status.processed`); otherwise it is built from the PodTemplate and POSTed, and a
/// `409 AlreadyExists` (a previous life or another replica won) is adopted the same way.
#[allow(clippy::too_many_arguments)]
async fn create_or_adopt<K>(
    ctx: &Context,
    rba: &RequestedBackupAction,
    kind: Kind<K>,
    lookup: Lookup<K>,
    namespace: &str,
    name: &str,
    uid: &str,
    build: impl FnOnce(&PodTemplate) -> Result<K, String>,
) -> Result<Located, Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let processed = rba.status.as_ref().is_some_and(|s| s.processed);
    let found = |object: K, created: bool| -> Result<Located, Error> {
        if !controlled_by(&object, uid) {
            return Err(Error::NameCollision {
                kind: kind.name.into(),
                namespace: namespace.into(),
                name: name.into(),
            });
        }
        Ok(Located {
            view: (kind.view)(&object),
            created,
        })
    };
    let existing = match lookup {
        Lookup::Cache(Some(object)) => Some(object),
        Lookup::Cache(None) if !processed => None,
        Lookup::Cache(None) | Lookup::Api => kind
            .api
            .get_opt(name)
            .await
            .map_err(Error::kube(format!("reading {} {name}", kind.name)))?,
    };
    if let Some(object) = existing {
        return found(object, false);
    }
    if processed {
        return Err(Error::ExecutorDeleted {
            kind: kind.name.into(),
            namespace: namespace.into(),
            name: name.into(),
        });
    }
    let pod_template = pod_template(ctx, rba, namespace)?;
    let mut object = build(&pod_template).map_err(|detail| {
        // Stay registered: the scheduled-controller's correction of the PodTemplate wakes the action up.
        ctx.waiting.wait(
            ObjectRef::from_obj(rba),
            ObjectRef::from_obj(pod_template.as_ref()),
        );
        Error::InvalidPodTemplate {
            namespace: namespace.into(),
            name: pod_template.name_any(),
            detail,
        }
    })?;
    stamp(object.meta_mut(), rba, namespace, name)?;
    let post = PostParams {
        field_manager: Some(ACTION_CONTROLLER.into()),
        ..Default::default()
    };
    let result = kind.api.create(&post, &object).await;
    ctx.metrics.api_write(kind.plural, "create");
    match result {
        Ok(created) => found(created, true),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = kind.api.get(name).await.map_err(Error::kube(format!(
                "reading existing {} {name}",
                kind.name
            )))?;
            found(existing, false)
        }
        Err(e) => Err(Error::create(kind.name, namespace, name)(e)),
    }
}

/// Name, namespace, owner and label, whatever the builder produced: these make "exactly one" hold.
fn stamp(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    rba: &RequestedBackupAction,
    namespace: &str,
    name: &str,
) -> Result<(), Error> {
    let owner =
        crd_types::executor::executor_owner(rba).ok_or(Error::MissingObjectKey("metadata.uid"))?;
    meta.name = Some(name.to_string());
    meta.generate_name = None;
    meta.namespace = Some(namespace.to_string());
    meta.owner_references = Some(vec![owner]);
    meta.labels.get_or_insert_with(Default::default).insert(
        labels::REQUESTED_BACKUP_ACTION.into(),
        label_value(&rba.name_any()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn rba(action: &str, target: Option<&str>) -> RequestedBackupAction {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": "a1", "namespace": "team-a", "uid": "u-1"},
            "spec": {"action": action, "targetVersion": target, "scheduledBackupRef": {"name": "app1"}},
        }))
        .unwrap()
    }

    fn sb(conditions: Value) -> crd_types::ScheduledBackup {
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
            "metadata": {"name": "app1", "namespace": "team-a"},
            "spec": {
                "operation": "backup",
                "cronJob": {"enabled": false, "scheduleEvery": "0 2 * * *"},
                "templateRef": {"kind": "internal", "name": "pg15"},
                "gpgKeySecretRef": {"secretName": "keys"},
                "tokenSecretRef": {"secretName": "token", "tokenKey": "token"},
            },
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn a_target_version_on_a_backup_is_an_invalid_spec_but_fine_on_a_restore() {
        let err = validate(&rba("backup", Some("v1"))).unwrap_err();
        assert_eq!(err.reason(), "InvalidSpec");
        assert!(err.is_terminal());
        validate(&rba("restore", Some("v1"))).unwrap();
        validate(&rba("backup", None)).unwrap();
        validate(&rba("backup", Some(""))).unwrap();
    }

    #[test]
    fn a_missing_scheduled_backup_is_reported_by_name() {
        let err = check_scheduled_backup(None, "team-a", "app1").unwrap_err();
        assert_eq!(err.reason(), "ScheduledBackupNotFound");
        assert!(err.to_string().contains("team-a/app1"));
    }

    #[test]
    fn a_scheduled_backup_is_usable_only_when_ready_is_true() {
        let not_ready = sb(
            json!([{"type": "Ready", "status": "False", "reason": "WaitingForKeySecret",
            "message": "key Secret team-a/keys does not exist yet", "lastTransitionTime": "2026-01-01T00:00:00Z"}]),
        );
        let err = check_scheduled_backup(Some(&(&not_ready).into()), "team-a", "app1").unwrap_err();
        assert_eq!(err.reason(), "WaitingForScheduledBackup");
        assert!(err.to_string().contains("WaitingForKeySecret"), "{err}");
        let no_status = sb(json!([]));
        assert_eq!(
            check_scheduled_backup(Some(&(&no_status).into()), "team-a", "app1")
                .unwrap_err()
                .reason(),
            "WaitingForScheduledBackup"
        );
        let ready = sb(
            json!([{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]),
        );
        check_scheduled_backup(Some(&(&ready).into()), "team-a", "app1").unwrap();
    }

    fn template(name: &str) -> ObjectRef<PodTemplate> {
        ObjectRef::new(name).within("team-a")
    }

    fn waiter(name: &str) -> ObjectRef<RequestedBackupAction> {
        ObjectRef::new(name).within("team-a")
    }

    #[test]
    fn a_pod_template_event_wakes_exactly_the_actions_waiting_for_it_once() {
        let waiting = WaitingForPodTemplates::default();
        waiting.wait(waiter("a1"), template("app1-backup"));
        waiting.wait(waiter("a2"), template("app1-backup"));
        waiting.wait(waiter("a3"), template("app1-restore"));
        waiting.wait(waiter("a4"), template("other-backup"));
        let mut woken = waiting.woken_by(&template("app1-backup"));
        woken.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(woken, vec![waiter("a1"), waiter("a2")]);
        assert!(
            waiting.woken_by(&template("app1-backup")).is_empty(),
            "woken actions register again if they still wait"
        );
        assert!(
            waiting
                .woken_by(&ObjectRef::new("app1-restore").within("team-b"))
                .is_empty(),
            "same name, other namespace"
        );
        assert_eq!(waiting.len(), 2);
    }

    #[test]
    fn an_action_waits_for_one_pod_template_at_most_and_release_forgets_it() {
        let waiting = WaitingForPodTemplates::default();
        waiting.wait(waiter("a1"), template("app1-backup"));
        // Its spec cannot change, but its ScheduledBackup can be recreated: the newest wait wins.
        waiting.wait(waiter("a1"), template("app1-restore"));
        assert!(waiting.woken_by(&template("app1-backup")).is_empty());
        assert_eq!(waiting.len(), 1);
        waiting.release(&waiter("a1"));
        assert!(waiting.is_empty());
        assert!(waiting.woken_by(&template("app1-restore")).is_empty());
    }

    #[test]
    fn the_discovery_answer_expires_after_its_ttl() {
        let cache = DiscoveryCache::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(cache.get(t0), None);
        cache.put(t0, false);
        assert_eq!(cache.get(t0 + Duration::from_secs(59)), Some(false));
        assert_eq!(
            cache.get(t0 + Duration::from_secs(60)),
            None,
            "Argo installed later is noticed"
        );
    }

    #[test]
    fn stamping_sets_the_deterministic_name_and_a_controller_owner() {
        let action = rba("restore", Some("v1"));
        let mut meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            generate_name: Some("x-".into()),
            ..Default::default()
        };
        stamp(&mut meta, &action, "team-a", "a1").unwrap();
        assert_eq!(meta.name.as_deref(), Some("a1"));
        assert_eq!(meta.generate_name, None);
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller, owner.kind.as_str()),
            ("u-1", Some(true), "RequestedBackupAction")
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(meta.labels.unwrap()[labels::REQUESTED_BACKUP_ACTION], "a1");
    }

    #[test]
    fn workflows_map_to_the_action_controlling_them() {
        let wf: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "a1", "namespace": "team-a", "ownerReferences": [
                {"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction", "name": "a1", "uid": "u-1", "controller": true},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "u-2"}]},
        }))
        .unwrap();
        assert_eq!(
            owning_actions(&wf),
            vec![ObjectRef::new("a1").within("team-a")]
        );
    }
}
