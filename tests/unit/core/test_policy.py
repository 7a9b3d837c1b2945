"""Access rules of connections: label selectors, ``{namespace}`` prefixes, and every rule of ``check_access``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaivault_operator._cogs.api import AccessRule, LabelSelector
from scaivault_operator._logic.policy import Decision, check_access, expand_prefix, prefix_warning, selector_matches


def sel(**raw: Any) -> LabelSelector:
    return LabelSelector.model_validate(raw)


def rule(**raw: Any) -> AccessRule:
    return AccessRule.model_validate(raw)


def cluster(
    access: list[AccessRule] | None,
    *,
    namespace: str = "team-a",
    labels: dict[str, str] | None = None,
    path: str = "tenants/team-a/db",
) -> Decision:
    return check_access(
        connection_kind="ClusterVaultConnection",
        connection_namespace=None,
        connection_name="shared",
        access=access,
        namespace=namespace,
        namespace_labels=labels if labels is not None else {},
        path=path,
    )


def local(
    access: list[AccessRule] | None,
    *,
    connection_namespace: str = "team-a",
    namespace: str = "team-a",
    labels: dict[str, str] | None = None,
    path: str = "apps/web/db",
) -> Decision:
    return check_access(
        connection_kind="VaultConnection",
        connection_namespace=connection_namespace,
        connection_name="mine",
        access=access,
        namespace=namespace,
        namespace_labels=labels,
        path=path,
    )


# -- selector_matches ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"env": "prod"}}, {"env": "prod", "x": "y"}, True),
        ({"matchLabels": {"env": "prod"}}, {"env": "dev"}, False),
        ({"matchLabels": {"env": "prod"}}, {}, False),
        ({"matchLabels": {"env": "prod", "tier": "db"}}, {"env": "prod"}, False),
        ({"matchLabels": {"env": ""}}, {"env": ""}, True),
        ({"matchLabels": {"env": ""}}, {}, False),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]}, {"env": "b"}, True),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]}, {"env": "c"}, False),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": []}]}, {"env": "a"}, False),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {"env": "b"}, True),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {"env": "a"}, False),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""}, True),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"other": "x"}, False),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {"env": "x"}, False),
        (
            {
                "matchLabels": {"team": "a"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod"]},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            },
            {"team": "a", "env": "prod"},
            True,
        ),
        (
            {
                "matchLabels": {"team": "a"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod"]},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            },
            {"team": "a", "env": "prod", "legacy": "true"},
            False,
        ),
        (
            {"matchLabels": {"team": "b"}, "matchExpressions": [{"key": "env", "operator": "Exists"}]},
            {"team": "a", "env": "prod"},
            False,
        ),
    ],
)
def test_selector_matches(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(sel(**selector), labels) is expected


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=5))
def test_empty_selector_matches_any_labels(labels: dict[str, str]) -> None:
    assert selector_matches(sel(), labels)


@given(
    labels=st.dictionaries(st.sampled_from("abc"), st.sampled_from("xyz"), max_size=3),
    key=st.sampled_from("abc"),
    values=st.lists(st.sampled_from("xyz"), max_size=3),
)
def test_in_and_notin_are_complements_when_key_present(labels: dict[str, str], key: str, values: list[str]) -> None:
    in_ = selector_matches(sel(matchExpressions=[{"key": key, "operator": "In", "values": values}]), labels)
    not_in = selector_matches(sel(matchExpressions=[{"key": key, "operator": "NotIn", "values": values}]), labels)
    if key in labels:
        assert in_ != not_in
    else:
        assert (in_, not_in) == (False, True)


# -- expand_prefix / prefix_warning --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("tenants/{namespace}/", "tenants/team-a/"),
        ("{namespace}/", "team-a/"),
        ("a/{namespace}/b/{namespace}/", "a/team-a/b/team-a/"),
        ("shared/", "shared/"),
        ("", ""),
        ("x/{other}/", "x/{other}/"),
    ],
)
def test_expand_prefix(prefix: str, expected: str) -> None:
    assert expand_prefix(prefix, "team-a") == expected


@pytest.mark.parametrize(
    "prefix",
    ["tenants/{namespace}", "tenants/{namespace}-prod", "{namespace}", "x/{namespace}/y/{namespace}"],
)
def test_prefix_warning_for_open_namespace_segment(prefix: str) -> None:
    warning = prefix_warning(prefix)
    assert warning is not None
    assert prefix in warning
    assert "/" in warning


def test_prefix_warning_suggests_closing_slash() -> None:
    warning = prefix_warning("tenants/{namespace}")
    assert warning is not None
    assert "'tenants/{namespace}/'" in warning


@pytest.mark.parametrize(
    "prefix",
    [
        "tenants/{namespace}/",
        "tenants/{namespace}/db",
        "tenants/{namespace}-prod/",
        "{namespace}/",
        "shared",
        "shared/",
        "",
    ],
)
def test_no_prefix_warning(prefix: str) -> None:
    assert prefix_warning(prefix) is None


def test_open_prefix_really_crosses_namespaces() -> None:
    """The documented plain-prefix semantics: the warning is about a real hole."""
    access = [rule(namespaces=["a", "ab"], pathPrefixes=["tenants/{namespace}"])]
    assert cluster(access, namespace="a", path="tenants/ab/db").allowed
    closed = [rule(namespaces=["a", "ab"], pathPrefixes=["tenants/{namespace}/"])]
    assert not cluster(closed, namespace="a", path="tenants/ab/db").allowed
    assert cluster(closed, namespace="ab", path="tenants/ab/db").allowed


# -- ClusterVaultConnection ----------------------------------------------------------------------------------


def test_cluster_connection_without_rules_denies() -> None:
    no_rules: list[list[AccessRule] | None] = [None, []]
    for access in no_rules:
        decision = cluster(access)
        assert not decision.allowed
        assert "ClusterVaultConnection shared" in decision.message
        assert "has no access rules; add spec.access" in decision.message
        assert "team-a" in decision.message
        assert "tenants/team-a/db" in decision.message


def test_cluster_rule_by_namespace_name_with_placeholder() -> None:
    access = [rule(namespaces=["team-a", "team-b"], pathPrefixes=["tenants/{namespace}/"])]
    assert cluster(access, namespace="team-a", path="tenants/team-a/db").allowed
    assert cluster(access, namespace="team-b", path="tenants/team-b/x/y").allowed
    denied = cluster(access, namespace="team-a", path="tenants/team-b/db")
    assert not denied.allowed
    assert "'tenants/team-a/'" in denied.message
    assert "tenants/team-b/db" in denied.message
    assert "team-a" in denied.message


def test_allowed_message_names_the_prefix() -> None:
    access = [rule(namespaces=["team-a"], pathPrefixes=["tenants/{namespace}/"])]
    decision = cluster(access)
    assert decision.allowed
    assert "'tenants/team-a/'" in decision.message
    assert "ClusterVaultConnection shared" in decision.message


def test_cluster_rule_not_listing_namespace() -> None:
    access = [rule(namespaces=["team-b"], pathPrefixes=["tenants/{namespace}/"])]
    decision = cluster(access, namespace="team-a", path="tenants/team-a/db")
    assert not decision.allowed
    assert "no access rule of the connection applies to namespace team-a" in decision.message
    assert "tenants/team-a/db" in decision.message


def test_cluster_rule_by_selector() -> None:
    access = [rule(namespaceSelector={"matchLabels": {"tier": "prod"}}, pathPrefixes=["prod/"])]
    assert cluster(access, labels={"tier": "prod"}, path="prod/db").allowed
    assert not cluster(access, labels={"tier": "dev"}, path="prod/db").allowed
    assert not cluster(access, labels={}, path="prod/db").allowed


def test_empty_selector_applies_to_every_namespace() -> None:
    access = [rule(namespaceSelector={}, pathPrefixes=["shared/", "tenants/{namespace}/"])]
    assert cluster(access, namespace="x", labels={}, path="shared/ca").allowed
    assert cluster(access, namespace="x", labels={}, path="tenants/x/db").allowed
    assert not cluster(access, namespace="x", labels={}, path="tenants/y/db").allowed


def test_unknown_labels_skip_selector_rules_and_say_so() -> None:
    access = [rule(namespaceSelector={"matchLabels": {"tier": "prod"}}, pathPrefixes=["prod/"])]
    decision = check_access(
        connection_kind="ClusterVaultConnection",
        connection_namespace=None,
        connection_name="shared",
        access=access,
        namespace="team-a",
        namespace_labels=None,
        path="prod/db",
    )
    assert not decision.allowed
    assert "labels of namespace team-a could not be read" in decision.message
    assert "1 namespaceSelector rule was not applied" in decision.message


def test_unknown_labels_still_allow_by_name_and_by_empty_selector() -> None:
    access = [
        rule(namespaceSelector={"matchLabels": {"tier": "prod"}}, pathPrefixes=["prod/"]),
        rule(namespaceSelector={"matchExpressions": [{"key": "x", "operator": "Exists"}]}, pathPrefixes=["x/"]),
        rule(namespaces=["team-a"], pathPrefixes=["tenants/{namespace}/"]),
        rule(namespaceSelector={}, pathPrefixes=["shared/"]),
    ]

    def decide(path: str) -> Decision:
        return check_access(
            connection_kind="ClusterVaultConnection",
            connection_namespace=None,
            connection_name="shared",
            access=access,
            namespace="team-a",
            namespace_labels=None,
            path=path,
        )

    assert decide("tenants/team-a/db").allowed
    assert decide("shared/ca").allowed
    denied = decide("prod/db")
    assert not denied.allowed
    assert "'tenants/team-a/'" in denied.message
    assert "'shared/'" in denied.message
    assert "2 namespaceSelector rules were not applied" in denied.message


def test_union_of_applying_rules() -> None:
    access = [
        rule(namespaces=["team-a"], pathPrefixes=["a/"]),
        rule(namespaceSelector={"matchLabels": {"env": "prod"}}, pathPrefixes=["prod/"]),
        rule(namespaces=["team-b"], pathPrefixes=["b/"]),
    ]
    labels = {"env": "prod"}
    assert cluster(access, labels=labels, path="a/x").allowed
    assert cluster(access, labels=labels, path="prod/x").allowed
    denied = cluster(access, labels=labels, path="b/x")
    assert not denied.allowed
    assert "'a/'" in denied.message
    assert "'prod/'" in denied.message
    assert "'b/'" not in denied.message


def test_prefix_is_plain_string_prefix() -> None:
    access = [rule(namespaces=["team-a"], pathPrefixes=["apps/web"])]
    assert cluster(access, path="apps/web/db").allowed
    assert cluster(access, path="apps/webshop/db").allowed
    assert not cluster(access, path="apps/we").allowed


def test_empty_prefix_allows_everything() -> None:
    access = [rule(namespaces=["team-a"], pathPrefixes=[""])]
    assert cluster(access, path="anything/at/all").allowed


def test_path_equal_to_prefix_is_allowed() -> None:
    access = [rule(namespaces=["team-a"], pathPrefixes=["apps/web/db"])]
    assert cluster(access, path="apps/web/db").allowed


@pytest.mark.parametrize("path", ["tenants/team-a/../team-b/db", "tenants/team-a//db", "tenants/team-a/./x", ""])
def test_invalid_paths_are_denied_even_under_an_allowed_prefix(path: str) -> None:
    access = [rule(namespaces=["team-a"], pathPrefixes=["tenants/{namespace}/", ""])]
    decision = cluster(access, path=path)
    assert not decision.allowed
    assert "not valid" in decision.message


def test_many_prefixes_are_clipped_in_message() -> None:
    access = [rule(namespaces=["team-a"], pathPrefixes=[f"p{i}/" for i in range(25)])]
    decision = cluster(access, path="q/x")
    assert not decision.allowed
    assert "and 15 more" in decision.message
    assert "'p9/'" in decision.message
    assert "'p10/'" not in decision.message


def test_duplicate_prefixes_listed_once() -> None:
    access = [
        rule(namespaces=["team-a"], pathPrefixes=["tenants/{namespace}/"]),
        rule(namespaces=["team-a"], pathPrefixes=["tenants/team-a/"]),
    ]
    decision = cluster(access, path="other/x")
    assert decision.message.count("'tenants/team-a/'") == 1


def test_unknown_connection_kind_is_denied() -> None:
    decision = check_access(
        connection_kind="SomethingElse",
        connection_namespace=None,
        connection_name="x",
        access=[rule(namespaceSelector={}, pathPrefixes=[""])],
        namespace="team-a",
        namespace_labels={},
        path="a/b",
    )
    assert not decision.allowed
    assert "SomethingElse" in decision.message


# -- VaultConnection -----------------------------------------------------------------------------------------


def test_vault_connection_from_another_namespace_is_denied() -> None:
    decision = local(None, connection_namespace="team-a", namespace="team-b")
    assert not decision.allowed
    assert decision.message == (
        "VaultConnection mine is in namespace team-a; a VaultSecret in team-b cannot use it — use a "
        "ClusterVaultConnection or a VaultConnection in team-b"
    )


def test_vault_connection_from_another_namespace_is_denied_whatever_its_rules() -> None:
    access = [rule(namespaces=["team-b"], pathPrefixes=[""]), rule(namespaceSelector={}, pathPrefixes=[""])]
    assert not local(access, connection_namespace="team-a", namespace="team-b", labels={}).allowed


@pytest.mark.parametrize("access", [None, []])
def test_vault_connection_without_rules_allows_every_path(access: list[AccessRule] | None) -> None:
    decision = local(access, path="anything/goes")
    assert decision.allowed
    assert "no access rules" in decision.message


def test_vault_connection_rules_narrow_paths() -> None:
    access = [rule(namespaces=["team-a"], pathPrefixes=["apps/{namespace}/", "shared/"])]
    assert local(access, path="apps/team-a/db").allowed
    assert local(access, path="shared/ca").allowed
    denied = local(access, path="apps/team-b/db")
    assert not denied.allowed
    assert "'apps/team-a/'" in denied.message
    assert "'shared/'" in denied.message


def test_vault_connection_rule_naming_another_namespace_does_not_count() -> None:
    access = [rule(namespaces=["team-b"], pathPrefixes=[""])]
    decision = local(access, path="apps/x")
    assert not decision.allowed
    assert "no access rule" in decision.message


def test_vault_connection_rule_by_selector_uses_own_namespace_labels() -> None:
    access = [rule(namespaceSelector={"matchLabels": {"env": "prod"}}, pathPrefixes=["prod/"])]
    assert local(access, labels={"env": "prod"}, path="prod/db").allowed
    assert not local(access, labels={"env": "dev"}, path="prod/db").allowed
    unknown = local(access, labels=None, path="prod/db")
    assert not unknown.allowed
    assert "could not be read" in unknown.message


def test_vault_connection_empty_selector_rule_needs_no_labels() -> None:
    access = [rule(namespaceSelector={}, pathPrefixes=["apps/"])]
    assert local(access, labels=None, path="apps/db").allowed
    assert not local(access, labels=None, path="other/db").allowed


# -- properties ----------------------------------------------------------------------------------------------

_segment = st.text(alphabet="abcxyz-", min_size=1, max_size=6)
_namespace = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)


@given(
    namespace=_namespace,
    other=_namespace,
    rest=st.lists(_segment, min_size=1, max_size=3),
)
def test_closed_namespace_prefix_never_crosses_namespaces(namespace: str, other: str, rest: list[str]) -> None:
    access = [rule(namespaceSelector={}, pathPrefixes=["tenants/{namespace}/"])]
    path = "/".join(["tenants", other, *rest])
    decision = cluster(access, namespace=namespace, path=path)
    assert decision.allowed is (namespace == other)


@given(
    namespace=_namespace,
    path=st.lists(_segment, min_size=1, max_size=4).map("/".join),
    prefixes=st.lists(st.lists(_segment, min_size=0, max_size=3).map(lambda s: "/".join(s)), min_size=1, max_size=3),
)
def test_decision_agrees_with_prefix_check(namespace: str, path: str, prefixes: list[str]) -> None:
    access = [rule(namespaces=[namespace], pathPrefixes=prefixes)]
    decision = cluster(access, namespace=namespace, path=path)
    assert decision.allowed is any(path.startswith(p) for p in prefixes)
    assert namespace in decision.message
    assert path in decision.message
