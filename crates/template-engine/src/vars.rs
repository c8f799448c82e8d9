//! Building the variables a procedure template is rendered with.
//!
//! Precedence, lowest first (later sources win):
//! 1. template defaults (built-in templates only);
//! 2. `spec.vars` (YAML; empty means an empty map);
//! 3. injected values: `Repository.token` (from the token Secret), `Repository.collectionId` (from
//!    `spec.collectionId`, only when the vars lack it), `Repository.recipient` (from `gpgKeySecretRef.email`,
//!    only when the vars lack it), `Repository.targetVersion` (from an action);
//! 4. vars-Secret keys (dotted paths, string values; only `importOnlyKeys` when given), applied sorted with
//!    shorter paths first so the result never depends on map order;
//! 5. `Repository.encryptionKeyPath` is always `/mnt/secrets/gpg-key` (where the key is mounted), as in bmg.
//!
//! Values from Secrets are markers (see [`crate::engine`]); their real values travel separately.

use std::collections::BTreeMap;

use crd_types::ScheduledBackup;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};

use crate::engine::{self, MissingHint};
use crate::error::Error;

/// Where the GPG key is mounted in the pod.
pub const GPG_KEY_PATH: &str = "/mnt/secrets/gpg-key";
/// Env var carrying the Backup Repository token.
pub const TOKEN_ENV: &str = "BM_AUTH_TOKEN";

/// A value taken from a Secret, exposed to the pod as an env var via `secretKeyRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretValue {
    /// Env var name in the pod (`BM_AUTH_TOKEN`, `BMC_PARAMS_PASSWORD`).
    pub env: String,
    /// The real value (never logged, never copied into an object).
    pub value: String,
    /// The user's Secret.
    pub secret: String,
    /// The data key in it.
    pub key: String,
}

/// The merged variables plus everything needed to explain and wire them.
#[derive(Debug, Clone)]
pub(crate) struct Vars {
    /// The render context (an object).
    pub root: Value,
    /// Values from Secrets, in a deterministic order (token first, then by path).
    pub secrets: Vec<SecretValue>,
    /// For error messages.
    pub sources: Sources,
}

/// What was consulted, for "how to provide a missing variable" messages.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub sb: String,
    pub vars_secret: Option<String>,
    pub import_only_keys: Vec<String>,
}

impl MissingHint for Sources {
    fn hint(&self, path: &str) -> (String, String) {
        let base = format!("spec.vars of ScheduledBackup {} has no `{path}`", self.sb);
        match &self.vars_secret {
            None => (
                format!("{base} and spec.varsSecretRef is not set"),
                format!(
                    "set `{path}` in spec.vars, or (for a password) store it in a Secret under the key `{path}` and reference that Secret in spec.varsSecretRef.secretName"
                ),
            ),
            Some(secret) if !self.import_only_keys.is_empty() => (
                format!(
                    "{base}, and the vars Secret `{secret}` is imported only for the keys listed in spec.varsSecretRef.importOnlyKeys ({})",
                    self.import_only_keys.join(", ")
                ),
                format!(
                    "add a key `{path}` to Secret `{secret}` and add `{path}` to spec.varsSecretRef.importOnlyKeys, or set `{path}` in spec.vars"
                ),
            ),
            Some(secret) => (
                format!("{base}, and the vars Secret `{secret}` has no key `{path}`"),
                format!("add a key `{path}` to Secret `{secret}`, or set `{path}` in spec.vars"),
            ),
        }
    }
}

/// `namespace/name` of an object, for messages.
pub(crate) fn object_ref(ns: Option<&str>, name: Option<&str>) -> String {
    match (ns, name) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.to_string(),
        _ => "<unnamed>".to_string(),
    }
}

/// All data of a Secret as text (`stringData` over `data`, as the API server merges them).
fn secret_entries(secret: &Secret) -> BTreeMap<String, Result<String, ()>> {
    let mut out = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8(v.0.clone()).map_err(|_| ()));
    }
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), Ok(v.clone()));
    }
    out
}

/// Env var name for a vars-Secret key: `BMC_` + the path upper-cased, non-alphanumerics as `_`.
pub fn env_name_for_path(path: &str) -> String {
    let mut s = String::with_capacity(path.len() + 4);
    s.push_str("BMC_");
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_uppercase());
        } else {
            s.push('_');
        }
    }
    s
}

type VarsCache = std::sync::RwLock<std::collections::HashMap<String, Map<String, Value>>>;

/// Parsed `spec.vars` by text: a ScheduledBackup is re-rendered on every reconcile with the same vars.
fn vars_cache() -> &'static VarsCache {
    static CACHE: std::sync::OnceLock<VarsCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Distinct `spec.vars` texts kept parsed; the cache is emptied when full.
const VARS_CACHE_LIMIT: usize = 1024;

/// Parses `spec.vars` (cached). Empty (or only comments) is an empty map; the original panicked there.
pub(crate) fn parse_spec_vars(sb_ref: &str, text: &str) -> Result<Map<String, Value>, Error> {
    if let Ok(cache) = vars_cache().read()
        && let Some(m) = cache.get(text)
    {
        return Ok(m.clone());
    }
    let parsed = parse_spec_vars_uncached(sb_ref, text)?;
    if let Ok(mut cache) = vars_cache().write() {
        if cache.len() >= VARS_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(text.to_string(), parsed.clone());
    }
    Ok(parsed)
}

fn parse_spec_vars_uncached(sb_ref: &str, text: &str) -> Result<Map<String, Value>, Error> {
    // YAML 1.2: `yes`/`on` stay strings (the original's yaml.v3 behaved the same way).
    let options = serde_saphyr::options! { strict_booleans: true };
    let v: Value = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        Error::InvalidVars(format!(
            "spec.vars of ScheduledBackup {sb_ref} is not valid YAML: {}. Fix: write a YAML map with the top-level keys Params, Repository and HelmValues",
            yaml_problem(&e.to_string())
        ))
    })?;
    match v {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m),
        other => Err(Error::InvalidVars(format!(
            "spec.vars of ScheduledBackup {sb_ref} must be a YAML map with the top-level keys Params, Repository and HelmValues, but it is {}. Fix: write `Params:`, `Repository:` and `HelmValues:` sections",
            kind_of(&other)
        ))),
    }
}

/// The YAML parser's diagnosis without its source snippet or its advice to the programmer: `line 3: duplicate
/// mapping key: a` rather than the multi-line excerpt ending in "set DuplicateKeyPolicy in Options".
pub(crate) fn yaml_problem(error: &str) -> String {
    let mut line = None;
    for text in error.lines() {
        if let Some((_, problem)) = text.split_once("^ ") {
            let problem = problem
                .split(", set DuplicateKeyPolicy")
                .next()
                .unwrap_or(problem)
                .trim();
            return match line {
                Some(n) => format!("line {n}: {problem}"),
                None => problem.to_string(),
            };
        }
        if let Some((number, _)) = text.split_once(" | ")
            && let Ok(n) = number.trim().parse::<u32>()
        {
            line = Some(n);
        }
    }
    error.lines().next().unwrap_or_default().trim().to_string()
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Deep-merges `over` into `base` (maps merge recursively; anything else replaces).
fn merge(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Whether a dotted path exists (with a non-null value).
fn has_path(root: &Map<String, Value>, path: &[&str]) -> bool {
    let mut cur = match root.get(path[0]) {
        Some(v) => v,
        None => return false,
    };
    for seg in &path[1..] {
        cur = match cur.get(seg) {
            Some(v) => v,
            None => return false,
        };
    }
    !cur.is_null()
}

/// Sets a dotted path, creating missing maps; fails when an intermediate value is not a map.
fn set_path(root: &mut Map<String, Value>, path: &[&str], value: Value) -> Result<(), String> {
    let mut cur = root;
    for (i, seg) in path[..path.len() - 1].iter().enumerate() {
        let entry = cur
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if entry.is_null() {
            *entry = Value::Object(Map::new());
        }
        match entry {
            Value::Object(m) => cur = m,
            other => {
                return Err(format!(
                    "`{}` is {}, not a map",
                    path[..=i].join("."),
                    kind_of(other)
                ));
            }
        }
    }
    cur.insert(path[path.len() - 1].to_string(), value);
    Ok(())
}

/// Builds the variables for a ScheduledBackup.
pub(crate) fn build(
    sb: &ScheduledBackup,
    defaults: Option<&Value>,
    token_secret: &Secret,
    vars_secret: Option<&Secret>,
    target_version: Option<&str>,
) -> Result<Vars, Error> {
    let sb_ref = object_ref(
        sb.metadata.namespace.as_deref(),
        sb.metadata.name.as_deref(),
    );
    let spec = &sb.spec;

    // 1 + 2: defaults, then spec.vars.
    let mut root = match defaults {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    merge(&mut root, parse_spec_vars(&sb_ref, &spec.vars)?);

    let set = |root: &mut Map<String, Value>, path: &str, v: Value, origin: &str| {
        let segs: Vec<&str> = path.split('.').collect();
        set_path(root, &segs, v).map_err(|why| {
            Error::InvalidVars(format!(
                "cannot set `{path}` ({origin}) for ScheduledBackup {sb_ref}: {why}. Fix: make it a map in spec.vars (or remove the scalar)"
            ))
        })
    };

    // 3: injected values.
    let mut secrets = Vec::new();
    let token_name = token_secret.metadata.name.clone().unwrap_or_default();
    let token_key = &spec.token_secret_ref.token_key;
    let token_entries = secret_entries(token_secret);
    let token = match token_entries.get(token_key) {
        Some(Ok(v)) => v.clone(),
        Some(Err(())) => {
            return Err(Error::InvalidVars(format!(
                "key `{token_key}` of Secret `{token_name}` (spec.tokenSecretRef of ScheduledBackup {sb_ref}) is not UTF-8 text: store the Backup Repository token (a JWT) as text"
            )));
        }
        None => {
            return Err(Error::SecretNotFound(format!(
                "Secret `{token_name}` (spec.tokenSecretRef of ScheduledBackup {sb_ref}) has no key `{token_key}`: add the Backup Repository token under that key, or set spec.tokenSecretRef.tokenKey to the key that holds it"
            )));
        }
    };
    set(
        &mut root,
        "Repository.token",
        secret_marker(TOKEN_ENV, &token),
        "the token from spec.tokenSecretRef",
    )?;
    secrets.push(SecretValue {
        env: TOKEN_ENV.to_string(),
        value: token,
        secret: token_name,
        key: token_key.clone(),
    });
    if let Some(cid) = spec.collection_id.as_deref().filter(|c| !c.is_empty())
        && !has_path(&root, &["Repository", "collectionId"])
    {
        set(
            &mut root,
            "Repository.collectionId",
            Value::String(cid.to_string()),
            "spec.collectionId",
        )?;
    }
    if let Some(email) = spec
        .gpg_key_secret_ref
        .email
        .as_deref()
        .filter(|e| !e.is_empty())
        && !has_path(&root, &["Repository", "recipient"])
    {
        set(
            &mut root,
            "Repository.recipient",
            Value::String(email.to_string()),
            "spec.gpgKeySecretRef.email",
        )?;
    }
    if let Some(v) = target_version.filter(|v| !v.is_empty()) {
        set(
            &mut root,
            "Repository.targetVersion",
            Value::String(v.to_string()),
            "the action's targetVersion",
        )?;
    }

    // 4: vars-Secret keys.
    let vars_ref = spec
        .vars_secret_ref
        .as_ref()
        .filter(|r| !r.secret_name.is_empty());
    let mut sources = Sources {
        sb: sb_ref.clone(),
        vars_secret: None,
        import_only_keys: Vec::new(),
    };
    if let Some(vref) = vars_ref {
        sources.vars_secret = Some(vref.secret_name.clone());
        sources.import_only_keys = vref.import_only_keys.clone();
        let secret = vars_secret.ok_or_else(|| {
            Error::SecretNotFound(format!(
                "Secret `{}` (spec.varsSecretRef of ScheduledBackup {sb_ref}) was not found: create it in the ScheduledBackup's namespace or remove spec.varsSecretRef",
                vref.secret_name
            ))
        })?;
        let entries = secret_entries(secret);
        let mut keys: Vec<&String> = if vref.import_only_keys.is_empty() {
            entries.keys().collect()
        } else {
            let mut keys = Vec::new();
            for k in &vref.import_only_keys {
                if !entries.contains_key(k) {
                    return Err(Error::SecretNotFound(format!(
                        "Secret `{}` (spec.varsSecretRef of ScheduledBackup {sb_ref}) has no key `{k}`, which spec.varsSecretRef.importOnlyKeys lists: add the key `{k}` to the Secret, or remove it from importOnlyKeys",
                        vref.secret_name
                    )));
                }
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            keys
        };
        keys.sort_by(|a, b| {
            a.split('.')
                .count()
                .cmp(&b.split('.').count())
                .then_with(|| a.cmp(b))
        });
        let mut envs: BTreeMap<String, String> = BTreeMap::new();
        for key in keys {
            let segs: Vec<&str> = key.split('.').collect();
            if segs.iter().any(|s| s.is_empty()) {
                return Err(Error::InvalidVars(format!(
                    "key `{key}` of Secret `{}` (spec.varsSecretRef of ScheduledBackup {sb_ref}) is not a valid variable path (empty segment between dots): name keys like `Params.password`, or leave this key out with spec.varsSecretRef.importOnlyKeys",
                    vref.secret_name
                )));
            }
            let value = match &entries[key] {
                Ok(v) => v.clone(),
                Err(()) => {
                    return Err(Error::InvalidVars(format!(
                        "key `{key}` of Secret `{}` (spec.varsSecretRef of ScheduledBackup {sb_ref}) is not UTF-8 text: template variables must be text; leave it out with spec.varsSecretRef.importOnlyKeys",
                        vref.secret_name
                    )));
                }
            };
            let env = env_name_for_path(key);
            if let Some(other) = envs.insert(env.clone(), key.clone()) {
                return Err(Error::InvalidVars(format!(
                    "keys `{other}` and `{key}` of Secret `{}` (spec.varsSecretRef of ScheduledBackup {sb_ref}) both map to the environment variable {env}: rename one of them",
                    vref.secret_name
                )));
            }
            set_path(&mut root, &segs, secret_marker(&env, &value)).map_err(|why| {
                Error::InvalidVars(format!(
                    "key `{key}` of Secret `{}` (spec.varsSecretRef of ScheduledBackup {sb_ref}) cannot be set: {why} (a dotted path cannot go through a scalar). Fix: remove the scalar from spec.vars or the Secret, or rename the key",
                    vref.secret_name
                ))
            })?;
            secrets.push(SecretValue {
                env,
                value,
                secret: vref.secret_name.clone(),
                key: key.clone(),
            });
        }
    }

    // 5: where the key is mounted.
    set(
        &mut root,
        "Repository.encryptionKeyPath",
        Value::String(GPG_KEY_PATH.to_string()),
        "the mounted GPG key path",
    )?;

    Ok(Vars {
        root: Value::Object(root),
        secrets,
        sources,
    })
}

/// The context value of a Secret value: a marker, or the empty string (an empty value reveals nothing and
/// keeps Go/sprig emptiness tests such as `default` correct).
fn secret_marker(env: &str, value: &str) -> Value {
    if value.is_empty() {
        Value::String(String::new())
    } else {
        Value::String(engine::marker(env))
    }
}

#[cfg(test)]
mod yaml_problem_tests {
    use super::*;

    #[test]
    fn a_duplicate_key_names_the_line_and_key_without_library_advice() {
        let e = parse_spec_vars_uncached("ns/app", "Params:\n  a: 1\n  a: 2\n").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("line 3: duplicate mapping key: a"), "{m}");
        assert!(
            !m.contains("DuplicateKeyPolicy") && !m.contains(" | "),
            "{m}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn sb(vars: &str) -> ScheduledBackup {
        serde_saphyr::from_str(&format!(
            r#"
apiVersion: riotkit.org/v1alpha1
kind: ScheduledBackup
metadata: {{name: app1, namespace: default}}
spec:
  operation: backup
  collectionId: spec-cid
  templateRef: {{kind: internal, name: pg15}}
  gpgKeySecretRef: {{secretName: keys, email: me@example.org}}
  tokenSecretRef: {{secretName: tok, tokenKey: token}}
  varsSecretRef: {{secretName: vs}}
  vars: {}
"#,
            serde_json::to_string(vars).unwrap()
        ))
        .unwrap()
    }

    fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        s
    }

    fn token() -> Secret {
        secret("tok", &[("token", "jwt")])
    }

    #[test]
    fn empty_vars_are_an_empty_map() {
        let v = build(&sb(""), None, &token(), Some(&secret("vs", &[])), None).unwrap();
        assert_eq!(v.root["Repository"]["collectionId"], "spec-cid");
        let v = build(
            &sb("# just a comment\n"),
            None,
            &token(),
            Some(&secret("vs", &[])),
            None,
        )
        .unwrap();
        assert_eq!(v.root["Repository"]["encryptionKeyPath"], GPG_KEY_PATH);
    }

    #[test]
    fn vars_that_are_not_yaml_or_not_a_map_are_rejected_with_the_field_name() {
        let e = build(&sb("Params: [1, 2"), None, &token(), None, None).unwrap_err();
        assert_eq!(e.reason(), "InvalidVars");
        assert!(
            e.to_string()
                .starts_with("spec.vars of ScheduledBackup default/app1 is not valid YAML"),
            "{e}"
        );
        let e = build(&sb("- a\n- b\n"), None, &token(), None, None).unwrap_err();
        assert!(
            e.to_string().contains("must be a YAML map") && e.to_string().contains("a list"),
            "{e}"
        );
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let v = build(
            &sb("Params: {flag: yes}"),
            None,
            &token(),
            Some(&secret("vs", &[])),
            None,
        )
        .unwrap();
        assert_eq!(v.root["Params"]["flag"], "yes");
    }

    #[test]
    fn precedence_is_defaults_then_vars_then_injected_then_secret() {
        let defaults = serde_json::json!({"Params": {"port": 5432, "host": "d"}, "Repository": {"passphrase": ""}});
        let vars = "Params: {host: h}\nRepository: {collectionId: vars-cid, token: plain}\n";
        let vs = secret(
            "vs",
            &[
                ("Params.host", "from-secret"),
                ("Repository.recipient", "sec@x"),
            ],
        );
        let v = build(&sb(vars), Some(&defaults), &token(), Some(&vs), Some("v3")).unwrap();
        assert_eq!(v.root["Params"]["port"], 5432, "template default kept");
        assert_eq!(
            v.root["Params"]["host"],
            engine::marker("BMC_PARAMS_HOST"),
            "secret wins over vars"
        );
        assert_eq!(
            v.root["Repository"]["collectionId"], "vars-cid",
            "vars win over spec.collectionId"
        );
        assert_eq!(
            v.root["Repository"]["token"],
            engine::marker(TOKEN_ENV),
            "token Secret wins over vars"
        );
        assert_eq!(
            v.root["Repository"]["recipient"],
            engine::marker("BMC_REPOSITORY_RECIPIENT")
        );
        assert_eq!(v.root["Repository"]["targetVersion"], "v3");
        assert_eq!(
            v.secrets.iter().map(|s| s.env.as_str()).collect::<Vec<_>>(),
            vec![
                "BM_AUTH_TOKEN",
                "BMC_PARAMS_HOST",
                "BMC_REPOSITORY_RECIPIENT"
            ]
        );
    }

    #[test]
    fn recipient_comes_from_the_key_email_when_vars_lack_it() {
        let v = build(&sb(""), None, &token(), Some(&secret("vs", &[])), None).unwrap();
        assert_eq!(v.root["Repository"]["recipient"], "me@example.org");
        let v = build(
            &sb("Repository: {recipient: r@x}"),
            None,
            &token(),
            Some(&secret("vs", &[])),
            None,
        )
        .unwrap();
        assert_eq!(v.root["Repository"]["recipient"], "r@x");
    }

    #[test]
    fn import_only_keys_limits_the_keys_and_must_exist() {
        let mut s = sb("");
        s.spec.vars_secret_ref.as_mut().unwrap().import_only_keys = vec!["Params.password".into()];
        let vs = secret("vs", &[("Params.password", "p"), ("Params.user", "u")]);
        let v = build(&s, None, &token(), Some(&vs), None).unwrap();
        assert!(v.root["Params"].get("user").is_none());
        let vs = secret("vs", &[("Params.user", "u")]);
        let e = build(&s, None, &token(), Some(&vs), None).unwrap_err();
        assert_eq!(e.reason(), "SecretNotFound");
        assert!(
            e.to_string().contains("Secret `vs`")
                && e.to_string().contains("no key `Params.password`"),
            "{e}"
        );
    }

    #[test]
    fn shorter_secret_paths_apply_first_and_a_path_through_a_scalar_is_an_error() {
        let vs = secret("vs", &[("Params.password", "p"), ("Params", "scalar")]);
        let e = build(&sb(""), None, &token(), Some(&vs), None).unwrap_err();
        assert_eq!(e.reason(), "InvalidVars");
        assert!(
            e.to_string().contains("key `Params.password`")
                && e.to_string().contains("`Params` is a string"),
            "{e}"
        );
        let e = build(
            &sb("Params: 5"),
            None,
            &token(),
            Some(&secret("vs", &[("Params.x", "1")])),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`Params` is a number"), "{e}");
    }

    #[test]
    fn invalid_secret_key_paths_are_rejected() {
        for key in ["Params..x", ".x", "x."] {
            let e = build(
                &sb(""),
                None,
                &token(),
                Some(&secret("vs", &[(key, "v")])),
                None,
            )
            .unwrap_err();
            assert!(
                e.to_string().contains("not a valid variable path"),
                "{key}: {e}"
            );
        }
    }

    #[test]
    fn env_name_collisions_are_rejected() {
        let vs = secret("vs", &[("Params.a-b", "1"), ("Params.a_b", "2")]);
        let e = build(&sb(""), None, &token(), Some(&vs), None).unwrap_err();
        assert!(e.to_string().contains("BMC_PARAMS_A_B"), "{e}");
    }

    #[test]
    fn a_missing_token_key_names_the_secret_and_the_field() {
        let e = build(&sb(""), None, &secret("tok", &[]), None, None).unwrap_err();
        assert_eq!(e.reason(), "SecretNotFound");
        assert!(
            e.to_string().contains("Secret `tok` (spec.tokenSecretRef"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_vars_secret_is_reported() {
        let e = build(&sb(""), None, &token(), None, None).unwrap_err();
        assert!(
            e.to_string().contains("Secret `vs` (spec.varsSecretRef"),
            "{e}"
        );
    }

    #[test]
    fn env_names_are_upper_case_with_underscores() {
        assert_eq!(env_name_for_path("Params.password"), "BMC_PARAMS_PASSWORD");
        assert_eq!(
            env_name_for_path("HelmValues.env.my-var"),
            "BMC_HELMVALUES_ENV_MY_VAR"
        );
    }

    #[test]
    fn errors_never_contain_secret_values() {
        let vs = secret(
            "vs",
            &[
                ("Params.password", "hunter2-secret"),
                ("Params", "also-secret"),
            ],
        );
        let e = build(&sb(""), None, &token(), Some(&vs), None).unwrap_err();
        assert!(
            !e.to_string().contains("hunter2") && !e.to_string().contains("also-secret"),
            "{e}"
        );
    }
}
