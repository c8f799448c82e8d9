//! Who sent a request and whether they may: bearer-token identities, RBAC (opt-in), the
//! OwnerReferencesPermissionEnforcement admission plugin (opt-in), and a per-user audit of writes.
//!
//! Token scheme: `Authorization: Bearer <namespace>:<serviceaccount>` authenticates as
//! `system:serviceaccount:<namespace>:<serviceaccount>` (groups `system:serviceaccounts`,
//! `system:serviceaccounts:<namespace>`, `system:authenticated`). A request without a token is the
//! cluster admin, so tests that do not care about identities keep working. With RBAC configured,
//! the ServiceAccount must be declared in the manifests and anything else is 401.
//!
//! The request attributes, the rule matching and every error text follow kube-apiserver
//! (`RequestInfoFactory`, the RBAC authorizer, `responsewriters.Forbidden`, `plugin/pkg/admission/gc`);
//! the 403 bodies are checked against recording g1 in `tests/rbac.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt as _, Full};
use k8s_openapi::api::rbac::v1 as rbac;
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::patch::{self, PatchKind};
use crate::routes::{self, ResponseBody};
use crate::store::{ObjKey, Store, Verb};
use crate::{FakeApiServer, FakeApiServerBuilder, FakeError};

/// The user of requests without a bearer token: a cluster admin, allowed everything.
pub const ADMIN_USER: &str = "system:admin";

/// The user name a ServiceAccount authenticates as: `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The bearer token this fake accepts for a ServiceAccount: `<namespace>:<name>`.
pub fn service_account_token(namespace: &str, name: &str) -> String {
    format!("{namespace}:{name}")
}

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct User {
    name: String,
    groups: Vec<String>,
    admin: bool,
}

impl User {
    fn admin() -> Self {
        Self {
            name: ADMIN_USER.to_owned(),
            groups: vec![
                "system:masters".to_owned(),
                "system:authenticated".to_owned(),
            ],
            admin: true,
        }
    }

    fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: service_account_user(namespace, name),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
            admin: false,
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError {
        code: 401,
        reason: "Unauthorized",
        message: "Unauthorized".to_owned(),
        details: None,
    }
}

/// What a request does, as kube-apiserver's `RequestInfoFactory` derives it from the URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    resource_request: bool,
    path: String,
    verb: String,
    api_group: String,
    api_version: String,
    namespace: String,
    resource: String,
    subresource: String,
    name: String,
}

/// `namespaces/{name}/{these}` address the Namespace itself, not a resource inside it.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl RequestInfo {
    pub(crate) fn parse(method: &Method, path: &str, query: &HashMap<String, String>) -> Self {
        let mut info = Self {
            path: path.to_owned(),
            verb: method.as_str().to_lowercase(),
            ..Self::default()
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match parts.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => {
                info.api_version = (*version).to_owned();
                rest
            }
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                info.api_group = (*group).to_owned();
                info.api_version = (*version).to_owned();
                rest
            }
            _ => return info,
        };
        info.resource_request = true;
        info.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_owned();
        let mut rest = rest;
        if rest[0] == "namespaces" && rest.len() > 1 {
            info.namespace = rest[1].to_owned();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        info.resource = rest[0].to_owned();
        info.name = rest.get(1).copied().unwrap_or("").to_owned();
        info.subresource = rest.get(2).copied().unwrap_or("").to_owned();
        if info.name.is_empty() && info.verb == "get" {
            let watch = query.get("watch").is_some_and(|v| v == "true" || v == "1");
            info.verb = if watch { "watch" } else { "list" }.to_owned();
            // A list of one name (`fieldSelector=metadata.name=x`) is authorized as that name,
            // so `resourceNames` rules cover single-object watchers.
            if let Some(name) = query
                .get("fieldSelector")
                .and_then(|s| exact_name_in_field_selector(s))
            {
                info.name = name;
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_owned();
        }
        info
    }

    /// The `group/resource` as error messages print it: `configmaps`, `scheduledbackups.riotkit.org`.
    fn qualified_resource(&self) -> String {
        if self.api_group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.api_group)
        }
    }
}

fn exact_name_in_field_selector(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let value = term
            .trim()
            .strip_prefix("metadata.name==")
            .or_else(|| term.trim().strip_prefix("metadata.name="))?;
        let valid = !value.is_empty()
            && value != "."
            && value != ".."
            && !value.contains('/')
            && !value.contains('%');
        valid.then(|| value.to_owned())
    })
}

/// One RBAC `PolicyRule`.
#[derive(Clone, Debug, Default)]
struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

impl Rule {
    fn from_api(rule: rbac::PolicyRule) -> Self {
        Self {
            verbs: rule.verbs,
            api_groups: rule.api_groups.unwrap_or_default(),
            resources: rule.resources.unwrap_or_default(),
            resource_names: rule.resource_names.unwrap_or_default(),
            non_resource_urls: rule.non_resource_urls.unwrap_or_default(),
        }
    }

    fn all(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    /// `RuleAllows` of the RBAC authorizer.
    fn allows(&self, req: &RequestInfo) -> bool {
        let verb = self.verbs.iter().any(|v| v == "*" || *v == req.verb);
        if !req.resource_request {
            return verb
                && self.non_resource_urls.iter().any(|url| {
                    url == "*"
                        || *url == req.path
                        || url
                            .strip_suffix('*')
                            .is_some_and(|prefix| req.path.starts_with(prefix))
                });
        }
        let combined = if req.subresource.is_empty() {
            req.resource.clone()
        } else {
            format!("{}/{}", req.resource, req.subresource)
        };
        let group = self
            .api_groups
            .iter()
            .any(|g| g == "*" || *g == req.api_group);
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!req.subresource.is_empty()
                    && r.strip_prefix("*/") == Some(req.subresource.as_str()))
        });
        let name = self.resource_names.is_empty() || self.resource_names.contains(&req.name);
        verb && group && resource && name
    }
}

#[derive(Clone, Debug)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

/// A ClusterRoleBinding (`namespace` empty) or RoleBinding.
#[derive(Clone, Debug)]
struct Binding {
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

impl Binding {
    /// `appliesTo` of the RBAC rule resolver: ServiceAccount subjects without a namespace mean
    /// the binding's own namespace.
    fn applies_to(&self, user: &User) -> bool {
        self.subjects.iter().any(|s| match s.kind.as_str() {
            "User" => s.name == user.name,
            "Group" => user.groups.contains(&s.name),
            "ServiceAccount" => {
                let ns = if s.namespace.is_empty() {
                    &self.namespace
                } else {
                    &s.namespace
                };
                !ns.is_empty() && user.name == service_account_user(ns, &s.name)
            }
            _ => false,
        })
    }
}

/// RBAC objects (ServiceAccounts, ClusterRoles, Roles, ClusterRoleBindings, RoleBindings), as
/// rendered by `helm template`, enforced per request identity by
/// [`FakeApiServerBuilder::rbac`].
///
/// Built in, as on every cluster: ClusterRole `cluster-admin`, and `system:discovery` bound to
/// `system:authenticated` (discovery and `/version` for everyone). Not modelled: aggregated
/// ClusterRoles (`aggregationRule`) and the other default roles (`view`, `edit`, `admin`).
#[derive(Clone, Debug)]
pub struct Rbac {
    service_accounts: BTreeSet<(String, String)>,
    cluster_roles: BTreeMap<String, Vec<Rule>>,
    roles: BTreeMap<(String, String), Vec<Rule>>,
    cluster_role_bindings: Vec<Binding>,
    role_bindings: Vec<Binding>,
}

impl Default for Rbac {
    fn default() -> Self {
        let mut cluster_roles = BTreeMap::new();
        cluster_roles.insert(
            "cluster-admin".to_owned(),
            vec![
                Rule {
                    verbs: Rule::all(&["*"]),
                    api_groups: Rule::all(&["*"]),
                    resources: Rule::all(&["*"]),
                    ..Rule::default()
                },
                Rule {
                    verbs: Rule::all(&["*"]),
                    non_resource_urls: Rule::all(&["*"]),
                    ..Rule::default()
                },
            ],
        );
        cluster_roles.insert(
            "system:discovery".to_owned(),
            vec![Rule {
                verbs: Rule::all(&["get"]),
                non_resource_urls: Rule::all(&[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ]),
                ..Rule::default()
            }],
        );
        Self {
            service_accounts: BTreeSet::new(),
            cluster_roles,
            roles: BTreeMap::new(),
            cluster_role_bindings: vec![Binding {
                namespace: String::new(),
                role_kind: "ClusterRole".to_owned(),
                role_name: "system:discovery".to_owned(),
                subjects: vec![Subject {
                    kind: "Group".to_owned(),
                    name: "system:authenticated".to_owned(),
                    namespace: String::new(),
                }],
            }],
            role_bindings: Vec::new(),
        }
    }
}

fn parse_doc<T: serde::de::DeserializeOwned>(doc: Value, kind: &str) -> Result<T, FakeError> {
    serde_json::from_value(doc).map_err(|e| FakeError::InvalidRbac(format!("{kind}: {e}")))
}

fn subjects(subjects: Option<Vec<rbac::Subject>>) -> Vec<Subject> {
    subjects
        .unwrap_or_default()
        .into_iter()
        .map(|s| Subject {
            kind: s.kind,
            name: s.name,
            namespace: s.namespace.unwrap_or_default(),
        })
        .collect()
}

impl Rbac {
    /// Parses multi-document YAML; namespaced objects without `metadata.namespace` go to
    /// `default`. Other kinds (Deployments, ...) are skipped. Panics on malformed RBAC objects
    /// (a broken fixture is a test bug); [`Self::try_from_manifests`] returns the error.
    pub fn from_manifests(yaml: &str) -> Self {
        match Self::try_from_manifests(yaml, "default") {
            Ok(rbac) => rbac,
            Err(e) => panic!("{e}"),
        }
    }

    /// Parses multi-document YAML; namespaced objects without `metadata.namespace` go to
    /// `namespace` (the release namespace of `helm template -n`).
    pub fn try_from_manifests(yaml: &str, namespace: &str) -> Result<Self, FakeError> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
            .map_err(|e| FakeError::InvalidRbac(format!("not YAML: {e}")))?;
        let mut out = Self::default();
        for doc in docs.into_iter().filter(|d| d.is_object()) {
            let kind = doc["kind"].as_str().unwrap_or("").to_owned();
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace)
                .to_owned();
            let name = doc["metadata"]["name"].as_str().unwrap_or("").to_owned();
            match kind.as_str() {
                "ServiceAccount" => {
                    out.service_accounts.insert((ns, name));
                }
                "ClusterRole" => {
                    let role: rbac::ClusterRole = parse_doc(doc, &kind)?;
                    let rules = role.rules.unwrap_or_default();
                    out.cluster_roles
                        .insert(name, rules.into_iter().map(Rule::from_api).collect());
                }
                "Role" => {
                    let role: rbac::Role = parse_doc(doc, &kind)?;
                    let rules = role.rules.unwrap_or_default();
                    out.roles
                        .insert((ns, name), rules.into_iter().map(Rule::from_api).collect());
                }
                "ClusterRoleBinding" => {
                    let b: rbac::ClusterRoleBinding = parse_doc(doc, &kind)?;
                    out.cluster_role_bindings.push(Binding {
                        namespace: String::new(),
                        role_kind: b.role_ref.kind,
                        role_name: b.role_ref.name,
                        subjects: subjects(b.subjects),
                    });
                }
                "RoleBinding" => {
                    let b: rbac::RoleBinding = parse_doc(doc, &kind)?;
                    out.role_bindings.push(Binding {
                        namespace: ns,
                        role_kind: b.role_ref.kind,
                        role_name: b.role_ref.name,
                        subjects: subjects(b.subjects),
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether a ServiceAccount was declared (only declared ones can authenticate).
    pub fn has_service_account(&self, namespace: &str, name: &str) -> bool {
        self.service_accounts
            .contains(&(namespace.to_owned(), name.to_owned()))
    }

    fn rules_of(&self, binding: &Binding) -> Result<&[Rule], String> {
        let found = match binding.role_kind.as_str() {
            "Role" => self
                .roles
                .get(&(binding.namespace.clone(), binding.role_name.clone())),
            _ => self.cluster_roles.get(&binding.role_name),
        };
        found.map(Vec::as_slice).ok_or_else(|| {
            let kind = if binding.role_kind == "Role" {
                "role"
            } else {
                "clusterrole"
            };
            format!(
                "{kind}.rbac.authorization.k8s.io \"{}\" not found",
                binding.role_name
            )
        })
    }

    /// The RBAC authorizer: allowed, or the denial reason (empty unless a binding that applies
    /// names a missing role: `RBAC: role.rbac.authorization.k8s.io "x" not found`).
    fn authorize(&self, user: &User, req: &RequestInfo) -> Result<(), String> {
        let namespaced = self
            .role_bindings
            .iter()
            .filter(|b| !req.namespace.is_empty() && b.namespace == req.namespace);
        let mut errors: Vec<String> = Vec::new();
        for binding in self.cluster_role_bindings.iter().chain(namespaced) {
            if !binding.applies_to(user) {
                continue;
            }
            match self.rules_of(binding) {
                Ok(rules) if rules.iter().any(|r| r.allows(req)) => return Ok(()),
                Ok(_) => {}
                Err(e) if !errors.contains(&e) => errors.push(e),
                Err(_) => {}
            }
        }
        // utilerrors.NewAggregate: one error as is, several in brackets.
        Err(match errors.len() {
            0 => String::new(),
            1 => format!("RBAC: {}", errors[0]),
            _ => format!("RBAC: [{}]", errors.join(", ")),
        })
    }
}

/// A `403 Forbidden` exactly as `apierrors.NewForbidden` renders it.
fn forbidden(req: &RequestInfo, name: &str, message: String) -> ApiError {
    let qualified = req.qualified_resource();
    let message = if qualified.is_empty() {
        format!("forbidden: {message}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {message}")
    } else {
        format!("{qualified} \"{name}\" is forbidden: {message}")
    };
    let mut details = serde_json::Map::new();
    for (key, value) in [
        ("name", name),
        ("group", req.api_group.as_str()),
        ("kind", req.resource.as_str()),
    ] {
        if !value.is_empty() {
            details.insert(key.to_owned(), json!(value));
        }
    }
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: Some(Value::Object(details)),
    }
}

/// The authorization filter's denial (`responsewriters.Forbidden`).
fn rbac_denied(user: &User, req: &RequestInfo, reason: &str) -> ApiError {
    let mut message = if !req.resource_request {
        format!(
            "User \"{}\" cannot {} path \"{}\"",
            user.name, req.verb, req.path
        )
    } else {
        let resource = if req.subresource.is_empty() {
            req.resource.clone()
        } else {
            format!("{}/{}", req.resource, req.subresource)
        };
        let scope = if req.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace \"{}\"", req.namespace)
        };
        format!(
            "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            user.name, req.verb, req.api_group
        )
    };
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    let name = if req.resource_request {
        req.name.as_str()
    } else {
        ""
    };
    forbidden(req, name, message)
}

fn owner_references(obj: &Value) -> Vec<Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn blocks(owner_ref: &Value) -> bool {
    owner_ref["blockOwnerDeletion"] == true
}

/// `newBlockingOwnerDeletionRefs`: blocking references that are new or were not blocking.
fn new_blocking_refs(new: &[Value], old: &[Value]) -> Vec<Value> {
    new.iter()
        .filter(|r| blocks(r))
        .filter(|r| {
            old.iter()
                .find(|o| o["uid"] == r["uid"])
                .is_none_or(|o| !blocks(o))
        })
        .cloned()
        .collect()
}

/// Writes of one user, as an audit log would record them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// `system:serviceaccount:<ns>:<name>`, or [`ADMIN_USER`] for requests without a token.
    pub user: String,
    /// The verb (`Apply` for server-side apply, `Delete` also for delete-collection).
    pub verb: Verb,
    /// Resource plural, with `/<subresource>` appended (e.g. `scheduledbackups/status`).
    pub resource: String,
    /// Namespace (empty for cluster-scoped or all-namespace requests).
    pub namespace: String,
    /// Object name (empty for collection requests or a create with `generateName`).
    pub name: String,
    /// HTTP status code of the answer (403 for denied requests, which are recorded too).
    pub code: u16,
}

/// Identities, authorization and the write audit of one server.
#[derive(Debug, Default)]
pub(crate) struct Access {
    rbac: Option<Rbac>,
    enforce_owner_references: bool,
    audit: Mutex<Vec<AuditRecord>>,
}

impl Access {
    fn audit_log(&self) -> std::sync::MutexGuard<'_, Vec<AuditRecord>> {
        self.audit.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn reset(&self) {
        self.audit_log().clear();
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<User, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(User::admin());
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(unauthorized)?;
        let (namespace, name) = token
            .split_once(':')
            .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
            .ok_or_else(unauthorized)?;
        if let Some(rbac) = &self.rbac
            && !rbac.has_service_account(namespace, name)
        {
            return Err(unauthorized());
        }
        Ok(User::service_account(namespace, name))
    }

    /// Authentication, authorization and admission, then the request itself, then the audit.
    pub(crate) async fn handle<B>(
        &self,
        store: &Mutex<Store>,
        req: Request<B>,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let user = match self.authenticate(&parts.headers) {
            Ok(user) => user,
            Err(e) => return routes::error_response(&e),
        };
        // Open to every authenticated identity (system:discovery) and answered without the store.
        if routes::is_version(&parts.method, parts.uri.path()) {
            return routes::version_response();
        }
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return routes::error_response(&ApiError::bad_request(format!(
                    "reading the request body failed: {e}"
                )));
            }
        };
        let query = routes::parse_query(parts.uri.query().unwrap_or(""));
        let info = RequestInfo::parse(&parts.method, parts.uri.path(), &query);
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let patch_kind = PatchKind::from_content_type(&content_type);
        let response = match self.admit(store, &user, &info, patch_kind, &body) {
            Err(e) => routes::error_response(&e),
            Ok(()) => {
                let req = Request::from_parts(parts, Full::new(body.clone()));
                match routes::Incoming::read(req).await {
                    Ok(incoming) => routes::handle(store, incoming),
                    Err(e) => routes::error_response(&e),
                }
            }
        };
        self.record(&user, &info, patch_kind, &body, response.status().as_u16());
        response
    }

    fn admit(
        &self,
        store: &Mutex<Store>,
        user: &User,
        info: &RequestInfo,
        patch_kind: Option<PatchKind>,
        body: &[u8],
    ) -> Result<(), ApiError> {
        // No RBAC is the AlwaysAllow authorizer; the admin is cluster-admin.
        let Some(rbac) = self.rbac.as_ref().filter(|_| !user.admin) else {
            return Ok(());
        };
        rbac.authorize(user, info)
            .map_err(|reason| rbac_denied(user, info, &reason))?;
        if !info.resource_request {
            return Ok(());
        }
        let old = {
            let store = store.lock().unwrap_or_else(|p| p.into_inner());
            store
                .registry
                .by_path(&info.api_group, &info.api_version, &info.resource)
                .and_then(|res| {
                    store
                        .get(&ObjKey::new(res, &info.namespace, &info.name))
                        .cloned()
                })
        };
        let apply = patch_kind == Some(PatchKind::Apply);
        // Server-side apply of a missing object creates it, which needs `create` as well
        // (the patch handler's `withAuthorization`; its message is the bare reason).
        if apply && old.is_none() && info.subresource.is_empty() && !info.name.is_empty() {
            let create = RequestInfo {
                verb: "create".to_owned(),
                ..info.clone()
            };
            rbac.authorize(user, &create)
                .map_err(|reason| forbidden(info, &info.name, reason))?;
        }
        if self.enforce_owner_references {
            self.owner_references_admission(store, rbac, user, info, patch_kind, body, old)?;
        }
        Ok(())
    }

    /// OwnerReferencesPermissionEnforcement: changing ownerReferences of an existing object
    /// needs `delete` on it; a new `blockOwnerDeletion: true` needs `update` on the owner's
    /// `finalizers` subresource.
    #[allow(clippy::too_many_arguments)] // the admission attributes of one request
    fn owner_references_admission(
        &self,
        store: &Mutex<Store>,
        rbac: &Rbac,
        user: &User,
        info: &RequestInfo,
        patch_kind: Option<PatchKind>,
        body: &[u8],
        old: Option<Value>,
    ) -> Result<(), ApiError> {
        // Subresource writes cannot change metadata; pods/status is the plugin's whitelist.
        if !info.subresource.is_empty() {
            return Ok(());
        }
        let parse = |yaml: bool| -> Option<Value> {
            serde_json::from_slice(body).ok().or_else(|| {
                yaml.then(|| serde_saphyr::from_str(std::str::from_utf8(body).ok()?).ok())
                    .flatten()
            })
        };
        // Malformed bodies and missing objects are left for the handler to reject.
        let (new, old) = match (info.verb.as_str(), old) {
            ("create", _) => (parse(false), None),
            ("update", Some(old)) => (parse(false), Some(old)),
            ("patch", None) if patch_kind == Some(PatchKind::Apply) => (parse(true), None),
            ("patch", Some(old)) => (patched(&old, patch_kind, body, parse(true)), Some(old)),
            _ => return Ok(()),
        };
        let Some(new) = new else {
            return Ok(());
        };
        let new_refs = owner_references(&new);
        let old_refs = old.as_ref().map(owner_references).unwrap_or_default();
        let changing = match &old {
            None => !new_refs.is_empty(),
            Some(_) => new_refs != old_refs,
        };
        if !changing {
            return Ok(());
        }
        let name = [
            info.name.as_str(),
            new["metadata"]["name"].as_str().unwrap_or(""),
            new["metadata"]["generateName"].as_str().unwrap_or(""),
        ]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or("Unknown")
        .to_owned();
        let deny =
            |what: &str, reason: String| forbidden(info, &name, format!("{what}: {reason}, <nil>"));
        if old.is_some() {
            let delete = RequestInfo {
                verb: "delete".to_owned(),
                ..info.clone()
            };
            rbac.authorize(user, &delete).map_err(|reason| {
                deny(
                    "cannot set an ownerRef on a resource you can't delete",
                    reason,
                )
            })?;
        }
        for owner in new_blocking_refs(&new_refs, &old_refs) {
            let api_version = owner["apiVersion"].as_str().unwrap_or("");
            let kind = owner["kind"].as_str().unwrap_or("");
            let mapping = {
                let store = store.lock().unwrap_or_else(|p| p.into_inner());
                store.registry.by_type(api_version, kind).cloned()
            };
            let Some(owner_res) = mapping else {
                return Err(forbidden(
                    info,
                    &name,
                    format!(
                        "cannot set blockOwnerDeletion in this case because cannot find RESTMapping for APIVersion {api_version} Kind {kind}: no matches for kind \"{kind}\" in version \"{api_version}\""
                    ),
                ));
            };
            let finalizers = RequestInfo {
                resource_request: true,
                path: String::new(),
                verb: "update".to_owned(),
                api_group: owner_res.group.clone(),
                api_version: owner_res.version.clone(),
                namespace: if owner_res.namespaced {
                    info.namespace.clone()
                } else {
                    String::new()
                },
                resource: owner_res.plural.clone(),
                subresource: "finalizers".to_owned(),
                name: owner["name"].as_str().unwrap_or("").to_owned(),
            };
            rbac.authorize(user, &finalizers).map_err(|reason| {
                deny(
                    "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on",
                    reason,
                )
            })?;
        }
        Ok(())
    }

    fn record(
        &self,
        user: &User,
        info: &RequestInfo,
        patch_kind: Option<PatchKind>,
        body: &[u8],
        code: u16,
    ) {
        if !info.resource_request {
            return;
        }
        let verb = match (info.verb.as_str(), patch_kind) {
            ("create", _) => Verb::Create,
            ("update", _) => Verb::Update,
            ("patch", Some(PatchKind::Apply)) => Verb::Apply,
            ("patch", _) => Verb::Patch,
            ("delete" | "deletecollection", _) => Verb::Delete,
            _ => return,
        };
        let name = if info.name.is_empty() && verb == Verb::Create {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["metadata"]["name"].as_str().map(str::to_owned))
                .unwrap_or_default()
        } else {
            info.name.clone()
        };
        let resource = if info.subresource.is_empty() {
            info.resource.clone()
        } else {
            format!("{}/{}", info.resource, info.subresource)
        };
        self.audit_log().push(AuditRecord {
            user: user.name.clone(),
            verb,
            resource,
            namespace: info.namespace.clone(),
            name,
            code,
        });
    }
}

/// The object a patch would produce, for admission (the handler computes it again).
fn patched(
    old: &Value,
    kind: Option<PatchKind>,
    body: &[u8],
    config: Option<Value>,
) -> Option<Value> {
    let mut doc = old.clone();
    match kind? {
        PatchKind::Json => patch::json_patch(&mut doc, body).ok()?,
        PatchKind::Merge | PatchKind::Strategic => patch::merge_patch(&mut doc, body).ok()?,
        // Apply merges ownerReferences by uid; the other fields do not matter here.
        PatchKind::Apply => {
            let config = config?;
            if let Some(applied) = config["metadata"]["ownerReferences"].as_array() {
                let mut refs = owner_references(&doc);
                for r in applied {
                    match refs.iter_mut().find(|o| o["uid"] == r["uid"]) {
                        Some(existing) => *existing = r.clone(),
                        None => refs.push(r.clone()),
                    }
                }
                doc["metadata"]["ownerReferences"] = Value::Array(refs);
            }
        }
    }
    Some(doc)
}

impl FakeApiServerBuilder {
    /// Enforces RBAC for requests with a ServiceAccount token (see [`Rbac`]); requests without
    /// a token stay cluster-admin. Off by default: every token is then allowed everything.
    pub fn rbac(mut self, rbac: Rbac) -> Self {
        self.access.rbac = Some(rbac);
        self
    }

    /// Turns on the OwnerReferencesPermissionEnforcement admission plugin (off by default, as
    /// on a default kube-apiserver; OpenShift enables it). Only matters together with [`Self::rbac`].
    pub fn owner_references_permission_enforcement(mut self, enabled: bool) -> Self {
        self.access.enforce_owner_references = enabled;
        self
    }
}

impl FakeApiServer {
    /// A `kube::Client` that authenticates as a ServiceAccount (bearer token
    /// `<namespace>:<name>` on every request), default namespace `namespace`, as in a Pod.
    pub fn client_as(&self, namespace: &str, service_account: &str) -> kube::Client {
        let token = format!(
            "Bearer {}",
            service_account_token(namespace, service_account)
        );
        // A name that cannot be a header value cannot be a ServiceAccount either: answer 401.
        let value = HeaderValue::try_from(token)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut req: Request<kube::client::Body>| {
                req.headers_mut()
                    .insert(header::AUTHORIZATION, value.clone());
                req
            })
            .service(self.clone());
        kube::Client::new(service, namespace)
    }

    /// Every write request since the last [`Self::reset_counters`], with its user, in order.
    pub fn audit_log(&self) -> Vec<AuditRecord> {
        self.access.audit_log().clone()
    }

    /// Write requests per user since the last reset (denied ones included).
    pub fn writes_by_user(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for record in self.access.audit_log().iter() {
            *counts.entry(record.user.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// One user's write requests per (resource, verb) since the last reset.
    pub fn writes_of(&self, user: &str) -> BTreeMap<(String, Verb), u64> {
        let mut counts = BTreeMap::new();
        for record in self.access.audit_log().iter().filter(|r| r.user == user) {
            *counts
                .entry((record.resource.clone(), record.verb))
                .or_insert(0) += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path_and_query: &str) -> RequestInfo {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        RequestInfo::parse(&method, path, &routes::parse_query(query))
    }

    #[test]
    fn request_info_derives_verbs_like_the_apiserver() {
        let cases = [
            (Method::GET, "/api/v1/namespaces/a/configmaps", "list"),
            (
                Method::GET,
                "/api/v1/namespaces/a/configmaps?watch=1",
                "watch",
            ),
            (Method::GET, "/api/v1/namespaces/a/configmaps/x", "get"),
            (Method::POST, "/api/v1/namespaces/a/configmaps", "create"),
            (Method::PUT, "/api/v1/namespaces/a/configmaps/x", "update"),
            (Method::PATCH, "/api/v1/namespaces/a/configmaps/x", "patch"),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/configmaps/x",
                "delete",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/configmaps",
                "deletecollection",
            ),
        ];
        for (method, path, verb) in cases {
            assert_eq!(info(method, path).verb, verb, "{path}");
        }
    }

    #[test]
    fn request_info_splits_group_namespace_name_and_subresource() {
        let i = info(
            Method::PATCH,
            "/apis/riotkit.org/v1alpha1/namespaces/a/scheduledbackups/x/status",
        );
        assert!(i.resource_request);
        assert_eq!(
            (
                i.api_group.as_str(),
                i.namespace.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str()
            ),
            ("riotkit.org", "a", "scheduledbackups", "x", "status")
        );
        let ns = info(Method::GET, "/api/v1/namespaces/a");
        assert_eq!(
            (
                ns.namespace.as_str(),
                ns.resource.as_str(),
                ns.name.as_str()
            ),
            ("a", "namespaces", "a")
        );
        let all = info(Method::GET, "/apis/batch/v1/jobs");
        assert_eq!((all.namespace.as_str(), all.verb.as_str()), ("", "list"));
        for discovery in ["/api", "/api/v1", "/apis", "/apis/batch/v1", "/version"] {
            let d = info(Method::GET, discovery);
            assert!(!d.resource_request, "{discovery}");
            assert_eq!(d.verb, "get");
        }
    }

    #[test]
    fn list_by_exact_name_is_authorized_as_that_name() {
        let i = info(
            Method::GET,
            "/api/v1/namespaces/a/configmaps?fieldSelector=metadata.name%3Dx&watch=true",
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "x"));
        let other = info(
            Method::GET,
            "/api/v1/namespaces/a/configmaps?fieldSelector=metadata.namespace%3Da",
        );
        assert_eq!(other.name, "");
    }

    #[test]
    fn rules_match_wildcards_subresources_and_resource_names() {
        let rule = |verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]| Rule {
            verbs: Rule::all(verbs),
            api_groups: Rule::all(groups),
            resources: Rule::all(resources),
            resource_names: Rule::all(names),
            non_resource_urls: Vec::new(),
        };
        let status = info(
            Method::PATCH,
            "/apis/riotkit.org/v1alpha1/namespaces/a/scheduledbackups/x/status",
        );
        assert!(!rule(&["patch"], &["riotkit.org"], &["scheduledbackups"], &[]).allows(&status));
        assert!(
            rule(
                &["patch"],
                &["riotkit.org"],
                &["scheduledbackups/status"],
                &[]
            )
            .allows(&status)
        );
        assert!(rule(&["patch"], &["riotkit.org"], &["*/status"], &[]).allows(&status));
        assert!(rule(&["*"], &["*"], &["*"], &[]).allows(&status));
        assert!(!rule(&["patch"], &[""], &["*"], &[]).allows(&status));
        assert!(rule(&["patch"], &["*"], &["*"], &["x"]).allows(&status));
        assert!(!rule(&["patch"], &["*"], &["*"], &["y"]).allows(&status));
        let list = info(
            Method::GET,
            "/apis/riotkit.org/v1alpha1/namespaces/a/scheduledbackups",
        );
        assert!(
            !rule(&["list"], &["*"], &["*"], &["x"]).allows(&list),
            "resourceNames never match a request without a name"
        );
    }

    #[test]
    fn discovery_is_allowed_for_any_authenticated_user_by_default() {
        let rbac = Rbac::default();
        let sa = User::service_account("a", "b");
        assert!(
            rbac.authorize(&sa, &info(Method::GET, "/apis/batch/v1"))
                .is_ok()
        );
        assert!(rbac.authorize(&sa, &info(Method::GET, "/version")).is_ok());
        assert_eq!(
            rbac.authorize(&sa, &info(Method::GET, "/metrics")),
            Err(String::new())
        );
    }

    #[test]
    fn binding_to_a_missing_role_is_reported_as_the_rbac_reason() {
        let rbac = Rbac::try_from_manifests(
            "kind: RoleBinding\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: b, namespace: a}\n\
             roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: missing}\n\
             subjects: [{kind: ServiceAccount, name: sa}]\n",
            "default",
        )
        .unwrap();
        let sa = User::service_account("a", "sa");
        assert_eq!(
            rbac.authorize(&sa, &info(Method::GET, "/api/v1/namespaces/a/secrets")),
            Err("RBAC: role.rbac.authorization.k8s.io \"missing\" not found".to_owned())
        );
        let other = User::service_account("a", "other");
        assert_eq!(
            rbac.authorize(&other, &info(Method::GET, "/api/v1/namespaces/a/secrets")),
            Err(String::new()),
            "bindings that do not apply to the user are not resolved"
        );
    }

    #[test]
    fn new_blocking_refs_are_added_ones_and_ones_that_start_blocking() {
        let r = |uid: &str, block: Option<bool>| match block {
            Some(b) => json!({"uid": uid, "blockOwnerDeletion": b}),
            None => json!({"uid": uid}),
        };
        let old = [r("a", Some(true)), r("b", None), r("c", Some(false))];
        let new = [
            r("a", Some(true)),
            r("b", Some(true)),
            r("c", Some(false)),
            r("d", Some(true)),
        ];
        let uids: Vec<Value> = new_blocking_refs(&new, &old)
            .into_iter()
            .map(|r| r["uid"].clone())
            .collect();
        assert_eq!(uids, vec![json!("b"), json!("d")]);
    }
}
