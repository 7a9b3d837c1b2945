"""asyncio helpers the operator's long-lived parts share (as Kopf's ``_cogs/aiokits``).

Owned here: stopping a set of background tasks. Called by ``_core/runtime`` (workers, version watchers, the
re-list check) and ``_core/connstatus`` (status writes, the heartbeat) when they stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel every task first, then wait for each to end (a task that ends by cancellation is not an error)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
