"""The work queue: dedup, priority then first-come order, delays on an injected clock, no key run twice at once."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaivault_operator._logic.workqueue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(clock: Clock) -> WorkQueue[str]:
    return WorkQueue(clock=clock)


async def get_now(queue: WorkQueue[str]) -> str:
    """The next key, which must be ready now (a real wait of 1 s at most)."""
    return await asyncio.wait_for(queue.get(), 1.0)


async def nothing_ready(queue: WorkQueue[str]) -> bool:
    try:
        key = await asyncio.wait_for(queue.get(), 0.02)
    except TimeoutError:
        return True
    queue.done(key)
    raise AssertionError(f"{key!r} was ready")


async def test_priority_then_first_come(queue):
    queue.push("c", 2)
    queue.push("a", 1)
    queue.push("b", 1)
    queue.push("d", 0)
    assert [await get_now(queue) for _ in range(4)] == ["d", "a", "b", "c"]
    assert len(queue) == 0


async def test_push_deduplicates_and_keeps_the_more_urgent_priority(queue):
    queue.push("a", 3)
    queue.push("b", 2)
    queue.push("a", 1)
    queue.push("a", 3)
    assert len(queue) == 2
    assert "a" in queue
    assert await get_now(queue) == "a"
    assert await get_now(queue) == "b"
    assert await nothing_ready(queue)


async def test_delayed_key_waits_for_the_clock(queue, clock):
    queue.push("later", 0, delay=10)
    assert "later" in queue
    assert await nothing_ready(queue)
    clock.advance(9.9)
    assert await nothing_ready(queue)
    clock.advance(0.1)
    assert await get_now(queue) == "later"


async def test_earlier_due_time_wins(queue, clock):
    queue.push("a", 1, delay=10)
    queue.push("a", 1, delay=2)
    queue.push("a", 1, delay=30)  # later: keeps the earlier due time
    clock.advance(2)
    assert await get_now(queue) == "a"
    clock.advance(30)
    assert await nothing_ready(queue)  # the stale heap entries are not a second run


async def test_an_immediate_push_overrides_a_delay(queue):
    queue.push("a", 3, delay=60)
    queue.push("a", 3)
    assert await get_now(queue) == "a"


async def test_ready_keys_come_out_by_priority_even_when_delayed_first(queue, clock):
    queue.push("retry", 3, delay=1)
    queue.push("new", 0, delay=2)
    clock.advance(5)
    assert await get_now(queue) == "new"
    assert await get_now(queue) == "retry"


async def test_push_while_running_is_deferred_until_done(queue, clock):
    queue.push("a", 1)
    assert await get_now(queue) == "a"
    assert queue.running == frozenset({"a"})
    queue.push("a", 0)
    queue.push("a", 2)
    assert "a" in queue
    assert await nothing_ready(queue)  # never handed to two workers at once
    queue.done("a")
    assert queue.running == frozenset()
    assert await get_now(queue) == "a"


async def test_deferred_push_keeps_its_remaining_delay(queue, clock):
    queue.push("a", 1)
    assert await get_now(queue) == "a"
    queue.push("a", 1, delay=5)
    clock.advance(3)
    queue.done("a")
    assert await nothing_ready(queue)
    clock.advance(2)
    assert await get_now(queue) == "a"


async def test_done_without_a_deferred_push_requeues_nothing(queue):
    queue.push("a", 1)
    assert await get_now(queue) == "a"
    queue.done("a")
    assert len(queue) == 0
    assert await nothing_ready(queue)


async def test_discard_forgets_queued_and_deferred_keys(queue):
    queue.push("a", 1)
    queue.push("b", 1)
    queue.discard("a")
    assert "a" not in queue
    assert await get_now(queue) == "b"
    queue.push("b", 1)  # deferred: b is running
    queue.discard("b")
    queue.done("b")
    assert len(queue) == 0
    assert await nothing_ready(queue)


async def test_discarded_key_can_be_pushed_again(queue, clock):
    queue.push("a", 1, delay=5)
    queue.discard("a")
    queue.push("a", 2)
    assert await get_now(queue) == "a"
    clock.advance(10)
    assert await nothing_ready(queue)


async def test_waiting_getter_wakes_on_push(queue):
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    queue.push("a", 1)
    assert await asyncio.wait_for(getter, 1.0) == "a"


async def test_two_waiting_workers_get_distinct_keys(queue):
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    queue.push("a", 1)
    queue.push("b", 1)
    got = await asyncio.wait_for(asyncio.gather(first, second), 1.0)
    assert sorted(got) == ["a", "b"]


async def test_a_waiting_getter_wakes_when_a_delay_expires():
    queue: WorkQueue[str] = WorkQueue()  # the real clock: the wait is bounded by the due time
    queue.push("soon", 1, delay=0.05)
    assert await asyncio.wait_for(queue.get(), 1.0) == "soon"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["push", "get", "done", "discard", "tick"]),
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 3),
            st.sampled_from([0.0, 0.0, 1.0, 5.0]),
        ),
        max_size=40,
    )
)
def test_model(ops):
    """Against a simple model: every key pushed comes out exactly once per push round, never while running."""

    async def run() -> None:
        clock = Clock()
        queue: WorkQueue[str] = WorkQueue(clock=clock)
        running: set[str] = set()
        pending: dict[str, float] = {}  # key -> earliest due
        for op, key, priority, delay in ops:
            if op == "push":
                queue.push(key, priority, delay)
                due = clock.now + delay
                pending[key] = min(pending.get(key, due), due)
            elif op == "get":
                ready = {k for k, due in pending.items() if due <= clock.now and k not in running}
                if not ready:
                    assert await nothing_ready_quick(queue)
                    continue
                got = await asyncio.wait_for(queue.get(), 1.0)
                assert got in ready
                running.add(got)
                del pending[got]
            elif op == "done":
                if key in running:
                    queue.done(key)
                    running.discard(key)
            elif op == "discard":
                queue.discard(key)
                pending.pop(key, None)
            else:
                clock.advance(1.0)
            assert set(queue.running) == running
            assert len(queue) == len(pending)

    asyncio.run(run())


async def nothing_ready_quick(queue: WorkQueue[str]) -> bool:
    try:
        key = await asyncio.wait_for(queue.get(), 0.001)
    except TimeoutError:
        return True
    raise AssertionError(f"{key!r} was ready")
