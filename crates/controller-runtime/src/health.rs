//! Readiness and leadership state shared between the controller loop and the HTTP server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared readiness state: `/readyz` is 200 once `set_ready(true)` was called (watches synced);
/// the leader/standby state is reported in the body but never fails readiness, so a standby replica
/// stays in the Service endpoints and its /metrics keep being scraped.
#[derive(Clone, Default, Debug)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default, Debug)]
struct Inner {
    ready: AtomicBool,
    leader: AtomicBool,
}

impl Health {
    /// Marks the process ready (true once the watches have synced) or not ready.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    /// Records whether this replica currently holds the leader lease (reported, never gating).
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.store(leader, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// Whether this replica is the leader.
    pub fn is_leader(&self) -> bool {
        self.inner.leader.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_state() {
        let h = Health::default();
        let c = h.clone();
        assert!(!c.is_ready());
        h.set_ready(true);
        h.set_leader(true);
        assert!(c.is_ready());
        assert!(c.is_leader());
        c.set_ready(false);
        assert!(!h.is_ready());
    }
}
