//! How to read the API server's answer to one of our writes.
//!
//! A 4xx answer (other than 409 Conflict and 429 Too Many Requests) says the object we sent is wrong, and sending it
//! again cannot help: it is the user's input (a value the API server validates and we passed on), so the
//! controller reports it and waits for a change. The same holds for the 500 that server-side apply answers when the
//! body does not fit the schema (recording c5: `failed to create typed patch object`; also seen for an invalid
//! resource quantity). Everything else (5xx, timeouts, connection errors) is transient and retried with backoff.

/// The server's explanation when it refused our write because of what we sent, else `None`.
pub fn refusal(error: &kube::Error) -> Option<String> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    let input_error = match status.code {
        409 | 429 => false,
        400..=499 => true,
        500 => status
            .message
            .contains("failed to create typed patch object"),
        _ => false,
    };
    input_error.then(|| status.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "Invalid")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn an_invalid_value_is_the_users_input() {
        let e = api_error(
            422,
            "CronJob.batch \"x\" is invalid: spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
        );
        assert!(
            refusal(&e)
                .unwrap()
                .contains("spec.successfulJobsHistoryLimit")
        );
    }

    #[test]
    fn a_body_outside_the_schema_is_the_users_input() {
        let e = api_error(
            500,
            "failed to create typed patch object (ns/x; batch/v1, Kind=CronJob): .spec.foo: field not declared in schema",
        );
        assert!(refusal(&e).is_some());
    }

    #[test]
    fn conflicts_throttling_and_server_errors_are_transient() {
        for (code, message) in [
            (409, "conflict"),
            (429, "slow down"),
            (500, "etcd"),
            (503, "x"),
        ] {
            assert_eq!(refusal(&api_error(code, message)), None, "{code}");
        }
        assert_eq!(refusal(&kube::Error::LinesCodecMaxLineLengthExceeded), None);
    }
}

/// An object the API server refused to store because of what we sent (see [`refusal`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the API server refused {kind} {namespace}/{name}: {detail}. {fix}")]
pub struct Refused {
    /// Kind of the object.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The API server's message (it names the field).
    pub detail: String,
    /// What the user can do about it.
    pub fix: &'static str,
}

/// Sorts a failed write of `kind namespace/name`: `Err(Refused)` when it is the user's input, else the transient
/// error with a description of the attempt (`"{verb} {kind} {name}"`).
pub fn classify_write(
    error: kube::Error,
    verb: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    fix: &'static str,
) -> Result<(String, kube::Error), Refused> {
    match refusal(&error) {
        Some(detail) => Err(Refused {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            detail,
            fix,
        }),
        None => Ok((format!("{verb} {kind} {name}"), error)),
    }
}
