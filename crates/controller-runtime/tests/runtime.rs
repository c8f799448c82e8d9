//! The shared start-up path of every controller binary, against the in-process API server.

use clap::Parser;
use controller_runtime::cli::RunArgs;
use controller_runtime::runtime::run_controller_with;
use fake_apiserver::FakeApiServer;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    run: RunArgs,
}

fn args(extra: &[&str]) -> RunArgs {
    let mut argv = vec![
        "test",
        "--metrics-addr",
        "127.0.0.1:0",
        "--lease-namespace",
        "ops",
    ];
    argv.extend_from_slice(extra);
    Args::parse_from(argv).run
}

#[tokio::test]
async fn the_controller_starts_only_after_taking_its_lease_and_is_leader_then() {
    let fake = FakeApiServer::new();
    let observed = fake.clone();
    run_controller_with(
        fake.client(),
        "demo-controller",
        args(&[]),
        |_client, ctx| async move {
            // The lease is ours before the controller runs.
            let lease = observed
                .get("leases", "ops", "demo-controller-leader")
                .expect("Lease created");
            assert!(
                lease["spec"]["holderIdentity"]
                    .as_str()
                    .is_some_and(|h| !h.is_empty())
            );
            assert!(ctx.health.is_leader());
            assert_eq!(ctx.namespace, None);
            assert_eq!(ctx.concurrency, 8);
            Ok(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn without_leader_election_no_lease_is_taken() {
    let fake = FakeApiServer::new();
    let observed = fake.clone();
    run_controller_with(
        fake.client(),
        "demo-controller",
        args(&["--leader-election=false", "--namespace", "team-a"]),
        |_client, ctx| async move {
            assert!(observed.list("leases").is_empty());
            assert_eq!(ctx.namespace.as_deref(), Some("team-a"));
            Ok(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_controller_error_is_returned() {
    // (Two replicas with different identities are covered by tests/leader_e2e.rs.)
    let fake = FakeApiServer::new();
    let result = run_controller_with(
        fake.client(),
        "demo-controller",
        args(&[]),
        |_client, _ctx| async { anyhow::bail!("boom") },
    )
    .await;
    assert_eq!(result.unwrap_err().to_string(), "boom");
}
