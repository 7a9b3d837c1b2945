"""The default install's RBAC (cluster-wide mode), on a real API server: enough for every write the operator makes,
and not one verb more than its calls need.

Every other operator test already runs as the chart's ServiceAccount in namespaced mode (``conftest.operator``,
``chart_rbac.py``). This module covers the chart's default, cluster-wide mode, where the operator runs over every
namespace — which is why it runs only on the session's private control plane: on a shared cluster an operator
serving every namespace would touch objects that are not the tests' own (``make e2e`` on kind covers that mode
with the operator the chart installs).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_rbac import service_account_with_chart_rbac
from e2e_support import E2E, ClusterAccess, decoded_data, wait_for
from lightkube import AsyncClient
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview

from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator.testing import running_operator

pytestmark = pytest.mark.e2e

PATH = "e2e/rbac/db"
CREDENTIALS = {"username": "app", "password": "rbac-canary-1"}
ROTATED = {"username": "app", "password": "rbac-canary-2"}

#: What the cluster-wide ServiceAccount must NOT be able to do: (verb, group, resource, subresource). Every verb
#: here is one the operator never calls; the chart granting any of them is a failure.
DENIED = [
    ("update", "", "secrets", ""),  # it patches, never replaces
    ("deletecollection", "", "secrets", ""),
    ("create", "", "pods", ""),
    ("get", "", "configmaps", ""),
    ("create", "", "serviceaccounts", "token"),
    ("update", "scaivault.scailabs.ai", "vaultsecrets", ""),  # spec is the user's: only status is written
    ("update", "scaivault.scailabs.ai", "vaultsecrets", ""),  # the retain finalizer is a patch, never a replace
    ("delete", "scaivault.scailabs.ai", "vaultsecrets", ""),
    ("create", "scaivault.scailabs.ai", "vaultconnections", ""),
    ("patch", "scaivault.scailabs.ai", "clustervaultconnections", ""),
    ("list", "", "namespaces", ""),  # cluster-wide Kopf does not follow namespaces; access rules get one by name
    ("delete", "", "namespaces", ""),
    ("create", "rbac.authorization.k8s.io", "rolebindings", ""),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("patch", "apiextensions.k8s.io", "customresourcedefinitions", ""),
]


@pytest.fixture
def private_control_plane(cluster: ClusterAccess) -> None:
    if not cluster.source.startswith("private control plane"):
        pytest.skip(
            "runs an operator over every namespace: only on the session's private control plane (KUBEBUILDER_ASSETS),"
            f" never on a shared cluster ({cluster.source})"
        )


async def _allowed(client: AsyncClient, verb: str, group: str, resource: str, subresource: str, ns: str) -> bool:
    review = SelfSubjectAccessReview(
        spec=SelfSubjectAccessReviewSpec(
            resourceAttributes=ResourceAttributes(
                verb=verb, group=group, resource=resource, subresource=subresource or None, namespace=ns
            )
        )
    )
    answer = await client.create(review)
    assert answer.status is not None
    return bool(answer.status.allowed)


@pytest.mark.usefixtures("private_control_plane")
async def test_cluster_wide_rbac_carries_every_write_and_grants_nothing_else(
    cluster: ClusterAccess, env: E2E, tmp_path: Path
) -> None:
    settings = OperatorSettings(namespaces=(), liveness_endpoint=None)  # cluster-wide, as the chart runs it
    async with service_account_with_chart_rbac(cluster, env.namespace, cluster_wide=True) as identity:
        access = identity.access(cluster, tmp_path)
        client = AsyncClient(access.config)
        try:
            granted = {
                denied: await _allowed(client, *denied, env.namespace) for denied in DENIED
            }  # fmt: skip
            assert not [call for call, allowed in granted.items() if allowed], "the chart grants verbs nobody calls"
            # Stated plainly in README and docs/install.md: cluster-wide, it can read every Secret of the cluster.
            assert await _allowed(client, "get", "", "secrets", "", "kube-system")
        finally:
            await client.close()

        async with running_operator(settings, access=access):
            # Create, then a new version (patch), then drift (re-create).
            await env.create_synced("db", PATH, CREDENTIALS)
            version = env.write(PATH, ROTATED)
            await env.wait_ready("db", version=version)
            await env.wait_secret_data("db", ROTATED)
            await env.api.delete("Secret", "db", env.namespace)
            await env.wait_secret_data("db", ROTATED)

            # A type change deletes and re-creates the Secret; a renamed target deletes the old one.
            await env.api.patch("VaultSecret", "db", {"spec": {"target": {"type": "kubernetes.io/basic-auth"}}},
                                env.namespace)  # fmt: skip
            await env.wait_secret("db", lambda s: s.get("type") == "kubernetes.io/basic-auth", what="type basic-auth")
            await env.api.patch("VaultSecret", "db", {"spec": {"target": {"name": "db-renamed"}}}, env.namespace)
            renamed = await env.wait_secret("db-renamed", lambda s: True, what="created")
            assert decoded_data(renamed) == ROTATED
            await env.wait_gone("Secret", "db")
            await env.wait_ready("db", version=version)

            # The operator's own Events (create: granted in every namespace).
            await wait_for(
                lambda: env.api.list("Event", env.namespace, fields={"involvedObject.name": "db"}),
                lambda events: any(e.get("reason") == "Synced" and e.get("type") == "Normal" for e in events),
                what="a Normal Event with reason Synced on the VaultSecret",
            )
