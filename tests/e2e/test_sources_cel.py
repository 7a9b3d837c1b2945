"""``spec.sources``, ``spec.dataFrom`` and ``spec.maxDiscovered`` on a real API server.

``tests/unit/crds/test_sources_schema.py`` judges these specs offline (jsonschema and cel-python) and checks that the
pydantic model agrees; here kube-apiserver decides, with real creates (no dry run) in a fresh namespace per test:
every refusal is a 422 naming the field and the rule's message, the few specs only the operator refuses are stored,
valid composites are stored whole with their defaults (``maxDiscovered`` has none: absent means 100), the shape rules
hold on updates too, and a composite's status (``sources``, ``sourceCount``) and its **Sources** printer column work.
The examples of ``crds/examples/sources/`` are created with every other example by ``test_e2e_crd_validation``, and
each CEL rule's cases are there too. No operator runs.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest
from e2e_support import ApiFailure, JsonDict, KubeApi, custom_resource_manifest, unique_name

pytestmark = pytest.mark.e2e

PATH = "e2e/postgres/orders-server"
SRC = {"name": "server", "path": PATH}
LOGIN = {"name": "login", "path": "e2e/postgres/orders-login"}
PREFIX = {"prefix": "e2e/payments/"}

ONE_SHAPE = "set exactly one of path, or sources and/or dataFrom"
TOP_LEVEL = "version and keys go with path; with sources, set them on each source"
IMMUTABLE = "target.immutable needs path (the Secret of several sources has no single version)"
DELETE = "onSourceDeleted: Delete needs path"
NAMES = "two sources have one name"
KEYS = "two keys map to the same Secret key"
PREFIX_SLASHES = "prefix must not start with '/' or contain '//'"
PREFIX_DOTS = "prefix must not contain '.' or '..' segments"
PATH_SLASHES = "path must not start or end with '/' or contain '//'"
PATH_DOTS = "path must not contain '.' or '..' segments"


def sources(*items: JsonDict, **fields: Any) -> JsonDict:
    return {"sources": list(items or [SRC]), **fields}


def data_from(*items: JsonDict, **fields: Any) -> JsonDict:
    return {"dataFrom": list(items or [PREFIX]), **fields}


def source(**fields: Any) -> JsonDict:
    return sources({**SRC, **fields})


def prefix(value: str, **fields: Any) -> JsonDict:
    return data_from({"prefix": value, **fields})


def rewrite(source: str, target: str = "") -> JsonDict:
    return data_from({**PREFIX, "rewrite": [{"regexp": {"source": source, "target": target}}]})


def rule_failed(path: str, message: str) -> str:
    """How the API server reports a failed CEL rule: ``spec.sources: Invalid value: "array": <message>``."""
    return rf"(^|[\s\[,]){re.escape(path)}: Invalid value: .*?{re.escape(message)}"


def schema_failed(path: str, complaint: str) -> str:
    """A schema complaint about ``path`` (the API server's words: ``Required value``, ``should match``, ...)."""
    return rf"(^|[\s\[,]){re.escape(path)}[:\s].*?{re.escape(complaint)}"


class Refused(NamedTuple):
    id: str
    spec: JsonDict
    #: A regular expression the API server's message must match: the field and the complaint.
    error: str


REFUSED = [
    # the shape rules (SOURCES_RULES) on the spec
    Refused("neither path nor sources", {}, rule_failed("spec", ONE_SHAPE)),
    Refused("only a target", {"target": {"name": "x"}}, rule_failed("spec", ONE_SHAPE)),
    Refused("path and sources", {"path": PATH, **sources()}, rule_failed("spec", ONE_SHAPE)),
    Refused("path and dataFrom", {"path": PATH, **data_from()}, rule_failed("spec", ONE_SHAPE)),
    Refused("version with sources", sources(version=3), rule_failed("spec", TOP_LEVEL)),
    Refused("keys with dataFrom", data_from(keys=[{"from": "a"}]), rule_failed("spec", TOP_LEVEL)),
    Refused("immutable with sources", sources(target={"immutable": True}), rule_failed("spec", IMMUTABLE)),
    Refused("immutable with dataFrom", data_from(target={"immutable": True}), rule_failed("spec", IMMUTABLE)),
    Refused("Delete with sources", sources(onSourceDeleted="Delete"), rule_failed("spec", DELETE)),
    Refused("Delete with dataFrom", data_from(onSourceDeleted="Delete"), rule_failed("spec", DELETE)),
    # sources
    Refused("two sources with one name", sources(SRC, {**LOGIN, "name": "server"}), rule_failed("spec.sources", NAMES)),
    Refused("two keys of a source to one Secret key", source(keys=[{"from": "a"}, {"from": "b", "to": "a"}]),
            rule_failed("spec.sources[0].keys", KEYS)),
    Refused("one key twice in a source", sources(LOGIN, {**SRC, "keys": [{"from": "a"}, {"from": "a"}]}),
            rule_failed("spec.sources[1].keys", KEYS)),
    Refused("source name with '-'", source(name="orders-db"), schema_failed("spec.sources[0].name", "should match")),
    Refused("source name starting with a digit", source(name="1db"),
            schema_failed("spec.sources[0].name", "should match")),
    Refused("source name of 64 characters", source(name="a" * 64), schema_failed("spec.sources[0].name", "Too long")),
    Refused("source without a name", sources({"path": PATH}), schema_failed("spec.sources[0].name", "Required value")),
    Refused("source path absolute", source(path="/" + PATH), rule_failed("spec.sources[0].path", PATH_SLASHES)),
    Refused("source path with '..'", source(path="e2e/../x"), rule_failed("spec.sources[0].path", PATH_DOTS)),
    Refused("source version 0", source(version=0),
            schema_failed("spec.sources[0].version", "greater than or equal to 1")),
    Refused("source connection of an unknown kind", source(connectionRef={"kind": "Vault", "name": "x"}),
            schema_failed("spec.sources[0].connectionRef.kind", "Unsupported value")),
    Refused("seventeen sources", sources(*({"name": f"s{i}", "path": PATH} for i in range(17))),
            schema_failed("spec.sources", "must have at most 16 items")),
    Refused("sources empty", {"sources": []}, schema_failed("spec.sources", "should have at least 1 items")),
    # dataFrom
    Refused("prefix absolute", prefix("/e2e/"), rule_failed("spec.dataFrom[0].prefix", PREFIX_SLASHES)),
    Refused("prefix with '//'", prefix("e2e//payments/"), rule_failed("spec.dataFrom[0].prefix", PREFIX_SLASHES)),
    Refused("prefix with a '..' segment", prefix("e2e/../"), rule_failed("spec.dataFrom[0].prefix", PREFIX_DOTS)),
    Refused("prefix '.'", prefix("."), rule_failed("spec.dataFrom[0].prefix", PREFIX_DOTS)),
    Refused("prefix empty", prefix(""), schema_failed("spec.dataFrom[0].prefix", "at least 1 chars long")),
    Refused("tags empty", prefix("e2e/", tags=[]), schema_failed("spec.dataFrom[0].tags", "at least 1 items")),
    Refused("a tag too long", prefix("e2e/", tags=["t" * 129]), schema_failed("spec.dataFrom[0].tags[0]", "Too long")),
    Refused("nine rewrites", prefix("e2e/", rewrite=[{"regexp": {"source": "a", "target": "b"}}] * 9),
            schema_failed("spec.dataFrom[0].rewrite", "must have at most 8 items")),
    Refused("regexp without target", prefix("e2e/", rewrite=[{"regexp": {"source": "a"}}]),
            schema_failed("spec.dataFrom[0].rewrite[0].regexp.target", "Required value")),
    Refused("nine dataFrom", data_from(*[PREFIX] * 9), schema_failed("spec.dataFrom", "must have at most 8 items")),
    # maxDiscovered
    Refused("maxDiscovered 0", data_from(maxDiscovered=0),
            schema_failed("spec.maxDiscovered", "greater than or equal to 1")),
    Refused("maxDiscovered 1001", data_from(maxDiscovered=1001),
            schema_failed("spec.maxDiscovered", "less than or equal to 1000")),
    Refused("maxDiscovered as a string", data_from(maxDiscovered="5"),
            schema_failed("spec.maxDiscovered", "must be of type integer")),
]  # fmt: skip


async def _create(api: KubeApi, namespace: str, spec: JsonDict, name: str | None = None) -> JsonDict:
    return await api.create(custom_resource_manifest("VaultSecret", name or unique_name("vs-"), namespace, spec))


@pytest.mark.parametrize("case", REFUSED, ids=[case.id for case in REFUSED])
async def test_refused_at_create(api: KubeApi, namespace: str, case: Refused) -> None:
    with pytest.raises(ApiFailure) as refused:
        await _create(api, namespace, case.spec)
    assert refused.value.status == 422, refused.value
    assert re.search(case.error, refused.value.message), f"expected {case.error!r} in: {refused.value.message}"


#: What the API server stores and only the operator refuses (InvalidSpec at sync): tests/unit/crds pins the model's
#: refusal of the same specs (``cel=False``).
OPERATOR_ONLY = [
    pytest.param(rewrite("(a"), id="regexp-unbalanced"),
    pytest.param(rewrite("^db_(?=x)"), id="regexp-lookahead"),  # no RE2 (Go) syntax, though Python's re takes it
    pytest.param(rewrite("(a)\\1"), id="regexp-backreference"),
    pytest.param(prefix("e2e/\x1b/"), id="prefix-control-character"),
]


@pytest.mark.parametrize("spec", OPERATOR_ONLY)
async def test_stored_although_the_operator_refuses_it(api: KubeApi, namespace: str, spec: JsonDict) -> None:
    created = await _create(api, namespace, spec)
    assert created["spec"]["dataFrom"] == spec["dataFrom"], created["spec"]


# -- valid composites ---------------------------------------------------------------------------------------------

VALID = [
    pytest.param(sources(), id="one-source"),
    pytest.param(
        sources(
            {**SRC, "version": 3, "keys": [{"from": "host"}, {"from": "port", "to": "PGPORT"}]},
            {**LOGIN, "connectionRef": {"kind": "VaultConnection", "name": "team-a"}},
        ),
        id="sources-with-version-keys-connection",
    ),
    pytest.param(sources(*({"name": f"s{i}", "path": f"{PATH}-{i}"} for i in range(16))), id="sixteen-sources"),
    pytest.param(sources({**SRC, "name": "db"}, {**LOGIN, "name": "DB"}, {**LOGIN, "name": "_"}), id="source-names"),
    pytest.param(prefix("e2e/pay"), id="prefix-mid-segment"),
    pytest.param(prefix("e2e/.hidden/b..c/"), id="prefix-dots-inside-segments"),
    pytest.param(
        data_from(
            {
                **PREFIX,
                "tags": ["payments", "production"],
                "rewrite": [
                    {"regexp": {"source": "^([a-z0-9]+)_api_", "target": "${1}_"}},
                    {"regexp": {"source": "^", "target": "PAYMENTS_"}},
                ],
            },
            maxDiscovered=1000,
        ),
        id="tags-rewrites-max",
    ),
    pytest.param(
        {
            **sources(SRC, LOGIN),
            **data_from(),
            "maxDiscovered": 1,
            "connectionRef": {"name": "shared"},
            "target": {"name": "orders", "creationPolicy": "Merge", "immutable": False},
            "onSourceDeleted": "Retain",
            "rollout": {"auto": True},
            "template": {"data": {"URL": "{{ sources.login.data.user }}@{{ sources.server.data.host }}"}},
        },
        id="sources-and-data-from-with-everything",
    ),
]


@pytest.mark.parametrize("spec", VALID)
async def test_valid_composites_are_stored_whole(api: KubeApi, namespace: str, spec: JsonDict) -> None:
    """Created, and read back with every field (none pruned) and the schema's defaults filled in."""
    stored = await _create(api, namespace, spec)
    assert contains(stored["spec"], spec), f"pruned or changed: {spec} -> {stored['spec']}"
    if "maxDiscovered" in spec:
        assert stored["spec"]["maxDiscovered"] == spec["maxDiscovered"], stored["spec"]
    else:  # no CRD default: absent means DEFAULT_MAX_DISCOVERED (100) to the operator
        assert "maxDiscovered" not in stored["spec"], stored["spec"]
    assert stored["spec"]["onSourceDeleted"] == "Retain", stored["spec"]
    assert "path" not in stored["spec"], stored["spec"]
    for item in stored["spec"].get("sources", []):
        if "connectionRef" in item:
            assert item["connectionRef"].get("kind") in ("ClusterVaultConnection", "VaultConnection"), item


async def test_a_source_connection_gets_its_default_kind(api: KubeApi, namespace: str) -> None:
    stored = await _create(api, namespace, sources({**SRC, "connectionRef": {"name": "team"}}, LOGIN))
    first, second = stored["spec"]["sources"]
    assert first["connectionRef"] == {"kind": "ClusterVaultConnection", "name": "team"}, first
    assert "connectionRef" not in second, second  # absent: spec.connectionRef's, resolved by the operator


# -- updates ----------------------------------------------------------------------------------------------------


async def test_the_shape_rules_hold_on_updates(api: KubeApi, namespace: str) -> None:
    """A single-path VaultSecret may become a composite and back, but never both at once."""
    name = unique_name("vs-")
    await _create(api, namespace, {"path": PATH, "version": 2}, name)

    with pytest.raises(ApiFailure) as refused:  # sources beside path
        await api.patch("VaultSecret", name, {"spec": {"sources": [SRC]}}, namespace)
    assert refused.value.status == 422, refused.value
    assert ONE_SHAPE in refused.value.message, refused.value
    with pytest.raises(ApiFailure) as refused:  # path gone, its version left behind
        await api.patch("VaultSecret", name, {"spec": {"path": None, "sources": [SRC]}}, namespace)
    assert refused.value.status == 422, refused.value
    assert TOP_LEVEL in refused.value.message, refused.value

    composite = await api.patch("VaultSecret", name, {"spec": {"path": None, "version": None, "sources": [SRC]}},
                                namespace)  # fmt: skip
    assert composite["spec"]["sources"] == [SRC], composite["spec"]
    assert "path" not in composite["spec"], composite["spec"]
    with pytest.raises(ApiFailure) as refused:
        await api.patch("VaultSecret", name, {"spec": {"target": {"immutable": True}}}, namespace)
    assert refused.value.status == 422, refused.value
    assert IMMUTABLE in refused.value.message, refused.value
    with pytest.raises(ApiFailure) as refused:
        await api.patch("VaultSecret", name, {"spec": {"sources": [SRC, {**LOGIN, "name": "server"}]}}, namespace)
    assert refused.value.status == 422, refused.value
    assert NAMES in refused.value.message, refused.value

    single = await api.patch("VaultSecret", name, {"spec": {"path": PATH, "sources": None}}, namespace)
    assert single["spec"]["path"] == PATH, single["spec"]
    assert "sources" not in single["spec"], single["spec"]


# -- status and printer columns -------------------------------------------------------------------------------------


async def test_composite_status_and_the_sources_column(api: KubeApi, namespace: str) -> None:
    """What the operator writes for a composite is kept as written (strict field validation), and `kubectl get`
    shows the count under Sources with no Path and no Version."""
    name = unique_name("vs-")
    await _create(api, namespace, {**sources(SRC, LOGIN), **data_from()}, name)
    status = {
        "observedGeneration": 1,
        "secretName": name,
        "sources": [
            {"name": "login", "path": LOGIN["path"], "version": 4},
            {"name": "server", "path": PATH, "version": 7},
            {"path": "e2e/payments/stripe/api", "version": 2},
        ],
        "sourceCount": 3,
    }
    patched, _ = await api.patch_status("VaultSecret", name, {"status": status}, namespace, field_validation="Strict")
    assert patched.get("status") == status, patched.get("status")
    with pytest.raises(ApiFailure) as refused:  # version is required on each
        await api.patch_status(
            "VaultSecret", name, {"status": {"sources": [{"path": PATH}]}}, namespace, field_validation="Strict"
        )
    assert refused.value.status == 422, refused.value
    assert "status.sources[0].version" in refused.value.message, refused.value

    columns = await api.printer_columns(namespace, name)
    assert list(columns)[:6] == ["Name", "Path", "Version", "Sources", "Ready", "Reason"], columns
    assert columns["Sources"] == 3, columns
    assert columns["Path"] in (None, ""), columns
    assert columns["Version"] in (None, ""), columns


# -- helpers ------------------------------------------------------------------------------------------------


def contains(big: Any, small: Any) -> bool:
    """Whether ``big`` holds everything ``small`` does (dicts may have more keys; lists match item by item)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(map(contains, big, small))
    return bool(big == small)
