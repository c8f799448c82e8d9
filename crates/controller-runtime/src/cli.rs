//! Command-line flags shared by every controller binary's `run` subcommand.

use std::net::SocketAddr;

use crate::shard::{Shard, ShardError, ShardSelector};

/// Flags shared by every `<bin> run`. Each is also read from the env var shown, so a Deployment can
/// configure the binary without touching `args`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, env = "BMC_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Lease-based leader election, for running two replicas. `--leader-election=false` turns it off.
    #[arg(
        long,
        env = "BMC_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub leader_election: bool,

    /// Watch one namespace instead of the whole cluster.
    #[arg(long, env = "BMC_NAMESPACE")]
    pub namespace: Option<String>,

    /// Log output format.
    #[arg(long, env = "BMC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Maximum number of reconciles running in parallel.
    #[arg(long, env = "BMC_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Namespace of the leader-election Lease; falls back to POD_NAMESPACE, then "default".
    #[arg(long, env = "BMC_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Only the objects this label selector picks (`riotkit.org/shard=a`; `!riotkit.org/shard` for the default
    /// shard): one Deployment per shard splits the work. Unset: every object.
    #[arg(long, env = "BMC_SHARD_SELECTOR")]
    pub shard_selector: Option<ShardSelector>,

    /// Names the shard's leader Lease (`<controller>-leader-<name>`); derived from `key=value` selectors.
    #[arg(long, env = "BMC_SHARD_NAME")]
    pub shard_name: Option<String>,
}

impl RunArgs {
    /// The shard this process works on (checked at start-up: a bad selector or name stops it with the reason).
    pub fn shard(&self) -> Result<Shard, ShardError> {
        Shard::new(self.shard_selector.clone(), self.shard_name.as_deref())
    }

    /// The namespace the Lease lives in: `--lease-namespace`, else `POD_NAMESPACE` (set through the
    /// downward API in the Deployment), else `"default"`.
    pub fn effective_lease_namespace(&self) -> String {
        resolve_lease_namespace(
            self.lease_namespace.as_deref(),
            std::env::var("POD_NAMESPACE").ok().as_deref(),
        )
    }
}

/// Pure form of [`RunArgs::effective_lease_namespace`], separated so it is testable without
/// mutating the process environment.
pub fn resolve_lease_namespace(flag: Option<&str>, pod_namespace: Option<&str>) -> String {
    flag.filter(|s| !s.is_empty())
        .or(pod_namespace.filter(|s| !s.is_empty()))
        .unwrap_or("default")
        .to_owned()
}

/// Log output format.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct TestCli {
        #[command(flatten)]
        run: RunArgs,
    }

    /// Parses with a controlled environment: clap reads env vars from the process, so tests that
    /// set env vars hold this lock to stay independent of each other.
    static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    const VARS: [&str; 8] = [
        "BMC_METRICS_ADDR",
        "BMC_LEADER_ELECTION",
        "BMC_NAMESPACE",
        "BMC_LOG_FORMAT",
        "BMC_CONCURRENCY",
        "BMC_LEASE_NAMESPACE",
        "BMC_SHARD_SELECTOR",
        "BMC_SHARD_NAME",
    ];

    fn parse_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<RunArgs, clap::Error> {
        let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: every env-mutating test holds ENV_LOCK; no other thread reads these variables.
        unsafe {
            for v in VARS {
                std::env::remove_var(v);
            }
            for (k, v) in env {
                std::env::set_var(k, v);
            }
        }
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        let result = TestCli::try_parse_from(argv).map(|c| c.run);
        unsafe {
            for v in VARS {
                std::env::remove_var(v);
            }
        }
        result
    }

    #[test]
    fn defaults_match_the_contract() {
        let a = parse_with_env(&[], &[]).unwrap();
        assert_eq!(a.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        assert!(a.leader_election);
        assert_eq!(a.namespace, None);
        assert_eq!(a.log_format, LogFormat::Text);
        assert_eq!(a.concurrency, 8);
        assert_eq!(a.lease_namespace, None);
        assert_eq!(a.shard_selector, None);
        assert_eq!(a.shard().unwrap(), Shard::all());
    }

    #[test]
    fn leader_election_can_be_turned_off_with_equals_false() {
        let a = parse_with_env(&["--leader-election=false"], &[]).unwrap();
        assert!(!a.leader_election);
    }

    #[test]
    fn bare_leader_election_flag_means_true() {
        let a =
            parse_with_env(&["--leader-election"], &[("BMC_LEADER_ELECTION", "false")]).unwrap();
        assert!(a.leader_election);
    }

    #[test]
    fn every_flag_is_read_from_its_env_var() {
        let a = parse_with_env(
            &[],
            &[
                ("BMC_METRICS_ADDR", "127.0.0.1:9999"),
                ("BMC_LEADER_ELECTION", "false"),
                ("BMC_NAMESPACE", "backups"),
                ("BMC_LOG_FORMAT", "json"),
                ("BMC_CONCURRENCY", "3"),
                ("BMC_LEASE_NAMESPACE", "ops"),
                ("BMC_SHARD_SELECTOR", "riotkit.org/shard in (a,b)"),
                ("BMC_SHARD_NAME", "ab"),
            ],
        )
        .unwrap();
        assert_eq!(a.metrics_addr, "127.0.0.1:9999".parse().unwrap());
        assert!(!a.leader_election);
        assert_eq!(a.namespace.as_deref(), Some("backups"));
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.concurrency, 3);
        assert_eq!(a.lease_namespace.as_deref(), Some("ops"));
        assert_eq!(
            a.shard().unwrap().lease_name("x"),
            "x-leader-ab",
            "the shard selector and name come from the environment"
        );
    }

    #[test]
    fn command_line_flags_win_over_env_vars() {
        let a = parse_with_env(
            &["--namespace", "cli-ns", "--concurrency", "2"],
            &[("BMC_NAMESPACE", "env-ns"), ("BMC_CONCURRENCY", "5")],
        )
        .unwrap();
        assert_eq!(a.namespace.as_deref(), Some("cli-ns"));
        assert_eq!(a.concurrency, 2);
    }

    #[test]
    fn zero_concurrency_and_bad_addresses_are_rejected() {
        assert!(parse_with_env(&["--concurrency", "0"], &[]).is_err());
        assert!(parse_with_env(&["--metrics-addr", "not-an-addr"], &[]).is_err());
        assert!(parse_with_env(&["--log-format", "xml"], &[]).is_err());
    }

    #[test]
    fn lease_namespace_falls_back_to_pod_namespace_then_default() {
        assert_eq!(resolve_lease_namespace(Some("a"), Some("b")), "a");
        assert_eq!(resolve_lease_namespace(None, Some("b")), "b");
        assert_eq!(resolve_lease_namespace(Some(""), Some("b")), "b");
        assert_eq!(resolve_lease_namespace(None, None), "default");
    }

    #[test]
    fn a_malformed_shard_selector_stops_the_command_line_with_the_reason() {
        let error = parse_with_env(&["--shard-selector", "riotkit.org/shard in a"], &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("parentheses"), "{error}");
    }

    #[test]
    fn a_shard_selector_that_names_no_lease_is_refused_at_start_up() {
        let a = parse_with_env(&["--shard-selector", "tier!=gold"], &[]).unwrap();
        assert!(matches!(a.shard(), Err(ShardError::NameRequired { .. })));
        let a = parse_with_env(&["--shard-selector", "riotkit.org/shard=a"], &[]).unwrap();
        assert_eq!(a.shard().unwrap().lease_name("x"), "x-leader-a");
    }
}
