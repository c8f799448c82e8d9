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

/// How often the apiserver considers a progress bookmark on a long watch.
const BOOKMARK_PERIOD: Duration = Duration::from_secs(60);
/// The last bookmark is considered this long before `timeoutSeconds` ends the watch.
const BOOKMARK_BEFORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Bookmark bookkeeping of one watch: a progress bookmark is only sent when the resource type's
/// resourceVersion (cluster-wide, any namespace, any selector) advanced past the last event this
/// watch delivered (recordings f2, f2b: a quiet 30 s watch gets none).
struct Progress {
    /// Newest resourceVersion of any change to this resource type seen so far.
    type_rv: u64,
    /// resourceVersion of the last event (or bookmark) sent.
    sent_rv: u64,
}

impl Progress {
    fn saw(&mut self, entry: &LogEntry, req: &WatchRequest) {
        if entry.key.group == req.res.group && entry.key.plural == req.res.plural {
            self.type_rv = self.type_rv.max(entry.rv);
        }
    }

    fn bookmark_due(&self) -> bool {
        self.type_rv > self.sent_rv
    }
}

/// Starts a watch: computes the replay under the store lock, then streams from a task.
pub(crate) fn start(store: &Mutex<Store>, req: WatchRequest) -> UnsyncBoxBody<Bytes, Infallible> {
    let mut frames = Vec::new();
    let (mut live, from_rv, finished, mut progress) = {
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        let live = store.events.subscribe();
        let current = store.resource_version();
        let mut finished = false;
        let start_rv = match (req.since, req.send_initial_events) {
            (Some(rv), false) => rv,
            _ => current,
        };
        let mut progress = Progress {
            type_rv: start_rv,
            sent_rv: start_rv,
        };
        match (req.since, req.send_initial_events) {
            (Some(rv), false) => match store.events_since(rv) {
                Some(entries) => {
                    for e in &entries {
                        progress.saw(e, &req);
                        if let Some((k, o)) = req.translate(e) {
                            frames.push(frame(k, o));
                            progress.sent_rv = e.rv;
                        }
                    }
                }
                None => {
                    frames.push(expired(rv, store.compacted_through));
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
        // Only a streaming list ends its initial batch with a bookmark; a plain watch with
        // allowWatchBookmarks gets progress bookmarks later, if at all.
        if !finished && req.send_initial_events {
            frames.push(req.bookmark(current, true));
        }
        (
            live,
            current.max(req.since.unwrap_or(0)),
            finished,
            progress,
        )
    };

    let (mut tx, rx) = futures::channel::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let deadline = started + req.timeout;
        let last_call = deadline
            .checked_sub(BOOKMARK_BEFORE_TIMEOUT)
            .unwrap_or(deadline);
        let mut next_bookmark = (started + BOOKMARK_PERIOD).min(last_call);
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
            let now = tokio::time::Instant::now();
            let wake = deadline
                .min(now + Duration::from_secs(1))
                .min(if req.bookmarks {
                    next_bookmark
                } else {
                    deadline
                });
            match tokio::time::timeout_at(wake, live.recv()).await {
                Err(_) if tokio::time::Instant::now() >= deadline || tx.is_closed() => return,
                Err(_) => {
                    let now = tokio::time::Instant::now();
                    if req.bookmarks && now >= next_bookmark && next_bookmark < deadline {
                        if progress.bookmark_due() {
                            if tx
                                .send(req.bookmark(progress.type_rv, false))
                                .await
                                .is_err()
                            {
                                return;
                            }
                            progress.sent_rv = progress.type_rv;
                        }
                        next_bookmark = if next_bookmark >= last_call {
                            deadline
                        } else {
                            (next_bookmark + BOOKMARK_PERIOD).min(last_call)
                        };
                    }
                }
                Ok(Ok(entry)) => {
                    if entry.rv <= from_rv {
                        continue;
                    }
                    progress.saw(&entry, &req);
                    if let Some((kind, obj)) = req.translate(&entry) {
                        if tx.send(frame(kind, obj)).await.is_err() {
                            return;
                        }
                        progress.sent_rv = entry.rv;
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
