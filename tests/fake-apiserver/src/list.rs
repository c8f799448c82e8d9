//! LIST: `resourceVersion` / `resourceVersionMatch` semantics and pagination, as kube-apiserver
//! 1.36 answers them (recordings f3, f4).
//!
//! - `resourceVersion=0` is served from the watch cache and ignores `limit` (no paging).
//! - `resourceVersionMatch` needs a `resourceVersion` (422), `Exact` cannot be `0` (422), an
//!   `Exact` version older than the compacted log is 410 `Expired`, and any version newer than the
//!   store's is 504 `ResourceVersionTooLarge`.
//! - `limit` pages in namespace/name order with an opaque base64 `continue` token and
//!   `remainingItemCount`; a malformed token is 400.
//!
//! Not modelled: a LIST at an older `Exact`/`NotOlderThan` version that is still retained is
//! served from the current state (the apiserver would reconstruct the old state from etcd).

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::ResourceInfo;
use crate::errors::ApiError;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::Store;

/// Where a continue token resumes: the list's resourceVersion and the last key sent.
#[derive(Debug, PartialEq, Eq)]
struct Continue {
    rv: u64,
    namespace: String,
    name: String,
}

impl Continue {
    fn encode(&self) -> String {
        let raw = json!({"v": "fake.k8s.io/v1", "rv": self.rv, "start": format!("{}/{}\u{0}", self.namespace, self.name)});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
    }

    /// Decodes a token; the error text follows the apiserver's (`illegal base64 data at input
    /// byte N` comes from Go's decoder, which reports the first invalid byte).
    fn decode(token: &str) -> Result<Self, ApiError> {
        let invalid = |why: String| ApiError::bad_request(format!("invalid continue token: {why}"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|e| {
                let url_safe = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
                let offset = match (token.bytes().position(|b| !url_safe(&b)), e) {
                    (Some(i), _) => i,
                    (None, base64::DecodeError::InvalidLastSymbol(i, _)) => i,
                    (None, _) => token.len(),
                };
                invalid(format!(
                    "continue key is not valid: illegal base64 data at input byte {offset}"
                ))
            })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("continue key is not valid: {e}")))?;
        let rv = value["rv"]
            .as_u64()
            .ok_or_else(|| invalid("continue key is not valid: no resourceVersion".to_owned()))?;
        let start = value["start"].as_str().unwrap_or_default();
        let (namespace, name) = start
            .trim_end_matches('\u{0}')
            .split_once('/')
            .unwrap_or(("", ""));
        Ok(Self {
            rv,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn list_options_invalid(message: &str) -> ApiError {
    ApiError::invalid_with_details(
        format!(
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: {message}"
        ),
        json!({"group": "meta.k8s.io", "kind": "ListOptions", "causes": [{
            "reason": "FieldValueForbidden",
            "message": format!("Forbidden: {message}"),
            "field": "resourceVersionMatch",
        }]}),
    )
}

/// The 504 the apiserver answers for a resourceVersion it has not reached.
pub(crate) fn too_large(rv: u64, current: u64) -> ApiError {
    ApiError::timeout_with_details(
        format!("Timeout: Too large resource version: {rv}, current: {current}"),
        json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
    )
}

/// Checks `resourceVersion`/`resourceVersionMatch` of a LIST or WATCH request (shared rules).
pub(crate) fn check_version(
    q: &HashMap<String, String>,
    store: &Store,
    watch: bool,
) -> Result<(), ApiError> {
    let rv = q.get("resourceVersion").filter(|r| !r.is_empty());
    let matching = q.get("resourceVersionMatch").filter(|m| !m.is_empty());
    if watch {
        if q.get("sendInitialEvents").is_some_and(|v| v == "true")
            && matching.is_none_or(|m| m != "NotOlderThan")
        {
            return Err(list_options_invalid(
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        return Ok(());
    }
    match (rv, matching) {
        (None, Some(_)) => Err(list_options_invalid(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        (Some(r), Some(m)) if r == "0" && m == "Exact" => Err(list_options_invalid(
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        )),
        (Some(r), m) if r != "0" => {
            let n: u64 = r
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {r:?}")))?;
            if n > store.resource_version() {
                return Err(too_large(n, store.resource_version()));
            }
            if m.is_some_and(|m| m == "Exact") && n <= store.compacted_through {
                return Err(ApiError::expired(
                    "The resourceVersion for the provided list is too old.".to_owned(),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Answers a LIST.
pub(crate) fn list(
    store: &Store,
    res: &ResourceInfo,
    namespace: Option<&str>,
    q: &HashMap<String, String>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Result<Value, ApiError> {
    check_version(q, store, false)?;
    // resourceVersion=0 is served from the watch cache, which does not page.
    let from_cache = q.get("resourceVersion").is_some_and(|r| r == "0");
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0 && !from_cache);
    let after = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => Some(Continue::decode(token)?),
        None => None,
    };
    let list_rv = after
        .as_ref()
        .filter(|_| !from_cache)
        .map_or(store.resource_version(), |c| c.rv);
    let matching: Vec<(String, String, Value)> = store
        .list(res, namespace)
        .filter(|(k, _)| {
            after
                .as_ref()
                .is_none_or(|c| (&k.namespace, &k.name) > (&c.namespace, &c.name))
        })
        .filter(|(_, v)| labels.matches(v) && fields.matches(v))
        .map(|(k, v)| (k.namespace.clone(), k.name.clone(), v.clone()))
        .collect();
    let total = matching.len();
    let take = limit.unwrap_or(total).min(total);
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if take < total
        && let Some((ns, name, _)) = matching.get(take - 1).or(None)
    {
        metadata["continue"] = json!(
            Continue {
                rv: list_rv,
                namespace: ns.clone(),
                name: name.clone()
            }
            .encode()
        );
        // Only countable without selectors (the apiserver omits it when filtering).
        let unfiltered = ["labelSelector", "fieldSelector"]
            .iter()
            .all(|k| q.get(*k).is_none_or(String::is_empty));
        if unfiltered {
            metadata["remainingItemCount"] = json!(total - take);
        }
    }
    let builtin = crate::registry::is_builtin_group(&res.group);
    let items: Vec<Value> = matching
        .into_iter()
        .take(take)
        .map(|(_, _, mut v)| {
            // Typed lists of built-in kinds carry no kind/apiVersion per item; unstructured
            // (custom resource) lists do.
            if builtin && let Some(o) = v.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            v
        })
        .collect();
    Ok(json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_garbage_is_reported_at_the_first_bad_byte() {
        let c = Continue {
            rv: 42,
            namespace: "ns".to_owned(),
            name: "b".to_owned(),
        };
        assert_eq!(Continue::decode(&c.encode()).unwrap(), c);
        // Tokens are unpadded URL-safe base64, so padding is already an illegal byte.
        let err = Continue::decode("bm90LWEtdG9rZW4=").unwrap_err();
        assert_eq!(
            err.message,
            "invalid continue token: continue key is not valid: illegal base64 data at input byte 15"
        );
        let err = Continue::decode("not a token!").unwrap_err();
        assert_eq!(
            err.message,
            "invalid continue token: continue key is not valid: illegal base64 data at input byte 3"
        );
    }
}
