//! Watches for controllers: one watch per kind feeds both a reflector store (read by reconciles) and the
//! controller's trigger stream; readiness follows the watches' lists; an API server outage restarts them all
//! ([`Watches`]). Also the last-write memory and per-object backoff of reconciles.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::Backoff as WatchBackoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::watch as signal;

use crate::health::Health;
use crate::metrics::ControllerMetrics;

/// How often the API server is probed while watches are in use.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// A probe slower than this counts as a failure (a hung API server accepts connections and never answers).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait between two attempts of a failing watch.
pub const WATCH_RETRY_MAX: Duration = Duration::from_secs(4);

/// The watches of one controller: readiness from their state, restarts after an API server outage.
///
/// - Readiness: `/readyz` is true only while every watch has completed a list since it last failed; a watch
///   error makes it false until that watch has listed again.
/// - Outages: a background probe (`GET /version`, allowed to every authenticated identity) notices when the API
///   server stops answering and when it is back. When it is back, every watch is restarted at once: a watch
///   stream opened against a hung server may never deliver nor close, and waiting for its idle timeout (five
///   minutes) would leave the controller deaf. The restart re-lists, so every object is reconciled again: work
///   that failed during the outage is not left to its backoff.
/// - Errors of a watch never reach the `Controller`'s trigger stream (its shared backoff would stall every
///   trigger, up to 30 s per error); each watch retries on its own short backoff instead.
/// - The outage and the recovery are logged once each; `backup_maker_watch_restarts_total{kind}` counts watch
///   failures per kind.
pub struct Watches {
    health: Health,
    metrics: Option<ControllerMetrics>,
    state: Mutex<State>,
    restart: signal::Sender<u64>,
    probe: Mutex<Option<tokio::task::AbortHandle>>,
}

#[derive(Default)]
struct State {
    /// Per watch: its kind and whether it has listed since it last failed.
    watches: Vec<(String, bool)>,
    /// When the API server stopped answering the probe, while it does not.
    unreachable_since: Option<Instant>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        if let Some(probe) = self.probe.lock().unwrap_or_else(|e| e.into_inner()).take() {
            probe.abort();
        }
    }
}

impl Watches {
    /// Watches reporting readiness to `health` and restarts to `metrics`, probing through `client`. Must be
    /// called inside a Tokio runtime (it spawns the probe).
    pub fn new(
        client: kube::Client,
        health: Health,
        metrics: impl Into<Option<ControllerMetrics>>,
    ) -> Arc<Self> {
        let watches = Self::without_probe(health, metrics.into());
        let probe = tokio::spawn(probe(Arc::downgrade(&watches), client));
        *watches.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some(probe.abort_handle());
        watches
    }

    /// Watches without the outage probe (unit tests).
    pub fn without_probe(health: Health, metrics: Option<ControllerMetrics>) -> Arc<Self> {
        Arc::new(Watches {
            health,
            metrics,
            state: Mutex::new(State::default()),
            restart: signal::channel(0).0,
            probe: Mutex::new(None),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, kind: &str) -> usize {
        if let Some(metrics) = &self.metrics {
            metrics.register_watch(kind);
        }
        let mut state = self.state();
        state.watches.push((kind.to_string(), false));
        self.health.set_ready(false);
        state.watches.len() - 1
    }

    fn listed(&self, id: usize) {
        let mut state = self.state();
        state.watches[id].1 = true;
        let all = state.watches.iter().all(|(_, listed)| *listed);
        if all && state.unreachable_since.is_none() {
            self.health.set_ready(true);
        }
    }

    fn failed(&self, id: usize, error: &watcher::Error) {
        let mut state = self.state();
        let (kind, listed) = &mut state.watches[id];
        if *listed {
            tracing::debug!(%kind, %error, "watch failed; it retries and lists again");
        }
        *listed = false;
        if let Some(metrics) = &self.metrics {
            metrics.watch_restarted(kind);
        }
        self.health.set_ready(false);
    }

    /// Restarts every watch (each lists again). Called when the API server answers again after an outage.
    pub fn restart_all(&self) {
        self.restart.send_modify(|generation| *generation += 1);
    }

    /// Records a probe result; restarts every watch when the API server is back.
    fn probed(&self, result: Result<(), String>) {
        let mut state = self.state();
        match (result, state.unreachable_since) {
            (Err(error), None) => {
                tracing::warn!(%error, "the Kubernetes API server does not answer: watches and writes pause until it does");
                state.unreachable_since = Some(Instant::now());
                self.health.set_ready(false);
            }
            (Ok(()), Some(since)) => {
                tracing::info!(
                    outage_seconds = since.elapsed().as_secs_f64(),
                    "the Kubernetes API server answers again: restarting every watch"
                );
                state.unreachable_since = None;
                // Ready again once every restarted watch has listed.
                for (_, listed) in &mut state.watches {
                    *listed = false;
                }
                drop(state);
                self.restart_all();
            }
            _ => {}
        }
    }
}

async fn probe(watches: std::sync::Weak<Watches>, client: kube::Client) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        };
        let Some(watches) = watches.upgrade() else {
            return;
        };
        watches.probed(result);
    }
}

/// Retry delays of a failing watch: 250 ms doubling to [`WATCH_RETRY_MAX`], reset by a success. Short, because
/// the cost of a retry is one request and the cost of waiting is a deaf controller.
#[derive(Debug, Clone, Default)]
pub struct WatchRetry(u32);

impl Iterator for WatchRetry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = Duration::from_millis(250)
            .saturating_mul(1 << self.0.min(8))
            .min(WATCH_RETRY_MAX);
        self.0 = self.0.saturating_add(1);
        Some(delay)
    }
}

impl WatchBackoff for WatchRetry {
    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// What a watched kind must be (kube's watcher and reflector need all of it).
pub trait Watched:
    Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The annotation `kubectl apply` keeps a copy of the whole object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no controller reads and what is often most of an object: `managedFields` and the
/// [`LAST_APPLIED`] copy of the object (a ScheduledBackup applied with kubectl doubles in size with it).
pub fn drop_unread_metadata<K: Resource>(object: &mut K) {
    object.managed_fields_mut().clear();
    let annotations = &mut object.meta_mut().annotations;
    if let Some(map) = annotations {
        map.remove(LAST_APPLIED);
        if map.is_empty() {
            *annotations = None;
        }
    }
}

/// The events of a watch of `api` that restarts (lists again) whenever `watches` says so, retrying failures on
/// [`WatchRetry`]; what no controller reads is dropped ([`drop_unread_metadata`]). Readiness
/// and the restart metric follow its events. Errors are still yielded (for the reflector), see [`cached`].
pub fn restarting_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    watches: &Arc<Watches>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Watched,
{
    let id = watches.register(&K::kind(&()));
    let restarts = watches.restart.subscribe();
    let tracker = watches.clone();
    futures::stream::repeat_with(move || {
        let mut restart = restarts.clone();
        restart.borrow_and_update();
        watcher(api.clone(), config.clone())
            .modify(drop_unread_metadata)
            .backoff(WatchRetry::default())
            .take_until(async move {
                let _ = restart.changed().await;
            })
    })
    .flatten()
    .inspect(move |event| match event {
        Ok(watcher::Event::InitDone) => tracker.listed(id),
        Err(error) => tracker.failed(id, error),
        Ok(_) => {}
    })
}

/// A watch cache of `api` and the stream of objects it saw (for `Controller::for_stream`, `owns_stream`,
/// `watches_stream`), built on [`restarting_watch`]. The stream never yields an error: errors are handled (and
/// counted) by the watch itself.
pub fn cached<K>(
    api: Api<K>,
    config: watcher::Config,
    watches: &Arc<Watches>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Watched,
{
    cached_with(api, config, watches, |_| {})
}

/// [`cached`], also handing every watch event to `observe` (to keep a [`crate::index::ReverseIndex`] current).
pub fn cached_with<K>(
    api: Api<K>,
    config: watcher::Config,
    watches: &Arc<Watches>,
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Watched,
{
    cached_mapped(api, config, watches, move |event| {
        observe(&event);
        event
    })
}

/// The plumbing of every watch cache: each event of [`restarting_watch`] goes through `map` (strip, index)
/// before the reflector stores it; the stream yields the objects touched, without errors.
pub(crate) fn cached_mapped<K>(
    api: Api<K>,
    config: watcher::Config,
    watches: &Arc<Watches>,
    mut map: impl FnMut(watcher::Event<K>) -> watcher::Event<K> + Send + 'static,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Watched,
{
    let (store, writer) = reflector::store();
    let events = restarting_watch(api, config, watches).map(move |event| event.map(&mut map));
    let stream = reflector::reflector(writer, events)
        .filter_map(|event| std::future::ready(event.ok().map(Ok)))
        .touched_objects();
    (store, stream)
}

/// The objects `api`'s watch touches, without a cache (for watches that only map to other objects), with the
/// same restarts, retries and readiness as [`cached`].
pub fn touched<K>(
    api: Api<K>,
    config: watcher::Config,
    watches: &Arc<Watches>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Watched,
{
    restarting_watch(api, config, watches)
        .filter_map(|event| std::future::ready(event.ok().map(Ok)))
        .touched_objects()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> watcher::Error {
        watcher::Error::NoResourceVersion
    }

    #[test]
    fn ready_only_after_every_watch_listed() {
        let health = Health::default();
        let watches = Watches::without_probe(health.clone(), None);
        let (a, b) = (watches.register("A"), watches.register("B"));
        watches.listed(a);
        assert!(!health.is_ready());
        watches.listed(b);
        assert!(health.is_ready());
    }

    #[test]
    fn a_failed_watch_makes_the_controller_unready_until_it_listed_again() {
        let health = Health::default();
        let metrics = ControllerMetrics::new("test", &prometheus::Registry::new());
        let watches = Watches::without_probe(health.clone(), Some(metrics.clone()));
        let (a, b) = (watches.register("ConfigMap"), watches.register("Secret"));
        watches.listed(a);
        watches.listed(b);
        watches.failed(a, &lost());
        watches.failed(a, &lost());
        assert!(!health.is_ready());
        assert_eq!(metrics.watch_restarts("ConfigMap"), 2);
        assert_eq!(metrics.watch_restarts("Secret"), 0);
        watches.listed(a);
        assert!(health.is_ready());
    }

    #[test]
    fn the_api_server_coming_back_restarts_every_watch_once() {
        let health = Health::default();
        let watches = Watches::without_probe(health.clone(), None);
        let mut restarts = watches.restart.subscribe();
        watches.probed(Ok(()));
        assert!(!restarts.has_changed().unwrap(), "no outage, no restart");
        watches.probed(Err("connection refused".into()));
        watches.probed(Err("connection refused".into()));
        assert!(!health.is_ready());
        assert!(!restarts.has_changed().unwrap());
        watches.probed(Ok(()));
        assert!(restarts.has_changed().unwrap());
        assert_eq!(*restarts.borrow_and_update(), 1);
        watches.probed(Ok(()));
        assert!(!restarts.has_changed().unwrap());
    }

    #[test]
    fn after_an_outage_ready_waits_for_every_restarted_watch_to_list() {
        let health = Health::default();
        let watches = Watches::without_probe(health.clone(), None);
        let (a, b) = (watches.register("A"), watches.register("B"));
        watches.listed(a);
        watches.listed(b);
        assert!(health.is_ready());
        // A hung API server: no watch fails, only the probe notices.
        watches.probed(Err("no answer within 2s".into()));
        assert!(!health.is_ready());
        watches.listed(a);
        assert!(
            !health.is_ready(),
            "not while the API server does not answer"
        );
        watches.probed(Ok(()));
        assert!(
            !health.is_ready(),
            "not before the restarted watches listed"
        );
        watches.listed(a);
        assert!(!health.is_ready());
        watches.listed(b);
        assert!(health.is_ready());
    }

    #[test]
    fn cached_objects_lose_managed_fields_and_the_kubectl_copy_but_keep_other_annotations() {
        let mut cm: k8s_openapi::api::core::v1::ConfigMap =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a", "annotations": {LAST_APPLIED: "{...}", "keep": "1"},
                             "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
            }))
            .unwrap();
        drop_unread_metadata(&mut cm);
        assert!(cm.metadata.managed_fields.unwrap_or_default().is_empty());
        assert_eq!(
            cm.metadata.annotations.unwrap().keys().collect::<Vec<_>>(),
            ["keep"]
        );
    }

    #[test]
    fn watch_retries_are_short_and_reset() {
        let mut retry = WatchRetry::default();
        let delays: Vec<u128> = retry.by_ref().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 4000]);
        retry.reset();
        assert_eq!(retry.next(), Some(Duration::from_millis(250)));
    }
}

/// The object a controller's last status write returned, per object, until the watch cache catches up.
///
/// A reconcile can start (triggered by a child's watch event) before the object's own watch event for our last
/// status write arrived. Computing from that stale copy would write the status again — often with new condition
/// timestamps, which is a real change and one more round trip. The write's response is the newest state we
/// know, so it is used instead. Resource versions are compared numerically, which is what etcd-backed
/// apiservers produce; a non-numeric version disables this for that object.
pub struct LastWrite<K>(std::sync::Mutex<std::collections::HashMap<String, (u64, K)>>);

impl<K> Default for LastWrite<K> {
    fn default() -> Self {
        LastWrite(Default::default())
    }
}

fn version<K: Resource>(object: &K) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

impl<K: Resource + Clone> LastWrite<K> {
    /// Records the object a write returned.
    pub fn remember(&self, written: &K) {
        if let (Some(uid), Some(rv)) = (written.meta().uid.clone(), version(written)) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid, (rv, written.clone()));
        }
    }

    /// `cached`, or the object our last write returned when that is newer; forgets entries the cache has
    /// caught up with.
    pub fn fresh(&self, cached: &K) -> K {
        let (Some(uid), Some(cached_rv)) = (cached.meta().uid.as_deref(), version(cached)) else {
            return cached.clone();
        };
        let mut memo = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match memo.get(uid) {
            Some((written_rv, written)) if *written_rv > cached_rv => written.clone(),
            Some(_) => {
                memo.remove(uid);
                cached.clone()
            }
            None => cached.clone(),
        }
    }
}

#[cfg(test)]
mod last_write_tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(rv: &str, value: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "namespace": "n", "uid": "u1", "resourceVersion": rv},
            "data": {"v": value}
        }))
        .unwrap()
    }

    fn value(cm: &ConfigMap) -> &str {
        &cm.data.as_ref().unwrap()["v"]
    }

    #[test]
    fn a_stale_cached_copy_is_replaced_by_what_we_wrote() {
        let memo = LastWrite::default();
        memo.remember(&cm("12", "written"));
        assert_eq!(value(&memo.fresh(&cm("10", "stale"))), "written");
    }

    #[test]
    fn a_cache_that_caught_up_wins_and_the_entry_is_forgotten() {
        let memo = LastWrite::default();
        memo.remember(&cm("12", "written"));
        assert_eq!(value(&memo.fresh(&cm("13", "newer"))), "newer");
        assert!(memo.0.lock().unwrap().is_empty());
    }

    #[test]
    fn non_numeric_versions_disable_the_memo() {
        let memo = LastWrite::default();
        memo.remember(&cm("12", "written"));
        assert_eq!(value(&memo.fresh(&cm("abc", "cached"))), "cached");
    }
}

/// Exponential retry delays for transient failures, per object: 5 s, 10 s, 20 s … capped at 5 minutes, and
/// back to 5 s once the object reconciles successfully. (User errors are reported in status and retried when
/// the referenced object changes; this is only for API errors and the like.)
pub struct Backoff<K: Resource>(
    std::sync::Mutex<std::collections::HashMap<kube::runtime::reflector::ObjectRef<K>, u32>>,
);

impl<K: Resource> Default for Backoff<K>
where
    K::DynamicType: std::hash::Hash + Eq,
{
    fn default() -> Self {
        Backoff(Default::default())
    }
}

/// Shortest retry delay.
pub const BACKOFF_MIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest retry delay.
pub const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(300);

impl<K: Resource> Backoff<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    /// Records one more consecutive failure of `object` and returns how long to wait before retrying.
    pub fn failed(&self, object: kube::runtime::reflector::ObjectRef<K>) -> std::time::Duration {
        let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(object).or_insert(0);
        *count = count.saturating_add(1);
        let factor = 1u32 << (*count - 1).min(10);
        (BACKOFF_MIN * factor).min(BACKOFF_MAX)
    }

    /// Forgets the failures of `object` after a successful reconcile.
    pub fn succeeded(&self, object: &kube::runtime::reflector::ObjectRef<K>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(object);
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::ObjectRef;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_success() {
        let backoff = Backoff::<ConfigMap>::default();
        let a = || ObjectRef::new("a").within("n");
        let delays: Vec<u64> = (0..8).map(|_| backoff.failed(a()).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            backoff.failed(ObjectRef::new("b").within("n")).as_secs(),
            5,
            "per object"
        );
        backoff.succeeded(&a());
        assert_eq!(backoff.failed(a()).as_secs(), 5);
    }
}

/// An API for a namespaced kind: one namespace when `--namespace` is set, else the whole cluster.
pub fn scoped_api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
