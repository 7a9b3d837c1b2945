"""Several sources in one Secret (spec.sources) and discovery (spec.dataFrom), with the real operator on the emulated
API and the dev vault over HTTP: the Secret's data, the status, following, and what it costs in requests."""

from __future__ import annotations

import asyncio
from typing import Any

from operator_helpers import CONN, POLL_SECONDS, decoded, wait_until

from scaivault_operator._cogs.api import API_VERSION


def composite(name: str, *, namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "VaultSecret", "metadata": {"name": name, "namespace": namespace},
            "spec": {"connectionRef": {"name": CONN}, **spec}}  # fmt: skip


async def wait_data(cluster, namespace: str, name: str, expected: dict[str, str], within: float = 10.0) -> dict:
    async def check() -> dict | None:
        secret = await cluster.secret(namespace, name)
        return secret if secret is not None and decoded(secret) == expected else None

    return await wait_until(check, within, what=f"Secret {namespace}/{name} holding {sorted(expected)}")


async def test_two_sources_union_and_status(cluster):
    cluster.vault.write("apps/web/db", {"host": "db.local", "port": 5432})
    cluster.vault.write("apps/web/creds", {"user": "app", "password": "pw-1"})
    await cluster.create(composite("web", sources=[{"name": "db", "path": "apps/web/db"},
                                                   {"name": "creds", "path": "apps/web/creds"}]))  # fmt: skip

    await wait_data(cluster, "team-a", "web", {"host": "db.local", "port": "5432", "user": "app", "password": "pw-1"})
    body = await cluster.wait_reason("team-a", "web", "Synced", status="True")
    status = body["status"]
    assert status["sources"] == [{"name": "creds", "path": "apps/web/creds", "version": 1},
                                 {"name": "db", "path": "apps/web/db", "version": 1}]  # fmt: skip
    assert status["sourceCount"] == 2
    assert "syncedVersion" not in status

    # A new version of one source: one GET of that version, the other source is not read again.
    cluster.vault.stats.reset()
    cluster.vault.write("apps/web/creds", {"user": "app", "password": "pw-2"})
    await wait_data(cluster, "team-a", "web", {"host": "db.local", "port": "5432", "user": "app", "password": "pw-2"})
    stats = cluster.vault.stats.snapshot()
    assert stats.reads_of("apps/web/creds") == {2: 1}, stats.to_json()
    assert stats.reads_of("apps/web/db") == {}, stats.to_json()


async def test_template_over_sources(cluster):
    cluster.vault.write("apps/tpl/db", {"host": "db.local", "password": "p1"})
    cluster.vault.write("apps/tpl/cache", {"host": "redis.local", "password": "p2"})
    database = "postgres://app:{{ sources.db.data.password }}@{{ sources.db.data.host }}/app"
    redis = "redis://:{{ sources.cache.data.password }}@{{ sources.cache.data.host }}"
    template = {"data": {"DATABASE_URL": database, "REDIS_URL": redis}}
    # Both sources have "host" and "password": with a Replace template that is no collision.
    sources = [{"name": "db", "path": "apps/tpl/db"}, {"name": "cache", "path": "apps/tpl/cache"}]
    await cluster.create(composite("tpl", template=template, sources=sources))
    await wait_data(cluster, "team-a", "tpl", {"DATABASE_URL": "postgres://app:p1@db.local/app",
                                               "REDIS_URL": "redis://:p2@redis.local"})  # fmt: skip


async def test_collision_without_template_is_invalid_source_data(cluster):
    cluster.vault.write("apps/col/a", {"password": "CANARY-a"})
    cluster.vault.write("apps/col/b", {"password": "CANARY-b"})
    await cluster.create(composite("col", sources=[{"name": "a", "path": "apps/col/a"},
                                                   {"name": "b", "path": "apps/col/b"}]))  # fmt: skip
    body = await cluster.wait_reason("team-a", "col", "InvalidSourceData")
    message = body["status"]["conditions"][0]["message"]
    assert "'password'" in message
    assert "source a" in message
    assert "source b" in message
    assert "CANARY" not in str(body)
    assert await cluster.secret("team-a", "col") is None


async def test_data_from_prefix_follows_new_changed_and_deleted(cluster):
    cluster.vault.write("apps/pay/stripe", {"token": "t1"}, metadata={"tags": ["prod"]})
    cluster.vault.write("apps/pay/paypal/api", {"key": "k1"}, metadata={"tags": ["prod", "eu"]})
    cluster.vault.write("apps/pay/test", {"token": "x"}, metadata={"tags": ["dev"]})
    await cluster.create(composite("pay", dataFrom=[{"prefix": "apps/pay/", "tags": ["prod"]}]))
    await wait_data(cluster, "team-a", "pay", {"stripe_token": "t1", "paypal_api_key": "k1"})

    await asyncio.sleep(0.3)
    cluster.vault.stats.reset()
    cluster.vault.write("apps/pay/stripe", {"token": "t2"}, metadata={"tags": ["prod"]})
    await wait_data(cluster, "team-a", "pay", {"stripe_token": "t2", "paypal_api_key": "k1"})
    stats = cluster.vault.stats.snapshot()
    # Discovery costs the poll's list pages and one GET of the changed secret: nothing else.
    assert stats.calls["read"] == 1, stats.to_json()
    assert stats.reads_of("apps/pay/stripe") == {2: 1}, stats.to_json()

    cluster.vault.write("apps/pay/adyen", {"secret": "s1"}, metadata={"tags": ["prod"]})
    await wait_data(cluster, "team-a", "pay", {"stripe_token": "t2", "paypal_api_key": "k1", "adyen_secret": "s1"})
    cluster.vault.delete("apps/pay/paypal/api")
    await wait_data(cluster, "team-a", "pay", {"stripe_token": "t2", "adyen_secret": "s1"})
    body = await cluster.vs("team-a", "pay")
    assert body["status"]["sourceCount"] == 2


async def test_data_from_rewrite_and_limit(cluster):
    for i in range(3):
        cluster.vault.write(f"apps/many/s{i}", {"v": str(i)})
    rewrite = [{"regexp": {"source": "^s(\\d)_v$", "target": "VALUE_$1"}}]
    await cluster.create(composite("many", dataFrom=[{"prefix": "apps/many/", "rewrite": rewrite}], maxDiscovered=2))
    body = await cluster.wait_reason("team-a", "many", "TooManySecrets")
    assert "3 secrets" in body["status"]["conditions"][0]["message"]

    await cluster.create(composite("few", dataFrom=[{"prefix": "apps/many/", "rewrite": rewrite}]))
    await wait_data(cluster, "team-a", "few", {"VALUE_0": "0", "VALUE_1": "1", "VALUE_2": "2"})


async def test_shared_get_across_vaultsecrets_and_sources(cluster):
    cluster.vault.write("shared/common/db", {"password": "one"})
    cluster.vault.write("apps/own/x", {"x": "1"})
    for i in range(4):
        await cluster.create(composite(f"c{i}", sources=[{"name": "db", "path": "shared/common/db"},
                                                         {"name": "own", "path": "apps/own/x"}]))  # fmt: skip
    for i in range(4):
        await wait_data(cluster, "team-a", f"c{i}", {"password": "one", "x": "1"})
    await asyncio.sleep(0.3)
    cluster.vault.stats.reset()
    cluster.vault.write("shared/common/db", {"password": "two"})
    for i in range(4):
        await wait_data(cluster, "team-a", f"c{i}", {"password": "two", "x": "1"})
    stats = cluster.vault.stats.snapshot()
    assert stats.reads_of("shared/common/db") == {2: 1}, stats.to_json()
    assert stats.calls["read"] == 1, stats.to_json()


async def test_idle_and_warm_restart_cost_nothing(cluster):
    cluster.vault.write("apps/idle/a", {"a": "1"})
    cluster.vault.write("apps/idle/found/b", {"b": "2"})
    await cluster.create(composite("idle", sources=[{"name": "a", "path": "apps/idle/a"}],
                                   dataFrom=[{"prefix": "apps/idle/found/"}]))  # fmt: skip
    await wait_data(cluster, "team-a", "idle", {"a": "1", "b_b": "2"})
    await asyncio.sleep(0.5)
    mark = cluster.mark()
    cluster.vault.stats.reset()
    await asyncio.sleep(2.5 * POLL_SECONDS)
    assert cluster.operator_writes(mark) == []
    assert cluster.vault.stats.snapshot().calls["read"] == 0

    status = (await cluster.vs("team-a", "idle"))["status"]
    await cluster.stop_operator()
    cluster.vault.stats.reset()
    mark = cluster.mark()
    runtime = await cluster.start_operator()
    await asyncio.sleep(2.1 * POLL_SECONDS)
    assert cluster.vault.stats.snapshot().calls["read"] == 0
    assert cluster.operator_writes(mark) == []
    assert runtime.syncs == 0
    assert (await cluster.vs("team-a", "idle"))["status"] == status


async def test_drift_is_repaired(cluster):
    cluster.vault.write("apps/drift/a", {"a": "1"})
    await cluster.create(composite("drift", sources=[{"name": "a", "path": "apps/drift/a"}]))
    secret = await wait_data(cluster, "team-a", "drift", {"a": "1"})
    await cluster.cluster.patch("Secret", "team-a", "drift", {"data": {"a": "ZWRpdGVk"}})
    await wait_data(cluster, "team-a", "drift", {"a": "1"})
    assert secret["metadata"]["annotations"]["scaivault.scailabs.ai/sources"] == "a=apps/drift/a@1"


async def test_named_source_gone_and_back(cluster):
    cluster.vault.write("apps/gone/a", {"a": "1"})
    cluster.vault.write("apps/gone/b", {"b": "2"})
    await cluster.create(composite("gone", sources=[{"name": "a", "path": "apps/gone/a"},
                                                    {"name": "b", "path": "apps/gone/b"}]))  # fmt: skip
    await wait_data(cluster, "team-a", "gone", {"a": "1", "b": "2"})
    cluster.vault.delete("apps/gone/b")
    body = await cluster.wait_reason("team-a", "gone", "SourceNotFound")
    assert "source b (apps/gone/b)" in body["status"]["conditions"][0]["message"]
    assert decoded(await cluster.secret("team-a", "gone")) == {"a": "1", "b": "2"}  # the Secret keeps its data
    cluster.vault.write("apps/gone/b", {"b": "3"})
    await wait_data(cluster, "team-a", "gone", {"a": "1", "b": "3"})
    await cluster.wait_reason("team-a", "gone", "Synced", status="True")


async def test_access_rules_hold_for_a_prefix_before_it_is_listed(cluster):
    # The connection lets every namespace read apps/, shared/ and missing/. "apps" as a plain prefix would also find
    # appsec/, which no rule allows: the prefix is refused before anything is listed, so nothing outside the rules
    # is revealed (not even that appsec/key exists).
    cluster.vault.write("apps/acl/k", {"k": "1"})
    cluster.vault.write("appsec/key", {"k": "CANARY-acl"})
    cluster.vault.stats.reset()
    await cluster.create(composite("acl", dataFrom=[{"prefix": "apps"}]))
    body = await cluster.wait_reason("team-a", "acl", "PolicyDenied")
    message = body["status"]["conditions"][0]["message"]
    assert "'apps'" in message, message
    assert "appsec" not in message, message
    assert await cluster.secret("team-a", "acl") is None
    assert "CANARY" not in str(body)
    stats = cluster.vault.stats.snapshot()
    assert stats.reads_of("appsec/key") == {}, stats.to_json()

    # With the prefix inside the rules every path found under it is readable.
    await cluster.create(composite("acl-ok", dataFrom=[{"prefix": "apps/acl/"}]))
    await wait_data(cluster, "team-a", "acl-ok", {"k_k": "1"})
