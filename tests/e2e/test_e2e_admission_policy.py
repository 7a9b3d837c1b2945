"""The ValidatingAdmissionPolicy of crds/policy/ on a real API server: VaultSecrets a ClusterVaultConnection's
access rules deny are refused at create, with ``policy.check_access``'s message; the operator still enforces the
rules at every sync. VaultSecrets of several sources (``spec.sources``, ``spec.dataFrom``) are not checked at
admission (the match condition ``single-path``): the operator checks each of their paths at sync.

Each test installs its own copy of the committed policy and binding (``crds/policy/*.yaml``, what ``kubectl apply``
users get, and the chart's files): unique names, ``failurePolicy: Fail`` (an evaluation error — a runtime cost limit,
a CEL problem — shows up as a refusal with the error, never as a silent admission), and a binding whose
``matchResources`` selects only the test's namespace by a unique label, so no other test or workload on the cluster
is affected. Policies, bindings, connections and namespace labels reach the API server's admission informers
asynchronously: every assertion that depends on one waits (with a deadline) until a dry-run create shows it.
Policy and binding are deleted at teardown, the connections by the ``cluster_connection`` fixture.

Skipped, saying why, on servers without admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (before 1.30).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml
from e2e_support import (
    CRD_DIR,
    E2E,
    FIELD_MANAGER,
    ApiFailure,
    ClusterAccess,
    ClusterConnectionFactory,
    JsonDict,
    ready_condition,
    unique_name,
    vaultsecret_manifest,
    wait_for,
)
from lightkube import ApiError, AsyncClient
from lightkube.config.client_adapter import AsyncClient as HttpxAsyncClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.resources.admissionregistration_v1 import (
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
)

from scaivault_operator._cogs.api import AccessRule
from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.policy import check_access
from scaivault_operator._tools import admission

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

POLICY_DIR = CRD_DIR / "policy"
#: The label that scopes a test's binding to its namespace.
SCOPE_LABEL = "svo-e2e/admission-policy"
TENANT_LABEL = "svo-e2e/tenant"
#: Policies, bindings, connections and labels becoming visible to admission.
POLICY_TIMEOUT = 30.0
DENIED = " denied request: "
PATH = "e2e/tenants/db"
DATA = {"password": "pw-1"}


def cluster_ref(name: str) -> dict[str, str]:
    return {"kind": "ClusterVaultConnection", "name": name}


# -- the policy under test -----------------------------------------------------------------------------------------


async def _serves_the_api(cluster: ClusterAccess) -> bool:
    async with HttpxAsyncClient(cluster.config, ConnectionParams(timeout=httpx.Timeout(10.0))) as http:
        response = await http.get("/apis/admissionregistration.k8s.io/v1")
    if response.status_code == 404:
        return False
    response.raise_for_status()
    return any(r.get("name") == "validatingadmissionpolicies" for r in response.json().get("resources") or [])


@dataclass
class AdmissionPolicy:
    """This test's copy of the policy, bound to its namespace only."""

    env: E2E
    name: str

    def vaultsecret(self, path: str, ref: Mapping[str, str], name: str = "probe") -> JsonDict:
        return vaultsecret_manifest(name, self.env.namespace, {"path": path, "connectionRef": dict(ref)})

    async def dry_run(self, path: str, ref: Mapping[str, str]) -> str | None:
        """A dry-run create of a VaultSecret: None when admitted, else the policy's message (only its denial: any
        other refusal fails the test)."""
        try:
            await self.env.api.create(self.vaultsecret(path, ref), dry_run=True)
        except ApiFailure as exc:
            refusal = exc
        else:
            return None
        by_the_policy = f"ValidatingAdmissionPolicy '{self.name}' with binding '{self.name}'{DENIED}"
        if refusal.status != 403 or by_the_policy not in refusal.message:
            raise AssertionError(f"not a denial by the policy: {refusal}")
        return refusal.message.split(DENIED, 1)[1]

    async def wait_denied(self, path: str, ref: Mapping[str, str], message: str | None = None) -> str:
        """Wait until the API server refuses the VaultSecret (with ``message``, when given: what it sees of
        connections and namespace labels may lag); the message."""
        message = await wait_for(
            lambda: self.dry_run(path, ref),
            lambda found: found is not None and (message is None or found == message),
            what=f"the policy to deny {path!r} through {dict(ref)}" + (f" with {message!r}" if message else ""),
            within=POLICY_TIMEOUT,
        )
        assert message is not None
        return message

    async def wait_admitted(self, path: str, ref: Mapping[str, str]) -> None:
        await wait_for(
            lambda: self.dry_run(path, ref),
            lambda found: found is None,
            what=f"the policy to admit {path!r} through {dict(ref)}",
            within=POLICY_TIMEOUT,
        )

    async def wait_refused_as_check_access(
        self, access: Sequence[Mapping[str, Any]] | None, connection: str, path: str
    ) -> str:
        """Wait until the policy refuses ``path`` through ClusterVaultConnection ``connection`` with the message of
        ``check_access`` for these rules and the namespace's live labels; the message."""
        message = await self.expected(access, connection, path)
        assert message is not None, f"check_access allows {path!r}: not a case for a refusal"
        return await self.wait_denied(path, cluster_ref(connection), message)

    async def expected(self, access: Sequence[Mapping[str, Any]] | None, connection: str, path: str) -> str | None:
        """What ``check_access`` says for this namespace (its live labels): None when allowed, else the message."""
        namespace = await self.env.api.get("Namespace", self.env.namespace)
        assert namespace is not None
        decision = check_access(
            connection_kind="ClusterVaultConnection",
            connection_namespace=None,
            connection_name=connection,
            access=None if access is None else [AccessRule.model_validate(rule) for rule in access],
            namespace=self.env.namespace,
            namespace_labels=namespace["metadata"].get("labels") or {},
            path=path,
        )
        return None if decision.allowed else decision.message


def _documents(name: str) -> tuple[JsonDict, JsonDict]:
    """The committed policy and binding, renamed, failing closed, the binding limited to one labelled namespace."""
    policy = yaml.safe_load((POLICY_DIR / admission.POLICY_FILE).read_text(encoding="utf-8"))
    binding = yaml.safe_load((POLICY_DIR / admission.BINDING_FILE).read_text(encoding="utf-8"))
    policy, binding = copy.deepcopy(policy), copy.deepcopy(binding)
    policy["metadata"]["name"] = binding["metadata"]["name"] = binding["spec"]["policyName"] = name
    policy["spec"]["failurePolicy"] = "Fail"
    binding["spec"]["matchResources"] = {"namespaceSelector": {"matchLabels": {SCOPE_LABEL: name}}}
    return policy, binding


@pytest_asyncio.fixture
async def policy(
    cluster: ClusterAccess, env: E2E, cluster_connection: ClusterConnectionFactory
) -> AsyncIterator[AdmissionPolicy]:
    """The policy, effective for the test namespace: a connection without rules is refused before the test starts."""
    if not await _serves_the_api(cluster):
        pytest.skip(
            f"{cluster.source} ({cluster.version}) does not serve admissionregistration.k8s.io/v1 "
            "ValidatingAdmissionPolicy: Kubernetes 1.30 or newer is needed"
        )
    name = unique_name("svo-e2e-vap-")
    policy_doc, binding_doc = _documents(name)
    client = AsyncClient(cluster.config, field_manager=FIELD_MANAGER)
    try:
        await env.api.patch("Namespace", env.namespace, {"metadata": {"labels": {SCOPE_LABEL: name}}})
        await client.create(ValidatingAdmissionPolicy.from_dict(policy_doc))
        await client.create(ValidatingAdmissionPolicyBinding.from_dict(binding_doc))
        found = AdmissionPolicy(env=env, name=name)
        nobody = await cluster_connection([])
        await found.wait_denied("e2e/probe", cluster_ref(nobody))
        yield found
    finally:
        for kind in (ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicy):
            try:
                await client.delete(kind, name)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        await client.close()


# -- the tests -----------------------------------------------------------------------------------------------------


async def test_allowed_and_denied_with_check_access_messages(
    policy: AdmissionPolicy, cluster_connection: ClusterConnectionFactory
) -> None:
    """Rules by namespace name: paths under a prefix (``{namespace}`` replaced) are created; any other path is refused
    with the message the operator would put in the status, naming connection, namespace, path and prefixes."""
    ns = policy.env.namespace
    access = [{"namespaces": [unique_name(), ns], "pathPrefixes": ["e2e/allowed/", "tenants/{namespace}/"]}]
    name = await cluster_connection(access)
    ref = cluster_ref(name)
    message = await policy.wait_refused_as_check_access(access, name, "other/db")
    assert message == (
        f"ClusterVaultConnection {name} does not allow namespace {ns} to read 'other/db': this namespace may read "
        f"only paths starting with 'e2e/allowed/', 'tenants/{ns}/'; change spec.path or the connection's spec.access"
    )

    for path in ("e2e/allowed/db", f"tenants/{ns}/db"):
        created = await policy.env.api.create(policy.vaultsecret(path, ref, name=f"ok-{uuid.uuid4().hex[:6]}"))
        assert created["spec"]["path"] == path
    other_tenant = f"tenants/{ns}x/db"  # the prefix closes the namespace segment with '/'
    assert await policy.dry_run(other_tenant, ref) == await policy.expected(access, name, other_tenant)
    with pytest.raises(ApiFailure) as refused:
        await policy.env.api.create(policy.vaultsecret("other/db", ref, name="refused"))
    assert refused.value.status == 403
    assert await policy.env.vaultsecret("refused") is None


async def test_a_rule_for_other_namespaces_and_a_connection_without_rules(
    policy: AdmissionPolicy, cluster_connection: ClusterConnectionFactory
) -> None:
    elsewhere = [{"namespaces": [unique_name()], "pathPrefixes": ["e2e/"]}]
    name = await cluster_connection(elsewhere)
    message = await policy.wait_refused_as_check_access(elsewhere, name, PATH)
    assert f"no access rule of the connection applies to namespace {policy.env.namespace}" in message

    nobody = await cluster_connection([])
    message = await policy.wait_refused_as_check_access(None, nobody, PATH)
    assert message == (
        f"ClusterVaultConnection {nobody} has no access rules; add spec.access to it to let namespace "
        f"{policy.env.namespace} read '{PATH}'"
    )


async def test_namespace_selector_rules_see_the_namespace_labels(
    policy: AdmissionPolicy, cluster_connection: ClusterConnectionFactory
) -> None:
    """matchLabels and every matchExpressions operator, against the live labels of the Namespace; relabelling the
    namespace changes the verdict."""
    tenant = uuid.uuid4().hex[:12]
    api, ns = policy.env.api, policy.env.namespace
    await api.patch("Namespace", ns, {"metadata": {"labels": {TENANT_LABEL: tenant}}})
    selector = {
        "matchLabels": {TENANT_LABEL: tenant},
        "matchExpressions": [
            {"key": TENANT_LABEL, "operator": "In", "values": ["x", tenant]},
            {"key": TENANT_LABEL, "operator": "NotIn", "values": ["nobody"]},
            {"key": TENANT_LABEL, "operator": "Exists"},
            {"key": "svo-e2e/legacy", "operator": "DoesNotExist"},
        ],
    }
    access = [{"namespaceSelector": selector, "pathPrefixes": ["e2e/tenants/"]}]
    name = await cluster_connection(access)
    ref = cluster_ref(name)
    message = await policy.wait_refused_as_check_access(access, name, "other/db")
    assert "may read only paths starting with 'e2e/tenants/'" in message
    await policy.wait_admitted(PATH, ref)

    # DoesNotExist no longer holds: the rule stops applying.
    await api.patch("Namespace", ns, {"metadata": {"labels": {"svo-e2e/legacy": "true"}}})
    message = await policy.wait_refused_as_check_access(access, name, PATH)
    assert "no access rule of the connection applies" in message
    await api.patch("Namespace", ns, {"metadata": {"labels": {"svo-e2e/legacy": None}}})
    await policy.wait_admitted(PATH, ref)


async def test_vault_connections_and_missing_connections_are_admitted(
    policy: AdmissionPolicy, cluster_connection: ClusterConnectionFactory
) -> None:
    """A VaultConnection reference is not the policy's business, even when a ClusterVaultConnection of the same name
    would deny; a ClusterVaultConnection that does not exist is left to the operator (InvalidSpec)."""
    nobody = await cluster_connection([])
    await policy.wait_denied(PATH, cluster_ref(nobody))
    assert await policy.dry_run(PATH, {"kind": "VaultConnection", "name": nobody}) is None
    assert await policy.dry_run(PATH, cluster_ref(unique_name())) is None


async def test_vaultsecrets_of_several_sources_are_left_to_the_operator(
    policy: AdmissionPolicy, cluster_connection: ClusterConnectionFactory
) -> None:
    """The policy checks single-path VaultSecrets only (its match condition ``has(object.spec.path)``): one with
    ``spec.sources`` or ``spec.dataFrom`` is admitted even through a connection that denies its paths — with
    failurePolicy Fail, so no evaluation of ``object.spec.path`` failed either — and the operator checks each path
    at sync (PolicyDenied). A single path admitted may become a composite; back to a denied path it is refused."""
    ns = policy.env.namespace
    access = [{"namespaces": [ns], "pathPrefixes": ["e2e/allowed/"]}]
    name = await cluster_connection(access)
    ref = cluster_ref(name)
    denied = await policy.wait_refused_as_check_access(access, name, "other/db")
    nobody = await cluster_connection([])
    await policy.wait_denied(PATH, cluster_ref(nobody))

    composites = [
        {"sources": [{"name": "db", "path": "other/db"}]},
        {"dataFrom": [{"prefix": "other/"}]},
        {"sources": [{"name": "db", "path": "other/db", "connectionRef": cluster_ref(nobody)}],
         "dataFrom": [{"prefix": "other/", "tags": ["x"]}]},
    ]  # fmt: skip
    for index, spec in enumerate(composites):
        for connection in (ref, cluster_ref(nobody)):
            created = await policy.env.api.create(
                vaultsecret_manifest(
                    f"several-{index}-{uuid.uuid4().hex[:6]}", ns, {**spec, "connectionRef": connection}
                )
            )
            assert "path" not in created["spec"], created["spec"]

    await policy.env.api.create(policy.vaultsecret("e2e/allowed/db", ref, name="becomes-several"))
    several = await policy.env.api.patch(
        "VaultSecret", "becomes-several", {"spec": {"path": None, "sources": [{"name": "db", "path": "other/db"}]}}, ns
    )
    assert several["spec"]["sources"] == [{"name": "db", "path": "other/db"}], several["spec"]
    with pytest.raises(ApiFailure) as refused:
        await policy.env.api.patch(
            "VaultSecret", "becomes-several", {"spec": {"path": "other/db", "sources": None}}, ns
        )
    assert refused.value.status == 403, refused.value
    assert refused.value.message.split(DENIED, 1)[1] == denied


async def test_the_largest_connections_stay_within_the_cost_limits(
    policy: AdmissionPolicy, cluster_connection: ClusterConnectionFactory
) -> None:
    """Connections as large as etcd stores (about 1.2 MB each, under its default 1.5 MiB): 64 rules of 256
    namespaces, 64 rules of 64 long ``{namespace}`` prefixes, 64 selectors of 32 requirements. Every evaluation stays
    within the API server's runtime CEL limits — with failurePolicy Fail an overrun would refuse with the error, so
    the exact denials and the admission at the very last prefix prove it. A message over 5 KiB (long prefixes) is
    replaced by the policy's static message."""
    ns = policy.env.namespace
    filler = [f"n{i:03d}-" + "x" * 58 for i in range(256)]
    by_name = [
        {
            "namespaces": [*filler[:255], ns if r == 63 else filler[255]],
            "pathPrefixes": [f"b{r}/{j}/" for j in range(64)],
        }
        for r in range(64)
    ]
    long_prefixes = [
        {
            "namespaces": [ns],
            "pathPrefixes": [f"{{namespace}}/p{r}-{j}/" + "y" * 270 + "/{namespace}/" for j in range(64)],
        }
        for r in range(64)
    ]
    await policy.env.api.patch("Namespace", ns, {"metadata": {"labels": {TENANT_LABEL: "gold"}}})
    requirement = {"key": TENANT_LABEL, "operator": "In", "values": [f"v{v}-" + "z" * 58 for v in range(8)] + ["gold"]}
    by_label = [
        {
            "namespaceSelector": {"matchExpressions": [requirement] * 32},
            "pathPrefixes": [f"c{r}/{j}/" for j in range(64)],
        }
        for r in range(64)
    ]
    for access, last in (
        (by_name, "b63/63/db"),
        (long_prefixes, f"{ns}/p63-63/" + "y" * 270 + f"/{ns}/db"),
        (by_label, "c63/63/db"),
    ):
        assert len(json.dumps(access)) > 1_000_000
        name = await cluster_connection(access)
        ref = cluster_ref(name)
        await policy.wait_refused_as_check_access(access, name, "other/db")
        await policy.wait_admitted(last, ref)

    long = [{"namespaces": [ns], "pathPrefixes": [f"l{j}/" + "w" * 600 for j in range(12)]}]
    name = await cluster_connection(long)
    assert await policy.wait_denied("other/db", cluster_ref(name)) == admission.VALIDATION["message"]


async def test_narrowed_after_admission_the_operator_denies_and_spec_changes_are_refused(
    policy: AdmissionPolicy, operator: Runtime | None, cluster_connection: ClusterConnectionFactory
) -> None:
    """Defence in depth: a VaultSecret admitted and synced, then its connection narrowed, is marked PolicyDenied by
    the operator (whose status writes the policy never sees). From then on the policy refuses changes to its spec,
    but not to its metadata, and it can be deleted."""
    env = policy.env
    name = await cluster_connection([{"namespaces": [env.namespace], "pathPrefixes": ["e2e/"]}])
    await policy.wait_denied("other/db", cluster_ref(name))
    env.write(PATH, DATA)
    await env.create_vaultsecret("db", PATH, connectionRef=cluster_ref(name))
    await env.wait_ready("db", version=1)
    await env.wait_secret_data("db", DATA)

    narrowed = [{"namespaces": [unique_name()], "pathPrefixes": ["e2e/"]}]
    await env.api.patch("ClusterVaultConnection", name, {"spec": {"access": narrowed}})
    vs = await env.wait_ready("db", reason="PolicyDenied")
    assert name in (ready_condition(vs) or {}).get("message", ""), vs["status"]
    message = await policy.wait_refused_as_check_access(narrowed, name, PATH)

    finalizer = {"metadata": {"labels": {"svo-e2e/touched": "true"}, "finalizers": ["svo-e2e.scailabs.ai/hold"]}}
    await env.api.patch("VaultSecret", "db", finalizer, env.namespace)
    with pytest.raises(ApiFailure) as refused:
        await env.api.patch("VaultSecret", "db", {"spec": {"version": 1}}, env.namespace)
    assert refused.value.status == 403
    assert refused.value.message.split(DENIED, 1)[1] == message
    await env.api.delete("VaultSecret", "db", env.namespace)  # held by the finalizer, as by a GitOps tool's
    await env.api.patch("VaultSecret", "db", {"metadata": {"finalizers": None}}, env.namespace)
    await env.wait_gone("VaultSecret", "db")
