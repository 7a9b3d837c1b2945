"""Several sources in one Secret on a real cluster: spec.sources and spec.dataFrom become one Secret, the status the
API server stores (status.sources, sourceCount, the Sources column), and following a source and a prefix."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import E2E, JsonDict, annotations_of, ready_condition, vaultsecret_manifest, wait_for

from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.manifests import ANNOTATION_PATH, ANNOTATION_REVISION, ANNOTATION_SOURCES

pytestmark = pytest.mark.e2e


async def create(env: E2E, name: str, **spec: Any) -> JsonDict:
    """A VaultSecret with several sources (no spec.path) through this test's VaultConnection."""
    return await env.api.create(vaultsecret_manifest(name, env.namespace, {"connectionRef": env.connection_ref,
                                                                           **spec}))  # fmt: skip


def tagged(env: E2E, path: str, data: dict[str, Any], *tags: str) -> int:
    return env.vault.vault.write(path, data, metadata={"tags": list(tags)}).version


async def test_sources_and_data_from_in_one_secret(env: E2E, operator: Runtime | None) -> None:
    env.write("e2e/multi/db", {"host": "db.internal", "password": "pw-1"})
    tagged(env, "e2e/multi/found/stripe", {"token": "t-1"}, "prod")
    tagged(env, "e2e/multi/found/legacy", {"token": "old"}, "dev")
    url = "postgres://app:{{ sources.db.data.password }}@{{ sources.db.data.host }}/app"
    template = {"mergePolicy": "Merge", "data": {"DATABASE_URL": url}}
    await create(env, "multi", sources=[{"name": "db", "path": "e2e/multi/db"}],
                 dataFrom=[{"prefix": "e2e/multi/found/", "tags": ["prod"]}], template=template)  # fmt: skip

    want = {"host": "db.internal", "password": "pw-1", "stripe_token": "t-1",
            "DATABASE_URL": "postgres://app:pw-1@db.internal/app"}  # fmt: skip
    secret = await env.wait_secret_data("multi", want)
    annotations = annotations_of(secret)
    assert ANNOTATION_PATH not in annotations, annotations
    assert annotations.get(ANNOTATION_SOURCES) == "db=e2e/multi/db@1, e2e/multi/found/stripe@1", annotations
    assert len(annotations.get(ANNOTATION_REVISION, "")) == 16, annotations

    vs = await wait_for(lambda: env.vaultsecret("multi"),
                        lambda body: (ready_condition(body) or {}).get("status") == "True",
                        what="VaultSecret multi Ready")  # fmt: skip
    status = vs["status"]
    assert status["sources"] == [{"name": "db", "path": "e2e/multi/db", "version": 1},
                                 {"path": "e2e/multi/found/stripe", "version": 1}], status  # fmt: skip
    assert status["sourceCount"] == 2, status
    assert "syncedVersion" not in status, status
    columns = await env.api.printer_columns(env.namespace, "multi")
    assert columns.get("Sources") == 2, columns
    assert columns.get("Path") in (None, ""), columns

    # A new version of the named source, a new secret under the prefix, then one deleted.
    env.write("e2e/multi/db", {"host": "db.internal", "password": "pw-2"})
    want |= {"password": "pw-2", "DATABASE_URL": "postgres://app:pw-2@db.internal/app"}
    await env.wait_secret_data("multi", want)
    tagged(env, "e2e/multi/found/adyen/api", {"key": "k-1"}, "prod", "eu")
    await env.wait_secret_data("multi", want | {"adyen_api_key": "k-1"})
    env.vault.vault.delete("e2e/multi/found/stripe")
    del want["stripe_token"]
    await env.wait_secret_data("multi", want | {"adyen_api_key": "k-1"})


async def test_a_collision_is_reported_and_writes_nothing(env: E2E, operator: Runtime | None) -> None:
    env.write("e2e/collide/a", {"password": "CANARY-a-7f1"})
    env.write("e2e/collide/b", {"password": "CANARY-b-7f1"})
    await create(env, "collide", sources=[{"name": "a", "path": "e2e/collide/a"},
                                             {"name": "b", "path": "e2e/collide/b"}])  # fmt: skip
    vs = await env.wait_ready("collide", reason="InvalidSourceData")
    message = (ready_condition(vs) or {}).get("message", "")
    assert "'password'" in message, message
    assert "CANARY" not in str(vs)
    assert await env.api.get("Secret", "collide", env.namespace) is None
    events = await env.api.list("Event", env.namespace, fields={"involvedObject.name": "collide"})
    assert events, "a Warning Event for the failure"
    assert "CANARY" not in str(events)
