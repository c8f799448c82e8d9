//! `action-controller run` starts the controller that turns each RequestedBackupAction into exactly one Job (or
//! Argo Workflow) and follows it to the end.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use controller_runtime::cli::RunArgs;

#[derive(Parser)]
#[command(
    name = "action-controller",
    version,
    about = "RequestedBackupAction → exactly one Job or Argo Workflow, followed to the end"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (kubeconfig from KUBECONFIG or in-cluster).
    Run(RunArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(args),
    }
}

fn run(args: RunArgs) -> ExitCode {
    controller_runtime::runtime::main(action_controller::NAME, args, |client, ctx| {
        let (config, shutdown) = ctx.split();
        action_controller::run(client, config, shutdown)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent_and_run_takes_the_shared_flags() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "action-controller",
            "run",
            "--namespace",
            "team-a",
            "--leader-election=false",
        ])
        .unwrap();
        let Command::Run(args) = cli.command;
        assert_eq!(args.namespace.as_deref(), Some("team-a"));
        assert!(!args.leader_election);
    }
}
