//! The controller: ScheduledBackups (and the Secrets they reference) in, key Secrets and the `GPGKeyReady`
//! condition out.
//!
//! Guarantees:
//! - an existing Secret is only ever read: never updated, patched or deleted;
//! - a missing Secret is created with a POST under its fixed name, so of two racing replicas (or a restart
//!   between generating and creating) exactly one key wins and the loser adopts it;
//! - the condition is written with server-side apply under [`field_managers::GPG_KEYGEN`], touching only
//!   `status.conditions[type=GPGKeyReady]`, and not written at all when it is already as computed, so a converged
//!   controller makes zero API writes;
//! - Warning Events are emitted when the condition changes, not on every resync.

use std::sync::Arc;
use std::time::Duration;

use controller_runtime::cache::{Watches, cached_with, touched};
use controller_runtime::index::ReverseIndex;
use controller_runtime::metrics::ControllerMetrics;
use crd_types::constants::{condition_types, field_managers, reasons};
use crd_types::{GpgKeySecretRef, KeyAlgorithm, ScheduledBackup, conditions};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use prometheus::{IntCounterVec, Opts};
use serde_json::json;
use tracing::Instrument;

use crate::error::Error;
use crate::keys::{self, Fingerprint};
use crate::secret::{self, Assessment};

/// Controller name: metrics label, Event reporter, Lease prefix (`gpg-keygen-leader`).
pub const CONTROLLER_NAME: &str = "gpg-keygen";

/// `backup_maker_gpg_keys_generated_total{algorithm}`: key pairs generated (including ones that lost a create
/// race and were discarded).
pub const KEYS_GENERATED_TOTAL: &str = "backup_maker_gpg_keys_generated_total";

/// Re-validation interval of a converged ScheduledBackup (changes arrive through the watches anyway).
const RESYNC: Duration = Duration::from_secs(3600);
/// Re-check interval after a user-caused failure; the watches normally trigger the fix first.
const USER_INPUT_RECHECK: Duration = Duration::from_secs(600);

/// Everything [`run`] needs besides the client: the shared runtime's context (namespace, concurrency, metrics,
/// registry, readiness, instance, shutdown).
pub use controller_runtime::runtime::ControllerContext as Config;

/// Shared state of all reconciles.
struct Context {
    client: Client,
    metrics: ControllerMetrics,
    keys_generated: IntCounterVec,
    events: controller_runtime::events::Publisher,
    /// Retry delays after transient failures (the shared policy of every controller).
    backoff: controller_runtime::cache::Backoff<ScheduledBackup>,
    /// Our last status write per SB, until the SB watch delivers it (no second write from a stale copy).
    written: controller_runtime::cache::LastWrite<ScheduledBackup>,
    /// Verdicts on key Secrets, valid until the Secret's next watch event.
    verdicts: Arc<crate::verdicts::Verdicts<Verdict>>,
}

/// Runs the controller until `config.shutdown` resolves.
pub async fn run(client: Client, config: Config) -> anyhow::Result<()> {
    // Every errors-by-reason series exists at 0 from start-up: dashboards show 0 and increase() sees the first error.
    config.metrics.register_reasons(crate::error::REASONS);
    let keys_generated = IntCounterVec::new(
        Opts::new(
            KEYS_GENERATED_TOTAL,
            "OpenPGP key pairs generated for key Secrets, by algorithm",
        )
        .const_label("controller", CONTROLLER_NAME),
        &["algorithm"],
    )?;
    config.registry.register(Box::new(keys_generated.clone()))?;

    let (backups, secrets): (Api<ScheduledBackup>, Api<PartialObjectMeta<Secret>>) =
        match &config.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };

    // Shared watch plumbing: readiness from the watches' lists, short retries, a restart of every watch after an
    // API server outage, and no watch error ever reaching the Controller's shared trigger backoff.
    let watches = Watches::new(
        client.clone(),
        config.health.clone(),
        config.metrics.clone(),
    );
    // Secret → the SBs using it as their key Secret, kept from the SB watch: a Secret event costs O(its users),
    // not a scan of every SB.
    let by_key_secret = Arc::new(ReverseIndex::new(key_secret_of));
    let index = by_key_secret.clone();
    let (store, backup_events) = cached_with(
        backups,
        config.shard.watch(watcher::Config::default()),
        &watches,
        move |e| index.observe(e),
    );
    // Secrets are not sharded (`--shard-selector` picks SBs only): key Secrets are the user's, unlabelled.
    // Secrets are watched as metadata only: the mapping needs names, and key material then only ever reaches
    // this process through the one GET of a referenced Secret (not every Secret of the cluster over the watch).
    let secret_events = touched(secrets, watcher::Config::default(), &watches);
    let controller = Controller::for_stream(backup_events, store.clone());
    let verdicts = Arc::new(crate::verdicts::Verdicts::default());

    let context = Arc::new(Context {
        events: controller_runtime::events::Publisher::new(
            client.clone(),
            CONTROLLER_NAME,
            config.instance.clone(),
            config.metrics.clone(),
        ),
        client,
        metrics: config.metrics.clone(),
        keys_generated,
        backoff: Default::default(),
        written: Default::default(),
        verdicts: verdicts.clone(),
    });

    let results = controller
        .watches_stream(secret_events, move |secret: PartialObjectMeta<Secret>| {
            let key = secret_key(secret.namespace().as_deref(), &secret.name_any());
            let users = by_key_secret.get(&key);
            if !users.is_empty() {
                verdicts.changed(&key);
            }
            users
        })
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(config.shutdown)
        .run(reconcile, error_policy, context);
    controller_runtime::runtime::drain(results).await;
    config.health.set_ready(false);
    Ok(())
}

/// Index key of a Secret: `namespace/name`.
fn secret_key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

/// The index key of the SB's key Secret (`gpgKeySecretRef.secretName`, in the SB's namespace).
fn key_secret_of(sb: &ScheduledBackup) -> Vec<String> {
    vec![secret_key(
        sb.namespace().as_deref(),
        &sb.spec.gpg_key_secret_ref.secret_name,
    )]
}

async fn reconcile(sb: Arc<ScheduledBackup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = sb.name_any();
    let namespace = sb.namespace().unwrap_or_default();
    let span = tracing::info_span!("reconcile", namespace = %namespace, name = %name);
    async move {
        let _timer = ctx.metrics.reconcile_timer();
        if namespace.is_empty() {
            return Err(Error::MissingNamespace { name });
        }
        // Our last status write may be newer than the cache's copy (a Secret event can come first).
        let sb = ctx.written.fresh(&sb);
        let result = reconcile_backup(&sb, &ctx, &namespace).await;
        if result.is_ok() {
            ctx.metrics.reconcile_succeeded();
        }
        if result.as_ref().map_or_else(Error::is_user_input, |_| true) {
            // A definite answer (good or bad): the next transient failure starts from the shortest backoff.
            ctx.backoff.succeeded(&ObjectRef::from_obj(&sb));
        }
        result
    }
    .instrument(span)
    .await
}

/// What the controller concluded about a ScheduledBackup's key Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// The Secret holds a usable pair.
    Valid(Fingerprint),
    /// The Secret is missing (and will not be generated); the message says why and how to fix it.
    NotFound(String),
    /// The Secret lacks configured data keys.
    Incomplete(String),
    /// The Secret's keys are unusable.
    Invalid(String),
}

impl Verdict {
    fn from_assessment(
        assessment: Assessment,
        secret: &Secret,
        reference: &GpgKeySecretRef,
    ) -> Self {
        let name = &reference.secret_name;
        match assessment {
            Assessment::Valid { fingerprint } => Verdict::Valid(fingerprint),
            Assessment::Incomplete { missing } => {
                let present = data_key_names(secret);
                Verdict::Incomplete(format!(
                    "Secret {name:?} lacks the data keys {} (an empty value counts as missing; it has: {}). \
                     gpg-keygen never modifies an existing Secret: add the armored keys under those names, or \
                     point spec.gpgKeySecretRef (secretName, privateKey, publicKey) at keys that exist",
                    quoted_list(&missing),
                    if present.is_empty() {
                        "no data".to_string()
                    } else {
                        quoted_list(&present)
                    },
                ))
            }
            Assessment::Invalid { reason } => Verdict::Invalid(format!(
                "Secret {name:?} does not hold a usable key pair under data keys {:?} (private) and {:?} (public): \
                 {reason}. gpg-keygen never modifies an existing Secret: fix the keys, or point \
                 spec.gpgKeySecretRef at another Secret",
                reference.private_key_name(),
                reference.public_key_name(),
            )),
        }
    }

    /// `(status, reason, message)` of the `GPGKeyReady` condition.
    fn condition_parts(&self, reference: &GpgKeySecretRef) -> (&'static str, &'static str, String) {
        match self {
            Verdict::Valid(fingerprint) => (
                "True",
                reasons::KEY_SECRET_VALID,
                format!(
                    "Secret {:?} holds a valid OpenPGP key pair (fingerprint {fingerprint}) under data keys {:?} \
                     (private) and {:?} (public)",
                    reference.secret_name,
                    reference.private_key_name(),
                    reference.public_key_name(),
                ),
            ),
            Verdict::NotFound(m) => ("False", reasons::KEY_SECRET_NOT_FOUND, m.clone()),
            Verdict::Incomplete(m) => ("False", reasons::KEY_SECRET_INCOMPLETE, m.clone()),
            Verdict::Invalid(m) => ("False", reasons::KEY_SECRET_INVALID, m.clone()),
        }
    }

    fn into_result(self) -> Result<Action, Error> {
        match self {
            Verdict::Valid(_) => Ok(Action::requeue(RESYNC)),
            Verdict::NotFound(message) => Err(Error::KeySecretNotFound { message }),
            Verdict::Incomplete(message) => Err(Error::KeySecretIncomplete { message }),
            Verdict::Invalid(message) => Err(Error::KeySecretInvalid { message }),
        }
    }
}

fn data_key_names(secret: &Secret) -> Vec<String> {
    let mut names: Vec<String> = secret
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(secret.string_data.iter().flat_map(|d| d.keys()))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn reconcile_backup(
    sb: &ScheduledBackup,
    ctx: &Context,
    namespace: &str,
) -> Result<Action, Error> {
    if sb.metadata.deletion_timestamp.is_some() {
        // Nothing to do for a backup definition on its way out; its key Secret stays (it is not owned).
        return Ok(Action::await_change());
    }
    let reference = &sb.spec.gpg_key_secret_ref;
    let key = secret_key(Some(namespace), &reference.secret_name);
    // The verdict depends on the Secret and on which data keys this SB reads from it.
    let question = format!(
        "{key}\n{}\n{}",
        reference.private_key_name(),
        reference.public_key_name()
    );
    // A resync of a converged SB reads nothing and parses no key: the last verdict holds until the Secret's
    // next watch event.
    if let Some(verdict) = ctx.verdicts.get(&key, &question) {
        report(sb, ctx, namespace, reference, &verdict).await?;
        return verdict.into_result();
    }
    let epoch = ctx.verdicts.epoch(&key);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let existing = secrets
        .get_opt(&reference.secret_name)
        .await
        .map_err(|source| Error::ReadSecret {
            namespace: namespace.to_string(),
            name: reference.secret_name.clone(),
            error: source,
        })?;

    let verdict = match existing {
        Some(secret) => {
            let verdict =
                Verdict::from_assessment(secret::assess(&secret, reference), &secret, reference);
            ctx.verdicts
                .remember(&key, question, epoch, verdict.clone());
            verdict
        }
        None if !reference.create_if_not_exists => Verdict::NotFound(format!(
            "Secret {:?} does not exist and spec.gpgKeySecretRef.createIfNotExists is false: create it with the \
             armored keys under data keys {:?} (private) and {:?} (public), or set createIfNotExists: true to have \
             a key pair generated",
            reference.secret_name,
            reference.private_key_name(),
            reference.public_key_name(),
        )),
        None => match reference.email.as_deref().filter(|e| !e.trim().is_empty()) {
            None => Verdict::NotFound(format!(
                "Secret {:?} does not exist and cannot be generated: spec.gpgKeySecretRef.email is empty; set it \
                 (it becomes the key's user id)",
                reference.secret_name,
            )),
            Some(email) => {
                create_key_secret(sb, ctx, &secrets, namespace, reference, email).await?
            }
        },
    };

    report(sb, ctx, namespace, reference, &verdict).await?;
    verdict.into_result()
}

/// Generates a key pair off the async runtime and creates the Secret; on AlreadyExists adopts what is there.
async fn create_key_secret(
    sb: &ScheduledBackup,
    ctx: &Context,
    secrets: &Api<Secret>,
    namespace: &str,
    reference: &GpgKeySecretRef,
    email: &str,
) -> Result<Verdict, Error> {
    let algorithm = reference.algorithm.unwrap_or_default();
    let key = {
        let email = email.to_string();
        tokio::task::spawn_blocking(move || keys::generate(&email, algorithm))
            .await
            .map_err(|e| Error::GenerationAborted {
                namespace: namespace.to_string(),
                name: reference.secret_name.clone(),
                detail: e.to_string(),
            })?
            .map_err(Error::Generate)?
    };
    ctx.keys_generated
        .with_label_values(&[algorithm.as_str()])
        .inc();

    let desired = secret::desired_secret(namespace, reference, email, &key);
    ctx.metrics.api_write("secrets", "create");
    match secrets.create(&PostParams::default(), &desired).await {
        Ok(_) => {
            tracing::info!(
                secret = %reference.secret_name,
                fingerprint = %key.fingerprint,
                algorithm = algorithm.as_str(),
                "created key Secret"
            );
            publish(
                ctx,
                sb,
                EventType::Normal,
                reasons::KEY_SECRET_CREATED,
                created_note(reference, &key.fingerprint, algorithm),
            )
            .await;
            Ok(Verdict::Valid(key.fingerprint))
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() || status.code == 409 => {
            // Someone (another replica, a user, our own earlier attempt) created it first: theirs wins, ours is
            // dropped unseen, so there is only ever one key.
            tracing::info!(secret = %reference.secret_name, "key Secret appeared concurrently; adopting it");
            let existing = secrets
                .get_opt(&reference.secret_name)
                .await
                .map_err(|source| Error::ReadSecret {
                    namespace: namespace.to_string(),
                    name: reference.secret_name.clone(),
                    error: source,
                })?
                .ok_or_else(|| Error::SecretVanished {
                    namespace: namespace.to_string(),
                    name: reference.secret_name.clone(),
                })?;
            Ok(Verdict::from_assessment(
                secret::assess(&existing, reference),
                &existing,
                reference,
            ))
        }
        Err(source) => Err(Error::CreateSecret {
            namespace: namespace.to_string(),
            name: reference.secret_name.clone(),
            error: source,
        }),
    }
}

fn created_note(
    reference: &GpgKeySecretRef,
    fingerprint: &Fingerprint,
    algorithm: KeyAlgorithm,
) -> String {
    format!(
        "Generated a {} key pair (fingerprint {fingerprint}) into Secret {:?}. The Secret is not owned by this \
         ScheduledBackup and survives its deletion: back it up, it is the only way to decrypt the backups",
        algorithm.as_str(),
        reference.secret_name,
    )
}

/// Writes the `GPGKeyReady` condition when it differs from the stored one, and emits a Warning Event when a
/// failing condition is new or changed.
async fn report(
    sb: &ScheduledBackup,
    ctx: &Context,
    namespace: &str,
    reference: &GpgKeySecretRef,
    verdict: &Verdict,
) -> Result<(), Error> {
    let (status, reason, message) = verdict.condition_parts(reference);
    let previous: &[Condition] = sb
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let desired = conditions::condition(
        previous,
        condition_types::GPG_KEY_READY,
        status,
        reason,
        message,
        sb.metadata.generation,
        Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let current = conditions::find(previous, condition_types::GPG_KEY_READY);
    if current == Some(&desired) {
        return Ok(());
    }
    let meaning_changed = current.is_none_or(|c| {
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
            != (
                desired.status.as_str(),
                desired.reason.as_str(),
                desired.message.as_str(),
            )
    });

    let api: Api<ScheduledBackup> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.metrics.api_write("scheduledbackups/status", "apply");
    let written = api
        .patch_status(
            &sb.name_any(),
            &PatchParams::apply(field_managers::GPG_KEYGEN).force(),
            &Patch::Apply(status_patch(&desired)),
        )
        .await
        .map_err(|source| Error::ApplyStatus {
            namespace: namespace.to_string(),
            name: sb.name_any(),
            error: source,
        })?;
    ctx.written.remember(&written);

    if meaning_changed && desired.status == "False" {
        publish(ctx, sb, EventType::Warning, reason, desired.message.clone()).await;
    }
    Ok(())
}

/// The apply body: only our condition, so the scheduled-controller's conditions (other list-map keys) and
/// fields stay theirs.
fn status_patch(condition: &Condition) -> serde_json::Value {
    json!({
        "apiVersion": ScheduledBackup::api_version(&()),
        "kind": ScheduledBackup::kind(&()),
        "status": { "conditions": [condition] },
    })
}

/// Publishes an Event about the ScheduledBackup. Best effort: a missing Event must not block the condition, which
/// carries the same information.
async fn publish(
    ctx: &Context,
    sb: &ScheduledBackup,
    type_: EventType,
    reason: &str,
    note: String,
) {
    ctx.events
        .publish(sb, type_, reason, "ReconcileKeySecret", note)
        .await;
}

fn error_policy(sb: Arc<ScheduledBackup>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.reason());
    if error.is_user_input() {
        // Reported in the GPGKeyReady condition and an Event; the watches bring the fix.
        tracing::info!(reason = error.reason(), "{error}");
        return Action::requeue(USER_INPUT_RECHECK);
    }
    let delay = ctx.backoff.failed(ObjectRef::from_obj(sb.as_ref()));
    tracing::warn!(reason = error.reason(), retry_in = ?delay, "{error}");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests;
