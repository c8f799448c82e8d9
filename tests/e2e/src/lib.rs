//! The end-to-end harness: starts the four controllers in-process (through the same `run` entry points their
//! binaries use) against either the in-process fake API server or a real cluster, and drives them only through
//! the Kubernetes API. Scenarios in `tests/` are written once against [`Env`] and run in both modes.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, bail};
use controller_runtime::health::Health;
use controller_runtime::metrics::ControllerMetrics;
use fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::task::JoinHandle;

/// How long a scenario waits for a condition before failing.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One controller running in this process.
pub struct Running {
    /// Its reconcile metrics (api writes are counted here, in both modes).
    pub metrics: ControllerMetrics,
    /// What its `/readyz` would answer.
    pub health: Health,
    task: JoinHandle<()>,
}

/// A scenario's world: a client, the namespace it owns, and the controllers it started.
pub struct Env {
    /// Client of the fake server or the real cluster.
    pub client: Client,
    /// The in-process API server, in fake mode.
    pub fake: Option<FakeApiServer>,
    /// The scenario's namespace (fresh per scenario on a real cluster).
    pub namespace: String,
    /// Registry the controllers' metrics are registered in.
    pub registry: prometheus::Registry,
    /// Started controllers, by name.
    pub controllers: Vec<(&'static str, Running)>,
}

impl Env {
    /// A fresh fake API server with the generated CRDs' defaults and Argo Workflows installed.
    pub async fn fake() -> Env {
        let mut builder =
            FakeApiServer::builder().resource(fake_apiserver::ResourceInfo::argo_workflows());
        for crd in crd_types::all_crds() {
            builder = builder.crd_defaults_from_yaml(&serde_json::to_string(&crd).unwrap());
        }
        let fake = builder.build();
        Env {
            client: fake.client(),
            fake: Some(fake),
            namespace: "default".into(),
            registry: Default::default(),
            controllers: vec![],
        }
    }

    /// A fresh namespace on the cluster of `BMC_E2E_KUBECONFIG`, with the CRDs installed.
    pub async fn real(scenario: &str) -> anyhow::Result<Env> {
        use kube::config::{KubeConfigOptions, Kubeconfig};
        let path = std::env::var("BMC_E2E_KUBECONFIG").context("BMC_E2E_KUBECONFIG is not set")?;
        let kubeconfig =
            Kubeconfig::read_from(&path).with_context(|| format!("reading kubeconfig {path}"))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let client = Client::try_from(config)?;
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(client.clone());
        for crd in crd_types::all_crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.patch(
                &name,
                &PatchParams::apply("bmc-e2e").force(),
                &Patch::Apply(&crd),
            )
            .await?;
        }
        tokio::time::sleep(Duration::from_secs(2)).await; // CRDs become Established
        let suffix = jiff::Timestamp::now().as_millisecond() % 1_000_000;
        let namespace = format!("bmc-e2e-{scenario}-{suffix}");
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(Env {
            client,
            fake: None,
            namespace,
            registry: Default::default(),
            controllers: vec![],
        })
    }

    /// Deletes the scenario's namespace on a real cluster.
    pub async fn cleanup(self) {
        for (_, running) in &self.controllers {
            running.task.abort();
        }
        if self.fake.is_none() {
            let _ = Api::<Namespace>::all(self.client.clone())
                .delete(&self.namespace, &Default::default())
                .await;
        }
    }

    fn metrics(&self, name: &'static str) -> ControllerMetrics {
        // One registry per controller instance: a restarted controller gets fresh counters.
        ControllerMetrics::new(name, &prometheus::Registry::new())
    }

    fn spawn<F>(&mut self, name: &'static str, metrics: ControllerMetrics, health: Health, run: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let task = tokio::spawn(async move {
            if let Err(e) = run.await {
                panic!("{name} stopped: {e:#}");
            }
        });
        self.controllers.push((
            name,
            Running {
                metrics,
                health,
                task,
            },
        ));
    }

    /// Starts gpg-keygen.
    pub fn start_gpg_keygen(&mut self) {
        let metrics = self.metrics("gpg-keygen");
        let health = Health::default();
        let config = gpg_keygen::Config {
            namespace: Some(self.namespace.clone()),
            concurrency: 4,
            metrics: metrics.clone(),
            registry: prometheus::Registry::new(),
            health: health.clone(),
            instance: Some("e2e".into()),
            shutdown: Box::pin(std::future::pending()),
        };
        self.spawn(
            "gpg-keygen",
            metrics,
            health,
            gpg_keygen::run(self.client.clone(), config),
        );
    }

    /// Starts the scheduled-controller.
    pub fn start_scheduled_controller(&mut self) {
        let metrics = self.metrics("scheduled-controller");
        let health = Health::default();
        let config = scheduled_controller::Config {
            namespace: Some(self.namespace.clone()),
            concurrency: 4,
            metrics: metrics.clone(),
            health: health.clone(),
            instance: Some("e2e".into()),
        };
        self.spawn(
            "scheduled-controller",
            metrics,
            health,
            scheduled_controller::run(self.client.clone(), config, std::future::pending()),
        );
    }

    /// Starts the action-controller.
    pub fn start_action_controller(&mut self) {
        let metrics = self.metrics("action-controller");
        let health = Health::default();
        let config = action_controller::Config {
            namespace: Some(self.namespace.clone()),
            concurrency: 4,
            metrics: metrics.clone(),
            health: health.clone(),
            instance: Some("e2e".into()),
        };
        self.spawn(
            "action-controller",
            metrics,
            health,
            action_controller::run(self.client.clone(), config, std::future::pending()),
        );
    }

    /// Starts the metrics exporter, registering its collector in [`Env::registry`].
    pub fn start_metrics_exporter(&mut self) {
        let health = Health::default();
        let config = metrics_exporter::exporter::ExporterConfig {
            namespace: Some(self.namespace.clone()),
            overdue_grace: jiff::SignedDuration::from_hours(1),
            registry: self.registry.clone(),
            health: health.clone(),
        };
        let metrics = self.metrics("metrics-exporter");
        self.spawn(
            "metrics-exporter",
            metrics,
            health,
            metrics_exporter::exporter::run(self.client.clone(), config, std::future::pending()),
        );
    }

    /// Starts every controller.
    pub fn start_all(&mut self) {
        self.start_gpg_keygen();
        self.start_scheduled_controller();
        self.start_action_controller();
        self.start_metrics_exporter();
    }

    /// Kills a controller mid-flight, as a crash would (no graceful shutdown).
    pub fn kill(&mut self, name: &str) {
        self.controllers.retain(|(n, running)| {
            if *n == name {
                running.task.abort();
            }
            *n != name
        });
    }

    /// Waits until every running controller reports ready (its caches are synced).
    pub async fn wait_all_ready(&self) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while let Some((name, _)) = self.controllers.iter().find(|(_, r)| !r.health.is_ready()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// API writes made by the running controllers, as they counted them (works in both modes).
    pub fn controller_writes(&self) -> u64 {
        self.controllers
            .iter()
            .map(|(_, r)| r.metrics.api_writes_total())
            .sum()
    }

    /// Creates every document of `yaml` in the scenario's namespace (cluster-scoped kinds as they are).
    pub async fn create_yaml(&self, yaml: &str) -> anyhow::Result<()> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)?;
        for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
            let api = self.dynamic_api(&doc)?;
            if doc["kind"] != "ClusterBackupProcedureTemplate" {
                doc["metadata"]["namespace"] = Value::String(self.namespace.clone());
            }
            let object: DynamicObject = serde_json::from_value(doc)?;
            api.create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("creating {:?}", object.metadata.name))?;
        }
        Ok(())
    }

    fn dynamic_api(&self, doc: &Value) -> anyhow::Result<Api<DynamicObject>> {
        let api_version = doc["apiVersion"]
            .as_str()
            .context("document without apiVersion")?;
        let kind = doc["kind"].as_str().context("document without kind")?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let plural = match kind {
            "Secret" => "secrets",
            "ConfigMap" => "configmaps",
            "Job" => "jobs",
            "ScheduledBackup" => "scheduledbackups",
            "RequestedBackupAction" => "requestedbackupactions",
            "ClusterBackupProcedureTemplate" => "clusterbackupproceduretemplates",
            other => bail!("the e2e harness does not know the plural of {other}"),
        };
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        Ok(if kind == "ClusterBackupProcedureTemplate" {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
        })
    }

    /// A typed API in the scenario's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Polls `name` until `predicate` holds, failing after [`TIMEOUT`] with `what` and the last object seen.
    pub async fn wait_for<K>(&self, name: &str, what: &str, predicate: impl Fn(&K) -> bool) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = self.api();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let current = api.get_opt(name).await.expect("API reachable");
            if let Some(object) = &current
                && predicate(object)
            {
                return object.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what} on {name}; last seen: {current:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until `name` is gone.
    pub async fn wait_gone<K>(&self, name: &str)
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = self.api();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while api.get_opt(name).await.expect("API reachable").is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {name} to be deleted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the controllers stop changing anything (fake mode: no state change for a while).
    pub async fn settle(&self) {
        match &self.fake {
            Some(fake) => fake
                .wait_until_quiet(Duration::from_millis(400), TIMEOUT)
                .await
                .expect("controllers settle"),
            None => tokio::time::sleep(Duration::from_secs(3)).await,
        }
    }

    /// Marks a Job finished the way the Kubernetes Job controller would (status subresource).
    pub async fn finish_job(&self, name: &str, succeeded: bool) {
        let now = jiff::Timestamp::now().to_string();
        let condition = if succeeded {
            serde_json::json!({"type": "Complete", "status": "True", "lastTransitionTime": now})
        } else {
            serde_json::json!({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                               "message": "Job has reached the specified backoff limit", "lastTransitionTime": now})
        };
        let mut status = serde_json::json!({"startTime": now, "conditions": [condition]});
        if succeeded {
            status["completionTime"] = Value::String(now.clone());
            status["succeeded"] = 1.into();
        } else {
            status["failed"] = 1.into();
        }
        let api: Api<k8s_openapi::api::batch::v1::Job> = self.api();
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": status})),
        )
        .await
        .expect("patching Job status");
    }
}

/// Events about `name` in the scenario's namespace (events.k8s.io/v1), as `(type, reason, note)`.
pub async fn events_for(env: &Env, name: &str) -> Vec<(String, String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = env.api();
    api.list(&Default::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}
