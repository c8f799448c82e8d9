//! Built-in types: what kube-apiserver 1.36 does to a Job, CronJob, Pod, Secret, Event or
//! Namespace on every write (defaulting, admission defaults, validation), as recorded in
//! `k8s-api/recordings` (a1, a2, a4, b1-b7, d1-d3, h1). The store calls [`admit`] once per write
//! with the candidate object, after the status/spec split and before the no-op comparison.
//! Writes from test helpers (`insert`, `modify`) are defaulted but not validated.

pub(crate) mod batch;
mod cron;
mod events;
pub(crate) mod field;
mod names;
mod pod;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::ResourceInfo;
use crate::errors::ApiError;
use crate::store::Target;
use field::FieldError;

/// One write as the admission chain sees it.
pub(crate) struct Write<'a> {
    pub(crate) res: &'a ResourceInfo,
    pub(crate) name: &'a str,
    /// Empty for cluster-scoped types.
    pub(crate) namespace: &'a str,
    /// Set on create (the selector of a new Job is generated from it).
    pub(crate) uid: &'a str,
    /// The stored object; `None` on create.
    pub(crate) old: Option<&'a Value>,
    pub(crate) target: Target,
    /// `false` for test-helper writes (`insert`, `modify`): defaults only.
    pub(crate) validate: bool,
    /// Create of a seeded object whose `.status` is kept (`insert`).
    pub(crate) keep_status: bool,
}

impl Write<'_> {
    fn kind(&self) -> (&str, &str) {
        (self.res.group.as_str(), self.res.plural.as_str())
    }

    fn reject(&self, errors: Vec<FieldError>) -> Result<(), ApiError> {
        self.reject_as(&self.res.group, errors)
    }

    /// Errors named after the internal type's group (both Event APIs validate core Events).
    fn reject_as(&self, group: &str, errors: Vec<FieldError>) -> Result<(), ApiError> {
        if !self.validate || errors.is_empty() {
            return Ok(());
        }
        Err(field::invalid(group, &self.res.kind, self.name, &errors))
    }
}

/// Defaults and validates one write of a built-in type; other types pass through.
pub(crate) fn admit(w: &Write<'_>, obj: &mut Value) -> Result<(), ApiError> {
    match w.kind() {
        ("", "secrets") => admit_secret(w, obj),
        ("", "pods") => {
            if w.old.is_none() {
                pod::admit_new_pod(obj, w.keep_status);
            } else if obj["spec"].is_object() {
                pod::default_pod_spec(&mut obj["spec"], true);
            }
            pod::default_pod_status(obj);
            Ok(())
        }
        ("batch", "jobs") => {
            let create = w.old.is_none().then_some((w.name, w.uid));
            batch::default_job(obj, create);
            match (w.target, w.old) {
                (Target::Status, Some(old)) => {
                    w.reject(batch::validate_job_status_update(obj, old))
                }
                _ => w.reject(batch::validate_job(obj)),
            }
        }
        ("batch", "cronjobs") => {
            batch::default_cronjob(obj);
            if w.target == Target::Status {
                return Ok(());
            }
            w.reject(batch::validate_cronjob(obj, w.old))
        }
        (group @ ("" | "events.k8s.io"), "events") => {
            let events_api = !group.is_empty();
            events::default_event(obj, events_api);
            // Validation reads the namespace the object is about to be stored in.
            obj["metadata"]["namespace"] = json!(w.namespace);
            w.reject_as("", events::validate(obj, w.old, events_api))
        }
        ("", "namespaces") => {
            admit_namespace(w, obj);
            if w.old.is_some() {
                return Ok(());
            }
            let errors = names::dns1123_label(w.name)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.name", json!(w.name), &m))
                .collect();
            w.reject(errors)
        }
        _ => Ok(()),
    }
}

/// Secrets: `type` defaults to `Opaque`; `data` must be base64 (decoding fails with 400).
fn admit_secret(w: &Write<'_>, obj: &mut Value) -> Result<(), ApiError> {
    if let Some(m) = obj.as_object_mut()
        && m.get("type").is_none_or(|t| t.is_null() || t == "")
    {
        m.insert("type".into(), json!("Opaque"));
    }
    if !w.validate {
        return Ok(());
    }
    for value in obj["data"].as_object().into_iter().flat_map(|d| d.values()) {
        let text = value.as_str().unwrap_or_default();
        if let Some(offset) = base64_error_offset(text) {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte {offset}"
            )));
        }
    }
    Ok(())
}

/// Where Go's `base64.StdEncoding` reports a `CorruptInputError`, or `None` if `s` decodes.
fn base64_error_offset(s: &str) -> Option<usize> {
    if base64::engine::general_purpose::STANDARD
        .decode(s.replace(['\r', '\n'], ""))
        .is_ok()
    {
        return None;
    }
    let src = s.as_bytes();
    let is_newline = |c: u8| c == b'\n' || c == b'\r';
    let alphabet = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let mut si = 0;
    loop {
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                return (j != 0).then_some(si - j);
            }
            let c = src[si];
            si += 1;
            if is_newline(c) {
                continue;
            }
            if alphabet(c) {
                j += 1;
                continue;
            }
            if c != b'=' || j < 2 {
                return Some(si - 1);
            }
            if j == 2 {
                while si < src.len() && is_newline(src[si]) {
                    si += 1;
                }
                if si == src.len() {
                    return Some(src.len());
                }
                if src[si] != b'=' {
                    return Some(si - 1);
                }
                si += 1;
            }
            while si < src.len() && is_newline(src[si]) {
                si += 1;
            }
            return (si < src.len()).then_some(si);
        }
    }
}

/// Namespace defaults: the `kubernetes.io/metadata.name` label (always set to the name), the
/// `kubernetes` finalizer and phase `Active` on create.
fn admit_namespace(w: &Write<'_>, obj: &mut Value) {
    if !obj["metadata"]["labels"].is_object() {
        obj["metadata"]["labels"] = json!({});
    }
    obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(w.name);
    if w.old.is_none() {
        if !obj["spec"]["finalizers"].is_array() {
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
        }
        if !obj["status"]["phase"].is_string() {
            obj["status"]["phase"] = json!("Active");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_errors_report_go_offsets() {
        assert_eq!(base64_error_offset("ZnJvbS1kYXRh"), None);
        assert_eq!(base64_error_offset("not base64!"), Some(3));
        assert_eq!(base64_error_offset("abc"), Some(0));
        assert_eq!(base64_error_offset("abcde"), Some(4));
        assert_eq!(base64_error_offset("YQ=x"), Some(2));
        assert_eq!(base64_error_offset("YQ==YQ=="), Some(4));
    }
}
