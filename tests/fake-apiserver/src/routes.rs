//! HTTP: URL routing, query parsing, and one handler per verb.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, combinators::UnsyncBoxBody};
use serde_json::{Value, json};

use crate::ResourceInfo;
use crate::errors::ApiError;
use crate::patch::{self, PatchKind};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{
    DeleteOptions, Deletion, FieldValidation, ObjKey, Propagation, RequestContext, Store, Target,
    Verb, WriteRecord,
};
use crate::watch::{self, WatchRequest};

/// The response body type: full JSON documents, or a streamed watch.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// What a URL addresses.
enum Route {
    /// A discovery document, answered as is.
    Document(Value),
    /// A collection; `namespace` is `None` for all namespaces (or cluster-scoped types).
    Collection {
        res: ResourceInfo,
        namespace: Option<String>,
    },
    /// One object, or its status subresource.
    Object {
        res: ResourceInfo,
        namespace: String,
        name: String,
        status: bool,
    },
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `a=b&c=d` (kube sends a leading `&`).
pub(crate) fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `GET /version`: answered like the real server's, without storage.
pub(crate) fn is_version(method: &Method, path: &str) -> bool {
    method == Method::GET && path.trim_end_matches('/') == "/version"
}

/// The `/version` answer.
pub(crate) fn version_response() -> Response<ResponseBody> {
    json_response(200, &version_document())
}

fn version_document() -> Value {
    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "linux/amd64"})
}

fn route(store: &Store, path: &str) -> Result<Route, ApiError> {
    let reg = &store.registry;
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Document(version_document())),
        ["api"] => return Ok(Route::Document(reg.core_versions())),
        ["apis"] => return Ok(Route::Document(reg.group_list())),
        ["apis", g] => {
            return reg
                .group(g)
                .map(Route::Document)
                .ok_or_else(ApiError::no_route);
        }
        ["api", v] => {
            return reg
                .resource_list("", v)
                .map(Route::Document)
                .ok_or_else(ApiError::no_route);
        }
        ["apis", g, v] => {
            return reg
                .resource_list(g, v)
                .map(Route::Document)
                .ok_or_else(ApiError::no_route);
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let lookup = |plural: &str| {
        reg.by_path(group, version, plural)
            .cloned()
            .ok_or_else(ApiError::no_route)
    };
    let object = |res: ResourceInfo, namespace: &str, name: &str, status: bool| {
        if status && !res.has_status {
            return Err(ApiError::no_route());
        }
        Ok(Route::Object {
            res,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            status,
        })
    };
    match rest {
        // `namespaces/{name}/status` is the Namespace's own status, not a collection.
        ["namespaces", name, "status"] if group.is_empty() => {
            object(lookup("namespaces")?, "", name, true)
        }
        ["namespaces", ns, plural] => {
            let res = lookup(plural)?;
            if !res.namespaced {
                return Err(ApiError::no_route());
            }
            Ok(Route::Collection {
                res,
                namespace: Some((*ns).to_owned()),
            })
        }
        ["namespaces", ns, plural, name] => {
            let res = lookup(plural)?;
            if !res.namespaced {
                return Err(ApiError::no_route());
            }
            object(res, ns, name, false)
        }
        ["namespaces", ns, plural, name, "status"] => {
            let res = lookup(plural)?;
            if !res.namespaced {
                return Err(ApiError::no_route());
            }
            object(res, ns, name, true)
        }
        [plural] => Ok(Route::Collection {
            res: lookup(plural)?,
            namespace: None,
        }),
        [plural, name] => {
            let res = lookup(plural)?;
            if res.namespaced {
                return Err(ApiError::no_route());
            }
            object(res, "", name, false)
        }
        [plural, name, "status"] => {
            let res = lookup(plural)?;
            if res.namespaced {
                return Err(ApiError::no_route());
            }
            object(res, "", name, true)
        }
        _ => Err(ApiError::no_route()),
    }
}

fn json_response(code: u16, body: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

pub(crate) fn error_response(err: &ApiError) -> Response<ResponseBody> {
    json_response(err.code, &err.to_status())
}

fn truthy(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

fn selectors(q: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn parse_body(body: &[u8], yaml_allowed: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) if yaml_allowed => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("body is not UTF-8".to_owned()))?;
            serde_saphyr::from_str(text).map_err(|yaml_err| {
                ApiError::bad_request(format!(
                    "body is neither JSON ({json_err}) nor YAML ({yaml_err})"
                ))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!("body is not JSON: {e}"))),
    }
}

/// The parts of a request the handlers need, with the body already collected.
pub(crate) struct Incoming {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    content_type: String,
    user_agent: String,
    body: Bytes,
}

impl Incoming {
    /// Collects the body of a kube request.
    pub(crate) async fn read<B>(req: Request<B>) -> Result<Self, ApiError>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the request body failed: {e}")))?
            .to_bytes();
        let header = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        Ok(Self {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parse_query(parts.uri.query().unwrap_or("")),
            content_type: header(header::CONTENT_TYPE),
            user_agent: header(header::USER_AGENT),
            body,
        })
    }

    /// `fieldManager`, or the user agent's product name as the apiserver derives it.
    fn manager(&self) -> String {
        self.query
            .get("fieldManager")
            .cloned()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                let ua = self.user_agent.split('/').next().unwrap_or("").trim();
                if ua.is_empty() {
                    "unknown".to_owned()
                } else {
                    ua.to_owned()
                }
            })
    }
}

/// Answers one request.
pub(crate) fn handle(store: &Mutex<Store>, req: Incoming) -> Response<ResponseBody> {
    // Like the real server's /version, answered without touching storage: a server busy with large lists
    // still answers it at once (the controllers' outage probe relies on that).
    if is_version(&req.method, &req.path) {
        return version_response();
    }
    let route = {
        let guard = store.lock().unwrap_or_else(|p| p.into_inner());
        route(&guard, &req.path)
    };
    let result = match route {
        Err(e) => Err(e),
        Ok(Route::Document(doc)) if req.method == Method::GET => Ok(json_response(200, &doc)),
        Ok(Route::Document(_)) => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on discovery documents",
            req.method
        ))),
        Ok(Route::Collection { res, namespace }) => collection(store, &req, res, namespace),
        Ok(Route::Object {
            res,
            namespace,
            name,
            status,
        }) => object(store, &req, res, &namespace, &name, status),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn list_json(
    res: &ResourceInfo,
    items: Vec<Value>,
    rv: u64,
    continue_token: Option<String>,
) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(token) = continue_token {
        metadata["continue"] = json!(token);
    }
    json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": metadata,
        "items": items,
    })
}

fn collection(
    store: &Mutex<Store>,
    req: &Incoming,
    res: ResourceInfo,
    namespace: Option<String>,
) -> Result<Response<ResponseBody>, ApiError> {
    let q = &req.query;
    match req.method {
        Method::GET if truthy(q, "watch") => {
            let (labels, fields) = selectors(q)?;
            let since = match q.get("resourceVersion").map(String::as_str) {
                None | Some("") | Some("0") => None,
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
            };
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(1800);
            {
                let guard = store.lock().unwrap_or_else(|p| p.into_inner());
                crate::list::check_version(q, &guard, true)?;
            }
            let body = watch::start(
                store,
                WatchRequest {
                    res,
                    namespace,
                    labels,
                    fields,
                    since,
                    bookmarks: truthy(q, "allowWatchBookmarks"),
                    send_initial_events: truthy(q, "sendInitialEvents"),
                    timeout: Duration::from_secs(timeout),
                },
            );
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
        Method::GET => {
            let (labels, fields) = selectors(q)?;
            let guard = store.lock().unwrap_or_else(|p| p.into_inner());
            let list = crate::list::list(&guard, &res, namespace.as_deref(), q, &labels, &fields)?;
            Ok(json_response(200, &list))
        }
        Method::POST => {
            let ns = namespace.unwrap_or_default();
            let body = parse_body(&req.body, false)?;
            let manager = req.manager();
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            let before = guard.resource_version();
            let (result, warnings) = write(&mut guard, req, false, |s| {
                s.create(&res, &ns, body, Some(&manager), false)
            });
            let name = result
                .as_ref()
                .ok()
                .and_then(|v| v["metadata"]["name"].as_str())
                .unwrap_or("")
                .to_owned();
            count(
                &mut guard,
                &res,
                false,
                Verb::Create,
                &ns,
                &name,
                &result,
                before,
            );
            Ok(with_warnings(
                json_response(201, &created_answer(req, result?)),
                &warnings,
            ))
        }
        Method::DELETE => {
            let (labels, fields) = selectors(q)?;
            let opts = delete_options(req)?;
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            let before = guard.resource_version();
            let keys: Vec<ObjKey> = guard
                .list(&res, namespace.as_deref())
                .filter(|(_, v)| labels.matches(v) && fields.matches(v))
                .map(|(k, _)| k.clone())
                .collect();
            let mut deleted = Vec::new();
            for key in keys {
                if let Ok(v) = guard.delete(&res, &key, &opts) {
                    deleted.push(v.into_object());
                }
            }
            let rv = guard.resource_version();
            let ok: Result<(), ApiError> = Ok(());
            let ns = namespace.unwrap_or_default();
            count(&mut guard, &res, false, Verb::Delete, &ns, "", &ok, before);
            Ok(json_response(200, &list_json(&res, deleted, rv, None)))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on a collection",
            req.method
        ))),
    }
}

fn delete_options(req: &Incoming) -> Result<DeleteOptions, ApiError> {
    let body: Value = if req.body.is_empty() {
        Value::Null
    } else {
        parse_body(&req.body, false)?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .or(req.query.get("propagationPolicy").map(String::as_str))
        .unwrap_or("Background");
    let propagation = match policy {
        _ if body["orphanDependents"] == true => Propagation::Orphan,
        "Orphan" => Propagation::Orphan,
        "Foreground" => Propagation::Foreground,
        _ => Propagation::Background,
    };
    Ok(DeleteOptions {
        propagation,
        precondition_uid: body["preconditions"]["uid"].as_str().map(str::to_owned),
        precondition_rv: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_owned),
    })
}

/// Runs one write of a request: its `fieldValidation` and whether it is a patch go to the
/// store's request context, `dryRun=All` keeps nothing (recording c5), and the warnings the
/// write produced come back for the `Warning` headers.
fn write<T>(
    store: &mut Store,
    req: &Incoming,
    patch: bool,
    run: impl FnOnce(&mut Store) -> Result<T, ApiError>,
) -> (Result<T, ApiError>, Vec<String>) {
    let field_validation = match req.query.get("fieldValidation").map(String::as_str) {
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        _ => FieldValidation::Warn,
    };
    store.request = Some(RequestContext {
        field_validation,
        patch,
        warnings: Vec::new(),
    });
    let result = if is_dry_run(req) {
        store.dry_run(run)
    } else {
        run(store)
    };
    let warnings = store.request.take().map(|r| r.warnings).unwrap_or_default();
    (result, warnings)
}

fn is_dry_run(req: &Incoming) -> bool {
    req.query.get("dryRun").is_some_and(|d| d == "All")
}

/// A created object as answered: a dry-run create has no resourceVersion (recording c5).
fn created_answer(req: &Incoming, mut obj: Value) -> Value {
    if is_dry_run(req)
        && let Some(m) = obj["metadata"].as_object_mut()
    {
        m.remove("resourceVersion");
    }
    obj
}

/// Adds one `Warning: 299 - "..."` header per warning, as the apiserver does.
fn with_warnings(
    mut response: Response<ResponseBody>,
    warnings: &[String],
) -> Response<ResponseBody> {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = header::HeaderValue::from_str(&text) {
            response.headers_mut().append("warning", v);
        }
    }
    response
}

/// The DELETE answer: a removed object is reported as a `Status` `Success` naming the resource
/// (plural) and uid; one kept for its finalizers is returned as it now is (recordings f1, g2, g3).
fn deletion_body(res: &ResourceInfo, deletion: Deletion) -> Value {
    match deletion {
        Deletion::Removed(gone) => json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": gone["metadata"]["name"],
                "kind": res.plural,
                "uid": gone["metadata"]["uid"],
            },
        }),
        Deletion::Marked(object) => object,
    }
}

#[allow(clippy::too_many_arguments)] // a write record has this many facts
fn count<T>(
    store: &mut Store,
    res: &ResourceInfo,
    status: bool,
    verb: Verb,
    namespace: &str,
    name: &str,
    result: &Result<T, ApiError>,
    rv_before: u64,
) {
    let resource = if status {
        format!("{}/status", res.plural)
    } else {
        res.plural.clone()
    };
    let code = match (result, verb) {
        (Err(e), _) => e.code,
        (Ok(_), Verb::Create) => 201,
        (Ok(_), _) => 200,
    };
    store.count(WriteRecord {
        resource,
        verb,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        code,
        changed: store.resource_version() != rv_before,
    });
}

fn object(
    store: &Mutex<Store>,
    req: &Incoming,
    res: ResourceInfo,
    namespace: &str,
    name: &str,
    status: bool,
) -> Result<Response<ResponseBody>, ApiError> {
    let key = ObjKey::new(&res, namespace, name);
    let target = if status { Target::Status } else { Target::Main };
    let manager = req.manager();
    match req.method {
        Method::GET => {
            let guard = store.lock().unwrap_or_else(|p| p.into_inner());
            let obj = guard
                .get(&key)
                .cloned()
                .ok_or_else(|| ApiError::not_found(&res.plural, name))?;
            Ok(json_response(200, &obj))
        }
        Method::PUT => {
            let body = parse_body(&req.body, false)?;
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            let before = guard.resource_version();
            let (result, warnings) = write(&mut guard, req, false, |s| {
                s.update(&res, &key, body, target, Some(&manager))
            });
            count(
                &mut guard,
                &res,
                status,
                Verb::Update,
                namespace,
                name,
                &result,
                before,
            );
            Ok(with_warnings(json_response(200, &result?), &warnings))
        }
        Method::DELETE if !status => {
            let opts = delete_options(req)?;
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            let before = guard.resource_version();
            let (result, _) = write(&mut guard, req, false, |s| s.delete(&res, &key, &opts));
            let result = result.map(|d| deletion_body(&res, d));
            count(
                &mut guard,
                &res,
                false,
                Verb::Delete,
                namespace,
                name,
                &result,
                before,
            );
            Ok(json_response(200, &result?))
        }
        Method::PATCH => {
            let kind = PatchKind::from_content_type(&req.content_type)
                .ok_or_else(ApiError::unsupported_media_type)?;
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            let before = guard.resource_version();
            if kind == PatchKind::Apply {
                let (result, warnings) = write(&mut guard, req, false, |s| {
                    apply_request(s, req, &res, namespace, name, target, &manager)
                });
                count(
                    &mut guard,
                    &res,
                    status,
                    Verb::Apply,
                    namespace,
                    name,
                    &result,
                    before,
                );
                let (obj, created) = result?;
                let response = if created {
                    json_response(201, &created_answer(req, obj))
                } else {
                    json_response(200, &obj)
                };
                return Ok(with_warnings(response, &warnings));
            }
            if truthy(&req.query, "force") {
                return Err(ApiError::invalid_with_details(
                    "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch".to_owned(),
                    json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch", "field": "force"}]}),
                ));
            }
            let (result, warnings) = write(&mut guard, req, true, |s| {
                patch_request(s, req, kind, &res, &key, target, &manager)
            });
            count(
                &mut guard,
                &res,
                status,
                Verb::Patch,
                namespace,
                name,
                &result,
                before,
            );
            Ok(with_warnings(json_response(200, &result?), &warnings))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{} is not supported here",
            req.method
        ))),
    }
}

fn apply_request(
    store: &mut Store,
    req: &Incoming,
    res: &ResourceInfo,
    namespace: &str,
    name: &str,
    target: Target,
    manager: &str,
) -> Result<(Value, bool), ApiError> {
    if req.query.get("fieldManager").is_none_or(String::is_empty) {
        return Err(ApiError::invalid_with_details(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".to_owned(),
            json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]}),
        ));
    }
    let config = parse_body(&req.body, true)?;
    store.apply(
        res,
        namespace,
        name,
        config,
        target,
        manager,
        truthy(&req.query, "force"),
    )
}

fn patch_request(
    store: &mut Store,
    req: &Incoming,
    kind: PatchKind,
    res: &ResourceInfo,
    key: &ObjKey,
    target: Target,
    manager: &str,
) -> Result<Value, ApiError> {
    let mut doc = store
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&res.plural, &key.name))?;
    let invalid = |why: String| ApiError::invalid(&res.plural, &key.name, why);
    match kind {
        PatchKind::Json => patch::json_patch(&mut doc, &req.body).map_err(|e| match e {
            patch::JsonPatchError::TestFailed => ApiError::invalid_with_details(
                "the server rejected our request due to an error in our request".to_owned(),
                json!({}),
            ),
            patch::JsonPatchError::Invalid(why) => invalid(why),
        })?,
        // Custom resources keep the merge-patch reading (see README: deliberate differences).
        PatchKind::Strategic if crate::registry::is_builtin_group(&res.group) => {
            let schema = store.type_schema(res);
            patch::strategic_merge_patch(&mut doc, &req.body, schema.as_ref().map(|s| s.root()))
                .map_err(invalid)?
        }
        _ => patch::merge_patch(&mut doc, &req.body).map_err(invalid)?,
    }
    store.update(res, key, doc, target, Some(manager))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_decodes_percent_escapes_and_ignores_leading_ampersand() {
        let q = parse_query("&labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&watch=true");
        assert_eq!(q["labelSelector"], "app=web,tier in (a,b)");
        assert_eq!(q["watch"], "true");
    }
}
