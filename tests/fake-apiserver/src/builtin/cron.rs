//! CronJob schedule and time zone checks with the apiserver's error texts. The apiserver parses
//! schedules with `robfig/cron/v3`'s `ParseStandard`; this reproduces its accept/reject decision
//! and its messages (field count, ranges, names, steps, descriptors, `TZ=` prefixes).

/// A field's accepted names (`jan`..., `sun`...) and the value of the first one.
type Names = Option<(&'static [&'static str], u64)>;

/// `cron.ParseStandard(schedule)`: `Err` carries robfig's message.
pub(crate) fn parse_standard(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("empty spec string".to_owned());
    }
    let mut spec = spec;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let space = spec.find(' ').unwrap_or(spec.len());
        let zone = &spec[eq + 1..space];
        load_location(zone).map_err(|e| format!("provided bad location {zone}: {e}"))?;
        spec = spec[space..].trim();
    }
    if let Some(descriptor) = spec.strip_prefix('@') {
        return parse_descriptor(descriptor, spec);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u64, u64, Names); 5] = [
        (0, 59, None),
        (0, 23, None),
        (1, 31, None),
        (1, 12, Some((MONTHS, 1))),
        (0, 6, Some((DAYS, 0))),
    ];
    for (field, (min, max, names)) in fields.iter().zip(bounds) {
        for expr in field.split(',').filter(|e| !e.is_empty()) {
            range(expr, min, max, names)?;
        }
    }
    Ok(())
}

fn parse_descriptor(descriptor: &str, spec: &str) -> Result<(), String> {
    match descriptor {
        "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => Ok(()),
        _ => match descriptor.strip_prefix("every ") {
            Some(duration) if go_duration_ok(duration) => Ok(()),
            Some(duration) => Err(format!(
                "failed to parse duration {spec}: time: invalid duration {duration:?}"
            )),
            None => Err(format!("unrecognized descriptor: {spec}")),
        },
    }
}

/// Go `time.ParseDuration` acceptance: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with known units.
fn go_duration_ok(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 || rest[..number_len] == *"." {
            return false;
        }
        rest = &rest[number_len..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .into_iter()
            .filter(|u| rest.starts_with(u))
            .max_by_key(|u| u.len());
        let Some(unit) = unit else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

fn range(expr: &str, min: u64, max: u64, names: Names) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        (min, max)
    } else {
        let start = int_or_name(low_high[0], names)?;
        match low_high.len() {
            1 => (start, start),
            2 => (start, int_or_name(low_high[1], names)?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if low_high.len() == 1 {
                end = max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

fn int_or_name(expr: &str, names: Names) -> Result<u64, String> {
    if let Some((list, first)) = names
        && let Some(i) = list.iter().position(|n| n.eq_ignore_ascii_case(expr))
    {
        return Ok(first + i as u64);
    }
    must_parse_int(expr)
}

fn must_parse_int(expr: &str) -> Result<u64, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"
        ));
    }
    let value: i64 = expr.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        )
    })?;
    u64::try_from(value).map_err(|_| format!("negative number ({value}) not allowed: {expr}"))
}

/// Go `time.LoadLocation`: `""` and `UTC` are UTC; other names come from the IANA database.
pub(crate) fn load_location(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "UTC" || name == "Local" {
        return Ok(());
    }
    jiff::tz::TimeZone::get(name)
        .map(|_| ())
        .map_err(|_| format!("unknown time zone {name}"))
}

/// The apiserver's `validateTimeZone` detail for `spec.timeZone`, if invalid.
pub(crate) fn time_zone_problem(zone: &str) -> Option<String> {
    if zone.is_empty() {
        return Some("timeZone must be nil or non-empty string".to_owned());
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    };
    if !zone.split('/').all(part_ok) {
        return Some(format!("unknown time zone {zone}"));
    }
    if zone.eq_ignore_ascii_case("Local") {
        return Some(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .to_owned(),
        );
    }
    load_location(zone).err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_schedules_and_descriptors_parse() {
        for ok in [
            "0 0 1 1 *",
            "*/5 * * * *",
            "0 2 * * mon-fri",
            "0 0 1 JAN,jul ?",
            "@daily",
            "@every 1h30m",
            "CRON_TZ=UTC 0 2 * * *",
        ] {
            assert_eq!(parse_standard(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn invalid_schedules_get_robfig_cron_messages() {
        assert_eq!(
            parse_standard("every day"),
            Err("expected exactly 5 fields, found 2: [every day]".to_owned())
        );
        assert_eq!(
            parse_standard("61 * * * *"),
            Err("end of range (61) above maximum (59): 61".to_owned())
        );
        assert_eq!(
            parse_standard("* * 0 * *"),
            Err("beginning of range (0) below minimum (1): 0".to_owned())
        );
        assert_eq!(
            parse_standard("5-1 * * * *"),
            Err("beginning of range (5) beyond end of range (1): 5-1".to_owned())
        );
        assert_eq!(
            parse_standard("x * * * *"),
            Err(
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_standard("@fortnightly"),
            Err("unrecognized descriptor: @fortnightly".to_owned())
        );
    }

    #[test]
    fn time_zones_are_checked_against_the_iana_database() {
        assert_eq!(time_zone_problem("Europe/Berlin"), None);
        assert_eq!(
            time_zone_problem("Mars/Olympus_Mons"),
            Some("unknown time zone Mars/Olympus_Mons".to_owned())
        );
        assert!(time_zone_problem("local").is_some());
    }
}
