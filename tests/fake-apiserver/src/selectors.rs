//! Label and field selectors as LIST and WATCH accept them.

use serde_json::Value;

/// One parsed label-selector requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector` (all requirements must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside `( )`, because `in (a,b)` contains commas.
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

fn parse_set(key: &str, rest: &str, term: &str) -> Result<(String, Vec<String>), String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("invalid label selector term {term:?}: expected a (value,...) set")
        })?;
    let values = inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    Ok((key.trim().to_owned(), values))
}

impl LabelSelector {
    /// Parses the Kubernetes label selector syntax.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((key, rest)) = term.split_once(" notin ") {
                let (k, v) = parse_set(key, rest, term)?;
                Requirement::NotIn(k, v)
            } else if let Some((key, rest)) = term.split_once(" in ") {
                let (k, v) = parse_set(key, rest, term)?;
                Requirement::In(k, v)
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = term.split_once("==") {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = term.split_once('=') {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if term.contains(' ') || term.contains('(') {
                return Err(format!("invalid label selector term {term:?}"));
            } else {
                Requirement::Exists(term.to_owned())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// A parsed `fieldSelector`. Like the apiserver for most types, only `metadata.name` and
/// `metadata.namespace` are supported; anything else is rejected rather than silently ignored,
/// so a controller relying on an unsupported field fails here as it would on a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `field=value`, `field==value`, `field!=value` terms.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in split_terms(s) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!("invalid field selector term {term:?}"));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!(
                    "field label not supported: {field} (the fake supports metadata.name and metadata.namespace)"
                ));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    /// Whether the object satisfies every term.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = match field.as_str() {
                "metadata.name" => object["metadata"]["name"].as_str().unwrap_or(""),
                _ => object["metadata"]["namespace"].as_str().unwrap_or(""),
            };
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n1", "namespace": "ns1", "labels": labels}})
    }

    #[test]
    fn equality_and_inequality_terms_follow_kubernetes_semantics() {
        let o = obj(json!({"app": "web", "tier": "db"}));
        assert!(LabelSelector::parse("app=web").unwrap().matches(&o));
        assert!(
            LabelSelector::parse("app==web,tier=db")
                .unwrap()
                .matches(&o)
        );
        assert!(!LabelSelector::parse("app=api").unwrap().matches(&o));
        assert!(LabelSelector::parse("app!=api").unwrap().matches(&o));
        // `!=` also matches objects without the label at all.
        assert!(LabelSelector::parse("missing!=x").unwrap().matches(&o));
        assert!(!LabelSelector::parse("app!=web").unwrap().matches(&o));
    }

    #[test]
    fn set_based_terms_and_existence_terms_match() {
        let o = obj(json!({"app": "web"}));
        assert!(
            LabelSelector::parse("app in (api, web)")
                .unwrap()
                .matches(&o)
        );
        assert!(!LabelSelector::parse("app in (api,db)").unwrap().matches(&o));
        assert!(
            LabelSelector::parse("app notin (api,db)")
                .unwrap()
                .matches(&o)
        );
        assert!(LabelSelector::parse("other notin (x)").unwrap().matches(&o));
        assert!(!LabelSelector::parse("app notin (web)").unwrap().matches(&o));
        assert!(LabelSelector::parse("app").unwrap().matches(&o));
        assert!(!LabelSelector::parse("other").unwrap().matches(&o));
        assert!(LabelSelector::parse("!other").unwrap().matches(&o));
        assert!(!LabelSelector::parse("!app").unwrap().matches(&o));
        assert!(
            LabelSelector::parse("app in (web,x),!other,app")
                .unwrap()
                .matches(&o)
        );
    }

    #[test]
    fn malformed_label_selector_is_rejected() {
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selector_matches_name_and_namespace_and_rejects_other_fields() {
        let o = obj(json!({}));
        assert!(
            FieldSelector::parse("metadata.name=n1")
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=n1")
                .unwrap()
                .matches(&o)
        );
        assert!(
            FieldSelector::parse("metadata.namespace==ns1,metadata.name=n1")
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace=other")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.nodeName=x").is_err());
    }
}
