"""``spec.sources``, ``spec.dataFrom`` and ``spec.maxDiscovered``: what the CRD accepts and refuses, and that the
pydantic model draws the same lines.

The API server's verdict is approximated by ``crd_support.api_server_errors`` (the OpenAPI schema with jsonschema,
then every CEL rule with cel-python); ``tests/e2e/test_sources_cel.py`` asks a real one. Every refusal of the CRD is
also a refusal of ``VaultSecretSpec`` (a spec stored before a rule, or by a server that skips CEL, ends in
``InvalidSpec``); the cases the model alone refuses (a rewrite source that is no RE2 regular expression — the syntax
of External Secrets' Go regexps: no lookaround, no backreference —, a control character in a prefix) say so with
``cel=False``. Also here: the examples of ``crds/examples/sources/`` (loaded by ``crd_support.load_examples``, as
every example).
"""

from __future__ import annotations

import base64
import itertools
import re
from typing import Any, NamedTuple

import pytest
import yaml
from crd_support import (
    DOCS,
    EXAMPLES_DIR,
    JsonDict,
    api_server_errors,
    apply_defaults,
    custom_resource,
    load_examples,
    rule_holds,
    walk,
)
from pydantic import ValidationError

from scaivault_operator._cogs.api import (
    CONNECTION_SPECS,
    DEFAULT_MAX_DISCOVERED,
    MAX_DATA_FROM,
    MAX_DISCOVERED,
    MAX_SOURCES,
    SOURCES_RULES,
    VaultSecretSpec,
)

PATH = "environments/production/postgres/orders-server"
SRC = {"name": "server", "path": PATH}
LOGIN = {"name": "login", "path": "environments/production/postgres/orders-login"}
PREFIX = {"prefix": "environments/production/payments/"}

ONE_SHAPE = "set exactly one of path, or sources and/or dataFrom"
TOP_LEVEL = "version and keys go with path; with sources, set them on each source"
IMMUTABLE = "target.immutable needs path (the Secret of several sources has no single version)"
DELETE = "onSourceDeleted: Delete needs path"
NAMES = "two sources have one name"
KEYS = "two keys map to the same Secret key"
PREFIX_SLASHES = "prefix must not start with '/' or contain '//'"
PREFIX_DOTS = "prefix must not contain '.' or '..' segments"
#: The messages of the shape rules (``SOURCES_RULES``), which the model repeats word for word.
SHAPE_MESSAGES = {rule["message"] for rule in SOURCES_RULES if isinstance(rule, dict)}


def sources(*items: JsonDict, **fields: Any) -> JsonDict:
    return {"sources": list(items or [SRC]), **fields}


def data_from(*items: JsonDict, **fields: Any) -> JsonDict:
    return {"dataFrom": list(items or [PREFIX]), **fields}


def prefix(value: str, **fields: Any) -> JsonDict:
    return data_from({"prefix": value, **fields})


def rewrite(source: str, target: str = "") -> JsonDict:
    return data_from({**PREFIX, "rewrite": [{"regexp": {"source": source, "target": target}}]})


def source(**fields: Any) -> JsonDict:
    return sources({**SRC, **fields})


def cel_errors_of(spec: JsonDict, schemas: dict[str, JsonDict]) -> list[str]:
    return api_server_errors(schemas["VaultSecret"], custom_resource("VaultSecret", spec))


def model_refuses(spec: JsonDict) -> str | None:
    """The model's first error message, or None when it takes the spec."""
    try:
        VaultSecretSpec.model_validate(spec)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    return None


# -- valid composites -------------------------------------------------------------------------------------------

VALID: list[tuple[str, JsonDict]] = [
    ("one source", sources()),
    ("two sources, each its own version, keys and connection", sources(
        {**SRC, "version": 3, "keys": [{"from": "host"}, {"from": "port", "to": "PGPORT"}]},
        {**LOGIN, "connectionRef": {"kind": "VaultConnection", "name": "team-a"}},
    )),
    ("sixteen sources", sources(*({"name": f"s{i}", "path": f"{PATH}-{i}"} for i in range(MAX_SOURCES)))),
    ("names differing in case only", sources({**SRC, "name": "db"}, {**LOGIN, "name": "DB"})),
    ("one path in two sources", sources(SRC, {**SRC, "name": "again"})),
    ("one key in two sources (a collision of the union, found at sync)", sources(
        {**SRC, "keys": [{"from": "password"}]}, {**LOGIN, "keys": [{"from": "password"}]},
    )),
    ("source names", sources(*({"name": n, "path": PATH} for n in ["_", "a" * 63, "DB_1", "main", "_x9"]))),
    ("source path as spec.path allows", source(path="team a/.hidden/db#1..v2")),
    ("keys swapped", source(keys=[{"from": "a", "to": "b"}, {"from": "b", "to": "a"}])),
    ("one prefix", data_from()),
    ("prefix without a trailing slash", prefix("environments/production/pay")),
    ("prefix of one segment", prefix("environments")),
    ("prefix with dots inside segments", prefix("a/.hidden/b..c/...")),
    ("tags and rewrites", data_from({
        **PREFIX,
        "tags": ["payments", "production"],
        "rewrite": [
            {"regexp": {"source": "^([a-z0-9]+)_api_", "target": "${1}_"}},
            {"regexp": {"source": "(?P<rest>.*)", "target": "PAYMENTS_${rest}"}},
            {"regexp": {"source": "-", "target": ""}},
        ],
    })),
    ("RE2 syntax: a group name twice, (?<name>...), classes, \\pL", data_from({
        **PREFIX,
        "rewrite": [
            {"regexp": {"source": "(?P<x>a)|(?P<x>b)", "target": "${x}"}},  # Go and RE2 take a name twice
            {"regexp": {"source": "(?<word>[[:alpha:]]+)_(\\d+)", "target": "${word}-$2"}},
            {"regexp": {"source": "\\pL{2,}", "target": "x"}},
        ],
    })),
    ("largest tags and rewrites", data_from({
        **PREFIX,
        "tags": [f"{i:02}" + "t" * 126 for i in range(16)],
        "rewrite": [{"regexp": {"source": "x" * 256, "target": "y" * 256}}] * 8,
    })),
    ("eight prefixes, one twice", data_from(*[PREFIX] * MAX_DATA_FROM)),
    ("maxDiscovered 1", data_from(maxDiscovered=1)),
    ("maxDiscovered 1000", data_from(maxDiscovered=MAX_DISCOVERED)),
    ("sources and dataFrom", {**sources(SRC, LOGIN), **data_from(), "maxDiscovered": 50}),
    ("with every field that goes with several sources", {
        **sources(SRC, LOGIN),
        **data_from(),
        "connectionRef": {"kind": "ClusterVaultConnection", "name": "shared"},
        "target": {"name": "orders", "type": "Opaque", "creationPolicy": "Merge", "deletionPolicy": "Retain",
                   "immutable": False, "labels": {"app": "orders"}},
        "onSourceDeleted": "Retain",
        "rollout": {"auto": True, "targets": [{"kind": "Deployment", "name": "orders"}]},
        "template": {"data": {"URL": "{{ sources.login.data.user }}@{{ sources.server.data.host }}"},
                     "literals": {"MODE": "x"}, "type": "example.com/config"},
    }),
    ("single path, maxDiscovered set (no effect)", {"path": PATH, "maxDiscovered": 5}),
    ("single path with version, keys, immutable and Delete", {
        "path": PATH, "version": 2, "keys": [{"from": "a"}], "target": {"immutable": True}, "onSourceDeleted": "Delete",
    }),
]  # fmt: skip


@pytest.mark.parametrize("spec", [spec for _, spec in VALID], ids=[name for name, _ in VALID])
def test_valid_specs_pass_the_crd_and_the_model(schemas: dict[str, JsonDict], spec: JsonDict) -> None:
    assert cel_errors_of(spec, schemas) == []
    VaultSecretSpec.model_validate(spec)


# -- refused ------------------------------------------------------------------------------------------------


class Invalid(NamedTuple):
    id: str
    spec: JsonDict
    #: A fragment of the CRD's complaint (jsonschema's words for the schema, the rule's message for CEL).
    error: str
    #: False: the CRD takes it and only the model refuses it (the operator reports InvalidSpec).
    cel: bool = True


INVALID = [
    # SOURCES_RULES: path, or sources and/or dataFrom
    Invalid("neither path nor sources", {}, ONE_SHAPE),
    Invalid("only a target", {"target": {"name": "x"}}, ONE_SHAPE),
    Invalid("only maxDiscovered", {"maxDiscovered": 5}, ONE_SHAPE),
    Invalid("path and sources", {"path": PATH, **sources()}, ONE_SHAPE),
    Invalid("path and dataFrom", {"path": PATH, **data_from()}, ONE_SHAPE),
    Invalid("path, sources and dataFrom", {"path": PATH, **sources(), **data_from()}, ONE_SHAPE),
    Invalid("version with sources", sources(version=3), TOP_LEVEL),
    Invalid("keys with dataFrom", data_from(keys=[{"from": "a"}]), TOP_LEVEL),
    Invalid("version and keys with both", {**sources(), **data_from(), "version": 1, "keys": [{"from": "a"}]},
            TOP_LEVEL),
    Invalid("immutable with sources", sources(target={"immutable": True}), IMMUTABLE),
    Invalid("immutable with dataFrom", data_from(target={"immutable": True, "keepVersions": 3}), IMMUTABLE),
    Invalid("onSourceDeleted Delete with sources", sources(onSourceDeleted="Delete"), DELETE),
    Invalid("onSourceDeleted Delete with dataFrom", data_from(onSourceDeleted="Delete"), DELETE),
    # sources
    Invalid("two sources with one name", sources(SRC, {**LOGIN, "name": SRC["name"]}), NAMES),
    Invalid("a name thrice among others", sources(SRC, LOGIN, {**SRC, "path": "x"}, {**LOGIN, "name": "server"}),
            NAMES),
    Invalid("two keys of a source to one Secret key", source(keys=[{"from": "a"}, {"from": "b", "to": "a"}]), KEYS),
    Invalid("one key twice in a source", source(keys=[{"from": "a"}, {"from": "a"}]), KEYS),
    Invalid("source name with '-'", source(name="orders-db"), "does not match"),
    Invalid("source name starting with a digit", source(name="1db"), "does not match"),
    Invalid("source name with '.'", source(name="db.main"), "does not match"),
    Invalid("source name not ASCII", source(name="dé"), "does not match"),
    Invalid("source name with a space", source(name=" db"), "does not match"),
    Invalid("source name empty", source(name=""), "should be non-empty"),
    Invalid("source name of 64 characters", source(name="a" * 64), "is too long"),
    Invalid("source without a name", sources({"path": PATH}), "'name' is a required property"),
    Invalid("source without a path", sources({"name": "db"}), "'path' is a required property"),
    Invalid("source path absolute", source(path="/" + PATH), "must not start or end with '/'"),
    Invalid("source path with a trailing slash", source(path=PATH + "/"), "must not start or end with '/'"),
    Invalid("source path with '..'", source(path="environments/../x"), "'.' or '..' segments"),
    Invalid("source path empty", source(path=""), "should be non-empty"),
    Invalid("source path too long", source(path="a" * 1025), "is too long"),
    Invalid("source path with a control character", source(path="a\x00b"), "", cel=False),
    Invalid("source version 0", source(version=0), "less than the minimum of 1"),
    Invalid("source version as a string", source(version="3"), "is not of type 'integer'"),
    Invalid("source keys empty", source(keys=[]), "should be non-empty"),
    Invalid("source keys too many", source(keys=[{"from": f"k{i}"} for i in range(65)]), "is too long"),
    Invalid("source key to a bad Secret key", source(keys=[{"from": "a", "to": "a/b"}]), "does not match"),
    Invalid("source connection of an unknown kind", source(connectionRef={"kind": "Vault", "name": "x"}),
            "is not one of"),
    Invalid("source connection without a name", source(connectionRef={"kind": "VaultConnection"}),
            "'name' is a required property"),
    Invalid("source with an unknown field", source(secretName="x"), "Additional properties"),
    Invalid("sources empty", {"sources": []}, "should be non-empty"),
    Invalid("seventeen sources", sources(*({"name": f"s{i}", "path": PATH} for i in range(MAX_SOURCES + 1))),
            "is too long"),
    # dataFrom
    Invalid("prefix absolute", prefix("/environments/"), PREFIX_SLASHES),
    Invalid("prefix '/'", prefix("/"), PREFIX_SLASHES),
    Invalid("prefix with '//'", prefix("environments//production/"), PREFIX_SLASHES),
    Invalid("prefix ending in '//'", prefix("environments//"), PREFIX_SLASHES),
    Invalid("prefix with a '..' segment", prefix("environments/../"), PREFIX_DOTS),
    Invalid("prefix ending in '/.'", prefix("environments/."), PREFIX_DOTS),
    Invalid("prefix '.'", prefix("."), PREFIX_DOTS),
    Invalid("prefix '../'", prefix("../"), PREFIX_DOTS),
    Invalid("prefix with a '.' segment inside", prefix("a/./b/"), PREFIX_DOTS),
    Invalid("prefix empty", prefix(""), "should be non-empty"),
    Invalid("prefix too long", prefix("a" * 1025), "is too long"),
    Invalid("prefix with a control character", prefix("environments/\x1b/"), "", cel=False),
    Invalid("dataFrom without a prefix", data_from({"tags": ["a"]}), "'prefix' is a required property"),
    Invalid("tags empty", prefix("a/", tags=[]), "should be non-empty"),
    Invalid("a tag empty", prefix("a/", tags=[""]), "should be non-empty"),
    Invalid("a tag too long", prefix("a/", tags=["t" * 129]), "is too long"),
    Invalid("seventeen tags", prefix("a/", tags=[f"t{i}" for i in range(17)]), "is too long"),
    Invalid("rewrite empty", prefix("a/", rewrite=[]), "should be non-empty"),
    Invalid("nine rewrites", prefix("a/", rewrite=[{"regexp": {"source": "a", "target": "b"}}] * 9), "is too long"),
    Invalid("rewrite without regexp", prefix("a/", rewrite=[{}]), "'regexp' is a required property"),
    Invalid("regexp without target", prefix("a/", rewrite=[{"regexp": {"source": "a"}}]),
            "'target' is a required property"),
    Invalid("regexp source empty", rewrite(""), "should be non-empty"),
    Invalid("regexp source too long", rewrite("a" * 257), "is too long"),
    Invalid("regexp target too long", rewrite("a", "b" * 257), "is too long"),
    Invalid("regexp: unbalanced parenthesis", rewrite("(a"), "", cel=False),
    Invalid("regexp: unterminated class", rewrite("[a-"), "", cel=False),
    Invalid("regexp: nothing to repeat", rewrite("*a"), "", cel=False),
    # RE2 refuses what Python's re takes: lookaround, backreferences, atomic groups, repeats beyond 1000
    Invalid("regexp: a lookahead", rewrite("^db_(?=x)"), "", cel=False),
    Invalid("regexp: a lookbehind", rewrite("(?<=db_)x"), "", cel=False),
    Invalid("regexp: a backreference", rewrite("(a)\\1"), "", cel=False),
    Invalid("regexp: an atomic group", rewrite("(?>a)"), "", cel=False),
    Invalid("regexp: a repeat beyond 1000", rewrite("a{1001}"), "", cel=False),
    Invalid("dataFrom with an unknown field", data_from({**PREFIX, "path": "x"}), "Additional properties"),
    Invalid("dataFrom empty", {"dataFrom": []}, "should be non-empty"),
    Invalid("nine dataFrom", data_from(*[PREFIX] * (MAX_DATA_FROM + 1)), "is too long"),
    # maxDiscovered
    Invalid("maxDiscovered 0", data_from(maxDiscovered=0), "less than the minimum of 1"),
    Invalid("maxDiscovered -1", data_from(maxDiscovered=-1), "less than the minimum of 1"),
    Invalid("maxDiscovered 1001", data_from(maxDiscovered=MAX_DISCOVERED + 1), "greater than the maximum of 1000"),
    Invalid("maxDiscovered as a string", data_from(maxDiscovered="5"), "is not of type 'integer'"),
    Invalid("maxDiscovered as a float", data_from(maxDiscovered=1.5), "is not of type 'integer'"),
    Invalid("maxDiscovered as a boolean", data_from(maxDiscovered=True), "is not of type 'integer'"),
]  # fmt: skip


@pytest.mark.parametrize("case", INVALID, ids=[case.id for case in INVALID])
def test_the_crd_refuses(schemas: dict[str, JsonDict], case: Invalid) -> None:
    errors = cel_errors_of(case.spec, schemas)
    if not case.cel:  # the model is the only guard: when the CRD gains a rule, flip the case to cel=True
        assert errors == []
        return
    assert errors
    assert case.error in "\n".join(errors), errors


@pytest.mark.parametrize("case", INVALID, ids=[case.id for case in INVALID])
def test_the_model_refuses(case: Invalid) -> None:
    with pytest.raises(ValidationError) as refused:
        VaultSecretSpec.model_validate(case.spec)
    if case.error in SHAPE_MESSAGES | {NAMES, KEYS}:  # the model says what the CEL rule says
        assert case.error in str(refused.value), refused.value


def _invalid_spec_message(spec: JsonDict) -> str:
    """What the InvalidSpec condition of the VaultSecret says (``conditions.classify`` of the model's refusal)."""
    from scaivault_operator._logic import conditions

    with pytest.raises(ValidationError) as refused:
        VaultSecretSpec.model_validate(spec)
    return conditions.classify(refused.value).message


def test_the_model_names_a_bad_regexp_and_its_field() -> None:
    message = model_refuses(rewrite("(?=x)"))
    assert message is not None
    assert "not an RE2 regular expression" in message
    assert "dataFrom.0.rewrite.0.regexp.source" in _invalid_spec_message(rewrite("(?=x)"))


def test_the_model_names_a_bad_regexp_without_quoting_it() -> None:
    spec = rewrite("(?P<secret_pattern>a")
    message = model_refuses(spec)
    assert message is not None
    assert "not an RE2 regular expression" in message
    assert "secret_pattern" not in message
    assert "secret_pattern" not in _invalid_spec_message(spec)


# -- the shape rules: the model and the CEL rules agree on every combination ---------------------------------------

#: Each field a shape rule looks at, with the values it may take (None: absent).
SHAPE_FIELDS: dict[str, list[Any]] = {
    "path": [None, PATH],
    "sources": [None, [SRC]],
    "dataFrom": [None, [PREFIX]],
    "version": [None, 3],
    "keys": [None, [{"from": "a"}]],
    "target": [None, {"immutable": False}, {"immutable": True}],
    "onSourceDeleted": [None, "Retain", "Delete"],
}
SHAPES = [
    {name: value for name, value in zip(SHAPE_FIELDS, values, strict=True) if value is not None}
    for values in itertools.product(*SHAPE_FIELDS.values())
]


def test_the_model_and_the_cel_rules_agree_on_every_shape(schemas: dict[str, JsonDict]) -> None:
    """All 288 combinations: both accept, or both refuse and the model's message is one of the CRD's."""
    disagreements = []
    for spec in SHAPES:
        errors = [error.split(": ", 1)[1] for error in cel_errors_of(spec, schemas)]
        refused = model_refuses(spec)
        if bool(errors) != (refused is not None) or (refused is not None and not any(e in refused for e in errors)):
            disagreements.append((spec, errors, refused))
    assert disagreements == []
    # Taken: path with anything of its own (2 x 2 x 3 x 3 = 36), and the 3 composite shapes with neither version,
    # keys, immutable: true nor onSourceDeleted: Delete (3 x 2 x 2 = 12).
    assert sum(1 for spec in SHAPES if model_refuses(spec) is None) == 48


def test_what_a_composite_may_carry() -> None:
    composites = [spec for spec in SHAPES if "path" not in spec and model_refuses(spec) is None]
    assert {(spec.get("target", {}).get("immutable"), spec.get("onSourceDeleted")) for spec in composites} == {
        (None, None), (None, "Retain"), (False, None), (False, "Retain"),
    }  # fmt: skip
    assert not any("version" in spec or "keys" in spec for spec in composites)


# -- each new CEL rule on its own ---------------------------------------------------------------------------------

#: Rule message -> (values ``self`` may take, values it may not), for the rules of sources and dataFrom.
RULE_CASES: dict[str, tuple[list[Any], list[Any]]] = {
    ONE_SHAPE: (
        [{"path": PATH}, sources(), data_from(), {**sources(), **data_from()}],
        [{}, {"path": PATH, **sources()}, {"path": PATH, **data_from()}, {"path": PATH, **sources(), **data_from()}],
    ),
    TOP_LEVEL: (
        [{"path": PATH, "version": 1, "keys": []}, sources(), data_from(target={})],
        [sources(version=1), data_from(keys=[]), {**sources(), **data_from(), "version": 1, "keys": []}],
    ),
    IMMUTABLE: (
        [{"path": PATH, "target": {"immutable": True}}, sources(), sources(target={}),
         sources(target={"immutable": False})],
        [sources(target={"immutable": True}), data_from(target={"immutable": True, "name": "x"})],
    ),
    DELETE: (
        [{"path": PATH, "onSourceDeleted": "Delete"}, sources(), data_from(onSourceDeleted="Retain")],
        [sources(onSourceDeleted="Delete"), data_from(onSourceDeleted="Delete")],
    ),
    NAMES: (
        [[SRC], [SRC, LOGIN], [SRC, {**SRC, "name": "Server"}]],
        [[SRC, SRC], [SRC, LOGIN, {**LOGIN, "path": "x"}], [LOGIN, SRC, LOGIN, SRC]],
    ),
    PREFIX_SLASHES: (
        ["a", "a/", "a/b/", "a/b", "a/b-", "team a/"],
        ["/", "/a", "/a/", "a//", "a//b", "a/b//"],
    ),
    PREFIX_DOTS: (
        ["a/", "a/.b/", "a/..b", "a/b../", ".a", "a/.../"],
        [".", "..", "./", "../", "a/.", "a/..", "a/./", "a/../b/"],
    ),
}  # fmt: skip


def _rules_of_sources(schema: JsonDict) -> dict[str, str]:
    """Message -> rule of every CEL rule under spec.sources and spec.dataFrom, and of the spec's shape rules."""
    spec = schema["properties"]["spec"]
    found = {rule["message"]: rule["rule"] for rule in spec["x-kubernetes-validations"]
             if rule in SOURCES_RULES}  # fmt: skip
    for field in ("sources", "dataFrom"):
        for _, node in walk(spec["properties"][field]):
            found |= {rule["message"]: rule["rule"] for rule in node.get("x-kubernetes-validations", [])}
    return found


def test_the_crd_carries_the_shape_rules(schemas: dict[str, JsonDict]) -> None:
    spec_rules = schemas["VaultSecret"]["properties"]["spec"]["x-kubernetes-validations"]
    assert [rule for rule in spec_rules if rule in SOURCES_RULES] == SOURCES_RULES
    assert {ONE_SHAPE, TOP_LEVEL, IMMUTABLE, DELETE} == SHAPE_MESSAGES


def test_every_rule_of_sources_and_data_from_has_cases(schemas: dict[str, JsonDict]) -> None:
    messages = set(_rules_of_sources(schemas["VaultSecret"]))
    # KEYS and the path rules of sources[].path are spec.keys' and spec.path's rules (test_crd_validation).
    assert messages - {KEYS, "path must not start or end with '/' or contain '//'",
                       "path must not contain '.' or '..' segments"} == set(RULE_CASES)  # fmt: skip


@pytest.mark.parametrize("message", sorted(RULE_CASES))
def test_rule_on_good_and_bad_values(schemas: dict[str, JsonDict], message: str) -> None:
    rule = _rules_of_sources(schemas["VaultSecret"])[message]
    good, bad = RULE_CASES[message]
    assert [value for value in good if not rule_holds(rule, value)] == []
    assert [value for value in bad if rule_holds(rule, value)] == []


# -- defaults and bounds ---------------------------------------------------------------------------------------


def test_defaults_of_the_crd_and_the_model_agree(schemas: dict[str, JsonDict]) -> None:
    spec = {**sources({**SRC, "connectionRef": {"name": "team"}}), **data_from()}
    defaulted = apply_defaults(schemas["VaultSecret"]["properties"]["spec"], spec)
    model = VaultSecretSpec.model_validate(spec)
    # maxDiscovered has no CRD default (a single-path VaultSecret does not get one): absent means 100.
    assert "maxDiscovered" not in defaulted
    assert model.maxDiscovered is None
    assert model.max_discovered == DEFAULT_MAX_DISCOVERED == 100
    assert VaultSecretSpec.model_validate({**spec, "maxDiscovered": 7}).max_discovered == 7
    assert "maxDiscovered" not in apply_defaults(schemas["VaultSecret"]["properties"]["spec"], {"path": PATH})
    assert defaulted["onSourceDeleted"] == model.onSourceDeleted == "Retain"
    assert defaulted["sources"][0]["connectionRef"] == {"kind": "ClusterVaultConnection", "name": "team"}
    assert model.sources is not None
    assert model.sources[0].connectionRef is not None
    assert model.sources[0].connectionRef.kind == "ClusterVaultConnection"
    bare = apply_defaults(schemas["VaultSecret"]["properties"]["spec"], sources())
    assert "connectionRef" not in bare["sources"][0]  # absent: spec.connectionRef's, resolved by the operator
    assert [s.connectionRef for s in VaultSecretSpec.model_validate(sources()).sources or ()] == [None]


def test_bounds_of_the_crd_are_the_models(schemas: dict[str, JsonDict]) -> None:
    spec = schemas["VaultSecret"]["properties"]["spec"]["properties"]
    assert (spec["sources"]["minItems"], spec["sources"]["maxItems"]) == (1, MAX_SOURCES) == (1, 16)
    assert (spec["dataFrom"]["minItems"], spec["dataFrom"]["maxItems"]) == (1, MAX_DATA_FROM) == (1, 8)
    assert (spec["maxDiscovered"]["minimum"], spec["maxDiscovered"]["maximum"]) == (1, MAX_DISCOVERED) == (1, 1000)
    assert "default" not in spec["maxDiscovered"]  # absent: DEFAULT_MAX_DISCOVERED, applied by the operator
    assert str(DEFAULT_MAX_DISCOVERED) in spec["maxDiscovered"]["description"]
    name = spec["sources"]["items"]["properties"]["name"]
    assert (name["minLength"], name["maxLength"], name["pattern"]) == (1, 63, "^[a-zA-Z_][a-zA-Z0-9_]*$")
    assert spec["sources"]["items"]["required"] == ["name", "path"]
    assert spec["dataFrom"]["items"]["required"] == ["prefix"]


# -- crds/examples/sources/ ---------------------------------------------------------------------------------------

SOURCES_EXAMPLES_DIR = EXAMPLES_DIR / "sources"
SOURCES_EXAMPLES = [
    (name.removeprefix("sources/"), document) for name, document in load_examples() if name.startswith("sources/")
]
#: The ScaiVault secrets the examples read (demo values), with their tags.
VAULT: dict[str, tuple[JsonDict, frozenset[str]]] = {
    "environments/production/postgres/orders-server": ({"host": "postgres.default.svc", "port": 5432,
                                                        "dbname": "orders"}, frozenset()),
    "environments/production/postgres/orders-login": ({"user": "orders", "password": "p@ss/w:rd"}, frozenset()),
    "environments/production/redis/orders": ({"host": "redis.default.svc", "password": 'r3d"s'}, frozenset()),
    "environments/production/payments/stripe/api": ({"token": "sk_demo"}, frozenset({"payments", "production"})),
    "environments/production/payments/adyen/api": ({"api_key": "ak_demo", "hmac_key": "hk_demo"},
                                                   frozenset({"payments", "production", "eu"})),
    "environments/production/payments/legacy/api": ({"token": "old"}, frozenset({"payments"})),  # not production
}  # fmt: skip


def _example(name: str) -> JsonDict:
    [document] = [doc for _, doc in SOURCES_EXAMPLES if doc["metadata"]["name"] == name]
    return document


def test_the_three_examples_are_there() -> None:
    assert [(filename, doc["kind"], doc["metadata"]["name"]) for filename, doc in SOURCES_EXAMPLES] == [
        ("10-vaultsecret-database-url.yaml", "VaultSecret", "orders-database"),
        ("11-vaultsecret-datafrom-payments.yaml", "VaultSecret", "payments-keys"),
        ("12-vaultsecret-config-file.yaml", "VaultSecret", "orders-config"),
    ]
    assert "crds/examples/sources/" in DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize(("filename", "document"), SOURCES_EXAMPLES, ids=[name for name, _ in SOURCES_EXAMPLES])
def test_example_passes_the_crd_and_the_model(schemas: dict[str, JsonDict], filename: str, document: JsonDict) -> None:
    assert (SOURCES_EXAMPLES_DIR / filename).read_text(encoding="utf-8").startswith("# "), f"{filename}: no comment"
    assert document["apiVersion"] == "scaivault.scailabs.ai/v1alpha1"
    assert document["metadata"]["namespace"] == "default"
    assert api_server_errors(schemas["VaultSecret"], document) == []
    assert VaultSecretSpec.model_validate(document["spec"]).composite


@pytest.mark.parametrize(("filename", "document"), SOURCES_EXAMPLES, ids=[name for name, _ in SOURCES_EXAMPLES])
def test_example_reads_only_what_the_example_connection_allows(filename: str, document: JsonDict) -> None:
    """Every source path and every prefix lies under a pathPrefix the example ClusterVaultConnection ``default``
    gives namespace ``default``: nothing the example reads or finds is PolicyDenied."""
    [connection] = [doc for doc in yaml.safe_load_all((EXAMPLES_DIR / "10-clustervaultconnection-default.yaml")
                                                      .read_text(encoding="utf-8")) if doc]  # fmt: skip
    spec = VaultSecretSpec.model_validate(document["spec"])
    allowed = [prefix for rule in CONNECTION_SPECS["ClusterVaultConnection"].model_validate(connection["spec"]).access
               or [] if rule.namespaces and "default" in rule.namespaces for prefix in rule.pathPrefixes]  # fmt: skip
    assert spec.connection.name == connection["metadata"]["name"]
    wanted = [s.path for s in spec.sources or ()] + [entry.prefix for entry in spec.dataFrom or ()]
    assert [path for path in wanted if not any(path.startswith(prefix) for prefix in allowed)] == []


def _render(name: str) -> dict[str, str]:
    """The example's Secret data (as text) over ``VAULT``, every secret at version 1."""
    from scaivault_operator._logic import composite
    from scaivault_operator._logic.templating import SourceInput, apply_template

    spec = VaultSecretSpec.model_validate(_example(name)["spec"])
    listings = [{path: composite.Listed(1, tags) for path, (_, tags) in VAULT.items() if path.startswith(entry.prefix)}
                for entry in spec.dataFrom or ()]  # fmt: skip
    found = composite.discover(spec, listings)
    reads = composite.needed(spec, "default", lambda conn, path: 1, found)
    data, by_name = composite.compose(spec, [(read, VAULT[read.path][0]) for read in reads], found)
    named = {s.name: SourceInput(path=s.path, version=1, data=by_name[s.name]) for s in spec.sources or ()}
    rendered = apply_template(spec, data, version=None, sources=named)
    return {key: base64.b64decode(value).decode() for key, value in rendered.items()}


def test_example_database_url_from_two_sources() -> None:
    assert _render("orders-database") == {
        "DATABASE_URL": "postgres://orders:p%40ss%2Fw%3Ard@postgres.default.svc:5432/orders",
        "PGSSLMODE": "require",
    }


def test_example_data_from_with_tags_and_rewrites() -> None:
    # legacy/api lacks the tag production; stripe_api_token -> stripe_token -> PAYMENTS_stripe_token.
    assert _render("payments-keys") == {
        "PAYMENTS_adyen_api_key": "ak_demo",
        "PAYMENTS_adyen_hmac_key": "hk_demo",
        "PAYMENTS_stripe_token": "sk_demo",
    }


def test_example_config_file_from_three_sources() -> None:
    rendered = _render("orders-config")
    assert list(rendered) == ["config.yaml"]  # mergePolicy Replace
    config = yaml.safe_load(rendered["config.yaml"])
    assert config == {
        "database": {"host": "postgres.default.svc", "port": 5432, "name": "orders", "user": "orders",
                     "password": "p@ss/w:rd"},
        "cache": {"url": "redis://redis.default.svc:6379", "password": 'r3d"s'},
    }  # fmt: skip


def _documented_specs() -> list[JsonDict]:
    """The spec of every YAML block of docs/crds.md and docs/templates.md with sources or dataFrom."""
    specs = []
    for doc in (DOCS, DOCS.parent / "templates.md"):
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.DOTALL):
            document = yaml.safe_load(block)
            spec = document.get("spec", {})
            if "sources" in spec or "dataFrom" in spec:
                specs.append(spec)
    return specs


def test_the_documented_composites_pass_the_crd_and_the_model(schemas: dict[str, JsonDict]) -> None:
    specs = _documented_specs()
    assert len(specs) >= 2
    for spec in specs:
        assert cel_errors_of(spec, schemas) == []
        VaultSecretSpec.model_validate(spec)
