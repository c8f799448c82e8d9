//! The start-up sequence every controller binary shares: client, metrics registry, the /metrics /healthz
//! /readyz server, Lease leader election, and a shutdown future that fires on SIGTERM or when the lease is lost.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context as _;
use prometheus::Registry;

use crate::cli::RunArgs;
use crate::health::Health;
use crate::metrics::ControllerMetrics;
use crate::shard::Shard;

/// A shutdown future a `kube::runtime::Controller` accepts (`graceful_shutdown_on` needs `Send + Sync`).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>>;

/// How a controller runs, as its `run(client, config, shutdown)` takes it (tests build it directly).
#[derive(Clone)]
pub struct ControllerConfig {
    /// Watch one namespace instead of all.
    pub namespace: Option<String>,
    /// Maximum parallel reconciles.
    pub concurrency: u16,
    /// Reconcile metrics.
    pub metrics: ControllerMetrics,
    /// Readiness, flipped once the caches are synced.
    pub health: Health,
    /// Identity in events (the pod name).
    pub instance: Option<String>,
    /// The objects this Deployment works on (`--shard-selector`): apply [`Shard::watch`] to every watch of
    /// objects that carry the shard label.
    pub shard: Shard,
}

impl ControllerContext {
    /// The controller's configuration and its shutdown future.
    pub fn split(self) -> (ControllerConfig, Shutdown) {
        let config = ControllerConfig {
            namespace: self.namespace,
            concurrency: self.concurrency,
            metrics: self.metrics,
            health: self.health,
            instance: self.instance,
            shard: self.shard,
        };
        (config, self.shutdown)
    }
}

/// What [`run_controller`] hands to a controller's `run`.
pub struct ControllerContext {
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--concurrency`.
    pub concurrency: u16,
    /// The controller's reconcile metrics, registered in the served registry.
    pub metrics: ControllerMetrics,
    /// The served registry, for controller-specific families.
    pub registry: Registry,
    /// Readiness shared with `/readyz`.
    pub health: Health,
    /// This replica's identity (pod name), for event reporters.
    pub instance: Option<String>,
    /// `--shard-selector` (see [`ControllerConfig::shard`]).
    pub shard: Shard,
    /// Resolves on SIGTERM/Ctrl-C, or when leadership is lost.
    pub shutdown: Shutdown,
}

/// Runs a controller binary: connects (KUBECONFIG or in-cluster), serves metrics and health on
/// `--metrics-addr`, waits for the `<name>-leader` Lease (`<name>-leader-<shard>` in a named shard) when
/// `--leader-election` is on, then runs `start` until shutdown. Losing the lease stops the controller so the process
/// exits and restarts clean. A bad `--shard-selector` stops it before it connects.
pub async fn run_controller<F, Fut>(
    name: &'static str,
    args: RunArgs,
    start: F,
) -> anyhow::Result<()>
where
    F: FnOnce(kube::Client, ControllerContext) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    args.shard()?;
    let client = crate::client::infer().await?;
    run_controller_with(client, name, args, start).await
}

/// [`run_controller`] with a given client (tests pass one for the in-process API server).
pub async fn run_controller_with<F, Fut>(
    client: kube::Client,
    name: &'static str,
    args: RunArgs,
    start: F,
) -> anyhow::Result<()>
where
    F: FnOnce(kube::Client, ControllerContext) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let shard = args.shard()?;
    if let Some(selector) = shard.selector() {
        tracing::info!(%selector, lease = shard.lease_name(name), "sharded: watching only the objects the selector picks");
    }
    let registry = Registry::new();
    let metrics = ControllerMetrics::new(name, &registry);
    let health = Health::default();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = crate::server::serve(
        args.metrics_addr,
        crate::server::router(registry.clone(), health.clone()),
        {
            let mut stop = stop_rx.clone();
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }
        },
    );
    let server = tokio::spawn(server);
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            crate::shutdown::signal().await;
            let _ = stop_tx.send(true);
        }
    });

    let identity = crate::leader::default_identity();
    let mut holding = None;
    if args.leader_election {
        // A standby replica is healthy: readiness reports its role but does not fail.
        health.set_ready(true);
        let lease = shard.lease_name(name);
        let elector = crate::leader::Elector::new(
            client.clone(),
            &args.effective_lease_namespace(),
            &lease,
            &identity,
            crate::leader::LeaseTiming::default(),
        )
        .await?;
        tokio::select! {
            () = elector.acquire() => {}
            () = wait_stopped(stop_rx.clone()) => return Ok(()),
        }
        health.set_ready(false);
        let held = elector.hold();
        let mut leading = held.leading();
        tokio::spawn({
            let stop_tx = stop_tx.clone();
            async move {
                let _ = leading.wait_for(|leader| !*leader).await;
                let _ = stop_tx.send(true);
            }
        });
        holding = Some((elector, held));
    }
    health.set_leader(true);
    metrics.set_leader(true);

    let context = ControllerContext {
        namespace: args.namespace.clone(),
        concurrency: args.concurrency,
        metrics: metrics.clone(),
        registry,
        health,
        instance: Some(identity),
        shard,
        shutdown: Box::pin(wait_stopped(stop_rx)),
    };
    let lost = holding.as_ref().map(|(_, held)| held.leading());
    let result = tokio::select! {
        result = start(client, context) => result,
        // Leadership lost or uncertain: the controller was asked to stop; if it has not within this grace, it is
        // dropped (in-flight reconciles are cancelled) so it cannot act once the Lease expires for a standby.
        () = step_down_deadline(lost) => Err(anyhow::anyhow!(
            "leadership lost and the controller did not stop within {STEP_DOWN_GRACE:?}: stopped it"
        )),
    };
    metrics.set_leader(false);
    let _ = stop_tx.send(true);
    if let Some((_elector, held)) = holding {
        // Only now that nothing reconciles any more: a standby takes over at once instead of at expiry.
        held.release().await;
    }
    let _ = server.await;
    result
}

/// How long a controller that lost leadership may take to stop on its own.
pub const STEP_DOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves [`STEP_DOWN_GRACE`] after leadership was lost; never without leader election.
async fn step_down_deadline(leading: Option<tokio::sync::watch::Receiver<bool>>) {
    let Some(mut leading) = leading else {
        return std::future::pending().await;
    };
    let _ = leading.wait_for(|leader| !*leader).await;
    tokio::time::sleep(STEP_DOWN_GRACE).await;
}

async fn wait_stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// The whole `<bin> run` of a controller binary: logging, a Tokio runtime, [`run_controller`], and the exit code
/// (failure with the error chain logged when the controller could not start or stopped with an error).
pub fn main<F, Fut>(name: &'static str, args: RunArgs, start: F) -> std::process::ExitCode
where
    F: FnOnce(kube::Client, ControllerContext) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    crate::telemetry::init(args.log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")
        .and_then(|runtime| runtime.block_on(run_controller(name, args, start)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "{name} stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs a `Controller::run` stream to its end. Outcomes are logged at debug level only: failures are logged (and
/// counted) where they are handled, in the controller's `error_policy`.
pub async fn drain<K, E>(
    results: impl futures::Stream<
        Item = Result<
            (
                kube::runtime::reflector::ObjectRef<K>,
                kube::runtime::controller::Action,
            ),
            kube::runtime::controller::Error<E, kube::runtime::watcher::Error>,
        >,
    >,
) where
    K: kube::Resource,
    E: std::error::Error + 'static,
{
    use futures::StreamExt;
    results
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile did not complete"),
            }
        })
        .await;
}
