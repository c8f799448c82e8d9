#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, controller, fake-API-server e2e), and the Helm chart
# checks. Installs what it needs (gnupg for the GPG interop test; helm and kubernetes-validate into .tools/).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v gpg >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing gnupg for the GPG interop test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnupg >/dev/null) \
    || echo "gnupg could not be installed: the GPG interop test will say it skipped"
fi

echo "== cargo test --workspace"
cargo test --workspace --locked

if [ -f scripts/helm-check.sh ]; then
  echo "== helm chart checks"
  bash scripts/helm-check.sh check
fi
