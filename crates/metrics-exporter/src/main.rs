//! `metrics-exporter run`: the backup-health Prometheus exporter.
//!
//! Read-only, so leader election is pointless: every replica watches and serves the same series
//! and `--leader-election` is accepted (shared flags) but ignored.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use controller_runtime::cli::RunArgs;
use controller_runtime::{health::Health, server, shutdown, telemetry};
use jiff::SignedDuration;
use metrics_exporter::exporter::{self, ExporterConfig};

/// Backup-health Prometheus exporter for ScheduledBackups and RequestedBackupActions.
#[derive(Parser, Debug)]
#[command(name = "metrics-exporter", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Watch the cluster and serve /metrics, /healthz and /readyz.
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// How long after an expected run a missing success counts as overdue (e.g. 30m, 1h, 2h30m), for
        /// ScheduledBackups without `spec.cronJob.overdueAfter`. Keep the default (1h) to agree with the
        /// scheduled-controller's `Overdue` condition.
        #[arg(long, env = "BMC_OVERDUE_GRACE", default_value = "1h", value_parser = parse_grace)]
        overdue_grace: SignedDuration,
    },
}

fn parse_grace(s: &str) -> Result<SignedDuration, String> {
    let d: SignedDuration = s.parse().map_err(|e| {
        format!("{s:?} is not a duration ({e}); use a form such as 30m, 1h or 2h30m")
    })?;
    if d.is_negative() {
        return Err(format!(
            "{s:?} is negative; the grace period must be zero or more"
        ));
    }
    Ok(d)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Run { run, overdue_grace } = Cli::parse().command;
    telemetry::init(run.log_format);
    if run.leader_election {
        tracing::info!(
            "leader election is not used by the read-only exporter: every replica serves metrics"
        );
    }
    let client = controller_runtime::client::infer().await?;
    let registry = prometheus::Registry::new();
    let health = Health::default();
    health.set_leader(true);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        shutdown::signal().await;
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(server::serve(
        run.metrics_addr,
        server::router(registry.clone(), health.clone()),
        stopped(),
    ));
    let config = ExporterConfig {
        namespace: run.namespace.clone(),
        overdue_grace,
        registry,
        health,
        shard: run.shard()?,
    };
    let result = exporter::run(client, config, stopped()).await;
    server
        .await
        .context("metrics server task failed")?
        .context("metrics server failed")?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_takes_the_shared_flags_and_a_grace_period() {
        let cli = Cli::try_parse_from([
            "metrics-exporter",
            "run",
            "--overdue-grace",
            "2h30m",
            "--namespace",
            "x",
        ])
        .unwrap();
        let Command::Run { run, overdue_grace } = cli.command;
        assert_eq!(overdue_grace, SignedDuration::from_mins(150));
        assert_eq!(run.namespace.as_deref(), Some("x"));
    }

    #[test]
    fn grace_defaults_to_one_hour_and_rejects_garbage() {
        let cli = Cli::try_parse_from(["metrics-exporter", "run"]).unwrap();
        let Command::Run { overdue_grace, .. } = cli.command;
        assert_eq!(overdue_grace, SignedDuration::from_hours(1));
        assert!(
            parse_grace("soon")
                .unwrap_err()
                .contains("30m, 1h or 2h30m")
        );
        assert!(parse_grace("-1h").is_err());
        assert_eq!(parse_grace("45m"), Ok(SignedDuration::from_mins(45)));
    }
}
