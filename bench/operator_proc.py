"""The operator as the benchmark runs it: ``runner.operate`` (the code of ``scaivault-operator run``) in its own
process, so its RSS is its own, plus a probe that reports on stdout (one JSON object per line) when it is in sync.

In sync: the registry knows ``--expect`` VaultSecrets, none is dirty, no sync job is queued or running, and
every version watcher completed a poll that started after the last VaultSecret arrived (so versions that moved
while the operator was down have been looked for). The probe reads the ``Runtime`` in-process and wraps
``VersionWatcher.poll_once`` to time polls (a ``poll_start`` event as one begins, a ``poll`` event as it ends); it
changes nothing the operator does.

    python -m bench.operator_proc [--server http://127.0.0.1:PORT] --expect 1000 [--metrics-port P] [--shard i/n]

With ``--shard i/n`` (``scaivault-operator run --shard``, docs/sharding.md) the process serves the VaultSecrets of
the namespaces that hash to shard ``i`` only, and ``--expect`` is the number of those. A shard with none
(``--expect 0``) is in sync once a poll of its watchers has completed.

Without ``--server`` the operator reads the kubeconfig (``$KUBECONFIG``), as ``scaivault-operator run`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from scaivault_operator._app.runner import configure_logging, operate
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core import watcher as watcher_module
from scaivault_operator._core.runtime import Runtime

_poll_done: dict[int, float] = {}  # id(watcher) -> time.time() at the start of its last completed poll


def _instrument_polls() -> None:
    original: Callable[[Any], Awaitable[float]] = watcher_module.VersionWatcher.poll_once

    async def poll_once(self: Any) -> float:
        started = time.time()
        before = self.list_requests
        _say("poll_start")
        result = await original(self)
        _poll_done[id(self)] = started
        _say("poll", lists=self.list_requests - before, seconds=round(time.time() - started, 4), started=started)
        return result

    watcher_module.VersionWatcher.poll_once = poll_once  # type: ignore[method-assign]


def _say(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


async def _probe(runtime: Runtime, expect: int) -> None:
    full_at: float | None = None
    in_sync = False
    while True:
        await asyncio.sleep(0.05)
        registry = runtime.registry
        count = len(registry.entries)
        if count < expect:
            full_at, in_sync = None, False
            continue
        if full_at is None:
            full_at = time.time()
            _say("known", entries=count)
        watchers = [w for w, _ in runtime.watchers.values()]
        polled = (bool(watchers) or expect == 0) and all(_poll_done.get(id(w), 0.0) >= full_at for w in watchers)
        now_in_sync = polled and not registry.dirty and len(runtime.queue) == 0 and not runtime.queue.running
        if now_in_sync != in_sync:
            in_sync = now_in_sync
            _say("in_sync" if in_sync else "out_of_sync", entries=count, syncs=runtime.syncs)


def _trace_memory() -> None:
    import signal
    import tracemalloc

    tracemalloc.start(int(os.environ.get("BENCH_TRACE_DEPTH", "1")))

    def dump(*_: Any) -> None:
        snapshot = tracemalloc.take_snapshot()
        lines = [f"tracemalloc: {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB traced"]
        for stat in snapshot.statistics("filename")[:25]:
            lines.append(f"  {stat.size / 2**20:7.2f} MiB {stat.count:8d} {stat.traceback[0].filename}")
        for stat in snapshot.statistics("traceback")[:12]:
            lines.append(f"  {stat.size / 2**20:7.2f} MiB {stat.count:8d}")
            lines.extend(f"        {frame.filename}:{frame.lineno}" for frame in stat.traceback[:8])
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()

    signal.signal(signal.SIGUSR1, dump)


def _trim_on_signal() -> None:
    """SIGUSR2: collect garbage and give free heap pages back (diagnosis: how much of the RSS is fragmentation)."""
    import ctypes
    import gc
    import signal

    def trim(*_: Any) -> None:
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        _say("trimmed")

    signal.signal(signal.SIGUSR2, trim)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.operator_proc")
    parser.add_argument("--server", default=None, help="unauthenticated API URL; absent: the kubeconfig")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--namespace", action="append", default=[])
    parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics on 127.0.0.1:PORT (0: none)")
    parser.add_argument("--shard", default=None, help="i/n: serve shard i of n only (scaivault-operator run --shard)")
    parser.add_argument("--tracemalloc", action="store_true", help="on SIGUSR1, log the top allocation sites")
    args = parser.parse_args()
    if args.tracemalloc:
        _trace_memory()
    _trim_on_signal()
    settings = OperatorSettings(liveness_endpoint=None, metrics_port=args.metrics_port, metrics_host="127.0.0.1",
                                workers=args.workers, page_size=args.page_size,
                                namespaces=tuple(args.namespace), shard=args.shard)  # fmt: skip
    configure_logging(settings)
    _instrument_polls()
    _say("spawned")
    tasks: set[asyncio.Task[None]] = set()

    def ready(runtime: Runtime) -> None:
        _say("runtime")
        tasks.add(asyncio.get_running_loop().create_task(_probe(runtime, args.expect)))

    asyncio.run(operate(settings, server=args.server, runtime_ready=ready))


if __name__ == "__main__":
    main()
