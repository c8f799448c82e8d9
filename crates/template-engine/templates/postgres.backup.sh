{# tera #}
#!/bin/bash
# Built-in procedure template: PostgreSQL backup with pgbr, encrypted with GPG, uploaded by backup-maker.
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

# Single quotes on purpose: backup-maker runs this with bash, which expands the exported variables as
# double-quoted words, so no value is ever parsed as shell syntax.
COMMAND='pgbr db backup --password "${PGPASSWORD}" --user "${PGUSER}" --db-name "${PGDATABASE}" --port "${PGPORT}" --host "${PGHOST}"'

echo " >> Executing backup command and uploading piped result"

exec backup-maker make --url {{ Repository.url | shell_quote }} \
    -c "${COMMAND}" \
    --key {{ Repository.encryptionKeyPath | shell_quote }} \
    --recipient {{ Repository.recipient | shell_quote }} \
    --log-level info
