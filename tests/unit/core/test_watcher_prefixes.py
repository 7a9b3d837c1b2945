"""``covering_prefixes``: the fewest list prefixes whose listings include every followed path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaivault_operator._core.watcher import covering_prefixes


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ([], []),
        (["a/b/c"], ["a/b/"]),
        (["a/b/c", "a/b/d"], ["a/b/"]),
        (["a/b/c", "a/x/d"], ["a/b/", "a/x/"]),
        (["a/b/c", "a/d", "a/b/e/f"], ["a/"]),
        (["top"], ["top"]),
        (["top", "top/x"], ["top", "top/"]),
        (["tenants/a/db", "tenants/ab/db"], ["tenants/a/", "tenants/ab/"]),
        (["x/1", "y/2", "x/z/3"], ["x/", "y/"]),
    ],
)
def test_examples(paths, expected):
    assert covering_prefixes(paths) == expected


def test_duplicates_and_order_do_not_matter():
    assert covering_prefixes(["b/x/1", "a/y", "b/x/1", "a/y"]) == covering_prefixes(["a/y", "b/x/1"])


def test_a_prefix_is_not_a_segment_boundary_match():
    # "ab/" is not below "a/": both must be listed.
    assert covering_prefixes(["a/x", "ab/y"]) == ["a/", "ab/"]


segment = st.text(alphabet="abc", min_size=1, max_size=3)
path = st.lists(segment, min_size=1, max_size=4).map("/".join)


@given(st.lists(path, max_size=20))
def test_every_path_is_covered_and_no_prefix_is_redundant(paths):
    prefixes = covering_prefixes(paths)
    for p in paths:
        # A listing of a prefix returns the paths starting with it (a top-level path is its own prefix).
        assert any(p.startswith(prefix) for prefix in prefixes), (p, prefixes)
    for prefix in prefixes:
        others = [o for o in prefixes if o != prefix]
        assert not any(prefix.startswith(o) and o.endswith("/") for o in others), (prefix, prefixes)
        # Every prefix serves at least one path.
        assert any(p.startswith(prefix) for p in paths)
    assert len(prefixes) == len(set(prefixes))
    assert prefixes == sorted(prefixes)


@given(st.lists(path, min_size=1, max_size=20))
def test_never_more_prefixes_than_parent_directories(paths):
    parents = {p[: p.rfind("/") + 1] or p for p in paths}
    assert len(covering_prefixes(paths)) <= len(parents)


@pytest.mark.parametrize(
    ("paths", "limit", "expected"),
    [
        ([f"bench/app-{i}/secret" for i in range(1000)], 16, ["bench/"]),
        (["a/x/1", "a/y/1", "b/z/1"], 2, ["a/", "b/z/"]),
        (["a/x/1", "a/y/1", "b/z/1"], 3, ["a/x/", "a/y/", "b/z/"]),
        (["a/x/1", "b/y/1", "c/z/1"], 2, [""]),
        (["t/a/b/1", "t/a/c/1", "t/d/1"], 1, ["t/"]),
    ],
)
def test_max_prefixes_merges_siblings_into_the_deepest_parent(paths, limit, expected):
    assert covering_prefixes(paths, limit) == expected


@given(st.lists(path, max_size=30), st.integers(min_value=1, max_value=6))
def test_merged_prefixes_still_cover_every_path_within_the_bound(paths, limit):
    prefixes = covering_prefixes(paths, limit)
    assert len(prefixes) <= max(1, limit)
    for p in paths:
        assert any(p.startswith(prefix) for prefix in prefixes), (p, prefixes)
