"""Helpers for the Helm chart tests: run the real ``helm`` binary (``make install`` puts it in ``.venv/bin``),
render the chart with a values file and pick objects out of the result.

``render("ha.yaml")`` renders ``charts/scaivault-operator`` as release ``svo`` in namespace ``scaivault-system``
with ``tests/unit/chart/values/ha.yaml``; results are cached, so each value set costs one ``helm template``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

JsonDict = dict[str, Any]

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "scaivault-operator"
#: The chart's copies of crds/*.yaml (and Kopf's peering CRDs), rendered by templates/crds.yaml.
CHART_CRDS = CHART / "files" / "crds"
HERE = Path(__file__).resolve().parent
VALUES_DIR = HERE / "values"
INVALID_DIR = HERE / "invalid"

RELEASE = "svo"
NAMESPACE = "scaivault-system"
FULLNAME = "svo-scaivault-operator"
GROUP = "scaivault.scailabs.ai"

VALUE_SETS = sorted(path.name for path in VALUES_DIR.glob("*.yaml"))
INVALID_SETS = sorted(path.name for path in INVALID_DIR.glob("*.yaml"))


def helm_binary() -> Path:
    """``$HELM``, else the helm next to this interpreter (the virtualenv's ``bin/``, where ``make install`` puts it)."""
    return Path(os.environ.get("HELM") or Path(sys.executable).parent / "helm")


class HelmFailed(Exception):
    """helm exited non-zero; the message is its stderr."""


def helm(*args: str) -> str:
    result = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise HelmFailed("\n".join(part for part in (result.stdout.strip(), result.stderr.strip()) if part))
    return result.stdout


@functools.cache
def _template(values: str | None, sets: tuple[str, ...], namespace: str, api_versions: tuple[str, ...]) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    if values is not None:
        args += ["--values", str(VALUES_DIR / values if "/" not in values else Path(values))]
    for item in sets:
        args += ["--set", item]
    for api in api_versions:
        args += ["--api-versions", api]
    return helm(*args)


def template_text(
    values: str | None = None, *sets: str, namespace: str = NAMESPACE, api_versions: tuple[str, ...] = ()
) -> str:
    """``helm template``'s output, in Helm's install order (objects by kind, then hooks)."""
    return _template(values, sets, namespace, api_versions)


def render(
    values: str | None = None, *sets: str, namespace: str = NAMESPACE, api_versions: tuple[str, ...] = ()
) -> list[JsonDict]:
    """Every object the chart renders (``values``: a file name in ``values/`` or a path; ``sets``: ``--set``;
    ``api_versions``: kinds the cluster is to serve besides the built-in ones, as ``group/version/Kind``)."""
    text = _template(values, sets, namespace, api_versions)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find_all(docs: Iterable[JsonDict], kind: str, namespace: str | None = None) -> list[JsonDict]:
    return [
        doc
        for doc in docs
        if doc["kind"] == kind and (namespace is None or doc["metadata"].get("namespace") == namespace)
    ]


def find(docs: Iterable[JsonDict], kind: str, name: str | None = None, namespace: str | None = None) -> JsonDict:
    """The one object of ``kind`` (and ``name``, ``namespace``); fails when there is none or several."""
    matches = [doc for doc in find_all(docs, kind, namespace) if name is None or doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name or ''} in {namespace or 'any namespace'}, got {len(matches)}"
    return matches[0]


def container(docs: Iterable[JsonDict]) -> JsonDict:
    [only] = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    result: JsonDict = only
    return result


Rule = tuple[str, str, tuple[str, ...], tuple[str, ...]]  # apiGroup, resource, sorted verbs, resourceNames


def rules(role: JsonDict) -> set[Rule]:
    """A Role's or ClusterRole's rules, one (group, resource, verbs, resourceNames) per group and resource."""
    found: set[Rule] = set()
    for rule in role.get("rules") or []:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.add((group, resource, tuple(sorted(rule["verbs"])), tuple(rule.get("resourceNames") or ())))
    return found


def expect_message(path: Path) -> str:
    """The ``# expect: <text>`` first line of an invalid values file."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: the first line must be '# expect: <error text>'"
    return first.removeprefix("# expect: ")
