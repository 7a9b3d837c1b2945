"""Connections report their health in ``status`` (issue 13): Ready with Authenticated / MissingScope / Unauthorized /
InvalidSpec, the identity whoami gives (names and ids only), watchedPaths; written once per change, never per poll.
And the refresh annotation on a VaultSecret: one re-read of the source, no write when nothing changed.

The real operator against the emulated API server and the dev vault over real HTTP; counts, never times."""

from __future__ import annotations

from operator_helpers import (
    CONN,
    OperatorEnv,
    cluster_connection,
    ready_condition,
    vaultsecret,
    wait_until,
)

NS = "team-a"  # vaultsecret()'s default namespace
V1 = {"password": "status-canary-v1"}


def connection_writes(env: OperatorEnv, since: int) -> int:
    return sum(1 for r in env.operator_requests(since)
               if r.method.value == "PATCH" and "clustervaultconnections" in r.url.path)  # fmt: skip


async def connection(env: OperatorEnv, name: str = CONN) -> dict:
    body = await env.cluster.get("ClusterVaultConnection", None, name)
    assert body is not None
    return body


async def wait_connection_reason(env: OperatorEnv, reason: str, name: str = CONN) -> dict:
    async def check() -> dict | None:
        body = await connection(env, name)
        return body if ready_condition(body).get("reason") == reason else None

    await wait_until(check, 10, what=f"connection {name} Ready reason {reason}")
    return await connection(env, name)


async def test_a_connection_reports_who_it_is_and_what_it_watches(cluster: OperatorEnv, dev_vault) -> None:
    env = cluster
    body = await wait_connection_reason(env, "Authenticated")
    ready = ready_condition(body)
    assert ready["status"] == "True"
    identity = body["status"]["identity"]
    assert identity["identityId"]
    assert "secrets:read" in identity["scopes"]
    assert dev_vault.ro_token not in str(body)
    assert body["status"]["breaker"]["state"] == "Closed"
    assert env.runtime is not None
    assert env.runtime.connection_status.whoami_requests == 1

    env.vault.write("apps/cs/one", V1)
    await env.create(vaultsecret("one", "apps/cs/one"))
    await env.wait_synced(NS, "one", 1)
    mark = env.mark()
    watcher = env.runtime.watchers[("ClusterVaultConnection", "", CONN)][0]
    polls = watcher.polls
    await wait_until(lambda: watcher.polls >= polls + 3, 10, what="three idle polls")
    assert connection_writes(env, mark) == 0, "an idle poll writes no connection status"
    assert env.runtime.connection_status.whoami_requests == 1


async def test_a_token_without_the_read_scope_is_missing_scope(bare_env: OperatorEnv, dev_vault) -> None:
    env = bare_env
    await env.token_secret(dev_vault.wo_token)
    await env.create(cluster_connection(CONN, dev_vault.url))
    await env.start_operator()
    body = await wait_connection_reason(env, "MissingScope")
    assert ready_condition(body)["status"] == "False"
    assert "lacks the scope secrets:read" in ready_condition(body)["message"]
    assert "secrets:read" not in body["status"]["identity"]["scopes"]


async def test_a_revoked_token_turns_the_connection_unauthorized_and_back(cluster: OperatorEnv, dev_vault) -> None:
    env = cluster
    await wait_connection_reason(env, "Authenticated")
    env.vault.write("apps/cs/two", V1)
    await env.create(vaultsecret("two", "apps/cs/two"))
    await env.wait_synced(NS, "two", 1)
    env.vault.revoke_token(dev_vault.ro_token)
    body = await wait_connection_reason(env, "Unauthorized")
    assert body["status"]["breaker"]["state"] == "Open"
    assert dev_vault.ro_token not in str(body)
    env.vault.add_token(dev_vault.ro_token, {"secrets:read"})
    body = await wait_connection_reason(env, "Authenticated", name=CONN)
    assert body["status"]["breaker"]["state"] == "Closed"


async def test_an_invalid_connection_is_invalid_spec_without_a_request(bare_env: OperatorEnv, dev_vault) -> None:
    env = bare_env
    await env.create(cluster_connection(CONN, dev_vault.url))  # no token Secret: nothing can be sent
    await env.start_operator()
    body = await wait_connection_reason(env, "InvalidSpec")
    assert ready_condition(body)["status"] == "False"
    assert env.runtime is not None
    assert dev_vault.vault.stats.snapshot().calls.get("whoami", 0) == 0


async def test_the_refresh_annotation_rereads_the_source_once(cluster: OperatorEnv) -> None:
    env = cluster
    env.vault.write("apps/cs/r", V1)
    await env.create(vaultsecret("r", "apps/cs/r"))
    await env.wait_synced(NS, "r", 1)
    env.vault.stats.reset()
    mark = env.mark()
    await env.cluster.patch("VaultSecret", NS, "r", {"metadata": {"annotations": {
        "scaivault.scailabs.ai/refresh": "2026-12-01T10:00:00Z"}}})  # fmt: skip
    await wait_until(lambda: env.vault.stats.snapshot().reads_of("apps/cs/r") == {1: 1}, 10,
                     what="one re-read of the source")  # fmt: skip
    assert env.runtime is not None
    queue = env.runtime.queue
    await wait_until(lambda: len(queue) == 0 and not queue.running, 10, what="no sync job queued or running")
    secret_writes = [r for r in env.operator_requests(mark) if r.method.value in ("PATCH", "POST", "PUT")
                     and "/secrets/" in r.url.path]  # fmt: skip
    assert secret_writes == [], "the same data: nothing written"
    # The same value again (any other change of the object): no further read.
    await env.cluster.patch("VaultSecret", NS, "r", {"metadata": {"labels": {"x": "y"}}})
    await wait_until(lambda: len(queue) == 0 and not queue.running, 10, what="no sync job queued or running")
    assert env.vault.stats.snapshot().reads_of("apps/cs/r") == {1: 1}
