//! Command-line arguments (clap derive). Global flags follow kubectl's names so `kubectl backup -n prod status`
//! and `kubectl backup status -n prod` both work.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use crd_types::{KeyAlgorithm, Operation};

/// The whole command line.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-backup",
    bin_name = "kubectl-backup",
    version,
    about = "Backups and restores of backup-maker ScheduledBackups, from your kubeconfig and RBAC",
    after_help = "Installed on PATH, it also runs as `kubectl backup ...`."
)]
pub struct Cli {
    /// Cluster connection and namespace.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every cluster command shares.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// All namespaces (status only).
    #[arg(short = 'A', long, global = true, conflicts_with = "namespace")]
    pub all_namespaces: bool,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// One row per ScheduledBackup: schedule, readiness, last success, next run, overdue, failures.
    Status(StatusArgs),
    /// Run a backup (or restore) now: creates a RequestedBackupAction and optionally follows it.
    Run(RunArgs),
    /// Conditions, children, last runs and recent events of a ScheduledBackup or an action (rba/NAME).
    Describe {
        /// A ScheduledBackup name, or rba/NAME for a RequestedBackupAction.
        target: String,
    },
    /// Logs of the most recent run's Pod of a ScheduledBackup, or of an action's Pod (rba/NAME).
    Logs(LogsArgs),
    /// Suspend the ScheduledBackup's CronJob (server-side apply of spec.cronJob.suspend=true).
    Suspend(SuspendArgs),
    /// Resume the ScheduledBackup's CronJob (server-side apply of spec.cronJob.suspend=false).
    Resume(SuspendArgs),
    /// Render a ScheduledBackup into the YAML a cluster would receive, without a cluster.
    ///
    /// With no -f, renders the bundled example (an SB on the built-in pg15 template with its Secrets).
    Render(RenderArgs),
    /// Generate a GPG key pair and print it as a Secret manifest, without a cluster.
    ///
    /// The manifest holds a private key: redirect it to a file or pipe it to your sealing tool.
    Keygen(KeygenArgs),
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Rejects `-A` where it means nothing (every command but `status` acts on named objects in one namespace).
    pub fn check_scope(&self, global: &GlobalArgs) -> Result<(), String> {
        if global.all_namespaces && !matches!(self, Command::Status(_)) {
            return Err(
                "-A/--all-namespaces only applies to `status`: name the namespace with -n".into(),
            );
        }
        Ok(())
    }
}

/// `status` output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The table.
    #[default]
    Table,
    /// The table with more columns.
    Wide,
    /// One JSON array of rows.
    Json,
    /// The same rows as YAML.
    Yaml,
}

/// `status` arguments.
#[derive(Args, Debug, Clone, Default)]
pub struct StatusArgs {
    /// Only these ScheduledBackups (default: all in the namespace).
    pub names: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `run` arguments.
#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// The ScheduledBackup whose procedure to run.
    pub scheduled_backup: String,
    /// Run the restore procedure instead of the backup.
    #[arg(long)]
    pub restore: bool,
    /// Version to restore (default: latest).
    #[arg(long, requires = "restore", value_name = "V")]
    pub version: Option<String>,
    /// Follow the action until it ends; exit 0 on success, non-zero with the failure message otherwise.
    #[arg(long)]
    pub wait: bool,
    /// Stop waiting after this long (e.g. 90s, 10m, 1h30m); the action keeps running. Default: no limit.
    #[arg(long, requires = "wait", value_parser = parse_duration, value_name = "D")]
    pub timeout: Option<Duration>,
    /// Run as an Argo Workflow instead of a Job.
    #[arg(long)]
    pub workflow: bool,
}

impl RunArgs {
    /// The operation to run.
    pub fn operation(&self) -> Operation {
        if self.restore {
            Operation::Restore
        } else {
            Operation::Backup
        }
    }
}

/// `logs` arguments.
#[derive(Args, Debug, Clone, Default)]
pub struct LogsArgs {
    /// A ScheduledBackup name, or rba/NAME for a RequestedBackupAction.
    pub target: String,
    /// Stream new lines until the Pod ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// `suspend` / `resume` arguments.
#[derive(Args, Debug, Clone, Default)]
pub struct SuspendArgs {
    /// The ScheduledBackup.
    pub scheduled_backup: String,
    /// Take spec.cronJob.suspend over from another field manager (e.g. a GitOps tool) that set it.
    #[arg(long)]
    pub force: bool,
}

/// `render` arguments (the same as `scheduled-controller render`).
#[derive(Args, Debug, Clone, Default)]
pub struct RenderArgs {
    /// YAML files (multi-document) holding the ScheduledBackup, its ClusterBackupProcedureTemplate and Secrets.
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Render the CronJob for this operation instead of spec.operation.
    #[arg(long)]
    pub operation: Option<Operation>,
    /// Also render the Job of this RequestedBackupAction.
    #[arg(long)]
    pub action: Option<PathBuf>,
    /// Print Secret values instead of redacting them.
    #[arg(long)]
    pub show_secrets: bool,
}

/// `keygen` arguments (the same as `gpg-keygen generate`).
#[derive(Args, Debug, Clone)]
pub struct KeygenArgs {
    /// E-mail of the key's user id.
    #[arg(long)]
    pub email: String,
    /// Key algorithm.
    #[arg(long, value_enum, default_value_t = Algorithm::Ed25519)]
    pub algorithm: Algorithm,
    /// Secret name (spec.gpgKeySecretRef.secretName).
    #[arg(long, default_value = "backup-keys")]
    pub name: String,
    /// Data key of the private key (spec.gpgKeySecretRef.privateKey).
    #[arg(long, default_value = "key")]
    pub private_key_key: String,
    /// Data key of the public key (spec.gpgKeySecretRef.publicKey).
    #[arg(long, default_value = "key.pub")]
    pub public_key_key: String,
    /// Data key of the (empty) passphrase (spec.gpgKeySecretRef.passphraseKey).
    #[arg(long, default_value = "passphrase")]
    pub passphrase_key: String,
    /// Print the manifest even when stdout is a terminal (it holds the private key).
    #[arg(long)]
    pub show_secrets: bool,
}

/// `--algorithm` values (the CRD's `gpgKeySecretRef.algorithm` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    /// Ed25519 signing key + Curve25519 encryption subkey (GnuPG 2.2+).
    Ed25519,
    /// RSA-4096 key + RSA-4096 encryption subkey (takes seconds).
    Rsa4096,
}

impl From<Algorithm> for KeyAlgorithm {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::Ed25519 => KeyAlgorithm::Ed25519,
            Algorithm::Rsa4096 => KeyAlgorithm::Rsa4096,
        }
    }
}

/// Parses `90s`, `10m`, `1h30m`, `500ms` (jiff's friendly format) or ISO 8601 `PT1H`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration (use e.g. 90s, 10m, 1h30m): {e}"))?;
    Duration::try_from(d).map_err(|_| format!("{s:?}: the timeout must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_accept_kubectl_style_and_compound_values() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").unwrap_err().contains("90s"));
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn global_flags_work_before_and_after_the_subcommand() {
        let before = Cli::try_parse_from(["kubectl-backup", "-n", "prod", "status"]).unwrap();
        let after = Cli::try_parse_from(["kubectl-backup", "status", "-n", "prod"]).unwrap();
        assert_eq!(before.global.namespace.as_deref(), Some("prod"));
        assert_eq!(after.global.namespace.as_deref(), Some("prod"));
    }

    #[test]
    fn version_requires_restore_and_timeout_requires_wait() {
        assert!(Cli::try_parse_from(["kubectl-backup", "run", "app", "--version", "v3"]).is_err());
        assert!(Cli::try_parse_from(["kubectl-backup", "run", "app", "--timeout", "5m"]).is_err());
        let ok = Cli::try_parse_from([
            "kubectl-backup",
            "run",
            "app",
            "--restore",
            "--version",
            "v3",
            "--wait",
            "--timeout",
            "5m",
        ])
        .unwrap();
        let Command::Run(args) = ok.command else {
            panic!("not run")
        };
        assert_eq!(args.operation(), Operation::Restore);
        assert_eq!(args.timeout, Some(Duration::from_secs(300)));
    }

    #[test]
    fn all_namespaces_is_refused_outside_status() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            cli.command.check_scope(&cli.global)
        };
        assert!(parse(&["kubectl-backup", "status", "-A"]).is_ok());
        assert!(
            parse(&["kubectl-backup", "describe", "app1", "-A"])
                .unwrap_err()
                .contains("only applies to `status`")
        );
        assert!(parse(&["kubectl-backup", "describe", "app1"]).is_ok());
    }

    #[test]
    fn namespace_and_all_namespaces_exclude_each_other() {
        assert!(Cli::try_parse_from(["kubectl-backup", "status", "-A", "-n", "x"]).is_err());
    }
}
