//! Deterministic, length-limited names and label values.
//!
//! Kubernetes limits: a CronJob name may have at most 52 characters (it appends an 11-character suffix to the
//! Jobs it creates), object names 253, label values 63. When a name does not fit, it is shortened and an
//! 8-hex-digit sha256 prefix of the full name is appended, so distinct long names stay distinct and the same
//! input always yields the same name.
//!
//! Here, next to the API types, because two controllers must agree on them without depending on each other: the
//! scheduled-controller names a ScheduledBackup's children (its PodTemplates included), the action-controller
//! finds the PodTemplate of an operation by that name and names its executor.

use crate::Operation;
use sha2::{Digest, Sha256};

/// Longest CronJob name Kubernetes accepts.
pub const MAX_CRONJOB_NAME: usize = 52;
/// Longest label value.
pub const MAX_LABEL_VALUE: usize = 63;

/// First 8 hex digits of sha256(s).
fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// `prefix` + `suffix`, shortened to `max` characters with a hash of the untruncated name when needed.
fn bounded(prefix: &str, suffix: &str, max: usize) -> String {
    let full = format!("{prefix}{suffix}");
    if full.len() <= max {
        return full;
    }
    let hash = short_hash(&full);
    // Room for the prefix: max - "-" - hash - suffix.
    let room = max.saturating_sub(1 + hash.len() + suffix.len());
    let mut cut: String = prefix.chars().take(room).collect();
    // A DNS name (and a label value) must not end in a separator before the hash's "-".
    while cut.ends_with(['-', '.', '_']) {
        cut.pop();
    }
    format!("{cut}-{hash}{suffix}")
}

/// Name of the ConfigMap, helper Secret and CronJob of a ScheduledBackup's operation: `<sb>-backup` /
/// `<sb>-restore`. All three share the name, so it is bounded by the CronJob limit (52 characters).
pub fn child_name(sb_name: &str, op: Operation) -> String {
    bounded(sb_name, &format!("-{}", op.as_str()), MAX_CRONJOB_NAME)
}

/// Name of the Job (or Workflow) that executes a RequestedBackupAction: the action's name, bounded to 63
/// characters because Kubernetes copies Job names into the `job-name` label of their pods.
pub fn job_name(action_name: &str) -> String {
    bounded(action_name, "", MAX_LABEL_VALUE)
}

/// Name of the RequestedBackupAction `spec.cronJob.runOnCreate` creates for generation `generation` of a
/// ScheduledBackup: `<sb>-on-create-<generation>`, bounded to 63 characters so its Job gets the same name.
/// Deterministic, so a restarted controller finds the action it already created instead of making a second.
pub fn run_on_create_action(sb_name: &str, generation: i64) -> String {
    bounded(
        sb_name,
        &format!("-on-create-{generation}"),
        MAX_LABEL_VALUE,
    )
}

/// A label value derived from `s`: at most 63 characters, with a hash suffix when truncated.
pub fn label_value(s: &str) -> String {
    bounded(s, "", MAX_LABEL_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_verbatim() {
        assert_eq!(child_name("app1", Operation::Backup), "app1-backup");
        assert_eq!(child_name("app1", Operation::Restore), "app1-restore");
        assert_eq!(job_name("restore-abc"), "restore-abc");
        assert_eq!(label_value("app1"), "app1");
    }

    #[test]
    fn long_child_names_fit_the_cronjob_limit_and_keep_the_operation_suffix() {
        let sb = "a".repeat(60);
        let name = child_name(&sb, Operation::Restore);
        assert_eq!(name.len(), MAX_CRONJOB_NAME);
        assert!(name.ends_with("-restore"), "{name}");
        assert_eq!(name, child_name(&sb, Operation::Restore), "deterministic");
        assert_ne!(name, child_name(&"a".repeat(61), Operation::Restore));
    }

    #[test]
    fn the_run_on_create_action_is_named_by_sb_and_generation_within_63_characters() {
        assert_eq!(run_on_create_action("app1", 3), "app1-on-create-3");
        let long = run_on_create_action(&"d".repeat(80), 12);
        assert!(
            long.len() <= MAX_LABEL_VALUE && long.ends_with("-on-create-12"),
            "{long}"
        );
        assert_eq!(job_name(&long), long, "its Job gets the same name");
        assert_ne!(long, run_on_create_action(&"d".repeat(80), 13));
    }

    #[test]
    fn names_exactly_at_the_limit_are_not_hashed() {
        let sb = "b".repeat(MAX_CRONJOB_NAME - "-backup".len());
        assert_eq!(child_name(&sb, Operation::Backup), format!("{sb}-backup"));
        let l = "c".repeat(63);
        assert_eq!(label_value(&l), l);
    }

    #[test]
    fn truncated_names_never_end_the_prefix_with_a_separator() {
        let sb = format!("{}-{}", "x".repeat(35), "y".repeat(30));
        let name = child_name(&sb, Operation::Backup);
        assert!(!name.contains("--"), "{name}");
        let v = label_value(&format!("{}.{}", "x".repeat(53), "z".repeat(20)));
        assert!(v.len() <= 63);
        assert!(!v.contains(".-"), "{v}");
    }
}
