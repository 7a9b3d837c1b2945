"""What a user sees with the real kubectl: ``kubectl explain`` shows the CRDs' field descriptions.

The API server publishes a CRD's schema as OpenAPI a few seconds after the CRD is Established; kubectl explain
reads it from there (``/openapi/v3``). So this proves that every field reaches users with its description. The
kubectl is the one ``make install`` put in ``.venv/bin`` (else the one on PATH), run with the session's
kubeconfig and a fresh discovery cache.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from e2e_support import CLUSTER_TIMEOUT, CRD_DIR, REPO_ROOT, ClusterAccess, JsonDict, load_manifests

from scaivault_operator._cogs.api import API_VERSION

pytestmark = pytest.mark.e2e

KUBECTL_TIMEOUT = 30.0
#: The objects of the VaultSecret spec whose fields are explained one level at a time.
EXPLAINED_OBJECTS = ("spec", "spec.connectionRef", "spec.keys", "spec.target")


def _vaultsecret_schema() -> JsonDict:
    (crd,) = [c for c in load_manifests(CRD_DIR) if c["spec"]["names"]["kind"] == "VaultSecret"]
    (version,) = crd["spec"]["versions"]
    schema: JsonDict = version["schema"]["openAPIV3Schema"]
    return schema


def _at(schema: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """The schema of field ``path``, e.g. ``spec.keys`` (lists on the way looked through)."""
    for name in path.split("."):
        schema = _items(schema)["properties"][name]
    return schema


def _items(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema of the object a field holds: a list's items, else the field's own."""
    while schema.get("type") == "array":
        schema = schema["items"]
    return schema


def _field_paths(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every property path below ``schema`` (lists looked through), e.g. ``keys.from``."""
    for name, child in (_items(schema).get("properties") or {}).items():
        path = f"{prefix}{name}"
        yield path
        yield from _field_paths(child, f"{path}.")


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def kubectl() -> str:
    candidate = REPO_ROOT / ".venv" / "bin" / "kubectl"
    found = str(candidate) if candidate.is_file() else shutil.which("kubectl")
    if not found:
        pytest.skip("no kubectl: `make install` puts one in .venv/bin")
    return found


async def _kubectl(kubectl: str, cluster: ClusterAccess, cache: Path, *args: str) -> str:
    command = [kubectl, f"--cache-dir={cache}", "--request-timeout=10s"]
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    if cluster.kubeconfig is not None:
        env["KUBECONFIG"] = cluster.kubeconfig  # one file or a list, as the operator read it
    process = await asyncio.create_subprocess_exec(
        *command,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), KUBECTL_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"kubectl {' '.join(args)} did not finish within {KUBECTL_TIMEOUT:g}s") from None
    if process.returncode != 0:
        error = err.decode(errors="replace").strip()
        raise AssertionError(f"kubectl {' '.join(args)} exited {process.returncode}: {error}")
    return out.decode()


async def _explain(kubectl: str, cluster: ClusterAccess, cache: Path, path: str, *flags: str) -> str:
    """``kubectl explain vaultsecrets.<path>``, retried until the API server publishes the CRD's schema (its
    OpenAPI follows the CRD by a few seconds; until then kubectl knows no such resource or field)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLUSTER_TIMEOUT
    checked_builtin = False
    while True:
        try:
            return await _kubectl(
                kubectl, cluster, cache, "explain", f"vaultsecrets.{path}", f"--api-version={API_VERSION}", *flags
            )
        except AssertionError as exc:
            if not checked_builtin:  # when kubectl cannot explain a built-in type either, waiting will not help
                checked_builtin = True
                try:
                    await _kubectl(kubectl, cluster, cache, "explain", "namespaces.spec")
                except AssertionError as builtin:
                    raise AssertionError(
                        f"the API server's OpenAPI is unusable for kubectl explain, even for a built-in type "
                        f"({builtin}); ours: {exc}"
                    ) from None
            if loop.time() >= deadline:
                raise
            shutil.rmtree(cache, ignore_errors=True)  # kubectl caches discovery: look again
            await asyncio.sleep(1.0)


def _section(output: str, title: str) -> list[str]:
    """The lines of section ``TITLE:`` of kubectl explain's output (up to the next section)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.rstrip() == f"{title}:"), None)
    assert start is not None, f"no {title}: section in:\n{output}"
    body: list[str] = []
    for line in lines[start + 1 :]:
        if re.match(r"^[A-Z][A-Z ]*:", line):
            break
        body.append(line)
    return body


_FIELD = re.compile(r"^(?P<indent> +)(?P<name>[A-Za-z0-9_$-]+)\s+<(?P<type>[^>]+)>")


def _fields(output: str) -> dict[str, str]:
    """The FIELDS of a (non-recursive) kubectl explain: name → the text under it (description, enum, default)."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in _section(output, "FIELDS"):
        match = _FIELD.match(line)
        if match and len(match["indent"]) == 2:
            current = fields.setdefault(match["name"], [])
        elif current is not None:
            current.append(line.strip())
    return {name: _words(" ".join(text)) for name, text in fields.items()}


async def test_explain_spec_recursive(kubectl: str, cluster: ClusterAccess, crds: list[str], tmp_path: Path) -> None:
    """``kubectl explain vaultsecret.spec --recursive`` shows the spec's description and exactly the CRD's fields."""
    schema = _vaultsecret_schema()
    output = await _explain(kubectl, cluster, tmp_path, "spec", "--recursive")

    assert _words(_at(schema, "spec")["description"]) in _words(" ".join(_section(output, "DESCRIPTION"))), output
    shown: list[str] = []
    parents: list[str] = []
    for line in _section(output, "FIELDS"):
        match = _FIELD.match(line)
        if not match:
            continue
        depth = (len(match["indent"]) - 2) // 2
        del parents[depth:]
        shown.append(".".join([*parents, match["name"]]))
        parents.append(match["name"])
    assert sorted(shown) == sorted(_field_paths(_at(schema, "spec"))), output


@pytest.mark.parametrize("path", EXPLAINED_OBJECTS)
async def test_explain_shows_every_description(
    kubectl: str, cluster: ClusterAccess, crds: list[str], tmp_path: Path, path: str
) -> None:
    """``kubectl explain vaultsecret.<path>``: the object's own description, and for every field it lists, the
    CRD's description of that field (no field without one)."""
    field = _at(_vaultsecret_schema(), path)
    properties = _items(field)["properties"]
    output = await _explain(kubectl, cluster, tmp_path, path)

    description = _words(" ".join(_section(output, "DESCRIPTION")))
    assert _words(field["description"]) in description, output
    fields = _fields(output)
    assert sorted(fields) == sorted(properties), output
    undescribed = [name for name, text in fields.items() if not text or "<no description>" in text]
    assert not undescribed, f"kubectl explain shows no description for {undescribed}:\n{output}"
    for name, child in properties.items():
        assert child.get("description"), f"the CRD has no description for {path}.{name}"
        want = _words(child["description"])
        assert want in fields[name], f"{path}.{name}: {want!r} is not in:\n{output}"
