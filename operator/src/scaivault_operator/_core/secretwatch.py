"""The watch of the operator's own Secrets: a list at start-up, then a watch per namespace, outside Kopf.

Owned here: which managed Secrets exist (by key, for a re-list), where each watch resumes (its last
``resourceVersion``, bookmarks included), and what happens when it cannot: a watch the API server ended is resumed;
``410 Gone`` lists again, and a Secret that vanished meanwhile is reported DELETED (it would never get that event);
any other failure waits with backoff. ``Runtime`` lists through ``list_existing`` at start (the list the Secret index is
built from is the one the watch starts at: one list of the Secrets per start, not two) and starts, stops and feeds
``Runtime.on_secret`` from it.

Why not Kopf: these Secrets only feed the Secret index (drift repair). Kopf would keep a per-object record for each
(~1.5 KiB: memo, throttler, daemon and indexing memories) for as long as it exists, run each event through its
per-object worker queue, and list them once more after our own start-up list (docs/performance.md, issue 14).

Logs name Secrets, never their data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from scaivault_operator._cogs.aiotasks import cancel_and_wait
from scaivault_operator._cogs.kube import Gone, KubeError, Listing, WatchEvent

__all__ = ["SecretWatch"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]


class SecretSource(Protocol):
    """What the watch needs of ``kube.Kube``."""

    async def list_secrets_at(self, namespace: str, selector: str) -> Listing: ...

    def watch_secrets(self, namespace: str, selector: str, resource_version: str, server_timeout: int) -> Any: ...


class SecretWatch:
    """The Secrets labelled ``labels`` in ``namespaces`` (empty: one watch of every namespace); each event goes to
    ``on_event(type, body)`` (ADDED, MODIFIED, DELETED)."""

    def __init__(
        self,
        kube: SecretSource,
        namespaces: Sequence[str],
        labels: Mapping[str, str],
        on_event: Callable[[str, Mapping[str, Any]], None],
        *,
        timeout: int = 300,
        retry_base: float = 1.0,
        retry_max: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._namespaces = list(namespaces) or [""]
        self._labels = dict(labels)
        self._selector = ",".join(f"{key}={value}" for key, value in sorted(self._labels.items()))
        self._on_event = on_event
        self._timeout = timeout
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._sleep = sleep
        self._clock = clock
        #: Per watched namespace ("": all): where its watch resumes, and the Secrets it has seen.
        self._versions: dict[str, str] = {}
        self._known: dict[str, set[Key]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        #: Watches started and re-lists after 410, for tests and the logs.
        self.watches = 0
        self.relists = 0

    async def list_existing(self) -> list[dict[str, Any]]:
        """List every watched namespace (transient failures retried, ``KubeError`` after that) and remember where
        each watch starts. The bodies, for the index."""
        found: list[dict[str, Any]] = []
        for namespace in self._namespaces:
            found.extend(self._listed(namespace, await self._kube.list_secrets_at(namespace, self._selector)))
        return found

    def start(self) -> None:
        """Start the watches, each from its list's ``resourceVersion`` (``list_existing`` first)."""
        self._tasks = [asyncio.create_task(self._watch(namespace), name=f"secret-watch-{namespace or '*'}")
                       for namespace in self._namespaces]  # fmt: skip

    async def aclose(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    def _listed(self, namespace: str, listing: Listing) -> list[dict[str, Any]]:
        bodies = [body for body in listing.items if self._matches(body)]  # an API may ignore the selector
        self._versions[namespace] = listing.resource_version
        self._known[namespace] = {_key(body) for body in bodies}
        return bodies

    async def _watch(self, namespace: str) -> None:
        where = namespace or "every namespace"
        delay = self._retry_base
        relist = False
        while True:
            started = self._clock()
            delivered = False
            try:
                if relist:
                    await self._relist(namespace)
                    relist = False
                self.watches += 1
                stream = self._kube.watch_secrets(namespace, self._selector, self._versions.get(namespace, ""),
                                                   self._timeout)  # fmt: skip
                async for event in stream:
                    delivered = True
                    self._deliver(namespace, event)
                delay = self._retry_base
                if not delivered and self._clock() - started < self._retry_base:
                    await self._sleep(self._retry_base)  # ended at once with nothing: not a busy loop
            except Gone:
                logger.info("the watch of managed Secrets in %s expired (410 Gone); listing them again", where)
                relist = True
                if delivered:
                    delay = self._retry_base
                else:  # expired again straight after a list: not a busy loop either
                    await self._sleep(delay)
                    delay = min(delay * 2, self._retry_max)
            except KubeError as exc:
                if delivered:  # it had worked for a while: start the backoff again
                    delay = self._retry_base
                wait = max(delay, exc.retry_after or 0.0)
                logger.warning("the watch of managed Secrets in %s failed: %s; again in %.0fs", where, exc, wait)
                await self._sleep(wait)
                delay = min(delay * 2, self._retry_max)

    def _deliver(self, namespace: str, event: WatchEvent) -> None:
        kind, body = event
        version = (body.get("metadata") or {}).get("resourceVersion")
        if isinstance(version, str) and version:
            self._versions[namespace] = version
        if kind == "BOOKMARK":
            return
        key, known = _key(body), self._known.setdefault(namespace, set())
        if kind != "DELETED" and not self._matches(body):
            if key not in known:
                return  # not ours: an API that ignores the selector
            kind = "DELETED"  # relabelled away: no longer ours to index
        if kind == "DELETED":
            known.discard(key)
        else:
            known.add(key)
        self._on_event(kind, body)

    async def _relist(self, namespace: str) -> None:
        """List again after 410: report the Secrets gone meanwhile as DELETED, then every listed one as MODIFIED."""
        self.relists += 1
        before = self._known.get(namespace, set())
        bodies = self._listed(namespace, await self._kube.list_secrets_at(namespace, self._selector))
        for key in sorted(before - self._known[namespace]):
            self._on_event("DELETED", {"metadata": {"namespace": key[0], "name": key[1], "labels": dict(self._labels)}})
        for body in bodies:
            self._on_event("MODIFIED", body)

    def _matches(self, body: Mapping[str, Any]) -> bool:
        labels = (body.get("metadata") or {}).get("labels") or {}
        return isinstance(labels, Mapping) and all(labels.get(key) == value for key, value in self._labels.items())


def _key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    return (namespace if isinstance(namespace, str) else "", name if isinstance(name, str) else "")
