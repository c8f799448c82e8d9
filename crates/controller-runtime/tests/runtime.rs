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

#[tokio::test]
async fn two_shards_of_one_controller_lead_at_the_same_time_each_on_its_own_lease() {
    let fake = FakeApiServer::new();
    // Each start waits for the other: with one Lease between them, the second would never start.
    let both = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let run = |selector: &'static str| {
        let (fake, both) = (fake.clone(), both.clone());
        async move {
            run_controller_with(
                fake.client(),
                "demo-controller",
                args(&["--shard-selector", selector]),
                |_client, ctx| async move {
                    assert_eq!(
                        ctx.shard.selector().map(ToString::to_string).as_deref(),
                        Some(selector)
                    );
                    both.wait().await;
                    Ok(())
                },
            )
            .await
        }
    };
    let (a, default) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures::future::join(run("riotkit.org/shard=a"), run("!riotkit.org/shard")),
    )
    .await
    .expect("both shards lead at once");
    a.unwrap();
    default.unwrap();
    let mut leases: Vec<String> = fake
        .list("leases")
        .iter()
        .map(|l| l["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    leases.sort();
    assert_eq!(
        leases,
        ["demo-controller-leader", "demo-controller-leader-a"]
    );
}

#[tokio::test]
async fn a_shard_selector_that_names_no_lease_stops_the_controller_before_it_runs() {
    let fake = FakeApiServer::new();
    let result = run_controller_with(
        fake.client(),
        "demo-controller",
        args(&["--shard-selector", "tier!=gold"]),
        |_client, _ctx| async { panic!("must not start") },
    )
    .await;
    let error = format!("{:#}", result.unwrap_err());
    assert!(error.contains("--shard-name"), "{error}");
    assert!(fake.list("leases").is_empty());
}
