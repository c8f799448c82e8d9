//! WATCH semantics: replay, 410 on compaction, bookmarks, timeouts, selectors, streaming lists.

use std::time::Duration;

use fake_apiserver::FakeApiServer;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

/// Short description of an event, for asserting sequences.
fn describe(ev: &WatchEvent<ConfigMap>) -> String {
    let name = |c: &ConfigMap| c.metadata.name.clone().unwrap_or_default();
    match ev {
        WatchEvent::Added(c) => format!("ADDED {}", name(c)),
        WatchEvent::Modified(c) => format!("MODIFIED {}", name(c)),
        WatchEvent::Deleted(c) => format!("DELETED {}", name(c)),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(s) => format!("ERROR {} {}", s.code, s.reason),
    }
}

async fn collect(api: &Api<ConfigMap>, wp: &WatchParams, rv: &str, n: usize) -> Vec<String> {
    let stream = api.watch(wp, rv).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        stream
            .map(|e| describe(&e.unwrap()))
            .take(n)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("events arrive")
}

#[tokio::test]
async fn a_watch_opened_after_a_write_replays_it_from_the_resource_version() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let start = server.resource_version().to_string();
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &json_merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    let wp = WatchParams::default().disable_bookmarks();
    assert_eq!(
        collect(&api, &wp, &start, 2).await,
        ["ADDED a", "MODIFIED a"]
    );
}

fn json_merge(v: serde_json::Value) -> Patch<serde_json::Value> {
    Patch::Merge(v)
}

#[tokio::test]
async fn live_events_follow_the_replay_without_gaps() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let start = server.resource_version().to_string();
    api.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let stream = api
        .watch(&WatchParams::default().disable_bookmarks(), &start)
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    api.delete("before", &Default::default()).await.unwrap();
    let got: Vec<String> = tokio::time::timeout(
        Duration::from_secs(5),
        stream
            .map(|e| describe(&e.unwrap()))
            .take(3)
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert_eq!(got, ["ADDED before", "ADDED after", "DELETED before"]);
}

#[tokio::test]
async fn a_watch_from_a_compacted_resource_version_gets_410_expired() {
    let server = FakeApiServer::builder().event_log_capacity(2).build();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let start = server.resource_version().to_string();
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let got = collect(&api, &WatchParams::default(), &start, 1).await;
    assert_eq!(got, ["ERROR 410 Expired"]);

    // Compaction drops events after `recent` too, so resuming from it is no longer possible.
    let recent = server.resource_version().to_string();
    api.create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap();
    server.compact_event_log();
    let got = collect(
        &api,
        &WatchParams::default().disable_bookmarks(),
        &recent,
        1,
    )
    .await;
    assert_eq!(got, ["ERROR 410 Expired"]);
}

#[tokio::test(start_paused = true)]
async fn a_progress_bookmark_comes_before_the_timeout_only_when_the_type_advanced() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "quiet");
    let start = server.resource_version().to_string();
    let wp = WatchParams::default().timeout(30);
    // Quiet resource type: no bookmark at all (recording f2, 30 s watch).
    let quiet: Vec<_> = api.watch(&wp, &start).await.unwrap().collect().await;
    assert!(quiet.is_empty(), "{quiet:?}");
    // A ConfigMap written in another namespace advances the type: one bookmark ~2 s before the
    // timeout, carrying that resourceVersion (recording f2b).
    Api::<ConfigMap>::namespaced(server.client(), "elsewhere")
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let now = server.resource_version();
    let started = tokio::time::Instant::now();
    let got: Vec<String> = api
        .watch(&wp, &start)
        .await
        .unwrap()
        .map(|e| describe(&e.unwrap()))
        .take(1)
        .collect()
        .await;
    assert_eq!(got, [format!("BOOKMARK {now}")]);
    assert_eq!(started.elapsed(), Duration::from_secs(28));
}

#[tokio::test]
async fn a_watch_ends_after_its_timeout() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let rv = server.resource_version().to_string();
    let stream = api
        .watch(&WatchParams::default().disable_bookmarks().timeout(1), &rv)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
        .await
        .expect("stream ends on its own");
    assert!(events.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_selector_watch_sees_objects_enter_and_leave_the_selection() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let start = server.resource_version().to_string();
    api.create(&PostParams::default(), &cm("a", json!({"app": "x"})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({"app": "y"})))
        .await
        .unwrap();
    let relabel = |v: &str| json_merge(json!({"metadata": {"labels": {"app": v}}}));
    api.patch("a", &PatchParams::default(), &relabel("y"))
        .await
        .unwrap();
    api.patch("b", &PatchParams::default(), &relabel("x"))
        .await
        .unwrap();
    let wp = WatchParams::default().disable_bookmarks().labels("app=x");
    assert_eq!(
        collect(&api, &wp, &start, 3).await,
        ["ADDED a", "DELETED a", "ADDED b"]
    );
}

#[tokio::test]
async fn a_watch_from_resource_version_zero_starts_with_the_current_state() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    api.delete("a", &Default::default()).await.unwrap();
    let got = collect(&api, &WatchParams::default().disable_bookmarks(), "0", 1).await;
    assert_eq!(got, ["ADDED b"]);
}

#[tokio::test]
async fn the_runtime_watcher_and_reflector_follow_the_store() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("pre", json!({})))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .applied_objects()
        .boxed();
    let task = tokio::spawn(stream.try_for_each(|_| async { Ok(()) }));
    reader.wait_until_ready().await.unwrap();
    api.create(&PostParams::default(), &cm("post", json!({})))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while reader.state().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("reflector sees both objects");
    task.abort();
}

#[tokio::test]
async fn the_streaming_list_watcher_receives_initial_events_and_the_end_marker() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut events = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = events.try_next().await.unwrap() {
            match ev {
                watcher::Event::Init => seen.push("init".to_owned()),
                watcher::Event::InitApply(c) => {
                    seen.push(format!("init-apply {}", c.metadata.name.unwrap()))
                }
                watcher::Event::InitDone => {
                    seen.push("init-done".to_owned());
                    break;
                }
                other => seen.push(format!("{other:?}")),
            }
        }
    })
    .await
    .expect("initial list completes");
    assert_eq!(seen, ["init", "init-apply a", "init-done"]);
}

#[tokio::test]
async fn the_runtime_watcher_relists_after_a_410() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    // The watcher is lazy: after InitDone it only opens the watch when polled again, so a write
    // plus compaction in between makes that watch start from a compacted resourceVersion.
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("event")
            .expect("stream continues")
    };
    assert!(matches!(next().await, Ok(watcher::Event::Init)));
    assert!(matches!(next().await, Ok(watcher::Event::InitDone)));
    api.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    server.compact_event_log();
    let err = next().await.expect_err("the resumed watch is expired");
    assert!(
        matches!(err, watcher::Error::WatchError(ref s) if s.code == 410),
        "{err:?}"
    );
    assert!(matches!(next().await, Ok(watcher::Event::Init)));
    match next().await {
        Ok(watcher::Event::InitApply(c)) => assert_eq!(c.metadata.name.as_deref(), Some("x")),
        other => panic!("expected the relisted object, got {other:?}"),
    }
}

#[tokio::test]
async fn the_metadata_watcher_and_get_metadata_work_on_full_objects() {
    let server = FakeApiServer::new();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    api.create(&PostParams::default(), &cm("a", json!({"l": "1"})))
        .await
        .unwrap();
    let meta = api.get_metadata("a").await.unwrap();
    assert_eq!(meta.metadata.labels.unwrap()["l"], "1");
    let metadata_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(server.client(), "ns");
    let mut events = watcher(metadata_api, watcher::Config::default()).boxed();
    let first_object = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(watcher::Event::InitApply(m)) = events.try_next().await.unwrap() {
                return m.metadata.name;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(first_object.as_deref(), Some("a"));
}
