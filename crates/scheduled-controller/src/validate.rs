//! Pure checks of a ScheduledBackup that need no other object.

use crd_types::ScheduledBackup;

use crate::error::Error;

/// The schedule must be one Kubernetes accepts (5 fields or a macro, a known time zone, no `CRON_TZ=`), checked
/// here because a CronJob the apiserver rejects would otherwise surface as an opaque apply error.
pub fn validate(sb: &ScheduledBackup) -> Result<(), Error> {
    let cron = &sb.spec.cron_job;
    if !cron.enabled {
        return Ok(());
    }
    let expression = cron.schedule_every.as_deref().unwrap_or_default();
    metrics_exporter::schedule::parse_kubernetes_cron(expression, cron.time_zone.as_deref())
        .map(|_| ())
        .map_err(|e| {
            Error::InvalidSchedule(format!("spec.cronJob.scheduleEvery {expression:?}: {e}"))
        })
}
