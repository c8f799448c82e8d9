//! Bench: 500 ScheduledBackups converging on the in-process fake API server.
//!
//! Prints the wall time until every SB is `Ready=True`, the API writes per SB by resource and verb (target: the
//! minimum — one apply per child and one status write), the writes of a full re-reconcile (target: 0), and the
//! process's peak resident memory (an upper bound for the controller: the fake server's store lives in the same
//! process). It then measures the real `scheduled-controller` binary in its own process, against the fake server
//! served over HTTP on 127.0.0.1, and reports that process's resident memory with every SB watched and converged.
//! `cargo bench -p scheduled-controller`; `BENCH_SBS=N` changes the count.

use std::time::{Duration, Instant};

use controller_runtime::health::Health;
use controller_runtime::metrics::ControllerMetrics;
use fake_apiserver::FakeApiServer;
use serde_json::json;

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn seeded_server(count: usize) -> FakeApiServer {
    let mut builder = FakeApiServer::builder();
    for crd in crd_types::all_crds() {
        builder = builder.crd_defaults_from_yaml(&serde_json::to_string(&crd).unwrap());
    }
    let fake = builder.build();
    for ns in 0..10 {
        let ns = format!("team-{ns}");
        fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": ns}, "stringData": {"token": "jwt"}})).unwrap();
        fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": ns}, "stringData": {"key": "k", "key.pub": "p"}})).unwrap();
    }
    for i in 0..count {
        let ns = format!("team-{}", i % 10);
        fake.insert(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
            "metadata": {"name": format!("db-{i}"), "namespace": ns, "uid": format!("uid-{i}")},
            "spec": {
                "operation": "backup",
                "cronJob": {"enabled": true, "scheduleEvery": format!("{} 2 * * *", i % 60)},
                "templateRef": {"kind": "internal", "name": "pg15"},
                "gpgKeySecretRef": {"secretName": "keys", "createIfNotExists": true, "email": "a@example.org"},
                "tokenSecretRef": {"secretName": "token", "tokenKey": "token"},
                "vars": format!("Params: {{hostname: db-{i}, port: 5432, db: app, user: app, password: pw}}\nRepository: {{url: 'https://b.example.org', passphrase: '', collectionId: c{i}}}\n")
            },
            "status": {"conditions": [{"type": "GPGKeyReady", "status": "True", "reason": "KeySecretValid", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap();
    }
    fake.reset_counters();
    fake
}

async fn all_ready(fake: &FakeApiServer) {
    fake.wait_for(Duration::from_secs(600), |s| {
        s.list("scheduledbackups").iter().all(|sb| {
            sb["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
    })
    .await
    .expect("all ScheduledBackups become Ready");
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("BENCH_SBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    in_process(count).await;
    separate_process(count).await;
}

async fn in_process(count: usize) {
    let fake = seeded_server(count);
    let baseline_rss = rss_kib("VmRSS:");

    let registry = prometheus::Registry::new();
    let metrics = ControllerMetrics::new("scheduled-controller", &registry);
    let config = scheduled_controller::Config {
        namespace: None,
        concurrency: 8,
        metrics,
        health: Health::default(),
        instance: None,
        shard: Default::default(),
    };
    let client = fake.client();
    let started = Instant::now();
    let task = tokio::spawn(async move {
        scheduled_controller::run(client, config, std::future::pending())
            .await
            .unwrap()
    });
    fake.wait_for(Duration::from_secs(600), |s| {
        s.list("scheduledbackups").iter().all(|sb| {
            sb["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
    })
    .await
    .expect("all ScheduledBackups become Ready");
    let converged = started.elapsed();
    fake.wait_until_quiet(Duration::from_millis(500), Duration::from_secs(120))
        .await
        .unwrap();

    println!("scheduled-controller converge bench: {count} ScheduledBackups");
    println!(
        "  time to all Ready: {:.2} s ({:.1} SB/s)",
        converged.as_secs_f64(),
        count as f64 / converged.as_secs_f64()
    );
    let mut total = 0;
    for ((resource, verb), n) in fake.writes() {
        total += n;
        println!(
            "  {resource:<28} {verb:<7} {n:>6}  ({:.2} per SB)",
            n as f64 / count as f64
        );
    }
    println!(
        "  total writes: {total} ({:.2} per SB; minimum is 5 children + 1 status = 6, plus 1 event)",
        total as f64 / count as f64
    );

    fake.reset_counters();
    for i in 0..count {
        let ns = format!("team-{}", i % 10);
        fake.modify("scheduledbackups", &ns, &format!("db-{i}"), |sb| {
            sb["metadata"]["labels"] = json!({"poke": "1"})
        })
        .unwrap();
    }
    fake.wait_until_quiet(Duration::from_millis(500), Duration::from_secs(120))
        .await
        .unwrap();
    println!(
        "  writes after re-reconciling all {count}: {}",
        fake.total_writes()
    );
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    let exposition = controller_runtime::exposition::parse(&text).unwrap();
    let reconciles: f64 = exposition
        .series("backup_maker_reconcile_total")
        .map(|s| s.value)
        .sum();
    let seconds: f64 = exposition
        .series("backup_maker_reconcile_duration_seconds_sum")
        .map(|s| s.value)
        .sum();
    println!(
        "  reconciles: {reconciles} ({:.1} per SB), mean reconcile {:.2} ms",
        reconciles / count as f64,
        1000.0 * seconds / reconciles
    );
    println!(
        "  process RSS: {} KiB after seeding, {} KiB now, peak {} KiB (includes the fake API server's store)",
        baseline_rss,
        rss_kib("VmRSS:"),
        rss_kib("VmHWM:")
    );
    task.abort();
}

/// The real binary in its own process, so its resident memory is measured alone.
async fn separate_process(count: usize) {
    let fake = seeded_server(count);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().fallback_service(fake.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("bmc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
             users: [{{name: bench, user: {{}}}}]\ncontexts: [{{name: bench, context: {{cluster: fake, user: bench}}}}]\ncurrent-context: bench\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scheduled-controller"))
        .args([
            "run",
            "--leader-election=false",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting the scheduled-controller binary");
    all_ready(&fake).await;
    let converged = started.elapsed();
    fake.wait_until_quiet(Duration::from_millis(500), Duration::from_secs(120))
        .await
        .unwrap();
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            .unwrap_or_default()
    };
    println!(
        "scheduled-controller binary in its own process, over HTTP, {count} ScheduledBackups:"
    );
    println!(
        "  time to all Ready: {:.2} s; total writes {}",
        converged.as_secs_f64(),
        fake.total_writes()
    );
    println!(
        "  controller RSS {} KiB, peak {} KiB (target: <= 40 MiB = 40960 KiB)",
        field("VmRSS:"),
        field("VmHWM:")
    );
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    let _ = std::fs::remove_dir_all(dir);
}
