"""What the CRDs accept and refuse, and which of those checks the pydantic models repeat.

The API server's verdict is approximated by ``crd_support.api_server_errors`` (OpenAPI schema, then CEL rules
evaluated with cel-python). The models repeat every schema check and every CEL rule: the path rules, the https
rules of the connections (plain http:// only to a loopback host, unless insecureHTTP), exactly one auth method,
exactly one namespace selection, unique target keys, URL schemes, poll interval >= 1s, the namespace of a
ClusterVaultConnection's credentials Secret (``ClusterConnectionSpec``), and the rules of ``spec.sources`` and
``spec.dataFrom`` (exactly one of path or sources/dataFrom, what goes with path only, distinct source names, the
prefix rules; ``test_sources_schema`` has many more of their cases). A check that only the CRD makes would be a case
with ``mirrored=False``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from crd_support import JsonDict, api_server_errors, custom_resource, rule_holds, walk
from pydantic import BaseModel, ValidationError

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
    ClusterConnectionSpec,
    ConnectionSpec,
    VaultSecretSpec,
    is_plain_http,
)

PATH = "environments/production/salesforce/api-credentials"
DEPLOYMENT_A = {"kind": "Deployment", "name": "a"}
DAEMONSET_X = {"kind": "DaemonSet", "name": "x"}
TOKEN_REF = {"namespace": "scaivault-system", "name": "scaivault-token", "key": "token"}
CLIENT_CREDENTIALS = {
    "tokenUrl": "https://scaikey.scailabs.ai/oauth/token",
    "secretRef": {"namespace": "scaivault-system", "name": "scaikey-client"},
}
MODELS: dict[str, type[BaseModel]] = {
    "VaultSecret": VaultSecretSpec,
    "ClusterVaultConnection": ClusterConnectionSpec,
    "VaultConnection": ConnectionSpec,
}


SOURCE = {"name": "db", "path": PATH}
DATA_FROM = {"prefix": "environments/production/"}
#: The messages of the rules on spec.sources and spec.dataFrom (``api.SOURCES_RULES`` and the fields' own).
ONE_SHAPE = "set exactly one of path, or sources and/or dataFrom"
TOP_LEVEL = "version and keys go with path; with sources, set them on each source"
IMMUTABLE_PATH = "target.immutable needs path (the Secret of several sources has no single version)"
DELETE_PATH = "onSourceDeleted: Delete needs path"
SOURCE_NAMES = "two sources have one name"
PREFIX_SLASHES = "prefix must not start with '/' or contain '//'"
PREFIX_DOTS = "prefix must not contain '.' or '..' segments"


def vsec(**fields: Any) -> JsonDict:
    return {"path": PATH, **fields}


def composite(**fields: Any) -> JsonDict:
    """A VaultSecret of several sources (no path)."""
    return {"sources": [SOURCE], **fields}


def conn(**fields: Any) -> JsonDict:
    return {"url": "https://scaivault.scailabs.ai", "auth": {"tokenSecretRef": TOKEN_REF}, **fields}


def rule(**fields: Any) -> JsonDict:
    return {"namespaces": ["default"], "pathPrefixes": ["environments/production/"], **fields}


def client_credentials(token_url: str) -> JsonDict:
    return {"clientCredentials": {**CLIENT_CREDENTIALS, "tokenUrl": token_url}}


#: URLs a connection may use without insecureHTTP: https://, or plain http:// to a loopback host (with or without
#: a port and a path). Not this rule's business: other schemes (the "must be a URL" rule refuses them).
HTTPS_OR_LOOPBACK = [
    "https://scaivault.scailabs.ai",
    "https://10.0.0.1:8443/base",
    "http://localhost",
    "http://localhost:8200",
    "http://localhost/oauth/token",
    "http://127.0.0.1",
    "http://127.0.0.1:8200",
    "http://127.255.10.1:80/v1?x=1",
    "http://[::1]",
    "http://[::1]:80/x",
    "http://localhost/@evil.com",  # '@' in the path: the host is still localhost
    "ftp://scaivault.example.com",
]
#: Plain http:// to a host that is not loopback (or that only looks like one): only with insecureHTTP: true.
PLAIN_HTTP = [
    "http://10.0.0.1",
    "http://scaivault.scaivault-system.svc:8200",
    "http://localhost.evil.com",
    "http://127.0.0.1.evil.com",
    "http://127.0.0.1.evil.com:8200/x",
    "http://localhost@evil.com",
    "http://localhost:8200@evil.com",
    "http://127.0.0.1:80@evil.com/",
    "http://[::1].evil.com",
    "http://[::1]@evil.com",
    "http://127.256.0.1",
    "http://127.0.0",
    "http://128.0.0.1",
    "http://0.0.0.0:8200",
    "http://localhost\n",
    "http://localhostevil.com",
]


class Invalid(NamedTuple):
    id: str
    kind: str
    spec: JsonDict
    #: Whether the pydantic spec model refuses it too (False: only the CRD's CEL rule, or the kind, does).
    mirrored: bool = True
    #: A fragment of the API server's error, to show that the intended check fired.
    error: str = ""


INVALID = [
    # VaultSecret
    Invalid("missing path", "VaultSecret", {}, error=ONE_SHAPE),
    Invalid("only a target", "VaultSecret", {"target": {"name": "x"}}, error=ONE_SHAPE),
    Invalid("path and sources", "VaultSecret", vsec(sources=[SOURCE]), error=ONE_SHAPE),
    Invalid("path and dataFrom", "VaultSecret", vsec(dataFrom=[DATA_FROM]), error=ONE_SHAPE),
    Invalid("version with sources", "VaultSecret", composite(version=2), error=TOP_LEVEL),
    Invalid("keys with dataFrom", "VaultSecret", {"dataFrom": [DATA_FROM], "keys": [{"from": "a"}]}, error=TOP_LEVEL),
    Invalid("immutable with sources", "VaultSecret", composite(target={"immutable": True}), error=IMMUTABLE_PATH),
    Invalid("Delete with sources", "VaultSecret", composite(onSourceDeleted="Delete"), error=DELETE_PATH),
    Invalid("two sources with one name", "VaultSecret", composite(sources=[SOURCE, SOURCE]), error=SOURCE_NAMES),
    Invalid(
        "two keys of a source to one Secret key",
        "VaultSecret",
        composite(sources=[{**SOURCE, "keys": [{"from": "a"}, {"from": "b", "to": "a"}]}]),
        error="two keys map to the same Secret key",
    ),
    Invalid("bad source name", "VaultSecret", composite(sources=[{**SOURCE, "name": "a-b"}]), error="does not match"),
    Invalid("absolute source path", "VaultSecret", composite(sources=[{**SOURCE, "path": "/a"}]), error="'/'"),
    Invalid("absolute prefix", "VaultSecret", {"dataFrom": [{"prefix": "/a/"}]}, error=PREFIX_SLASHES),
    Invalid("dot-dot prefix", "VaultSecret", {"dataFrom": [{"prefix": "a/../"}]}, error=PREFIX_DOTS),
    Invalid("maxDiscovered 0", "VaultSecret", {"dataFrom": [DATA_FROM], "maxDiscovered": 0}, error="minimum of 1"),
    Invalid(
        "source connection kind too long",
        "VaultSecret",
        composite(sources=[{**SOURCE, "connectionRef": {"kind": "ClusterVaultConnection" * 2, "name": "x"}}]),
        error="is too long",  # maxLength 22 (bounds the cost of the sources rules), besides the enum
    ),
    Invalid("empty path", "VaultSecret", {"path": ""}),
    Invalid("path too long", "VaultSecret", {"path": "a" * 1025}),
    Invalid("absolute path", "VaultSecret", {"path": "/" + PATH}, error="must not start or end with '/'"),
    Invalid("trailing slash", "VaultSecret", {"path": PATH + "/"}, error="must not start or end with '/'"),
    Invalid("doubled slash", "VaultSecret", {"path": "environments//production"}, error="contain '//'"),
    Invalid("dot segment", "VaultSecret", {"path": "environments/./production"}, error="'.' or '..' segments"),
    Invalid("dot-dot segment", "VaultSecret", {"path": "environments/../x"}, error="'.' or '..' segments"),
    Invalid("version 0", "VaultSecret", vsec(version=0), error="less than the minimum of 1"),
    Invalid("version as string", "VaultSecret", vsec(version="1"), error="not of type 'integer'"),
    Invalid("unknown field", "VaultSecret", vsec(secretName="x"), error="Additional properties"),
    Invalid("unknown creationPolicy", "VaultSecret", vsec(target={"creationPolicy": "Replace"}), error="is not one of"),
    Invalid("bad target name", "VaultSecret", vsec(target={"name": "Bad_Name"}), error="does not match"),
    Invalid("bad connection kind", "VaultSecret", vsec(connectionRef={"kind": "Connection", "name": "default"})),
    Invalid("connection without name", "VaultSecret", vsec(connectionRef={"kind": "VaultConnection"})),
    Invalid("empty keys", "VaultSecret", vsec(keys=[]), error="should be non-empty"),
    Invalid("key without from", "VaultSecret", vsec(keys=[{"to": "a"}])),
    Invalid("bad to", "VaultSecret", vsec(keys=[{"from": "a", "to": "a/b"}]), error="does not match"),
    Invalid("empty to", "VaultSecret", vsec(keys=[{"from": "a", "to": ""}])),
    Invalid(
        "two keys to one Secret key",
        "VaultSecret",
        vsec(keys=[{"from": "user"}, {"from": "login", "to": "user"}]),
        error="two keys map to the same Secret key",
    ),
    Invalid("too many keys", "VaultSecret", vsec(keys=[{"from": f"k{i}"} for i in range(257)]), error="too long"),
    Invalid("template: empty", "VaultSecret", vsec(template={}), error=TEMPLATE_EMPTY_MESSAGE),
    Invalid("template: bad key", "VaultSecret", vsec(template={"data": {"a b": "x"}}), error=TEMPLATE_KEYS_MESSAGE),
    Invalid("template: '..' key", "VaultSecret", vsec(template={"literals": {"..": "x"}}), error="valid Secret keys"),
    Invalid(
        "template: key twice",
        "VaultSecret",
        vsec(template={"data": {"a": "{{ data.a }}"}, "literals": {"a": "x"}}),
        error=TEMPLATE_OVERLAP_MESSAGE,
    ),
    Invalid(
        "template: too long",
        "VaultSecret",
        vsec(template={"data": {"a": "x" * (32 * 1024 + 1)}}),
        error="is too long",
    ),
    Invalid(
        "template: too many keys",
        "VaultSecret",
        vsec(template={"data": {f"k{i}": "x" for i in range(65)}}),
        error="has too many properties",
    ),
    Invalid(
        "template: unknown mergePolicy",
        "VaultSecret",
        vsec(template={"data": {"a": "x"}, "mergePolicy": "Union"}),
        error="is not one of",
    ),
    Invalid(
        "template: token type",
        "VaultSecret",
        vsec(template={"data": {"a": "x"}, "type": "kubernetes.io/service-account-token"}),
        error=SECRET_TYPE_MESSAGE,
    ),
    Invalid(
        "template: two types",
        "VaultSecret",
        vsec(target={"type": "kubernetes.io/basic-auth"}, template={"data": {"a": "x"}, "type": "kubernetes.io/tls"}),
        error=TEMPLATE_TYPE_MESSAGE,
    ),
    Invalid(
        "template: bad label key",
        "VaultSecret",
        vsec(template={"mergePolicy": "Merge", "labels": {"a b": "x"}}),
        error=LABEL_KEYS_MESSAGE,
    ),
    Invalid(
        "template: unknown field",
        "VaultSecret",
        vsec(template={"data": {"a": "x"}, "stringData": {"b": "y"}}),
        error="Additional properties",
    ),
    # connections
    Invalid("missing url", "VaultConnection", {"auth": {"tokenSecretRef": TOKEN_REF}}),
    Invalid("missing auth", "VaultConnection", {"url": "https://scaivault.scailabs.ai"}),
    Invalid("url not http", "VaultConnection", conn(url="ftp://vault"), error="must be a URL"),
    Invalid("pollInterval without unit", "VaultConnection", conn(pollInterval="30"), error="does not match"),
    Invalid("pollInterval in days", "VaultConnection", conn(pollInterval="1d"), error="does not match"),
    Invalid("pollInterval < 1s", "VaultConnection", conn(pollInterval="500ms"), error="at least 1s"),
    Invalid("pollInterval 0s", "VaultConnection", conn(pollInterval="0s"), error="at least 1s"),
    Invalid(
        "both auth methods",
        "VaultConnection",
        conn(auth={"tokenSecretRef": TOKEN_REF, "clientCredentials": CLIENT_CREDENTIALS}),
        error="set exactly one of tokenSecretRef or clientCredentials",
    ),
    Invalid(
        "no auth method",
        "VaultConnection",
        conn(auth={}),
        error="set exactly one of tokenSecretRef or clientCredentials",
    ),
    Invalid("plain http url", "VaultConnection", conn(url="http://10.0.0.1:8200"), error=URL_HTTPS_MESSAGE),
    Invalid(
        "plain http url, insecureHTTP false",
        "ClusterVaultConnection",
        conn(url="http://localhost.evil.com", insecureHTTP=False),
        error=URL_HTTPS_MESSAGE,
    ),
    Invalid(
        "plain http tokenUrl",
        "ClusterVaultConnection",
        conn(auth=client_credentials("http://scaikey.example.com/oauth/token")),
        error=TOKEN_URL_HTTPS_MESSAGE,
    ),
    Invalid("insecureHTTP not a boolean", "VaultConnection", conn(insecureHTTP="yes"), error="not of type 'boolean'"),
    Invalid("bad token key", "VaultConnection", conn(auth={"tokenSecretRef": {**TOKEN_REF, "key": "a/b"}})),
    Invalid(
        "tokenUrl not http",
        "VaultConnection",
        conn(auth={"clientCredentials": {**CLIENT_CREDENTIALS, "tokenUrl": "scaikey.scailabs.ai/oauth/token"}}),
        error="must be a URL",
    ),
    Invalid(
        "namespaces and selector",
        "ClusterVaultConnection",
        conn(access=[rule(namespaceSelector={})]),
        error="set exactly one of namespaces or namespaceSelector",
    ),
    Invalid(
        "neither namespaces nor selector",
        "ClusterVaultConnection",
        conn(access=[{"pathPrefixes": ["x/"]}]),
        error="set exactly one of namespaces or namespaceSelector",
    ),
    Invalid("no pathPrefixes", "ClusterVaultConnection", conn(access=[{"namespaces": ["default"]}])),
    Invalid("empty pathPrefixes", "ClusterVaultConnection", conn(access=[rule(pathPrefixes=[])])),
    Invalid("bad namespace", "ClusterVaultConnection", conn(access=[rule(namespaces=["Default"])])),
    Invalid(
        "bad selector operator",
        "ClusterVaultConnection",
        conn(
            access=[
                {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}, "pathPrefixes": ["x/"]}
            ]
        ),
    ),
    Invalid(
        "cluster connection: token without namespace",
        "ClusterVaultConnection",
        conn(auth={"tokenSecretRef": {"name": "scaivault-token"}}),
        error="tokenSecretRef.namespace is required on a ClusterVaultConnection",
    ),
    Invalid(
        "cluster connection: client secret without namespace",
        "ClusterVaultConnection",
        conn(auth={"clientCredentials": {**CLIENT_CREDENTIALS, "secretRef": {"name": "scaikey-client"}}}),
        error="secretRef.namespace is required on a ClusterVaultConnection",
    ),
]

VALID = [
    ("VaultSecret", vsec()),
    ("VaultSecret", {"path": "team a/db#1"}),
    ("VaultSecret", {"path": "a/.hidden/b..c"}),
    ("VaultSecret", vsec(version=2**40, connectionRef={"kind": "VaultConnection", "name": "team-a"})),
    ("VaultSecret", vsec(keys=[{"from": "user"}, {"from": "user", "to": "USERNAME"}])),
    ("VaultSecret", vsec(target={"name": "x", "type": "kubernetes.io/dockerconfigjson", "creationPolicy": "Adopt"})),
    (
        "VaultSecret",
        vsec(
            template={
                "data": {"DATABASE_URL": "postgres://{{ data.user }}:{{ data.password | urlquote }}@{{ data.host }}"},
                "literals": {"SSLMODE": "require"},
                "mergePolicy": "Merge",
                "type": "example.com/database",
                "labels": {"app": "db"},
                "annotations": {"example.com/note": "rendered"},
            }
        ),
    ),
    ("VaultSecret", vsec(template={"mergePolicy": "Merge", "type": "kubernetes.io/tls"})),
    ("VaultSecret", vsec(target={"type": "kubernetes.io/tls"}, template={"data": {"tls.crt": "x"}})),
    ("VaultSecret", composite()),
    ("VaultSecret", {"dataFrom": [DATA_FROM]}),
    (
        "VaultSecret",
        composite(
            sources=[
                {**SOURCE, "version": 3, "keys": [{"from": "user"}, {"from": "password", "to": "PGPASSWORD"}]},
                {"name": "login", "path": PATH, "connectionRef": {"kind": "ClusterVaultConnection", "name": "shared"}},
                {
                    "name": "_cache2",
                    "path": "a/.hidden/b..c",
                    "connectionRef": {"kind": "VaultConnection", "name": "x"},
                },
            ],
            dataFrom=[
                {"prefix": "environments/", "tags": ["prod"], "rewrite": [{"regexp": {"source": "^", "target": "X_"}}]}
            ],
            maxDiscovered=1000,
            target={"immutable": False, "creationPolicy": "Merge"},
            onSourceDeleted="Retain",
            template={"data": {"URL": "{{ sources.db.data.user }}"}},
        ),
    ),
    ("VaultSecret", vsec(maxDiscovered=1, version=2, target={"immutable": True}, onSourceDeleted="Delete")),
    ("VaultConnection", conn()),
    ("VaultConnection", conn(auth={"tokenSecretRef": {"name": "scaivault-token"}})),
    ("VaultConnection", conn(auth={"clientCredentials": {**CLIENT_CREDENTIALS, "secretRef": {"name": "c"}}})),
    ("VaultConnection", conn(pollInterval="1m30s", caBundle="-----BEGIN CERTIFICATE-----\n...")),
    ("VaultConnection", conn(pollInterval="1.5h")),
    ("VaultConnection", conn(pollInterval="1000ms")),
    ("VaultConnection", conn(url="http://127.0.0.1:8200", auth=client_credentials("http://localhost:9000/token"))),
    ("VaultConnection", conn(url="http://10.0.0.1:8200", insecureHTTP=True)),
    (
        "ClusterVaultConnection",
        conn(url="http://scaivault.internal", auth=client_credentials("http://scaikey.internal/t"), insecureHTTP=True),
    ),
    ("ClusterVaultConnection", conn(access=[rule(), rule(pathPrefixes=["tenants/{namespace}/", ""])])),
    ("ClusterVaultConnection", conn(access=[{"namespaceSelector": {}, "pathPrefixes": ["shared/"]}])),
    (
        "ClusterVaultConnection",
        conn(
            auth={"clientCredentials": {**CLIENT_CREDENTIALS, "scope": "secrets:read"}},
            access=[
                {
                    "namespaceSelector": {
                        "matchLabels": {"team": "a"},
                        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}],
                    },
                    "pathPrefixes": ["teams/a/"],
                }
            ],
        ),
    ),
]


@pytest.mark.parametrize("case", INVALID, ids=[case.id for case in INVALID])
def test_api_server_refuses(schemas: dict[str, JsonDict], case: Invalid) -> None:
    errors = api_server_errors(schemas[case.kind], custom_resource(case.kind, case.spec))
    assert errors
    assert case.error in "\n".join(errors), errors


@pytest.mark.parametrize("case", INVALID, ids=[case.id for case in INVALID])
def test_model_refuses_exactly_the_mirrored_cases(case: Invalid) -> None:
    if case.mirrored:
        with pytest.raises(ValidationError):
            MODELS[case.kind].model_validate(case.spec)
    else:  # the CRD is the only guard: when a model starts to mirror the rule, flip the case to mirrored=True
        MODELS[case.kind].model_validate(case.spec)


@pytest.mark.parametrize(("kind", "spec"), VALID, ids=[f"{kind}-{i}" for i, (kind, _) in enumerate(VALID)])
def test_valid_specs_pass_both(schemas: dict[str, JsonDict], kind: str, spec: JsonDict) -> None:
    assert api_server_errors(schemas[kind], custom_resource(kind, spec)) == []
    MODELS[kind].model_validate(spec)


# -- each CEL rule on its own ------------------------------------------------------------------------------------

#: Rule message -> (values ``self`` may take, values it may not).
RULE_CASES: dict[str, tuple[list[Any], list[Any]]] = {
    "path must not start or end with '/' or contain '//'": (
        ["a", "a/b", "a/b.c", "team a/db#1"],
        ["/a", "a/", "a//b", "/"],
    ),
    "path must not contain '.' or '..' segments": (
        ["a/.b", "a/b..", "...", "a/.../b"],
        [".", "..", "a/.", "../a", "a/./b", "a/../b"],
    ),
    "two keys map to the same Secret key": (
        [
            [{"from": "a"}],
            [{"from": "a"}, {"from": "a", "to": "b"}],
            [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}],
        ],
        [[{"from": "a"}, {"from": "a"}], [{"from": "a"}, {"from": "b", "to": "a"}], [{"from": "x", "to": "k"}] * 3],
    ),
    "a workload is listed twice in targets": (
        [[], [DEPLOYMENT_A], [DEPLOYMENT_A, {"kind": "StatefulSet", "name": "a"}, {"kind": "Deployment", "name": "b"}]],
        [[DEPLOYMENT_A] * 2, [DAEMONSET_X, {"kind": "Deployment", "name": "y"}, DAEMONSET_X]],
    ),
    IMMUTABLE_POLICY_MESSAGE: (
        [
            {},
            {"immutable": False, "creationPolicy": "Merge"},
            {"immutable": True},
            {"creationPolicy": "Adopt"},
            {"immutable": True, "creationPolicy": "Owner"},
        ],
        [{"immutable": True, "creationPolicy": "Adopt"}, {"immutable": True, "creationPolicy": "Merge"}],
    ),
    IMMUTABLE_NAME_MESSAGE: (
        [{}, {"immutable": True}, {"immutable": True, "name": "a" * 232}, {"immutable": False, "name": "a" * 253}],
        [{"immutable": True, "name": "a" * 233}, {"immutable": True, "name": "a" * 253}],
    ),
    "must be a URL": (["https://x", "http://127.0.0.1:8200"], ["ftp://x", "x", "HTTPS://x", "https:/x"]),
    LABEL_KEYS_MESSAGE: (
        [{}, {"app": "x"}, {"example.com/team": ""}, {"a.b-c/x_y.z": "v"}, {"A1": "v"}, {"k" * 63: "v"}],
        [{"-a": "x"}, {"a b": "x"}, {"a/b/c": "x"}, {"Example.com/x": "x"}, {"/x": "x"}, {"k" * 64: "v"}, {"": "v"}],
    ),
    ANNOTATION_KEYS_MESSAGE: (
        [{}, {"example.com/note": "any text at all"}, {"note": ""}],
        [{"note!": "x"}, {"a/b/c": "x"}, {"example.com/": "x"}],
    ),
    SECRET_TYPE_MESSAGE: (
        [
            "Opaque",
            "kubernetes.io/tls",
            "kubernetes.io/dockerconfigjson",
            "kubernetes.io/basic-auth",
            "kubernetes.io/ssh-auth",
            "kubernetes.io/dockercfg",
            "example.com/config",
            "acme.example.com/app-token",
        ],
        [
            "kubernetes.io/service-account-token",
            "bootstrap.kubernetes.io/token",
            "kubernetes.io/other",
            "opaque",
            "custom",
            "example/config",
            "example.com/",
            "/config",
            "Example.com/config",
            "example.com/a/b",
        ],
    ),
    "must be at least 1s": (["1s", "30s", "1000ms", "1m", "1.5h", "1h30m"], ["0s", "999ms", "0.5s"]),
    TEMPLATE_KEYS_MESSAGE: (
        [{}, {"DATABASE_URL": "x"}, {".dockerconfigjson": "x", "tls.crt": "", "a-b_c.d": "y"}, {"k" * 253: "x"}],
        [{"a b": "x"}, {".": "x"}, {"..": "x"}, {"..a": "x"}, {"a/b": "x"}, {"é": "x"}, {"k" * 254: "x"}, {"": "x"}],
    ),
    TEMPLATE_OVERLAP_MESSAGE: (
        [{"data": {"a": "x"}}, {"data": {"a": "x"}, "literals": {"b": "y"}}, {"literals": {"a": "y"}}],
        [{"data": {"a": "x"}, "literals": {"a": "y"}}, {"data": {"a": "x", "b": "x"}, "literals": {"c": "", "b": ""}}],
    ),
    TEMPLATE_EMPTY_MESSAGE: (
        [
            {"data": {"a": "x"}},
            {"literals": {"a": "x"}},
            {"mergePolicy": "Merge"},
            {"mergePolicy": "Merge", "type": "kubernetes.io/tls"},
            {"mergePolicy": "Replace", "data": {"a": "x"}},
        ],
        [{}, {"mergePolicy": "Replace"}, {"data": {}, "literals": {}}, {"type": "kubernetes.io/tls"}],
    ),
    TEMPLATE_TYPE_MESSAGE: (
        [
            vsec(),
            vsec(template={"data": {"a": "x"}}),
            vsec(target={"type": "kubernetes.io/tls"}, template={"data": {"a": "x"}}),
            vsec(template={"type": "kubernetes.io/tls", "data": {"a": "x"}}),
            vsec(target={"type": "Opaque"}, template={"type": "kubernetes.io/tls", "data": {"a": "x"}}),
            vsec(target={"type": "kubernetes.io/tls"}, template={"type": "kubernetes.io/tls", "data": {"a": "x"}}),
        ],
        [
            vsec(target={"type": "kubernetes.io/basic-auth"}, template={"type": "kubernetes.io/tls", "data": {}}),
            vsec(target={"type": "example.com/x"}, template={"type": "Opaque", "mergePolicy": "Merge"}),
        ],
    ),
    URL_HTTPS_MESSAGE: (
        [conn(url=url) for url in HTTPS_OR_LOOPBACK]
        + [conn(url=url, insecureHTTP=True) for url in PLAIN_HTTP]
        + [conn(auth=client_credentials("http://scaikey.example.com/token"))],  # that is the other rule
        [conn(url=url) for url in PLAIN_HTTP] + [conn(url="http://10.0.0.1", insecureHTTP=False)],
    ),
    TOKEN_URL_HTTPS_MESSAGE: (
        [conn(), conn(url="http://10.0.0.1")]  # no client credentials; the url is the other rule
        + [conn(auth=client_credentials(url)) for url in HTTPS_OR_LOOPBACK]
        + [conn(auth=client_credentials(url), insecureHTTP=True) for url in PLAIN_HTTP],
        [conn(auth=client_credentials(url)) for url in PLAIN_HTTP],
    ),
    "set exactly one of tokenSecretRef or clientCredentials": (
        [{"tokenSecretRef": TOKEN_REF}, {"clientCredentials": CLIENT_CREDENTIALS}],
        [{}, {"tokenSecretRef": TOKEN_REF, "clientCredentials": CLIENT_CREDENTIALS}],
    ),
    "set exactly one of namespaces or namespaceSelector": (
        [{"namespaces": ["a"], "pathPrefixes": ["x"]}, {"namespaceSelector": {}, "pathPrefixes": ["x"]}],
        [{"pathPrefixes": ["x"]}, {"namespaces": ["a"], "namespaceSelector": {}, "pathPrefixes": ["x"]}],
    ),
    "auth.tokenSecretRef.namespace is required on a ClusterVaultConnection": (
        [conn(), conn(auth={"clientCredentials": CLIENT_CREDENTIALS})],
        [conn(auth={"tokenSecretRef": {"name": "t"}})],
    ),
    "auth.clientCredentials.secretRef.namespace is required on a ClusterVaultConnection": (
        [conn(), conn(auth={"clientCredentials": CLIENT_CREDENTIALS})],
        [conn(auth={"clientCredentials": {**CLIENT_CREDENTIALS, "secretRef": {"name": "c"}}})],
    ),
    ONE_SHAPE: (
        [vsec(), composite(), {"dataFrom": [DATA_FROM]}, composite(dataFrom=[DATA_FROM])],
        [{}, {"target": {}}, vsec(sources=[SOURCE]), vsec(dataFrom=[DATA_FROM]), vsec(**composite(dataFrom=[]))],
    ),
    TOP_LEVEL: (
        [vsec(version=1, keys=[{"from": "a"}]), {}, composite(), composite(sources=[{**SOURCE, "version": 1}])],
        [composite(version=1), {"dataFrom": [DATA_FROM], "keys": []}, composite(version=1, keys=[{"from": "a"}])],
    ),
    IMMUTABLE_PATH: (
        [
            vsec(target={"immutable": True}),
            composite(),
            composite(target={}),
            composite(target={"immutable": False, "name": "x"}),
        ],
        [composite(target={"immutable": True}), {"dataFrom": [DATA_FROM], "target": {"immutable": True}}],
    ),
    DELETE_PATH: (
        [vsec(onSourceDeleted="Delete"), composite(), composite(onSourceDeleted="Retain")],
        [composite(onSourceDeleted="Delete"), {"dataFrom": [DATA_FROM], "onSourceDeleted": "Delete"}],
    ),
    SOURCE_NAMES: (
        [[SOURCE], [SOURCE, {**SOURCE, "name": "DB"}], [SOURCE, {"name": "login", "path": PATH}]],
        [[SOURCE, SOURCE], [SOURCE, {"name": "x", "path": "a"}, {**SOURCE, "path": "b"}]],
    ),
    PREFIX_SLASHES: (
        ["environments/", "environments", "a/b-", "team a/"],
        ["/", "/environments/", "environments//", "a//b/"],
    ),
    PREFIX_DOTS: (
        ["environments/", "a/.hidden/", "a/b..", "..."],
        [".", "..", "./", "a/../b/", "a/.", "a/./"],
    ),
}


def _all_rules(schemas: dict[str, JsonDict]) -> dict[str, str]:
    """Message -> rule, over every CRD."""
    return {
        validation["message"]: validation["rule"]
        for schema in schemas.values()
        for _, node in walk(schema)
        for validation in node.get("x-kubernetes-validations", [])
    }


def test_every_rule_has_cases(schemas: dict[str, JsonDict]) -> None:
    assert sorted(_all_rules(schemas)) == sorted(RULE_CASES)


def test_rule_messages_are_unique_per_rule(schemas: dict[str, JsonDict]) -> None:
    pairs = {
        (validation["message"], validation["rule"])
        for schema in schemas.values()
        for _, node in walk(schema)
        for validation in node.get("x-kubernetes-validations", [])
    }
    assert len(pairs) == len({message for message, _ in pairs})


@pytest.mark.parametrize("message", sorted(RULE_CASES))
def test_rule_on_good_and_bad_values(schemas: dict[str, JsonDict], message: str) -> None:
    cel = _all_rules(schemas)[message]
    good, bad = RULE_CASES[message]
    assert [value for value in good if not rule_holds(cel, value)] == []
    assert [value for value in bad if rule_holds(cel, value)] == []


@pytest.mark.parametrize("url", [url for url in HTTPS_OR_LOOPBACK if url.startswith("http")])
def test_model_takes_https_and_loopback_http(url: str) -> None:
    ConnectionSpec.model_validate(conn(url=url))
    ConnectionSpec.model_validate(conn(auth=client_credentials(url)))


@pytest.mark.parametrize("url", PLAIN_HTTP)
def test_model_mirrors_the_https_rules(url: str) -> None:
    """The operator refuses (InvalidSpec) what the CRD refuses, for connections stored before the rules existed or
    by API servers that do not run CEL: the same URLs, with the same message; insecureHTTP: true allows them."""
    for spec, message in ((conn(url=url), URL_HTTPS_MESSAGE),
                          (conn(auth=client_credentials(url)), TOKEN_URL_HTTPS_MESSAGE)):  # fmt: skip
        with pytest.raises(ValidationError) as refused:
            ConnectionSpec.model_validate(spec)
        assert message in str(refused.value)
        assert ConnectionSpec.model_validate({**spec, "insecureHTTP": True}).insecureHTTP is True


def test_the_model_and_the_cel_rule_draw_the_same_line() -> None:
    assert [url for url in HTTPS_OR_LOOPBACK if is_plain_http(url)] == []
    assert [url for url in PLAIN_HTTP if not is_plain_http(url)] == []
    # The HTTP client takes the scheme in any case: so does the model (the CRD refuses such URLs as no URL).
    assert is_plain_http("HTTP://10.0.0.1")
    assert is_plain_http("Http://localhost")


def test_model_mirrors_the_secret_type_rule() -> None:
    """The operator refuses (InvalidSpec) the types the CRD refuses, for objects stored before the rule existed."""
    good, bad = RULE_CASES[SECRET_TYPE_MESSAGE]
    for value in good:
        assert VaultSecretSpec.model_validate({"path": "a/b", "target": {"type": value}}).target.type == value
    for value in bad:
        with pytest.raises(ValidationError, match="token types"):
            VaultSecretSpec.model_validate({"path": "a/b", "target": {"type": value}})
