//! Server-side apply: field ownership per manager, list merging by key, conflicts.
//!
//! A field path is a list of steps: a map key, a list-map entry identified by its key values
//! (`conditions[type="Ready"]`, `ports[containerPort=80,protocol="TCP"]`), or a set member
//! (`finalizers[="x"]`). Every manager owns a set of paths. This is a simplified model of
//! structured-merge-diff: which lists are maps (and by which keys) or sets comes from the type's
//! schema ([`crate::openapi`]: the recorded OpenAPI documents, or the CRD's schema); lists of an
//! unknown type are atomic.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::openapi::{ListType, Schema};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Step {
    /// A key of a JSON object.
    Field(String),
    /// A list-map entry: its key fields' names and values (JSON-encoded), in schema order.
    Key(Vec<(String, String)>),
    /// A set-list member (JSON-encoded).
    Member(String),
}

/// A path from the object root.
pub(crate) type FieldPath = Vec<Step>;
/// The paths one manager owns.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// How a manager last wrote its fields (`managedFields[].operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or a non-apply patch.
    Update,
}

/// One `managedFields` entry's identity: the apiserver keeps separate entries per manager name,
/// operation, subresource and (for updates) API version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Manager {
    pub(crate) name: String,
    pub(crate) operation: Operation,
    /// Written through the `status` subresource.
    pub(crate) status: bool,
    pub(crate) api_version: String,
}

impl Manager {
    /// An applier.
    pub(crate) fn apply(name: &str, status: bool, api_version: &str) -> Self {
        Self {
            name: name.to_owned(),
            operation: Operation::Apply,
            status,
            api_version: api_version.to_owned(),
        }
    }

    /// A writer by create/update/patch.
    pub(crate) fn update(name: &str, status: bool, api_version: &str) -> Self {
        Self {
            operation: Operation::Update,
            ..Self::apply(name, status, api_version)
        }
    }

    /// As the apiserver names a manager in conflict messages: `"c" using v1` for an update,
    /// `"x" with subresource "status"` for the status subresource (recordings c3, c5, e3).
    pub(crate) fn describe(&self) -> String {
        let mut s = format!("{:?}", self.name);
        if self.status {
            s.push_str(" with subresource \"status\"");
        }
        if self.operation == Operation::Update {
            s.push_str(" using ");
            s.push_str(&self.api_version);
        }
        s
    }
}

/// Who owns what.
pub(crate) type Managers = BTreeMap<Manager, FieldSet>;

/// A conflict: the other manager (as described in messages) and the field path.
pub(crate) type Conflict = (String, String);

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

fn child<'a>(schema: Option<Schema<'a>>, field: &str) -> Option<Schema<'a>> {
    schema.and_then(|s| s.property(field))
}

fn items<'a>(schema: Option<Schema<'a>>) -> Option<Schema<'a>> {
    schema.and_then(|s| s.items())
}

fn list_type(schema: Option<Schema<'_>>) -> ListType {
    schema.map_or(ListType::Atomic, |s| s.list_type())
}

/// The key of a list-map item. A key field the item leaves out takes its schema default (a
/// container port without `protocol` is keyed `protocol="TCP"`, as the apiserver records it);
/// `None` if the item is not an object or has none of the key fields.
fn item_key(
    item: &Value,
    keys: &[String],
    item_schema: Option<Schema<'_>>,
) -> Option<Vec<(String, String)>> {
    let obj = item.as_object()?;
    let key: Vec<(String, String)> = keys
        .iter()
        .filter_map(|k| {
            obj.get(k)
                .or_else(|| child(item_schema, k).and_then(|s| s.default_value()))
                .map(|v| (k.clone(), encode(v)))
        })
        .collect();
    (!key.is_empty()).then_some(key)
}

/// Whether `item` is the list-map entry `key` (a key field the item lacks is not compared).
fn matches_key(item: &Value, key: &[(String, String)]) -> bool {
    item.is_object()
        && key
            .iter()
            .all(|(k, v)| item.get(k).is_none_or(|present| encode(present) == *v))
}

/// The path element of every item of a list, if the list is a map or a set whose items all
/// have one (otherwise the list is treated as atomic).
fn path_elements(
    items_: &[Value],
    lt: &ListType,
    item_schema: Option<Schema<'_>>,
) -> Option<Vec<Step>> {
    match lt {
        ListType::Map(keys) => items_
            .iter()
            .map(|i| item_key(i, keys, item_schema).map(Step::Key))
            .collect(),
        ListType::Set => Some(items_.iter().map(|i| Step::Member(encode(i))).collect()),
        ListType::Atomic => None,
    }
}

/// The paths a configuration sets. `null` values are not owned (they mean "unset").
pub(crate) fn field_set(config: &Value, schema: Option<Schema<'_>>) -> FieldSet {
    let mut out = FieldSet::new();
    collect(config, schema, &mut Vec::new(), &mut out);
    out
}

fn collect(value: &Value, schema: Option<Schema<'_>>, path: &mut FieldPath, out: &mut FieldSet) {
    match value {
        Value::Null => {}
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(Step::Field(k.clone()));
                if !is_untracked(path) {
                    collect(v, child(schema, k), path, out);
                }
                path.pop();
            }
        }
        Value::Array(list) if !list.is_empty() => {
            let lt = list_type(schema);
            let item_schema = items(schema);
            match path_elements(list, &lt, item_schema) {
                Some(pes) => {
                    for (item, pe) in list.iter().zip(pes) {
                        let is_member = matches!(pe, Step::Member(_));
                        path.push(pe);
                        out.insert(path.clone());
                        if !is_member {
                            collect(item, item_schema, path, out);
                        }
                        path.pop();
                    }
                }
                None => {
                    out.insert(path.clone());
                }
            }
        }
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
            Step::Key(key) => cur.as_array()?.iter().find(|item| matches_key(item, key))?,
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
            Step::Key(key) => cur
                .as_array_mut()
                .and_then(|list| list.iter_mut().find(|item| matches_key(item, key))),
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
        Step::Key(key) => {
            if let Some(list) = cur.as_array_mut() {
                list.retain(|item| !matches_key(item, key));
            }
        }
        Step::Member(m) => {
            if let Some(list) = cur.as_array_mut() {
                list.retain(|item| encode(item) != *m);
            }
        }
    }
}

/// Merges an applied configuration into the live object: maps merge by key, list-maps by their
/// key fields, sets by value; everything else is replaced.
pub(crate) fn merge(live: &mut Value, config: &Value, schema: Option<Schema<'_>>) {
    merge_at(live, config, schema, &mut Vec::new());
}

fn merge_at(live: &mut Value, config: &Value, schema: Option<Schema<'_>>, path: &mut FieldPath) {
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
                    merge_at(slot, v, child(schema, k), path);
                }
                path.pop();
            }
        }
        Value::Array(cfg_items) => {
            let lt = list_type(schema);
            let item_schema = items(schema);
            let merged = live.as_array().and_then(|live_items| {
                let lhs = path_elements(live_items, &lt, item_schema)?;
                let rhs = path_elements(cfg_items, &lt, item_schema)?;
                Some(merge_list(
                    live_items,
                    &lhs,
                    cfg_items,
                    &rhs,
                    item_schema,
                    path,
                ))
            });
            *live = Value::Array(merged.unwrap_or_else(|| cfg_items.clone()));
        }
        _ => *live = config.clone(),
    }
}

/// structured-merge-diff's list merge (`visitListItems`): items only in the live list keep their
/// place, items in both are merged, and items of the configuration appear in its order (so
/// applying re-ordered list-map items stores the new order, recording c1).
fn merge_list(
    lhs: &[Value],
    lhs_pe: &[Step],
    rhs: &[Value],
    rhs_pe: &[Step],
    item_schema: Option<Schema<'_>>,
    path: &mut FieldPath,
) -> Vec<Value> {
    let in_lhs = |pe: &Step| lhs_pe.iter().position(|p| p == pe);
    let in_rhs = |pe: &Step| rhs_pe.iter().position(|p| p == pe);
    let mut shared = rhs_pe.iter().filter(|pe| in_lhs(pe).is_some());
    let mut next_shared = shared.next();
    let mut merged_rhs: Vec<&Step> = Vec::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let mut merge_item = |pe: &Step, l: Option<&Value>, r: &Value, out: &mut Vec<Value>| {
        let mut item = l.cloned().unwrap_or(Value::Null);
        path.push(pe.clone());
        if matches!(pe, Step::Member(_)) {
            item = r.clone();
        } else {
            merge_at(&mut item, r, item_schema, path);
        }
        path.pop();
        out.push(item);
    };
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = &lhs_pe[li];
            if *pe == rhs_pe[ri] {
                merged_rhs.push(pe);
                merge_item(pe, Some(&lhs[li]), &rhs[ri], &mut out);
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_rhs(pe).is_some() && next_shared.is_some_and(|n| n != pe) {
                // A shared item, but not the one due in this round.
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let pe = &lhs_pe[li];
            if in_rhs(pe).is_none() {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            }
            if merged_rhs.contains(&pe) {
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let pe = &rhs_pe[ri];
            merged_rhs.push(pe);
            let l = in_lhs(pe).map(|i| &lhs[i]);
            merge_item(pe, l, &rhs[ri], &mut out);
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.next();
            }
        }
    }
    out
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
            Step::Key(key) => {
                let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
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
    manager: &Manager,
    force: bool,
    schema: Option<Schema<'_>>,
) -> Result<Value, Vec<Conflict>> {
    let new_owned = field_set(config, schema);
    let mut conflicts = Vec::new();
    for (other, owned) in managers.iter_mut() {
        if other == manager {
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
            conflicts.extend(contested.iter().map(|p| (other.describe(), display(p))));
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
    merge(&mut result, config, schema);
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
    manager: &Manager,
    schema: Option<Schema<'_>>,
) {
    let old_set = field_set(old, schema);
    let new_set = field_set(new, schema);
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

    fn key(name: &str) -> Manager {
        Manager::apply(name, true, "batch/v1")
    }

    /// The recorded Job schema: finalizers a set, ownerReferences keyed by uid, containers by
    /// name, volumeMounts by mountPath, args and status conditions atomic.
    fn job() -> Option<Schema<'static>> {
        crate::openapi::builtin("batch", "v1", "Job")
    }

    /// The recorded ScheduledBackup schema: status conditions keyed by type.
    fn scheduled_backup() -> Option<Schema<'static>> {
        crate::openapi::builtin("riotkit.org", "v1alpha1", "ScheduledBackup")
    }

    fn cond(t: &str, status: &str) -> Value {
        json!({"type": t, "status": status})
    }

    #[test]
    fn conditions_of_two_managers_both_survive() {
        let job = scheduled_backup;
        let mut managers = Managers::new();
        let live = json!({});
        let a = json!({"status": {"conditions": [cond("A", "True")]}});
        let live = apply(&live, &a, &mut managers, &key("a"), false, job()).unwrap();
        let b = json!({"status": {"conditions": [cond("B", "False")]}});
        let live = apply(&live, &b, &mut managers, &key("b"), false, job()).unwrap();
        assert_eq!(
            live["status"]["conditions"],
            json!([cond("A", "True"), cond("B", "False")])
        );
    }

    #[test]
    fn reapplying_without_a_condition_removes_it_but_keeps_other_managers_conditions() {
        let job = scheduled_backup;
        let mut managers = Managers::new();
        let a1 = json!({"status": {"conditions": [cond("A", "True"), cond("A2", "True")]}});
        let live = apply(&json!({}), &a1, &mut managers, &key("a"), false, job()).unwrap();
        let b = json!({"status": {"conditions": [cond("B", "True")]}});
        let live = apply(&live, &b, &mut managers, &key("b"), false, job()).unwrap();
        let a2 = json!({"status": {"conditions": [cond("A", "True")]}});
        let live = apply(&live, &a2, &mut managers, &key("a"), false, job()).unwrap();
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
            job(),
        )
        .unwrap();
        let err = apply(
            &live,
            &json!({"spec": {"x": 2}}),
            &mut managers,
            &key("b"),
            false,
            job(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![(
                "\"a\" with subresource \"status\"".to_owned(),
                ".spec.x".to_owned()
            )]
        );
        // The same value is shared ownership, not a conflict.
        apply(
            &live,
            &json!({"spec": {"x": 1}}),
            &mut managers,
            &key("c"),
            false,
            job(),
        )
        .unwrap();
        let forced = apply(
            &live,
            &json!({"spec": {"x": 2}}),
            &mut managers,
            &key("b"),
            true,
            job(),
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
        let live = apply(&json!({}), &cfg, &mut managers, &key("a"), false, job()).unwrap();
        let live = apply(&live, &cfg, &mut managers, &key("b"), false, job()).unwrap();
        let live = apply(&live, &json!({}), &mut managers, &key("a"), false, job()).unwrap();
        assert_eq!(live["metadata"]["labels"]["x"], "1");
        let live = apply(&live, &json!({}), &mut managers, &key("b"), false, job()).unwrap();
        assert!(live["metadata"]["labels"].get("x").is_none());
    }

    #[test]
    fn other_lists_are_atomic_and_finalizers_merge_as_a_set() {
        let mut managers = Managers::new();
        let live = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["a", "b"]}]}}},
                          "metadata": {"finalizers": ["other"]}});
        let cfg = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["c"]}]}}},
                         "metadata": {"finalizers": ["mine"]}});
        let out = apply(&live, &cfg, &mut managers, &key("m"), true, job()).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["c"])
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["other", "mine"]));
    }

    #[test]
    fn owner_references_merge_by_uid_and_containers_by_name() {
        let mut managers = Managers::new();
        let live = json!({
            "metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}]},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "old", "args": ["x"]}]}}}
        });
        let cfg = json!({
            "metadata": {"ownerReferences": [{"uid": "u2", "name": "b"}]},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "new"}, {"name": "side", "image": "s"}]}}}
        });
        let out = apply(&live, &cfg, &mut managers, &key("m"), true, job()).unwrap();
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "u1", "name": "a"}, {"uid": "u2", "name": "b"}])
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "main", "image": "new", "args": ["x"]}, {"name": "side", "image": "s"}])
        );
    }

    fn mounts(list: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "volumeMounts": list}]}}}})
    }

    fn mounts_of(obj: &Value) -> &Value {
        &obj["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }

    #[test]
    fn reapplying_volume_mounts_in_another_order_stores_the_applied_order() {
        let mut managers = Managers::new();
        let a = json!({"name": "v1", "mountPath": "/a"});
        let b = json!({"name": "v2", "mountPath": "/b"});
        let live = apply(
            &json!({}),
            &mounts(json!([a, b])),
            &mut managers,
            &key("m"),
            false,
            job(),
        )
        .unwrap();
        let live = apply(
            &live,
            &mounts(json!([b, a])),
            &mut managers,
            &key("m"),
            false,
            job(),
        )
        .unwrap();
        assert_eq!(mounts_of(&live), &json!([b, a]));
    }

    #[test]
    fn a_second_manager_adds_a_volume_mount_keyed_by_mount_path() {
        let mut managers = Managers::new();
        // Same volume name, different mountPath: two entries (keyed by mountPath, not name).
        let first = json!({"name": "data", "mountPath": "/a"});
        let second = json!({"name": "data", "mountPath": "/b"});
        let live = apply(
            &json!({}),
            &mounts(json!([first])),
            &mut managers,
            &key("a"),
            false,
            job(),
        )
        .unwrap();
        let live = apply(
            &live,
            &mounts(json!([second])),
            &mut managers,
            &key("b"),
            false,
            job(),
        )
        .unwrap();
        assert_eq!(mounts_of(&live), &json!([first, second]));
        // "a" drops its mount; "b"'s stays.
        let live = apply(
            &live,
            &mounts(json!([])),
            &mut managers,
            &key("a"),
            false,
            job(),
        )
        .unwrap();
        assert_eq!(mounts_of(&live), &json!([second]));
    }

    #[test]
    fn ports_are_keyed_by_container_port_and_defaulted_protocol() {
        let mut managers = Managers::new();
        let ports = |p: Value| json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "ports": p}]}}}});
        let live = apply(
            &json!({}),
            &ports(json!([{"containerPort": 80, "name": "a"}])),
            &mut managers,
            &key("a"),
            false,
            job(),
        )
        .unwrap();
        let err = apply(
            &live,
            &ports(json!([{"containerPort": 80, "protocol": "TCP", "name": "b"}])),
            &mut managers,
            &key("b"),
            false,
            job(),
        )
        .unwrap_err();
        assert_eq!(
            err[0].1,
            ".spec.template.spec.containers[name=\"main\"].ports[containerPort=80,protocol=\"TCP\"].name"
        );
    }

    #[test]
    fn lists_of_a_type_without_schema_are_atomic() {
        let mut managers = Managers::new();
        let live = json!({"status": {"conditions": [cond("A", "True")]}});
        let cfg = json!({"status": {"conditions": [cond("B", "True")]}});
        let out = apply(&live, &cfg, &mut managers, &key("m"), false, None).unwrap();
        assert_eq!(out["status"]["conditions"], json!([cond("B", "True")]));
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
            job(),
        )
        .unwrap();
        let edited = json!({"data": {"k": "2"}});
        record_update(
            &live,
            &edited,
            &mut managers,
            &Manager::update("kubectl", false, "v1"),
            job(),
        );
        let err = apply(
            &edited,
            &json!({"data": {"k": "1"}}),
            &mut managers,
            &key("applier"),
            false,
            job(),
        )
        .unwrap_err();
        assert_eq!(err[0].0, "\"kubectl\" using v1");
    }
}
