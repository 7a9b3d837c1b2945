"""``covering_prefixes``: the fewest list prefixes whose listings include every followed path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaivault_operator.watcher import covering_prefixes


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
