//! Test support: a fake API server seeded with a Ready ScheduledBackup and the PodTemplates the scheduled-controller
//! would apply for it (rendered by the template engine from the bundled example, so the hand-off is tested from
//! the producer's own output), a controller runner, and a fault-injecting wrapper around the fake server (to fail
//! the action's status writes, as a crash would). No Secret is seeded: the action-controller never reads one.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use action_controller::{Config, NAME, run};
use controller_runtime::health::Health;
use controller_runtime::metrics::ControllerMetrics;
use fake_apiserver::{FakeApiServer, ResourceInfo, ResponseBody};
use http::{Request, Response};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

/// Namespace of every fixture.
pub const NS: &str = "default";
/// Name of the fixture ScheduledBackup (built-in pg15 template).
pub const SB: &str = "app1";

/// A fake server with the project's CRDs (for their defaults), optionally with Argo's Workflow CRD installed.
pub fn server(with_argo: bool) -> FakeApiServer {
    let mut builder = FakeApiServer::builder()
        .crd_defaults_from_yaml(include_str!(
            "../../../../crds/scheduledbackups.riotkit.org.yaml"
        ))
        .crd_defaults_from_yaml(include_str!(
            "../../../../crds/requestedbackupactions.riotkit.org.yaml"
        ))
        .crd_defaults_from_yaml(include_str!(
            "../../../../crds/clusterbackupproceduretemplates.riotkit.org.yaml"
        ));
    if with_argo {
        builder = builder.resource(ResourceInfo::argo_workflows());
    }
    builder.build()
}

/// The `Ready` condition a scheduled-controller writes on a ScheduledBackup.
pub fn ready_condition(ready: bool) -> Value {
    json!({
        "type": "Ready",
        "status": if ready { "True" } else { "False" },
        "reason": if ready { "Ready" } else { "WaitingForKeySecret" },
        "message": if ready { "helper objects and schedule are in place" } else { "key Secret default/app1-backup-keys does not exist yet" },
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    })
}

/// The documents of `examples/scheduledbackup-pg15.yaml`: the ScheduledBackup and its token and vars Secrets.
pub fn example_documents() -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(template_engine::EXAMPLE).expect("the bundled example parses");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The example's Secrets (token, vars), typed: the render of the PodTemplates needs them, the server never has them.
fn example_secrets() -> (Secret, Secret) {
    let mut secrets = example_documents()
        .into_iter()
        .filter(|d| d["kind"] == "Secret")
        .map(|d| {
            let mut secret: Secret = serde_json::from_value(d).unwrap();
            // stringData as the API server would store it.
            let data = secret.string_data.take().unwrap_or_default();
            secret.data = Some(
                data.into_iter()
                    .map(|(k, v)| (k, k8s_openapi::ByteString(v.into_bytes())))
                    .collect(),
            );
            (secret.metadata.name.clone().unwrap_or_default(), secret)
        })
        .collect::<std::collections::BTreeMap<_, _>>();
    (
        secrets.remove("app1-backup-token").unwrap(),
        secrets.remove("app1-backup-vars").unwrap(),
    )
}

/// The PodTemplates (`<sb>-backup`, `<sb>-restore`) the scheduled-controller applies for the stored
/// ScheduledBackup `sb` (owned by it, by uid), rendered from `template` (the built-in pg15 when `None`).
pub fn pod_templates(
    server: &FakeApiServer,
    sb: &str,
    template: Option<template_engine::ProcedureTemplate>,
) -> Vec<Value> {
    let stored: crd_types::ScheduledBackup = serde_json::from_value(
        server
            .get("scheduledbackups", NS, sb)
            .expect("the SB is stored"),
    )
    .unwrap();
    let template = template.unwrap_or_else(|| template_engine::builtin("pg15").unwrap());
    let (token, vars) = example_secrets();
    let desired = template_engine::desired_children(&template_engine::Inputs {
        scheduled_backup: &stored,
        template: &template,
        token_secret: &token,
        vars_secret: Some(&vars),
    })
    .unwrap();
    desired
        .pod_templates
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect()
}

/// Stores the PodTemplate of `operation` for the stored ScheduledBackup [`SB`], as the scheduled-controller would.
pub fn seed_pod_template(server: &FakeApiServer, operation: &str) {
    let name = format!("{SB}-{operation}");
    let pt = pod_templates(server, SB, None)
        .into_iter()
        .find(|p| p["metadata"]["name"] == name.as_str())
        .unwrap();
    server.insert(pt).unwrap();
}

/// The example ScheduledBackup with a `Ready` condition (`ready` decides its status).
pub fn scheduled_backup(ready: bool) -> Value {
    let mut sb = example_documents()
        .into_iter()
        .find(|d| d["kind"] == "ScheduledBackup")
        .unwrap();
    sb["status"] = json!({"conditions": [ready_condition(ready)]});
    sb
}

/// Seeds a Ready ScheduledBackup and its PodTemplates, as if gpg-keygen and scheduled-controller had done their
/// part.
pub fn seed(server: &FakeApiServer) {
    server.insert(scheduled_backup(true)).unwrap();
    seed_pod_template(server, "backup");
    seed_pod_template(server, "restore");
}

/// A RequestedBackupAction document.
pub fn action(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("scheduledBackupRef").is_none() {
        spec["scheduledBackupRef"] = json!({"name": SB});
    }
    json!({
        "apiVersion": "riotkit.org/v1alpha1",
        "kind": "RequestedBackupAction",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    })
}

/// A running controller; `stop` ends it gracefully, `abort` kills it like a crash.
pub struct Running {
    /// The controller task.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Its metrics.
    pub metrics: ControllerMetrics,
    /// Its readiness.
    pub health: Health,
    /// The registry its metrics are registered in.
    pub registry: prometheus::Registry,
}

impl Running {
    /// Graceful shutdown, waiting for the controller to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }

    /// Kills the controller mid-flight (a crash): no graceful shutdown.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Starts the controller against `client`.
pub fn start(client: kube::Client) -> Running {
    let registry = prometheus::Registry::new();
    let metrics = ControllerMetrics::new(NAME, &registry);
    let health = Health::default();
    let config = Config {
        namespace: None,
        concurrency: 4,
        metrics: metrics.clone(),
        health: health.clone(),
        instance: Some("test".into()),
        shard: Default::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(client, config, async move {
        let _ = stopped.await;
    }));
    Running {
        task,
        stop: Some(stop),
        metrics,
        health,
        registry,
    }
}

/// The fake server behind a switch that makes writes to RequestedBackupAction status fail with a 500, as an
/// apiserver or network outage would right after the Job was created.
#[derive(Clone)]
pub struct Faulty {
    inner: FakeApiServer,
    /// While true, action status writes fail.
    pub fail_status_writes: Arc<AtomicBool>,
    /// Status writes failed so far.
    pub failed_status_writes: Arc<AtomicUsize>,
}

impl Faulty {
    /// Wraps `server`; faults are off.
    pub fn new(server: &FakeApiServer) -> Self {
        Self {
            inner: server.clone(),
            fail_status_writes: Arc::new(AtomicBool::new(false)),
            failed_status_writes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A client through this wrapper.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }
}

impl tower::Service<Request<kube::client::Body>> for Faulty {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let path = req.uri().path();
        let status_write = req.method() == http::Method::PATCH
            && path.contains("/requestedbackupactions/")
            && path.ends_with("/status");
        if status_write && self.fail_status_writes.load(Ordering::SeqCst) {
            self.failed_status_writes.fetch_add(1, Ordering::SeqCst);
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500,
                              "reason": "InternalError", "message": "injected: etcd is unavailable"});
            let response = Response::builder()
                .status(500)
                .header("content-type", "application/json")
                .body(
                    http_body_util::Full::new(bytes::Bytes::from(body.to_string()))
                        .map_err(|e| match e {})
                        .boxed_unsync(),
                )
                .unwrap();
            return Box::pin(async move { Ok(response) });
        }
        tower::Service::call(&mut self.inner, req)
    }
}

/// Waits (up to 10 s) until `predicate` holds for the stored action `name`.
pub async fn wait_action(
    server: &FakeApiServer,
    name: &str,
    what: &str,
    predicate: impl Fn(&Value) -> bool,
) -> Value {
    let result = server
        .wait_for(Duration::from_secs(10), |s| {
            s.get("requestedbackupactions", NS, name)
                .is_some_and(|a| predicate(&a))
        })
        .await;
    let current = server
        .get("requestedbackupactions", NS, name)
        .unwrap_or(Value::Null);
    assert!(
        result.is_ok(),
        "timed out waiting for action {name}: {what}; it is now {current:#}"
    );
    current
}

/// The condition `type_` of an object's status.
pub fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// `Ready`'s reason, when present.
pub fn ready_reason(object: &Value) -> Option<String> {
    condition(object, "Ready")
        .and_then(|c| c["reason"].as_str())
        .map(str::to_string)
}

/// Reasons of the events about the action `name` (not its Job, which shares the name).
pub fn event_reasons(server: &FakeApiServer, name: &str) -> Vec<String> {
    server
        .events_for(name)
        .iter()
        .filter(|e| {
            e["regarding"]["kind"] == "RequestedBackupAction"
                || e["involvedObject"]["kind"] == "RequestedBackupAction"
        })
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Lets the controller settle, then asserts it makes no write at all for `quiet`.
pub async fn assert_quiet(server: &FakeApiServer, quiet: Duration, why: &str) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.reset_counters();
    tokio::time::sleep(quiet).await;
    assert_eq!(
        server.total_writes(),
        0,
        "{why}: unexpected writes {:#?}",
        server.write_log()
    );
}

/// The Secret values of the example fixtures: none of them may ever show up in status, events or Jobs.
pub const SECRET_VALUES: [&str; 2] = ["eyJhbGciOiJIUzI1NiJ9.example.token", "it's a secret"];

/// Asserts that no Secret value of the fixtures appears in any event or action.
pub fn assert_no_secret_values(server: &FakeApiServer) {
    let mut everything = server.list("events");
    everything.extend(server.list("events.events.k8s.io"));
    everything.extend(server.list("requestedbackupactions"));
    let text = serde_json::to_string(&everything).unwrap();
    for secret in SECRET_VALUES {
        assert!(
            !text.contains(secret),
            "a Secret value leaked into events or status"
        );
    }
}

/// The value of a counter sample in the gathered registry, by family name and label pairs.
pub fn counter(registry: &prometheus::Registry, family: &str, labels: &[(&str, &str)]) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            })
        })
        .map(|m| m.get_counter().get_value())
        .sum()
}
