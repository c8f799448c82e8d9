//! What the write audit of a convergence says: writes per controller, resource and verb; writes a
//! later write of the same controller to the same object made obsolete; refused and no-op writes.

use std::collections::BTreeMap;

use fake_apiserver::{AuditRecord, WriteRecord};
use serde::Serialize;

/// The controller behind an audited user: `system:serviceaccount:<ns>:backup-maker-<controller>`
/// gives `<controller>`; any other user is returned as it is.
pub fn controller_of(user: &str) -> String {
    user.rsplit(':')
        .next()
        .and_then(|sa| sa.strip_prefix("backup-maker-"))
        .unwrap_or(user)
        .to_owned()
}

/// Objects one controller wrote more than once: every write but the last was superseded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Superseded {
    /// How many objects were written more than once.
    pub objects: u64,
    /// Writes beyond the first per object (the obsolete ones).
    pub extra_writes: u64,
    /// A few `namespace/name` examples, with the verbs in order.
    pub examples: Vec<String>,
}

/// The audit of one phase, per controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriteAudit {
    /// controller -> `resource verb` -> count.
    pub by_controller: BTreeMap<String, BTreeMap<String, u64>>,
    /// controller -> resource -> superseded writes.
    pub superseded: BTreeMap<String, BTreeMap<String, Superseded>>,
    /// controller -> `resource verb code` -> count, for answers >= 400 (conflicts, refusals).
    pub refused: BTreeMap<String, BTreeMap<String, u64>>,
    /// `resource verb` -> write requests that changed nothing (no-op writes).
    pub no_ops: BTreeMap<String, u64>,
    /// Every write request.
    pub total: u64,
}

impl WriteAudit {
    /// Writes of one controller.
    pub fn total_of(&self, controller: &str) -> u64 {
        self.by_controller
            .get(controller)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// All superseded writes.
    pub fn superseded_total(&self) -> u64 {
        self.superseded
            .values()
            .flat_map(|m| m.values())
            .map(|s| s.extra_writes)
            .sum()
    }
}

/// Analyses the audit log (who wrote what, in order) and the fake's write log (whether it changed
/// anything). Events are created under fresh names, so they are never superseded.
pub fn audit(records: &[AuditRecord], log: &[WriteRecord]) -> WriteAudit {
    let mut out = WriteAudit {
        total: records.len() as u64,
        ..WriteAudit::default()
    };
    // (controller, resource, namespace, name) -> verbs in order.
    let mut per_object: BTreeMap<(String, String, String, String), Vec<String>> = BTreeMap::new();
    for r in records {
        let controller = controller_of(&r.user);
        *out.by_controller
            .entry(controller.clone())
            .or_default()
            .entry(format!("{} {}", r.resource, r.verb))
            .or_insert(0) += 1;
        if r.code >= 400 {
            *out.refused
                .entry(controller.clone())
                .or_default()
                .entry(format!("{} {} {}", r.resource, r.verb, r.code))
                .or_insert(0) += 1;
            continue;
        }
        if r.name.is_empty() {
            continue;
        }
        per_object
            .entry((
                controller,
                r.resource.clone(),
                r.namespace.clone(),
                r.name.clone(),
            ))
            .or_default()
            .push(r.verb.to_string());
    }
    for ((controller, resource, namespace, name), verbs) in per_object {
        if verbs.len() < 2 {
            continue;
        }
        let entry = out
            .superseded
            .entry(controller)
            .or_default()
            .entry(resource)
            .or_default();
        entry.objects += 1;
        entry.extra_writes += verbs.len() as u64 - 1;
        if entry.examples.len() < 3 {
            entry
                .examples
                .push(format!("{namespace}/{name} ({})", verbs.join(", ")));
        }
    }
    for w in log.iter().filter(|w| !w.changed && w.code < 400) {
        *out.no_ops
            .entry(format!("{} {}", w.resource, w.verb))
            .or_insert(0) += 1;
    }
    out
}

/// Requests of one phase as counted by the HTTP front: controller -> `verb resource` -> count.
pub fn requests_by_controller(
    counts: &BTreeMap<crate::serve::RequestKey, u64>,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for ((who, verb, resource), n) in counts {
        *out.entry(who.clone())
            .or_default()
            .entry(format!("{verb} {resource}"))
            .or_insert(0) += n;
    }
    out
}

/// Reads (`get`, `list`, `watch`) of one controller in [`requests_by_controller`] form.
pub fn reads_of(requests: &BTreeMap<String, BTreeMap<String, u64>>, controller: &str) -> u64 {
    requests
        .get(controller)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    k.starts_with("get ") || k.starts_with("list ") || k.starts_with("watch ")
                })
                .map(|(_, n)| n)
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake_apiserver::Verb;

    fn rec(user: &str, verb: Verb, resource: &str, name: &str, code: u16) -> AuditRecord {
        AuditRecord {
            user: format!("system:serviceaccount:backup-maker:backup-maker-{user}"),
            verb,
            resource: resource.into(),
            namespace: "team-0".into(),
            name: name.into(),
            code,
        }
    }

    #[test]
    fn a_second_status_write_of_the_same_controller_to_one_sb_is_listed_as_superseded() {
        let records = [
            rec(
                "scheduled-controller",
                Verb::Apply,
                "scheduledbackups/status",
                "db-1",
                200,
            ),
            rec(
                "gpg-keygen",
                Verb::Apply,
                "scheduledbackups/status",
                "db-1",
                200,
            ),
            rec(
                "scheduled-controller",
                Verb::Apply,
                "scheduledbackups/status",
                "db-1",
                200,
            ),
            rec(
                "scheduled-controller",
                Verb::Apply,
                "scheduledbackups/status",
                "db-2",
                200,
            ),
            rec(
                "scheduled-controller",
                Verb::Apply,
                "configmaps",
                "db-1-backup",
                200,
            ),
        ];
        let a = audit(&records, &[]);
        let s = &a.superseded["scheduled-controller"]["scheduledbackups/status"];
        assert_eq!((s.objects, s.extra_writes), (1, 1));
        assert_eq!(s.examples, ["team-0/db-1 (apply, apply)"]);
        // One status write each by two controllers is the expected minimum, not an obsolete write.
        assert!(!a.superseded.contains_key("gpg-keygen"));
        assert_eq!(a.superseded_total(), 1);
        assert_eq!(a.total_of("scheduled-controller"), 4);
        assert_eq!(
            a.by_controller["scheduled-controller"]["scheduledbackups/status apply"],
            3
        );
    }

    #[test]
    fn refused_writes_are_counted_apart_and_do_not_supersede() {
        let records = [
            rec("gpg-keygen", Verb::Create, "secrets", "db-1-keys", 409),
            rec("gpg-keygen", Verb::Create, "secrets", "db-1-keys", 201),
        ];
        let a = audit(&records, &[]);
        assert_eq!(a.refused["gpg-keygen"]["secrets create 409"], 1);
        assert_eq!(a.superseded_total(), 0);
        assert_eq!(a.total, 2);
    }

    #[test]
    fn no_op_writes_come_from_the_write_log() {
        let log = [
            WriteRecord {
                resource: "cronjobs".into(),
                verb: Verb::Apply,
                namespace: "t".into(),
                name: "c".into(),
                code: 200,
                changed: false,
            },
            WriteRecord {
                resource: "cronjobs".into(),
                verb: Verb::Apply,
                namespace: "t".into(),
                name: "d".into(),
                code: 200,
                changed: true,
            },
        ];
        assert_eq!(audit(&[], &log).no_ops["cronjobs apply"], 1);
    }

    #[test]
    fn reads_are_get_list_and_watch_requests_of_one_controller() {
        let mut counts = BTreeMap::new();
        counts.insert(("gpg-keygen".to_owned(), "list", "secrets".to_owned()), 2);
        counts.insert(("gpg-keygen".to_owned(), "watch", "secrets".to_owned()), 3);
        counts.insert(("gpg-keygen".to_owned(), "create", "secrets".to_owned()), 7);
        counts.insert(("admin".to_owned(), "get", "secrets".to_owned()), 9);
        let by = requests_by_controller(&counts);
        assert_eq!(reads_of(&by, "gpg-keygen"), 5);
        assert_eq!(
            controller_of("system:serviceaccount:backup-maker:backup-maker-gpg-keygen"),
            "gpg-keygen"
        );
        assert_eq!(controller_of("admin"), "admin");
    }
}
