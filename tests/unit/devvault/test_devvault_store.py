"""Both secret stores against the same contract: versions, inheritance, lookups, listing, isolation."""

from __future__ import annotations

import pytest

from scaivault_operator.devvault._store import (
    MemoryStore,
    SecretNotFoundError,
    SqliteStore,
    VersionNotFoundError,
    open_store,
    tags_of,
)


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    opened = open_store(tmp_path / "store.sqlite3" if request.param == "sqlite" else None)
    yield opened
    opened.close()


def _put(store, path, data=None, *, secret_type=None, metadata=None, now=100):
    return store.put(path, data if data is not None else {}, secret_type=secret_type, metadata=metadata, now=now)


def test_open_store_picks_the_implementation(tmp_path):
    assert isinstance(open_store(None), MemoryStore)
    sqlite = open_store(tmp_path / "x.sqlite3")
    assert isinstance(sqlite, SqliteStore)
    sqlite.close()


def test_versions_number_from_one_and_keep_their_times(store):
    first = _put(store, "a", {"n": 1}, now=100)
    second = _put(store, "a", {"n": 2}, now=160)

    assert (first.version, first.created_at, first.updated_at) == (1, 100, 100)
    assert (second.version, second.created_at, second.updated_at) == (2, 100, 160)
    assert store.get("a", 1).data == {"n": 1}
    assert store.get("a").version == 2
    assert store.get("a").created_at == 100


def test_defaults_and_inheritance(store):
    first = _put(store, "a")
    _put(store, "a", secret_type="password", metadata={"tags": ["x"]})
    inherited = _put(store, "a")
    replaced = _put(store, "a", metadata={})

    assert (first.secret_type, first.metadata) == ("json", {})
    assert (inherited.secret_type, inherited.metadata) == ("password", {"tags": ["x"]})
    assert (replaced.secret_type, replaced.metadata) == ("password", {})


def test_lookup_errors(store):
    _put(store, "a")

    with pytest.raises(SecretNotFoundError):
        store.get("b")
    for version in (0, 2, 2**63 - 1):
        with pytest.raises(VersionNotFoundError):
            store.get("a", version)


def test_stored_versions_cannot_be_mutated_through_references(store):
    data = {"list": [1]}
    _put(store, "a", data, metadata={"m": [1]})
    data["list"].append(2)
    read = store.get("a")
    read.data["list"].append(3)
    read.metadata["m"].append(3)

    assert store.get("a").data == {"list": [1]}
    assert store.get("a").metadata == {"m": [1]}


def test_listing_is_sorted_prefixed_and_resumable(store):
    for path in ["b/2", "a/1", "b/1", "ab", "b/10", "c", "b"]:
        _put(store, path, metadata={"tags": [path]})

    def paths(prefix, after=None, limit=100):
        return [head.path for head in store.list_after(prefix, after, limit)]

    assert paths("") == ["a/1", "ab", "b", "b/1", "b/10", "b/2", "c"]
    assert paths("b/") == ["b/1", "b/10", "b/2"]
    assert paths("b/", limit=2) == ["b/1", "b/10"]
    assert paths("b/", after="b/10") == ["b/2"]
    assert paths("b/", after="a") == ["b/1", "b/10", "b/2"]  # a cursor before the prefix range
    assert paths("b/", after="zzz") == []
    assert paths("a", after="a/1") == ["ab"]
    assert paths("nothing") == []


def test_list_heads_carry_the_current_version(store):
    _put(store, "a", metadata={"tags": ["one"]}, now=1)
    _put(store, "a", secret_type="env", now=2)

    (head,) = store.list_after("", None, 10)

    assert (head.path, head.version, head.secret_type, head.updated_at, head.tags) == ("a", 2, "env", 2, ("one",))


def test_unicode_paths_sort_by_code_point(store):
    for path in ["é", "z", "a", "\U0001f600", "Z"]:
        _put(store, path)

    assert [h.path for h in store.list_after("", None, 10)] == ["Z", "a", "z", "é", "\U0001f600"]


def test_values_that_are_not_json_are_refused(store):
    with pytest.raises(ValueError, match="JSON"):
        _put(store, "a", {"x": float("nan")})
    with pytest.raises(SecretNotFoundError):
        store.get("a")


def test_sqlite_reopen_keeps_everything(tmp_path):
    first = SqliteStore(tmp_path / "s.sqlite3")
    _put(first, "a", {"n": 1}, metadata={"tags": ["t"]}, now=5)
    _put(first, "a", {"n": 2}, now=6)
    first.close()

    second = SqliteStore(tmp_path / "s.sqlite3")
    try:
        assert second.get("a", 1).data == {"n": 1}
        current = second.get("a")
        assert (current.version, current.metadata, current.created_at) == (2, {"tags": ["t"]}, 5)
        assert _put(second, "a", now=7).version == 3
    finally:
        second.close()


@pytest.mark.parametrize(
    ("metadata", "tags"),
    [
        ({"tags": ["a", "b"]}, ("a", "b")),
        ({"tags": []}, ()),
        ({}, ()),
        ({"tags": "a"}, ()),
        ({"tags": ["a", 1]}, ()),
        ({"tags": None}, ()),
    ],
)
def test_tags_of(metadata, tags):
    assert tags_of(metadata) == tags
