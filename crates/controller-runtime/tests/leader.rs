//! Lease leader election against the fake API server (real resourceVersion conflicts).

use controller_runtime::leader::{LeaderElection, LeaseTiming};
use fake_apiserver::FakeApiServer;
use std::time::Duration;

fn fast() -> LeaseTiming {
    LeaseTiming {
        lease_duration: Duration::from_secs(2),
        renew_interval: Duration::from_millis(100),
        retry_interval: Duration::from_millis(50),
        renew_deadline: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn only_one_of_two_replicas_leads_and_the_other_takes_over_after_expiry() {
    let server = FakeApiServer::new();
    let a = LeaderElection::new(server.client(), "ops", "ctrl-leader", "pod-a").with_timing(fast());
    let b = LeaderElection::new(server.client(), "ops", "ctrl-leader", "pod-b").with_timing(fast());
    // Both race for a Lease that does not exist yet.
    let (ta, tb) = (tokio::spawn(a.acquire()), tokio::spawn(b.acquire()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        ta.is_finished() ^ tb.is_finished(),
        "exactly one replica must lead"
    );
    let (leader, standby, winner, loser) = if ta.is_finished() {
        (ta, tb, "pod-a", "pod-b")
    } else {
        (tb, ta, "pod-b", "pod-a")
    };
    let rx = leader.await.unwrap().unwrap();
    let lease = server.get("leases", "ops", "ctrl-leader").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], winner);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 2);

    drop(rx); // the leader stops renewing
    let rx2 = tokio::time::timeout(Duration::from_secs(5), standby)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(*rx2.borrow());
    let lease = server.get("leases", "ops", "ctrl-leader").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], loser);
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

#[tokio::test]
async fn leader_learns_it_lost_the_lease_when_another_holder_is_written() {
    let server = FakeApiServer::new();
    let mut rx = LeaderElection::new(server.client(), "ops", "ctrl-leader", "pod-a")
        .with_timing(fast())
        .acquire()
        .await
        .unwrap();
    server
        .modify("leases", "ops", "ctrl-leader", |l| {
            l["spec"]["holderIdentity"] = "pod-z".into();
            l["spec"]["renewTime"] = jiff::Timestamp::now().to_string().into();
        })
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), rx.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(!*rx.borrow());
}
