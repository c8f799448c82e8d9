//! Sharding (`--shard-selector`) on the in-process API server: two scheduled-controllers, shard `a`
//! (`riotkit.org/shard=a`) and the default shard (`!riotkit.org/shard`), each converge only their own
//! ScheduledBackups; an SB moved between shards keeps its children (relabelled, never deleted or re-created);
//! an action runs in its ScheduledBackup's shard, and one in another shard says why it waits.
//! Shard `a` runs as a ServiceAccount of its own (bound to the chart's scheduled-controller ClusterRole), so the
//! fake's audit log says which instance made each write.

use std::time::Duration;

use controller_runtime::health::Health;
use controller_runtime::metrics::ControllerMetrics;
use controller_runtime::shard::{Shard, ShardSelector};
use crd_types::ScheduledBackup;
use crd_types::constants::{condition_types as ct, labels};
use e2e::{APP, Env, condition};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplate, Secret};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// One scheduled-controller of a shard, with its own metrics (its writes) and Event reporting instance.
struct Instance {
    metrics: ControllerMetrics,
    health: Health,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start(env: &Env, client: kube::Client, instance: &str, selector: &str) -> Instance {
    let metrics = ControllerMetrics::new("scheduled-controller", &prometheus::Registry::new());
    let health = Health::default();
    let selector: ShardSelector = selector.parse().unwrap();
    let config = scheduled_controller::Config {
        namespace: Some(env.namespace.clone()),
        concurrency: 4,
        metrics: metrics.clone(),
        health: health.clone(),
        instance: Some(instance.into()),
        shard: Shard::new(Some(selector), None).unwrap(),
    };
    let task = tokio::spawn(async move {
        scheduled_controller::run(client, config, std::future::pending())
            .await
            .expect("scheduled-controller runs");
    });
    Instance {
        metrics,
        health,
        task,
    }
}

/// The shard-a ServiceAccount (only declared ones authenticate): granted exactly the chart's scheduled-controller ClusterRole.
const SHARD_A_BINDING: &str = r#"
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: shard-a, namespace: backup-maker}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: shard-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: backup-maker-scheduled-controller}
subjects: [{kind: ServiceAccount, name: shard-a, namespace: backup-maker}]
"#;
const SHARD_A_USER: &str = "system:serviceaccount:backup-maker:shard-a";
const DEFAULT_USER: &str = "system:serviceaccount:backup-maker:backup-maker-scheduled-controller";

/// [`Env::fake`], with the RBAC of the chart plus [`SHARD_A_BINDING`]; returns shard a's client too.
async fn env() -> (Env, kube::Client) {
    let mut builder = fake_apiserver::FakeApiServer::builder();
    for crd in crd_types::all_crds() {
        builder = builder.crd_defaults_from_yaml(&serde_json::to_string(&crd).unwrap());
    }
    let manifests = format!("{}{SHARD_A_BINDING}", e2e::RELEASE_MANIFESTS);
    let rbac =
        fake_apiserver::Rbac::try_from_manifests(&manifests, e2e::RELEASE_NAMESPACE).unwrap();
    let fake = builder
        .rbac(rbac)
        .owner_references_permission_enforcement(true)
        .build();
    let http = fake.serve_http();
    let client_as = async |token: Option<String>| {
        let config = http.config(token.as_deref()).await.unwrap();
        controller_runtime::client::from_config(config).unwrap()
    };
    let mut controller_clients = std::collections::HashMap::new();
    for controller in ["gpg-keygen", "scheduled-controller", "action-controller"] {
        let sa = e2e::service_account(controller);
        let token = fake_apiserver::service_account_token(e2e::RELEASE_NAMESPACE, &sa);
        controller_clients.insert(controller, client_as(Some(token)).await);
    }
    let shard_a = client_as(Some(fake_apiserver::service_account_token(
        e2e::RELEASE_NAMESPACE,
        "shard-a",
    )))
    .await;
    let env = Env {
        client: client_as(None).await,
        fake: Some(fake),
        http: Some(http),
        controller_clients,
        namespace: "default".into(),
        registry: Default::default(),
        controllers: vec![],
    };
    (env, shard_a)
}

/// `(verb, resource, name)` of every write `user` made since the last reset, Events left out.
fn writes_of(env: &Env, user: &str) -> Vec<(String, String, String)> {
    env.fake
        .as_ref()
        .unwrap()
        .audit_log()
        .into_iter()
        .filter(|r| r.user == user && !r.resource.starts_with("events"))
        .map(|r| (format!("{:?}", r.verb), r.resource, r.name))
        .collect()
}

/// `app1` (the harness' SB) as `name`, with its own key Secret, in shard `shard` (none: the default shard).
fn app(name: &str, shard: Option<&str>) -> String {
    let sb = APP.split("\n---\n").next().unwrap();
    let meta = match shard {
        Some(shard) => {
            format!("metadata: {{name: {name}, labels: {{riotkit.org/shard: {shard}}}}}")
        }
        None => format!("metadata: {{name: {name}}}"),
    };
    sb.replace("metadata: {name: app1}", &meta)
        .replace("secretName: app1-gpg", &format!("secretName: {name}-gpg"))
}

/// The user-owned Secrets `app1` refers to (token, vars), shared by every SB here.
fn user_secrets() -> String {
    APP.split("\n---\n")
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn ready(sb: &ScheduledBackup) -> bool {
    condition(sb, ct::READY).is_some_and(|(s, _, _)| s == "True")
}

/// The reporting instances of the Events about `name`.
async fn reporters(env: &Env, name: &str) -> Vec<String> {
    let api: kube::Api<k8s_openapi::api::events::v1::Event> = env.api();
    let mut reporters: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reporting_instance)
        .filter(|r| r.starts_with("shard-"))
        .collect();
    reporters.sort();
    reporters.dedup();
    reporters
}

/// The shard label of every child of `sb` (ConfigMaps, Secrets, PodTemplates of both operations; its CronJob).
async fn child_shards(env: &Env, sb: &str) -> Vec<Option<String>> {
    let shard =
        |labels: &std::collections::BTreeMap<String, String>| labels.get(labels::SHARD).cloned();
    let mut out = vec![];
    for op in ["backup", "restore"] {
        let name = format!("{sb}-{op}");
        out.push(shard(
            env.api::<ConfigMap>().get(&name).await.unwrap().labels(),
        ));
        out.push(shard(
            env.api::<Secret>().get(&name).await.unwrap().labels(),
        ));
        out.push(shard(
            env.api::<PodTemplate>().get(&name).await.unwrap().labels(),
        ));
    }
    let cron_job = env
        .api::<CronJob>()
        .get(&format!("{sb}-backup"))
        .await
        .unwrap();
    out.push(shard(cron_job.labels()));
    let pod_labels = cron_job
        .spec
        .unwrap()
        .job_template
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    out.push(shard(&pod_labels));
    out
}

async fn child_uids(env: &Env, sb: &str) -> Vec<String> {
    let mut out = vec![];
    for op in ["backup", "restore"] {
        let name = format!("{sb}-{op}");
        out.push(
            env.api::<ConfigMap>()
                .get(&name)
                .await
                .unwrap()
                .uid()
                .unwrap(),
        );
        out.push(env.api::<Secret>().get(&name).await.unwrap().uid().unwrap());
        out.push(
            env.api::<PodTemplate>()
                .get(&name)
                .await
                .unwrap()
                .uid()
                .unwrap(),
        );
    }
    out.push(
        env.api::<CronJob>()
            .get(&format!("{sb}-backup"))
            .await
            .unwrap()
            .uid()
            .unwrap(),
    );
    out
}

async fn wait_ready(instances: &[&Instance]) {
    let deadline = tokio::time::Instant::now() + e2e::TIMEOUT;
    while instances.iter().any(|i| !i.health.is_ready()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a shard never became ready: {:?}",
            instances
                .iter()
                .map(|i| i.health.is_ready())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_shard_converges_only_its_own_scheduled_backups_and_a_moved_one_keeps_its_children() {
    let (mut env, shard_a_client) = env().await;
    env.start_gpg_keygen();
    let sharded = start(&env, shard_a_client, "shard-a", "riotkit.org/shard=a");
    let default = start(
        &env,
        env.controller_client("scheduled-controller"),
        "shard-default",
        "!riotkit.org/shard",
    );
    wait_ready(&[&sharded, &default]).await;

    env.create_yaml(&user_secrets()).await.unwrap();
    env.create_yaml(&app("in-default", None)).await.unwrap();
    env.create_yaml(&app("in-a", Some("a"))).await.unwrap();
    for name in ["in-default", "in-a"] {
        env.wait_for::<ScheduledBackup>(name, "Ready=True", ready)
            .await;
    }
    env.settle().await;

    // Each SB was converged by its shard alone: every write (and Event) about it came from that shard.
    let by_a = writes_of(&env, SHARD_A_USER);
    let by_default = writes_of(&env, DEFAULT_USER);
    assert!(!by_a.is_empty() && !by_default.is_empty());
    assert!(
        by_a.iter().all(|(_, _, name)| name.starts_with("in-a")),
        "{by_a:#?}"
    );
    assert!(
        by_default
            .iter()
            .all(|(_, _, name)| name.starts_with("in-default")),
        "{by_default:#?}"
    );
    assert_eq!(reporters(&env, "in-a").await, ["shard-a"]);
    assert_eq!(reporters(&env, "in-default").await, ["shard-default"]);
    // The children (and the Jobs and Pods the CronJob spawns) are in their SB's shard.
    assert!(
        child_shards(&env, "in-a")
            .await
            .iter()
            .all(|s| s.as_deref() == Some("a"))
    );
    assert!(
        child_shards(&env, "in-default")
            .await
            .iter()
            .all(Option::is_none)
    );

    // Moving an SB to the default shard: the default shard relabels its children, shard a lets go of them
    // without deleting anything (same objects, same uids), and neither writes again after.
    let uids = child_uids(&env, "in-a").await;
    let a_writes = sharded.metrics.api_writes_total();
    env.fake.as_ref().unwrap().reset_counters();
    env.api::<ScheduledBackup>()
        .patch(
            "in-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {labels::SHARD: null}}})),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + e2e::TIMEOUT;
    while !child_shards(&env, "in-a").await.iter().all(Option::is_none) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the children were not relabelled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.settle().await;
    assert_eq!(
        child_uids(&env, "in-a").await,
        uids,
        "no child was deleted or re-created"
    );
    assert!(ready(
        &env.api::<ScheduledBackup>().get("in-a").await.unwrap()
    ));
    assert_eq!(
        writes_of(&env, SHARD_A_USER),
        [],
        "the old shard wrote nothing for the SB it lost"
    );
    assert_eq!(sharded.metrics.api_writes_total(), a_writes);
    let moved = writes_of(&env, DEFAULT_USER);
    assert!(
        moved
            .iter()
            .all(|(verb, _, name)| verb != "Delete" && name.starts_with("in-a")),
        "{moved:#?}"
    );
    assert!(
        !moved.is_empty(),
        "the new shard applied the relabelled children"
    );

    // Quiet afterwards: another resync of both shards writes nothing.
    env.fake.as_ref().unwrap().reset_counters();
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.settle().await;
    assert_eq!(writes_of(&env, SHARD_A_USER), []);
    assert_eq!(writes_of(&env, DEFAULT_USER), []);
}

/// The action-controller of `selector`'s shard, as the chart's action-controller ServiceAccount.
fn start_action_controller(env: &Env, selector: &str) -> tokio::task::JoinHandle<()> {
    let config = action_controller::Config {
        namespace: Some(env.namespace.clone()),
        concurrency: 4,
        metrics: ControllerMetrics::new("action-controller", &prometheus::Registry::new()),
        health: Health::default(),
        instance: Some(format!("actions {selector}")),
        shard: Shard::new(Some(selector.parse().unwrap()), None).unwrap(),
    };
    let client = env.controller_client("action-controller");
    tokio::spawn(async move {
        action_controller::run(client, config, std::future::pending())
            .await
            .expect("action-controller runs");
    })
}

fn action(name: &str, shard: Option<&str>) -> String {
    let labels = shard.map_or(String::new(), |s| {
        format!(", labels: {{riotkit.org/shard: {s}}}")
    });
    format!(
        "apiVersion: riotkit.org/v1alpha1\nkind: RequestedBackupAction\nmetadata: {{name: {name}{labels}}}\nspec:\n  action: backup\n  scheduledBackupRef: {{name: in-a}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_action_runs_in_its_scheduled_backups_shard_and_says_so_when_it_is_in_another() {
    use crd_types::RequestedBackupAction;
    use k8s_openapi::api::batch::v1::Job;
    let (mut env, shard_a_client) = env().await;
    env.start_gpg_keygen();
    let sharded = start(&env, shard_a_client, "shard-a", "riotkit.org/shard=a");
    let _actions_a = AbortOnDrop(start_action_controller(&env, "riotkit.org/shard=a"));
    let _actions_default = AbortOnDrop(start_action_controller(&env, "!riotkit.org/shard"));
    wait_ready(&[&sharded]).await;
    env.create_yaml(&user_secrets()).await.unwrap();
    env.create_yaml(&app("in-a", Some("a"))).await.unwrap();
    env.wait_for::<ScheduledBackup>("in-a", "Ready=True", ready)
        .await;

    // In the SB's shard: run, and its Job (and Pod) are in the action's shard.
    env.create_yaml(&action("same-shard", Some("a")))
        .await
        .unwrap();
    env.wait_for::<RequestedBackupAction>("same-shard", "processed", |a| {
        a.status.as_ref().is_some_and(|s| s.processed)
    })
    .await;
    let job: Job = env.api().get("same-shard").await.unwrap();
    assert_eq!(
        job.labels().get(labels::SHARD).map(String::as_str),
        Some("a")
    );
    let pod_labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    assert_eq!(pod_labels.get(labels::SHARD).map(String::as_str), Some("a"));

    // Unlabelled, so in the default shard, which does not see the SB: it waits and says why.
    env.create_yaml(&action("other-shard", None)).await.unwrap();
    let waiting = env
        .wait_for::<RequestedBackupAction>("other-shard", "ScheduledBackupNotFound", |a| {
            a.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.reason == crd_types::constants::reasons::SCHEDULED_BACKUP_NOT_FOUND)
            })
        })
        .await;
    let status = waiting.status.unwrap();
    let message = &status
        .conditions
        .iter()
        .find(|c| c.reason == crd_types::constants::reasons::SCHEDULED_BACKUP_NOT_FOUND)
        .unwrap()
        .message;
    assert!(message.contains("riotkit.org/shard"), "{message}");
    assert!(
        env.api::<Job>()
            .get_opt("other-shard")
            .await
            .unwrap()
            .is_none()
    );
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
