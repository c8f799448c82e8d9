//! Remembers the status this controller last wrote per ScheduledBackup, until the watch cache catches up.
//!
//! A reconcile can start (triggered by a child's watch event) before the ScheduledBackup's own watch event
//! for our last status write arrived. Computing from that stale copy would rewrite the status with new
//! `lastTransitionTime`s: a real write and one more round trip. Resource versions are compared numerically,
//! which is what etcd-backed apiservers produce; a non-numeric version disables the memo for that object.

use std::collections::HashMap;
use std::sync::Mutex;

use crd_types::ScheduledBackup;
use kube::ResourceExt;

/// uid → (resourceVersion our write produced, the object it returned).
#[derive(Default)]
pub struct Written(Mutex<HashMap<String, (u64, ScheduledBackup)>>);

fn version(sb: &ScheduledBackup) -> Option<u64> {
    sb.resource_version()?.parse().ok()
}

impl Written {
    /// Records the object a status write returned.
    pub fn remember(&self, written: &ScheduledBackup) {
        if let (Some(uid), Some(rv)) = (written.uid(), version(written)) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid, (rv, written.clone()));
        }
    }

    /// `cached` with the status we wrote when the cache is older than our write; forgets entries the cache
    /// has caught up with.
    pub fn fresh(&self, cached: &ScheduledBackup) -> ScheduledBackup {
        let (Some(uid), Some(cached_rv)) = (cached.uid(), version(cached)) else {
            return cached.clone();
        };
        let mut memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match memo.get(&uid) {
            Some((written_rv, written)) if *written_rv > cached_rv => {
                let mut fresh = cached.clone();
                fresh.status = written.status.clone();
                fresh
            }
            Some(_) => {
                memo.remove(&uid);
                cached.clone()
            }
            None => cached.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(rv: &str, hash: &str) -> ScheduledBackup {
        serde_saphyr::from_str(&format!(
            "metadata: {{name: a, namespace: n, uid: u1, resourceVersion: '{rv}'}}\nspec: {{operation: backup, templateRef: {{kind: internal, name: pg15}}, gpgKeySecretRef: {{secretName: k}}, tokenSecretRef: {{secretName: t}}}}\nstatus: {{lastAppliedSpecHash: {hash}}}\n"
        ))
        .unwrap()
    }

    fn hash(sb: &ScheduledBackup) -> Option<String> {
        sb.status.as_ref()?.last_applied_spec_hash.clone()
    }

    #[test]
    fn a_stale_cached_copy_gets_the_status_we_wrote() {
        let memo = Written::default();
        memo.remember(&sb("12", "new"));
        assert_eq!(hash(&memo.fresh(&sb("10", "old"))).as_deref(), Some("new"));
    }

    #[test]
    fn a_cache_that_caught_up_wins_and_the_memo_is_forgotten() {
        let memo = Written::default();
        memo.remember(&sb("12", "new"));
        assert_eq!(
            hash(&memo.fresh(&sb("13", "newer"))).as_deref(),
            Some("newer")
        );
        assert!(memo.0.lock().unwrap().is_empty());
    }
}
