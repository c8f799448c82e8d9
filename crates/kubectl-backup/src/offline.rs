//! Commands that need no cluster: `render` (the scheduled-controller's offline render), `keygen` (gpg-keygen's
//! offline `generate`) and `completion`. Render and keygen call the same library functions as those binaries.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use crd_types::{GpgKeySecretRef, RequestedBackupAction};

use crate::cli::{Cli, KeygenArgs, RenderArgs};
use crate::output::Style;
use crate::{Error, Result};

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))
}

fn documents(text: &str, origin: &str) -> Result<Vec<serde_json::Value>> {
    template_engine::parse_documents(text).map_err(|e| Error::Input(format!("{origin}: {e}")))
}

/// `kubectl backup render`: the YAML a cluster would receive; Secret values redacted unless `--show-secrets`.
pub fn render(args: &RenderArgs, out: &mut dyn Write) -> Result<()> {
    let mut docs = Vec::new();
    if args.files.is_empty() {
        docs = documents(template_engine::EXAMPLE, "the bundled example")?;
    }
    for file in &args.files {
        docs.extend(documents(&read(file)?, &file.display().to_string())?);
    }
    let action: Option<RequestedBackupAction> = match &args.action {
        None => None,
        Some(path) => {
            let origin = path.display().to_string();
            let doc = documents(&read(path)?, &origin)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::Input(format!("{origin} holds no document")))?;
            Some(serde_json::from_value(doc).map_err(|e| {
                Error::Input(format!("{origin} is not a RequestedBackupAction: {e}"))
            })?)
        }
    };
    let yaml = template_engine::render_documents(
        &docs,
        args.operation,
        action.as_ref(),
        args.show_secrets,
    )
    .map_err(|e| Error::Input(e.to_string()))?;
    write!(out, "{yaml}")?;
    Ok(())
}

/// `kubectl backup keygen`: a new key pair as a Secret manifest. Refuses to put the private key on a terminal
/// unless `--show-secrets`.
pub fn keygen(
    args: &KeygenArgs,
    namespace: Option<&str>,
    style: &Style,
    out: &mut dyn Write,
) -> Result<()> {
    if style.tty && !args.show_secrets {
        return Err(Error::SecretToTerminal);
    }
    let reference = GpgKeySecretRef {
        secret_name: args.name.clone(),
        public_key: args.public_key_key.clone(),
        private_key: args.private_key_key.clone(),
        passphrase_key: args.passphrase_key.clone(),
        email: Some(args.email.clone()),
        create_if_not_exists: false,
        algorithm: Some(args.algorithm.into()),
    };
    let yaml = gpg_keygen::secret::generate_manifest(
        namespace,
        &reference,
        &args.email,
        args.algorithm.into(),
    )
    .map_err(|e| Error::Input(format!("generating the key: {e:#}")))?;
    write!(out, "{yaml}")?;
    Ok(())
}

/// `kubectl backup completion SHELL`.
pub fn completion(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "kubectl-backup", out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Algorithm;

    fn keygen_args(show_secrets: bool) -> KeygenArgs {
        KeygenArgs {
            email: "backups@example.org".into(),
            algorithm: Algorithm::Ed25519,
            name: "app1-gpg".into(),
            private_key_key: "key".into(),
            public_key_key: "key.pub".into(),
            passphrase_key: "passphrase".into(),
            show_secrets,
        }
    }

    fn render_text(args: &RenderArgs) -> String {
        let mut out = Vec::new();
        render(args, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn render_redacts_secret_values_unless_show_secrets() {
        // The example with a helper-Secret value (HelmValues.env), read from a file as `-f` does.
        let example = template_engine::EXAMPLE.replace(
            "    HelmValues:\n",
            "    HelmValues:\n      env: {MY_SETTING: visible-value}\n",
        );
        let path =
            std::env::temp_dir().join(format!("kubectl-backup-render-{}.yaml", std::process::id()));
        std::fs::write(&path, example).unwrap();
        let args = RenderArgs {
            files: vec![path.clone()],
            ..Default::default()
        };
        let hidden = render_text(&args);
        let shown = render_text(&RenderArgs {
            show_secrets: true,
            ..args
        });
        std::fs::remove_file(path).unwrap();
        let visible = "dmlzaWJsZS12YWx1ZQ=="; // base64("visible-value")
        assert!(hidden.contains("kind: CronJob"), "{hidden}");
        assert!(!hidden.contains(visible), "{hidden}");
        assert!(shown.contains(visible), "{shown}");
    }

    #[test]
    fn render_is_the_same_implementation_as_the_scheduled_controllers() {
        let docs = template_engine::parse_documents(template_engine::EXAMPLE).unwrap();
        let expected = template_engine::render_documents(&docs, None, None, false).unwrap();
        assert_eq!(render_text(&RenderArgs::default()), expected);
    }

    #[test]
    fn render_names_an_unreadable_file() {
        let args = RenderArgs {
            files: vec!["/nonexistent/sb.yaml".into()],
            ..Default::default()
        };
        let err = render(&args, &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/sb.yaml"),
            "{err}"
        );
    }

    #[test]
    fn keygen_prints_a_key_secret_manifest_when_redirected() {
        let mut out = Vec::new();
        keygen(&keygen_args(false), Some("prod"), &Style::PLAIN, &mut out).unwrap();
        let secret: k8s_openapi::api::core::v1::Secret =
            serde_saphyr::from_str(&String::from_utf8(out).unwrap()).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("app1-gpg"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("prod"));
        let data = secret.data.unwrap();
        let private = String::from_utf8(data["key"].0.clone()).unwrap();
        assert!(private.contains("BEGIN PGP PRIVATE KEY BLOCK"));
        assert!(data.contains_key("key.pub") && data.contains_key("passphrase"));
    }

    #[test]
    fn keygen_refuses_to_print_a_private_key_on_a_terminal_without_show_secrets() {
        let tty = Style {
            tty: true,
            color: false,
        };
        let mut out = Vec::new();
        let err = keygen(&keygen_args(false), None, &tty, &mut out).unwrap_err();
        assert!(matches!(err, Error::SecretToTerminal));
        assert!(out.is_empty());
        keygen(&keygen_args(true), None, &tty, &mut out).unwrap();
        assert!(!out.is_empty());
    }

    #[test]
    fn completion_scripts_know_every_subcommand() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            completion(shell, &mut out);
            let script = String::from_utf8(out).unwrap();
            for sub in [
                "status", "run", "describe", "logs", "suspend", "resume", "render", "keygen",
            ] {
                assert!(script.contains(sub), "{shell:?} lacks {sub}");
            }
        }
    }
}
