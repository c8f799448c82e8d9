//! A stand-in for kube-controller-manager: one Tokio task per server that follows the store's
//! change feed and runs the job/cronjob controllers (`jobcontroller`) and the namespace
//! controller (`namespaces`) shortly after the writes that concern them, never inside a
//! client's request. It starts lazily on the first request or helper call made inside a Tokio
//! runtime (building a server needs none), resyncs everything on start and after missing
//! events, and stops with the server.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::broadcast::{Receiver, error::RecvError, error::TryRecvError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::jobcontroller;
use crate::namespaces;
use crate::store::{LogEntry, Store};

/// What the built-in controllers and admission do, chosen with the server builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// The job and cronjob controllers run (on by default).
    pub(crate) job_controller: bool,
    /// Creating in a Namespace that does not exist is 404 (off by default).
    pub(crate) strict_namespaces: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            job_controller: true,
            strict_namespaces: false,
        }
    }
}

/// The background task of one server (shared by its clones).
#[derive(Default)]
pub(crate) struct Kcm {
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Kcm {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

impl Kcm {
    /// Starts the task if it is not running and a Tokio runtime is available. A task left
    /// behind by a runtime that has shut down (one `#[tokio::test]` each) is replaced.
    pub(crate) fn ensure_running(&self, store: &Arc<Mutex<Store>>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let events = store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .subscribe();
        *task = Some(runtime.spawn(run(Arc::downgrade(store), events)));
    }
}

/// What needs a controller pass.
#[derive(Default)]
struct Dirty {
    all: bool,
    jobs: BTreeSet<(String, String)>,
    cronjobs: BTreeSet<(String, String)>,
    namespaces: BTreeSet<String>,
}

impl Dirty {
    fn everything() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    fn note(&mut self, entry: &LogEntry) {
        let key = &entry.key;
        match (key.group.as_str(), key.plural.as_str()) {
            ("batch", "jobs") => {
                self.jobs.insert((key.namespace.clone(), key.name.clone()));
                if let Some(cj) = jobcontroller::owner(&entry.object, "CronJob") {
                    self.cronjobs.insert(cj);
                }
            }
            ("batch", "cronjobs") => {
                self.cronjobs
                    .insert((key.namespace.clone(), key.name.clone()));
            }
            ("", "pods") => {
                if let Some(job) = jobcontroller::owner(&entry.object, "Job") {
                    self.jobs.insert(job);
                }
            }
            ("", "namespaces") => {
                self.namespaces.insert(key.name.clone());
            }
            _ => {}
        }
        if !key.namespace.is_empty() {
            self.namespaces.insert(key.namespace.clone());
        }
    }
}

/// How long a Namespace stays `Terminating` before the namespace controller empties it: the
/// real one takes seconds, and clients must be able to see (and be refused by) the
/// `Terminating` phase first (recording h1).
const NAMESPACE_DELAY: Duration = Duration::from_millis(200);

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// One round over what changed; returns when to look again without a new event (a Job's
/// deadline, a Namespace's turn). `terminating` remembers when each Namespace was first seen
/// terminating.
fn reconcile(
    store: &mut Store,
    dirty: Dirty,
    terminating: &mut HashMap<String, Instant>,
) -> Option<Instant> {
    let Dirty {
        all,
        mut jobs,
        mut cronjobs,
        mut namespaces,
    } = dirty;
    if all {
        let keys = store.all_keys();
        for k in keys {
            match (k.group.as_str(), k.plural.as_str()) {
                ("batch", "jobs") => {
                    jobs.insert((k.namespace, k.name));
                }
                ("batch", "cronjobs") => {
                    cronjobs.insert((k.namespace, k.name));
                }
                ("", "namespaces") => {
                    namespaces.insert(k.name);
                }
                _ => {}
            }
        }
    }
    let mut wake = None;
    let now = Instant::now();
    if store.options.job_controller {
        for (ns, name) in &jobs {
            if let Some(d) = jobcontroller::sync_job(store, ns, name) {
                let wait = jiff::Timestamp::now().duration_until(d);
                let wait = if wait.is_negative() {
                    Duration::ZERO
                } else {
                    wait.unsigned_abs()
                };
                wake = earliest(wake, now + wait);
            }
        }
        for (ns, name) in &cronjobs {
            jobcontroller::sync_cronjob(store, ns, name);
        }
    }
    namespaces.extend(terminating.keys().cloned());
    for name in &namespaces {
        if !namespaces::is_terminating(store, name) {
            terminating.remove(name);
            continue;
        }
        let due = *terminating.entry(name.clone()).or_insert(now) + NAMESPACE_DELAY;
        if now >= due {
            namespaces::sync(store, name);
        } else {
            wake = earliest(wake, due);
        }
    }
    wake
}

async fn run(store: Weak<Mutex<Store>>, mut events: Receiver<Arc<LogEntry>>) {
    let mut dirty = Dirty::everything();
    let mut terminating = HashMap::new();
    loop {
        let wake = {
            let Some(store) = store.upgrade() else {
                return;
            };
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            reconcile(&mut guard, std::mem::take(&mut dirty), &mut terminating)
        };
        let first = match wake {
            Some(at) => tokio::select! {
                event = events.recv() => Some(event),
                () = tokio::time::sleep_until(at) => None,
            },
            None => Some(events.recv().await),
        };
        match first {
            None | Some(Err(RecvError::Lagged(_))) => dirty = Dirty::everything(),
            Some(Err(RecvError::Closed)) => return,
            Some(Ok(entry)) => dirty.note(&entry),
        }
        // Take whatever else is queued, so one round handles a burst.
        loop {
            match events.try_recv() {
                Ok(entry) => dirty.note(&entry),
                Err(TryRecvError::Lagged(_)) => dirty = Dirty::everything(),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return,
            }
        }
    }
}
