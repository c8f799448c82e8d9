{# tera #}
#!/bin/bash
# Built-in procedure template: MySQL/MariaDB dump, encrypted with GPG, uploaded by backup-maker.
# Every value is shell-quoted; values from Secrets are read from the pod's environment, never written here.
set -euo pipefail

export DB_HOST={{ Params.hostname | shell_quote }}
export DB_PORT={{ Params.port | shell_quote }}
export DB_NAME={{ Params.db | shell_quote }}
export DB_USER={{ Params.user | shell_quote }}
# The mysql clients read the password from MYSQL_PWD, so it never shows up in the process list.
export MYSQL_PWD={{ Params.password | shell_quote }}

export BM_AUTH_TOKEN={{ Repository.token | shell_quote }}
export BM_COLLECTION_ID={{ Repository.collectionId | shell_quote }}
export BM_PASSPHRASE={{ Repository.passphrase | shell_quote }}

# Single quotes on purpose: backup-maker runs this with bash, which expands the exported variables.
COMMAND='mysqldump --skip-lock-tables --add-drop-table --add-drop-database --add-drop-trigger -h "${DB_HOST}" -u "${DB_USER}" -P "${DB_PORT}"'
if [[ -n "${DB_NAME}" ]]; then
    COMMAND="${COMMAND} --databases \"\${DB_NAME}\""
else
    COMMAND="${COMMAND} --all-databases"
fi
COMMAND="${COMMAND} | sed -e 's/DEFINER[ ]*=[ ]*[^*]*\*/\*/'"

echo " >> Executing backup command and uploading piped result"

exec backup-maker make --url {{ Repository.url | shell_quote }} \
    -c "${COMMAND}" \
    --key {{ Repository.encryptionKeyPath | shell_quote }} \
    --recipient {{ Repository.recipient | shell_quote }} \
    --log-level info
