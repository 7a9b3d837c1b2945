"""handlers.ForgetfulMemories: Kopf keeps no per-object record for the objects the operator watches through it."""

from __future__ import annotations

import inspect

import kopf
from kopf._cogs.structs import ephemera

from scaivault_operator._app.handlers import ForgetfulMemories


async def test_each_event_gets_a_fresh_record_and_none_is_kept() -> None:
    memories = ForgetfulMemories()
    memobase = ephemera.Memo()
    memobase.runtime = "the runtime"
    records = [await memories.recall({"metadata": {"uid": f"uid-{n % 10}"}}, memobase=memobase) for n in range(100)]
    assert list(memories.iter_all_memories()) == []
    assert len({id(record) for record in records}) == 100
    assert records[0].memo.runtime == "the runtime"  # what the handlers read (memo.runtime)
    assert records[0].memo is not memobase  # a copy per record, as Kopf makes it
    await memories.forget({"metadata": {"uid": "uid-1"}})  # on DELETED: nothing to forget, no error


def test_kopf_still_takes_our_memories() -> None:
    """The two entry points the runner uses accept ``memories`` (a Kopf that dropped it would fail here, not in a
    cluster)."""
    for entry in (kopf.operator, kopf.spawn_tasks):
        assert "memories" in inspect.signature(entry).parameters
