//! `cargo run --release -p scale-bench -- --sbs 1000,5000,10000`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use scale_bench::{bench, controllers, report};

/// The scale bench of issue #15 (see docs/scale.md).
#[derive(Parser)]
struct Cli {
    /// Numbers of ScheduledBackups, one pass each.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    sbs: Vec<usize>,
    /// Use the controller binaries already built instead of running `cargo build --release`.
    #[arg(long)]
    no_build: bool,
    /// Directory of the controller binaries (default: the workspace's target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Longest wait for one phase, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// Concurrent requests of the bare client.
    #[arg(long, default_value_t = 8)]
    bare_tasks: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => match controllers::build(cli.no_build) {
            Ok(dir) => dir,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let base = std::env::temp_dir().join(format!("scale-bench-{}", std::process::id()));
    println!("controller binaries:");
    for c in controllers::CONTROLLERS {
        println!("  {}", bin_dir.join(c).display());
    }
    println!(
        "run directory (kubeconfigs, controller logs): {}",
        base.display()
    );
    let mut reports = Vec::new();
    for &n in &cli.sbs {
        let options = match bench::run_dir(&base, n) {
            Ok(run_dir) => bench::Options {
                bin_dir: bin_dir.clone(),
                run_dir,
                timeout: Duration::from_secs(cli.timeout),
                bare_tasks: cli.bare_tasks,
            },
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("N = {n}:");
        match bench::run(n, &options).await {
            Ok(r) => {
                println!("{}", report::block(&r));
                println!("{}", report::json_line(&r));
                reports.push(r);
            }
            Err(e) => {
                eprintln!("error in the pass with N = {n}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("\n{}\n", report::table(&reports));
    for v in report::verdicts(&reports) {
        println!("[{}] {}", if v.met { "met" } else { "NOT MET" }, v.what);
    }
    ExitCode::SUCCESS
}
