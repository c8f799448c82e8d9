//! Field errors rendered the way `k8s.io/apimachinery/pkg/util/validation/field` renders them,
//! and the `422 Invalid` / `403 Forbidden` Status bodies built from them.

use serde_json::{Value, json};

use crate::errors::ApiError;

/// The error types the built-in validators use (`field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Required,
    Invalid,
    NotSupported,
}

impl Kind {
    fn title(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
        }
    }
}

/// One `field.Error`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldError {
    pub(crate) kind: Kind,
    pub(crate) field: String,
    /// The bad value as JSON; `None` is Go's `field.OmitValueType{}` (no value printed).
    pub(crate) value: Option<Value>,
    pub(crate) detail: String,
}

impl FieldError {
    pub(crate) fn required(field: &str, detail: &str) -> Self {
        Self {
            kind: Kind::Required,
            field: field.to_owned(),
            value: None,
            detail: detail.to_owned(),
        }
    }

    pub(crate) fn invalid(field: &str, value: Value, detail: &str) -> Self {
        Self {
            kind: Kind::Invalid,
            field: field.to_owned(),
            value: Some(value),
            detail: detail.to_owned(),
        }
    }

    /// `field.Invalid(path, field.OmitValueType{}, detail)`.
    pub(crate) fn invalid_no_value(field: &str, detail: &str) -> Self {
        Self {
            kind: Kind::Invalid,
            field: field.to_owned(),
            value: None,
            detail: detail.to_owned(),
        }
    }

    pub(crate) fn not_supported(field: &str, value: Value, supported: &[&str]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self {
            kind: Kind::NotSupported,
            field: field.to_owned(),
            value: Some(value),
            detail: format!("supported values: {}", quoted.join(", ")),
        }
    }

    /// `ErrorBody()`: the text after the field path.
    pub(crate) fn body(&self) -> String {
        let mut s = match (&self.kind, &self.value) {
            (Kind::Required, _) | (_, None) => self.kind.title().to_owned(),
            (_, Some(v)) => format!("{}: {}", self.kind.title(), render(v)),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// `Error()`: `field: body`.
    pub(crate) fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }

    fn cause(&self) -> Value {
        json!({"reason": self.kind.reason(), "message": self.body(), "field": self.field})
    }
}

/// Values print as JSON, like the apiserver (`json.Marshal` of the bad value).
fn render(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `ErrorList.ToAggregate().Error()`: one message, or `[a, b]` with duplicates dropped.
fn aggregate(errors: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let m = e.message();
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    match seen.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// `errors.NewInvalid(kind, name, errs)`: 422 with one cause per error (duplicates kept, as
/// the apiserver keeps them). `group` is empty for the core group.
pub(crate) fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> ApiError {
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let mut details = json!({"name": name, "kind": kind});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details["causes"] = Value::Array(errors.iter().map(FieldError::cause).collect());
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("{qualified} \"{name}\" is invalid: {}", aggregate(errors)),
        details: Some(details),
    }
}

/// `errors.NewForbidden(resource, name, err)` with causes (admission denials).
pub(crate) fn forbidden(
    group: &str,
    plural: &str,
    name: &str,
    why: &str,
    causes: Value,
) -> ApiError {
    let qualified = if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    };
    let mut details = json!({"name": name, "kind": plural});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details["causes"] = causes;
    ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("{qualified} \"{name}\" is forbidden: {why}"),
        details: Some(details),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_deduplicated_but_causes_are_not() {
        let errs = [
            FieldError::invalid("reason", json!("Other"), "field is immutable"),
            FieldError::invalid("message", json!("changed"), "field is immutable"),
            FieldError::invalid("reason", json!("Other"), "field is immutable"),
        ];
        let e = invalid("", "Event", "ok", &errs);
        assert_eq!(
            e.message,
            "Event \"ok\" is invalid: [reason: Invalid value: \"Other\": field is immutable, message: Invalid value: \"changed\": field is immutable]"
        );
        assert_eq!(e.details.unwrap()["causes"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn omitted_values_and_required_values_print_without_a_value() {
        assert_eq!(
            FieldError::invalid_no_value("status.conditions", "x").body(),
            "Invalid value: x"
        );
        assert_eq!(
            FieldError::required("eventTime", "").body(),
            "Required value"
        );
        assert_eq!(
            FieldError::invalid("status.failed", json!(0), "cannot decrease").body(),
            "Invalid value: 0: cannot decrease"
        );
    }
}
