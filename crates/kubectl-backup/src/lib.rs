//! `kubectl backup`: the command line for backup-maker, as a library so every command runs in tests against the
//! in-process fake API server.
//!
//! Each cluster command takes a [`Session`] (a `kube::Client`, the namespace, "now" and the output [`Style`]) and
//! a writer; the binary builds the session from the user's kubeconfig. The plugin talks only to the Kubernetes
//! API, with the user's own RBAC, and never prints a secret value.
//!
//! | module | command |
//! |---|---|
//! | [`status`] | `status [SB...] [-o wide\|json\|yaml]` |
//! | [`run`] | `run SB [--restore [--version V]] [--wait] [--timeout D] [--workflow]` |
//! | [`describe`] | `describe SB\|rba/NAME` |
//! | [`logs`] | `logs SB\|rba/NAME [-f]` |
//! | [`suspend`] | `suspend SB`, `resume SB` |
//! | [`offline`] | `render`, `keygen`, `completion` (no cluster) |

pub mod cli;
pub mod describe;
pub mod error;
pub mod logs;
pub mod lookup;
pub mod offline;
pub mod output;
pub mod run;
pub mod status;
pub mod suspend;

pub use error::{Error, Result};
pub use output::Style;

use jiff::Timestamp;

/// Field manager of the plugin's server-side applies.
pub const FIELD_MANAGER: &str = "kubectl-backup";

/// What every cluster command needs.
#[derive(Clone)]
pub struct Session {
    /// Client with the user's credentials.
    pub client: kube::Client,
    /// Namespace of namespaced commands (from `-n` or the kubeconfig context).
    pub namespace: String,
    /// `-A`: every namespace (status only).
    pub all_namespaces: bool,
    /// The time relative times are computed against (injected so output is reproducible).
    pub now: Timestamp,
    /// Terminal decoration.
    pub style: Style,
}

impl Session {
    /// A session in `namespace`, at the current time, with plain output.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Session {
        Session {
            client,
            namespace: namespace.into(),
            all_namespaces: false,
            now: Timestamp::now(),
            style: Style::PLAIN,
        }
    }
}

/// What a `describe`/`logs` argument names: `NAME` or `sb/NAME` is a ScheduledBackup, `rba/NAME` an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A ScheduledBackup.
    ScheduledBackup(String),
    /// A RequestedBackupAction.
    Action(String),
}

impl Target {
    /// Parses kubectl's `TYPE/NAME` forms (short names, kinds, plurals, with or without the group).
    pub fn parse(arg: &str) -> Result<Target> {
        let Some((kind, name)) = arg.split_once('/') else {
            return Ok(Target::ScheduledBackup(arg.to_string()));
        };
        if name.is_empty() {
            return Err(Error::Input(format!("{arg:?} has no name after the '/'")));
        }
        let kind = kind.to_ascii_lowercase();
        let kind = kind.strip_suffix(".riotkit.org").unwrap_or(&kind);
        match kind {
            "sb" | "scheduledbackup" | "scheduledbackups" => {
                Ok(Target::ScheduledBackup(name.to_string()))
            }
            "rba" | "requestedbackupaction" | "requestedbackupactions" => {
                Ok(Target::Action(name.to_string()))
            }
            other => Err(Error::Input(format!(
                "{other:?} is not a ScheduledBackup or RequestedBackupAction: use NAME (a ScheduledBackup) or rba/NAME"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_kubectl_type_prefixes() {
        assert_eq!(
            Target::parse("app1").unwrap(),
            Target::ScheduledBackup("app1".into())
        );
        assert_eq!(
            Target::parse("sb/app1").unwrap(),
            Target::ScheduledBackup("app1".into())
        );
        assert_eq!(
            Target::parse("rba/now-1").unwrap(),
            Target::Action("now-1".into())
        );
        assert_eq!(
            Target::parse("requestedbackupactions.riotkit.org/now-1").unwrap(),
            Target::Action("now-1".into())
        );
        assert!(
            Target::parse("pod/x")
                .unwrap_err()
                .to_string()
                .contains("rba/NAME")
        );
        assert!(Target::parse("rba/").is_err());
    }
}
