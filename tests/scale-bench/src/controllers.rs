//! The four controller binaries, each in its own process with its own ServiceAccount token (so the
//! fake's audit attributes every write to its controller, and the chart's RBAC applies), its
//! `/metrics` + `/readyz` on a port of its own, and its memory and CPU read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::error::BenchError;
use crate::procfs;
use crate::serve::Served;

/// The controllers, by binary name (their ServiceAccount is `backup-maker-<name>`).
pub const CONTROLLERS: [&str; 4] = [
    "gpg-keygen",
    "scheduled-controller",
    "action-controller",
    "metrics-exporter",
];

/// Runs `cargo build --release` for the controller packages (unless `skip`) and returns the
/// directory holding their binaries: `$CARGO_TARGET_DIR/release`, else `<workspace>/target/release`.
pub fn build(skip: bool) -> Result<PathBuf, BenchError> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !skip {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command.current_dir(&workspace).args(["build", "--release"]);
        for c in CONTROLLERS {
            command.args(["-p", c]);
        }
        println!("$ cargo build --release -p {}", CONTROLLERS.join(" -p "));
        let status = command
            .status()
            .map_err(BenchError::io("running cargo build"))?;
        if !status.success() {
            return Err(BenchError::Build(status));
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    Ok(target.join("release"))
}

/// One running controller process.
pub struct Controller {
    /// Binary name.
    pub name: &'static str,
    child: Child,
    port: u16,
}

fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(BenchError::io("finding a free port"))?;
    Ok(l.local_addr()
        .map_err(BenchError::io("finding a free port"))?
        .port())
}

impl Controller {
    /// Starts `<bin_dir>/<name> run` against `served` as ServiceAccount `backup-maker-<name>`,
    /// logging (warnings and errors, JSON) to `<run_dir>/<name>.log`.
    pub fn start(
        name: &'static str,
        bin_dir: &Path,
        served: &Served,
        run_dir: &Path,
    ) -> Result<Controller, BenchError> {
        let kubeconfig = run_dir.join(format!("{name}.kubeconfig"));
        std::fs::write(
            &kubeconfig,
            served.kubeconfig(Some(&format!("backup-maker-{name}"))),
        )
        .map_err(BenchError::io(format!("writing {}", kubeconfig.display())))?;
        let log_path = run_dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(BenchError::io(format!("opening {}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(BenchError::io("cloning the log handle"))?;
        let port = free_port()?;
        let binary = bin_dir.join(name);
        let child = Command::new(&binary)
            .args([
                "run",
                "--leader-election=false",
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "json",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(BenchError::io(format!("starting {}", binary.display())))?;
        Ok(Controller { name, child, port })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            _ => Err(BenchError::ControllerExited(self.name.to_owned())),
        }
    }

    /// Memory now and at its peak.
    pub fn memory(&self) -> Result<procfs::Memory, BenchError> {
        procfs::memory(self.pid())
    }

    /// CPU seconds used since the process started.
    pub fn cpu(&self) -> Result<f64, BenchError> {
        procfs::cpu_seconds(self.pid())
    }

    /// `GET <path>` of its metrics server: status code and body.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_owned()))
    }

    /// Waits until `/readyz` answers 200 (caches synced).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), BenchError> {
        let started = Instant::now();
        loop {
            self.check_alive()?;
            if let Some((200, _)) = self.get("/readyz").await {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(BenchError::Timeout {
                    what: format!("{} to become ready", self.name),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reconciles it has counted (`backup_maker_reconcile_total`, all series), if it exposes them.
    pub async fn reconciles(&self) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        sum_of(&body, "backup_maker_reconcile_total")
    }

    /// Kills the process (SIGKILL, as a crash or an evicted Pod) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sum of every series of the metric `name` in a Prometheus text exposition; `None` if absent.
pub fn sum_of(exposition: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_is_summed_over_its_series_and_other_metrics_with_the_same_prefix_are_ignored() {
        let text = "# HELP backup_maker_reconcile_total Reconciles.\n\
            # TYPE backup_maker_reconcile_total counter\n\
            backup_maker_reconcile_total{controller=\"a\",result=\"ok\"} 10\n\
            backup_maker_reconcile_total{controller=\"a\",result=\"requeue\"} 2.5\n\
            backup_maker_reconcile_total_extra 100\n";
        assert_eq!(sum_of(text, "backup_maker_reconcile_total"), Some(12.5));
        assert_eq!(sum_of(text, "backup_maker_api_writes_total"), None);
    }
}
