//! A real Prometheus scrapes the controllers and the metrics exporter running on the in-process API server and
//! evaluates the shipped rules (deploy/prometheus/rules.yaml) and every Grafana dashboard query
//! (deploy/grafana/*.json); the assertions go through Prometheus' HTTP API. `promtool check metrics` lints each
//! /metrics scrape.
//!
//! Needs a `prometheus` binary (PATH or `PROMETHEUS_BIN`; scripts/test-all.sh installs Debian's package); without
//! one the test prints one line saying it skipped and passes. Bounded: it fails after [`BUDGET`], and its
//! Prometheus process is killed on every path out of the test (a Drop guard).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use controller_runtime::cli::{LogFormat, RunArgs};
use controller_runtime::health::Health;
use controller_runtime::runtime::{ControllerContext, run_controller_with};
use crd_types::constants::labels;
use crd_types::{RequestedBackupAction, ScheduledBackup};
use e2e::Env;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{ListParams, PostParams};
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Value, json};

/// The whole test, Prometheus start-up included.
const BUDGET: Duration = Duration::from_secs(55);

const NAMESPACE: &str = "shop";

/// Three ScheduledBackups on the built-in pg15 template sharing one generated key: `db` and `nightly` are not due
/// before next January, `late` runs every minute.
const FIXTURES: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: shop-token}
stringData: {token: eyJhbGciOi.jwt}
---
apiVersion: v1
kind: Secret
metadata: {name: shop-vars}
stringData: {Params.password: "s3cr3t"}
"#;

fn scheduled_backup(name: &str, schedule: &str) -> String {
    format!(
        r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {{name: {name}}}
spec:
  operation: backup
  cronJob: {{enabled: true, scheduleEvery: "{schedule}"}}
  templateRef: {{kind: internal, name: pg15}}
  gpgKeySecretRef: {{secretName: shop-gpg, createIfNotExists: true, email: backups@example.org}}
  tokenSecretRef: {{secretName: shop-token, tokenKey: token}}
  varsSecretRef: {{secretName: shop-vars, importOnlyKeys: [Params.password]}}
  vars: |
    Params: {{hostname: db.example.svc, port: 5432, db: app, user: app}}
    Repository: {{url: "https://backups.example.org", passphrase: "", recipient: backups@example.org, collectionId: c-1}}
"#
    )
}

/// A binary named by `env_var`, else the first `name` on PATH.
fn find_binary(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("bmc-prometheus-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Prometheus server; killed (and reaped) when dropped, also when the test panics or times out.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `bin` with the repository's rules and one scrape job per target (1 s scrape and evaluation
    /// intervals, `honor_labels: true` as the chart's ServiceMonitor sets it for the exporter).
    fn start(bin: &Path, targets: &[(&str, SocketAddr)]) -> anyhow::Result<Prometheus> {
        let dir = TempDir::new();
        // deploy/prometheus/rules.yaml is a PrometheusRule; its spec is a Prometheus rules file. JSON is YAML.
        let rule: Value = serde_saphyr::from_str(&std::fs::read_to_string(
            root().join("deploy/prometheus/rules.yaml"),
        )?)?;
        let rules_path = dir.0.join("rules.json");
        std::fs::write(&rules_path, serde_json::to_string(&rule["spec"])?)?;
        let scrape_configs: Vec<Value> = targets
            .iter()
            .map(|(job, addr)| {
                json!({
                    "job_name": job,
                    "honor_labels": true,
                    // The target labels the prometheus-operator adds: the pod's own namespace clashes with the
                    // exporter's `namespace` label, which honor_labels keeps.
                    "static_configs": [{"targets": [addr.to_string()],
                                        "labels": {"namespace": "backup-maker", "pod": format!("{job}-0")}}],
                })
            })
            .collect();
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules_path],
            "scrape_configs": scrape_configs,
        });
        let config_path = dir.0.join("prometheus.json");
        std::fs::write(&config_path, serde_json::to_string(&config)?)?;
        let addr = free_port();
        let log = std::fs::File::create(dir.0.join("prometheus.log"))?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Prometheus { child, addr, dir })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`, the `data` of a successful answer.
    async fn api(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = http_get(self.addr, &format!("/api/v1/{path}")).await?;
        let v: Value = serde_json::from_str(&body).with_context(|| format!("{path}: {body}"))?;
        ensure!(
            status == 200 && v["status"] == "success",
            "{path}: HTTP {status}: {body}"
        );
        Ok(v["data"].clone())
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> anyhow::Result<Vec<Value>> {
        let data = self.api(&format!("query?query={}", encode(promql))).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 GET (no keep-alive, no chunking), on the blocking pool: (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let text = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        use std::io::{Read as _, Write as _};
        let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        conn.write_all(request.as_bytes())?;
        let mut text = String::new();
        conn.read_to_string(&mut text)?;
        Ok(text)
    })
    .await??;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    Ok((status, body.to_owned()))
}

/// Polls `check` every 200 ms until it returns `Some`, failing with `what` and the last error after `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut last = String::new();
    loop {
        match check().await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last error: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts a controller the way its binary does (`run_controller_with`: registry, /metrics on `addr`, leader
/// metric), without leader election.
fn spawn_controller<F, Fut>(env: &Env, name: &'static str, addr: SocketAddr, start: F)
where
    F: FnOnce(kube::Client, ControllerContext) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let args = RunArgs {
        metrics_addr: addr,
        leader_election: false,
        namespace: Some(env.namespace.clone()),
        log_format: LogFormat::Text,
        concurrency: 4,
        lease_namespace: None,
        shard_selector: None,
        shard_name: None,
    };
    let client = env.client.clone();
    tokio::spawn(async move {
        if let Err(e) = run_controller_with(client, name, args, start).await {
            panic!("{name} stopped: {e:#}");
        }
    });
}

/// Serves the metrics exporter the way `metrics-exporter run` does, on a loopback port.
async fn spawn_exporter(env: &Env) -> SocketAddr {
    let registry = prometheus::Registry::new();
    let health = Health::default();
    let config = metrics_exporter::exporter::ExporterConfig {
        namespace: Some(env.namespace.clone()),
        // Negative: runs expected up to two minutes from now count as due, so `late` (every minute), created
        // now, is overdue at once. The API server sets creationTimestamp, so the object cannot be backdated
        // instead. `db` and `nightly` (next January) stay not due.
        overdue_grace: jiff::SignedDuration::from_mins(-2),
        registry: registry.clone(),
        health: health.clone(),
        shard: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(controller_runtime::server::serve_listener(
        listener,
        controller_runtime::server::router(registry, health),
        std::future::pending(),
    ));
    let client = env.client.clone();
    tokio::spawn(async move {
        if let Err(e) =
            metrics_exporter::exporter::run(client, config, std::future::pending()).await
        {
            panic!("metrics-exporter stopped: {e:#}");
        }
    });
    addr
}

/// A Job as the CronJob controller would create it from the CronJob's template, finished as `succeeded`.
async fn run_cron_job(env: &Env, cron_name: &str, job_name: &str, succeeded: bool) {
    let cron: CronJob = env.api().get(cron_name).await.unwrap();
    let template = cron.spec.clone().unwrap().job_template;
    let mut job = Job {
        metadata: template.metadata.unwrap_or_default(),
        spec: template.spec,
        status: None,
    };
    job.metadata.name = Some(job_name.into());
    job.metadata.owner_references = Some(vec![cron.controller_owner_ref(&()).unwrap()]);
    env.api::<Job>()
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    finish_job(env, job_name, succeeded).await;
}

/// Finishes Job `name` as the kubelet and the job controller would: its Pods end (one after another, as many as
/// its backoff limit allows) until the Job has a `Complete` or `Failed` condition.
async fn finish_job(env: &Env, name: &str, succeeded: bool) {
    use fake_apiserver::testing::{Outcome, finish_job_pod};
    let outcome = if succeeded {
        Outcome::Succeeded
    } else {
        Outcome::Failed {
            exit_code: 1,
            message: "backup failed".into(),
        }
    };
    eventually(
        Duration::from_secs(20),
        &format!("Job {name} finished"),
        || {
            let outcome = outcome.clone();
            async move {
                let job: Job = env.api().get(name).await?;
                let finished = job
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| {
                        matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True"
                    });
                if !finished {
                    finish_job_pod(env.client.clone(), &env.namespace, name, outcome).await?;
                }
                Ok(finished.then_some(()))
            }
        },
    )
    .await;
}

fn phase(a: &RequestedBackupAction) -> Option<&'static str> {
    a.status.as_ref().and_then(|s| s.phase).map(|p| p.as_str())
}

/// The labels of a query result or alert, without `__name__`.
fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v["labels"]
        .as_object()
        .or_else(|| v["metric"].as_object())
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Every PromQL expression of the Grafana dashboards, with the template variables as Grafana would send them
/// (the `namespace` variable on "All", `$__rate_interval` for a 1 s scrape interval).
fn dashboard_queries() -> Vec<(String, String)> {
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => {
                            out.push((title.to_owned(), s.clone()))
                        }
                        _ => walk(v, title, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("deploy/grafana")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let dash: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            walk(&dash, "", &mut out);
        }
    }
    out.into_iter()
        .map(|(title, expr)| {
            let expr = expr
                .replace("$namespace", ".*")
                .replace("$__rate_interval", "20s");
            (title, expr)
        })
        .collect()
}

/// `promtool check metrics` on a scrape of `addr`'s /metrics (naming, units, HELP, TYPE).
async fn promtool_check_metrics(
    promtool: &Path,
    name: &str,
    addr: SocketAddr,
) -> anyhow::Result<usize> {
    let (status, body) = http_get(addr, "/metrics").await?;
    ensure!(status == 200, "{name} /metrics answered {status}");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(body.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics on {name}'s /metrics:\n{}{}\n--- scrape ---\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(body.lines().filter(|l| !l.starts_with('#')).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_evaluates_the_shipped_rules_and_dashboard_on_live_scrapes() {
    let Some(bin) = find_binary("PROMETHEUS_BIN", "prometheus") else {
        println!(
            "skipped: no prometheus binary on PATH or in PROMETHEUS_BIN (scripts/test-all.sh installs Debian's prometheus)"
        );
        return;
    };
    tokio::time::timeout(BUDGET, scenario(&bin))
        .await
        .unwrap_or_else(|_| panic!("the real-Prometheus test took longer than {BUDGET:?}"));
}

async fn scenario(bin: &Path) {
    let started = std::time::Instant::now();
    let mut env = Env::fake().await;
    env.namespace = NAMESPACE.into();

    // Every binary's /metrics on its own loopback port, as the Deployments serve them.
    let ports = [
        ("gpg-keygen", free_port()),
        ("scheduled-controller", free_port()),
        ("action-controller", free_port()),
    ];
    spawn_controller(
        &env,
        gpg_keygen::CONTROLLER_NAME,
        ports[0].1,
        gpg_keygen::run,
    );
    spawn_controller(
        &env,
        scheduled_controller::NAME,
        ports[1].1,
        |client, ctx| {
            let (config, shutdown) = ctx.split();
            scheduled_controller::run(client, config, shutdown)
        },
    );
    spawn_controller(&env, action_controller::NAME, ports[2].1, |client, ctx| {
        let (config, shutdown) = ctx.split();
        action_controller::run(client, config, shutdown)
    });
    let exporter = spawn_exporter(&env).await;

    env.create_yaml(FIXTURES).await.unwrap();
    for (name, schedule) in [
        ("db", "0 3 1 1 *"),
        ("nightly", "0 3 1 1 *"),
        ("late", "* * * * *"),
    ] {
        env.create_yaml(&scheduled_backup(name, schedule))
            .await
            .unwrap();
    }
    for name in ["db", "nightly", "late"] {
        env.wait_for::<ScheduledBackup>(name, "Ready=True", |sb| {
            sb.status.as_ref().is_some_and(|s| {
                crd_types::conditions::is_true(
                    &s.conditions,
                    crd_types::constants::condition_types::READY,
                )
            })
        })
        .await;
    }
    // db's last run succeeded, nightly's only run failed.
    run_cron_job(&env, "db-backup", "db-backup-1", true).await;
    run_cron_job(&env, "nightly-backup", "nightly-backup-1", false).await;
    // A one-off restore of db, running while Prometheus takes its first scrapes. (A one-off backup's Job would
    // count as db's latest run, and its failure would rightly make BackupFailed pending for db.)
    env.create_yaml(
        "apiVersion: riotkit.org/v1alpha1\nkind: RequestedBackupAction\nmetadata: {name: restore-now}\n\
         spec: {action: restore, scheduledBackupRef: {name: db}}\n",
    )
    .await
    .unwrap();
    let action_job = eventually(Duration::from_secs(20), "the action's Job", || async {
        let selector = format!("{}=restore-now", labels::REQUESTED_BACKUP_ACTION);
        let jobs = env
            .api::<Job>()
            .list(&ListParams::default().labels(&selector))
            .await?;
        Ok(jobs.items.first().map(|j| j.name_any()))
    })
    .await;
    env.wait_for::<RequestedBackupAction>("restore-now", "phase Running", |a| {
        phase(a) == Some("Running")
    })
    .await;
    let objects_ready = started.elapsed();

    let mut targets = ports.to_vec();
    targets.push(("metrics-exporter", exporter));
    let prom = Prometheus::start(bin, &targets).unwrap();
    eventually(Duration::from_secs(15), "Prometheus ready", || async {
        let (status, _) = http_get(prom.addr, "/-/ready").await?;
        Ok((status == 200).then_some(()))
    })
    .await;
    // Two scrapes of every target, all up.
    eventually(
        Duration::from_secs(10),
        "two scrapes of every target",
        || async {
            let scraped = prom
                .query("count_over_time(up[1m]) >= 2 and up == 1")
                .await?;
            Ok((scraped.len() == targets.len()).then_some(()))
        },
    )
    .await;
    let prometheus_ready = started.elapsed();

    // The one-off restore fails now that Prometheus has seen its series at 0.
    finish_job(&env, &action_job, false).await;
    env.wait_for::<RequestedBackupAction>("restore-now", "phase Failed", |a| {
        phase(a) == Some("Failed")
    })
    .await;

    // honor_labels: the exporter's `namespace` (the backed-up one) wins over the target's; `up` keeps the target's.
    let overdue = prom.query("backup_maker_backup_overdue").await.unwrap();
    let by_sb: BTreeMap<String, (String, String)> = overdue
        .iter()
        .map(|s| {
            let l = labels_of(s);
            (
                l["scheduledbackup"].clone(),
                (
                    l["namespace"].clone(),
                    s["value"][1].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, String)> =
        [("db", "0"), ("late", "1"), ("nightly", "0")]
            .into_iter()
            .map(|(sb, v)| (sb.to_owned(), (NAMESPACE.to_owned(), v.to_owned())))
            .collect();
    assert_eq!(
        by_sb, expected,
        "backup_maker_backup_overdue as Prometheus stored it"
    );
    let up = prom.query("up{job=\"metrics-exporter\"}").await.unwrap();
    assert_eq!(labels_of(&up[0])["namespace"], "backup-maker");
    let ready = prom.query("backup_maker_exporter_ready").await.unwrap();
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!(
        ready[0]["value"][1], "1",
        "the exporter's watches have synced"
    );

    // Every family of every controller is there from start-up, errors at 0 for each reason of its error enum.
    for (controller, reasons) in [
        ("gpg-keygen", gpg_keygen::error::REASONS),
        ("scheduled-controller", scheduled_controller::error::REASONS),
        ("action-controller", action_controller::error::REASONS),
    ] {
        let selector = format!("{{controller=\"{controller}\"}}");
        let reasons_seen: BTreeSet<String> = prom
            .query(&format!("backup_maker_reconcile_errors_total{selector}"))
            .await
            .unwrap()
            .iter()
            .map(|s| labels_of(s)["reason"].clone())
            .collect();
        let expected: BTreeSet<String> = reasons.iter().map(|r| r.to_string()).collect();
        assert!(
            expected.is_subset(&reasons_seen),
            "{controller}: reasons missing from backup_maker_reconcile_errors_total: {:?}",
            expected.difference(&reasons_seen).collect::<Vec<_>>()
        );
        for (family, series) in [
            ("backup_maker_reconcile_total", 2),
            ("backup_maker_reconcile_duration_seconds_count", 1),
            ("backup_maker_leader", 1),
        ] {
            let found = prom.query(&format!("{family}{selector}")).await.unwrap();
            assert_eq!(found.len(), series, "{family} of {controller}: {found:?}");
        }
    }

    // The alerts: pending or firing exactly for the objects that deserve them, with the labels the
    // notifications use, and no alert about a healthy object or a running controller.
    let want: BTreeSet<(String, BTreeMap<String, String>)> = [
        (
            "BackupOverdue",
            vec![
                ("scheduledbackup", "late"),
                ("operation", "backup"),
                ("severity", "critical"),
            ],
        ),
        (
            "BackupFailed",
            vec![
                ("scheduledbackup", "nightly"),
                ("operation", "backup"),
                ("severity", "warning"),
            ],
        ),
        (
            "BackupActionFailed",
            vec![("action", "restore"), ("severity", "warning")],
        ),
    ]
    .into_iter()
    .map(|(alert, labels)| {
        let mut l: BTreeMap<String, String> = labels
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        l.insert("alertname".into(), alert.into());
        l.insert("namespace".into(), NAMESPACE.into());
        (alert.to_owned(), l)
    })
    .collect();
    let alerts = eventually(Duration::from_secs(15), "the expected alerts", || async {
        let data = prom.api("alerts").await?;
        let got: BTreeSet<(String, BTreeMap<String, String>)> = data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] != "ControllerReconcileErrors")
            .map(|a| {
                (
                    a["labels"]["alertname"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    labels_of(a),
                )
            })
            .collect();
        ensure!(
            got.is_subset(&want),
            "unexpected alerts: {:?}",
            got.difference(&want).collect::<Vec<_>>()
        );
        Ok((got == want).then_some(data))
    })
    .await;
    let state = |name: &str| -> String {
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .map(|a| a["state"].as_str().unwrap().to_owned())
            .unwrap()
    };
    // `for:` holds the durable conditions pending; a failed action is an event and fires at once.
    assert_eq!(state("BackupOverdue"), "pending");
    assert_eq!(state("BackupFailed"), "pending");
    assert_eq!(state("BackupActionFailed"), "firing");

    // Every rule evaluated without error.
    let rules = prom.api("rules").await.unwrap();
    let mut evaluated = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(
                rule["health"], "ok",
                "{}: {}",
                rule["name"], rule["lastError"]
            );
            assert!(rule["lastError"].as_str().unwrap_or_default().is_empty());
            evaluated += 1;
        }
    }
    let shipped: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join("deploy/prometheus/rules.yaml")).unwrap(),
    )
    .unwrap();
    let shipped_rules: usize = shipped["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert_eq!(evaluated, shipped_rules, "rules loaded: {rules}");

    // Every dashboard query parses and returns series with this data.
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    for (panel, expr) in &queries {
        let result = match expr.strip_prefix("label_values(") {
            // A Grafana variable query: label_values(metric, label) asks the label-values API.
            Some(args) => {
                let (metric, label) = args.trim_end_matches(')').split_once(',').unwrap();
                let path = format!(
                    "label/{}/values?match[]={}",
                    label.trim(),
                    encode(metric.trim())
                );
                prom.api(&path)
                    .await
                    .unwrap()
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            }
            None => prom
                .query(expr)
                .await
                .unwrap_or_else(|e| panic!("panel {panel:?}: {expr}: {e:#}")),
        };
        assert!(
            !result.is_empty(),
            "panel {panel:?} returns no series: {expr}"
        );
    }

    // promtool check metrics on a scrape of every binary (when promtool is installed next to prometheus).
    let promtool = find_binary("PROMTOOL_BIN", "promtool");
    let mut linted = Vec::new();
    if let Some(promtool) = &promtool {
        for (name, addr) in &targets {
            let samples = promtool_check_metrics(promtool, name, *addr).await.unwrap();
            linted.push(format!("{name} ({samples} samples)"));
        }
    }

    assert!(
        prom.log().lines().all(|l| !l.contains("level=error")),
        "Prometheus logged errors:\n{}",
        prom.log()
    );
    println!(
        "real Prometheus: objects ready after {objects_ready:?}, two scrapes after {prometheus_ready:?}, done after {:?}; \
         {} dashboard queries, {evaluated} rules; promtool check metrics: {}",
        started.elapsed(),
        queries.len(),
        if linted.is_empty() {
            "skipped (no promtool)".to_owned()
        } else {
            linted.join(", ")
        }
    );
    drop(prom);
    env.cleanup().await;
}
