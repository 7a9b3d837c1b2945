"""Where the histograms are observed: the queue's wait (injected clock), each ScaiVault HTTP request by endpoint and
status (``httpx.MockTransport``), the first sighting of a version (``Registry.first_seen``), and — in the outage
simulation's virtual time (``outage_sim``: the real ``Runtime``, watcher, workers and client) — propagation, sync
durations, queue waits and request durations together. Counts only, never timings.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from outage_sim import CONN_KEY, SimVault, run_virtual, simulation, vaultsecret, wait_for

from prometheus_text import parse, sample_value
from scaivault_operator._cogs.api import API_VERSION
from scaivault_operator._cogs.metrics import PREFIX, Metrics
from scaivault_operator._cogs.scaivault import (
    BadRequestError,
    ClientCredentials,
    NotFoundError,
    RetryPolicy,
    ScaiVaultClient,
    StaticToken,
    UnauthenticatedError,
    UnavailableError,
)
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._logic.registry import ConnKey, Registry
from scaivault_operator._logic.workqueue import WorkQueue

REQUESTS = "backend_request_duration_seconds"
CANARY_VALUE = "CANARY-OBSERVED-9d2f"
CANARY_TOKEN = "CANARY-TOKEN-OBSERVED-41c7"
CANARY_CLIENT_SECRET = "CANARY-CLIENT-SECRET-7e0a"


# -- the queue's wait ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_take_tells_how_long_a_key_waited_once_due() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.push("now", 1)
    clock.now += 3.0
    assert await asyncio.wait_for(queue.take(), 1.0) == ("now", 3.0)
    queue.done("now")

    queue.push("later", 1, delay=10.0)  # due at 1013
    clock.now += 12.0
    assert await asyncio.wait_for(queue.take(), 1.0) == ("later", 2.0)  # from its due time, not from the push

    queue.push("later", 0)  # pushed while it runs: due when it is done
    clock.now += 5.0
    queue.done("later")
    clock.now += 0.5
    assert await asyncio.wait_for(queue.take(), 1.0) == ("later", 0.5)
    queue.done("later")

    queue.push("plain", 2)
    assert await asyncio.wait_for(queue.get(), 1.0) == "plain"  # get: the key only


# -- ScaiVault requests ------------------------------------------------------------------------------------------


def _answer(request: httpx.Request) -> httpx.Response:
    path, prefix = request.url.path, request.url.params.get("prefix")
    if path == "/token":
        return httpx.Response(200, json={"access_token": "issued-token", "expires_in": 3600})
    if path == "/v1/auth/whoami":
        return httpx.Response(200, json={"identity_id": "svc", "scopes": ["secrets:read"]})
    if path == "/v1/secrets" and prefix == "apps/":
        return httpx.Response(200, json={"secrets": [{"path": "apps/ok", "version": 1}], "has_more": False})
    if path == "/v1/secrets" and prefix == "down/":
        return httpx.Response(503, json={"error": "unavailable", "message": "down"})
    if path == "/v1/secrets/apps/ok" and request.method == "PUT":
        return httpx.Response(201, json={"path": "apps/ok", "version": 2, "created": False})
    if path == "/v1/secrets/apps/ok":
        return httpx.Response(200, json={"path": "apps/ok", "version": 1, "data": {"password": CANARY_VALUE}})
    if path == "/v1/secrets/apps/moved":
        return httpx.Response(302, headers={"Location": "https://elsewhere.test/"})
    if path == "/v1/secrets/apps/refused":
        raise httpx.ConnectError("Connection refused", request=request)
    return httpx.Response(404, json={"error": "not_found", "message": "no such secret"})


def _client(auth: Any, observed: list[tuple[str, int | None]], **kwargs: Any) -> ScaiVaultClient:
    def on_request(endpoint: str, status: int | None, seconds: float) -> None:
        assert seconds >= 0
        observed.append((endpoint, status))

    kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base=0.0, cap=0.0))
    return ScaiVaultClient("https://vault.test", auth, transport=httpx.MockTransport(_answer), on_request=on_request,
                           **kwargs)  # fmt: skip


async def test_every_request_is_observed_with_its_endpoint_and_status() -> None:
    observed: list[tuple[str, int | None]] = []
    auth = ClientCredentials("https://vault.test/token", "svc", CANARY_CLIENT_SECRET)  # no observer: the client's
    async with _client(auth, observed) as client:
        await client.whoami()
        await client.read("apps/ok")
        with pytest.raises(NotFoundError):
            await client.read("apps/missing")
        with pytest.raises(BadRequestError):
            await client.read("apps/moved")  # a redirect is not followed
        [page] = [page async for page in client.list_secrets("apps/")]
        assert page.secrets
        with pytest.raises(UnavailableError):
            [page async for page in client.list_secrets("down/")]  # three attempts
        with pytest.raises(UnavailableError):
            await client.read("apps/refused")  # no answer, three attempts
        await client.write("apps/ok", {"password": CANARY_VALUE})
    assert observed == [
        ("token", 200), ("whoami", 200), ("read", 200), ("read", 404), ("read", 302), ("list", 200),
        ("list", 503), ("list", 503), ("list", 503), ("read", None), ("read", None), ("read", None), ("write", 201),
    ]  # fmt: skip

    metrics = Metrics()
    for endpoint, status in observed:
        metrics.observe_request(endpoint, status, 0.01)
    families = parse(metrics.render())

    def count(endpoint: str, status_class: str) -> float | None:
        return sample_value(families, f"{PREFIX}{REQUESTS}_count", endpoint=endpoint, status_class=status_class)

    assert (count("token", "2xx"), count("whoami", "2xx"), count("read", "2xx"), count("read", "4xx")) == (1, 1, 1, 1)
    assert (count("read", "3xx"), count("list", "2xx"), count("list", "5xx"), count("read", "error")) == (1, 1, 3, 3)
    assert count("write", "2xx") == 1
    text = metrics.render()
    assert not any(word in text for word in ("apps/", "down/", CANARY_VALUE, CANARY_CLIENT_SECRET, "issued-token"))


async def test_the_repeat_after_a_renewed_token_and_the_token_endpoints_failures_are_observed(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(CANARY_TOKEN)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {CANARY_TOKEN}":
            token_file.write_text("rotated-token")  # rotated meanwhile: the renewal reads the new one
            return httpx.Response(401, json={"error": "unauthenticated", "message": "expired"})
        return httpx.Response(200, json={"identity_id": "svc"})

    observed: list[tuple[str, int | None]] = []
    client = ScaiVaultClient("https://vault.test", StaticToken(path=token_file), transport=httpx.MockTransport(answer),
                             on_request=lambda endpoint, status, _: observed.append((endpoint, status)))  # fmt: skip
    async with client:
        await client.whoami()
    assert observed == [("whoami", 401), ("whoami", 200)]

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/refused":
            return httpx.Response(401, json={"error": "invalid_client"})
        raise httpx.ConnectTimeout("timed out", request=request)

    own: list[tuple[str, int | None]] = []
    through_client: list[tuple[str, int | None]] = []
    for url, error in (
        ("https://auth.test/refused", UnauthenticatedError),
        ("https://auth.test/slow", UnavailableError),
    ):
        auth = ClientCredentials(url, "svc", CANARY_CLIENT_SECRET,
                                 on_request=lambda endpoint, status, _: own.append((endpoint, status)))  # fmt: skip
        async with ScaiVaultClient("https://vault.test", auth, transport=httpx.MockTransport(token_endpoint),
                                   retry=RetryPolicy(max_attempts=1),
                                   on_request=lambda e, s, _: through_client.append((e, s))) as client:  # fmt: skip
            with pytest.raises(error):
                await client.whoami()
    assert own == [("token", 401), ("token", None)]  # its own observer wins over the client's
    assert through_client == []  # nothing reached ScaiVault


async def test_an_observer_that_fails_does_not_fail_the_request(caplog: pytest.LogCaptureFixture) -> None:
    def broken(endpoint: str, status: int | None, seconds: float) -> None:
        raise RuntimeError("metrics are broken")

    caplog.set_level(logging.ERROR)
    async with ScaiVaultClient("https://vault.test", StaticToken("tok-en"), transport=httpx.MockTransport(_answer),
                               on_request=broken) as client:  # fmt: skip
        secret = await client.read("apps/ok")
    assert secret.version == 1
    assert any("request observer failed" in record.getMessage() for record in caplog.records)
    assert not any(CANARY_VALUE in record.getMessage() for record in caplog.records)


# -- the first sighting of a version (pure) ---------------------------------------------------------------------

CONN: ConnKey = ("ClusterVaultConnection", "", "default")


def _vs(name: str, path: str, namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "VaultSecret",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "generation": 1},
            "spec": {"path": path, **spec}}  # fmt: skip


def _synced(registry: Registry, name: str, path: str, version: int, namespace: str = "team-a", **spec: Any) -> None:
    source = registry.upsert(_vs(name, path, namespace, **spec))
    assert source is not None
    registry.take_dirty(source)
    entry = registry.entries[(namespace, name)]
    entry.synced_version, entry.synced_spec = version, entry.spec


def test_a_version_is_first_seen_when_it_moves_while_members_hold_an_older_one() -> None:
    registry = Registry()
    source = (CONN, "apps/db", None)
    registry.upsert(_vs("new", "apps/db"))  # a new VaultSecret, nothing synced yet
    registry.observe_versions(CONN, {"apps/db": 1}, now=10.0)
    assert registry.first_seen == {}  # its first sync is not propagation
    registry.take_dirty(source)
    registry.entries[("team-a", "new")].synced_version = 1
    _synced(registry, "b", "apps/db", 1, namespace="team-b")

    registry.observe_versions(CONN, {"apps/db": 2}, now=20.0)
    assert registry.first_seen == {(CONN, "apps/db"): (2, 20.0)}
    registry.observe_versions(CONN, {"apps/db": 2}, now=25.0)  # still 2: the first sighting stays
    assert registry.propagation_start(source, 2) == 20.0
    assert registry.propagation_start(source, 1) is None
    assert registry.propagation_start((CONN, "apps/db", 2), 2) is None  # pinned users: not propagation

    registry.observe_versions(CONN, {"apps/db": 3}, now=30.0)  # superseded
    assert registry.first_seen == {(CONN, "apps/db"): (3, 30.0)}
    registry.entries[("team-a", "new")].synced_version = 3
    registry.settle_propagation(source)
    assert registry.first_seen  # team-b still holds 1
    registry.entries[("team-b", "b")].synced_version = 3
    registry.settle_propagation(source)
    assert registry.first_seen == {}

    registry.observe_versions(CONN, {"apps/db": 4}, now=40.0)
    registry.observe_versions(CONN, {"apps/db": None}, now=50.0)  # gone
    assert registry.first_seen == {}
    registry.entries[("team-a", "new")].synced_version = 3
    registry.entries[("team-b", "b")].synced_version = 3
    registry.observe_versions(CONN, {"apps/db": 5}, now=60.0)
    assert registry.observe_versions(CONN, {"apps/db": 5}) == []
    assert (CONN, "apps/db") in registry.first_seen
    registry.remove(("team-a", "new"))
    registry.remove(("team-b", "b"))  # nobody follows the path any more
    assert registry.first_seen == {}


def test_first_sightings_are_kept_per_path_in_flight_only() -> None:
    registry = Registry()
    for index in range(200):
        _synced(registry, f"vs{index}", f"apps/p{index % 20}", 1, namespace=f"ns{index}")
    registry.observe_versions(CONN, {f"apps/p{i}": 2 for i in range(20)}, now=1.0)
    assert len(registry.first_seen) == 20  # per path, not per VaultSecret
    for version in range(3, 30):
        registry.observe_versions(CONN, {f"apps/p{i}": version for i in range(20)}, now=float(version))
    assert len(registry.first_seen) == 20  # superseded versions replaced, not added


def test_a_recreated_secret_starts_its_clock_again() -> None:
    registry = Registry()
    _synced(registry, "a", "apps/db", 1)
    registry.observe_versions(CONN, {"apps/db": 1}, {"apps/db": 1000}, now=1.0)
    assert registry.first_seen == {}
    registry.observe_versions(CONN, {"apps/db": 1}, {"apps/db": 2000}, now=2.0)  # deleted and re-created at 1
    assert registry.first_seen == {(CONN, "apps/db"): (1, 2.0)}


def test_not_ready_names_each_vaultsecret_not_ready_with_a_reason_fit_for_a_label() -> None:
    registry = Registry()

    def status(ready: str, reason: Any) -> dict[str, Any]:
        return {"conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": CANARY_VALUE}]}

    for name, body_status in [("ok", status("True", "Synced")), ("bad", status("False", "Forbidden")),
                              ("new", None), ("odd", status("False", f"has {CANARY_VALUE} in it")),
                              ("typed", status("Unknown", 5))]:  # fmt: skip
        body = _vs(name, "apps/db")
        if body_status is not None:
            body["status"] = body_status
        registry.upsert(body)
    assert sorted(registry.not_ready()) == [("team-a", "bad", "Forbidden"), ("team-a", "new", "Pending"),
                                            ("team-a", "odd", "Unknown"), ("team-a", "typed", "Unknown")]  # fmt: skip


# -- everything together, in virtual time -------------------------------------------------------------------------

SETTINGS = OperatorSettings(liveness_endpoint=None, metrics_port=0)
WALL = 1_776_952_800.0  # the Syncer's wall clock in the simulation: 2026-04-23T14:00:00Z


def _dated(mode: dict[str, str]) -> Any:
    """SimVault.handle, with ``updated_at`` on every answer of a read: 100 s before WALL ("past"), 100 s after it
    ("future"), or none ("missing")."""
    original = SimVault.handle

    async def handle(self: SimVault, request: httpx.Request) -> httpx.Response:
        response = await original(self, request)
        if request.url.path == "/v1/secrets" or response.status_code != 200 or mode["updated_at"] == "missing":
            return response
        body = json.loads(response.content)
        stamp = WALL - 100 if mode["updated_at"] == "past" else WALL + 100
        body["updated_at"] = datetime.fromtimestamp(stamp, tz=UTC).isoformat()
        return httpx.Response(200, json=body)

    return handle


def test_propagation_sync_duration_queue_wait_and_requests_in_the_running_operator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mode = {"updated_at": "past"}
    monkeypatch.setattr(SimVault, "handle", _dated(mode))
    shared, other = "t00/app/db", "t01/other/db"

    async def main() -> dict[str, Any]:
        async with simulation(SETTINGS) as sim:
            runtime, vault, metrics = sim.runtime, sim.vault, sim.runtime.metrics
            runtime.syncer.wall_clock = lambda: WALL

            def counts() -> tuple[int, int]:
                return metrics.count("propagation_seconds"), metrics.count("source_propagation_seconds")

            async def converge(what: str) -> None:
                await wait_for(lambda: not sim.unconverged(), within=60, step=0.5, what=what)

            vault.write(shared)
            vault.write(other)
            for index in range(3):  # three namespaces share one path: one GET, three Secrets
                await sim.add(vaultsecret(index, shared))
            await sim.add(vaultsecret(3, other))
            await sim.add(vaultsecret(4, shared, version=1))  # pinned: never propagation
            await converge("first syncs")
            await asyncio.sleep(5)  # a few polls that see nothing move
            first = counts()

            vault.write(shared)  # version 2, dated in the past
            await converge("version 2")
            after_v2 = counts()

            mode["updated_at"] = "future"
            vault.write(shared)  # version 3, dated in the future (clock skew): no source propagation
            await converge("version 3")
            after_v3 = counts()

            mode["updated_at"] = "missing"
            vault.write(other)  # version 2 of the other path, undated
            await converge("the other path")
            after_other = counts()

            await sim.delete_secret_by_hand("ns-0", "vs-0")  # drift repair at the version it held: not propagation
            await wait_for(lambda: ("ns-0", "vs-0") in sim.kube.secrets, within=30, what="the repair")
            await converge("the repair")
            after_repair = counts()
            in_flight = dict(runtime.registry.first_seen)

            return {
                "counts": [first, after_v2, after_v3, after_other, after_repair],
                "in_flight": in_flight,
                "syncs": runtime.syncs,
                "waits": metrics.count("queue_wait_seconds"),
                "durations": metrics.count("sync_duration_seconds"),
                "requests": len(vault.log),
                "lists": sum(r.kind == "list" for r in vault.log),
                "reads": sum(r.kind == "read" and r.target in (shared, other) for r in vault.log),
                "list_2xx": metrics.count(REQUESTS, {"endpoint": "list", "status_class": "2xx"}),
                "read_2xx": metrics.count(REQUESTS, {"endpoint": "read", "status_class": "2xx"}),
                "text": metrics.render(),
                "data": [s.get("data") for s in sim.kube.secrets.values()],
            }

    result = run_virtual(main)
    assert result["counts"] == [(0, 0), (3, 3), (6, 3), (7, 3), (7, 3)], result["counts"]
    assert result["in_flight"] == {}  # nothing kept once every Secret holds its version
    assert result["syncs"] > 0
    assert result["waits"] == result["durations"] == result["syncs"]  # one of each per job the workers took
    assert result["list_2xx"] == result["lists"] > 0
    assert result["read_2xx"] == result["reads"] > 0
    families = parse(result["text"])
    observed = sum(s.value for s in families[PREFIX + REQUESTS].samples if s.name.endswith("_count"))
    assert observed == result["requests"]  # every request the sim's ScaiVault received, whatever its endpoint
    assert sample_value(families, PREFIX + "propagation_seconds_count") == 7
    assert sample_value(families, PREFIX + "propagation_seconds_bucket", le="+Inf") == 7
    assert sample_value(families, PREFIX + "source_propagation_seconds_count") == 3
    assert sample_value(families, PREFIX + "source_propagation_seconds_sum") == 300.0  # 100 s each, on WALL
    assert families[PREFIX + "vaultsecret_not_ready"].samples == []  # every VaultSecret is Ready
    for word in (shared, other, "@"):  # no path, no data (the sim's data is "path@version")
        assert word not in result["text"], word
    assert all(result["data"]), "the detector looks at Secrets that hold data"
    assert CONN_KEY[2] in result["text"]  # the connection's name is a label; paths are not
