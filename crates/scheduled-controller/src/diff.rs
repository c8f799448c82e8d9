//! Pure: does an observed object already hold everything we would apply?
//!
//! Server-side apply of identical content is a no-op on the apiserver, but it is still a request. Comparing
//! against the watch cache first makes a converged reconcile cost zero API writes. The apiserver adds defaults
//! (e.g. a container's `terminationMessagePath`), so "holds" means containment, not equality.

use serde_json::Value;

/// True when every field of `desired` is present in `observed` with the same value. Lists must have the
/// same length and contain element-wise (apiserver defaults never add list elements to what we send).
pub fn contains(observed: &Value, desired: &Value) -> bool {
    match (observed, desired) {
        (Value::Object(o), Value::Object(d)) => d.iter().all(|(key, dv)| match o.get(key) {
            Some(ov) => contains(ov, dv),
            // An empty map/list we send is equivalent to an absent one.
            None => is_empty(dv),
        }),
        (Value::Array(o), Value::Array(d)) => {
            o.len() == d.len() && o.iter().zip(d).all(|(ov, dv)| contains(ov, dv))
        }
        (o, d) => o == d,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apiserver_defaults_do_not_count_as_drift() {
        let desired = json!({"spec": {"containers": [{"name": "backup-maker", "image": "x"}]}});
        let observed = json!({"spec": {"containers": [{"name": "backup-maker", "image": "x", "terminationMessagePath": "/dev/termination-log"}], "dnsPolicy": "ClusterFirst"}});
        assert!(contains(&observed, &desired));
    }

    #[test]
    fn a_changed_or_missing_field_is_drift() {
        let desired = json!({"data": {"backup.sh": "echo new"}});
        assert!(!contains(
            &json!({"data": {"backup.sh": "echo old"}}),
            &desired
        ));
        assert!(!contains(&json!({"data": {}}), &desired));
        assert!(!contains(
            &json!({"data": {"backup.sh": "echo new"}, "x": 1}),
            &json!({"data": {"backup.sh": "echo new"}, "x": 2})
        ));
    }

    #[test]
    fn list_length_changes_are_drift() {
        let desired = json!({"env": [{"name": "A"}]});
        assert!(!contains(
            &json!({"env": [{"name": "A"}, {"name": "B"}]}),
            &desired
        ));
        assert!(contains(&json!({}), &json!({"env": []})));
    }
}
