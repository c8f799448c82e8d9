//! A small parser for the Prometheus text exposition format (0.0.4).
//!
//! Unit tests (ours and other crates') check scrapes by parsing them with this: metric names, `# TYPE` lines,
//! label sets and values. `promtool check metrics` lints real scrapes in tests/e2e/tests/prometheus.rs when
//! Prometheus is installed (scripts/prometheus-check.sh installs it).

use std::collections::BTreeMap;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name, including `_bucket`/`_sum`/`_count` suffixes.
    pub name: String,
    /// Label pairs, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// Sample value.
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// `# TYPE` declarations: family name → type (counter, gauge, histogram, summary, untyped).
    pub types: BTreeMap<String, String>,
    /// `# HELP` texts: family name → help.
    pub help: BTreeMap<String, String>,
    /// All samples in file order.
    pub samples: Vec<Sample>,
}

/// Why a scrape could not be parsed; the line number is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl Exposition {
    /// The declared type of family `name`.
    pub fn type_of(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }

    /// Samples of series `name` (exact series name, e.g. `x_bucket`).
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the unique sample named `name` whose labels include all of `labels`.
    /// `None` when no sample matches; panics are avoided so tests can assert absence.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.series(name).filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        });
        let first = found.next()?;
        assert!(
            found.next().is_none(),
            "more than one {name} sample matches {labels:?}"
        );
        Some(first.value)
    }

    /// Family names that have samples or a `# TYPE` line (histogram suffixes folded to the family).
    pub fn family_names(&self) -> std::collections::BTreeSet<String> {
        let mut names: std::collections::BTreeSet<String> = self.types.keys().cloned().collect();
        for s in &self.samples {
            names.insert(self.family_of(&s.name).to_owned());
        }
        names
    }

    /// Maps a series name to its family: `x_bucket`/`x_sum`/`x_count` → `x` when `x` is a
    /// histogram or summary.
    pub fn family_of<'a>(&self, series: &'a str) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = series.strip_suffix(suffix)
                && matches!(self.type_of(base), Some("histogram" | "summary"))
            {
                return base;
            }
        }
        series
    }
}

/// Parses a scrape in the Prometheus text format.
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    let mut out = Exposition::default();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |message: String| ParseError {
            line: idx + 1,
            message,
        };
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            if let Some(decl) = rest.strip_prefix("TYPE ") {
                let mut it = decl.split_whitespace();
                let (Some(name), Some(ty), None) = (it.next(), it.next(), it.next()) else {
                    return Err(err(format!("malformed TYPE line {line:?}")));
                };
                if !matches!(
                    ty,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(err(format!("unknown metric type {ty:?}")));
                }
                check_name(name).map_err(err)?;
                if out.types.insert(name.to_owned(), ty.to_owned()).is_some() {
                    return Err(err(format!("second TYPE line for {name}")));
                }
            } else if let Some(decl) = rest.strip_prefix("HELP ") {
                let (name, help) = decl.split_once(' ').unwrap_or((decl, ""));
                out.help.insert(name.to_owned(), help.to_owned());
            }
            continue;
        }
        out.samples.push(parse_sample(line).map_err(err)?);
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok_first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if ok_first && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("sample without value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let mut consumed = None;
        loop {
            // Skip separators.
            while let Some((_, c)) = chars.peek() {
                if *c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            match chars.peek() {
                Some((i, '}')) => {
                    consumed = Some(*i + 1);
                    break;
                }
                None => break,
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key:?} value must be quoted"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        other => return Err(format!("bad escape {other:?} in label {key:?}")),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated value of label {key:?}"));
            }
            check_name(&key)?;
            if labels.insert(key.clone(), value).is_some() {
                return Err(format!("duplicate label {key:?}"));
            }
        }
        let consumed = consumed.ok_or("unterminated label set")?;
        rest = &after[consumed..];
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("sample without value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse::<f64>()
            .map_err(|e| format!("bad value {v:?}: {e}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("bad timestamp {ts:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing data after timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_labels_escapes_and_values() {
        let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"uote\\\\n\\n\"} 3\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\nplain 7 1700000000000\n";
        let e = parse(text).unwrap();
        assert_eq!(e.type_of("a_total"), Some("counter"));
        assert_eq!(e.help.get("a_total").map(String::as_str), Some("Things."));
        assert_eq!(
            e.value("a_total", &[("x", "1"), ("y", "q\"uote\\n\n")]),
            Some(3.0)
        );
        assert_eq!(e.value("h_bucket", &[("le", "+Inf")]), Some(2.0));
        assert_eq!(e.family_of("h_count"), "h");
        assert_eq!(e.family_of("a_total"), "a_total");
        assert_eq!(e.value("plain", &[]), Some(7.0));
        let names: Vec<_> = e.family_names().into_iter().collect();
        assert_eq!(names, ["a_total", "h", "plain"]);
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(parse("bad-name 1\n").is_err());
        assert!(parse("x{a=1} 1\n").is_err());
        assert!(parse("x{a=\"1\" 1\n").is_err());
        assert!(parse("x notanumber\n").is_err());
        assert!(parse("# TYPE x nonsense\n").is_err());
        assert!(parse("# TYPE x gauge\n# TYPE x gauge\n").is_err());
        assert_eq!(parse("ok 1\nbad{ 2\n").unwrap_err().line, 2);
    }

    #[test]
    fn absent_series_is_none() {
        let e = parse("x{a=\"1\"} 1\n").unwrap();
        assert_eq!(e.value("x", &[("a", "2")]), None);
        assert_eq!(e.value("y", &[]), None);
    }
}
