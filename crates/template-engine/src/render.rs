//! `render`: what a cluster would receive for YAML documents (a ScheduledBackup, its template and Secrets).

use crd_types::{
    ClusterBackupProcedureTemplate, Operation, RequestedBackupAction, ScheduledBackup, TemplateKind,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::error::Error;
use crate::{Executor, Inputs, ProcedureTemplate, builtin, builtin_names};

/// The bundled example: a ScheduledBackup on the built-in `pg15` template with its token and vars Secrets.
pub const EXAMPLE: &str = include_str!("../../../examples/scheduledbackup-pg15.yaml");

/// Replacement of Secret values in output without `show_secrets` (valid base64 of `REDACTED`).
const REDACTED: &[u8] = b"REDACTED";

/// Parses multi-document YAML into JSON values (empty documents are skipped).
pub fn parse_documents(yaml: &str) -> Result<Vec<Value>, Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).map_err(|e| {
        Error::InvalidInput(format!(
            "the input is not valid YAML: {}",
            crate::vars::yaml_problem(&e.to_string())
        ))
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn name(doc: &Value) -> &str {
    doc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn find_secret(docs: &[Value], secret: &str, field: &str, sb: &str) -> Result<Secret, Error> {
    let doc = docs
        .iter()
        .find(|d| kind(d) == "Secret" && name(d) == secret)
        .ok_or_else(|| {
            Error::SecretNotFound(format!(
                "Secret `{secret}` ({field} of ScheduledBackup {sb}) is not among the input documents: pass the file that defines it with -f"
            ))
        })?;
    serde_json::from_value(doc.clone())
        .map_err(|e| Error::InvalidInput(format!("Secret `{secret}` is not a valid Secret: {e}")))
}

/// Renders everything a cluster would receive for the given documents, as multi-document YAML.
///
/// `docs` must contain exactly one ScheduledBackup, the ClusterBackupProcedureTemplate it references (unless it
/// uses a built-in template) and its token and vars Secrets (the GPG key Secret is not needed: it is mounted
/// by reference). `operation_override` replaces `spec.operation`. With `action`, the output is the action's
/// Job or Workflow only. Secret values are replaced by `REDACTED` unless `show_secrets`. Warnings and skipped
/// operations are printed as YAML comments at the top.
pub fn render_documents(
    docs: &[Value],
    operation_override: Option<Operation>,
    action: Option<&RequestedBackupAction>,
    show_secrets: bool,
) -> Result<String, Error> {
    let sbs: Vec<&Value> = docs
        .iter()
        .filter(|d| kind(d) == "ScheduledBackup")
        .collect();
    let sb_doc = match sbs.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::InvalidInput(
                "no ScheduledBackup among the input documents: pass its file with -f".to_string(),
            ));
        }
        _ => {
            return Err(Error::InvalidInput(format!(
                "{} ScheduledBackups among the input documents: render one at a time",
                sbs.len()
            )));
        }
    };
    let mut sb: ScheduledBackup = serde_json::from_value(sb_doc.clone()).map_err(|e| {
        Error::InvalidInput(format!(
            "ScheduledBackup `{}` does not match the riotkit.org/v1alpha1 schema: {e}",
            name(sb_doc)
        ))
    })?;
    if let Some(op) = operation_override {
        sb.spec.operation = op;
    }
    let sb_ref = crate::vars::object_ref(
        sb.metadata.namespace.as_deref(),
        sb.metadata.name.as_deref(),
    );

    let template_name = &sb.spec.template_ref.name;
    let template: ProcedureTemplate = match sb
        .spec
        .template_ref
        .template_kind()
        .map_err(Error::InvalidTemplateKind)?
    {
        TemplateKind::Internal => builtin(template_name).ok_or_else(|| {
            Error::TemplateNotFound(format!(
                "built-in template `{template_name}` (spec.templateRef of ScheduledBackup {sb_ref}) does not exist: use one of {}, or set spec.templateRef.kind: ClusterBackupProcedureTemplate",
                builtin_names().join(", ")
            ))
        })?,
        TemplateKind::ClusterBackupProcedureTemplate => {
            let doc = docs
                .iter()
                .find(|d| kind(d) == "ClusterBackupProcedureTemplate" && name(d) == template_name)
                .ok_or_else(|| {
                    Error::TemplateNotFound(format!(
                        "ClusterBackupProcedureTemplate `{template_name}` (spec.templateRef of ScheduledBackup {sb_ref}) is not among the input documents: pass the file that defines it with -f"
                    ))
                })?;
            let cbpt: ClusterBackupProcedureTemplate = serde_json::from_value(doc.clone())
                .map_err(|e| {
                    Error::InvalidInput(format!(
                        "ClusterBackupProcedureTemplate `{template_name}` is not valid: {e}"
                    ))
                })?;
            ProcedureTemplate::from(&cbpt)
        }
    };

    let token = find_secret(
        docs,
        &sb.spec.token_secret_ref.secret_name,
        "spec.tokenSecretRef",
        &sb_ref,
    )?;
    let vars_secret = match sb
        .spec
        .vars_secret_ref
        .as_ref()
        .filter(|r| !r.secret_name.is_empty())
    {
        Some(r) => Some(find_secret(
            docs,
            &r.secret_name,
            "spec.varsSecretRef",
            &sb_ref,
        )?),
        None => None,
    };
    let inputs = Inputs {
        scheduled_backup: &sb,
        template: &template,
        token_secret: &token,
        vars_secret: vars_secret.as_ref(),
    };

    let mut out = String::new();
    let mut objects: Vec<Value> = Vec::new();
    if let Some(action) = action {
        let wanted = &action.spec.scheduled_backup_ref.name;
        if Some(wanted) != sb.metadata.name.as_ref() {
            return Err(Error::InvalidInput(format!(
                "the action refers to ScheduledBackup `{wanted}` (spec.scheduledBackupRef.name), but the input defines `{}`",
                sb.metadata.name.as_deref().unwrap_or_default()
            )));
        }
        match crate::action_executor(&inputs, action)? {
            Executor::Job(job) => objects.push(to_value(&job)?),
            Executor::Workflow(wf) => objects.push(wf),
        }
    } else {
        let desired = crate::desired_children(&inputs)?;
        for w in &desired.warnings {
            out.push_str(&format!("# warning: {w}\n"));
        }
        for s in &desired.skipped {
            out.push_str(&format!("# skipped: {s}\n"));
        }
        for (cm, secret) in desired.config_maps.iter().zip(desired.secrets.iter()) {
            objects.push(to_value(cm)?);
            let mut secret = secret.clone();
            if !show_secrets {
                redact(&mut secret);
            }
            objects.push(to_value(&secret)?);
        }
        for pod_template in &desired.pod_templates {
            objects.push(to_value(pod_template)?);
        }
        if let Some(cj) = &desired.cron_job {
            objects.push(to_value(cj)?);
        }
    }
    for obj in objects {
        out.push_str("---\n");
        if kind(&obj) == "Secret" && !show_secrets {
            out.push_str("# values redacted: pass --show-secrets to print them\n");
        }
        let yaml = serde_saphyr::to_string(&obj)
            .map_err(|e| Error::InvalidInput(format!("cannot write YAML: {e}")))?;
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

fn redact(secret: &mut Secret) {
    for v in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        *v = ByteString(REDACTED.to_vec());
    }
    for v in secret.string_data.iter_mut().flat_map(|d| d.values_mut()) {
        *v = String::from_utf8_lossy(REDACTED).into_owned();
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, Error> {
    serde_json::to_value(v)
        .map_err(|e| Error::InvalidInput(format!("cannot serialise an object: {e}")))
}
