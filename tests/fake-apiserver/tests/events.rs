//! events.k8s.io/v1 Event validation (recordings d1-d3) and what kube's `Recorder` sends.

mod recorded;

use fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use recorded::{Bindings, Recording, replay};

async fn replay_steps(file: &str, steps: &[usize]) {
    let server = FakeApiServer::new();
    let client = server.client();
    let rec = Recording::load(file);
    let mut b = Bindings::default();
    for &step in steps {
        replay(&client, &rec, step, &mut b).await;
    }
}

#[tokio::test]
async fn a_note_over_1024_bytes_is_rejected_even_when_it_has_fewer_characters() {
    replay_steps("d1-event-note-length", &[0, 1, 2, 3]).await;
}

#[tokio::test]
async fn reporting_fields_event_time_and_type_are_required_and_note_and_reason_are_immutable() {
    // Step 5 reads the Event through the core v1 API: the two APIs are separate stores here.
    replay_steps("d2-event-required-fields", &[0, 1, 2, 3, 4, 6]).await;
}

#[tokio::test]
async fn series_count_must_be_at_least_two_and_recorder_style_patches_are_accepted() {
    // Step 6 is the core v1 view of the same Event (not modelled).
    replay_steps("d3-event-series", &[0, 1, 2, 3, 4, 5, 7]).await;
}

#[tokio::test]
async fn kubes_recorder_creates_then_aggregates_an_event_that_passes_validation() {
    let server = FakeApiServer::new();
    let client = server.client();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "riotkit.org/backup-maker".into(),
            instance: Some("backup-maker-0".into()),
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("target".into()),
        namespace: Some("ns".into()),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "Rejected".into(),
        note: Some("é".repeat(512)),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let stored = server.list("events.events.k8s.io");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["series"]["count"], 2);
    assert_eq!(stored[0]["deprecatedSource"], serde_json::json!({}));

    // A new reason makes a new Event (the recorder's cache key has no note).
    let too_long = Event {
        reason: "TooLong".into(),
        note: Some("é".repeat(513)),
        ..event
    };
    let err = recorder.publish(&too_long, &reference).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            422,
            format!(
                "Event \"{}\" is invalid: message: Invalid value: \"\": can have at most 1024 characters",
                status.details.as_ref().unwrap().name
            )
            .as_str()
        )
    );
}
