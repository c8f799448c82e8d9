//! The end-to-end harness: starts the four controllers in-process (through the same `run` entry points their
//! binaries use) against either the in-process fake API server or a real cluster, and drives them only through
//! the Kubernetes API. Scenarios in `tests/` are written once against [`Env`] and run in both modes.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, bail};
use controller_runtime::health::Health;
use controller_runtime::metrics::ControllerMetrics;
use fake_apiserver::{FakeApiServer, HttpHandle};
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

/// What `helm template` renders for the default values (drift-checked against the chart): the controllers run
/// as its ServiceAccounts with exactly its RBAC, on the fake server and on a real cluster, so a verb missing from
/// the chart fails the suite rather than a user's install.
pub const RELEASE_MANIFESTS: &str = include_str!("../../../deploy/manifests/backup-maker.yaml");
/// The release namespace of [`RELEASE_MANIFESTS`], where the ServiceAccounts live.
pub const RELEASE_NAMESPACE: &str = "backup-maker";
/// The controllers, by the name their ServiceAccount ends with.
pub const CONTROLLERS: [&str; 4] = [
    "gpg-keygen",
    "scheduled-controller",
    "action-controller",
    "metrics-exporter",
];

/// The ServiceAccount a controller runs as.
pub fn service_account(controller: &str) -> String {
    format!("backup-maker-{controller}")
}

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
    /// Client of the fake server or the real cluster, as a cluster admin (the user of the scenario).
    pub client: Client,
    /// The in-process API server, in fake mode.
    pub fake: Option<FakeApiServer>,
    /// The fake server's HTTP endpoint (outages are switched on it), in fake mode.
    pub http: Option<HttpHandle>,
    /// One client per controller, authenticated as its ServiceAccount of [`RELEASE_MANIFESTS`].
    pub controller_clients: HashMap<&'static str, Client>,
    /// The scenario's namespace (fresh per scenario on a real cluster).
    pub namespace: String,
    /// Registry the controllers' metrics are registered in.
    pub registry: prometheus::Registry,
    /// Started controllers, by name.
    pub controllers: Vec<(&'static str, Running)>,
}

impl Env {
    /// A fresh fake API server with the generated CRDs' defaults and Argo Workflows installed, served over HTTP,
    /// enforcing the chart's RBAC and (the strictest setting) OwnerReferencesPermissionEnforcement. Every client
    /// is built like the binaries build theirs ([`controller_runtime::client::from_config`]: timeouts included).
    pub async fn fake() -> Env {
        let mut builder =
            FakeApiServer::builder().resource(fake_apiserver::ResourceInfo::argo_workflows());
        for crd in crd_types::all_crds() {
            builder = builder.crd_defaults_from_yaml(&serde_json::to_string(&crd).unwrap());
        }
        let rbac = fake_apiserver::Rbac::try_from_manifests(RELEASE_MANIFESTS, RELEASE_NAMESPACE)
            .expect("the rendered chart's RBAC parses");
        let fake = builder
            .rbac(rbac)
            .owner_references_permission_enforcement(true)
            .build();
        let http = fake.serve_http();
        let client = fake_client(&http, None).await;
        let mut controller_clients = HashMap::new();
        for controller in CONTROLLERS {
            let token = fake_apiserver::service_account_token(
                RELEASE_NAMESPACE,
                &service_account(controller),
            );
            controller_clients.insert(controller, fake_client(&http, Some(&token)).await);
        }
        Env {
            client,
            fake: Some(fake),
            http: Some(http),
            controller_clients,
            namespace: "default".into(),
            registry: Default::default(),
            controllers: vec![],
        }
    }

    /// The client `controller` runs with (its ServiceAccount).
    pub fn controller_client(&self, controller: &str) -> Client {
        self.controller_clients
            .get(controller)
            .unwrap_or_else(|| panic!("no ServiceAccount client for {controller}"))
            .clone()
    }

    /// A fresh namespace on the cluster of `BMC_E2E_KUBECONFIG`, with the CRDs installed (waited for until
    /// `Established`), the chart's ServiceAccounts and RBAC applied, and one client per controller authenticated
    /// with a token of its ServiceAccount (TokenRequest).
    pub async fn real(scenario: &str) -> anyhow::Result<Env> {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        use kube::config::{KubeConfigOptions, Kubeconfig};
        let path = std::env::var("BMC_E2E_KUBECONFIG").context("BMC_E2E_KUBECONFIG is not set")?;
        let kubeconfig =
            Kubeconfig::read_from(&path).with_context(|| format!("reading kubeconfig {path}"))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let client = controller_runtime::client::from_config(config.clone())?;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in crd_types::all_crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.patch(
                &name,
                &PatchParams::apply("bmc-e2e").force(),
                &Patch::Apply(&crd),
            )
            .await?;
            let established = kube::runtime::wait::await_condition(
                crds.clone(),
                &name,
                kube::runtime::wait::conditions::is_crd_established(),
            );
            tokio::time::timeout(TIMEOUT, established)
                .await
                .with_context(|| format!("CRD {name} did not become Established"))??;
        }
        apply_release_rbac(&client).await?;
        let mut controller_clients = HashMap::new();
        for controller in CONTROLLERS {
            let token = service_account_token(&client, &service_account(controller)).await?;
            let mut config = config.clone();
            config.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))?;
            controller_clients.insert(controller, controller_runtime::client::from_config(config)?);
        }
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
            http: None,
            controller_clients,
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
            shard: Default::default(),
            shutdown: Box::pin(std::future::pending()),
        };
        self.spawn(
            "gpg-keygen",
            metrics,
            health,
            gpg_keygen::run(self.controller_client("gpg-keygen"), config),
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
            shard: Default::default(),
        };
        self.spawn(
            "scheduled-controller",
            metrics,
            health,
            scheduled_controller::run(
                self.controller_client("scheduled-controller"),
                config,
                std::future::pending(),
            ),
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
            shard: Default::default(),
        };
        self.spawn(
            "action-controller",
            metrics,
            health,
            action_controller::run(
                self.controller_client("action-controller"),
                config,
                std::future::pending(),
            ),
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
            shard: Default::default(),
        };
        let metrics = self.metrics("metrics-exporter");
        self.spawn(
            "metrics-exporter",
            metrics,
            health,
            metrics_exporter::exporter::run(
                self.controller_client("metrics-exporter"),
                config,
                std::future::pending(),
            ),
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

    /// Finishes Job `name` the way it finishes on a cluster without a kubelet: its Pod (created by the job
    /// controller, the fake's or the real one) is marked `Succeeded`, or `Failed` with a termination message,
    /// through `pods/status`; the job controller then writes the Job's status. Failed Pods are replaced until the
    /// Job's backoff limit is reached (the e2e ScheduledBackups set `backoffLimit: 0`).
    pub async fn finish_job(&self, name: &str, succeeded: bool) {
        use fake_apiserver::testing::{Outcome, finish_job_pod};
        let jobs: Api<k8s_openapi::api::batch::v1::Job> = self.api();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let outcome = if succeeded {
                Outcome::Succeeded
            } else {
                Outcome::Failed {
                    exit_code: 3,
                    message: "pg_dump: error: connection to server failed".into(),
                }
            };
            finish_job_pod(self.client.clone(), &self.namespace, name, outcome)
                .await
                .unwrap_or_else(|e| panic!("finishing the Pod of Job {name}: {e}"));
            // Wait for the job controller's verdict, or for the replacement of a failed Pod.
            loop {
                let job = jobs.get(name).await.expect("reading the Job");
                let finished = job
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| {
                        c.iter().any(|c| {
                            (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"
                        })
                    });
                if finished {
                    return;
                }
                let active = job.status.as_ref().and_then(|s| s.active).unwrap_or(0);
                if !succeeded && active > 0 {
                    break; // a replacement Pod runs: fail it too
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "Job {name} did not finish: {:?}",
                    job.status
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A client of the fake server over HTTP, built like the binaries build theirs.
async fn fake_client(http: &HttpHandle, token: Option<&str>) -> Client {
    let config = http.config(token).await.expect("kubeconfig of the fake");
    controller_runtime::client::from_config(config).expect("client of the fake")
}

/// Applies the ServiceAccounts and RBAC of [`RELEASE_MANIFESTS`] (server-side apply, idempotent).
async fn apply_release_rbac(client: &Client) -> anyhow::Result<()> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(RELEASE_MANIFESTS)?;
    for doc in docs.into_iter().filter(|d| d.is_object()) {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let (group, version, plural, namespaced) = match kind.as_str() {
            "Namespace" => ("", "v1", "namespaces", false),
            "ServiceAccount" => ("", "v1", "serviceaccounts", true),
            "ClusterRole" => ("rbac.authorization.k8s.io", "v1", "clusterroles", false),
            "ClusterRoleBinding" => (
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                false,
            ),
            "Role" => ("rbac.authorization.k8s.io", "v1", "roles", true),
            "RoleBinding" => ("rbac.authorization.k8s.io", "v1", "rolebindings", true),
            _ => continue,
        };
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let object: DynamicObject = serde_json::from_value(doc)?;
        let name = object
            .metadata
            .name
            .clone()
            .context("RBAC object without a name")?;
        let api: Api<DynamicObject> = if namespaced {
            let ns = object
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| RELEASE_NAMESPACE.into());
            Api::namespaced_with(client.clone(), &ns, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        api.patch(
            &name,
            &PatchParams::apply("bmc-e2e").force(),
            &Patch::Apply(&object),
        )
        .await
        .with_context(|| format!("applying {kind} {name}"))?;
    }
    Ok(())
}

/// A token of ServiceAccount `name` in [`RELEASE_NAMESPACE`] (TokenRequest, one hour).
async fn service_account_token(client: &Client, name: &str) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}
    }))?;
    let answer = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| {
            format!("requesting a token of ServiceAccount {RELEASE_NAMESPACE}/{name}")
        })?;
    Ok(answer.status.context("TokenRequest without status")?.token)
}

/// The scenarios' ScheduledBackup `app1` on the built-in pg15 template, with its token and vars Secrets
/// (`backoffLimit: 0`: one failed Pod fails a run, also on a real cluster).
pub const APP: &str = r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {name: app1}
spec:
  operation: backup
  cronJob: {enabled: true, scheduleEvery: "0 2 * * *"}
  templateRef: {kind: internal, name: pg15}
  gpgKeySecretRef: {secretName: app1-gpg, createIfNotExists: true, email: backups@example.org}
  tokenSecretRef: {secretName: app1-token, tokenKey: token}
  varsSecretRef: {secretName: app1-vars, importOnlyKeys: [Params.password]}
  vars: |
    Params: {hostname: db.example.svc, port: 5432, db: app, user: app}
    Repository: {url: "https://backups.example.org", passphrase: "", recipient: backups@example.org, collectionId: c-1}
    HelmValues: {backoffLimit: 0}
---
apiVersion: v1
kind: Secret
metadata: {name: app1-token}
stringData: {token: eyJhbGciOi.jwt}
---
apiVersion: v1
kind: Secret
metadata: {name: app1-vars}
stringData: {Params.password: "it's s3cr3t"}
"#;

/// `(status, reason, message)` of the condition `type_` of a ScheduledBackup.
pub fn condition(sb: &crd_types::ScheduledBackup, type_: &str) -> Option<(String, String, String)> {
    let c = crd_types::conditions::find(&sb.status.as_ref()?.conditions, type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
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
