//! What the last successful apply pass of each ScheduledBackup was computed from, so a reconcile whose inputs
//! have not changed (the periodic resync, a status event, a Job finishing) skips reading Secrets and rendering.
//!
//! The inputs are fingerprinted: the SB's generation and labels (rendering reads nothing else of its metadata
//! that can change), its `GPGKeyReady` condition, the procedure template's resourceVersion, and an epoch per
//! referenced Secret that every watch event of that Secret bumps (read before the Secrets are, so an event
//! during the reads invalidates what they returned). A reuse still requires every child to be in the cache,
//! owned, carrying the remembered spec hash and with its content verified ([`controller_runtime::lean`]);
//! anything else takes the full path. After a restart nothing is remembered.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use crd_types::constants::condition_types::GPG_KEY_READY;
use crd_types::{ChildReference, ScheduledBackup};
use kube::ResourceExt;

use crate::Context;

/// One SB's remembered pass: its fingerprint, the children (with the spec hash each carries), the rendered
/// hash and the render's notes for status.
#[derive(Clone, Debug)]
pub struct Pass {
    pub fingerprint: u64,
    pub children: Vec<(ChildReference, String)>,
    pub hash: String,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// Remembered passes per SB uid, and the epochs of the Secrets SBs refer to.
#[derive(Default)]
pub struct Memo {
    passes: Mutex<HashMap<String, Pass>>,
    epochs: controller_runtime::index::Epochs,
}

impl Memo {
    /// A watch event of Secret `key` (`namespace/name`) that some SB refers to.
    pub fn secret_changed(&self, key: &str) {
        self.epochs.bump(key);
    }

    /// The fingerprint of `sb`'s inputs now.
    pub fn fingerprint(&self, ctx: &Context, sb: &ScheduledBackup) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        sb.metadata.generation.hash(&mut h);
        sb.labels().hash(&mut h);
        let conditions = sb.status.as_ref().map(|s| s.conditions.as_slice());
        crd_types::conditions::find(conditions.unwrap_or_default(), GPG_KEY_READY)
            .map(|c| (&c.status, &c.reason, &c.message))
            .hash(&mut h);
        for template in crate::template_of(sb) {
            ctx.stores
                .templates
                .get(&kube::runtime::reflector::ObjectRef::new(&template))
                .and_then(|t| t.resource_version())
                .hash(&mut h);
        }
        for secret in crate::secrets_of(sb) {
            self.epochs.get(&secret).hash(&mut h);
        }
        h.finish()
    }

    /// The remembered pass of `uid` if it was computed from `fingerprint`.
    pub fn get(&self, uid: &str, fingerprint: u64) -> Option<Pass> {
        let passes = self.passes.lock().unwrap_or_else(|e| e.into_inner());
        passes
            .get(uid)
            .filter(|p| p.fingerprint == fingerprint)
            .cloned()
    }

    /// Remembers a successful pass.
    pub fn remember(&self, uid: &str, pass: Pass) {
        self.passes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.to_string(), pass);
    }

    /// Forgets a deleted SB.
    pub fn forget(&self, uid: &str) {
        self.passes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }
}
