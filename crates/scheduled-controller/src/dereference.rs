//! Fetching what a ScheduledBackup refers to: its template, its token and vars Secrets, and the key Secret's
//! readiness (which gpg-keygen reports in the `GPGKeyReady` condition). Reads only.
//!
//! The action-controller renders the same procedure for its Jobs, so [`dereference`] takes a client and the
//! template cache rather than this controller's context.

use crd_types::constants::condition_types;
use crd_types::{ScheduledBackup, TemplateKind};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use template_engine::ProcedureTemplate;

use crd_types::ClusterBackupProcedureTemplate;
use kube::Client;
use kube::runtime::reflector::Store;

use crate::error::Error;

/// What a render needs besides the ScheduledBackup itself.
pub struct Dependencies {
    /// The resolved template.
    pub template: ProcedureTemplate,
    /// The token Secret (holds `tokenKey`).
    pub token_secret: Secret,
    /// The vars Secret, when `varsSecretRef.secretName` is set.
    pub vars_secret: Option<Secret>,
}

/// Resolves the template and the token and vars Secrets, or fails with an error that names the field and the fix.
pub async fn dereference(
    client: &Client,
    templates: &Store<ClusterBackupProcedureTemplate>,
    sb: &ScheduledBackup,
    namespace: &str,
) -> Result<Dependencies, Error> {
    let template = resolve_template(templates, sb)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);

    let token_ref = &sb.spec.token_secret_ref;
    let token_secret = get_secret(&secrets, &token_ref.secret_name).await?.ok_or_else(|| {
        Error::SecretNotFound(format!(
            "Secret {namespace}/{} (spec.tokenSecretRef.secretName) does not exist: create it with the Backup Repository token under key {:?}",
            token_ref.secret_name, token_ref.token_key
        ))
    })?;
    if !has_key(&token_secret, &token_ref.token_key) {
        return Err(Error::SecretNotFound(format!(
            "Secret {namespace}/{} has no non-empty key {:?} (spec.tokenSecretRef.tokenKey): add the token under that key or fix tokenKey",
            token_ref.secret_name, token_ref.token_key
        )));
    }

    let vars_secret = match sb.spec.vars_secret_ref.as_ref().filter(|r| !r.secret_name.is_empty()) {
        None => None,
        Some(vars_ref) => Some(get_secret(&secrets, &vars_ref.secret_name).await?.ok_or_else(|| {
            Error::SecretNotFound(format!(
                "Secret {namespace}/{} (spec.varsSecretRef.secretName) does not exist: create it, or remove spec.varsSecretRef",
                vars_ref.secret_name
            ))
        })?),
    };

    Ok(Dependencies {
        template,
        token_secret,
        vars_secret,
    })
}

/// The template a ScheduledBackup refers to: built in, or a ClusterBackupProcedureTemplate from the cache.
pub fn resolve_template(
    templates: &Store<ClusterBackupProcedureTemplate>,
    sb: &ScheduledBackup,
) -> Result<ProcedureTemplate, Error> {
    let reference = &sb.spec.template_ref;
    match reference.template_kind().map_err(Error::InvalidTemplateKind)? {
        TemplateKind::Internal => template_engine::builtin(&reference.name).ok_or_else(|| {
            Error::TemplateNotFound(format!(
                "built-in template {:?} (spec.templateRef.name with kind: internal) does not exist: use one of {}",
                reference.name,
                template_engine::builtin_names().join(", ")
            ))
        }),
        TemplateKind::ClusterBackupProcedureTemplate => {
            let key = kube::runtime::reflector::ObjectRef::new(&reference.name);
            templates.get(&key).map(|t| ProcedureTemplate::from(t.as_ref())).ok_or_else(|| {
                Error::TemplateNotFound(format!(
                    "ClusterBackupProcedureTemplate {:?} (spec.templateRef.name) does not exist: create it, or use kind: internal with a built-in template ({})",
                    reference.name,
                    template_engine::builtin_names().join(", ")
                ))
            })
        }
    }
}

/// The key Secret is created and validated by gpg-keygen; this controller only waits for it.
pub async fn check_key_secret(
    client: &Client,
    sb: &ScheduledBackup,
    namespace: &str,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = &sb.spec.gpg_key_secret_ref.secret_name;
    if get_secret(&secrets, name).await?.is_none() {
        let hint = if sb.spec.gpg_key_secret_ref.create_if_not_exists {
            "gpg-keygen creates it (is the gpg-keygen controller running?)"
        } else {
            "create it, or set spec.gpgKeySecretRef.createIfNotExists: true to have one generated"
        };
        return Err(Error::WaitingForKeySecret(format!(
            "key Secret {namespace}/{name} (spec.gpgKeySecretRef.secretName) does not exist yet: {hint}"
        )));
    }
    let conditions = sb
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    match crd_types::conditions::find(conditions, condition_types::GPG_KEY_READY) {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(Error::WaitingForKeySecret(format!(
            "key Secret {namespace}/{name} is not usable ({}): {}",
            c.reason, c.message
        ))),
        None => Err(Error::WaitingForKeySecret(format!(
            "waiting for gpg-keygen to validate key Secret {namespace}/{name} (condition GPGKeyReady; is the gpg-keygen controller running?)"
        ))),
    }
}

async fn get_secret(api: &Api<Secret>, name: &str) -> Result<Option<Secret>, Error> {
    api.get_opt(name)
        .await
        .map_err(Error::kube(format!("reading Secret {name}")))
}

fn has_key(secret: &Secret, key: &str) -> bool {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .is_some_and(|v| !v.0.is_empty())
        || secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .is_some_and(|v| !v.is_empty())
}
