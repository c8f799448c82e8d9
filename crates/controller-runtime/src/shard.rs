//! Sharding, the way Flux shards its controllers: each Deployment of a controller watches only the objects a label
//! selector picks (`--shard-selector`), so N Deployments split the objects of a cluster and each caches ~1/N of
//! them. The selector goes onto the watches of the primary objects and of the children that carry their owner's
//! shard label; the Lease gets a per-shard name, so each shard elects its own leader.
//!
//! The selector is parsed here rather than handed to the API server as typed: a typo would otherwise surface as
//! a watch error loop after start-up (or, worse, as a valid selector that matches nothing).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kube::runtime::watcher;

/// Why `--shard-selector` / `--shard-name` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// The selector does not parse as a Kubernetes label selector.
    #[error("invalid --shard-selector {selector:?}: {reason}")]
    InvalidSelector {
        /// The selector as given.
        selector: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The shard name cannot be part of a Lease name.
    #[error(
        "invalid shard name {name:?}: it must be 1-63 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit (it names the Lease)"
    )]
    InvalidName {
        /// The name as given or derived.
        name: String,
    },
    /// No shard name was given and none follows from the selector.
    #[error(
        "--shard-selector {selector:?} needs --shard-name: only `key=value` (a named shard) and `!key` (the default shard) name their Lease on their own"
    )]
    NameRequired {
        /// The selector.
        selector: String,
    },
    /// `--shard-name` without a selector would split the Lease without splitting the work.
    #[error("--shard-name {name:?} needs --shard-selector")]
    NameWithoutSelector {
        /// The name as given.
        name: String,
    },
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |key: &String| labels.get(key).map(String::as_str);
        match self {
            Requirement::Equals(k, v) => get(k) == Some(v),
            Requirement::NotEquals(k, v) => get(k) != Some(v),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Equals(k, v) => write!(f, "{k}={v}"),
            Requirement::NotEquals(k, v) => write!(f, "{k}!={v}"),
            Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
            Requirement::Exists(k) => write!(f, "{k}"),
            Requirement::DoesNotExist(k) => write!(f, "!{k}"),
        }
    }
}

/// A validated label selector, in the syntax `kubectl -l` and the API server's `labelSelector` take:
/// `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key`, `!key`, joined by `,`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSelector(Vec<Requirement>);

impl ShardSelector {
    /// Whether an object with `labels` belongs to this shard.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for ShardSelector {
    /// The canonical form, as sent to the API server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for ShardSelector {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let invalid = |reason: String| ShardError::InvalidSelector {
            selector: s.to_owned(),
            reason,
        };
        let terms = split_terms(s);
        if terms.is_empty() {
            return Err(invalid(
                "it is empty, which selects every object: leave --shard-selector out to run unsharded".into(),
            ));
        }
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms {
            let requirement = parse_term(term).map_err(&invalid)?;
            requirements.push(requirement);
        }
        Ok(ShardSelector(requirements))
    }
}

/// Splits on the commas outside `( )`: `in (a,b)` holds commas of its own.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_of(key, term)?));
    }
    for (op, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = term.split_once(op) {
            let key = key_of(key, term)?;
            let values = set_of(set, term)?;
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    // `!=` before `==` before `=`: each later operator is a substring of an earlier one.
    for op in ["!=", "==", "="] {
        if let Some((key, value)) = term.split_once(op) {
            let key = key_of(key, term)?;
            let value = value_of(value.trim(), term)?;
            return Ok(if op == "!=" {
                Requirement::NotEquals(key, value)
            } else {
                Requirement::Equals(key, value)
            });
        }
    }
    Ok(Requirement::Exists(key_of(term, term)?))
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn key_of(key: &str, term: &str) -> Result<String, String> {
    let key = key.trim();
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    if !name.is_empty() && name_ok(name) && prefix_ok {
        Ok(key.to_owned())
    } else {
        Err(format!(
            "{key:?} in {term:?} is not a label key (an optional DNS prefix and '/', then 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        ))
    }
}

/// A label value: empty, or at most 63 letters, digits, `-`, `_`, `.`, starting and ending alphanumeric.
fn value_of(value: &str, term: &str) -> Result<String, String> {
    if value.is_empty() || name_ok(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} in {term:?} is not a label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        ))
    }
}

fn set_of(set: &str, term: &str) -> Result<Vec<String>, String> {
    let inner = set
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("{term:?}: expected a set of values in parentheses, e.g. `key in (a,b)`")
        })?;
    let values = inner
        .split(',')
        .map(|v| value_of(v.trim(), term))
        .collect::<Result<Vec<_>, _>>()?;
    if values.iter().all(String::is_empty) {
        return Err(format!("{term:?}: the set of values is empty"));
    }
    Ok(values)
}

fn name_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    s.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What one Deployment of a controller watches: everything (the default), or the objects of one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shard {
    selector: Option<ShardSelector>,
    name: Option<String>,
}

impl Shard {
    /// Every object: one Deployment does all the work.
    pub fn all() -> Self {
        Shard::default()
    }

    /// The shard `selector` picks, named `name` (the Lease suffix). Without `name`, `key=value` names the shard
    /// `value`, and `!key` is the default shard, which keeps the unsharded Lease: an unsharded replica and a
    /// default-shard replica (during the rollout that introduces shards) then exclude each other.
    pub fn new(selector: Option<ShardSelector>, name: Option<&str>) -> Result<Self, ShardError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let Some(selector) = selector else {
            return match name {
                Some(name) => Err(ShardError::NameWithoutSelector { name: name.into() }),
                None => Ok(Shard::all()),
            };
        };
        let name = match (name, selector.0.as_slice()) {
            (Some(name), _) => Some(name.to_owned()),
            (None, [Requirement::Equals(_, value)]) => Some(value.clone()),
            (None, [Requirement::DoesNotExist(_)]) => None,
            (None, _) => {
                return Err(ShardError::NameRequired {
                    selector: selector.to_string(),
                });
            }
        };
        if let Some(name) = &name
            && !lease_suffix_ok(name)
        {
            return Err(ShardError::InvalidName { name: name.clone() });
        }
        Ok(Shard {
            selector: Some(selector),
            name,
        })
    }

    /// The selector, `None` when unsharded.
    pub fn selector(&self) -> Option<&ShardSelector> {
        self.selector.as_ref()
    }

    /// Whether an object with `labels` is this shard's.
    pub fn owns(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }

    /// `config` restricted to this shard: the selector is added to any label selector `config` already has
    /// (requirements joined by `,` must all hold).
    pub fn watch(&self, mut config: watcher::Config) -> watcher::Config {
        if let Some(selector) = &self.selector {
            config.label_selector = Some(match config.label_selector.take() {
                Some(existing) if !existing.trim().is_empty() => format!("{existing},{selector}"),
                _ => selector.to_string(),
            });
        }
        config
    }

    /// The leader-election Lease of `controller` in this shard: `<controller>-leader`, plus `-<shard name>` for a
    /// named shard, so each shard elects its own leader.
    pub fn lease_name(&self, controller: &str) -> String {
        match &self.name {
            Some(name) => format!("{controller}-leader-{name}"),
            None => format!("{controller}-leader"),
        }
    }
}

/// A Lease name is a DNS subdomain: the suffix is kept to one DNS label-ish part.
fn lease_suffix_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    s.len() <= 63
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(s: &str) -> ShardSelector {
        s.parse().unwrap()
    }

    #[test]
    fn every_operator_of_the_label_selector_syntax_parses_and_prints_canonically() {
        let s = selector(
            " riotkit.org/shard == a , tier!=gold,zone in (x, y),env notin (dev),team,!legacy ",
        );
        assert_eq!(
            s.to_string(),
            "riotkit.org/shard=a,tier!=gold,zone in (x,y),env notin (dev),team,!legacy"
        );
    }

    #[test]
    fn the_named_shard_selects_only_objects_with_its_label_value() {
        let s = selector("riotkit.org/shard=a");
        assert!(s.matches(&labels(&[("riotkit.org/shard", "a")])));
        assert!(!s.matches(&labels(&[("riotkit.org/shard", "b")])));
        assert!(!s.matches(&labels(&[])));
    }

    #[test]
    fn the_default_shard_selects_only_objects_without_the_label() {
        let s = selector("!riotkit.org/shard");
        assert!(s.matches(&labels(&[("app", "x")])));
        assert!(!s.matches(&labels(&[("riotkit.org/shard", "a")])));
    }

    #[test]
    fn set_and_inequality_requirements_match_like_the_api_server() {
        let s = selector("riotkit.org/shard in (a,b),tier!=gold");
        assert!(s.matches(&labels(&[("riotkit.org/shard", "b")])));
        assert!(!s.matches(&labels(&[("riotkit.org/shard", "c")])));
        assert!(!s.matches(&labels(&[("riotkit.org/shard", "a"), ("tier", "gold")])));
        let s = selector("riotkit.org/shard notin (a)");
        assert!(s.matches(&labels(&[])));
        assert!(!s.matches(&labels(&[("riotkit.org/shard", "a")])));
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_offending_part_named() {
        for (bad, part) in [
            ("", "empty"),
            (" , ", "empty"),
            ("riotkit.org/shard=a b", "\"a b\""),
            ("riotkit.org/shard in a,b", "parentheses"),
            ("riotkit.org/shard in ()", "empty"),
            ("Bad_Prefix.org/shard=a", "\"Bad_Prefix.org/shard\""),
            ("-shard=a", "\"-shard\""),
            ("shard=-a", "\"-a\""),
            ("!", "\"\""),
            (&format!("shard={}", "v".repeat(64)), "label value"),
        ] {
            let error = bad.parse::<ShardSelector>().unwrap_err().to_string();
            assert!(error.contains(part), "{bad:?}: {error}");
            assert!(error.starts_with("invalid --shard-selector"), "{error}");
        }
    }

    #[test]
    fn the_shard_selector_is_added_to_a_watch_without_a_selector() {
        let shard = Shard::new(Some(selector("riotkit.org/shard=a")), None).unwrap();
        let config = shard.watch(watcher::Config::default());
        assert_eq!(
            config.label_selector.as_deref(),
            Some("riotkit.org/shard=a")
        );
    }

    #[test]
    fn the_shard_selector_is_combined_with_an_existing_label_selector() {
        let shard = Shard::new(Some(selector("!riotkit.org/shard")), None).unwrap();
        let config = shard.watch(watcher::Config::default().labels("riotkit.org/scheduled-backup"));
        assert_eq!(
            config.label_selector.as_deref(),
            Some("riotkit.org/scheduled-backup,!riotkit.org/shard")
        );
    }

    #[test]
    fn an_unsharded_controller_leaves_watches_and_the_lease_as_they_are() {
        let shard = Shard::all();
        let config = shard.watch(watcher::Config::default().labels("a=b"));
        assert_eq!(config.label_selector.as_deref(), Some("a=b"));
        assert_eq!(
            shard.lease_name("scheduled-controller"),
            "scheduled-controller-leader"
        );
        assert!(shard.owns(&labels(&[("riotkit.org/shard", "a")])));
    }

    #[test]
    fn each_named_shard_elects_its_leader_on_its_own_lease() {
        let a = Shard::new(Some(selector("riotkit.org/shard=a")), None).unwrap();
        let b = Shard::new(Some(selector("riotkit.org/shard=b")), None).unwrap();
        assert_eq!(
            a.lease_name("action-controller"),
            "action-controller-leader-a"
        );
        assert_eq!(
            b.lease_name("action-controller"),
            "action-controller-leader-b"
        );
    }

    #[test]
    fn the_default_shard_keeps_the_unsharded_lease_so_an_upgrade_never_runs_both() {
        let default = Shard::new(Some(selector("!riotkit.org/shard")), None).unwrap();
        assert_eq!(
            default.lease_name("gpg-keygen"),
            Shard::all().lease_name("gpg-keygen")
        );
    }

    #[test]
    fn an_explicit_shard_name_wins_and_a_custom_selector_requires_one() {
        let custom = selector("riotkit.org/shard in (a,b)");
        assert_eq!(
            Shard::new(Some(custom.clone()), None),
            Err(ShardError::NameRequired {
                selector: "riotkit.org/shard in (a,b)".into()
            })
        );
        let named = Shard::new(Some(custom), Some("ab")).unwrap();
        assert_eq!(named.lease_name("gpg-keygen"), "gpg-keygen-leader-ab");
    }

    #[test]
    fn a_shard_name_that_cannot_be_part_of_a_lease_name_is_refused() {
        assert_eq!(
            Shard::new(Some(selector("riotkit.org/shard=Team_A")), None),
            Err(ShardError::InvalidName {
                name: "Team_A".into()
            })
        );
        assert!(Shard::new(Some(selector("riotkit.org/shard=a")), Some("-x")).is_err());
    }

    #[test]
    fn a_shard_name_without_a_selector_is_refused() {
        assert_eq!(
            Shard::new(None, Some("a")),
            Err(ShardError::NameWithoutSelector { name: "a".into() })
        );
    }
}
