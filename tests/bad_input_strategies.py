"""Hypothesis strategies for bad-input tests: specs generated from the CRDs' openAPIV3Schema, and mutations of them.

``valid_specs(kind)`` walks the committed CRD (``crds/*.yaml``): every property, ``required``, ``enum``,
``pattern``, lengths, bounds, ``minItems``/``maxItems``, maps (``additionalProperties``). A few fields whose rules
live in CEL (``x-kubernetes-validations``: paths without ``..``, Secret types, URLs, durations of at least 1s,
exactly-one-of pairs, distinct key targets, distinct source names, path or sources/dataFrom) get a strategy of their
own (``_hints``, ``_finish_vaultsecret``), so most drawn specs pass: VaultSecrets of a single path and composites
(``spec.sources``, ``spec.dataFrom``).
``mutated_specs(kind)`` draws one of those and breaks it once, at a random place, in a way chosen from that
place's schema: a wrong JSON type, out-of-range numbers (below ``minimum``, beyond int64), strings too long or
too short or off-pattern or off-enum, huge strings, unicode, control characters, empty or oversized lists, missing
required fields, unknown fields, bad durations, paths with ``..`` and the like. Each draw says *where* it broke
the spec (``Mutation.field``, pydantic's dotted location) so a test can require the condition to name it.

``crd_errors(kind, spec)`` is what an API server would say about the object (``tests/unit/crds/crd_support``:
strict OpenAPI schema, then CEL; plus what jsonschema misses — ``format: int64`` bounds, and Go's ``$``, which
does not match before a trailing newline). ``[]``: the API server would store it.

Invalid values carry ``CANARY``, so a test can check that no message quotes them.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import assume
from hypothesis import strategies as st

from scaivault_operator._cogs.api import (
    DATA_SECRET_TYPES,
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    DURATION_PATTERN,
    SECRET_KEY_PATTERN,
)

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests" / "unit" / "crds") not in sys.path:
    sys.path.insert(0, str(REPO / "tests" / "unit" / "crds"))

from crd_support import (  # noqa: E402
    apply_defaults,
    cel_walk,
    custom_resource,
    load_crds,
    openapi_schema,
    rule_holds,
    strict,
)

__all__ = [
    "CANARY",
    "CONNECTION_KINDS",
    "SCHEMAS",
    "SPEC_SCHEMAS",
    "Mutation",
    "crd_errors",
    "field_named",
    "mutated_specs",
    "shape",
    "valid_specs",
    "value_at",
]

JsonDict = dict[str, Any]
Path_ = tuple[str | int, ...]

#: Planted in every value a mutation invents: no condition message, Event or log line may quote it.
CANARY = "CANARY-SPEC-4b1d"
CONNECTION_KINDS = ("ClusterVaultConnection", "VaultConnection")
INT64_MAX = 2**63 - 1

CRDS = load_crds()
SCHEMAS: dict[str, JsonDict] = {kind: openapi_schema(crd) for kind, crd in CRDS.items()}
SPEC_SCHEMAS: dict[str, JsonDict] = {kind: schema["properties"]["spec"] for kind, schema in SCHEMAS.items()}


# -- what an API server says ---------------------------------------------------------------------------------------


def _go_pattern(validator: Any, pattern: str, instance: Any, schema: JsonDict) -> Any:
    """``pattern`` as RE2 reads it: ``$`` is the end of the text (Python's also matches before a final newline)."""
    if isinstance(instance, str) and not re.search(pattern.replace("$", r"\Z"), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _int64(validator: Any, fmt: str, instance: Any, schema: JsonDict) -> Any:
    if fmt == "int64" and isinstance(instance, int) and not -(2**63) <= instance <= INT64_MAX:
        yield jsonschema.ValidationError(f"{instance} is out of the int64 range")


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _go_pattern, "format": _int64})
_STRICT = {kind: strict(schema) for kind, schema in SCHEMAS.items()}


def _pruned(value: Any) -> Any:
    """``value`` without null object fields: the API server drops them before validating (no field of ours is
    ``nullable``)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def crd_errors(kind: str, spec: Any) -> list[str]:
    """What the API server would refuse in a ``kind`` object with this ``spec`` (``[]``: it would store it)."""
    obj = custom_resource(kind, _pruned(spec))
    errors = [f"{e.json_path}: {e.message[:120]}" for e in _Validator(_STRICT[kind]).iter_errors(obj)]
    if errors:
        return errors
    broken = next(cel_walk(SCHEMAS[kind], apply_defaults(SCHEMAS[kind], obj), "", _cached_rule_holds), None)
    return [broken] if broken else []


@functools.lru_cache(maxsize=4096)
def _holds(rule: str, value_json: str, schema_id: int) -> bool:
    return rule_holds(rule, json.loads(value_json), _SCHEMA_NODES[schema_id])


_SCHEMA_NODES: dict[int, JsonDict] = {}


def _cached_rule_holds(rule: str, value: Any, schema: JsonDict) -> bool:
    """``crd_support.rule_holds`` with results cached (cel-python takes a millisecond or more per rule)."""
    _SCHEMA_NODES[id(schema)] = schema
    return _holds(rule, json.dumps(value, sort_keys=True), id(schema))


# -- names ---------------------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"[\s_-]", "", text).lower()


def field_named(message: str, field: str) -> bool:
    """Whether ``message`` names ``field`` (a dotted location such as ``keys.0.to``): the whole location appears,
    compared without case and spacing (``CA bundle`` names ``caBundle``)."""
    return _norm(field) in _norm(message)


# -- valid specs from the schema -----------------------------------------------------------------------------------

# Cheap equivalents of the schema's name patterns (``from_regex`` costs more than the rest of a draw together).
_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
_ALNUM = _LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
dns_label = st.lists(st.text(_LOWER, min_size=1, max_size=5), min_size=1, max_size=2).map("-".join)
dns_subdomain = st.lists(dns_label, min_size=1, max_size=3).map(".".join)
secret_key = st.text(_ALNUM + "-._", min_size=1, max_size=12).filter(lambda k: not k.startswith(".."))
# Any printable text without '/' (unicode included), never the segments '.' and '..'.
segment = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"), min_size=1, max_size=8
).filter(lambda s: s not in (".", ".."))
scaivault_path = st.lists(segment, min_size=1, max_size=4).map("/".join)
label_name = st.builds(
    lambda head, body: head + body,
    st.sampled_from(_ALNUM),
    st.text(_ALNUM + "-_.", max_size=8).map(lambda t: t + "x" if t else t),
)
label_key = st.one_of(label_name, st.tuples(dns_subdomain, label_name).map("/".join))
label_value = st.one_of(st.just(""), label_name)
durations_ok = st.lists(
    st.tuples(st.integers(1, 500).map(str), st.sampled_from(["s", "m", "h"])), min_size=1, max_size=3
).map(lambda parts: "".join(n + u for n, u in parts))
https_url = st.builds(
    lambda host, port, base: f"https://{host}{port}{base}",
    dns_subdomain,
    st.sampled_from(["", ":8443", ":443"]),
    st.sampled_from(["", "/", "/vault", "/a/b"]),
)
loopback_http = st.builds(
    lambda host, port: f"http://{host}{port}",
    st.sampled_from(["localhost", "127.0.0.1", "[::1]"]),
    st.sampled_from(["", ":8200"]),
)
secret_types = st.sampled_from(
    [
        *DATA_SECRET_TYPES,
        "example.com/config",
        "acme.io/app-settings",
    ]
)


#: ``spec.template.data`` values: templates that render, and ones that fail (undefined name, syntax, filter error).
templates = st.sampled_from(
    [
        "{{ data.password }}",
        "{{ data.user ~ ':' ~ data.password }}",
        "{{ data.password | b64enc }}",
        "{{ data | tojson }}",
        "{% for k in data | sort %}{{ k }},{% endfor %}",
        "{{ sources.main.data.user | sha256 }}",
        "plain text",
        "{{ data.no_such_key }}",
        "{{ data.password",
        "{{ data.password | b64enc | b64dec }}",
        "{{ 'not base64!' | b64dec }}",
    ]
)


@st.composite
def _key_mappings(draw: st.DrawFn) -> list[JsonDict]:
    """``spec.keys``: Secret keys (``to``, else ``from``) all different (the CRD's CEL rule)."""
    targets = draw(st.lists(secret_key, min_size=1, max_size=3, unique=True))
    out: list[JsonDict] = []
    for target in targets:
        source = draw(st.one_of(st.just(target), st.text(min_size=1, max_size=10)))
        out.append({"from": source} if source == target and draw(st.booleans()) else {"from": source, "to": target})
    return out


@st.composite
def _auth(draw: st.DrawFn, kind: str) -> JsonDict:
    """Exactly one method; a ClusterVaultConnection names the Secret's namespace (CEL)."""
    namespace = {"namespace": "scaivault-system"} if kind == "ClusterVaultConnection" else {}
    if draw(st.booleans()):
        ref: JsonDict = {"name": "scaivault-token", **namespace}
        if draw(st.booleans()):
            ref["key"] = "token"
        return {"tokenSecretRef": ref}
    creds: JsonDict = {
        "tokenUrl": draw(st.one_of(https_url, loopback_http)) + "/oauth/token",
        "secretRef": {"name": "scaivault-client", **namespace},
    }
    if draw(st.booleans()):
        creds["scope"] = draw(st.sampled_from(["secrets:read", "", "a b c"]))
    return {"clientCredentials": creds}


@functools.cache
def _selectors() -> st.SearchStrategy[JsonDict]:
    node = SPEC_SCHEMAS["ClusterVaultConnection"]["properties"]["access"]["items"]["properties"]
    return from_schema(node["namespaceSelector"], ("access", 0, "namespaceSelector"))


@st.composite
def _access_rule(draw: st.DrawFn) -> JsonDict:
    """Exactly one of ``namespaces`` and ``namespaceSelector`` (CEL); selectors from the schema."""
    prefixes = st.sampled_from(["apps/", "", "apps/db", "tenants/{namespace}/", "a"])
    rule: JsonDict = {"pathPrefixes": draw(st.lists(prefixes, min_size=1, max_size=2))}
    if draw(st.booleans()):
        rule["namespaces"] = draw(st.lists(st.sampled_from(["team-a", "team-b"]), min_size=1, max_size=2))
    else:
        rule["namespaceSelector"] = draw(_selectors())
    return rule


def _hints(kind: str) -> dict[Path_, st.SearchStrategy[Any]]:
    """Strategies for fields whose rules the OpenAPI schema cannot say (CEL) or the Secret's ObjectMeta adds."""
    if kind == "VaultSecret":
        return {
            ("path",): scaivault_path,
            ("keys",): _key_mappings(),
            ("sources", "[]", "path"): scaivault_path,
            ("sources", "[]", "keys"): _key_mappings(),
            ("dataFrom", "[]", "prefix"): st.builds(
                lambda path, slash: path + slash, scaivault_path, st.sampled_from(["", "/"])
            ),
            ("dataFrom", "[]", "rewrite", "[]", "regexp", "source"): st.sampled_from(["^db_", "(.*)_key$", "x", "-"]),
            ("target", "type"): secret_types,
            # The API server checks a Secret's labels and annotations, not the CRD: valid ones (see the xfail tests).
            ("target", "labels"): st.dictionaries(label_key, label_value, max_size=2),
            ("target", "annotations"): st.dictionaries(label_key, st.text(max_size=12), max_size=2),
            ("template", "data"): st.dictionaries(secret_key, templates, max_size=3),
            ("template", "literals"): st.dictionaries(secret_key, st.text(max_size=12), max_size=2),
            ("template", "type"): secret_types,
            ("template", "labels"): st.dictionaries(label_key, label_value, max_size=2),
            ("template", "annotations"): st.dictionaries(label_key, st.text(max_size=12), max_size=2),
        }
    return {
        ("url",): st.one_of(https_url, loopback_http),
        ("auth",): _auth(kind),
        ("pollInterval",): durations_ok,
        ("access",): st.lists(_access_rule(), max_size=2),
        ("caBundle",): st.sampled_from(["", "not a certificate"]),
    }


_PATTERNS: dict[str, st.SearchStrategy[str]] = {
    DNS_SUBDOMAIN_PATTERN: dns_subdomain,
    DNS_LABEL_PATTERN: dns_label,
    SECRET_KEY_PATTERN: secret_key,
    DURATION_PATTERN: durations_ok,
}


def _string(node: JsonDict) -> st.SearchStrategy[str]:
    low, high = node.get("minLength", 0), min(node.get("maxLength", 16), 16)
    if node.get("pattern") in _PATTERNS:
        return _PATTERNS[node["pattern"]]
    if "pattern" in node:
        return st.from_regex(node["pattern"].lstrip("^").rstrip("$"), fullmatch=True).filter(
            lambda s: low <= len(s) <= node.get("maxLength", 10**9)
        )
    return st.text(min_size=low, max_size=max(low, high))


def from_schema(
    node: JsonDict, path: Path_ = (), hints: Mapping[Path_, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[Any]:
    """Instances of an OpenAPI schema node (hints by location override nodes)."""
    hints = hints or {}
    hinted = hints.get(shape(path))
    if hinted is not None:
        return hinted
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object":
        if "properties" in node:
            props = node["properties"]
            required = set(node.get("required", ()))
            return st.fixed_dictionaries(
                {name: from_schema(props[name], (*path, name), hints) for name in props if name in required},
                optional={
                    name: from_schema(props[name], (*path, name), hints) for name in props if name not in required
                },
            )
        additional = node.get("additionalProperties")
        values = from_schema(additional, (*path, "*"), hints) if isinstance(additional, dict) else st.just("")
        return st.dictionaries(label_key, values, max_size=2)
    if kind == "array":
        low = node.get("minItems", 0)
        high = min(node.get("maxItems", 2), 2)
        return st.lists(from_schema(node["items"], (*path, 0), hints), min_size=low, max_size=max(low, high))
    if kind == "string":
        return _string(node)
    if kind == "integer":
        high = INT64_MAX if node.get("format") == "int64" else None
        return st.integers(min_value=node.get("minimum"), max_value=node.get("maximum", high))
    if kind == "boolean":
        return st.booleans()
    return st.none()


@functools.cache
def valid_specs(kind: str) -> st.SearchStrategy[JsonDict]:
    """Specs of ``kind`` built from its CRD schema (most pass ``crd_errors``; tests check every one)."""
    strategy: st.SearchStrategy[JsonDict] = from_schema(SPEC_SCHEMAS[kind], (), _hints(kind))
    if kind in CONNECTION_KINDS:
        # Plain HTTP to a host that is not loopback only with insecureHTTP: true (CEL on the whole spec).
        strategy = st.builds(
            _finish_connection,
            strategy,
            st.booleans(),
            st.sampled_from(["", "http://vault.example"]),
            st.integers(0, 9),
        )
    if kind == "VaultSecret":
        strategy = strategy.map(_finish_vaultsecret)
    return strategy


def _finish_vaultsecret(spec: JsonDict) -> JsonDict:
    """The rules across fields that the schema alone does not give: ``target.immutable`` only with creationPolicy
    Owner and a name of at most 232 characters (CEL on Target); distinct ``rollout.targets`` (CEL); a template's keys
    in data or literals, not both, at least one with mergePolicy Replace, and one Secret type (CEL)."""
    target = spec.get("target")
    if isinstance(target, dict) and target.get("immutable") is True:
        target["creationPolicy"] = "Owner"
        if isinstance(target.get("name"), str):
            target["name"] = target["name"][:232].rstrip(".-") or "a"
    template = spec.get("template")
    if isinstance(template, dict):  # CEL on Template and on the spec: the keys rules and one type
        data, literals = template.get("data") or {}, template.get("literals") or {}
        if isinstance(literals, dict) and literals:
            template["literals"] = {key: value for key, value in literals.items() if key not in data}
        if template.get("mergePolicy", "Replace") == "Replace" and not (data or template.get("literals")):
            template["mergePolicy"] = "Merge"
        if isinstance(target, dict) and "type" in template and target.get("type") not in (None, "Opaque"):
            target["type"] = template["type"]
    if "path" in spec:  # exactly one of path, or sources and/or dataFrom (CEL on the spec)
        spec.pop("sources", None)
        spec.pop("dataFrom", None)
    elif "sources" not in spec and "dataFrom" not in spec:
        spec["path"] = "app/db"
    else:  # version, keys, target.immutable and onSourceDeleted: Delete go with path only
        spec.pop("version", None)
        spec.pop("keys", None)
        spec.pop("onSourceDeleted", None)
        if isinstance(target, dict):
            target.pop("immutable", None)
        if isinstance(spec.get("sources"), list):  # distinct names (CEL)
            spec["sources"] = list({source.get("name"): source for source in spec["sources"]}.values())
    rollout = spec.get("rollout")
    if isinstance(rollout, dict) and isinstance(rollout.get("targets"), list):
        distinct = {(t.get("kind"), t.get("name")): t for t in rollout["targets"] if isinstance(t, dict)}
        rollout["targets"] = list(distinct.values())
    return spec


def _finish_connection(spec: JsonDict, insecure: bool, plain: str, bundle: int) -> JsonDict:
    spec = dict(spec)
    if bundle:  # rarely a caBundle: any one (even "") costs ~50 ms (the client loads the system's CAs first)
        spec.pop("caBundle", None)
    if plain and insecure:
        spec["url"], spec["insecureHTTP"] = plain, True
    return spec


# -- mutations -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    """One break in a spec: what was done, and the location a message must name (pydantic's dotted ``loc``)."""

    kind: str
    where: Path_
    #: The new value is null, which the API server drops (the field counts as absent).
    dropped: bool = False

    @property
    def field(self) -> str:
        return ".".join(str(part) for part in self.where) or "spec"


def _nodes(node: JsonDict, value: Any, path: Path_ = ()) -> list[tuple[Path_, JsonDict, Any]]:
    """(location, schema node, value) for every value present in the spec, the root first."""
    out = [(path, node, value)]
    if isinstance(value, dict) and "properties" in node:
        for name, sub in node["properties"].items():
            if name in value:
                out += _nodes(sub, value[name], (*path, name))
    elif isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        for key, item in value.items():
            out += _nodes(node["additionalProperties"], item, (*path, key))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            out += _nodes(node["items"], item, (*path, index))
    return out


def value_at(spec: Any, where: Path_) -> Any:
    """The value at ``where`` in ``spec`` (``None`` when absent)."""
    for part in where:
        if isinstance(spec, list) and isinstance(part, int) and part < len(spec):
            spec = spec[part]
            continue
        if not isinstance(spec, dict) or part not in spec:
            return None
        spec = spec[part]
    return spec


def _set(spec: Any, where: Path_, value: Any) -> Any:
    if not where:
        return value
    head, rest = where[0], where[1:]
    if isinstance(spec, list):
        copy_ = list(spec)
        copy_[head] = _set(copy_[head], rest, value)  # type: ignore[index]
        return copy_
    return {**spec, head: _set(spec[head], rest, value)}


def _drop(spec: Any, where: Path_) -> Any:
    head, rest = where[0], where[1:]
    if not rest:
        return {k: v for k, v in spec.items() if k != head}
    if isinstance(spec, list):
        copy_ = list(spec)
        copy_[head] = _drop(copy_[head], rest)  # type: ignore[index]
        return copy_
    return {**spec, head: _drop(spec[head], rest)}


huge_text = st.builds(lambda n, fill: CANARY + fill * n, st.integers(2_000, 120_000), st.sampled_from(["x", "é", "🔑"]))
control_text = st.sampled_from(["\x00", "\n", "\x1b[31m", "\x7f", "\u202e", "\x85"]).map(lambda c: f"a{c}{CANARY}")
off_pattern = st.sampled_from(["UPPER", "under_score", "-dash", "dot.", "a b", f"{CANARY}!", "é", "a\n"])
# At least one character outside ASCII: drawn text that happens to be ASCII ("0") would make a valid key name, which
# the operator may rightly quote (a "unicode" mutation must stay a mutation).
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).map(
    lambda t: t + CANARY if not t.isascii() else t + "é" + CANARY
)
weird_names = st.sampled_from(["unknownField", "Path", "pathh", "é", "🔑", "spec", "status", "a.b", "x y"])
_TYPE_SAMPLES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.sampled_from([CANARY, "", "1"]),
    "integer": st.sampled_from([0, 7, -1, 2**70]),
    "number": st.sampled_from([1.5, -0.25, 1e300]),
    "boolean": st.booleans(),
    "object": st.just({"x": CANARY}),
    "array": st.just([CANARY]),
    "null": st.none(),
}
#: Strings an API server refuses in pollInterval (pattern or ``>= 1s``), and paths the CEL rules refuse.
bad_durations = st.sampled_from(
    [
        "",
        "5",
        "1d",
        "-1s",
        "1.s",
        ".5s",
        "0s",
        "999ms",
        "0.5s",
        "1s ",
        "1S",
        "1 s",
        "inf",
        "1e3s",
        "9" * 40 + "s",
        "PT1S",
        "1h-1m",
        CANARY,
    ]
)
bad_paths = st.sampled_from(
    [
        "..",
        ".",
        "a/../b",
        "a/./b",
        "../a",
        "a/..",
        "/a",
        "a/",
        "a//b",
        "/",
        "//",
        "a/b/",
        f"{CANARY}/..",
        "a/\x00b",
        "a\nb",
        "a\tb",
        "x" * 1025,
        f"a/{CANARY}/\x7f",
    ]
)
bad_urls = st.sampled_from(
    [
        "ftp://vault.example",
        "vault.example",
        "//vault.example",
        "HTTPS://vault.example",
        "https//x",
        "file:///etc",
        f"mailto:{CANARY}",
        "http://vault.example",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "http://localhost@evil.example",
        " https://vault.example",
    ]
)
bad_types = st.sampled_from(
    [
        "kubernetes.io/service-account-token",
        "bootstrap.kubernetes.io/token",
        "kubernetes.io/other",
        "opaque",
        "Opaque ",
        "example/x",
        "Example.com/x",
        "example.com/",
        f"{CANARY}.example/x",
    ]
)


def _duplicate_key(keys: list[JsonDict]) -> st.SearchStrategy[list[JsonDict]]:
    first = keys[0]
    target = first.get("to", first["from"])
    return st.sampled_from([[*keys, dict(first)], [*keys, {"from": CANARY, "to": target}]])


def _auth_not_one(auth: JsonDict) -> st.SearchStrategy[JsonDict]:
    namespace = {"namespace": "scaivault-system"}
    both = {
        "tokenSecretRef": {"name": "scaivault-token", **namespace},
        "clientCredentials": {
            "tokenUrl": "https://auth.example/token",
            "secretRef": {"name": "scaivault-client", **namespace},
        },
    }
    return st.sampled_from([{}, both])


def _rule_not_one(rule: JsonDict) -> st.SearchStrategy[JsonDict]:
    neither = {k: v for k, v in rule.items() if k not in ("namespaces", "namespaceSelector")}
    return st.sampled_from([neither, {**neither, "namespaces": ["team-a"], "namespaceSelector": {}}])


def _without_namespace(ref: JsonDict) -> st.SearchStrategy[JsonDict]:
    return st.just({k: v for k, v in ref.items() if k != "namespace"})


#: Prefixes the CEL rules of ``dataFrom[].prefix`` refuse (a prefix may end in '/', unlike a path).
bad_prefixes = st.sampled_from(["/", "/a/", "a//", "a//b/", "..", ".", "./", "a/../", "a/./b", f"{CANARY}/../"])


def _shape_broken(spec: JsonDict) -> st.SearchStrategy[JsonDict]:
    """``spec`` against the rules of its shape (CEL on the spec, ``api.SOURCES_RULES``): a single path without it or
    with sources/dataFrom beside it; a composite with a path, or with what goes with a path only, or with nothing."""
    if "path" in spec:
        return st.sampled_from([
            {k: v for k, v in spec.items() if k != "path"},
            {**spec, "sources": [{"name": "extra", "path": f"app/{CANARY}"}]},
            {**spec, "dataFrom": [{"prefix": f"app/{CANARY}/"}]},
        ])  # fmt: skip
    target = spec.get("target") if isinstance(spec.get("target"), dict) else {}
    return st.sampled_from([
        {**spec, "path": f"app/{CANARY}"},
        {**spec, "version": 3},
        {**spec, "keys": [{"from": CANARY}]},
        {**spec, "onSourceDeleted": "Delete"},
        {**spec, "target": {**target, "immutable": True}},
        {k: v for k, v in spec.items() if k not in ("sources", "dataFrom")},
    ])  # fmt: skip


def _duplicate_source_name(sources: list[JsonDict]) -> st.SearchStrategy[list[JsonDict]]:
    return st.just([*sources, {"name": sources[0]["name"], "path": f"app/{CANARY}"}])


#: Breakers of the rules the CRD says in CEL (the schema's types alone would rarely hit them): by the location's
#: shape (list indices as ``[]``), the current value → a strategy of broken values.
_RULE_BREAKERS: dict[str, dict[Path_, Callable[[Any], st.SearchStrategy[Any]]]] = {
    "VaultSecret": {
        (): _shape_broken,
        ("path",): lambda _: bad_paths,
        ("target", "type"): lambda _: bad_types,
        ("keys",): _duplicate_key,
        ("sources",): _duplicate_source_name,
        ("sources", "[]", "path"): lambda _: bad_paths,
        ("sources", "[]", "keys"): _duplicate_key,
        ("dataFrom", "[]", "prefix"): lambda _: bad_prefixes,
    },
    "connection": {
        ("pollInterval",): lambda _: bad_durations,
        ("url",): lambda _: bad_urls,
        ("auth", "clientCredentials", "tokenUrl"): lambda _: bad_urls,
        ("auth",): _auth_not_one,
        ("access", "[]"): _rule_not_one,
        ("auth", "tokenSecretRef"): _without_namespace,
        ("auth", "clientCredentials", "secretRef"): _without_namespace,
    },
}


def _wrong_types(node: JsonDict) -> st.SearchStrategy[Any]:
    own = node.get("type")
    if own == "integer":  # 1.0-style floats are integers to JSON Schema and to pydantic alike
        return st.sampled_from(["string", "boolean", "object", "array", "null"]).flatmap(_TYPE_SAMPLES.__getitem__)
    others = [t for t in _TYPE_SAMPLES if t != own and not (own == "number" and t == "integer")]
    return st.sampled_from(others).flatmap(_TYPE_SAMPLES.__getitem__)


def _mutation_names(kind: str, where: Path_, node: JsonDict, value: Any) -> list[str]:
    """Every way to break ``value`` (at ``where``, of schema ``node``); ``_mutate`` carries one out."""
    out = ["wrong-type"] if where else []
    node_type = node.get("type")
    if node_type == "object" and "properties" in node:
        out += [f"missing:{name}" for name in node.get("required", ()) if name in value]
        out.append("unknown-field")
    elif node_type == "object" and isinstance(node.get("additionalProperties"), dict):
        out.append("map-value-type")
    elif node_type == "array":
        out += ["empty-list"] if node.get("minItems", 0) >= 1 else []
        out += ["too-many-items"] if "maxItems" in node and value else []
        out += ["item-type"] if value else []
    elif node_type == "string":
        out += ["empty-string"] if node.get("minLength", 0) >= 1 else []
        out += ["too-long"] if "maxLength" in node else []
        out += ["huge-string", "unicode", "control-character"]
        out += ["off-pattern"] if "pattern" in node else []
        out += ["off-enum"] if "enum" in node else []
    elif node_type == "integer":
        out += ["below-minimum"] if "minimum" in node else []
        out += ["beyond-int64"] if node.get("format") == "int64" else []
        out += ["numeric-string", "boolean-for-int", "fraction"]
    elif node_type == "boolean":
        out += ["string-for-bool", "int-for-bool"]
    # The rules the CRD says in CEL, where the schema types alone would rarely hit them.
    if shape(where) in _RULE_BREAKERS["VaultSecret" if kind == "VaultSecret" else "connection"]:
        out.append("rule")
    return out


def shape(where: Path_) -> Path_:
    """A location with its list indices as ``[]``: ``("keys", 0, "to")`` → ``("keys", "[]", "to")``."""
    return tuple("[]" if isinstance(p, int) else p for p in where)


def _mutate(
    draw: st.DrawFn, kind: str, name: str, where: Path_, node: JsonDict, value: Any, spec: Any
) -> tuple[Any, Path_]:
    """Carry out mutation ``name`` at ``where``: (the new spec, the location a message must name)."""
    if name.startswith("missing:"):
        field = name.split(":", 1)[1]
        return _drop(spec, (*where, field)), (*where, field)
    if name == "unknown-field":
        field = draw(weird_names.filter(lambda n: n not in node["properties"]))
        return _set(spec, where, {**value, field: draw(st.sampled_from([CANARY, 1, {"a": CANARY}]))}), (*where, field)
    if name == "map-value-type":
        bad = draw(st.sampled_from([1, True, {"a": CANARY}, [CANARY]]))
        return _set(spec, where, {**value, "k": bad}), (*where, "k")
    if name == "item-type":
        return _set(spec, (*where, 0), draw(_wrong_types(node["items"]))), (*where, 0)
    strategy: st.SearchStrategy[Any]
    if name == "wrong-type":
        strategy = _wrong_types(node)
    elif name == "empty-list":
        strategy = st.just([])
    elif name == "too-many-items":
        strategy = st.just([value[0]] * (node["maxItems"] + 1))
    elif name == "empty-string":
        strategy = st.just("")
    elif name == "too-long":
        limit = node["maxLength"]
        strategy = st.integers(1, 50).map(lambda extra: (CANARY + "a" * (limit + extra))[: limit + extra])
    elif name == "huge-string":
        strategy = huge_text
    elif name == "unicode":
        strategy = unicode_text
    elif name == "control-character":
        strategy = control_text
    elif name == "off-pattern":
        strategy = off_pattern
    elif name == "off-enum":
        strategy = st.sampled_from([node["enum"][0].lower(), node["enum"][0] + "s", CANARY])
    elif name == "below-minimum":
        strategy = st.integers(-(2**63), node["minimum"] - 1)
    elif name == "beyond-int64":
        strategy = st.integers(INT64_MAX + 1, 2**200)
    elif name == "numeric-string":
        strategy = st.sampled_from(["3", "1", " 2 "])
    elif name == "boolean-for-int":
        strategy = st.booleans()
    elif name == "fraction":
        strategy = st.sampled_from([1.5, 2.25, 0.5])
    elif name == "string-for-bool":
        strategy = st.sampled_from(["true", "false", "yes", "on", CANARY])
    elif name == "int-for-bool":
        strategy = st.sampled_from([0, 1, 2])
    elif name == "rule":
        strategy = _RULE_BREAKERS["VaultSecret" if kind == "VaultSecret" else "connection"][shape(where)](value)
    else:  # pragma: no cover - a name _mutation_names does not make
        raise AssertionError(name)
    return _set(spec, where, draw(strategy)), where


#: ``exclude(kind, mutation name, location, new spec)``: True for a mutation a test covers elsewhere (a known gap).
Exclusion = Callable[[str, str, Path_, Any], bool]


@st.composite
def mutated_specs(draw: st.DrawFn, kind: str, exclude: Exclusion | None = None) -> tuple[JsonDict, Mutation]:
    """A valid spec of ``kind`` broken once (see the module docstring); ``exclude(kind, name, where, spec)`` rules
    out mutations a test covers elsewhere."""
    spec = draw(valid_specs(kind))
    nodes = _nodes(SPEC_SCHEMAS[kind], spec)
    choices = [
        (index, name)
        for index, (where, node, value) in enumerate(nodes)
        for name in _mutation_names(kind, where, node, value)
    ]
    index, name = draw(st.sampled_from(choices))
    where, node, value = nodes[index]
    new, located = _mutate(draw, kind, name, where, node, value, spec)
    name = "rule-" + ".".join(map(str, shape(where))) if name == "rule" else name.replace(":", "-")
    assume(exclude is None or not exclude(kind, name, located, new))
    return new, Mutation(name, located, dropped=value_at(new, located) is None)
