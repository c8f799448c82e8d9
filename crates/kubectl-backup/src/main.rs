//! `kubectl-backup`: the kubectl plugin binary. Parses the command line, builds a client from the user's
//! kubeconfig (only for commands that talk to a cluster), runs the command and maps errors to exit codes.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubectl_backup::cli::{Cli, Command, GlobalArgs};
use kubectl_backup::{Error, Result, Session, Style, Target};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let style = Style::detect(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let mut stdout = std::io::stdout();
    let result = match cli.command {
        // Offline commands: no runtime, no kubeconfig.
        Command::Render(args) => kubectl_backup::offline::render(&args, &mut stdout),
        Command::Keygen(args) => kubectl_backup::offline::keygen(
            &args,
            cli.global.namespace.as_deref(),
            &style,
            &mut stdout,
        ),
        Command::Completion { shell } => {
            kubectl_backup::offline::completion(shell, &mut stdout);
            Ok(())
        }
        command => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Io)
            .and_then(|rt| rt.block_on(online(&cli.global, command, style, &mut stdout))),
    };
    let _ = stdout.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let red = Style {
                color: style.color && std::io::stderr().is_terminal(),
                ..style
            };
            eprintln!(
                "{} {error}",
                red.paint(kubectl_backup::output::Color::Red, "error:")
            );
            ExitCode::from(error.exit_code())
        }
    }
}

/// Client and namespace from `--kubeconfig`/`--context`/`-n`, else kube's inference (KUBECONFIG,
/// ~/.kube/config, in-cluster).
async fn session(global: &GlobalArgs, style: Style) -> Result<Session> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..Default::default()
    };
    let config = match &global.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| Error::Kubeconfig(e.to_string()))?
        }
        None if global.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?,
    };
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok(Session {
        all_namespaces: global.all_namespaces,
        style,
        ..Session::new(client, namespace)
    })
}

async fn online(
    global: &GlobalArgs,
    command: Command,
    style: Style,
    out: &mut std::io::Stdout,
) -> Result<()> {
    command.check_scope(global).map_err(Error::Input)?;
    let session = session(global, style).await?;
    let interrupt = async {
        // If the handler cannot be installed, Ctrl-C keeps its default effect (ending the process).
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    match command {
        Command::Status(args) => kubectl_backup::status::status(&session, &args, out).await,
        Command::Run(args) => kubectl_backup::run::run(&session, &args, out, interrupt)
            .await
            .map(|_| ()),
        Command::Describe { target } => {
            kubectl_backup::describe::describe(&session, &Target::parse(&target)?, out).await
        }
        Command::Logs(args) => kubectl_backup::logs::logs(&session, &args, out).await,
        Command::Suspend(args) => {
            kubectl_backup::suspend::set_suspended(&session, &args, true, out).await
        }
        Command::Resume(args) => {
            kubectl_backup::suspend::set_suspended(&session, &args, false, out).await
        }
        Command::Render(_) | Command::Keygen(_) | Command::Completion { .. } => {
            unreachable!("offline commands are handled before a runtime is built")
        }
    }
}
