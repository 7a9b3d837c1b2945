"""What the fake ``kube.Kube`` objects of the unit tests share: the list and watch of the operator's Secrets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from scaivault_operator._cogs.kube import Listing, WatchEvent


class QuietSecretWatch:
    """The Secret lists (of the managed Secrets, and of those merged into) answer ``managed_secrets()``, which the
    caller filters by its labels as it would an API that ignores selectors; the watch stays open and sends nothing
    (a test delivers Secret events by calling ``Runtime.on_secret`` itself)."""

    def managed_secrets(self) -> list[dict[str, Any]]:
        return []

    async def list_secrets_at(self, namespace: str, selector: str) -> Listing:
        return Listing(self.managed_secrets(), "1")

    async def watch_secrets(self, *_: Any) -> AsyncIterator[WatchEvent]:
        await asyncio.Event().wait()
        yield "BOOKMARK", {}  # never reached: makes this an async generator
