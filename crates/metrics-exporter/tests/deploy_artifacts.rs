//! The shipped PrometheusRule, Grafana dashboard and docs/metrics.md only use metrics that exist:
//! every metric name in every PromQL expression must appear in a real scrape of the controller
//! families plus the exporter's collector (K8up shipped rules that could never fire). This is the fast,
//! dependency-free guard; promtool unit tests of every alert (scripts/prometheus-check.sh) and a real
//! Prometheus (tests/e2e/tests/prometheus.rs) check what the expressions do.

use controller_runtime::metrics::ControllerMetrics;
use kube::runtime::watcher::Event;
use metrics_exporter::exporter::{BackupCollector, FAMILIES, Feed};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Series and family names of a scrape where every family has at least one sample.
fn known_metrics() -> BTreeSet<String> {
    let registry = prometheus::Registry::new();
    let m = ControllerMetrics::new("scheduled-controller", &registry);
    m.reconcile_failed("X");
    m.api_write("jobs", "create");
    drop(m.reconcile_timer());

    let mut feed = Feed::default();
    for (name, op) in [("db", "backup"), ("db-drill", "restore")] {
        feed.scheduled_backup(Event::Apply(
            serde_json::from_value(json!({
                "apiVersion": "riotkit.org/v1alpha1", "kind": "ScheduledBackup",
                "metadata": {"name": name, "namespace": "n", "creationTimestamp": "2025-01-01T00:00:00Z"},
                "spec": {"operation": op, "cronJob": {"enabled": true, "scheduleEvery": "@daily"},
                         "collectionId": "c1",
                         "templateRef": {"name": "pg15", "kind": "internal"},
                         "gpgKeySecretRef": {"secretName": "g"}, "tokenSecretRef": {"secretName": "t"}},
                "status": {"lastSuccessfulTime": "2025-01-02T00:01:00Z", "lastFailedTime": "2025-01-01T00:01:00Z",
                           "lastScheduleTime": "2025-01-02T00:00:00Z"}
            }))
            .unwrap(),
        ));
    }
    feed.job(Event::Apply(
        serde_json::from_value(json!({
            "metadata": {"name": "j", "namespace": "n",
                         "labels": {"riotkit.org/scheduled-backup": "db", "riotkit.org/operation": "backup"}},
            "status": {"startTime": "2025-01-02T00:00:00Z", "completionTime": "2025-01-02T00:01:00Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}
        }))
        .unwrap(),
    ));
    feed.action(Event::Apply(
        serde_json::from_value(json!({
            "apiVersion": "riotkit.org/v1alpha1", "kind": "RequestedBackupAction",
            "metadata": {"name": "r", "namespace": "n", "uid": "u"},
            "spec": {"action": "backup", "scheduledBackupRef": {"name": "db"}},
            "status": {"phase": "Running"}
        }))
        .unwrap(),
    ));
    let stores = feed.stores();
    registry
        .register(Box::new(BackupCollector::new(
            stores,
            jiff::SignedDuration::from_hours(1),
        )))
        .unwrap();
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    let e = controller_runtime::exposition::parse(&text).unwrap();
    let mut names = e.family_names();
    names.extend(e.samples.iter().map(|s| s.name.clone()));
    for f in FAMILIES {
        assert!(
            names.contains(*f),
            "fixture does not produce {f}; the check would be incomplete"
        );
    }
    names
}

/// Aggregation operators may be followed by `by (...)` before their `(`, so they are not always calls.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
];

/// Metric names in a PromQL expression: identifiers that are not functions, keywords, label names
/// (inside `{}` or grouping lists), strings, durations or Grafana `$variables`.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut grouping = false; // inside by (...) / on (...) label lists
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '{' {
            // Label matchers: skip to the closing brace (strings inside handled by a mini-scan).
            let mut in_str = None;
            while i < chars.len() {
                match (in_str, chars[i]) {
                    (None, '}') => break,
                    (None, q @ ('"' | '\'')) => in_str = Some(q),
                    (Some(q), ch) if ch == q => in_str = None,
                    (Some(_), '\\') => i += 1,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let call = chars.get(j) == Some(&'(');
            let lower = word.to_ascii_lowercase();
            if KEYWORDS.contains(&lower.as_str()) {
                if matches!(
                    lower.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) && call
                {
                    grouping = true;
                    i = j + 1;
                }
            } else if grouping || call || AGGREGATIONS.contains(&lower.as_str()) {
                // Label name in a grouping list, or a function call.
            } else if start > 0 && chars[start - 1].is_ascii_digit() {
                // Unit of a number such as 1e3; not a name.
            } else {
                out.push(word);
            }
        } else if c == ')' {
            grouping = false;
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn metric_name_extraction_skips_functions_labels_and_variables() {
    let names = metric_names(
        "histogram_quantile(0.95, sum by (controller, le) (rate(a_bucket{x=\"y}\",z=~\"$ns\"}[$__rate_interval]))) \
         > on (namespace) group_left() b unless c or vector(0) and absent_over_time(d{controller=\"e\"}[10m]) > 1e3",
    );
    assert_eq!(names, ["a_bucket", "b", "c", "d"]);
}

fn load_rules() -> Value {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/rules.yaml")).unwrap();
    serde_saphyr::from_str::<Value>(&text).unwrap()
}

#[test]
fn prometheus_rules_use_only_exported_metrics_and_are_complete() {
    let known = known_metrics();
    let doc = load_rules();
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(doc["kind"], "PrometheusRule");
    let mut alerts = BTreeSet::new();
    for group in doc["spec"]["groups"].as_array().unwrap() {
        assert!(group["name"].as_str().is_some_and(|n| !n.is_empty()));
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_owned();
            let expr = rule["expr"].as_str().unwrap();
            let used = metric_names(expr);
            assert!(!used.is_empty(), "{name} uses no metric");
            for m in used {
                assert!(known.contains(&m), "{name} uses {m}, which nothing exports");
            }
            assert!(
                matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("warning" | "critical")
                ),
                "{name} needs a severity label"
            );
            for key in ["summary", "description"] {
                assert!(
                    rule["annotations"][key]
                        .as_str()
                        .is_some_and(|s| s.len() > 10),
                    "{name} needs {key}"
                );
            }
            assert!(alerts.insert(name.clone()), "duplicate alert {name}");
        }
    }
    for required in [
        "BackupOverdue",
        "BackupFailed",
        "ControllerReconcileErrors",
        "ControllerDown",
    ] {
        assert!(alerts.contains(required), "missing alert {required}");
    }
    // Durable conditions wait before firing; BackupActionFailed is a window count and may fire at once.
    for group in doc["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            if rule["alert"] != "BackupActionFailed" {
                assert!(
                    rule["for"].as_str().is_some_and(|f| f.ends_with('m')),
                    "{} needs a `for:`",
                    rule["alert"]
                );
            }
        }
    }
}

#[test]
fn backup_failed_rule_covers_backups_that_never_succeeded() {
    // Without an `unless` branch, `failure > success` is empty when no success series exists.
    let doc = load_rules();
    let rule = doc["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .find(|r| r["alert"] == "BackupFailed")
        .unwrap();
    let expr = rule["expr"].as_str().unwrap();
    assert!(
        expr.contains("unless on (namespace, scheduledbackup, operation)"),
        "{expr}"
    );
}

fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) if s.contains('(') => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_exprs(i, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboards_parse_and_use_only_exported_metrics() {
    let known = known_metrics();
    let dir = root().join("deploy/grafana");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(dash["uid"].as_str().is_some_and(|t| !t.is_empty()));
        let panels = dash["panels"].as_array().unwrap();
        let mut ids = BTreeSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "duplicate panel id in {}",
                path.display()
            );
            if p["type"] != "row" {
                assert!(
                    !p["targets"].as_array().unwrap().is_empty(),
                    "panel {} has no query",
                    p["title"]
                );
            }
        }
        let mut exprs = Vec::new();
        dashboard_exprs(&dash, &mut exprs);
        assert!(
            exprs.len() >= panels.len(),
            "{}: fewer queries than panels",
            path.display()
        );
        for expr in exprs {
            // Grafana's label_values(metric, label): only the first argument is a metric.
            let expr = match expr.strip_prefix("label_values(") {
                Some(rest) => rest.split(',').next().unwrap().to_owned(),
                None => expr,
            };
            let used = metric_names(&expr);
            assert!(
                !used.is_empty(),
                "{}: query uses no metric: {expr}",
                path.display()
            );
            for m in used {
                assert!(
                    known.contains(&m),
                    "{}: {m} is not exported ({expr})",
                    path.display()
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 1, "no dashboard in {}", dir.display());
}

#[test]
fn docs_describe_every_exported_family() {
    let docs = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    let known = known_metrics();
    let families: BTreeSet<&String> = known
        .iter()
        .filter(|n| n.starts_with("backup_maker_"))
        .collect();
    for f in families {
        let f = f
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            docs.contains(&format!("`{f}`")),
            "docs/metrics.md does not document {f}"
        );
    }
}
