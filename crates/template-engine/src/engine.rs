//! Compiling (with a cache) and rendering procedure scripts with Tera, plus the filters and functions they use.
//!
//! Syntax detection: a template whose first line is exactly `{# tera #}` is Tera syntax (that line is removed
//! before compiling); every other template is Go `text/template` syntax and is translated (see [`crate::gotmpl`]).
//!
//! Secrets: values that come from Secrets are present in the render context only as markers
//! (`\u{E000}ENV_NAME\u{E001}`). `shell_quote` turns a marker into `"${ENV_NAME}"`, so the script reads the
//! value from the pod's environment (a `secretKeyRef` to the user's Secret) and the rendered ConfigMap never
//! contains it. Every other filter and function sees the real value (through a thread-local set for the duration
//! of one render), and a marker still present in the output (a raw `{{ .Params.password }}`) is replaced by the
//! real value afterwards, reported as a warning, so scripts written for the original keep working.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock, RwLock};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::gotmpl::{self, VarRef, line_col, line_starts};

/// First line that marks a template as Tera syntax.
pub const TERA_MARKER: &str = "{# tera #}";

const MARK_START: char = '\u{E000}';
const MARK_END: char = '\u{E001}';

/// The context value standing for the Secret value exposed to the pod as env var `env`.
pub(crate) fn marker(env: &str) -> String {
    format!("{MARK_START}{env}{MARK_END}")
}

/// `Some(env)` when `s` is exactly one marker.
pub(crate) fn as_marker(s: &str) -> Option<&str> {
    let inner = s.strip_prefix(MARK_START)?.strip_suffix(MARK_END)?;
    (!inner.contains(MARK_START) && !inner.contains(MARK_END)).then_some(inner)
}

/// Whether `s` contains a marker anywhere.
pub(crate) fn has_marker(s: &str) -> bool {
    s.contains(MARK_START)
}

/// Splits `s` into literal text and markers: `(text, None)` or `("", Some(env))` pieces, in order.
fn marker_pieces(s: &str) -> Vec<(&str, Option<&str>)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(MARK_START) {
        let Some(end_rel) = rest[start..].find(MARK_END) else {
            break;
        };
        let end = start + end_rel;
        if start > 0 {
            out.push((&rest[..start], None));
        }
        out.push(("", Some(&rest[start + MARK_START.len_utf8()..end])));
        rest = &rest[end + MARK_END.len_utf8()..];
    }
    if !rest.is_empty() {
        out.push((rest, None));
    }
    out
}

thread_local! {
    /// Real values of the markers of the render running on this thread (env name → value).
    static SECRET_VALUES: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// Installs the secret values for one render and removes them when dropped (also on error/panic).
struct SecretScope;

impl SecretScope {
    fn new(values: &[(String, String)]) -> SecretScope {
        SECRET_VALUES.with(|v| {
            let mut v = v.borrow_mut();
            v.clear();
            v.extend(values.iter().cloned());
        });
        SecretScope
    }
}

impl Drop for SecretScope {
    fn drop(&mut self) {
        SECRET_VALUES.with(|v| v.borrow_mut().clear());
    }
}

/// Replaces every marker in `s` with its real value (from the current render's secret values).
fn reveal(s: &str) -> String {
    if !has_marker(s) {
        return s.to_string();
    }
    SECRET_VALUES.with(|values| {
        let values = values.borrow();
        let mut out = String::with_capacity(s.len());
        for (text, env) in marker_pieces(s) {
            match env {
                None => out.push_str(text),
                Some(env) => match values.iter().find(|(e, _)| e == env) {
                    Some((_, v)) => out.push_str(v),
                    // Unknown marker (cannot happen for values we injected): keep the env reference.
                    None => out.push_str(&format!("${{{env}}}")),
                },
            }
        }
        out
    })
}

/// Like [`reveal`], recursively on every string in a value.
fn reveal_value(v: &Value) -> Value {
    match v {
        Value::String(s) if has_marker(s) => Value::String(reveal(s)),
        Value::Array(a) => Value::Array(a.iter().map(reveal_value).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), reveal_value(v)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Value helpers with Go semantics

/// Go's string form of a value (`fmt.Sprint`-like; null prints as empty, as Tera does).
fn to_go_string(v: &Value) -> String {
    match v {
        Value::String(s) => reveal(s),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => serde_json::to_string(&reveal_value(other)).unwrap_or_default(),
    }
}

/// Go/sprig emptiness: nil, false, 0, "", empty list or map.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// POSIX single-quoting: `'` + value with every `'` written as `'"'"'` + `'`. Markers become `"${ENV}"`, a
/// double-quoted expansion whose result the shell never re-parses.
pub fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    // Most values hold no marker: quote them without splitting (this runs for every value of every render).
    if !has_marker(s) {
        push_single_quoted(&mut out, s);
        return out;
    }
    for (text, env) in marker_pieces(s) {
        match env {
            Some(env) => {
                out.push_str("\"${");
                out.push_str(env);
                out.push_str("}\"");
            }
            None => push_single_quoted(&mut out, text),
        }
    }
    out
}

/// `'text'` with every `'` written as `'"'"'`, appended without intermediate strings.
fn push_single_quoted(out: &mut String, text: &str) {
    out.push('\'');
    for (i, part) in text.split('\'').enumerate() {
        if i > 0 {
            out.push_str("'\"'\"'");
        }
        out.push_str(part);
    }
    out.push('\'');
}

/// Go's `%q` (strconv.Quote): double quotes, backslash escapes for quotes, backslashes and control characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// sprig `indent`: prefix every line (including empty ones and the one after a trailing newline) with n spaces.
pub fn go_indent(n: usize, s: &str) -> String {
    let pad = " ".repeat(n);
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

/// sprig `toYaml`: YAML of the value, without the trailing newline.
fn to_yaml(v: &Value) -> Result<String, String> {
    let s = serde_saphyr::to_string(&reveal_value(v)).map_err(|e| e.to_string())?;
    Ok(s.trim_end_matches('\n').to_string())
}

fn as_usize(v: &Value, what: &str) -> Result<usize, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| format!("{what} must be a non-negative integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{what} must be a non-negative integer")),
        _ => Err(format!("{what} must be a non-negative integer")),
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(reveal(x).cmp(&reveal(y))),
        _ => None,
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => reveal(x) == reveal(y),
        (x, y) => x == y,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Go functions (called as go_<name>(a0=.., a1=.., at="line:col"))

fn positional(args: &HashMap<String, Value>) -> Vec<&Value> {
    let mut out = Vec::new();
    while let Some(v) = args.get(&format!("a{}", out.len())) {
        out.push(v);
    }
    out
}

fn go_function(name: &'static str) -> impl Fn(&HashMap<String, Value>) -> tera::Result<Value> {
    move |args: &HashMap<String, Value>| {
        let at = args.get("at").and_then(Value::as_str).unwrap_or("?");
        let a = positional(args);
        call_go(name, &a).map_err(|m| {
            let (line, col) = at.split_once(':').unwrap_or((at, "?"));
            tera::Error::msg(format!("line {line}, column {col}: {name}: {m}"))
        })
    }
}

fn need(a: &[&Value], n: usize, usage: &str) -> Result<(), String> {
    if a.len() == n {
        Ok(())
    } else {
        Err(format!("wrong number of arguments: expected {usage}"))
    }
}

fn s(v: &Value) -> String {
    to_go_string(v)
}

fn call_go(name: &str, a: &[&Value]) -> Result<Value, String> {
    Ok(match name {
        "truth" => Value::Bool(a.first().is_some_and(|v| !is_empty(v))),
        "not" => {
            need(a, 1, "not VALUE")?;
            Value::Bool(is_empty(a[0]))
        }
        "empty" => {
            need(a, 1, "empty VALUE")?;
            Value::Bool(is_empty(a[0]))
        }
        "and" => {
            if a.is_empty() {
                return Err("wrong number of arguments: expected and A B ...".into());
            }
            (*a.iter()
                .find(|v| is_empty(v))
                .unwrap_or(a.last().expect("non-empty")))
            .clone()
        }
        "or" => {
            if a.is_empty() {
                return Err("wrong number of arguments: expected or A B ...".into());
            }
            (*a.iter()
                .find(|v| !is_empty(v))
                .unwrap_or(a.last().expect("non-empty")))
            .clone()
        }
        "eq" => {
            if a.len() < 2 {
                return Err("wrong number of arguments: expected eq A B ...".into());
            }
            Value::Bool(a[1..].iter().any(|b| values_equal(a[0], b)))
        }
        "ne" => {
            need(a, 2, "ne A B")?;
            Value::Bool(!values_equal(a[0], a[1]))
        }
        "lt" | "le" | "gt" | "ge" => {
            need(a, 2, &format!("{name} A B"))?;
            let ord = compare(a[0], a[1])
                .ok_or("incompatible types for comparison (compare numbers with numbers, strings with strings)")?;
            use std::cmp::Ordering::*;
            Value::Bool(match name {
                "lt" => ord == Less,
                "le" => ord != Greater,
                "gt" => ord == Greater,
                _ => ord != Less,
            })
        }
        "len" => {
            need(a, 1, "len VALUE")?;
            Value::from(match a[0] {
                Value::String(x) => reveal(x).len(),
                Value::Array(x) => x.len(),
                Value::Object(x) => x.len(),
                Value::Null => 0,
                _ => return Err("len of a number or boolean".into()),
            })
        }
        "index" => {
            if a.is_empty() {
                return Err("wrong number of arguments: expected index COLLECTION KEY ...".into());
            }
            let mut cur = a[0].clone();
            for k in &a[1..] {
                cur = match (&cur, k) {
                    (Value::Object(o), Value::String(key)) => {
                        o.get(key.as_str()).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(arr), Value::Number(n)) => {
                        let i = n.as_u64().ok_or("index must be a non-negative integer")? as usize;
                        arr.get(i).cloned().ok_or_else(|| {
                            format!("index {i} out of range (length {})", arr.len())
                        })?
                    }
                    (Value::Null, _) => Value::Null,
                    _ => return Err("cannot index this value with that key".into()),
                };
            }
            cur
        }
        "pairs" => {
            need(a, 1, "range VALUE")?;
            match a[0] {
                Value::Object(o) => {
                    let mut keys: Vec<&String> = o.keys().collect();
                    keys.sort();
                    Value::Array(
                        keys.into_iter()
                            .map(|k| Value::Array(vec![Value::String(k.clone()), o[k].clone()]))
                            .collect(),
                    )
                }
                Value::Array(arr) => Value::Array(
                    arr.iter()
                        .enumerate()
                        .map(|(i, v)| Value::Array(vec![Value::from(i), v.clone()]))
                        .collect(),
                ),
                Value::Null => Value::Array(Vec::new()),
                Value::Number(n) if n.as_u64().is_some() => Value::Array(
                    (0..n.as_u64().unwrap_or(0))
                        .map(|i| Value::Array(vec![Value::from(i), Value::from(i)]))
                        .collect(),
                ),
                _ => return Err("range can't iterate over a string or boolean".into()),
            }
        }
        "print" => {
            let mut out = String::new();
            for (i, v) in a.iter().enumerate() {
                if i > 0 && !v.is_string() && !a[i - 1].is_string() {
                    out.push(' ');
                }
                out.push_str(&s(v));
            }
            Value::String(out)
        }
        "println" => {
            let parts: Vec<String> = a.iter().map(|v| s(v)).collect();
            Value::String(format!("{}\n", parts.join(" ")))
        }
        "toString" => {
            need(a, 1, "toString VALUE")?;
            Value::String(s(a[0]))
        }
        "default" => {
            need(a, 2, "default DEFAULT VALUE")?;
            if is_empty(a[1]) {
                a[0].clone()
            } else {
                a[1].clone()
            }
        }
        "required" => {
            need(a, 2, "required MESSAGE VALUE")?;
            match a[1] {
                Value::Null => return Err(s(a[0])),
                Value::String(x) if x.is_empty() => return Err(s(a[0])),
                v => v.clone(),
            }
        }
        "b64enc" => {
            need(a, 1, "b64enc STRING")?;
            Value::String(base64::engine::general_purpose::STANDARD.encode(s(a[0])))
        }
        "b64dec" => {
            need(a, 1, "b64dec STRING")?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s(a[0]).trim())
                .map_err(|_| "argument is not valid base64")?;
            Value::String(String::from_utf8(bytes).map_err(|_| "decoded value is not UTF-8 text")?)
        }
        "quote" => Value::String(
            a.iter()
                .map(|v| go_quote(&s(v)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => Value::String(
            a.iter()
                .map(|v| format!("'{}'", s(v)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "shell_quote" => {
            need(a, 1, "shell_quote VALUE")?;
            Value::String(shell_quote_value(a[0]))
        }
        "indent" => {
            need(a, 2, "indent N STRING")?;
            Value::String(go_indent(as_usize(a[0], "the indent width")?, &s(a[1])))
        }
        "nindent" => {
            need(a, 2, "nindent N STRING")?;
            Value::String(format!(
                "\n{}",
                go_indent(as_usize(a[0], "the indent width")?, &s(a[1]))
            ))
        }
        "toYaml" => {
            need(a, 1, "toYaml VALUE")?;
            Value::String(to_yaml(a[0])?)
        }
        "upper" => {
            need(a, 1, "upper STRING")?;
            Value::String(s(a[0]).to_uppercase())
        }
        "lower" => {
            need(a, 1, "lower STRING")?;
            Value::String(s(a[0]).to_lowercase())
        }
        "trim" => {
            need(a, 1, "trim STRING")?;
            Value::String(s(a[0]).trim().to_string())
        }
        "replace" => {
            need(a, 3, "replace OLD NEW STRING")?;
            Value::String(s(a[2]).replace(&s(a[0]), &s(a[1])))
        }
        "contains" => {
            need(a, 2, "contains SUBSTRING STRING")?;
            Value::Bool(s(a[1]).contains(&s(a[0])))
        }
        "hasPrefix" => {
            need(a, 2, "hasPrefix PREFIX STRING")?;
            Value::Bool(s(a[1]).starts_with(&s(a[0])))
        }
        "hasSuffix" => {
            need(a, 2, "hasSuffix SUFFIX STRING")?;
            Value::Bool(s(a[1]).ends_with(&s(a[0])))
        }
        "trimPrefix" => {
            need(a, 2, "trimPrefix PREFIX STRING")?;
            let (p, x) = (s(a[0]), s(a[1]));
            Value::String(x.strip_prefix(&p).unwrap_or(&x).to_string())
        }
        "trimSuffix" => {
            need(a, 2, "trimSuffix SUFFIX STRING")?;
            let (p, x) = (s(a[0]), s(a[1]));
            Value::String(x.strip_suffix(&p).unwrap_or(&x).to_string())
        }
        "trunc" => {
            need(a, 2, "trunc N STRING")?;
            let x = s(a[1]);
            let n = a[0].as_i64().ok_or("the length must be an integer")?;
            let chars: Vec<char> = x.chars().collect();
            let len = chars.len() as i64;
            Value::String(if n >= 0 {
                chars[..n.min(len) as usize].iter().collect()
            } else {
                chars[(len + n).max(0) as usize..].iter().collect()
            })
        }
        other => return Err(format!("function {other:?} is not implemented")),
    })
}

/// `shell_quote` of a value's string form WITHOUT revealing markers (shell_quote handles them itself).
fn shell_quote_value(v: &Value) -> String {
    match v {
        Value::String(s) => shell_quote(s),
        other => shell_quote(&to_go_string(other)),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tera filters (for Tera-syntax templates)

type FilterArgs = HashMap<String, Value>;

fn width_arg(args: &FilterArgs, filter: &str) -> tera::Result<usize> {
    let v = args.get("n").or_else(|| args.get("width")).ok_or_else(|| {
        tera::Error::msg(format!("filter {filter} needs the width: {filter}(n=4)"))
    })?;
    as_usize(v, "the indent width").map_err(tera::Error::msg)
}

fn register_all(t: &mut tera::Tera) {
    t.register_filter("shell_quote", |v: &Value, _: &FilterArgs| {
        Ok(Value::String(shell_quote_value(v)))
    });
    t.register_filter("b64enc", |v: &Value, _: &FilterArgs| {
        Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(to_go_string(v)),
        ))
    });
    t.register_filter("quote", |v: &Value, _: &FilterArgs| {
        Ok(Value::String(go_quote(&to_go_string(v))))
    });
    t.register_filter("toYaml", |v: &Value, _: &FilterArgs| {
        to_yaml(v).map(Value::String).map_err(tera::Error::msg)
    });
    t.register_filter("indent", |v: &Value, args: &FilterArgs| {
        let n = width_arg(args, "indent")?;
        Ok(Value::String(go_indent(n, &to_go_string(v))))
    });
    t.register_filter("nindent", |v: &Value, args: &FilterArgs| {
        let n = width_arg(args, "nindent")?;
        Ok(Value::String(format!(
            "\n{}",
            go_indent(n, &to_go_string(v))
        )))
    });
    // Tera's own `default` only covers undefined/null; this one also replaces empty values (sprig semantics).
    t.register_filter("default_if_empty", |v: &Value, args: &FilterArgs| {
        let d = args.get("value").ok_or_else(|| {
            tera::Error::msg("filter default_if_empty needs value=: default_if_empty(value=\"x\")")
        })?;
        Ok(if is_empty(v) { d.clone() } else { v.clone() })
    });
    for name in gotmpl::FUNCTIONS {
        t.register_function(&format!("go_{name}"), go_function(name));
    }
    t.register_function("go_truth", go_function("truth"));
    t.register_function("go_pairs", go_function("pairs"));
}

// ---------------------------------------------------------------------------------------------------------
// Compilation cache

/// Template syntax, detected from the first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Go `text/template`, as written for the original operator.
    Go,
    /// Tera (first line `{# tera #}`).
    Tera,
}

/// Detects the syntax of a template source.
pub fn detect_syntax(src: &str) -> Syntax {
    let first = src.lines().next().unwrap_or("");
    if first.trim() == TERA_MARKER {
        Syntax::Tera
    } else {
        Syntax::Go
    }
}

/// A compiled template, cached by (name, source).
pub(crate) struct Compiled {
    name: String,
    source: String,
    syntax: Syntax,
    tera: tera::Tera,
    refs: Vec<VarRef>,
    line_starts: Vec<usize>,
    needs_root: bool,
}

type Cache = RwLock<HashMap<u64, Vec<Arc<Compiled>>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Templates kept compiled at most; the cache is emptied when full (templates change rarely).
const CACHE_LIMIT: usize = 512;
/// Versions kept per (name, length) key: editing a template without changing its length lands in the same key.
const BUCKET_LIMIT: usize = 8;

/// Only the name and the source length: hashing the whole source on every render cost as much as the rest of
/// the lookup. Entries are matched by comparing the full source, so a collision only costs a comparison.
fn cache_key(name: &str, src: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    src.len().hash(&mut h);
    h.finish()
}

/// Compiles a template (or returns the cached compilation).
pub(crate) fn compile(name: &str, src: &str) -> Result<Arc<Compiled>, Error> {
    let key = cache_key(name, src);
    if let Ok(map) = cache().read()
        && let Some(hit) = map
            .get(&key)
            .and_then(|v| v.iter().find(|c| c.name == name && c.source == src))
    {
        return Ok(hit.clone());
    }
    let compiled = Arc::new(compile_uncached(name, src)?);
    if let Ok(mut map) = cache().write() {
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        let bucket = map.entry(key).or_default();
        if bucket.len() >= BUCKET_LIMIT {
            bucket.clear();
        }
        bucket.push(compiled.clone());
    }
    Ok(compiled)
}

fn compile_uncached(name: &str, src: &str) -> Result<Compiled, Error> {
    let syntax = detect_syntax(src);
    let starts = line_starts(src);
    let (tera_src, refs, needs_root) = match syntax {
        Syntax::Go => {
            let t = gotmpl::translate(src).map_err(|e| {
                let (line, column) = line_col(src, &starts, e.offset);
                Error::TemplateSyntax {
                    template: name.to_string(),
                    line,
                    column,
                    message: e.message,
                }
            })?;
            (t.tera, t.refs, t.needs_root)
        }
        Syntax::Tera => {
            // Drop the marker line (keep the rest byte-identical).
            let body = src.split_once('\n').map(|(_, rest)| rest).unwrap_or("");
            (body.to_string(), Vec::new(), false)
        }
    };
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    register_all(&mut tera);
    tera.add_raw_template(name, &tera_src).map_err(|e| {
        let msg = error_chain(&e);
        // Tera reports "--> line:col" relative to what it parsed; for Tera syntax add the marker line back.
        let (line, column) = parse_tera_position(&msg)
            .map(|(l, c)| (if syntax == Syntax::Tera { l + 1 } else { l }, c))
            .unwrap_or((1, 1));
        Error::TemplateSyntax {
            template: name.to_string(),
            line,
            column,
            message: format!(
                "{} syntax error: {}",
                if syntax == Syntax::Tera {
                    "Tera"
                } else {
                    "Go-template (translated)"
                },
                msg.lines()
                    .filter(|l| !l.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    })?;
    Ok(Compiled {
        name: name.to_string(),
        source: src.to_string(),
        syntax,
        tera,
        refs,
        line_starts: starts,
        needs_root,
    })
}

fn parse_tera_position(msg: &str) -> Option<(usize, usize)> {
    let idx = msg.find("--> ")?;
    let rest = &msg[idx + 4..];
    let (l, rest) = rest.split_once(':')?;
    let c: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((l.trim().parse().ok()?, c.parse().ok()?))
}

/// All messages of an error and its sources, outermost first.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

// ---------------------------------------------------------------------------------------------------------
// Rendering

/// Explains, for a missing variable path, which sources were consulted and how to provide it.
pub(crate) trait MissingHint {
    /// (reason, fix) for the full dotted path `path` (e.g. `Params.password`).
    fn hint(&self, path: &str) -> (String, String);
}

/// The result of one render.
pub(crate) struct Rendered {
    pub text: String,
    /// Env names of Secret values that were pasted raw into the output (and therefore stored in the ConfigMap).
    pub pasted_secrets: Vec<String>,
}

/// Renders a compiled template with the given variables.
#[cfg(test)]
pub(crate) fn render(
    c: &Compiled,
    vars: &Value,
    secrets: &[(String, String)],
    hint: &dyn MissingHint,
) -> Result<Rendered, Error> {
    let ctx = context(&c.name, vars.clone())?;
    render_with_context(c, &ctx, secrets, hint)
}

/// The Tera context of the variables (built once and shared by the renders of one ScheduledBackup). Takes
/// the variables by value: copying them was a noticeable part of a render.
pub(crate) fn context(template: &str, vars: Value) -> Result<tera::Context, Error> {
    tera::Context::from_value(vars).map_err(|e| Error::RenderFailed {
        template: template.to_string(),
        message: format!("the variables are not a map: {e}"),
    })
}

/// Renders a compiled template with a prepared context.
pub(crate) fn render_with_context(
    c: &Compiled,
    ctx: &tera::Context,
    secrets: &[(String, String)],
    hint: &dyn MissingHint,
) -> Result<Rendered, Error> {
    let rooted;
    let ctx_for_render = if c.needs_root {
        // `$` / `.` as a whole: the variables once more under ROOT_VAR (moved in, not serialised again).
        let vars = ctx.clone().into_json();
        let mut with_root = vars.as_object().cloned().unwrap_or_default();
        with_root.insert(gotmpl::ROOT_VAR.to_string(), vars);
        rooted = context(&c.name, Value::Object(with_root))?;
        &rooted
    } else {
        ctx
    };
    let result = {
        let _scope = SecretScope::new(secrets);
        c.tera.render(&c.name, ctx_for_render)
    };
    // The variables as a value only for the error message (never on the success path).
    let text = result.map_err(|e| map_render_error(c, &e, &ctx.clone().into_json(), hint))?;
    // Replace markers printed raw (no shell_quote): the original pasted values into scripts as well.
    // Exception: a marker that is the whole content of a double-quoted word (`"{{ .Repository.token }}"`)
    // becomes `"${ENV}"`, which yields the same value for every value that pasting handled correctly (no `$`,
    // `` ` ``, `\` or `"`) and keeps the Secret out of the ConfigMap.
    let mut pasted = Vec::new();
    if has_marker(&text) {
        let mut out = String::with_capacity(text.len());
        let pieces = marker_pieces(&text);
        for (i, (piece, env)) in pieces.iter().enumerate() {
            let quoted_before =
                i > 0 && pieces[i - 1].1.is_none() && pieces[i - 1].0.ends_with('"');
            let quoted_after = pieces
                .get(i + 1)
                .is_some_and(|(p, e)| e.is_none() && p.starts_with('"'));
            match env {
                None => out.push_str(piece),
                Some(env) if quoted_before && quoted_after => {
                    out.push_str("${");
                    out.push_str(env);
                    out.push('}');
                }
                Some(env) => {
                    match secrets.iter().find(|(e, _)| e == env) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&format!("${{{env}}}")),
                    }
                    if !pasted.iter().any(|p| p == env) {
                        pasted.push(env.to_string());
                    }
                }
            }
        }
        return Ok(Rendered {
            text: out,
            pasted_secrets: pasted,
        });
    }
    Ok(Rendered {
        text,
        pasted_secrets: pasted,
    })
}

/// Extracts the variable of Tera's "Variable `x` not found in context" message.
fn missing_variable(msg: &str) -> Option<&str> {
    let start = msg.find("Variable `")? + "Variable `".len();
    let end = msg[start..].find("` not found in context")?;
    Some(&msg[start..start + end])
}

/// Splits a Tera path (`a.b`, `a["b-c"]`, `a.0`) into segments.
fn path_segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(rest[..i].to_string());
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                out.push(stripped[..end].trim_matches(['"', '\'']).to_string());
                rest = &stripped[end + 1..];
            }
        } else {
            out.push(rest.to_string());
        }
    }
    out
}

/// Index of the first segment of `path` that `vars` does not have.
fn first_missing(vars: &Value, path: &[String]) -> usize {
    let mut cur = vars;
    for (i, seg) in path.iter().enumerate() {
        match cur {
            Value::Object(o) => match o.get(seg) {
                Some(v) => cur = v,
                None => return i,
            },
            Value::Array(a) => match seg.parse::<usize>().ok().and_then(|n| a.get(n)) {
                Some(v) => cur = v,
                None => return i,
            },
            _ => return i,
        }
    }
    path.len().saturating_sub(1)
}

fn map_render_error(c: &Compiled, e: &tera::Error, vars: &Value, hint: &dyn MissingHint) -> Error {
    let chain = error_chain(e);
    if let Some(var) = missing_variable(&chain) {
        let segs = path_segments(var);
        match c.syntax {
            Syntax::Go => {
                if let Some(r) = c.refs.iter().find(|r| r.tera_path == var) {
                    let (miss, vars_path) = match &r.vars_path {
                        Some(vp) => (first_missing(vars, vp), Some(vp.join("."))),
                        None => (
                            segs.len()
                                .saturating_sub(1)
                                .min(r.segment_offsets.len().saturating_sub(1)),
                            None,
                        ),
                    };
                    let offset = r
                        .segment_offsets
                        .get(miss.min(r.segment_offsets.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or(r.offset);
                    let (line, column) = line_col(&c.source, &c.line_starts, offset);
                    let (reason, fix) = match &vars_path {
                        Some(p) => hint.hint(p),
                        None => (
                            format!("the value {} refers to has no such key", r.go_text),
                            "check the key name, or guard the reference with {{ if }}".to_string(),
                        ),
                    };
                    return Error::MissingVariable {
                        template: c.name.clone(),
                        line,
                        column,
                        expression: format!("`{}`", r.go_text),
                        reason,
                        fix,
                    };
                }
            }
            Syntax::Tera => {
                let miss = first_missing(vars, &segs);
                let (line, column) = find_in_source(&c.source, var, &segs, miss, &c.line_starts);
                let (reason, fix) = hint.hint(&segs.join("."));
                return Error::MissingVariable {
                    template: c.name.clone(),
                    line,
                    column,
                    expression: format!("`{var}`"),
                    reason,
                    fix,
                };
            }
        }
    }
    // Other failures: the deepest message is ours (function errors carry the position) or Tera's.
    let deepest = {
        let mut cur: &dyn std::error::Error = e;
        while let Some(s) = cur.source() {
            cur = s;
        }
        cur.to_string()
    };
    Error::RenderFailed {
        template: c.name.clone(),
        message: deepest,
    }
}

/// Position of segment `miss` of the first whole-word occurrence of `var` in a Tera source.
fn find_in_source(
    src: &str,
    var: &str,
    segs: &[String],
    miss: usize,
    starts: &[usize],
) -> (usize, usize) {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let mut from = 0;
    while let Some(i) = src[from..].find(var).map(|i| i + from) {
        let before_ok = src[..i].chars().next_back().is_none_or(|c| !is_word(c));
        let after_ok = src[i + var.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if before_ok && after_ok {
            // Point at the `.` before the missing segment, as for Go templates.
            let prefix_len: usize = segs[..miss.min(segs.len())]
                .iter()
                .map(|s| s.len() + 1)
                .sum::<usize>()
                .saturating_sub(1);
            return line_col(src, starts, (i + prefix_len).min(src.len()));
        }
        from = i + var.len();
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoHint;
    impl MissingHint for NoHint {
        fn hint(&self, path: &str) -> (String, String) {
            (format!("nothing provides {path}"), "provide it".into())
        }
    }

    fn render_src(src: &str, vars: Value) -> Result<String, Error> {
        let c = compile("t", src)?;
        render(&c, &vars, &[], &NoHint).map(|r| r.text)
    }

    #[test]
    fn shell_quote_escapes_single_quotes_posix_style() {
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn shell_quote_escapes_every_quote_also_next_to_markers_and_at_the_ends() {
        assert_eq!(shell_quote("''"), r#"''"'"''"'"''"#);
        assert_eq!(
            shell_quote(&format!("x'{}'y", marker("E"))),
            r#"'x'"'"''"${E}"''"'"'y'"#
        );
        assert_eq!(shell_quote_value(&serde_json::json!(5432)), "'5432'");
    }

    #[test]
    fn shell_quote_of_a_marker_is_a_double_quoted_env_expansion() {
        assert_eq!(shell_quote(&marker("BMC_X")), "\"${BMC_X}\"");
        assert_eq!(shell_quote(&format!("a{}b", marker("E"))), "'a'\"${E}\"'b'");
    }

    #[test]
    fn go_quote_matches_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c\n\t\u{1}é"), "\"a\\\"b\\\\c\\n\\t\\x01é\"");
    }

    #[test]
    fn indent_prefixes_every_line_including_empty_ones() {
        assert_eq!(go_indent(2, "a\n\nb\n"), "  a\n  \n  b\n  ");
    }

    #[test]
    fn sprig_filters_work_in_go_templates() {
        let vars = serde_json::json!({"A": "x\ny", "E": "", "M": {"k": "v"}, "N": 0});
        assert_eq!(
            render_src("{{ .A | b64enc }}", vars.clone()).unwrap(),
            "eAp5"
        );
        assert_eq!(
            render_src("{{ .A | nindent 2 }}", vars.clone()).unwrap(),
            "\n  x\n  y"
        );
        assert_eq!(
            render_src("{{ indent 1 .A }}", vars.clone()).unwrap(),
            " x\n y"
        );
        assert_eq!(
            render_src("{{ .A | quote }}", vars.clone()).unwrap(),
            "\"x\\ny\""
        );
        assert_eq!(
            render_src("{{ .M | toYaml }}", vars.clone()).unwrap(),
            "k: v"
        );
        assert_eq!(
            render_src("{{ .E | default \"d\" }}", vars.clone()).unwrap(),
            "d"
        );
        assert_eq!(
            render_src("{{ .N | default 5 }}", vars.clone()).unwrap(),
            "5"
        );
        assert_eq!(
            render_src("{{ .Missing | default \"m\" }}", vars.clone()).unwrap(),
            "m"
        );
        assert_eq!(
            render_src("{{ .A | default \"d\" | shell_quote }}", vars.clone()).unwrap(),
            "'x\ny'"
        );
    }

    #[test]
    fn sprig_filters_work_in_tera_templates() {
        let vars = serde_json::json!({"A": "it's", "E": ""});
        let src = "{# tera #}\n{{ A | shell_quote }} {{ A | b64enc }} {{ A | quote }} {{ E | default_if_empty(value=\"d\") }}{{ A | nindent(n=1) }}";
        assert_eq!(
            render_src(src, vars).unwrap(),
            "'it'\"'\"'s' aXQncw== \"it's\" d\n it's"
        );
    }

    #[test]
    fn range_over_a_map_is_sorted_like_go() {
        let vars = serde_json::json!({"Env": {"b": "2", "a": "1", "c": "3"}});
        assert_eq!(
            render_src(
                "{{ range $k, $v := .Env }}{{ $k }}={{ $v }};{{ end }}",
                vars.clone()
            )
            .unwrap(),
            "a=1;b=2;c=3;"
        );
        assert_eq!(
            render_src("{{ range .Env }}{{ . }}{{ else }}none{{ end }}", vars).unwrap(),
            "123"
        );
        assert_eq!(
            render_src(
                "{{ range .Nothing }}x{{ else }}none{{ end }}",
                serde_json::json!({"Nothing": []})
            )
            .unwrap(),
            "none"
        );
    }

    #[test]
    fn the_original_chart_secret_template_renders() {
        let src = "data:\n    {{- if not .Values.isGPGSealedSecret }}\n    gpg-key: \"{{- .Values.gpgKeyContent | b64enc }}\"\n    {{- end }}\n    {{- if index .Values \"env\" }}\n    {{- with .Values.env }}\n    {{- range $key, $value := . }}\n    {{ $key }}: \"{{ $value | b64enc }}\"\n    {{- end }}\n    {{- end }}\n    {{- end }}\n";
        let vars = serde_json::json!({"Values": {"isGPGSealedSecret": false, "gpgKeyContent": "K", "env": {"B": "b", "A": "a"}}});
        assert_eq!(
            render_src(src, vars).unwrap(),
            "data:\n    gpg-key: \"Sw==\"\n    A: \"YQ==\"\n    B: \"Yg==\"\n"
        );
    }

    #[test]
    fn eq_not_and_or_follow_go_semantics() {
        let vars = serde_json::json!({"K": "CronJob", "P": 5432, "F": false});
        assert_eq!(
            render_src(
                "{{ if eq .K \"Job\" \"CronJob\" }}y{{ else }}n{{ end }}",
                vars.clone()
            )
            .unwrap(),
            "y"
        );
        assert_eq!(
            render_src("{{ if not .F }}y{{ end }}", vars.clone()).unwrap(),
            "y"
        );
        assert_eq!(
            render_src("{{ if and .K (not .F) }}y{{ end }}", vars.clone()).unwrap(),
            "y"
        );
        assert_eq!(
            render_src("{{ or .F .K }}", vars.clone()).unwrap(),
            "CronJob"
        );
        assert_eq!(
            render_src("{{ if gt .P 1000 }}big{{ end }}", vars).unwrap(),
            "big"
        );
    }

    #[test]
    fn missing_variable_in_go_template_names_the_original_position() {
        let src = "#!/bin/sh\n\n  {{ .Params.password }}";
        let e = render_src(src, serde_json::json!({"Params": {"user": "u"}})).unwrap_err();
        match e {
            Error::MissingVariable {
                line,
                column,
                expression,
                reason,
                ..
            } => {
                assert_eq!((line, column), (3, 13));
                assert_eq!(expression, "`.Params.password`");
                assert_eq!(reason, "nothing provides Params.password");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_variable_in_tera_template_names_the_original_line() {
        let src = "{# tera #}\n#!/bin/bash\nX={{ Params.password | shell_quote }}";
        let e = render_src(src, serde_json::json!({"Params": {}})).unwrap_err();
        match e {
            Error::MissingVariable { line, column, .. } => assert_eq!((line, column), (3, 12)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn function_errors_name_the_original_position() {
        let e = render_src(
            "\n {{ required \"set Params.db\" .Params.db }}",
            serde_json::json!({"Params": {"db": ""}}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "template \"t\": line 2, column 5: required: set Params.db"
        );
    }

    #[test]
    fn tera_syntax_errors_point_to_the_user_line() {
        let e = compile("bad", "{# tera #}\nok\n{{ x | }}").err().unwrap();
        match e {
            Error::TemplateSyntax { line, .. } => assert_eq!(line, 3),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn markers_printed_raw_are_replaced_by_the_real_value_and_reported() {
        let c = compile(
            "t",
            "p='{{ .P }}' q={{ .P | shell_quote }} b={{ .P | b64enc }}",
        )
        .unwrap();
        let vars = serde_json::json!({"P": marker("BMC_P")});
        let r = render(&c, &vars, &[("BMC_P".into(), "s3cret".into())], &NoHint).unwrap();
        assert_eq!(r.text, "p='s3cret' q=\"${BMC_P}\" b=czNjcmV0");
        assert_eq!(r.pasted_secrets, vec!["BMC_P".to_string()]);
    }

    #[test]
    fn a_marker_that_is_a_whole_double_quoted_word_becomes_an_env_expansion() {
        let c = compile("t2", "export T=\"{{ .T }}\"; U=\"x{{ .T }}\"").unwrap();
        let vars = serde_json::json!({"T": marker("BM_AUTH_TOKEN")});
        let r = render(
            &c,
            &vars,
            &[("BM_AUTH_TOKEN".into(), "tok".into())],
            &NoHint,
        )
        .unwrap();
        assert_eq!(r.text, "export T=\"${BM_AUTH_TOKEN}\"; U=\"xtok\"");
        assert_eq!(r.pasted_secrets, vec!["BM_AUTH_TOKEN".to_string()]);
    }

    #[test]
    fn compiled_templates_are_cached() {
        let a = compile("cache-test", "{{ .X }}").unwrap();
        let b = compile("cache-test", "{{ .X }}").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Same name and length, different source: a different template, and both stay cached.
        let c = compile("cache-test", "{{ .Y }}").unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(Arc::ptr_eq(&a, &compile("cache-test", "{{ .X }}").unwrap()));
        assert!(Arc::ptr_eq(&c, &compile("cache-test", "{{ .Y }}").unwrap()));
    }

    #[test]
    fn root_dot_can_be_ranged() {
        assert_eq!(
            render_src(
                "{{ range $k, $v := . }}{{ $k }}{{ end }}",
                serde_json::json!({"b": 1, "a": 2})
            )
            .unwrap(),
            "ab"
        );
    }
}
