//! Kubernetes CronJob schedule parsing and evaluation (croner + jiff).
//!
//! Kubernetes takes 5 fields (minute hour day-of-month month day-of-week) or one of the macros
//! `@yearly`/`@annually`/`@monthly`/`@weekly`/`@daily`/`@midnight`/`@hourly`, evaluated in
//! `spec.timeZone` (IANA name). It rejects `CRON_TZ=`/`TZ=` prefixes. This module accepts exactly
//! that, so the scheduled-controller can validate `spec.cronJob.scheduleEvery` with it before it
//! creates a CronJob the API server would refuse, and the exporter computes the next and previous
//! expected runs from the same definition.
//!
//! Day-of-month and day-of-week combine with OR when both are restricted, as in Kubernetes (Vixie
//! cron). Around DST changes the wall-clock schedule is followed: a time that does not exist on a
//! spring-forward day runs once at the first instant after the gap, and a time that exists twice on a
//! fall-back day runs once (at its first occurrence).

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Why a schedule or time zone is not accepted. Messages name what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is empty.
    #[error(
        "the schedule is empty: set a 5-field cron expression such as \"0 2 * * *\" (minute hour day-of-month month day-of-week)"
    )]
    Empty,
    /// Not 5 fields.
    #[error(
        "{given} fields given in {expr:?}: Kubernetes CronJobs take 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\"{hint}"
    )]
    FieldCount {
        /// The expression.
        expr: String,
        /// Number of whitespace-separated fields found.
        given: usize,
        /// Extra advice for common mistakes (seconds or year fields).
        hint: &'static str,
    },
    /// `CRON_TZ=` or `TZ=` prefix.
    #[error(
        "{expr:?}: the {prefix} prefix is rejected by Kubernetes; remove it and use spec.cronJob.timeZone (e.g. timeZone: \"Europe/Berlin\")"
    )]
    TimeZonePrefix {
        /// The expression.
        expr: String,
        /// `CRON_TZ=` or `TZ=`.
        prefix: &'static str,
    },
    /// An `@`-macro Kubernetes does not accept.
    #[error(
        "{expr:?} is not a Kubernetes schedule macro: use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, a spread macro (@hourly-random, @daily-random, @weekly-random), or 5 fields such as \"*/30 * * * *\""
    )]
    UnknownMacro {
        /// The expression.
        expr: String,
    },
    /// `@every <duration>`: accepted by Kubernetes, but it runs relative to when the CronJob controller last
    /// looked, not at fixed times, so no next run or overdue moment can be computed for it.
    #[error(
        "{expr:?} runs at intervals counted from whenever the CronJob controller last ran it, not at fixed times, so this operator cannot tell when the next run is due or whether one is overdue: write the interval as 5 fields instead, e.g. \"*/5 * * * *\" (every 5 minutes) or \"0 */6 * * *\" (every 6 hours)"
    )]
    Every {
        /// The expression.
        expr: String,
    },
    /// Quartz/croner extensions (`L`, `W`, `#`) Kubernetes does not accept.
    #[error(
        "{expr:?} uses {what}, which Kubernetes cron does not support: use plain numbers, names (MON, JAN), ranges (1-5), lists (1,15) and steps (*/10)"
    )]
    UnsupportedSyntax {
        /// The expression.
        expr: String,
        /// Which extension.
        what: &'static str,
    },
    /// A field is out of range or malformed.
    #[error(
        "{expr:?} is not a valid cron expression: {detail}; fields are minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or JAN-DEC) day-of-week (0-6 or SUN-SAT)"
    )]
    Invalid {
        /// The expression.
        expr: String,
        /// The parser's explanation.
        detail: String,
    },
    /// The expression is valid but can never fire (e.g. `0 0 30 2 *`, February 30th).
    #[error(
        "{expr:?} never fires (e.g. February 30th): pick a day that exists in the chosen month"
    )]
    NeverFires {
        /// The expression.
        expr: String,
    },
    /// `H` where it is not accepted, or in a form that is not `H` or `H/n` (see [`crate::spread`]).
    #[error(
        "{expr:?}: {detail}; H picks a minute or hour from the ScheduledBackup's namespace/name, e.g. \"H 2 * * *\" (once between 02:00 and 02:59) or \"H/15 * * * *\""
    )]
    Spread {
        /// The expression.
        expr: String,
        /// What is wrong.
        detail: String,
    },
    /// Unknown time zone name.
    #[error(
        "time zone {zone:?} is unknown: spec.cronJob.timeZone takes an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
    )]
    UnknownTimeZone {
        /// The name given.
        zone: String,
    },
}

impl ScheduleError {
    /// Stable CamelCase label for metrics, events and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            ScheduleError::Empty => "EmptySchedule",
            ScheduleError::FieldCount { .. } => "WrongFieldCount",
            ScheduleError::TimeZonePrefix { .. } => "TimeZonePrefix",
            ScheduleError::UnknownMacro { .. } => "UnknownMacro",
            ScheduleError::Every { .. } => "IntervalSchedule",
            ScheduleError::UnsupportedSyntax { .. } => "UnsupportedCronSyntax",
            ScheduleError::Invalid { .. } => "InvalidCronExpression",
            ScheduleError::NeverFires { .. } => "ScheduleNeverFires",
            ScheduleError::Spread { .. } => "InvalidSpread",
            ScheduleError::UnknownTimeZone { .. } => "UnknownTimeZone",
        }
    }
}

/// A parsed Kubernetes CronJob schedule bound to its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: TimeZone,
    expr: String,
}

/// Parses a Kubernetes CronJob schedule (`spec.schedule` / `spec.cronJob.scheduleEvery`) with its
/// optional `timeZone` (UTC when `None` or empty, like the scheduled-controller's CronJobs).
pub fn parse_kubernetes_cron(
    expr: &str,
    time_zone: Option<&str>,
) -> Result<Schedule, ScheduleError> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(ScheduleError::Empty);
    }
    for prefix in ["CRON_TZ=", "TZ="] {
        if trimmed.to_ascii_uppercase().starts_with(prefix) {
            return Err(ScheduleError::TimeZonePrefix {
                expr: expr.to_owned(),
                prefix,
            });
        }
    }
    if trimmed.to_ascii_lowercase().starts_with("@every") {
        return Err(ScheduleError::Every {
            expr: expr.to_owned(),
        });
    }
    let five_fields = if trimmed.starts_with('@') {
        match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            _ => {
                return Err(ScheduleError::UnknownMacro {
                    expr: expr.to_owned(),
                });
            }
        }
    } else {
        trimmed
    };
    let given = five_fields.split_whitespace().count();
    if given != 5 {
        let hint = match given {
            6 => " (a leading seconds field or a trailing year field is not supported)",
            7 => " (seconds and year fields are not supported)",
            _ => "",
        };
        return Err(ScheduleError::FieldCount {
            expr: expr.to_owned(),
            given,
            hint,
        });
    }
    let upper = five_fields.to_ascii_uppercase();
    for field in upper.split_whitespace() {
        let what = if field.contains('#') {
            Some("'#' (nth weekday)")
        } else if field.contains('W') && !field.contains("WED") {
            Some("'W' (nearest weekday)")
        } else if field.split([',', '-', '/']).any(|p| {
            p == "L" || p.ends_with('L') && p[..p.len() - 1].chars().all(|c| c.is_ascii_digit())
        }) {
            Some("'L' (last day)")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(ScheduleError::UnsupportedSyntax {
                expr: expr.to_owned(),
                what,
            });
        }
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(five_fields)
        .map_err(|_| ScheduleError::Invalid {
            expr: expr.to_owned(),
            // The parser's own text ("Component error: Number out of bounds.") names neither the field nor the
            // range, so the fields are checked here to say which one is wrong.
            detail: field_problem(five_fields)
                .unwrap_or_else(|| "it does not follow cron syntax".to_owned()),
        })?;
    let zone = match time_zone.map(str::trim).filter(|z| !z.is_empty()) {
        None => TimeZone::UTC,
        // "Local" would make the schedule depend on the node; Kubernetes refuses it too.
        Some(z) if z.eq_ignore_ascii_case("local") => {
            return Err(ScheduleError::UnknownTimeZone { zone: z.to_owned() });
        }
        Some(z) => {
            TimeZone::get(z).map_err(|_| ScheduleError::UnknownTimeZone { zone: z.to_owned() })?
        }
    };
    let schedule = Schedule {
        cron,
        zone,
        expr: expr.to_owned(),
    };
    // Every valid day/month combination recurs within 8 years (Feb 29th); if there is no run then,
    // there never is one. A fixed start keeps validation deterministic.
    let start: Timestamp = "2000-01-01T00:00:00Z".parse().expect("constant timestamp");
    match schedule.next_after(start) {
        Some(next) if next.duration_since(start).as_hours() < 24 * 366 * 9 => Ok(schedule),
        _ => Err(ScheduleError::NeverFires {
            expr: expr.to_owned(),
        }),
    }
}

/// Which field of a 5-field expression is out of range or malformed, in words.
fn field_problem(five_fields: &str) -> Option<String> {
    const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
        ("minute", 0, 59, &[]),
        ("hour", 0, 23, &[]),
        ("day-of-month", 1, 31, &[]),
        (
            "month",
            1,
            12,
            &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
        ),
        (
            "day-of-week",
            0,
            7,
            &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        ),
    ];
    for (field, (name, min, max, names)) in five_fields.split_whitespace().zip(FIELDS) {
        let value = |v: &str| -> Result<u32, String> {
            let upper = v.to_ascii_uppercase();
            if let Some(i) = names.iter().position(|n| *n == upper) {
                return Ok(i as u32 + min);
            }
            match v.parse::<u32>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                Ok(n) => Err(format!("{name} {n} is out of range {min}-{max}")),
                Err(_) => Err(format!(
                    "{name} field {field:?} contains {v:?}, which is not a number{}",
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(" or a name such as {}", names[0])
                    }
                )),
            }
        };
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            if let Some(step) = step {
                match step.parse::<u32>() {
                    Ok(0) => {
                        return Some(format!(
                            "{name} step in {field:?} is 0; a step must be at least 1"
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => return Some(format!("{name} step in {field:?} is not a number")),
                }
            }
            if range == "*" || range == "?" {
                continue;
            }
            let (low, high) = match range.split_once('-') {
                Some((a, b)) => (a, Some(b)),
                None => (range, None),
            };
            let low = match value(low) {
                Ok(n) => n,
                Err(e) => return Some(e),
            };
            if let Some(high) = high {
                match value(high) {
                    Ok(h) if h < low => {
                        return Some(format!(
                            "{name} range {range:?} runs backwards; write the smaller number first"
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => return Some(e),
                }
            }
        }
    }
    None
}

impl Schedule {
    /// The first scheduled run strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let zoned = t.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The previous expected run: the latest scheduled run at or before `t`.
    pub fn previous_before(&self, t: Timestamp) -> Option<Timestamp> {
        let zoned = t.to_zoned(self.zone.clone());
        self.cron
            .find_previous_occurrence(&zoned, true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// The time zone the schedule is evaluated in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.zone
    }
}

/// The grace of the default overdue rule: one hour after the run that should have succeeded.
pub const DEFAULT_OVERDUE_GRACE: SignedDuration = SignedDuration::from_hours(1);

/// When a missing success makes a schedule overdue (`spec.cronJob.overdueAfter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverdueAfter {
    /// The default: the first expected run after the last success (or, before any success, the first expected
    /// run at or after creation), plus this grace. For a run that succeeds shortly after its scheduled time that is
    /// one schedule interval plus the grace after the success, and it follows irregular schedules (a weekday-only
    /// backup is not overdue on Sunday).
    NextRunPlus(SignedDuration),
    /// `spec.cronJob.overdueAfter`: this long after the last success (or after creation, before any success).
    Fixed(SignedDuration),
}

/// The moment a schedule becomes overdue: from then on, until a new success, no run succeeded within the
/// allowed time. `None` when it never becomes overdue (a schedule without a next run).
///
/// Both the exporter (`backup_maker_backup_overdue`) and the scheduled-controller (the `Overdue` condition and
/// the requeue at the exact moment it flips) use this, so they agree to the second. `created` is the object's
/// creation time: nothing is overdue for runs expected before it existed.
pub fn overdue_deadline(
    schedule: &Schedule,
    policy: OverdueAfter,
    last_success: Option<Timestamp>,
    created: Timestamp,
) -> Option<Timestamp> {
    match policy {
        OverdueAfter::Fixed(after) => last_success.unwrap_or(created).checked_add(after).ok(),
        OverdueAfter::NextRunPlus(grace) => {
            // A success exactly at an expected run covers it; before any success the first run at or after
            // creation is the one that must succeed.
            let expected = match last_success {
                Some(success) => schedule.next_after(success)?,
                None => {
                    let just_before = created
                        .checked_sub(SignedDuration::from_nanos(1))
                        .unwrap_or(created);
                    schedule.next_after(just_before)?
                }
            };
            expected.checked_add(grace).ok()
        }
    }
}

/// Whether a schedule is overdue at `now` (see [`overdue_deadline`]): the deadline has been reached.
pub fn is_overdue_at(
    schedule: &Schedule,
    policy: OverdueAfter,
    last_success: Option<Timestamp>,
    created: Timestamp,
    now: Timestamp,
) -> bool {
    overdue_deadline(schedule, policy, last_success, created)
        .is_some_and(|deadline| now >= deadline)
}

/// [`is_overdue_at`] with the default rule and this grace: the latest run that should have finished by now
/// (scheduled at least `grace` ago, and not before the object existed) has no success at or after it.
pub fn is_overdue(
    schedule: &Schedule,
    last_success: Option<Timestamp>,
    created: Timestamp,
    now: Timestamp,
    grace: SignedDuration,
) -> bool {
    is_overdue_at(
        schedule,
        OverdueAfter::NextRunPlus(grace),
        last_success,
        created,
        now,
    )
}

/// Parses `spec.cronJob.overdueAfter`: hours, minutes and seconds (`26h`, `90m`, `1h30m`, `45s`), more than zero.
pub fn parse_overdue_after(text: &str) -> Result<SignedDuration, String> {
    let problem = || {
        format!(
            "spec.cronJob.overdueAfter {text:?} is not a positive duration of hours, minutes and seconds such as \"26h\", \"90m\" or \"1h30m\""
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(problem());
    }
    let mut total = SignedDuration::ZERO;
    let mut last_unit = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(problem)?;
        let number: i64 = rest[..digits].parse().map_err(|_| problem())?;
        let (unit, seconds) = match rest[digits..].chars().next() {
            Some('h') => (1, 3600),
            Some('m') => (2, 60),
            Some('s') => (3, 1),
            _ => return Err(problem()),
        };
        // Each unit at most once, largest first, like the admission rule.
        if unit <= last_unit {
            return Err(problem());
        }
        last_unit = unit;
        let part = number
            .checked_mul(seconds)
            .map(SignedDuration::from_secs)
            .ok_or_else(problem)?;
        total = total.checked_add(part).ok_or_else(problem)?;
        rest = &rest[digits + 1..];
    }
    if total.is_zero() {
        return Err(problem());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(expr: &str, tz: Option<&str>, after: &str) -> Timestamp {
        parse_kubernetes_cron(expr, tz)
            .unwrap()
            .next_after(ts(after))
            .unwrap()
    }

    fn prev(expr: &str, tz: Option<&str>, at: &str) -> Timestamp {
        parse_kubernetes_cron(expr, tz)
            .unwrap()
            .previous_before(ts(at))
            .unwrap()
    }

    #[test]
    fn utc_is_the_default_zone() {
        assert_eq!(
            next("0 2 * * *", None, "2025-01-01T02:00:00Z"),
            ts("2025-01-02T02:00:00Z")
        );
        assert_eq!(
            next("0 2 * * *", Some(""), "2025-01-01T01:59:00Z"),
            ts("2025-01-01T02:00:00Z")
        );
    }

    #[test]
    fn the_time_zone_shifts_the_run_to_local_wall_time() {
        // 02:00 in Berlin is 01:00 UTC in winter, 00:00 UTC in summer.
        assert_eq!(
            next("0 2 * * *", Some("Europe/Berlin"), "2025-01-10T12:00:00Z"),
            ts("2025-01-11T01:00:00Z")
        );
        assert_eq!(
            next("0 2 * * *", Some("Europe/Berlin"), "2025-07-10T12:00:00Z"),
            ts("2025-07-11T00:00:00Z")
        );
        assert_eq!(
            next(
                "0 2 * * *",
                Some("America/New_York"),
                "2025-07-10T12:00:00Z"
            ),
            ts("2025-07-11T06:00:00Z")
        );
    }

    #[test]
    fn previous_expected_run_is_inclusive() {
        assert_eq!(
            prev("0 2 * * *", None, "2025-01-01T02:00:00Z"),
            ts("2025-01-01T02:00:00Z")
        );
        assert_eq!(
            prev("0 2 * * *", None, "2025-01-01T01:59:59Z"),
            ts("2024-12-31T02:00:00Z")
        );
        assert_eq!(
            prev("30 1 * * *", Some("Europe/Berlin"), "2025-01-01T12:00:00Z"),
            ts("2025-01-01T00:30:00Z")
        );
    }

    #[test]
    fn spring_forward_gap_runs_once_right_after_the_gap() {
        // Europe/Berlin 2025-03-30: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        let s = parse_kubernetes_cron("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let runs: Vec<Timestamp> =
            std::iter::successors(s.next_after(ts("2025-03-28T12:00:00Z")), |t| {
                s.next_after(*t)
            })
            .take(3)
            .collect();
        assert_eq!(runs[0], ts("2025-03-29T01:30:00Z")); // 02:30 CET
        assert_eq!(runs[1], ts("2025-03-30T01:00:00Z")); // 03:00 CEST: the first instant after the gap
        assert_eq!(runs[2], ts("2025-03-31T00:30:00Z")); // 02:30 CEST
        // The previous expected run seen from inside that day is the gap run.
        assert_eq!(
            s.previous_before(ts("2025-03-30T10:00:00Z")),
            Some(ts("2025-03-30T01:00:00Z"))
        );
    }

    #[test]
    fn fall_back_repeated_hour_runs_once() {
        // Europe/Berlin 2025-10-26: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let s = parse_kubernetes_cron("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let runs: Vec<Timestamp> =
            std::iter::successors(s.next_after(ts("2025-10-25T12:00:00Z")), |t| {
                s.next_after(*t)
            })
            .take(2)
            .collect();
        assert_eq!(runs[0], ts("2025-10-26T00:30:00Z")); // first 02:30 (CEST)
        assert_eq!(runs[1], ts("2025-10-27T01:30:00Z")); // next day 02:30 CET: no second run at 01:30Z on the 26th
    }

    #[test]
    fn hourly_schedule_across_fall_back_follows_wall_clock() {
        let s = parse_kubernetes_cron("0 * * * *", Some("Europe/Berlin")).unwrap();
        let mut t = ts("2025-10-25T23:30:00Z");
        let mut runs = Vec::new();
        for _ in 0..4 {
            t = s.next_after(t).unwrap();
            runs.push(t);
        }
        // Strictly increasing, never more than an hour apart.
        for w in runs.windows(2) {
            assert!(w[1] > w[0]);
            assert!(
                w[1].duration_since(w[0]) <= SignedDuration::from_hours(1),
                "{runs:?}"
            );
        }
    }

    #[test]
    fn every_kubernetes_macro_is_accepted() {
        let after = "2025-05-15T10:20:00Z"; // a Thursday
        assert_eq!(next("@hourly", None, after), ts("2025-05-15T11:00:00Z"));
        assert_eq!(next("@daily", None, after), ts("2025-05-16T00:00:00Z"));
        assert_eq!(next("@midnight", None, after), ts("2025-05-16T00:00:00Z"));
        assert_eq!(next("@weekly", None, after), ts("2025-05-18T00:00:00Z")); // Sunday
        assert_eq!(next("@monthly", None, after), ts("2025-06-01T00:00:00Z"));
        assert_eq!(next("@yearly", None, after), ts("2026-01-01T00:00:00Z"));
        assert_eq!(next("@annually", None, after), ts("2026-01-01T00:00:00Z"));
        assert_eq!(
            next("@DAILY", Some("Europe/Berlin"), after),
            ts("2025-05-15T22:00:00Z")
        );
    }

    #[test]
    fn names_ranges_steps_and_the_default_schedule_parse() {
        assert_eq!(
            next("00 02 * * *", None, "2025-01-01T00:00:00Z"),
            ts("2025-01-01T02:00:00Z")
        );
        assert_eq!(
            next("*/15 * * * *", None, "2025-01-01T00:01:00Z"),
            ts("2025-01-01T00:15:00Z")
        );
        assert_eq!(
            next("0 3 * * MON-FRI", None, "2025-05-16T04:00:00Z"),
            ts("2025-05-19T03:00:00Z")
        );
        assert_eq!(
            next("0 0 1 JAN,JUL *", None, "2025-02-01T00:00:00Z"),
            ts("2025-07-01T00:00:00Z")
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_with_or() {
        // The 13th OR any Friday, as Kubernetes/Vixie cron: Friday 2025-06-06 comes before the 13th.
        assert_eq!(
            next("0 0 13 * 5", None, "2025-06-01T00:00:00Z"),
            ts("2025-06-06T00:00:00Z")
        );
    }

    #[test]
    fn six_fields_are_rejected_with_a_hint() {
        let e = parse_kubernetes_cron("0 0 2 * * *", None).unwrap_err();
        assert_eq!(e.reason(), "WrongFieldCount");
        let msg = e.to_string();
        assert!(msg.contains("6 fields given"), "{msg}");
        assert!(
            msg.contains(
                "Kubernetes CronJobs take 5 fields (minute hour day-of-month month day-of-week)"
            ),
            "{msg}"
        );
        assert!(msg.contains("seconds"), "{msg}");
        assert_eq!(
            parse_kubernetes_cron("0 2 *", None).unwrap_err().reason(),
            "WrongFieldCount"
        );
    }

    #[test]
    fn cron_tz_prefix_is_rejected_pointing_to_time_zone_field() {
        for expr in [
            "CRON_TZ=Europe/Berlin 0 2 * * *",
            "TZ=UTC 0 2 * * *",
            "cron_tz=UTC 0 2 * * *",
        ] {
            let e = parse_kubernetes_cron(expr, None).unwrap_err();
            assert_eq!(e.reason(), "TimeZonePrefix", "{expr}");
            assert!(
                e.to_string()
                    .contains("rejected by Kubernetes; remove it and use spec.cronJob.timeZone"),
                "{e}"
            );
        }
    }

    #[test]
    fn unknown_macros_and_quartz_extensions_are_rejected() {
        assert_eq!(
            parse_kubernetes_cron("@every 1h", None)
                .unwrap_err()
                .reason(),
            "IntervalSchedule"
        );
        assert_eq!(
            parse_kubernetes_cron("@reboot", None).unwrap_err().reason(),
            "UnknownMacro"
        );
        assert_eq!(
            parse_kubernetes_cron("0 0 L * *", None)
                .unwrap_err()
                .reason(),
            "UnsupportedCronSyntax"
        );
        assert_eq!(
            parse_kubernetes_cron("0 0 * * 5L", None)
                .unwrap_err()
                .reason(),
            "UnsupportedCronSyntax"
        );
        assert_eq!(
            parse_kubernetes_cron("0 0 15W * *", None)
                .unwrap_err()
                .reason(),
            "UnsupportedCronSyntax"
        );
        assert_eq!(
            parse_kubernetes_cron("0 0 * * 5#2", None)
                .unwrap_err()
                .reason(),
            "UnsupportedCronSyntax"
        );
        // WED contains a W but is a plain day name.
        assert!(parse_kubernetes_cron("0 0 * * WED", None).is_ok());
    }

    #[test]
    fn out_of_range_fields_and_impossible_dates_are_rejected() {
        let e = parse_kubernetes_cron("61 2 * * *", None).unwrap_err();
        assert_eq!(e.reason(), "InvalidCronExpression");
        assert!(e.to_string().contains("minute (0-59)"), "{e}");
        assert_eq!(
            parse_kubernetes_cron("0 0 30 2 *", None)
                .unwrap_err()
                .reason(),
            "ScheduleNeverFires"
        );
        assert!(
            parse_kubernetes_cron("0 0 29 2 *", None).is_ok(),
            "Feb 29th exists in leap years"
        );
        assert_eq!(
            parse_kubernetes_cron("   ", None).unwrap_err().reason(),
            "EmptySchedule"
        );
    }

    #[test]
    fn unknown_time_zones_are_rejected() {
        let e = parse_kubernetes_cron("0 2 * * *", Some("Europe/Atlantis")).unwrap_err();
        assert_eq!(e.reason(), "UnknownTimeZone");
        assert!(e.to_string().contains("IANA name"), "{e}");
        assert_eq!(
            parse_kubernetes_cron("0 2 * * *", Some("Local"))
                .unwrap_err()
                .reason(),
            "UnknownTimeZone"
        );
    }

    const HOUR: SignedDuration = SignedDuration::from_hours(1);

    #[test]
    fn success_after_the_previous_expected_run_is_not_overdue() {
        let s = parse_kubernetes_cron("0 2 * * *", None).unwrap();
        let created = ts("2025-01-01T00:00:00Z");
        let now = ts("2025-01-10T12:00:00Z");
        assert!(!is_overdue(
            &s,
            Some(ts("2025-01-10T02:05:00Z")),
            created,
            now,
            HOUR
        ));
        assert!(is_overdue(
            &s,
            Some(ts("2025-01-09T02:05:00Z")),
            created,
            now,
            HOUR
        ));
    }

    #[test]
    fn grace_period_delays_overdue() {
        let s = parse_kubernetes_cron("0 2 * * *", None).unwrap();
        let created = ts("2025-01-01T00:00:00Z");
        let last = Some(ts("2025-01-09T02:05:00Z"));
        // The 10th's run is expected at 02:00; within the hour of grace it is not overdue yet.
        assert!(!is_overdue(
            &s,
            last,
            created,
            ts("2025-01-10T02:59:00Z"),
            HOUR
        ));
        assert!(is_overdue(
            &s,
            last,
            created,
            ts("2025-01-10T03:00:00Z"),
            HOUR
        ));
    }

    #[test]
    fn never_succeeded_is_overdue_only_after_the_first_expected_run_plus_grace() {
        let s = parse_kubernetes_cron("0 2 * * *", None).unwrap();
        let created = ts("2025-01-10T01:00:00Z");
        assert!(!is_overdue(
            &s,
            None,
            created,
            ts("2025-01-10T02:30:00Z"),
            HOUR
        ));
        assert!(is_overdue(
            &s,
            None,
            created,
            ts("2025-01-10T03:01:00Z"),
            HOUR
        ));
        // Created after today's run: not overdue until tomorrow's run plus grace.
        let created = ts("2025-01-10T02:30:00Z");
        assert!(!is_overdue(
            &s,
            None,
            created,
            ts("2025-01-11T02:59:00Z"),
            HOUR
        ));
        assert!(is_overdue(
            &s,
            None,
            created,
            ts("2025-01-11T03:00:00Z"),
            HOUR
        ));
    }

    #[test]
    fn overdue_is_evaluated_in_the_schedules_time_zone() {
        // 02:00 Berlin = 01:00Z in winter; success at 01:10Z covers it, a UTC reading (02:00Z) would not.
        let s = parse_kubernetes_cron("0 2 * * *", Some("Europe/Berlin")).unwrap();
        let created = ts("2025-01-01T00:00:00Z");
        let grace = SignedDuration::from_mins(30);
        let last = Some(ts("2025-01-10T01:10:00Z"));
        let now = ts("2025-01-10T03:00:00Z");
        assert!(!is_overdue(&s, last, created, now, grace));
        let utc = parse_kubernetes_cron("0 2 * * *", None).unwrap();
        assert!(is_overdue(&utc, last, created, now, grace));
    }

    #[test]
    fn overdue_across_the_spring_forward_day() {
        // The gap run on 2025-03-30 is expected at 01:00Z (03:00 CEST). A success from the day before
        // is overdue after 02:00Z with one hour of grace.
        let s = parse_kubernetes_cron("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let created = ts("2025-01-01T00:00:00Z");
        let last = Some(ts("2025-03-29T01:40:00Z"));
        assert!(!is_overdue(
            &s,
            last,
            created,
            ts("2025-03-30T01:59:00Z"),
            HOUR
        ));
        assert!(is_overdue(
            &s,
            last,
            created,
            ts("2025-03-30T02:00:00Z"),
            HOUR
        ));
        assert!(!is_overdue(
            &s,
            Some(ts("2025-03-30T01:05:00Z")),
            created,
            ts("2025-03-30T12:00:00Z"),
            HOUR
        ));
    }

    #[test]
    fn overdue_across_the_fall_back_day() {
        // 02:30 on 2025-10-26 first happens at 00:30Z; a success at 00:45Z covers the day even though
        // the wall clock shows 02:30 again at 01:30Z.
        let s = parse_kubernetes_cron("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let created = ts("2025-01-01T00:00:00Z");
        assert!(!is_overdue(
            &s,
            Some(ts("2025-10-26T00:45:00Z")),
            created,
            ts("2025-10-26T23:00:00Z"),
            HOUR
        ));
        assert!(is_overdue(
            &s,
            Some(ts("2025-10-25T00:45:00Z")),
            created,
            ts("2025-10-26T01:31:00Z"),
            HOUR
        ));
    }

    #[test]
    fn an_out_of_range_field_is_named_with_its_range_not_the_parsers_text() {
        for (expr, expected) in [
            ("0 25 * * *", "hour 25 is out of range 0-23"),
            ("61 * * * *", "minute 61 is out of range 0-59"),
            ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
            ("0 0 * 13 *", "month 13 is out of range 1-12"),
            ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
            ("*/0 * * * *", "minute step in \"*/0\" is 0"),
            ("5-1 * * * *", "minute range \"5-1\" runs backwards"),
            (
                "x * * * *",
                "minute field \"x\" contains \"x\", which is not a number",
            ),
        ] {
            let m = parse_kubernetes_cron(expr, None).unwrap_err().to_string();
            assert!(m.contains(expected), "{expr}: {m}");
            assert!(!m.contains("Component error"), "{m}");
        }
    }

    #[test]
    fn an_interval_schedule_says_precisely_why_and_what_to_write() {
        let m = parse_kubernetes_cron("@every 5m", None)
            .unwrap_err()
            .to_string();
        assert!(m.contains("cannot tell when the next run is due"), "{m}");
        assert!(m.contains("*/5 * * * *"), "{m}");
    }

    const NANO: SignedDuration = SignedDuration::from_nanos(1);

    #[test]
    fn overdue_flips_exactly_at_the_deadline_not_a_nanosecond_earlier() {
        let s = parse_kubernetes_cron("0 2 * * *", None).unwrap();
        let created = ts("2025-01-01T00:00:00Z");
        let last = Some(ts("2025-01-09T02:05:00Z"));
        let policy = OverdueAfter::NextRunPlus(HOUR);
        let deadline = overdue_deadline(&s, policy, last, created).unwrap();
        assert_eq!(deadline, ts("2025-01-10T03:00:00Z"));
        assert!(!is_overdue_at(&s, policy, last, created, deadline - NANO));
        assert!(is_overdue_at(&s, policy, last, created, deadline));
    }

    #[test]
    fn the_default_deadline_follows_wall_clock_runs_across_both_dst_changes() {
        // Europe/Berlin, daily at 02:30. Spring forward (2025-03-30): the run after a success on the 29th is the
        // gap run at 03:00 CEST = 01:00Z, so the deadline is 02:00Z, 23 h 20 min after the success, not 24 h.
        let s = parse_kubernetes_cron("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let created = ts("2025-01-01T00:00:00Z");
        let policy = OverdueAfter::NextRunPlus(HOUR);
        let spring = Some(ts("2025-03-29T01:40:00Z"));
        let deadline = overdue_deadline(&s, policy, spring, created).unwrap();
        assert_eq!(deadline, ts("2025-03-30T02:00:00Z"));
        assert!(!is_overdue_at(&s, policy, spring, created, deadline - NANO));
        assert!(is_overdue_at(&s, policy, spring, created, deadline));
        // Fall back (2025-10-26): 02:30 CEST = 00:30Z runs once; the deadline is 01:30Z, not the repeated 02:30 CET.
        let fall = Some(ts("2025-10-25T00:40:00Z"));
        let deadline = overdue_deadline(&s, policy, fall, created).unwrap();
        assert_eq!(deadline, ts("2025-10-26T01:30:00Z"));
        assert!(!is_overdue_at(&s, policy, fall, created, deadline - NANO));
        assert!(is_overdue_at(&s, policy, fall, created, deadline));
        // The day after, the run is back at 02:30 CET = 01:30Z: 25 h between the two runs.
        let after = Some(ts("2025-10-26T00:35:00Z"));
        assert_eq!(
            overdue_deadline(&s, policy, after, created),
            Some(ts("2025-10-27T02:30:00Z"))
        );
    }

    #[test]
    fn a_fixed_overdue_after_counts_from_the_last_success_or_from_creation() {
        let s = parse_kubernetes_cron("0 2 * * *", Some("Europe/Berlin")).unwrap();
        let created = ts("2025-03-01T00:00:00Z");
        let policy = OverdueAfter::Fixed(SignedDuration::from_hours(50));
        // 50 h of elapsed time, whatever the wall clock does in between (the spring-forward night).
        let last = Some(ts("2025-03-29T01:05:00Z"));
        let deadline = overdue_deadline(&s, policy, last, created).unwrap();
        assert_eq!(deadline, ts("2025-03-31T03:05:00Z"));
        assert!(!is_overdue_at(&s, policy, last, created, deadline - NANO));
        assert!(is_overdue_at(&s, policy, last, created, deadline));
        assert_eq!(
            overdue_deadline(&s, policy, None, created),
            Some(ts("2025-03-03T02:00:00Z"))
        );
    }

    #[test]
    fn before_any_success_a_run_exactly_at_creation_is_the_one_expected() {
        let s = parse_kubernetes_cron("0 2 * * *", None).unwrap();
        let created = ts("2025-01-10T02:00:00Z");
        assert_eq!(
            overdue_deadline(&s, OverdueAfter::NextRunPlus(HOUR), None, created),
            Some(ts("2025-01-10T03:00:00Z"))
        );
    }

    #[test]
    fn overdue_after_takes_hours_minutes_and_seconds_and_nothing_else() {
        for (text, secs) in [
            ("26h", 26 * 3600),
            ("90m", 5400),
            ("1h30m", 5400),
            ("45s", 45),
            ("1h0m5s", 3605),
        ] {
            assert_eq!(
                parse_overdue_after(text),
                Ok(SignedDuration::from_secs(secs)),
                "{text}"
            );
        }
        for text in [
            "", "0h", "26", "1d", "h", "30m1h", "1h1h", "-1h", "1.5h", "1 h",
        ] {
            let e = parse_overdue_after(text).unwrap_err();
            assert!(e.contains("spec.cronJob.overdueAfter"), "{text}: {e}");
        }
    }
}
