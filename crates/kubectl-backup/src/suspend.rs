//! `kubectl backup suspend SB` / `resume SB`: server-side apply of `spec.cronJob.suspend` with the plugin's own
//! field manager, so the plugin owns only that one field and a GitOps tool that set it shows up as a conflict
//! instead of being silently overwritten (`--force` takes it over).

use std::io::Write;

use crd_types::ScheduledBackup;
use crd_types::constants::API_VERSION;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::cli::SuspendArgs;
use crate::lookup::{self, SB_RESOURCE};
use crate::{Error, FIELD_MANAGER, Result, Session};

/// The apply configuration: only `spec.cronJob.suspend`.
pub fn apply_configuration(name: &str, suspend: bool) -> serde_json::Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "ScheduledBackup",
        "metadata": {"name": name},
        "spec": {"cronJob": {"suspend": suspend}},
    })
}

/// Sets `spec.cronJob.suspend` to `suspend`.
pub async fn set_suspended(
    session: &Session,
    args: &SuspendArgs,
    suspend: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let name = &args.scheduled_backup;
    let sb = lookup::scheduled_backup(session, name).await?;
    let api: Api<ScheduledBackup> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = args.force;
    api.patch(
        name,
        &params,
        &Patch::Apply(apply_configuration(name, suspend)),
    )
    .await
    .map_err(|e| match e {
        kube::Error::Api(status) if status.code == 409 => Error::FieldConflict {
            object: format!("scheduledbackup/{name}"),
            detail: status.message,
        },
        e => Error::api(
            e,
            format!(
                "updating ScheduledBackup {name} in namespace {}",
                session.namespace
            ),
            "patch",
            SB_RESOURCE,
        ),
    })?;
    let verb = if suspend { "suspended" } else { "resumed" };
    writeln!(out, "scheduledbackup.riotkit.org/{name} {verb}")?;
    if !sb.spec.cron_job.enabled {
        writeln!(
            out,
            "note: spec.cronJob.enabled is false, so {name} has no schedule; this only matters once it is enabled"
        )?;
    }
    Ok(())
}
