"""The kmock emulator path (``scaivault_operator.testing.EmulatedCluster``) admits CustomResourceDefinitions the way
the API server does: the repository's CRDs go in, a CRD a server would refuse raises ``InvalidCrdError`` and never
reaches the emulator, on create and on patch."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaivault_operator.crdcheck import InvalidCrdError
from scaivault_operator.testing import EmulatedCluster

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
CRD = "CustomResourceDefinition"


def committed_crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(CRD_DIR.glob("*.yaml"))]


async def test_the_committed_crds_are_admitted(emulator: EmulatedCluster) -> None:
    for crd in committed_crds():
        await emulator.create(crd)
        stored = await emulator.get(CRD, None, crd["metadata"]["name"])
        assert stored is not None
        assert stored["spec"] == crd["spec"]


async def test_a_crd_a_server_would_refuse_never_reaches_the_emulator(emulator: EmulatedCluster) -> None:
    crd = copy.deepcopy(committed_crds()[-1])  # vaultsecrets
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"]["description"] = "x"
    with pytest.raises(InvalidCrdError) as raised:
        await emulator.create(crd)
    assert str(raised.value) == (
        'CustomResourceDefinition.apiextensions.k8s.io "vaultsecrets.scaivault.scailabs.ai" is invalid: '
        "spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name "
        "and generateName, but metadata is implicitly specified"
    )
    assert await emulator.get(CRD, None, "vaultsecrets.scaivault.scailabs.ai") is None


async def test_a_cel_rule_that_does_not_compile_is_refused(emulator: EmulatedCluster) -> None:
    crd = copy.deepcopy(committed_crds()[-1])
    path = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["path"]
    path["x-kubernetes-validations"][0]["rule"] = "self.startsWith('/'"
    with pytest.raises(InvalidCrdError, match=r"x-kubernetes-validations\[0\]\.rule: Invalid value: .*compilation"):
        await emulator.create(crd)


async def test_patches_are_checked_with_the_update_rules(emulator: EmulatedCluster) -> None:
    crd = committed_crds()[-1]
    name = crd["metadata"]["name"]
    await emulator.create(crd)
    await emulator.patch(CRD, None, name, {"spec": {"names": {"shortNames": ["vsec", "vs"]}}})
    stored = await emulator.get(CRD, None, name)
    assert stored is not None
    assert stored["spec"]["names"]["shortNames"] == ["vsec", "vs"]
    with pytest.raises(InvalidCrdError, match=r'spec.scope: Invalid value: "Cluster": field is immutable'):
        await emulator.patch(CRD, None, name, {"spec": {"scope": "Cluster"}})
    with pytest.raises(InvalidCrdError, match=r"spec.names.shortNames\[0\]: Invalid value"):
        await emulator.patch(CRD, None, name, {"spec": {"names": {"shortNames": ["Not_A_Label"]}}})
    stored = await emulator.get(CRD, None, name)
    assert stored is not None
    assert (stored["spec"]["scope"], stored["spec"]["names"]["shortNames"]) == ("Namespaced", ["vsec", "vs"])
