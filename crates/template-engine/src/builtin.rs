//! Built-in procedure templates (`templateRef.kind: internal`).
//!
//! All are Tera syntax, pipe every value through `shell_quote` and read Secret values from the environment.
//! Variables and defaults are documented in docs/templates.md.

use serde_json::{Value, json};

use crate::ProcedureTemplate;

const POSTGRES_BACKUP: &str = include_str!("../templates/postgres.backup.sh");
const POSTGRES_RESTORE: &str = include_str!("../templates/postgres.restore.sh");
const MYSQL_BACKUP: &str = include_str!("../templates/mysql-dump.backup.sh");
const MYSQL_RESTORE: &str = include_str!("../templates/mysql-dump.restore.sh");
const TAR_BACKUP: &str = include_str!("../templates/tar.backup.sh");
const TAR_RESTORE: &str = include_str!("../templates/tar.restore.sh");

/// Image of the generic templates: br-backup-maker's image ships backup-maker, gpg, bash, pgbr and the
/// mariadb client (override with `HelmValues.image`).
pub const GENERIC_IMAGE: &str = "ghcr.io/riotkit-org/backup-maker:latest";

const NAMES: &[&str] = &[
    "pg11",
    "pg12",
    "pg13",
    "pg14",
    "pg15",
    "pg16",
    "pg17",
    "postgres",
    "mysql-dump",
    "mariadb",
    "tar",
];

/// Names of every built-in template.
pub fn builtin_names() -> &'static [&'static str] {
    NAMES
}

/// The built-in template of that name.
pub fn builtin(name: &str) -> Option<ProcedureTemplate> {
    let (image, backup, restore) = match name {
        "pg11" | "pg12" | "pg13" | "pg14" | "pg15" | "pg16" | "pg17" => (
            format!("ghcr.io/riotkit-org/pgbr:latest-{name}"),
            POSTGRES_BACKUP,
            POSTGRES_RESTORE,
        ),
        "postgres" => (GENERIC_IMAGE.to_string(), POSTGRES_BACKUP, POSTGRES_RESTORE),
        "mysql-dump" | "mariadb" => (GENERIC_IMAGE.to_string(), MYSQL_BACKUP, MYSQL_RESTORE),
        "tar" => (GENERIC_IMAGE.to_string(), TAR_BACKUP, TAR_RESTORE),
        _ => return None,
    };
    Some(ProcedureTemplate {
        name: name.to_string(),
        image,
        backup: backup.to_string(),
        restore: Some(restore.to_string()),
        builtin: true,
    })
}

/// Default variables of a built-in template (the lowest-precedence source).
pub(crate) fn defaults(name: &str) -> Option<Value> {
    match name {
        "pg11" | "pg12" | "pg13" | "pg14" | "pg15" | "pg16" | "pg17" | "postgres" => Some(json!({
            "Params": {"port": 5432},
            "Repository": {"passphrase": ""},
        })),
        "mysql-dump" | "mariadb" => Some(json!({
            "Params": {"port": 3306, "db": ""},
            "Repository": {"passphrase": ""},
        })),
        "tar" => Some(json!({"Repository": {"passphrase": ""}})),
        _ => None,
    }
}
