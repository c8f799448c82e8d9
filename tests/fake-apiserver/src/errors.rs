//! Errors: the metav1 `Status` bodies the HTTP side answers with, and the crate's own error type
//! for the test-facing helpers.

use serde_json::{Value, json};

/// A failed API request, rendered as a real `metav1.Status` so `kube::Error::Api` parses it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        Self {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, kind: &str, name: &str) -> Self {
        self.details = Some(json!({"name": name, "kind": kind}));
        self
    }

    /// 404 for an object (`kind` is the plural, as the apiserver reports it).
    pub(crate) fn not_found(plural: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{plural} \"{name}\" not found"))
            .with_details(plural, name)
    }

    /// 404 for a URL that no registered resource serves.
    pub(crate) fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".to_owned(),
        )
    }

    /// 409 on create of an existing name.
    pub(crate) fn already_exists(plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{plural} \"{name}\" already exists"),
        )
        .with_details(plural, name)
    }

    /// 409 on a stale `resourceVersion` (optimistic concurrency).
    pub(crate) fn conflict(plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .with_details(plural, name)
    }

    /// 422 with explicit `details` (group/kind/causes as the apiserver reports them).
    pub(crate) fn invalid_with_details(message: String, details: Value) -> Self {
        let mut err = Self::new(422, "Invalid", message);
        err.details = Some(details);
        err
    }

    /// 504 `Timeout` with explicit `details`.
    pub(crate) fn timeout_with_details(message: String, details: Value) -> Self {
        let mut err = Self::new(504, "Timeout", message);
        err.details = Some(details);
        err
    }

    /// 409 for a failed DELETE precondition; the apiserver names the Kind here, not the plural.
    pub(crate) fn precondition_failed(kind: &str, name: &str, why: String) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {kind} \"{name}\": {why}"),
        )
        .with_details(kind, name)
    }

    /// 409 on a server-side apply that would take fields owned by other managers: one
    /// `(manager as described, field path)` per conflict. The message lists one conflict inline,
    /// several grouped by manager (sorted), as the apiserver's field manager does; the details
    /// carry only the causes (recordings c2, c3, e3).
    pub(crate) fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": field})
            })
            .collect();
        let message = match conflicts {
            [(manager, field)] => {
                format!("Apply failed with 1 conflict: conflict with {manager}: {field}")
            }
            _ => {
                let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> =
                    std::collections::BTreeMap::new();
                for (manager, field) in conflicts {
                    by_manager.entry(manager).or_default().push(field);
                }
                let mut lines = Vec::new();
                for (manager, fields) in by_manager {
                    lines.push(format!("conflicts with {manager}:"));
                    lines.extend(fields.iter().map(|f| format!("- {f}")));
                }
                format!(
                    "Apply failed with {} conflicts: {}",
                    conflicts.len(),
                    lines.join("\n")
                )
            }
        };
        let mut err = Self::new(409, "Conflict", message);
        err.details = Some(json!({"causes": causes}));
        err
    }

    /// 500 without a reason (the apiserver's answer to an apply body it cannot type, c5/e1).
    pub(crate) fn internal(message: String) -> Self {
        Self::new(500, "", message)
    }

    /// 410 for a watch or continue token older than the retained event log.
    pub(crate) fn expired(message: String) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 422 for a request the server understood but refuses.
    pub(crate) fn invalid(plural: &str, name: &str, message: String) -> Self {
        Self::new(422, "Invalid", message).with_details(plural, name)
    }

    /// 400 for a malformed request.
    pub(crate) fn bad_request(message: String) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 for a verb the path does not support.
    pub(crate) fn method_not_allowed(message: String) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415 for a PATCH content type the server does not know (recording c5: the generic
    /// message and empty details, whatever the content type).
    pub(crate) fn unsupported_media_type() -> Self {
        let mut err = Self::new(
            415,
            "UnsupportedMediaType",
            "415: Unsupported Media Type".to_owned(),
        );
        err.details = Some(json!({}));
        err
    }

    /// The `metav1.Status` JSON body.
    pub(crate) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty() {
            status.as_object_mut().map(|s| s.remove("reason"));
        }
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// Errors from the test-facing helpers (seeding objects, loading CRDs, waiting).
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// An object given to `insert` or `modify` names a type the server does not serve.
    #[error(
        "object type {api_version}/{kind} is not registered with the fake apiserver; add it with FakeApiServer::builder().resource(..)"
    )]
    UnknownType {
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's `kind`.
        kind: String,
    },
    /// A resource name passed to a helper (`plural` or `plural.group`) is unknown or ambiguous.
    #[error("resource {0:?} is not registered (or is ambiguous; use plural.group)")]
    UnknownResource(String),
    /// A seeded object lacks `metadata.name` or has a malformed shape.
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// A CRD document could not be parsed or lacks fields the fake needs.
    #[error(
        "invalid CustomResourceDefinition: {0}; check the YAML produced by `cargo xtask gen-crds`"
    )]
    InvalidCrd(String),
    /// The store rejected a helper write exactly as it would reject the API call.
    #[error("the fake apiserver rejected the write: {0}")]
    Rejected(String),
    /// `wait_for` ran out of time.
    #[error("condition not met within {0:?}")]
    Timeout(std::time::Duration),
    /// RBAC manifests given to `Rbac::from_manifests` could not be parsed.
    #[error("invalid RBAC manifests: {0}")]
    InvalidRbac(String),
    /// Serving over HTTP failed (binding, re-binding after an outage, building a client).
    #[error("serving the fake apiserver over HTTP failed: {0}")]
    Serve(String),
    /// A request of a [`crate::testing`] helper failed.
    #[error("request failed: {0}")]
    Client(#[from] kube::Error),
}

impl FakeError {
    /// Stable CamelCase label for the error kind.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownType { .. } => "UnknownType",
            Self::UnknownResource(_) => "UnknownResource",
            Self::InvalidObject(_) => "InvalidObject",
            Self::InvalidCrd(_) => "InvalidCrd",
            Self::Rejected(_) => "Rejected",
            Self::Timeout(_) => "Timeout",
            Self::InvalidRbac(_) => "InvalidRbac",
            Self::Serve(_) => "Serve",
            Self::Client(_) => "Client",
        }
    }
}

impl From<ApiError> for FakeError {
    fn from(err: ApiError) -> Self {
        Self::Rejected(format!("{} ({}): {}", err.reason, err.code, err.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_apply_conflicts_are_grouped_per_manager_and_one_is_inline() {
        let one = ApiError::apply_conflict(&[("\"c\" using v1".into(), ".data.k".into())]);
        assert_eq!(
            one.message,
            "Apply failed with 1 conflict: conflict with \"c\" using v1: .data.k"
        );
        let status = "\"a\" with subresource \"status\"";
        let many = ApiError::apply_conflict(&[
            (status.into(), ".status.x".into()),
            ("\"b\"".into(), ".status.z".into()),
            (status.into(), ".status.y".into()),
        ]);
        assert_eq!(
            many.message,
            "Apply failed with 3 conflicts: conflicts with \"a\" with subresource \"status\":\n- .status.x\n- .status.y\nconflicts with \"b\":\n- .status.z"
        );
        assert_eq!(
            many.details.unwrap()["causes"][1]["message"],
            "conflict with \"b\""
        );
    }

    #[test]
    fn status_body_parses_as_kube_status_with_reason_and_code() {
        let body = ApiError::already_exists("configmaps", "a").to_status();
        let status: kube::core::Status = serde_json::from_value(body).expect("Status");
        assert_eq!(status.code, 409);
        assert_eq!(status.reason, "AlreadyExists");
        assert!(status.is_already_exists());
    }
}
