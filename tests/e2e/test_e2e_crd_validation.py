"""The CRDs' schemas and CEL rules, enforced by a real API server at apply time (no operator involved).

tests/unit/crds approximates the API server with jsonschema and cel-python; here the API server itself says 422,
so rules that only a real server evaluates (CEL's ``duration()``, the cost limits, defaulting) are covered too.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from e2e_support import (
    EXAMPLES_DIR,
    ApiFailure,
    JsonDict,
    KubeApi,
    custom_resource_manifest,
    load_manifests,
    unique_name,
)

from scaivault_operator.api import API_VERSION

pytestmark = pytest.mark.e2e

URL = "https://scaivault.example.com"
TOKEN_REF = {"name": "scaivault-token"}
CLIENT_CREDENTIALS = {"tokenUrl": "https://scaikey.example.com/oauth/token", "secretRef": {"name": "scaikey-client"}}


INVALID = [
    pytest.param("VaultSecret", {"path": "e2e/db", "version": 0}, "greater than or equal to 1", id="version-0"),
    pytest.param(
        "VaultSecret",
        {"path": "e2e//db"},
        "path must not start or end with '/' or contain '//'",
        id="path-double-slash",
    ),
    pytest.param("VaultSecret", {"path": "e2e/../db"}, "path must not contain '.' or '..' segments", id="path-dotdot"),
    pytest.param(
        "VaultSecret",
        {"path": "e2e/db", "keys": [{"from": "user"}, {"from": "login", "to": "user"}]},
        "two keys map to the same Secret key",
        id="keys-same-target",
    ),
    pytest.param(
        "VaultConnection",
        {"url": URL, "auth": {"tokenSecretRef": TOKEN_REF, "clientCredentials": CLIENT_CREDENTIALS}},
        "set exactly one of tokenSecretRef or clientCredentials",
        id="two-auth-methods",
    ),
    pytest.param(
        "VaultConnection",
        {"url": URL, "auth": {}},
        "set exactly one of tokenSecretRef or clientCredentials",
        id="no-auth-method",
    ),
    pytest.param(
        "VaultConnection",
        {"url": URL, "auth": {"tokenSecretRef": TOKEN_REF}, "pollInterval": "0s"},
        "must be at least 1s",
        id="poll-0s",
    ),
    pytest.param(
        "VaultConnection",
        {"url": "scaivault.example.com", "auth": {"tokenSecretRef": TOKEN_REF}},
        "must be a URL",
        id="url-without-scheme",
    ),
    pytest.param(
        "ClusterVaultConnection",
        {"url": URL, "auth": {"tokenSecretRef": TOKEN_REF}},
        "auth.tokenSecretRef.namespace is required on a ClusterVaultConnection",
        id="cluster-token-namespace",
    ),
    pytest.param(
        "ClusterVaultConnection",
        {
            "url": URL,
            "auth": {"tokenSecretRef": {**TOKEN_REF, "namespace": "x"}},
            "access": [{"namespaces": ["a"], "namespaceSelector": {}, "pathPrefixes": ["p/"]}],
        },
        "set exactly one of namespaces or namespaceSelector",
        id="rule-both-selections",
    ),
]

CUSTOM_RESOURCE_EXAMPLES = [doc for doc in load_manifests(EXAMPLES_DIR) if doc["apiVersion"] == API_VERSION]


@pytest.mark.parametrize(("kind", "spec", "rule"), INVALID)
async def test_invalid_objects_are_rejected(api: KubeApi, namespace: str, kind: str, spec: JsonDict, rule: str) -> None:
    """A real create (not a dry run), answered 422 with the rule's message."""
    cluster_scoped = kind == "ClusterVaultConnection"
    body = custom_resource_manifest(kind, unique_name(), None if cluster_scoped else namespace, spec)
    try:
        with pytest.raises(ApiFailure) as refused:
            await api.create(body)
    finally:
        if cluster_scoped:  # only there if the API server wrongly accepted it; namespaced ones go with the namespace
            await api.delete(kind, body["metadata"]["name"])
    assert refused.value.status == 422, refused.value
    assert rule in refused.value.message, refused.value.message


@pytest.mark.parametrize(
    "example", CUSTOM_RESOURCE_EXAMPLES, ids=lambda doc: f"{doc['kind']}-{doc['metadata']['name']}"
)
async def test_examples_are_accepted(api: KubeApi, namespace: str, example: JsonDict) -> None:
    """Every custom resource in crds/examples passes the API server's validation (a server-side dry run, moved
    to the test namespace or renamed) and keeps every field it sets: a field the schema lacked would be pruned."""
    body = copy.deepcopy(example)
    if body["kind"] == "ClusterVaultConnection":
        body["metadata"]["name"] = unique_name()
    else:
        body["metadata"]["namespace"] = namespace

    accepted = await api.create(body, dry_run=True)

    assert contains(accepted["spec"], example["spec"]), f"pruned or changed: {example['spec']} -> {accepted['spec']}"


async def test_schema_defaults_are_applied(api: KubeApi, namespace: str) -> None:
    """The API server fills in the CRDs' defaults (server-side dry run)."""
    vaultsecret = custom_resource_manifest(
        "VaultSecret", "defaults", namespace, {"path": "e2e/db", "connectionRef": {"name": "shared"}, "target": {}}
    )
    spec = (await api.create(vaultsecret, dry_run=True))["spec"]
    assert spec["connectionRef"] == {"kind": "ClusterVaultConnection", "name": "shared"}, spec
    assert spec["target"] == {"creationPolicy": "Owner", "type": "Opaque"}, spec

    connection = custom_resource_manifest(
        "VaultConnection", "defaults", namespace, {"url": URL, "auth": {"tokenSecretRef": TOKEN_REF}}
    )
    spec = (await api.create(connection, dry_run=True))["spec"]
    assert spec["pollInterval"] == "30s", spec
    assert spec["auth"]["tokenSecretRef"] == {**TOKEN_REF, "key": "token"}, spec


def contains(big: Any, small: Any) -> bool:
    """Whether ``big`` holds everything ``small`` does (dicts may have more keys; lists match item by item)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(map(contains, big, small))
    return bool(big == small)
