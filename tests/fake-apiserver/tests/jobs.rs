//! Jobs as kube-apiserver 1.36 + kube-controller-manager handle them, replayed from the
//! recordings a1 (defaults, Pod), b1-b4/b7 (status validation), b2 (status/spec split, strategic
//! merge of conditions) and b5/b6 (the job controller's status sequence), plus the fake's own
//! switches (job controller off, `managedBy`, suspend, deadlines) and the `finish_job_pod` helper.

mod recorded;

use std::time::Duration;

use fake_apiserver::testing::{Outcome, finish_job_pod};
use fake_apiserver::{FakeApiServer, Verb};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use recorded::{Bindings, Recording, replay, replay_eventually, replay_eventually_adjusted, send};
use serde_json::{Value, json};

fn job(name: &str, extra_spec: Value) -> Job {
    let mut spec = json!({"template": {"spec": {"containers": [{"name": "main", "image": "busybox"}],
                                                "restartPolicy": "Never"}}});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn wait_job(server: &FakeApiServer, ns: &str, name: &str, what: impl Fn(&Value) -> bool) {
    server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("jobs", ns, name).is_some_and(|j| what(&j))
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "job {name}: {:#}",
                server.get("jobs", ns, name).unwrap_or_default()
            )
        });
}

fn conditions(job: &Value) -> Vec<String> {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={}",
                c["type"].as_str().unwrap(),
                c["status"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_minimal_job_gets_every_recorded_default_and_the_controller_creates_its_pod() {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load("a1-job-create-defaults");
    let mut b = Bindings::default();
    replay(&client, &rec, 0, &mut b).await;
    replay_eventually(&client, &rec, 1, &mut b).await;
    replay_eventually(&client, &rec, 2, &mut b).await;
}

#[tokio::test]
async fn a_job_template_without_restart_policy_is_rejected_with_the_recorded_422() {
    let server = FakeApiServer::new();
    let rec = Recording::load("a1-job-create-defaults");
    replay(&server.client(), &rec, 3, &mut Bindings::default()).await;
}

#[tokio::test]
async fn complete_without_success_criteria_met_or_start_time_is_rejected_as_recorded() {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load("b1-job-status-complete-without-successcriteriamet");
    let mut b = Bindings::default();
    for step in 0..rec.doc["steps"].as_array().unwrap().len() {
        replay(&client, &rec, step, &mut b).await;
    }
}

#[tokio::test]
async fn a_finished_job_keeps_its_terminal_conditions_and_status_on_the_main_resource_is_dropped() {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load("b2-job-status-successcriteriamet-and-complete");
    let mut b = Bindings::default();
    for step in 0..rec.doc["steps"].as_array().unwrap().len() {
        replay(&client, &rec, step, &mut b).await;
    }
}

#[tokio::test]
async fn failed_needs_failure_target_and_the_failed_counter_never_decreases() {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load("b3-job-status-failed-without-failuretarget");
    let mut b = Bindings::default();
    for step in 0..rec.doc["steps"].as_array().unwrap().len() {
        replay(&client, &rec, step, &mut b).await;
    }
}

#[tokio::test]
async fn start_time_is_immutable_once_set_for_an_unsuspended_job() {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load("b4-job-status-starttime-immutable");
    let mut b = Bindings::default();
    for step in 0..rec.doc["steps"].as_array().unwrap().len() {
        replay(&client, &rec, step, &mut b).await;
    }
}

#[tokio::test]
async fn marking_complete_a_job_whose_controller_counts_an_active_pod_is_rejected() {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load("b7-job-status-complete-while-controller-active");
    let mut b = Bindings::default();
    replay(&client, &rec, 0, &mut b).await;
    replay_eventually(&client, &rec, 1, &mut b).await;
    replay(&client, &rec, 2, &mut b).await;
}

/// Recordings b5/b6: the Pod patched by the test, then every Job status the controller wrote
/// and the Pod losing its finalizer, in order, then the final Job and Pods.
async fn replay_controller_sequence(file: &str) {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load(file);
    let mut b = Bindings::default();
    replay(&client, &rec, 0, &mut b).await;
    replay_eventually(&client, &rec, 1, &mut b).await;
    // The controller's "Created pod" Event is sent asynchronously on a cluster, so the list may
    // be at the Job's resourceVersion (as recorded here) or later (as in a1, and in the fake).
    replay_eventually_adjusted(&client, &rec, 2, &mut b, |list| {
        list["metadata"]["resourceVersion"] = json!("<rv-90>");
    })
    .await;
    replay(&client, &rec, 3, &mut b).await;
    for step in [4, 5] {
        // The recorder watched for 20 s; the fake's controller is done within milliseconds.
        let mut request = rec.request(step).clone();
        request["query"]["timeoutSeconds"] = json!("1");
        let answer = send(&client, &request, &mut b).await;
        let events: Vec<Value> = answer.body.as_array().unwrap().clone();
        let recorded: Vec<Value> = rec.response(step)["body"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!({"type": e["type"], "object": recorded::upstream(e["object"].clone())}))
            .collect();
        let diff = b.compare(&Value::Array(recorded), &Value::Array(events.clone()));
        assert!(
            diff.is_empty(),
            "{file} step {step}: {diff:#?}\n{events:#?}"
        );
    }
    replay(&client, &rec, 6, &mut b).await;
    replay(&client, &rec, 7, &mut b).await;
}

#[tokio::test]
async fn a_succeeded_pod_turns_into_the_recorded_success_sequence() {
    replay_controller_sequence("b5-job-controller-success-sequence").await;
}

#[tokio::test]
async fn a_failed_pod_with_backoff_limit_zero_turns_into_the_recorded_failure_sequence() {
    replay_controller_sequence("b6-job-controller-failure-sequence").await;
}

#[tokio::test]
async fn finish_job_pod_completes_a_job_through_the_public_api_only() {
    let server = FakeApiServer::new();
    let client = server.client();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "ns");
    jobs.create(&PostParams::default(), &job("work", json!({})))
        .await
        .unwrap();
    let pod = finish_job_pod(client.clone(), "ns", "work", Outcome::Succeeded)
        .await
        .unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Succeeded"));
    wait_job(&server, "ns", "work", |j| j["status"]["succeeded"] == 1).await;
    let done = server.get("jobs", "ns", "work").unwrap();
    assert_eq!(
        conditions(&done),
        ["SuccessCriteriaMet=True", "Complete=True"]
    );
    assert!(done["status"]["completionTime"].is_string());
    let reasons: Vec<Value> = server
        .events_for("work")
        .iter()
        .map(|e| e["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("SuccessfulCreate"), json!("Completed")]);
}

#[tokio::test]
async fn a_failed_pod_within_the_backoff_limit_is_replaced_and_the_job_fails_once_it_is_exceeded() {
    let server = FakeApiServer::new();
    let client = server.client();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "ns");
    jobs.create(
        &PostParams::default(),
        &job("work", json!({"backoffLimit": 1})),
    )
    .await
    .unwrap();
    let failed = Outcome::Failed {
        exit_code: 2,
        message: "disk full".into(),
    };
    let first = finish_job_pod(client.clone(), "ns", "work", failed.clone())
        .await
        .unwrap();
    let terminated = first.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.message.as_deref()),
        (2, Some("disk full"))
    );
    wait_job(&server, "ns", "work", |j| {
        j["status"]["failed"] == 1 && j["status"]["active"] == 1
    })
    .await;
    assert!(conditions(&server.get("jobs", "ns", "work").unwrap()).is_empty());
    finish_job_pod(client.clone(), "ns", "work", failed)
        .await
        .unwrap();
    wait_job(&server, "ns", "work", |j| j["status"]["failed"] == 2).await;
    let done = server.get("jobs", "ns", "work").unwrap();
    assert_eq!(conditions(&done), ["FailureTarget=True", "Failed=True"]);
    assert_eq!(
        done["status"]["conditions"][1]["reason"],
        "BackoffLimitExceeded"
    );
    let pods: Api<Pod> = Api::namespaced(client, "ns");
    let listed = pods
        .list(&ListParams::default().labels("job-name=work"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(
        listed.items.iter().all(|p| p.metadata.finalizers.is_none()),
        "counted Pods lose the tracking finalizer"
    );
}

#[tokio::test]
async fn the_job_controllers_writes_are_not_counted_but_are_owned_by_kube_controller_manager() {
    let server = FakeApiServer::new();
    let client = server.client();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "ns");
    jobs.create(&PostParams::default(), &job("work", json!({})))
        .await
        .unwrap();
    wait_job(&server, "ns", "work", |j| j["status"]["active"] == 1).await;
    server
        .wait_until_quiet(Duration::from_millis(100), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(server.total_writes(), 1, "{:?}", server.write_log());
    assert_eq!(server.write_count("jobs", Verb::Create), 1);
    // Applying a different value of a field the controller wrote conflicts with its manager.
    let apply = json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"active": 3}});
    let err = jobs
        .patch_status("work", &PatchParams::apply("tester"), &Patch::Apply(apply))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("kube-controller-manager"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn with_the_job_controller_off_a_job_gets_no_pod_and_no_status() {
    let server = FakeApiServer::builder().job_controller(false).build();
    let jobs: Api<Job> = Api::namespaced(server.client(), "ns");
    jobs.create(&PostParams::default(), &job("work", json!({})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.list("pods").is_empty());
    assert_eq!(
        server.get("jobs", "ns", "work").unwrap()["status"],
        json!({})
    );
}

#[tokio::test]
async fn jobs_managed_elsewhere_or_suspended_are_left_alone() {
    let server = FakeApiServer::new();
    let jobs: Api<Job> = Api::namespaced(server.client(), "ns");
    for (name, spec) in [
        ("external", json!({"managedBy": "example.com/other"})),
        ("suspended", json!({"suspend": true})),
    ] {
        jobs.create(&PostParams::default(), &job(name, spec))
            .await
            .unwrap();
    }
    jobs.create(&PostParams::default(), &job("normal", json!({})))
        .await
        .unwrap();
    wait_job(&server, "ns", "normal", |j| j["status"]["active"] == 1).await;
    for name in ["external", "suspended"] {
        assert_eq!(server.get("jobs", "ns", name).unwrap()["status"], json!({}));
    }
    assert_eq!(server.list("pods").len(), 1);
}

#[tokio::test]
async fn a_job_past_its_active_deadline_fails_and_its_pod_is_deleted() {
    let server = FakeApiServer::new();
    let jobs: Api<Job> = Api::namespaced(server.client(), "ns");
    jobs.create(
        &PostParams::default(),
        &job("slow", json!({"activeDeadlineSeconds": 1})),
    )
    .await
    .unwrap();
    server
        .wait_for(Duration::from_secs(5), |s| {
            s.get("jobs", "ns", "slow")
                .is_some_and(|j| conditions(&j).contains(&"Failed=True".to_owned()))
        })
        .await
        .unwrap();
    let done = server.get("jobs", "ns", "slow").unwrap();
    assert_eq!(
        done["status"]["conditions"][1]["reason"],
        "DeadlineExceeded"
    );
    assert!(server.list("pods").is_empty());
}

#[tokio::test]
async fn deleting_a_job_releases_and_garbage_collects_its_pods() {
    let server = FakeApiServer::new();
    let jobs: Api<Job> = Api::namespaced(server.client(), "ns");
    jobs.create(&PostParams::default(), &job("work", json!({})))
        .await
        .unwrap();
    wait_job(&server, "ns", "work", |j| j["status"]["active"] == 1).await;
    jobs.delete("work", &Default::default()).await.unwrap();
    server
        .wait_for(Duration::from_secs(5), |s| s.list("pods").is_empty())
        .await
        .unwrap();
}

#[test]
fn the_replay_comparison_notices_a_changed_value_and_a_reused_resource_version() {
    let rec = Recording::load("a1-job-create-defaults");
    let recorded = rec.response(0)["body"].clone();
    let text = serde_json::to_string(&recorded)
        .unwrap()
        .replace("<uid-1>", "u-1")
        .replace("<rv-1>", "7")
        .replace("<time-1>", "2026-01-01T00:00:00Z")
        .replace("<rand>", recorded::RAND);
    let mut actual: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        Bindings::default().compare(&recorded, &actual),
        Vec::<String>::new()
    );
    actual["spec"]["backoffLimit"] = json!(5);
    let diff = Bindings::default().compare(&recorded, &actual);
    assert_eq!(diff.len(), 1);
    assert!(diff[0].starts_with(".spec.backoffLimit"), "{diff:?}");
    let mut b = Bindings::default();
    assert_eq!(
        b.compare(&json!(["<rv-1>", "<rv-2>"]), &json!(["7", "7"]))
            .len(),
        1
    );
    assert_eq!(
        b.compare(&json!("<rv-1>"), &json!("8")).len(),
        1,
        "rv-1 is bound to 7"
    );
}

#[tokio::test]
async fn negative_job_and_cronjob_counts_are_refused_with_the_apiservers_wording() {
    let server = FakeApiServer::new();
    let jobs: Api<Job> = Api::namespaced(server.client(), "default");
    let err = jobs
        .create(
            &PostParams::default(),
            &job("neg", json!({"backoffLimit": -1})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"),
        "{}",
        status.message
    );
    let cron_jobs: Api<k8s_openapi::api::batch::v1::CronJob> =
        Api::namespaced(server.client(), "default");
    let cron_job = serde_json::from_value(json!({
        "metadata": {"name": "neg"},
        "spec": {"schedule": "0 2 * * *", "successfulJobsHistoryLimit": -1,
                 "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox"}],
                                                                 "restartPolicy": "Never"}}}}}
    }))
    .unwrap();
    let err = cron_jobs
        .create(&PostParams::default(), &cron_job)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains(
            "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0"
        ),
        "{}",
        status.message
    );
}
