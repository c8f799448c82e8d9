{# tera #}
#!/bin/bash
# Built-in procedure template: tar.gz of the files under Params.path, encrypted with GPG, uploaded by backup-maker.
# Every value is shell-quoted; values from Secrets are read from the pod's environment, never written here.
set -euo pipefail

export BACKUP_PATH={{ Params.path | shell_quote }}

export BM_AUTH_TOKEN={{ Repository.token | shell_quote }}
export BM_COLLECTION_ID={{ Repository.collectionId | shell_quote }}
export BM_PASSPHRASE={{ Repository.passphrase | shell_quote }}

# Archive relative to the directory, so a restore puts the files back in the same place.
COMMAND='tar -zcf - -C "${BACKUP_PATH}" .'

echo " >> Executing backup command and uploading piped result"

exec backup-maker make --url {{ Repository.url | shell_quote }} \
    -c "${COMMAND}" \
    --key {{ Repository.encryptionKeyPath | shell_quote }} \
    --recipient {{ Repository.recipient | shell_quote }} \
    --log-level info
