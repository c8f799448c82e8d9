//! Identities, RBAC and OwnerReferencesPermissionEnforcement: recording g1 replayed over HTTP
//! with a ServiceAccount token (403 bodies compared byte for byte as JSON), and a helm-style
//! manifest set exercising verbs, resources, subresources, resourceNames and scopes.

use std::collections::BTreeMap;

use fake_apiserver::{
    ADMIN_USER, FakeApiServer, HttpHandle, Rbac, Verb, service_account_token, service_account_user,
};
use http_body_util::BodyExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::{Value, json};

const G1_NS: &str = "rec-g1-test";

fn g1() -> Value {
    let text = include_str!("../k8s-api/recordings/g1-blockownerdeletion-permission.json");
    serde_json::from_str(&text.replace("rec-g1-<rand>", G1_NS)).unwrap()
}

/// The ServiceAccount, Role and RoleBinding that g1 created through the API, as manifests,
/// followed by `extra` manifests.
fn g1_rbac(recording: &Value, extra: &str) -> Rbac {
    let mut docs: Vec<String> = recording["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["request"]["body"].clone())
        .filter(|b| {
            ["ServiceAccount", "Role", "RoleBinding"].contains(&b["kind"].as_str().unwrap_or(""))
        })
        .map(|mut b| {
            b["metadata"]["namespace"] = json!(G1_NS);
            serde_json::to_string(&b).unwrap()
        })
        .collect();
    assert_eq!(docs.len(), 3);
    docs.push(extra.to_owned());
    Rbac::from_manifests(&docs.join("\n---\n"))
}

/// Sends one recorded request (as the ServiceAccount when the recording says `as`); returns
/// the status code and the JSON body.
async fn send(admin: &kube::Client, sa: &kube::Client, request: &Value) -> (u16, Value) {
    let query: Vec<String> = request["query"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    let uri = if query.is_empty() {
        request["path"].as_str().unwrap().to_owned()
    } else {
        format!("{}?{}", request["path"].as_str().unwrap(), query.join("&"))
    };
    let mut builder = http::Request::builder()
        .method(request["method"].as_str().unwrap())
        .uri(uri);
    if let Some(ct) = request["content_type"].as_str() {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    let body = if request["body"].is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&request["body"]).unwrap()
    };
    let client = if request.get("as").is_some() {
        sa
    } else {
        admin
    };
    let response = client
        .send(builder.body(kube::client::Body::from(body)).unwrap())
        .await
        .unwrap();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Replays g1 except the steps the fake does not serve (RBAC objects, TokenRequest,
/// SelfSubjectAccessReview); returns (note, recorded status, recorded body, status, body).
async fn replay_g1(
    enforcement: bool,
    extra_manifests: &str,
) -> (FakeApiServer, Vec<(String, u16, Value, u16, Value)>) {
    let recording = g1();
    let rbac = g1_rbac(&recording, extra_manifests);
    let server = FakeApiServer::builder()
        .rbac(rbac)
        .owner_references_permission_enforcement(enforcement)
        .build();
    let http = server.serve_http();
    let admin = http.client(None).await.unwrap();
    let sa = http
        .client(Some(&service_account_token(G1_NS, "limited")))
        .await
        .unwrap();
    let mut results = Vec::new();
    for step in recording["steps"].as_array().unwrap() {
        let path = step["request"]["path"].as_str().unwrap();
        if path.contains("rbac.authorization.k8s.io")
            || path.ends_with("/token")
            || path.contains("selfsubjectaccessreviews")
        {
            continue;
        }
        let (code, body) = send(&admin, &sa, &step["request"]).await;
        results.push((
            step["note"].as_str().unwrap().to_owned(),
            step["response"]["status"].as_u64().unwrap() as u16,
            step["response"]["body"].clone(),
            code,
            body,
        ));
    }
    drop(http);
    (server, results)
}

#[tokio::test]
async fn recorded_rbac_denials_have_the_exact_forbidden_bodies_and_blockownerdeletion_is_not_enforced_by_default()
 {
    let (_, results) = replay_g1(false, "").await;
    assert_eq!(results.len(), 9);
    let mut forbidden = 0;
    for (note, recorded_code, recorded_body, code, body) in &results {
        assert_eq!(code, recorded_code, "{note}: {body}");
        if *recorded_code == 403 {
            forbidden += 1;
            assert_eq!(body, recorded_body, "{note}");
        }
    }
    assert_eq!(forbidden, 3, "list, delete and get secret are denied");
}

fn owner_refs_forbidden(name: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("configmaps \"{name}\" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: , <nil>"),
        "reason": "Forbidden", "details": {"name": name, "kind": "configmaps"}, "code": 403
    })
}

#[tokio::test]
async fn owner_references_enforcement_refuses_blockownerdeletion_without_update_on_the_owners_finalizers()
 {
    let (_, results) = replay_g1(true, "").await;
    let by_note: BTreeMap<&str, (u16, &Value)> = results
        .iter()
        .map(|(note, _, _, code, body)| (note.as_str(), (*code, body)))
        .collect();
    let with_block = [
        (
            "as the ServiceAccount: ConfigMap owned by the ConfigMap, blockOwnerDeletion=true",
            "owned-by-cm",
        ),
        (
            "as the ServiceAccount: ConfigMap owned by the ScheduledBackup, blockOwnerDeletion=true",
            "owned-by-sb",
        ),
    ];
    for (note, name) in with_block {
        let (code, body) = by_note[note];
        assert_eq!(code, 403, "{note}");
        assert_eq!(*body, owner_refs_forbidden(name), "{note}");
    }
    assert_eq!(
        by_note["as the ServiceAccount: blockOwnerDeletion=false"].0, 201,
        "a non-blocking reference needs nothing on the owner"
    );
}

#[tokio::test]
async fn update_on_the_owners_finalizers_lets_the_enforced_blockownerdeletion_through() {
    let grant = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: finalizers, namespace: {G1_NS}}}\n\
         rules:\n- {{apiGroups: [''], resources: [configmaps/finalizers], verbs: [update]}}\n\
         - {{apiGroups: [riotkit.org], resources: [scheduledbackups/finalizers], verbs: [update]}}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: finalizers, namespace: {G1_NS}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: finalizers}}\n\
         subjects: [{{kind: ServiceAccount, name: limited}}]\n"
    );
    let (server, results) = replay_g1(true, &grant).await;
    for (note, recorded_code, _, code, body) in &results {
        assert_eq!(code, recorded_code, "{note}: {body}");
    }
    assert!(server.get("configmaps", G1_NS, "owned-by-sb").is_some());
}

// A chart's RBAC as `helm template` renders it (comments, a Deployment that is skipped).
const CHART: &str = r#"
---
# Source: backup-maker/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: controller
  namespace: backups
---
# Source: backup-maker/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: patcher
  namespace: backups
---
# Source: backup-maker/templates/clusterrole.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: backup-maker-controller
rules:
  - apiGroups: ["riotkit.org"]
    resources: ["scheduledbackups"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["riotkit.org"]
    resources: ["scheduledbackups/status"]
    verbs: ["patch"]
  - apiGroups: [""]
    resources: ["configmaps"]
    verbs: ["*"]
---
# Source: backup-maker/templates/clusterrolebinding.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: backup-maker-controller
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: backup-maker-controller
subjects:
  - kind: ServiceAccount
    name: controller
    namespace: backups
---
# Source: backup-maker/templates/role.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: leader-election
  namespace: backups
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "list", "watch", "update"]
    resourceNames: ["backup-maker-lock"]
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "patch"]
---
# Source: backup-maker/templates/rolebinding.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: leader-election
  namespace: backups
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: leader-election
subjects:
  - kind: ServiceAccount
    name: controller
  - kind: ServiceAccount
    name: patcher
---
# Source: backup-maker/templates/rolebinding.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: broken
  namespace: elsewhere
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: backup-maker-viewer
subjects:
  - kind: ServiceAccount
    name: controller
    namespace: backups
---
# Source: backup-maker/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller
  namespace: backups
spec: {}
"#;

fn chart_server() -> FakeApiServer {
    FakeApiServer::builder()
        .rbac(Rbac::from_manifests(CHART))
        .build()
}

fn sb_api(client: kube::Client, ns: Option<&str>) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("riotkit.org", "v1alpha1", "ScheduledBackup");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "scheduledbackups");
    match ns {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    }
}

fn denial(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

const CONTROLLER: &str = "system:serviceaccount:backups:controller";

#[tokio::test]
async fn cluster_role_binding_grants_its_verbs_in_every_namespace_and_nothing_else() {
    let server = chart_server();
    server
        .insert(json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup", "metadata": {"name": "db", "namespace": "team-a"}, "spec": {}}))
        .unwrap();
    let client = server.client_as("backups", "controller");

    assert_eq!(
        sb_api(client.clone(), None)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    sb_api(client.clone(), Some("team-a"))
        .get("db")
        .await
        .unwrap();

    let create = sb_api(client.clone(), Some("team-a"))
        .create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup", "metadata": {"name": "new"}, "spec": {}})).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        denial(create),
        (
            403,
            format!(
                "scheduledbackups.riotkit.org is forbidden: User \"{CONTROLLER}\" cannot create resource \"scheduledbackups\" in API group \"riotkit.org\" in the namespace \"team-a\""
            )
        )
    );
    let patch = sb_api(client.clone(), Some("team-a"))
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"x": 1}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        denial(patch),
        (
            403,
            format!(
                "scheduledbackups.riotkit.org \"db\" is forbidden: User \"{CONTROLLER}\" cannot patch resource \"scheduledbackups\" in API group \"riotkit.org\" in the namespace \"team-a\""
            )
        )
    );
    sb_api(client.clone(), Some("team-a"))
        .patch_status("db", &PatchParams::apply("controller"), &Patch::Apply(json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup", "status": {"phase": "ok"}})))
        .await
        .expect("scheduledbackups/status is granted separately");

    // Secrets are granted only by the Role in `backups`: elsewhere, and across all namespaces, not.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    assert_eq!(
        denial(secrets.get("x").await.unwrap_err()),
        (
            403,
            format!(
                "secrets \"x\" is forbidden: User \"{CONTROLLER}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"team-a\""
            )
        )
    );
    let all: Api<Secret> = Api::all(client.clone());
    assert_eq!(
        denial(all.list(&ListParams::default()).await.unwrap_err()),
        (
            403,
            format!(
                "secrets is forbidden: User \"{CONTROLLER}\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"
            )
        )
    );
    let own: Api<Secret> = Api::namespaced(client, "backups");
    assert_eq!(
        denial(own.get("x").await.unwrap_err()).0,
        404,
        "allowed, then not found"
    );
}

#[tokio::test]
async fn wildcard_verbs_cover_deletecollection_and_resource_names_limit_leases_to_the_lock() {
    let server = chart_server();
    for name in ["backup-maker-lock", "other"] {
        server
            .insert(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "namespace": "backups"}, "spec": {}}))
            .unwrap();
    }
    server
        .insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team-a"}}))
        .unwrap();
    let client = server.client_as("backups", "controller");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "backups");
    let mut lock = leases.get("backup-maker-lock").await.unwrap();
    lock.spec.as_mut().unwrap().holder_identity = Some("me".to_owned());
    leases
        .replace("backup-maker-lock", &PostParams::default(), &lock)
        .await
        .unwrap();
    assert_eq!(
        denial(leases.get("other").await.unwrap_err()),
        (
            403,
            format!(
                "leases.coordination.k8s.io \"other\" is forbidden: User \"{CONTROLLER}\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"backups\""
            )
        )
    );
    assert_eq!(
        denial(leases.list(&ListParams::default()).await.unwrap_err()).0,
        403,
        "resourceNames never grant a list of everything"
    );
    let by_name = ListParams::default().fields("metadata.name=backup-maker-lock");
    assert_eq!(
        leases.list(&by_name).await.unwrap().items.len(),
        1,
        "a list of just the lock is that name"
    );

    let configmaps: Api<ConfigMap> = Api::namespaced(client, "team-a");
    configmaps
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    assert!(server.get("configmaps", "team-a", "c").is_none());
}

#[tokio::test]
async fn apply_that_creates_needs_create_and_the_denial_carries_only_the_reason() {
    let server = chart_server();
    server
        .insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "exists", "namespace": "backups"}}))
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(server.client_as("backups", "patcher"), "backups");
    let body = |name: &str| {
        Patch::Apply(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": "v"}}),
        )
    };
    secrets
        .patch("exists", &PatchParams::apply("patcher"), &body("exists"))
        .await
        .expect("patch is granted for an existing object");
    assert_eq!(
        denial(
            secrets
                .patch("new", &PatchParams::apply("patcher"), &body("new"))
                .await
                .unwrap_err()
        ),
        (403, "secrets \"new\" is forbidden: ".to_owned())
    );
    assert!(server.get("secrets", "backups", "new").is_none());
}

#[tokio::test]
async fn binding_to_a_missing_role_adds_the_rbac_reason_to_the_denial() {
    let server = chart_server();
    let configmaps: Api<Secret> =
        Api::namespaced(server.client_as("backups", "controller"), "elsewhere");
    assert_eq!(
        denial(configmaps.get("x").await.unwrap_err()).1,
        format!(
            "secrets \"x\" is forbidden: User \"{CONTROLLER}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"elsewhere\": RBAC: clusterrole.rbac.authorization.k8s.io \"backup-maker-viewer\" not found"
        )
    );
}

#[tokio::test]
async fn discovery_is_open_to_service_accounts_and_unknown_tokens_are_unauthorized() {
    let server = chart_server();
    let http: HttpHandle = server.serve_http();
    let client = http
        .client(Some(&service_account_token("backups", "controller")))
        .await
        .unwrap();
    client.apiserver_version().await.unwrap();
    let group = kube::discovery::oneshot::group(&client, "riotkit.org")
        .await
        .unwrap();
    assert!(group.recommended_kind("ScheduledBackup").is_some());

    for token in ["backups:nobody", "not-a-token"] {
        let stranger = http.client(Some(token)).await.unwrap();
        let err = stranger.apiserver_version().await.unwrap_err();
        match err {
            kube::Error::Api(status) => {
                assert_eq!(
                    (status.code, status.reason.as_str(), status.message.as_str()),
                    (401, "Unauthorized", "Unauthorized"),
                    "{token}"
                );
            }
            other => panic!("{token}: {other:?}"),
        }
    }
    // Without a token: cluster-admin, as existing tests expect.
    let admin: Api<Secret> = Api::namespaced(server.client(), "anywhere");
    admin
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn writes_are_counted_per_identity_including_denied_ones() {
    let server = chart_server();
    let controller: Api<ConfigMap> =
        Api::namespaced(server.client_as("backups", "controller"), "team-a");
    let patcher: Api<Secret> = Api::namespaced(server.client_as("backups", "patcher"), "backups");
    let admin: Api<ConfigMap> = Api::namespaced(server.client(), "team-a");
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    controller
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap();
    controller
        .patch(
            "a",
            &PatchParams::apply("c"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}})),
        )
        .await
        .unwrap();
    controller.list(&ListParams::default()).await.unwrap();
    patcher
        .delete("nothing", &DeleteParams::default())
        .await
        .unwrap_err();
    admin
        .create(&PostParams::default(), &cm("b"))
        .await
        .unwrap();

    let patcher_user = service_account_user("backups", "patcher");
    assert_eq!(
        server.writes_by_user(),
        BTreeMap::from([
            (ADMIN_USER.to_owned(), 1),
            (CONTROLLER.to_owned(), 2),
            (patcher_user.clone(), 1)
        ])
    );
    assert_eq!(
        server.writes_of(CONTROLLER),
        BTreeMap::from([
            (("configmaps".to_owned(), Verb::Create), 1),
            (("configmaps".to_owned(), Verb::Apply), 1)
        ])
    );
    let denied = server
        .audit_log()
        .into_iter()
        .find(|r| r.user == patcher_user)
        .unwrap();
    assert_eq!(
        (
            denied.verb,
            denied.resource.as_str(),
            denied.name.as_str(),
            denied.code
        ),
        (Verb::Delete, "secrets", "nothing", 403)
    );
    server.reset_counters();
    assert!(server.audit_log().is_empty());
}

#[tokio::test]
async fn enforced_owner_references_check_applies_updates_and_unknown_owner_kinds() {
    let server = FakeApiServer::builder()
        .rbac(Rbac::from_manifests(CHART))
        .owner_references_permission_enforcement(true)
        .build();
    server
        .insert(json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup", "metadata": {"name": "db", "namespace": "backups", "uid": "sb-uid"}, "spec": {}}))
        .unwrap();
    server
        .insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": "backups"}}))
        .unwrap();
    let owner = |kind: &str, block: bool| json!([{"apiVersion": if kind == "Workflow" { "argoproj.io/v1alpha1" } else { "riotkit.org/v1alpha1" }, "kind": kind, "name": "db", "uid": "sb-uid", "controller": true, "blockOwnerDeletion": block}]);
    let child = |refs: Value| {
        Patch::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "child", "ownerReferences": refs}}),
        )
    };
    let configmaps: Api<ConfigMap> =
        Api::namespaced(server.client_as("backups", "controller"), "backups");

    // What a controller does: server-side apply of a child with a blocking controller reference.
    let err = configmaps
        .patch(
            "child",
            &PatchParams::apply("controller"),
            &child(owner("ScheduledBackup", true)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        denial(err),
        (403, "configmaps \"child\" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: , <nil>".to_owned())
    );
    let err = configmaps
        .patch(
            "child",
            &PatchParams::apply("controller"),
            &child(owner("Workflow", true)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        denial(err).1,
        "configmaps \"child\" is forbidden: cannot set blockOwnerDeletion in this case because cannot find RESTMapping for APIVersion argoproj.io/v1alpha1 Kind Workflow: no matches for kind \"Workflow\" in version \"argoproj.io/v1alpha1\""
    );
    configmaps
        .patch(
            "child",
            &PatchParams::apply("controller"),
            &child(owner("ScheduledBackup", false)),
        )
        .await
        .expect("a non-blocking reference is fine");
    let err = configmaps
        .patch(
            "child",
            &PatchParams::apply("controller"),
            &child(owner("ScheduledBackup", true)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        denial(err).0,
        403,
        "turning blocking on later is checked too"
    );

    // Changing the references of an existing object needs `delete` on it; patcher has none.
    let secrets: Api<Secret> = Api::namespaced(server.client_as("backups", "patcher"), "backups");
    let err = secrets
        .patch(
            "keys",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"ownerReferences": owner("ScheduledBackup", false)}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(
        denial(err),
        (403, "secrets \"keys\" is forbidden: cannot set an ownerRef on a resource you can't delete: , <nil>".to_owned())
    );
    secrets
        .patch(
            "keys",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .expect("other changes need no delete");
}

#[tokio::test]
async fn without_rbac_a_token_is_only_an_identity_for_the_audit() {
    let server = FakeApiServer::builder()
        .owner_references_permission_enforcement(true)
        .build();
    let secrets: Api<Secret> = Api::namespaced(server.client_as("any", "one"), "elsewhere");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u", "blockOwnerDeletion": true}]}})).unwrap(),
        )
        .await
        .expect("no authorizer but AlwaysAllow, so the plugin allows it too");
    secrets.delete("s", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        server.writes_of(&service_account_user("any", "one")),
        BTreeMap::from([
            (("secrets".to_owned(), Verb::Create), 1),
            (("secrets".to_owned(), Verb::Delete), 1)
        ])
    );
}
