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

# promtool and prometheus (Debian package): the real-Prometheus e2e test needs them before cargo test.
bash scripts/prometheus-check.sh install

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "== cargo test --workspace"
cargo test --workspace --locked 2>&1 | tee "$log"

echo "== helm chart checks"
bash scripts/helm-check.sh check 2>&1 | tee -a "$log"

echo "== Prometheus alert rules (promtool check rules, promtool test rules, mutants)"
bash scripts/prometheus-check.sh check 2>&1 | tee -a "$log"

echo "== the render command's output is valid Kubernetes YAML (kubernetes-validate --strict, 1.33)"
bash scripts/helm-check.sh tools >/dev/null
KV="$(ls -d .tools/venv-kv-*/bin/kubernetes-validate | head -n1)"
rendered="$(mktemp -d)"
cargo run --quiet --locked -p scheduled-controller -- render > "$rendered/example.yaml"
cargo run --quiet --locked -p scheduled-controller -- render --operation restore --show-secrets > "$rendered/example-restore.yaml"
cargo run --quiet --locked -p scheduled-controller -- render \
  -f tests/fixtures/original/scheduledbackup.yaml -f tests/fixtures/original/pg13.yaml \
  -f tests/fixtures/original/backup-keys.secret.yaml --action tests/fixtures/original/restore-scenario/2-restore.yaml \
  > "$rendered/original.yaml"
for f in "$rendered"/*.yaml; do
  "$KV" --strict --quiet -k 1.33.0 "$f"
done
echo "render-validate: 3 passed, 0 failed" | tee -a "$log"
rm -rf "$rendered"

# One closing line for everything above: Rust tests, chart checks (test_chart, Lua health), alert rules and render
# validation.
awk '/^test result:/ { p += $4; f += $6 }
     /^  (test_chart|argocd-health): [0-9]+ passed/ { p += $2; f += $4 }
     /^render-validate: / { p += $2; f += $4 }
     /^prometheus-rules: [0-9]+ passed/ { p += $2; f += $4 }
     END { printf "all tests: %d passed, %d failed\n", p, f; exit (f > 0) }' "$log"
