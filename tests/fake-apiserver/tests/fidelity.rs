//! Server-side apply keyed by the recorded OpenAPI, apply request validation, strategic merge
//! patch, and CRD pruning/validation/CEL — each as the real apiserver answers (recordings c1-c5,
//! e1-e4; the conformance test replays those, these tests pin each behaviour on its own).

use bytes::Bytes;
use fake_apiserver::FakeApiServer;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// A CRD with a default, an enum, a required field, a minimum, a preserved subtree, a CEL rule
/// on a nested object, a transition rule on the root and a list-map in the status.
const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.org}
spec:
  group: example.org
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-validations:
            - rule: "self.spec.size == oldSelf.spec.size"
              message: spec.size is immutable
          properties:
            spec:
              type: object
              required: [mode]
              properties:
                mode: {type: string, enum: [fast, slow]}
                size: {type: integer, minimum: 1, default: 3}
                free: {type: object, x-kubernetes-preserve-unknown-fields: true}
                window:
                  type: object
                  x-kubernetes-validations:
                    - rule: "self.start < self.end"
                      message: window.start must be before window.end
                  properties:
                    start: {type: integer}
                    end: {type: integer}
            status:
              type: object
              properties:
                ready: {type: boolean}
                conditions:
                  type: array
                  x-kubernetes-list-type: map
                  x-kubernetes-list-map-keys: [type]
                  items:
                    type: object
                    required: [type, status]
                    properties:
                      type: {type: string}
                      status: {type: string}
"#;

fn widgets() -> FakeApiServer {
    FakeApiServer::builder()
        .crd_defaults_from_yaml(WIDGET_CRD)
        .build()
}

/// One raw request: status, `Warning` header texts, body.
async fn send(
    server: &FakeApiServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: Value,
) -> (u16, Vec<String>, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request");
    let resp = server
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn widget(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})
}

const WIDGETS: &str = "/apis/example.org/v1/namespaces/ns/widgets";

fn causes(body: &Value) -> Vec<(String, String)> {
    body["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn cronjobs(server: &FakeApiServer) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("batch", "v1", "CronJob");
    Api::namespaced_with(
        server.client(),
        "ns",
        &ApiResource::from_gvk_with_plural(&gvk, "cronjobs"),
    )
}

fn cronjob_with_mounts(mounts: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "app"},
        "spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "main", "image": "busybox", "volumeMounts": mounts}]}}}}}})
}

fn mounts_of(obj: &DynamicObject) -> Value {
    obj.data["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .clone()
}

fn apply_as(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

#[tokio::test]
async fn reapplying_volume_mounts_in_another_order_stores_that_order_and_bumps_the_version() {
    let server = FakeApiServer::new();
    let api = cronjobs(&server);
    let a = json!({"name": "v1", "mountPath": "/a"});
    let b = json!({"name": "v2", "mountPath": "/b"});
    let first = api
        .patch(
            "app",
            &apply_as("a"),
            &Patch::Apply(cronjob_with_mounts(json!([a, b]))),
        )
        .await
        .unwrap();
    let again = api
        .patch(
            "app",
            &apply_as("a"),
            &Patch::Apply(cronjob_with_mounts(json!([a, b]))),
        )
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
    let reordered = api
        .patch(
            "app",
            &apply_as("a"),
            &Patch::Apply(cronjob_with_mounts(json!([b, a]))),
        )
        .await
        .unwrap();
    assert_eq!(mounts_of(&reordered), json!([b, a]));
    assert_ne!(
        reordered.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn a_second_manager_adds_a_volume_mount_of_the_same_volume_keyed_by_mount_path() {
    let server = FakeApiServer::new();
    let api = cronjobs(&server);
    let mine = json!({"name": "data", "mountPath": "/a"});
    let theirs = json!({"name": "data", "mountPath": "/b"});
    api.patch(
        "app",
        &apply_as("a"),
        &Patch::Apply(cronjob_with_mounts(json!([mine]))),
    )
    .await
    .unwrap();
    let both = api
        .patch(
            "app",
            &apply_as("b"),
            &Patch::Apply(cronjob_with_mounts(json!([theirs]))),
        )
        .await
        .unwrap();
    assert_eq!(mounts_of(&both), json!([mine, theirs]));
    let after_a_drops = api
        .patch(
            "app",
            &apply_as("a"),
            &Patch::Apply(cronjob_with_mounts(json!([]))),
        )
        .await
        .unwrap();
    assert_eq!(mounts_of(&after_a_drops), json!([theirs]));
}

#[tokio::test]
async fn a_conflict_with_an_update_manager_names_it_with_its_api_version() {
    let server = FakeApiServer::new();
    let path = "/api/v1/namespaces/ns/configmaps/cfg";
    let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": v}});
    let apply = "application/apply-patch+yaml";
    let (code, _, _) = send(
        &server,
        "PATCH",
        &format!("{path}?fieldManager=a"),
        apply,
        cfg("1"),
    )
    .await;
    assert_eq!(code, 201);
    let merge = "application/merge-patch+json";
    let (code, _, _) = send(
        &server,
        "PATCH",
        &format!("{path}?fieldManager=c"),
        merge,
        json!({"data": {"k": "2"}}),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _, body) = send(
        &server,
        "PATCH",
        &format!("{path}?fieldManager=a"),
        apply,
        cfg("3"),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(
        body["message"],
        "Apply failed with 1 conflict: conflict with \"c\" using v1: .data.k"
    );
    assert_eq!(
        causes(&body),
        vec![(
            ".data.k".to_owned(),
            "conflict with \"c\" using v1".to_owned()
        )]
    );
}

#[tokio::test]
async fn apply_requests_are_validated_before_anything_is_written() {
    let server = FakeApiServer::new();
    let path = "/api/v1/namespaces/ns/configmaps/x";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}});
    let apply = "application/apply-patch+yaml";

    let (code, _, body) = send(&server, "PATCH", path, apply, cm.clone()).await;
    assert_eq!(
        (code, body["details"]["kind"].as_str()),
        (422, Some("PatchOptions"))
    );

    let untyped = json!({"metadata": {"name": "x"}, "data": {"a": "1"}});
    let (code, _, body) = send(
        &server,
        "PATCH",
        &format!("{path}?fieldManager=a"),
        apply,
        untyped,
    )
    .await;
    assert_eq!(
        (code, body["message"].as_str()),
        (400, Some("invalid object type: /, Kind="))
    );

    let mut bogus = cm.clone();
    bogus["bogus"] = json!(1);
    let (code, _, body) = send(
        &server,
        "PATCH",
        &format!("{path}?fieldManager=a"),
        apply,
        bogus,
    )
    .await;
    assert_eq!(code, 500);
    assert!(body.get("reason").is_none());
    assert_eq!(
        body["message"],
        "failed to create typed patch object (/x; /v1, Kind=ConfigMap): .bogus: field not declared in schema"
    );

    let (code, _, body) = send(
        &server,
        "PATCH",
        path,
        "application/yaml",
        json!("data: {}"),
    )
    .await;
    assert_eq!(
        (code, body["message"].as_str()),
        (415, Some("415: Unsupported Media Type"))
    );
    assert!(server.get("configmaps", "ns", "x").is_none());

    send(
        &server,
        "PATCH",
        &format!("{path}?fieldManager=a"),
        apply,
        cm,
    )
    .await;
    let merge = "application/merge-patch+json";
    let (code, _, body) = send(
        &server,
        "PATCH",
        &format!("{path}?fieldManager=m&force=true"),
        merge,
        json!({"data": {"a": "2"}}),
    )
    .await;
    assert_eq!(
        (code, body["details"]["causes"][0]["field"].as_str()),
        (422, Some("force"))
    );
}

#[tokio::test]
async fn a_dry_run_apply_answers_like_a_create_and_stores_nothing() {
    let server = FakeApiServer::new();
    let before = server.resource_version();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}});
    let (code, _, body) = send(
        &server,
        "PATCH",
        "/api/v1/namespaces/ns/configmaps/x?fieldManager=a&dryRun=All",
        "application/apply-patch+yaml",
        cm,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(body["data"], json!({"a": "1"}));
    assert!(body["metadata"]["uid"].is_string());
    assert!(body["metadata"].get("resourceVersion").is_none());
    assert!(server.get("configmaps", "ns", "x").is_none());
    assert_eq!(server.resource_version(), before);
}

#[tokio::test]
async fn strategic_merge_patch_merges_owner_references_by_uid_and_rejects_two_controllers() {
    let server = FakeApiServer::new();
    let path = "/api/v1/namespaces/ns/configmaps/dep";
    let owner = |n: &str, controller: bool| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": format!("uid-{n}"), "controller": controller});
    let (code, _, _) = send(&server, "POST", "/api/v1/namespaces/ns/configmaps", "application/json",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dep", "ownerReferences": [owner("one", true)]}})).await;
    assert_eq!(code, 201);
    let smp = "application/strategic-merge-patch+json";
    let (code, _, body) = send(
        &server,
        "PATCH",
        path,
        smp,
        json!({"metadata": {"ownerReferences": [owner("two", false)]}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        body["metadata"]["ownerReferences"],
        json!([owner("two", false), owner("one", true)])
    );
    let (code, _, body) = send(
        &server,
        "PATCH",
        path,
        smp,
        json!({"metadata": {"ownerReferences": [owner("two", true)]}}),
    )
    .await;
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("Only one reference can have Controller set to true. Found \"true\" in references for ConfigMap/two and ConfigMap/one"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_custom_resource_fields_warn_are_pruned_or_fail_under_strict() {
    let server = widgets();
    let body = || widget("w", json!({"mode": "fast", "foo": 1, "free": {"any": 1}}));
    let (code, warnings, stored) = send(&server, "POST", WIDGETS, "application/json", body()).await;
    assert_eq!(code, 201);
    assert_eq!(warnings, vec![r#"299 - "unknown field \"spec.foo\"""#]);
    assert_eq!(
        stored["spec"],
        json!({"mode": "fast", "size": 3, "free": {"any": 1}})
    );

    let mut ignored = body();
    ignored["metadata"]["name"] = json!("ignored");
    let (code, warnings, _) = send(
        &server,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Ignore"),
        "application/json",
        ignored,
    )
    .await;
    assert_eq!((code, warnings.len()), (201, 0));

    let mut strict = body();
    strict["metadata"]["name"] = json!("strict");
    let (code, _, err) = send(
        &server,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        "application/json",
        strict,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        err["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.foo\""
    );
    assert!(server.get("widgets", "ns", "strict").is_none());

    let (code, warnings, patched) = send(
        &server,
        "PATCH",
        &format!("{WIDGETS}/w/status"),
        "application/merge-patch+json",
        json!({"status": {"ready": true, "bogus": "x"}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(warnings, vec![r#"299 - "unknown field \"status.bogus\"""#]);
    assert_eq!(patched["status"], json!({"ready": true}));
}

#[tokio::test]
async fn a_cel_rule_violation_is_422_on_the_field_that_carries_the_rule() {
    let server = widgets();
    let bad = widget(
        "w",
        json!({"mode": "fast", "window": {"start": 5, "end": 1}}),
    );
    let (code, _, body) = send(&server, "POST", WIDGETS, "application/json", bad).await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "Widget.example.org \"w\" is invalid: spec.window: Invalid value: window.start must be before window.end"
    );
    assert_eq!(body["details"]["group"], "example.org");
}

#[tokio::test]
async fn schema_errors_are_reported_and_block_the_cel_rules() {
    let server = widgets();
    let bad = widget(
        "w",
        json!({"mode": "sideways", "size": 0, "window": {"start": 5, "end": 1}}),
    );
    let (code, _, body) = send(&server, "POST", WIDGETS, "application/json", bad).await;
    assert_eq!(code, 422);
    let nil = "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";
    assert_eq!(
        causes(&body),
        vec![
            (
                "spec.mode".to_owned(),
                "Unsupported value: \"sideways\": supported values: \"fast\", \"slow\"".to_owned()
            ),
            (
                "spec.size".to_owned(),
                "Invalid value: 0: size in body should be greater than or equal to 1".to_owned()
            ),
            ("<nil>".to_owned(), nil.to_owned()),
        ]
    );
    let missing = widget("m", json!({"size": 2}));
    let (code, _, body) = send(&server, "POST", WIDGETS, "application/json", missing).await;
    assert_eq!(code, 422);
    assert_eq!(
        causes(&body)[0],
        ("spec.mode".to_owned(), "Required value".to_owned())
    );

    let (code, _, _) = send(
        &server,
        "POST",
        WIDGETS,
        "application/json",
        widget("ok", json!({"mode": "fast"})),
    )
    .await;
    assert_eq!(code, 201);
    let (code, _, body) = send(&server, "PATCH", &format!("{WIDGETS}/ok/status"), "application/merge-patch+json",
        json!({"status": {"ready": "yes", "conditions": [{"type": "A", "status": "True"}, {"type": "A", "status": "False"}]}})).await;
    assert_eq!(code, 422);
    assert_eq!(
        causes(&body)[..2],
        [
            (
                "status.ready".to_owned(),
                "Invalid value: \"string\": ready in body must be of type boolean: \"string\""
                    .to_owned()
            ),
            (
                "status.conditions[1]".to_owned(),
                "Duplicate value: {\"type\":\"A\"}".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn a_transition_rule_rejects_changing_an_immutable_field() {
    let server = widgets();
    send(
        &server,
        "POST",
        WIDGETS,
        "application/json",
        widget("w", json!({"mode": "fast", "size": 2})),
    )
    .await;
    let merge = "application/merge-patch+json";
    let (code, _, body) = send(
        &server,
        "PATCH",
        &format!("{WIDGETS}/w"),
        merge,
        json!({"spec": {"size": 5}}),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        causes(&body),
        vec![(
            "<nil>".to_owned(),
            "Invalid value: spec.size is immutable".to_owned()
        )]
    );
    let (code, _, _) = send(
        &server,
        "PATCH",
        &format!("{WIDGETS}/w"),
        merge,
        json!({"spec": {"mode": "slow"}}),
    )
    .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn an_update_is_not_rejected_for_an_invalid_value_it_leaves_unchanged() {
    let server = widgets();
    // Seeded without validation, as an object stored before a stricter schema would be.
    let mut seeded = widget(
        "old",
        json!({"mode": "fast", "window": {"start": 5, "end": 1}}),
    );
    seeded["metadata"]["namespace"] = json!("default");
    server.insert(seeded).unwrap();
    let gvk = GroupVersionKind::gvk("example.org", "v1", "Widget");
    let api: Api<DynamicObject> = Api::namespaced_with(
        server.client(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    );
    let labelled = api
        .patch(
            "old",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"l": "1"}}})),
        )
        .await;
    assert!(labelled.is_ok(), "{labelled:?}");
    let still_bad = api
        .patch(
            "old",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"window": {"start": 9}}})),
        )
        .await;
    assert!(
        matches!(still_bad, Err(kube::Error::Api(ref s)) if s.code == 422),
        "{still_bad:?}"
    );
}
