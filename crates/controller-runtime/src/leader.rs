//! Leader election on a coordination.k8s.io/v1 Lease, with `kube-lease-manager` (server-side apply of the Lease,
//! so two replicas can never both take it; clock skew up to the grace period tolerated).
//!
//! What this module adds to the crate, because a controller must never act while another one may:
//! - **Every Lease call is bounded** by [`LeaseTiming::call_timeout`], far below the grace period: kube's client
//!   waits forever for a hung API server, and a renewal that hangs would let the leader go on reconciling after
//!   its Lease expired for the standby.
//! - **A leader that cannot renew steps down**: any failed renewal ends leadership at once (the renewal is made
//!   `grace` seconds before expiry, the failure is known `call_timeout` later, still before expiry).
//! - **SIGTERM releases the Lease**, and a standby watches the Lease, so it takes over as soon as it is released
//!   instead of sleeping until the old expiry.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::{Notify, watch};

/// Lease timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// `spec.leaseDurationSeconds`: how long the Lease is valid after a renewal.
    pub duration_secs: u64,
    /// The leader renews this long before expiry; also the clock skew between replicas that is tolerated.
    pub grace_secs: u64,
    /// Longest wait for any Lease request.
    pub call_timeout: Duration,
}

impl Default for LeaseTiming {
    /// 15 s Lease renewed 5 s before expiry (every 10 s), 2 s per call.
    fn default() -> Self {
        LeaseTiming {
            duration_secs: 15,
            grace_secs: 5,
            call_timeout: Duration::from_secs(2),
        }
    }
}

/// Why leader election could not run.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or created (RBAC, API server).
    #[error("cannot use the leader Lease {namespace}/{name}: {source}")]
    Lease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// What kube-lease-manager reported.
        source: kube_lease_manager::LeaseManagerError,
    },
}

/// One replica's side of the election for one Lease.
pub struct Elector {
    manager: Arc<LeaseManager>,
    lease_changed: Arc<Notify>,
    watch: tokio::task::AbortHandle,
    timing: LeaseTiming,
    name: String,
}

impl Drop for Elector {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl Elector {
    /// Prepares the election for Lease `name` in `namespace` as `identity` (creating the Lease when missing).
    /// `client`'s requests are bounded by `timing.call_timeout`.
    pub async fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Result<Self, LeaderError> {
        let client = with_timeout(client, timing.call_timeout);
        let manager = LeaseManagerBuilder::new(client.clone(), name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(timing.duration_secs)
            .with_grace(timing.grace_secs)
            .with_field_manager(format!("{name}-{identity}"))
            .build()
            .await
            .map_err(|source| LeaderError::Lease {
                namespace: namespace.into(),
                name: name.into(),
                source,
            })?;
        // Every change of the Lease (a release above all) wakes a standby at once.
        let lease_changed = Arc::new(Notify::new());
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let notify = lease_changed.clone();
        let watch = tokio::spawn(async move {
            let mut events =
                std::pin::pin!(watcher(api, config).backoff(crate::cache::WatchRetry::default()));
            while events.next().await.is_some() {
                notify.notify_waiters();
            }
        })
        .abort_handle();
        Ok(Elector {
            manager: Arc::new(manager),
            lease_changed,
            watch,
            timing,
            name: name.into(),
        })
    }

    /// Waits until this replica holds the Lease. Failures are logged and retried.
    pub async fn acquire(&self) {
        loop {
            let changed = self.lease_changed.notified();
            tokio::select! {
                result = self.manager.changed() => match result {
                    Ok(true) => {
                        tracing::info!(lease = %self.name, "acquired leadership");
                        return;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(lease = %self.name, %error, "leader election attempt failed; retrying");
                        tokio::time::sleep(self.timing.call_timeout).await;
                    }
                },
                // The holder released or changed the Lease: look again now, not at its old expiry.
                () = changed => {}
            }
        }
    }

    /// Renews the Lease in the background while leading. The receiver turns `false` once leadership is lost or
    /// uncertain (a failed renewal): the controller must stop acting then.
    pub fn hold(&self) -> Holding {
        let (leading, receiver) = watch::channel(true);
        let manager = self.manager.clone();
        let name = self.name.clone();
        let renewals = tokio::spawn(async move {
            loop {
                match manager.changed().await {
                    Ok(true) => continue,
                    Ok(false) => {
                        tracing::error!(lease = %name, "leadership lost: the Lease was taken over");
                        break;
                    }
                    Err(error) => {
                        tracing::error!(lease = %name, %error,
                            "cannot renew the leader Lease: stepping down before it can expire for a standby");
                        break;
                    }
                }
            }
            let _ = leading.send(false);
        });
        Holding {
            manager: self.manager.clone(),
            renewals,
            leading: receiver,
            timing: self.timing,
        }
    }
}

/// Leadership while it lasts.
pub struct Holding {
    manager: Arc<LeaseManager>,
    renewals: tokio::task::JoinHandle<()>,
    leading: watch::Receiver<bool>,
    timing: LeaseTiming,
}

impl Drop for Holding {
    /// A dropped holding (a crashed controller task) stops renewing: the Lease then expires for a standby.
    fn drop(&mut self) {
        self.renewals.abort();
    }
}

impl Holding {
    /// `true` while leading; turns `false` when leadership is lost or uncertain.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops renewing and releases the Lease, so a standby takes over at once (call it after the controller
    /// stopped acting). Best effort: a Lease that cannot be released expires on its own.
    pub async fn release(mut self) {
        self.renewals.abort();
        let _ = (&mut self.renewals).await;
        match tokio::time::timeout(self.timing.call_timeout * 2, self.manager.release()).await {
            Ok(Ok(())) => tracing::info!("released the leader Lease"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not release the leader Lease; it expires on its own")
            }
            Err(_) => tracing::warn!("releasing the leader Lease timed out; it expires on its own"),
        }
    }
}

/// `client` with every request bounded by `timeout` (the Lease needs a much shorter bound than other calls).
fn with_timeout(client: kube::Client, timeout: Duration) -> kube::Client {
    let namespace = client.default_namespace().to_string();
    let service = tower::ServiceBuilder::new()
        .layer(tower::timeout::TimeoutLayer::new(timeout))
        .service_fn(move |request: http::Request<kube::client::Body>| {
            let client = client.clone();
            async move { client.send(request).await }
        });
    kube::Client::new(service, namespace)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_prefers_the_pod_name_then_the_hostname() {
        assert_eq!(
            resolve_identity(Some("pod-1".into()), Some("host".into()), None),
            "pod-1"
        );
        assert_eq!(
            resolve_identity(Some(" ".into()), None, Some("node\n".into())),
            "node"
        );
        assert!(resolve_identity(None, None, None).starts_with("pid-"));
    }

    #[test]
    fn calls_are_bounded_well_inside_the_grace_period() {
        let timing = LeaseTiming::default();
        assert!(timing.call_timeout * 2 < Duration::from_secs(timing.grace_secs));
        assert!(timing.grace_secs * 2 < timing.duration_secs);
    }
}
