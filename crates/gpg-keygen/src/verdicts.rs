//! Verdicts on key Secrets, remembered until the Secret changes, so a resync of converged ScheduledBackups
//! neither reads their key Secrets nor parses keys again.
//!
//! A verdict is valid until the next watch event of its Secret. Each event bumps the Secret's epoch; a verdict
//! records the epoch read *before* its GET, so an event that arrives while the GET is in flight (the answer may
//! predate it) invalidates it too. After a restart nothing is remembered, and a watch restart re-touches every
//! Secret: both cost one GET per key Secret, never a stale verdict.

use std::collections::HashMap;
use std::sync::Mutex;

use controller_runtime::index::Epochs;

/// Verdicts `V` per question (a Secret and what is asked of it), with the epochs of the Secrets.
pub struct Verdicts<V> {
    epochs: Epochs,
    /// Per question: the Secret, the epoch the answer was read at, the answer.
    answers: Mutex<HashMap<String, (String, u64, V)>>,
}

impl<V> Default for Verdicts<V> {
    fn default() -> Self {
        Verdicts {
            epochs: Epochs::default(),
            answers: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> Verdicts<V> {
    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, u64, V)>> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Secret `key` had a watch event: every verdict on it is stale. Answers are not searched for here (that
    /// would cost O(answers) per event): `get` checks the epoch.
    pub fn changed(&self, key: &str) {
        self.epochs.bump(key);
    }

    /// The epoch of Secret `key`, to be read before reading the Secret.
    pub fn epoch(&self, key: &str) -> u64 {
        self.epochs.get(key)
    }

    /// Remembers `verdict` on `question` about Secret `key`, read at `epoch`; dropped if the Secret changed since.
    pub fn remember(&self, key: &str, question: String, epoch: u64, verdict: V) {
        if self.epochs.get(key) == epoch {
            self.answers()
                .insert(question, (key.to_string(), epoch, verdict));
        }
    }

    /// The remembered verdict on `question` about Secret `key`, if the Secret has not changed since.
    pub fn get(&self, key: &str, question: &str) -> Option<V> {
        let now = self.epochs.get(key);
        match self.answers().get(question) {
            Some((secret, epoch, verdict)) if secret == key && *epoch == now => {
                Some(verdict.clone())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_holds_until_its_secret_changes() {
        let verdicts = Verdicts::default();
        let epoch = verdicts.epoch("ns/keys");
        verdicts.remember("ns/keys", "ns/keys\nkey".into(), epoch, "valid");
        assert_eq!(verdicts.get("ns/keys", "ns/keys\nkey"), Some("valid"));
        verdicts.changed("ns/other");
        assert_eq!(verdicts.get("ns/keys", "ns/keys\nkey"), Some("valid"));
        verdicts.changed("ns/keys");
        assert_eq!(verdicts.get("ns/keys", "ns/keys\nkey"), None);
    }

    #[test]
    fn a_change_during_the_read_discards_the_answer() {
        let verdicts = Verdicts::default();
        let epoch = verdicts.epoch("ns/keys");
        // The Secret is edited while the GET is in flight: the answer may be of the old version.
        verdicts.changed("ns/keys");
        verdicts.remember("ns/keys", "q".into(), epoch, "valid");
        assert_eq!(verdicts.get("ns/keys", "q"), None);
        let epoch = verdicts.epoch("ns/keys");
        verdicts.remember("ns/keys", "q".into(), epoch, "invalid");
        assert_eq!(verdicts.get("ns/keys", "q"), Some("invalid"));
    }
}
