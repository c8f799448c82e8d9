//! The one Event publisher of every controller.
//!
//! `events.k8s.io/v1` refuses a `note` over 1024 bytes with a 422, and a refused Event is simply lost; the Event a
//! user most needs (a long template error) is the one most likely to be long. So the note is cut on a UTF-8
//! boundary with a marker saying where the full text is (the condition message, which has no such limit).
//! Publishing is best effort: the condition carries the same information, so a failed Event never fails a
//! reconcile.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::metrics::ControllerMetrics;

/// The API server's limit on `note`, in bytes (recording d1: 1000 two-byte characters are refused).
pub const NOTE_MAX_BYTES: usize = 1024;

/// Appended to a cut note.
pub const TRUNCATION_MARKER: &str = " … (truncated; full text in the object's status conditions)";

/// Publishes Events for one controller and counts each as an API write.
#[derive(Clone)]
pub struct Publisher {
    recorder: Recorder,
    metrics: ControllerMetrics,
}

impl Publisher {
    /// A publisher reporting as `controller` (its name) from `instance` (the pod name).
    pub fn new(
        client: kube::Client,
        controller: &str,
        instance: Option<String>,
        metrics: ControllerMetrics,
    ) -> Self {
        let reporter = Reporter {
            controller: controller.into(),
            instance,
        };
        Publisher {
            recorder: Recorder::new(client, reporter),
            metrics,
        }
    }

    /// Publishes a Normal Event about `object`.
    pub async fn normal<K>(&self, object: &K, reason: &str, action: &str, note: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(object, EventType::Normal, reason, action, note.into())
            .await;
    }

    /// Publishes a Warning Event about `object`.
    pub async fn warning<K>(&self, object: &K, reason: &str, action: &str, note: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(object, EventType::Warning, reason, action, note.into())
            .await;
    }

    /// Publishes an Event of `type_`; failures are logged, never returned.
    pub async fn publish<K>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(fit_note(note)),
            action: action.into(),
            secondary: None,
        };
        self.metrics.api_write("events", "create");
        if let Err(error) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(reason, %error, "could not publish Event");
        }
    }
}

/// `note` cut to [`NOTE_MAX_BYTES`] on a character boundary, with [`TRUNCATION_MARKER`] when it was cut.
pub fn fit_note(mut note: String) -> String {
    if note.len() <= NOTE_MAX_BYTES {
        return note;
    }
    let mut end = NOTE_MAX_BYTES - TRUNCATION_MARKER.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note.truncate(end);
    note.push_str(TRUNCATION_MARKER);
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_note_is_kept_as_is() {
        let note = "x".repeat(NOTE_MAX_BYTES);
        assert_eq!(fit_note(note.clone()), note);
    }

    #[test]
    fn a_long_note_is_cut_to_the_limit_with_a_marker() {
        let cut = fit_note("x".repeat(5000));
        assert!(cut.len() <= NOTE_MAX_BYTES, "{}", cut.len());
        assert!(cut.ends_with(TRUNCATION_MARKER));
        assert!(cut.starts_with("xxxx"));
    }

    #[test]
    fn a_cut_never_splits_a_multibyte_character() {
        // 1000 two-byte characters: 2000 bytes, refused by the API server as sent (recording d1).
        for prefix in 0..4 {
            let note = format!("{}{}", "a".repeat(prefix), "é".repeat(1000));
            let cut = fit_note(note);
            assert!(cut.len() <= NOTE_MAX_BYTES);
            assert!(cut.ends_with(TRUNCATION_MARKER));
        }
    }
}
