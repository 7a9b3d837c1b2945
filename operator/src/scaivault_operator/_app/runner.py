"""Starting the operator process: logging, the Kopf registry, and ``kopf.operator`` on an event loop.

Owned here: how ``scaivault-operator run`` (``cli``), ``make demo`` (``demo``) and the in-process test harness
(``testing``) start the same operator — one function, ``operate``, so all three run identical code.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from scaivault_operator._cogs.kube import Kube
from scaivault_operator._cogs.kubeconfig import KubeAccess
from scaivault_operator._cogs.kubeconfig import load as load_kubeconfig
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.runtime import Runtime

__all__ = ["configure_logging", "operate", "seniority_priority"]

logger = logging.getLogger(__name__)

# Kopf peering priorities are stored as JSON numbers: stay below 2**53, where they are exact everywhere.
_PRIORITY_CEILING = 2**52


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: OperatorSettings) -> None:
    """Root logging for the process. Kopf's per-handler "succeeded" lines are quieted unless verbose."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if settings.verbose else logging.INFO)
    if not settings.verbose:
        for noisy in ("kopf.objects", "kopf.activities", "httpx", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def seniority_priority(now_ns: int | None = None) -> int:
    """A Kopf peering priority that is higher the earlier the process started (microseconds).

    With several replicas (``--peering``), Kopf runs only the live peer of the highest priority and freezes every
    peer when two share the top one. Deriving it from the start time keeps the running replica active when a new
    one starts (a rolling update, a rescheduled standby) and never ties in practice.
    """
    started_us = (time.time_ns() if now_ns is None else now_ns) // 1000
    return _PRIORITY_CEILING - started_us


def _peering_priority(settings: OperatorSettings) -> int | None:
    if settings.peering is None:
        return None  # standalone: Kopf ignores priorities
    return seniority_priority() if settings.peering_priority is None else settings.peering_priority


async def operate(
    settings: OperatorSettings,
    *,
    server: str | None = None,
    access: KubeAccess | None = None,
    stop_flag: asyncio.Event | None = None,
    runtime_ready: Callable[[Runtime], None] | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or SIGINT/SIGTERM in the main thread).

    ``server``: an unauthenticated API URL (the emulated one). Else ``access``: where the API server is and how to
    log in (the e2e tests pass a ServiceAccount's, bound to the chart's RBAC); None means the configuration
    ``kubeconfig.load`` finds (``$KUBECONFIG``, the in-cluster service account, ``~/.kube/config``). Kopf and our
    client share it.
    """
    import kopf

    from scaivault_operator._app.handlers import ForgetfulMemories, build_registry

    kube_factory: Callable[[], Kube]
    if server:
        access = None
        kube_factory = functools.partial(Kube.for_server, server)
    else:
        access = access or load_kubeconfig(service_account_dir=settings.service_account_dir)
        logger.info("Kubernetes API server %s, from %s", access.server, access.source)
        kube_factory = functools.partial(Kube.from_access, access)

    registry = build_registry(settings, kube_factory, access=access, server=server, runtime_ready=runtime_ready)
    options: dict[str, Any] = {
        "registry": registry,
        "standalone": settings.peering is None,
        "peering_name": settings.peering,
        "priority": _peering_priority(settings),
        "clusterwide": not settings.namespaces,
        "namespaces": list(settings.namespaces),
        "liveness_endpoint": settings.liveness_endpoint or None,
        "memories": ForgetfulMemories(),  # no per-object record kept by Kopf (handlers.ForgetfulMemories)
    }
    if stop_flag is None:
        await kopf.operator(**options)
        return
    # In-process (tests, the demo): at exit, ``kopf.operator`` waits 5 s for every task created after it started
    # and then cancels them — the caller's own tasks included (the one that set ``stop_flag`` and awaits us, a
    # test's next step). Tasks alive when the caller asks to stop are the caller's: the Runtime stops its own in
    # the cleanup handler, and Kopf's root tasks cancel theirs.
    ignored: set[asyncio.Task[Any]] = set()
    kopf_stop = asyncio.Event()

    async def relay_stop() -> None:
        await stop_flag.wait()
        ignored.update(asyncio.all_tasks())
        kopf_stop.set()

    relay = asyncio.create_task(relay_stop(), name="scaivault-operator-stop-relay")
    ignored.update(asyncio.all_tasks())
    try:
        tasks = await kopf.spawn_tasks(stop_flag=kopf_stop, **options)
        await kopf.run_tasks(tasks, ignored=ignored)
    finally:
        relay.cancel()
