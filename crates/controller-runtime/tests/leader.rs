//! Leader election against the fake API server: one leader of two, a graceful handover in under 2 s, and a leader
//! whose Lease calls hang steps down before its Lease can expire for the standby.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use controller_runtime::leader::{Elector, LeaseTiming};
use fake_apiserver::FakeApiServer;

/// A 2 s Lease renewed 1 s before expiry; calls bounded to 300 ms.
fn fast() -> LeaseTiming {
    LeaseTiming {
        duration_secs: 2,
        grace_secs: 1,
        call_timeout: Duration::from_millis(300),
    }
}

async fn elector(server: &FakeApiServer, identity: &str) -> Elector {
    Elector::new(server.client(), "ops", "ctrl-leader", identity, fast())
        .await
        .unwrap()
}

fn holder(server: &FakeApiServer) -> Option<String> {
    server.get("leases", "ops", "ctrl-leader")?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

/// A replica that leads until it loses the Lease (or is crashed), counting itself in `leaders` meanwhile.
fn replica(
    elector: Elector,
    leaders: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        elector.acquire().await;
        let held = elector.hold();
        let now = leaders.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        let mut leading = held.leading();
        let _ = leading.wait_for(|l| !*l).await;
        leaders.fetch_sub(1, Ordering::SeqCst);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_lead_at_once_and_a_crashed_leader_is_replaced_after_expiry() {
    let server = FakeApiServer::new();
    let (leaders, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = replica(
        elector(&server, "pod-a").await,
        leaders.clone(),
        max.clone(),
    );
    let b = replica(
        elector(&server, "pod-b").await,
        leaders.clone(),
        max.clone(),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(leaders.load(Ordering::SeqCst), 1, "one leader");
    let first = holder(&server).unwrap();
    // Crash the leader: no release, its Lease must expire before the other takes over.
    let (crashed, survivor) = if first == "pod-a" { (a, b) } else { (b, a) };
    crashed.abort();
    let _ = crashed.await;
    leaders.fetch_sub(1, Ordering::SeqCst);
    let crashed_at = Instant::now();
    let last_renewal: jiff::Timestamp = server.get("leases", "ops", "ctrl-leader").unwrap()["spec"]
        ["renewTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    while holder(&server).as_deref() == Some(first.as_str()) {
        assert!(crashed_at.elapsed() < Duration::from_secs(6), "no takeover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let taken_at = jiff::Timestamp::now();
    eprintln!("takeover {:?} after the crash", crashed_at.elapsed());
    let expiry = last_renewal + jiff::SignedDuration::from_secs(fast().duration_secs as i64);
    assert!(
        taken_at >= expiry,
        "the standby took a Lease that had not expired: taken at {taken_at}, expiry {expiry}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
    assert_eq!(max.load(Ordering::SeqCst), 1, "never two leaders at once");
    survivor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_over_by_the_standby_in_under_2s() {
    let server = FakeApiServer::new();
    let a = elector(&server, "pod-a").await;
    a.acquire().await;
    let held = a.hold();
    let b = elector(&server, "pod-b").await;
    let standby = tokio::spawn(async move {
        b.acquire().await;
        Instant::now()
    });
    // The standby must not lead while the leader renews, over more than one lease duration.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!standby.is_finished(), "the standby took a live Lease");
    assert!(*held.leading().borrow(), "the leader keeps renewing");
    assert_eq!(holder(&server).as_deref(), Some("pod-a"));

    // SIGTERM: the controller stopped, the Lease is released.
    let released = Instant::now();
    held.release().await;
    let taken = tokio::time::timeout(Duration::from_secs(5), standby)
        .await
        .expect("the standby takes over")
        .unwrap();
    let handover = taken.duration_since(released);
    eprintln!("graceful handover took {handover:?}");
    assert!(handover < Duration::from_secs(2), "{handover:?}");
    assert_eq!(holder(&server).as_deref(), Some("pod-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_calls_hang_steps_down_before_the_lease_expires() {
    let server = FakeApiServer::new();
    let a = elector(&server, "pod-a").await;
    a.acquire().await;
    let held = a.hold();
    let mut leading = held.leading();
    // The API server stops answering Lease requests (a hung control plane).
    let hang = server.hang("/apis/coordination.k8s.io");
    let renewed = server.get("leases", "ops", "ctrl-leader").unwrap()["spec"]["renewTime"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), leading.wait_for(|l| !*l))
        .await
        .expect("the leader steps down")
        .unwrap();
    let stepped_down = jiff::Timestamp::now();
    let expiry = renewed + jiff::SignedDuration::from_secs(fast().duration_secs as i64);
    eprintln!(
        "stepped down {:?} before the Lease expired",
        expiry.duration_since(stepped_down)
    );
    assert!(
        stepped_down < expiry,
        "stepped down at {stepped_down}, after the Lease expired at {expiry}"
    );
    server.remove_route_rule(hang);
}
