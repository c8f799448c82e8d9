#!/usr/bin/env bash
# Checks the shipped Prometheus alerts with promtool (scripts/prometheus_check.py: check rules, unit tests
# deploy/prometheus/tests/*.yaml on every shipped form of the rules, coverage, mutants).
#
#   scripts/prometheus-check.sh [check]   install what is missing, then check (what CI runs)
#   scripts/prometheus-check.sh install   only install promtool and prometheus (Debian package `prometheus`)
#
# promtool and prometheus come from Debian's `prometheus` package (apt, as root). The e2e test
# tests/e2e/tests/prometheus.rs runs the real server when it finds it, so scripts/test-all.sh installs it
# before `cargo test`. Without apt or root, this prints one line saying it skipped and succeeds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf 'prometheus-check: %s\n' "$*"; }

install_prometheus() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    return 0
  fi
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    return 1
  fi
  log "installing promtool and prometheus with apt-get (Debian package prometheus, once)"
  # The package's postinst only enables a service; nothing starts in a container without systemd.
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }; } \
    >/dev/null 2>&1 || true
  command -v promtool >/dev/null && command -v prometheus >/dev/null
}

skip_line() {
  echo "SKIPPED: promtool not installed and not installable (needs root and apt-get: apt-get install prometheus); alert rules untested"
}

main() {
  case "${1:-check}" in
    install)
      install_prometheus || skip_line
      ;;
    check)
      if ! install_prometheus; then
        skip_line
        return 0
      fi
      # helm (rendering the chart's PrometheusRule) and the pinned PyYAML come from helm-check's tools.
      bash "$ROOT/scripts/helm-check.sh" tools >/dev/null
      local helm py
      helm="$(ls "$ROOT"/.tools/helm-*/helm | head -n1)"
      py="$(ls "$ROOT"/.tools/venv-kv-*/bin/python | head -n1)"
      log "$(promtool --version 2>&1 | head -n1)"
      PYTHONDONTWRITEBYTECODE=1 "$py" "$ROOT/scripts/prometheus_check.py" --promtool "$(command -v promtool)" --helm "$helm"
      ;;
    -h|--help|help)
      sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
      ;;
    *)
      log "unknown command '$1' (check, install)" >&2
      return 1
      ;;
  esac
}

main "$@"
