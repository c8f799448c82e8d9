#!/usr/bin/env python3
"""Assertions on the rendered backup-maker chart (run by scripts/helm-check.sh).

Needs the helm binary in $HELM and PyYAML (the .tools venv has both). Standard library otherwise.
The RBAC expectations below are the documented contract (each subchart README, "Permissions"):
widening a rule in a _rules.tpl without changing it here too makes these tests fail, on purpose.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "backup-maker"
HELM = os.environ.get("HELM", "helm")
RELEASE, NAMESPACE = "bm", "backups"
CONTROLLERS = ["gpg-keygen", "scheduled-controller", "action-controller", "metrics-exporter"]
LIBRARY = "backup-maker-lib"
LEADER_ELECTING = ["gpg-keygen", "scheduled-controller", "action-controller"]

R, W, L, C, P, D = "get", "watch", "list", "create", "patch", "delete"
READ = {R, L, W}


def rules(*entries: tuple[str, str | list[str], set[str]]) -> set[tuple[str, str, str]]:
    out = set()
    for group, resources, verbs in entries:
        for res in [resources] if isinstance(resources, str) else resources:
            for verb in verbs:
                out.add((group, res, verb))
    return out


EVENTS = ("events.k8s.io", "events", {C, P})
EXPECTED_CLUSTER_RULES = {
    "gpg-keygen": rules(
        ("", "secrets", READ | {C}),
        ("riotkit.org", "scheduledbackups", READ),
        ("riotkit.org", "scheduledbackups/status", {P}),
        EVENTS,
    ),
    "scheduled-controller": rules(
        ("riotkit.org", "scheduledbackups", READ),
        ("riotkit.org", "scheduledbackups/status", {P}),
        ("riotkit.org", "scheduledbackups/finalizers", {"update"}),
        ("riotkit.org", "requestedbackupactions", {C}),
        ("riotkit.org", "clusterbackupproceduretemplates", READ),
        ("", ["secrets", "configmaps", "podtemplates"], READ | {C, P, D}),
        ("batch", "cronjobs", READ | {C, P, D}),
        ("batch", "jobs", READ),
        ("", "pods", READ),
        EVENTS,
    ),
    "action-controller": rules(
        ("riotkit.org", "requestedbackupactions", READ | {D}),
        ("riotkit.org", "requestedbackupactions/status", {P}),
        ("riotkit.org", "requestedbackupactions/finalizers", {"update"}),
        ("riotkit.org", "scheduledbackups", READ),
        ("", "podtemplates", READ),
        ("", "pods", {L}),
        ("batch", "jobs", READ | {C}),
        ("argoproj.io", "workflows", READ | {C}),
        EVENTS,
    ),
    "metrics-exporter": rules(
        ("riotkit.org", ["scheduledbackups", "requestedbackupactions"], READ),
        ("batch", ["cronjobs", "jobs"], READ),
    ),
}
USER_KINDS = ["scheduledbackups", "requestedbackupactions"]
EXPECTED_AGGREGATED = {
    "admin": rules(
        ("riotkit.org", USER_KINDS, READ | {C, "update", P, D}),
        ("riotkit.org", "clusterbackupproceduretemplates", READ),
    ),
    "edit": rules(
        ("riotkit.org", USER_KINDS, READ | {C, "update", P, D}),
        ("riotkit.org", "clusterbackupproceduretemplates", READ),
    ),
    "view": rules(("riotkit.org", USER_KINDS + ["clusterbackupproceduretemplates"], READ)),
}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "ClusterBackupProcedureTemplate"}


class RenderError(Exception):
    pass


@functools.lru_cache(maxsize=None)
def _render(chart: str, args: tuple[str, ...]) -> tuple[dict, ...]:
    cmd = [HELM, "template", RELEASE, chart, "--namespace", NAMESPACE, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def render(*sets: str, chart: Path = CHART, extra: tuple[str, ...] = ()) -> list[dict]:
    args: list[str] = list(extra)
    for s in sets:
        args += ["--set", s]
    return list(_render(str(chart), tuple(args)))


def notes(chart: Path, *sets: str) -> str:
    """NOTES.txt as `helm install --dry-run=client` prints it (no cluster needed)."""
    cmd = [HELM, "install", RELEASE, str(chart), "--namespace", NAMESPACE, "--dry-run=client"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())
    return proc.stdout.split("NOTES:", 1)[1]


def kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in kinds(docs, kind) if d["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def rule_triples(role: dict) -> set[tuple[str, str, str]]:
    out = set()
    for rule in role.get("rules") or []:
        for group in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    out.add((group, res, verb))
    return out


def component_of(doc: dict) -> str | None:
    return (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/name")


def container(docs: list[dict], name: str) -> dict:
    dep = named(docs, "Deployment", f"{RELEASE}-{name}")
    return dep["spec"]["template"]["spec"]["containers"][0]


def chart_copy(tmp: str, with_crds: bool = False, with_rules: bool = False, with_dashboards: bool = False) -> Path:
    """A throwaway copy of the umbrella chart with chosen optional files present or absent."""
    dst = Path(tmp) / "backup-maker"
    shutil.copytree(CHART, dst)
    shutil.rmtree(dst / "crds", ignore_errors=True)
    shutil.rmtree(dst / "files" / "dashboards", ignore_errors=True)
    (dst / "files" / "prometheus-rules.yaml").unlink(missing_ok=True)
    if with_crds:
        shutil.copytree(ROOT / "crds", dst / "crds")
    if with_rules:
        (dst / "files" / "prometheus-rules.yaml").write_text(
            "groups:\n- name: test\n  rules:\n  - alert: T\n    expr: up == 0\n"
            "    annotations:\n      summary: '{{ $labels.job }} down'\n"
        )
    if with_dashboards:
        (dst / "files" / "dashboards").mkdir(parents=True)
        (dst / "files" / "dashboards" / "overview.json").write_text('{"title": "Backups {{x}}"}\n')
    return dst


def standalone_subchart(tmp: str, name: str, build: bool = True) -> Path:
    """A copy of one subchart next to the library chart, with the library packaged into it by
    `helm dependency build` (what installing a subchart on its own takes), or not."""
    root = Path(tmp) / f"standalone-{name}"
    for chart in (name, LIBRARY):
        shutil.copytree(CHART / "charts" / chart, root / chart, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    if build:
        dependency_build(root / name)
    return root / name


def dependency_build(chart: Path) -> None:
    proc = subprocess.run([HELM, "dependency", "build", str(chart)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())


class Rbac(unittest.TestCase):
    def test_each_controller_cluster_role_has_exactly_the_documented_rules(self):
        docs = render()
        for name, expected in EXPECTED_CLUSTER_RULES.items():
            with self.subTest(controller=name):
                role = named(docs, "ClusterRole", f"{RELEASE}-{name}")
                self.assertEqual(rule_triples(role), expected)
                for rule in role["rules"]:
                    self.assertFalse({"resourceNames", "nonResourceURLs"} & rule.keys(), rule)
                    self.assertNotIn("*", rule["verbs"] + rule["resources"] + rule["apiGroups"])

    def test_the_action_controller_can_read_no_secret_and_no_procedure_template(self):
        # It runs the PodTemplate the scheduled-controller hands off: an action runner that could read every Secret
        # in the cluster would be a confused deputy for anyone allowed to create a RequestedBackupAction.
        for sets in ((), ("global.watchNamespace=team-a",)):
            with self.subTest(sets=sets):
                docs = render(*sets)
                roles = [r for r in kinds(docs, "ClusterRole") + kinds(docs, "Role")
                         if r["metadata"]["name"].startswith(f"{RELEASE}-action-controller")]
                self.assertTrue(roles)
                resources = {res for role in roles for rule in role["rules"] for res in rule["resources"]}
                self.assertNotIn("secrets", resources)
                self.assertNotIn("clusterbackupproceduretemplates", resources)
                self.assertIn("podtemplates", resources)

    def test_widening_a_rule_in_a_rules_template_is_caught(self):
        with tempfile.TemporaryDirectory() as tmp:
            chart = chart_copy(tmp)
            rules_tpl = chart / "charts" / "gpg-keygen" / "templates" / "_rules.tpl"
            text = rules_tpl.read_text()
            widened = text.replace('verbs: ["get", "list", "watch", "create"]', 'verbs: ["get", "list", "watch", "create", "update"]', 1)
            self.assertNotEqual(text, widened)
            rules_tpl.write_text(widened)
            triples = rule_triples(named(render(chart=chart), "ClusterRole", f"{RELEASE}-gpg-keygen"))
            self.assertNotEqual(triples, EXPECTED_CLUSTER_RULES["gpg-keygen"])
            self.assertEqual(triples - EXPECTED_CLUSTER_RULES["gpg-keygen"], {("", "secrets", "update")})

    def test_watch_namespace_binds_namespaced_rules_only_in_that_namespace(self):
        docs = render("global.watchNamespace=team-a")
        for name, expected in EXPECTED_CLUSTER_RULES.items():
            with self.subTest(controller=name):
                cluster_scoped = {t for t in expected if t[1] == "clusterbackupproceduretemplates"}
                namespaced_role = named(docs, "ClusterRole", f"{RELEASE}-{name}")
                self.assertEqual(rule_triples(namespaced_role), expected - cluster_scoped)
                binding = named(docs, "RoleBinding", f"{RELEASE}-{name}")
                self.assertEqual(binding["metadata"]["namespace"], "team-a")
                self.assertEqual(binding["roleRef"]["name"], f"{RELEASE}-{name}")
                crb_names = [b["metadata"]["name"] for b in kinds(docs, "ClusterRoleBinding")]
                self.assertNotIn(f"{RELEASE}-{name}", crb_names)
                if cluster_scoped:
                    role = named(docs, "ClusterRole", f"{RELEASE}-{name}-cluster-scoped")
                    self.assertEqual(rule_triples(role), cluster_scoped)
                    crb = named(docs, "ClusterRoleBinding", f"{RELEASE}-{name}-cluster-scoped")
                    self.assertEqual(crb["subjects"][0]["name"], f"{RELEASE}-{name}")
                else:
                    self.assertNotIn(f"{RELEASE}-{name}-cluster-scoped", crb_names)
                self.assertIn("--namespace=team-a", container(docs, name)["args"])

    def test_update_is_granted_only_on_the_finalizers_of_the_owners_of_created_children(self):
        # OwnerReferencesPermissionEnforcement (OpenShift enables it): creating a child whose ownerReference has
        # blockOwnerDeletion needs `update` on the owner's finalizers subresource. Nothing else may be updated.
        owners = {
            "scheduled-controller": {("riotkit.org", "scheduledbackups/finalizers", "update")},
            "action-controller": {("riotkit.org", "requestedbackupactions/finalizers", "update")},
        }
        for name in CONTROLLERS:
            triples = rule_triples(named(render(), "ClusterRole", f"{RELEASE}-{name}"))
            self.assertFalse({t for t in triples if t[2] in {"deletecollection", "escalate", "bind"}}, name)
            self.assertEqual({t for t in triples if t[2] == "update"}, owners.get(name, set()), name)
            self.assertEqual({t for t in triples if t[1].endswith("/finalizers")}, owners.get(name, set()), name)

    def test_aggregated_roles_grant_exactly_the_documented_verbs(self):
        docs = render()
        for role, expected in EXPECTED_AGGREGATED.items():
            with self.subTest(role=role):
                cr = named(docs, "ClusterRole", f"{RELEASE}-backup-maker-aggregate-to-{role}")
                self.assertEqual(cr["metadata"]["labels"][f"rbac.authorization.k8s.io/aggregate-to-{role}"], "true")
                self.assertEqual(rule_triples(cr), expected)

    def test_aggregated_roles_can_be_turned_off(self):
        names = [d["metadata"]["name"] for d in kinds(render("aggregatedRoles.enabled=false"), "ClusterRole")]
        self.assertEqual(sorted(names), sorted(f"{RELEASE}-{n}" for n in CONTROLLERS))

    def test_lease_role_covers_only_the_controllers_own_lease_in_the_release_namespace(self):
        docs = render()
        roles = kinds(docs, "Role")
        self.assertEqual(
            sorted(r["metadata"]["name"] for r in roles), sorted(f"{RELEASE}-{n}-leader-election" for n in LEADER_ELECTING)
        )
        for name in LEADER_ELECTING:
            role = named(docs, "Role", f"{RELEASE}-{name}-leader-election")
            self.assertEqual(role["metadata"]["namespace"], NAMESPACE)
            self.assertEqual(
                role["rules"],
                [
                    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                    {
                        "apiGroups": ["coordination.k8s.io"],
                        "resources": ["leases"],
                        "resourceNames": [f"{name}-leader"],
                        "verbs": ["get", "list", "watch", "patch"],
                    },
                ],
            )
            binding = named(docs, "RoleBinding", f"{RELEASE}-{name}-leader-election")
            self.assertEqual(binding["roleRef"]["name"], role["metadata"]["name"])

    def test_disabling_leader_election_drops_the_lease_role_and_tells_the_binary(self):
        docs = render("gpg-keygen.leaderElection.enabled=false")
        self.assertNotIn(f"{RELEASE}-gpg-keygen-leader-election", [r["metadata"]["name"] for r in kinds(docs, "Role")])
        self.assertIn("--leader-election=false", container(docs, "gpg-keygen")["args"])
        self.assertIn("--leader-election=true", container(docs, "action-controller")["args"])

    def test_bindings_point_at_each_controllers_own_service_account(self):
        docs = render()
        for name in CONTROLLERS:
            sa = named(docs, "ServiceAccount", f"{RELEASE}-{name}")
            self.assertFalse(sa["automountServiceAccountToken"])
            binding = named(docs, "ClusterRoleBinding", f"{RELEASE}-{name}")
            self.assertEqual(binding["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{RELEASE}-{name}"})
            self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": f"{RELEASE}-{name}", "namespace": NAMESPACE}])
            dep = named(docs, "Deployment", f"{RELEASE}-{name}")
            self.assertEqual(dep["spec"]["template"]["spec"]["serviceAccountName"], f"{RELEASE}-{name}")

    def test_existing_service_account_is_used_when_creation_is_off(self):
        docs = render("metrics-exporter.serviceAccount.create=false", "metrics-exporter.serviceAccount.name=mine")
        self.assertNotIn(f"{RELEASE}-metrics-exporter", [s["metadata"]["name"] for s in kinds(docs, "ServiceAccount")])
        self.assertEqual(named(docs, "ClusterRoleBinding", f"{RELEASE}-metrics-exporter")["subjects"][0]["name"], "mine")
        with self.assertRaisesRegex(RenderError, "serviceAccount.name is required"):
            render("metrics-exporter.serviceAccount.create=false")


class Workloads(unittest.TestCase):
    VARIANTS = {
        "defaults": (),
        "everything on": (
            "gpg-keygen.replicas=2",
            "scheduled-controller.networkPolicy.enabled=true",
            "action-controller.serviceMonitor.enabled=true",
            "metrics-exporter.replicas=3",
            "exampleTemplate.enabled=true",
        ),
    }

    def test_default_render_has_one_deployment_per_controller(self):
        deps = kinds(render(), "Deployment")
        self.assertEqual(sorted(d["metadata"]["name"] for d in deps), sorted(f"{RELEASE}-{n}" for n in CONTROLLERS))

    def test_every_container_has_the_restricted_security_context(self):
        for variant, sets in self.VARIANTS.items():
            for dep in kinds(render(*sets), "Deployment"):
                with self.subTest(variant=variant, deployment=dep["metadata"]["name"]):
                    pod = dep["spec"]["template"]["spec"]
                    self.assertTrue(pod["securityContext"]["runAsNonRoot"])
                    self.assertEqual(pod["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
                    self.assertNotIn("hostNetwork", pod)
                    for c in pod["containers"] + pod.get("initContainers", []):
                        sc = c["securityContext"]
                        self.assertIs(sc["runAsNonRoot"], True)
                        self.assertIs(sc["readOnlyRootFilesystem"], True)
                        self.assertIs(sc["allowPrivilegeEscalation"], False)
                        self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
                        self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
                        self.assertNotIn("privileged", sc)

    def test_every_deployment_probes_healthz_and_readyz_on_the_metrics_port(self):
        for variant, sets in {**self.VARIANTS, "port 9100": ("global.logLevel=debug", *(f"{n}.metrics.port=9100" for n in CONTROLLERS))}.items():
            for dep in kinds(render(*sets), "Deployment"):
                with self.subTest(variant=variant, deployment=dep["metadata"]["name"]):
                    c = dep["spec"]["template"]["spec"]["containers"][0]
                    self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "metrics"})
                    self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "metrics"})
                    port = c["ports"][0]
                    self.assertEqual(port["name"], "metrics")
                    self.assertIn(f"--metrics-addr=0.0.0.0:{port['containerPort']}", c["args"])
                    if variant == "port 9100":
                        self.assertEqual(port["containerPort"], 9100)

    def test_service_exposes_the_metrics_port_of_its_own_pods(self):
        docs = render("scheduled-controller.metrics.port=9000")
        for name in CONTROLLERS:
            svc = named(docs, "Service", f"{RELEASE}-{name}-metrics")
            dep = named(docs, "Deployment", f"{RELEASE}-{name}")
            self.assertEqual(svc["spec"]["ports"][0]["targetPort"], "metrics")
            self.assertEqual(svc["spec"]["ports"][0]["port"], 9000 if name == "scheduled-controller" else 8080)
            self.assertEqual(svc["spec"]["selector"], dep["spec"]["selector"]["matchLabels"])
            labels = dep["spec"]["template"]["metadata"]["labels"]
            self.assertLessEqual(svc["spec"]["selector"].items(), labels.items())

    def test_each_controller_can_be_disabled_on_its_own(self):
        for off in CONTROLLERS:
            with self.subTest(disabled=off):
                docs = render(f"{off}.enabled=false")
                present = {component_of(d) for d in docs}
                self.assertNotIn(off, present)
                for other in set(CONTROLLERS) - {off}:
                    named(docs, "Deployment", f"{RELEASE}-{other}")

    def test_one_controller_only_install_has_just_its_objects_and_the_user_roles(self):
        others = [f"{n}.enabled=false" for n in CONTROLLERS if n != "gpg-keygen"]
        docs = render(*others)
        self.assertEqual({component_of(d) for d in docs}, {"gpg-keygen", "backup-maker"})

    def test_pod_disruption_budget_exists_only_with_more_than_one_replica(self):
        self.assertEqual(kinds(render(), "PodDisruptionBudget"), [])
        docs = render("scheduled-controller.replicas=2", "metrics-exporter.replicas=2")
        pdbs = {p["metadata"]["name"]: p for p in kinds(docs, "PodDisruptionBudget")}
        self.assertEqual(sorted(pdbs), [f"{RELEASE}-metrics-exporter", f"{RELEASE}-scheduled-controller"])
        dep = named(docs, "Deployment", f"{RELEASE}-scheduled-controller")
        self.assertEqual(pdbs[f"{RELEASE}-scheduled-controller"]["spec"]["selector"], dep["spec"]["selector"])
        self.assertEqual(pdbs[f"{RELEASE}-scheduled-controller"]["spec"]["maxUnavailable"], 1)

    def test_more_than_one_replica_without_leader_election_is_refused(self):
        with self.assertRaisesRegex(RenderError, r"action-controller.replicas is 2 but action-controller.leaderElection.enabled is false"):
            render("action-controller.replicas=2", "action-controller.leaderElection.enabled=false")

    def test_exporter_takes_no_leader_election_flag_and_no_lease(self):
        c = container(render(), "metrics-exporter")
        self.assertFalse([a for a in c["args"] if a.startswith("--leader-election")])
        with self.assertRaisesRegex(RenderError, "leaderElection"):
            render("metrics-exporter.leaderElection.enabled=true")

    def test_args_and_env_follow_values_with_subchart_values_winning_over_globals(self):
        docs = render(
            "global.logLevel=debug",
            "global.logFormat=text",
            "global.watchNamespace=team-a",
            "action-controller.logLevel=info\\,kube=warn",
            "action-controller.logFormat=json",
            "action-controller.watchNamespace=team-b",
            "action-controller.concurrency=3",
        )
        gk = container(docs, "gpg-keygen")
        self.assertEqual(gk["args"], ["run", "--metrics-addr=0.0.0.0:8080", "--leader-election=true", "--log-format=text", "--namespace=team-a"])
        self.assertEqual(gk["env"][0], {"name": "RUST_LOG", "value": "debug"})
        ac = container(docs, "action-controller")
        self.assertEqual(
            ac["args"],
            ["run", "--metrics-addr=0.0.0.0:8080", "--leader-election=true", "--log-format=json", "--namespace=team-b", "--concurrency=3"],
        )
        self.assertEqual(ac["env"][0], {"name": "RUST_LOG", "value": "info,kube=warn"})
        env = {e["name"]: e for e in ac["env"]}
        self.assertEqual(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")
        self.assertEqual(env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace")

    def test_exporter_overdue_grace_is_passed_only_when_set(self):
        self.assertFalse([a for a in container(render(), "metrics-exporter")["args"] if a.startswith("--overdue-grace")])
        self.assertIn("--overdue-grace=2h30m", container(render("metrics-exporter.overdueGrace=2h30m"), "metrics-exporter")["args"])
        with self.assertRaisesRegex(RenderError, "overdueGrace"):
            render("metrics-exporter.overdueGrace=soon")
        with self.assertRaisesRegex(RenderError, "overdueGrace"):
            render("gpg-keygen.overdueGrace=1h")

    def test_defaults_log_json_at_info_for_the_whole_cluster(self):
        c = container(render(), "scheduled-controller")
        self.assertEqual(c["args"], ["run", "--metrics-addr=0.0.0.0:8080", "--leader-election=true", "--log-format=json"])
        self.assertEqual(c["env"][0]["value"], "info")

    def test_image_defaults_to_the_app_version_and_every_override_applies(self):
        app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
        self.assertEqual(container(render(), "gpg-keygen")["image"], f"ghcr.io/riotkit-org/gpg-keygen:{app_version}")
        docs = render(
            "global.image.registry=registry.example/mirror",
            "global.image.tag=1.2.3",
            "gpg-keygen.image.repository=other/keygen",
            "action-controller.image.tag=9.9.9",
            "metrics-exporter.image.digest=sha256:" + "a" * 64,
        )
        self.assertEqual(container(docs, "gpg-keygen")["image"], "other/keygen:1.2.3")
        self.assertEqual(container(docs, "action-controller")["image"], "registry.example/mirror/action-controller:9.9.9")
        self.assertEqual(container(docs, "scheduled-controller")["image"], "registry.example/mirror/scheduled-controller:1.2.3")
        self.assertEqual(container(docs, "metrics-exporter")["image"], "registry.example/mirror/metrics-exporter:1.2.3@sha256:" + "a" * 64)

    def test_scheduling_and_pod_metadata_values_reach_the_pod(self):
        docs = render(
            "scheduled-controller.nodeSelector.disk=ssd",
            "scheduled-controller.tolerations[0].key=dedicated",
            "scheduled-controller.tolerations[0].operator=Exists",
            "scheduled-controller.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone",
            "scheduled-controller.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
            "scheduled-controller.podAnnotations.team=backups",
            "scheduled-controller.resources.limits.memory=1Gi",
            "scheduled-controller.priorityClassName=system-cluster-critical",
        )
        pod = named(docs, "Deployment", f"{RELEASE}-scheduled-controller")["spec"]["template"]
        self.assertEqual(pod["spec"]["nodeSelector"], {"disk": "ssd"})
        self.assertEqual(pod["spec"]["tolerations"], [{"key": "dedicated", "operator": "Exists"}])
        self.assertIn("nodeAffinity", pod["spec"]["affinity"])
        self.assertEqual(pod["metadata"]["annotations"]["team"], "backups")
        self.assertEqual(pod["spec"]["containers"][0]["resources"]["limits"], {"memory": "1Gi"})
        self.assertEqual(pod["spec"]["priorityClassName"], "system-cluster-critical")
        other = named(docs, "Deployment", f"{RELEASE}-gpg-keygen")["spec"]["template"]["spec"]
        self.assertNotIn("nodeSelector", other)

    def test_every_namespaced_object_lands_in_the_release_namespace(self):
        for d in render(*Workloads.VARIANTS["everything on"]):
            if d["kind"] not in CLUSTER_SCOPED:
                self.assertEqual(d["metadata"].get("namespace"), NAMESPACE, f"{d['kind']} {d['metadata']['name']}")

    def test_subcharts_render_on_their_own_once_their_library_dependency_is_built(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name in CONTROLLERS:
                with self.subTest(chart=name):
                    docs = render(chart=standalone_subchart(tmp, name))
                    named(docs, "Deployment", f"{RELEASE}-{name}")
                    self.assertEqual(rule_triples(named(docs, "ClusterRole", f"{RELEASE}-{name}")), EXPECTED_CLUSTER_RULES[name])

    def test_a_subchart_on_its_own_without_its_library_asks_for_helm_dependency_build(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(RenderError, f"helm dependency build.*missing in charts/ directory: {LIBRARY}"):
                render(chart=standalone_subchart(tmp, "gpg-keygen", build=False))


class Sharding(unittest.TestCase):
    SHARDS = "global.sharding.shards={a,b}"

    def deployment(self, docs: list[dict], name: str) -> dict:
        return named(docs, "Deployment", name)

    def test_no_shards_means_one_unsharded_deployment_per_controller_without_a_shard_selector(self):
        for dep in kinds(render(), "Deployment"):
            args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
            self.assertFalse([a for a in args if a.startswith("--shard-selector")], dep["metadata"]["name"])

    def test_each_shard_gets_a_deployment_of_each_leader_electing_controller_with_its_selector(self):
        docs = render(self.SHARDS)
        for name in LEADER_ELECTING:
            for shard in ["a", "b"]:
                with self.subTest(controller=name, shard=shard):
                    dep = self.deployment(docs, f"{RELEASE}-{name}-shard-{shard}")
                    pod = dep["spec"]["template"]
                    self.assertIn(f"--shard-selector=riotkit.org/shard={shard}", pod["spec"]["containers"][0]["args"])
                    # Its own selector: the shard's ReplicaSets never count the main Deployment's pods.
                    self.assertEqual(dep["spec"]["selector"]["matchLabels"]["riotkit.org/shard"], shard)
                    self.assertEqual(pod["metadata"]["labels"]["riotkit.org/shard"], shard)
                    self.assertEqual(pod["spec"]["serviceAccountName"], f"{RELEASE}-{name}")

    def test_with_shards_the_main_deployments_take_the_default_shard(self):
        docs = render(self.SHARDS)
        for name in LEADER_ELECTING:
            with self.subTest(controller=name):
                self.assertIn("--shard-selector=!riotkit.org/shard", container(docs, name)["args"])

    def test_the_exporter_is_not_sharded(self):
        docs = render(self.SHARDS)
        self.assertFalse([a for a in container(docs, "metrics-exporter")["args"] if "shard" in a])
        self.assertEqual(
            [d["metadata"]["name"] for d in kinds(docs, "Deployment") if "metrics-exporter" in d["metadata"]["name"]],
            [f"{RELEASE}-metrics-exporter"],
        )

    def test_each_shard_may_take_its_own_lease_and_no_other(self):
        docs = render(self.SHARDS)
        for name in LEADER_ELECTING:
            role = named(docs, "Role", f"{RELEASE}-{name}-leader-election")
            self.assertEqual(
                role["rules"][1]["resourceNames"], [f"{name}-leader", f"{name}-leader-a", f"{name}-leader-b"]
            )

    def test_metrics_service_selects_the_pods_of_every_shard(self):
        docs = render(self.SHARDS)
        service = named(docs, "Service", f"{RELEASE}-scheduled-controller-metrics")
        pod_labels = self.deployment(docs, f"{RELEASE}-scheduled-controller-shard-a")["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(service["spec"]["selector"].items(), pod_labels.items())

    def test_a_subchart_can_be_sharded_on_its_own(self):
        docs = render("scheduled-controller.sharding.shards={x}")
        names = [d["metadata"]["name"] for d in kinds(docs, "Deployment")]
        self.assertIn(f"{RELEASE}-scheduled-controller-shard-x", names)
        self.assertNotIn(f"{RELEASE}-action-controller-shard-x", names)
        self.assertFalse([a for a in container(docs, "action-controller")["args"] if "shard" in a])

    def test_shard_names_that_cannot_name_a_deployment_and_a_lease_are_refused(self):
        for bad in ["A", "a_b", "-a", "x" * 31]:
            with self.subTest(name=bad), self.assertRaisesRegex(RenderError, "shards"):
                render(f"global.sharding.shards={{{bad}}}")

    def test_a_shard_deployment_name_longer_than_63_characters_is_refused_with_the_fix(self):
        with self.assertRaisesRegex(RenderError, "shorter shard name"):
            render("scheduled-controller.fullnameOverride=" + "n" * 40, "global.sharding.shards={" + "s" * 20 + "}")


class Library(unittest.TestCase):
    """The shared templates live once, in the library chart; the subcharts only include them."""

    LIB = CHART / "charts" / LIBRARY

    def object_templates(self) -> set[str]:
        """The library's object templates: every `define` outside _helpers.tpl."""
        names = set()
        for tpl in self.LIB.glob("templates/_*.tpl"):
            if tpl.name != "_helpers.tpl":
                names |= set(re.findall(r'\{\{-? define "([^"]+)"', tpl.read_text()))
        return names

    def test_every_subchart_template_is_one_include_of_a_library_object_template(self):
        objects = self.object_templates()
        self.assertEqual(len(objects), 7, objects)
        for name in CONTROLLERS:
            with self.subTest(chart=name):
                templates = sorted((CHART / "charts" / name / "templates").iterdir())
                included = set()
                for tpl in templates:
                    if tpl.name == "_rules.tpl":
                        continue
                    match = re.fullmatch(r'\{\{- include "(bmc\.\w+)" \. \}\}\n', tpl.read_text())
                    self.assertIsNotNone(match, f"{tpl.relative_to(CHART)} is not one include of a library template")
                    included.add(match.group(1))
                self.assertEqual(included, objects)
                self.assertEqual(len(templates), len(objects) + 1)

    def test_the_library_is_a_library_chart_that_the_umbrella_and_every_subchart_depend_on(self):
        lib = yaml.safe_load((self.LIB / "Chart.yaml").read_text())
        self.assertEqual((lib["name"], lib["type"]), (LIBRARY, "library"))
        umbrella = yaml.safe_load((CHART / "Chart.yaml").read_text())
        self.assertIn({"name": LIBRARY, "version": lib["version"], "repository": f"file://charts/{LIBRARY}"}, umbrella["dependencies"])
        for name in CONTROLLERS:
            with self.subTest(chart=name):
                chart = yaml.safe_load((CHART / "charts" / name / "Chart.yaml").read_text())
                self.assertEqual(chart["dependencies"], [{"name": LIBRARY, "version": lib["version"], "repository": f"file://../{LIBRARY}"}])

    def test_a_stale_library_packaged_into_a_subchart_does_not_change_the_umbrellas_render(self):
        # A user who once ran `helm dependency build` on a subchart keeps that packaged copy; through the
        # umbrella, the umbrella's own library must still be the one rendered. Two things see to it: the
        # umbrella's .helmignore skips *.tgz, and Helm parses the shallowest copy of a template name last.
        with tempfile.TemporaryDirectory() as tmp:
            chart = chart_copy(tmp)
            deployment_tpl = chart / "charts" / LIBRARY / "templates" / "_deployment.tpl"
            current = deployment_tpl.read_text()
            deployment_tpl.write_text(current.replace("revisionHistoryLimit: 3", "revisionHistoryLimit: 7"))
            dependency_build(chart / "charts" / "gpg-keygen")
            stale = named(render(chart=chart / "charts" / "gpg-keygen"), "Deployment", f"{RELEASE}-gpg-keygen")
            self.assertEqual(stale["spec"]["revisionHistoryLimit"], 7)
            deployment_tpl.write_text(current)
            for dep in kinds(render(chart=chart), "Deployment"):
                self.assertEqual(dep["spec"]["revisionHistoryLimit"], 3, dep["metadata"]["name"])

    def test_values_set_in_the_librarys_scope_are_refused_instead_of_ignored(self):
        for bad in [f"{LIBRARY}.replicas=2", f"gpg-keygen.{LIBRARY}.replicas=2"]:
            with self.subTest(value=bad):
                with self.assertRaisesRegex(RenderError, f"/{LIBRARY}.*additional properties 'replicas' not allowed"):
                    render(bad)


class Optional(unittest.TestCase):
    def test_service_monitor_and_network_policy_only_when_enabled(self):
        docs = render()
        self.assertEqual(kinds(docs, "ServiceMonitor"), [])
        self.assertEqual(kinds(docs, "NetworkPolicy"), [])
        docs = render("gpg-keygen.serviceMonitor.enabled=true", "gpg-keygen.serviceMonitor.labels.release=prom", "metrics-exporter.networkPolicy.enabled=true")
        (sm,) = kinds(docs, "ServiceMonitor")
        self.assertEqual(sm["metadata"]["name"], f"{RELEASE}-gpg-keygen")
        self.assertEqual(sm["metadata"]["labels"]["release"], "prom")
        self.assertEqual(sm["spec"]["endpoints"][0]["port"], "metrics")
        self.assertEqual(sm["spec"]["endpoints"][0]["path"], "/metrics")
        self.assertEqual(sm["spec"]["selector"]["matchLabels"], named(docs, "Service", f"{RELEASE}-gpg-keygen-metrics")["spec"]["selector"])
        self.assertIs(sm["spec"]["endpoints"][0]["honorLabels"], False)
        (np,) = kinds(docs, "NetworkPolicy")
        self.assertEqual(np["metadata"]["name"], f"{RELEASE}-metrics-exporter")

    def test_exporter_service_monitor_honors_labels_so_its_namespace_label_survives(self):
        docs = render("metrics-exporter.serviceMonitor.enabled=true")
        (sm,) = kinds(docs, "ServiceMonitor")
        self.assertEqual(sm["metadata"]["name"], f"{RELEASE}-metrics-exporter")
        self.assertIs(sm["spec"]["endpoints"][0]["honorLabels"], True)

    def test_network_policy_allows_only_metrics_in_and_dns_plus_api_server_out(self):
        docs = render(
            "scheduled-controller.networkPolicy.enabled=true",
            "scheduled-controller.networkPolicy.apiServer.cidrs[0]=10.96.0.1/32",
            "scheduled-controller.networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
        )
        np = named(docs, "NetworkPolicy", f"{RELEASE}-scheduled-controller")["spec"]
        dep = named(docs, "Deployment", f"{RELEASE}-scheduled-controller")
        self.assertEqual(np["podSelector"]["matchLabels"], dep["spec"]["selector"]["matchLabels"])
        self.assertEqual(np["policyTypes"], ["Ingress", "Egress"])
        self.assertEqual(np["ingress"], [{"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]}])
        dns, api = np["egress"]
        self.assertEqual({(p["port"], p["protocol"]) for p in dns["ports"]}, {(53, "UDP"), (53, "TCP")})
        self.assertEqual(dns["to"][0]["podSelector"]["matchLabels"], {"k8s-app": "kube-dns"})
        self.assertEqual([p["port"] for p in api["ports"]], [443, 6443])
        self.assertEqual(api["to"], [{"ipBlock": {"cidr": "10.96.0.1/32"}}])

    def test_prometheus_rule_only_when_enabled_and_embedded_verbatim(self):
        with tempfile.TemporaryDirectory() as tmp:
            chart = chart_copy(tmp, with_rules=True)
            self.assertEqual(kinds(render(chart=chart), "PrometheusRule"), [])
            (rule,) = kinds(render("prometheusRule.enabled=true", "prometheusRule.labels.release=prom", chart=chart), "PrometheusRule")
            self.assertEqual(rule["metadata"]["labels"]["release"], "prom")
            self.assertEqual(rule["metadata"]["namespace"], NAMESPACE)
            alert = rule["spec"]["groups"][0]["rules"][0]
            self.assertEqual(alert["annotations"]["summary"], "{{ $labels.job }} down")

    def test_notes_warn_when_alerts_are_on_but_a_controller_is_not_scraped(self):
        with tempfile.TemporaryDirectory() as tmp:
            chart = chart_copy(tmp, with_rules=True)
            scraped = [f"{n}.serviceMonitor.enabled=true" for n in CONTROLLERS]
            self.assertNotIn("WARNING", notes(chart, "prometheusRule.enabled=true", *scraped))
            text = notes(chart, "prometheusRule.enabled=true", *scraped[1:])
            self.assertIn("gpg-keygen.serviceMonitor.enabled is false", text)
            text = notes(chart, "prometheusRule.enabled=true", "action-controller.enabled=false", *scraped)
            self.assertIn("action-controller is disabled but prometheusRule is enabled", text)
            self.assertIn("action-controller: disabled", text)

    def test_prometheus_rule_without_the_rules_file_fails_with_the_fix(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(RenderError, "files/prometheus-rules.yaml is missing.*helm-check.sh sync"):
                render("prometheusRule.enabled=true", chart=chart_copy(tmp))

    def test_grafana_dashboards_become_sidecar_config_maps_only_when_enabled(self):
        with tempfile.TemporaryDirectory() as tmp:
            chart = chart_copy(tmp, with_dashboards=True)
            self.assertEqual(kinds(render(chart=chart), "ConfigMap"), [])
            (cm,) = kinds(render("grafanaDashboards.enabled=true", chart=chart), "ConfigMap")
            self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
            self.assertEqual(cm["data"]["overview.json"], '{"title": "Backups {{x}}"}\n')
            with self.assertRaisesRegex(RenderError, "no dashboards"):
                render("grafanaDashboards.enabled=true", chart=chart_copy(str(Path(tmp) / "empty")))

    def test_example_template_only_when_enabled_with_its_scripts_untouched_by_helm(self):
        self.assertEqual(kinds(render(), "ClusterBackupProcedureTemplate"), [])
        (t,) = kinds(render("exampleTemplate.enabled=true", "exampleTemplate.name=pg-demo"), "ClusterBackupProcedureTemplate")
        self.assertEqual(t["metadata"]["name"], "pg-demo")
        self.assertEqual(t["spec"]["backup"], (CHART / "files/example-template/backup.sh").read_text())
        self.assertEqual(t["spec"]["restore"], (CHART / "files/example-template/restore.sh").read_text())
        self.assertIn("{{ .Params.password }}", t["spec"]["backup"])
        self.assertTrue(t["spec"]["image"])


class Crds(unittest.TestCase):
    def test_install_crds_renders_every_crd_from_the_charts_crds_dir_and_keeps_them_on_uninstall(self):
        with tempfile.TemporaryDirectory() as tmp:
            chart = chart_copy(tmp, with_crds=True)
            self.assertEqual(kinds(render(chart=chart), "CustomResourceDefinition"), [])
            crds = kinds(render("installCRDs=true", chart=chart, extra=("--skip-crds",)), "CustomResourceDefinition")
            sources = sorted((ROOT / "crds").glob("*.yaml"))
            self.assertEqual(sorted(c["metadata"]["name"] for c in crds), sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in sources))
            for crd in crds:
                self.assertEqual(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
                original = yaml.safe_load((ROOT / "crds" / f"{crd['metadata']['name']}.yaml").read_text())
                self.assertEqual(crd["spec"], original["spec"])

    def test_crds_from_the_crds_dir_are_included_once_when_not_templated(self):
        with tempfile.TemporaryDirectory() as tmp:
            chart = chart_copy(tmp, with_crds=True)
            crds = kinds(render(chart=chart, extra=("--include-crds",)), "CustomResourceDefinition")
            self.assertEqual(len(crds), len(list((ROOT / "crds").glob("*.yaml"))))

    def test_install_crds_without_crd_files_fails_with_the_fix(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(RenderError, "installCRDs=true but charts/backup-maker/crds/ holds no CRD files"):
                render("installCRDs=true", chart=chart_copy(tmp))


class Schema(unittest.TestCase):
    def test_schema_rejects_wrong_types_unknown_keys_and_bad_enums(self):
        for bad, message in [
            ("gpg-keygen.enabled=maybe", "gpg-keygen"),
            ("scheduled-controller.replicas=-1", "replicas"),
            ("action-controller.logFormat=xml", "logFormat"),
            ("metrics-exporter.metrics.port=70000", "port"),
            ("action-controller.replica=2", "replica"),
            ("installCRD=true", "installCRD"),
            ("gpg-keygen.concurrency=0", "concurrency"),
            ("gpg-keygen.serviceMonitor.interval=often", "interval"),
        ]:
            with self.subTest(value=bad):
                with self.assertRaisesRegex(RenderError, message):
                    render(bad)

    def test_every_chart_has_a_schema_and_a_readme_listing_every_value(self):
        for chart in [CHART, *(CHART / "charts" / n for n in CONTROLLERS)]:
            with self.subTest(chart=chart.name):
                self.assertTrue((chart / "values.schema.json").is_file())
                readme = (chart / "README.md").read_text()
                values = yaml.safe_load((chart / "values.yaml").read_text())
                for key in values:
                    self.assertIn(f"`{key}", readme)


sys.path.insert(0, str(ROOT / "scripts"))
import sync_charts  # noqa: E402  (the generator under test lives next to this file)


class SyncCharts(unittest.TestCase):
    """The generator that keeps the four subcharts, the READMEs and the copied files in step."""

    def sandbox(self, tmp: str) -> Path:
        root = Path(tmp)
        shutil.copytree(ROOT / "charts", root / "charts")
        shutil.copytree(ROOT / "deploy" / "argocd", root / "deploy" / "argocd")
        self.addCleanup(setattr, sync_charts, "ROOT", sync_charts.ROOT)
        self.addCleanup(setattr, sync_charts, "UMBRELLA", sync_charts.UMBRELLA)
        sync_charts.ROOT = root
        sync_charts.UMBRELLA = root / "charts" / "backup-maker"
        return root

    def quiet_main(self, *args: str) -> int:
        with open(os.devnull, "w") as devnull:
            saved, sys.stdout = sys.stdout, devnull
            try:
                return sync_charts.main(list(args))
            finally:
                sys.stdout = saved

    def test_check_mode_flags_a_hand_edited_generated_file_and_sync_restores_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = self.sandbox(tmp)
            chart_yaml = root / "charts/backup-maker/charts/action-controller/Chart.yaml"
            generated = chart_yaml.read_text()
            chart_yaml.write_text(generated.replace("version: 0.1.0\n  repository", "version: 0.0.9\n  repository"))
            self.assertNotEqual(chart_yaml.read_text(), generated)
            self.assertEqual(self.quiet_main("--check"), 1)
            self.assertIn("version: 0.0.9", chart_yaml.read_text())
            self.assertEqual(self.quiet_main(), 0)
            self.assertEqual(chart_yaml.read_text(), generated)
            self.assertEqual(self.quiet_main("--check"), 0)

    def test_every_chart_version_and_library_dependency_comes_from_one_version(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = self.sandbox(tmp)
            self.addCleanup(setattr, sync_charts, "CHART_VERSION", sync_charts.CHART_VERSION)
            sync_charts.CHART_VERSION = "2.3.4"
            self.assertEqual(self.quiet_main(), 0)
            charts = root / "charts/backup-maker"
            lib = yaml.safe_load((charts / "charts" / LIBRARY / "Chart.yaml").read_text())
            self.assertEqual(lib["version"], "2.3.4")
            for chart_yaml in [charts / "Chart.yaml", *(charts / "charts" / n / "Chart.yaml" for n in CONTROLLERS)]:
                meta = yaml.safe_load(chart_yaml.read_text())
                self.assertEqual(meta["version"], "2.3.4")
                self.assertEqual({d["version"] for d in meta["dependencies"] if d["name"] == LIBRARY}, {"2.3.4"})

    def test_rules_and_dashboards_are_copied_into_the_chart_and_removed_with_their_source(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = self.sandbox(tmp)
            (root / "deploy/prometheus").mkdir(parents=True)
            (root / "deploy/grafana").mkdir(parents=True)
            rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
                    "spec": {"groups": [{"name": "backups", "rules": [{"alert": "BackupFailed", "expr": "x > 0"}]}]}}
            (root / "deploy/prometheus/rules.yaml").write_text(yaml.safe_dump(rule))
            (root / "deploy/grafana/backups.json").write_text('{"title": "Backups"}')
            self.assertEqual(self.quiet_main(), 0)
            copied = yaml.safe_load((root / "charts/backup-maker/files/prometheus-rules.yaml").read_text())
            self.assertEqual(copied, {"groups": rule["spec"]["groups"]})
            self.assertEqual((root / "charts/backup-maker/files/dashboards/backups.json").read_text(), '{"title": "Backups"}')
            (root / "deploy/prometheus/rules.yaml").unlink()
            (root / "deploy/grafana/backups.json").unlink()
            self.assertEqual(self.quiet_main("--check"), 1)
            self.assertEqual(self.quiet_main(), 0)
            self.assertFalse((root / "charts/backup-maker/files/prometheus-rules.yaml").exists())
            self.assertFalse((root / "charts/backup-maker/files/dashboards/backups.json").exists())

    def test_a_plain_rules_file_is_accepted_and_one_without_groups_is_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "rules.yaml"
            src.write_text("groups:\n- name: g\n  rules: []\n")
            self.assertEqual(yaml.safe_load(sync_charts.prometheus_rules(src)), {"groups": [{"name": "g", "rules": []}]})
            src.write_text("rules: []\n")
            with self.assertRaisesRegex(SystemExit, "groups"):
                sync_charts.prometheus_rules(src)

    def test_argocd_cm_carries_every_health_check_verbatim(self):
        custom = ROOT / "deploy/argocd/resource_customizations"
        cm = yaml.safe_load(sync_charts.argocd_cm(custom))
        lua_files = sorted(custom.glob("*/*/health.lua"))
        self.assertEqual(len(cm["data"]), len(lua_files))
        for lua in lua_files:
            key = f"resource.customizations.health.{lua.parent.parent.name}_{lua.parent.name}"
            self.assertEqual(cm["data"][key], lua.read_text())

    def test_readme_tables_list_every_leaf_value_with_its_default(self):
        tree = sync_charts.subchart_values("gpg-keygen", True, True, {})
        table = "\n".join(sync_charts.emit_table(tree))
        self.assertIn("| `leaderElection.enabled` | boolean | `true` |", table)
        self.assertIn("| `networkPolicy.apiServer.ports` | array | `[443, 6443]` |", table)
        exporter = "\n".join(sync_charts.emit_table(sync_charts.subchart_values("metrics-exporter", False, False, {})))
        self.assertNotIn("leaderElection", exporter)
        self.assertNotIn("concurrency", exporter)


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2 if "-v" in sys.argv else 1).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"test_chart: {passed} passed, {failed} failed")
    sys.exit(1 if failed or not result.testsRun else 0)
