//! CronJobs: the recorded defaults and schedule/time-zone rejections (recording a2), and the
//! fake's cronjob controller fired on demand (`FakeApiServer::fire_cronjob`).

mod recorded;

use std::time::{Duration, SystemTime};

use fake_apiserver::FakeApiServer;
use fake_apiserver::testing::{Outcome, finish_job_pod};
use k8s_openapi::api::batch::v1::CronJob;
use kube::Api;
use kube::api::PostParams;
use recorded::{Bindings, Recording, replay};
use serde_json::json;

#[tokio::test]
async fn cronjob_defaults_and_schedule_rejections_match_the_recording() {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load("a2-cronjob-create-defaults");
    let mut b = Bindings::default();
    for step in 0..rec.doc["steps"].as_array().unwrap().len() {
        replay(&client, &rec, step, &mut b).await;
    }
}

fn cronjob(name: &str, policy: &str) -> CronJob {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"schedule": "0 2 * * *", "concurrencyPolicy": policy, "timeZone": "Europe/Berlin",
                 "jobTemplate": {"metadata": {"labels": {"app": "backup"}},
                                 "spec": {"template": {"spec": {
                                     "containers": [{"name": "main", "image": "busybox"}],
                                     "restartPolicy": "Never"}}}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn firing_a_cronjob_creates_its_job_and_tracks_it_until_it_succeeds() {
    let server = FakeApiServer::new();
    let client = server.client();
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "ns");
    let cj = cjs
        .create(&PostParams::default(), &cronjob("nightly", "Allow"))
        .await
        .unwrap();
    // 2025-11-29T18:00:30Z: the Job is named after its minute since the epoch, 29407320.
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_439_230);
    let job = server
        .fire_cronjob_at("ns", "nightly", at)
        .unwrap()
        .expect("a Job was started");
    assert_eq!(job["metadata"]["name"], "nightly-29407320");
    assert_eq!(
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        "2025-11-29T19:00:00+01:00"
    );
    assert_eq!(job["metadata"]["labels"], json!({"app": "backup"}));
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["uid"].as_str(),
            &owner["controller"]
        ),
        (Some("CronJob"), cj.metadata.uid.as_deref(), &json!(true))
    );
    assert_eq!(
        job["spec"]["backoffLimit"], 6,
        "the Job gets the Job defaults"
    );
    let status = server.get("cronjobs", "ns", "nightly").unwrap()["status"].clone();
    assert_eq!(status["lastScheduleTime"], "2025-11-29T18:00:00Z");
    assert_eq!(status["active"][0]["name"], "nightly-29407320");
    assert_eq!(
        server.total_writes(),
        1,
        "only the test's create is counted"
    );

    finish_job_pod(client, "ns", "nightly-29407320", Outcome::Succeeded)
        .await
        .unwrap();
    server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("cronjobs", "ns", "nightly")
                .is_some_and(|c| c["status"]["lastSuccessfulTime"].is_string())
        })
        .await
        .unwrap();
    let status = server.get("cronjobs", "ns", "nightly").unwrap()["status"].clone();
    assert!(status.get("active").is_none(), "{status}");
}

#[tokio::test]
async fn a_suspended_cronjob_or_forbid_with_a_running_job_starts_nothing() {
    let server = FakeApiServer::new();
    let cjs: Api<CronJob> = Api::namespaced(server.client(), "ns");
    cjs.create(&PostParams::default(), &cronjob("one-at-a-time", "Forbid"))
        .await
        .unwrap();
    let first = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_439_200);
    let second = first + Duration::from_secs(60);
    assert!(
        server
            .fire_cronjob_at("ns", "one-at-a-time", first)
            .unwrap()
            .is_some()
    );
    assert!(
        server
            .fire_cronjob_at("ns", "one-at-a-time", second)
            .unwrap()
            .is_none()
    );

    let mut suspended = cronjob("paused", "Allow");
    suspended.spec.as_mut().unwrap().suspend = Some(true);
    cjs.create(&PostParams::default(), &suspended)
        .await
        .unwrap();
    assert!(server.fire_cronjob("ns", "paused").unwrap().is_none());
    assert_eq!(server.list("jobs").len(), 1);
}

#[tokio::test]
async fn finished_jobs_beyond_the_history_limit_are_deleted() {
    let server = FakeApiServer::new();
    let client = server.client();
    let mut cj = cronjob("keep-one", "Allow");
    cj.spec.as_mut().unwrap().successful_jobs_history_limit = Some(1);
    Api::<CronJob>::namespaced(client.clone(), "ns")
        .create(&PostParams::default(), &cj)
        .await
        .unwrap();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_439_200);
    for minute in 0..2 {
        let at = start + Duration::from_secs(60 * minute);
        let job = server
            .fire_cronjob_at("ns", "keep-one", at)
            .unwrap()
            .unwrap();
        let name = job["metadata"]["name"].as_str().unwrap().to_owned();
        finish_job_pod(client.clone(), "ns", &name, Outcome::Succeeded)
            .await
            .unwrap();
        server
            .wait_for(Duration::from_secs(5), |s| {
                s.get("jobs", "ns", &name)
                    .is_none_or(|j| j["status"]["succeeded"] == 1)
            })
            .await
            .unwrap();
    }
    server
        .wait_for(Duration::from_secs(5), |s| s.list("jobs").len() == 1)
        .await
        .unwrap();
    assert_eq!(
        server.list("jobs")[0]["metadata"]["name"],
        "keep-one-29407321"
    );
}
