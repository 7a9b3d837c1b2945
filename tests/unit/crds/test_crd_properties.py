"""Property tests: the CRD and the pydantic models agree on randomly built valid specs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crd_support import JsonDict, api_server_errors, custom_resource, rule_holds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaivault_operator._cogs.api import VaultSecretSpec, parse_duration

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

dns_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
dns_subdomain = st.lists(dns_label, min_size=1, max_size=3).map(".".join)
secret_key = st.from_regex(r"[-._a-zA-Z0-9]{1,20}", fullmatch=True)
# Any printable text without '/', except the segments '.' and '..'; control characters are refused by the model.
segment = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"), min_size=1, max_size=16
).filter(lambda s: s not in (".", ".."))
path = st.lists(segment, min_size=1, max_size=6).map("/".join)


@st.composite
def key_mappings(draw: st.DrawFn) -> list[JsonDict]:
    """Keys whose target keys (``to``, else ``from``) are all different."""
    targets = draw(st.lists(secret_key, min_size=1, max_size=8, unique=True))
    mappings: list[JsonDict] = []
    for target in targets:
        source = draw(st.one_of(st.just(target), st.text(min_size=1, max_size=20)))
        mappings.append(
            {"from": source} if source == target and draw(st.booleans()) else {"from": source, "to": target}
        )
    return mappings


def _optional(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[JsonDict]:
    """Dicts with any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


#: Label and annotation keys as Kubernetes requires them (an optional DNS-subdomain prefix, then a short name).
metadata_key = st.builds(
    lambda prefix, name: prefix + name,
    st.sampled_from(["", "example.com/", "a.b-c/"]),
    st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?\Z"),
)
label_value = st.from_regex(r"\A(([A-Za-z0-9][-A-Za-z0-9_.]{0,10})?[A-Za-z0-9])?\Z")
labels = st.dictionaries(metadata_key, label_value, max_size=3)
annotations = st.dictionaries(metadata_key, st.text(max_size=20), max_size=3)
target = _optional(
    {
        "name": dns_subdomain,
        "type": st.sampled_from(["Opaque", "kubernetes.io/dockerconfigjson", "kubernetes.io/tls"]),
        "labels": labels,
        "annotations": annotations,
        "creationPolicy": st.sampled_from(["Owner", "Adopt"]),
    }
)
connection_ref = st.fixed_dictionaries(
    {"name": dns_subdomain}, optional={"kind": st.sampled_from(["ClusterVaultConnection", "VaultConnection"])}
)
vaultsecret_specs = st.fixed_dictionaries(
    {"path": path},
    optional={
        "version": st.integers(min_value=1, max_value=2**63 - 1),
        "connectionRef": connection_ref,
        "keys": key_mappings(),
        "target": target,
    },
)


@_SETTINGS
@given(spec=vaultsecret_specs)
def test_valid_vaultsecret_specs_pass_crd_and_model_and_round_trip(
    schemas: dict[str, JsonDict], spec: JsonDict
) -> None:
    assert api_server_errors(schemas["VaultSecret"], custom_resource("VaultSecret", spec)) == []
    model = VaultSecretSpec.model_validate(spec)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == spec
    assert VaultSecretSpec.model_validate(model.model_dump(by_alias=True, mode="json")) == model


durations = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 5000).map(str), st.decimals(0, 100, places=2).map(str)),
        st.sampled_from(["ms", "s", "m", "h"]),
    ),
    min_size=1,
    max_size=3,
).map(lambda parts: "".join(number + unit for number, unit in parts))


@_SETTINGS
@given(text=durations)
def test_poll_interval_rule_agrees_with_parse_duration(schemas: dict[str, JsonDict], text: str) -> None:
    """The CRD's ``duration(self) >= duration('1s')`` and the operator's ``parse_duration`` read durations alike."""
    node = schemas["ClusterVaultConnection"]["properties"]["spec"]["properties"]["pollInterval"]
    [validation] = node["x-kubernetes-validations"]
    assert rule_holds(validation["rule"], text) == (parse_duration(text) >= timedelta(seconds=1))
