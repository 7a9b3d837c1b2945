"""Property tests over VaultSecret specs and ScaiVault answers: the pure pipeline never raises unhandled.

The whole operator is too slow to run under hypothesis, so this drives what a sync does without I/O:
``Registry.upsert`` (with arbitrary bodies, garbage metadata included) and the registry's other event inputs;
a real ``ScaiVaultClient`` on an ``httpx.MockTransport`` answering anything (any status, any body) with
``conditions.classify`` on whatever it raises; and ``manifests.secret_data`` → ``desired_secret`` →
``secret_patch`` plus ``conditions.desired_status`` → ``status_patch`` on what it returns.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pydantic
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scaivault_operator._cogs.api import API_VERSION, VaultSecretSpec
from scaivault_operator._cogs.scaivault import RetryPolicy, ScaiVaultClient, ScaiVaultError, StaticToken
from scaivault_operator._logic import conditions
from scaivault_operator._logic.manifests import (
    Owner,
    SourceDataError,
    data_intact,
    desired_secret,
    needs_recreate,
    ownership,
    secret_data,
    secret_patch,
)
from scaivault_operator._logic.registry import Registry

REASONS = {
    conditions.SYNCED,
    conditions.UNAUTHORIZED,
    conditions.FORBIDDEN,
    conditions.SOURCE_NOT_FOUND,
    conditions.BACKEND_UNAVAILABLE,
    conditions.INVALID_SPEC,
    conditions.POLICY_DENIED,
    conditions.TARGET_CONFLICT,
    conditions.INVALID_SOURCE_DATA,
}

json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
anything = json_value | st.binary(max_size=8) | st.tuples(json_scalar)

segment = st.sampled_from(["apps", "db", "a", "..", ".", "", "x y", "é", "tenants", "\x00", "ns-1"])
paths = st.lists(segment, min_size=0, max_size=4).map("/".join) | st.text(max_size=30)
key_names = st.sampled_from(["password", "user", "a.b", "has space", "", "..", "x" * 300, "é"]) | st.text(max_size=8)
key_mapping = st.fixed_dictionaries({"from": key_names}, optional={"to": key_names | st.none()})
target = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["db", "Bad_Name", "", "a" * 300, "db.v2"]) | st.text(max_size=10),
        "type": st.sampled_from(["Opaque", "kubernetes.io/basic-auth", ""]),
        "labels": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3) | anything,
        "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
        "creationPolicy": st.sampled_from(["Owner", "Adopt", "Steal"]),
    },
)
spec = st.fixed_dictionaries(
    {"path": paths},
    optional={
        "version": st.integers(-2, 5) | st.none() | st.text(max_size=3) | st.booleans(),
        "connectionRef": st.fixed_dictionaries(
            {"name": st.sampled_from(["default", "Bad!", ""])},
            optional={"kind": st.sampled_from(["ClusterVaultConnection", "VaultConnection", "Other"])},
        ),
        "keys": st.lists(key_mapping, max_size=4) | st.none() | anything,
        "target": target | anything,
        "unknownField": anything,
    },
)
#: Mostly-valid specs, so that many examples get as far as writing a Secret.
valid_path = st.lists(st.sampled_from(["apps", "db", "web", "tenants", "ns-1"]), min_size=1, max_size=4).map("/".join)
source_keys = st.sampled_from(["password", "user", "a.b", "n", "bad key", ""])
valid_spec = st.fixed_dictionaries(
    {"path": valid_path},
    optional={
        "version": st.integers(1, 3),
        "keys": st.lists(
            st.fixed_dictionaries({"from": source_keys}, optional={"to": st.sampled_from(["PASSWORD", "u", "x.y"])}),
            min_size=1,
            max_size=3,
        ),
        "target": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["db", "db-2"]),
                "type": st.sampled_from(["Opaque", "kubernetes.io/basic-auth"]),
                "labels": st.dictionaries(
                    st.sampled_from(["team", "app.kubernetes.io/managed-by"]), st.text(max_size=5)
                ),
                "creationPolicy": st.sampled_from(["Owner", "Adopt"]),
            },
        ),
    },
)
secret_data_shapes = st.dictionaries(source_keys | st.text(max_size=5), json_value, max_size=5) | json_value
garbage_meta = st.dictionaries(
    st.sampled_from(["name", "namespace", "uid", "generation", "labels", "ownerReferences", "annotations"]),
    anything,
)
meta = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["db", "app"]),
        "namespace": st.sampled_from(["team-a", "team-b"]),
        "uid": st.sampled_from(["u1", "u2"]),
        "generation": st.integers(1, 3),
    }
)
status = st.fixed_dictionaries(
    {},
    optional={
        "conditions": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["Ready", "Other"]), "status": st.sampled_from(["True", "False"])},
                optional={"reason": st.sampled_from(sorted(REASONS)) | anything, "lastTransitionTime": anything},
            )
            | anything,
            max_size=3,
        )
        | anything,
        "syncedVersion": st.integers(0, 3) | anything,
        "observedGeneration": st.integers(1, 3) | anything,
        "secretName": st.text(max_size=5) | anything,
    },
)
body = st.fixed_dictionaries(
    {"metadata": meta | garbage_meta | anything},
    optional={"spec": spec | anything, "status": status | anything, "apiVersion": st.just(API_VERSION)},
)


def managed(meta_: Any, data: Any, annotations: Any) -> dict[str, Any]:
    return {"metadata": meta_ if not isinstance(meta_, dict) else {**meta_, "annotations": annotations},
            "data": data}  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("upsert"), body),
            st.tuples(st.just("remove"), st.tuples(st.sampled_from(["team-a", "team-b"]), st.sampled_from(["db"]))),
            st.tuples(st.just("versions"), st.dictionaries(paths, st.integers(1, 3) | st.none(), max_size=3)),
            st.tuples(
                st.sampled_from(["ADDED", "MODIFIED", "DELETED"]),
                st.builds(
                    managed,
                    meta | garbage_meta,
                    st.dictionaries(st.text(max_size=4), st.text(max_size=4)) | anything,
                    st.dictionaries(st.text(max_size=30), st.text(max_size=4)) | anything,
                ),
            ),
        ),
        max_size=8,
    )
)
def test_registry_never_raises(events):
    registry = Registry()
    conn = ("ClusterVaultConnection", "", "default")
    for kind, payload in events:
        if kind == "upsert":
            source = registry.upsert(payload)
            if source is not None:
                registry.take_dirty(source)
        elif kind == "remove":
            registry.remove(payload)
        elif kind == "versions":
            registry.observe_versions(conn, payload)
        else:
            registry.observe_secret(kind, payload)
        registry.followed_paths(conn)
        for entry in registry.entries.values():
            if entry.spec is None:
                assert entry.spec_error
            else:
                assert entry.source is not None
                assert entry.key in registry.by_source[entry.source]


def parse_spec(raw: Any) -> VaultSecretSpec | None:
    """The spec, or None when it is invalid — which must classify as InvalidSpec (what the registry reports)."""
    failure = None
    try:
        return VaultSecretSpec.model_validate(raw)
    except pydantic.ValidationError as exc:
        failure = conditions.classify(exc)
    assert failure.reason == conditions.INVALID_SPEC
    return None


def read_once(status_code: int, answer: Any, path: str, version: int | None) -> Any:
    """One ``ScaiVaultClient.read`` against a transport that answers ``status_code`` with ``answer``."""

    def handler(request: httpx.Request) -> httpx.Response:
        content = answer if isinstance(answer, bytes) else json.dumps(answer).encode()  # NaN/Infinity: not JSON
        return httpx.Response(status_code, content=content, headers={"Content-Type": "application/json"})

    async def run() -> Any:
        client = ScaiVaultClient("https://vault.test", StaticToken("tok-en"), retry=RetryPolicy(max_attempts=1),
                                 transport=httpx.MockTransport(handler))  # fmt: skip
        try:
            return await client.read(path, version)
        finally:
            await client.aclose()

    return asyncio.run(run())


well_formed_answer = st.fixed_dictionaries(
    {
        "path": st.just("apps/web/db"),
        "version": st.integers(1, 4),
        "data": st.dictionaries(source_keys | st.text(max_size=5), json_value, max_size=5),
        "secret_type": st.just("json"),
    }
)
secret_answer = st.fixed_dictionaries(
    {
        "path": st.just("apps/web/db"),
        "version": st.integers(1, 4) | st.integers(1, 4) | json_value,
        "data": secret_data_shapes,
    },
    optional={"secret_type": json_value, "metadata": json_value, "created_at": json_value},
)


existing_secret = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["Opaque", "kubernetes.io/tls"]) | anything,
        "immutable": st.booleans() | anything,
        "data": st.dictionaries(st.text(max_size=4), st.text(max_size=8)) | anything,
        "metadata": garbage_meta | anything,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    spec_body=st.one_of(valid_spec, valid_spec, spec),
    status_code=st.just(200) | st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504]),
    answer=st.one_of(well_formed_answer, well_formed_answer, secret_answer, json_value, st.binary(max_size=20)),
    matching=st.sampled_from([True, True, True, False]),
)
def test_every_scaivault_answer_is_a_secret_or_a_classified_error(spec_body, status_code, answer, matching):
    parsed = parse_spec(spec_body)
    if parsed is None:
        return
    if matching and isinstance(answer, dict) and "path" in answer:  # an answer for what was asked (mostly)
        answer = {**answer, "path": parsed.path}
        if parsed.version is not None:
            answer["version"] = parsed.version
    try:
        secret = read_once(status_code, answer, parsed.path, parsed.version)
    except ScaiVaultError as exc:
        failure = conditions.classify(exc)
        assert failure.reason in REASONS - {conditions.SYNCED}
        assert failure.message
        event(f"read failed: {failure.reason}")
    else:
        assert secret.path == parsed.path
        assert isinstance(secret.data, dict)
        event("read")


@settings(max_examples=300, deadline=None)
@given(
    spec_body=valid_spec,
    data=secret_data_shapes,
    version=st.integers(1, 2**40),
    existing=existing_secret,
    previous=status | anything,
)
def test_materializing_never_raises(spec_body, data, version, existing, previous):
    parsed = parse_spec(spec_body)
    if parsed is None:
        return
    owner = Owner(api_version=API_VERSION, kind="VaultSecret", name="db", namespace="team-a", uid="u1")
    try:
        secret_map = secret_data(data, parsed.keys)
    except SourceDataError as exc:
        failure = conditions.classify(exc)
        assert failure.reason == conditions.INVALID_SOURCE_DATA
        outcome: tuple[bool, str, str, int | None] = (False, failure.reason, failure.message, None)
        event("InvalidSourceData")
    else:
        desired = desired_secret(owner=owner, spec=parsed, data=secret_map, version=version,
                                 connection="ClusterVaultConnection/default")  # fmt: skip
        json.dumps(desired)
        assert data_intact(desired)
        assert ownership(desired, "u1") == "ours"
        assert secret_patch(desired, desired) is None
        if existing is not None:
            ownership(existing, "u1")
            if not needs_recreate(existing, desired):
                json.dumps(secret_patch(existing, desired))
        outcome = (True, conditions.SYNCED, "synced", version)
        event("a Secret was built")

    ok, reason, message, synced = outcome
    prev = previous if isinstance(previous, dict) else None
    desired_status = conditions.desired_status(previous=prev, generation=1, ok=ok, reason=reason, message=message,
                                               now="2026-01-01T00:00:00Z", synced_version=synced,
                                               secret_name="db" if ok else None, synced_at=None)  # fmt: skip
    conditions.status_patch(prev, desired_status)
    conditions.is_transition(prev, desired_status)
    assert conditions.status_patch(desired_status, desired_status) is None
