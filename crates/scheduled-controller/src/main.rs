//! `scheduled-controller run` starts the controller; `scheduled-controller render` prints, offline, the objects a
//! ScheduledBackup turns into.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use controller_runtime::cli::RunArgs;
use crd_types::{Operation, RequestedBackupAction};

#[derive(Parser)]
#[command(
    name = "scheduled-controller",
    version,
    about = "ScheduledBackup → helper objects + CronJob, with run health in status"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (kubeconfig from KUBECONFIG or in-cluster).
    Run(RunArgs),
    /// Render a ScheduledBackup into the YAML a cluster would receive, without a cluster.
    ///
    /// With no -f, renders the bundled example (an SB on the built-in pg15 template with its Secrets).
    Render {
        /// YAML files (multi-document) holding the ScheduledBackup, its ClusterBackupProcedureTemplate and Secrets.
        #[arg(short = 'f', long = "file")]
        files: Vec<PathBuf>,
        /// Render the CronJob for this operation instead of spec.operation.
        #[arg(long)]
        operation: Option<Operation>,
        /// Also render the Job of this RequestedBackupAction.
        #[arg(long)]
        action: Option<PathBuf>,
        /// Print Secret values instead of redacting them.
        #[arg(long)]
        show_secrets: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Render {
            files,
            operation,
            action,
            show_secrets,
        } => match render(&files, operation, action.as_deref(), show_secrets) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

fn read_documents(text: &str, origin: &str) -> Result<Vec<serde_json::Value>, String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| format!("{origin} is not valid YAML: {e}"))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn render(
    files: &[PathBuf],
    operation: Option<Operation>,
    action: Option<&std::path::Path>,
    show_secrets: bool,
) -> Result<String, String> {
    let mut docs = Vec::new();
    if files.is_empty() {
        docs = read_documents(template_engine::EXAMPLE, "the bundled example")?;
    }
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        docs.extend(read_documents(&text, &file.display().to_string())?);
    }
    let action: Option<RequestedBackupAction> =
        match action {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let doc = read_documents(&text, &path.display().to_string())?
                    .into_iter()
                    .next()
                    .ok_or_else(|| format!("{} holds no document", path.display()))?;
                Some(serde_json::from_value(doc).map_err(|e| {
                    format!("{} is not a RequestedBackupAction: {e}", path.display())
                })?)
            }
        };
    template_engine::render_documents(&docs, operation, action.as_ref(), show_secrets)
        .map_err(|e| e.to_string())
}

fn run(args: RunArgs) -> ExitCode {
    controller_runtime::runtime::main(scheduled_controller::NAME, args, |client, ctx| {
        let (config, shutdown) = ctx.split();
        scheduled_controller::run(client, config, shutdown)
    })
}
