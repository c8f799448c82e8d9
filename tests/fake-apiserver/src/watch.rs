//! WATCH: newline-delimited `WatchEvent` JSON, replayed from the event log, then live.
//!
//! The subscription to live events is taken under the same lock that reads the log, so no write
//! can fall between replay and live streaming: a watch opened after a write never misses it.

use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody, combinators::UnsyncBoxBody};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::ResourceInfo;
use crate::errors::ApiError;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{EventType, LogEntry, Store};

/// A parsed watch request.
pub(crate) struct WatchRequest {
    pub(crate) res: ResourceInfo,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    /// `None` for "any"/"most recent" (`resourceVersion` absent or `0`): start with synthetic
    /// ADDED events for the current state.
    pub(crate) since: Option<u64>,
    pub(crate) bookmarks: bool,
    /// `sendInitialEvents=true` (streaming lists): synthetic ADDED events, then a bookmark
    /// annotated `k8s.io/initial-events-end`.
    pub(crate) send_initial_events: bool,
    pub(crate) timeout: Duration,
}

impl WatchRequest {
    fn visible(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"] == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The event this watch sees for a change, honouring selectors: an object that starts
    /// matching is ADDED, one that stops matching is DELETED.
    fn translate<'a>(&self, entry: &'a LogEntry) -> Option<(&'static str, &'a Value)> {
        if entry.key.group != self.res.group || entry.key.plural != self.res.plural {
            return None;
        }
        let now = self.visible(&entry.object);
        let kind = match entry.event {
            EventType::Added | EventType::Deleted => now.then_some(entry.event.as_str())?,
            EventType::Modified => {
                let before = entry.previous.as_ref().is_some_and(|p| self.visible(p));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
        };
        Some((kind, &entry.object))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        frame(
            "BOOKMARK",
            &json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": metadata}),
        )
    }
}

fn frame(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn expired(rv: u64, oldest: u64) -> Bytes {
    let err = ApiError::expired(format!("too old resource version: {rv} ({oldest})"));
    frame("ERROR", &err.to_status())
}

/// Starts a watch: computes the replay under the store lock, then streams from a task.
pub(crate) fn start(store: &Mutex<Store>, req: WatchRequest) -> UnsyncBoxBody<Bytes, Infallible> {
    let mut frames = Vec::new();
    let (mut live, from_rv, finished) = {
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        let live = store.events.subscribe();
        let current = store.resource_version();
        let mut finished = false;
        match (req.since, req.send_initial_events) {
            (Some(rv), false) => match store.events_since(rv) {
                Some(entries) => frames.extend(
                    entries
                        .iter()
                        .filter_map(|e| req.translate(e).map(|(k, o)| frame(k, o))),
                ),
                None => {
                    frames.push(expired(rv, store.compacted_through + 1));
                    finished = true;
                }
            },
            _ => frames.extend(
                store
                    .list(&req.res, req.namespace.as_deref())
                    .filter(|(_, o)| req.visible(o))
                    .map(|(_, o)| frame("ADDED", o)),
            ),
        }
        if !finished && (req.bookmarks || req.send_initial_events) {
            frames.push(req.bookmark(current, req.send_initial_events));
        }
        (live, current.max(req.since.unwrap_or(0)), finished)
    };

    let (mut tx, rx) = futures::channel::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + req.timeout;
        for f in frames {
            if tx.send(f).await.is_err() {
                return;
            }
        }
        if finished {
            return;
        }
        loop {
            // Wake up at least every second to notice a client that went away.
            let wake = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            match tokio::time::timeout_at(wake, live.recv()).await {
                Err(_) if tokio::time::Instant::now() >= deadline || tx.is_closed() => return,
                Err(_) => {}
                Ok(Ok(entry)) => {
                    if entry.rv <= from_rv {
                        continue;
                    }
                    if let Some((kind, obj)) = req.translate(&entry)
                        && tx.send(frame(kind, obj)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    let _ = tx.send(expired(from_rv, from_rv + 1)).await;
                    return;
                }
                Ok(Err(RecvError::Closed)) => return,
            }
        }
    });
    StreamBody::new(rx.map(|b| Ok::<_, Infallible>(Frame::data(b)))).boxed_unsync()
}
