//! Bench: latency from "RequestedBackupAction created" to "its Job exists" on the in-process fake API server.
//!
//! One controller runs against a fake server seeded with a Ready ScheduledBackup (built-in pg15 template) and the
//! PodTemplates the scheduled-controller would apply for it. Actions are created one at a time (after a warm-up);
//! for each, the time until the Job is stored is measured. That span covers the watch event, the queue, the
//! SB/PodTemplate cache reads, building the Job from the PodTemplate and the POST.
//! Prints p50/p95/p99/max (target: p50 < 20 ms) and the API writes per action. `cargo bench -p action-controller`;
//! `BENCH_ACTIONS=N` changes the count (default 300).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{NS, action, seed, server, start};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("BENCH_ACTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let warmup = 20;
    let fake = server(false);
    seed(&fake);
    let controller = start(fake.client());

    let mut latencies = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let name = format!("bench-{i}");
        if i == warmup {
            fake.reset_counters();
        }
        let started = Instant::now();
        fake.insert(action(&name, json!({"action": "backup"})))
            .unwrap();
        fake.wait_for(Duration::from_secs(10), |s| {
            s.get("jobs", NS, &name).is_some()
        })
        .await
        .expect("Job created");
        let elapsed = started.elapsed();
        if i >= warmup {
            latencies.push(elapsed);
        }
    }
    // Let the last status writes land before counting writes.
    let last = format!("bench-{}", warmup + count - 1);
    fake.wait_for(Duration::from_secs(10), |s| {
        s.get("requestedbackupactions", NS, &last)
            .is_some_and(|a| a["status"]["processed"] == true)
    })
    .await
    .expect("status written");
    tokio::time::sleep(Duration::from_millis(200)).await;

    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "action-controller: action created → Job created, {count} actions (after {warmup} warm-up), fake API server"
    );
    println!(
        "  p50 {:.2} ms   p95 {:.2} ms   p99 {:.2} ms   max {:.2} ms   (target p50 < 20 ms)",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
    );
    println!("  API writes per action:");
    for ((resource, verb), n) in fake.writes() {
        println!(
            "    {resource:<36} {verb:?}: {:.2}",
            n as f64 / count as f64
        );
    }
    controller.stop().await;
}
