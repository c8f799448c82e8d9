//! Replays single steps of the recorded kube-apiserver 1.36 sessions (`k8s-api/recordings`)
//! through a real `kube::Client` and compares the answer with the recorded one.
//!
//! Placeholders in recordings (`<uid-3>`, `<rv-1>`, `work-<suffix-1>`, ...) bind to the actual
//! value the first time they are met; a bound uid/rv/suffix must then reappear exactly, and two
//! different ones must differ (so "resourceVersion unchanged" is checked). Times only have to
//! look like times: the recorder's clock and the fake's differ. Requests get bound values
//! substituted; an unbound time in a request becomes a fixed time in 2020 (before anything the
//! fake stamps, as the recorder's chosen times preceded the server's).

#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::time::Duration;

use http_body_util::BodyExt as _;
use serde_json::Value;

/// The namespace token every recorded `rec-<case>-<rand>` namespace gets here.
pub const RAND: &str = "fake";

/// One recording file.
pub struct Recording {
    pub doc: Value,
}

impl Recording {
    /// Loads `k8s-api/recordings/<file>.json`.
    pub fn load(file: &str) -> Self {
        let path = format!(
            "{}/k8s-api/recordings/{file}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self {
            doc: serde_json::from_str(&text).expect("recording is JSON"),
        }
    }

    pub fn request(&self, step: usize) -> &Value {
        &self.doc["steps"][step]["request"]
    }

    pub fn response(&self, step: usize) -> &Value {
        &self.doc["steps"][step]["response"]
    }
}

/// Placeholder → actual value, per recording.
#[derive(Default)]
pub struct Bindings {
    map: HashMap<String, String>,
}

fn class(placeholder: &str) -> &str {
    placeholder
        .trim_start_matches('<')
        .trim_end_matches('>')
        .rsplit_once('-')
        .map_or("", |(c, _)| c)
}

/// Splits a recorded string into literal text and `<class-N>` placeholders.
fn pieces(s: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let token = &rest[start..start + len + 1];
        let known = [
            "uid",
            "rv",
            "time",
            "microtime",
            "suffix",
            "continue",
            "token",
        ];
        if !known.contains(&class(token)) {
            out.push((false, rest[..start + len + 1].to_owned()));
            rest = &rest[start + len + 1..];
            continue;
        }
        if start > 0 {
            out.push((false, rest[..start].to_owned()));
        }
        out.push((true, token.to_owned()));
        rest = &rest[start + len + 1..];
    }
    if !rest.is_empty() {
        out.push((false, rest.to_owned()));
    }
    out
}

impl Bindings {
    /// A request string with `<rand>` and every placeholder replaced.
    pub fn substitute(&mut self, s: &str) -> String {
        let s = s.replace("<rand>", RAND);
        let mut out = String::new();
        for (is_placeholder, text) in pieces(&s) {
            if !is_placeholder {
                out.push_str(&text);
                continue;
            }
            let value = self.map.entry(text.clone()).or_insert_with(|| {
                let n: u32 = text
                    .trim_end_matches('>')
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                match class(&text) {
                    "time" => format!("2020-01-01T00:00:{:02}Z", n % 60),
                    "microtime" => format!("2020-01-01T00:00:{:02}.000000Z", n % 60),
                    other => panic!("request uses unbound placeholder {text} ({other})"),
                }
            });
            out.push_str(value);
        }
        out
    }

    /// A request body with every string substituted.
    pub fn substitute_json(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.substitute(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.substitute_json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (self.substitute(k), self.substitute_json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn bind(&mut self, placeholder: &str, actual: &str) -> Result<(), String> {
        let time_like = matches!(class(placeholder), "time" | "microtime");
        if time_like {
            let ok = actual
                .chars()
                .all(|c| c.is_ascii_digit() || "-:TZ.+".contains(c))
                && actual.len() >= 20;
            return if ok {
                self.map
                    .entry(placeholder.to_owned())
                    .or_insert_with(|| actual.to_owned());
                Ok(())
            } else {
                Err(format!("{placeholder}: {actual:?} is not a timestamp"))
            };
        }
        match self.map.get(placeholder) {
            Some(bound) if bound == actual => Ok(()),
            Some(bound) => Err(format!("{placeholder} was {bound:?}, now {actual:?}")),
            None => {
                if let Some((other, _)) = self
                    .map
                    .iter()
                    .find(|(p, v)| *v == actual && class(p) == class(placeholder))
                {
                    return Err(format!(
                        "{placeholder} and {other} must differ but both are {actual:?}"
                    ));
                }
                self.map.insert(placeholder.to_owned(), actual.to_owned());
                Ok(())
            }
        }
    }

    /// The value bound to a placeholder (after it has been met in a response).
    pub fn get(&self, placeholder: &str) -> Option<&str> {
        self.map.get(placeholder).map(String::as_str)
    }

    fn match_str(&mut self, expected: &str, actual: &str) -> Result<(), String> {
        let expected = expected.replace("<rand>", RAND);
        let parts = pieces(&expected);
        let mut rest = actual;
        for (i, (is_placeholder, text)) in parts.iter().enumerate() {
            if !is_placeholder {
                rest = rest
                    .strip_prefix(text.as_str())
                    .ok_or_else(|| format!("expected {expected:?}, got {actual:?}"))?;
                continue;
            }
            let end = match parts.get(i + 1) {
                Some((false, next)) => rest
                    .find(next.as_str())
                    .ok_or_else(|| format!("expected {expected:?}, got {actual:?}"))?,
                _ => rest.len(),
            };
            self.bind(text, &rest[..end])?;
            rest = &rest[end..];
        }
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!("expected {expected:?}, got {actual:?}"))
        }
    }

    /// Compares a recorded JSON value with an actual one; returns the differences.
    pub fn compare(&mut self, expected: &Value, actual: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(expected, actual, "", &mut out);
        out
    }

    fn walk(&mut self, expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
        match (expected, actual) {
            (Value::String(e), Value::String(a)) => {
                if let Err(why) = self.match_str(e, a) {
                    out.push(format!("{path}: {why}"));
                }
            }
            (Value::Object(e), Value::Object(a)) => {
                let keys: std::collections::BTreeSet<&String> = e.keys().chain(a.keys()).collect();
                for key in keys.into_iter().filter(|k| *k != "managedFields") {
                    let p = format!("{path}.{key}");
                    match (e.get(key), a.get(key)) {
                        (Some(ev), Some(av)) => self.walk(ev, av, &p, out),
                        (Some(ev), None) => out.push(format!("{p}: missing (expected {ev})")),
                        (None, Some(av)) => out.push(format!("{p}: unexpected {av}")),
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
                for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                    self.walk(ev, av, &format!("{path}[{i}]"), out);
                }
            }
            (e, a) if e == a => {}
            (e, a) => out.push(format!("{path}: expected {e}, got {a}")),
        }
    }
}

/// The answer to one request.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// Sends a recorded request (placeholders substituted) through `client`.
pub async fn send(client: &kube::Client, request: &Value, b: &mut Bindings) -> Answer {
    let mut uri = b.substitute(request["path"].as_str().unwrap_or("/"));
    let query: Vec<String> = request["query"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let v = b.substitute(v.as_str().unwrap_or(""));
            format!("{k}={}", v.replace('=', "%3D").replace(',', "%2C"))
        })
        .collect();
    if !query.is_empty() {
        uri = format!("{uri}?{}", query.join("&"));
    }
    let body = match &request["body"] {
        Value::Null => Vec::new(),
        v => serde_json::to_vec(&b.substitute_json(v)).expect("body serializes"),
    };
    let mut builder = http::Request::builder()
        .method(request["method"].as_str().unwrap_or("GET"))
        .uri(uri);
    if let Some(ct) = request["content_type"].as_str() {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    let response = client
        .send(
            builder
                .body(kube::client::Body::from(body))
                .expect("request"),
        )
        .await
        .expect("the fake answers every request");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = if request["query"]["watch"].is_string() {
        Value::Array(
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).expect("watch event"))
                .collect(),
        )
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Answer { status, body }
}

/// Removes what the recording's OpenShift-built apiserver added and upstream does not: the
/// `openshift-service-ca.crt` projection in the service-account volume (see k8s-api/README).
pub fn upstream(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Array(a) => {
                a.retain(|x| x["configMap"]["name"] != "openshift-service-ca.crt");
                a.iter_mut().for_each(walk);
            }
            Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// Sends step `step` and asserts the recorded status code and body.
pub async fn replay(client: &kube::Client, rec: &Recording, step: usize, b: &mut Bindings) {
    let answer = send(client, rec.request(step), b).await;
    let want = rec.response(step);
    let diff = b.compare(&upstream(want["body"].clone()), &answer.body);
    assert!(
        answer.status == want["status"] && diff.is_empty(),
        "{} step {step} ({}): status {} (recorded {}), differences: {diff:#?}\nbody: {}",
        rec.doc["case"],
        rec.doc["steps"][step]["note"],
        answer.status,
        want["status"],
        answer.body
    );
}

/// Like [`replay`], retrying for a few seconds while controllers catch up (the recorder also
/// waited before these reads).
pub async fn replay_eventually(
    client: &kube::Client,
    rec: &Recording,
    step: usize,
    b: &mut Bindings,
) {
    replay_eventually_adjusted(client, rec, step, b, |_| {}).await;
}

/// [`replay_eventually`] against a recorded body changed by `adjust` first (for a value the
/// recording shows in one of several orders a cluster can produce).
pub async fn replay_eventually_adjusted(
    client: &kube::Client,
    rec: &Recording,
    step: usize,
    b: &mut Bindings,
    adjust: impl Fn(&mut Value),
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let want = rec.response(step);
    let mut expected = upstream(want["body"].clone());
    adjust(&mut expected);
    loop {
        let answer = send(client, rec.request(step), b).await;
        // Compare on a scratch copy so a failed attempt binds nothing.
        let mut scratch = Bindings { map: b.map.clone() };
        let diff = scratch.compare(&expected, &answer.body);
        if answer.status == want["status"] && diff.is_empty() {
            *b = scratch;
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} step {step}: never matched; last differences: {diff:#?}\nbody: {}",
            rec.doc["case"],
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
