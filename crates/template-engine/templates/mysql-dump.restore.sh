{# tera #}
#!/bin/bash
# Built-in procedure template: MySQL/MariaDB restore of a version downloaded by backup-maker.
# Every value is shell-quoted; values from Secrets are read from the pod's environment, never written here.
set -euo pipefail

export DB_HOST={{ Params.hostname | shell_quote }}
export DB_PORT={{ Params.port | shell_quote }}
export DB_NAME={{ Params.db | shell_quote }}
export DB_USER={{ Params.user | shell_quote }}
export MYSQL_PWD={{ Params.password | shell_quote }}

export BM_AUTH_TOKEN={{ Repository.token | shell_quote }}
export BM_COLLECTION_ID={{ Repository.collectionId | shell_quote }}
export BM_PASSPHRASE={{ Repository.passphrase | shell_quote }}

COMMAND='mysql -h "${DB_HOST}" -u "${DB_USER}" -P "${DB_PORT}"'
if [[ -n "${DB_NAME}" ]]; then
    COMMAND="${COMMAND} \"\${DB_NAME}\""
fi
# RESTORE_VERSION is set on Jobs of RequestedBackupActions with spec.targetVersion.
selectedVersion="${RESTORE_VERSION:-latest}"

echo " >> Executing restore command"
echo " >> Restoring version: ${selectedVersion}"

exec backup-maker restore --url {{ Repository.url | shell_quote }} \
    -c "${COMMAND}" \
    --private-key {{ Repository.encryptionKeyPath | shell_quote }} \
    --recipient {{ Repository.recipient | shell_quote }} \
    --log-level info \
    --version="${selectedVersion}"
