//! Pure checks of a ScheduledBackup that need no other object.

use crd_types::ScheduledBackup;

use crate::error::Error;

/// The schedule must be one Kubernetes accepts once `H` is resolved (5 fields or a macro, a known time zone, no
/// `CRON_TZ=`), checked here because a CronJob the apiserver rejects would otherwise surface as an opaque apply
/// error; `overdueAfter` must parse (the admission rule already refuses what this refuses).
pub fn validate(sb: &ScheduledBackup) -> Result<(), Error> {
    let cron = &sb.spec.cron_job;
    if !cron.enabled {
        return Ok(());
    }
    let expression = cron.schedule_every.as_deref().unwrap_or_default();
    if expression.trim().is_empty() {
        // Reported as the parser words it (the admission rule requires a schedule when enabled).
        crd_types::schedule::parse_kubernetes_cron(expression, None).map_err(|e| {
            Error::InvalidSchedule(format!("spec.cronJob.scheduleEvery {expression:?}: {e}"))
        })?;
    }
    cron.schedule(
        sb.metadata.namespace.as_deref().unwrap_or_default(),
        sb.metadata.name.as_deref().unwrap_or_default(),
    )
    .map_err(|e| {
        Error::InvalidSchedule(format!("spec.cronJob.scheduleEvery {expression:?}: {e}"))
    })?;
    cron.overdue_after(crd_types::schedule::DEFAULT_OVERDUE_GRACE)
        .map(|_| ())
        .map_err(Error::InvalidSchedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original_example() -> ScheduledBackup {
        let text = include_str!("../../../tests/fixtures/original/scheduledbackup.yaml");
        serde_saphyr::from_str(text).unwrap()
    }

    fn with_schedule(schedule: &str, time_zone: Option<&str>) -> ScheduledBackup {
        let mut sb = original_example();
        sb.spec.cron_job.schedule_every = Some(schedule.into());
        sb.spec.cron_job.time_zone = time_zone.map(String::from);
        sb
    }

    fn message(sb: &ScheduledBackup) -> String {
        match validate(sb) {
            Err(e @ Error::InvalidSchedule(_)) => e.to_string(),
            other => panic!("expected InvalidSchedule, got {other:?}"),
        }
    }

    #[test]
    fn the_original_example_schedule_is_valid() {
        validate(&original_example()).unwrap();
    }

    #[test]
    fn kubernetes_schedules_and_macros_are_accepted() {
        for schedule in [
            "*/15 * * * *",
            "0 6 * * ?",
            "0 0 1,15 * MON",
            "0 0 * * 7",
            "@daily",
            "@hourly",
            "@weekly",
            "@midnight",
        ] {
            validate(&with_schedule(schedule, None)).unwrap_or_else(|e| panic!("{schedule}: {e}"));
        }
        validate(&with_schedule("0 2 * * *", Some("Europe/Berlin"))).unwrap();
    }

    #[test]
    fn six_fields_are_rejected_as_kubernetes_does() {
        assert!(
            message(&with_schedule("0 0 2 * * *", None))
                .contains("spec.cronJob.scheduleEvery \"0 0 2 * * *\"")
        );
    }

    #[test]
    fn cron_tz_prefixes_and_unknown_zones_are_rejected() {
        assert!(
            message(&with_schedule("CRON_TZ=Europe/Berlin 0 2 * * *", None)).contains("timeZone")
        );
        assert!(
            message(&with_schedule("0 2 * * *", Some("Mars/Olympus"))).contains("Mars/Olympus")
        );
    }

    #[test]
    fn spread_schedules_are_accepted_and_h_in_a_day_field_is_refused() {
        for schedule in [
            "H 2 * * *",
            "H H * * 0",
            "H/15 * * * *",
            "@daily-random",
            "@weekly-random",
        ] {
            validate(&with_schedule(schedule, Some("Europe/Berlin")))
                .unwrap_or_else(|e| panic!("{schedule}: {e}"));
        }
        let m = message(&with_schedule("0 2 H * *", None));
        assert!(m.contains("only in the minute and hour fields"), "{m}");
        let m = message(&with_schedule("@monthly-random", None));
        assert!(m.contains("@daily-random"), "{m}");
    }

    #[test]
    fn an_invalid_overdue_after_is_an_invalid_schedule_naming_the_field() {
        let mut sb = original_example();
        sb.spec.cron_job.overdue_after = Some("2 days".into());
        assert!(message(&sb).contains("spec.cronJob.overdueAfter \"2 days\""));
        sb.spec.cron_job.overdue_after = Some("26h".into());
        validate(&sb).unwrap();
    }

    #[test]
    fn a_disabled_cronjob_needs_no_valid_schedule() {
        let mut sb = with_schedule("not a schedule", None);
        sb.spec.cron_job.enabled = false;
        validate(&sb).unwrap();
    }
}
