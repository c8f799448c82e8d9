//! The bench's one error type.

/// What can stop a bench run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Building or starting a controller binary, or reading its `/proc` files.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `cargo build` of the controller binaries failed.
    #[error("building the controller binaries failed ({0})")]
    Build(std::process::ExitStatus),
    /// The fake API server refused a seed object or timed out.
    #[error("fake API server: {0}")]
    Fake(#[from] fake_apiserver::FakeError),
    /// A request of the bare client failed.
    #[error("bare client: {0}")]
    Kube(#[from] kube::Error),
    /// A wait did not end in time.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout {
        /// What did not happen.
        what: String,
        /// How long the bench waited.
        seconds: u64,
    },
    /// A controller process exited during the run.
    #[error("{0} exited during the run (see its log in the run directory)")]
    ControllerExited(String),
    /// Unparsable `/proc` content.
    #[error("cannot parse {0}")]
    Proc(String),
}

impl BenchError {
    /// An [`BenchError::Io`] with context.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}
