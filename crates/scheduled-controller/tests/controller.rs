//! The scheduled-controller's rules, on the in-process fake API server (gpg-keygen's part is simulated by
//! seeding the key Secret and its `GPGKeyReady` condition).

use std::time::Duration;

use controller_runtime::health::Health;
use controller_runtime::metrics::ControllerMetrics;
use fake_apiserver::{FakeApiServer, Verb};
use serde_json::{Value, json};

const NS: &str = "team-a";

struct World {
    metrics: ControllerMetrics,
    registry: prometheus::Registry,
    task: tokio::task::JoinHandle<()>,
}

impl World {
    fn successful_reconciles(&self) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "backup_maker_reconcile_total")
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "result" && l.value() == "success")
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn server() -> FakeApiServer {
    let mut builder = FakeApiServer::builder();
    for crd in crd_types::all_crds() {
        builder = builder.crd_defaults_from_yaml(&serde_json::to_string(&crd).unwrap());
    }
    builder.build()
}

fn start(fake: FakeApiServer) -> World {
    let registry = prometheus::Registry::new();
    let metrics = ControllerMetrics::new("scheduled-controller", &registry);
    let config = scheduled_controller::Config {
        namespace: None,
        concurrency: 4,
        metrics: metrics.clone(),
        health: Health::default(),
        instance: Some("test".into()),
        shard: Default::default(),
    };
    let client = fake.client();
    let task = tokio::spawn(async move {
        scheduled_controller::run(client, config, std::future::pending())
            .await
            .unwrap();
    });
    World {
        metrics,
        registry,
        task,
    }
}

fn secret(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "stringData": data})
}

fn scheduled_backup(name: &str, spec_patch: Value) -> Value {
    let mut sb = json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}")},
        "spec": {
            "operation": "backup",
            "cronJob": {"enabled": true, "scheduleEvery": "0 3 * * *"},
            "templateRef": {"kind": "internal", "name": "pg15"},
            "gpgKeySecretRef": {"secretName": "keys", "createIfNotExists": true, "email": "a@example.org"},
            "tokenSecretRef": {"secretName": "token", "tokenKey": "token"},
            "vars": "Params: {hostname: db, port: 5432, db: app, user: app, password: pw}\nRepository: {url: 'https://b.example.org', passphrase: '', collectionId: c1}\n"
        },
        "status": {"conditions": [{"type": "GPGKeyReady", "status": "True", "reason": "KeySecretValid", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    });
    merge(&mut sb["spec"], spec_patch);
    sb
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

fn seed(fake: &FakeApiServer) {
    fake.insert(secret("token", json!({"token": "jwt"})))
        .unwrap();
    fake.insert(secret(
        "keys",
        json!({"key": "private", "key.pub": "public"}),
    ))
    .unwrap();
}

fn ready(v: &Value) -> Option<(String, String)> {
    let c = v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
    ))
}

async fn wait(
    fake: &FakeApiServer,
    what: &str,
    mut predicate: impl FnMut(&fake_apiserver::StateView<'_>) -> bool,
) {
    if fake
        .wait_for(Duration::from_secs(15), |s| predicate(s))
        .await
        .is_err()
    {
        panic!(
            "timed out waiting for {what}; writes: {:#?}",
            fake.write_log()
        );
    }
}

async fn wait_ready(fake: &FakeApiServer, name: &str) {
    wait(fake, "Ready=True", |s| {
        s.get("scheduledbackups", NS, name)
            .and_then(|sb| ready(&sb))
            == Some(("True".into(), "Ready".into()))
    })
    .await;
}

async fn quiet(fake: &FakeApiServer) {
    fake.wait_until_quiet(Duration::from_millis(300), Duration::from_secs(15))
        .await
        .unwrap();
}

#[tokio::test]
async fn converging_costs_one_apply_per_child_and_one_status_write_then_nothing() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    let world = start(fake.clone());
    wait_ready(&fake, "app").await;
    quiet(&fake).await;
    // 2 ConfigMaps + 2 Secrets + 2 PodTemplates + 1 CronJob, one status apply, one "ChildrenApplied" event.
    assert_eq!(fake.write_count("configmaps", Verb::Apply), 2);
    assert_eq!(fake.write_count("secrets", Verb::Apply), 2);
    assert_eq!(fake.write_count("podtemplates", Verb::Apply), 2);
    assert_eq!(fake.write_count("cronjobs", Verb::Apply), 1);
    assert_eq!(
        fake.write_count("scheduledbackups/status", Verb::Apply),
        1,
        "{:#?}",
        fake.write_log()
    );

    fake.reset_counters();
    fake.modify("scheduledbackups", NS, "app", |sb| {
        sb["metadata"]["labels"] = json!({"poke": "1"})
    })
    .unwrap();
    quiet(&fake).await;
    assert_eq!(
        fake.total_writes(),
        0,
        "a converged SB must cost zero writes: {:#?}",
        fake.write_log()
    );
    assert!(world.metrics.api_writes_total() >= 8);
}

#[tokio::test]
async fn a_reconcile_with_unchanged_inputs_reads_no_secret_and_a_changed_secret_is_read_again() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reads.clone();
    // A rule that never delays: it counts the GETs of single Secrets (token, key).
    fake.delay_route(
        move |r| {
            if r.method == http::Method::GET
                && r.path
                    .starts_with(&format!("/api/v1/namespaces/{NS}/secrets/"))
            {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            false
        },
        Duration::ZERO,
    );
    let world = start(fake.clone());
    wait_ready(&fake, "app").await;
    quiet(&fake).await;
    assert!(reads.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    reads.store(0, std::sync::atomic::Ordering::SeqCst);
    let reconciles = world.successful_reconciles();

    fake.modify("scheduledbackups", NS, "app", |sb| {
        sb["metadata"]["annotations"] = json!({"poke": "1"})
    })
    .unwrap();
    quiet(&fake).await;
    assert!(world.successful_reconciles() > reconciles);
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 0);

    fake.modify("secrets", NS, "token", |s| {
        s["metadata"]["annotations"] = json!({"rotated": "yes"})
    })
    .unwrap();
    quiet(&fake).await;
    assert!(
        reads.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "a changed Secret is read again"
    );
}

#[tokio::test]
async fn each_operation_gets_an_owned_pod_template_that_costs_nothing_once_converged() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup(
        "app",
        json!({"vars": "Params: {hostname: db, port: 5432, db: app, user: app, password: pw}\nRepository: {url: 'https://b.example.org', passphrase: '', collectionId: c1}\nHelmValues: {backoffLimit: 1, activeDeadlineSeconds: 900}\n"}),
    ))
    .unwrap();
    let _world = start(fake.clone());
    wait_ready(&fake, "app").await;
    quiet(&fake).await;
    let cron = fake.get("cronjobs", NS, "app-backup").unwrap();
    let config_map = fake.get("configmaps", NS, "app-backup").unwrap();
    let sb_uid = fake.get("scheduledbackups", NS, "app").unwrap()["metadata"]["uid"].clone();
    for op in ["backup", "restore"] {
        let pt = fake
            .get("podtemplates", NS, &format!("app-{op}"))
            .unwrap_or_else(|| panic!("no PodTemplate app-{op}: {:#?}", fake.write_log()));
        let owner = &pt["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                &owner["uid"],
                &owner["controller"],
                &owner["blockOwnerDeletion"]
            ),
            (&sb_uid, &json!(true), &json!(true)),
            "{pt:#}"
        );
        assert_eq!(pt["metadata"]["labels"]["riotkit.org/operation"], op);
        assert_eq!(
            pt["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            config_map["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        );
        assert_eq!(
            pt["metadata"]["annotations"]["riotkit.org/backoff-limit"],
            "1"
        );
        assert_eq!(
            pt["metadata"]["annotations"]["riotkit.org/active-deadline-seconds"],
            "900"
        );
        assert_eq!(
            pt["template"]["spec"]["containers"][0]["command"][1],
            format!("/usr/backup-maker/{op}.sh")
        );
    }
    // The API server defaults the CronJob's pod template (the fake does not default PodTemplates): everything the
    // PodTemplate says, the CronJob's pod says too.
    assert!(
        scheduled_controller::diff::contains(
            &cron["spec"]["jobTemplate"]["spec"]["template"],
            &fake.get("podtemplates", NS, "app-backup").unwrap()["template"],
        ),
        "an action runs the pod the CronJob runs"
    );

    // Edited by hand: corrected, like every other child.
    fake.modify("podtemplates", NS, "app-restore", |pt| {
        pt["template"]["spec"]["containers"][0]["image"] = json!("evil/image")
    })
    .unwrap();
    wait(&fake, "PodTemplate corrected", |s| {
        s.get("podtemplates", NS, "app-restore")
            .is_some_and(|pt| pt["template"]["spec"]["containers"][0]["image"] != "evil/image")
    })
    .await;
    quiet(&fake).await;
    fake.reset_counters();
    fake.modify("scheduledbackups", NS, "app", |sb| {
        sb["metadata"]["labels"] = json!({"poke": "1"})
    })
    .unwrap();
    quiet(&fake).await;
    assert_eq!(
        fake.total_writes(),
        0,
        "converged PodTemplates cost zero writes: {:#?}",
        fake.write_log()
    );
}

#[tokio::test]
async fn the_restore_pod_template_is_pruned_when_the_template_loses_its_restore_script() {
    let fake = server();
    seed(&fake);
    fake.insert(json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "ClusterBackupProcedureTemplate",
        "metadata": {"name": "custom"},
        "spec": {"image": "example/tools:1", "backup": "echo backup", "restore": "echo restore"}
    }))
    .unwrap();
    fake.insert(scheduled_backup(
        "app",
        json!({"templateRef": {"kind": "ClusterBackupProcedureTemplate", "name": "custom"}}),
    ))
    .unwrap();
    let _world = start(fake.clone());
    wait(&fake, "both PodTemplates", |s| {
        s.get("podtemplates", NS, "app-backup").is_some()
            && s.get("podtemplates", NS, "app-restore").is_some()
    })
    .await;

    fake.modify("clusterbackupproceduretemplates", "", "custom", |t| {
        t["spec"].as_object_mut().unwrap().remove("restore");
    })
    .unwrap();
    wait(&fake, "restore PodTemplate pruned", |s| {
        s.get("podtemplates", NS, "app-restore").is_none()
    })
    .await;
    assert!(fake.get("podtemplates", NS, "app-backup").is_some());
    wait(&fake, "a ChildrenPruned event naming it", |s| {
        let mut events = s.list("events.events.k8s.io");
        events.extend(s.list("events"));
        events.iter().any(|e| {
            e["reason"] == "ChildrenPruned"
                && e["note"]
                    .as_str()
                    .or(e["message"].as_str())
                    .is_some_and(|n| n.contains("PodTemplate/app-restore"))
        })
    })
    .await;
}

#[tokio::test]
async fn a_child_deleted_or_edited_by_hand_is_restored() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    let _world = start(fake.clone());
    wait_ready(&fake, "app").await;
    let original = fake.get("configmaps", NS, "app-backup").unwrap();

    fake.delete("configmaps", NS, "app-backup").unwrap();
    wait(&fake, "ConfigMap recreated", |s| {
        s.get("configmaps", NS, "app-backup").is_some()
    })
    .await;

    fake.modify("configmaps", NS, "app-backup", |cm| {
        cm["data"] = json!({"backup.sh": "rm -rf /"})
    })
    .unwrap();
    wait(&fake, "ConfigMap corrected", |s| {
        s.get("configmaps", NS, "app-backup")
            .is_some_and(|cm| cm["data"] == original["data"])
    })
    .await;

    fake.modify("cronjobs", NS, "app-backup", |c| {
        c["spec"]["schedule"] = json!("* * * * *")
    })
    .unwrap();
    wait(&fake, "CronJob corrected", |s| {
        s.get("cronjobs", NS, "app-backup")
            .is_some_and(|c| c["spec"]["schedule"] == "0 3 * * *")
    })
    .await;
}

#[tokio::test]
async fn after_a_restart_a_hand_edit_made_while_down_is_corrected_and_unedited_children_cost_nothing()
 {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    fake.insert(scheduled_backup("other", json!({}))).unwrap();
    let world = start(fake.clone());
    wait_ready(&fake, "app").await;
    wait_ready(&fake, "other").await;
    quiet(&fake).await;
    let original = fake.get("configmaps", NS, "app-backup").unwrap();
    let hash = &original["metadata"]["annotations"]["riotkit.org/spec-hash"];
    assert!(
        hash.is_string(),
        "children carry the hash of what was applied"
    );
    drop(world);

    // Edited while no controller runs: the hash annotation is left as it was, only the content changes.
    fake.modify("configmaps", NS, "app-backup", |cm| {
        cm["data"]["backup.sh"] = json!("rm -rf /")
    })
    .unwrap();
    fake.modify("podtemplates", NS, "other-backup", |t| {
        t["template"]["spec"]["containers"][0]["image"] = json!("evil:latest")
    })
    .unwrap();
    fake.reset_counters();
    let _world = start(fake.clone());
    wait(&fake, "both children corrected", |s| {
        s.get("configmaps", NS, "app-backup")
            .is_some_and(|cm| cm["data"] == original["data"])
            && s.get("podtemplates", NS, "other-backup")
                .is_some_and(|t| t["template"]["spec"]["containers"][0]["image"] != "evil:latest")
    })
    .await;
    quiet(&fake).await;
    let applies: u64 = ["configmaps", "secrets", "podtemplates", "cronjobs"]
        .iter()
        .map(|r| fake.write_count(r, Verb::Apply))
        .sum();
    assert_eq!(
        applies,
        2,
        "only the two edited children are applied: {:#?}",
        fake.write_log()
    );
    assert_eq!(fake.write_count("scheduledbackups/status", Verb::Apply), 0);
}

#[tokio::test]
async fn disabling_the_cronjob_or_changing_the_operation_prunes_the_old_cronjob() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    let _world = start(fake.clone());
    wait(&fake, "backup CronJob", |s| {
        s.get("cronjobs", NS, "app-backup").is_some()
    })
    .await;

    fake.modify("scheduledbackups", NS, "app", |sb| {
        sb["spec"]["operation"] = json!("restore")
    })
    .unwrap();
    wait(&fake, "CronJob switched to restore", |s| {
        s.get("cronjobs", NS, "app-backup").is_none()
            && s.get("cronjobs", NS, "app-restore").is_some()
    })
    .await;
    wait(&fake, "a ChildrenPruned event", |s| {
        let mut events = s.list("events.events.k8s.io");
        events.extend(s.list("events"));
        events.iter().any(|e| e["reason"] == "ChildrenPruned")
    })
    .await;

    fake.modify("scheduledbackups", NS, "app", |sb| {
        sb["spec"]["cronJob"]["enabled"] = json!(false)
    })
    .unwrap();
    wait(&fake, "CronJob pruned", |s| s.list("cronjobs").is_empty()).await;
    // Helper objects of both operations stay: actions still need them.
    assert!(
        fake.get("configmaps", NS, "app-backup").is_some()
            && fake.get("configmaps", NS, "app-restore").is_some()
    );
}

#[tokio::test]
async fn a_changed_template_is_rendered_again() {
    let fake = server();
    seed(&fake);
    fake.insert(json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "ClusterBackupProcedureTemplate",
        "metadata": {"name": "custom"},
        "spec": {"image": "example/tools:1", "backup": "echo backup {{ .Params.db }}", "restore": "echo restore {{ .Params.db }}"}
    }))
    .unwrap();
    fake.insert(scheduled_backup(
        "app",
        json!({"templateRef": {"kind": "ClusterBackupProcedureTemplate", "name": "custom"}}),
    ))
    .unwrap();
    let _world = start(fake.clone());
    wait_ready(&fake, "app").await;
    let script = |s: &fake_apiserver::StateView<'_>| {
        s.get("configmaps", NS, "app-backup")
            .map(|cm| cm["data"].to_string())
            .unwrap_or_default()
    };
    wait(&fake, "first render", |s| {
        script(s).contains("echo backup app")
    })
    .await;

    fake.modify("clusterbackupproceduretemplates", "", "custom", |t| {
        t["spec"]["backup"] = json!("echo v2 {{ .Params.db }}")
    })
    .unwrap();
    wait(&fake, "re-render after the template changed", |s| {
        script(s).contains("echo v2 app")
    })
    .await;
}

#[tokio::test]
async fn without_a_ready_key_secret_the_sb_waits_and_proceeds_once_it_is_ready() {
    let fake = server();
    fake.insert(secret("token", json!({"token": "jwt"})))
        .unwrap();
    let mut sb = scheduled_backup("app", json!({}));
    // What gpg-keygen reports for a missing Secret it must not generate.
    sb["status"] = json!({"conditions": [{"type": "GPGKeyReady", "status": "False", "reason": "KeySecretNotFound", "message": "create it", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    fake.insert(sb).unwrap();
    let _world = start(fake.clone());
    wait(&fake, "WaitingForKeySecret", |s| {
        s.get("scheduledbackups", NS, "app")
            .and_then(|sb| ready(&sb))
            == Some(("False".into(), "WaitingForKeySecret".into()))
    })
    .await;
    assert!(
        fake.list("configmaps").is_empty(),
        "nothing is rendered before the key Secret is ready"
    );

    // What gpg-keygen does: create the Secret, then report GPGKeyReady.
    fake.insert(secret(
        "keys",
        json!({"key": "private", "key.pub": "public"}),
    ))
    .unwrap();
    fake.modify("scheduledbackups", NS, "app", |sb| {
        let conditions = sb["status"]["conditions"].as_array_mut().unwrap();
        conditions.retain(|c| c["type"] != "GPGKeyReady");
        conditions.push(json!({"type": "GPGKeyReady", "status": "True", "reason": "KeySecretValid", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}));
    })
    .unwrap();
    wait_ready(&fake, "app").await;
}

#[tokio::test]
async fn a_new_sb_writes_no_waiting_status_before_gpg_keygen_reports_and_one_status_after() {
    let fake = server();
    fake.insert(secret("token", json!({"token": "jwt"})))
        .unwrap();
    let mut sb = scheduled_backup("app", json!({}));
    sb["status"] = json!({});
    fake.insert(sb).unwrap();
    let _world = start(fake.clone());
    quiet(&fake).await;
    assert_eq!(
        fake.total_writes(),
        0,
        "nothing to say yet: {:#?}",
        fake.write_log()
    );

    // What gpg-keygen does a moment later: create the Secret, then report GPGKeyReady.
    fake.insert(secret(
        "keys",
        json!({"key": "private", "key.pub": "public"}),
    ))
    .unwrap();
    fake.modify("scheduledbackups", NS, "app", |sb| {
        sb["status"]["conditions"] = json!([{"type": "GPGKeyReady", "status": "True", "reason": "KeySecretValid", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
    })
    .unwrap();
    wait_ready(&fake, "app").await;
    quiet(&fake).await;
    assert_eq!(
        fake.write_count("scheduledbackups/status", Verb::Apply),
        1,
        "{:#?}",
        fake.write_log()
    );
}

#[tokio::test]
async fn a_missing_token_secret_is_reported_then_fixed_by_creating_it() {
    let fake = server();
    fake.insert(secret(
        "keys",
        json!({"key": "private", "key.pub": "public"}),
    ))
    .unwrap();
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    let _world = start(fake.clone());
    wait(&fake, "SecretNotFound", |s| {
        s.get("scheduledbackups", NS, "app")
            .and_then(|sb| ready(&sb))
            == Some(("False".into(), "SecretNotFound".into()))
    })
    .await;
    let events = fake.events_for("app");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "Warning" && e["reason"] == "SecretNotFound"),
        "{events:#?}"
    );
    // No hot loop: while nothing changes, nothing is written.
    quiet(&fake).await;
    fake.reset_counters();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.total_writes(), 0, "{:#?}", fake.write_log());

    fake.insert(secret("token", json!({"token": "jwt"})))
        .unwrap();
    wait_ready(&fake, "app").await;
}

#[tokio::test]
async fn importing_a_key_the_vars_secret_lacks_is_reported() {
    let fake = server();
    seed(&fake);
    fake.insert(secret("vars", json!({"Params.user": "u"})))
        .unwrap();
    fake.insert(scheduled_backup(
        "app",
        json!({"varsSecretRef": {"secretName": "vars", "importOnlyKeys": ["Params.password"]}}),
    ))
    .unwrap();
    let _world = start(fake.clone());
    wait(&fake, "a render error naming the key", |s| {
        s.get("scheduledbackups", NS, "app").is_some_and(|sb| {
            let c = sb["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned());
            c.is_some_and(|c| {
                c["status"] == "False"
                    && c["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Params.password")
            })
        })
    })
    .await;
}

#[tokio::test]
async fn status_reports_owned_children_and_the_cronjob() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    let _world = start(fake.clone());
    wait_ready(&fake, "app").await;
    quiet(&fake).await;
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    let owned: Vec<String> = sb["status"]["ownedReferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        owned,
        [
            "ConfigMap/app-backup",
            "ConfigMap/app-restore",
            "Secret/app-backup",
            "Secret/app-restore",
            "PodTemplate/app-backup",
            "PodTemplate/app-restore",
            "CronJob/app-backup"
        ]
    );
    assert_eq!(
        sb["status"]["childrenResourcesHealth"][0]["kind"],
        "CronJob"
    );
    assert_eq!(sb["status"]["observedGeneration"], 1);
    assert!(
        sb["status"]["lastAppliedSpecHash"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );
    // gpg-keygen's condition survives this controller's status applies.
    assert!(
        sb["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "GPGKeyReady")
    );
}

#[tokio::test]
async fn a_changed_vars_secret_is_rendered_again() {
    let fake = server();
    seed(&fake);
    // An original-style template that pastes the value raw, so the Secret's value lands in the script.
    fake.insert(json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "ClusterBackupProcedureTemplate",
        "metadata": {"name": "raw"},
        "spec": {"image": "example/tools:1", "backup": "echo {{ .Params.user }}", "restore": "echo {{ .Params.user }}"}
    }))
    .unwrap();
    fake.insert(secret("vars", json!({"Params.user": "alice"})))
        .unwrap();
    fake.insert(scheduled_backup(
        "app",
        json!({"templateRef": {"kind": "ClusterBackupProcedureTemplate", "name": "raw"}, "varsSecretRef": {"secretName": "vars"}}),
    ))
    .unwrap();
    let _world = start(fake.clone());
    let script = |s: &fake_apiserver::StateView<'_>| {
        s.get("configmaps", NS, "app-backup")
            .map(|cm| cm["data"].to_string())
            .unwrap_or_default()
    };
    wait(&fake, "first render", |s| script(s).contains("echo alice")).await;
    // Pasting a Secret value raw into a script is allowed for compatibility, but announced.
    wait(&fake, "a RenderWarning event", |s| {
        s.list("events.events.k8s.io")
            .iter()
            .any(|e| e["reason"] == "RenderWarning")
    })
    .await;
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    let rendered = sb["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "TemplateRendered")
        .unwrap()
        .clone();
    assert!(
        rendered["message"].as_str().unwrap().contains("warning:"),
        "{rendered}"
    );
    fake.insert(secret("vars", json!({"Params.user": "bob"})))
        .unwrap();
    wait(&fake, "re-render after the vars Secret changed", |s| {
        script(s).contains("echo bob")
    })
    .await;
}

#[tokio::test]
async fn readiness_turns_true_once_the_caches_are_synced() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    let health = Health::default();
    let config = scheduled_controller::Config {
        namespace: None,
        concurrency: 2,
        metrics: ControllerMetrics::new("scheduled-controller", &prometheus::Registry::new()),
        health: health.clone(),
        instance: None,
        shard: Default::default(),
    };
    assert!(!health.is_ready());
    let client = fake.client();
    let task = tokio::spawn(async move {
        scheduled_controller::run(client, config, std::future::pending())
            .await
            .unwrap();
    });
    wait_ready(&fake, "app").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !health.is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
}

#[tokio::test]
async fn the_controller_stops_gracefully_when_shutdown_fires() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = scheduled_controller::Config {
        namespace: None,
        concurrency: 2,
        metrics: ControllerMetrics::new("scheduled-controller", &prometheus::Registry::new()),
        health: Health::default(),
        instance: None,
        shard: Default::default(),
    };
    let run = tokio::spawn(scheduled_controller::run(
        fake.client(),
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    wait_ready(&fake, "app").await;
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run returns after shutdown");
    result.unwrap().unwrap();
}

#[tokio::test]
async fn a_name_collision_clears_as_soon_as_the_foreign_object_is_deleted() {
    let fake = server();
    seed(&fake);
    let taken = template_engine::child_name("app", crd_types::Operation::Backup);
    fake.insert(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": taken, "namespace": NS},
        "data": {"someone": "else's"}
    }))
    .unwrap();
    fake.insert(scheduled_backup("app", json!({}))).unwrap();
    let _world = start(fake.clone());
    wait(&fake, "NameCollision", |s| {
        s.get("scheduledbackups", NS, "app")
            .and_then(|sb| ready(&sb))
            == Some(("False".into(), "NameCollision".into()))
    })
    .await;
    assert_eq!(
        fake.get("configmaps", NS, &taken).unwrap()["data"]["someone"],
        "else's",
        "a foreign object is never overwritten"
    );
    // The resync is 10 minutes away: only the watch on the blocker can make this quick.
    fake.delete("configmaps", NS, &taken).unwrap();
    wait_ready(&fake, "app").await;
}

#[tokio::test]
async fn a_long_error_reaches_the_event_cut_to_the_api_limit_and_the_condition_in_full() {
    let fake = server();
    seed(&fake);
    // A quantity the render refuses, quoted in full in the message.
    let key = "k".repeat(1500);
    let vars = format!(
        "Params: {{hostname: db, port: 5432, db: app, user: app, password: pw}}\nRepository: {{url: 'https://b.example.org', passphrase: '', collectionId: c1}}\nHelmValues: {{resources: {{limits: {{memory: {key}}}}}}}\n"
    );
    fake.insert(scheduled_backup("app", json!({"vars": vars})))
        .unwrap();
    let _world = start(fake.clone());
    wait(&fake, "InvalidVars", |s| {
        s.get("scheduledbackups", NS, "app")
            .and_then(|sb| ready(&sb))
            .is_some_and(|(status, _)| status == "False")
    })
    .await;
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    let ready_message = sb["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ready_message.contains(&key),
        "the condition keeps the full text"
    );
    let events = fake.events_for("app");
    let warning = events
        .iter()
        .find(|e| e["type"] == "Warning")
        .unwrap_or_else(|| panic!("no Warning event: {events:#?}"));
    let note = warning["note"]
        .as_str()
        .or(warning["message"].as_str())
        .unwrap();
    assert!(note.len() <= 1024, "{}", note.len());
    assert!(note.ends_with(controller_runtime::events::TRUNCATION_MARKER));
}

#[tokio::test]
async fn a_child_the_api_server_refuses_is_reported_as_the_users_input_and_not_retried() {
    let fake = server();
    seed(&fake);
    // A value the render passes through and the API server refuses (422 on the CronJob).
    let vars = "Params: {hostname: db, port: 5432, db: app, user: app, password: pw}\nRepository: {url: 'https://b.example.org', passphrase: '', collectionId: c1}\nHelmValues: {backoffLimit: -1}\n";
    fake.insert(scheduled_backup("app", json!({"vars": vars})))
        .unwrap();
    let _world = start(fake.clone());
    wait(&fake, "RejectedByAPIServer", |s| {
        s.get("scheduledbackups", NS, "app")
            .and_then(|sb| ready(&sb))
            == Some(("False".into(), "RejectedByAPIServer".into()))
    })
    .await;
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    let message = sb["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("CronJob team-a/app-backup")
            && message.contains("backoffLimit: Invalid value: -1")
            && message.contains("Fix the ScheduledBackup field"),
        "{message}"
    );
    let events = fake.events_for("app");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "Warning" && e["reason"] == "RejectedByAPIServer"),
        "{events:#?}"
    );
    // The user's input, not a transient error: no retry loop until something changes.
    quiet(&fake).await;
    fake.reset_counters();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(fake.total_writes(), 0, "{:#?}", fake.write_log());
}

fn condition(sb: &Value, type_: &str) -> Option<Value> {
    sb["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

#[tokio::test]
async fn a_spread_schedule_reaches_the_cronjob_and_the_status_as_its_concrete_expression() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup(
        "app",
        json!({"cronJob": {"enabled": true, "scheduleEvery": "H 3 * * *"}}),
    ))
    .unwrap();
    let _world = start(fake.clone());
    wait_ready(&fake, "app").await;
    quiet(&fake).await;
    let minute = crd_types::spread::seed(NS, "app") % 60;
    let concrete = format!("{minute} 3 * * *");
    let cron = fake.get("cronjobs", NS, "app-backup").unwrap();
    assert_eq!(cron["spec"]["schedule"], json!(concrete));
    assert_eq!(cron["spec"]["startingDeadlineSeconds"], json!(3600));
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    assert_eq!(sb["status"]["effectiveSchedule"], json!(concrete));
    // The next run is the next HH:MM of that expression, whole minutes.
    let next: jiff::Timestamp = sb["status"]["nextScheduleTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = jiff::Timestamp::now();
    assert!(next > now && next.duration_since(now) <= jiff::SignedDuration::from_hours(24));
    let utc = next.to_zoned(jiff::tz::TimeZone::UTC);
    assert_eq!(
        (utc.hour(), utc.minute() as u64, utc.second()),
        (3, minute, 0)
    );
    let overdue = condition(&sb, "Overdue").unwrap();
    assert_eq!(
        (overdue["status"].as_str(), overdue["reason"].as_str()),
        (Some("False"), Some("OnSchedule"))
    );
}

#[tokio::test]
async fn a_failed_run_says_why_in_status_condition_and_event_and_a_success_resets_the_count() {
    use fake_apiserver::testing::{Outcome, finish_job_pod};
    let fake = server();
    seed(&fake);
    // No retries: the first failed Pod fails the Job.
    let vars = "Params: {hostname: db, port: 5432, db: app, user: app, password: pw}\nRepository: {url: 'https://b.example.org', passphrase: '', collectionId: c1}\nHelmValues: {backoffLimit: 0}\n";
    fake.insert(scheduled_backup("app", json!({"vars": vars})))
        .unwrap();
    let _world = start(fake.clone());
    wait_ready(&fake, "app").await;

    let output = "pg_dump: error: connection to server at \"db\" (10.0.0.7), port 5432 failed: Connection refused";
    let base = std::time::SystemTime::now() - Duration::from_secs(3 * 3600);
    let job = fake
        .fire_cronjob_at(NS, "app-backup", base)
        .unwrap()
        .unwrap();
    let job_name = job["metadata"]["name"].as_str().unwrap().to_string();
    finish_job_pod(
        fake.client(),
        NS,
        &job_name,
        Outcome::Failed {
            exit_code: 1,
            message: format!("dumping app...\n{output}\n"),
        },
    )
    .await
    .unwrap();
    wait(&fake, "the failure output in status", |s| {
        s.get("scheduledbackups", NS, "app").is_some_and(|sb| {
            sb["status"]["lastFailureMessage"]
                .as_str()
                .is_some_and(|m| m.contains(output))
                && sb["status"]["consecutiveFailures"] == 1
        })
    })
    .await;
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    let last_run = condition(&sb, "LastRunSucceeded").unwrap();
    assert_eq!(last_run["status"], "False");
    assert!(
        last_run["message"].as_str().unwrap().contains(output),
        "{last_run}"
    );
    assert!(
        sb["status"]["lastRunDuration"]
            .as_str()
            .unwrap()
            .ends_with('s')
    );
    assert_eq!(sb["status"]["healthy"], false);
    wait(&fake, "a JobFailed event with the output", |s| {
        let mut events = s.list("events");
        events.extend(s.list("events.events.k8s.io"));
        events.iter().any(|e| {
            e["type"] == "Warning"
                && e["reason"] == "JobFailed"
                && e["note"]
                    .as_str()
                    .or(e["message"].as_str())
                    .is_some_and(|n| n.contains(output))
        })
    })
    .await;

    // A second failure counts 2; a success resets to 0 and keeps the last failure's message. Failures are told
    // apart by their (second-resolution) times, as the runs of one CronJob are at least a minute apart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = fake
        .fire_cronjob_at(NS, "app-backup", base + Duration::from_secs(3600))
        .unwrap()
        .unwrap();
    finish_job_pod(
        fake.client(),
        NS,
        second["metadata"]["name"].as_str().unwrap(),
        Outcome::Failed {
            exit_code: 2,
            message: "upload refused".into(),
        },
    )
    .await
    .unwrap();
    wait(&fake, "two consecutive failures", |s| {
        s.get("scheduledbackups", NS, "app")
            .is_some_and(|sb| sb["status"]["consecutiveFailures"] == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = fake
        .fire_cronjob_at(NS, "app-backup", base + Duration::from_secs(7200))
        .unwrap()
        .unwrap();
    finish_job_pod(
        fake.client(),
        NS,
        third["metadata"]["name"].as_str().unwrap(),
        Outcome::Succeeded,
    )
    .await
    .unwrap();
    wait(&fake, "the count reset by a success", |s| {
        s.get("scheduledbackups", NS, "app").is_some_and(|sb| {
            sb["status"]["consecutiveFailures"] == 0
                && condition(&sb, "LastRunSucceeded").is_some_and(|c| c["status"] == "True")
        })
    })
    .await;
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    assert!(
        sb["status"]["lastFailureMessage"]
            .as_str()
            .unwrap()
            .contains("upload refused")
    );
}

#[tokio::test]
async fn overdue_turns_true_at_its_deadline_without_polling_and_a_success_clears_it() {
    use fake_apiserver::testing::{Outcome, finish_job_pod};
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup(
        "app",
        json!({"cronJob": {"enabled": true, "scheduleEvery": "0 3 * * *", "overdueAfter": "4s"}}),
    ))
    .unwrap();
    let _world = start(fake.clone());
    wait_ready(&fake, "app").await;
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    let created: jiff::Timestamp = sb["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let deadline = created + jiff::SignedDuration::from_secs(4);
    assert_eq!(condition(&sb, "Overdue").unwrap()["status"], "False");
    quiet(&fake).await;
    fake.reset_counters();

    wait(&fake, "Overdue=True", |s| {
        s.get("scheduledbackups", NS, "app")
            .and_then(|sb| condition(&sb, "Overdue"))
            .is_some_and(|c| c["status"] == "True")
    })
    .await;
    let flipped = jiff::Timestamp::now();
    assert!(
        flipped >= deadline,
        "flipped at {flipped}, deadline {deadline}"
    );
    assert!(
        flipped.duration_since(deadline) < jiff::SignedDuration::from_secs(2),
        "flipped at {flipped}, deadline {deadline}: the requeue is at the deadline, not a poll"
    );
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    let overdue = condition(&sb, "Overdue").unwrap();
    assert_eq!(overdue["reason"], "NoRecentSuccess");
    assert_eq!(condition(&sb, "Ready").unwrap()["status"], "True");
    assert_eq!(sb["status"]["healthy"], false);
    quiet(&fake).await;
    // Exactly one status write for the flip (plus its Event), nothing before or after.
    assert_eq!(
        fake.write_count("scheduledbackups/status", Verb::Apply),
        1,
        "{:#?}",
        fake.write_log()
    );
    let events = fake.events_for("app");
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "Warning" && e["reason"] == "Overdue")
        .collect();
    assert_eq!(warnings.len(), 1, "{events:#?}");

    let job = fake.fire_cronjob(NS, "app-backup").unwrap().unwrap();
    finish_job_pod(
        fake.client(),
        NS,
        job["metadata"]["name"].as_str().unwrap(),
        Outcome::Succeeded,
    )
    .await
    .unwrap();
    wait(&fake, "Overdue=False after a success", |s| {
        s.get("scheduledbackups", NS, "app")
            .and_then(|sb| condition(&sb, "Overdue"))
            .is_some_and(|c| c["status"] == "False")
    })
    .await;
}

fn actions(fake: &FakeApiServer) -> Vec<String> {
    let mut names: Vec<String> = fake
        .list("requestedbackupactions")
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn run_on_create_makes_one_action_per_generation_that_enables_it() {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup(
        "app",
        json!({"cronJob": {"enabled": false, "runOnCreate": true}}),
    ))
    .unwrap();
    let _world = start(fake.clone());
    wait(&fake, "the on-create action recorded", |s| {
        s.get("scheduledbackups", NS, "app")
            .is_some_and(|sb| sb["status"]["runOnCreateGeneration"] == 1)
    })
    .await;
    quiet(&fake).await;
    assert_eq!(actions(&fake), ["app-on-create-1"]);
    let action = fake
        .get("requestedbackupactions", NS, "app-on-create-1")
        .unwrap();
    assert_eq!(action["spec"]["action"], "backup");
    assert_eq!(action["spec"]["scheduledBackupRef"]["name"], "app");
    let sb = fake.get("scheduledbackups", NS, "app").unwrap();
    assert_eq!(
        action["metadata"]["ownerReferences"][0]["uid"],
        sb["metadata"]["uid"]
    );
    assert!(
        fake.events_for("app")
            .iter()
            .any(|e| e["reason"] == "RunOnCreate"),
        "{:#?}",
        fake.events_for("app")
    );

    // Another spec change (a new generation) does not run again.
    fake.modify("scheduledbackups", NS, "app", |sb| {
        sb["spec"]["cronJob"]["enabled"] = json!(true)
    })
    .unwrap();
    wait(&fake, "generation 2 observed", |s| {
        s.get("scheduledbackups", NS, "app")
            .is_some_and(|sb| sb["status"]["observedGeneration"] == 2)
    })
    .await;
    quiet(&fake).await;
    assert_eq!(actions(&fake), ["app-on-create-1"]);

    // Off clears the record; on again runs once more, for that generation.
    fake.modify("scheduledbackups", NS, "app", |sb| {
        sb["spec"]["cronJob"]["runOnCreate"] = json!(false)
    })
    .unwrap();
    wait(&fake, "the record cleared", |s| {
        s.get("scheduledbackups", NS, "app").is_some_and(|sb| {
            sb["status"]["observedGeneration"] == 3
                && sb["status"]["runOnCreateGeneration"].is_null()
        })
    })
    .await;
    fake.modify("scheduledbackups", NS, "app", |sb| {
        sb["spec"]["cronJob"]["runOnCreate"] = json!(true)
    })
    .unwrap();
    wait(&fake, "a second on-create action", |s| {
        s.get("scheduledbackups", NS, "app")
            .is_some_and(|sb| sb["status"]["runOnCreateGeneration"] == 4)
    })
    .await;
    quiet(&fake).await;
    assert_eq!(actions(&fake), ["app-on-create-1", "app-on-create-4"]);
}

#[tokio::test]
async fn run_on_create_after_a_restart_between_create_and_record_finds_its_action_and_makes_no_second()
 {
    let fake = server();
    seed(&fake);
    fake.insert(scheduled_backup(
        "app",
        json!({"cronJob": {"enabled": false, "runOnCreate": true}}),
    ))
    .unwrap();
    // What a controller that crashed after the create left behind: the action, but no record in status.
    fake.insert(json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
        "metadata": {"name": "app-on-create-1", "namespace": NS},
        "spec": {"action": "backup", "scheduledBackupRef": {"name": "app"}}
    }))
    .unwrap();
    let _world = start(fake.clone());
    wait(&fake, "the on-create action recorded", |s| {
        s.get("scheduledbackups", NS, "app")
            .is_some_and(|sb| sb["status"]["runOnCreateGeneration"] == 1)
    })
    .await;
    quiet(&fake).await;
    assert_eq!(actions(&fake), ["app-on-create-1"]);
    // The one create was answered 409 AlreadyExists and changed nothing.
    let creates: Vec<_> = fake
        .write_log()
        .into_iter()
        .filter(|w| w.resource == "requestedbackupactions")
        .collect();
    assert!(
        creates.iter().all(|w| w.code == 409 && !w.changed),
        "{creates:#?}"
    );
}
