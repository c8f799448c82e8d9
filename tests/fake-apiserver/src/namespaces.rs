//! Namespace lifecycle (recording h1): DELETE marks a Namespace `Terminating`; creating content
//! in it is 403 `NamespaceTerminating`; the namespace controller (run by `kcm`) then deletes its
//! content, reports what finalizers hold back, and removes the Namespace once it is empty.
//! Existence is enforced (404 `namespaces "x" not found`) only with
//! `FakeApiServerBuilder::strict_namespaces`, because most tests use namespaces they never create.

use serde_json::{Value, json};

use crate::ResourceInfo;
use crate::builtin::field;
use crate::errors::ApiError;
use crate::store::{DeleteOptions, ObjKey, Store, Target};

/// The field manager of everything kube-controller-manager writes.
pub(crate) const MANAGER: &str = "kube-controller-manager";

/// Namespaces that exist on every cluster; seeded with `strict_namespaces`.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces (strict mode starts with them, as every cluster does).
pub(crate) fn seed_system_namespaces(store: &mut Store) {
    let Some(res) = store.registry.by_group_plural("", "namespaces").cloned() else {
        return;
    };
    for name in SYSTEM_NAMESPACES {
        let _ = store.create(&res, "", json!({"metadata": {"name": name}}), None, false);
    }
}

fn is_namespace(res: &ResourceInfo) -> bool {
    res.group.is_empty() && res.plural == "namespaces"
}

fn namespace_key(store: &Store, name: &str) -> Option<(ResourceInfo, ObjKey)> {
    let res = store.registry.by_group_plural("", "namespaces")?.clone();
    let key = ObjKey::new(&res, "", name);
    Some((res, key))
}

fn terminating(ns: &Value) -> bool {
    !ns["metadata"]["deletionTimestamp"].is_null() || ns["status"]["phase"] == "Terminating"
}

/// NamespaceLifecycle admission for a create in `namespace`.
pub(crate) fn check_create(
    store: &Store,
    res: &ResourceInfo,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    if !res.namespaced || namespace.is_empty() {
        return Ok(());
    }
    let Some((_, key)) = namespace_key(store, namespace) else {
        return Ok(());
    };
    match store.get(&key) {
        Some(ns) if terminating(ns) => Err(field::forbidden(
            &res.group,
            &res.plural,
            name,
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
            json!([{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {namespace} is being terminated"),
                "field": "metadata.namespace",
            }]),
        )),
        Some(_) => Ok(()),
        None if store.options.strict_namespaces => {
            Err(ApiError::not_found("namespaces", namespace))
        }
        None => Ok(()),
    }
}

/// Whether `spec.finalizers` (not `metadata.finalizers`) still hold a deleted Namespace.
pub(crate) fn held_by_spec_finalizers(res: &ResourceInfo, obj: &Value) -> bool {
    is_namespace(res)
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
}

/// DELETE of a Namespace with spec finalizers: it turns `Terminating` and stays until the
/// namespace controller has emptied it. `None` for everything else.
pub(crate) fn delete(
    store: &mut Store,
    res: &ResourceInfo,
    key: &ObjKey,
    current: &Value,
) -> Option<Result<Value, ApiError>> {
    if !held_by_spec_finalizers(res, current) {
        return None;
    }
    if !current["metadata"]["deletionTimestamp"].is_null() {
        return Some(Ok(current.clone()));
    }
    let mut marked = current.clone();
    marked["metadata"]["deletionTimestamp"] = json!(crate::store::now());
    marked["status"]["phase"] = json!("Terminating");
    Some(Ok(store.replace_raw(key, marked)))
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message})
}

/// Whether Namespace `name` exists and is being deleted.
pub(crate) fn is_terminating(store: &Store, name: &str) -> bool {
    namespace_key(store, name)
        .and_then(|(_, key)| store.get(&key).map(terminating))
        .unwrap_or(false)
}

/// The namespace controller, for one Namespace: deletes its content and removes it once empty;
/// while finalizers hold content back, reports that in the status conditions.
pub(crate) fn sync(store: &mut Store, name: &str) {
    let Some((ns_res, ns_key)) = namespace_key(store, name) else {
        return;
    };
    let Some(ns) = store.get(&ns_key).cloned() else {
        return;
    };
    if ns["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    for key in store.keys_in_namespace(name) {
        let Some(res) = store
            .registry
            .by_group_plural(&key.group, &key.plural)
            .cloned()
        else {
            continue;
        };
        if store
            .get(&key)
            .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_null())
        {
            let _ = store.delete(&res, &key, &DeleteOptions::default());
        }
    }
    let remaining = store.keys_in_namespace(name);
    if remaining.is_empty() {
        store.remove_now(&ns_key);
        return;
    }
    let mut per_resource: std::collections::BTreeMap<String, usize> = Default::default();
    let mut per_finalizer: std::collections::BTreeMap<String, usize> = Default::default();
    for key in &remaining {
        *per_resource
            .entry(format!("{}.{}", key.plural, key.group))
            .or_default() += 1;
        let finalizers = store
            .get(key)
            .and_then(|o| o["metadata"]["finalizers"].as_array().cloned())
            .unwrap_or_default();
        for f in finalizers.iter().filter_map(Value::as_str) {
            *per_finalizer.entry(f.to_owned()).or_default() += 1;
        }
    }
    let resources: Vec<String> = per_resource
        .iter()
        .map(|(r, n)| format!("{r} has {n} resource instances"))
        .collect();
    let finalizers: Vec<String> = per_finalizer
        .iter()
        .map(|(f, n)| format!("{f} in {n} resource instances"))
        .collect();
    let mut conditions = vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        condition(
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        condition(
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            &format!("Some resources are remaining: {}", resources.join(", ")),
        ),
    ];
    if !finalizers.is_empty() {
        conditions.push(condition(
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            &format!(
                "Some content in the namespace has finalizers remaining: {}",
                finalizers.join(", ")
            ),
        ));
    }
    // A condition keeps its transition time while its status stays the same.
    let now = crate::store::now();
    for c in &mut conditions {
        let previous = ns["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|p| p["type"] == c["type"]))
            .filter(|p| p["status"] == c["status"])
            .map(|p| p["lastTransitionTime"].clone());
        c["lastTransitionTime"] = previous.unwrap_or_else(|| json!(now));
    }
    let mut updated = ns.clone();
    updated["status"]["conditions"] = json!(conditions);
    let _ = store.update(&ns_res, &ns_key, updated, Target::Status, Some(MANAGER));
}
