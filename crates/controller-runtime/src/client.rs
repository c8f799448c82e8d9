//! The Kubernetes client every controller uses, with the timeouts kube leaves unset.
//!
//! kube's client has no response timeout by default, so a request sent to an API server that accepts the
//! connection and never answers (a control plane being restarted, a dead load balancer target) waits forever:
//! a reconcile holding a concurrency slot, a leader that never reaches its renew deadline, a watch that never
//! starts. Every request here must produce its response head within [`REQUEST_TIMEOUT`]; a watch's head comes
//! at once and its body may then stay quiet (the body is not covered: watches have their own idle timeout, and
//! [`crate::cache::Watches`] restarts them after an outage).

use std::time::Duration;

use anyhow::Context as _;

/// Longest wait for a response head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a TCP + TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for `config` with [`CONNECT_TIMEOUT`] and [`REQUEST_TIMEOUT`].
pub fn from_config(mut config: kube::Config) -> anyhow::Result<kube::Client> {
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let builder = kube::client::ClientBuilder::try_from(config)
        .context("cannot build a Kubernetes client from the configuration")?;
    Ok(builder
        .with_layer(&tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT))
        .build())
}

/// [`from_config`] for `KUBECONFIG`, `~/.kube/config` or the in-cluster service account.
pub async fn infer() -> anyhow::Result<kube::Client> {
    let config = kube::Config::infer().await.context(
        "cannot find a Kubernetes configuration: set KUBECONFIG or run in a pod with a service account",
    )?;
    from_config(config)
}
