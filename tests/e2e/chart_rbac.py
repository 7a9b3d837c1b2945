"""The chart's own RBAC, created for real, and a login as its ServiceAccount.

The e2e operator does not run as the cluster admin the tests use: ``conftest.operator`` runs it as a ServiceAccount
bound to exactly the ClusterRole, Roles and bindings ``helm template`` renders for an install that serves the
test's namespace (namespaced mode), and ``test_e2e_in_pod`` does the same in a child process. So every scenario
the e2e tier covers — sync, drift repair, adoption, type changes, renamed targets, failures, Events, status — is
also a proof that the chart grants what the operator needs: a call the chart does not allow fails a test with 403.
(That it grants nothing more is read off the templates: ``templates/rbac.yaml`` names the call behind each verb.)

Rendering is done once per session with placeholder names, then specialised per test by string substitution:
``helm template`` costs about half a second, the tests need dozens of copies.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import REPO_ROOT, ClusterAccess, unique_name
from lightkube import AsyncClient, codecs
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ServiceAccount

from scaivault_operator._cogs.kubeconfig import KubeAccess
from scaivault_operator._cogs.kubeconfig import load as load_kubeconfig

CHART = REPO_ROOT / "charts" / "scaivault-operator"
HELM = Path(sys.executable).parent / "helm"
#: The kinds that make up the operator's identity and permissions in the rendered chart.
RBAC_KINDS = frozenset({"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})
#: Placeholders rendered once and replaced per test (valid names, found nowhere else in the chart's output).
_RELEASE = "svo-placeholder-release"
_NAMESPACE = "svo-placeholder-namespace"
#: Long enough for any e2e session; the API server may shorten it (--service-account-max-token-expiration).
TOKEN_SECONDS = 4 * 3600


@functools.cache
def _rendered(cluster_wide: bool) -> str:
    if not HELM.exists():
        pytest.skip(f"no helm binary at {HELM}: the e2e operator runs under the chart's RBAC; run `make install`")
    serve = [] if cluster_wide else ["--set", f"watchNamespaces={{{_NAMESPACE}}}"]
    return subprocess.run(
        [str(HELM), "template", _RELEASE, str(CHART), "--namespace", _NAMESPACE, *serve],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip


def chart_rbac(release: str, namespace: str, *, cluster_wide: bool = False) -> list[dict[str, Any]]:
    """The ServiceAccount and RBAC objects of the chart installed as ``release`` into ``namespace``, as ``helm
    template`` prints them: serving only ``namespace`` (``watchNamespaces``), or every namespace (the default)."""
    text = _rendered(cluster_wide).replace(_RELEASE, release).replace(_NAMESPACE, namespace)
    return [doc for doc in yaml.safe_load_all(text) if doc and doc.get("kind") in RBAC_KINDS]


@dataclass(frozen=True)
class ChartIdentity:
    """The chart's ServiceAccount, created for real: its name and a token the API server issued for it."""

    namespace: str
    name: str
    token: str

    def access(self, cluster: ClusterAccess, directory: Path) -> KubeAccess:
        """How the operator logs in as this ServiceAccount: a kubeconfig in ``directory`` with the cluster's
        address and TLS settings and the token, loaded as the operator loads any kubeconfig."""
        server = cluster.config.cluster
        entry: dict[str, Any] = {"server": server.server}
        ca = ca_bytes(cluster)
        if ca is not None:
            entry["certificate-authority-data"] = base64.b64encode(ca).decode()
        if server.insecure:
            entry["insecure-skip-tls-verify"] = True
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": entry}],
            "users": [{"name": self.name, "user": {"token": self.token}}],
            "contexts": [{"name": "chart-rbac", "context": {"cluster": "e2e", "user": self.name}}],
            "current-context": "chart-rbac",
        }
        path = directory / "chart-rbac.kubeconfig"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        path.chmod(0o600)
        return load_kubeconfig(path)


def ca_bytes(cluster: ClusterAccess) -> bytes | None:
    """The cluster CA of the test's kubeconfig (a file or inline data); None when it names none."""
    config = cluster.config.cluster
    if config.certificate_auth:
        return Path(str(cluster.config.abs_file(config.certificate_auth))).read_bytes()
    if config.certificate_auth_data:
        return base64.b64decode(config.certificate_auth_data)
    return None


@contextlib.asynccontextmanager
async def service_account_with_chart_rbac(
    cluster: ClusterAccess, namespace: str, *, cluster_wide: bool = False
) -> AsyncIterator[ChartIdentity]:
    """The chart's ServiceAccount and RBAC, installed into ``namespace`` and serving it (namespaced mode) or every
    namespace (``cluster_wide``), created for real; yields the ServiceAccount with a fresh token. The
    cluster-scoped objects (ClusterRoles, bindings) carry a unique release name and are deleted at the end; the
    namespaced ones go with the namespace."""
    client = AsyncClient(cluster.config, field_manager="svo-e2e")
    created: list[Any] = []
    try:
        for doc in chart_rbac(unique_name("e2e"), namespace, cluster_wide=cluster_wide):
            created.append(await client.create(codecs.from_dict(doc)))
        [account] = [obj for obj in created if isinstance(obj, ServiceAccount)]
        assert account.metadata is not None
        assert account.metadata.name
        name = account.metadata.name
        request = ServiceAccount.Token(
            metadata=ObjectMeta(name=name, namespace=namespace),
            spec=TokenRequestSpec(audiences=[], expirationSeconds=TOKEN_SECONDS),
        )
        issued = await client.create(request, name=name, namespace=namespace)
        assert issued.status is not None
        yield ChartIdentity(namespace=namespace, name=name, token=issued.status.token)
    finally:
        for obj in created:
            if obj.metadata is not None and obj.metadata.namespace is None:  # cluster-scoped
                with contextlib.suppress(Exception):
                    await client.delete(type(obj), obj.metadata.name)
        await client.close()
