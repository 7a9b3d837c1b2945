"""The ValidatingAdmissionPolicy of ``crds/policy/`` (``scaivault_operator._tools.admission``), checked offline.

- The committed files are what ``admission.py`` renders, and its command line writes and checks them.
- Its CEL, evaluated with cel-python the way the API server evaluates a policy (once per ClusterVaultConnection: the
  match conditions, then the validation; variables lazily; the message only for a denial), decides exactly as
  ``policy.check_access`` does for ClusterVaultConnections, with the same messages: on hand-picked cases and on
  hundreds that hypothesis generates per run (rules by name and by selector, ``{namespace}`` prefixes, duplicates,
  paths in and out of the prefixes, control characters).
- It checks single-path VaultSecrets only (match condition ``single-path``): those of ``spec.sources`` and
  ``spec.dataFrom`` are admitted, whatever their paths, and left to the operator's check at sync.

cel-python lacks the Kubernetes CEL extensions the policy calls (``replace``, ``split``, ``join``, ``indexOf`` on
strings and lists, ``find``): ``FUNCTIONS`` supplies them with the semantics of cel-go's strings extension and
Kubernetes' list and regex libraries. What cel-python cannot show — the API server's compilation (reserved words,
types), its runtime cost limits, how it fills ``request`` and ``namespaceObject``, informers and bindings — is
checked on a real API server by ``tests/e2e/test_e2e_admission_policy.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from crd_support import CRD_DIR, JsonDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaivault_operator._cogs.api import AccessRule
from scaivault_operator._logic.policy import check_access
from scaivault_operator._tools import admission

POLICY_DIR = CRD_DIR / "policy"
CONNECTION = "shared"

# -- the committed files ------------------------------------------------------------------------------------------


def test_committed_policy_files_are_what_admission_py_renders() -> None:
    rendered = admission.render_yaml()
    assert sorted(rendered) == sorted(path.name for path in POLICY_DIR.glob("*.yaml"))
    for name, text in rendered.items():
        assert (POLICY_DIR / name).read_text(encoding="utf-8") == text, f"crds/policy/{name} is stale: make crds"


def test_cli_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "policy"
    assert admission.main(["--check", "--out", str(out)]) == 1  # nothing there yet
    assert admission.main(["--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(admission.render_yaml())
    assert admission.main(["--check", "--out", str(out)]) == 0
    stale = out / admission.POLICY_FILE
    stale.write_text(stale.read_text().replace("failurePolicy: Ignore", "failurePolicy: Fail"))
    capsys.readouterr()
    assert admission.main(["--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "+  failurePolicy: Ignore" in err
    assert "make crds" in err


def _policy() -> JsonDict:
    policy: JsonDict = yaml.safe_load((POLICY_DIR / admission.POLICY_FILE).read_text(encoding="utf-8"))
    return policy


def test_the_files_are_a_policy_and_its_binding() -> None:
    policy = _policy()
    binding = yaml.safe_load((POLICY_DIR / admission.BINDING_FILE).read_text(encoding="utf-8"))
    assert (policy["kind"], binding["kind"]) == ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"] == admission.NAME
    assert binding["spec"]["paramRef"] == {"selector": {}, "parameterNotFoundAction": "Allow"}
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # every namespace
    assert policy["spec"]["paramKind"] == {
        "apiVersion": "scaivault.scailabs.ai/v1alpha1",
        "kind": "ClusterVaultConnection",
    }
    [rule] = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["vaultsecrets"]  # not the status subresource the operator writes
    assert rule["operations"] == ["CREATE", "UPDATE"]


#: CEL's reserved words (cel-spec langdef.md): not usable as identifiers, so not as variable names either.
CEL_RESERVED = {"as", "break", "const", "continue", "else", "false", "for", "function", "if", "import", "in",
                "let", "loop", "package", "namespace", "null", "return", "true", "var", "void", "while"}  # fmt: skip


def test_variables_are_identifiers_and_refer_only_to_earlier_ones() -> None:
    spec = _policy()["spec"]
    defined: list[str] = []
    for variable in spec["variables"]:
        name = variable["name"]
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), name
        assert name not in CEL_RESERVED, name
        used = set(re.findall(r"variables\.(\w+)", variable["expression"]))
        assert used <= set(defined), f"{name} uses {used - set(defined)} before they are defined"
        defined.append(name)
    [validation] = spec["validations"]
    for expression in (validation["expression"], validation["messageExpression"]):
        assert set(re.findall(r"variables\.(\w+)", expression)) <= set(defined)
    for condition in spec["matchConditions"]:
        assert "variables." not in condition["expression"]  # evaluated before the variables exist


# -- evaluating the policy like the API server ---------------------------------------------------------------------


def _text(value: Any) -> str:
    assert isinstance(value, str), f"a string was expected, got {value!r}"
    return str(value)


def _index_of(target: Any, item: Any) -> Any:
    """cel-go strings ``indexOf`` (code points) and Kubernetes' list ``indexOf`` (-1 when absent)."""
    if isinstance(target, list):
        return celtypes.IntType(next((i for i, element in enumerate(target) if element == item), -1))
    return celtypes.IntType(_text(target).find(_text(item)))


def _find(target: Any, regex: Any) -> Any:
    match = re.search(_text(regex), _text(target))
    return celtypes.StringType(match.group(0) if match else "")


#: The Kubernetes CEL functions the policy calls that cel-python lacks.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "replace": lambda target, old, new: celtypes.StringType(_text(target).replace(_text(old), _text(new))),
    "split": lambda target, sep: celtypes.ListType([celtypes.StringType(p) for p in _text(target).split(_text(sep))]),
    "join": lambda target, sep="": celtypes.StringType(_text(sep).join(_text(item) for item in target)),
    "indexOf": _index_of,
    "find": _find,
}


class _Variables(celtypes.MapType):  # type: ignore[misc]
    """``variables``: each computed on first use, as the API server's composition does (lazily)."""

    def __init__(self, compute: Callable[[str], Any]) -> None:
        super().__init__({})
        self._compute = compute

    def __getitem__(self, key: Any) -> Any:
        if not super().__contains__(key):
            super().__setitem__(key, self._compute(str(key)))
        return super().__getitem__(key)


class PolicyEvaluator:
    """The committed policy, compiled with cel-python; ``admit`` answers as a binding with ``paramRef: {selector:
    {}, parameterNotFoundAction: Allow}`` and validationActions [Deny] would."""

    def __init__(self, policy: Mapping[str, Any]) -> None:
        environment = celpy.Environment()
        spec = policy["spec"]

        def compile_(text: str) -> Any:
            return environment.program(environment.compile(text), functions=FUNCTIONS)

        self.conditions = [compile_(condition["expression"]) for condition in spec["matchConditions"]]
        self.variables = {variable["name"]: compile_(variable["expression"]) for variable in spec["variables"]}
        [validation] = spec["validations"]
        self.validation = compile_(validation["expression"])
        self.message = compile_(validation["messageExpression"])

    def admit(
        self,
        vaultsecret: Mapping[str, Any],
        connections: Sequence[Mapping[str, Any]],
        namespace_labels: Mapping[str, str],
        *,
        old: Mapping[str, Any] | None = None,
    ) -> str | None:
        """None when the request is admitted, else the denial message."""
        namespace = vaultsecret["metadata"]["namespace"]
        base = {
            "object": json_to_cel(dict(vaultsecret)),
            "oldObject": json_to_cel(dict(old) if old is not None else None),
            "request": json_to_cel({"operation": "CREATE" if old is None else "UPDATE", "namespace": namespace}),
            "namespaceObject": json_to_cel({"metadata": {"name": namespace, "labels": dict(namespace_labels)}}),
        }
        for params in connections:  # every ClusterVaultConnection is a parameter
            activation: dict[str, Any] = {**base, "params": json_to_cel(dict(params))}
            activation["variables"] = _Variables(lambda name, a=activation: self.variables[name].evaluate(a))
            if not all(bool(condition.evaluate(activation)) for condition in self.conditions):
                continue
            if not bool(self.validation.evaluate(activation)):
                return str(self.message.evaluate(activation))
        return None


EVALUATOR = PolicyEvaluator(_policy())


def connection(name: str = CONNECTION, access: Sequence[Mapping[str, Any]] | None = None) -> JsonDict:
    spec: JsonDict = {"url": "https://scaivault.example", "auth": {"tokenSecretRef": {"namespace": "x", "name": "t"}}}
    if access is not None:
        spec["access"] = [dict(rule) for rule in access]
    return {"apiVersion": "scaivault.scailabs.ai/v1alpha1", "kind": "ClusterVaultConnection",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


def vaultsecret(namespace: str, path: str, ref: Mapping[str, str] | None = None) -> JsonDict:
    """As the API server hands it to admission: CRD defaults applied (connectionRef.kind)."""
    spec: JsonDict = {"path": path}
    if ref is not None:
        spec["connectionRef"] = {"kind": "ClusterVaultConnection", **ref}
    return {"apiVersion": "scaivault.scailabs.ai/v1alpha1", "kind": "VaultSecret",
            "metadata": {"name": "vs", "namespace": namespace}, "spec": spec}  # fmt: skip


def expected(
    access: Sequence[Mapping[str, Any]] | None, namespace: str, labels: Mapping[str, str], path: str
) -> str | None:
    """``check_access``'s answer as the policy gives it: None when allowed, else its message (a path with a control
    character is named ``spec.path`` instead of quoted)."""
    rules = None if access is None else [AccessRule.model_validate(rule) for rule in access]
    decision = check_access(connection_kind="ClusterVaultConnection", connection_namespace=None,
                            connection_name=CONNECTION, access=rules, namespace=namespace,
                            namespace_labels=dict(labels), path=path)  # fmt: skip
    if decision.allowed:
        return None
    return decision.message.replace(f"cannot serve {path!r} to", "cannot serve spec.path to")


def assert_same_decision(access: Sequence[Mapping[str, Any]] | None, namespace: str, labels: Mapping[str, str],
                         path: str) -> str | None:  # fmt: skip
    got = EVALUATOR.admit(vaultsecret(namespace, path, {"name": CONNECTION}), [connection(access=access)], labels)
    assert got == expected(access, namespace, labels, path)
    return got


# -- hand-picked cases ---------------------------------------------------------------------------------------------

BY_NAME = [{"namespaces": ["team-a", "team-b"], "pathPrefixes": ["tenants/{namespace}/", "shared/"]}]
BY_LABEL = [{"namespaceSelector": {"matchLabels": {"tier": "prod"}}, "pathPrefixes": ["prod/"]}]


@pytest.mark.parametrize(
    ("access", "namespace", "labels", "path", "allowed"),
    [
        (BY_NAME, "team-a", {}, "tenants/team-a/db", True),
        (BY_NAME, "team-b", {}, "tenants/team-b/x/y", True),
        (BY_NAME, "team-a", {}, "shared/ca", True),
        (BY_NAME, "team-a", {}, "tenants/team-b/db", False),
        (BY_NAME, "team-c", {}, "shared/ca", False),
        (None, "team-a", {}, "a/b", False),
        ([], "team-a", {}, "a/b", False),
        (BY_LABEL, "team-a", {"tier": "prod"}, "prod/db", True),
        (BY_LABEL, "team-a", {"tier": "dev"}, "prod/db", False),
        (BY_LABEL, "team-a", {}, "prod/db", False),
        ([{"namespaceSelector": {}, "pathPrefixes": ["shared/", "t/{namespace}/"]}], "x", {}, "t/x/db", True),
        ([{"namespaceSelector": {}, "pathPrefixes": ["shared/", "t/{namespace}/"]}], "x", {}, "t/y/db", False),
        ([{"namespaces": ["a", "ab"], "pathPrefixes": ["t/{namespace}"]}], "a", {}, "t/ab/db", True),  # plain prefix
        ([{"namespaces": ["a"], "pathPrefixes": [""]}], "a", {}, "anything/at/all", True),
        ([{"namespaces": ["a"], "pathPrefixes": ["apps/web/db"]}], "a", {}, "apps/web/db", True),
        ([{"namespaces": ["a"], "pathPrefixes": ["apps/web/db"]}], "a", {}, "apps/we", False),
        ([{"namespaces": ["a"], "pathPrefixes": ["{namespace}/{namespace}/"]}], "a", {}, "a/a/x", True),
        ([{"namespaces": ["a"], "pathPrefixes": [""]}], "a", {}, "a\x01b", False),  # control character
        ([{"namespaces": ["a"], "pathPrefixes": [""]}], "a", {}, "ä/\x9f", False),
        ([{"namespaces": ["a"], "pathPrefixes": [""]}], "a", {}, "ä/\xa0", True),  # not a control character
        (
            [
                {"namespaces": ["team-a"], "pathPrefixes": ["a/"]},
                {"namespaceSelector": {"matchLabels": {"env": "prod"}}, "pathPrefixes": ["prod/"]},
                {"namespaces": ["team-b"], "pathPrefixes": ["b/"]},
            ],
            "team-a",
            {"env": "prod"},
            "b/x",
            False,
        ),
        (
            [
                {
                    "namespaceSelector": {
                        "matchLabels": {"team": "a"},
                        "matchExpressions": [
                            {"key": "env", "operator": "In", "values": ["prod"]},
                            {"key": "legacy", "operator": "DoesNotExist"},
                            {"key": "zone", "operator": "NotIn", "values": ["eu"]},
                            {"key": "team", "operator": "Exists"},
                        ],
                    },
                    "pathPrefixes": ["x/"],
                }
            ],
            "n",
            {"team": "a", "env": "prod", "zone": "us"},
            "x/db",
            True,
        ),
        (
            [{"namespaceSelector": {"matchExpressions": [{"key": "e", "operator": "In"}]}, "pathPrefixes": ["x/"]}],
            "n",
            {"e": "1"},
            "x/db",
            False,
        ),
        (
            [{"namespaceSelector": {"matchExpressions": [{"key": "e", "operator": "NotIn"}]}, "pathPrefixes": ["x/"]}],
            "n",
            {"e": "1"},
            "x/db",
            True,
        ),
    ],
)
def test_decides_as_check_access(
    access: list[JsonDict] | None, namespace: str, labels: dict[str, str], path: str, allowed: bool
) -> None:
    message = assert_same_decision(access, namespace, labels, path)
    assert (message is None) is allowed, message


def test_denial_messages_name_the_connection_namespace_path_and_prefixes() -> None:
    message = assert_same_decision(BY_NAME, "team-a", {}, "tenants/team-b/db")
    assert message == (
        "ClusterVaultConnection shared does not allow namespace team-a to read 'tenants/team-b/db': this namespace "
        "may read only paths starting with 'tenants/team-a/', 'shared/'; change spec.path or the connection's "
        "spec.access"
    )
    message = assert_same_decision(BY_NAME, "team-c", {}, "shared/ca")
    assert message is not None
    assert "no access rule of the connection applies to namespace team-c" in message
    message = assert_same_decision(None, "team-a", {}, "a/b")
    assert message == "ClusterVaultConnection shared has no access rules; add spec.access to it to let namespace " \
        "team-a read 'a/b'"  # fmt: skip
    message = assert_same_decision([{"namespaces": ["a"], "pathPrefixes": [""]}], "a", {}, "ab/c\x01d")
    assert message is not None
    assert message.endswith("the path is not valid (secret path contains a control character at offset 4)")


def test_prefixes_are_deduplicated_and_clipped_as_check_access_does() -> None:
    access = [
        {"namespaces": ["a"], "pathPrefixes": [f"p{i}/" for i in range(25)] + ["{namespace}/", "p3/"]},
        {"namespaceSelector": {}, "pathPrefixes": ["a/", "p0/", "{namespace}/"]},
    ]
    message = assert_same_decision(access, "a", {}, "q/x")
    assert message is not None
    assert "and 16 more" in message  # 25 + 'a/' distinct: 26, ten listed
    assert message.count("'p3/'") == 1


def test_beyond_the_deduplication_bound_prefixes_are_listed_as_they_come() -> None:
    """The only difference in the messages: deduplicating is quadratic, so a connection with more applying prefixes
    than admission._MAX_DEDUPLICATED lists them as they come (the decision is unaffected)."""
    many = [f"p{i}/" for i in range(64)]
    access = [{"namespaces": ["a"], "pathPrefixes": many} for _ in range(5)]  # 320 prefixes, 64 distinct
    message = EVALUATOR.admit(vaultsecret("a", "q/x", {"name": CONNECTION}), [connection(access=access)], {})
    assert message is not None
    assert "and 310 more" in message
    python = expected(access, "a", {}, "q/x")
    assert python is not None
    assert "and 54 more" in python
    assert EVALUATOR.admit(vaultsecret("a", "p63/x", {"name": CONNECTION}), [connection(access=access)], {}) is None


# -- which connection, which requests ------------------------------------------------------------------------------


def test_only_the_referenced_connection_decides() -> None:
    allowing = connection("allowing", [{"namespaces": ["a"], "pathPrefixes": ["x/"]}])
    denying = connection("denying", [{"namespaces": ["b"], "pathPrefixes": ["x/"]}])
    both = [allowing, denying]
    assert EVALUATOR.admit(vaultsecret("a", "x/db", {"name": "allowing"}), both, {}) is None
    message = EVALUATOR.admit(vaultsecret("a", "x/db", {"name": "denying"}), both, {})
    assert message is not None
    assert message.startswith("ClusterVaultConnection denying does not allow namespace a")


def test_without_connection_ref_the_default_connection_decides() -> None:
    default = connection("default", [{"namespaces": ["b"], "pathPrefixes": ["x/"]}])
    message = EVALUATOR.admit(vaultsecret("a", "x/db"), [default, connection()], {})
    assert message is not None
    assert message.startswith("ClusterVaultConnection default ")


def test_a_missing_connection_and_vault_connections_are_not_its_business() -> None:
    other = connection("other", [])
    assert EVALUATOR.admit(vaultsecret("a", "x/db", {"name": "missing"}), [other], {}) is None
    assert EVALUATOR.admit(vaultsecret("a", "x/db"), [other], {}) is None  # no "default"
    assert EVALUATOR.admit(vaultsecret("a", "x/db", {"name": "other"}), [], {}) is None  # no connection at all
    local = vaultsecret("a", "x/db", {"name": "other"})
    local["spec"]["connectionRef"]["kind"] = "VaultConnection"
    assert EVALUATOR.admit(local, [other], {}) is None


def test_updates_are_checked_only_when_the_spec_changes_and_never_while_deleting() -> None:
    denying = [connection(access=[{"namespaces": ["b"], "pathPrefixes": ["x/"]}])]
    old = vaultsecret("a", "x/db", {"name": CONNECTION})
    relabelled = {**old, "metadata": {**old["metadata"], "labels": {"l": "v"}}}
    assert EVALUATOR.admit(relabelled, denying, {}, old=old) is None
    changed = {**old, "spec": {**old["spec"], "version": 2}}
    assert EVALUATOR.admit(changed, denying, {}, old=old) is not None
    deleting = {**changed, "metadata": {**old["metadata"], "deletionTimestamp": "2030-01-01T00:00:00Z"}}
    assert EVALUATOR.admit(deleting, denying, {}, old=old) is None


def _several(namespace: str, spec: JsonDict) -> JsonDict:
    """A VaultSecret of several sources (``spec.sources``/``spec.dataFrom``, no path) through ``CONNECTION``."""
    body = vaultsecret(namespace, "unused", {"name": CONNECTION})
    body["spec"] = {**{k: v for k, v in body["spec"].items() if k != "path"}, **spec}
    return body


SEVERAL = [
    {"sources": [{"name": "db", "path": "y/db"}]},
    {"dataFrom": [{"prefix": "y/"}]},
    {"sources": [{"name": "db", "path": "x/db"}, {"name": "other", "path": "y/db"}], "dataFrom": [{"prefix": "z/"}]},
]


@pytest.mark.parametrize("spec", SEVERAL)
def test_vaultsecrets_of_several_sources_are_left_to_the_operator(spec: JsonDict) -> None:
    """Only single-path VaultSecrets are checked (the match condition ``single-path``): the paths of sources and
    dataFrom are checked by the operator at sync (PolicyDenied), whatever the connection says here."""
    denying = [connection(access=[{"namespaces": ["b"], "pathPrefixes": ["x/"]}])]
    assert EVALUATOR.admit(_several("a", spec), denying, {}) is None
    assert EVALUATOR.admit(_several("a", spec), [connection(access=None)], {}) is None
    # An update from a single path to several sources is admitted; back to a denied path, refused.
    single = vaultsecret("a", "y/db", {"name": CONNECTION})
    assert EVALUATOR.admit(_several("a", spec), denying, {}, old=single) is None
    assert EVALUATOR.admit(single, denying, {}, old=_several("a", spec)) == expected(
        [{"namespaces": ["b"], "pathPrefixes": ["x/"]}], "a", {}, "y/db"
    )


def test_the_single_path_condition_keeps_composites_from_the_validation() -> None:
    """Without the match condition, the policy's ``object.spec.path`` fails on a VaultSecret without a path: an
    evaluation error, which failurePolicy Ignore would admit and Fail would refuse, for every composite."""
    policy = _policy()
    [condition] = [c for c in policy["spec"]["matchConditions"] if c["name"] == "single-path"]
    assert condition["expression"] == "has(object.spec.path)"
    policy["spec"]["matchConditions"].remove(condition)
    denying = [connection(access=[{"namespaces": ["b"], "pathPrefixes": ["x/"]}])]
    with pytest.raises(celpy.CELEvalError, match="path"):
        PolicyEvaluator(policy).admit(_several("a", SEVERAL[0]), denying, {})


# -- generated cases -----------------------------------------------------------------------------------------------

NAMESPACES = ["a", "ab", "team-a", "b"]
LABEL_KEYS = ["env", "tier", "x"]
LABEL_VALUES = ["prod", "dev", ""]
PREFIX_PIECES = ["", "tenants/", "{namespace}", "/", "db", "a", "ab", "shared/", "{namespace}/", "ä"]
SEGMENTS = ["tenants", "a", "ab", "team-a", "b", "db", "shared", "prod", "ä", "{namespace}"]
CONTROL_CHARACTERS = ["\x01", "\x1f", "\x7f", "\x85"]

labels_st = st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES), max_size=3)
requirement_st = st.builds(
    lambda key, operator, values: {"key": key, "operator": operator, **({} if values is None else {"values": values})},
    st.sampled_from(LABEL_KEYS),
    st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    st.none() | st.lists(st.sampled_from(LABEL_VALUES), max_size=3),
)
selector_st = st.builds(
    lambda labels, expressions: {
        **({} if labels is None else {"matchLabels": labels}),
        **({} if expressions is None else {"matchExpressions": expressions}),
    },
    st.none() | st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES), max_size=2),
    st.none() | st.lists(requirement_st, max_size=3),
)
prefix_st = st.lists(st.sampled_from(PREFIX_PIECES), max_size=4).map("".join)
rule_st = st.builds(
    lambda who, prefixes: {**who, "pathPrefixes": prefixes},
    st.one_of(
        st.lists(st.sampled_from(NAMESPACES), min_size=1, max_size=3).map(lambda names: {"namespaces": names}),
        selector_st.map(lambda selector: {"namespaceSelector": selector}),
    ),
    st.lists(prefix_st, min_size=1, max_size=4),
)


def admitted_by_the_crd(path: str) -> bool:
    """The VaultSecret CRD's rules on spec.path (the policy never sees a path they refuse)."""
    segments = path.split("/")
    return 0 < len(path) <= 1024 and "" not in segments and not {".", ".."} & set(segments)


@st.composite
def case_st(draw: st.DrawFn) -> tuple[list[JsonDict] | None, str, dict[str, str], str]:
    """Mostly connections with rules and paths under one of their prefixes (expanded or not), sometimes no rules,
    paths anywhere, or a control character."""
    kind = draw(st.sampled_from(["rules"] * 8 + [None, "empty"]))
    access = None if kind is None else [] if kind == "empty" else draw(st.lists(rule_st, min_size=1, max_size=4))
    namespace = draw(st.sampled_from(NAMESPACES))
    prefixes = [p for rule in access or [] for p in rule["pathPrefixes"]]
    tail = "/".join(draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3)))
    if draw(st.sampled_from([False] * 9 + [True])):
        tail += draw(st.sampled_from(CONTROL_CHARACTERS))
    path = tail
    if prefixes and draw(st.booleans()):
        prefix = draw(st.sampled_from(prefixes))
        path = (prefix.replace("{namespace}", namespace) if draw(st.booleans()) else prefix) + tail
    if not admitted_by_the_crd(path):
        path = tail
    return access, namespace, draw(labels_st), path


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_st())
def test_generated_cases_decide_as_check_access(case: tuple[list[JsonDict] | None, str, dict[str, str], str]) -> None:
    """Same verdict and message on generated connections, namespaces, labels and paths. (Copies of the policy with
    one mistake each — an operator of the selector, the ``{namespace}`` replacement, the rule by name, the control
    characters, the deduplication — fail within these examples.)"""
    access, namespace, labels, path = case
    assert_same_decision(access, namespace, labels, path)
