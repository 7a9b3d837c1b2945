"""The CRDs and their examples on a real API server: creation, schema, every CEL rule, defaulting and pruning.

tests/unit/crds approximates the API server with jsonschema and cel-python; here the API server itself decides,
so what only a real server does is covered too: compiling the CEL rules and estimating their cost when a CRD is
created, CEL's ``duration()``, defaulting, pruning, strict field validation, status subresources. Every create is a
real one (no dry run); no operator runs.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from e2e_support import (
    CLUSTER_TIMEOUT,
    CRD_DIR,
    E2E_LABEL,
    EXAMPLES_DIR,
    ApiFailure,
    CelRule,
    JsonDict,
    KubeApi,
    cel_rules,
    custom_resource_manifest,
    load_manifests,
    unique_name,
    wait_for,
)

from scaivault_operator._cogs.api import (
    ANNOTATION_KEYS_MESSAGE,
    IMMUTABLE_NAME_MESSAGE,
    IMMUTABLE_POLICY_MESSAGE,
    LABEL_KEYS_MESSAGE,
    SECRET_TYPE_MESSAGE,
    TEMPLATE_EMPTY_MESSAGE,
    TEMPLATE_KEYS_MESSAGE,
    TEMPLATE_OVERLAP_MESSAGE,
    TEMPLATE_TYPE_MESSAGE,
    TOKEN_URL_HTTPS_MESSAGE,
    URL_HTTPS_MESSAGE,
)

pytestmark = pytest.mark.e2e

URL = "https://scaivault.example.com"
TOKEN_REF = {"namespace": "svo-e2e", "name": "scaivault-token"}
CLIENT_CREDENTIALS = {
    "tokenUrl": "https://scaikey.example.com/oauth/token",
    "secretRef": {"namespace": "svo-e2e", "name": "scaikey-client"},
}
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterVaultConnection", "CustomResourceDefinition"})
CONNECTIONS = ("VaultConnection", "ClusterVaultConnection")


SOURCE = {"name": "db", "path": "e2e/db"}
DATA_FROM = {"prefix": "e2e/"}
ONE_SHAPE = "set exactly one of path, or sources and/or dataFrom"


def vsec(**fields: Any) -> JsonDict:
    return {"path": "e2e/db", **fields}


def composite(**fields: Any) -> JsonDict:
    """A VaultSecret of several sources (``spec.sources``; no path)."""
    return {"sources": [SOURCE], **fields}


def source(**fields: Any) -> JsonDict:
    """A composite whose one source has ``fields``."""
    return composite(sources=[{**SOURCE, **fields}])


def prefix(value: str) -> JsonDict:
    return {"dataFrom": [{"prefix": value}]}


def conn(**fields: Any) -> JsonDict:
    return {"url": URL, "auth": {"tokenSecretRef": TOKEN_REF}, **fields}


def access(**fields: Any) -> JsonDict:
    return {"pathPrefixes": ["e2e/"], **fields}


def client_credentials(token_url: str) -> JsonDict:
    return {"clientCredentials": {**CLIENT_CREDENTIALS, "tokenUrl": token_url}}


# -- CEL rules: every rule of crds/*.yaml, each with objects that break it and objects that pass it -----------------


@dataclass(frozen=True)
class RuleCases:
    """Specs that break one CEL rule (each must be refused with the rule's message at ``path``) and specs that
    exercise the same field and pass (each must be created)."""

    id: str
    kinds: tuple[str, ...]
    path: str
    message: str
    invalid: tuple[JsonDict, ...]
    valid: tuple[JsonDict, ...]


RULE_CASES = (
    RuleCases(
        "path-slashes",
        ("VaultSecret",),
        "spec.path",
        "path must not start or end with '/' or contain '//'",
        invalid=(vsec(path="/e2e/db"), vsec(path="e2e/db/"), vsec(path="e2e//db")),
        valid=(vsec(path="e2e/db"), vsec(path="db")),
    ),
    RuleCases(
        "path-dot-segments",
        ("VaultSecret",),
        "spec.path",
        "path must not contain '.' or '..' segments",
        invalid=(vsec(path="e2e/../db"), vsec(path="./e2e/db"), vsec(path="e2e/db/.")),
        valid=(vsec(path="e2e/.hidden/db"), vsec(path="e2e/..db"), vsec(path="v1.2/db")),
    ),
    RuleCases(
        "target-secret-type",
        ("VaultSecret",),
        "spec.target.type",
        SECRET_TYPE_MESSAGE,
        invalid=(
            vsec(target={"type": "kubernetes.io/service-account-token"}),
            vsec(target={"type": "bootstrap.kubernetes.io/token"}),
            vsec(target={"type": "custom"}),
        ),
        valid=(
            vsec(target={"type": "kubernetes.io/tls"}),
            vsec(target={"type": "kubernetes.io/dockerconfigjson"}),
            vsec(target={"type": "example.com/config"}),
        ),
    ),
    RuleCases(
        "target-label-keys",
        ("VaultSecret",),
        "spec.target.labels",
        LABEL_KEYS_MESSAGE,
        invalid=(
            vsec(target={"labels": {"-a": "x"}}),
            vsec(target={"labels": {"a/b/c": "x"}}),
            vsec(target={"labels": {"k" * 64: "x"}}),
        ),
        valid=(vsec(target={"labels": {"app": "x", "example.com/team": ""}}), vsec(target={"labels": {"k" * 63: "v"}})),
    ),
    RuleCases(
        "target-annotation-keys",
        ("VaultSecret",),
        "spec.target.annotations",
        ANNOTATION_KEYS_MESSAGE,
        invalid=(vsec(target={"annotations": {"note!": "x"}}), vsec(target={"annotations": {"example.com/": "x"}})),
        valid=(vsec(target={"annotations": {"example.com/note": "any text at all"}}),),
    ),
    RuleCases(
        "rollout-unique-targets",
        ("VaultSecret",),
        "spec.rollout.targets",
        "a workload is listed twice in targets",
        invalid=(
            vsec(rollout={"targets": [{"kind": "Deployment", "name": "web"}, {"kind": "Deployment", "name": "web"}]}),
        ),
        valid=(
            vsec(rollout={"targets": [{"kind": "Deployment", "name": "web"}, {"kind": "StatefulSet", "name": "web"}]}),
        ),
    ),
    RuleCases(
        "immutable-owner",
        ("VaultSecret",),
        "spec.target",
        IMMUTABLE_POLICY_MESSAGE,
        invalid=(
            vsec(target={"immutable": True, "creationPolicy": "Merge"}),
            vsec(target={"immutable": True, "creationPolicy": "Adopt"}),
        ),
        valid=(vsec(target={"immutable": True}), vsec(target={"immutable": False, "creationPolicy": "Merge"})),
    ),
    RuleCases(
        "immutable-name",
        ("VaultSecret",),
        "spec.target",
        IMMUTABLE_NAME_MESSAGE,
        invalid=(vsec(target={"immutable": True, "name": "a" * 233}),),
        valid=(vsec(target={"immutable": True, "name": "a" * 232}), vsec(target={"name": "a" * 253})),
    ),
    RuleCases(
        "keys-unique-targets",
        ("VaultSecret",),
        "spec.keys",
        "two keys map to the same Secret key",
        invalid=(
            vsec(keys=[{"from": "user"}, {"from": "login", "to": "user"}]),
            vsec(keys=[{"from": "user"}, {"from": "user"}]),
            vsec(keys=[{"from": "a", "to": "x"}, {"from": "b", "to": "x"}]),
        ),
        valid=(
            vsec(keys=[{"from": "user"}, {"from": "login", "to": "username"}]),
            vsec(keys=[{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]),
        ),
    ),
    RuleCases(
        "template-data-keys",
        ("VaultSecret",),
        "spec.template.data",
        TEMPLATE_KEYS_MESSAGE,
        invalid=(
            vsec(template={"data": {"a b": "x"}}),
            vsec(template={"data": {"..a": "x"}}),
            vsec(template={"data": {".": "x"}}),
        ),
        valid=(vsec(template={"data": {"DATABASE_URL": "{{ data.url }}", ".dockerconfigjson": "x", "tls.crt": ""}}),),
    ),
    RuleCases(
        "template-literals-keys",
        ("VaultSecret",),
        "spec.template.literals",
        TEMPLATE_KEYS_MESSAGE,
        invalid=(vsec(template={"literals": {"a/b": "x"}}), vsec(template={"literals": {"k" * 254: "x"}})),
        valid=(vsec(template={"literals": {"MODE": "{{ not rendered }}", "k" * 253: "x"}}),),
    ),
    RuleCases(
        "template-key-in-data-and-literals",
        ("VaultSecret",),
        "spec.template",
        TEMPLATE_OVERLAP_MESSAGE,
        invalid=(vsec(template={"data": {"a": "x"}, "literals": {"a": "y"}}),),
        valid=(vsec(template={"data": {"a": "x"}, "literals": {"b": "y"}}),),
    ),
    RuleCases(
        "template-replace-needs-keys",
        ("VaultSecret",),
        "spec.template",
        TEMPLATE_EMPTY_MESSAGE,
        invalid=(vsec(template={}), vsec(template={"mergePolicy": "Replace", "type": "kubernetes.io/tls"})),
        valid=(
            vsec(template={"mergePolicy": "Merge", "type": "kubernetes.io/tls"}),
            vsec(template={"literals": {"a": ""}}),
        ),
    ),
    RuleCases(
        "template-secret-type",
        ("VaultSecret",),
        "spec.template.type",
        SECRET_TYPE_MESSAGE,
        invalid=(vsec(template={"mergePolicy": "Merge", "type": "kubernetes.io/service-account-token"}),),
        valid=(vsec(template={"mergePolicy": "Merge", "type": "kubernetes.io/dockerconfigjson"}),),
    ),
    RuleCases(
        "template-label-keys",
        ("VaultSecret",),
        "spec.template.labels",
        LABEL_KEYS_MESSAGE,
        invalid=(vsec(template={"mergePolicy": "Merge", "labels": {"a/b/c": "x"}}),),
        valid=(vsec(template={"mergePolicy": "Merge", "labels": {"example.com/app": "x"}}),),
    ),
    RuleCases(
        "template-annotation-keys",
        ("VaultSecret",),
        "spec.template.annotations",
        ANNOTATION_KEYS_MESSAGE,
        invalid=(vsec(template={"mergePolicy": "Merge", "annotations": {"note!": "x"}}),),
        valid=(vsec(template={"mergePolicy": "Merge", "annotations": {"note": "any text"}}),),
    ),
    RuleCases(
        "one-secret-type",
        ("VaultSecret",),
        "spec",
        TEMPLATE_TYPE_MESSAGE,
        invalid=(
            vsec(
                target={"type": "kubernetes.io/basic-auth"}, template={"type": "kubernetes.io/tls", "data": {"a": ""}}
            ),
        ),
        valid=(
            vsec(target={"type": "Opaque"}, template={"type": "kubernetes.io/tls", "data": {"a": ""}}),
            vsec(target={"type": "kubernetes.io/tls"}, template={"type": "kubernetes.io/tls", "data": {"a": ""}}),
            vsec(target={"type": "kubernetes.io/tls"}, template={"data": {"a": ""}}),
        ),
    ),
    RuleCases(
        "path-or-sources",
        ("VaultSecret",),
        "spec",
        ONE_SHAPE,
        invalid=({}, {"target": {"name": "x"}}, vsec(sources=[SOURCE]), vsec(dataFrom=[DATA_FROM])),
        valid=(vsec(), composite(), prefix("e2e/"), composite(dataFrom=[DATA_FROM])),
    ),
    RuleCases(
        "version-and-keys-with-path",
        ("VaultSecret",),
        "spec",
        "version and keys go with path; with sources, set them on each source",
        invalid=(composite(version=2), {**prefix("e2e/"), "keys": [{"from": "a"}]}),
        valid=(vsec(version=2, keys=[{"from": "a"}]), source(version=2, keys=[{"from": "a"}])),
    ),
    RuleCases(
        "immutable-with-path",
        ("VaultSecret",),
        "spec",
        "target.immutable needs path (the Secret of several sources has no single version)",
        invalid=(composite(target={"immutable": True}), {**prefix("e2e/"), "target": {"immutable": True}}),
        valid=(vsec(target={"immutable": True}), composite(target={"immutable": False})),
    ),
    RuleCases(
        "delete-with-path",
        ("VaultSecret",),
        "spec",
        "onSourceDeleted: Delete needs path",
        invalid=(composite(onSourceDeleted="Delete"), {**prefix("e2e/"), "onSourceDeleted": "Delete"}),
        valid=(vsec(onSourceDeleted="Delete"), composite(onSourceDeleted="Retain")),
    ),
    RuleCases(
        "source-names",
        ("VaultSecret",),
        "spec.sources",
        "two sources have one name",
        invalid=(composite(sources=[SOURCE, {**SOURCE, "path": "e2e/other"}]),),
        valid=(composite(sources=[SOURCE, {**SOURCE, "name": "DB"}, {**SOURCE, "name": "_db2"}]),),
    ),
    RuleCases(
        "source-path-slashes",
        ("VaultSecret",),
        "spec.sources[*].path",
        "path must not start or end with '/' or contain '//'",
        invalid=(source(path="/e2e/db"), source(path="e2e/db/"), source(path="e2e//db")),
        valid=(source(path="e2e/db"), source(path="db")),
    ),
    RuleCases(
        "source-path-dot-segments",
        ("VaultSecret",),
        "spec.sources[*].path",
        "path must not contain '.' or '..' segments",
        invalid=(source(path="e2e/../db"), source(path="./e2e/db")),
        valid=(source(path="e2e/.hidden/db"), source(path="e2e/..db")),
    ),
    RuleCases(
        "source-keys-unique-targets",
        ("VaultSecret",),
        "spec.sources[*].keys",
        "two keys map to the same Secret key",
        invalid=(source(keys=[{"from": "user"}, {"from": "login", "to": "user"}]), source(keys=[{"from": "a"}] * 2)),
        valid=(source(keys=[{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]),),
    ),
    RuleCases(
        "prefix-slashes",
        ("VaultSecret",),
        "spec.dataFrom[*].prefix",
        "prefix must not start with '/' or contain '//'",
        invalid=(prefix("/e2e/"), prefix("e2e//db/"), prefix("/")),
        valid=(prefix("e2e/"), prefix("e2e/db"), prefix("e2e")),
    ),
    RuleCases(
        "prefix-dot-segments",
        ("VaultSecret",),
        "spec.dataFrom[*].prefix",
        "prefix must not contain '.' or '..' segments",
        invalid=(prefix("e2e/../"), prefix("./"), prefix("e2e/.")),
        valid=(prefix("e2e/.hidden/"), prefix("e2e/..db/")),
    ),
    RuleCases(
        "url-scheme",
        CONNECTIONS,
        "spec.url",
        "must be a URL",
        invalid=(conn(url="scaivault.example.com"), conn(url="ftp://scaivault.example.com")),
        valid=(conn(url="http://127.0.0.1:8200"), conn(url=URL)),
    ),
    RuleCases(
        "token-url-scheme",
        CONNECTIONS,
        "spec.auth.clientCredentials.tokenUrl",
        "must be a URL",
        invalid=(conn(auth={"clientCredentials": {**CLIENT_CREDENTIALS, "tokenUrl": "scaikey.example.com/token"}}),),
        valid=(conn(auth={"clientCredentials": CLIENT_CREDENTIALS}),),
    ),
    RuleCases(
        "url-https-unless-loopback-or-insecure",
        CONNECTIONS,
        "spec",
        URL_HTTPS_MESSAGE,
        invalid=(
            conn(url="http://scaivault.example.com"),
            conn(url="http://localhost.evil.example.com:8200"),
            conn(url="http://127.0.0.1.evil.example.com/x"),
            conn(url="http://localhost@evil.example.com"),
            conn(url="http://10.0.0.1:8200", insecureHTTP=False),
        ),
        valid=(
            conn(url="http://localhost:8200"),
            conn(url="http://127.0.0.1"),
            conn(url="http://[::1]:80/x"),
            conn(url="http://10.0.0.1:8200", insecureHTTP=True),
            conn(url=URL, insecureHTTP=False),
        ),
    ),
    RuleCases(
        "token-url-https-unless-loopback-or-insecure",
        CONNECTIONS,
        "spec",
        TOKEN_URL_HTTPS_MESSAGE,
        invalid=(
            conn(auth=client_credentials("http://scaikey.example.com/oauth/token")),
            conn(auth=client_credentials("http://127.0.0.1.evil.example.com/token")),
        ),
        valid=(
            conn(auth=client_credentials("http://127.0.0.1:9000/oauth/token")),
            conn(auth=client_credentials("http://scaikey.example.com/oauth/token"), insecureHTTP=True),
        ),
    ),
    RuleCases(
        "one-auth-method",
        CONNECTIONS,
        "spec.auth",
        "set exactly one of tokenSecretRef or clientCredentials",
        invalid=(
            conn(auth={"tokenSecretRef": TOKEN_REF, "clientCredentials": CLIENT_CREDENTIALS}),
            conn(auth={}),
        ),
        valid=(conn(), conn(auth={"clientCredentials": CLIENT_CREDENTIALS})),
    ),
    RuleCases(
        "poll-interval-minimum",
        CONNECTIONS,
        "spec.pollInterval",
        "must be at least 1s",
        invalid=(conn(pollInterval="0s"), conn(pollInterval="999ms"), conn(pollInterval="0.5s")),
        valid=(conn(pollInterval="1s"), conn(pollInterval="1000ms"), conn(pollInterval="1m30s")),
    ),
    RuleCases(
        "rule-one-namespace-selection",
        CONNECTIONS,
        "spec.access[*]",
        "set exactly one of namespaces or namespaceSelector",
        invalid=(
            conn(access=[access(namespaces=["a"], namespaceSelector={})]),
            conn(access=[access()]),
            conn(access=[access(namespaces=["a"]), access()]),
        ),
        valid=(
            conn(access=[access(namespaces=["a", "b"])]),
            conn(access=[access(namespaceSelector={})]),
            conn(access=[access(namespaceSelector={"matchLabels": {"team": "a"}}), access(namespaces=["b"])]),
        ),
    ),
    RuleCases(
        "cluster-token-namespace",
        ("ClusterVaultConnection",),
        "spec",
        "auth.tokenSecretRef.namespace is required on a ClusterVaultConnection",
        invalid=(conn(auth={"tokenSecretRef": {"name": "scaivault-token"}}),),
        valid=(conn(),),
    ),
    RuleCases(
        "cluster-client-secret-namespace",
        ("ClusterVaultConnection",),
        "spec",
        "auth.clientCredentials.secretRef.namespace is required on a ClusterVaultConnection",
        invalid=(conn(auth={"clientCredentials": {**CLIENT_CREDENTIALS, "secretRef": {"name": "scaikey-client"}}}),),
        valid=(conn(auth={"clientCredentials": CLIENT_CREDENTIALS}),),
    ),
)

CEL_RULES = cel_rules()


def _cases_for(rule: CelRule) -> RuleCases | None:
    return next(
        (c for c in RULE_CASES if rule.kind in c.kinds and c.path == rule.path and c.message == rule.message), None
    )


def _reported_at(path: str, message: str) -> re.Pattern[str]:
    """How the API server words a failed rule: ``spec.access[0]: Invalid value: "object": <message>``."""
    where = re.escape(path).replace(re.escape("[*]"), r"\[[^\]]+\]")
    return re.compile(rf"(^|[\s\[,]){where}: Invalid value: .*?{re.escape(message)}")


def test_every_rule_case_names_a_rule_of_the_crds() -> None:
    """No stale cases: each (kind, path, message) of RULE_CASES is a rule in crds/*.yaml (no cluster needed)."""
    rules = {(r.kind, r.path, r.message) for r in CEL_RULES}
    assert rules, f"no CEL rule found in {CRD_DIR}"
    stale = [
        (kind, c.path, c.message) for c in RULE_CASES for kind in c.kinds if (kind, c.path, c.message) not in rules
    ]
    assert not stale, f"cases for rules that are not in the CRDs (changed or removed?): {stale}"


def _rule_id(rule: CelRule) -> str:
    cases = _cases_for(rule)
    return f"{rule.kind}-{cases.id if cases else f'{rule.path}-without-cases'}"


@pytest.mark.parametrize("rule", CEL_RULES, ids=_rule_id)
async def test_cel_rule_is_enforced(api: KubeApi, namespace: str, rule: CelRule) -> None:
    """Each CEL rule of the CRDs: every invalid case is refused (422) with the rule's message at the rule's field,
    and every valid case of that field is created."""
    cases = _cases_for(rule)
    assert cases is not None, (
        f"no invalid case for the CEL rule of {rule.kind} at {rule.path} ({rule.message!r}: {rule.rule}): add one to "
        "RULE_CASES in this file"
    )
    reported = _reported_at(rule.path, rule.message)
    async with _created_objects(api) as create:
        for spec in cases.invalid:
            with pytest.raises(ApiFailure) as refused:
                await create(rule.kind, namespace, spec)
            assert refused.value.status == 422, f"{spec}: {refused.value}"
            assert reported.search(refused.value.message), f"{spec}: expected {reported.pattern!r} in: {refused.value}"
        for spec in cases.valid:
            created = await create(rule.kind, namespace, spec)
            assert contains(created["spec"], spec), f"changed on create: {spec} -> {created['spec']}"


Create = Callable[[str, str, Mapping[str, Any]], Awaitable[JsonDict]]


@contextlib.asynccontextmanager
async def _created_objects(api: KubeApi) -> AsyncIterator[Create]:
    """``async with _created_objects(api) as create``: ``await create(kind, namespace, spec)`` creates a uniquely
    named object for real; the cluster-scoped ones are deleted at the end (namespaced ones go with the namespace)."""
    cluster_scoped: list[tuple[str, str]] = []

    async def create(kind: str, namespace: str, spec: Mapping[str, Any]) -> JsonDict:
        name = unique_name()
        scoped = kind in CLUSTER_SCOPED
        if scoped:  # recorded before the call: deleted even if the API server wrongly accepts an invalid one
            cluster_scoped.append((kind, name))
        return await api.create(custom_resource_manifest(kind, name, None if scoped else namespace, spec))

    try:
        yield create
    finally:
        for kind, name in cluster_scoped:
            await api.delete(kind, name)


# -- the schema: types, enums, patterns, required fields, bounds ------------------------------------------------

INVALID = [
    pytest.param("VaultSecret", {"path": "e2e/db", "version": 0}, "greater than or equal to 1", id="version-0"),
    pytest.param("VaultSecret", {"path": ""}, "at least 1 chars long", id="path-empty"),
    pytest.param("VaultSecret", {}, ONE_SHAPE, id="path-missing"),  # the CEL rule's (path is optional)
    pytest.param("VaultSecret", vsec(keys=[]), "should have at least 1 items", id="keys-empty"),
    pytest.param("VaultSecret", vsec(keys=[{"to": "a"}]), "spec.keys[0].from: Required value", id="key-without-from"),
    pytest.param("VaultSecret", vsec(keys=[{"from": "a", "to": "a/b"}]), "should match", id="key-to-pattern"),
    pytest.param(
        "VaultSecret",
        vsec(target={"creationPolicy": "Replace"}),
        'spec.target.creationPolicy: Unsupported value: "Replace"',
        id="creation-policy-enum",
    ),
    pytest.param("VaultSecret", vsec(target={"name": "Bad_Name"}), "should match", id="target-name-pattern"),
    pytest.param(
        "VaultSecret",
        vsec(template={"data": {"a": "x" * (32 * 1024 + 1)}}),
        "spec.template.data.a: Too long",
        id="template-too-long",
    ),
    pytest.param(
        "VaultSecret",
        vsec(template={"data": {f"k{i}": "" for i in range(65)}}),
        "spec.template.data: Too many",
        id="template-too-many-keys",
    ),
    pytest.param(
        "VaultSecret",
        vsec(template={"data": {"a": "x"}, "mergePolicy": "Union"}),
        'spec.template.mergePolicy: Unsupported value: "Union"',
        id="template-merge-policy-enum",
    ),
    pytest.param(
        "VaultSecret",
        vsec(connectionRef={"kind": "Connection", "name": "x"}),
        'spec.connectionRef.kind: Unsupported value: "Connection"',
        id="connection-kind-enum",
    ),
    pytest.param(
        "VaultConnection", conn(pollInterval="30"), "spec.pollInterval in body should match", id="poll-pattern"
    ),
    pytest.param("VaultConnection", {"auth": {"tokenSecretRef": TOKEN_REF}}, "spec.url: Required value", id="no-url"),
    pytest.param(
        "ClusterVaultConnection",
        conn(access=[access(namespaces=["Not_A_Namespace"])]),
        "should match",
        id="rule-namespace-pattern",
    ),
]


@pytest.mark.parametrize(("kind", "spec", "error"), INVALID)
async def test_invalid_objects_are_rejected(
    api: KubeApi, namespace: str, kind: str, spec: JsonDict, error: str
) -> None:
    """A real create (not a dry run), answered 422 with the schema's complaint."""
    async with _created_objects(api) as create:
        with pytest.raises(ApiFailure) as refused:
            await create(kind, namespace, spec)
    assert refused.value.status == 422, refused.value
    assert error in refused.value.message, refused.value.message


# -- the CRDs and the examples: real creates --------------------------------------------------------------------

CRDS = load_manifests(CRD_DIR)
#: Every example, as tests/unit/crds' ``crd_support.load_examples`` finds them (``EXAMPLE_SUBDIRS``).
EXAMPLES = [document for subdir in ("", "templates", "sources") for document in load_manifests(EXAMPLES_DIR / subdir)]


@pytest.mark.parametrize("crd", CRDS, ids=lambda crd: crd["metadata"]["name"])
async def test_crd_is_accepted_as_is(api: KubeApi, crd: JsonDict) -> None:
    """Each CRD of crds/, created for real under a unique API group (so whatever the cluster already has does not
    matter), becomes Established with its names accepted, and the API server stores its spec unchanged: every
    schema field, CEL rule (compiled and cost-checked on create) and printer column was kept."""
    group = f"g{uuid.uuid4().hex[:10]}.svo-e2e.scailabs.ai"
    body = copy.deepcopy(crd)
    body["spec"]["group"] = group
    body["metadata"]["name"] = f"{body['spec']['names']['plural']}.{group}"
    name = body["metadata"]["name"]
    try:
        await api.create(body)
        stored = await wait_for(
            functools.partial(api.get, "CustomResourceDefinition", name),
            lambda crd: crd is not None and _conditions_true(crd, "Established", "NamesAccepted"),
            what=f"CRD {name} to be Established with NamesAccepted",
            within=CLUSTER_TIMEOUT,
        )
        assert stored is not None
        assert contains(stored["spec"], body["spec"]), f"the API server changed CRD {name}'s spec"
    finally:
        await api.delete("CustomResourceDefinition", name)
        # Wait for it to go: a kind served twice (our group and this one) would make kubectl ambiguous.
        await wait_for(
            functools.partial(api.get, "CustomResourceDefinition", name),
            lambda crd: crd is None,
            what=f"CRD {name} to be deleted",
            within=CLUSTER_TIMEOUT,
        )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda doc: f"{doc['kind']}-{doc['metadata']['name']}")
async def test_example_is_accepted(api: KubeApi, namespace: str, example: JsonDict) -> None:
    """Each document of crds/examples is created for real — namespaced ones in the test namespace, cluster-scoped
    ones under a unique name (deleted at the end) — and read back with every field it sets: a field the schema
    lacked would be pruned."""
    body = copy.deepcopy(example)
    kind, meta = body["kind"], body["metadata"]
    scoped = kind in CLUSTER_SCOPED
    if scoped:
        meta["name"] = unique_name()
    else:
        meta["namespace"] = namespace
    if kind == "Namespace":
        meta.setdefault("labels", {})[E2E_LABEL] = "true"
    try:
        await api.create(body)
        stored = await api.get(kind, meta["name"], None if scoped else namespace)
    finally:
        if scoped:
            await api.delete(kind, meta["name"])
    assert stored is not None
    expected = {key: value for key, value in body.items() if key not in ("apiVersion", "kind")}
    if "stringData" in expected:  # the API server folds stringData into data
        string_data = expected.pop("stringData")
        expected["data"] = {k: base64.b64encode(str(v).encode()).decode("ascii") for k, v in string_data.items()}
    assert contains(stored, expected), f"pruned or changed: {expected} -> {stored}"


# -- defaulting and pruning ---------------------------------------------------------------------------------


async def test_schema_defaults_are_applied(api: KubeApi, namespace: str) -> None:
    """The API server fills in the CRDs' defaults on a real create."""
    vaultsecret = custom_resource_manifest(
        "VaultSecret", "defaults", namespace, {"path": "e2e/db", "connectionRef": {"name": "shared"}, "target": {}}
    )
    spec = (await api.create(vaultsecret))["spec"]
    assert spec["connectionRef"] == {"kind": "ClusterVaultConnection", "name": "shared"}, spec
    assert spec["target"] == {"creationPolicy": "Owner", "deletionPolicy": "Delete", "type": "Opaque",
                              "immutable": False, "keepVersions": 2}, spec  # fmt: skip
    assert spec["onSourceDeleted"] == "Retain", spec
    assert "maxDiscovered" not in spec, spec  # no default: absent means 100, applied by the operator

    connection = custom_resource_manifest(
        "VaultConnection",
        "defaults",
        namespace,
        {"url": URL, "auth": {"clientCredentials": {**CLIENT_CREDENTIALS}}},
    )
    spec = (await api.create(connection))["spec"]
    assert spec["pollInterval"] == "30s", spec
    credentials = spec["auth"]["clientCredentials"]
    assert (credentials["clientIdKey"], credentials["clientSecretKey"]) == ("client_id", "client_secret"), spec

    connection = custom_resource_manifest(
        "VaultConnection", "token-defaults", namespace, {"url": URL, "auth": {"tokenSecretRef": {"name": "t"}}}
    )
    spec = (await api.create(connection))["spec"]
    assert spec["auth"]["tokenSecretRef"] == {"name": "t", "key": "token"}, spec


async def test_unknown_fields_are_refused_or_pruned(api: KubeApi, namespace: str) -> None:
    """An unknown field: strict field validation (what kubectl asks for) refuses the object naming the field; the
    server's default (Warn) and Ignore store it without the field (pruned), Warn saying so in a Warning header."""
    spec = {"path": "e2e/db", "bogus": "x", "target": {"name": "db", "alsoBogus": 1}}

    with pytest.raises(ApiFailure) as refused:
        await api.create_raw(
            custom_resource_manifest("VaultSecret", "strict", namespace, spec), field_validation="Strict"
        )
    assert refused.value.status in (400, 422), refused.value
    assert 'unknown field "spec.bogus"' in refused.value.message, refused.value
    assert 'unknown field "spec.target.alsoBogus"' in refused.value.message, refused.value
    assert await api.get("VaultSecret", "strict", namespace) is None

    _, warnings = await api.create_raw(custom_resource_manifest("VaultSecret", "warned", namespace, spec))
    assert any('unknown field "spec.bogus"' in w for w in warnings), warnings

    await api.create_raw(custom_resource_manifest("VaultSecret", "ignored", namespace, spec), field_validation="Ignore")
    for name in ("warned", "ignored"):
        stored = await api.get("VaultSecret", name, namespace)
        assert stored is not None
        assert "bogus" not in stored["spec"], stored["spec"]
        assert stored["spec"]["target"] == {"name": "db", "creationPolicy": "Owner", "deletionPolicy": "Delete",
                                            "immutable": False, "keepVersions": 2,
                                            "type": "Opaque"}, stored["spec"]  # fmt: skip
        assert stored["spec"]["path"] == "e2e/db", stored["spec"]


@pytest.mark.parametrize("kind", CONNECTIONS)
async def test_connection_status_has_a_schema(api: KubeApi, namespace: str, kind: str) -> None:
    """A connection's status has a structural schema (issue 13): what the operator writes is kept as written — Ready,
    identity, watchedPaths, lastPollAt, breaker — and an unknown field is refused under strict field validation and
    pruned otherwise. So is a VaultSecret's status."""
    status = {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Authenticated", "message": "ok",
                        "lastTransitionTime": "2026-04-23T14:00:00Z", "observedGeneration": 1}],
        "identity": {"identityId": "ci-reader", "identityType": "service_account", "tenantId": "t-1",
                     "scopes": ["secrets:read"]},
        "watchedPaths": 3,
        "lastPollAt": "2026-04-23T14:05:00Z",
        "breaker": {"state": "Closed", "lastTransitionTime": "2026-04-23T14:00:00Z"},
    }  # fmt: skip
    async with _created_objects(api) as create:
        connection = await create(kind, namespace, conn())
        name = connection["metadata"]["name"]
        ns = None if kind in CLUSTER_SCOPED else namespace
        patched, _ = await api.patch_status(kind, name, {"status": status}, ns, field_validation="Strict")
        assert patched.get("status") == status, patched.get("status")
        with pytest.raises(ApiFailure) as refused:
            await api.patch_status(kind, name, {"status": {"anything": 1}}, ns, field_validation="Strict")
        assert 'unknown field "status.anything"' in refused.value.message, refused.value
        await api.patch_status(kind, name, {"status": {"anything": 1, "watchedPaths": 4}}, ns,
                               field_validation="Ignore")  # fmt: skip
        stored = await api.get(kind, name, ns)
        assert stored is not None
        assert stored.get("status") == {**status, "watchedPaths": 4}, stored.get("status")

    await api.create(custom_resource_manifest("VaultSecret", "pruned-status", namespace, vsec()))
    with pytest.raises(ApiFailure) as refused:
        await api.patch_status(
            "VaultSecret", "pruned-status", {"status": {"bogus": 1}}, namespace, field_validation="Strict"
        )
    assert 'unknown field "status.bogus"' in refused.value.message, refused.value
    await api.patch_status(
        "VaultSecret",
        "pruned-status",
        {"status": {"bogus": 1, "syncedVersion": 3}},
        namespace,
        field_validation="Ignore",
    )
    stored = await api.get("VaultSecret", "pruned-status", namespace)
    assert stored is not None
    assert stored.get("status") == {"syncedVersion": 3}, stored.get("status")


# -- helpers ------------------------------------------------------------------------------------------------


def _conditions_true(obj: Mapping[str, Any], *types: str) -> bool:
    conditions = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
    return all(conditions.get(t) == "True" for t in types)


def contains(big: Any, small: Any) -> bool:
    """Whether ``big`` holds everything ``small`` does (dicts may have more keys; lists match item by item)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(map(contains, big, small))
    return bool(big == small)
