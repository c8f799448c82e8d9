//! Strategic merge patch for built-in types: lists with a patch merge key merge item by item
//! (`conditions` by `type`, `containers` by `name`, ...), `metadata.finalizers` merges as a
//! set, other lists are replaced, `null` deletes, and the `$patch: delete|replace` and
//! `$deleteFromPrimitiveList` directives work. Recording b2 step 6 (Job conditions by type).

use serde_json::{Map, Value};

/// How a list under this field name merges (`patchStrategy:"merge"` in the Go types).
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "conditions" => "type",
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "ports" => "containerPort",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        _ => return None,
    })
}

/// Primitive lists that merge as sets.
fn is_set(field: &str) -> bool {
    field == "finalizers"
}

/// Whether strategic merge patch is modelled for this type (built-in groups; custom resources
/// keep the plain merge patch).
pub(crate) fn serves(res: &crate::ResourceInfo) -> bool {
    matches!(
        res.group.as_str(),
        "" | "batch" | "apps" | "events.k8s.io" | "coordination.k8s.io"
    )
}

/// Parses and applies a strategic merge patch body.
pub(crate) fn patch(doc: &mut Value, body: &[u8]) -> Result<(), String> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid strategic merge patch: {e}"))?;
    apply(doc, &patch)
}

/// Applies `patch` (a JSON object) to `doc`.
pub(crate) fn apply(doc: &mut Value, patch: &Value) -> Result<(), String> {
    let Some(patch) = patch.as_object() else {
        return Err("a strategic merge patch must be a JSON object".to_owned());
    };
    merge_map(doc, patch);
    Ok(())
}

fn merge_map(doc: &mut Value, patch: &Map<String, Value>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        replaced.remove("$patch");
        *doc = Value::Object(replaced);
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    for (key, value) in patch {
        if key.starts_with("$setElementOrder/") || key == "$retainKeys" || key == "$patch" {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (
                doc.get_mut(field).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        let Some(target) = doc.as_object_mut() else {
            return;
        };
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(p) if p.get("$patch").and_then(Value::as_str) == Some("delete") => {
                target.remove(key);
            }
            Value::Object(p) => merge_map(target.entry(key.clone()).or_insert(Value::Null), p),
            Value::Array(items) => {
                let current = target.entry(key.clone()).or_insert(Value::Null);
                merge_list(current, items, key);
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

fn merge_list(current: &mut Value, items: &[Value], field: &str) {
    let replace_all = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace_all {
        *current = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        );
        return;
    }
    if is_set(field) {
        let list = ensure_list(current);
        for item in items {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
        return;
    }
    let Some(key) = merge_key(field) else {
        *current = Value::Array(items.to_vec());
        return;
    };
    let list = ensure_list(current);
    for item in items {
        let position = list
            .iter()
            .position(|existing| !item[key].is_null() && existing[key] == item[key]);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, item.as_object()) {
            (Some(i), _) if delete => {
                list.remove(i);
            }
            (_, _) if delete => {}
            (Some(i), Some(p)) => merge_map(&mut list[i], p),
            _ => list.push(item.clone()),
        }
    }
}

fn ensure_list(v: &mut Value) -> &mut Vec<Value> {
    if !v.is_array() {
        *v = Value::Array(Vec::new());
    }
    match v.as_array_mut() {
        Some(list) => list,
        None => unreachable!("just made an array"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_merge_by_type_and_other_lists_are_replaced() {
        let mut doc = json!({"status": {"conditions": [
            {"type": "A", "status": "True", "message": "a"},
            {"type": "B", "status": "True", "message": "b"}]},
            "spec": {"args": ["x", "y"]}});
        apply(
            &mut doc,
            &json!({"status": {"conditions": [{"type": "B", "message": "via SMP"}]},
                    "spec": {"args": ["z"]}}),
        )
        .unwrap();
        assert_eq!(doc["status"]["conditions"][0]["message"], "a");
        assert_eq!(doc["status"]["conditions"][1]["message"], "via SMP");
        assert_eq!(doc["status"]["conditions"][1]["status"], "True");
        assert_eq!(doc["spec"]["args"], json!(["z"]));
    }

    #[test]
    fn directives_delete_items_and_finalizers_merge_as_a_set() {
        let mut doc = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1"}, {"uid": "2"}]}});
        apply(
            &mut doc,
            &json!({"metadata": {"finalizers": ["b", "a"],
                "ownerReferences": [{"uid": "1", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(doc["metadata"]["ownerReferences"], json!([{"uid": "2"}]));
    }
}
