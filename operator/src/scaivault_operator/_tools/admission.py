"""The access rules of ClusterVaultConnections at admission: a ValidatingAdmissionPolicy and its binding.

Owns the CEL that refuses a VaultSecret at ``kubectl apply`` when the ClusterVaultConnection it references does not
allow its namespace to read its path: the decision of ``policy.check_access`` for ClusterVaultConnections, with the
same denial messages. Renders ``crds/policy/*.yaml`` (plain YAML for ``kubectl apply``); the chart's
``templates/admissionpolicy.yaml`` renders its copies in ``files/policy/`` (``make crds`` writes both). Pure apart
from ``main``, which writes the files through ``crdgen.write_or_check``. Nothing here runs in the operator, which
keeps its own check at every sync: a connection edited after a VaultSecret was admitted is still enforced
(``PolicyDenied``).

Which connection: ``paramKind`` is ClusterVaultConnection and the binding's ``paramRef`` selects all of them
(``selector: {}``), so the API server evaluates the policy once per connection; the match conditions skip all but
the one ``spec.connectionRef`` names (``default`` without one). Hence:

* a VaultSecret on a ``VaultConnection`` is not this policy's business (allowed);
* a referenced ClusterVaultConnection that does not exist is allowed (``parameterNotFoundAction: Allow`` when there is
  none at all), and the operator reports ``InvalidSpec`` until it exists: manifests applied together (``kubectl apply
  -f dir/``, GitOps) arrive in any order, and the API server sees a new connection only once its informer has it;
* an UPDATE that leaves ``spec`` unchanged (labels, annotations, finalizers) and an object being deleted are not
  checked: they cannot change what is read, and a VaultSecret denied after its connection changed must stay
  deletable; the status subresource is not matched (the operator writes it).

The decision equals ``check_access``'s on every object the CRD admits: the path must be valid (the CRD refuses
``/``-misuse and ``.``/``..`` segments and limits the length; the policy adds control characters; lone surrogates
cannot reach the API server), the connection must have rules, and a rule that applies to the namespace
(``namespaces`` lists it, or its ``namespaceSelector`` — matchLabels, In/NotIn/Exists/DoesNotExist — matches
``namespaceObject.metadata.labels``) must have a prefix, ``{namespace}`` replaced, that the path starts with. The
labels are always known at admission, so no selector rule goes unevaluated. Messages are ``check_access``'s, except
that a control character makes it name ``spec.path`` instead of quoting it, that beyond ``_MAX_DEDUPLICATED``
applying prefixes the listed ones are not deduplicated, and that a message over 5 KiB (long prefixes) is replaced
by the API server with the static ``message``.

Cost: the API server does not estimate a policy's cost when it is created (``params`` and ``object`` are dynamically
typed there); every evaluation runs under the runtime limits, 1,000,000 per expression and 10,000,000 per
evaluation. The decision is linear in the referenced connection (up to 64 rules of 64 prefixes, 256 namespaces or
32 selector requirements), and the message's variables are evaluated only for a denial (``messageExpression`` is
evaluated for every request, so it starts with ``variables.allowed ? ''``). ``tests/e2e/test_e2e_admission_policy``
checks connections as large as etcd stores on a real server.

Called by ``make crds`` (``python -m scaivault_operator._tools.admission --out crds/policy``) and by the tests: the unit
tests evaluate the CEL with cel-python against ``check_access`` and compare the chart with ``crds/policy``; the e2e
test runs it on a real API server.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from scaivault_operator._cogs.api import GROUP, VERSION, ConnectionSpec, VaultSecretSpec
from scaivault_operator._logic.policy import _MAX_LISTED_PREFIXES, CLUSTER_CONNECTION, NAMESPACE_PLACEHOLDER
from scaivault_operator._tools.crdgen import model_schema, write_or_check

__all__ = [
    "BINDING_FILE",
    "MATCH_CONDITIONS",
    "NAME",
    "POLICY_FILE",
    "VALIDATION",
    "VARIABLES",
    "build_binding",
    "build_policy",
    "main",
    "render_yaml",
]

JsonDict = dict[str, Any]

#: Name of the policy and of its binding in ``crds/policy/`` (the chart names them after the release).
NAME = "scaivault-vaultsecret-access"
POLICY_FILE = "vaultsecret-access.yaml"
BINDING_FILE = "vaultsecret-access-binding.yaml"

#: The connection a VaultSecret without ``spec.connectionRef`` reads through.
_DEFAULT_CONNECTION = VaultSecretSpec(path="x").connection.name
_CONNECTION_SCHEMA = model_schema(ConnectionSpec)["properties"]["access"]
_MAX_RULES = int(_CONNECTION_SCHEMA["maxItems"])
_MAX_PREFIXES = int(_CONNECTION_SCHEMA["items"]["properties"]["pathPrefixes"]["maxItems"])
#: ``[0, 1, ..., n-1]``: CEL in Kubernetes 1.30 has no range() and no index in map()/filter(), so the message
#: iterates over this literal to address the rules and prefixes of a connection (n*n covers every prefix).
_N = max(_MAX_RULES, _MAX_PREFIXES, _MAX_LISTED_PREFIXES, math.isqrt(_MAX_RULES * _MAX_PREFIXES - 1) + 1)
_INDICES = "[" + ", ".join(str(i) for i in range(_N)) + "]"
#: Denial messages deduplicate the prefixes they list (as ``policy`` does) up to this many applying prefixes; a
#: connection with more lists them as they come (duplicates included), so a denial stays cheap.
_MAX_DEDUPLICATED = 256
#: Characters ``validate_path`` refuses that the CRD's rules do not (Unicode category Cc).
_CONTROL_CHARACTERS = r"[\\x00-\\x1f\\x7f-\\x9f]"


def _cel(text: str) -> str:
    return textwrap.dedent(text).strip()


#: When the policy applies at all (evaluated per connection; ``params`` is that connection).
MATCH_CONDITIONS: tuple[JsonDict, ...] = (
    {
        "name": "cluster-connection",
        "expression": _cel(f"""
            !has(object.spec.connectionRef) || !has(object.spec.connectionRef.kind) ||
              object.spec.connectionRef.kind == '{CLUSTER_CONNECTION}'
        """),
    },
    {
        "name": "referenced-connection",
        "expression": _cel(f"""
            params.metadata.name ==
              (has(object.spec.connectionRef) ? object.spec.connectionRef.name : '{_DEFAULT_CONNECTION}')
        """),
    },
    {
        "name": "spec-changed",
        "expression": "request.operation == 'CREATE' || object.spec != oldObject.spec",
    },
    {
        "name": "not-deleting",
        "expression": "!has(object.metadata.deletionTimestamp)",
    },
    {
        # spec.sources and spec.dataFrom: each path (and each path found under a prefix) is checked at sync.
        "name": "single-path",
        "expression": "has(object.spec.path)",
    },
)

#: Named CEL expressions; each may use the ones before it. The API server evaluates them lazily: the message's
#: variables only when a request is denied.
VARIABLES: tuple[JsonDict, ...] = (
    {"name": "ns", "expression": "request.namespace"},  # "namespace" is a reserved word in CEL
    {"name": "path", "expression": "object.spec.path"},
    {"name": "connection", "expression": f"'{CLUSTER_CONNECTION} ' + params.metadata.name"},
    {
        "name": "labels",
        "expression": _cel("""
            has(namespaceObject.metadata.labels) ? namespaceObject.metadata.labels : {}
        """),
    },
    {"name": "access", "expression": "has(params.spec.access) ? params.spec.access : []"},
    {
        "name": "applying",
        "expression": _cel("""
            variables.access.filter(r,
              (has(r.namespaces) && variables.ns in r.namespaces) ||
              (has(r.namespaceSelector) &&
                (!has(r.namespaceSelector.matchLabels) ||
                  r.namespaceSelector.matchLabels.all(k,
                    k in variables.labels && variables.labels[k] == r.namespaceSelector.matchLabels[k])) &&
                (!has(r.namespaceSelector.matchExpressions) ||
                  r.namespaceSelector.matchExpressions.all(e,
                    e.operator == 'In' ?
                      e.key in variables.labels && has(e.values) && variables.labels[e.key] in e.values :
                    e.operator == 'NotIn' ?
                      !(e.key in variables.labels) || !has(e.values) || !(variables.labels[e.key] in e.values) :
                    e.operator == 'Exists' ? e.key in variables.labels :
                    !(e.key in variables.labels)))))
        """),
    },
    {"name": "controlCharacters", "expression": f"'{_CONTROL_CHARACTERS}'"},
    {"name": "invalidPath", "expression": "variables.path.matches(variables.controlCharacters)"},
    {
        "name": "allowed",
        "expression": _cel(f"""
            !variables.invalidPath && variables.applying.exists(r, r.pathPrefixes.exists(p,
              variables.path.startsWith(p.replace('{NAMESPACE_PLACEHOLDER}', variables.ns))))
        """),
    },
    # -- the denial message: the prefixes of the applying rules, expanded, deduplicated, the first ten listed --
    {
        "name": "expanded",
        "expression": _cel(f"""
            variables.applying.map(r,
              r.pathPrefixes.map(p, p.replace('{NAMESPACE_PLACEHOLDER}', variables.ns)))
        """),
    },
    {"name": "indices", "expression": _INDICES},
    {
        # "i:j" for the j-th prefix of the i-th applying rule, in order.
        "name": "slots",
        "expression": _cel("""
            variables.indices.filter(i, i < size(variables.expanded)).map(i,
              variables.indices.filter(j, j < size(variables.expanded[i])).map(j, string(i) + ':' + string(j)).join(' ')
            ).join(' ').split(' ')
        """),
    },
    {
        "name": "prefixes",
        "expression": "variables.slots.map(s, variables.expanded[int(s.split(':')[0])][int(s.split(':')[1])])",
    },
    {
        # 0, 1, ..., size(prefixes) - 1, as a*n + b.
        "name": "positions",
        "expression": _cel(f"""
            variables.indices.filter(a, a * {_N} < size(variables.prefixes)).map(a,
              variables.indices.filter(b, a * {_N} + b < size(variables.prefixes))
                .map(b, string(a * {_N} + b)).join(' ')
            ).join(' ').split(' ').map(k, int(k))
        """),
    },
    {
        # Deduplicating is quadratic: beyond _MAX_DEDUPLICATED prefixes the message lists them as they come.
        "name": "distinct",
        "expression": _cel(f"""
            size(variables.prefixes) > {_MAX_DEDUPLICATED} ? variables.prefixes :
              variables.positions.filter(k, variables.prefixes.indexOf(variables.prefixes[k]) == k)
                .map(k, variables.prefixes[k])
        """),
    },
    {
        "name": "listed",
        "expression": _cel(f"""
            variables.indices.filter(t, t < {_MAX_LISTED_PREFIXES} && t < size(variables.distinct))
              .map(t, "'" + variables.distinct[t] + "'").join(', ') +
            (size(variables.distinct) > {_MAX_LISTED_PREFIXES} ?
              ' and ' + string(size(variables.distinct) - {_MAX_LISTED_PREFIXES}) + ' more' : '')
        """),
    },
)

#: The denial, in ``policy.check_access``'s words (the labels of a namespace are always known here).
VALIDATION: JsonDict = {
    "expression": "variables.allowed",
    "reason": "Forbidden",
    "message": "the ClusterVaultConnection of this VaultSecret does not allow its namespace to read spec.path: "
    "see the connection's spec.access",
    # The API server evaluates messageExpression for allowed requests too: the message's variables only when denied.
    "messageExpression": _cel("""
        variables.allowed ? '' :
        variables.invalidPath ?
          variables.connection + ' cannot serve spec.path to namespace ' + variables.ns +
          ': the path is not valid (secret path contains a control character at offset ' +
          string(variables.path.indexOf(variables.path.find(variables.controlCharacters))) + ')' :
        size(variables.access) == 0 ?
          variables.connection + ' has no access rules; add spec.access to it to let namespace ' +
          variables.ns + " read '" + variables.path + "'" :
        size(variables.applying) == 0 ?
          variables.connection + ' does not allow namespace ' + variables.ns + " to read '" +
          variables.path + "': no access rule of the connection applies to namespace " + variables.ns +
          "; add the namespace to a rule in the connection's spec.access" :
        variables.connection + ' does not allow namespace ' + variables.ns + " to read '" +
          variables.path + "': this namespace may read only paths starting with " + variables.listed +
          "; change spec.path or the connection's spec.access"
    """),
}

_LABELS = {"app.kubernetes.io/name": "scaivault-operator"}


def build_policy(name: str = NAME, *, failure_policy: str = "Ignore") -> JsonDict:
    """The ValidatingAdmissionPolicy. ``failure_policy`` ``Ignore`` (default): an evaluation error (a runtime cost
    limit, the CRD missing) admits the VaultSecret and leaves the decision to the operator, as without the policy."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(_LABELS)},
        "spec": {
            "failurePolicy": failure_policy,
            "paramKind": {"apiVersion": f"{GROUP}/{VERSION}", "kind": CLUSTER_CONNECTION},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [VERSION],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["vaultsecrets"],  # not vaultsecrets/status: the operator's writes
                    }
                ]
            },
            "matchConditions": [dict(condition) for condition in MATCH_CONDITIONS],
            "variables": [dict(variable) for variable in VARIABLES],
            "validations": [dict(VALIDATION)],
        },
    }


def build_binding(
    name: str = NAME,
    *,
    policy_name: str = NAME,
    validation_actions: Sequence[str] = ("Deny",),
    match_resources: Mapping[str, Any] | None = None,
) -> JsonDict:
    """The ValidatingAdmissionPolicyBinding: every ClusterVaultConnection is a parameter (the policy skips all but the
    referenced one); ``match_resources`` narrows it, e.g. to some namespaces."""
    spec: JsonDict = {
        "policyName": policy_name,
        "validationActions": list(validation_actions),
        "paramRef": {"selector": {}, "parameterNotFoundAction": "Allow"},
    }
    if match_resources is not None:
        spec["matchResources"] = dict(match_resources)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(_LABELS)},
        "spec": spec,
    }


# -- files -------------------------------------------------------------------------------------------------------

_HEADER = (
    "# Generated by `make crds` (python -m scaivault_operator._tools.admission) from operator/src/scaivault_operator/"
    "admission.py.\n"
    "# Do not edit: change admission.py and regenerate. Needs Kubernetes 1.30+; apply after the CRDs:\n"
    "#   kubectl apply --server-side -f crds/policy/\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the CEL expressions) as literal blocks."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def _dump(document: JsonDict) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def render_yaml() -> dict[str, str]:
    """File name -> YAML text, exactly as committed in ``crds/policy/``."""
    return {POLICY_FILE: _HEADER + _dump(build_policy()), BINDING_FILE: _HEADER + _dump(build_binding())}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scaivault_operator._tools.admission [--check] [--out DIR]``: write (or verify) crds/policy/*.yaml."""
    parser = argparse.ArgumentParser(
        prog="python -m scaivault_operator._tools.admission",
        description="Render crds/policy/*.yaml: the ValidatingAdmissionPolicy of ClusterVaultConnection access rules.",
    )
    parser.add_argument("--out", type=Path, default=Path("crds/policy"), help="directory (default: crds/policy)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files are out of date")
    args = parser.parse_args(argv)
    return write_or_check(args.out, render_yaml(), check_only=args.check, source="admission.py")


if __name__ == "__main__":
    raise SystemExit(main())
