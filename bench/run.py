"""The benchmark: ``python -m bench.run --tiers 100,1000,10000`` (``make bench``; ``--tiers all`` adds 50,000).

Per tier N it builds a world — the local ScaiVault (``devvault``, N secrets) and the in-memory Kubernetes API
(``bench.fakeapi``, our CRDs, a token Secret, a ClusterVaultConnection polling every ``--interval``) — and
measures the real operator (``bench.operator_proc``: ``runner.operate`` in its own process) through these phases:

1. cold sync: N VaultSecrets created while the operator runs → all Ready (ScaiVault GETs, Kubernetes writes,
   the operator's CPU), reported as the time the harness spent creating and the operator's lag after the last
   create;
2. idle: ``--idle-polls`` poll intervals with nothing changing (backend requests per poll and per
   resource-hour, Kubernetes writes per poll, RSS);
3. propagation: new versions of ``--samples`` paths, spread over a few intervals → the Secret carries them
   (p50/p95/p99, GETs per change);
4. warm restart: a new operator process → in sync (ScaiVault GETs and Kubernetes writes during it);

then the naive baseline (``bench.naive``: one GET per VaultSecret per interval, the peers' mechanism) in a world
of its own through the same phases, and finally a ScaiVault outage (every request answered 503) of
``--outage`` seconds for both at once, counting the requests each sends. The operator is paused (SIGSTOP)
while the baseline is measured, so neither steals the other's CPU.

Everything is counted at the servers: ScaiVault requests by the dev vault's statistics, Kubernetes requests by
the fake API's counters (the harness itself writes through the store, never over HTTP, so every counted request
is the operator's or the baseline's).

``--cluster kubeconfig`` (or ``auto``, the default, when ``KUBECONFIG`` is set and GET /version answers within
3 s): both worlds are the cluster in the kubeconfig instead (``bench.apis.ClusterSide``: CRDs installed if missing,
a namespace set, token Secret and ClusterVaultConnection of the run, deleted at the end; the baseline gets a
namespace set of its own in the same cluster, ``baseline_api: cluster``). Our Kubernetes writes are then counted
from the operator's ``/metrics``, the baseline's requests by the baseline itself. Results:
``bench/results/<date>-<tier>.json`` and a Markdown table on stdout (``--update-docs`` also puts it into
docs/performance.md).

``--shards N`` (default 1): "ours" is N operator processes, ``bench.operator_proc --shard i/N`` (docs/sharding.md:
each serves the VaultSecrets of the namespaces that hash to it; shard 0 writes the connection's status), each with
its own ``/metrics`` port and log (``operator-shard<i>.log``), started, paused (SIGSTOP, while the baseline runs),
stopped and restarted (warm restart) together. Every figure is for the whole set: cold sync until all VaultSecrets
are Ready, CPU seconds and RSS summed over the processes (and reported per process; the peak is the sum of each
process's peak), Kubernetes requests summed (the fake API counts every process's; in cluster mode each process's
``/metrics``), ScaiVault requests per idle poll as the dev vault counts them — every shard lists its covering
prefixes itself, so up to N times one process's list floor. Results: ``<date>-<tier>-shardsN.json``, with
``"shards": N``. ``--profile`` samples shard 0 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.apis import (
    TOKEN,
    WRITE_VERBS,
    ClusterInfo,
    ClusterSide,
    ClusterUnavailable,
    FakeSide,
    KubeSide,
    free_port,
    metric_sum,
    parse_metrics,
    probe_cluster,
)
from scaivault_operator._logic.manifests import ANNOTATION_VERSION
from scaivault_operator._logic.sharding import MAX_SHARDS, shard_of
from scaivault_operator.devvault import DevVaultConfig, RunningDevVault, run_in_thread

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PER_NAMESPACE = 100
PER_DIRECTORY = 1000
NAIVE_ANNOTATION = "naive.bench/version"
DOCS_BEGIN, DOCS_END = "<!-- bench:table:begin -->", "<!-- bench:table:end -->"
DEFAULT_TIERS = (100, 1_000, 10_000)  # `make bench`: 9-13 minutes on 2 cores
LARGE_TIER = 50_000  # 20 minutes more on 2 cores without the baseline, so only on request: --tiers all or 50000


@dataclasses.dataclass(frozen=True)
class Item:
    namespace: str
    name: str
    path: str


@dataclasses.dataclass
class Config:
    tiers: list[int]
    interval: float = 2.0
    page_size: int = 500
    workers: int = 8
    idle_polls: int = 8
    samples: int = 200
    spread_polls: float = 4.0
    outage: float = 60.0
    baseline: bool = True
    concurrency: int = 16
    out: Path | None = RESULTS
    quiet: bool = False
    profile: bool = False
    cluster: ClusterInfo | None = None  # None: the in-memory API (bench.fakeapi)
    watch_history: int = 20_000  # the in-memory API's watch events kept per resource type
    shards: int = 1  # operator processes, --shard i/shards each (1: one process serving everything)
    per_namespace: int = PER_NAMESPACE  # VaultSecrets per namespace (the shards split namespaces)


def layout(n: int, prefix: str = "bench-", per_namespace: int = PER_NAMESPACE) -> list[Item]:
    """N VaultSecrets, 100 per namespace, paths in ceil(N / 1000) ScaiVault directories of equal size."""
    dirs = max(1, math.ceil(n / PER_DIRECTORY))
    return [Item(f"{prefix}{i // per_namespace:03d}", f"vs-{i:05d}", f"bench/team-{i % dirs:02d}/secret-{i:05d}")
            for i in range(n)]  # fmt: skip


def shard_index(item: Item, shards: int) -> int:
    """The shard serving ``item`` among ``shards`` (``--shard i/n``: by a hash of its namespace)."""
    return shard_of(item.namespace, shards) if shards > 1 else 0


def shard_sizes(items: list[Item], shards: int) -> list[int]:
    """VaultSecrets per shard: each shard's ``--expect``."""
    sizes = [0] * shards
    for item in items:
        sizes[shard_index(item, shards)] += 1
    return sizes


def shard_floors(items: list[Item], page_size: int, shards: int) -> list[int]:
    """Each shard's list floor per poll: it lists the covering prefixes of its own paths, and a list returns
    everything under a prefix — the other shards' paths too. With one shard: ``[list_floor(items, page_size)]``."""
    per_dir: dict[str, int] = {}
    owned: list[set[str]] = [set() for _ in range(shards)]
    for item in items:
        prefix = item.path[: item.path.rfind("/") + 1]
        per_dir[prefix] = per_dir.get(prefix, 0) + 1
        owned[shard_index(item, shards)].add(prefix)
    return [sum(math.ceil(per_dir[prefix] / page_size) for prefix in prefixes) for prefixes in owned]


def list_floor(items: list[Item], page_size: int) -> int:
    """Requests per poll at the floor: ceil(listed / page size) for each covering prefix."""
    per_dir: dict[str, int] = {}
    for item in items:
        prefix = item.path[: item.path.rfind("/") + 1]
        per_dir[prefix] = per_dir.get(prefix, 0) + 1
    return sum(math.ceil(count / page_size) for count in per_dir.values())


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def log(config: Config, text: str) -> None:
    if not config.quiet:
        print(f"[{datetime.datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


# -- processes --------------------------------------------------------------------------------------------


def _open_log(path: Path) -> Any:
    return path.open("ab")  # closed in Proc.stop


class Proc:
    """A child process that reports JSON lines on stdout (``bench.operator_proc``, ``bench.naive``)."""

    def __init__(self, process: asyncio.subprocess.Process, log_file: Any) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._log_file = log_file
        self._reader = asyncio.create_task(self._read())
        self.spawned_at = time.time()
        self.metrics_url: str | None = None  # the operator's /metrics, when it serves one
        self.expect = 0  # the operator's VaultSecrets (its shard's)

    @classmethod
    async def start(cls, args: list[str], log_path: Path) -> Proc:
        log_file = _open_log(log_path)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", *args, cwd=REPO, env=env,
                                                       stdout=subprocess.PIPE, stderr=log_file)  # fmt: skip
        return cls(process, log_file)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))
                self._changed.set()

    async def wait_count(self, event: str, count: int, limit: float) -> bool:
        """Wait until ``count`` events named ``event`` have arrived (False after ``limit`` s)."""
        found = await self.wait_for(lambda _: self.count(event, 0) >= count, limit)
        return found is not None or self.count(event, 0) >= count

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], limit: float) -> dict[str, Any] | None:
        """The first event (old or new) matching ``predicate``; None after ``limit`` s or when the process ended."""
        deadline = time.monotonic() + limit
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            if self.process.returncode is not None or time.monotonic() >= deadline:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(1.0, deadline - time.monotonic()))

    def count(self, event: str, since: float) -> int:
        return sum(1 for e in self.events if e.get("event") == event and e.get("t", 0) >= since)

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM (peak) in MiB, from /proc."""
        found: dict[str, float] = {}
        with contextlib.suppress(OSError), open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found[key] = round(int(value.split()[0]) / 1024, 1)
        return found

    def cpu(self) -> float:
        """CPU seconds used by the process so far (user + system, from /proc)."""
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    async def stop(self, grace: float = 20.0) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._log_file.close()


def _in_sync_since(floor: float) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["event"] == "in_sync" and event["t"] >= floor


class Operators:
    """The operator processes under test: one, or one per shard (``--shards``), handled together. Totals are sums
    over the processes (with one process: that process's own figures)."""

    def __init__(self, procs: list[Proc]) -> None:
        self.procs = procs

    @property
    def sharded(self) -> bool:
        return len(self.procs) > 1

    @property
    def spawned_at(self) -> float:
        return min(proc.spawned_at for proc in self.procs)

    def cpus(self) -> list[float]:
        return [proc.cpu() for proc in self.procs]

    def memories(self) -> list[dict[str, float]]:
        return [proc.memory() for proc in self.procs]

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM summed over the processes (VmHWM: the sum of each one's peak, an upper bound of the
        set's)."""
        found: dict[str, float] = {}
        for memory in self.memories():
            for key, value in memory.items():
                found[key] = round(found.get(key, 0.0) + value, 1)
        return found

    async def wait_in_sync(self, since: float, limit: float) -> list[float] | None:
        """When each process reported itself in sync (at or after ``since``; a shard with no VaultSecrets: any
        report); None when one did not within ``limit`` s."""
        deadline = time.monotonic() + limit
        times = []
        for proc in self.procs:
            event = await proc.wait_for(_in_sync_since(since if proc.expect else 0.0),
                                        max(0.0, deadline - time.monotonic()))  # fmt: skip
            if event is None:
                return None
            times.append(float(event["t"]))
        return times

    async def served(self) -> dict[str, list[Any]]:
        """Per process, from its ``/metrics``: the VaultSecrets it serves (the ``vaultsecrets`` gauge) and its
        Kubernetes writes as it counts them (Secret writes, status patches, Events)."""
        served: list[int | None] = []
        writes: list[int | None] = []
        async with httpx.AsyncClient(timeout=10.0) as http:
            for proc in self.procs:
                text = None
                if proc.metrics_url is not None:
                    with contextlib.suppress(httpx.HTTPError):
                        response = await http.get(proc.metrics_url)
                        response.raise_for_status()
                        text = response.text
                served.append(round(metric_sum(text, "vaultsecrets")) if text is not None else None)
                writes.append(sum(parse_metrics(text).values()) if text is not None else None)
        return {"vaultsecrets_per_process": served, "operator_counted_writes_per_process": writes}

    def pause(self) -> None:
        for proc in self.procs:
            proc.pause()

    def resume(self) -> None:
        for proc in self.procs:
            proc.resume()

    async def stop(self) -> None:
        await asyncio.gather(*(proc.stop() for proc in self.procs))


# -- a world: ScaiVault + the Kubernetes API, observed ----------------------------------------------------


class World:
    """A dev vault holding the tier's secrets and a Kubernetes API (``bench.apis``: the fake one or a cluster),
    with hooks that time what happens."""

    def __init__(self, items: list[Item], *, version_annotation: str, side: KubeSide) -> None:
        self.items = items
        self.n = len(items)
        self.version_annotation = version_annotation
        self.side = side
        self.stack = contextlib.ExitStack()
        self.vault_run: RunningDevVault | None = None
        self.started = False
        self.ready: set[tuple[str, str]] = set()
        self.secret_versions: dict[tuple[str, str], int] = {}
        self.expect: dict[tuple[str, str], tuple[int, float]] = {}
        self.latencies: list[float] = []
        self.procs: list[Proc] = []  # every process started against this world (all stopped at the end)
        self._changed = asyncio.Event()

    @property
    def vault(self) -> Any:
        assert self.vault_run is not None
        return self.vault_run.vault

    async def start(self) -> None:
        config = DevVaultConfig(port=0, tokens={TOKEN: {"secrets:read"}}, list_max_limit=1000)
        self.vault_run = self.stack.enter_context(run_in_thread(config))
        for item in self.items:
            self.vault.write(item.path, {"username": item.name, "password": f"pw-{item.name}-1"})
        self.started = True
        await self.side.start(self._on_change)

    async def stop(self) -> None:
        if self.started:
            await self.side.stop()
        self.stack.close()

    async def seed(self, interval: float, *, connection: bool) -> None:
        assert self.vault_run is not None
        await self.side.seed(self.items, self.vault_run.url, interval, connection=connection)

    async def create_vaultsecrets(self) -> None:
        await self.side.create_vaultsecrets(self.items)

    def _on_change(self, kind: str, type_: str, new: dict[str, Any]) -> None:
        meta = new.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        if kind == "VaultSecret":
            status = new.get("status") or {}
            ready = (
                type_ != "DELETED"
                and status.get("observedGeneration") == meta.get("generation")
                and any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            )
            if ready:
                self.ready.add(key)
            else:
                self.ready.discard(key)
            self._changed.set()
        elif kind == "Secret":
            raw = (meta.get("annotations") or {}).get(self.version_annotation)
            if type_ == "DELETED" or raw is None:
                self.secret_versions.pop(key, None)
                return
            version = int(raw)
            self.secret_versions[key] = version
            wanted = self.expect.get(key)
            if wanted is not None and version >= wanted[0]:
                self.latencies.append(time.time() - wanted[1])
                del self.expect[key]
            self._changed.set()

    async def wait(self, predicate: Callable[[], bool], limit: float) -> bool:
        deadline = time.monotonic() + limit
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(0.5, max(0.0, deadline - time.monotonic())))
        return True

    # counters

    def mark(self) -> dict[str, Any]:
        snap = self.vault.stats.snapshot()
        return {"t": time.time(), "calls": dict(snap.calls), "requests": snap.requests,
                "kube": self.side.counts(), "load": load(), "cpu": _own_cpu()}  # fmt: skip

    def since(self, mark: dict[str, Any]) -> dict[str, Any]:
        snap = self.vault.stats.snapshot()
        calls = {k: v - mark["calls"].get(k, 0) for k, v in snap.calls.items() if v - mark["calls"].get(k, 0)}
        kube: dict[str, int] = {}
        writes = 0
        for key, n in self.side.counts().items():
            delta = n - mark["kube"].get(key, 0)
            if delta:
                kube[key] = delta
                if key.split(" ", 1)[0] in WRITE_VERBS:
                    writes += delta
        return {"seconds": round(time.time() - mark["t"], 2), "vault_requests": snap.requests - mark["requests"],
                "vault_reads": calls.get("read", 0), "vault_lists": calls.get("list", 0), "vault_calls": calls,
                "kube_writes": writes, "kube_requests": dict(sorted(kube.items())),
                "harness_cpu_seconds": round(_own_cpu() - mark["cpu"], 2),
                "load_before": mark["load"], "load_after": load()}  # fmt: skip

    async def propagate(self, sample: list[Item], spread: float, limit: float) -> dict[str, Any]:
        """Write a new version of each sampled path, spread over ``spread`` seconds; time until its Secret has it."""
        self.latencies = []
        self.expect = {}
        step = spread / max(1, len(sample))
        start = time.monotonic()
        for index, item in enumerate(sample):
            delay = start + index * step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            current = self.vault.store.get(item.path)
            stored = self.vault.write(item.path, {"username": item.name,
                                                  "password": f"pw-{item.name}-{current.version + 1}"})  # fmt: skip
            self.expect[(item.namespace, item.name)] = (stored.version, time.time())
        done = await self.wait(lambda: not self.expect, limit)
        lat = self.latencies
        return {"samples": len(sample), "observed": len(lat), "complete": done, "spread_seconds": spread,
                "p50": _r(percentile(lat, 0.50)), "p95": _r(percentile(lat, 0.95)), "p99": _r(percentile(lat, 0.99)),
                "max": _r(max(lat) if lat else None), "mean": _r(statistics.fmean(lat) if lat else None)}  # fmt: skip


def _own_cpu() -> float:
    """CPU seconds of this process (the fake API, the dev vault and the harness share it)."""
    times = os.times()
    return times.user + times.system


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def sample_items(items: list[Item], count: int) -> list[Item]:
    """``count`` items spread over the tier, in a fixed shuffled order: written in list order, they would move in
    step with the baseline's sweep over the items and measure the sweep, not the mechanism."""
    step = max(1, len(items) // max(1, count))
    sample = items[::step][:count]
    random.Random(count).shuffle(sample)
    return sample


async def idle_window(proc: Proc, world: World, event: str, *, at_least: float, most: int, limit: float
                      ) -> tuple[dict[str, Any], int, list[float]]:  # fmt: skip
    """Count from the end of one poll (``event``: ``poll`` or ``pass``) to the end of a later one, at least
    ``at_least`` seconds or ``most`` polls later: the server's counts then cover whole polls only."""
    await proc.wait_count(event, proc.count(event, 0) + 1, limit)
    mark = world.mark()
    first = proc.count(event, 0)
    rss: list[float] = []
    deadline = time.monotonic() + limit
    last = 0
    while time.monotonic() < deadline:
        memory = proc.memory().get("VmRSS")
        if memory is not None:
            rss.append(memory)
        done = proc.count(event, 0) - first
        if done != last:  # a poll has just ended: the window may end here, never in the middle of one
            last = done
            if done >= most or time.time() - mark["t"] >= at_least:
                break
        await proc.wait_count(event, proc.count(event, 0) + 1, min(1.0, max(0.0, deadline - time.monotonic())))
    return world.since(mark), proc.count(event, 0) - first, rss


def _in_poll(proc: Proc) -> bool:
    """Whether the operator is in the middle of a poll, as far as its events read so far say."""
    for event in reversed(proc.events):
        if event.get("event") == "poll":
            return False
        if event.get("event") == "poll_start":
            return True
    return False


def _polls(proc: Proc) -> list[tuple[float, float | None, int]]:
    """Its polls as (start, end or None while it runs, list requests), from its ``poll_start`` / ``poll`` events."""
    polls: list[tuple[float, float | None, int]] = []
    open_start: float | None = None
    for event in proc.events:
        if event.get("event") == "poll_start":
            open_start = float(event["t"])
        elif event.get("event") == "poll":
            polls.append((float(event.get("started", event["t"] - event["seconds"])), float(event["t"]),
                          int(event.get("lists", 0))))  # fmt: skip
            open_start = None
    if open_start is not None:
        polls.append((open_start, None, 0))
    return polls


def _quiet(procs: list[Proc], margin: float) -> bool:
    """No process is in a poll, and none ended one in the last ``margin`` s."""
    now = time.time()
    for proc in procs:
        if _in_poll(proc):
            return False
        last = next((e for e in reversed(proc.events) if e.get("event") == "poll"), None)
        if last is not None and now - float(last["t"]) <= margin:
            return False
    return True


async def _until_quiet(procs: list[Proc], margin: float, deadline: float) -> None:
    """Until ``_quiet`` (the processes' events arrive on pipes: looked at every 5 ms)."""
    while True:
        if _quiet(procs, margin) or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.005)


async def idle_window_set(ops: Operators, world: World, config: Config, *, most: int, limit: float,
                          margin: float = 0.01) -> dict[str, Any]:  # fmt: skip
    """``idle_window`` for several operator processes (``--shards``), whose polls are not in step: the window
    starts and ends at moments when no process is polling (checked afterwards from the poll times each reports,
    ``margin`` s around each end; a window cut through a poll is measured again, at most three times), so the dev
    vault's count covers whole polls only. It ends once every process (with VaultSecrets) has completed ``most``
    polls in it; ``polls`` is the mean over those processes of their polls in it (equal, or off by one: the polls
    are jittered), so that requests per poll is the set's, one poll of each process."""
    polling = [proc for proc in ops.procs if proc.expect]
    deadline = time.monotonic() + limit
    lead = polling[0]
    await lead.wait_count("poll", lead.count("poll", 0) + 1, limit)
    attempts = 0
    while True:
        attempts += 1
        await _until_quiet(polling, margin, deadline)
        begin = time.time()
        mark = world.mark()
        rows: list[list[float]] = []
        sampled = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() - sampled >= 0.25:
                sampled = time.monotonic()
                row = [proc.memory().get("VmRSS") for proc in ops.procs]
                if all(value is not None for value in row):
                    rows.append([value for value in row if value is not None])
            done = [sum(1 for start, end, _ in _polls(proc) if start >= begin and end is not None) for proc in polling]
            if min(done) >= most and _quiet(polling, margin):
                break
            await asyncio.sleep(0.02)
        end_before = time.time()
        idle = world.since(mark)
        end_after = time.time()
        await asyncio.sleep(0.25)  # a poll begun at the end has said so by now
        cut = False
        counted: list[tuple[int, int]] = []
        for proc in ops.procs:
            polls, lists = 0, 0
            for start, end, requests in _polls(proc):
                stop = math.inf if end is None else end
                for moment_from, moment_to in ((begin, mark["t"]), (end_before, end_after)):
                    if proc.expect and start - margin < moment_to and stop + margin > moment_from:
                        cut = True
                if start >= begin and end is not None and end <= end_before:
                    polls, lists = polls + 1, lists + requests
            counted.append((polls, lists))
        if not cut or attempts >= 3 or time.monotonic() >= deadline:
            break
        log(config, f"idle window cut through a poll (attempt {attempts}); measuring again")
    per_process = [polls for (polls, _), proc in zip(counted, ops.procs, strict=True) if proc.expect]
    mean = statistics.fmean(per_process) if per_process else 0.0
    sums = [sum(row) for row in rows]
    idle.update(polls=int(mean) if mean == int(mean) else round(mean, 3), whole_polls=not cut, attempts=attempts,
                polls_per_process=[polls for polls, _ in counted],
                list_requests_per_process=[lists for _, lists in counted],
                rss_samples_mib=[round(total, 1) for total in sums],
                rss_steady_mib=_r(statistics.median(sums), 1) if sums else None,
                rss_steady_mib_per_process=[_r(statistics.median(column), 1) for column in zip(*rows, strict=True)]
                if rows else None)  # fmt: skip
    return idle


# -- ours ----------------------------------------------------------------------------------------------------


async def start_profiler(proc: Proc, config: Config, out: Path) -> asyncio.subprocess.Process | None:
    """``--profile``: py-spy (installed separately) samples the operator during the cold sync."""
    if not config.profile:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    return await asyncio.create_subprocess_exec(str(spy), "record", "--pid", str(proc.process.pid), "--rate", "200",
                                                "--format", "raw", "--output", str(out), "--nonblocking",
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


async def stop_profiler(profiler: asyncio.subprocess.Process | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        await profiler.wait()


async def start_operators(world: World, config: Config, logs: Path) -> Operators:
    """The operator: one process (``operator.log``), or with ``--shards N`` N processes ``--shard i/N`` (each its
    own ``/metrics`` port and ``operator-shard<i>.log``), spawned together; returns once every one is running."""
    shards = config.shards
    sizes = shard_sizes(world.items, shards)
    procs: list[Proc] = []
    paths: list[Path] = []
    for index, expect in enumerate(sizes):
        args = world.side.operator_args(replace=index == 0)
        if shards > 1:
            if "--metrics-port" not in args:
                args = [*args, "--metrics-port", str(free_port())]
            args = [*args, "--shard", f"{index}/{shards}"]
        path = logs / ("operator.log" if shards == 1 else f"operator-shard{index}.log")
        proc = await Proc.start(["bench.operator_proc", *args, "--expect", str(expect),
                                 "--workers", str(config.workers), "--page-size", str(config.page_size)],
                                path)  # fmt: skip
        if "--metrics-port" in args:
            proc.metrics_url = f"http://127.0.0.1:{args[args.index('--metrics-port') + 1]}/metrics"
        proc.expect = expect
        world.procs.append(proc)
        procs.append(proc)
        paths.append(path)
    for proc, path in zip(procs, paths, strict=True):
        if await proc.wait_for(lambda e: e["event"] == "runtime", 60) is None:
            raise RuntimeError(f"the operator did not start; see {path}")
    await world.side.operator_ready(30, processes=len(procs))
    return Operators(procs)


async def run_ours(world: World, config: Config, logs: Path) -> tuple[dict[str, Any], Operators]:
    n, interval = world.n, config.interval
    result: dict[str, Any] = {}
    await world.seed(interval, connection=True)
    ops = await start_operators(world, config, logs)
    result["startup_seconds"] = round(time.time() - ops.spawned_at, 2)

    # 1. cold sync
    log(config, f"N={n} ours: cold sync" + (f" ({len(ops.procs)} shards)" if ops.sharded else ""))
    if config.profile and ops.sharded:
        log(config, "--profile: sampling shard 0 only")
    profiler = await start_profiler(ops.procs[0], config, logs / f"profile-cold-{n}.txt")
    mark = world.mark()
    cpu = ops.cpus()
    await world.create_vaultsecrets()
    created = time.time()
    done = await world.wait(lambda: len(world.ready) >= n, max(120.0, n * 0.05))
    ready_at = time.time()
    cpu_at_ready = ops.cpus()
    in_sync = await ops.wait_in_sync(mark["t"], 60 + n * 0.01)
    cold = world.since(mark)
    cpu_now = ops.cpus()
    cold["operator_cpu_seconds"] = round(sum(cpu_now) - sum(cpu), 2)
    await stop_profiler(profiler)
    # The harness's creating (first create → last create acknowledged) and the operator's lag after it (last
    # create → all Ready) apart: on a real API server the creates alone take a large share of the cold sync.
    cold.update(complete=done, ready=len(world.ready), creation_seconds=round(created - mark["t"], 2),
                time_to_ready=round(ready_at - mark["t"], 2),
                lag_after_last_create=round(ready_at - created, 2),
                operator_cpu_seconds_to_ready=round(sum(cpu_at_ready) - sum(cpu), 2),
                time_to_in_sync=round(max(in_sync) - mark["t"], 2) if in_sync else None,
                rss_mib=ops.memory())  # fmt: skip
    if ops.sharded:
        cold.update(operator_cpu_seconds_per_process=[round(b - a, 2) for a, b in zip(cpu, cpu_now, strict=True)],
                    operator_cpu_seconds_to_ready_per_process=[round(b - a, 2)
                                                               for a, b in zip(cpu, cpu_at_ready, strict=True)],
                    time_to_in_sync_per_process=[round(t - mark["t"], 2) for t in in_sync] if in_sync else None,
                    expected_per_process=[proc.expect for proc in ops.procs],
                    rss_mib_per_process=ops.memories(), **await ops.served())  # fmt: skip
    result["cold_sync"] = cold
    log(config, f"N={n} ours: created in {cold['creation_seconds']:g} s, all Ready "
                f"{cold['lag_after_last_create']:g} s after the last create; {cold['operator_cpu_seconds']:g} "
                f"CPU-s, {cold['kube_writes']} Kubernetes writes")  # fmt: skip

    # 2. idle
    log(config, f"N={n} ours: idle")
    cpu = ops.cpus()
    limit = config.idle_polls * interval * 3 + 30
    if ops.sharded:
        idle = await idle_window_set(ops, world, config, most=config.idle_polls, limit=limit)
    else:
        idle, polls, rss = await idle_window(ops.procs[0], world, "poll", at_least=math.inf, most=config.idle_polls,
                                             limit=limit)  # fmt: skip
        idle.update(polls=polls, rss_samples_mib=rss, rss_steady_mib=_r(statistics.median(rss), 1) if rss else None)
    cpu_now = ops.cpus()
    idle["operator_cpu_seconds"] = round(sum(cpu_now) - sum(cpu), 2)
    if ops.sharded:
        idle["operator_cpu_seconds_per_process"] = [round(b - a, 2) for a, b in zip(cpu, cpu_now, strict=True)]
    result["idle"] = idle

    # 3. propagation
    log(config, f"N={n} ours: propagation")
    sample = sample_items(world.items, min(config.samples, n))
    mark = world.mark()
    prop = await world.propagate(sample, config.spread_polls * interval, limit=60 + interval * 10)
    await asyncio.sleep(interval * 1.5)  # let the last statuses land before counting
    prop.update(world.since(mark))
    result["propagation"] = prop
    result["rss_peak_mib"] = ops.memory().get("VmHWM")
    if ops.sharded:
        result["rss_peak_mib_per_process"] = [memory.get("VmHWM") for memory in ops.memories()]

    # 4. warm restart
    log(config, f"N={n} ours: warm restart")
    await ops.stop()
    mark = world.mark()
    ops = await start_operators(world, config, logs)
    in_sync = await ops.wait_in_sync(0.0, 120 + n * 0.01)
    synced_at = time.time()
    await asyncio.sleep(interval)
    restart = world.since(mark)
    restart.update(complete=in_sync is not None, time_to_in_sync=round(max(in_sync) - ops.spawned_at, 2)
                   if in_sync else None, rss_mib=ops.memory(),
                   counted_until_seconds=round(synced_at - mark["t"] + interval, 2))  # fmt: skip
    if ops.sharded:
        restart.update(time_to_in_sync_per_process=[round(t - proc.spawned_at, 2)
                                                    for t, proc in zip(in_sync, ops.procs, strict=True)]
                       if in_sync else None, rss_mib_per_process=ops.memories())  # fmt: skip
    result["warm_restart"] = restart
    return result, ops


# -- the naive baseline -------------------------------------------------------------------------------------


async def start_naive(world: World, config: Config, items_file: Path, log_path: Path) -> Proc:
    """The baseline against its world's Kubernetes API: the in-memory one, or the same cluster as the operator."""
    assert world.vault_run is not None
    proc = await Proc.start(["bench.naive", "--vault", world.vault_run.url, "--token", TOKEN,
                             *world.side.baseline_args(), "--items", str(items_file),
                             "--interval", str(config.interval), "--concurrency", str(config.concurrency)],
                            log_path)  # fmt: skip
    world.procs.append(proc)
    return proc


async def run_naive(world: World, config: Config, logs: Path) -> tuple[dict[str, Any], Proc]:
    n, interval = world.n, config.interval
    result: dict[str, Any] = {}
    items_file = logs / "naive-items.json"
    items_file.write_text(json.dumps([[i.namespace, i.name, i.path] for i in world.items]))
    pass_timeout = 120 + n * 0.05

    log(config, f"N={n} baseline: cold sync")
    mark = world.mark()
    proc = await start_naive(world, config, items_file, logs / "naive.log")
    first = await proc.wait_for(lambda e: e["event"] == "pass", pass_timeout)
    cpu = proc.cpu()
    cold = world.since(mark)
    if first is not None:  # on a cluster its last Secrets may still be on their way through the watch
        await world.wait(lambda: len(world.secret_versions) >= n, 30.0)
    # Nothing to create for the baseline (its items are a file): its lag after the last create is its first pass.
    time_to_ready = round(first["t"] - proc.spawned_at, 2) if first else None
    cold.update(complete=first is not None and len(world.secret_versions) >= n, secrets=len(world.secret_versions),
                time_to_ready=time_to_ready, lag_after_last_create=time_to_ready, process_cpu_seconds=round(cpu, 2),
                rss_mib=proc.memory())  # fmt: skip
    result["cold_sync"] = cold

    log(config, f"N={n} baseline: idle")
    idle, count, rss = await idle_window(proc, world, "pass", at_least=config.idle_polls * interval,
                                         most=config.idle_polls, limit=pass_timeout)  # fmt: skip
    passes = [e for e in proc.events if e["event"] == "pass"][-count:] if count else []
    idle.update(polls=count, passes=count, intervals=round(idle["seconds"] / interval, 2),
                pass_seconds=_r(statistics.median(e["duration"] for e in passes) if passes else None, 2),
                rss_samples_mib=rss, rss_steady_mib=_r(statistics.median(rss), 1) if rss else None)  # fmt: skip
    result["idle"] = idle

    log(config, f"N={n} baseline: propagation")
    sample = sample_items(world.items, min(config.samples, n))
    mark = world.mark()
    prop = await world.propagate(sample, config.spread_polls * interval, limit=60 + interval * 10)
    prop.update(world.since(mark))
    result["propagation"] = prop
    result["rss_peak_mib"] = proc.memory().get("VmHWM")

    log(config, f"N={n} baseline: warm restart")
    await proc.stop()
    mark = world.mark()
    proc = await start_naive(world, config, items_file, logs / "naive.log")
    first = await proc.wait_for(lambda e: e["event"] == "pass", pass_timeout)
    restart = world.since(mark)
    restart.update(complete=first is not None, rss_mib=proc.memory(),
                   time_to_in_sync=round(first["t"] - proc.spawned_at, 2) if first else None)  # fmt: skip
    result["warm_restart"] = restart
    return result, proc


# -- a tier --------------------------------------------------------------------------------------------------


def source_revision() -> str | None:
    """The commit measured: its short hash, with ``-dirty`` when the operator's sources have uncommitted changes;
    None outside a git checkout."""
    git = shutil.which("git")
    if git is None:
        return None

    def output(*args: str) -> str:  # fixed arguments, git found on PATH
        done = subprocess.run([git, *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True)  # noqa: S603
        return done.stdout.strip()

    try:
        head = output("rev-parse", "--short", "HEAD")
        dirty = output("status", "--porcelain", "--", "operator/src")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def sides(config: Config) -> tuple[KubeSide, KubeSide | None]:
    """The Kubernetes side of ours and of the baseline (None without one): both in memory (two separate fake
    APIs), or both in the cluster (separate namespace sets)."""
    if config.cluster is not None:
        return ClusterSide(config.cluster), ClusterSide(config.cluster, role="baseline") if config.baseline else None
    history = config.watch_history
    return FakeSide(crds=True, history=history), FakeSide(crds=False, history=history) if config.baseline else None


async def run_tier(n: int, config: Config, logs: Path) -> dict[str, Any]:
    side, naive_side = sides(config)
    items = layout(n, side.namespace_prefix, config.per_namespace)
    started = time.time()
    result: dict[str, Any] = {
        "tier": n,
        "shards": config.shards,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_at_start": load()},
        "revision": source_revision(),
        "config": {"interval_seconds": config.interval, "page_size": config.page_size, "workers": config.workers,
                   "idle_polls": config.idle_polls, "samples": config.samples, "outage_seconds": config.outage,
                   "naive_concurrency": config.concurrency, "namespaces": math.ceil(n / config.per_namespace),
                   "directories": max(1, math.ceil(n / PER_DIRECTORY)),
                   "list_floor_per_poll": list_floor(items, config.page_size), "kubernetes": "bench.fakeapi",
                   "watch_history": config.watch_history if config.cluster is None else None},
    }  # fmt: skip
    if config.shards > 1:
        floors = shard_floors(items, config.page_size, config.shards)
        result["config"].update(
            vaultsecrets_per_shard=shard_sizes(items, config.shards),
            list_floor_per_poll_per_shard=floors,
            list_floor_per_poll_all_shards=sum(floors),
        )
    # The baseline runs against the same kind of API as ours: the in-memory one, or the same cluster.
    baseline_api = naive_side.api if naive_side is not None else None
    result["config"].update(side.describe(), baseline_api=baseline_api)
    result.update({k: v for k, v in side.describe().items() if k in ("api", "cluster")}, baseline_api=baseline_api)
    ours_world = World(items, version_annotation=ANNOTATION_VERSION, side=side)
    naive_world: World | None = None
    if naive_side is not None:  # its own namespaces in a cluster (the same names in its own fake API)
        naive_world = World(layout(n, naive_side.namespace_prefix, config.per_namespace),
                            version_annotation=NAIVE_ANNOTATION, side=naive_side)  # fmt: skip
    try:
        await ours_world.start()
        ours, ours_ops = await run_ours(ours_world, config, logs)
        result["ours"] = ours
        naive_proc: Proc | None = None
        if naive_world is not None:
            ours_ops.pause()
            try:
                await naive_world.start()
                await naive_world.seed(config.interval, connection=False)
                naive, naive_proc = await run_naive(naive_world, config, logs)
                result["naive"] = naive
            finally:
                ours_ops.resume()
        log(config, f"N={n}: outage of {config.outage:g}s")
        await asyncio.sleep(config.interval)
        worlds = [("ours", ours_world)] + ([("naive", naive_world)] if naive_world and naive_proc else [])
        marks = {}
        for label, world in worlds:
            world.vault.configure_faults(error_rate=1.0)
            marks[label] = world.mark()
        await asyncio.sleep(config.outage)
        for label, world in worlds:
            outage = world.since(marks[label])
            world.vault.reset_faults()
            result.setdefault(label, {})["outage"] = outage
        result["ours"]["rss_after_restart_peak_mib"] = ours_ops.memory().get("VmHWM")
        if ours_ops.sharded:
            result["ours"]["rss_after_restart_peak_mib_per_process"] = [m.get("VmHWM") for m in ours_ops.memories()]
        if naive_proc is not None:
            result["naive"]["rss_after_restart_peak_mib"] = naive_proc.memory().get("VmHWM")
    finally:  # also on an error or Ctrl-C: no process is left behind
        procs = ours_world.procs + (naive_world.procs if naive_world is not None else [])
        await asyncio.gather(*(proc.stop() for proc in procs))  # together: an operator takes seconds to stop
        await ours_world.stop()
        if naive_world is not None:
            await naive_world.stop()
    result["wall_seconds"] = round(time.time() - started, 1)
    result["machine"]["load_at_end"] = load()
    result["summary"] = summarize(result, config)
    return result


# -- figures ------------------------------------------------------------------------------------------------


def figures(side: dict[str, Any], n: int, config: Config, *, ours: bool) -> dict[str, Any]:
    """The headline figures of one side (ours or naive) of a tier."""
    idle = side.get("idle") or {}
    polls = idle.get("polls") or 0
    seconds = idle.get("seconds") or 0
    per_hour = idle["vault_requests"] * 3600 / (seconds * n) if seconds else None
    per_poll = idle["vault_requests"] / polls if polls else None
    prop = side.get("propagation") or {}
    restart = side.get("warm_restart") or {}
    cold = side.get("cold_sync") or {}
    outage = side.get("outage") or {}
    cpu = cold.get("operator_cpu_seconds", cold.get("process_cpu_seconds"))
    peaks = [m for m in (side.get("rss_peak_mib"), side.get("rss_after_restart_peak_mib")) if m is not None]
    found = {
        "propagation_p50_s": prop.get("p50"),
        "propagation_p95_s": prop.get("p95"),
        "propagation_p99_s": prop.get("p99"),
        "propagation_gets_per_change": _r(prop["vault_reads"] / prop["samples"], 2) if prop.get("samples") else None,
        "backend_requests_per_poll": _r(per_poll, 2),
        "backend_requests_per_resource_hour": _r(per_hour, 4),
        "backend_requests_per_resource_hour_at_30s": _r(per_poll * 120 / n, 4) if per_poll is not None else None,
        "kube_writes_per_idle_poll": _r(idle["kube_writes"] / polls, 3) if polls else None,
        "rss_peak_mib": side.get("rss_peak_mib"),
        "rss_steady_mib": idle.get("rss_steady_mib"),
        "rss_after_restart_mib": (restart.get("rss_mib") or {}).get("VmRSS"),
        "rss_peak_with_restart_mib": max(peaks) if peaks else None,
        "cold_sync_s": cold.get("time_to_ready"),
        "cold_sync_creating_s": cold.get("creation_seconds"),
        "cold_sync_lag_s": cold.get("lag_after_last_create"),
        "cold_sync_cpu_s": cpu,
        "cold_sync_cpu_ms_per_object": _r(cpu * 1000 / n, 2) if cpu is not None and n else None,
        "cold_sync_kube_writes": cold.get("kube_writes"),
        "cold_sync_gets": cold.get("vault_reads"),
        "warm_restart_s": restart.get("time_to_in_sync"),
        "warm_restart_gets": restart.get("vault_reads"),
        "warm_restart_kube_writes": restart.get("kube_writes"),
        "outage_requests": outage.get("vault_requests"),
    }
    if "rss_peak_mib_per_process" in side:  # several operator processes (--shards): the totals above, and each's
        found.update(per_process_figures(side))
    return found


def per_process_figures(side: dict[str, Any]) -> dict[str, Any]:
    """Per operator process (shard order) with ``--shards``; the requests per idle poll as each process counted its
    own list requests (the dev vault counts them all together)."""
    idle, restart, cold = side.get("idle") or {}, side.get("warm_restart") or {}, side.get("cold_sync") or {}
    peaks = side.get("rss_peak_mib_per_process") or []
    after = side.get("rss_after_restart_peak_mib_per_process") or [None] * len(peaks)
    polls = idle.get("polls_per_process") or []
    lists = idle.get("list_requests_per_process") or []
    return {
        "processes": len(peaks),
        "vaultsecrets_per_process": cold.get("vaultsecrets_per_process"),
        "cold_sync_cpu_s_per_process": cold.get("operator_cpu_seconds_per_process"),
        "cold_sync_in_sync_s_per_process": cold.get("time_to_in_sync_per_process"),
        "backend_requests_per_poll_per_process": [
            _r(b / a, 2) if a else None for a, b in zip(polls, lists, strict=True)
        ],
        "rss_steady_mib_per_process": idle.get("rss_steady_mib_per_process"),
        "rss_peak_mib_per_process": peaks,
        "rss_after_restart_mib_per_process": [m.get("VmRSS") for m in restart.get("rss_mib_per_process") or []],
        "rss_peak_with_restart_mib_per_process": [
            max((m for m in pair if m is not None), default=None) for pair in zip(peaks, after, strict=True)
        ],
        "warm_restart_s_per_process": restart.get("time_to_in_sync_per_process"),
    }


TARGETS_10K: dict[str, tuple[float, str]] = {  # figure -> (limit, description)
    "propagation_p99_s": (3.0, "p99 propagation ≤ 3 s (2 s poll)"),
    "backend_requests_per_resource_hour_at_30s": (0.3, "≤ 0.3 backend requests per resource-hour at 30 s"),
    "rss_peak_mib": (100.0, "RSS ≤ 100 MiB"),
    "warm_restart_s": (20.0, "warm restart ≤ 20 s"),
    "warm_restart_gets": (0, "warm restart: 0 data GETs"),
    "warm_restart_kube_writes": (0, "warm restart: 0 Kubernetes writes"),
    "kube_writes_per_idle_poll": (0, "0 Kubernetes writes per idle poll"),
    "cold_sync_s": (60.0, "cold sync ≤ 60 s"),
}
# At 50,000 issue 14 sets a memory bound only (restart included); the count targets hold at every N. No time
# target is set there (cold sync, warm restart): the table reports them without a check.
_EVERY_N = ("propagation_p99_s", "backend_requests_per_resource_hour_at_30s", "warm_restart_gets",
            "warm_restart_kube_writes", "kube_writes_per_idle_poll")  # fmt: skip
TARGETS_50K: dict[str, tuple[float, str]] = {
    **{key: TARGETS_10K[key] for key in _EVERY_N},
    "rss_peak_with_restart_mib": (250.0, "RSS ≤ 250 MiB, warm restart included"),
}


def targets_for(n: int) -> dict[str, tuple[float, str]]:
    return TARGETS_50K if n >= LARGE_TIER else TARGETS_10K


def summarize(result: dict[str, Any], config: Config) -> dict[str, Any]:
    n = result["tier"]
    ours = figures(result.get("ours") or {}, n, config, ours=True)
    summary: dict[str, Any] = {"ours": ours}
    if "naive" in result:
        naive = figures(result["naive"], n, config, ours=False)
        summary["naive"] = naive
        # Per poll: the mechanism's cost, whatever the interval (the baseline may not keep its interval at 10,000).
        ours_poll, naive_poll = ours["backend_requests_per_poll"], naive["backend_requests_per_poll"]
        summary["backend_ratio"] = _r(ours_poll / naive_poll, 5) if ours_poll is not None and naive_poll else None
        ours_hour, naive_hour = ours["backend_requests_per_resource_hour"], naive["backend_requests_per_resource_hour"]
        summary["backend_ratio_measured_rate"] = _r(ours_hour / naive_hour, 5) if ours_hour and naive_hour else None
    checks = {}
    for key, (limit, text) in targets_for(n).items():
        value = ours.get(key)
        checks[key] = {"target": text, "value": value, "met": value is not None and value <= limit}
    if "backend_ratio" in summary:
        ratio = summary["backend_ratio"]
        checks["backend_ratio"] = {"target": "≤ 1/100 of the naive baseline's backend requests (per poll)",
                                   "value": ratio,
                                   "met": ratio is not None and ratio <= 0.01}  # fmt: skip
    floor = result["config"]["list_floor_per_poll"]
    target = f"backend requests per idle poll = the list floor ({floor})"
    if "list_floor_per_poll_all_shards" in result["config"]:  # each shard lists the prefixes of its paths itself
        floor = result["config"]["list_floor_per_poll_all_shards"]
        target = (
            f"backend requests per idle poll = the list floors of the {result['shards']} shards, summed "
            f"({' + '.join(str(f) for f in result['config']['list_floor_per_poll_per_shard'])} = {floor})"
        )
    per_poll = ours["backend_requests_per_poll"]
    checks["at_floor"] = {"target": target, "value": per_poll,
                          "met": per_poll is not None and per_poll <= floor + 0.5}  # fmt: skip
    gets = ours["propagation_gets_per_change"]
    checks["one_get_per_change"] = {"target": "one GET per real version change", "value": gets, "met": gets == 1.0}
    summary["checks"] = checks
    return summary


ROWS: list[tuple[str, str, str]] = [  # (figure, label, unit)
    ("propagation_p50_s", "propagation p50", "s"),
    ("propagation_p95_s", "propagation p95", "s"),
    ("propagation_p99_s", "propagation p99", "s"),
    ("propagation_gets_per_change", "ScaiVault GETs per new version (propagation phase)", ""),
    ("backend_requests_per_poll", "ScaiVault requests per idle poll", ""),
    ("backend_requests_per_resource_hour", "ScaiVault requests per resource-hour (bench interval)", ""),
    ("backend_requests_per_resource_hour_at_30s", "ScaiVault requests per resource-hour at 30 s", ""),
    ("kube_writes_per_idle_poll", "Kubernetes writes per idle poll", ""),
    ("rss_peak_mib", "RSS peak", "MiB"),
    ("rss_steady_mib", "RSS steady", "MiB"),
    ("rss_after_restart_mib", "RSS after the warm restart (in sync + 1 poll)", "MiB"),
    ("rss_peak_with_restart_mib", "RSS peak, warm restart included", "MiB"),
    ("cold_sync_s", "cold sync (first create → all Ready)", "s"),
    ("cold_sync_creating_s", "cold sync: the harness creating (first → last create)", "s"),
    ("cold_sync_lag_s", "cold sync: lag after the last create (→ all Ready)", "s"),
    ("cold_sync_cpu_s", "cold sync CPU of the process under test", "s"),
    ("cold_sync_cpu_ms_per_object", "cold sync CPU per VaultSecret", "ms"),
    ("cold_sync_kube_writes", "cold sync Kubernetes writes", ""),
    ("cold_sync_gets", "cold sync ScaiVault GETs", ""),
    ("warm_restart_s", "warm restart → in sync", "s"),
    ("warm_restart_gets", "warm restart ScaiVault GETs", ""),
    ("warm_restart_kube_writes", "warm restart Kubernetes writes", ""),
    ("outage_requests", "ScaiVault requests during the outage", ""),
]


PER_PROCESS_ROWS: list[tuple[str, str, str]] = [  # with --shards: ours only, one value per process
    ("vaultsecrets_per_process", "VaultSecrets served, per process (/metrics)", ""),
    ("cold_sync_cpu_s_per_process", "cold sync CPU, per process", "s"),
    ("backend_requests_per_poll_per_process", "ScaiVault requests per idle poll, per process (its own count)", ""),
    ("rss_steady_mib_per_process", "RSS steady, per process", "MiB"),
    ("rss_peak_mib_per_process", "RSS peak, per process", "MiB"),
    ("rss_peak_with_restart_mib_per_process", "RSS peak, warm restart included, per process", "MiB"),
    ("warm_restart_s_per_process", "warm restart → in sync, per process", "s"),
]


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return f"{' + '.join(_fmt(v, '') for v in value)} {unit}".strip()
    text = (f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}") if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}".strip()


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per figure, one column per tier, each cell ``ours / baseline``."""
    head = (
        "| figure (ours / naive baseline) | "
        + " | ".join(
            f"N = {r['tier']:,}" + (f", {r['shards']} shards" if r.get("shards", 1) > 1 else "") for r in results
        )
        + " |"
    )
    lines = [head, "|---|" + "---|" * len(results)]
    for key, label, unit in ROWS:
        cells = []
        for result in results:
            ours = result["summary"]["ours"].get(key)
            naive = (result["summary"].get("naive") or {}).get(key)
            cells.append(f"{_fmt(ours, unit)} / {_fmt(naive, unit)}" if "naive" in result["summary"]
                         else _fmt(ours, unit))  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if any(r.get("shards", 1) > 1 for r in results):
        for key, label, unit in PER_PROCESS_ROWS:
            cells = [_fmt(r["summary"]["ours"].get(key), unit) for r in results]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ratio_cells = [_fmt(r["summary"].get("backend_ratio"), "") for r in results]
    lines.append("| ScaiVault requests per poll, ours ÷ baseline | " + " | ".join(ratio_cells) + " |")
    rate_cells = [_fmt(r["summary"].get("backend_ratio_measured_rate"), "") for r in results]
    lines.append(
        "| ScaiVault requests per resource-hour as measured, ours ÷ baseline | " + " | ".join(rate_cells) + " |"
    )
    lines.append("| machine load (1-min, start → end) | " + " | ".join(
        f"{r['machine']['load_at_start'][0]} → {r['machine']['load_at_end'][0]}" for r in results) + " |")  # fmt: skip
    config = results[0]["config"] if results else {}
    lines.append("")
    lines.append(f"Poll interval {config.get('interval_seconds')} s (both sides), page size {config.get('page_size')}, "
                 f"{config.get('workers')} workers; baseline concurrency {config.get('naive_concurrency')}; outage "
                 f"{config.get('outage_seconds'):g} s; Kubernetes: {config.get('kubernetes')}"
                 + (f" (watch history {config['watch_history']:,} events per type)"
                    if config.get("watch_history") not in (None, 20_000) else "") + ".")  # fmt: skip
    shards = max((r.get("shards", 1) for r in results), default=1)
    if shards > 1:
        lines.append(f"Ours: {shards} operator processes (`--shard i/{shards}`, by namespace), started, paused and "
                     "restarted together; every figure is the whole set's: cold sync until all VaultSecrets are "
                     "Ready, CPU seconds, RSS and Kubernetes requests summed over the processes (an RSS peak: the "
                     "sum of each process's peak), ScaiVault requests as the dev vault counts them — each shard "
                     "lists its covering prefixes itself (list floor per poll: "
                     + ", ".join(f"N = {r['tier']:,}: {r['config'].get('list_floor_per_poll_all_shards')}"
                                 for r in results) + ").")  # fmt: skip
    if config.get("api") == "cluster":
        lines.append("api: cluster — our Kubernetes writes counted from the operator's /metrics (Secret writes, "
                     "status patches, Events)"
                     + ("; baseline_api: cluster — the naive baseline runs against the same cluster (namespaces of "
                        "its own) and counts its own Kubernetes requests." if config.get("baseline_api") == "cluster"
                        else "."))  # fmt: skip
    if any("naive" in r["summary"] for r in results):
        lines.append("The baseline creates nothing before its start: its cold sync and its lag after the last create "
                     "are both process start → first full pass.")  # fmt: skip
    return "\n".join(lines)


def targets_table(result: dict[str, Any]) -> str:
    lines = [f"| target (N = {result['tier']:,}) | value | met |", "|---|---|---|"]
    for check in result["summary"]["checks"].values():
        lines.append(f"| {check['target']} | {_fmt(check['value'], '')} | {'yes' if check['met'] else '**no**'} |")
    return "\n".join(lines)


def update_docs(path: Path, text: str) -> None:
    doc = path.read_text()
    begin, end = doc.find(DOCS_BEGIN), doc.find(DOCS_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"{path} has no {DOCS_BEGIN} ... {DOCS_END} markers")
    path.write_text(doc[: begin + len(DOCS_BEGIN)] + "\n" + text + "\n" + doc[end:])


# -- entry point --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def log_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="scaivault-bench-") as tmp:
        yield Path(tmp)


async def run(config: Config, logs: Path) -> list[dict[str, Any]]:
    results = []
    for n in config.tiers:
        log(config, f"tier N={n}")
        result = await run_tier(n, config, logs)
        results.append(result)
        if config.out is not None:
            config.out.mkdir(parents=True, exist_ok=True)
            suffix = ("-cluster" if config.cluster is not None else "") + (
                f"-shards{config.shards}" if config.shards > 1 else ""
            )
            path = config.out / f"{datetime.date.today().isoformat()}-{n}{suffix}.json"
            path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
            log(config, f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return results


def parse_tiers(text: str) -> list[int]:
    """``default`` (100,1000,10000), ``all`` (and 50000) or comma-separated numbers ("50000", "50_000", "50k")."""
    tiers: list[int] = []
    for part in (p.strip().lower().replace("_", "") for p in text.split(",")):
        if part == "default":
            tiers.extend(DEFAULT_TIERS)
        elif part == "all":
            tiers.extend((*DEFAULT_TIERS, LARGE_TIER))
        elif part:
            tiers.append(int(part[:-1]) * 1000 if part.endswith("k") else int(part))
    return tiers


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiers", default="default",
                        help="comma-separated N; 'default' (100,1000,10000) or 'all' (with 50000)")  # fmt: skip
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval, both sides (s)")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--idle-polls", type=int, default=8)
    parser.add_argument("--samples", type=int, default=200, help="paths given a new version (propagation)")
    parser.add_argument("--outage", type=float, default=60.0, help="outage length (s)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    parser.add_argument("--concurrency", type=int, default=16, help="the baseline's GETs in flight")
    parser.add_argument("--watch-history", type=int, default=20_000,
                        help="in-memory API: watch events kept per resource type; a watch resumed from an older "
                        "resourceVersion gets 410 Gone and the operator lists again (default 20000)")  # fmt: skip
    parser.add_argument("--out", default=str(RESULTS), help="results directory ('' to write none)")
    parser.add_argument(
        "--update-docs",
        nargs="?",
        const=str(REPO / "docs" / "performance.md"),
        default=None,
        help="also write the table into docs/performance.md (between the bench:table markers)",
    )
    parser.add_argument("--keep-logs", default=None, help="directory for the operator's and baseline's logs")
    parser.add_argument("--shards", type=int, default=1,
                        help=f"ours: N operator processes, --shard i/N each (1..{MAX_SHARDS}; default 1); figures "
                        "for the whole set, results file <date>-<tier>-shardsN.json")  # fmt: skip
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the operator with py-spy during the cold sync (DIR/profile-cold-N.txt; shard 0 with --shards)",
    )
    parser.add_argument(
        "--cluster",
        choices=["auto", "kubeconfig", "fake"],
        default="auto",
        help="kubeconfig: the cluster in $KUBECONFIG (or ~/.kube/config); fake: the in-memory API; "
        "auto (default): the cluster when KUBECONFIG is set and GET /version answers within 3 s",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.shards <= MAX_SHARDS:
        parser.error(f"--shards: 1..{MAX_SHARDS}, not {args.shards}")
    config = Config(tiers=parse_tiers(args.tiers), interval=args.interval,
                    page_size=args.page_size, workers=args.workers, idle_polls=args.idle_polls,
                    samples=args.samples, outage=args.outage, baseline=not args.no_baseline,
                    concurrency=args.concurrency, out=Path(args.out) if args.out else None,
                    profile=args.profile, watch_history=args.watch_history, shards=args.shards)  # fmt: skip
    return config, args


def select_cluster(mode: str) -> ClusterInfo | None:
    """The cluster to measure against, or None for the in-memory API (``--cluster``)."""
    if mode == "fake" or (mode == "auto" and not os.environ.get("KUBECONFIG")):
        return None
    try:
        info = probe_cluster()
    except ClusterUnavailable as exc:
        if mode == "kubeconfig":
            raise SystemExit(f"--cluster kubeconfig: no cluster answers: {exc}") from None
        print(f"note: KUBECONFIG is set but no cluster answers ({exc}); measuring against bench.fakeapi",
              file=sys.stderr)  # fmt: skip
        return None
    print(f"measuring against the cluster at {info.server} ({info.version})", file=sys.stderr)
    return info


def main(argv: list[str] | None = None) -> int:
    config, args = parse_args(argv)
    config.cluster = select_cluster(args.cluster)
    started = time.time()
    with contextlib.ExitStack() as stack:
        logs = Path(args.keep_logs) if args.keep_logs else stack.enter_context(log_dir())
        logs.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run(config, logs))
    text = table(results) + "\n\n" + "\n\n".join(targets_table(r) for r in results if r["tier"] >= 10_000)
    print(text.rstrip())
    print(f"\n(total {time.time() - started:.0f} s)", file=sys.stderr)
    if args.update_docs:
        update_docs(Path(args.update_docs), text.rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
