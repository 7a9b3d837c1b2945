"""Bad input (issue 10), part 1: generated VaultSecret and connection specs never crash or stall the operator.

Specs are generated from the CRDs' openAPIV3Schema (``tests/bad_input_strategies.py``): valid ones, and valid ones
broken once at a random place. Each runs through the operator's own code path in memory
(``tests/bad_input_harness.py``: ``Connections.upsert``, ``Runtime.on_vaultsecret``, ``Syncer.sync_source`` and its
retries, our writes fed back as watch events, a ``VersionWatcher`` poll for connections). For every spec:

- nothing escapes but the operator's own translated outcome (an exception fails the test), nothing re-runs without
  end (``Stall``), nothing is logged at ERROR;
- the VaultSecret ends with a Ready condition of a known reason;
- a spec the API server would refuse (``crd_errors``: the CRD's schema and CEL) ends ``InvalidSpec`` with a message
  that names the broken field (pydantic's dotted location, e.g. ``keys.0.to``), sends nothing to ScaiVault, writes
  no Secret, and quotes none of the invented values (``CANARY``) in the status, an Event or a log line;
- a spec the API server would store ends ``Synced`` with exactly the selected data, or with a translated failure that
  names what to fix. A composite (``spec.sources``/``spec.dataFrom``): the union of its sources' keys and the keys of
  the secrets its prefixes found, as its ``status.sources`` lists them (the mock serves the same data at every path).

Inputs the operator gets wrong today are set aside from the main properties (``_known_gap``) and each has a strict
xfail test of its own below, with the bug it shows; a fix makes that test pass, which fails the run until the xfail
is removed (and the exclusion with it).

Example counts (``settings(max_examples=...)``, ``derandomize=True``: the same examples every run; the constants
below):

- VaultSecret specs: 150 valid (single path) + 900 mutated (single path and composites) = 1,050, plus 100
  VaultSecrets whose spec is no object at all;
- connection specs: 2 x 75 valid + 2 x 450 mutated (ClusterVaultConnection and VaultConnection) = 1,050;
- the strict xfail tests add 10-20 examples each (they stop at the first failure and do not shrink).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from bad_input_harness import (
    NAMESPACE,
    Outcome,
    VaultAnswers,
    assert_settled,
    leaks,
    run_operator,
    secret_metadata_problems,
)
from bad_input_strategies import (
    CANARY,
    CONNECTION_KINDS,
    INT64_MAX,
    Mutation,
    crd_errors,
    field_named,
    mutated_specs,
    valid_specs,
)
from scaivault_operator._cogs.api import (
    DNS_SUBDOMAIN_PATTERN,
    DURATION_PATTERN,
    VaultSecretSpec,
    is_plain_http,
    parse_duration,
)
from scaivault_operator._logic import composite, conditions
from scaivault_operator._logic.templating import SourceInput, apply_template

#: Examples per property (``settings(max_examples=...)``); the connection properties run once per kind.
VALID_VAULTSECRETS, MUTATED_VAULTSECRETS = 150, 900
VALID_CONNECTIONS, MUTATED_CONNECTIONS = 75, 450
assert VALID_VAULTSECRETS + MUTATED_VAULTSECRETS >= 1000
assert len(CONNECTION_KINDS) * (VALID_CONNECTIONS + MUTATED_CONNECTIONS) >= 1000
#: Planted in the ScaiVault data every VaultSecret reads: it belongs in the Secret, nowhere else.
VALUE_CANARY = "CANARY-DATA-91c3"
OPEN_ACCESS = [{"namespaceSelector": {}, "pathPrefixes": [""]}]


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for all examples of a module (a new loop per example costs about a millisecond)."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


# -- running a spec -----------------------------------------------------------------------------------------------


def _connection_ref(spec: Any) -> tuple[str, str]:
    ref = spec.get("connectionRef") if isinstance(spec, dict) else None
    ref = ref if isinstance(ref, dict) else {}
    kind = ref.get("kind") if ref.get("kind") in CONNECTION_KINDS else "ClusterVaultConnection"
    name = ref.get("name")
    valid = isinstance(name, str) and len(name) <= 253 and re.fullmatch(DNS_SUBDOMAIN_PATTERN.strip("^$"), name)
    return kind, name if valid else "default"  # a connection cannot have an invalid name


def _open_connection(kind: str) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": "scaivault-token"}
    if kind == "ClusterVaultConnection":
        ref["namespace"] = "scaivault-system"
    return {"url": "https://vault.example", "auth": {"tokenSecretRef": ref}, "access": OPEN_ACCESS}


def _mappings(spec: Any) -> list[dict[str, Any]] | None:
    keys = spec.get("keys") if isinstance(spec, dict) else None
    if not isinstance(keys, list):
        return None
    return [m for m in keys if isinstance(m, dict) and isinstance(m.get("from"), str)]


def _source_mappings(spec: Any) -> list[dict[str, Any]]:
    """The key mappings of every source of ``spec.sources`` (a composite's)."""
    sources = spec.get("sources") if isinstance(spec, dict) else None
    return (
        [m for source in sources if isinstance(source, dict) for m in _mappings(source) or []]
        if isinstance(sources, list)
        else []
    )


def _data_for(spec: Any) -> dict[str, Any]:
    """ScaiVault data with every key ``spec.keys`` (or a source's ``keys``) asks for (and two more), each value a
    canary. Every path the mock ScaiVault serves holds it."""
    data: dict[str, Any] = {"password": f"{VALUE_CANARY}-pw", "user": f"{VALUE_CANARY}-user"}
    for index, mapping in enumerate([*(_mappings(spec) or []), *_source_mappings(spec)]):
        data.setdefault(mapping["from"], f"{VALUE_CANARY}-{index}")
    return data


def run_vaultsecret(spec: Any, runner: asyncio.Runner) -> Outcome:
    """The VaultSecret ``spec`` in namespace team-a, through the connection it names (which exists, is valid and
    lets every namespace read every path), reading canary data that has every key it lists."""
    kind, name = _connection_ref(spec)
    answers = VaultAnswers(data=_data_for(spec))
    return run_operator(
        spec, _open_connection(kind), connection_kind=kind, connection_name=name, answers=answers, runner=runner
    )


def run_connection(kind: str, spec: Any, runner: asyncio.Runner) -> Outcome:
    """A plain VaultSecret (apps/db) through a ``kind`` connection named ``default`` with ``spec``; one version
    watcher poll too."""
    vaultsecret = {"path": "apps/db", "connectionRef": {"kind": kind, "name": "default"}}
    answers = VaultAnswers(data={"password": f"{VALUE_CANARY}-pw"})
    return run_operator(vaultsecret, spec, connection_kind=kind, answers=answers, poll=True, runner=runner)


# -- what every outcome must be -----------------------------------------------------------------------------------


def assert_invalid_spec(outcome: Outcome, mutation: Mutation) -> None:
    """``InvalidSpec`` naming the broken field; nothing sent to ScaiVault, no Secret, no invented value quoted."""
    assert outcome.reason == conditions.INVALID_SPEC, (outcome.reason, outcome.message)
    # A null field is dropped by the API server: what it breaks is then the enclosing object's rule.
    fields = [mutation.field, *([".".join(map(str, mutation.where[:-1]))] if mutation.dropped else [])]
    assert any(field_named(outcome.message, f) for f in fields if f), (mutation, outcome.message)
    assert outcome.requests == [], [str(r.url) for r in outcome.requests]
    assert outcome.secret is None
    leaked = leaks(outcome, CANARY)
    assert not leaked, leaked[:3]


def expected_data(spec: dict[str, Any], data: dict[str, Any]) -> dict[str, str]:
    mappings = _mappings(spec)
    if mappings is None:
        selected = {key: value for key, value in data.items()}
    else:
        selected = {m.get("to") or m["from"]: data[m["from"]] for m in mappings}
    if not isinstance(spec.get("template"), dict):
        return selected
    # The template's own behaviour is tests/unit/core/test_templating.py's: here the same function's result.
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in selected.items()}
    shaped = apply_template(VaultSecretSpec.model_validate(spec), encoded, version=spec.get("version") or 1)
    return {key: base64.b64decode(value).decode() for key, value in shaped.items()}


def expected_composite_data(spec: dict[str, Any], status: dict[str, Any], data: dict[str, Any]) -> dict[str, str]:
    """A synced composite's Secret data, from what its status says it holds (each named source at its version, the
    secrets dataFrom found) and the mock's ``data`` at every path. Which secrets a prefix finds depends on the
    listings the operator chose (the mock lists ``<prefix>db`` under any prefix): the paths in the status must lie
    under a prefix and carry its tags (the mock's have none), and the same names (``discovered_key``), union and
    template as ``_logic/composite`` give them (tests/unit/core/test_composite.py owns those) must be the Secret."""
    model = VaultSecretSpec.model_validate(spec)
    listed = status.get("sources") or []
    assert status.get("sourceCount") == len(listed), status
    assert "syncedVersion" not in status, status
    named = {item["name"]: item for item in listed if "name" in item}
    assert [(name, item["path"]) for name, item in named.items()] == sorted(
        (source.name, source.path) for source in model.sources or ()
    ), status
    for source in model.sources or ():
        assert named[source.name]["version"] == (source.version or 1), status  # the mock's latest is 1
    found_paths = {item["path"]: item["version"] for item in listed if "name" not in item}
    listings = [
        {path: composite.Listed(version) for path, version in found_paths.items() if path.startswith(entry.prefix)}
        for entry in model.dataFrom or ()
    ]
    found = composite.discover(model, listings)
    assert set(found) == set(found_paths), (found_paths, model.dataFrom)  # each under a prefix, with its tags
    reads = composite.needed(model, NAMESPACE, lambda conn, path: 1, found)
    union, by_name = composite.compose(model, [(read, data) for read in reads], found)
    sources = {
        source.name: SourceInput(path=source.path, version=source.version or 1, data=by_name[source.name])
        for source in model.sources or ()
    }
    shaped = apply_template(model, union, version=None, sources=sources)
    return {key: base64.b64decode(value).decode() for key, value in shaped.items()}


def _is_composite(spec: Any) -> bool:
    return isinstance(spec, dict) and spec.get("path") is None and ("sources" in spec or "dataFrom" in spec)


#: How an InvalidSourceData message of a composite names what to fix (a key from two sources, a found key that is no
#: valid Secret key, two keys of a found secret made one by the rewrites).
_COMPOSITE_SOURCE_DATA = ("comes from both", "not a valid Secret key", "become the Secret key", "spec.keys")


def assert_synced_or_named(outcome: Outcome, spec: dict[str, Any]) -> None:
    """A spec the API server stores: Synced with exactly the selected data, or a failure naming what to fix."""
    several = _is_composite(spec)
    if outcome.reason == conditions.SYNCED and several:
        assert outcome.decoded_data() == expected_composite_data(spec, outcome.status, _data_for(spec))
        assert not any(e["type"] == "Normal" for e in outcome.events)  # a first sync posts no Event
    elif outcome.reason == conditions.SYNCED:
        assert outcome.decoded_data() == expected_data(spec, _data_for(spec))
        assert outcome.status.get("syncedVersion") == (spec.get("version") or 1)  # null: pruned, as absent
        assert not any(e["type"] == "Normal" for e in outcome.events)  # a first sync posts no Event
    elif outcome.reason == conditions.INVALID_SOURCE_DATA and several:
        assert any(words in outcome.message for words in _COMPOSITE_SOURCE_DATA), outcome.message
        assert VALUE_CANARY not in outcome.message
    elif outcome.reason == conditions.INVALID_SOURCE_DATA:
        assert "spec.keys" in outcome.message or "is not a valid Secret key" in outcome.message, outcome.message
        assert VALUE_CANARY not in outcome.message
    elif outcome.reason == conditions.TOO_MANY_SECRETS:  # dataFrom found more than maxDiscovered: named, no Secret
        assert several, outcome.message
        assert spec.get("dataFrom"), outcome.message
        assert "spec.maxDiscovered" in outcome.message, outcome.message
        assert VALUE_CANARY not in outcome.message
        assert outcome.secret is None
    elif outcome.reason == conditions.TEMPLATE_ERROR:  # a template that fails: named, no value, no Secret
        assert outcome.message.startswith("spec.template"), outcome.message
        assert VALUE_CANARY not in outcome.message
        assert outcome.secret is None
    elif outcome.reason == conditions.TARGET_NOT_FOUND:  # creationPolicy Merge: only into an existing Secret
        assert (spec.get("target") or {}).get("creationPolicy") == "Merge", outcome.message
        assert outcome.secret is None
    else:  # stricter than the CRD (e.g. control characters in spec.path): must name the field, not quote it
        assert outcome.reason == conditions.INVALID_SPEC, (outcome.reason, outcome.message)
        assert any(field_named(outcome.message, name) for name in spec), outcome.message
        assert not leaks(outcome, CANARY)


# -- the inputs the operator gets wrong today (each has an xfail test below) ---------------------------------------
# Judged on the spec as the API server would keep it (null fields dropped), whatever mutation made it.


def _gap_version_beyond_int64(spec: Any) -> bool:
    version = spec.get("version") if isinstance(spec, dict) else None
    return isinstance(version, int) and not isinstance(version, bool) and version > INT64_MAX


def _gap_lax_version(spec: Any) -> bool:
    version = spec.get("version") if isinstance(spec, dict) else None
    return isinstance(version, bool) or (isinstance(version, str) and version.strip().isdigit())


def _gap_secret_metadata(spec: Any) -> bool:
    """A string label or annotation the CRD takes but the API server refuses on the Secret."""
    target = spec.get("target") if isinstance(spec, dict) else None
    template = spec.get("template") if isinstance(spec, dict) else None
    if not isinstance(target, dict) and not isinstance(template, dict):
        return False
    meta: dict[str, Any] = {"name": "x"}
    for part in (target, template):  # spec.template's labels and annotations go onto the Secret as target's
        for k in ("labels", "annotations"):
            if isinstance(part, dict) and isinstance(part.get(k), dict):
                meta[k] = {**meta.get(k, {}), **part[k]}
    if not all(isinstance(v, str) for m in meta.values() if isinstance(m, dict) for v in m.values()):
        return False  # a value of another type: the model refuses it (InvalidSpec)
    return bool(secret_metadata_problems(meta))


def _gap_duplicate_keys(spec: Any) -> bool:
    mappings = _mappings(spec) or []
    targets = [m.get("to") or m["from"] for m in mappings]
    strings = [t for t in targets if isinstance(t, str)]
    return len(strings) == len(targets) and len(set(strings)) != len(strings) and len(mappings) <= 256


def _gap_url_scheme(spec: Any) -> bool:
    """``url`` / ``tokenUrl`` that is not http(s):// (the CRD's CEL rule; the model has none)."""
    creds = _at(spec, "auth", "clientCredentials")
    urls = [_at(spec, "url"), creds.get("tokenUrl") if isinstance(creds, dict) else None]
    return any(
        isinstance(url, str) and 1 <= len(url) <= 2048 and not url.startswith(("https://", "http://")) for url in urls
    )


def _gap_poll_below_1s(spec: Any) -> bool:
    value = _at(spec, "pollInterval")
    return (
        isinstance(value, str)
        and len(value) <= 32
        and re.fullmatch(DURATION_PATTERN.strip("^$"), value) is not None
        and parse_duration(value).total_seconds() < 1
    )


def _gap_auth_not_one(spec: Any) -> bool:
    """Both methods, or neither (null ones dropped): the CRD's CEL rule; the model has none."""
    auth = _at(spec, "auth")
    if not isinstance(auth, dict):
        return False
    methods = [name for name in ("tokenSecretRef", "clientCredentials") if auth.get(name) is not None]
    return len(methods) != 1


def _gap_access_rule_not_one(spec: Any) -> bool:
    rules = _at(spec, "access")
    return isinstance(rules, list) and any(
        isinstance(rule, dict) and (rule.get("namespaces") is None) == (rule.get("namespaceSelector") is None)
        for rule in rules
    )


def _cluster_secret_without_namespace(spec: Any) -> bool:
    """A connection spec whose credentials Secret has no namespace: invalid on a ClusterVaultConnection (CEL, and
    ``api.ClusterConnectionSpec``), fine on a VaultConnection."""
    auth = _at(spec, "auth")
    if not isinstance(auth, dict):
        return False
    refs = [auth.get("tokenSecretRef"), _at(spec, "auth", "clientCredentials", "secretRef")]
    return any(isinstance(ref, dict) and ref.get("namespace") is None for ref in refs)


def _gap_ca_bundle_not_ascii(spec: Any) -> bool:
    bundle = _at(spec, "caBundle")
    return isinstance(bundle, str) and not bundle.isascii()


def _source_connection_elsewhere(spec: Any) -> bool:
    """A source whose ``connectionRef`` names another connection than the spec's: the harness runs one connection, so
    it does not exist (InvalidSpec naming spec.sources[].connectionRef; a gap until 2026-12-02, which named the
    spec's)."""
    sources = spec.get("sources") if isinstance(spec, dict) else None
    if not isinstance(sources, list):
        return False
    refs = [source.get("connectionRef") for source in sources if isinstance(source, dict)]
    return any(
        isinstance(ref, dict) and _connection_ref({"connectionRef": ref}) != _connection_ref(spec) for ref in refs
    )


def _at(spec: Any, *where: str) -> Any:
    for name in where:
        spec = spec.get(name) if isinstance(spec, dict) else None
    return spec


VAULTSECRET_GAPS = (
    _gap_version_beyond_int64,
    _gap_lax_version,
    _gap_secret_metadata,
    _gap_duplicate_keys,
)
CONNECTION_GAPS = (
    _gap_url_scheme,
    _gap_poll_below_1s,
    _gap_auth_not_one,
    _gap_access_rule_not_one,
    _gap_ca_bundle_not_ascii,
)


def _known_gap(kind: str, name: str, where: tuple[Any, ...], spec: Any) -> bool:
    """Set aside from the main properties: a spec one of the xfail tests below covers."""
    if kind == "VaultSecret":
        return any(gap(spec) for gap in VAULTSECRET_GAPS)
    return any(gap(spec) for gap in CONNECTION_GAPS)


# -- VaultSecret specs --------------------------------------------------------------------------------------------


@_settings(VALID_VAULTSECRETS)
@given(spec=valid_specs("VaultSecret").filter(lambda spec: "path" in spec))
def test_valid_vaultsecret_specs_sync(runner: asyncio.Runner, spec: dict[str, Any]) -> None:
    """Single-path specs (the composites the generator makes are exercised by the mutations below, and by
    tests/integration/test_operator_sources.py)."""
    assert crd_errors("VaultSecret", spec) == [], "the generator must make specs the API server stores"
    outcome = run_vaultsecret(spec, runner)
    event(str(outcome.reason))
    assert_settled(outcome)
    assert_synced_or_named(outcome, spec)


@_settings(MUTATED_VAULTSECRETS)
@given(case=mutated_specs("VaultSecret", exclude=_known_gap))
def test_mutated_vaultsecret_specs(runner: asyncio.Runner, case: tuple[Any, Mutation]) -> None:
    spec, mutation = case
    outcome = run_vaultsecret(spec, runner)
    refused = crd_errors("VaultSecret", spec)
    several = " (several sources)" if _is_composite(spec) else ""
    event(f"API server {'refuses' if refused else 'stores'}{several} -> {outcome.reason}")
    assert_settled(outcome)
    if refused:
        assert_invalid_spec(outcome, mutation)
    else:
        assert_synced_or_named(outcome, spec)


def test_an_invalid_vaultsecret_is_invalid_spec_with_the_field(runner: asyncio.Runner) -> None:
    """The property's assertions on one case (and proof that they can fail: see the inverted checks)."""
    outcome = run_vaultsecret({"path": "apps/../db", "target": {"type": f"{CANARY}/x"}}, runner)
    assert_invalid_spec(outcome, Mutation("rule-path", ("path",)))
    assert "target.type" in outcome.message
    with pytest.raises(AssertionError):
        assert_invalid_spec(outcome, Mutation("wrong-type", ("keys",)))  # not the field it names
    synced = run_vaultsecret({"path": "apps/db"}, runner)
    assert_synced_or_named(synced, {"path": "apps/db"})
    with pytest.raises(AssertionError):
        assert_synced_or_named(synced, {"path": "apps/db", "version": 2})  # another version than the one written


def test_a_composite_is_synced_with_the_union(runner: asyncio.Runner) -> None:
    """The property's assertions on a composite (and proof that they can fail): a named source and a prefix, whose
    secret the mock lists as ``<prefix>db``."""
    spec = {
        "sources": [{"name": "db", "path": "apps/db", "keys": [{"from": "password", "to": "DB_PASSWORD"}]}],
        "dataFrom": [{"prefix": "apps/found/"}],
    }
    outcome = run_vaultsecret(spec, runner)
    assert outcome.reason == conditions.SYNCED, outcome.message
    assert outcome.decoded_data() == {
        "DB_PASSWORD": f"{VALUE_CANARY}-pw",
        "db_password": f"{VALUE_CANARY}-pw",
        "db_user": f"{VALUE_CANARY}-user",
    }
    assert outcome.status["sources"] == [
        {"name": "db", "path": "apps/db", "version": 1},
        {"path": "apps/found/db", "version": 1},
    ]
    assert_synced_or_named(outcome, spec)
    with pytest.raises(AssertionError):  # the mock's secrets carry no tags: none may be found
        assert_synced_or_named(outcome, {**spec, "dataFrom": [{"prefix": "apps/found/", "tags": ["t"]}]})
    with pytest.raises(AssertionError):  # another key name
        assert_synced_or_named(outcome, {**spec, "sources": [{"name": "db", "path": "apps/db"}]})


def test_more_secrets_than_max_discovered_is_named(runner: asyncio.Runner) -> None:
    spec = {"dataFrom": [{"prefix": "apps/a/"}, {"prefix": "apps/b/"}], "maxDiscovered": 1}
    outcome = run_vaultsecret(spec, runner)
    assert_settled(outcome)
    assert outcome.reason == conditions.TOO_MANY_SECRETS, outcome.message
    assert_synced_or_named(outcome, spec)
    assert "2 secrets" in outcome.message, outcome.message


# -- connection specs ---------------------------------------------------------------------------------------------


def _assert_valid_connection_outcome(outcome: Outcome, spec: dict[str, Any]) -> None:
    """A connection the API server stores: Synced, PolicyDenied by its access rules, or InvalidSpec naming a field
    (e.g. a caBundle that is no PEM, a URL no HTTP client can use)."""
    if outcome.reason == conditions.SYNCED:
        assert outcome.decoded_data() == {"password": f"{VALUE_CANARY}-pw"}
    elif outcome.reason == conditions.POLICY_DENIED:
        assert "access" in outcome.message
        assert outcome.requests == [] or all(
            "/v1/secrets?" in str(r.url) or r.method == "POST" for r in outcome.requests
        )
    else:
        assert outcome.reason == conditions.INVALID_SPEC, (outcome.reason, outcome.message)
        assert any(field_named(outcome.message, name) for name in spec), outcome.message
        assert not leaks(outcome, CANARY)
    insecure = [c for c in outcome.status.get("conditions", []) if c.get("type") == conditions.INSECURE]
    creds = _at(spec, "auth", "clientCredentials") or {}
    plain = spec.get("insecureHTTP") is True and any(
        is_plain_http(url) for url in (spec.get("url"), creds.get("tokenUrl")) if isinstance(url, str)
    )
    if outcome.reason == conditions.SYNCED:
        assert bool(insecure) == plain, outcome.status


@pytest.mark.parametrize("kind", CONNECTION_KINDS)
@_settings(VALID_CONNECTIONS)
@given(data=st.data())
def test_valid_connection_specs(runner: asyncio.Runner, kind: str, data: st.DataObject) -> None:
    spec = data.draw(valid_specs(kind), label="spec")
    assert crd_errors(kind, spec) == [], "the generator must make specs the API server stores"
    outcome = run_connection(kind, spec, runner)
    event(str(outcome.reason))
    assert_settled(outcome)
    _assert_valid_connection_outcome(outcome, spec)


@pytest.mark.parametrize("kind", CONNECTION_KINDS)
@_settings(MUTATED_CONNECTIONS)
@given(data=st.data())
def test_mutated_connection_specs(runner: asyncio.Runner, kind: str, data: st.DataObject) -> None:
    spec, mutation = data.draw(mutated_specs(kind, exclude=_known_gap), label="case")
    outcome = run_connection(kind, spec, runner)
    refused = crd_errors(kind, spec)
    event(f"API server {'refuses' if refused else 'stores'} -> {outcome.reason}")
    assert_settled(outcome)
    if refused:
        assert_invalid_spec(outcome, mutation)
    else:
        _assert_valid_connection_outcome(outcome, spec)


# -- garbage around the spec --------------------------------------------------------------------------------------

_anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@_settings(100)
@given(
    spec=_anything,
    metadata=st.fixed_dictionaries(
        {"name": st.just("vs"), "namespace": st.just(NAMESPACE)}, optional={"uid": _anything, "generation": _anything}
    ),
)
def test_a_spec_that_is_no_object_or_has_no_path_is_invalid_spec(
    runner: asyncio.Runner, spec: Any, metadata: dict[str, Any]
) -> None:
    """``spec`` a list, a number, null, an object without ``path``; garbage ``uid``/``generation``: InvalidSpec
    naming the spec itself, its missing ``path`` (the rule: path, or sources and/or dataFrom), or a field it must not
    have (which pydantic reports first: the rule is checked once the fields are valid)."""
    if isinstance(spec, dict) and "path" in spec:
        spec = {k: v for k, v in spec.items() if k != "path"}
    body = {"apiVersion": "scaivault.scailabs.ai/v1alpha1", "kind": "VaultSecret", "metadata": metadata, "spec": spec}
    outcome = run_operator(vaultsecret=body, connection_spec=_open_connection("ClusterVaultConnection"), runner=runner)
    assert_settled(outcome)
    assert outcome.reason == conditions.INVALID_SPEC, outcome.status
    fields = {field.alias or name for name, field in VaultSecretSpec.model_fields.items()}
    unknown = [key for key in spec if key not in fields] if isinstance(spec, dict) else []
    assert (
        "path" in outcome.message
        or "(root)" in outcome.message
        or any(f"{key}: Extra inputs are not permitted" in outcome.message for key in unknown)
    ), outcome.message
    assert outcome.requests == []


def _nested(depth: int) -> Any:
    value: Any = CANARY
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"path": "apps/db", "extra": _nested(5_000)}, "extra"),
        ({"path": "apps/db", **{f"unknown{i}": CANARY for i in range(20_000)}}, "unknown0"),
        ({"path": "apps/db", "keys": [{"from": f"k{i}", "to": f"t{i}"} for i in range(20_000)]}, "keys"),
        ({"path": "/".join(["a"] * 100_000)}, "path"),
        ({"path": "apps/db", "target": {"type": "x" * 1_000_000 + CANARY}}, "target.type"),
        ({"path": "apps/db", "keys": [{"from": "k", "to": "x" * 500_000}]}, "keys.0.to"),
    ],
    ids=["nested-5000", "20000-unknown-fields", "20000-keys", "100000-segments", "1MB-type", "huge-to"],
)
def test_huge_specs_are_invalid_spec_at_once(runner: asyncio.Runner, spec: dict[str, Any], field: str) -> None:
    """Size is no way to stall the operator: each ends InvalidSpec naming its field, in well under a second each."""
    start = time.monotonic()
    outcome = run_vaultsecret(spec, runner)
    assert time.monotonic() - start < 5.0
    assert_settled(outcome)
    assert_invalid_spec(outcome, Mutation("huge", tuple(field.split("."))))
    assert len(outcome.message) <= conditions.MAX_MESSAGE


# -- known gaps: each a strict xfail with the bug it shows ---------------------------------------------------------
# Each draws a spec from the generator and breaks it the one way the gap is about; ``_xfail_settings`` does not
# shrink (the first failing example ends the test, which is what an xfail expects).


def _xfail_settings(examples: int) -> settings:
    return settings(_settings(examples), phases=(Phase.explicit, Phase.generate))


def _broken(
    kind: str, change: Callable[[dict[str, Any], Any], dict[str, Any]], values: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(change, valid_specs(kind), values)


@_xfail_settings(10)
@given(spec=_broken("VaultSecret", lambda spec, v: {**spec, "version": v, "keys": None}, st.integers(2**63, 2**90)))
def test_version_beyond_int64_is_invalid_spec(runner: asyncio.Runner, spec: dict[str, Any]) -> None:
    assert _gap_version_beyond_int64(spec)
    outcome = run_vaultsecret(spec, runner)
    assert_invalid_spec(outcome, Mutation("beyond-int64", ("version",)))


@_xfail_settings(10)
@given(spec=_broken("VaultSecret", lambda spec, v: {**spec, "version": v}, st.sampled_from(["3", " 2 ", True])))
def test_version_is_parsed_strictly(runner: asyncio.Runner, spec: dict[str, Any]) -> None:
    assert _gap_lax_version(spec)
    assert_invalid_spec(run_vaultsecret(spec, runner), Mutation("numeric-string", ("version",)))


_bad_labels = st.sampled_from(
    [
        {"team": "a b"},
        {"team": "x" * 64},
        {"team": "é"},
        {"team": "-a"},
        {"bad key": "a"},
        {"a/b/c": "x"},
        {"team": "a\n"},
    ]
)
_bad_annotations = st.sampled_from([{"bad key": "x"}, {"é": "x"}, {"big": "x" * (256 * 1024)}])


@_xfail_settings(20)
@given(
    spec=_broken(
        "VaultSecret",
        lambda spec, extra: {**spec, "target": {**spec.get("target", {}), **extra}},
        st.one_of(_bad_labels.map(lambda v: {"labels": v}), _bad_annotations.map(lambda v: {"annotations": v})),
    )
)
def test_secret_labels_and_annotations_are_checked(runner: asyncio.Runner, spec: dict[str, Any]) -> None:
    assert _gap_secret_metadata(spec)
    outcome = run_vaultsecret(spec, runner)
    assert outcome.reason == conditions.INVALID_SPEC, (outcome.reason, outcome.message)
    assert field_named(outcome.message, "target.labels") or field_named(outcome.message, "target.annotations")


@_xfail_settings(10)
@given(
    spec=_broken(
        "VaultSecret",
        lambda spec, k: {**spec, "keys": [{"from": "a", "to": k}, {"from": "b", "to": k}]},
        st.sampled_from(["x", "password"]),
    )
)
def test_duplicate_key_targets_are_invalid_spec(runner: asyncio.Runner, spec: dict[str, Any]) -> None:
    assert _gap_duplicate_keys(spec)
    assert_invalid_spec(run_vaultsecret(spec, runner), Mutation("rule-keys", ("keys",)))


@_xfail_settings(4)
@given(name=st.sampled_from(["elsewhere", "team-b.conn"]), pinned=st.booleans())
def test_a_missing_source_connection_is_named(runner: asyncio.Runner, name: str, pinned: bool) -> None:
    source = {"name": "db", "path": "apps/db", "connectionRef": {"kind": "VaultConnection", "name": name}}
    spec = {"sources": [{**source, **({"version": 2} if pinned else {})}, {"name": "main", "path": "apps/main"}]}
    assert _source_connection_elsewhere(spec)
    outcome = run_vaultsecret(spec, runner)
    assert outcome.reason == conditions.INVALID_SPEC, (outcome.reason, outcome.message)
    assert field_named(outcome.message, "sources"), outcome.message
    assert outcome.requests == []
    assert outcome.secret is None


def _connection_case(
    change: Callable[[str, dict[str, Any], Any], dict[str, Any]], values: st.SearchStrategy[Any]
) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """(kind, a generated connection spec of that kind whose access rules let every namespace read everything,
    broken by ``change``), so that what the VaultSecret reports is the gap's doing, not a PolicyDenied."""

    def case(kind: str, spec: dict[str, Any], value: Any) -> tuple[str, dict[str, Any]]:
        return kind, change(kind, {**spec, "access": OPEN_ACCESS}, value)

    return st.sampled_from(CONNECTION_KINDS).flatmap(
        lambda kind: st.builds(case, st.just(kind), valid_specs(kind), values)
    )


@_xfail_settings(10)
@given(
    case=_connection_case(
        lambda kind, spec, bundle: {**spec, "caBundle": bundle},
        st.sampled_from(["é", "-----BEGIN CERTIFICATE-----\nü\n", "\u202e", "🔑"]),
    )
)
def test_ca_bundle_not_ascii_is_invalid_spec(runner: asyncio.Runner, case: tuple[str, dict[str, Any]]) -> None:
    kind, spec = case
    outcome = run_connection(kind, spec, runner)  # raises TypeError today
    assert outcome.reason == conditions.INVALID_SPEC
    assert field_named(outcome.message, "caBundle")


@_xfail_settings(20)
@given(
    case=_connection_case(
        lambda kind, spec, pair: _with_url(spec, *pair),
        st.tuples(
            st.sampled_from(["url", "tokenUrl"]),
            st.sampled_from(
                ["ftp://vault.example", "vault.example", f"mailto:{CANARY}", "HTTPS://vault.example", "file:///etc/x"]
            ),
        ),
    )
)
def test_url_scheme_is_checked(runner: asyncio.Runner, case: tuple[str, dict[str, Any]]) -> None:
    kind, spec = case
    assert _gap_url_scheme(spec)
    where = ("url",) if not str(spec["url"]).startswith("http") else ("auth", "clientCredentials", "tokenUrl")
    assert_invalid_spec(run_connection(kind, spec, runner), Mutation("rule-url", where))


@_xfail_settings(10)
@given(
    case=_connection_case(
        lambda kind, spec, tail: {**spec, "url": f"https://vault.example/{tail}"},
        st.sampled_from([f"?token={CANARY}", f"?api_key={CANARY}&x=1", f"#{CANARY}", f"vault?{CANARY}"]),
    )
)
def test_url_query_is_refused_without_quoting_it(runner: asyncio.Runner, case: tuple[str, dict[str, Any]]) -> None:
    kind, spec = case
    assert crd_errors(kind, spec) == [], "the API server stores it"
    outcome = run_connection(kind, spec, runner)
    assert outcome.reason == conditions.INVALID_SPEC
    assert field_named(outcome.message, "url")
    assert not leaks(outcome, CANARY)


def _with_url(spec: dict[str, Any], field: str, url: str) -> dict[str, Any]:
    if field == "url":
        return {**spec, "url": url}
    creds = spec["auth"].get("clientCredentials") or {
        "secretRef": {"name": "scaivault-client", "namespace": "scaivault-system"}
    }
    return {**spec, "auth": {"clientCredentials": {**creds, "tokenUrl": url}}}


@_xfail_settings(10)
@given(
    case=_connection_case(
        lambda kind, spec, p: {**spec, "pollInterval": p}, st.sampled_from(["0s", "999ms", "0.5s", "0m"])
    )
)
def test_poll_interval_below_1s_is_invalid_spec(runner: asyncio.Runner, case: tuple[str, dict[str, Any]]) -> None:
    kind, spec = case
    assert _gap_poll_below_1s(spec)
    assert_invalid_spec(run_connection(kind, spec, runner), Mutation("rule-pollInterval", ("pollInterval",)))


@_xfail_settings(10)
@given(
    case=_connection_case(
        lambda kind, spec, auth: {**spec, "auth": auth, "access": [{"namespaces": ["team-b"], "pathPrefixes": [""]}]},
        st.sampled_from([{}, "both"]),
    )
)
def test_auth_needs_exactly_one_method(runner: asyncio.Runner, case: tuple[str, dict[str, Any]]) -> None:
    kind, spec = case
    if spec["auth"] == "both":
        namespace = {"namespace": "scaivault-system"} if kind == "ClusterVaultConnection" else {}
        spec["auth"] = {
            "tokenSecretRef": {"name": "scaivault-token", **namespace},
            "clientCredentials": {
                "tokenUrl": "https://auth.example/token",
                "secretRef": {"name": "scaivault-client", **namespace},
            },
        }
    assert _gap_auth_not_one(spec)
    assert_invalid_spec(run_connection(kind, spec, runner), Mutation("rule-auth", ("auth",)))


@_xfail_settings(10)
@given(
    case=_connection_case(
        lambda kind, spec, rule: {**spec, "access": [rule]},
        st.sampled_from(
            [{"pathPrefixes": [""]}, {"pathPrefixes": [""], "namespaces": ["team-a"], "namespaceSelector": {}}]
        ),
    )
)
def test_access_rule_needs_exactly_one_selection(runner: asyncio.Runner, case: tuple[str, dict[str, Any]]) -> None:
    kind, spec = case
    assert _gap_access_rule_not_one(spec)
    assert_invalid_spec(run_connection(kind, spec, runner), Mutation("rule-access", ("access", 0)))


@_xfail_settings(10)
@given(spec=_broken("ClusterVaultConnection", lambda spec, _: _without_secret_namespace(spec), st.just(OPEN_ACCESS)))
def test_cluster_connection_secret_needs_a_namespace(runner: asyncio.Runner, spec: dict[str, Any]) -> None:
    """The CRD's CEL rule 'auth.tokenSecretRef.namespace / auth.clientCredentials.secretRef.namespace is required on a
    ClusterVaultConnection', checked again when the spec is read (``api.ClusterConnectionSpec``): InvalidSpec naming
    the field, nothing sent. The same spec as a VaultConnection is not refused for it: its Secret is in its own
    namespace."""
    assert _cluster_secret_without_namespace(spec)
    method = "tokenSecretRef" if "tokenSecretRef" in spec["auth"] else "clientCredentials.secretRef"
    outcome = run_connection("ClusterVaultConnection", spec, runner)
    assert_invalid_spec(outcome, Mutation("rule-namespace", ("auth", *method.split("."), "namespace")))
    assert "the auth Secret reference needs a namespace" not in outcome.message
    as_namespaced = run_connection("VaultConnection", spec, runner)
    assert_settled(as_namespaced)
    _assert_valid_connection_outcome(as_namespaced, spec)  # Synced, or a problem of another field
    assert not field_named(as_namespaced.message, "Ref.namespace"), as_namespaced.message


def _without_secret_namespace(spec: dict[str, Any]) -> dict[str, Any]:
    spec = {**spec, "access": OPEN_ACCESS}
    auth = spec["auth"]
    if "tokenSecretRef" in auth:
        ref = {k: v for k, v in auth["tokenSecretRef"].items() if k != "namespace"}
        return {**spec, "auth": {"tokenSecretRef": ref}}
    creds = auth["clientCredentials"]
    ref = {k: v for k, v in creds["secretRef"].items() if k != "namespace"}
    return {**spec, "auth": {"clientCredentials": {**creds, "secretRef": ref}}}


def test_the_data_canary_is_in_the_secret_only(runner: asyncio.Runner) -> None:
    """The canary check can fail: the data canary is really in the Secret (base64), and only there."""
    outcome = run_vaultsecret({"path": "apps/db"}, runner)
    assert outcome.reason == conditions.SYNCED
    assert VALUE_CANARY in outcome.decoded_data()["password"]
    assert base64.b64encode(outcome.decoded_data()["password"].encode()).decode() in json.dumps(outcome.secret)
    assert not leaks(outcome, VALUE_CANARY)
