#!/bin/sh
# Example PostgreSQL backup with pgbr, streamed through backup-maker to the Backup Repository.
# Params.* and Repository.* come from the ScheduledBackup's spec.vars (and varsSecretRef).
set -eu

COMMAND="pgbr db backup --password '{{ .Params.password }}' --user '{{ .Params.user }}' --db-name '{{ .Params.db }}' --port '{{ .Params.port }}' --host '{{ .Params.hostname }}'"

export BM_AUTH_TOKEN="{{ .Repository.token }}"
export BM_COLLECTION_ID="{{ .Repository.collectionId }}"
export BM_PASSPHRASE="{{ .Repository.passphrase }}"

echo " >> Executing backup command and uploading piped result"

exec backup-maker make --url "{{ .Repository.url }}" \
    -c "${COMMAND}" \
    --key {{ .Repository.encryptionKeyPath }} \
    --recipient {{ .Repository.recipient }} \
    --log-level info
