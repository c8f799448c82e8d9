//! kube-runtime against the fake: a real `Controller` converging and going quiet, status
//! controllers, the finalizer helper, and the event `Recorder`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fake_apiserver::{FakeApiServer, Verb};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;

const SETTLE: Duration = Duration::from_millis(400);

/// Lets the controllers settle, then starts counting writes afresh.
async fn settle_and_reset(server: &FakeApiServer) {
    server
        .wait_until_quiet(SETTLE, Duration::from_secs(10))
        .await
        .expect("controllers settle");
    server.reset_counters();
}

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": value}})).unwrap()
}

struct Ctx {
    client: kube::Client,
    reconciles: AtomicUsize,
}

/// ConfigMap → owned Secret with the same data, via server-side apply.
async fn copy_to_secret(cm: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let ns = cm.namespace().unwrap_or_default();
    let owner = cm.controller_owner_ref(&()).expect("has uid");
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": cm.name_any(), "ownerReferences": [owner]},
        "stringData": cm.data,
    });
    Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &cm.name_any(),
            &PatchParams::apply("cm-to-secret").force(),
            &Patch::Apply(secret),
        )
        .await?;
    Ok(Action::await_change())
}

fn retry_soon<K>(_: Arc<K>, _: &kube::Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

#[tokio::test]
async fn a_controller_converges_then_makes_zero_writes() {
    let server = FakeApiServer::new();
    let client = server.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ns");
    cms.create(&PostParams::default(), &cm("a", "one"))
        .await
        .unwrap();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        reconciles: AtomicUsize::new(0),
    });
    let controller = Controller::new(cms.clone(), watcher::Config::default())
        .owns(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
        )
        .run(copy_to_secret, retry_soon, ctx.clone())
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("secrets", "ns", "a").is_some()
        })
        .await
        .unwrap();
    settle_and_reset(&server).await;
    let secret = server.get("secrets", "ns", "a").unwrap();
    assert_eq!(secret["data"]["k"], "b25l");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["name"], "a");

    let reconciles = ctx.reconciles.load(Ordering::SeqCst);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(server.total_writes(), 0, "{:?}", server.write_log());
    assert_eq!(ctx.reconciles.load(Ordering::SeqCst), reconciles);

    // A change to the ConfigMap flows through, and then the controller is quiet again.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "two"}})),
    )
    .await
    .unwrap();
    server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("secrets", "ns", "a")
                .is_some_and(|v| v["data"]["k"] == "dHdv")
        })
        .await
        .unwrap();
    settle_and_reset(&server).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(server.total_writes(), 0, "{:?}", server.write_log());

    // Deleting the ConfigMap garbage-collects the Secret.
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("secrets", "ns", "a").is_none()
        })
        .await
        .unwrap();
    task.abort();
}

fn sb_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("riotkit.org", "v1alpha1", "ScheduledBackup");
    ApiResource::from_gvk_with_plural(&gvk, "scheduledbackups")
}

/// Writes a Ready condition with `observedGeneration` into status, via status SSA.
async fn report_ready(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &obj.namespace().unwrap_or_default(),
        &sb_resource(),
    );
    let status = json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
        "status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "Reconciled",
            "observedGeneration": obj.metadata.generation,
        }]}
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply("status-ctl").force(),
        &Patch::Apply(status),
    )
    .await?;
    Ok(Action::await_change())
}

#[tokio::test]
async fn a_status_writing_controller_does_not_hot_loop() {
    let server = FakeApiServer::new();
    let client = server.client();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "ns", &sb_resource());
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
        "metadata": {"name": "b"}, "spec": {"schedule": "@daily"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        reconciles: AtomicUsize::new(0),
    });
    let controller = Controller::new_with(api.clone(), watcher::Config::default(), sb_resource())
        .run(report_ready, retry_soon, ctx.clone())
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    let observed = |generation: i64| {
        move |s: &fake_apiserver::StateView<'_>| {
            s.get("scheduledbackups", "ns", "b")
                .is_some_and(|v| v["status"]["conditions"][0]["observedGeneration"] == generation)
        }
    };
    server
        .wait_for(Duration::from_secs(5), observed(1))
        .await
        .unwrap();
    settle_and_reset(&server).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(server.total_writes(), 0, "{:?}", server.write_log());

    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"schedule": "@hourly"}})),
    )
    .await
    .unwrap();
    server
        .wait_for(Duration::from_secs(5), observed(2))
        .await
        .unwrap();
    settle_and_reset(&server).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        server.write_count("scheduledbackups/status", Verb::Apply),
        0
    );
    task.abort();
}

#[tokio::test]
async fn the_finalizer_helper_adds_and_removes_its_finalizer() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", "v"))
        .await
        .unwrap();
    let name = "example.org/cleanup";
    let cleaned = Arc::new(AtomicUsize::new(0));
    let run = |obj: ConfigMap| {
        let cleaned = cleaned.clone();
        let api = api.clone();
        async move {
            finalizer(&api, name, Arc::new(obj), |ev| async move {
                if let Finalizer::Cleanup(_) = ev {
                    cleaned.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, kube::Error>(Action::await_change())
            })
            .await
        }
    };

    run(api.get("a").await.unwrap())
        .await
        .expect("adds finalizer");
    let with = api.get("a").await.unwrap();
    assert_eq!(with.finalizers(), [name.to_owned()]);
    run(with).await.expect("applies");

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("a").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    run(deleting)
        .await
        .expect("cleans up and removes finalizer");
    assert_eq!(cleaned.load(Ordering::SeqCst), 1);
    assert!(api.get_opt("a").await.unwrap().is_none());
}

#[tokio::test]
async fn the_recorder_publishes_events_k8s_io_events() {
    let server = FakeApiServer::new();
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "ns");
    let obj = api
        .create(&PostParams::default(), &cm("a", "v"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "test-controller".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "KeyMissing".into(),
        note: Some("create the key Secret".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &obj.object_ref(&()))
        .await
        .unwrap();
    recorder
        .publish(&event, &obj.object_ref(&()))
        .await
        .unwrap();
    let events = server.events_for("a");
    assert_eq!(
        events.len(),
        1,
        "a repeated event becomes a series: {events:?}"
    );
    assert_eq!(events[0]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(events[0]["reason"], "KeyMissing");
    assert_eq!(events[0]["regarding"]["kind"], "ConfigMap");
    assert_eq!(events[0]["series"]["count"], 2);
}
