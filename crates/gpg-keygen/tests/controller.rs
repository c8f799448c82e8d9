//! The gpg-keygen controller against the in-process fake API server: real `kube::Client`, watches, SSA.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use controller_runtime::health::Health;
use controller_runtime::metrics::ControllerMetrics;
use crd_types::{GpgKeySecretRef, KeyAlgorithm};
use fake_apiserver::{FakeApiServer, ResponseBody, Verb};
use gpg_keygen::secret::{self, Assessment};
use gpg_keygen::{Config, keys};
use http::{Request, Response};
use k8s_openapi::api::core::v1::Secret;
use prometheus::Registry;
use serde_json::{Value, json};

const NS: &str = "backups";
const SB: &str = "app-db";
const SECRET: &str = "backup-keys";
const WAIT: Duration = Duration::from_secs(20);

fn server() -> FakeApiServer {
    FakeApiServer::builder()
        .crd_defaults_from_yaml(include_str!(
            "../../../crds/scheduledbackups.riotkit.org.yaml"
        ))
        .build()
}

/// A ScheduledBackup whose `gpgKeySecretRef` is `key_ref` (merged over secretName/email defaults).
fn backup(key_ref: Value) -> Value {
    let mut gpg = json!({"secretName": SECRET, "email": "backups@example.org"});
    for (k, v) in key_ref.as_object().unwrap() {
        gpg[k] = v.clone();
    }
    json!({
        "apiVersion": "riotkit.org/v1alpha1",
        "kind": "ScheduledBackup",
        "metadata": {"name": SB, "namespace": NS},
        "spec": {
            "operation": "backup",
            "templateRef": {"name": "pg15", "kind": "internal"},
            "gpgKeySecretRef": gpg,
            "tokenSecretRef": {"secretName": "token"},
        }
    })
}

fn default_ref() -> GpgKeySecretRef {
    serde_json::from_value(json!({"secretName": SECRET, "email": "backups@example.org"})).unwrap()
}

/// A valid key Secret made outside the controller (by a user or another replica).
fn valid_secret(reference: &GpgKeySecretRef) -> (Value, keys::Fingerprint) {
    let key = keys::generate("someone@example.org", KeyAlgorithm::Ed25519).unwrap();
    let secret = secret::desired_secret(NS, reference, "someone@example.org", &key);
    (serde_json::to_value(secret).unwrap(), key.fingerprint)
}

/// One running controller.
struct Running {
    registry: Registry,
    health: Health,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn start(client: kube::Client, instance: &str) -> Self {
        let registry = Registry::new();
        let metrics = ControllerMetrics::new(gpg_keygen::CONTROLLER_NAME, &registry);
        let health = Health::default();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let config = Config {
            namespace: None,
            concurrency: 4,
            metrics,
            registry: registry.clone(),
            health: health.clone(),
            instance: Some(instance.to_string()),
            shard: Default::default(),
            shutdown: Box::pin(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }),
        };
        let task = tokio::spawn(gpg_keygen::run(client, config));
        Running {
            registry,
            health,
            stop,
            task,
        }
    }

    /// Sum of a counter family's samples whose labels include all of `labels`.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }

    fn successful_reconciles(&self) -> f64 {
        self.counter("backup_maker_reconcile_total", &[("result", "success")])
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("controller stops on shutdown")
            .unwrap()
            .unwrap();
    }
}

fn condition(server: &FakeApiServer) -> Option<Value> {
    let sb = server.get("scheduledbackups", NS, SB)?;
    sb["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "GPGKeyReady")
        .cloned()
}

async fn wait_for_reason(server: &FakeApiServer, reason: &str) -> Value {
    let result = server
        .wait_for(WAIT, |s| {
            s.get("scheduledbackups", NS, SB).is_some_and(|sb| {
                sb["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "GPGKeyReady" && c["reason"] == reason)
                })
            })
        })
        .await;
    result.unwrap_or_else(|e| panic!("no GPGKeyReady={reason}: {e}; have {:?}", condition(server)));
    condition(server).unwrap()
}

async fn settle(server: &FakeApiServer) {
    server
        .wait_until_quiet(Duration::from_millis(500), WAIT)
        .await
        .expect("state settles");
}

fn stored_secret(server: &FakeApiServer) -> Option<Secret> {
    server
        .get("secrets", NS, SECRET)
        .map(|v| serde_json::from_value(v).unwrap())
}

fn events(server: &FakeApiServer, type_: &str, reason: &str) -> usize {
    server
        .events_for(SB)
        .iter()
        .filter(|e| e["type"] == type_ && e["reason"] == reason)
        .count()
}

fn secret_writes(server: &FakeApiServer) -> u64 {
    server
        .writes()
        .iter()
        .filter(|((resource, _), _)| resource.starts_with("secrets"))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn missing_secret_is_generated_once_and_reported_valid() {
    let server = server();
    server
        .insert(backup(json!({"createIfNotExists": true})))
        .unwrap();
    let controller = Running::start(server.client(), "a");

    let condition = wait_for_reason(&server, "KeySecretValid").await;
    let secret = stored_secret(&server).expect("key Secret created");
    let Assessment::Valid { fingerprint } = secret::assess(&secret, &default_ref()) else {
        panic!("created Secret is not a valid pair");
    };
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["observedGeneration"], 1);
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains(fingerprint.as_str()),
        "{condition}"
    );
    let annotations = secret.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        annotations["riotkit.org/gpg-fingerprint"],
        fingerprint.as_str()
    );
    assert_eq!(annotations["riotkit.org/e-mail"], "backups@example.org");
    assert_eq!(
        secret.metadata.labels.as_ref().unwrap()["riotkit.org/type"],
        "GPGSecret"
    );
    assert!(secret.metadata.owner_references.is_none());

    settle(&server).await;
    assert_eq!(server.write_count("secrets", Verb::Create), 1);
    // The Secret's own watch event reconciles again before the SB watch delivers our status write: that
    // reconcile must start from our write, not write the condition a second time.
    assert_eq!(
        server.write_count("scheduledbackups/status", Verb::Apply),
        1,
        "{:#?}",
        server.write_log()
    );
    assert_eq!(events(&server, "Normal", "KeySecretCreated"), 1);
    assert_eq!(
        controller.counter(
            "backup_maker_gpg_keys_generated_total",
            &[("algorithm", "ed25519")]
        ),
        1.0
    );
    assert!(controller.health.is_ready());
    controller.stop().await;
}

#[tokio::test]
async fn configured_algorithm_and_key_names_are_used() {
    let server = server();
    server
        .insert(backup(json!({
            "createIfNotExists": true,
            "algorithm": "rsa4096",
            "privateKey": "private",
            "publicKey": "public",
        })))
        .unwrap();
    let controller = Running::start(server.client(), "a");
    wait_for_reason(&server, "KeySecretValid").await;
    let secret = stored_secret(&server).unwrap();
    let mut names: Vec<_> = secret.data.as_ref().unwrap().keys().cloned().collect();
    names.sort();
    assert_eq!(names, vec!["e-mail.txt", "passphrase", "private", "public"]);
    assert_eq!(
        secret.metadata.annotations.as_ref().unwrap()["riotkit.org/gpg-algorithm"],
        "rsa4096"
    );
    assert_eq!(
        controller.counter(
            "backup_maker_gpg_keys_generated_total",
            &[("algorithm", "rsa4096")]
        ),
        1.0
    );
    controller.stop().await;
}

#[tokio::test]
async fn existing_valid_secret_is_adopted_without_writing_to_it() {
    let server = server();
    let (existing, fingerprint) = valid_secret(&default_ref());
    let before = server.insert(existing).unwrap();
    server
        .insert(backup(json!({"createIfNotExists": true})))
        .unwrap();
    let controller = Running::start(server.client(), "a");

    let condition = wait_for_reason(&server, "KeySecretValid").await;
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains(fingerprint.as_str())
    );
    settle(&server).await;
    assert_eq!(secret_writes(&server), 0, "{:?}", server.write_log());
    assert_eq!(server.get("secrets", NS, SECRET).unwrap(), before);
    assert_eq!(
        controller.counter("backup_maker_gpg_keys_generated_total", &[]),
        0.0
    );
    controller.stop().await;
}

#[tokio::test]
async fn incomplete_secret_is_reported_and_left_byte_for_byte_unchanged() {
    // The original's shipped example: keys under key/key.pub, the ScheduledBackup asks for private/public.
    // The original minted a second pair into the Secret here; this controller must only report it.
    let server = server();
    let (existing, _) = valid_secret(&default_ref());
    let before = server.insert(existing).unwrap();
    server
        .insert(backup(json!({
            "createIfNotExists": true,
            "privateKey": "private",
            "publicKey": "public",
        })))
        .unwrap();
    let controller = Running::start(server.client(), "a");

    let condition = wait_for_reason(&server, "KeySecretIncomplete").await;
    assert_eq!(condition["status"], "False");
    let message = condition["message"].as_str().unwrap();
    assert!(message.contains("\"backup-keys\""), "{message}");
    assert!(message.contains("\"private\", \"public\""), "{message}");
    settle(&server).await;
    assert_eq!(events(&server, "Warning", "KeySecretIncomplete"), 1);
    assert_eq!(secret_writes(&server), 0, "{:?}", server.write_log());
    assert_eq!(server.get("secrets", NS, SECRET).unwrap(), before);
    controller.stop().await;
}

#[tokio::test]
async fn original_truncated_keys_are_reported_invalid_and_left_alone() {
    let server = server();
    let fixture: Value = serde_saphyr::from_str(include_str!(
        "../../../tests/fixtures/original/backup-keys.secret.yaml"
    ))
    .unwrap();
    let before = server.insert(fixture).unwrap();
    let mut sb = backup(json!({"createIfNotExists": true}));
    sb["metadata"]["namespace"] = json!("default");
    server.insert(sb).unwrap();
    let controller = Running::start(server.client(), "a");

    server
        .wait_for(WAIT, |s| {
            s.get("scheduledbackups", "default", SB)
                .is_some_and(|sb| sb["status"]["conditions"][0]["reason"] == "KeySecretInvalid")
        })
        .await
        .unwrap();
    settle(&server).await;
    assert_eq!(secret_writes(&server), 0, "{:?}", server.write_log());
    assert_eq!(server.get("secrets", "default", SECRET).unwrap(), before);
    assert_eq!(
        server
            .events_for(SB)
            .iter()
            .filter(|e| e["reason"] == "KeySecretInvalid")
            .count(),
        1
    );
    controller.stop().await;
}

#[tokio::test]
async fn missing_secret_without_create_if_not_exists_is_reported_until_a_user_creates_it() {
    let server = server();
    server
        .insert(backup(json!({"createIfNotExists": false})))
        .unwrap();
    let controller = Running::start(server.client(), "a");

    let condition = wait_for_reason(&server, "KeySecretNotFound").await;
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("createIfNotExists is false")
    );
    settle(&server).await;
    assert!(server.get("secrets", NS, SECRET).is_none());
    assert_eq!(server.write_count("secrets", Verb::Create), 0);
    assert_eq!(events(&server, "Warning", "KeySecretNotFound"), 1);

    // The Secret watch maps the new Secret back to the ScheduledBackup.
    let (existing, fingerprint) = valid_secret(&default_ref());
    server.insert(existing).unwrap();
    let condition = wait_for_reason(&server, "KeySecretValid").await;
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains(fingerprint.as_str())
    );
    controller.stop().await;
}

#[tokio::test]
async fn key_secret_survives_deletion_of_its_scheduled_backup() {
    let server = server();
    server
        .insert(backup(json!({"createIfNotExists": true})))
        .unwrap();
    let controller = Running::start(server.client(), "a");
    wait_for_reason(&server, "KeySecretValid").await;
    let key_secret = server.get("secrets", NS, SECRET).unwrap();

    // A child that *is* owned by the SB, to show the fake server garbage-collects owned objects.
    let uid = server.get("scheduledbackups", NS, SB).unwrap()["metadata"]["uid"].clone();
    server
        .insert(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "owned-child", "namespace": NS, "ownerReferences": [{
                "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup", "name": SB, "uid": uid,
            }]},
        }))
        .unwrap();
    server.delete("scheduledbackups", NS, SB).unwrap();
    settle(&server).await;

    assert!(server.get("scheduledbackups", NS, SB).is_none());
    assert!(
        server.get("configmaps", NS, "owned-child").is_none(),
        "GC ran"
    );
    assert_eq!(server.get("secrets", NS, SECRET).unwrap(), key_secret);
    controller.stop().await;
}

/// Wraps the fake server: the first time the controller finds the key Secret missing, another actor creates it
/// before the controller's POST arrives.
#[derive(Clone)]
struct CreatesSecretAfterFirstMiss {
    server: FakeApiServer,
    secret: Value,
    fired: Arc<AtomicBool>,
}

impl tower::Service<Request<kube::client::Body>> for CreatesSecretAfterFirstMiss {
    type Response = Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<Request<kube::client::Body>>::poll_ready(&mut self.server, cx)
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let is_secret_get = req.method() == http::Method::GET
            && req.uri().path() == format!("/api/v1/namespaces/{NS}/secrets/{SECRET}");
        let response = self.server.call(req);
        let this = self.clone();
        Box::pin(async move {
            let response = response.await?;
            if is_secret_get
                && response.status() == http::StatusCode::NOT_FOUND
                && !this.fired.swap(true, Ordering::SeqCst)
            {
                this.server.insert(this.secret.clone()).unwrap();
            }
            Ok(response)
        })
    }
}

#[tokio::test]
async fn secret_appearing_between_get_and_create_is_adopted_not_replaced() {
    let server = server();
    server
        .insert(backup(json!({"createIfNotExists": true})))
        .unwrap();
    let (theirs, their_fingerprint) = valid_secret(&default_ref());
    let racing = CreatesSecretAfterFirstMiss {
        server: server.clone(),
        secret: theirs,
        fired: Arc::new(AtomicBool::new(false)),
    };
    let controller = Running::start(kube::Client::new(racing.clone(), "default"), "a");

    let condition = wait_for_reason(&server, "KeySecretValid").await;
    settle(&server).await;
    assert!(racing.fired.load(Ordering::SeqCst), "the race was staged");
    let creates: Vec<_> = server
        .write_log()
        .into_iter()
        .filter(|w| w.resource == "secrets" && w.verb == Verb::Create)
        .collect();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(creates[0].code, 409);
    let stored = stored_secret(&server).unwrap();
    assert_eq!(
        secret::assess(&stored, &default_ref()),
        Assessment::Valid {
            fingerprint: their_fingerprint.clone()
        }
    );
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains(their_fingerprint.as_str())
    );
    // Our pair was generated and then discarded unseen.
    assert_eq!(
        controller.counter("backup_maker_gpg_keys_generated_total", &[]),
        1.0
    );
    assert_eq!(events(&server, "Normal", "KeySecretCreated"), 0);
    controller.stop().await;
}

#[tokio::test]
async fn two_controllers_racing_produce_exactly_one_key() {
    for _ in 0..3 {
        let server = server();
        server
            .insert(backup(json!({"createIfNotExists": true})))
            .unwrap();
        let a = Running::start(server.client(), "a");
        let b = Running::start(server.client(), "b");
        let condition = wait_for_reason(&server, "KeySecretValid").await;
        settle(&server).await;

        let Assessment::Valid { fingerprint } =
            secret::assess(&stored_secret(&server).unwrap(), &default_ref())
        else {
            panic!("stored Secret is not valid");
        };
        assert!(
            condition["message"]
                .as_str()
                .unwrap()
                .contains(fingerprint.as_str())
        );
        let successful_creates = server
            .write_log()
            .iter()
            .filter(|w| w.resource == "secrets" && w.verb == Verb::Create && w.code == 201)
            .count();
        assert_eq!(successful_creates, 1, "{:?}", server.write_log());
        assert_eq!(
            secret_writes(&server),
            server.write_count("secrets", Verb::Create)
        );
        a.stop().await;
        b.stop().await;
    }
}

#[tokio::test]
async fn converged_controller_makes_zero_writes_on_resync_and_unrelated_changes() {
    let server = server();
    server
        .insert(backup(json!({"createIfNotExists": true})))
        .unwrap();
    let controller = Running::start(server.client(), "a");
    wait_for_reason(&server, "KeySecretValid").await;
    settle(&server).await;
    let reconciles_before = controller.successful_reconciles();
    server.reset_counters();

    // Triggers, one at a time (simultaneous ones are merged into one reconcile): a label on the ScheduledBackup,
    // then an annotation on the Secret. Each is a watch event and a reconcile.
    server
        .modify("scheduledbackups", NS, SB, |sb| {
            sb["metadata"]["labels"] = json!({"team": "db"});
        })
        .unwrap();
    settle(&server).await;
    server
        .modify("secrets", NS, SECRET, |s| {
            s["metadata"]["annotations"]["note"] = json!("backed up to the vault");
        })
        .unwrap();
    settle(&server).await;

    assert!(
        controller.successful_reconciles() >= reconciles_before + 2.0,
        "the changes triggered reconciles ({reconciles_before} → {})",
        controller.successful_reconciles()
    );
    assert_eq!(server.total_writes(), 0, "{:?}", server.write_log());
    controller.stop().await;
}

#[tokio::test]
async fn a_converged_sb_is_reconciled_without_reading_its_key_secret_until_the_secret_changes() {
    let server = server();
    server
        .insert(backup(json!({"createIfNotExists": true})))
        .unwrap();
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reads.clone();
    let path = format!("/api/v1/namespaces/{NS}/secrets/{SECRET}");
    // A rule that never delays: it only counts the GETs of the key Secret.
    server.delay_route(
        move |r| {
            if r.method == http::Method::GET && r.path == path {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            false
        },
        Duration::ZERO,
    );
    let controller = Running::start(server.client(), "a");
    wait_for_reason(&server, "KeySecretValid").await;
    settle(&server).await;
    let reconciles = controller.successful_reconciles();
    assert!(reads.load(Ordering::SeqCst) >= 1, "the rule sees the reads");
    reads.store(0, Ordering::SeqCst);
    server.reset_counters();

    server
        .modify("scheduledbackups", NS, SB, |sb| {
            sb["metadata"]["labels"] = json!({"team": "db"});
        })
        .unwrap();
    settle(&server).await;
    assert!(controller.successful_reconciles() > reconciles);
    assert_eq!(reads.load(Ordering::SeqCst), 0, "the verdict is remembered");

    server
        .modify("secrets", NS, SECRET, |s| {
            s["metadata"]["annotations"]["note"] = json!("rotated?");
        })
        .unwrap();
    settle(&server).await;
    assert_eq!(
        reads.load(Ordering::SeqCst),
        1,
        "a changed Secret is read again"
    );
    assert_eq!(server.total_writes(), 0, "{:?}", server.write_log());
    controller.stop().await;
}

#[tokio::test]
async fn spec_change_updates_observed_generation_without_repeating_the_warning() {
    let server = server();
    server
        .insert(backup(json!({"createIfNotExists": false})))
        .unwrap();
    let controller = Running::start(server.client(), "a");
    let first = wait_for_reason(&server, "KeySecretNotFound").await;
    assert_eq!(first["observedGeneration"], 1);
    settle(&server).await;

    server
        .modify("scheduledbackups", NS, SB, |sb| {
            sb["spec"]["vars"] = json!("Params: {}");
        })
        .unwrap();
    server
        .wait_for(WAIT, |s| {
            s.get("scheduledbackups", NS, SB).is_some_and(|sb| {
                sb["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "GPGKeyReady" && c["observedGeneration"] == 2)
                })
            })
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "observedGeneration not bumped: {e}; {:?}",
                condition(&server)
            )
        });
    settle(&server).await;
    let second = condition(&server).unwrap();
    assert_eq!(second["lastTransitionTime"], first["lastTransitionTime"]);
    assert_eq!(events(&server, "Warning", "KeySecretNotFound"), 1);
    controller.stop().await;
}

#[tokio::test]
async fn other_controllers_conditions_are_kept() {
    let server = server();
    let mut sb = backup(json!({"createIfNotExists": true}));
    sb["status"] = json!({"conditions": [{
        "type": "TemplateRendered", "status": "True", "reason": "Rendered", "message": "ok",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }]});
    server.insert(sb).unwrap();
    let controller = Running::start(server.client(), "a");
    wait_for_reason(&server, "KeySecretValid").await;
    let sb = server.get("scheduledbackups", NS, SB).unwrap();
    let types: Vec<&str> = sb["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"TemplateRendered"), "{types:?}");
    assert!(types.contains(&"GPGKeyReady"), "{types:?}");
    controller.stop().await;
}
