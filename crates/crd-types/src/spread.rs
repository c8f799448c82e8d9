//! Spread schedules: `H` in the minute and hour fields, and the `@hourly-random`, `@daily-random` and
//! `@weekly-random` macros, resolved to a concrete Kubernetes cron expression per ScheduledBackup.
//!
//! The value of `H` comes from a hash of `"<namespace>/<name>"`, so 300 nightly backups written as `H 2 * * *`
//! start at different minutes of 02:xx instead of all at 02:00, and one ScheduledBackup always gets the same
//! minute: across restarts, replicas, controllers (the scheduled-controller and the exporter agree) and versions.
//! The hash is therefore fixed and documented, never Rust's `DefaultHasher` (whose output may change between
//! Rust releases):
//!
//! - `seed = FNV-1a-64("<namespace>/<name>")` (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`),
//!   then folded as `seed ^ (seed >> 32)` so the low bits, which `mod 60` reads, depend on every input byte;
//! - minute `H` = `seed mod 60`; hour `H` = `(seed / 60) mod 24`; the weekday of `@weekly-random` =
//!   `(seed / 1440) mod 7`;
//! - `H/n` (every `n` minutes or hours) starts at `seed mod n` (minute) or `(seed / 60) mod n` (hour) and is
//!   written out as `<start>-59/n` or `<start>-23/n`.
//!
//! The macros are shorthands: `@hourly-random` = `H * * * *`, `@daily-random` = `H H * * *`, `@weekly-random` =
//! `H H * * <weekday>`.

use crate::schedule::ScheduleError;

/// FNV-1a 64 of `"<namespace>/<name>"`, folded (see the module documentation). Part of the API: changing it
/// moves every spread schedule.
pub fn seed(namespace: &str, name: &str) -> u64 {
    let hash = fnv1a_64(namespace.bytes().chain(*b"/").chain(name.bytes()));
    hash ^ (hash >> 32)
}

/// FNV-1a, 64 bits.
fn fnv1a_64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.into_iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// True when the expression uses `H` or a `-random` macro, i.e. its concrete form depends on the object.
pub fn is_spread(expr: &str) -> bool {
    let trimmed = expr.trim();
    if trimmed.starts_with('@') {
        return trimmed.to_ascii_lowercase().ends_with("-random");
    }
    trimmed
        .split_whitespace()
        .flat_map(|f| f.split(','))
        .any(|part| part.starts_with(['H', 'h']) && !part.eq_ignore_ascii_case("hour"))
}

/// The concrete Kubernetes expression of `expr` for the object `namespace/name`. Expressions without `H` and
/// without a `-random` macro are returned unchanged (byte for byte), so existing CronJobs keep their schedule.
pub fn resolve(expr: &str, namespace: &str, name: &str) -> Result<String, ScheduleError> {
    if !is_spread(expr) {
        return Ok(expr.to_owned());
    }
    let seed = seed(namespace, name);
    let trimmed = expr.trim();
    let five_fields = if trimmed.starts_with('@') {
        match trimmed.to_ascii_lowercase().as_str() {
            "@hourly-random" => "H * * * *".to_owned(),
            "@daily-random" => "H H * * *".to_owned(),
            "@weekly-random" => format!("H H * * {}", (seed / (60 * 24)) % 7),
            _ => {
                return Err(ScheduleError::UnknownMacro {
                    expr: expr.to_owned(),
                });
            }
        }
    } else {
        trimmed.to_owned()
    };
    let fields: Vec<&str> = five_fields.split_whitespace().collect();
    if fields.len() != 5 {
        // Counted and explained by the parser, which the caller runs on the result.
        return Ok(five_fields);
    }
    let mut out = Vec::with_capacity(5);
    for (index, field) in fields.iter().enumerate() {
        let resolved = match index {
            0 => resolve_field(expr, field, "minute", seed % 60, 59, |n| seed % n)?,
            1 => resolve_field(expr, field, "hour", (seed / 60) % 24, 23, |n| {
                (seed / 60) % n
            })?,
            _ => {
                if field
                    .split(',')
                    .any(|p| p.starts_with(['H', 'h']) && !p.to_ascii_uppercase().starts_with("TH"))
                {
                    return Err(ScheduleError::Spread {
                        expr: expr.to_owned(),
                        detail: format!(
                            "H is accepted only in the minute and hour fields, not in {:?}",
                            field
                        ),
                    });
                }
                (*field).to_owned()
            }
        };
        out.push(resolved);
    }
    Ok(out.join(" "))
}

/// One minute or hour field: `H` becomes `value`, `H/n` becomes `<start(n)>-<max>/n`; other list parts stay.
fn resolve_field(
    expr: &str,
    field: &str,
    what: &str,
    value: u64,
    max: u64,
    start: impl Fn(u64) -> u64,
) -> Result<String, ScheduleError> {
    let invalid = |detail: String| ScheduleError::Spread {
        expr: expr.to_owned(),
        detail,
    };
    let mut parts = Vec::new();
    for part in field.split(',') {
        if !part.starts_with(['H', 'h']) {
            parts.push(part.to_owned());
            continue;
        }
        match &part[1..] {
            "" => parts.push(value.to_string()),
            step if step.starts_with('/') => {
                let n: u64 = step[1..]
                    .parse()
                    .ok()
                    .filter(|n| (1..=max + 1).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "{what} field {part:?}: H/n takes a step n from 1 to {}",
                            max + 1
                        ))
                    })?;
                parts.push(format!("{}-{max}/{n}", start(n)));
            }
            _ => {
                return Err(invalid(format!(
                    "{what} field {part:?}: write H alone or H/n (e.g. H/15); ranges such as H(0-29) are not supported"
                )));
            }
        }
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::parse_kubernetes_cron;

    #[test]
    fn the_seed_is_fnv1a_64_of_namespace_slash_name_folded() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a_64(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(*b"foobar"), 0x8594_4171_f739_67e8);
        let h = fnv1a_64(*b"team-a/app1");
        assert_eq!(seed("team-a", "app1"), h ^ (h >> 32));
        // Pinned: a change to the hash would move every spread schedule in every cluster.
        assert_eq!(seed("team-a", "app1"), 0x7851_3dc9_ab7f_f954);
        assert_eq!(
            resolve("@weekly-random", "team-a", "app1").unwrap(),
            "44 6 * * 1"
        );
    }

    #[test]
    fn resolution_is_deterministic_and_depends_on_namespace_and_name() {
        let a = resolve("H H * * *", "team-a", "db").unwrap();
        assert_eq!(a, resolve("H H * * *", "team-a", "db").unwrap());
        let others: std::collections::HashSet<String> = (0..50)
            .map(|i| resolve("H H * * *", "team-a", &format!("db-{i}")).unwrap())
            .collect();
        assert!(others.len() > 40, "{others:?}");
        assert_ne!(
            resolve("H H * * *", "team-b", "db").unwrap(),
            a,
            "same name, other namespace"
        );
    }

    #[test]
    fn over_ten_thousand_names_no_minute_gets_more_than_three_times_the_mean() {
        let mut minutes = [0u32; 60];
        let mut hours = [0u32; 24];
        let mut weekdays = [0u32; 7];
        for i in 0..10_000 {
            let ns = format!("team-{}", i % 13);
            let name = format!("postgres-{i}");
            let concrete = resolve("@weekly-random", &ns, &name).unwrap();
            let fields: Vec<usize> = concrete
                .split(' ')
                .filter(|f| *f != "*")
                .map(|f| f.parse().unwrap())
                .collect();
            minutes[fields[0]] += 1;
            hours[fields[1]] += 1;
            weekdays[fields[2]] += 1;
        }
        for (what, counts) in [
            ("minute", &minutes[..]),
            ("hour", &hours[..]),
            ("weekday", &weekdays[..]),
        ] {
            let mean = 10_000 / counts.len() as u32;
            let (max, min) = (*counts.iter().max().unwrap(), *counts.iter().min().unwrap());
            assert!(max < 3 * mean, "{what}: max {max}, mean {mean}: {counts:?}");
            assert!(min > 0, "{what}: a value is never chosen: {counts:?}");
        }
    }

    #[test]
    fn h_in_minute_and_hour_fields_becomes_numbers_the_parser_accepts() {
        let s = seed("ns", "sb");
        for (expr, expected) in [
            ("H 2 * * *", format!("{} 2 * * *", s % 60)),
            ("H H * * 0", format!("{} {} * * 0", s % 60, (s / 60) % 24)),
            ("H/15 * * * *", format!("{}-59/15 * * * *", s % 15)),
            ("0 H/6 * * *", format!("0 {}-23/6 * * *", (s / 60) % 6)),
            (
                "H 1,H * * *",
                format!("{} 1,{} * * *", s % 60, (s / 60) % 24),
            ),
            ("@hourly-random", format!("{} * * * *", s % 60)),
            (
                "@daily-random",
                format!("{} {} * * *", s % 60, (s / 60) % 24),
            ),
            (
                "@weekly-random",
                format!("{} {} * * {}", s % 60, (s / 60) % 24, (s / 1440) % 7),
            ),
        ] {
            let concrete = resolve(expr, "ns", "sb").unwrap();
            assert_eq!(concrete, expected, "{expr}");
            parse_kubernetes_cron(&concrete, None).unwrap_or_else(|e| panic!("{expr}: {e}"));
        }
    }

    #[test]
    fn a_step_spreads_its_start_within_the_step() {
        for i in 0..200 {
            let concrete = resolve("H/15 * * * *", "ns", &format!("sb-{i}")).unwrap();
            let start: u64 = concrete.split('-').next().unwrap().parse().unwrap();
            assert!(start < 15, "{concrete}");
        }
    }

    #[test]
    fn expressions_without_h_are_returned_unchanged() {
        for expr in [
            "00 02 * * *",
            "0 0 * * THU",
            "@daily",
            "*/5 * * * *",
            "0 3 * * MON-FRI",
        ] {
            assert_eq!(resolve(expr, "ns", "sb").unwrap(), expr);
            assert!(!is_spread(expr), "{expr}");
        }
    }

    #[test]
    fn h_outside_minute_and_hour_and_unknown_forms_are_refused_naming_the_field() {
        let e = resolve("0 0 H * *", "ns", "sb").unwrap_err();
        assert_eq!(e.reason(), "InvalidSpread");
        assert!(
            e.to_string().contains("only in the minute and hour fields"),
            "{e}"
        );
        let e = resolve("H(0-29) 2 * * *", "ns", "sb").unwrap_err();
        assert!(e.to_string().contains("minute field \"H(0-29)\""), "{e}");
        let e = resolve("H/0 * * * *", "ns", "sb").unwrap_err();
        assert!(e.to_string().contains("step n from 1 to 60"), "{e}");
        let e = resolve("@monthly-random", "ns", "sb").unwrap_err();
        assert_eq!(e.reason(), "UnknownMacro");
    }
}
