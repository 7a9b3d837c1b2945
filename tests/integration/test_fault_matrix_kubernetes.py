"""The Kubernetes fault matrix (issue 10), emulated part: faults of the API server, survived by the real operator.

The emulated API server (kmock, ``scaivault_operator.testing.EmulatedCluster.inject``) refuses chosen requests of
the operator (409, 429/503 with ``Retry-After``) without applying them, lets a conflicting writer act between the
operator's read and its write, ends a live watch with ``ERROR 410 Gone`` or resets a watch connection in the middle
of an event. Afterwards every VaultSecret converges, no Secret is deleted or corrupted, and each object gets at
most the one write its change needs. Everything is asserted with counts of requests and writes (the emulator's
request log; the operator's ``schedule`` calls for the delays it chose), never with wall-clock timings.

What a real API server does that the emulator cannot (resume a watch from its resource version, garbage
collection, an outage of the whole server, a killed process) is in ``tests/e2e/test_e2e_kubernetes_faults.py``.

Which 409s can really happen: the operator writes Secrets and statuses with JSON merge patches that carry no
``resourceVersion``, which a real API server applies without any conflict check; so a 409 on a plain Secret patch or
a status patch never comes from a real server (the tests inject one anyway: it must be survived like any refusal).
Real 409s: a create of a Secret that another writer created first (``AlreadyExists``), and the adopting patch,
which carries the checked Secret's ``resourceVersion`` on purpose (a changed Secret must be checked again).

Each test prints one ``fault-matrix-kubernetes: {...}`` line with what it observed; docs/reliability.md tabulates
them (``pytest tests/integration/test_fault_matrix_kubernetes.py -p no:cacheprovider -s | grep fault-matrix``).
Tests marked ``xfail(strict=True)`` show a bug in a module this matrix may not change; their reason names it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import pytest
from operator_helpers import (
    CONN,
    OperatorEnv,
    b64,
    cluster_connection,
    decoded,
    opaque_secret,
    ready_condition,
    vaultsecret,
    wait_until,
)

from scaivault_operator._cogs.api import GROUP, VERSION
from scaivault_operator._logic.manifests import ADOPT_ANNOTATION, ANNOTATION_VERSION
from scaivault_operator._logic.registry import SourceKey
from scaivault_operator.testing import KubeFault

NS = "team-a"
V1 = {"password": "km-v1", "user": "app"}
V2 = {"password": "km-v2", "user": "app"}
FOREIGN = {"password": "not-from-scaivault"}
SECRETS = rf"^/api/v1/namespaces/{NS}/secrets$"
VAULTSECRETS = rf"^/apis/{GROUP}/{VERSION}/vaultsecrets$"  # Kopf lists and watches them cluster-wide here
#: Retry-After of the injected 429/503 answers: longer than the fast settings' retry_base (0.2 s), so a retry that
#: ignores it is visible in the delay the operator chose.
RETRY_AFTER = 3.0


def secret_path(name: str) -> str:
    return rf"^/api/v1/namespaces/{NS}/secrets/{re.escape(name)}$"


def status_path(name: str) -> str:
    return rf"^/apis/{GROUP}/{VERSION}/namespaces/{NS}/vaultsecrets/{re.escape(name)}/status$"


# -- observations --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    method: str  # POST, PATCH, DELETE
    name: str  # the object's name (a POST's from its body)
    status: bool  # a write of the status subresource


def writes(env: OperatorEnv, since: int, plural: str = "secrets") -> list[Write]:
    """The operator's writes to ``plural`` (``secrets``, ``vaultsecrets``) in the test namespace since ``since``,
    refused ones included (the emulator logs every request it received)."""
    found = []
    for request in env.operator_requests(since):
        method, path = request.method.value, request.url.path
        parts = path.split("/")
        if method not in ("POST", "PATCH", "DELETE", "PUT") or f"/namespaces/{NS}/{plural}" not in path:
            continue
        index = parts.index(plural)
        name = parts[index + 1] if len(parts) > index + 1 else ((request.data or {}).get("metadata") or {}).get("name")
        found.append(Write(method, str(name), status=path.endswith("/status")))
    return found


def count(found: list[Write], method: str | None = None, name: str | None = None, *, status: bool = False) -> int:
    return sum(1 for w in found if (method is None or w.method == method) and (name is None or w.name == name)
               and w.status == status)  # fmt: skip


def report(fault: str, **observed: Any) -> None:
    print(f"fault-matrix-kubernetes: {json.dumps({'fault': fault, **observed})}")


class Schedules:
    """Every ``Runtime.schedule(source, priority, delay)`` call: the delays the operator chose for its retries."""

    def __init__(self, env: OperatorEnv) -> None:
        assert env.runtime is not None
        runtime = env.runtime
        self.calls: list[tuple[SourceKey, int, float]] = []
        original = runtime.schedule

        def schedule(source: SourceKey, priority: int, delay: float = 0.0) -> None:
            self.calls.append((source, priority, delay))
            original(source, priority, delay)

        runtime.schedule = schedule  # type: ignore[method-assign]

    def delays(self, path: str, since: int = 0) -> list[float]:
        return [delay for source, _, delay in self.calls[since:] if source[1] == path]


async def synced(env: OperatorEnv, name: str, path: str, data: dict[str, str] = V1, **spec: Any) -> dict[str, Any]:
    """Write ``data`` as the next version of ``path``, create VaultSecret ``name`` and wait until its Secret has it."""
    version = env.vault.write(path, data).version
    await env.create(vaultsecret(name, path, **spec))
    _, secret = await env.wait_synced(NS, name, version)
    return secret


async def assert_secret(env: OperatorEnv, name: str, data: dict[str, str], version: int | None = None) -> None:
    secret = await env.secret(NS, name)
    assert secret is not None, f"Secret {name} was deleted"
    assert decoded(secret) == data, f"Secret {name} holds other data: keys {sorted(decoded(secret))}"
    if version is not None:
        assert secret["metadata"]["annotations"][ANNOTATION_VERSION] == str(version)


# -- 409: a conflicting writer -------------------------------------------------------------------------------


async def test_conflicting_writer_creates_the_same_secret_first(cluster: OperatorEnv) -> None:
    """Another replica (a rolling update, two active peers) creates the very Secret the operator is about to
    create: the operator's create gets 409 AlreadyExists, it reads the Secret, finds it is its own and complete,
    and writes nothing more — one Secret write in total (the other replica's), one status write."""
    env = cluster

    async def peer_creates(body: Any) -> None:
        await env.create(body)  # the same manifest: the other replica computed the same desired Secret

    fault = env.cluster.inject(KubeFault("serve", SECRETS, method="POST", before=peer_creates))
    mark = env.mark()
    await synced(env, "dup", "apps/km/dup")
    found = writes(env, mark)
    found_vs = writes(env, mark, "vaultsecrets")
    report("409 AlreadyExists on create (the same Secret, created by another replica)",
           operator_secret_writes=[f"{w.method} {w.name}" for w in found if not w.status],
           refused=fault.hits, status_writes=count(found_vs, "PATCH", "dup", status=True))  # fmt: skip
    assert fault.hits == 1
    assert [(w.method, w.name) for w in found if not w.status] == [("POST", "dup")]  # refused with 409; no patch
    assert count(found_vs, "PATCH", "dup", status=True) == 1
    await assert_secret(env, "dup", V1, 1)


async def test_conflicting_writer_creates_a_foreign_secret_first(cluster: OperatorEnv) -> None:
    """Someone else creates a Secret of the target name between the operator's decision and its create: 409, the
    Secret is not ours, TargetConflict — the foreign Secret is never patched or deleted. Once it is removed, the
    operator creates its own with one write."""
    env = cluster

    async def foreign_creates(_: Any) -> None:
        await env.create(opaque_secret("taken", NS, FOREIGN))

    fault = env.cluster.inject(KubeFault("serve", SECRETS, method="POST", before=foreign_creates))
    env.vault.write("apps/km/taken", V1)
    mark = env.mark()
    await env.create(vaultsecret("taken", "apps/km/taken"))
    body = await env.wait_reason(NS, "taken", "TargetConflict")
    during = writes(env, mark)
    assert fault.hits == 1
    assert [(w.method, w.name) for w in during if not w.status] == [("POST", "taken")]  # only the refused create
    await assert_secret(env, "taken", FOREIGN)
    assert "not managed by this VaultSecret" in ready_condition(body)["message"]

    mark = env.mark()
    await env.cluster.delete("Secret", NS, "taken")
    await env.wait_synced(NS, "taken", 1, within=15)
    after = writes(env, mark)
    report("409 AlreadyExists on create (a foreign Secret)", refused=fault.hits,
           secret_writes_during_conflict=count(during, name="taken"),
           secret_writes_after=[f"{w.method} {w.name}" for w in after if not w.status])  # fmt: skip
    assert [(w.method, w.name) for w in after if not w.status] == [("POST", "taken")]
    await assert_secret(env, "taken", V1, 1)


async def test_conflicting_writer_withdraws_adoption_consent_before_the_patch(cluster: OperatorEnv) -> None:
    """The one Secret patch that can get a real 409: adopting carries the checked Secret's resourceVersion. The
    Secret's owner withdraws its consent between the operator's read and its patch; the API server refuses the
    stale patch (409). The operator reads again, now refuses to adopt (TargetConflict) and leaves the Secret as it
    is; when consent is given again, one patch adopts it."""
    env = cluster
    await env.create(opaque_secret("adopt-me", NS, FOREIGN) | {"metadata": {"name": "adopt-me", "namespace": NS,
                     "annotations": {ADOPT_ANNOTATION: "true"}}})  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def withdraw(body: Any) -> None:
        sent.append(body)
        await env.cluster.patch("Secret", NS, "adopt-me", {"metadata": {"annotations": {ADOPT_ANNOTATION: None}}})

    fault = env.cluster.inject(KubeFault("answer", secret_path("adopt-me"), method="PATCH", status=409,
                                         before=withdraw))  # fmt: skip
    env.vault.write("apps/km/adopt", V1)
    mark = env.mark()
    await env.create(vaultsecret("adopt-me", "apps/km/adopt", target={"creationPolicy": "Adopt"}))
    body = await env.wait_reason(NS, "adopt-me", "TargetConflict")
    during = writes(env, mark)
    assert fault.hits == 1
    assert sent[0]["metadata"].get("resourceVersion"), "the adopting patch names the Secret it checked"
    # A Secret it does not manage, the operator tries to create first (one request less for a new Secret): the API
    # server refuses (409 AlreadyExists) and stores nothing. Then the adopting patch (refused: 409), and on the
    # retry a create again (409), a read, and the refusal to adopt.
    assert [(w.method, w.name) for w in during if not w.status] == [("POST", "adopt-me"), ("PATCH", "adopt-me"),
                                                                   ("POST", "adopt-me")]  # fmt: skip
    await assert_secret(env, "adopt-me", FOREIGN)
    assert "annotate it" in ready_condition(body)["message"]

    mark = env.mark()
    await env.cluster.patch("Secret", NS, "adopt-me", {"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}})
    await env.wait_synced(NS, "adopt-me", 1, within=15)
    after = writes(env, mark)
    report("409 Conflict on the adopting patch (consent withdrawn in between)", refused=fault.hits,
           secret_writes_after=[f"{w.method} {w.name}" for w in after if not w.status])  # fmt: skip
    assert [(w.method, w.name) for w in after if not w.status] == [("POST", "adopt-me"), ("PATCH", "adopt-me")]
    await assert_secret(env, "adopt-me", V1, 1)


async def test_conflict_on_a_status_patch_is_retried(cluster: OperatorEnv) -> None:
    """A 409 on the status patch (injected: a merge patch without resourceVersion gets none from a real server):
    the status is written again, the Secret is not — one Secret write."""
    env = cluster
    fault = env.cluster.inject(KubeFault("answer", status_path("st"), method="PATCH", status=409))
    mark = env.mark()
    await synced(env, "st", "apps/km/st")
    found = writes(env, mark)
    found_vs = writes(env, mark, "vaultsecrets")
    report("409 on a status patch (injected once)", refused=fault.hits,
           secret_writes=[f"{w.method} {w.name}" for w in found if not w.status],
           status_patches=count(found_vs, "PATCH", "st", status=True))  # fmt: skip
    assert fault.hits == 1
    assert [(w.method, w.name) for w in found if not w.status] == [("POST", "st")]
    assert count(found_vs, "PATCH", "st", status=True) == 2  # refused, then written
    await assert_secret(env, "st", V1, 1)


# -- 429 / 503 with Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "method", "what"), [(429, "POST", "create"), (503, "PATCH", "patch")])
async def test_refused_secret_write_is_retried_once(cluster: OperatorEnv, status: int, method: str, what: str) -> None:
    """429/503 on a Secret create or patch: nothing is stored, one Warning says the write failed (HTTP status
    named), and the retry writes once — exactly one accepted write for the change."""
    env = cluster
    name, path = f"rw-{what}", f"apps/km/rw-{what}"
    if method == "PATCH":
        await synced(env, name, path)
    fault = env.cluster.inject(KubeFault("answer", SECRETS if method == "POST" else secret_path(name), method=method,
                                         status=status, retry_after=0.5))  # fmt: skip
    mark = env.mark()
    version = env.vault.write(path, V2).version
    if method == "POST":
        await env.create(vaultsecret(name, path))
    await env.wait_synced(NS, name, version, within=15)
    found = writes(env, mark)
    found_vs = writes(env, mark, "vaultsecrets")
    report(f"{status} with Retry-After on a Secret {what}", refused=fault.hits,
           secret_writes=[f"{w.method} {w.name}" for w in found if not w.status],
           status_patches=count(found_vs, "PATCH", name, status=True))  # fmt: skip
    assert fault.hits == 1
    assert [(w.method, w.name) for w in found if not w.status] == [(method, name), (method, name)]  # refused, accepted
    await assert_secret(env, name, V2, version)
    warnings = [e["message"] for e in await env.events()
                if e["involvedObject"]["name"] == name and e["type"] == "Warning"]  # fmt: skip
    assert len(warnings) == 1
    assert "writing the Secret failed (" in warnings[0]
    assert f"HTTP {status}" in warnings[0]


async def test_secret_write_retry_honours_retry_after(cluster: OperatorEnv) -> None:
    """429 with ``Retry-After: 3`` on a Secret create: the retry is scheduled no sooner than 3 s later."""
    env = cluster
    schedules = Schedules(env)
    fault = env.cluster.inject(KubeFault("answer", SECRETS, method="POST", status=429, retry_after=RETRY_AFTER))
    await synced(env, "ra", "apps/km/ra")
    assert fault.hits == 1
    retries = [delay for delay in schedules.delays("apps/km/ra") if delay > 0]
    report("429 Retry-After 3 on a Secret create: the retry delay", delays=retries)
    assert retries
    assert min(retries) >= RETRY_AFTER


async def test_refused_status_write_backs_off(cluster: OperatorEnv) -> None:
    """503 with ``Retry-After: 3`` on every status patch of one VaultSecret: its Secret is written once; the
    status write is retried no sooner than the API server asked (the delays the operator chose), and the requests
    while it refuses stay few."""
    env = cluster
    schedules = Schedules(env)
    env.vault.write("apps/km/hot", V1)
    fault = env.cluster.inject(KubeFault("answer", status_path("hot"), method="PATCH", status=503,
                                         retry_after=RETRY_AFTER, times=None))  # fmt: skip
    mark, reads_before = env.mark(), env.vault.stats.count_reads("apps/km/hot")
    await env.create(vaultsecret("hot", "apps/km/hot"))
    await wait_until(lambda: fault.hits >= 1, 10, what="the first status patch was refused")
    first = len(schedules.calls)
    # How often does it come back while the server refuses? Wait for 20 refusals, at most 90 % of the Retry-After.
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: fault.hits >= 20, RETRY_AFTER * 0.9, interval=0.05, what="20 refused status writes")
    refused, reads = fault.hits, env.vault.stats.count_reads("apps/km/hot") - reads_before
    delays = schedules.delays("apps/km/hot", first)
    env.cluster.clear_faults()
    await env.wait_synced(NS, "hot", 1, within=15)
    found = writes(env, mark)
    report("503 Retry-After 3 on every status patch (for ~2.7 s)", refused_status_patches=refused,
           scaivault_reads=reads, secret_writes=[f"{w.method} {w.name}" for w in found if not w.status],
           retry_delays=delays[:5])  # fmt: skip
    assert [(w.method, w.name) for w in found if not w.status] == [("POST", "hot")]
    assert all(delay >= RETRY_AFTER for delay in delays), f"retried sooner than Retry-After: {delays[:10]}"
    assert refused <= 2


async def test_start_up_lists_retry_on_429_and_503(cluster: OperatorEnv, caplog: pytest.LogCaptureFixture) -> None:
    """The start-up lists (managed Secrets, connections) answered 429/503 with Retry-After: they are retried, no
    sooner than asked, and the warm restart that follows writes nothing (everything was already in sync)."""
    env = cluster
    for name in ("w1", "w2", "w3"):
        await synced(env, name, f"apps/km/{name}")
    await env.stop_operator()
    lists = env.cluster.inject(KubeFault("answer", r"^/api/v1/secrets$", method="GET", watch=False, status=429,
                                         retry_after=1, times=2))  # fmt: skip
    conns = env.cluster.inject(KubeFault("answer", rf"^/apis/{GROUP}/{VERSION}/clustervaultconnections$",
                                         method="GET", watch=False, status=503, retry_after=1, times=1))  # fmt: skip
    caplog.set_level(logging.INFO, logger="scaivault_operator._cogs.kube")
    mark = env.mark()
    runtime = await env.start_operator()
    waits = [float(m[1]) for r in caplog.records if (m := re.search(r"retrying in ([\d.]+) s", r.getMessage()))]
    assert lists.hits == 2
    assert conns.hits == 1
    assert len(runtime.registry.secrets) >= 3  # the managed Secrets were listed in the end
    assert len(waits) == 3
    assert min(waits) >= 1.0  # Retry-After honoured
    # The warm restart: each VaultSecret is trusted as in sync — no Secret write, no status write.
    await wait_until(lambda: all(("team-a", n) in runtime.registry.entries for n in ("w1", "w2", "w3")), 10)
    env.vault.write("apps/km/w4", V1)
    await env.create(vaultsecret("w4", "apps/km/w4"))
    await env.wait_synced(NS, "w4", 1)
    found = writes(env, mark)
    found_vs = writes(env, mark, "vaultsecrets")
    report("429/503 Retry-After 1 on the start-up lists", refused=lists.hits + conns.hits, retry_waits=waits,
           secret_writes=[f"{w.method} {w.name}" for w in found if not w.status],
           status_writes=[w.name for w in found_vs if w.status])  # fmt: skip
    assert [(w.method, w.name) for w in found if not w.status] == [("POST", "w4")]
    assert [w.name for w in found_vs if w.status] == ["w4"]


# -- watches: 410 Gone, a stream cut in the middle of an event -------------------------------------------------

GONE = {"type": "ERROR", "object": {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": "too old resource version: 1000 (2000)", "reason": "Expired", "code": 410}}  # fmt: skip


def watch_requests(env: OperatorEnv, since: int, plural: str) -> int:
    return sum(1 for r in env.operator_requests(since)
               if r.method.value == "GET" and r.url.path.endswith(f"/{plural}")
               and str(r.params.get("watch", "")).lower() == "true")  # fmt: skip


async def test_watch_410_gone_relists_and_picks_up_what_changed_meanwhile(cluster: OperatorEnv) -> None:
    """A live VaultSecret watch ends with ERROR 410 (its resource version expired). Kopf lists again and watches
    anew. What changed in between (a new VaultSecret, a spec change) is found in that list and converges with one
    write each; the unchanged ones, replayed by the list, cost no write at all."""
    env = cluster
    for name in ("g1", "g2", "g3"):
        await synced(env, name, f"apps/km/{name}")
    env.vault.write("apps/km/g-new", V1)

    async def meanwhile(_: Any) -> None:  # the changes no watch event carries: made before the new list is served
        await env.create(vaultsecret("g-new", "apps/km/g-new"))
        await env.cluster.patch("VaultSecret", NS, "g2", {"spec": {"target": {"labels": {"changed": "yes"}}}})

    relist = env.cluster.inject(KubeFault("serve", VAULTSECRETS, method="GET", watch=False, before=meanwhile))
    mark = env.mark()
    await env.cluster.send_watch_event("VaultSecret", GONE)
    await wait_until(lambda: relist.hits == 1, 10, what="Kopf lists the VaultSecrets again")
    await env.wait_synced(NS, "g-new", 1)

    async def relabelled() -> bool:
        secret = await env.secret(NS, "g2")
        return (secret or {}).get("metadata", {}).get("labels", {}).get("changed") == "yes"

    await wait_until(relabelled, 10, what="the spec change of g2 reached its Secret")
    found = writes(env, mark)
    found_vs = writes(env, mark, "vaultsecrets")
    report("410 Gone on the live VaultSecret watch (changes made before the new list)",
           relists=relist.hits, watches_after=watch_requests(env, mark, "vaultsecrets"),
           secret_writes=[f"{w.method} {w.name}" for w in found if not w.status],
           status_writes=sorted(w.name for w in found_vs if w.status))  # fmt: skip
    assert sorted((w.method, w.name) for w in found if not w.status) == [("PATCH", "g2"), ("POST", "g-new")]
    # g-new: its first status; g2: observedGeneration moved with the spec change. g1, g3: nothing.
    assert sorted(w.name for w in found_vs if w.status) == ["g-new", "g2"]
    for name in ("g1", "g3"):
        await assert_secret(env, name, V1, 1)


async def test_watch_410_gone_forgets_a_vaultsecret_deleted_meanwhile(cluster: OperatorEnv) -> None:
    """A VaultSecret deleted while the watch was expired: after the new list the operator must not write for it
    any more (its Secret goes with it by garbage collection on a real cluster; the emulator has none)."""
    env = cluster
    await synced(env, "gone", "apps/km/gone")
    await synced(env, "kept", "apps/km/kept")

    async def meanwhile(_: Any) -> None:
        await env.cluster.delete("VaultSecret", NS, "gone")

    relist = env.cluster.inject(KubeFault("serve", VAULTSECRETS, method="GET", watch=False, before=meanwhile))
    await env.cluster.send_watch_event("VaultSecret", GONE)
    await wait_until(lambda: relist.hits == 1, 10, what="Kopf lists the VaultSecrets again")
    mark = env.mark()
    env.vault.write("apps/km/gone", V2)  # a new version of both: only the existing VaultSecret may follow it
    env.vault.write("apps/km/kept", V2)
    await env.wait_synced(NS, "kept", 2, within=15)
    assert env.runtime is not None
    queue = env.runtime.queue
    await wait_until(lambda: len(queue) == 0 and not queue.running, 10, what="no sync job queued or running")
    stale = (NS, "gone") in env.runtime.registry.entries
    found = writes(env, mark)
    report("410 Gone: a VaultSecret deleted before the new list", stale_entry=stale,
           secret_writes=[f"{w.method} {w.name}" for w in found if not w.status])  # fmt: skip
    assert [(w.method, w.name) for w in found if not w.status] == [("PATCH", "kept")]
    assert not stale


async def test_watch_410_gone_an_only_vaultsecret_deleted_meanwhile(cluster: OperatorEnv) -> None:
    """The only VaultSecret is deleted while the watch was expired: Kopf's new list is empty, so no listing event
    tells the operator that it listed again. When the VaultSecret's Secret is then deleted (the garbage collector,
    on a real cluster), the drift repair first asks whether the VaultSecret still exists: it does not, so nothing
    is re-created and the entry is forgotten (one GET of the VaultSecret, no Secret write)."""
    env = cluster
    await synced(env, "alone", "apps/km/alone")

    async def meanwhile(_: Any) -> None:
        await env.cluster.delete("VaultSecret", NS, "alone")

    relist = env.cluster.inject(KubeFault("serve", VAULTSECRETS, method="GET", watch=False, before=meanwhile))
    await env.cluster.send_watch_event("VaultSecret", GONE)
    await wait_until(lambda: relist.hits == 1, 10, what="Kopf lists the VaultSecrets again")
    assert env.runtime is not None
    runtime = env.runtime
    assert (NS, "alone") in runtime.registry.entries, "an empty re-list: the operator cannot know yet"
    mark = env.mark()
    await env.cluster.delete("Secret", NS, "alone")  # as the garbage collector does
    await wait_until(lambda: (NS, "alone") not in runtime.registry.entries, 10, what="the entry forgotten")
    queue = runtime.queue
    await wait_until(lambda: len(queue) == 0 and not queue.running, 10, what="no sync job queued or running")
    found = writes(env, mark)
    owner = f"/namespaces/{NS}/vaultsecrets/alone"
    owner_reads = [r for r in env.operator_requests(mark) if r.method.value == "GET" and r.url.path.endswith(owner)]
    report("410 Gone: the only VaultSecret deleted before the new list, then its Secret collected",
           secret_writes=[f"{w.method} {w.name}" for w in found], owner_reads=len(owner_reads))  # fmt: skip
    assert found == []
    assert len(owner_reads) == 1
    assert await env.cluster.get("Secret", NS, "alone") is None


@pytest.mark.parametrize("plural", ["vaultsecrets", "secrets"])
async def test_watch_cut_mid_event_loses_nothing(
    bare_env: OperatorEnv, dev_vault: Any, plural: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The watch connection is reset in the middle of an event line (a half-sent event): the watcher (Kopf's for
    VaultSecrets, ``secretwatch`` for the operator's Secrets) drops the half line, watches again, and the change
    that event carried (a new VaultSecret; the operator's own new Secret) is seen in the new watch. One Secret
    write per VaultSecret, no drift repair of the operator's own write."""
    env = bare_env
    await env.token_secret(dev_vault.ro_token)
    await env.create(cluster_connection(CONN, dev_vault.url))
    path = rf"^/api/v1/{plural}$" if plural == "secrets" else VAULTSECRETS
    cut = env.cluster.inject(KubeFault("watch_cut", path, method="GET", watch=True))
    await env.start_operator()
    mark = env.mark()
    env.vault.write("apps/km/cut", V1)
    await env.create(vaultsecret("cut", "apps/km/cut"))
    await env.wait_synced(NS, "cut", 1)
    await wait_until(lambda: watch_requests(env, mark, plural) >= 1, 10, what=f"{plural} are watched again")
    # One more VaultSecret on the new watch, and a drift that must still be seen (the Secret watch was re-opened).
    await synced(env, "after", "apps/km/after")
    await env.cluster.patch("Secret", NS, "after", {"data": {"password": b64("edited")}})

    async def repaired() -> bool:
        secret = await env.secret(NS, "after")
        return secret is not None and decoded(secret) == V1

    await wait_until(repaired, 10, what="the edit of Secret after was repaired")
    found = writes(env, mark)
    report(f"{plural} watch reset mid-event", cut=cut.hits, rewatches=watch_requests(env, mark, plural),
           secret_writes=[f"{w.method} {w.name}" for w in found if not w.status])  # fmt: skip
    assert cut.hits == 1
    assert [(w.method, w.name) for w in found if not w.status] == [("POST", "cut"), ("POST", "after"),
                                                                  ("PATCH", "after")]  # fmt: skip
    await assert_secret(env, "cut", V1, 1)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("kopf")]


async def test_kopf_list_and_watch_refused_with_429_and_503(
    bare_env: OperatorEnv, dev_vault: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Kopf's list and watch of VaultSecrets answered 429 (``Retry-After: 1``) and 503: Kopf retries them (its
    own backoff, at least the Retry-After), and the VaultSecret created meanwhile converges with one write."""
    env = bare_env
    await env.token_secret(dev_vault.ro_token)
    await env.create(cluster_connection(CONN, dev_vault.url))
    refused_list = env.cluster.inject(KubeFault("answer", VAULTSECRETS, method="GET", watch=False, status=429,
                                                retry_after=1, times=2))  # fmt: skip
    refused_watch = env.cluster.inject(KubeFault("answer", VAULTSECRETS, method="GET", watch=True, status=503,
                                                 retry_after=1, times=1))  # fmt: skip
    env.vault.write("apps/km/busy", V1)
    await env.create(vaultsecret("busy", "apps/km/busy"))
    mark = 0
    await env.start_operator()
    await env.wait_synced(NS, "busy", 1, within=20)
    found = writes(env, mark)
    report(
        "429/503 with Retry-After on Kopf's VaultSecret list and watch",
        refused_lists=refused_list.hits,
        refused_watches=refused_watch.hits,
        secret_writes=[f"{w.method} {w.name}" for w in found if not w.status],
    )
    assert refused_list.hits == 2
    assert refused_watch.hits == 1
    assert [(w.method, w.name) for w in found if not w.status] == [("POST", "busy")]
    assert not [r.getMessage() for r in caplog.records if "has failed" in r.getMessage()]
