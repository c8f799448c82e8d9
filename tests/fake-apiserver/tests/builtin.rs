//! Built-in admission of Secrets and Pods (recordings a1, a4) and strategic merge patch of
//! built-in types.

mod recorded;

use fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use recorded::{Bindings, Recording, replay};
use serde_json::json;

#[tokio::test]
async fn secret_string_data_wins_over_data_type_defaults_and_bad_base64_is_a_400() {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load("a4-secret-stringdata");
    let mut b = Bindings::default();
    for step in 0..rec.doc["steps"].as_array().unwrap().len() {
        replay(&client, &rec, step, &mut b).await;
    }
}

#[tokio::test]
async fn a_new_pod_gets_spec_defaults_admission_defaults_and_pending_status() {
    let server = FakeApiServer::new();
    let pods: Api<Pod> = Api::namespaced(server.client(), "ns");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36",
                                 "ports": [{"containerPort": 80}],
                                 "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                 "volumes": [{"name": "s", "secret": {"secretName": "x"}}]}
    }))
    .unwrap();
    let created =
        serde_json::to_value(pods.create(&PostParams::default(), &pod).await.unwrap()).unwrap();
    let spec = &created["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
    let container = &spec["containers"][0];
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(container["ports"][0]["protocol"], "TCP");
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(spec["volumes"][0]["secret"]["defaultMode"], 420);
    assert!(
        spec["volumes"][1]["name"]
            .as_str()
            .unwrap()
            .starts_with("kube-api-access-")
    );
    assert_eq!(
        created["status"],
        json!({"phase": "Pending", "qosClass": "Guaranteed"})
    );
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let server = FakeApiServer::new();
    let pods: Api<Pod> = Api::namespaced(server.client(), "ns");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "finalizers": ["a"]},
        "spec": {"containers": [{"name": "one", "image": "busybox"}, {"name": "two", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let patch = json!({"metadata": {"finalizers": ["b"]},
                       "spec": {"containers": [{"name": "two", "image": "alpine"}]}});
    let patched = pods
        .patch("p", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let images: Vec<_> = patched
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| (c.name, c.image.unwrap()))
        .collect();
    assert_eq!(
        images,
        [
            ("one".into(), "busybox".into()),
            ("two".into(), "alpine".into())
        ]
    );
    assert_eq!(
        patched.metadata.finalizers.unwrap(),
        ["a".to_owned(), "b".to_owned()]
    );
}
