//! Server-side apply: field ownership per manager, list merging by key, conflicts.
//!
//! A field path is a list of steps: a map key, a list-map entry identified by its key value
//! (`conditions[type=Ready]`), or a set member (`finalizers[="x"]`). Every manager owns a set of
//! paths. This is a simplified model of structured-merge-diff: known list-maps and sets are
//! recognised by field name instead of by the OpenAPI schema, and all other lists are atomic.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Step {
    /// A key of a JSON object.
    Field(String),
    /// A list-map entry: the key field's name and its value (JSON-encoded).
    Key(String, String),
    /// A set-list member (JSON-encoded).
    Member(String),
}

/// A path from the object root.
pub(crate) type FieldPath = Vec<Step>;
/// The paths one manager owns.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Who owns what: manager name plus whether the ownership came through the status subresource
/// (the apiserver keeps those as separate `managedFields` entries).
pub(crate) type Managers = BTreeMap<(String, bool), FieldSet>;

/// How a list at a given path merges.
enum ListType {
    /// Entries are objects identified by this key field.
    Map(&'static str),
    /// Entries are scalars, merged as a set.
    Set,
    /// Replaced as a whole.
    Atomic,
}

fn list_type(path: &[Step]) -> ListType {
    let Some(Step::Field(name)) = path.last() else {
        return ListType::Atomic;
    };
    match (path.len(), name.as_str()) {
        (2, "ownerReferences") if path[0] == Step::Field("metadata".into()) => ListType::Map("uid"),
        (2, "finalizers") if path[0] == Step::Field("metadata".into()) => ListType::Set,
        (_, "conditions") => ListType::Map("type"),
        (_, "containers" | "initContainers" | "env" | "volumes" | "volumeMounts") => {
            ListType::Map("name")
        }
        _ => ListType::Atomic,
    }
}

/// Metadata the server owns; never tracked and never merged from an applied configuration.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn is_untracked(path: &[Step]) -> bool {
    match path {
        [Step::Field(f)] => f == "apiVersion" || f == "kind",
        [Step::Field(m), Step::Field(f)] => {
            m == "metadata" && SERVER_METADATA.contains(&f.as_str())
        }
        _ => false,
    }
}

fn encode(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The paths a configuration sets. `null` values are not owned (they mean "unset").
pub(crate) fn field_set(config: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    collect(config, &mut Vec::new(), &mut out);
    out
}

fn collect(value: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    match value {
        Value::Null => {}
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(Step::Field(k.clone()));
                if !is_untracked(path) {
                    collect(v, path, out);
                }
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match list_type(path) {
            ListType::Map(key) if items.iter().all(|i| i.get(key).is_some()) => {
                for item in items {
                    path.push(Step::Key(key.to_owned(), encode(&item[key])));
                    out.insert(path.clone());
                    collect(item, path, out);
                    path.pop();
                }
            }
            ListType::Set => {
                for item in items {
                    path.push(Step::Member(encode(item)));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// The value at `path`, if present.
pub(crate) fn get<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut cur = value;
    for step in path {
        cur = match step {
            Step::Field(f) => cur.get(f)?,
            Step::Key(k, v) => cur
                .as_array()?
                .iter()
                .find(|item| item.get(k).map(encode).as_deref() == Some(v.as_str()))?,
            Step::Member(m) => cur.as_array()?.iter().find(|item| encode(item) == *m)?,
        };
    }
    Some(cur)
}

/// Removes the value at `path` (a map key, a list-map entry or a set member).
pub(crate) fn remove(value: &mut Value, path: &[Step]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = value;
    for step in parent_path {
        let next = match step {
            Step::Field(f) => cur.get_mut(f),
            Step::Key(k, v) => cur.as_array_mut().and_then(|items| {
                items
                    .iter_mut()
                    .find(|item| item.get(k).map(encode).as_deref() == Some(v.as_str()))
            }),
            Step::Member(_) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Step::Field(f) => {
            if let Some(map) = cur.as_object_mut() {
                map.remove(f);
            }
        }
        Step::Key(k, v) => {
            if let Some(items) = cur.as_array_mut() {
                items.retain(|item| item.get(k).map(encode).as_deref() != Some(v.as_str()));
            }
        }
        Step::Member(m) => {
            if let Some(items) = cur.as_array_mut() {
                items.retain(|item| encode(item) != *m);
            }
        }
    }
}

/// Merges an applied configuration into the live object: maps merge by key, list-maps by their
/// key field, sets by value; everything else is replaced.
pub(crate) fn merge(live: &mut Value, config: &Value) {
    merge_at(live, config, &mut Vec::new());
}

fn merge_at(live: &mut Value, config: &Value, path: &mut FieldPath) {
    match config {
        Value::Object(cfg) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let Some(live_map) = live.as_object_mut() else {
                return;
            };
            for (k, v) in cfg {
                path.push(Step::Field(k.clone()));
                if is_untracked(path) {
                    path.pop();
                    continue;
                }
                if v.is_null() {
                    live_map.remove(k);
                } else {
                    let slot = live_map.entry(k.clone()).or_insert(Value::Null);
                    merge_at(slot, v, path);
                }
                path.pop();
            }
        }
        Value::Array(cfg_items) => match (list_type(path), live.as_array_mut()) {
            (ListType::Map(key), Some(live_items))
                if cfg_items.iter().all(|i| i.get(key).is_some()) =>
            {
                for item in cfg_items {
                    path.push(Step::Key(key.to_owned(), encode(&item[key])));
                    match live_items.iter_mut().find(|l| l.get(key) == item.get(key)) {
                        Some(existing) => merge_at(existing, item, path),
                        None => live_items.push(item.clone()),
                    }
                    path.pop();
                }
            }
            (ListType::Set, Some(live_items)) => {
                for item in cfg_items {
                    if !live_items.contains(item) {
                        live_items.push(item.clone());
                    }
                }
            }
            _ => *live = config.clone(),
        },
        _ => *live = config.clone(),
    }
}

/// Human-readable path, as the apiserver prints it in conflict messages.
pub(crate) fn display(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Key(k, v) => s.push_str(&format!("[{k}={v}]")),
            Step::Member(m) => s.push_str(&format!("[={m}]")),
        }
    }
    s
}

/// Whether a path denotes a value (as opposed to the presence of a list entry or set member).
fn is_value_path(path: &[Step]) -> bool {
    matches!(path.last(), Some(Step::Field(_)))
}

/// Server-side apply of `config` by `manager` onto `live` (an empty object when creating).
///
/// Returns the merged object, or the conflicting (manager, field) pairs when another manager owns
/// a field this configuration sets to a different value and `force` is off. On success the
/// manager's field set is replaced by what it just applied; with `force`, other managers lose the
/// conflicting fields.
pub(crate) fn apply(
    live: &Value,
    config: &Value,
    managers: &mut Managers,
    manager: &(String, bool),
    force: bool,
) -> Result<Value, Vec<(String, String)>> {
    let new_owned = field_set(config);
    let mut conflicts = Vec::new();
    for ((other, other_status), owned) in managers.iter_mut() {
        if (other, other_status) == (&manager.0, &manager.1) {
            continue;
        }
        let contested: Vec<FieldPath> = owned
            .intersection(&new_owned)
            .filter(|p| is_value_path(p) && get(live, p) != get(config, p))
            .cloned()
            .collect();
        if contested.is_empty() {
            continue;
        }
        if force {
            for p in &contested {
                owned.remove(p);
            }
        } else {
            conflicts.extend(contested.iter().map(|p| (other.clone(), display(p))));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let others: FieldSet = managers
        .iter()
        .filter(|(k, _)| *k != manager)
        .flat_map(|(_, set)| set.iter().cloned())
        .collect();
    let previously = managers.get(manager).cloned().unwrap_or_default();
    let mut result = live.clone();
    // Fields this manager stopped sending disappear, unless someone else also owns them.
    for path in previously.difference(&new_owned) {
        if others.contains(path) {
            continue;
        }
        let is_entry = !is_value_path(path);
        let others_own_inside = others
            .iter()
            .any(|o| o.len() > path.len() && o.starts_with(path));
        if is_entry && others_own_inside {
            continue;
        }
        remove(&mut result, path);
    }
    merge(&mut result, config);
    managers.retain(|_, set| !set.is_empty());
    managers.insert(manager.clone(), new_owned);
    Ok(result)
}

/// Bookkeeping for a non-apply write (create, update, patch) by `manager`: the manager takes
/// ownership of every field it changed, and other managers lose those fields.
pub(crate) fn record_update(
    old: &Value,
    new: &Value,
    managers: &mut Managers,
    manager: &(String, bool),
) {
    let old_set = field_set(old);
    let new_set = field_set(new);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| {
            if is_value_path(p) {
                get(old, p) != get(new, p)
            } else {
                get(old, p).is_none()
            }
        })
        .chain(old_set.difference(&new_set))
        .cloned()
        .collect();
    if changed.is_empty() {
        return;
    }
    for (key, owned) in managers.iter_mut() {
        if key != manager {
            owned.retain(|p| !changed.contains(p));
        }
    }
    let mine = managers.entry(manager.clone()).or_default();
    mine.extend(changed.intersection(&new_set).cloned());
    mine.retain(|p| new_set.contains(p));
    managers.retain(|_, set| !set.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> (String, bool) {
        (name.to_owned(), true)
    }

    fn cond(t: &str, status: &str) -> Value {
        json!({"type": t, "status": status})
    }

    #[test]
    fn conditions_of_two_managers_both_survive() {
        let mut managers = Managers::new();
        let live = json!({});
        let a = json!({"status": {"conditions": [cond("A", "True")]}});
        let live = apply(&live, &a, &mut managers, &key("a"), false).unwrap();
        let b = json!({"status": {"conditions": [cond("B", "False")]}});
        let live = apply(&live, &b, &mut managers, &key("b"), false).unwrap();
        assert_eq!(
            live["status"]["conditions"],
            json!([cond("A", "True"), cond("B", "False")])
        );
    }

    #[test]
    fn reapplying_without_a_condition_removes_it_but_keeps_other_managers_conditions() {
        let mut managers = Managers::new();
        let a1 = json!({"status": {"conditions": [cond("A", "True"), cond("A2", "True")]}});
        let live = apply(&json!({}), &a1, &mut managers, &key("a"), false).unwrap();
        let b = json!({"status": {"conditions": [cond("B", "True")]}});
        let live = apply(&live, &b, &mut managers, &key("b"), false).unwrap();
        let a2 = json!({"status": {"conditions": [cond("A", "True")]}});
        let live = apply(&live, &a2, &mut managers, &key("a"), false).unwrap();
        assert_eq!(
            live["status"]["conditions"],
            json!([cond("A", "True"), cond("B", "True")])
        );
    }

    #[test]
    fn different_value_on_a_field_owned_by_another_manager_conflicts_unless_forced() {
        let mut managers = Managers::new();
        let live = apply(
            &json!({}),
            &json!({"spec": {"x": 1}}),
            &mut managers,
            &key("a"),
            false,
        )
        .unwrap();
        let err = apply(
            &live,
            &json!({"spec": {"x": 2}}),
            &mut managers,
            &key("b"),
            false,
        )
        .unwrap_err();
        assert_eq!(err, vec![("a".to_owned(), ".spec.x".to_owned())]);
        // The same value is shared ownership, not a conflict.
        apply(
            &live,
            &json!({"spec": {"x": 1}}),
            &mut managers,
            &key("c"),
            false,
        )
        .unwrap();
        let forced = apply(
            &live,
            &json!({"spec": {"x": 2}}),
            &mut managers,
            &key("b"),
            true,
        )
        .unwrap();
        assert_eq!(forced["spec"]["x"], 2);
        // Forcing took the field away from its previous owner ("a" owned nothing else).
        assert!(!managers.contains_key(&key("a")));
    }

    #[test]
    fn shared_field_survives_when_one_owner_stops_sending_it() {
        let mut managers = Managers::new();
        let cfg = json!({"metadata": {"labels": {"x": "1"}}});
        let live = apply(&json!({}), &cfg, &mut managers, &key("a"), false).unwrap();
        let live = apply(&live, &cfg, &mut managers, &key("b"), false).unwrap();
        let live = apply(&live, &json!({}), &mut managers, &key("a"), false).unwrap();
        assert_eq!(live["metadata"]["labels"]["x"], "1");
        let live = apply(&live, &json!({}), &mut managers, &key("b"), false).unwrap();
        assert!(live["metadata"]["labels"].get("x").is_none());
    }

    #[test]
    fn other_lists_are_atomic_and_finalizers_merge_as_a_set() {
        let mut managers = Managers::new();
        let live = json!({"spec": {"args": ["a", "b"]}, "metadata": {"finalizers": ["other"]}});
        let cfg = json!({"spec": {"args": ["c"]}, "metadata": {"finalizers": ["mine"]}});
        let out = apply(&live, &cfg, &mut managers, &key("m"), true).unwrap();
        assert_eq!(out["spec"]["args"], json!(["c"]));
        assert_eq!(out["metadata"]["finalizers"], json!(["other", "mine"]));
    }

    #[test]
    fn owner_references_merge_by_uid_and_containers_by_name() {
        let mut managers = Managers::new();
        let live = json!({
            "metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}]},
            "spec": {"containers": [{"name": "main", "image": "old", "args": ["x"]}]}
        });
        let cfg = json!({
            "metadata": {"ownerReferences": [{"uid": "u2", "name": "b"}]},
            "spec": {"containers": [{"name": "main", "image": "new"}, {"name": "side", "image": "s"}]}
        });
        let out = apply(&live, &cfg, &mut managers, &key("m"), true).unwrap();
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "u1", "name": "a"}, {"uid": "u2", "name": "b"}])
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "main", "image": "new", "args": ["x"]}, {"name": "side", "image": "s"}])
        );
    }

    #[test]
    fn update_takes_ownership_from_the_applier() {
        let mut managers = Managers::new();
        let live = apply(
            &json!({}),
            &json!({"data": {"k": "1"}}),
            &mut managers,
            &key("applier"),
            false,
        )
        .unwrap();
        let edited = json!({"data": {"k": "2"}});
        record_update(&live, &edited, &mut managers, &key("kubectl"));
        let err = apply(
            &edited,
            &json!({"data": {"k": "1"}}),
            &mut managers,
            &key("applier"),
            false,
        )
        .unwrap_err();
        assert_eq!(err[0].0, "kubectl");
    }
}
