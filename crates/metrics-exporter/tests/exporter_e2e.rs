//! The exporter against the in-process fake API server: real watches, real reflector stores, the
//! real /metrics endpoint. Proves that finished Jobs move the right series and that the exporter
//! never writes to the API.

use axum::body::Body;
use controller_runtime::exposition::{Exposition, parse};
use controller_runtime::health::Health;
use controller_runtime::server::router;
use fake_apiserver::FakeApiServer;
use http_body_util::BodyExt;
use jiff::{SignedDuration, Timestamp};
use metrics_exporter::exporter::{self, ExporterConfig};
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

fn scheduled_backup(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"operation": "backup",
                 "cronJob": {"enabled": true, "scheduleEvery": "0 2 * * *", "timeZone": "Europe/Berlin"},
                 "templateRef": {"name": "pg15", "kind": "internal"},
                 "gpgKeySecretRef": {"secretName": "gpg"},
                 "tokenSecretRef": {"secretName": "token"}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok",
                                   "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    })
}

fn running_job(ns: &str, name: &str, sb: &str, start: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"riotkit.org/scheduled-backup": sb, "riotkit.org/operation": "backup"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "b", "image": "x"}]}}},
        "status": {"startTime": start, "active": 1}
    })
}

fn finish(job: &mut Value, outcome: &str, at: &str) {
    let status = &mut job["status"];
    status["active"] = json!(0);
    status["conditions"] = json!([{"type": outcome, "status": "True", "lastTransitionTime": at}]);
    if outcome == "Complete" {
        status["completionTime"] = json!(at);
        status["succeeded"] = json!(1);
    } else {
        status["failed"] = json!(1);
    }
}

async fn scrape(registry: &prometheus::Registry, health: &Health) -> Exposition {
    let resp = router(registry.clone(), health.clone())
        .oneshot(http::Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    parse(std::str::from_utf8(&body).unwrap()).unwrap()
}

/// Scrapes until `check` holds (watch events arrive asynchronously), failing after 5 s.
async fn eventually(
    registry: &prometheus::Registry,
    health: &Health,
    what: &str,
    check: impl Fn(&Exposition) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let e = scrape(registry, health).await;
        if check(&e) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last scrape: {e:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn secs(t: &str) -> f64 {
    t.parse::<Timestamp>().unwrap().as_millisecond() as f64 / 1000.0
}

#[tokio::test]
async fn succeeded_and_failed_jobs_move_the_right_series_without_any_api_write() {
    let server = FakeApiServer::new();
    server.insert(scheduled_backup("team-a", "db")).unwrap();
    server.insert(scheduled_backup("team-b", "files")).unwrap();
    server
        .insert(running_job("team-a", "db-1", "db", "2025-03-01T01:00:00Z"))
        .unwrap();
    server
        .insert(running_job(
            "team-b",
            "files-1",
            "files",
            "2025-03-01T01:00:00Z",
        ))
        .unwrap();
    server.reset_counters();

    let registry = prometheus::Registry::new();
    let health = Health::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ExporterConfig {
        namespace: None,
        overdue_grace: SignedDuration::from_hours(1),
        registry: registry.clone(),
        health: health.clone(),
        shard: Default::default(),
    };
    let task = tokio::spawn(exporter::run(server.client(), config, async {
        let _ = stopped.await;
    }));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !health.is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "exporter never became ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a = [
        ("namespace", "team-a"),
        ("scheduledbackup", "db"),
        ("operation", "backup"),
    ];
    let b = [
        ("namespace", "team-b"),
        ("scheduledbackup", "files"),
        ("operation", "backup"),
    ];
    eventually(&registry, &health, "both ScheduledBackups", |e| {
        e.value("backup_maker_scheduledbackup_ready", &a) == Some(1.0)
            && e.value("backup_maker_scheduledbackup_ready", &b) == Some(1.0)
    })
    .await;
    let e = scrape(&registry, &health).await;
    assert_eq!(
        e.value("backup_maker_last_success_timestamp_seconds", &a),
        None,
        "running Jobs are not finished"
    );
    assert!(
        e.value("backup_maker_next_scheduled_timestamp_seconds", &a)
            .unwrap()
            > secs("2025-01-01T00:00:00Z")
    );

    server
        .modify("jobs", "team-a", "db-1", |j| {
            finish(j, "Complete", "2025-03-01T01:04:00Z")
        })
        .unwrap();
    server
        .modify("jobs", "team-b", "files-1", |j| {
            finish(j, "Failed", "2025-03-01T01:00:30Z")
        })
        .unwrap();
    eventually(&registry, &health, "the finished Jobs", |e| {
        e.value("backup_maker_last_success_timestamp_seconds", &a)
            == Some(secs("2025-03-01T01:04:00Z"))
            && e.value("backup_maker_last_failure_timestamp_seconds", &b)
                == Some(secs("2025-03-01T01:00:30Z"))
    })
    .await;
    let e = scrape(&registry, &health).await;
    assert_eq!(
        e.value("backup_maker_last_duration_seconds", &a),
        Some(240.0)
    );
    assert_eq!(
        e.value("backup_maker_last_duration_seconds", &b),
        Some(30.0)
    );
    // The success moved only team-a's success series, the failure only team-b's failure series.
    assert_eq!(
        e.value("backup_maker_last_failure_timestamp_seconds", &a),
        None
    );
    assert_eq!(
        e.value("backup_maker_last_success_timestamp_seconds", &b),
        None
    );

    // Deleting a ScheduledBackup removes its series.
    server
        .delete("scheduledbackups", "team-b", "files")
        .unwrap();
    eventually(&registry, &health, "team-b's series to disappear", |e| {
        e.value("backup_maker_scheduledbackup_ready", &b).is_none()
    })
    .await;

    assert_eq!(
        server.total_writes(),
        0,
        "the exporter wrote: {:?}",
        server.write_log()
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn actions_are_counted_by_result_and_running_ones_gauged() {
    let server = FakeApiServer::new();
    let rba = |name: &str, phase: &str| {
        json!({"apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
               "metadata": {"name": name, "namespace": "team-a"},
               "spec": {"action": "backup", "scheduledBackupRef": {"name": "db"}},
               "status": {"phase": phase}})
    };
    server.insert(rba("r1", "Running")).unwrap();
    server.insert(rba("r2", "Succeeded")).unwrap();
    let registry = prometheus::Registry::new();
    let health = Health::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ExporterConfig {
        namespace: Some("team-a".into()),
        overdue_grace: SignedDuration::from_hours(1),
        registry: registry.clone(),
        health: health.clone(),
        shard: Default::default(),
    };
    let task = tokio::spawn(exporter::run(server.client(), config, async {
        let _ = stopped.await;
    }));
    let total = |e: &Exposition, result: &str| {
        e.value(
            "backup_maker_actions_total",
            &[
                ("namespace", "team-a"),
                ("action", "backup"),
                ("result", result),
            ],
        )
    };
    eventually(&registry, &health, "initial actions", |e| {
        total(e, "succeeded") == Some(1.0)
            && total(e, "failed") == Some(0.0)
            && e.value("backup_maker_actions_running", &[("namespace", "team-a")]) == Some(1.0)
    })
    .await;
    server
        .modify("requestedbackupactions", "team-a", "r1", |o| {
            o["status"]["phase"] = json!("Failed")
        })
        .unwrap();
    eventually(&registry, &health, "the failed action", |e| {
        total(e, "failed") == Some(1.0)
            && e.value("backup_maker_actions_running", &[("namespace", "team-a")]) == Some(0.0)
    })
    .await;
    assert_eq!(
        server.total_writes(),
        0,
        "the exporter wrote: {:?}",
        server.write_log()
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
