//! Building conditions so that an unchanged status serialises identically (a no-op apply).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// `"True"` / `"False"`.
pub fn status_str(ok: bool) -> &'static str {
    if ok { "True" } else { "False" }
}

/// A condition to apply, with `lastTransitionTime` taken from `previous` when the status did not change,
/// so re-applying an unchanged condition writes the identical document and the apiserver treats it as a no-op.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time,
    }
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of the given type is present with status `"True"`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn unchanged_status_keeps_the_previous_transition_time() {
        let old = vec![condition(
            &[],
            "Ready",
            "True",
            "Ready",
            "ok",
            Some(1),
            t("2024-01-01T00:00:00Z"),
        )];
        let new = condition(
            &old,
            "Ready",
            "True",
            "Ready",
            "still ok",
            Some(2),
            t("2025-01-01T00:00:00Z"),
        );
        assert_eq!(new.last_transition_time, t("2024-01-01T00:00:00Z"));
        assert_eq!(new.message, "still ok");
    }

    #[test]
    fn changed_status_takes_now_as_transition_time() {
        let old = vec![condition(
            &[],
            "Ready",
            "True",
            "Ready",
            "ok",
            Some(1),
            t("2024-01-01T00:00:00Z"),
        )];
        let new = condition(
            &old,
            "Ready",
            "False",
            "RenderFailed",
            "bad",
            Some(1),
            t("2025-01-01T00:00:00Z"),
        );
        assert_eq!(new.last_transition_time, t("2025-01-01T00:00:00Z"));
        assert!(!is_true(&[new], "Ready"));
    }
}
