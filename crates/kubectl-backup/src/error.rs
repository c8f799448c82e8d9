//! Every error the plugin reports. Messages name the object and say what to do; none carries a secret value.

use std::time::Duration;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kubeconfig, or it does not load.
    #[error("cannot load the kubeconfig: {0} (set --kubeconfig or KUBECONFIG, or --context)")]
    Kubeconfig(String),

    /// The named ScheduledBackup does not exist.
    #[error(
        "{}",
        not_found_message("ScheduledBackup", name, namespace, existing, "kubectl backup status")
    )]
    ScheduledBackupNotFound {
        /// The name asked for.
        name: String,
        /// Where it was looked for.
        namespace: String,
        /// ScheduledBackups that do exist there.
        existing: Vec<String>,
    },

    /// The named RequestedBackupAction does not exist.
    #[error(
        "{}",
        not_found_message("RequestedBackupAction", name, namespace, existing, "kubectl get rba")
    )]
    ActionNotFound {
        /// The name asked for.
        name: String,
        /// Where it was looked for.
        namespace: String,
        /// The most recent actions that do exist there.
        existing: Vec<String>,
    },

    /// RBAC refuses a request.
    #[error(
        "forbidden: your user may not {verb} {resource}{scope} ({detail}); ask your cluster admin for a Role granting `{verb}` on `{resource}`"
    )]
    Forbidden {
        /// The verb that is missing (`list`, `create`, `patch`, ...).
        verb: String,
        /// `plural` or `plural.group` (`scheduledbackups.riotkit.org`, `pods/log`).
        resource: String,
        /// ` in namespace x`, or empty for cluster-wide requests.
        scope: String,
        /// The API server's message.
        detail: String,
    },

    /// Server-side apply refused because another field manager owns the field.
    #[error(
        "{object}: {detail}; another tool (e.g. a GitOps controller) manages this field: change it there, or pass --force to take it over"
    )]
    FieldConflict {
        /// `scheduledbackup/NAME`.
        object: String,
        /// The API server's message.
        detail: String,
    },

    /// Any other API error.
    #[error("{what}: {error}")]
    Api {
        /// What was being done (`listing ScheduledBackups in namespace x`).
        what: String,
        /// The client error; printed in the message, so it is not also the `source()`.
        error: kube::Error,
    },

    /// The action ended in Failed.
    #[error("{action} failed: {message}")]
    ActionFailed {
        /// `rba/NAME`.
        action: String,
        /// The container's termination message, or the action's/Job's failure message.
        message: String,
    },

    /// The action was deleted while we waited.
    #[error("{action} was deleted before it finished")]
    ActionDeleted {
        /// `rba/NAME`.
        action: String,
    },

    /// `--timeout` elapsed.
    #[error(
        "gave up waiting for {action} after {}: last state {state}; it keeps running: follow it with `kubectl backup describe {action}`",
        human_duration(*after)
    )]
    Timeout {
        /// `rba/NAME`.
        action: String,
        /// The timeout.
        after: Duration,
        /// The last progress line.
        state: String,
    },

    /// Ctrl-C while waiting.
    #[error(
        "stopped waiting; {action} keeps running: follow it with `kubectl backup describe {action}` or `kubectl backup logs {action} -f`"
    )]
    Interrupted {
        /// `rba/NAME`.
        action: String,
    },

    /// Nothing to show logs of.
    #[error("{0}")]
    NoPod(String),

    /// Bad input to an offline command (render, keygen).
    #[error("{0}")]
    Input(String),

    /// A private key would be printed to a terminal.
    #[error(
        "the manifest holds a private key and stdout is a terminal: redirect it (> key.yaml) or pipe it to your sealing tool, or pass --show-secrets"
    )]
    SecretToTerminal,

    /// Writing output failed (e.g. a closed pipe).
    #[error("writing output: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(error)
    }
}

impl Error {
    /// Process exit code: 1 for failures, 124 for a timeout (like `timeout(1)`), 130 for Ctrl-C.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Timeout { .. } => 124,
            Error::Interrupted { .. } => 130,
            _ => 1,
        }
    }

    /// Wraps a client error with what was being done, recognising RBAC refusals.
    ///
    /// `verb` and `resource` describe the request, and are used when the server's message does not name them.
    pub fn api(source: kube::Error, what: impl Into<String>, verb: &str, resource: &str) -> Error {
        if let kube::Error::Api(status) = &source
            && status.code == 403
        {
            let (verb, resource, scope) = parse_forbidden(&status.message)
                .unwrap_or_else(|| (verb.to_string(), resource.to_string(), String::new()));
            return Error::Forbidden {
                verb,
                resource,
                scope,
                detail: status.message.clone(),
            };
        }
        Error::Api {
            what: what.into(),
            error: source,
        }
    }
}

/// `User "u" cannot list resource "scheduledbackups" in API group "riotkit.org" in the namespace "ns"` →
/// (`list`, `scheduledbackups.riotkit.org`, ` in namespace ns`). Subresources come as `resource "pods/log"`.
fn parse_forbidden(message: &str) -> Option<(String, String, String)> {
    let rest = &message[message.find(" cannot ")? + " cannot ".len()..];
    let (verb, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("resource \"")?;
    let (resource, rest) = rest.split_once('"')?;
    let group = rest
        .strip_prefix(" in API group \"")
        .and_then(|g| g.split_once('"'))
        .map(|(g, _)| g)
        .unwrap_or_default();
    let scope = rest
        .split_once(" in the namespace \"")
        .and_then(|(_, ns)| ns.split_once('"'))
        .map(|(ns, _)| format!(" in namespace {ns}"))
        .unwrap_or_else(|| " cluster-wide".to_string());
    let resource = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    Some((verb.to_string(), resource, scope))
}

fn not_found_message(
    kind: &str,
    name: &str,
    namespace: &str,
    existing: &[String],
    list_hint: &str,
) -> String {
    if existing.is_empty() {
        format!(
            "{kind} {name:?} not found in namespace {namespace:?}, which has none: pick the namespace with -n (or list all with `{list_hint} -A`)"
        )
    } else {
        format!(
            "{kind} {name:?} not found in namespace {namespace:?}; it has: {}",
            existing.join(", ")
        )
    }
}

/// `95s` → `1m35s`; used in messages and progress lines.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 if d.as_millis() > 0 => format!("{}ms", d.as_millis()),
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.into(),
            reason: "Forbidden".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn forbidden_names_the_missing_verb_and_resource_from_the_api_server_message() {
        // The exact shape of a kube-apiserver 1.36 refusal.
        let e = Error::api(
            status(
                403,
                "requestedbackupactions.riotkit.org is forbidden: User \"jane\" cannot create resource \"requestedbackupactions\" in API group \"riotkit.org\" in the namespace \"prod\"",
            ),
            "creating",
            "get",
            "x",
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "forbidden: your user may not create requestedbackupactions.riotkit.org in namespace prod"
            ),
            "{text}"
        );
        assert!(
            text.contains("granting `create` on `requestedbackupactions.riotkit.org`"),
            "{text}"
        );
    }

    #[test]
    fn forbidden_on_a_core_subresource_has_no_group_suffix() {
        let e = Error::api(
            status(
                403,
                "pods \"p\" is forbidden: User \"jane\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"prod\"",
            ),
            "reading logs",
            "get",
            "pods/log",
        );
        assert!(
            e.to_string()
                .starts_with("forbidden: your user may not get pods/log in namespace prod"),
            "{e}"
        );
    }

    #[test]
    fn forbidden_without_a_parsable_message_falls_back_to_the_request() {
        let e = Error::api(
            status(403, "nope"),
            "listing",
            "list",
            "scheduledbackups.riotkit.org",
        );
        assert!(
            e.to_string().starts_with(
                "forbidden: your user may not list scheduledbackups.riotkit.org (nope)"
            ),
            "{e}"
        );
    }

    #[test]
    fn other_api_errors_say_what_was_being_done() {
        let e = Error::api(
            status(500, "etcd down"),
            "listing ScheduledBackups",
            "list",
            "x",
        );
        assert!(
            e.to_string().starts_with("listing ScheduledBackups: "),
            "{e}"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn not_found_lists_what_exists_or_suggests_another_namespace() {
        let with = Error::ScheduledBackupNotFound {
            name: "ap1".into(),
            namespace: "prod".into(),
            existing: vec!["app1".into(), "app2".into()],
        };
        assert_eq!(
            with.to_string(),
            "ScheduledBackup \"ap1\" not found in namespace \"prod\"; it has: app1, app2"
        );
        let without = Error::ScheduledBackupNotFound {
            name: "ap1".into(),
            namespace: "default".into(),
            existing: vec![],
        };
        assert!(
            without
                .to_string()
                .contains("which has none: pick the namespace with -n")
        );
    }

    #[test]
    fn timeouts_and_interrupts_have_their_own_exit_codes() {
        let timeout = Error::Timeout {
            action: "rba/a".into(),
            after: Duration::from_secs(90),
            state: "Running".into(),
        };
        assert_eq!(timeout.exit_code(), 124);
        assert!(timeout.to_string().contains("after 1m30s"));
        assert_eq!(
            Error::Interrupted {
                action: "rba/a".into()
            }
            .exit_code(),
            130
        );
    }
}
