"""Access rules of a ClusterVaultConnection on a real cluster: by namespace name, and by namespace labels."""

from __future__ import annotations

import uuid

import pytest
from e2e_support import E2E, ClusterConnectionFactory, annotations_of, ready_condition, unique_name

from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import ANNOTATION_CONNECTION

pytestmark = pytest.mark.e2e

PATH = "e2e/tenants/db"
DATA = {"password": "pw-1"}
TENANT_LABEL = "svo-e2e/tenant"


def cluster_ref(name: str) -> dict[str, str]:
    return {"kind": "ClusterVaultConnection", "name": name}


async def test_cluster_connection_denies_other_namespaces_until_granted(
    env: E2E, operator: Runtime | None, cluster_connection: ClusterConnectionFactory
) -> None:
    """A rule for another namespace: PolicyDenied, with no read from ScaiVault and no Secret. Adding the test
    namespace to the rule lets the same VaultSecret sync through the ClusterVaultConnection."""
    elsewhere = unique_name()  # need not exist
    name = await cluster_connection([{"namespaces": [elsewhere], "pathPrefixes": ["e2e/"]}])
    env.write(PATH, DATA)
    await env.create_vaultsecret("db", PATH, connectionRef=cluster_ref(name))

    vs = await env.wait_ready("db", reason="PolicyDenied")
    message = (ready_condition(vs) or {}).get("message", "")
    assert env.namespace in message, vs["status"]
    assert name in message, vs["status"]
    assert env.vault.vault.stats.count_reads(PATH) == 0, "a denied VaultSecret must not cause a read"
    assert await env.secret("db") is None

    rules = [{"namespaces": [elsewhere, env.namespace], "pathPrefixes": ["e2e/"]}]
    await env.api.patch("ClusterVaultConnection", name, {"spec": {"access": rules}})
    await env.wait_ready("db", version=1)
    secret = await env.wait_secret_data("db", DATA)
    assert annotations_of(secret).get(ANNOTATION_CONNECTION) == f"ClusterVaultConnection/{name}"


async def test_namespace_selector_matches_namespace_labels(
    env: E2E, operator: Runtime | None, cluster_connection: ClusterConnectionFactory
) -> None:
    """namespaceSelector rules see the labels of the real Namespace object: a matching rule allows its path
    prefixes only, a rule selecting other labels allows nothing."""
    tenant = uuid.uuid4().hex[:12]
    await env.api.patch("Namespace", env.namespace, {"metadata": {"labels": {TENANT_LABEL: tenant}}})
    matching = await cluster_connection(
        [{"namespaceSelector": {"matchLabels": {TENANT_LABEL: tenant}}, "pathPrefixes": ["e2e/tenants/"]}]
    )
    other = await cluster_connection(
        [
            {
                "namespaceSelector": {
                    "matchExpressions": [{"key": TENANT_LABEL, "operator": "In", "values": ["nobody"]}]
                },
                "pathPrefixes": ["e2e/"],
            }
        ]
    )
    env.write(PATH, DATA)
    env.write("other/db", {"password": "pw-2"})

    await env.create_vaultsecret("allowed", PATH, connectionRef=cluster_ref(matching))
    await env.create_vaultsecret("outside-prefix", "other/db", connectionRef=cluster_ref(matching))
    await env.create_vaultsecret("unselected", PATH, connectionRef=cluster_ref(other))

    await env.wait_ready("allowed", version=1)
    await env.wait_secret_data("allowed", DATA)
    outside = await env.wait_ready("outside-prefix", reason="PolicyDenied")
    assert "e2e/tenants/" in (ready_condition(outside) or {}).get("message", ""), outside["status"]
    unselected = await env.wait_ready("unselected", reason="PolicyDenied")
    assert "no access rule" in (ready_condition(unselected) or {}).get("message", ""), unselected["status"]
    assert await env.secret("outside-prefix") is None
    assert await env.secret("unselected") is None
