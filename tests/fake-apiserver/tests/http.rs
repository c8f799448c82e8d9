//! The fake served over real HTTP on 127.0.0.1: kube clients built from a kubeconfig, outages
//! (refused, hung, restored, restored with compacted history) and per-route hangs and delays.

use std::time::{Duration, Instant};

use fake_apiserver::{FakeApiServer, OutageMode};
use futures::StreamExt as _;
use http::Method;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const NS: &str = "ns";

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": {"k": name}})
}

fn names(list: &[ConfigMap]) -> Vec<String> {
    list.iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect()
}

/// Runs a raw `kube::runtime::watcher` (default backoff, as controllers use it) into a channel.
fn watch_events(
    api: Api<ConfigMap>,
) -> mpsc::UnboundedReceiver<Result<Event<ConfigMap>, watcher::Error>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    rx
}

/// Receives watcher events until `done` holds for one, returning all of them.
async fn events_until(
    rx: &mut mpsc::UnboundedReceiver<Result<Event<ConfigMap>, watcher::Error>>,
    mut done: impl FnMut(&Result<Event<ConfigMap>, watcher::Error>) -> bool,
) -> Vec<Result<Event<ConfigMap>, watcher::Error>> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("watcher events so far: {seen:?}"))
            .expect("the watcher task runs");
        let stop = done(&event);
        seen.push(event);
        if stop {
            return seen;
        }
    }
}

fn applied(name: &'static str) -> impl FnMut(&Result<Event<ConfigMap>, watcher::Error>) -> bool {
    move |e| matches!(e, Ok(Event::Apply(c) | Event::InitApply(c)) if c.metadata.name.as_deref() == Some(name))
}

#[tokio::test]
async fn client_from_the_kubeconfig_lists_applies_and_watches_over_http() {
    let server = FakeApiServer::new();
    server.insert(cm("a")).unwrap();
    let http = server.serve_http();
    assert_eq!(
        http.url(),
        format!("http://127.0.0.1:{}", http.addr().port())
    );
    let api: Api<ConfigMap> = Api::namespaced(http.client(None).await.unwrap(), NS);

    assert_eq!(
        names(&api.list(&ListParams::default()).await.unwrap().items),
        ["a"]
    );
    api.patch(
        "b",
        &PatchParams::apply("http-test"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"k": "b"}})),
    )
    .await
    .unwrap();
    assert_eq!(server.get("configmaps", NS, "b").unwrap()["data"]["k"], "b");

    let mut events = watch_events(api.clone());
    events_until(&mut events, |e| matches!(e, Ok(Event::InitDone))).await;
    api.create(
        &PostParams::default(),
        &serde_json::from_value(cm("c")).unwrap(),
    )
    .await
    .unwrap();
    events_until(&mut events, applied("c")).await;
}

#[tokio::test]
async fn watch_responses_are_chunked_streams_that_stay_open_between_events() {
    let server = FakeApiServer::new();
    server.insert(cm("a")).unwrap();
    let http = server.serve_http();
    let addr = http.addr();
    // A plain socket, to see the bytes on the wire rather than what a client makes of them.
    tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            tcp,
            "GET /api/v1/namespaces/{NS}/configmaps?watch=1 HTTP/1.1\r\nHost: fake\r\n\r\n"
        )
        .unwrap();
        let mut received = Vec::new();
        let mut read_until = |needle: &str| {
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&received).contains(needle) {
                let n = tcp.read(&mut buf).expect("no read timeout");
                assert!(
                    n > 0,
                    "stream closed: {}",
                    String::from_utf8_lossy(&received)
                );
                received.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&received).to_lowercase()
        };
        let head = read_until("\"name\":\"a\"");
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        // Still open: a later write arrives on the same response.
        server.insert(cm("later")).unwrap();
        read_until("\"name\":\"later\"");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn refused_outage_fails_connects_and_restore_serves_again_on_the_same_port() {
    let server = FakeApiServer::new();
    let http = server.serve_http();
    let addr = http.addr();
    let api: Api<ConfigMap> = Api::namespaced(http.client(None).await.unwrap(), NS);
    api.list(&ListParams::default()).await.unwrap();

    http.outage(OutageMode::Refuse).await.unwrap();
    let err = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(
        format!("{err:?}").contains("ConnectionRefused"),
        "the kube client sees a refused connection: {err:?}"
    );

    http.restore().await.unwrap();
    assert_eq!(http.addr(), addr);
    server.insert(cm("after")).unwrap();
    assert_eq!(
        names(&api.list(&ListParams::default()).await.unwrap().items),
        ["after"]
    );
}

#[tokio::test]
async fn hang_outage_times_out_a_client_with_a_read_timeout_and_restore_answers_held_requests() {
    let server = FakeApiServer::new();
    let http = server.serve_http();
    let mut config = http.config(None).await.unwrap();
    config.read_timeout = Some(Duration::from_millis(300));
    let impatient: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), NS);
    impatient.list(&ListParams::default()).await.unwrap();

    http.outage(OutageMode::Hang).await.unwrap();
    let started = Instant::now();
    let err = impatient.list(&ListParams::default()).await.unwrap_err();
    let waited = started.elapsed();
    assert!(format!("{err:?}").contains("TimedOut"), "{err:?}");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "timed out after {waited:?}"
    );

    // A connection is accepted during the hang, but nothing is answered until restore.
    let patient: Api<ConfigMap> = Api::namespaced(http.client(None).await.unwrap(), NS);
    let held = tokio::spawn(async move { patient.list(&ListParams::default()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !held.is_finished(),
        "a request is held while the server hangs"
    );
    http.restore().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("answered after restore")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn hang_outage_stalls_open_watch_streams_without_closing_them() {
    let server = FakeApiServer::new();
    let http = server.serve_http();
    let api: Api<ConfigMap> = Api::namespaced(http.client(None).await.unwrap(), NS);
    let mut events = watch_events(api);
    events_until(&mut events, |e| matches!(e, Ok(Event::InitDone))).await;

    http.outage(OutageMode::Hang).await.unwrap();
    server.insert(cm("during-hang")).unwrap();
    let stalled = tokio::time::timeout(Duration::from_millis(500), events.recv()).await;
    assert!(stalled.is_err(), "nothing arrives while hung: {stalled:?}");

    http.restore().await.unwrap();
    let seen = events_until(&mut events, applied("during-hang")).await;
    assert_eq!(seen.len(), 1, "the stream resumed as it was: {seen:?}");
}

#[tokio::test]
async fn watcher_resumes_after_a_refused_outage_without_relisting() {
    let server = FakeApiServer::new();
    server.insert(cm("before")).unwrap();
    let http = server.serve_http();
    let api: Api<ConfigMap> = Api::namespaced(http.client(None).await.unwrap(), NS);
    let mut events = watch_events(api);
    events_until(&mut events, |e| matches!(e, Ok(Event::InitDone))).await;

    http.outage(OutageMode::Refuse).await.unwrap();
    server.insert(cm("during")).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    http.restore().await.unwrap();

    let seen = events_until(&mut events, applied("during")).await;
    assert!(
        seen.iter().any(|e| e.is_err()),
        "the watcher noticed the cut stream: {seen:?}"
    );
    assert!(
        !seen.iter().any(|e| matches!(e, Ok(Event::Init))),
        "resumed from its resourceVersion instead of re-listing: {seen:?}"
    );
}

#[tokio::test]
async fn watcher_gets_410_expired_and_relists_after_restore_with_compacted_history() {
    let server = FakeApiServer::new();
    server.insert(cm("before")).unwrap();
    let http = server.serve_http();
    let api: Api<ConfigMap> = Api::namespaced(http.client(None).await.unwrap(), NS);
    let mut events = watch_events(api);
    events_until(&mut events, |e| matches!(e, Ok(Event::InitDone))).await;

    http.outage(OutageMode::Refuse).await.unwrap();
    server.insert(cm("during")).unwrap();
    server.compact_event_log();
    http.restore().await.unwrap();

    let seen = events_until(&mut events, |e| matches!(e, Ok(Event::InitDone))).await;
    let expired = seen.iter().position(|e| {
        matches!(e, Err(watcher::Error::WatchError(s)) if s.code == 410 && s.reason == "Expired")
    });
    let relist = seen.iter().position(|e| matches!(e, Ok(Event::Init)));
    assert!(
        matches!((expired, relist), (Some(x), Some(r)) if x < r),
        "410 Expired, then a re-list: {seen:?}"
    );
    assert!(
        seen.iter().any(
            |e| matches!(e, Ok(Event::InitApply(c)) if c.metadata.name.as_deref() == Some("during"))
        ),
        "the re-list has the object written during the outage: {seen:?}"
    );
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_200_with_the_recorded_410_error_event() {
    // Recording f3, "watch from resourceVersion=1": HTTP 200 and exactly one ERROR event.
    let recording: Value = serde_json::from_str(include_str!(
        "../k8s-api/recordings/f3-list-resourceversion-semantics.json"
    ))
    .unwrap();
    let step = recording["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["note"] == "watch from resourceVersion=1")
        .unwrap();
    let recorded = &step["response"]["body"];
    assert_eq!(step["response"]["status"], 200);
    assert_eq!(recorded.as_array().unwrap().len(), 1);

    let server = FakeApiServer::new();
    for i in 0..3 {
        server.insert(cm(&format!("c{i}"))).unwrap();
    }
    server.compact_event_log();
    let http = server.serve_http();
    let client = http.client(None).await.unwrap();
    let request = http::Request::get(format!(
        "/api/v1/namespaces/{NS}/configmaps?watch=1&resourceVersion=1"
    ))
    .body(Vec::new())
    .unwrap();
    let text = client.request_text(request).await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    // The recording's message names a placeholder (`<rv-3>`): compare it by shape.
    let mut expected = recorded[0].clone();
    expected.as_object_mut().unwrap().remove("t");
    let mut got = lines[0].clone();
    let message = got["object"]["message"].take();
    let oldest = message
        .as_str()
        .and_then(|m| m.strip_prefix("too old resource version: 1 ("))
        .and_then(|m| m.strip_suffix(')'))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(oldest.is_some_and(|n| n > 1), "{message}");
    expected["object"]["message"] = Value::Null;
    assert_eq!(got, expected);
}

#[tokio::test]
async fn hung_route_holds_only_lease_updates_until_released_in_process_and_over_http() {
    let server = FakeApiServer::new();
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "lock", "namespace": NS}, "spec": {"holderIdentity": "a"}});
    server.insert(lease).unwrap();
    let hang = server.hang_when(|r| r.method == Method::PUT && r.path.contains("/leases/"));
    let http = server.serve_http();
    for client in [server.client(), http.client(None).await.unwrap()] {
        let leases: Api<Lease> = Api::namespaced(client, NS);
        let mut current = leases.get("lock").await.expect("reads pass");
        current.spec.as_mut().unwrap().holder_identity = Some("b".to_owned());
        let update = tokio::time::timeout(
            Duration::from_millis(300),
            leases.replace("lock", &PostParams::default(), &current),
        )
        .await;
        assert!(update.is_err(), "the Lease update hangs");
    }
    assert_eq!(
        server.get("leases", NS, "lock").unwrap()["spec"]["holderIdentity"],
        "a"
    );

    let leases: Api<Lease> = Api::namespaced(server.client(), NS);
    let mut current = leases.get("lock").await.unwrap();
    current.spec.as_mut().unwrap().holder_identity = Some("c".to_owned());
    let held = tokio::spawn(async move {
        leases
            .replace("lock", &PostParams::default(), &current)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.remove_route_rule(hang));
    tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("released")
        .unwrap()
        .unwrap();
    assert_eq!(
        server.get("leases", NS, "lock").unwrap()["spec"]["holderIdentity"],
        "c"
    );
}

#[tokio::test]
async fn delayed_route_answers_late_and_other_routes_on_time() {
    let server = FakeApiServer::new();
    server.hang("/api/v1/namespaces/elsewhere");
    server.delay_route(
        |r| r.path.ends_with("/configmaps") && !r.is_watch(),
        Duration::from_millis(250),
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(server.client(), NS);
    let leases: Api<Lease> = Api::namespaced(server.client(), NS);

    let started = Instant::now();
    configmaps.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));

    let started = Instant::now();
    leases.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(250));

    server.clear_route_rules();
    let started = Instant::now();
    configmaps.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(250));
    let elsewhere: Api<ConfigMap> = Api::namespaced(server.client(), "elsewhere");
    tokio::time::timeout(
        Duration::from_secs(5),
        elsewhere.list(&ListParams::default()),
    )
    .await
    .expect("the hang went with clear_route_rules")
    .unwrap();
}
