"""Installing the chart with the real helm on a real API server: the CRDs' two install paths, and upgrades.

What docs/install.md ("CRDs: install, upgrade, and the two paths") tells users to run, run here:

- CRDs applied with kubectl (client-side, as ``kubectl apply -f crds/``), then ``helm install --set
  crds.install=false``: the release has no CRD and never touches them;
- the same CRDs handed over to Helm: a plain ``helm install`` refuses them (invalid ownership metadata),
  ``--take-ownership`` alone meets kubectl's field ownership when the content differs, ``--take-ownership
  --force-conflicts`` takes them, and later upgrades need neither;
- ``helm install`` on a cluster without the CRDs, then ``helm upgrade`` to a chart whose CRD gained a field: the
  field reaches the cluster, and the ClusterVaultConnection "default" (a post-install hook the first time, the
  kind being unknown) is taken over as an ordinary object of the release, the same object;
- ``helm upgrade`` from a chart that shipped the CRDs in ``crds/`` (chart 0.1.0): refused without
  ``--take-ownership``, fine with it;
- every manifest the chart renders, for every value set of tests/unit/chart/values: ``helm install
  --dry-run=server``, then ``kubectl apply --server-side --dry-run=server`` (the API server validates each object,
  the custom resources against their CRDs with their CEL rules).

Isolation: CRDs are cluster-scoped and shared with everything else on the cluster (the other e2e tests, an installed
operator). Every test therefore uses a copy of the chart (and of crds/) in which the API groups are renamed to ones
unique to the test — ``s<random>.svo-e2e.test`` for scaivault.scailabs.ai and ``k<random>.svo-e2e.test`` for
kopf.dev — the same templates and the same CRD content apart from the names, which no other test or operator uses.
A test removes what it created: its Helm releases (``helm uninstall``), its namespace, and its CRDs (which ``helm
uninstall`` keeps on purpose: helm.sh/resource-policy: keep). The chart's Deployment gets a nodeSelector no node
has and serves only the test namespace, so no second operator ever runs.

helm and kubectl: ``$HELM`` / ``$KUBECTL``, else the ones ``make install`` put in .venv/bin, else PATH; the test
skips without them, or with a Helm older than 4 (server-side apply is Helm 4's). They run with the session's
kubeconfig, a fresh kubectl discovery cache and Helm directories of their own; every command has a deadline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import CLUSTER_TIMEOUT, CRD_DIR, REPO_ROOT, ClusterAccess, JsonDict

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CHART = REPO_ROOT / "charts" / "scaivault-operator"
VALUE_SETS_DIR = REPO_ROOT / "tests" / "unit" / "chart" / "values"
GROUP = "scaivault.scailabs.ai"
KOPF_GROUP = "kopf.dev"
#: Deadline of one helm or kubectl command; helm's own --timeout (waiting for hooks) stays below it.
COMMAND_TIMEOUT = 120.0
HELM_WAIT = "60s"
#: A label no node has: the chart's operator pod is never scheduled.
UNSCHEDULABLE = "svo-e2e/unschedulable"
#: The field the "next version" of the VaultSecret CRD gains.
NEW_FIELD = "e2eNote"


# -- tools -------------------------------------------------------------------------------------------------


def _tool(name: str) -> str | None:
    found = os.environ.get(name.upper())
    if found:
        return found
    local = REPO_ROOT / ".venv" / "bin" / name
    return str(local) if local.is_file() else shutil.which(name)


class CommandFailed(AssertionError):
    def __init__(self, command: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        self.result = result


@dataclass
class Tools:
    helm_path: str
    kubectl_path: str
    env: dict[str, str]

    def run(
        self, command: Sequence[str], *, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(list(command), input=stdin, capture_output=True, text=True, env=self.env,
                                    timeout=COMMAND_TIMEOUT, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{' '.join(command)} did not finish within {COMMAND_TIMEOUT:g}s") from None
        if check and result.returncode != 0:
            raise CommandFailed(command, result)
        return result

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([self.helm_path, *args], check=check)

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [self.kubectl_path, "--request-timeout=30s", f"--cache-dir={self.env['KUBECACHEDIR']}", *args]
        return self.run(command, check=check, stdin=stdin)

    def helm_fails(self, *args: str) -> str:
        """Run helm expecting a refusal; its stderr (and stdout), whitespace-collapsed."""
        result = self.helm(*args, check=False)
        assert result.returncode != 0, f"helm {' '.join(args)} was expected to fail but succeeded:\n{result.stdout}"
        return " ".join(f"{result.stderr} {result.stdout}".split())


@pytest.fixture(scope="module")
def tools(cluster: ClusterAccess, tmp_path_factory: pytest.TempPathFactory) -> Tools:
    helm, kubectl = _tool("helm"), _tool("kubectl")
    if not helm or not kubectl:
        pytest.skip(f"needs helm and kubectl (found helm={helm}, kubectl={kubectl}): `make install` puts both in "
                    ".venv/bin, or set HELM / KUBECTL")  # fmt: skip
    home = tmp_path_factory.mktemp("helm-home")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HELM_")}
    env |= {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECACHEDIR": str(home / "kube-cache"),
    }
    env.pop("KUBECONFIG", None)
    if cluster.kubeconfig is not None:
        env["KUBECONFIG"] = cluster.kubeconfig  # one file or a list, as the operator read it
    found = Tools(helm, kubectl, env)
    version = found.helm("version", "--template", "{{ .Version }}").stdout.strip()
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < 4:
        pytest.skip(f"helm {version}: these tests check Helm 4's server-side apply")
    return found


# -- one test's world: renamed API groups, a namespace, cleanup ---------------------------------------------


@dataclass
class World:
    tools: Tools
    tmp: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    releases: list[str] = field(default_factory=list)

    @property
    def group(self) -> str:
        return f"s{self.suffix}.svo-e2e.test"

    @property
    def kopf_group(self) -> str:
        return f"k{self.suffix}.svo-e2e.test"

    @property
    def namespace(self) -> str:
        return f"svo-e2e-{self.suffix}"

    def rename(self, text: str) -> str:
        return text.replace(GROUP, self.group).replace(KOPF_GROUP, self.kopf_group)

    def crd(self, plural: str) -> str:
        return f"{plural}.{self.group}"

    # -- chart copies --

    def chart(self, name: str, *, edit: Callable[[Path], None] | None = None) -> Path:
        """A copy of the chart with this world's API groups; ``edit`` changes the copy further."""
        copy = self.tmp / name
        shutil.copytree(CHART, copy)
        for path in copy.rglob("*"):
            if path.is_file():
                path.write_text(self.rename(path.read_text(encoding="utf-8")), encoding="utf-8")
        if edit is not None:
            edit(copy)
        return copy

    def crd_files(self, name: str = "kubectl-crds") -> Path:
        """crds/*.yaml (what users `kubectl apply -f crds/`), with this world's API groups."""
        directory = self.tmp / name
        directory.mkdir()
        for path in sorted(CRD_DIR.glob("*.yaml")):
            (directory / path.name).write_text(self.rename(path.read_text(encoding="utf-8")), encoding="utf-8")
        return directory

    # -- helm --

    def release(self) -> str:
        name = f"svo{self.suffix}-{len(self.releases)}"
        self.releases.append(name)
        return name

    def install_args(self) -> list[str]:
        """Namespace, deadline, an operator that is never scheduled and serves only the test namespace, and the
        ClusterVaultConnection "default" (to a URL that is never called)."""
        return ["--namespace", self.namespace, "--timeout", HELM_WAIT,
                "--set", f"watchNamespaces={{{self.namespace}}}",
                "--set-string", f"nodeSelector.{UNSCHEDULABLE}=true",
                "--set", "scaivault.url=https://scaivault.invalid",
                "--set", "scaivault.auth.token.existingSecret=scaivault-token",
                "--set", f"scaivault.access[0].namespaces[0]={self.namespace}",
                "--set", "scaivault.access[0].pathPrefixes[0]=e2e/"]  # fmt: skip

    def manifest_kinds(self, release: str) -> list[tuple[str, str]]:
        text = self.tools.helm("get", "manifest", release, "--namespace", self.namespace).stdout
        return [(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(text) if doc]

    # -- kubectl --

    def get(self, kind: str, name: str, namespace: str | None = None) -> JsonDict | None:
        args = ["get", kind, name, "-o", "json", "--show-managed-fields"]
        if namespace:
            args += ["--namespace", namespace]
        result = self.tools.kubectl(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise CommandFailed(["kubectl", *args], result)
        found: JsonDict = json.loads(result.stdout)
        return found

    def crd_object(self, plural: str) -> JsonDict:
        crd = self.get("customresourcedefinition", self.crd(plural))
        assert crd is not None, f"CRD {self.crd(plural)} is not on the cluster"
        return crd

    def wait_established(self, *plurals: str, within: float = CLUSTER_TIMEOUT) -> None:
        """Every CRD of ``plurals`` has condition Established=True. Polled here: ``kubectl wait`` fails at once on
        a CRD the API server has not yet given any condition ("status.conditions accessor error")."""
        deadline = time.monotonic() + within
        for plural in plurals:
            while True:
                conditions = ((self.get("customresourcedefinition", self.crd(plural)) or {}).get("status") or {}).get(
                    "conditions"
                ) or []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                    break
                assert time.monotonic() < deadline, f"CRD {self.crd(plural)} not Established after {within:g}s"
                time.sleep(0.25)

    def wait_gone(self, kind: str, name: str, within: float = CLUSTER_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        while self.get(kind, name) is not None:
            assert time.monotonic() < deadline, f"{kind} {name} still exists after {within:g}s"
            time.sleep(0.5)

    def server_accepts(self, manifest: JsonDict) -> subprocess.CompletedProcess[str]:
        """``kubectl create --dry-run=server`` (strict field validation): the API server's verdict, stored nowhere."""
        return self.tools.kubectl("create", "--dry-run=server", "-o", "name", "-f", "-", check=False,
                                  stdin=json.dumps(manifest))  # fmt: skip

    def our_crds(self) -> list[str]:
        names = self.tools.kubectl("get", "customresourcedefinitions", "-o", "name").stdout.split()
        return [n for n in names if n.endswith((f".{self.group}", f".{self.kopf_group}"))]

    def cleanup(self) -> None:
        """Uninstall the releases, delete the test's CRDs (kept by Helm on purpose) and its namespace."""
        for release in self.releases:
            self.tools.helm("uninstall", release, "--namespace", self.namespace, "--timeout", HELM_WAIT, check=False)
        for name in self.our_crds():
            self.tools.kubectl("delete", name, "--wait=false", "--ignore-not-found", check=False)
        self.tools.kubectl("delete", "namespace", self.namespace, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def world(tools: Tools, tmp_path: Path) -> Iterator[World]:
    created = World(tools=tools, tmp=tmp_path)
    tools.kubectl("create", "namespace", created.namespace)
    tools.kubectl("label", "namespace", created.namespace, "svo-e2e=true")
    try:
        yield created
    finally:
        created.cleanup()


# -- chart edits -------------------------------------------------------------------------------------------


def add_vaultsecret_field(name: str, version: str) -> Callable[[Path], None]:
    """A later chart: the VaultSecret CRD's spec gains the string field ``name``; the chart version is ``version``."""

    def edit(chart: Path) -> None:
        path = chart / "files" / "crds" / "vaultsecrets.yaml"
        crd = yaml.safe_load(path.read_text())
        (served,) = crd["spec"]["versions"]
        spec = served["schema"]["openAPIV3Schema"]["properties"]["spec"]
        spec["properties"][name] = {"type": "string", "description": "Added by a later chart (tests/e2e)."}
        path.write_text(yaml.safe_dump(crd, sort_keys=False))
        meta = chart / "Chart.yaml"
        meta.write_text(re.sub(r"(?m)^version: .*$", f"version: {version}", meta.read_text()))

    return edit


def chart_with_a_crds_folder(chart: Path) -> None:
    """The layout of chart 0.1.0: the CRDs in crds/ (Helm installs them once, never upgrades them), no CRD templates;
    the custom resources ordinary objects (crds.install=false stands for 0.1.0's templates)."""
    (chart / "crds").mkdir()
    for path in (chart / "files" / "crds").glob("*.yaml"):
        path.rename(chart / "crds" / path.name)
    (chart / "templates" / "crds.yaml").unlink()
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("  install: true\n", "  install: false\n", 1))
    meta = chart / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^version: .*$", "version: 0.1.0", meta.read_text()))


def vaultsecret(world: World, spec: JsonDict) -> JsonDict:
    return {
        "apiVersion": f"{world.group}/v1alpha1",
        "kind": "VaultSecret",
        "metadata": {"name": "probe", "namespace": world.namespace},
        "spec": spec,
    }


def schema_fields(crd: JsonDict) -> set[str]:
    (served,) = crd["spec"]["versions"]
    return set(served["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])


def managers_of(crd: JsonDict, path: str) -> set[str]:
    """The field managers whose managedFields entry holds ``path`` (e.g. ``f:spec/f:versions``)."""
    found = set()
    for entry in crd["metadata"].get("managedFields") or []:
        node: Any = entry.get("fieldsV1") or {}
        for step in path.split("/"):
            node = node.get(step) if isinstance(node, dict) else None
        if node is not None:
            found.add(f"{entry['manager']} ({entry['operation']})")
    return found


PLURALS = ("vaultsecrets", "vaultconnections", "clustervaultconnections")
#: How users apply crds/ with kubectl, and the field manager (and operation) the API server then records.
KUBECTL_APPLY = [
    pytest.param(("apply",), "kubectl-client-side-apply", "Update", id="client-side"),
    pytest.param(("apply", "--server-side"), "kubectl", "Apply", id="server-side"),
]


# -- the tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("apply", "manager", "operation"), KUBECTL_APPLY)
def test_kubectl_managed_crds_with_crds_install_false(
    world: World, apply: tuple[str, ...], manager: str, operation: str
) -> None:
    """`kubectl apply [--server-side] -f crds/` then `helm install --set crds.install=false`: the release has no CRD,
    its connection is an ordinary object, and `helm uninstall` leaves the CRDs alone (they are not Helm's)."""
    world.tools.kubectl(*apply, "-f", str(world.crd_files()))
    world.wait_established(*PLURALS)
    release = world.release()
    chart = world.chart("chart")
    world.tools.helm("install", release, str(chart), *world.install_args(), "--set", "crds.install=false")

    kinds = world.manifest_kinds(release)
    assert [k for k in kinds if k[0] == "CustomResourceDefinition"] == []
    assert ("ClusterVaultConnection", "default") in kinds  # the CRD existed: no hook needed
    assert world.get(f"clustervaultconnections.{world.group}", "default") is not None
    for plural in PLURALS:
        crd = world.crd_object(plural)
        assert "meta.helm.sh/release-name" not in (crd["metadata"].get("annotations") or {}), plural
        assert managers_of(crd, "f:spec/f:versions") == {f"{manager} ({operation})"}, plural

    world.tools.helm("uninstall", release, "--namespace", world.namespace, "--timeout", HELM_WAIT)
    world.wait_gone(f"clustervaultconnections.{world.group}", "default")
    for plural in PLURALS:
        world.crd_object(plural)  # still there


@pytest.mark.parametrize(("apply", "manager", "operation"), KUBECTL_APPLY)
def test_kubectl_managed_crds_handed_over_to_helm(
    world: World, apply: tuple[str, ...], manager: str, operation: str
) -> None:
    """The documented hand-over from kubectl to Helm, with a chart whose CRDs differ from the applied ones."""
    world.tools.kubectl(*apply, "-f", str(world.crd_files()))
    world.wait_established(*PLURALS)
    assert managers_of(world.crd_object("vaultsecrets"), "f:spec/f:versions") == {f"{manager} ({operation})"}
    chart = world.chart("next", edit=add_vaultsecret_field(NEW_FIELD, "0.2.1"))
    release = world.release()

    refused = world.tools.helm_fails("install", release, str(chart), *world.install_args())
    assert "invalid ownership metadata" in refused
    assert re.search(rf'CustomResourceDefinition "\w+\.{re.escape(world.group)}" in namespace "" exists', refused)
    assert world.tools.helm("list", "--namespace", world.namespace, "-q").stdout.split() == []  # nothing recorded

    # Taking ownership alone: Helm applies server-side, and kubectl still owns .spec.versions, with other content.
    conflict = world.tools.helm_fails("install", release, str(chart), *world.install_args(), "--take-ownership")
    assert f'conflict with "{manager}"' in conflict
    assert ".spec.versions" in conflict
    assert NEW_FIELD not in schema_fields(world.crd_object("vaultsecrets"))

    # The failed release recorded, the documented way out: the same again as an upgrade, forcing the conflicts.
    world.tools.helm("upgrade", release, str(chart), *world.install_args(), "--take-ownership", "--force-conflicts")
    crd = world.crd_object("vaultsecrets")
    assert NEW_FIELD in schema_fields(crd)
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert managers_of(crd, "f:spec/f:versions") == {"helm (Apply)"}  # kubectl's ownership is gone
    assert ("CustomResourceDefinition", world.crd("vaultsecrets")) in world.manifest_kinds(release)

    # From now on Helm alone owns them: the next CRD change needs no flag.
    later = world.chart("later", edit=add_vaultsecret_field("e2eLater", "0.2.2"))
    world.tools.helm("upgrade", release, str(later), *world.install_args())
    fields = schema_fields(world.crd_object("vaultsecrets"))
    assert "e2eLater" in fields
    assert NEW_FIELD not in fields  # that chart has e2eLater instead

    uninstalled = world.tools.helm("uninstall", release, "--namespace", world.namespace, "--timeout", HELM_WAIT)
    assert "kept due to the resource policy" in uninstalled.stdout + uninstalled.stderr
    for plural in PLURALS:
        world.crd_object(plural)  # kept


def test_helm_install_then_upgrade_carries_new_crd_fields(world: World) -> None:
    """A first `helm install` on a cluster without the CRDs (the connection becomes a post-install hook: Helm maps
    every object before creating any), then `helm upgrade` to a chart whose CRD gained a field."""
    release = world.release()
    install = world.tools.helm("install", release, str(world.chart("v1")), *world.install_args())
    assert "STATUS: deployed" in install.stdout
    connection = world.get(f"clustervaultconnections.{world.group}", "default")
    assert connection is not None, "the post-install hook did not create the ClusterVaultConnection"
    assert ("ClusterVaultConnection", "default") not in world.manifest_kinds(release)  # a hook, this once

    with_field = vaultsecret(world, {"path": "e2e/db", NEW_FIELD: "x"})
    refused = world.server_accepts(with_field)
    assert refused.returncode != 0
    assert f'unknown field "spec.{NEW_FIELD}"' in refused.stderr

    world.tools.helm("upgrade", release, str(world.chart("v2", edit=add_vaultsecret_field(NEW_FIELD, "0.2.1"))),
                     *world.install_args())  # fmt: skip
    assert NEW_FIELD in schema_fields(world.crd_object("vaultsecrets"))
    accepted = world.server_accepts(with_field)
    assert accepted.returncode == 0, accepted.stderr
    # The connection, its kind now served, is an ordinary object of the release: the same object, taken over.
    assert ("ClusterVaultConnection", "default") in world.manifest_kinds(release)
    after = world.get(f"clustervaultconnections.{world.group}", "default")
    assert after is not None
    assert after["metadata"]["uid"] == connection["metadata"]["uid"]

    uninstalled = world.tools.helm("uninstall", release, "--namespace", world.namespace, "--timeout", HELM_WAIT)
    assert "kept due to the resource policy" in uninstalled.stdout + uninstalled.stderr
    world.wait_gone(f"clustervaultconnections.{world.group}", "default")
    for plural in PLURALS:
        world.crd_object(plural)  # kept: deleting them would delete every VaultSecret


def test_upgrade_from_a_chart_with_a_crds_folder(world: World) -> None:
    """Chart 0.1.0 had crds/: Helm created those CRDs without its ownership metadata, so the templates of this chart
    cannot take them over by themselves; `helm upgrade --take-ownership` does (once)."""
    release = world.release()
    world.tools.helm("install", release, str(world.chart("old", edit=chart_with_a_crds_folder)), *world.install_args())
    crd = world.crd_object("vaultsecrets")
    assert "meta.helm.sh/release-name" not in (crd["metadata"].get("annotations") or {})
    new = world.chart("new", edit=add_vaultsecret_field(NEW_FIELD, "0.2.1"))

    refused = world.tools.helm_fails("upgrade", release, str(new), *world.install_args())
    assert "invalid ownership metadata" in refused
    assert NEW_FIELD not in schema_fields(world.crd_object("vaultsecrets"))

    world.tools.helm("upgrade", release, str(new), *world.install_args(), "--take-ownership")
    crd = world.crd_object("vaultsecrets")
    assert NEW_FIELD in schema_fields(crd)
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    world.tools.helm("upgrade", release, str(new), *world.install_args())  # and from then on without the flag


def test_from_helm_to_kubectl_and_back(world: World) -> None:
    """Turning crds.install off: with crds.keep=false Helm would delete the CRDs, and with them every VaultSecret,
    so the chart refuses (it looks the CRDs up); with keep, the CRDs stay and kubectl takes them over (forcing
    Helm's field ownership); and back to Helm with --force-conflicts."""
    release = world.release()
    chart = str(world.chart("chart"))
    world.tools.helm("install", release, chart, *world.install_args(), "--set", "crds.keep=false")
    assert "helm.sh/resource-policy" not in world.crd_object("vaultsecrets")["metadata"]["annotations"]

    refused = world.tools.helm_fails("upgrade", release, chart, *world.install_args(), "--set", "crds.keep=false",
                                     "--set", "crds.install=false")  # fmt: skip
    assert "without helm.sh/resource-policy: keep" in refused
    assert "Helm would delete it" in refused
    world.tools.helm("upgrade", release, chart, *world.install_args())  # crds.keep=true (the default)
    world.tools.helm("upgrade", release, chart, *world.install_args(), "--set", "crds.install=false")
    assert [k for k in world.manifest_kinds(release) if k[0] == "CustomResourceDefinition"] == []
    for plural in PLURALS:
        world.crd_object(plural)  # left alone

    crd_files = str(world.crd_files())
    same_content = world.tools.kubectl("apply", "--server-side", "-f", crd_files, check=False)
    assert same_content.returncode == 0, same_content.stderr  # what Helm applied: nothing to conflict over
    later = world.chart("later", edit=add_vaultsecret_field(NEW_FIELD, "0.2.1"))
    world.tools.helm("upgrade", release, str(later), *world.install_args(), "--set", "crds.install=true",
                     "--force-conflicts")  # fmt: skip
    assert NEW_FIELD in schema_fields(world.crd_object("vaultsecrets"))
    world.tools.helm("upgrade", release, str(later), *world.install_args(), "--set", "crds.install=false")
    conflict = world.tools.kubectl("apply", "--server-side", "-f", crd_files, check=False)
    assert conflict.returncode != 0
    assert 'conflict with "helm"' in conflict.stderr
    world.tools.kubectl("apply", "--server-side", "--force-conflicts", "-f", crd_files)
    crd = world.crd_object("vaultsecrets")
    assert NEW_FIELD not in schema_fields(crd)
    assert managers_of(crd, "f:spec/f:versions") == {"kubectl (Apply)"}


def _value_sets() -> list[str]:
    return sorted(path.name for path in VALUE_SETS_DIR.glob("*.yaml"))


def test_every_rendered_manifest_passes_the_api_server(world: World) -> None:
    """For every value set: `helm install --dry-run=server` passes (before the CRDs exist when the chart installs
    them, after when it does not), and with the CRDs on the cluster every rendered object passes `kubectl apply
    --server-side --dry-run=server` (schemas, CEL rules, strict field validation)."""
    chart = world.chart("chart")
    monitoring = "servicemonitors" in world.tools.kubectl("api-resources", "-o", "name").stdout.split()

    def values_of(name: str) -> JsonDict:
        found: JsonDict = yaml.safe_load((VALUE_SETS_DIR / name).read_text()) or {}
        return found

    def args(name: str) -> list[str]:
        found = ["--namespace", world.namespace, "--values", str(VALUE_SETS_DIR / name)]
        if values_of(name).get("watchNamespaces"):
            found += ["--set", f"watchNamespaces={{{world.namespace}}}"]  # Roles in namespaces that exist
        if not monitoring:
            found += ["--set", "metrics.serviceMonitor.enabled=false"]  # no Prometheus Operator CRDs here
        return found

    def installs_crds(name: str) -> bool:
        return bool((values_of(name).get("crds") or {}).get("install", True))

    value_sets = _value_sets()
    assert any(not installs_crds(name) for name in value_sets)
    for name in filter(installs_crds, value_sets):  # the cluster serves none of the copy's kinds yet
        world.tools.helm("install", f"svo{world.suffix}", str(chart), *args(name), "--dry-run=server")

    # The CRDs of the largest rendering (ours and Kopf's), applied for real, then everything checked.
    rendered = world.tools.helm("template", "svo", str(chart), *args("ha.yaml")).stdout
    crds = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 5
    world.tools.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                                 "items": crds}))  # fmt: skip
    world.wait_established(*PLURALS)
    for name in value_sets:
        if not installs_crds(name):  # the CRDs must be there already: now they are
            world.tools.helm("install", f"svo{world.suffix}", str(chart), *args(name), "--dry-run=server")
        rendered = world.tools.helm("template", "svo", str(chart), *args(name)).stdout
        result = world.tools.kubectl("apply", "--server-side", "--dry-run=server", "--force-conflicts",
                                     "--field-manager=svo-e2e-dry-run", "-f", "-", stdin=rendered)  # fmt: skip
        objects = [line for line in result.stdout.splitlines() if line.strip()]
        expected = [doc for doc in yaml.safe_load_all(rendered) if doc]
        assert len(objects) == len(expected), f"{name}: {result.stdout}{result.stderr}"
