//! The crate's single error type. Every variant knows its stable `reason()` (the condition reason and metric
//! label controllers use) and its message names the object, the field and the fix. No message ever contains a
//! Secret value: values from Secrets only exist as markers while rendering, and errors name keys, not values.

use crd_types::constants::reasons;

/// Everything that can go wrong while turning a ScheduledBackup into Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `spec.vars`, the vars Secret or `HelmValues` are malformed; the message says which field and how to fix it.
    #[error("{0}")]
    InvalidVars(String),

    /// A template refers to a variable that no source provides.
    #[error(
        "template {template:?}, line {line}, column {column}: {expression} is not set: {reason}. Fix: {fix}"
    )]
    MissingVariable {
        /// Template name (e.g. `pg14`).
        template: String,
        /// 1-based line in the template source as the user wrote it.
        line: usize,
        /// 1-based column (characters) of the missing key in that line.
        column: usize,
        /// The expression as written (e.g. `.Params.password`).
        expression: String,
        /// Why it is missing (which sources were consulted).
        reason: String,
        /// How to provide it.
        fix: String,
    },

    /// The template source does not parse (Go-template or Tera syntax).
    #[error("template {template:?}, line {line}, column {column}: {message}")]
    TemplateSyntax {
        /// Template name.
        template: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// Rendering failed for another reason (a function got a wrong argument, `required` failed, ...).
    #[error("template {template:?}: {message}")]
    RenderFailed {
        /// Template name.
        template: String,
        /// What failed (never a Secret value).
        message: String,
    },

    /// The template has no script for an operation that must run.
    #[error(
        "template {template:?} has no {operation} script: add spec.{operation} to the ClusterBackupProcedureTemplate, or do not request a {operation}"
    )]
    NoScriptForOperation {
        /// Template name.
        template: String,
        /// `backup` or `restore`.
        operation: String,
    },

    /// A referenced Secret (or a key in it) is missing.
    #[error("{0}")]
    SecretNotFound(String),

    /// The procedure template could not be found.
    #[error("{0}")]
    TemplateNotFound(String),

    /// `spec.templateRef.kind` is not a known kind.
    #[error("{0}")]
    InvalidTemplateKind(String),

    /// An input document (for `render`) is not what was expected.
    #[error("{0}")]
    InvalidInput(String),
}

/// Every value [`Error::reason`] returns, so controllers can create their errors-by-reason series at 0 from
/// start-up (`ControllerMetrics::register_reasons`).
pub const REASONS: &[&str] = &[
    reasons::INVALID_VARS,
    reasons::RENDER_FAILED,
    reasons::NO_SCRIPT_FOR_OPERATION,
    reasons::SECRET_NOT_FOUND,
    reasons::TEMPLATE_NOT_FOUND,
    reasons::INVALID_TEMPLATE_KIND,
    reasons::INVALID_SPEC,
];

impl Error {
    /// Stable CamelCase label for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidVars(_) => reasons::INVALID_VARS,
            Error::MissingVariable { .. } => reasons::RENDER_FAILED,
            Error::TemplateSyntax { .. } => reasons::RENDER_FAILED,
            Error::RenderFailed { .. } => reasons::RENDER_FAILED,
            Error::NoScriptForOperation { .. } => reasons::NO_SCRIPT_FOR_OPERATION,
            Error::SecretNotFound(_) => reasons::SECRET_NOT_FOUND,
            Error::TemplateNotFound(_) => reasons::TEMPLATE_NOT_FOUND,
            Error::InvalidTemplateKind(_) => reasons::INVALID_TEMPLATE_KIND,
            Error::InvalidInput(_) => reasons::INVALID_SPEC,
        }
    }

    /// Whether retrying without a change to some input can help. None of these errors are transient: they
    /// all depend only on the inputs, so controllers should wait for a change of the SB, template or Secrets.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index of the variant; exhaustive, so a new variant does not compile until it is listed here (and then
    /// `every_variant_reason_is_in_reasons` fails until it has a sample).
    fn variant(e: &Error) -> usize {
        match e {
            Error::InvalidVars(_) => 0,
            Error::MissingVariable { .. } => 1,
            Error::TemplateSyntax { .. } => 2,
            Error::RenderFailed { .. } => 3,
            Error::NoScriptForOperation { .. } => 4,
            Error::SecretNotFound(_) => 5,
            Error::TemplateNotFound(_) => 6,
            Error::InvalidTemplateKind(_) => 7,
            Error::InvalidInput(_) => 8,
        }
    }

    #[test]
    fn every_variant_reason_is_in_reasons() {
        let t = || "pg15".to_owned();
        let samples = [
            Error::InvalidVars("x".into()),
            Error::MissingVariable {
                template: t(),
                line: 1,
                column: 1,
                expression: ".Params.x".into(),
                reason: "r".into(),
                fix: "f".into(),
            },
            Error::TemplateSyntax {
                template: t(),
                line: 1,
                column: 1,
                message: "m".into(),
            },
            Error::RenderFailed {
                template: t(),
                message: "m".into(),
            },
            Error::NoScriptForOperation {
                template: t(),
                operation: "restore".into(),
            },
            Error::SecretNotFound("x".into()),
            Error::TemplateNotFound("x".into()),
            Error::InvalidTemplateKind("x".into()),
            Error::InvalidInput("x".into()),
        ];
        let covered: std::collections::BTreeSet<usize> = samples.iter().map(variant).collect();
        assert_eq!(covered.len(), 9, "one sample per variant");
        for e in &samples {
            assert!(
                REASONS.contains(&e.reason()),
                "{} is not in REASONS",
                e.reason()
            );
        }
    }
}
