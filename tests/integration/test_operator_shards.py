"""Two operators on one cluster, each a shard (issue 14): the real operator twice in-process against the same kmock
emulator and dev vault, with different settings — two ``OperatorEnv``s sharing the emulator.

- By namespace (``--shard 0/2`` and ``--shard 1/2``): each serves exactly the namespaces that hash to it; every
  VaultSecret gets Ready once, by one of them (status and Secret writes counted per operator, from its metrics).
- By label (``--selector shard=a`` and ``--selector shard!=a``): the emulator ignores label selectors, so both
  receive every event and each runtime's ``Shard.owns`` decides; a VaultSecret relabelled from a to b moves: its
  Secret is not written again, and b follows its next version.

Only shard 0 (or the selector shard left with ``connection_status``) writes the connection's status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from operator_helpers import CONN, OperatorEnv, cluster_connection, fast_settings, vaultsecret, wait_until

from scaivault_operator._core.runtime import Runtime
from scaivault_operator._logic.sharding import shard_of
from scaivault_operator.testing import EmulatedCluster

NAMESPACES = [f"tenant-{i}" for i in range(8)]
PER_NAMESPACE = 3


def writes(runtime: Runtime, name: str) -> float:
    """The sum of a counter over its labels."""
    return sum(value for labels, value in runtime.metrics._counters.get(name, {}).items())


@pytest.fixture
async def two(emulator: EmulatedCluster, dev_vault: Any) -> AsyncIterator[Any]:
    """Starts two operators with the settings the test passes (``two(first, second)``) on the same emulator, after
    the token Secret and the ClusterVaultConnection exist; stops both at the end."""
    envs: list[OperatorEnv] = []

    async def start(*settings: dict[str, Any]) -> list[OperatorEnv]:
        first = OperatorEnv(cluster=emulator, vault=dev_vault.vault, settings=fast_settings(**settings[0]))
        await first.token_secret(dev_vault.ro_token)
        await first.create(cluster_connection(CONN, dev_vault.url))
        for values in settings:
            env = first if not envs else OperatorEnv(emulator, dev_vault.vault, fast_settings(**values))
            envs.append(env)
            await env.start_operator()
        return envs

    try:
        yield start
    finally:
        for env in envs:
            await env.stop_operator()


async def test_two_hash_shards_serve_disjoint_namespaces_and_sync_each_vaultsecret_once(two: Any) -> None:
    shards = await two({"shard": "0/2"}, {"shard": "1/2"})
    env = shards[0]
    keys = []
    for namespace in NAMESPACES:
        for i in range(PER_NAMESPACE):
            path = f"apps/{namespace}/s{i}"
            env.vault.write(path, {"password": f"{path}-v1"})
            await env.create(vaultsecret(f"s{i}", path, namespace=namespace))
            keys.append((namespace, f"s{i}"))
    await env.wait_all_synced(keys, 1, within=20)

    runtimes = [shard.runtime for shard in shards]
    assert all(runtime is not None for runtime in runtimes)
    for index, runtime in enumerate(runtimes):
        assert runtime is not None
        owned = {key for key in keys if shard_of(key[0], 2) == index}
        assert owned, f"no namespace of {NAMESPACES} hashes to shard {index}"
        assert set(runtime.registry.entries) == owned
        assert set(runtime.registry.followed_paths(("ClusterVaultConnection", "", CONN))) == {
            f"apps/{namespace}/{name}" for namespace, name in owned
        }
        # Ready once: one status write and one Secret create per VaultSecret it owns, none for the others.
        assert writes(runtime, "status_writes_total") == len(owned)
        assert runtime.metrics.value("secret_writes_total", {"operation": "create"}) == len(owned)
        assert writes(runtime, "secret_writes_total") == len(owned)
        assert {key[0] for key in runtime.registry.secrets} <= {ns for ns in NAMESPACES if shard_of(ns, 2) == index}

    # A new version of every path: each shard patches its own Secrets, once each.
    for namespace, name in keys:
        path = f"apps/{namespace}/{name}"
        env.vault.write(path, {"password": f"{path}-v2"})
    await env.wait_all_synced(keys, 2, within=20)
    assert sum(runtime.metrics.value("secret_writes_total", {"operation": "patch"}) for runtime in runtimes) == len(
        keys
    )
    assert sum(writes(runtime, "status_writes_total") for runtime in runtimes) == 2 * len(keys)

    # Only shard 0 writes the connection's status.
    first, second = runtimes
    assert first is not None
    assert second is not None
    assert writes(first, "connection_status_writes_total") >= 1
    assert writes(second, "connection_status_writes_total") == 0
    connection = await env.cluster.get("ClusterVaultConnection", None, CONN)
    assert connection is not None
    ready = [c for c in connection["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"


async def test_selector_shards_split_by_label_and_a_relabelled_vaultsecret_moves(two: Any) -> None:
    a_env, b_env = await two({"selector": "shard=a"}, {"selector": "shard!=a", "connection_status": False})
    a, b = a_env.runtime, b_env.runtime
    assert a is not None
    assert b is not None
    env = a_env
    for name, label in (("one", "a"), ("two", "b"), ("three", None)):
        env.vault.write(f"apps/sel/{name}", {"password": f"{name}-v1"})
        body = vaultsecret(name, f"apps/sel/{name}")
        if label is not None:
            body["metadata"]["labels"] = {"shard": label}
        await env.create(body)
    keys = [("team-a", "one"), ("team-a", "two"), ("team-a", "three")]
    await env.wait_all_synced(keys, 1)
    assert set(a.registry.entries) == {("team-a", "one")}
    assert set(b.registry.entries) == {("team-a", "two"), ("team-a", "three")}  # shard!=a: also without the label
    assert writes(a, "status_writes_total") == 1
    assert writes(b, "status_writes_total") == 2
    assert writes(b, "connection_status_writes_total") == 0

    before = await env.secret("team-a", "one")
    assert before is not None
    a_writes, b_writes = writes(a, "secret_writes_total"), writes(b, "secret_writes_total")
    await env.cluster.patch("VaultSecret", "team-a", "one", {"metadata": {"labels": {"shard": "b"}}})
    await wait_until(lambda: ("team-a", "one") in b.registry.entries and not a.registry.entries, 10,
                     what="VaultSecret one moved from shard a to shard b")  # fmt: skip
    after = await env.secret("team-a", "one")
    assert after is not None
    assert after == before  # not rewritten (the emulator keeps no resourceVersion for the operator's writes)
    assert b.registry.entries[("team-a", "one")].synced_version == 1  # trusted as in sync: no GET, no write
    assert (writes(a, "secret_writes_total"), writes(b, "secret_writes_total")) == (a_writes, b_writes)

    env.vault.write("apps/sel/one", {"password": "one-v2"})
    await env.wait_synced("team-a", "one", 2)
    assert writes(a, "secret_writes_total") == a_writes
    assert b.metrics.value("secret_writes_total", {"operation": "patch"}) == 1
    assert writes(a, "status_writes_total") == 1
