//! PATCH bodies other than server-side apply: JSON patch, merge patch, strategic merge patch.

use json_patch::{Patch, PatchOperation};
use serde_json::Value;

/// The PATCH flavours, chosen by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`; modelled as a merge patch (see README).
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

/// Applies an RFC 6902 patch to `doc`.
///
/// Like the real apiserver (which evaluates `test` against an object whose absent fields read as
/// `null`), a `test` of value `null` on a missing path succeeds. `kube::runtime::finalizer` relies
/// on this to add the first finalizer (`test /metadata/finalizers == null`, then `add`).
pub(crate) fn json_patch(doc: &mut Value, body: &[u8]) -> Result<(), String> {
    let patch: Patch =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON patch: {e}"))?;
    for op in &patch.0 {
        if let PatchOperation::Test(test) = op
            && test.value.is_null()
            && doc.pointer(test.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(doc, std::slice::from_ref(op)).map_err(|e| e.to_string())?;
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
