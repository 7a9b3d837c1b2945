"""``_core/reads.SharedReads``: one GET per (connection, path, version) in flight, and a short cache of versions.

The client is a fake whose reads can be held open (``gate``), so that several jobs are provably waiting on one
GET; the cache's clock is injected. ``count`` is told of every GET that goes out — what
``backend_requests_total`` counts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from scaivault_operator._cogs.scaivault import NotFoundError, Secret, UnavailableError
from scaivault_operator._core.reads import SharedReads

CONN = ("ClusterVaultConnection", "", "default")
OTHER = ("VaultConnection", "team-a", "local")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeClient:
    """``read`` answers ``versions[path]`` (the latest) or the version asked, with ``data``; ``gate``, when set,
    holds every read until it is set; ``fail`` raises instead."""

    latest: int = 5
    data: dict[str, Any] = field(default_factory=lambda: {"password": "pw"})
    gate: asyncio.Event | None = None
    fail: BaseException | None = None
    calls: list[tuple[str, int | None]] = field(default_factory=list)

    async def read(self, path: str, version: int | None = None) -> Secret:
        self.calls.append((path, version))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return Secret(path=path, version=version if version is not None else self.latest, data=dict(self.data))


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def reads(**kwargs: Any) -> tuple[SharedReads, Clock]:
    clock = Clock()
    return SharedReads(clock=clock, **kwargs), clock


# -- single flight -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, None])
async def test_concurrent_reads_of_one_key_send_one_get(version: int | None) -> None:
    shared, _ = reads()
    client, count = FakeClient(gate=asyncio.Event()), Counter()
    tasks = [asyncio.create_task(shared.read(CONN, client, "apps/db", version, count=count)) for _ in range(5)]
    await settle()
    assert client.calls == [("apps/db", version)]  # the others wait for it
    client.gate.set()  # type: ignore[union-attr]
    answers = await asyncio.gather(*tasks)
    assert count.n == 1
    assert (shared.sent, shared.shared) == (1, 4)
    assert all(answer is answers[0] for answer in answers)
    assert answers[0].version == (version or 5)


async def test_other_versions_paths_and_connections_are_other_gets() -> None:
    shared, _ = reads()
    client, count = FakeClient(gate=asyncio.Event()), Counter()
    keys = [(CONN, "apps/db", 1), (CONN, "apps/db", 2), (CONN, "apps/other", 1), (OTHER, "apps/db", 1)]
    tasks = [asyncio.create_task(shared.read(conn, client, path, version, count=count)) for conn, path, version in keys]
    await settle()
    client.gate.set()  # type: ignore[union-attr]
    await asyncio.gather(*tasks)
    assert count.n == 4
    assert sorted(client.calls) == [("apps/db", 1), ("apps/db", 1), ("apps/db", 2), ("apps/other", 1)]


@pytest.mark.parametrize("error", [UnavailableError("down"), NotFoundError("no such secret", status_code=404)])
async def test_a_failure_reaches_every_waiter_and_is_not_cached(error: Exception) -> None:
    shared, _ = reads()
    client, count = FakeClient(gate=asyncio.Event(), fail=error), Counter()
    tasks = [asyncio.create_task(shared.read(CONN, client, "apps/db", 3, count=count)) for _ in range(3)]
    await settle()
    client.gate.set()  # type: ignore[union-attr]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(result is error for result in results)
    assert count.n == 1

    client.fail, client.gate = None, None
    secret = await shared.read(CONN, client, "apps/db", 3, count=count)
    assert secret.version == 3
    assert count.n == 2  # the failure was not kept: this one went out


async def test_a_cancelled_leader_lets_a_waiter_send_its_own() -> None:
    shared, _ = reads()
    client, count = FakeClient(gate=asyncio.Event()), Counter()
    leader = asyncio.create_task(shared.read(CONN, client, "apps/db", 3, count=count))
    await settle()
    waiter = asyncio.create_task(shared.read(CONN, client, "apps/db", 3, count=count))
    await settle()
    assert count.n == 1
    leader.cancel()
    await settle()
    assert count.n == 2  # the waiter sent it again
    client.gate.set()  # type: ignore[union-attr]
    secret = await waiter
    assert secret.version == 3
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert client.calls == [("apps/db", 3), ("apps/db", 3)]


async def test_a_cancelled_waiter_does_not_cancel_the_get() -> None:
    shared, _ = reads()
    client, count = FakeClient(gate=asyncio.Event()), Counter()
    leader = asyncio.create_task(shared.read(CONN, client, "apps/db", 3, count=count))
    await settle()
    waiters = [asyncio.create_task(shared.read(CONN, client, "apps/db", 3, count=count)) for _ in range(2)]
    await settle()
    waiters[0].cancel()
    await settle()
    client.gate.set()  # type: ignore[union-attr]
    assert (await leader).version == 3
    assert (await waiters[1]).version == 3
    with pytest.raises(asyncio.CancelledError):
        await waiters[0]
    assert count.n == 1


# -- the cache ---------------------------------------------------------------------------------------------------


async def test_an_explicit_version_is_cached_for_ttl_seconds() -> None:
    shared, clock = reads(ttl=10.0)
    client, count = FakeClient(), Counter()
    first = await shared.read(CONN, client, "apps/db", 3, count=count)
    clock.now += 9.9
    assert await shared.read(CONN, client, "apps/db", 3, count=count) is first
    assert (count.n, shared.sent, shared.shared) == (1, 1, 1)
    clock.now += 0.2  # ttl passed
    again = await shared.read(CONN, client, "apps/db", 3, count=count)
    assert again is not first
    assert count.n == 2


async def test_the_cache_is_per_connection() -> None:
    shared, _ = reads()
    client, count = FakeClient(), Counter()
    await shared.read(CONN, client, "apps/db", 3, count=count)
    await shared.read(OTHER, client, "apps/db", 3, count=count)
    assert count.n == 2


async def test_fresh_skips_the_cache() -> None:
    shared, _ = reads()
    client, count = FakeClient(), Counter()
    await shared.read(CONN, client, "apps/db", 3, count=count)
    client.data = {"password": "re-read"}
    secret = await shared.read(CONN, client, "apps/db", 3, count=count, fresh=True)
    assert secret.data == {"password": "re-read"}
    assert count.n == 2
    # The fresh answer is what the cache holds now.
    assert (await shared.read(CONN, client, "apps/db", 3, count=count)).data == {"password": "re-read"}
    assert count.n == 2


async def test_latest_reads_always_go_out_and_are_cached_under_their_version() -> None:
    shared, _ = reads()
    client, count = FakeClient(latest=7), Counter()
    assert (await shared.read(CONN, client, "apps/db", None, count=count)).version == 7
    assert (await shared.read(CONN, client, "apps/db", None, count=count)).version == 7
    assert count.n == 2  # the latest may have moved: never from the cache
    assert (await shared.read(CONN, client, "apps/db", 7, count=count)).version == 7
    assert count.n == 2  # version 7 as the latest read returned it
    await shared.read(CONN, client, "apps/db", 6, count=count)
    assert count.n == 3


async def test_the_byte_bound_evicts_the_oldest() -> None:
    # Each answer is {"v":"<40 x>"}: 48 bytes of JSON; two fit in 100 bytes, three do not.
    shared, clock = reads(max_bytes=100)
    client, count = FakeClient(data={"v": "x" * 40}), Counter()
    for version in (1, 2, 3):
        await shared.read(CONN, client, "apps/db", version, count=count)
        clock.now += 1
    assert count.n == 3
    await shared.read(CONN, client, "apps/db", 3, count=count)
    await shared.read(CONN, client, "apps/db", 2, count=count)
    assert count.n == 3  # the two newest are kept
    await shared.read(CONN, client, "apps/db", 1, count=count)
    assert count.n == 4  # the oldest was dropped


async def test_expired_answers_make_room() -> None:
    shared, clock = reads(ttl=10.0, max_bytes=100)
    client, count = FakeClient(data={"v": "x" * 40}), Counter()
    await shared.read(CONN, client, "apps/db", 1, count=count)
    await shared.read(CONN, client, "apps/db", 2, count=count)
    clock.now += 11
    await shared.read(CONN, client, "apps/db", 3, count=count)
    await shared.read(CONN, client, "apps/db", 4, count=count)
    assert count.n == 4
    await shared.read(CONN, client, "apps/db", 3, count=count)
    await shared.read(CONN, client, "apps/db", 4, count=count)
    assert count.n == 4  # both fit: the expired two were dropped, not counted against the bound


async def test_an_answer_larger_than_the_bound_is_not_stored() -> None:
    shared, _ = reads(max_bytes=100)
    client, count = FakeClient(data={"v": "x" * 200}), Counter()
    first = await shared.read(CONN, client, "apps/db", 1, count=count)
    assert first.data == {"v": "x" * 200}
    await shared.read(CONN, client, "apps/db", 1, count=count)
    assert count.n == 2


async def test_an_answer_that_cannot_be_measured_is_not_stored() -> None:
    looped: dict[str, Any] = {"k": "v"}
    looped["self"] = looped  # no JSON of it

    class LoopClient(FakeClient):
        async def read(self, path: str, version: int | None = None) -> Secret:
            secret = await super().read(path, version)
            return secret.model_copy(update={"data": looped})

    shared, _ = reads()
    client, count = LoopClient(), Counter()
    assert (await shared.read(CONN, client, "apps/db", 1, count=count)).data is looped
    await shared.read(CONN, client, "apps/db", 1, count=count)
    assert count.n == 2
