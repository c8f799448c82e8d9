//! Event validation (`pkg/apis/core/validation/events.go` of kube-apiserver 1.36; recordings
//! d1-d3). Both APIs store the same internal Event, so errors name the core v1 fields
//! (`message`, `involvedObject.namespace`) even for `events.k8s.io/v1` requests. The
//! `events.k8s.io/v1` API additionally gets the strict create/update rules.

use serde_json::{Value, json};

use super::field::FieldError;
use super::names;

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

/// The internal Event's fields, read from either API version.
struct Internal<'a> {
    namespace: &'a str,
    involved_namespace: &'a str,
    event_time: &'a Value,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    action: &'a str,
    reason: &'a str,
    message: &'a str,
    series: &'a Value,
    type_: &'a str,
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

impl<'a> Internal<'a> {
    fn read(ev: &'a Value, v1beta: bool) -> Self {
        let (involved, controller, message) = if v1beta {
            ("regarding", "reportingController", "note")
        } else {
            ("involvedObject", "reportingComponent", "message")
        };
        Self {
            namespace: s(&ev["metadata"]["namespace"]),
            involved_namespace: s(&ev[involved]["namespace"]),
            event_time: &ev["eventTime"],
            reporting_controller: s(&ev[controller]),
            reporting_instance: s(&ev["reportingInstance"]),
            action: s(&ev["action"]),
            reason: s(&ev["reason"]),
            message: s(&ev[message]),
            series: &ev["series"],
            type_: s(&ev["type"]),
        }
    }

    fn has_event_time(&self) -> bool {
        !self.event_time.is_null()
    }
}

/// `legacyValidateEvent`, applied to every Event write through either API.
fn legacy(ev: &Internal<'_>) -> Vec<FieldError> {
    let mut e = Vec::new();
    let mismatch = |e: &mut Vec<FieldError>| {
        e.push(FieldError::invalid(
            "involvedObject.namespace",
            json!(ev.involved_namespace),
            "does not match event.namespace",
        ));
    };
    if !ev.has_event_time() {
        if ev.involved_namespace.is_empty() {
            if !ev.namespace.is_empty() && ev.namespace != "default" {
                mismatch(&mut e);
            }
        } else if ev.namespace != ev.involved_namespace {
            mismatch(&mut e);
        }
    } else {
        if ev.involved_namespace.is_empty()
            && ev.namespace != "default"
            && ev.namespace != "kube-system"
        {
            mismatch(&mut e);
        }
        if ev.reporting_controller.is_empty() {
            e.push(FieldError::required("reportingController", ""));
        }
        for msg in names::qualified_name(ev.reporting_controller) {
            e.push(FieldError::invalid(
                "reportingController",
                json!(ev.reporting_controller),
                &msg,
            ));
        }
        let limits = [
            (
                "reportingInstance",
                ev.reporting_instance,
                REPORTING_INSTANCE_LIMIT,
            ),
            ("action", ev.action, ACTION_LIMIT),
            ("reason", ev.reason, REASON_LIMIT),
        ];
        for (field, value, limit) in limits {
            if value.is_empty() {
                e.push(FieldError::required(field, ""));
            }
            if value.len() > limit {
                e.push(FieldError::invalid(
                    field,
                    json!(""),
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
        // Go's len(): bytes, not characters.
        if ev.message.len() > NOTE_LIMIT {
            e.push(FieldError::invalid(
                "message",
                json!(""),
                &format!("can have at most {NOTE_LIMIT} characters"),
            ));
        }
    }
    for msg in names::dns1123_subdomain(ev.namespace) {
        e.push(FieldError::invalid("namespace", json!(ev.namespace), &msg));
    }
    e
}

fn series(ev: &Internal<'_>) -> Vec<FieldError> {
    let mut e = Vec::new();
    if ev.series.is_object() {
        if ev.series["count"].as_i64().unwrap_or(0) < 2 {
            e.push(FieldError::invalid(
                "series.count",
                json!(""),
                "should be at least 2",
            ));
        }
        if ev.series["lastObservedTime"].is_null() {
            e.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    e
}

/// Validation of a write to an Event. `v1beta` is the `events.k8s.io/v1` API; `old` is the
/// stored Event on update.
pub(crate) fn validate(new: &Value, old: Option<&Value>, events_api: bool) -> Vec<FieldError> {
    let ev = Internal::read(new, events_api);
    let mut e = legacy(&ev);
    if !events_api {
        return e;
    }
    match old {
        None => {
            e.extend(series(&ev));
            if !ev.has_event_time() {
                e.push(FieldError::required("eventTime", ""));
            }
            if ev.type_ != "Normal" && ev.type_ != "Warning" {
                e.push(FieldError::invalid(
                    "type",
                    json!(""),
                    &format!("has invalid value: {}", ev.type_),
                ));
            }
            for (field, core) in [
                ("deprecatedFirstTimestamp", "firstTimestamp"),
                ("deprecatedLastTimestamp", "lastTimestamp"),
            ] {
                if !new[field].is_null() {
                    e.push(FieldError::invalid(core, json!(""), "needs to be unset"));
                }
            }
            if new["deprecatedCount"].as_i64().unwrap_or(0) != 0 {
                e.push(FieldError::invalid("count", json!(""), "needs to be unset"));
            }
            let source = &new["deprecatedSource"];
            if !s(&source["component"]).is_empty() || !s(&source["host"]).is_empty() {
                e.push(FieldError::invalid(
                    "source",
                    json!(""),
                    "needs to be unset",
                ));
            }
        }
        Some(old) => {
            let before = Internal::read(old, true);
            if new["series"] != old["series"] {
                e.extend(series(&ev));
            }
            let immutable = |e: &mut Vec<FieldError>, field: &str, new_v: &Value, old_v: &Value| {
                if new_v != old_v {
                    e.push(FieldError::invalid(
                        field,
                        new_v.clone(),
                        "field is immutable",
                    ));
                }
            };
            let text = |v: &str| json!(v);
            immutable(
                &mut e,
                "involvedObject",
                &new["regarding"],
                &old["regarding"],
            );
            immutable(&mut e, "reason", &text(ev.reason), &text(before.reason));
            immutable(&mut e, "message", &text(ev.message), &text(before.message));
            immutable(
                &mut e,
                "source",
                &new["deprecatedSource"],
                &old["deprecatedSource"],
            );
            immutable(
                &mut e,
                "firstTimestamp",
                &new["deprecatedFirstTimestamp"],
                &old["deprecatedFirstTimestamp"],
            );
            immutable(
                &mut e,
                "lastTimestamp",
                &new["deprecatedLastTimestamp"],
                &old["deprecatedLastTimestamp"],
            );
            immutable(
                &mut e,
                "count",
                &new["deprecatedCount"],
                &old["deprecatedCount"],
            );
            // The apiserver checks `reason` twice, so its cause appears twice.
            immutable(&mut e, "reason", &text(ev.reason), &text(before.reason));
            immutable(&mut e, "type", &text(ev.type_), &text(before.type_));
            immutable(&mut e, "eventTime", ev.event_time, before.event_time);
            immutable(&mut e, "action", &text(ev.action), &text(before.action));
            immutable(&mut e, "related", &new["related"], &old["related"]);
            immutable(
                &mut e,
                "reportingController",
                &text(ev.reporting_controller),
                &text(before.reporting_controller),
            );
            immutable(
                &mut e,
                "reportingInstance",
                &text(ev.reporting_instance),
                &text(before.reporting_instance),
            );
        }
    }
    e
}

/// What the apiserver's encoding adds to every `events.k8s.io/v1` Event it returns (the
/// deprecated core fields are structs and timestamps without `omitempty`), and the core
/// v1 equivalent.
pub(crate) fn default_event(ev: &mut Value, events_api: bool) {
    let Some(m) = ev.as_object_mut() else { return };
    let fields: [(&str, Value); 3] = if events_api {
        [
            ("deprecatedSource", json!({})),
            ("deprecatedFirstTimestamp", Value::Null),
            ("deprecatedLastTimestamp", Value::Null),
        ]
    } else {
        [
            ("source", json!({})),
            ("firstTimestamp", Value::Null),
            ("lastTimestamp", Value::Null),
        ]
    };
    for (k, v) in fields {
        m.entry(k).or_insert(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Value {
        json!({"metadata": {"name": "e", "namespace": "ns"}, "eventTime": "2026-01-01T00:00:00.000000Z",
               "reportingController": "example.com/c", "reportingInstance": "i", "action": "A",
               "reason": "R", "note": "n", "type": "Normal",
               "regarding": {"kind": "ConfigMap", "name": "x", "namespace": "ns"}})
    }

    #[test]
    fn a_complete_event_is_valid_and_a_note_over_1024_bytes_is_not() {
        assert!(validate(&event(), None, true).is_empty());
        let mut long = event();
        long["note"] = json!("é".repeat(513));
        let errs = validate(&long, None, true);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "message");
    }

    #[test]
    fn regarding_in_another_namespace_is_accepted_when_event_time_is_set() {
        // legacyValidateEvent compares namespaces only when regarding.namespace is empty.
        let mut ev = event();
        ev["regarding"]["namespace"] = json!("elsewhere");
        assert!(validate(&ev, None, true).is_empty());
    }
}
