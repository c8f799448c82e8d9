//! Namespace termination (recording h1) and the opt-in existence check.

mod recorded;

use std::time::Duration;

use fake_apiserver::FakeApiServer;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::PostParams;
use recorded::{Bindings, Recording, replay, replay_eventually};
use serde_json::json;

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_deleted_namespace_refuses_new_content_empties_and_disappears_as_recorded() {
    let server = FakeApiServer::builder().strict_namespaces().build();
    let client = server.client();
    let rec = Recording::load("h1-namespace-terminating");
    let mut b = Bindings::default();
    for ns in ["rec-h1-fake", "rec-h1b-fake"] {
        create_namespace(&client, ns).await;
    }
    replay(&client, &rec, 0, &mut b).await;
    replay(&client, &rec, 1, &mut b).await;
    replay_eventually(&client, &rec, 2, &mut b).await;
    replay(&client, &rec, 3, &mut b).await;
    replay(&client, &rec, 4, &mut b).await;
    replay(&client, &rec, 5, &mut b).await;
    replay_eventually(&client, &rec, 6, &mut b).await;
    replay_eventually(&client, &rec, 7, &mut b).await;
    for step in 8..=11 {
        if step == 10 {
            replay_eventually(&client, &rec, step, &mut b).await;
        } else {
            replay(&client, &rec, step, &mut b).await;
        }
    }
}

#[tokio::test]
async fn a_new_namespace_gets_its_name_label_finalizer_and_active_phase() {
    let server = FakeApiServer::new();
    create_namespace(&server.client(), "team-a").await;
    let ns = server.get("namespaces", "", "team-a").unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
}

#[tokio::test]
async fn without_strict_namespaces_objects_may_live_in_namespaces_nobody_created() {
    let server = FakeApiServer::new();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "never-created");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
}

#[tokio::test]
async fn with_strict_namespaces_the_system_namespaces_exist_and_others_must_be_created() {
    let server = FakeApiServer::builder().strict_namespaces().build();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
    Api::<ConfigMap>::namespaced(server.client(), "default")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let err = Api::<ConfigMap>::namespaced(server.client(), "missing")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, "namespaces \"missing\" not found")
    );
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_jobs_and_their_pods() {
    let server = FakeApiServer::new();
    let client = server.client();
    create_namespace(&client, "team-b").await;
    let job: Job = serde_json::from_value(json!({"metadata": {"name": "work"}, "spec": {"template": {
        "spec": {"containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}}}}))
    .unwrap();
    Api::<Job>::namespaced(client.clone(), "team-b")
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    server
        .wait_for(Duration::from_secs(5), |s| s.list("pods").len() == 1)
        .await
        .unwrap();
    Api::<Namespace>::all(client)
        .delete("team-b", &Default::default())
        .await
        .unwrap();
    server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("namespaces", "", "team-b").is_none()
        })
        .await
        .unwrap();
    assert!(server.list("jobs").is_empty());
    assert!(server.list("pods").is_empty());
}
