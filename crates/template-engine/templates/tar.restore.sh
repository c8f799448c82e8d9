{# tera #}
#!/bin/bash
# Built-in procedure template: extracts a downloaded tar.gz version into Params.path.
# Every value is shell-quoted; values from Secrets are read from the pod's environment, never written here.
set -euo pipefail

export BACKUP_PATH={{ Params.path | shell_quote }}

export BM_AUTH_TOKEN={{ Repository.token | shell_quote }}
export BM_COLLECTION_ID={{ Repository.collectionId | shell_quote }}
export BM_PASSPHRASE={{ Repository.passphrase | shell_quote }}

COMMAND='mkdir -p "${BACKUP_PATH}" && tar -xzf - -C "${BACKUP_PATH}"'
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
