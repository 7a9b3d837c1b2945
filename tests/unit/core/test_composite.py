"""``_logic/composite``: what a VaultSecret with ``spec.sources`` / ``spec.dataFrom`` reads and what its Secret holds.

Pure: discovery (prefix, tags, the first prefix wins, ``maxDiscovered``), the reads (``needed``, ``wanted``), the key
names of discovered secrets and their rewrites, the union (collisions, a Replace template, 1 MiB), the revision,
``status.sources`` and the annotations. Messages name sources, paths and keys — never a value: every data value here
carries a canary that no error may quote.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from scaivault_operator._cogs.api import VaultSecretSpec
from scaivault_operator._logic import composite, conditions
from scaivault_operator._logic.composite import (
    Found,
    Listed,
    Needed,
    TooManySecretsError,
    compose,
    discover,
    discovered_key,
    needed,
    ready_message,
    revision,
    sources_annotation,
    status_sources,
    versions_from_status,
    wanted,
)
from scaivault_operator._logic.manifests import MAX_SECRET_BYTES, SourceDataError

CONN = ("ClusterVaultConnection", "", "default")
LOCAL = ("VaultConnection", "team-a", "local")
NS = "team-a"
CANARY = "CANARY-COMPOSITE-5b1e"


def spec(**fields: Any) -> VaultSecretSpec:
    return VaultSecretSpec.model_validate(fields)


def rewrite(source: str, target: str) -> dict[str, Any]:
    return {"regexp": {"source": source, "target": target}}


def listed(*items: tuple[str, int] | tuple[str, int, list[str]]) -> dict[str, Listed]:
    return {item[0]: Listed(item[1], frozenset(item[2] if len(item) > 2 else ())) for item in items}  # type: ignore[misc]


def never(conn: Any, path: str) -> int | None:
    return None


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def assert_no_canary(exc: BaseException) -> None:
    assert CANARY not in str(exc)
    assert CANARY not in getattr(exc, "message", "")
    assert CANARY not in conditions.classify(exc).message


# -- connections and what is followed ---------------------------------------------------------------------------


def test_connections_followed_paths_and_prefixes() -> None:
    s = spec(
        sources=[
            {"name": "db", "path": "apps/db"},
            {"name": "pinned", "path": "apps/pinned", "version": 3},
            {"name": "other", "path": "apps/other", "connectionRef": {"kind": "VaultConnection", "name": "local"}},
        ],
        dataFrom=[{"prefix": "teams/pay/"}, {"prefix": "teams/ops/"}],
    )
    assert composite.connection_keys(s, NS) == {CONN, LOCAL}
    assert composite.followed(s, NS) == {(CONN, "apps/db"), (LOCAL, "apps/other")}  # pinned: not listed
    assert composite.prefixes(s, NS) == {(CONN, "teams/pay/"), (CONN, "teams/ops/")}


def test_sources_only_read_through_their_own_connections() -> None:
    s = spec(sources=[{"name": "a", "path": "x/a", "connectionRef": {"kind": "VaultConnection", "name": "local"}}])
    assert composite.connection_keys(s, NS) == {LOCAL}
    assert composite.prefixes(s, NS) == set()


# -- discover ----------------------------------------------------------------------------------------------------


def test_discover_takes_every_path_under_the_prefix() -> None:
    s = spec(dataFrom=[{"prefix": "teams/pay/"}])
    listing = listed(("teams/pay/stripe", 2), ("teams/pay/paypal/api", 1), ("teams/payroll/x", 5), ("other/y", 1))
    assert discover(s, [listing]) == {"teams/pay/stripe": Found(0, 2), "teams/pay/paypal/api": Found(0, 1)}


def test_discover_tags_are_a_subset_of_the_secrets_tags() -> None:
    s = spec(dataFrom=[{"prefix": "p/", "tags": ["prod", "eu"]}])
    listing = listed(
        ("p/a", 1, ["prod", "eu", "extra"]), ("p/b", 1, ["prod"]), ("p/c", 1, []), ("p/d", 4, ["eu", "prod"])
    )
    assert set(discover(s, [listing])) == {"p/a", "p/d"}


def test_discover_a_path_under_two_prefixes_belongs_to_the_first() -> None:
    s = spec(dataFrom=[{"prefix": "teams/pay/", "tags": ["prod"]}, {"prefix": "teams/"}])
    first = listed(("teams/pay/a", 1, ["prod"]), ("teams/pay/b", 1, ["dev"]))
    second = listed(("teams/pay/a", 1, ["prod"]), ("teams/pay/b", 1, ["dev"]), ("teams/ops/c", 7))
    assert discover(s, [first, second]) == {
        "teams/pay/a": Found(0, 1),  # the first prefix's
        "teams/pay/b": Found(1, 1),  # not tagged for the first: the second takes it
        "teams/ops/c": Found(1, 7),
    }


def test_discover_needs_one_listing_per_prefix() -> None:
    with pytest.raises(ValueError, match="zip"):
        discover(spec(dataFrom=[{"prefix": "a/"}, {"prefix": "b/"}]), [{}])


def test_discover_up_to_max_discovered_is_fine_and_one_more_is_too_many() -> None:
    items = [(f"teams/pay/s{i:02}", 1) for i in range(5)]
    assert len(discover(spec(dataFrom=[{"prefix": "teams/pay/"}], maxDiscovered=5), [listed(*items)])) == 5
    s = spec(dataFrom=[{"prefix": "teams/pay/", "tags": [CANARY]}, {"prefix": "teams/ops/"}], maxDiscovered=4)
    with pytest.raises(TooManySecretsError) as raised:
        discover(s, [listed(*((*item, [CANARY]) for item in items)), {}])
    message = raised.value.message
    assert "5 secrets" in message
    assert "teams/pay/, teams/ops/" in message
    assert "maxDiscovered allows 4" in message
    assert "s00" not in message  # names prefixes, never the secrets found (nor anything in them)
    failure = conditions.classify(raised.value)
    assert (failure.reason, failure.transient) == (conditions.TOO_MANY_SECRETS, False)
    assert isinstance(raised.value, SourceDataError)


def test_discover_default_limit_is_100_when_max_discovered_is_absent() -> None:
    s = spec(dataFrom=[{"prefix": "p/"}])
    assert s.maxDiscovered is None
    assert len(discover(s, [listed(*((f"p/{i:03}", 1) for i in range(100)))])) == 100
    with pytest.raises(TooManySecretsError, match="101 secrets"):
        discover(s, [listed(*((f"p/{i:03}", 1) for i in range(101)))])


def test_discover_without_data_from_finds_nothing() -> None:
    assert discover(spec(sources=[{"name": "a", "path": "x/a"}]), []) == {}


# -- needed and wanted -------------------------------------------------------------------------------------------


def test_needed_pinned_latest_known_and_unknown() -> None:
    s = spec(
        sources=[
            {"name": "pinned", "path": "apps/pinned", "version": 3},
            {"name": "known", "path": "apps/known"},
            {"name": "unknown", "path": "apps/unknown"},
            {"name": "local", "path": "apps/local", "connectionRef": {"kind": "VaultConnection", "name": "local"}},
        ],
        dataFrom=[{"prefix": "teams/"}],
    )
    latest = {(CONN, "apps/known"): 7, (LOCAL, "apps/local"): 2, (CONN, "apps/pinned"): 9}
    found = {"teams/z": Found(0, 4), "teams/a": Found(0, 1)}
    reads = needed(s, NS, lambda conn, path: latest.get((conn, path)), found)
    assert reads == [
        Needed(("pinned", "apps/pinned"), CONN, "apps/pinned", 3),  # pinned: not the latest
        Needed(("known", "apps/known"), CONN, "apps/known", 7),
        Needed(("unknown", "apps/unknown"), CONN, "apps/unknown", None),  # a GET of the latest
        Needed(("local", "apps/local"), LOCAL, "apps/local", 2),
        Needed((None, "teams/a"), CONN, "teams/a", 1),  # found: in path order, at the listed version
        Needed((None, "teams/z"), CONN, "teams/z", 4),
    ]


def test_wanted_is_the_versions_the_lists_show() -> None:
    s = spec(sources=[{"name": "a", "path": "apps/a"}, {"name": "b", "path": "apps/b", "version": 2}],
             dataFrom=[{"prefix": "p/"}])  # fmt: skip
    latest = {(CONN, "apps/a"): 5}
    got = wanted(s, NS, lambda conn, path: latest.get((conn, path)), [listed(("p/x", 3))])
    assert got == {("a", "apps/a"): 5, ("b", "apps/b"): 2, (None, "p/x"): 3}


@pytest.mark.parametrize(
    ("latest", "listings", "why"),
    [
        ({(CONN, "apps/a"): 5}, [None], "a prefix not listed yet"),
        ({}, [{}], "an unpinned source no list has shown"),
        ({(CONN, "apps/a"): 5}, [listed(("p/x", 1), ("p/y", 1), ("p/z", 1))], "more than maxDiscovered"),
    ],
)
def test_wanted_is_none_when_a_version_is_unknown(latest: dict[Any, int], listings: list[Any], why: str) -> None:
    s = spec(sources=[{"name": "a", "path": "apps/a"}], dataFrom=[{"prefix": "p/"}], maxDiscovered=2)
    assert wanted(s, NS, lambda conn, path: latest.get((conn, path)), listings) is None, why


def test_wanted_of_pinned_sources_needs_no_list() -> None:
    s = spec(sources=[{"name": "a", "path": "apps/a", "version": 1}])
    assert wanted(s, NS, never, []) == {("a", "apps/a"): 1}


# -- discovered_key ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "path", "key", "expected"),
    [
        ("teams/payments/", "teams/payments/stripe/api", "token", "stripe_api_token"),
        ("teams/payments/", "teams/payments/stripe", "token", "stripe_token"),
        ("teams/payments/", "teams/payments/", "token", "token"),  # the path is the prefix: the key only
        ("teams/payments", "teams/payments", "token", "token"),
        ("teams/payments", "teams/payments/stripe", "token", "stripe_token"),  # no empty segment
        ("teams/pay", "teams/payments/stripe", "k", "ments_stripe_k"),  # a plain string prefix
        ("a/", "a/b/c/d/e", "k", "b_c_d_e_k"),
    ],
)
def test_discovered_key_names(prefix: str, path: str, key: str, expected: str) -> None:
    assert discovered_key(prefix, path, key) == expected


def rules(*pairs: tuple[str, str]) -> list[Any]:
    return list(spec(dataFrom=[{"prefix": "x/", "rewrite": [rewrite(s, t) for s, t in pairs]}]).dataFrom[0].rewrite)  # type: ignore[index,arg-type]


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((("^stripe_", ""),), "api_token"),
        ((("_", "-"),), "stripe-api-token"),  # every match
        ((("^stripe_", ""), ("^api_", "API_")), "API_token"),  # in order: the second sees the first's result
        ((("^api_", "API_"), ("^stripe_", "")), "api_token"),  # the other order: the first rule matches nothing
        ((("^(\\w+?)_(\\w+?)_(\\w+)$", "$3.$1"),), "token.stripe"),
        ((("^(\\w+?)_", "${1}-"),), "stripe-api_token"),
        ((("^(?P<svc>[a-z]+)_(?P<rest>.*)$", "${rest}.${svc}"),), "api_token.stripe"),
        ((("^(?P<svc>[a-z]+)_", "${nope}"),), "api_token"),  # a group that does not exist: ''
        ((("^(\\w+?)_", "$7"),), "api_token"),
        ((("^(x)?stripe_", "[$1]"),), "[]api_token"),  # a group that did not match: ''
        ((("^", "pay_"),), "pay_stripe_api_token"),
        ((("token$", "TOKEN"),), "stripe_api_TOKEN"),
    ],
)
def test_discovered_key_rewrites(pairs: tuple[tuple[str, str], ...], expected: str) -> None:
    assert discovered_key("teams/payments/", "teams/payments/stripe/api", "token", rules(*pairs)) == expected


# -- compose -----------------------------------------------------------------------------------------------------


def read(name: str | None, path: str, version: int = 1, conn: tuple[str, str, str] = CONN) -> Needed:
    return Needed((name, path), conn, path, version)


def decoded(data: Mapping[str, str]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_compose_is_the_union_of_sources_and_discovered_keys() -> None:
    s = spec(sources=[{"name": "db", "path": "apps/db", "keys": [{"from": "password", "to": "DB_PASSWORD"}]},
                      {"name": "cache", "path": "apps/cache"}],
             dataFrom=[{"prefix": "teams/pay/"}])  # fmt: skip
    fetched = [
        (read("db", "apps/db"), {"password": f"{CANARY}-db", "unused": "x"}),
        (read("cache", "apps/cache"), {"host": "redis", "port": 6379}),
        (read(None, "teams/pay/stripe/api"), {"token": f"{CANARY}-t"}),
    ]
    data, named = compose(s, fetched, {"teams/pay/stripe/api": Found(0, 1)})
    assert decoded(data) == {"DB_PASSWORD": f"{CANARY}-db", "host": "redis", "port": "6379",
                             "stripe_api_token": f"{CANARY}-t"}  # fmt: skip
    assert set(named) == {"db", "cache"}  # found secrets are only in data
    assert decoded(named["db"]) == {"DB_PASSWORD": f"{CANARY}-db"}  # after its keys
    assert decoded(named["cache"]) == {"host": "redis", "port": "6379"}


def test_compose_a_key_of_two_sources_names_the_key_and_both_sources() -> None:
    s = spec(sources=[{"name": "a", "path": "apps/a"}, {"name": "b", "path": "apps/b"}])
    fetched = [(read("a", "apps/a"), {"password": f"{CANARY}-a"}), (read("b", "apps/b"), {"password": f"{CANARY}-b"})]
    with pytest.raises(SourceDataError) as raised:
        compose(s, fetched, {})
    message = raised.value.message
    assert "'password'" in message
    assert "source a (apps/a)" in message
    assert "source b (apps/b)" in message
    assert conditions.classify(raised.value).reason == conditions.INVALID_SOURCE_DATA
    assert_no_canary(raised.value)


def test_compose_a_key_of_a_source_and_a_found_secret_names_both() -> None:
    s = spec(sources=[{"name": "a", "path": "apps/a"}], dataFrom=[{"prefix": "teams/x/"}])
    fetched = [(read("a", "apps/a"), {"x_token": CANARY}), (read(None, "teams/x/x"), {"token": CANARY})]
    with pytest.raises(SourceDataError) as raised:
        compose(s, fetched, {"teams/x/x": Found(0, 1)})
    assert "'x_token'" in raised.value.message
    assert "source a (apps/a)" in raised.value.message
    assert "teams/x/x" in raised.value.message
    assert_no_canary(raised.value)


def test_compose_two_found_secrets_of_two_prefixes_with_one_key_collide() -> None:
    s = spec(dataFrom=[{"prefix": "a/"}, {"prefix": "b/"}])
    fetched = [(read(None, "a/db"), {"pw": CANARY}), (read(None, "b/db"), {"pw": CANARY})]
    with pytest.raises(SourceDataError, match="'db_pw' comes from both a/db and b/db") as raised:
        compose(s, fetched, {"a/db": Found(0, 1), "b/db": Found(1, 1)})
    assert_no_canary(raised.value)


def test_compose_under_a_replace_template_a_collision_is_dropped_from_data() -> None:
    template = {"data": {"URL": "{{ sources.a.data.password }}"}}
    s = spec(sources=[{"name": "a", "path": "apps/a"}, {"name": "b", "path": "apps/b"}], template=template)
    assert s.template is not None
    assert s.template.mergePolicy == "Replace"
    fetched = [(read("a", "apps/a"), {"password": "pa", "only_a": "1"}), (read("b", "apps/b"), {"password": "pb"})]
    data, named = compose(s, fetched, {})
    assert decoded(data) == {"only_a": "1"}  # 'password' is ambiguous: only sources.<name> has it
    assert decoded(named["a"])["password"] == "pa"
    assert decoded(named["b"])["password"] == "pb"


def test_compose_under_a_merge_template_a_collision_is_an_error() -> None:
    template = {"mergePolicy": "Merge", "data": {"URL": "x"}}
    s = spec(sources=[{"name": "a", "path": "apps/a"}, {"name": "b", "path": "apps/b"}], template=template)
    fetched = [(read("a", "apps/a"), {"password": CANARY}), (read("b", "apps/b"), {"password": CANARY})]
    with pytest.raises(SourceDataError, match="'password'") as raised:
        compose(s, fetched, {})
    assert_no_canary(raised.value)


def test_compose_a_found_key_that_is_no_secret_key_is_an_error() -> None:
    s = spec(dataFrom=[{"prefix": "teams/pay/"}])
    with pytest.raises(SourceDataError) as raised:
        compose(s, [(read(None, "teams/pay/stripe"), {"api token": CANARY})], {"teams/pay/stripe": Found(0, 1)})
    message = raised.value.message
    assert "'api token'" in message
    assert "teams/pay/stripe (found under teams/pay/)" in message
    assert_no_canary(raised.value)


def test_compose_a_path_below_the_prefix_that_makes_no_secret_key_is_an_error() -> None:
    s = spec(dataFrom=[{"prefix": "teams/pay/"}])
    with pytest.raises(SourceDataError) as raised:
        compose(s, [(read(None, "teams/pay/my svc"), {"token": CANARY})], {"teams/pay/my svc": Found(0, 1)})
    message = raised.value.message
    assert "key 'token' of teams/pay/my svc (found under teams/pay/) becomes 'my svc_token'" in message
    assert "change a rewrite rule (spec.dataFrom[].rewrite)" in message
    assert_no_canary(raised.value)

    fixed = spec(dataFrom=[{"prefix": "teams/pay/", "rewrite": [rewrite(" ", "-")]}])
    data, _ = compose(fixed, [(read(None, "teams/pay/my svc"), {"token": "t"})], {"teams/pay/my svc": Found(0, 1)})
    assert decoded(data) == {"my-svc_token": "t"}


def test_compose_a_rewrite_can_make_a_found_key_valid() -> None:
    s = spec(dataFrom=[{"prefix": "teams/pay/", "rewrite": [rewrite(" ", "_")]}])
    data, _ = compose(s, [(read(None, "teams/pay/stripe"), {"api token": "t"})], {"teams/pay/stripe": Found(0, 1)})
    assert decoded(data) == {"stripe_api_token": "t"}


def test_compose_an_invalid_found_key_names_the_resulting_key_and_the_rewrite() -> None:
    s = spec(dataFrom=[{"prefix": "teams/pay/"}])
    with pytest.raises(SourceDataError) as raised:
        compose(s, [(read(None, "teams/pay/stripe"), {"api token": CANARY})], {"teams/pay/stripe": Found(0, 1)})
    assert "'stripe_api token'" in raised.value.message
    assert "rewrite" in raised.value.message
    assert "spec.keys" not in raised.value.message


def test_compose_a_rewrite_that_empties_a_key_is_an_error() -> None:
    s = spec(dataFrom=[{"prefix": "p/", "rewrite": [rewrite(".*", "")]}])
    with pytest.raises(SourceDataError, match="it is empty") as raised:
        compose(s, [(read(None, "p/x"), {"k": CANARY})], {"p/x": Found(0, 1)})
    assert_no_canary(raised.value)


def test_compose_two_keys_of_one_secret_rewritten_to_one_key() -> None:
    s = spec(dataFrom=[{"prefix": "p/", "rewrite": [rewrite("_(user|login)$", "_name")]}])
    with pytest.raises(SourceDataError) as raised:
        compose(s, [(read(None, "p/db"), {"user": CANARY, "login": CANARY})], {"p/db": Found(0, 1)})
    assert "two keys of p/db become the Secret key 'db_name'" in raised.value.message
    assert_no_canary(raised.value)


def test_compose_rewrites_apply_to_found_keys() -> None:
    s = spec(dataFrom=[{"prefix": "apps/many/", "rewrite": [rewrite("^s(\\d)_v$", "VALUE_$1")]}])
    fetched = [(read(None, f"apps/many/s{i}"), {"v": str(i)}) for i in range(3)]
    data, _ = compose(s, fetched, {f"apps/many/s{i}": Found(0, 1) for i in range(3)})
    assert decoded(data) == {"VALUE_0": "0", "VALUE_1": "1", "VALUE_2": "2"}


def test_compose_source_data_errors_are_prefixed_with_the_source() -> None:
    s = spec(sources=[{"name": "db", "path": "apps/db", "keys": [{"from": "missing"}]}])
    with pytest.raises(SourceDataError) as raised:
        compose(s, [(read("db", "apps/db"), {"password": CANARY})], {})
    assert raised.value.message.startswith("source db (apps/db): spec.keys lists 1 key missing")
    assert_no_canary(raised.value)

    s = spec(sources=[{"name": "db", "path": "apps/db"}])
    with pytest.raises(SourceDataError) as raised:
        compose(s, [(read("db", "apps/db"), {"bad key": CANARY})], {})
    assert raised.value.message.startswith("source db (apps/db): key 'bad key'")
    assert_no_canary(raised.value)

    s = spec(dataFrom=[{"prefix": "p/"}])
    with pytest.raises(SourceDataError) as raised:
        compose(s, [(read(None, "p/x"), {"n": float("nan"), "c": CANARY})], {"p/x": Found(0, 1)})
    assert raised.value.message.startswith("p/x (found under p/): key 'n'")
    assert_no_canary(raised.value)

    with pytest.raises(SourceDataError, match=r"^p/x \(found under p/\): the ScaiVault secret's data is not"):
        compose(s, [(read(None, "p/x"), [CANARY])], {"p/x": Found(0, 1)})  # type: ignore[list-item]


def test_compose_over_1_mib_in_all_is_an_error() -> None:
    half = "x" * (600 * 1024)  # each source alone fits
    s = spec(sources=[{"name": "a", "path": "apps/a"}, {"name": "b", "path": "apps/b"}])
    fetched = [(read("a", "apps/a"), {"a": half + CANARY}), (read("b", "apps/b"), {"b": half + CANARY})]
    with pytest.raises(SourceDataError, match="1 MiB") as raised:
        compose(s, fetched, {})
    assert_no_canary(raised.value)


def test_compose_only_the_kept_keys_count_towards_1_mib_under_replace() -> None:
    big = "x" * (600 * 1024)
    s = spec(sources=[{"name": "a", "path": "apps/a"}, {"name": "b", "path": "apps/b"}],
             template={"data": {"K": "{{ sources.a.data.big | length }}"}})  # fmt: skip
    data, named = compose(s, [(read("a", "apps/a"), {"big": big}), (read("b", "apps/b"), {"big": big})], {})
    assert data == {}
    assert set(named) == {"a", "b"}


def test_compose_exactly_1_mib_as_one_source_of_a_single_path() -> None:
    # What a single-path VaultSecret accepts (``secret_data`` counts the bytes themselves) ...
    s = spec(sources=[{"name": "a", "path": "apps/a"}])
    raw = {"k": "x" * (MAX_SECRET_BYTES - 1)}  # a length divisible by 3: its base64 has no padding
    data, _ = compose(s, [(read("a", "apps/a"), raw)], {})
    assert len(base64.b64decode(data["k"])) == MAX_SECRET_BYTES - 1


def test_compose_exactly_1_mib_with_base64_padding_is_accepted() -> None:
    s = spec(sources=[{"name": "a", "path": "apps/a"}])
    raw = {"ab": "x" * (MAX_SECRET_BYTES - 2)}  # 2 + 1048574 bytes = 1 MiB; the base64 ends with '='
    data, _ = compose(s, [(read("a", "apps/a"), raw)], {})
    assert sum(len(k) + len(base64.b64decode(v)) for k, v in data.items()) == MAX_SECRET_BYTES


# -- revision, status.sources, annotations, messages -------------------------------------------------------------

VERSIONS = {("db", "apps/db"): 3, (None, "teams/pay/b"): 1, ("cache", "apps/cache"): 7, (None, "teams/pay/a"): 2}


def test_revision_is_stable_hex_and_order_independent() -> None:
    digest = revision(VERSIONS)
    assert digest == revision(dict(VERSIONS))
    assert digest == revision(dict(reversed(list(VERSIONS.items()))))
    assert len(digest) == 16
    int(digest, 16)


def test_revision_changes_with_a_version_a_path_or_a_name() -> None:
    digest = revision(VERSIONS)
    assert revision(VERSIONS | {("db", "apps/db"): 4}) != digest
    assert revision(VERSIONS | {(None, "teams/pay/c"): 1}) != digest
    assert revision({k: v for k, v in VERSIONS.items() if k != (None, "teams/pay/a")}) != digest
    assert revision({("a", "p"): 1}) != revision({(None, "p"): 1})
    assert revision({("a", "p"): 1}) != revision({("b", "p"): 1})


def test_status_sources_named_first_by_name_then_found_by_path() -> None:
    assert status_sources(VERSIONS) == [
        {"name": "cache", "path": "apps/cache", "version": 7},
        {"name": "db", "path": "apps/db", "version": 3},
        {"path": "teams/pay/a", "version": 2},
        {"path": "teams/pay/b", "version": 1},
    ]
    assert status_sources({}) == []


def test_versions_from_status_round_trips() -> None:
    assert versions_from_status({"sources": status_sources(VERSIONS)}) == VERSIONS


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"sources": None},
        {"sources": []},
        {"sources": "apps/db@1"},
        {"sources": {"path": "p", "version": 1}},
        {"sources": ["p"]},
        {"sources": [{"name": "a", "version": 1}]},
        {"sources": [{"name": "a", "path": 5, "version": 1}]},
        {"sources": [{"name": "a", "path": "p"}]},
        {"sources": [{"name": "a", "path": "p", "version": "1"}]},
        {"sources": [{"name": "a", "path": "p", "version": True}]},
        {"sources": [{"name": "a", "path": "p", "version": 1.0}]},
        {"sources": [{"name": "a", "path": "p", "version": 1}, None]},
    ],
)
def test_versions_from_status_malformed_is_none(status: dict[str, Any]) -> None:
    assert versions_from_status(status) is None


def test_sources_annotation() -> None:
    assert sources_annotation(VERSIONS) == "cache=apps/cache@7, db=apps/db@3, teams/pay/a@2, teams/pay/b@1"
    assert sources_annotation({("a", "apps/drift/a"): 1}) == "a=apps/drift/a@1"


def test_sources_annotation_is_clipped() -> None:
    many = {(None, f"teams/pay/{'x' * 40}-{i:04}"): i + 1 for i in range(200)}
    text = sources_annotation(many)
    assert len(text) == 2048
    assert text.endswith("…")
    assert text.startswith(f"teams/pay/{'x' * 40}-0000@1, ")


def test_ready_message_counts_sources_and_found_secrets_never_values() -> None:
    s = spec(sources=[{"name": "db", "path": "apps/db"}, {"name": "cache", "path": "apps/cache"}],
             dataFrom=[{"prefix": "teams/payments/"}])  # fmt: skip
    versions = {("db", "apps/db"): 1, ("cache", "apps/cache"): 1, (None, "teams/payments/x"): 1}
    message = ready_message(s, versions, "app-config")
    assert message.startswith("3 secrets (2 sources")
    assert "1 found under teams/payments/" in message
    assert message.endswith("in Secret app-config")


def test_ready_message_singular_and_one_kind() -> None:
    assert ready_message(spec(sources=[{"name": "a", "path": "p/a"}]), {("a", "p/a"): 1}, "s") == (
        "1 secret (1 source) in Secret s"
    )
    s = spec(dataFrom=[{"prefix": "a/"}, {"prefix": "b/"}])
    assert ready_message(s, {}, "s") == "0 secrets (0 found under a/, b/) in Secret s"
