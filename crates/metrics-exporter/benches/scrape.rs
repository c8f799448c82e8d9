//! Scrape cost with a large store: N ScheduledBackups (default 500, `BENCH_SBS=10000` for issue #15's scale; half
//! scheduled in Europe/Berlin, every tenth a restore drill of the collection of the one before), 3 finished Jobs
//! each and N/2.5 actions. Run with `cargo bench -p metrics-exporter --bench scrape`. Prints the median and p90 of
//! gather + text encoding, the work one /metrics request does.

use kube::runtime::watcher::Event;
use metrics_exporter::exporter::{BackupCollector, Feed};
use serde_json::json;
use std::time::{Duration, Instant};

fn main() {
    let n: usize = std::env::var("BENCH_SBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut feed = Feed::default();
    for i in 0..n {
        let ns = format!("ns-{}", (i / 10) % 50);
        let tz = if i % 2 == 0 {
            json!("Europe/Berlin")
        } else {
            json!(null)
        };
        feed.scheduled_backup(Event::Apply(
            serde_json::from_value(json!({
                "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
                "metadata": {"name": format!("sb-{i}"), "namespace": ns, "creationTimestamp": "2025-01-01T00:00:00Z"},
                "spec": {"operation": if i % 10 == 9 { "restore" } else { "backup" },
                         "collectionId": format!("c-{}", i - i % 10 / 9),
                         "cronJob": {"enabled": true, "scheduleEvery": format!("{} {} * * *", i % 60, i % 24), "timeZone": tz},
                         "templateRef": {"name": "pg15", "kind": "internal"},
                         "gpgKeySecretRef": {"secretName": "g"}, "tokenSecretRef": {"secretName": "t"}},
                "status": {"lastSuccessfulTime": "2025-06-01T02:00:00Z",
                           "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                           "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
            }))
            .unwrap(),
        ));
        for j in 0..3 {
            let (cond, done) = if j == 2 {
                ("Failed", "2025-06-03T02:00:40Z")
            } else {
                ("Complete", "2025-06-02T02:01:00Z")
            };
            feed.job(Event::Apply(
                serde_json::from_value(json!({
                    "metadata": {"name": format!("sb-{i}-{j}"), "namespace": ns,
                                 "labels": {"riotkit.org/scheduled-backup": format!("sb-{i}"), "riotkit.org/operation": "backup"}},
                    "status": {"startTime": "2025-06-02T02:00:00Z", "completionTime": if cond == "Complete" { json!(done) } else { json!(null) },
                               "conditions": [{"type": cond, "status": "True", "lastTransitionTime": done}]}
                }))
                .unwrap(),
            ));
        }
    }
    let actions = n * 2 / 5;
    for i in 0..actions {
        let phase = ["Pending", "Running", "Succeeded", "Failed"][i % 4];
        feed.action(Event::Apply(
            serde_json::from_value(json!({
                "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
                "metadata": {"name": format!("r-{i}"), "namespace": format!("ns-{}", (i / 10) % 50), "uid": format!("u-{i}")},
                "spec": {"action": if i % 3 == 0 { "restore" } else { "backup" }, "scheduledBackupRef": {"name": format!("sb-{i}")}},
                "status": {"phase": phase}
            }))
            .unwrap(),
        ));
    }
    let stores = feed.stores();
    let registry = prometheus::Registry::new();
    registry
        .register(Box::new(BackupCollector::new(
            stores,
            jiff::SignedDuration::from_hours(1),
        )))
        .unwrap();
    let encoder = prometheus::TextEncoder::new();
    let mut size = 0;
    let mut times: Vec<Duration> = (0..60)
        .map(|_| {
            let start = Instant::now();
            let body = encoder.encode_to_string(&registry.gather()).unwrap();
            size = body.len();
            std::hint::black_box(&body);
            start.elapsed()
        })
        .skip(10) // warm-up
        .collect();
    times.sort();
    println!(
        "scrape with {n} ScheduledBackups, {} Jobs, {actions} actions: median {:?}, p90 {:?}, {} bytes, {} lines",
        n * 3,
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        size,
        encoder
            .encode_to_string(&registry.gather())
            .unwrap()
            .lines()
            .count()
    );
}
