"""Kopf wiring — the only module with Kopf decorators. Every handler is one line into ``runtime``.

Owned here: which resources Kopf watches (VaultSecrets and the two connection kinds; the operator's own Secrets are
watched by ``secretwatch``, outside Kopf) and how Kopf is configured (our own finalizer and annotation prefix, watch
timeouts, a shard's label selector, Events only for warnings, no per-object memory: ``ForgetfulMemories``).
Handlers are registered in a fresh ``kopf.OperatorRegistry`` per call of ``build_registry``, so tests can run the
real operator repeatedly in one process.

Only ``on.event`` handlers are used: they let Kopf stream changes without writing anything back (no diff-base
or progress annotations on any object, no Kopf finalizers; the one finalizer, on VaultSecrets with deletionPolicy
Retain only, is the runtime's own); the runtime decides what to do from the registry and does it with a fixed set
of workers — no per-object tasks or timers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory

from scaivault_operator._cogs.api import GROUP, VERSION
from scaivault_operator._cogs.kube import Kube
from scaivault_operator._cogs.kubeconfig import KubeAccess
from scaivault_operator._cogs.settings import OperatorSettings
from scaivault_operator._core.runtime import Runtime

__all__ = ["ForgetfulMemories", "build_registry", "configure_kopf"]


class ForgetfulMemories(ResourceMemories):
    """Kopf's per-object memory, not kept between events (``kopf.operator(memories=...)``).

    Kopf keeps a record per object it has seen (~1 KiB: a copy of the memo, an error throttler, daemon and index
    memories) until the object is deleted: 10 MiB at 10,000 VaultSecrets, 50 MiB at 50,000 (issue 14). Our
    handlers need none of it: ``on.event`` only — no resumed handlers, daemons, timers or indexes, and no patch of
    the object whose failures Kopf would throttle. Each event gets a fresh record that goes with it.
    """

    async def recall(
        self,
        raw_body: kopf.RawBody,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> ResourceMemory:
        return await super().recall(raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True)


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """Kopf settings that matter at scale and for hygiene (see docs/architecture.md)."""
    kopf_settings.persistence.finalizer = f"{GROUP}/finalizer"
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=f"kopf.{GROUP}")
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=f"kopf.{GROUP}", key="last-handled-configuration"
    )
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.watching.server_timeout = settings.watch_server_timeout
    kopf_settings.watching.client_timeout = settings.watch_client_timeout
    kopf_settings.watching.connect_timeout = 30
    if settings.selector:  # a shard by label (--selector): only its VaultSecrets; one relabelled away is DELETED here
        kopf_settings.watching.label_selectors[GROUP, "vaultsecrets"] = settings.selector
    kopf_settings.networking.request_timeout = 60
    # Kopf keeps a worker task (and its queue) per object until it has been idle this long (default 5 s): a burst
    # of thousands of new objects then holds thousands of workers at once. Our handlers only feed the registry,
    # so a worker may go as soon as its backlog is empty (docs/performance.md: peak RSS +22 MiB instead of
    # +47 MiB for 2,000 new VaultSecrets).
    kopf_settings.queueing.idle_timeout = 0.5
    # The initial list before each watch, in pages rather than one response with every object (10,000
    # VaultSecrets are ~15 MB of JSON decoded at once: the restart's RSS peak).
    kopf_settings.watching.chunk_size = 500


def build_registry(
    settings: OperatorSettings,
    kube_factory: Callable[[], Kube],
    *,
    access: KubeAccess | None = None,
    server: str | None = None,
    runtime_ready: Callable[[Runtime], None] | None = None,
) -> kopf.OperatorRegistry:
    """A Kopf registry with our handlers. Kopf logs in with ``access`` (what ``kube`` uses too), or to ``server``,
    an unauthenticated local API (the emulator)."""
    registry = kopf.OperatorRegistry()

    if server is not None:

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=server, insecure=True)

    elif access is not None:
        # Not Kopf's own login_with_service_account: it dials kubernetes.default.svc (cluster DNS) and ignores
        # KUBERNETES_SERVICE_HOST/PORT. Called again after a 401, so a rotated token file is read afresh.
        @kopf.on.login(registry=registry)
        async def login_as_configured(**_: Any) -> kopf.ConnectionInfo:
            info: kopf.ConnectionInfo = await access.connection_info()
            return info

    else:
        raise ValueError("build_registry needs access or server")

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings, op_settings)
        if server is not None and op_settings.namespaces:
            settings.scanning.disabled = True  # the emulator cannot list Namespace objects
        runtime = Runtime(kube_factory(), op_settings)
        await runtime.start()
        memo.runtime = runtime
        if runtime_ready is not None:
            runtime_ready(runtime)

    op_settings = settings

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime | None = memo.get("runtime")
        if runtime is not None:
            await runtime.stop()
            await runtime.kube.aclose()

    @kopf.on.event(GROUP, VERSION, "vaultsecrets", registry=registry)
    async def vaultsecret_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await memo.runtime.on_vaultsecret(event.get("type"), body)

    @kopf.on.event(GROUP, VERSION, "clustervaultconnections", registry=registry)
    async def cluster_connection_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await memo.runtime.on_connection("ClusterVaultConnection", event.get("type"), body)

    @kopf.on.event(GROUP, VERSION, "vaultconnections", registry=registry)
    async def connection_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await memo.runtime.on_connection("VaultConnection", event.get("type"), body)

    return registry
