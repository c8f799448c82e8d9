//! CRUD, patch, apply, status and counter semantics through a real `kube::Client`.

use std::time::Duration;

use fake_apiserver::{FakeApiServer, ResourceInfo, Verb};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::{Value, json};

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .expect("valid ConfigMap")
}

fn api_error(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn sb_api(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("riotkit.org", "v1alpha1", "ScheduledBackup");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "scheduledbackups");
    Api::namespaced_with(client, ns, &ar)
}

fn sb(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "riotkit.org/v1alpha1",
        "kind": "ScheduledBackup",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("valid object")
}

fn rv(v: &Value) -> String {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn missing_object_is_a_not_found_status_that_kube_parses() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let err = api.get("nope").await.unwrap_err();
    assert_eq!(api_error(err), (404, "NotFound".to_owned()));
    assert!(api.get_opt("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn create_assigns_identity_and_duplicate_name_is_already_exists() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("ns"));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let err = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "AlreadyExists".to_owned()));
}

#[tokio::test]
async fn generate_name_creates_distinct_objects() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let mut obj = cm("", json!({}));
    obj.metadata.name = None;
    obj.metadata.generate_name = Some("gen-".into());
    let a = api.create(&PostParams::default(), &obj).await.unwrap();
    let b = api.create(&PostParams::default(), &obj).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("gen-") && b.starts_with("gen-"));
    assert_ne!(a, b);
}

#[tokio::test]
async fn list_filters_by_label_and_field_selectors_and_reports_resource_version() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let pp = PostParams::default();
    api.create(&pp, &cm("web", json!({"app": "web", "tier": "front"})))
        .await
        .unwrap();
    api.create(&pp, &cm("db", json!({"app": "db"})))
        .await
        .unwrap();
    api.create(&pp, &cm("bare", json!({}))).await.unwrap();
    Api::<ConfigMap>::namespaced(server.client(), "other")
        .create(&pp, &cm("web", json!({"app": "web"})))
        .await
        .unwrap();

    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    let lp = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(api.list(&lp("app=web")).await.unwrap()), ["web"]);
    assert_eq!(
        names(api.list(&lp("app!=web")).await.unwrap()),
        ["bare", "db"]
    );
    assert_eq!(
        names(api.list(&lp("app in (db,web)")).await.unwrap()),
        ["db", "web"]
    );
    assert_eq!(
        names(api.list(&lp("app notin (db)")).await.unwrap()),
        ["bare", "web"]
    );
    assert_eq!(names(api.list(&lp("tier")).await.unwrap()), ["web"]);
    assert_eq!(names(api.list(&lp("!app")).await.unwrap()), ["bare"]);
    let by_name = ListParams::default().fields("metadata.name=db");
    assert_eq!(names(api.list(&by_name).await.unwrap()), ["db"]);

    let all: Api<ConfigMap> = Api::all(server.client());
    let list = all.list(&lp("app=web")).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(
        list.metadata.resource_version,
        Some(server.resource_version().to_string())
    );
    let unsupported = ListParams::default().fields("data.k=v");
    assert_eq!(api_error(api.list(&unsupported).await.unwrap_err()).0, 400);
}

#[tokio::test]
async fn list_pages_with_limit_and_continue_token() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("more pages");
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let third = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(third.metadata.continue_.is_none());
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_conflicts() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut first = created.clone();
    first.data = Some([("k".to_owned(), "1".to_owned())].into());
    api.replace("a", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created;
    stale.data = Some([("k".to_owned(), "2".to_owned())].into());
    let err = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".to_owned()));
    assert_eq!(
        server.get("configmaps", "ns", "a").unwrap()["data"]["k"],
        "1"
    );
}

#[tokio::test]
async fn delete_with_finalizers_marks_the_object_until_the_finalizers_are_removed() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let mut obj = cm("a", json!({}));
    obj.metadata.finalizers = Some(vec!["example.org/keep".into()]);
    api.create(&PostParams::default(), &obj).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let marked = api.get("a").await.expect("still present");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let remove = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    api.patch("a", &PatchParams::default(), &remove)
        .await
        .unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_dependents_recursively() {
    let server = FakeApiServer::new();
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "ns");
    let secrets: Api<Secret> = Api::namespaced(client, "ns");
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let owner_ref = |name: &str, uid: &str| json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid, "controller": true}]);
    let child: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "child", "ownerReferences": owner_ref("owner", owner.metadata.uid.as_deref().unwrap())}
    }))
    .unwrap();
    let child = api.create(&PostParams::default(), &child).await.unwrap();
    let grandchild: Secret = serde_json::from_value(json!({
        "metadata": {"name": "grandchild", "ownerReferences": owner_ref("child", child.metadata.uid.as_deref().unwrap())}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &grandchild)
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("unrelated", json!({})))
        .await
        .unwrap();

    api.delete("owner", &DeleteParams::default()).await.unwrap();
    // The garbage collector runs shortly after, as on a cluster: the child is still there.
    assert!(server.get("configmaps", "ns", "child").is_some());
    server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("configmaps", "ns", "child").is_none()
                && s.get("secrets", "ns", "grandchild").is_none()
        })
        .await
        .unwrap();
    assert!(server.get("configmaps", "ns", "unrelated").is_some());
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let owner = api
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let child: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "child", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}}))
        .unwrap();
    api.create(&PostParams::default(), &child).await.unwrap();
    let marked = api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    let marked = marked
        .left()
        .expect("the owner is returned, marked for deletion");
    assert_eq!(marked.metadata.finalizers, Some(vec!["orphan".to_owned()]));
    server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("configmaps", "ns", "owner").is_none()
        })
        .await
        .unwrap();
    let child = server.get("configmaps", "ns", "child").expect("child kept");
    assert!(
        child["metadata"].get("ownerReferences").is_none(),
        "{child}"
    );
}

#[tokio::test]
async fn json_patch_test_null_then_add_sets_the_first_finalizer() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
    ]))
    .unwrap();
    let out = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Json::<()>(patch.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.finalizers, Some(vec!["f".to_owned()]));
    // Now the path exists, so the same `test null` fails as on a real apiserver.
    let err = api
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (422, "Invalid".to_owned()));
}

#[tokio::test]
async fn merge_and_strategic_merge_patches_update_the_object() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", json!({"x": "1"})))
        .await
        .unwrap();
    let merge = Patch::Merge(json!({"data": {"new": "n", "k": null}}));
    let out = api
        .patch("a", &PatchParams::default(), &merge)
        .await
        .unwrap();
    assert_eq!(out.data, Some([("new".to_owned(), "n".to_owned())].into()));
    let strategic = Patch::Strategic(json!({"metadata": {"labels": {"y": "2"}}}));
    let out = api
        .patch("a", &PatchParams::default(), &strategic)
        .await
        .unwrap();
    let labels = out.metadata.labels.unwrap();
    assert_eq!((labels["x"].as_str(), labels["y"].as_str()), ("1", "2"));
}

#[tokio::test]
async fn noop_writes_keep_the_resource_version_and_are_still_counted() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let pp = PatchParams::apply("mgr");
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
    api.patch("a", &pp, &Patch::Apply(&desired)).await.unwrap();
    let before = server.resource_version();
    server.reset_counters();

    api.patch("a", &pp, &Patch::Apply(&desired)).await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    assert_eq!(
        server.resource_version(),
        before,
        "no-op writes must not bump the RV"
    );
    assert_eq!(server.write_count("configmaps", Verb::Apply), 1);
    assert_eq!(server.write_count("configmaps", Verb::Patch), 1);
    assert_eq!(server.total_writes(), 2);
    assert!(server.write_log().iter().all(|w| !w.changed));

    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .unwrap();
    assert!(server.resource_version() > before);
    assert!(server.write_log().last().unwrap().changed);
    server.reset_counters();
    assert_eq!(server.total_writes(), 0);
}

#[tokio::test]
async fn noop_status_apply_keeps_the_resource_version() {
    let server = FakeApiServer::new();
    let api = sb_api(server.client(), "ns");
    api.create(&PostParams::default(), &sb("b", json!({"x": 1})))
        .await
        .unwrap();
    let status = json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let pp = PatchParams::apply("ctl").force();
    api.patch_status("b", &pp, &Patch::Apply(&status))
        .await
        .unwrap();
    let before = server.resource_version();
    api.patch_status("b", &pp, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(server.resource_version(), before);
    assert_eq!(
        server.write_count("scheduledbackups/status", Verb::Apply),
        2
    );
}

#[tokio::test]
async fn status_subresource_changes_only_status_and_main_writes_ignore_status() {
    let server = FakeApiServer::new();
    let api = sb_api(server.client(), "ns");
    let mut with_status = sb("b", json!({"x": 1}));
    with_status.data["status"] = json!({"phase": "ignored-on-create"});
    let created = api
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(created.data.get("status").is_none());

    let status_patch = Patch::Merge(json!({"spec": {"x": 99}, "status": {"phase": "Ok"}}));
    let out = api
        .patch_status("b", &PatchParams::default(), &status_patch)
        .await
        .unwrap();
    assert_eq!(out.data["status"]["phase"], "Ok");
    assert_eq!(
        out.data["spec"]["x"], 1,
        "status writes must not change spec"
    );

    let main_patch = Patch::Merge(json!({"spec": {"x": 2}, "status": {"phase": "Hacked"}}));
    let out = api
        .patch("b", &PatchParams::default(), &main_patch)
        .await
        .unwrap();
    assert_eq!(out.data["spec"]["x"], 2);
    assert_eq!(
        out.data["status"]["phase"], "Ok",
        "main writes must not change status"
    );
}

#[tokio::test]
async fn generation_starts_at_one_and_bumps_only_on_spec_changes() {
    let server = FakeApiServer::new();
    let api = sb_api(server.client(), "ns");
    let created = api
        .create(&PostParams::default(), &sb("b", json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let labels = Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}}));
    let out = api
        .patch("b", &PatchParams::default(), &labels)
        .await
        .unwrap();
    assert_eq!(out.metadata.generation, Some(1));
    let status = Patch::Merge(json!({"status": {"phase": "x"}}));
    let out = api
        .patch_status("b", &PatchParams::default(), &status)
        .await
        .unwrap();
    assert_eq!(out.metadata.generation, Some(1));
    let spec = Patch::Merge(json!({"spec": {"x": 2}}));
    let out = api
        .patch("b", &PatchParams::default(), &spec)
        .await
        .unwrap();
    assert_eq!(out.metadata.generation, Some(2));
}

#[tokio::test]
async fn two_managers_applying_different_conditions_both_survive() {
    let server = FakeApiServer::new();
    let api = sb_api(server.client(), "ns");
    api.create(&PostParams::default(), &sb("b", json!({})))
        .await
        .unwrap();
    let apply = |types: &[&str]| {
        let conditions: Vec<Value> = types
            .iter()
            .map(|t| json!({"type": t, "status": "True", "reason": "Fine"}))
            .collect();
        json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup", "status": {"conditions": conditions}})
    };
    api.patch_status(
        "b",
        &PatchParams::apply("keygen"),
        &Patch::Apply(apply(&["KeyReady", "Extra"])),
    )
    .await
    .unwrap();
    api.patch_status(
        "b",
        &PatchParams::apply("scheduler"),
        &Patch::Apply(apply(&["Ready"])),
    )
    .await
    .unwrap();
    let types = |v: &Value| -> Vec<String> {
        v["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let now = server.get("scheduledbackups", "ns", "b").unwrap();
    assert_eq!(types(&now), ["KeyReady", "Extra", "Ready"]);

    // keygen stops sending "Extra": only that condition disappears.
    api.patch_status(
        "b",
        &PatchParams::apply("keygen"),
        &Patch::Apply(apply(&["KeyReady"])),
    )
    .await
    .unwrap();
    let now = server.get("scheduledbackups", "ns", "b").unwrap();
    assert_eq!(types(&now), ["KeyReady", "Ready"]);
}

#[tokio::test]
async fn apply_conflicts_with_another_managers_value_unless_forced() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let body = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": v}});
    api.patch("a", &PatchParams::apply("one"), &Patch::Apply(body("1")))
        .await
        .unwrap();
    let err = api
        .patch("a", &PatchParams::apply("two"), &Patch::Apply(body("2")))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".to_owned()));
    let out = api
        .patch(
            "a",
            &PatchParams::apply("two").force(),
            &Patch::Apply(body("2")),
        )
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["k"], "2");
    // "one" lost ownership, so its re-apply without the field no longer removes it.
    let empty = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
    api.patch("a", &PatchParams::apply("one"), &Patch::Apply(empty))
        .await
        .unwrap();
    assert_eq!(
        server.get("configmaps", "ns", "a").unwrap()["data"]["k"],
        "2"
    );
}

#[tokio::test]
async fn apply_removes_fields_the_manager_stopped_sending() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let pp = PatchParams::apply("mgr");
    let v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"l": "1"}}, "data": {"a": "1", "b": "2"}});
    api.patch("a", &pp, &Patch::Apply(v1)).await.unwrap();
    let v2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"a": "1"}});
    let out = api.patch("a", &pp, &Patch::Apply(v2)).await.unwrap();
    assert_eq!(out.data, Some([("a".to_owned(), "1".to_owned())].into()));
    assert!(out.metadata.labels.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn apply_body_may_be_yaml() {
    let server = FakeApiServer::new();
    let client = server.client();
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: from-yaml\n";
    let req = http::Request::patch("/api/v1/namespaces/ns/configmaps/y?fieldManager=yaml")
        .header("content-type", "application/apply-patch+yaml")
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    let out: ConfigMap = client.request(req).await.unwrap();
    assert_eq!(out.data.unwrap()["k"], "from-yaml");
}

#[tokio::test]
async fn crd_defaults_are_applied_on_create() {
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: scheduledbackups.riotkit.org}
spec:
  group: riotkit.org
  scope: Namespaced
  names: {kind: ScheduledBackup, plural: scheduledbackups}
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                suspend: {type: boolean, default: false}
                retention:
                  type: object
                  properties:
                    keep: {type: integer, default: 7}
"#;
    let server = FakeApiServer::builder().crd_defaults_from_yaml(crd).build();
    let api = sb_api(server.client(), "ns");
    let out = api
        .create(&PostParams::default(), &sb("b", json!({"retention": {}})))
        .await
        .unwrap();
    assert_eq!(
        out.data["spec"],
        json!({"suspend": false, "retention": {"keep": 7}})
    );
}

#[tokio::test]
async fn unregistered_workflows_answer_404_and_registered_ones_are_served() {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "workflows");
    let wf: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}, "spec": {}
    }))
    .unwrap();

    let without = FakeApiServer::new();
    let api: Api<DynamicObject> = Api::namespaced_with(without.client(), "ns", &ar);
    let err = api.create(&PostParams::default(), &wf).await.unwrap_err();
    assert_eq!(api_error(err).0, 404);

    let with = FakeApiServer::builder()
        .resource(ResourceInfo::argo_workflows())
        .build();
    let api: Api<DynamicObject> = Api::namespaced_with(with.client(), "ns", &ar);
    api.create(&PostParams::default(), &wf).await.unwrap();
    assert!(with.get("workflows", "ns", "w").is_some());
}

#[tokio::test]
async fn discovery_reports_whether_argo_workflows_exist() {
    let gv = kube::core::GroupVersion::gv("argoproj.io", "v1alpha1");
    let without = FakeApiServer::new();
    assert!(
        kube::discovery::oneshot::pinned_group(&without.client(), &gv)
            .await
            .is_err()
    );
    assert!(
        kube::discovery::oneshot::group(&without.client(), "argoproj.io")
            .await
            .is_err()
    );

    let with = FakeApiServer::builder()
        .resource(ResourceInfo::argo_workflows())
        .build();
    let group = kube::discovery::oneshot::group(&with.client(), "argoproj.io")
        .await
        .unwrap();
    let (ar, caps) = group.recommended_kind("Workflow").expect("Workflow served");
    assert_eq!(ar.plural, "workflows");
    assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
    let core = kube::discovery::oneshot::group(&with.client(), "")
        .await
        .unwrap();
    assert!(core.recommended_kind("ConfigMap").is_some());
}

#[tokio::test]
async fn cluster_scoped_objects_are_served_without_a_namespace() {
    let server = FakeApiServer::new();
    let gvk = GroupVersionKind::gvk("riotkit.org", "v1alpha1", "ClusterBackupProcedureTemplate");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "clusterbackupproceduretemplates");
    let api: Api<DynamicObject> = Api::all_with(server.client(), &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "ClusterBackupProcedureTemplate",
        "metadata": {"name": "pg"}, "spec": {"image": "x"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    assert!(created.metadata.namespace.is_none());
    assert_eq!(api.get("pg").await.unwrap().data["spec"]["image"], "x");
    let status = Patch::Merge(json!({"status": {"ok": true}}));
    let out = api
        .patch_status("pg", &PatchParams::default(), &status)
        .await
        .unwrap();
    assert_eq!(out.data["status"]["ok"], true);
    assert_eq!(
        server
            .get("clusterbackupproceduretemplates", "", "pg")
            .unwrap()["status"]["ok"],
        true
    );
}

#[tokio::test]
async fn seeded_objects_keep_status_and_are_not_counted() {
    let server = FakeApiServer::new();
    let seeded = server
        .insert(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "ns"},
            "spec": {"template": {}}, "status": {"succeeded": 1}}))
        .unwrap();
    assert_eq!(seeded["status"]["succeeded"], 1);
    let modified = server
        .modify("jobs", "ns", "j", |j| j["status"]["failed"] = json!(1))
        .unwrap();
    assert_eq!(modified["status"]["failed"], 1);
    assert_ne!(rv(&seeded), rv(&modified));
    assert_eq!(server.total_writes(), 0);
    assert_eq!(
        server.insert(json!({"kind": "Nope"})).unwrap_err().reason(),
        "InvalidObject"
    );
    let err = server
        .insert(json!({"apiVersion": "x/v1", "kind": "Nope", "metadata": {"name": "n"}}))
        .unwrap_err();
    assert_eq!(err.reason(), "UnknownType");
}

#[tokio::test]
async fn wait_for_returns_once_the_state_matches_and_times_out_otherwise() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let waiter = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .wait_for(Duration::from_secs(5), |s| {
                    s.get("configmaps", "ns", "late").is_some()
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    api.create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap();
    waiter.await.unwrap().expect("seen");
    let err = server
        .wait_for(Duration::from_millis(50), |s| s.list("secrets").len() == 1)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "Timeout");
}

#[tokio::test]
async fn the_generated_crds_load_and_their_defaults_apply_to_spec_and_status() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds");
    let mut builder = FakeApiServer::builder();
    for file in [
        "scheduledbackups.riotkit.org.yaml",
        "requestedbackupactions.riotkit.org.yaml",
        "clusterbackupproceduretemplates.riotkit.org.yaml",
    ] {
        let yaml = std::fs::read_to_string(format!("{dir}/{file}")).expect("generated CRD present");
        builder = builder
            .try_crd_defaults_from_yaml(&yaml)
            .expect("CRD parses");
    }
    let server = builder.build();
    let gvk = GroupVersionKind::gvk("riotkit.org", "v1alpha1", "RequestedBackupAction");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "requestedbackupactions");
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), "ns", &ar);
    let rba: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
        "metadata": {"name": "r"},
        "spec": {"action": "backup", "scheduledBackupRef": {"name": "sb"}}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &rba).await.unwrap();
    assert_eq!(created.data["spec"]["kindType"], "Job");
    let status = json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
        "status": {"childrenResourcesHealth": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j"}]}});
    let out = api
        .patch_status("r", &PatchParams::apply("ctl"), &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(
        out.data["status"]["childrenResourcesHealth"][0]["failed"],
        false
    );
    // Re-applying the same (undefaulted) status is still a no-op.
    let before = server.resource_version();
    api.patch_status("r", &PatchParams::apply("ctl"), &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(server.resource_version(), before);
}

#[tokio::test]
async fn delete_collection_removes_only_selected_objects_and_counts_one_write() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", json!({"x": "1"})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({"x": "2"})))
        .await
        .unwrap();
    server.reset_counters();
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("x=1"),
    )
    .await
    .unwrap();
    assert!(server.get("configmaps", "ns", "a").is_none());
    assert!(server.get("configmaps", "ns", "b").is_some());
    assert_eq!(server.write_count("configmaps", Verb::Delete), 1);
}

#[tokio::test]
async fn rejected_writes_are_counted_too() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    server.reset_counters();
    assert!(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .is_err()
    );
    let log = server.write_log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].verb, log[0].code, log[0].changed),
        (Verb::Create, 409, false)
    );
}

#[tokio::test]
async fn wait_until_quiet_waits_for_changes_to_stop() {
    let server = FakeApiServer::new();
    let writer = {
        let server = server.clone();
        tokio::spawn(async move {
            for i in 0..5 {
                server
                    .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("c{i}"), "namespace": "ns"}}))
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    server
        .wait_until_quiet(Duration::from_millis(100), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        server.list("configmaps").len(),
        5,
        "returned only after the last write"
    );
    writer.await.unwrap();
    let busy = server.clone();
    let churn = tokio::spawn(async move {
        for _ in 0..50 {
            busy.modify("configmaps", "ns", "c0", |c| {
                c["data"] = json!({"t": busy_tick()})
            })
            .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let err = server
        .wait_until_quiet(Duration::from_millis(100), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "Timeout");
    churn.abort();
}

fn busy_tick() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TICK: AtomicU64 = AtomicU64::new(0);
    TICK.fetch_add(1, Ordering::SeqCst).to_string()
}
