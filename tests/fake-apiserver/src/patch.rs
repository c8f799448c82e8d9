//! PATCH bodies other than server-side apply: JSON patch, merge patch, strategic merge patch.

use json_patch::{Patch, PatchOperation};
use serde_json::{Map, Value};

use crate::openapi::Schema;

/// The PATCH flavours, chosen by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`: lists merge by their OpenAPI patch merge key.
    Strategic,
    /// `application/apply-patch+yaml`: server-side apply, handled by `apply.rs`.
    Apply,
}

impl PatchKind {
    /// Maps a `Content-Type` header (parameters ignored) to a patch kind.
    pub(crate) fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Why a JSON patch did not apply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonPatchError {
    /// A `test` operation found another value (the apiserver answers a bare 422, recording c5).
    TestFailed,
    /// The body is not a JSON patch, or an operation cannot be applied.
    Invalid(String),
}

/// Applies an RFC 6902 patch to `doc`.
///
/// Like the real apiserver (which evaluates `test` against an object whose absent fields read as
/// `null`), a `test` of value `null` on a missing path succeeds. `kube::runtime::finalizer` relies
/// on this to add the first finalizer (`test /metadata/finalizers == null`, then `add`). A
/// `replace` of a missing key of an existing object adds it (recording c5).
pub(crate) fn json_patch(doc: &mut Value, body: &[u8]) -> Result<(), JsonPatchError> {
    let patch: Patch = serde_json::from_slice(body)
        .map_err(|e| JsonPatchError::Invalid(format!("invalid JSON patch: {e}")))?;
    for op in &patch.0 {
        let op = match op {
            PatchOperation::Test(test)
                if test.value.is_null() && doc.pointer(test.path.as_str()).is_none() =>
            {
                continue;
            }
            PatchOperation::Replace(replace) if doc.pointer(replace.path.as_str()).is_none() => {
                PatchOperation::Add(json_patch::AddOperation {
                    path: replace.path.clone(),
                    value: replace.value.clone(),
                })
            }
            other => other.clone(),
        };
        json_patch::patch(doc, std::slice::from_ref(&op)).map_err(|e| match e.kind {
            json_patch::PatchErrorKind::TestFailed => JsonPatchError::TestFailed,
            _ => JsonPatchError::Invalid(e.to_string()),
        })?;
    }
    Ok(())
}

/// Applies an RFC 7386 merge patch (`null` deletes, objects merge, arrays are replaced).
pub(crate) fn merge_patch(doc: &mut Value, body: &[u8]) -> Result<(), String> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid merge patch: {e}"))?;
    if !patch.is_object() {
        return Err("a merge patch must be a JSON object".to_owned());
    }
    json_patch::merge(doc, &patch);
    Ok(())
}

/// Applies a strategic merge patch as the apiserver does for built-in types: a list whose
/// OpenAPI schema says `x-kubernetes-patch-strategy: merge` merges item by item on its
/// `x-kubernetes-patch-merge-key` (`ownerReferences` by uid, `conditions` by type, `containers`
/// by name, `volumeMounts` by mountPath, ...) or as a set of scalars (`finalizers`); every other
/// list is replaced; `null` deletes; the `$patch: delete|replace`, `$retainKeys` and
/// `$deleteFromPrimitiveList/<field>` directives work. Without a schema it is a merge patch
/// with those directives.
pub(crate) fn strategic_merge_patch(
    doc: &mut Value,
    body: &[u8],
    schema: Option<Schema<'_>>,
) -> Result<(), String> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid strategic merge patch: {e}"))?;
    let Some(patch) = patch.as_object() else {
        return Err("a strategic merge patch must be a JSON object".to_owned());
    };
    smp_map(doc, patch, schema);
    Ok(())
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

fn smp_map(doc: &mut Value, patch: &Map<String, Value>, schema: Option<Schema<'_>>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        replaced.remove("$patch");
        *doc = Value::Object(replaced);
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Some(target) = doc.as_object_mut() else {
        return;
    };
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        target.retain(|k, _| keep.iter().any(|r| r == k) || patch.contains_key(k));
    }
    for (key, value) in patch {
        if key.starts_with("$setElementOrder/") || key == "$retainKeys" || key == "$patch" {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (
                target.get_mut(field).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        let child = schema.and_then(|s| s.property(key));
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(_) if directive(value) == Some("delete") => {
                target.remove(key);
            }
            Value::Object(p) => smp_map(target.entry(key.clone()).or_insert(Value::Null), p, child),
            Value::Array(items) => {
                let current = target.entry(key.clone()).or_insert(Value::Null);
                smp_list(current, items, child);
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

fn smp_list(current: &mut Value, patch: &[Value], schema: Option<Schema<'_>>) {
    let merges = schema.is_some_and(|s| s.merges_by_patch_strategy());
    if !merges || patch.iter().any(|i| directive(i) == Some("replace")) {
        *current = Value::Array(
            patch
                .iter()
                .filter(|i| directive(i).is_none())
                .cloned()
                .collect(),
        );
        return;
    }
    let original: Vec<Value> = current.as_array().cloned().unwrap_or_default();
    let Some(key) = schema.and_then(|s| s.patch_merge_key()) else {
        // Scalars merged as a set: the original's, then the patch's new ones.
        let mut merged = original;
        for item in patch {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
        }
        *current = Value::Array(merged);
        return;
    };
    let item_schema = schema.and_then(|s| s.items());
    let same = |a: &Value, b: &Value| !b[key].is_null() && a[key] == b[key];
    // Merge: items named by the patch are merged into (or added to) the original.
    let mut merged = original.clone();
    for item in patch {
        let position = merged.iter().position(|o| same(o, item));
        match (position, directive(item), item.as_object()) {
            (Some(i), Some("delete"), _) => {
                merged.remove(i);
            }
            (None, Some("delete"), _) => {}
            (Some(i), _, Some(p)) => smp_map(&mut merged[i], p, item_schema),
            (None, _, _) => merged.push(item.clone()),
            (Some(i), _, None) => merged[i] = item.clone(),
        }
    }
    // Order (`normalizeElementOrder`): the patch's items in patch order and the server-only items
    // in original order, interleaved by their original positions; an item new to the server
    // goes before the server-only item it is compared with (recording c4: the patched owner
    // comes first).
    let in_patch = |m: &Value| patch.iter().any(|p| same(m, p));
    let mut from_patch: Vec<Value> = Vec::new();
    for p in patch {
        if let Some(m) = merged.iter().find(|m| same(m, p))
            && !from_patch.iter().any(|f| same(f, p))
        {
            from_patch.push(m.clone());
        }
    }
    let server_only: Vec<Value> = merged.iter().filter(|m| !in_patch(m)).cloned().collect();
    let index = |v: &Value| original.iter().position(|o| same(o, v));
    let (mut l, mut r) = (0, 0);
    let mut out = Vec::with_capacity(merged.len());
    while l < server_only.len() || r < from_patch.len() {
        let take_left = match (server_only.get(l), from_patch.get(r)) {
            (Some(_), None) => true,
            (None, _) => false,
            (Some(left), Some(right)) => {
                matches!((index(left), index(right)), (Some(li), Some(ri)) if li < ri)
            }
        };
        if take_left {
            out.push(server_only[l].clone());
            l += 1;
        } else {
            out.push(from_patch[r].clone());
            r += 1;
        }
    }
    *current = Value::Array(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_null_on_missing_path_succeeds_like_the_apiserver() {
        let mut doc = json!({"metadata": {"name": "a"}});
        let body = br#"[{"op":"test","path":"/metadata/finalizers","value":null},
                       {"op":"add","path":"/metadata/finalizers","value":["f"]}]"#;
        json_patch(&mut doc, body).expect("patch applies");
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
    }

    #[test]
    fn json_patch_failing_test_is_an_error_and_later_ops_do_not_apply() {
        let mut doc = json!({"metadata": {"finalizers": ["x"]}});
        let body = br#"[{"op":"test","path":"/metadata/finalizers/0","value":"y"},
                       {"op":"remove","path":"/metadata/finalizers/0"}]"#;
        assert!(json_patch(&mut doc, body).is_err());
    }

    #[test]
    fn json_patch_failing_test_is_told_apart_and_replace_of_a_missing_key_adds_it() {
        let mut doc = json!({"data": {"a": "2"}});
        let failing = br#"[{"op":"test","path":"/data/a","value":"nope"}]"#;
        assert_eq!(
            json_patch(&mut doc, failing),
            Err(JsonPatchError::TestFailed)
        );
        json_patch(
            &mut doc,
            br#"[{"op":"replace","path":"/data/missing","value":"v"}]"#,
        )
        .expect("replace of a missing key applies");
        assert_eq!(doc, json!({"data": {"a": "2", "missing": "v"}}));
    }

    #[test]
    fn json_patch_test_null_on_present_value_fails() {
        let mut doc = json!({"metadata": {"finalizers": ["x"]}});
        let body = br#"[{"op":"test","path":"/metadata/finalizers","value":null}]"#;
        assert!(json_patch(&mut doc, body).is_err());
    }

    #[test]
    fn merge_patch_null_deletes_and_arrays_replace() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut doc, br#"{"a": {"b": null, "d": 3}, "l": [3]}"#).unwrap();
        assert_eq!(doc, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    fn pod() -> Option<Schema<'static>> {
        crate::openapi::builtin("", "v1", "Pod")
    }

    fn smp(doc: &mut Value, patch: Value, schema: Option<Schema<'_>>) {
        strategic_merge_patch(doc, patch.to_string().as_bytes(), schema).expect("patch applies");
    }

    #[test]
    fn strategic_merge_patch_merges_owner_references_by_uid_patched_item_first() {
        let mut doc = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}});
        smp(
            &mut doc,
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
            pod(),
        );
        assert_eq!(
            doc["metadata"]["ownerReferences"],
            json!([{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}])
        );
    }

    #[test]
    fn strategic_merge_patch_keys_volume_mounts_by_mount_path_and_replaces_args() {
        let mut doc = json!({"spec": {"containers": [{"name": "main", "args": ["x", "y"],
            "volumeMounts": [{"name": "data", "mountPath": "/a"}]}]}});
        smp(
            &mut doc,
            json!({"spec": {"containers": [{"name": "main", "args": ["z"],
            "volumeMounts": [{"name": "data", "mountPath": "/b"}]}]}}),
            pod(),
        );
        let c = &doc["spec"]["containers"][0];
        assert_eq!(c["args"], json!(["z"]));
        // Same volume, another mountPath: a second mount, placed before the server-only one.
        assert_eq!(
            c["volumeMounts"],
            json!([{"name": "data", "mountPath": "/b"}, {"name": "data", "mountPath": "/a"}])
        );
    }

    #[test]
    fn strategic_merge_patch_directives_delete_items_and_finalizers_merge_as_a_set() {
        let mut doc = json!({"metadata": {"finalizers": ["a"],
            "ownerReferences": [{"uid": "1"}, {"uid": "2"}]}});
        smp(
            &mut doc,
            json!({"metadata": {"finalizers": ["b", "a"],
            "ownerReferences": [{"uid": "1", "$patch": "delete"}]}}),
            pod(),
        );
        assert_eq!(doc["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(doc["metadata"]["ownerReferences"], json!([{"uid": "2"}]));
    }

    #[test]
    fn strategic_merge_patch_merges_job_conditions_by_type() {
        let job = crate::openapi::builtin("batch", "v1", "Job");
        let mut doc = json!({"status": {"conditions": [
            {"type": "A", "status": "True", "message": "a"},
            {"type": "B", "status": "True", "message": "b"}]}});
        smp(
            &mut doc,
            json!({"status": {"conditions": [{"type": "B", "message": "via SMP"}]}}),
            job,
        );
        assert_eq!(
            doc["status"]["conditions"],
            json!([{"type": "A", "status": "True", "message": "a"},
                   {"type": "B", "status": "True", "message": "via SMP"}])
        );
    }

    #[test]
    fn strategic_merge_patch_without_a_schema_replaces_lists() {
        let mut doc = json!({"status": {"conditions": [{"type": "A"}]}});
        smp(
            &mut doc,
            json!({"status": {"conditions": [{"type": "B"}]}}),
            None,
        );
        assert_eq!(doc["status"]["conditions"], json!([{"type": "B"}]));
    }

    #[test]
    fn content_types_map_to_patch_kinds() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml"),
            Some(PatchKind::Apply)
        );
        assert_eq!(PatchKind::from_content_type("text/plain"), None);
    }
}
