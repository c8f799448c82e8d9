//! The Kubernetes objects a ScheduledBackup owns, and the executor of a RequestedBackupAction.

use std::collections::BTreeMap;

use crd_types::constants::{API_VERSION, field_managers, labels};
use crd_types::executor::{DEFAULT_BACKOFF_LIMIT, JobSettings};
use crd_types::names::{child_name, label_value};
use crd_types::{Operation, RequestedBackupAction, ScheduledBackup};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EnvFromSource, EnvVar,
    EnvVarSource, KeyToPath, PodSecurityContext, PodSpec, PodTemplate, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretEnvSource, SecretKeySelector,
    SecretVolumeSource, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::digest;
use crate::engine::{self, as_marker, has_marker};
use crate::error::Error;
use crate::vars::{self, GPG_KEY_PATH, SecretValue, TOKEN_ENV, Vars, object_ref};
use crate::{Desired, Executor, Inputs};

/// Where the script ConfigMap is mounted.
pub const SCRIPT_DIR: &str = "/usr/backup-maker";
/// Directory of the mounted GPG key (the file is `gpg-key` inside it).
pub const SECRETS_DIR: &str = "/mnt/secrets";
/// Name of the container running the procedure.
pub const CONTAINER_NAME: &str = "backup-maker";
/// UID/GID the pgbr and backup-maker images run as.
pub const RUN_AS_USER: i64 = 1001;
/// `HelmValues` keys that configure the pod.
pub const HELM_VALUES_KEYS: &[&str] = &[
    "env",
    "image",
    "imagePullPolicy",
    "resources",
    "nodeSelector",
    "tolerations",
    "affinity",
    "serviceAccountName",
    "securityContext",
    "podSecurityContext",
    "backoffLimit",
    "activeDeadlineSeconds",
    "volumes",
    "volumeMounts",
];
/// `HelmValues` keys of the original's bmg chart that have no effect here (reported as warnings).
pub const LEGACY_HELM_VALUES_KEYS: &[&str] = &[
    "name",
    "Name",
    "scriptContent",
    "gpgKeyContent",
    "schedule",
    "scriptName",
    "sealedSecretName",
    "kindType",
    "operationType",
    "isGPGSealedSecret",
];

/// Pod settings from `HelmValues`.
#[derive(Default)]
struct Helm {
    env_plain: BTreeMap<String, String>,
    env_from_secrets: Vec<EnvVar>,
    image: Option<String>,
    image_pull_policy: Option<String>,
    resources: Option<ResourceRequirements>,
    node_selector: Option<BTreeMap<String, String>>,
    tolerations: Option<Vec<Toleration>>,
    affinity: Option<Affinity>,
    service_account_name: Option<String>,
    security_context: Option<SecurityContext>,
    pod_security_context: Option<PodSecurityContext>,
    backoff_limit: Option<i32>,
    active_deadline_seconds: Option<i64>,
    volumes: Vec<Volume>,
    volume_mounts: Vec<VolumeMount>,
    warnings: Vec<String>,
}

fn valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '-' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn typed<T: DeserializeOwned>(sb_ref: &str, key: &str, v: &Value) -> Result<T, Error> {
    serde_json::from_value(v.clone()).map_err(|e| {
        Error::InvalidVars(format!(
            "spec.vars HelmValues.{key} of ScheduledBackup {sb_ref} is not a valid Kubernetes value: {e}. Fix: use the same structure as the pod spec field"
        ))
    })
}

fn parse_helm(sb_ref: &str, v: &Vars) -> Result<Helm, Error> {
    let mut h = Helm::default();
    let Some(hv) = v.root.get("HelmValues") else {
        return Ok(h);
    };
    let map = match hv {
        Value::Null => return Ok(h),
        Value::Object(m) => m,
        other => {
            return Err(Error::InvalidVars(format!(
                "spec.vars HelmValues of ScheduledBackup {sb_ref} must be a map, but it is {}",
                vars::kind_of(other)
            )));
        }
    };
    for (key, val) in map {
        // Secret values may only reach the pod as env vars (secretKeyRef), never be copied into the spec.
        if key != "env" && contains_marker(val) {
            return Err(Error::InvalidVars(format!(
                "HelmValues.{key} of ScheduledBackup {sb_ref} comes from the vars Secret, which would copy a Secret value into the pod spec: set it in spec.vars instead (only HelmValues.env entries may come from a Secret)"
            )));
        }
        match key.as_str() {
            "env" => parse_env(sb_ref, val, v, &mut h)?,
            "image" => h.image = Some(typed(sb_ref, key, val)?),
            "imagePullPolicy" => h.image_pull_policy = Some(typed(sb_ref, key, val)?),
            "resources" => {
                let resources: ResourceRequirements = typed(sb_ref, key, val)?;
                check_quantities(sb_ref, &resources)?;
                h.resources = Some(resources);
            }
            "nodeSelector" => h.node_selector = Some(typed(sb_ref, key, val)?),
            "tolerations" => h.tolerations = Some(typed(sb_ref, key, val)?),
            "affinity" => h.affinity = Some(typed(sb_ref, key, val)?),
            "serviceAccountName" => h.service_account_name = Some(typed(sb_ref, key, val)?),
            "securityContext" => h.security_context = Some(typed(sb_ref, key, val)?),
            "podSecurityContext" => h.pod_security_context = Some(typed(sb_ref, key, val)?),
            "backoffLimit" => h.backoff_limit = Some(typed(sb_ref, key, val)?),
            "activeDeadlineSeconds" => h.active_deadline_seconds = Some(typed(sb_ref, key, val)?),
            "volumes" => h.volumes = typed(sb_ref, key, val)?,
            "volumeMounts" => h.volume_mounts = typed(sb_ref, key, val)?,
            k if LEGACY_HELM_VALUES_KEYS.contains(&k) => h.warnings.push(format!(
                "spec.vars HelmValues.{k} of ScheduledBackup {sb_ref} was a setting of the original operator's chart and has no effect: remove it"
            )),
            other => {
                return Err(Error::InvalidVars(format!(
                    "spec.vars HelmValues.{other} of ScheduledBackup {sb_ref} is not a known setting: use one of {} (check the spelling)",
                    HELM_VALUES_KEYS.join(", ")
                )));
            }
        }
    }
    Ok(h)
}

/// The API server refuses a quantity outside its grammar (seen on a real cluster as a 500 on apply, which would
/// otherwise leave the SB retrying forever): check `requests`/`limits` here and name the field.
fn check_quantities(sb_ref: &str, resources: &ResourceRequirements) -> Result<(), Error> {
    let groups = [
        ("limits", &resources.limits),
        ("requests", &resources.requests),
    ];
    for (group, quantities) in groups {
        for (name, quantity) in quantities.iter().flatten() {
            if !is_quantity(&quantity.0) {
                return Err(Error::InvalidVars(format!(
                    "spec.vars HelmValues.resources.{group}.{name} of ScheduledBackup {sb_ref} is {:?}, which is not a Kubernetes quantity: use a number with an optional unit such as 500m, 256Mi or 2Gi",
                    quantity.0
                )));
            }
        }
    }
    Ok(())
}

/// Kubernetes' quantity grammar: an unsigned decimal number, then nothing, a binary (`Ki`..`Ei`) or decimal
/// (`n u m k M G T P E`) suffix, or a decimal exponent (`e3`, `E-2`). Negative values are refused for resources.
pub(crate) fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return false;
    }
    const SUFFIXES: &[&str] = &[
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !exponent.is_empty() && exponent.chars().all(|c| c.is_ascii_digit())
}

fn contains_marker(v: &Value) -> bool {
    match v {
        Value::String(s) => has_marker(s),
        Value::Array(a) => a.iter().any(contains_marker),
        Value::Object(o) => o.values().any(contains_marker),
        _ => false,
    }
}

fn parse_env(sb_ref: &str, val: &Value, v: &Vars, h: &mut Helm) -> Result<(), Error> {
    let map = match val {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        other => {
            return Err(Error::InvalidVars(format!(
                "spec.vars HelmValues.env of ScheduledBackup {sb_ref} must be a map of NAME: value, but it is {}",
                vars::kind_of(other)
            )));
        }
    };
    for (name, value) in map {
        if !valid_env_name(name) {
            return Err(Error::InvalidVars(format!(
                "spec.vars HelmValues.env.{name} of ScheduledBackup {sb_ref}: {name:?} is not a valid environment variable name (letters, digits, '_', '-', '.'; not starting with a digit)"
            )));
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(Error::InvalidVars(format!(
                    "spec.vars HelmValues.env.{name} of ScheduledBackup {sb_ref} must be a string, but it is {}",
                    vars::kind_of(other)
                )));
            }
        };
        if let Some(env) = as_marker(&text) {
            // From the vars Secret: reference the user's Secret instead of copying the value.
            let sv = v
                .secrets
                .iter()
                .find(|s| s.env == env)
                .expect("markers are only created for recorded secret values");
            h.env_from_secrets.push(secret_env(name, sv));
        } else if has_marker(&text) {
            return Err(Error::InvalidVars(format!(
                "spec.vars HelmValues.env.{name} of ScheduledBackup {sb_ref} mixes a Secret value with other text: a Secret value must be the whole env value"
            )));
        } else {
            // Never evaluated locally: `${...}`/`$(...)` reach the pod verbatim (the original ran them through bash
            // inside the controller).
            h.env_plain.insert(name.clone(), text);
        }
    }
    Ok(())
}

fn secret_env(name: &str, sv: &SecretValue) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: sv.secret.clone(),
                key: sv.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Labels of every child of a ScheduledBackup for one operation. `shard` is the SB's `riotkit.org/shard` label:
/// copied so a sharded controller's child watches (and the Jobs and Pods a CronJob spawns) follow the SB's shard.
pub fn child_labels(sb_name: &str, op: Operation, shard: Option<&str>) -> BTreeMap<String, String> {
    let sb = label_value(sb_name);
    let mut labels = BTreeMap::from([
        (labels::SCHEDULED_BACKUP.to_string(), sb.clone()),
        (labels::OPERATION.to_string(), op.as_str().to_string()),
        (
            labels::APP_NAME.to_string(),
            labels::APP_NAME_VALUE.to_string(),
        ),
        (labels::APP_INSTANCE.to_string(), sb),
        (labels::APP_COMPONENT.to_string(), op.as_str().to_string()),
        (
            labels::APP_MANAGED_BY.to_string(),
            field_managers::SCHEDULED_CONTROLLER.to_string(),
        ),
        (
            labels::APP_PART_OF.to_string(),
            labels::APP_NAME_VALUE.to_string(),
        ),
    ]);
    if let Some(shard) = shard {
        labels.insert(labels::SHARD.to_string(), shard.to_string());
    }
    labels
}

fn owner_ref(kind: &str, name: Option<&str>, uid: Option<&str>) -> Option<Vec<OwnerReference>> {
    let uid = uid.filter(|u| !u.is_empty())?;
    Some(vec![OwnerReference {
        api_version: API_VERSION.to_string(),
        kind: kind.to_string(),
        name: name.unwrap_or_default().to_string(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }])
}

/// The restricted-PodSecurity-compatible container securityContext used unless `HelmValues.securityContext`.
pub fn default_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Default::default()
        }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod securityContext used unless `HelmValues.podSecurityContext`.
pub fn default_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        fs_group: Some(RUN_AS_USER),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Ctx<'a> {
    sb: &'a ScheduledBackup,
    namespace: Option<String>,
    image: String,
    vars: Vars,
    helm: Helm,
}

fn pod_template(
    c: &Ctx,
    op: Operation,
    name: &str,
    labels: BTreeMap<String, String>,
) -> PodTemplateSpec {
    let key_ref = &c.sb.spec.gpg_key_secret_ref;
    // Backups only ever see the public key, restores the private key, straight from the user's Secret.
    let key_item = match op {
        Operation::Backup => key_ref.public_key_name(),
        Operation::Restore => key_ref.private_key_name(),
    };
    let mut env: Vec<EnvVar> = Vec::new();
    for sv in &c.vars.secrets {
        env.push(secret_env(&sv.env, sv));
    }
    env.extend(c.helm.env_from_secrets.iter().cloned());
    let mut mounts = vec![
        VolumeMount {
            name: "script".to_string(),
            mount_path: SCRIPT_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "gpg-key".to_string(),
            mount_path: SECRETS_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        },
    ];
    mounts.extend(c.helm.volume_mounts.iter().cloned());
    let mut volumes = vec![
        Volume {
            name: "script".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.to_string(),
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "gpg-key".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(key_ref.secret_name.clone()),
                items: Some(vec![KeyToPath {
                    key: key_item.to_string(),
                    path: "gpg-key".to_string(),
                    ..Default::default()
                }]),
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Default::default()
        },
    ];
    volumes.extend(c.helm.volumes.iter().cloned());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_string()),
            service_account_name: c.helm.service_account_name.clone(),
            // The procedure needs no Kubernetes API access unless a service account is chosen explicitly.
            automount_service_account_token: Some(c.helm.service_account_name.is_some()),
            security_context: Some(
                c.helm
                    .pod_security_context
                    .clone()
                    .unwrap_or_else(default_pod_security_context),
            ),
            node_selector: c.helm.node_selector.clone(),
            tolerations: c.helm.tolerations.clone(),
            affinity: c.helm.affinity.clone(),
            containers: vec![Container {
                name: CONTAINER_NAME.to_string(),
                image: Some(c.helm.image.clone().unwrap_or_else(|| c.image.clone())),
                image_pull_policy: Some(
                    c.helm
                        .image_pull_policy
                        .clone()
                        .unwrap_or_else(|| "Always".to_string()),
                ),
                command: Some(vec![
                    "/bin/bash".to_string(),
                    format!("{SCRIPT_DIR}/{}.sh", op.as_str()),
                ]),
                env: (!env.is_empty()).then_some(env),
                env_from: Some(vec![EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: name.to_string(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }]),
                volume_mounts: Some(mounts),
                resources: c.helm.resources.clone(),
                // A failed script's last output lands in the Pod's termination message, which the
                // scheduled-controller copies into the SB's status (no `kubectl logs` needed).
                termination_message_policy: Some("FallbackToLogsOnError".to_string()),
                security_context: Some(
                    c.helm
                        .security_context
                        .clone()
                        .unwrap_or_else(default_security_context),
                ),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
    }
}

/// Renders everything a ScheduledBackup should own (see [`crate::desired_children`]).
pub(crate) fn desired_children(inputs: &Inputs) -> Result<Desired, Error> {
    let sb = inputs.scheduled_backup;
    let sb_name = sb.metadata.name.clone().unwrap_or_default();
    let sb_ref = object_ref(
        sb.metadata.namespace.as_deref(),
        sb.metadata.name.as_deref(),
    );
    let template = inputs.template;
    let defaults = if template.builtin {
        crate::builtin::defaults(&template.name)
    } else {
        None
    };
    let vars = vars::build(
        sb,
        defaults.as_ref(),
        inputs.token_secret,
        inputs.vars_secret,
        None,
    )?;
    let helm = parse_helm(&sb_ref, &vars)?;
    let mut ctx = Ctx {
        sb,
        namespace: sb.metadata.namespace.clone(),
        image: template.image.clone(),
        vars,
        helm,
    };
    let owner = owner_ref(
        "ScheduledBackup",
        sb.metadata.name.as_deref(),
        sb.metadata.uid.as_deref(),
    );
    let secret_values: Vec<(String, String)> = ctx
        .vars
        .secrets
        .iter()
        .map(|s| (s.env.clone(), s.value.clone()))
        .collect();

    let mut out = Desired {
        config_maps: Vec::new(),
        secrets: Vec::new(),
        cron_job: None,
        pod_templates: Vec::new(),
        hash: String::new(),
        skipped: Vec::new(),
        warnings: ctx.helm.warnings.clone(),
    };
    let mut tera_ctx: Option<tera::Context> = None;
    for op in Operation::ALL {
        let source = match op {
            Operation::Backup => Some(&template.backup),
            Operation::Restore => template.restore.as_ref().filter(|s| !s.trim().is_empty()),
        };
        let Some(source) = source else {
            if sb.spec.operation == op {
                return Err(Error::NoScriptForOperation {
                    template: template.name.clone(),
                    operation: op.to_string(),
                });
            }
            out.skipped.push(format!(
                "{op}: template {:?} has no {op} script, so no {op} ConfigMap, Secret or PodTemplate was rendered; {op} actions of ScheduledBackup {sb_ref} wait (WaitingForPodTemplate) until it has one",
                template.name
            ));
            continue;
        };
        let compiled = engine::compile(&template.name, source)?;
        if tera_ctx.is_none() {
            // Moved, not copied: nothing reads the variables as a value after this point.
            tera_ctx = Some(engine::context(
                &template.name,
                std::mem::take(&mut ctx.vars.root),
            )?);
        }
        let rendered = engine::render_with_context(
            &compiled,
            tera_ctx.as_ref().expect("context was just built"),
            &secret_values,
            &ctx.vars.sources,
        )?;
        let name = child_name(&sb_name, op);
        for env in &rendered.pasted_secrets {
            if let Some(sv) = ctx.vars.secrets.iter().find(|s| &s.env == env) {
                out.warnings.push(format!(
                    "template {:?} prints the value of key `{}` of Secret `{}` without `| shell_quote`, so it is stored in ConfigMap {name}: pipe it through shell_quote to keep it in the Secret",
                    template.name, sv.key, sv.secret
                ));
            }
        }
        // Built once per operation and cloned: every object, the jobTemplate and the pod carry the same labels.
        let shard = sb
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::SHARD));
        let labels = child_labels(&sb_name, op, shard.map(String::as_str));
        let meta = ObjectMeta {
            name: Some(name.clone()),
            namespace: ctx.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: owner.clone(),
            ..Default::default()
        };
        let pod = pod_template(&ctx, op, &name, labels.clone());
        out.config_maps.push(ConfigMap {
            metadata: meta.clone(),
            data: Some(BTreeMap::from([(
                format!("{}.sh", op.as_str()),
                rendered.text,
            )])),
            ..Default::default()
        });
        out.secrets.push(Secret {
            metadata: meta.clone(),
            type_: Some("Opaque".to_string()),
            data: Some(
                ctx.helm
                    .env_plain
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        });
        let job_settings = JobSettings {
            backoff_limit: ctx.helm.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT),
            active_deadline_seconds: ctx.helm.active_deadline_seconds,
        };
        if sb.spec.operation == op && sb.spec.cron_job.enabled {
            let cj = &sb.spec.cron_job;
            out.cron_job = Some(CronJob {
                metadata: meta.clone(),
                spec: Some(CronJobSpec {
                    // `H` resolved for this SB; an invalid expression goes through as written (the controller
                    // validates it before rendering, `render` shows it as is).
                    schedule: cj
                        .effective_schedule(
                            sb.metadata.namespace.as_deref().unwrap_or_default(),
                            &sb_name,
                        )
                        .unwrap_or_else(|_| cj.expression().to_string()),
                    starting_deadline_seconds: Some(cj.starting_deadline_seconds()),
                    time_zone: cj.time_zone.clone().filter(|s| !s.is_empty()),
                    suspend: cj.suspend,
                    concurrency_policy: Some(
                        cj.concurrency_policy
                            .unwrap_or_default()
                            .as_str()
                            .to_string(),
                    ),
                    successful_jobs_history_limit: cj.successful_jobs_history_limit,
                    failed_jobs_history_limit: cj.failed_jobs_history_limit,
                    job_template: JobTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            ..Default::default()
                        }),
                        spec: Some(JobSpec {
                            backoff_limit: Some(job_settings.backoff_limit),
                            active_deadline_seconds: job_settings.active_deadline_seconds,
                            template: pod.clone(),
                            ..Default::default()
                        }),
                    },
                }),
                ..Default::default()
            });
        }
        // The hand-off to the action-controller: the CronJob's pod, plus the Job-level settings it cannot carry.
        out.pod_templates.push(PodTemplate {
            metadata: ObjectMeta {
                annotations: Some(job_settings.annotations()),
                ..meta
            },
            template: Some(pod),
        });
    }
    out.hash = hash_children(&out);
    Ok(out)
}

/// sha256 (hex) of the rendered children, for `status.lastAppliedSpecHash`. The CronJob's pod template is the
/// template of its operation's PodTemplate, hashed once through `pod_templates`.
fn hash_children(d: &Desired) -> String {
    // One buffer hashed in one call (feeding the hasher many tiny pieces cost more than the hashing), in a
    // compact encoding that copies the scripts verbatim instead of JSON-escaping them (see crate::digest).
    let mut buf = Vec::with_capacity(16 * 1024);
    digest::encode(&mut buf, &d.config_maps);
    digest::encode(&mut buf, &d.secrets);
    digest::encode(&mut buf, &d.pod_templates);
    if let Some(cj) = &d.cron_job {
        digest::encode(&mut buf, &cj.metadata);
        if let Some(spec) = &cj.spec {
            let job = spec.job_template.spec.as_ref();
            digest::encode(
                &mut buf,
                &(
                    &spec.schedule,
                    spec.starting_deadline_seconds,
                    &spec.time_zone,
                    spec.suspend,
                    &spec.concurrency_policy,
                    spec.successful_jobs_history_limit,
                    spec.failed_jobs_history_limit,
                    &spec.job_template.metadata,
                    job.and_then(|j| j.backoff_limit),
                    job.and_then(|j| j.active_deadline_seconds),
                ),
            );
        }
    }
    hex(&Sha256::digest(&buf))
}

/// Lower-case hex of bytes (without a `format!` per byte).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Builds the executor of an action (see [`crate::action_executor`]).
pub(crate) fn action_executor(
    inputs: &Inputs,
    action: &RequestedBackupAction,
) -> Result<Executor, Error> {
    let op = action.spec.action;
    let no_script = || Error::NoScriptForOperation {
        template: inputs.template.name.clone(),
        operation: op.to_string(),
    };
    if op == Operation::Restore
        && inputs
            .template
            .restore
            .as_ref()
            .is_none_or(|s| s.trim().is_empty())
    {
        return Err(no_script());
    }
    let desired = desired_children(inputs)?;
    let pod_template = desired.pod_template(op).ok_or_else(no_script)?;
    crd_types::executor::build(pod_template, action).map_err(|e| {
        Error::InvalidInput(format!(
            "PodTemplate {} cannot run an action: {e}",
            pod_template.metadata.name.as_deref().unwrap_or_default()
        ))
    })
}

/// The env var of the token (for callers that want to show what the pod receives).
pub const TOKEN_ENV_NAME: &str = TOKEN_ENV;
/// Where the GPG key file is in the pod.
pub const GPG_KEY_FILE: &str = GPG_KEY_PATH;

#[cfg(test)]
mod tests {
    use super::is_quantity;

    #[test]
    fn kubernetes_quantities_are_accepted_and_anything_else_refused() {
        for ok in [
            "1", "0.5", ".5", "500m", "256Mi", "2Gi", "1e3", "1E-2", "+1", "100k", "5Ei",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["lots", "", "-1", "1.2.3", "1GB", "Mi", "1e", "1 Gi", "1ki"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
