"""A re-list of the VaultSecret watch (410 Gone): the runtime lists the VaultSecrets once itself, after Kopf's listing
has been quiet — never once per straggler (issue 14: at 50,000 VaultSecrets a check per straggler listed everything
22 times during one re-list of Kopf's)."""

from __future__ import annotations

import asyncio
from typing import Any

from test_registry import vs
from test_sharding import RecordingKube, runtime


class CountingKube(RecordingKube):
    def __init__(self) -> None:
        super().__init__()
        self.lists = 0

    async def list_vaultsecret_uids(self, namespaces: Any) -> dict[tuple[str, str], tuple[str, dict[str, str]]]:
        self.lists += 1
        return dict(self.vaultsecrets)


def body(index: int) -> dict[str, Any]:
    return vs(f"vs-{index}", f"apps/web/vs-{index}", uid=f"uid-{index}")


async def test_one_check_per_relist_however_slowly_kopf_delivers_it() -> None:
    kube = CountingKube()
    rt = runtime(kube, relist_quiet=0.2)
    await rt.start()
    try:
        for index in range(20):
            await rt.on_vaultsecret("ADDED", body(index))
        kube.vaultsecrets = {("team-a", f"vs-{i}"): (f"uid-{i}", {}) for i in range(19)}  # vs-19 deleted meanwhile
        for index in range(19):  # Kopf's re-list, one object every 50 ms (slower than its check would take)
            await rt.on_vaultsecret(None, body(index))
            await asyncio.sleep(0.05)
        assert kube.lists == 0, "no check while Kopf's listing still arrives"
        for _ in range(100):
            if rt._relist is None:
                break
            await asyncio.sleep(0.02)
        assert kube.lists == 1
        assert ("team-a", "vs-19") not in rt.registry.entries, "the one deleted meanwhile is forgotten"
        assert len(rt.registry.entries) == 19
    finally:
        await rt.stop()


async def test_a_second_relist_while_checking_is_checked_once_more() -> None:
    kube = CountingKube()
    rt = runtime(kube, relist_quiet=0.05)
    await rt.start()
    try:
        await rt.on_vaultsecret("ADDED", body(0))
        kube.vaultsecrets = {("team-a", "vs-0"): ("uid-0", {})}
        await rt.on_vaultsecret(None, body(0))
        await rt.on_vaultsecret(None, body(0))  # listed twice since the check began: Kopf listed again
        for _ in range(100):
            if rt._relist is None:
                break
            await asyncio.sleep(0.02)
        assert kube.lists == 2
        assert set(rt.registry.entries) == {("team-a", "vs-0")}
    finally:
        await rt.stop()
