//! Global tracing subscriber setup.

use crate::cli::LogFormat;
use tracing_subscriber::EnvFilter;

/// Filter used when `RUST_LOG` is unset: our own logs at info, kube's chatty watcher logs only on warnings.
pub const DEFAULT_FILTER: &str = "info,kube=warn";

/// Installs the global tracing subscriber: `RUST_LOG` env filter (default [`DEFAULT_FILTER`]), text or JSON.
/// Calling it twice (e.g. from tests) keeps the first subscriber instead of panicking.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("tracing subscriber already installed; keeping the existing one");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_twice_does_not_panic() {
        init(LogFormat::Json);
        init(LogFormat::Text);
    }

    #[test]
    fn default_filter_parses() {
        assert!(EnvFilter::try_new(DEFAULT_FILTER).is_ok());
    }
}
