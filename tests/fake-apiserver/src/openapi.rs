//! What the recorded kube-apiserver 1.36 OpenAPI v3 documents (`k8s-api/openapi/`) say about a
//! type: which lists are maps (and by which keys), sets or atomic, the strategic-merge-patch keys,
//! and which fields are declared. Custom resources use the schema of their registered CRD
//! instead (see [`TypeSchema`]).
//!
//! The documents are compiled in and parsed once, on first use.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

/// The OpenAPI v3 documents as `GET /openapi/v3/<group-version>` served them.
const DOCUMENTS: &[&[u8]] = &[
    include_bytes!("../k8s-api/openapi/api__v1.json"),
    include_bytes!("../k8s-api/openapi/apis__batch__v1.json"),
    include_bytes!("../k8s-api/openapi/apis__coordination.k8s.io__v1.json"),
    include_bytes!("../k8s-api/openapi/apis__events.k8s.io__v1.json"),
    include_bytes!("../k8s-api/openapi/apis__riotkit.org__v1alpha1.json"),
];

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

struct Documents {
    docs: Vec<Value>,
    /// (group, version, kind) → (document index, schema name).
    by_gvk: HashMap<(String, String, String), (usize, String)>,
}

fn documents() -> &'static Documents {
    static PARSED: OnceLock<Documents> = OnceLock::new();
    PARSED.get_or_init(|| {
        // The documents are compiled in; one that does not parse would fail every test at once.
        let docs: Vec<Value> = DOCUMENTS
            .iter()
            .filter_map(|raw| serde_json::from_slice(raw).ok())
            .collect();
        let mut by_gvk = HashMap::new();
        for (i, doc) in docs.iter().enumerate() {
            let Some(schemas) = doc["components"]["schemas"].as_object() else {
                continue;
            };
            for (name, schema) in schemas {
                for gvk in schema["x-kubernetes-group-version-kind"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let part = |k: &str| gvk[k].as_str().unwrap_or_default().to_owned();
                    by_gvk
                        .entry((part("group"), part("version"), part("kind")))
                        .or_insert_with(|| (i, name.clone()));
                }
            }
        }
        Documents { docs, by_gvk }
    })
}

/// How a list merges, from `x-kubernetes-list-type` (or, when absent, from the
/// strategic-merge-patch extensions, as the apiserver's OpenAPI-to-SSA conversion does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Scalars merged as a set.
    Set,
    /// Objects identified by these key fields.
    Map(Vec<String>),
}

/// A node of a schema, with what it needs to follow `$ref`s.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schema<'a> {
    node: &'a Value,
    /// `components.schemas` of the OpenAPI document; `None` inside a CRD's structural schema.
    components: Option<&'a Map<String, Value>>,
    /// The top of a resource, whose `metadata` is always `ObjectMeta`.
    root: bool,
}

impl<'a> Schema<'a> {
    /// A CRD's `openAPIV3Schema` (structural: no `$ref`s).
    pub(crate) fn structural(node: &'a Value) -> Self {
        Self {
            node,
            components: None,
            root: true,
        }
    }

    fn child(&self, node: &'a Value) -> Self {
        Self {
            node,
            components: self.components,
            root: false,
        }
    }

    /// Follows `$ref` and the single-`allOf` wrapper the OpenAPI documents use for references.
    fn resolve(self) -> Self {
        let mut cur = self;
        for _ in 0..8 {
            let reference = cur.node["$ref"].as_str().or_else(|| {
                cur.node["allOf"]
                    .as_array()
                    .filter(|all| all.len() == 1)
                    .and_then(|all| all[0]["$ref"].as_str())
            });
            let Some(reference) = reference else { break };
            let name = reference.rsplit('/').next().unwrap_or_default();
            match cur.components.and_then(|c| c.get(name)) {
                Some(node) => cur.node = node,
                None => break,
            }
        }
        cur
    }

    /// The raw (resolved) schema object.
    pub(crate) fn node(&self) -> &'a Value {
        self.resolve().node
    }

    /// Whether this is a CRD's structural schema (where an object without properties keeps
    /// nothing) rather than a built-in type (where such an object is free-form).
    pub(crate) fn is_structural(&self) -> bool {
        self.components.is_none()
    }

    /// The schema of property `name` of an object, or of its values if it is a map.
    pub(crate) fn property(&self, name: &str) -> Option<Schema<'a>> {
        if self.root && name == "metadata" {
            return object_meta();
        }
        self.declared(name).or_else(|| self.additional())
    }

    /// The schema of a declared property (not map values).
    pub(crate) fn declared(&self, name: &str) -> Option<Schema<'a>> {
        if self.root && name == "metadata" {
            return object_meta();
        }
        let r = self.resolve();
        r.node["properties"].get(name).map(|n| r.child(n))
    }

    /// The declared property names, if the schema lists any.
    pub(crate) fn properties(&self) -> Option<&'a Map<String, Value>> {
        self.resolve().node["properties"].as_object()
    }

    /// The schema of a map's values (`additionalProperties` as a schema).
    pub(crate) fn additional(&self) -> Option<Schema<'a>> {
        let r = self.resolve();
        r.node
            .get("additionalProperties")
            .filter(|a| a.is_object())
            .map(|n| r.child(n))
    }

    /// The schema of a list's items.
    pub(crate) fn items(&self) -> Option<Schema<'a>> {
        let r = self.resolve();
        r.node.get("items").map(|n| r.child(n))
    }

    /// `x-kubernetes-preserve-unknown-fields: true` (or `additionalProperties: true`).
    pub(crate) fn preserves_unknown(&self) -> bool {
        let n = self.node();
        n["x-kubernetes-preserve-unknown-fields"] == true || n["additionalProperties"] == true
    }

    fn extension(&self, name: &str) -> Option<&'a Value> {
        // List extensions sit next to `items` on the property itself; look there first.
        self.node.get(name).or_else(|| self.node().get(name))
    }

    /// How this list merges under server-side apply.
    pub(crate) fn list_type(&self) -> ListType {
        match self
            .extension("x-kubernetes-list-type")
            .and_then(Value::as_str)
        {
            Some("map") => {
                let keys: Vec<String> = self
                    .extension("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
                if keys.is_empty() {
                    ListType::Atomic
                } else {
                    ListType::Map(keys)
                }
            }
            Some("set") => ListType::Set,
            Some(_) => ListType::Atomic,
            None if self.merges_by_patch_strategy() => match self.patch_merge_key() {
                Some(key) => ListType::Map(vec![key.to_owned()]),
                None => ListType::Set,
            },
            None => ListType::Atomic,
        }
    }

    /// `x-kubernetes-patch-merge-key`: what a strategic merge patch matches list items by.
    pub(crate) fn patch_merge_key(&self) -> Option<&'a str> {
        self.extension("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
    }

    /// `x-kubernetes-patch-strategy` includes `merge`.
    pub(crate) fn merges_by_patch_strategy(&self) -> bool {
        self.extension("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .is_some_and(|s| s.split(',').any(|p| p == "merge"))
    }

    /// The schema's `default`, if any.
    pub(crate) fn default_value(&self) -> Option<&'a Value> {
        self.node
            .get("default")
            .or_else(|| self.node().get("default"))
    }
}

fn object_meta<'a>() -> Option<Schema<'a>> {
    let docs = documents();
    let components = docs.docs.first()?["components"]["schemas"].as_object()?;
    Some(Schema {
        node: components.get(OBJECT_META)?,
        components: Some(components),
        root: false,
    })
}

/// The OpenAPI schema of a built-in type (or of a type in the recorded riotkit.org document).
pub(crate) fn builtin(group: &str, version: &str, kind: &str) -> Option<Schema<'static>> {
    let docs = documents();
    let (i, name) = docs
        .by_gvk
        .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))?;
    let components = docs.docs[*i]["components"]["schemas"].as_object()?;
    Some(Schema {
        node: components.get(name)?,
        components: Some(components),
        root: true,
    })
}

/// The schema of one served type: its registered CRD's, or the recorded OpenAPI document's.
#[derive(Clone, Debug)]
pub(crate) enum TypeSchema {
    /// From the compiled-in OpenAPI documents.
    Builtin(Schema<'static>),
    /// A CRD registered with the server (`crd_defaults_from_yaml`).
    Crd(Arc<Value>),
}

impl TypeSchema {
    /// The top of the schema.
    pub(crate) fn root(&self) -> Schema<'_> {
        match self {
            Self::Builtin(s) => *s,
            Self::Crd(v) => Schema::structural(v),
        }
    }

    /// Whether this came from a registered CRD.
    pub(crate) fn is_crd(&self) -> bool {
        matches!(self, Self::Crd(_))
    }
}

/// Fields of `value` the schema does not declare, as `spec.foo` / `spec.list[0].bar` paths, in
/// the order the apiserver reports them (sorted). `metadata` is checked against `ObjectMeta`.
pub(crate) fn unknown_fields(schema: Schema<'_>, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(schema, value, "", &mut out);
    out.sort();
    out
}

/// Removes the fields [`unknown_fields`] reports.
pub(crate) fn prune(schema: Schema<'_>, value: &mut Value) {
    walk_prune(schema, value);
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Whether an object's keys are checked at all: built-in objects without `properties` (raw
/// extensions, `FieldsV1`) are free-form; in a CRD schema they keep nothing.
fn checks_keys(schema: &Schema<'_>) -> bool {
    !schema.preserves_unknown()
        && schema.additional().is_none()
        && (schema.properties().is_some() || schema.is_structural())
        && !schema.node()["x-kubernetes-int-or-string"]
            .as_bool()
            .unwrap_or(false)
}

fn walk_unknown(schema: Schema<'_>, value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let keyed = checks_keys(&schema);
            for (k, v) in map {
                let child_path = join(path, k);
                match schema.property(k) {
                    Some(child) => walk_unknown(child, v, &child_path, out),
                    None if keyed && !(path.is_empty() && (k == "apiVersion" || k == "kind")) => {
                        out.push(child_path)
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.items() {
                for (i, item) in items.iter().enumerate() {
                    walk_unknown(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn walk_prune(schema: Schema<'_>, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let keyed = checks_keys(&schema);
            let root = schema.root;
            map.retain(|k, _| {
                !keyed
                    || schema.property(k).is_some()
                    || (root && (k == "apiVersion" || k == "kind"))
            });
            for (k, v) in map.iter_mut() {
                if let Some(child) = schema.property(k) {
                    walk_prune(child, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.items() {
                for item in items {
                    walk_prune(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_spec_container() -> Schema<'static> {
        let cronjob = builtin("batch", "v1", "CronJob").expect("CronJob is documented");
        [
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "containers",
        ]
        .iter()
        .try_fold(cronjob, |s, f| s.property(f))
        .and_then(|containers| containers.items())
        .expect("the path exists")
    }

    #[test]
    fn container_lists_are_keyed_as_the_recorded_openapi_says() {
        let c = pod_spec_container();
        let keys = |f: &str| c.property(f).expect(f).list_type();
        assert_eq!(
            keys("volumeMounts"),
            ListType::Map(vec!["mountPath".into()])
        );
        assert_eq!(
            keys("ports"),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(keys("env"), ListType::Map(vec!["name".into()]));
        assert_eq!(keys("args"), ListType::Atomic);
        assert_eq!(
            c.property("ports").and_then(|p| p.patch_merge_key()),
            Some("containerPort")
        );
    }

    #[test]
    fn metadata_lists_and_job_conditions_come_from_the_documents() {
        let job = builtin("batch", "v1", "Job").unwrap();
        let meta = job.property("metadata").unwrap();
        assert_eq!(
            meta.property("ownerReferences").unwrap().list_type(),
            ListType::Map(vec!["uid".into()])
        );
        assert_eq!(
            meta.property("finalizers").unwrap().list_type(),
            ListType::Set
        );
        // Job conditions are atomic for server-side apply but merge by type under a strategic
        // merge patch (both as the document says).
        let conditions = job
            .property("status")
            .unwrap()
            .property("conditions")
            .unwrap();
        assert_eq!(conditions.list_type(), ListType::Atomic);
        assert_eq!(conditions.patch_merge_key(), Some("type"));
        assert!(conditions.merges_by_patch_strategy());
    }

    #[test]
    fn a_crd_schema_keys_its_own_lists_and_uses_object_meta_for_metadata() {
        let crd = json!({"type": "object", "properties": {
            "metadata": {"type": "object"},
            "status": {"type": "object", "properties": {"conditions": {
                "type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "properties": {"type": {"type": "string"}}}}}}}});
        let root = Schema::structural(&crd);
        let conditions = root
            .property("status")
            .unwrap()
            .property("conditions")
            .unwrap();
        assert_eq!(conditions.list_type(), ListType::Map(vec!["type".into()]));
        let owners = root
            .property("metadata")
            .unwrap()
            .property("ownerReferences")
            .unwrap();
        assert_eq!(owners.list_type(), ListType::Map(vec!["uid".into()]));
    }

    #[test]
    fn unknown_fields_are_reported_sorted_and_pruned_unless_preserved() {
        let crd = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "cronJob": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}});
        let root = Schema::structural(&crd);
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"},
            "spec": {"foo": 1, "cronJob": {"enabled": true, "bar": 1},
                     "free": {"any": {"thing": 1}}, "labels": {"a": "b"}},
            "topLevelUnknown": true});
        assert_eq!(
            unknown_fields(root, &obj),
            vec!["spec.cronJob.bar", "spec.foo", "topLevelUnknown"]
        );
        prune(root, &mut obj);
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"},
                "spec": {"cronJob": {"enabled": true}, "free": {"any": {"thing": 1}},
                         "labels": {"a": "b"}}})
        );
    }

    #[test]
    fn built_in_types_report_undeclared_fields() {
        let cm = builtin("", "v1", "ConfigMap").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "bogusMeta": 1},
            "data": {"a": "1"}, "bogus": 1});
        assert_eq!(
            unknown_fields(cm, &obj),
            vec!["bogus", "metadata.bogusMeta"]
        );
    }
}
