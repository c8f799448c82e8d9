{# tera #}
#!/bin/bash
# Built-in procedure template: PostgreSQL restore with pgbr of a version downloaded by backup-maker.
# Every value is shell-quoted; values from Secrets are read from the pod's environment, never written here.
set -euo pipefail

export PGHOST={{ Params.hostname | shell_quote }}
export PGPORT={{ Params.port | shell_quote }}
export PGDATABASE={{ Params.db | shell_quote }}
export PGUSER={{ Params.user | shell_quote }}
export PGPASSWORD={{ Params.password | shell_quote }}

export BM_AUTH_TOKEN={{ Repository.token | shell_quote }}
export BM_COLLECTION_ID={{ Repository.collectionId | shell_quote }}
export BM_PASSPHRASE={{ Repository.passphrase | shell_quote }}

COMMAND='pgbr db restore --password "${PGPASSWORD}" --user "${PGUSER}" --db-name "${PGDATABASE}" --port "${PGPORT}" --host "${PGHOST}"'
# RESTORE_VERSION is set on Jobs of RequestedBackupActions with spec.targetVersion.
selectedVersion="${RESTORE_VERSION:-latest}"

echo " >> Executing restore command and uploading piped result"
echo " >> Restoring version: ${selectedVersion}"

exec backup-maker restore --url {{ Repository.url | shell_quote }} \
    -c "${COMMAND}" \
    --private-key {{ Repository.encryptionKeyPath | shell_quote }} \
    --recipient {{ Repository.recipient | shell_quote }} \
    --log-level info \
    --version="${selectedVersion}"
