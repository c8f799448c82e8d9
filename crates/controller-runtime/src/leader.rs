//! Lease-based leader election (coordination.k8s.io/v1 Lease), for two replicas.
//!
//! The decision logic ([`decide`], [`next_spec`]) is pure and unit-tested; the HTTP part is a thin
//! get → create/replace round trip that relies on the API server's optimistic concurrency
//! (`metadata.resourceVersion` on replace, `AlreadyExists` on create) so two replicas racing for the
//! same Lease can never both win.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use std::time::Duration;
use tokio::sync::watch;

/// How long a Lease stays valid after its last renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(5);
/// How often a standby retries to acquire.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// How long the leader keeps leading while renewals fail (API errors) before giving up; shorter than
/// [`LEASE_DURATION`] so it steps down before a standby can take over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// Election timings; [`LeaseTiming::default`] is the production 15 s / 5 s, tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// Written to `spec.leaseDurationSeconds` (rounded up to whole seconds there).
    pub lease_duration: Duration,
    /// Renewal period while leading.
    pub renew_interval: Duration,
    /// Acquire retry period while standing by.
    pub retry_interval: Duration,
    /// Step down after renewals failed for this long.
    pub renew_deadline: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            lease_duration: LEASE_DURATION,
            renew_interval: RENEW_INTERVAL,
            retry_interval: RETRY_INTERVAL,
            renew_deadline: RENEW_DEADLINE,
        }
    }
}

/// What to do with the Lease, given what the API server returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No Lease exists: create it with us as holder.
    Create,
    /// We hold it: bump `renewTime`.
    Renew,
    /// Nobody holds it or the holder stopped renewing: take it over (`leaseTransitions` + 1).
    TakeOver {
        /// The holder whose lease expired, if any.
        previous_holder: Option<String>,
    },
    /// Another replica holds a live lease.
    Wait {
        /// Current holder.
        holder: String,
        /// When the holder's lease expires unless renewed.
        expires: Timestamp,
    },
}

/// Decides from the current Lease spec (`None`: no Lease object) what `identity` does at `now`.
/// A lease without `leaseDurationSeconds` uses `default_duration`; one without any renew or
/// acquire time counts as expired.
pub fn decide(
    lease: Option<&LeaseSpec>,
    now: Timestamp,
    identity: &str,
    default_duration: Duration,
) -> LeaseDecision {
    let Some(spec) = lease else {
        return LeaseDecision::Create;
    };
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
    match holder {
        None => LeaseDecision::TakeOver {
            previous_holder: None,
        },
        Some(h) if h == identity => LeaseDecision::Renew,
        Some(h) => {
            let duration = spec
                .lease_duration_seconds
                .filter(|s| *s > 0)
                .map(|s| SignedDuration::from_secs(i64::from(s)))
                .unwrap_or_else(|| {
                    SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::MAX)
                });
            let last = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .map(|t| t.0);
            match last.and_then(|l| l.checked_add(duration).ok()) {
                Some(expires) if expires > now => LeaseDecision::Wait {
                    holder: h.to_owned(),
                    expires,
                },
                _ => LeaseDecision::TakeOver {
                    previous_holder: Some(h.to_owned()),
                },
            }
        }
    }
}

/// The spec to write for `decision` (`None` for [`LeaseDecision::Wait`]).
pub fn next_spec(
    decision: &LeaseDecision,
    previous: Option<&LeaseSpec>,
    now: Timestamp,
    identity: &str,
    duration: Duration,
) -> Option<LeaseSpec> {
    let seconds = i32::try_from(duration.as_secs() + u64::from(duration.subsec_nanos() > 0))
        .unwrap_or(i32::MAX);
    let fresh = |transitions: i32| LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(seconds.max(1)),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    match decision {
        LeaseDecision::Wait { .. } => None,
        LeaseDecision::Create => Some(fresh(0)),
        LeaseDecision::TakeOver { .. } => {
            let prev = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
            Some(fresh(prev.saturating_add(1)))
        }
        LeaseDecision::Renew => {
            let mut spec = previous.cloned().unwrap_or_else(|| fresh(0));
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(seconds.max(1));
            spec.acquire_time.get_or_insert(MicroTime(now));
            Some(spec)
        }
    }
}

/// The holder identity: `POD_NAME` (downward API), else `HOSTNAME`, else /etc/hostname, else a
/// pid-based name; unique per replica either way.
pub fn default_identity() -> String {
    resolve_identity(
        std::env::var("POD_NAME").ok(),
        std::env::var("HOSTNAME").ok(),
        std::fs::read_to_string("/etc/hostname").ok(),
    )
}

/// Pure form of [`default_identity`]: the first non-empty candidate, else `pid-<pid>`.
pub fn resolve_identity(
    pod_name: Option<String>,
    hostname: Option<String>,
    etc_hostname: Option<String>,
) -> String {
    [pod_name, hostname, etc_hostname]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| format!("pid-{}", std::process::id()))
}

/// Result of one acquire/renew round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Leading,
    Standby { holder: String },
}

/// Lease-based leader election (coordination.k8s.io/v1 Lease), for two replicas.
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
}

impl LeaderElection {
    /// Acquires/renews the Lease `name` in `namespace` with holder `identity` (POD_NAME or hostname,
    /// see [`default_identity`]), lease duration 15 s, renew every 5 s.
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing: LeaseTiming::default(),
        }
    }

    /// Overrides the timings (tests use sub-second leases).
    pub fn with_timing(mut self, timing: LeaseTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Blocks until leadership is acquired, then keeps renewing in a background task; the returned
    /// receiver flips to false if the lease is lost (the binary then exits so it restarts clean).
    ///
    /// Transient API errors are retried; 401/403 (missing RBAC for leases) are returned, since
    /// retrying cannot fix them.
    pub async fn acquire(self) -> Result<watch::Receiver<bool>, kube::Error> {
        loop {
            match self.attempt().await {
                Ok(Attempt::Leading) => break,
                Ok(Attempt::Standby { holder }) => {
                    tracing::debug!(lease = %self.name, %holder, "standing by; lease held by another replica");
                }
                Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => {
                    tracing::error!(lease = %self.name, message = %s.message,
                        "not allowed to manage the leader Lease: grant get/create/update on leases.coordination.k8s.io");
                    return Err(kube::Error::Api(s));
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election attempt failed; retrying")
                }
            }
            tokio::time::sleep(self.timing.retry_interval).await;
        }
        tracing::info!(lease = %self.name, identity = %self.identity, "acquired leadership");
        let (tx, rx) = watch::channel(true);
        tokio::spawn(self.renew_loop(tx));
        Ok(rx)
    }

    async fn renew_loop(self, tx: watch::Sender<bool>) {
        let mut last_renew = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.timing.renew_interval) => {}
                () = tx.closed() => return,
            }
            match self.attempt().await {
                Ok(Attempt::Leading) => last_renew = tokio::time::Instant::now(),
                Ok(Attempt::Standby { holder }) => {
                    tracing::warn!(lease = %self.name, %holder, "lost leadership: lease taken over");
                    let _ = tx.send(false);
                    return;
                }
                Err(e) if last_renew.elapsed() >= self.timing.renew_deadline => {
                    tracing::error!(lease = %self.name, error = %e, "lost leadership: could not renew before the deadline");
                    let _ = tx.send(false);
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "lease renewal failed; retrying")
                }
            }
        }
    }

    /// One get → create/replace round trip. Conflicts mean another replica won the race.
    async fn attempt(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = match (&current, spec) {
            // A Lease object without a spec is free.
            (Some(_), None) => LeaseDecision::TakeOver {
                previous_holder: None,
            },
            (_, spec) => decide(spec, now, &self.identity, self.timing.lease_duration),
        };
        if let LeaseDecision::Wait { holder, .. } = decision {
            return Ok(Attempt::Standby { holder });
        }
        if let LeaseDecision::TakeOver {
            previous_holder: Some(prev),
        } = &decision
        {
            tracing::info!(lease = %self.name, previous = %prev, "previous leader's lease expired; taking over");
        }
        let new_spec = next_spec(
            &decision,
            spec,
            now,
            &self.identity,
            self.timing.lease_duration,
        );
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: new_spec,
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // Keeps metadata.resourceVersion, so a concurrent writer makes this fail with 409.
                lease.spec = new_spec;
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Standby {
                holder: "<concurrent writer>".into(),
            }),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn held_by(holder: &str, renewed: &str, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(ts(renewed))),
            acquire_time: Some(MicroTime(ts(renewed))),
            lease_duration_seconds: Some(secs),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(
            decide(None, ts("2025-01-01T00:00:00Z"), "a", D),
            LeaseDecision::Create
        );
    }

    #[test]
    fn own_lease_is_renewed_even_when_expired() {
        let l = held_by("a", "2025-01-01T00:00:00Z", 15);
        assert_eq!(
            decide(Some(&l), ts("2025-01-01T01:00:00Z"), "a", D),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn live_lease_of_another_replica_makes_us_wait_until_it_expires() {
        let l = held_by("b", "2025-01-01T00:00:00Z", 15);
        assert_eq!(
            decide(Some(&l), ts("2025-01-01T00:00:14Z"), "a", D),
            LeaseDecision::Wait {
                holder: "b".into(),
                expires: ts("2025-01-01T00:00:15Z")
            }
        );
    }

    #[test]
    fn expired_lease_of_another_replica_is_taken_over() {
        let l = held_by("b", "2025-01-01T00:00:00Z", 15);
        assert_eq!(
            decide(Some(&l), ts("2025-01-01T00:00:15Z"), "a", D),
            LeaseDecision::TakeOver {
                previous_holder: Some("b".into())
            }
        );
    }

    #[test]
    fn the_lease_objects_own_duration_wins_over_ours() {
        let l = held_by("b", "2025-01-01T00:00:00Z", 60);
        assert!(matches!(
            decide(Some(&l), ts("2025-01-01T00:00:30Z"), "a", D),
            LeaseDecision::Wait { .. }
        ));
    }

    #[test]
    fn released_or_timeless_leases_are_free() {
        let mut l = held_by("", "2025-01-01T00:00:00Z", 15);
        assert_eq!(
            decide(Some(&l), ts("2025-01-01T00:00:01Z"), "a", D),
            LeaseDecision::TakeOver {
                previous_holder: None
            }
        );
        l.holder_identity = Some("b".into());
        l.renew_time = None;
        l.acquire_time = None;
        assert_eq!(
            decide(Some(&l), ts("2025-01-01T00:00:01Z"), "a", D),
            LeaseDecision::TakeOver {
                previous_holder: Some("b".into())
            }
        );
    }

    #[test]
    fn takeover_bumps_transitions_and_resets_times() {
        let prev = held_by("b", "2025-01-01T00:00:00Z", 15);
        let now = ts("2025-01-01T00:01:00Z");
        let s = next_spec(
            &LeaseDecision::TakeOver {
                previous_holder: Some("b".into()),
            },
            Some(&prev),
            now,
            "a",
            D,
        )
        .unwrap();
        assert_eq!(s.holder_identity.as_deref(), Some("a"));
        assert_eq!(s.lease_transitions, Some(4));
        assert_eq!(s.acquire_time, Some(MicroTime(now)));
        assert_eq!(s.renew_time, Some(MicroTime(now)));
        assert_eq!(s.lease_duration_seconds, Some(15));
    }

    #[test]
    fn renew_keeps_acquire_time_and_transitions() {
        let prev = held_by("a", "2025-01-01T00:00:00Z", 15);
        let now = ts("2025-01-01T00:00:05Z");
        let s = next_spec(&LeaseDecision::Renew, Some(&prev), now, "a", D).unwrap();
        assert_eq!(s.acquire_time, prev.acquire_time);
        assert_eq!(s.lease_transitions, Some(3));
        assert_eq!(s.renew_time, Some(MicroTime(now)));
    }

    #[test]
    fn create_starts_at_zero_transitions_and_wait_writes_nothing() {
        let now = ts("2025-01-01T00:00:00Z");
        let s = next_spec(
            &LeaseDecision::Create,
            None,
            now,
            "a",
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(s.lease_transitions, Some(0));
        // Sub-second durations round up: a 0 s lease would be permanently expired.
        assert_eq!(s.lease_duration_seconds, Some(1));
        let w = LeaseDecision::Wait {
            holder: "b".into(),
            expires: now,
        };
        assert_eq!(next_spec(&w, None, now, "a", D), None);
    }

    // ---- HTTP round trips against an in-memory Lease endpoint with real resourceVersion checks ----

    #[derive(Default)]
    struct LeaseStore {
        lease: Option<serde_json::Value>,
        rv: u64,
        writes: u32,
        fail_all: bool,
    }

    fn status(code: u16, reason: &str) -> (u16, serde_json::Value) {
        (
            code,
            serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":reason,"reason":reason,"code":code}),
        )
    }

    fn handle(
        store: &mut LeaseStore,
        method: &http::Method,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        if store.fail_all {
            return status(500, "InternalError");
        }
        match method.as_str() {
            "GET" => match &store.lease {
                Some(l) => (200, l.clone()),
                None => status(404, "NotFound"),
            },
            "POST" if store.lease.is_some() => status(409, "AlreadyExists"),
            "POST" | "PUT" => {
                let mut obj: serde_json::Value = serde_json::from_slice(body).unwrap();
                if method == "PUT" {
                    let sent = obj["metadata"]["resourceVersion"]
                        .as_str()
                        .map(str::to_owned);
                    if sent != Some(store.rv.to_string()) {
                        return status(409, "Conflict");
                    }
                }
                store.rv += 1;
                store.writes += 1;
                obj["metadata"]["resourceVersion"] = store.rv.to_string().into();
                store.lease = Some(obj.clone());
                (if method == "POST" { 201 } else { 200 }, obj)
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }

    fn client(store: Arc<Mutex<LeaseStore>>) -> kube::Client {
        use http_body_util::{BodyExt, Full};
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let store = store.clone();
            async move {
                let method = req.method().clone();
                assert!(
                    req.uri()
                        .path()
                        .starts_with("/apis/coordination.k8s.io/v1/namespaces/ops/leases")
                );
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let (code, json) = handle(&mut store.lock().unwrap(), &method, &body);
                let resp = http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Full::new(axum::body::Bytes::from(
                        serde_json::to_vec(&json).unwrap(),
                    )))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        kube::Client::new(svc, "default")
    }

    fn fast() -> LeaseTiming {
        LeaseTiming {
            lease_duration: Duration::from_secs(1),
            renew_interval: Duration::from_millis(100),
            retry_interval: Duration::from_millis(50),
            renew_deadline: Duration::from_millis(500),
        }
    }

    fn holder(store: &Arc<Mutex<LeaseStore>>) -> Option<String> {
        let s = store.lock().unwrap();
        s.lease
            .as_ref()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    }

    #[tokio::test]
    async fn first_replica_creates_the_lease_and_keeps_renewing_it() {
        let store = Arc::new(Mutex::new(LeaseStore::default()));
        let rx = LeaderElection::new(client(store.clone()), "ops", "ctrl", "pod-a")
            .with_timing(fast())
            .acquire()
            .await
            .unwrap();
        assert!(*rx.borrow());
        assert_eq!(holder(&store), Some("pod-a".into()));
        tokio::time::sleep(Duration::from_millis(450)).await;
        let writes = store.lock().unwrap().writes;
        assert!(
            writes >= 3,
            "expected the create plus renewals, got {writes} writes"
        );
        assert!(*rx.borrow());
    }

    #[tokio::test]
    async fn standby_waits_for_expiry_then_takes_over() {
        let store = Arc::new(Mutex::new(LeaseStore::default()));
        let rx_a = LeaderElection::new(client(store.clone()), "ops", "ctrl", "pod-a")
            .with_timing(fast())
            .acquire()
            .await
            .unwrap();
        let b = tokio::spawn(
            LeaderElection::new(client(store.clone()), "ops", "ctrl", "pod-b")
                .with_timing(fast())
                .acquire(),
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!b.is_finished(), "pod-b must stand by while pod-a renews");
        // Dropping the receiver stops pod-a's renewals, like a crashed leader.
        drop(rx_a);
        let started = std::time::Instant::now();
        let rx_b = tokio::time::timeout(Duration::from_secs(5), b)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(*rx_b.borrow());
        assert_eq!(holder(&store), Some("pod-b".into()));
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "took over before the lease expired"
        );
        let transitions =
            store.lock().unwrap().lease.as_ref().unwrap()["spec"]["leaseTransitions"].as_i64();
        assert_eq!(transitions, Some(1));
    }

    #[tokio::test]
    async fn leader_steps_down_when_another_replica_holds_the_lease() {
        let store = Arc::new(Mutex::new(LeaseStore::default()));
        let mut rx = LeaderElection::new(client(store.clone()), "ops", "ctrl", "pod-a")
            .with_timing(fast())
            .acquire()
            .await
            .unwrap();
        {
            let mut s = store.lock().unwrap();
            let lease = s.lease.as_mut().unwrap();
            lease["spec"]["holderIdentity"] = "intruder".into();
            lease["spec"]["renewTime"] = Timestamp::now().to_string().into();
            s.rv += 1;
            let rv = s.rv.to_string();
            s.lease.as_mut().unwrap()["metadata"]["resourceVersion"] = rv.into();
        }
        tokio::time::timeout(Duration::from_secs(2), rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(!*rx.borrow());
        assert_eq!(holder(&store), Some("intruder".into()));
    }

    #[tokio::test]
    async fn leader_steps_down_when_renewals_fail_past_the_deadline() {
        let store = Arc::new(Mutex::new(LeaseStore::default()));
        let mut rx = LeaderElection::new(client(store.clone()), "ops", "ctrl", "pod-a")
            .with_timing(fast())
            .acquire()
            .await
            .unwrap();
        store.lock().unwrap().fail_all = true;
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(3), rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(!*rx.borrow());
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "stepped down before the renew deadline"
        );
    }

    #[tokio::test]
    async fn forbidden_is_returned_instead_of_retried_forever() {
        let svc = tower::service_fn(|_req: http::Request<kube::client::Body>| async {
            let (code, json) = status(403, "Forbidden");
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(axum::body::Bytes::from(
                        serde_json::to_vec(&json).unwrap(),
                    )))
                    .unwrap(),
            )
        });
        let err = LeaderElection::new(kube::Client::new(svc, "default"), "ops", "ctrl", "pod-a")
            .with_timing(fast())
            .acquire()
            .await
            .unwrap_err();
        assert!(matches!(err, kube::Error::Api(s) if s.code == 403));
    }

    #[test]
    fn identity_prefers_pod_name_then_hostname_then_etc_hostname() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(resolve_identity(s("pod-1"), s("host"), s("etc\n")), "pod-1");
        assert_eq!(resolve_identity(s(""), s("host"), s("etc\n")), "host");
        assert_eq!(resolve_identity(None, None, s("etc\n")), "etc");
        assert!(resolve_identity(None, s(" "), None).starts_with("pid-"));
    }
}
