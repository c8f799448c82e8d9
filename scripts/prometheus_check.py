#!/usr/bin/env python3
"""Checks the shipped Prometheus alerts with promtool (called by scripts/prometheus-check.sh).

* `promtool check rules` on every form the rules ship in: deploy/prometheus/rules.yaml (a PrometheusRule; its
  `spec` is the rules file), the chart's generated copy charts/backup-maker/files/prometheus-rules.yaml, and the
  PrometheusRule `helm template` renders (with the optional restore-drill group on, and with each controller
  disabled); the defaults leave that group out.
* `promtool test rules` on deploy/prometheus/tests/*.yaml against each of those forms (the test files name the
  chart copy in `rule_files` so that promtool can run them directly; here each runs on a temporary copy
  pointing at the form under test).
* Coverage: every alert has a test where it fires, one where it must stay quiet, and one where it resolves.
* Mutants: deliberately broken variants of the rules (the K8up and CNPG alert bugs of docs/metrics.md) must
  fail the tests, which proves the tests can fail.

Prints one line per check and a closing `prometheus-rules: N passed, M failed` (scripts/test-all.sh sums it).
Only the Python standard library and PyYAML are used.
"""

from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
CHART = ROOT / "charts" / "backup-maker"
CHART_RULES = CHART / "files" / "prometheus-rules.yaml"
TESTS = ROOT / "deploy" / "prometheus" / "tests"
CONTROLLERS = ["gpg-keygen", "scheduled-controller", "action-controller"]
# The rule group the chart renders only with prometheusRule.restoreDrills.enabled=true, and its alert.
OPTIONAL_GROUP, OPTIONAL_ALERT = "backup-maker.restore-drills", "BackupRestoreDrillOverdue"


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def record(self, ok: bool, name: str, detail: str = "", count: int = 1) -> bool:
        if ok:
            self.passed += count
            print(f"  ok   {name}")
        else:
            self.failed += count
            print(f"  FAIL {name}")
            for line in detail.rstrip().splitlines()[-60:]:
                print(f"       {line}")
        return ok


def groups_of(doc: dict, origin: str) -> dict:
    """The `groups:` document of a PrometheusRule object or of a plain rules file."""
    if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
        doc = doc.get("spec") or {}
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise SystemExit(f"{origin}: no `groups:` list")
    return {"groups": doc["groups"]}


def alerts_of(groups: dict) -> dict[str, dict]:
    return {r["alert"]: r for g in groups["groups"] for r in g["rules"] if "alert" in r}


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def render_chart(helm: str, *sets: str) -> dict:
    args = [helm, "template", "backup-maker", str(CHART), "--namespace", "backup-maker",
            "--set", "prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml"]
    for s in sets:
        args += ["--set", s]
    out = run(args)
    if out.returncode != 0:
        raise SystemExit(f"helm template {' '.join(sets)} failed:\n{out.stderr}")
    return groups_of(yaml.safe_load(out.stdout), "rendered PrometheusRule")


def test_files() -> list[Path]:
    files = sorted(TESTS.glob("*.yaml"))
    if not files:
        raise SystemExit(f"no promtool tests in {TESTS}")
    return files


def run_tests(promtool: str, rules: Path, files: list[Path], work: Path) -> tuple[int, list[str], str]:
    """Runs every test file against `rules`; returns (cases, failed case names, promtool output)."""
    cases, failed, output = 0, [], ""
    for f in files:
        test = yaml.safe_load(f.read_text())
        test["rule_files"] = [str(rules)]
        copy_path = work / f"{rules.stem}--{f.name}"
        copy_path.write_text(yaml.safe_dump(test, sort_keys=False, width=1000))
        cases += len(test["tests"])
        out = run([promtool, "test", "rules", str(copy_path)])
        output += out.stdout + out.stderr
        if out.returncode != 0:
            names = re.findall(r"^\s*name: (.*?),?\s*$", out.stdout + out.stderr, re.M)
            failed += [f"{f.name}: {n}" for n in dict.fromkeys(names)] or [f"{f.name}: (no test name in output)"]
    return cases, failed, output


def coverage(files: list[Path], alerts: dict[str, dict]) -> list[str]:
    """Alerts lacking a firing case, a quiet case or a case that fires and then resolves."""
    seen = {a: {"fires": False, "quiet": False, "resolves": False} for a in alerts}
    for f in files:
        for case in yaml.safe_load(f.read_text())["tests"]:
            by_alert: dict[str, list[tuple[int, bool]]] = {}
            for t in case.get("alert_rule_test", []):
                when = parse_duration(t["eval_time"])
                by_alert.setdefault(t["alertname"], []).append((when, bool(t.get("exp_alerts"))))
            for name, evals in by_alert.items():
                if name not in seen:
                    continue
                evals.sort()
                firing = [w for w, f_ in evals if f_]
                seen[name]["fires"] |= bool(firing)
                seen[name]["quiet"] |= not firing
                seen[name]["resolves"] |= any(w > min(firing) and not f_ for w, f_ in evals) if firing else False
    what = {"fires": "fires", "quiet": "stays quiet", "resolves": "fires and then resolves"}
    return [f"{a} has no test where it {what[k]}" for a, s in seen.items() for k, ok in s.items() if not ok]


def parse_duration(s: str) -> int:
    total = 0
    for n, unit in re.findall(r"(\d+)(ms|s|m|h|d)", str(s)):
        total += int(n) * {"ms": 0, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


def mutants(groups: dict) -> list[tuple[str, dict]]:
    """Broken variants of the rules that the tests must reject, each named after the bug it reintroduces."""

    def edit(alert: str, change) -> dict:
        g = copy.deepcopy(groups)
        change(alerts_of(g)[alert])
        return g

    def expr_sub(alert: str, old: str, new: str):
        def change(rule):
            assert old in rule["expr"], f"mutant of {alert}: {old!r} not in its expr (update the mutant)"
            rule["expr"] = rule["expr"].replace(old, new)
        return edit(alert, change)

    by_sb = "max by (namespace, scheduledbackup, operation) "
    backups = 'backup_maker_backup_overdue{operation="backup"}'
    by_collection = "max by (namespace, collection_id) "
    return [
        ("BackupOverdue without aggregation fires once per exporter replica with pod labels",
         expr_sub("BackupOverdue", by_sb + f"({backups})", backups)),
        ("BackupOverdue on restore ScheduledBackups too pages twice for a restore drill",
         expr_sub("BackupOverdue", backups, "backup_maker_backup_overdue")),
        ("BackupOverdue aggregated without `namespace` (K8up #1058: a missing by() collapses namespaces)",
         expr_sub("BackupOverdue", by_sb, "max by (scheduledbackup, operation) ")),
        ("BackupOverdue without `for` fires on a brief overdue flap",
         edit("BackupOverdue", lambda r: r.pop("for"))),
        ("BackupFailed without the `unless` branch misses backups that never succeeded",
         edit("BackupFailed", lambda r: r.update(expr=r["expr"].split("\nor\n")[0] + "\n"))),
        ("BackupFailed on the failure timestamp alone keeps firing after a success (CNPG #4512)",
         edit("BackupFailed", lambda r: r.update(
             expr="max by (namespace, scheduledbackup, operation) (backup_maker_last_failure_timestamp_seconds) > 0"))),
        ("BackupFailed comparing per replica fires on a lagging replica",
         edit("BackupFailed", lambda r: r.update(expr=r["expr"].replace(by_sb, "").replace(
             "on (namespace, scheduledbackup, operation)",
             "on (namespace, scheduledbackup, operation, pod, instance)")))),
        ("BackupActionFailed on the raw counter keeps firing forever (K8up #427)",
         edit("BackupActionFailed", lambda r: r.update(
             expr='sum by (namespace, action) (backup_maker_actions_total{result="failed"}) > 0'))),
        ("ControllerReconcileErrors without `for` fires on a short burst",
         edit("ControllerReconcileErrors", lambda r: r.pop("for"))),
        ("ControllerReconcileErrors summed over all controllers loses the `controller` label",
         expr_sub("ControllerReconcileErrors", "sum by (controller)", "sum")),
        ("ControllerDown with min instead of max fires while a standby replica waits",
         expr_sub("ControllerDown", "max by (controller)", "min by (controller)")),
        ("ControllerDown without absent_over_time misses a controller that is not scraped at all",
         edit("ControllerDown", lambda r: r.update(expr=r["expr"].split("\nor ")[0] + "\n"))),
        ("MetricsExporterDown without absent_over_time misses an exporter that is gone",
         edit("MetricsExporterDown", lambda r: r.update(expr=r["expr"].split("\nor ")[0] + "\n"))),
        ("MetricsExporterDown with min instead of max fires while one replica has synced",
         expr_sub("MetricsExporterDown", "max(", "min(")),
        ("BackupRestoreDrillOverdue without aggregation fires once per exporter replica with pod labels",
         expr_sub("BackupRestoreDrillOverdue", by_collection + "(backup_maker_restore_drill_overdue)",
                  "backup_maker_restore_drill_overdue")),
        ("BackupRestoreDrillOverdue aggregated without `namespace` collapses equal collection ids of two namespaces",
         expr_sub("BackupRestoreDrillOverdue", by_collection, "max by (collection_id) ")),
        ("BackupRestoreDrillOverdue without `for` fires on a brief overdue flap",
         edit("BackupRestoreDrillOverdue", lambda r: r.pop("for"))),
    ]


DISABLED_TEST = """
evaluation_interval: 1m
tests:
  - name: with {disabled} disabled, its missing series do not fire ControllerDown; another controller's do
    interval: 1m
    input_series:
{series}
    alert_rule_test:
      - eval_time: 30m
        alertname: ControllerDown
        exp_alerts:
          - exp_labels: {{severity: critical, controller: {missing}}}
            exp_annotations:
              summary: "{missing} is down or has no leader"
              description: "No running replica of {missing} leads: nothing reconciles ScheduledBackups, actions or keys. Check the Deployment's pods, their logs, and the Lease {missing}-leader."
"""


def disabled_controller_test(disabled: str) -> str:
    # Only the third controller is running: the disabled one must stay quiet, the other one (enabled but
    # unscraped) must still fire.
    running = [c for c in CONTROLLERS if c != disabled]
    series = f"      - series: 'backup_maker_leader{{controller=\"{running[0]}\", namespace=\"backup-maker\"}}'\n" \
             f"        values: '1x30'"
    return DISABLED_TEST.format(disabled=disabled, missing=running[1], series=series)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--promtool", required=True)
    ap.add_argument("--helm", required=True)
    args = ap.parse_args()
    checks = Checks()
    files = test_files()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = groups_of(yaml.safe_load(RULES.read_text()), str(RULES))
        chart_copy = groups_of(yaml.safe_load(CHART_RULES.read_text()), str(CHART_RULES))
        checks.record(chart_copy == source, "charts/backup-maker/files/prometheus-rules.yaml has the groups of "
                      "deploy/prometheus/rules.yaml", "stale: run `bash scripts/helm-check.sh sync`")
        forms = {
            "deploy": source,
            "chart-file": chart_copy,
            "helm-template": render_chart(args.helm, "prometheusRule.restoreDrills.enabled=true"),
        }
        alerts = alerts_of(source)
        for name, groups in forms.items():
            path = work / f"{name}.yaml"
            path.write_text(yaml.safe_dump(groups, sort_keys=False, width=1000))
            out = run([args.promtool, "check", "rules", str(path)])
            checks.record(out.returncode == 0, f"promtool check rules: {name} ({len(alerts_of(groups))} alerts)",
                          out.stdout + out.stderr)
            cases, failed, output = run_tests(args.promtool, path, files, work)
            if name == "deploy":
                baseline_failures = set(failed)
            checks.passed += cases - len(failed)
            checks.failed += len(failed)
            print(f"  {'ok  ' if not failed else 'FAIL'} promtool test rules: {name}: {cases - len(failed)} of {cases} cases")
            for f in failed:
                print(f"       failed: {f}")
            if failed:
                for line in output.splitlines()[-80:]:
                    print(f"       {line}")

        missing = coverage(files, alerts)
        checks.record(not missing, f"every alert ({len(alerts)}) has a firing, a quiet and a resolving case",
                      "\n".join(missing))

        # The chart leaves a disabled controller out of ControllerDown (templates/prometheusrule.yaml).
        for c in CONTROLLERS:
            groups = render_chart(args.helm, f"{c}.enabled=false")
            path = work / f"without-{c}.yaml"
            path.write_text(yaml.safe_dump(groups, sort_keys=False, width=1000))
            test = work / f"without-{c}-test.yaml"
            test.write_text(f"rule_files: [{path}]\n" + disabled_controller_test(c))
            out = run([args.promtool, "test", "rules", str(test)])
            checks.record(out.returncode == 0, f"chart with {c}.enabled=false: ControllerDown ignores it",
                          out.stdout + out.stderr)

        # The restore-drill group is optional: off by default, the rest unchanged.
        groups = render_chart(args.helm)
        left = sorted(set(alerts) - set(alerts_of(groups)))
        checks.record(left == [OPTIONAL_ALERT] and OPTIONAL_GROUP not in [g["name"] for g in groups["groups"]],
                      f"chart defaults leave the optional group {OPTIONAL_GROUP} out (left out: {left})")

        groups = render_chart(args.helm, "metrics-exporter.enabled=false", "prometheusRule.restoreDrills.enabled=true")
        left = sorted(set(alerts) - set(alerts_of(groups)))
        checks.record(left == ["MetricsExporterDown"], "chart with metrics-exporter.enabled=false: only "
                      f"MetricsExporterDown is left out (left out: {left})")

        for name, groups in mutants(source):
            path = work / "mutant.yaml"
            path.write_text(yaml.safe_dump(groups, sort_keys=False, width=1000))
            valid = run([args.promtool, "check", "rules", str(path)])
            _, failed, _ = run_tests(args.promtool, path, files, work)
            # Only a case that passes on the shipped rules counts as catching the mutant.
            failed = [f for f in failed if f not in baseline_failures]
            checks.record(valid.returncode == 0 and bool(failed),
                          f"mutant rejected: {name}" + (f" (by {failed[0]})" if failed else ""),
                          valid.stdout + valid.stderr if valid.returncode else "no test failed on this mutant")

    print(f"prometheus-rules: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
