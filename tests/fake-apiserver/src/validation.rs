//! Validation of custom resources against their CRD's structural schema, as the apiextensions
//! apiserver does it: types, `enum`, `required`, `minimum`/`maximum`, `minItems`/`maxItems`,
//! duplicate list-map keys and set members, then the `x-kubernetes-validations` CEL rules
//! (through `kube::core::cel`). Also the `ownerReferences` rule every type shares.
//!
//! Like the apiserver (validation ratcheting, on by default since 1.30), an update is not
//! rejected for an error in a part of the object it left unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use kube::core::cel::{CompiledSchema, RootContext, Validator, compile_schema};
use serde_json::{Value, json};

use crate::ResourceInfo;
use crate::errors::ApiError;

/// One `field.Error`: where, the reason (`FieldValueInvalid`, ...) and the rendered message.
#[derive(Clone, Debug, PartialEq)]
struct Cause {
    /// `spec.cronJob`, `status.conditions[0]`; empty for the object itself (printed `<nil>`).
    field: String,
    reason: &'static str,
    message: String,
}

impl Cause {
    fn new(field: &str, reason: &'static str, message: String) -> Self {
        Self {
            field: field.to_owned(),
            reason,
            message,
        }
    }

    /// A schema error that stops the CEL rules from being evaluated (`hasBlockingErr`).
    fn blocks_rules(&self) -> bool {
        matches!(
            self.reason,
            "FieldValueNotSupported" | "FieldValueRequired" | "FieldValueTypeInvalid"
        )
    }

    fn field_or_nil(&self) -> &str {
        if self.field.is_empty() {
            "<nil>"
        } else {
            &self.field
        }
    }
}

/// The 422 for a list of causes: `Kind.group "name" is invalid: field: message` (several in
/// brackets, comma-separated), details with group, kind, name and every cause.
fn invalid(res: &ResourceInfo, name: &str, causes: &[Cause]) -> ApiError {
    let rendered: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field_or_nil(), c.message))
        .collect();
    let listed = match rendered.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", rendered.join(", ")),
    };
    let qualified = if res.group.is_empty() {
        res.kind.clone()
    } else {
        format!("{}.{}", res.kind, res.group)
    };
    ApiError::invalid_with_details(
        format!("{qualified} {name:?} is invalid: {listed}"),
        json!({
            "name": name,
            "group": res.group,
            "kind": res.kind,
            "causes": causes.iter().map(|c| json!({
                "reason": c.reason,
                "message": c.message,
                "field": c.field_or_nil(),
            })).collect::<Vec<_>>(),
        }),
    )
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The JSON type name the OpenAPI validator reports for a value.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(schema: &Value, v: &Value) -> bool {
    if v.is_null() {
        return schema["nullable"] == true;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        return v.is_string() || type_of(v) == "integer";
    }
    match schema["type"].as_str() {
        None => true,
        Some("number") => v.is_number(),
        Some(t) => t == type_of(v),
    }
}

/// The name the OpenAPI validator puts in front of "in body": the last element of the path.
fn short(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Schema errors of `value` at `path`.
fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Cause>) {
    if !has_type(schema, value) {
        let actual = type_of(value);
        let wanted = schema["type"].as_str().unwrap_or_default();
        out.push(Cause::new(
            path,
            "FieldValueTypeInvalid",
            format!(
                "Invalid value: \"{actual}\": {} in body must be of type {wanted}: \"{actual}\"",
                short(path)
            ),
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.push(Cause::new(
            path,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {value}: supported values: {}",
                listed.join(", ")
            ),
        ));
    }
    check_bounds(schema, value, path, out);
    match value {
        Value::Object(map) => {
            for required in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = required.as_str()
                    && !map.contains_key(r)
                {
                    out.push(Cause::new(
                        &join(path, r),
                        "FieldValueRequired",
                        "Required value".to_owned(),
                    ));
                }
            }
            let props = schema["properties"].as_object();
            for (k, v) in map {
                let child = props
                    .and_then(|p| p.get(k))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                // `metadata` is ObjectMeta, validated by the generic object-meta rules.
                if let Some(child) = child
                    && !(path.is_empty() && k == "metadata")
                {
                    check(child, v, &join(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn check_bounds(schema: &Value, value: &Value, path: &str, out: &mut Vec<Cause>) {
    let name = short(path);
    let mut fail = |text: String| {
        out.push(Cause::new(
            path,
            "FieldValueInvalid",
            format!("Invalid value: {value}: {name} in body {text}"),
        ))
    };
    if let Some(n) = value.as_f64() {
        let exclusive = |k: &str| schema[k] == true;
        if let Some(min) = schema["minimum"].as_f64() {
            if exclusive("exclusiveMinimum") && n <= min {
                fail(format!("should be greater than {}", schema["minimum"]));
            } else if n < min {
                fail(format!(
                    "should be greater than or equal to {}",
                    schema["minimum"]
                ));
            }
        }
        if let Some(max) = schema["maximum"].as_f64() {
            if exclusive("exclusiveMaximum") && n >= max {
                fail(format!("should be less than {}", schema["maximum"]));
            } else if n > max {
                fail(format!(
                    "should be less than or equal to {}",
                    schema["maximum"]
                ));
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(min) = schema["minItems"].as_u64()
            && (items.len() as u64) < min
        {
            fail(format!("should have at least {min} items"));
        }
        if let Some(max) = schema["maxItems"].as_u64()
            && (items.len() as u64) > max
        {
            fail(format!("should have at most {max} items"));
        }
    }
}

/// Duplicate keys of `x-kubernetes-list-type: map` lists and duplicate members of sets
/// (`ValidateListSetsAndMaps`; not blocking for the CEL rules).
fn duplicates(schema: &Value, value: &Value, path: &str, out: &mut Vec<Cause>) {
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            for (k, v) in map {
                let child = props
                    .and_then(|p| p.get(k))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(child) = child {
                    duplicates(child, v, &join(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let identity = |item: &Value| -> Value {
                match schema["x-kubernetes-list-type"].as_str() {
                    Some("map") => {
                        let mut key = serde_json::Map::new();
                        for k in &keys {
                            if let Some(v) = item.get(*k) {
                                key.insert((*k).to_owned(), v.clone());
                            }
                        }
                        Value::Object(key)
                    }
                    _ => item.clone(),
                }
            };
            if matches!(
                schema["x-kubernetes-list-type"].as_str(),
                Some("map" | "set")
            ) {
                let mut seen: Vec<Value> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let id = identity(item);
                    if seen.contains(&id) {
                        out.push(Cause::new(
                            &format!("{path}[{i}]"),
                            "FieldValueDuplicate",
                            format!("Duplicate value: {id}"),
                        ));
                    } else {
                        seen.push(id);
                    }
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    duplicates(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The value at a validation path (`spec.list[2].x`); `None` if absent.
fn at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(root);
    }
    let mut cur = root;
    for part in path.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let i: usize = index.trim_end_matches(']').parse().ok()?;
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// Compiled CEL rules per schema (compiling is the slow part, and every server of a test run
/// registers the same few CRDs). Keyed by the schema's text.
fn compiled(schema: &Value) -> Arc<CompiledSchema> {
    type Cache = Mutex<HashMap<String, Arc<CompiledSchema>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let text = schema.to_string();
    let cache = CACHE.get_or_init(Cache::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .entry(text)
        .or_insert_with(|| Arc::new(compile_schema(schema)))
        .clone()
}

/// The CEL rule failures, rendered as the apiserver renders them.
fn rules(res: &ResourceInfo, schema: &Arc<Value>, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let root = RootContext {
        api_version: res.api_version(),
        api_group: res.group.clone(),
        kind: res.kind.clone(),
    };
    let Err(errors) =
        Validator::new().validate_compiled_with_context(&compiled(schema), obj, old, Some(&root))
    else {
        return Vec::new();
    };
    errors
        .into_vec()
        .into_iter()
        .map(|e| {
            let (reason, title) = match e.reason.as_deref() {
                Some("FieldValueForbidden") => ("FieldValueForbidden", "Forbidden"),
                Some("FieldValueRequired") => ("FieldValueRequired", "Required value"),
                Some("FieldValueDuplicate") => ("FieldValueDuplicate", "Duplicate value"),
                _ => ("FieldValueInvalid", "Invalid value"),
            };
            Cause::new(&e.field_path, reason, format!("{title}: {}", e.message))
        })
        .collect()
}

/// Validates a custom resource about to be stored (`old` on update). The causes come in the
/// apiserver's order: schema errors, duplicate list keys, then either the CEL rule failures
/// or, if a schema error blocks them, the "some validation rules were not checked" cause.
pub(crate) fn custom_resource(
    res: &ResourceInfo,
    name: &str,
    schema: &Arc<Value>,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    // Ratcheting: an error where the update left the value as it was does not count. A missing
    // required field belongs to the object that should carry it.
    let changed = |c: &Cause| {
        let path = match c.reason {
            "FieldValueRequired" => c.field.rsplit_once('.').map_or("", |(parent, _)| parent),
            _ => c.field.as_str(),
        };
        old.is_none_or(|old| {
            path.is_empty() || at(old, path).is_none() || at(old, path) != at(obj, path)
        })
    };
    let mut causes = Vec::new();
    check(schema, obj, "", &mut causes);
    causes.retain(|c| changed(c));
    let blocked = causes.iter().any(Cause::blocks_rules);
    duplicates(schema, obj, "", &mut causes);
    causes.retain(|c| changed(c));
    if blocked {
        causes.push(Cause::new(
            "",
            "FieldValueInvalid",
            "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".to_owned(),
        ));
    } else {
        let mut failed: Vec<Cause> = rules(res, schema, obj, old)
            .into_iter()
            .filter(|c| changed(c))
            .collect();
        // kube-cel walks properties in hash order and the apiserver in Go map order: neither is
        // stable, so the fake sorts by field (rules of one field keep their schema order).
        failed.sort_by(|a, b| a.field.cmp(&b.field));
        causes.extend(failed);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(res, name, &causes))
    }
}

/// Go's field order of an `OwnerReference`, as the apiserver prints the list in messages.
fn owner_json(r: &Value) -> String {
    let mut parts = Vec::new();
    for k in [
        "apiVersion",
        "kind",
        "name",
        "uid",
        "controller",
        "blockOwnerDeletion",
    ] {
        if let Some(v) = r.get(k).filter(|v| !v.is_null()) {
            parts.push(format!("{k:?}:{v}"));
        }
    }
    format!("{{{}}}", parts.join(","))
}

/// `metadata.ownerReferences` may name at most one controller. On update the apiserver reports
/// the cause four times (object-meta validation runs twice, each for old and new; recording c4).
pub(crate) fn owner_references(
    res: &ResourceInfo,
    name: &str,
    obj: &Value,
    update: bool,
) -> Result<(), ApiError> {
    let refs = obj["metadata"]["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let controllers: Vec<&Value> = refs.iter().filter(|r| r["controller"] == true).collect();
    if controllers.len() < 2 {
        return Ok(());
    }
    let listed: Vec<String> = refs.iter().map(owner_json).collect();
    let names: Vec<String> = controllers
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let message = format!(
        "Invalid value: [{}]: Only one reference can have Controller set to true. Found \"true\" in references for {}",
        listed.join(","),
        names.join(" and ")
    );
    let cause = json!({"reason": "FieldValueInvalid", "message": message, "field": "metadata.ownerReferences"});
    let times = if update { 4 } else { 1 };
    let mut details = json!({"name": name, "kind": res.kind, "causes": vec![cause; times]});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    Err(ApiError::invalid_with_details(
        format!(
            "{} {name:?} is invalid: metadata.ownerReferences: {message}",
            if res.group.is_empty() {
                res.kind.clone()
            } else {
                format!("{}.{}", res.kind, res.group)
            }
        ),
        details,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Arc<Value> {
        Arc::new(
            json!({"type": "object", "properties": {"status": {"type": "object", "properties": {
            "conditions": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "required": ["type", "status"], "properties": {
                    "type": {"type": "string"}, "status": {"type": "string"}}}}}}}}),
        )
    }

    fn res() -> ResourceInfo {
        ResourceInfo::new("example.org", "v1", "Widget", "widgets", true, true)
    }

    #[test]
    fn validation_paths_resolve_fields_and_list_indexes() {
        let obj = json!({"status": {"conditions": [{"type": "A"}, {"type": "B"}]}});
        assert_eq!(at(&obj, "status.conditions[1].type"), Some(&json!("B")));
        assert_eq!(at(&obj, "status.conditions[2]"), None);
        assert_eq!(at(&obj, ""), Some(&obj));
    }

    #[test]
    fn a_missing_required_field_counts_in_a_new_list_item_but_not_in_an_unchanged_one() {
        let incomplete = json!({"status": {"conditions": [{"type": "A"}]}});
        let err = custom_resource(&res(), "w", &schema(), &incomplete, Some(&json!({})))
            .expect_err("a new condition without status is invalid");
        assert_eq!(
            err.details.as_ref().unwrap()["causes"][0]["field"],
            "status.conditions[0].status"
        );
        // The same incomplete condition, already stored: ratcheting lets the update through.
        assert!(custom_resource(&res(), "w", &schema(), &incomplete, Some(&incomplete)).is_ok());
    }

    #[test]
    fn one_controller_owner_is_fine_and_two_are_reported_four_times_on_update() {
        let owner = |n: &str, c: bool| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": n, "controller": c});
        let one = json!({"metadata": {"ownerReferences": [owner("a", true), owner("b", false)]}});
        assert!(owner_references(&res(), "x", &one, true).is_ok());
        let two = json!({"metadata": {"ownerReferences": [owner("a", true), owner("b", true)]}});
        let err = owner_references(&res(), "x", &two, true).unwrap_err();
        assert_eq!(err.details.unwrap()["causes"].as_array().unwrap().len(), 4);
        let err = owner_references(&res(), "x", &two, false).unwrap_err();
        assert!(
            err.message
                .ends_with("Found \"true\" in references for ConfigMap/a and ConfigMap/b")
        );
    }
}
