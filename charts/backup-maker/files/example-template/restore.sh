#!/bin/sh
# Example PostgreSQL restore with pgbr. RESTORE_VERSION selects the version (default: latest).
set -eu

COMMAND="pgbr db restore --password '{{ .Params.password }}' --user '{{ .Params.user }}' --db-name '{{ .Params.db }}' --port '{{ .Params.port }}' --host '{{ .Params.hostname }}'"
selectedVersion="${RESTORE_VERSION:-latest}"

export BM_AUTH_TOKEN="{{ .Repository.token }}"
export BM_COLLECTION_ID="{{ .Repository.collectionId }}"
export BM_PASSPHRASE="{{ .Repository.passphrase }}"

echo " >> Executing restore command and downloading the selected version"
echo " >> Restoring version: ${selectedVersion}"

exec backup-maker restore --url "{{ .Repository.url }}" \
    -c "${COMMAND}" \
    --private-key {{ .Repository.encryptionKeyPath }} \
    --recipient {{ .Repository.recipient }} \
    --log-level info \
    --version="${selectedVersion}"
