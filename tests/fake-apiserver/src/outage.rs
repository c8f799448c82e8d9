//! Faults on demand: per-route delays and hangs (for the tower service and HTTP alike), and the
//! outage modes of the HTTP server (`http.rs`).
//!
//! A hung request is not failed: it waits until its rule is removed and then proceeds, like a
//! request stuck behind a partition that heals. A client that gives up first (a timeout around
//! the call, or `kube::Config::read_timeout` over HTTP) simply drops it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use tokio::sync::watch;

use crate::FakeApiServer;

/// What the HTTP server does during an outage (see [`crate::HttpHandle::outage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutageMode {
    /// The listening socket is closed, so connects fail with `ECONNREFUSED`, and every open
    /// connection (watch streams included) is cut, as when the apiserver process dies.
    Refuse,
    /// Connections are accepted but nothing is answered, and open watch streams stall without
    /// closing, as behind a network partition. Everything resumes on `restore`.
    Hang,
}

/// The parts of a request a route rule matches on.
#[derive(Clone, Debug)]
pub struct RouteRequest {
    /// HTTP method.
    pub method: Method,
    /// URL path, e.g. `/apis/coordination.k8s.io/v1/namespaces/ns/leases/name`.
    pub path: String,
    /// Raw query string (without `?`), e.g. `watch=true&resourceVersion=5`.
    pub query: String,
}

impl RouteRequest {
    pub(crate) fn of<B>(req: &http::Request<B>) -> Self {
        Self {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().unwrap_or("").to_owned(),
        }
    }

    /// Whether this is a watch (`watch=true` or `watch=1`).
    pub fn is_watch(&self) -> bool {
        let q = crate::routes::parse_query(&self.query);
        q.get("watch").is_some_and(|v| v == "true" || v == "1")
    }
}

/// Names a rule added by [`FakeApiServer::delay_route`], [`FakeApiServer::hang`] or
/// [`FakeApiServer::hang_when`], for [`FakeApiServer::remove_route_rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRuleId(u64);

type Matcher = Box<dyn Fn(&RouteRequest) -> bool + Send + Sync>;

enum Action {
    Delay(Duration),
    Hang,
}

struct Rule {
    id: u64,
    matches: Matcher,
    action: Action,
}

/// The active route rules, shared by every clone of a server.
pub(crate) struct RouteRules {
    rules: Mutex<Vec<Arc<Rule>>>,
    next_id: AtomicU64,
    /// Bumped whenever a rule goes away, so hung requests re-check.
    removed: watch::Sender<u64>,
}

impl Default for RouteRules {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            removed: watch::Sender::new(0),
        }
    }
}

impl RouteRules {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Rule>>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, matches: Matcher, action: Action) -> RouteRuleId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Arc::new(Rule {
            id,
            matches,
            action,
        }));
        RouteRuleId(id)
    }

    fn remove(&self, keep: impl Fn(&Rule) -> bool) -> bool {
        let removed = {
            let mut rules = self.lock();
            let before = rules.len();
            rules.retain(|r| keep(r));
            rules.len() != before
        };
        if removed {
            self.removed.send_modify(|n| *n += 1);
        }
        removed
    }

    /// The summed delay of the matching delay rules, and whether a hang rule matches.
    fn matching(&self, req: &RouteRequest) -> (Duration, bool) {
        let rules: Vec<Arc<Rule>> = self.lock().clone();
        let mut delay = Duration::ZERO;
        for rule in rules.iter().filter(|r| (r.matches)(req)) {
            match rule.action {
                Action::Delay(d) => delay += d,
                Action::Hang => return (delay, true),
            }
        }
        (delay, false)
    }

    /// Holds a request as the rules say: returns at once when none matches.
    pub(crate) async fn hold(&self, req: &RouteRequest) {
        // Subscribed before checking, so a removal between check and wait is not missed.
        let mut removed = self.removed.subscribe();
        loop {
            let (delay, hang) = self.matching(req);
            if !hang {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                return;
            }
            if removed.changed().await.is_err() {
                return;
            }
        }
    }
}

impl FakeApiServer {
    /// Delays every request for which `matches` holds by `delay` before handling it (delays of
    /// several matching rules add up). Applies to [`Self::client`], [`Self::client_as`] and HTTP.
    pub fn delay_route(
        &self,
        matches: impl Fn(&RouteRequest) -> bool + Send + Sync + 'static,
        delay: Duration,
    ) -> RouteRuleId {
        self.route_rules
            .add(Box::new(matches), Action::Delay(delay))
    }

    /// Holds every request whose path starts with `path_prefix` unanswered until the rule is
    /// removed, e.g. `server.hang("/apis/coordination.k8s.io/v1/namespaces/ns/leases")`.
    pub fn hang(&self, path_prefix: &str) -> RouteRuleId {
        let prefix = path_prefix.to_owned();
        self.hang_when(move |r| r.path.starts_with(&prefix))
    }

    /// Holds every request for which `matches` holds unanswered until the rule is removed,
    /// e.g. only Lease updates: `|r| r.method == Method::PUT && r.path.contains("/leases/")`.
    pub fn hang_when(
        &self,
        matches: impl Fn(&RouteRequest) -> bool + Send + Sync + 'static,
    ) -> RouteRuleId {
        self.route_rules.add(Box::new(matches), Action::Hang)
    }

    /// Removes one rule; requests it was holding proceed. `false` if it was already gone.
    pub fn remove_route_rule(&self, id: RouteRuleId) -> bool {
        self.route_rules.remove(|r| r.id != id.0)
    }

    /// Removes every delay and hang rule.
    pub fn clear_route_rules(&self) {
        self.route_rules.remove(|_| false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str) -> RouteRequest {
        RouteRequest {
            method,
            path: path.to_owned(),
            query: String::new(),
        }
    }

    #[tokio::test]
    async fn hung_request_proceeds_once_its_rule_is_removed() {
        let rules = Arc::new(RouteRules::default());
        let hang = rules.add(Box::new(|r| r.method == Method::PUT), Action::Hang);
        let held = {
            let rules = rules.clone();
            tokio::spawn(async move { rules.hold(&req(Method::PUT, "/x")).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished(), "a matching request is held");
        rules.hold(&req(Method::GET, "/x")).await;
        assert!(rules.remove(|r| r.id != hang.0));
        tokio::time::timeout(Duration::from_secs(1), held)
            .await
            .expect("released")
            .unwrap();
    }

    #[test]
    fn matching_delays_add_up_and_others_do_not_count() {
        let rules = RouteRules::default();
        rules.add(
            Box::new(|r| r.path.starts_with("/api/")),
            Action::Delay(Duration::from_millis(10)),
        );
        rules.add(Box::new(|_| true), Action::Delay(Duration::from_millis(5)));
        rules.add(
            Box::new(|r| r.path == "/nothing"),
            Action::Delay(Duration::from_secs(9)),
        );
        assert_eq!(
            rules.matching(&req(Method::GET, "/api/v1")),
            (Duration::from_millis(15), false)
        );
        assert_eq!(
            rules.matching(&req(Method::GET, "/apis")),
            (Duration::from_millis(5), false)
        );
    }
}
