"""``svmon.streams.batching.lingering_batches`` inside a Faust agent (Faust's test context,
no broker): what goes in each batch, and when a batch goes."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest

from svmon.streams.batching import lingering_batches


def _agent(max_size: int, linger: float, work_seconds: float = 0.0
           ) -> tuple[Any, list[tuple[list[int], float, float]]]:
    """An agent that records each batch (values, loop time taken, loop time done),
    spending ``work_seconds`` on each as if writing it."""
    agent, seen, _ = _agent_taking(max_size, linger, work_seconds)
    return agent, seen


def _agent_taking(max_size: int, linger: float, work_seconds: float = 0.0
                  ) -> tuple[Any, list[tuple[list[int], float, float]], list[list[int]]]:
    """:func:`_agent`, and the values of each batch as soon as it is taken (before
    its write), for tests that must act while a write is under way."""
    app = faust.App("batching-test", store="memory://", web_enabled=False)
    seen: list[tuple[list[int], float, float]] = []
    taken_values: list[list[int]] = []

    @app.agent()
    async def batches(stream: Any) -> Any:
        async for events in lingering_batches(stream, max_size, linger):
            taken = _now()
            taken_values.append([e.value for e in events])
            assert not any(e.message.acked for e in events)  # the caller acknowledges
            await asyncio.sleep(work_seconds)
            for e in events:
                await stream.ack(e)
            seen.append(([e.value for e in events], taken, _now()))
            yield len(events)

    return batches, seen, taken_values


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _until(pred: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_a_full_batch_goes_at_once_and_nothing_is_lost_or_reordered() -> None:
    agent, seen = _agent(max_size=3, linger=1000.0)  # the age rule never fires here

    async def run() -> None:
        async with agent.test_context() as a:
            for i in range(7):
                await a.put(i, wait=False)
            await _until(lambda: len(seen) == 2)
            await asyncio.sleep(0.2)
            assert len(seen) == 2  # the seventh waits for two more, or for its age

    asyncio.run(run())
    assert [values for values, _, _ in seen] == [[0, 1, 2], [3, 4, 5]]


def test_a_lone_event_goes_once_it_has_waited_the_linger() -> None:
    agent, seen = _agent(max_size=500, linger=0.05)

    async def run() -> None:
        async with agent.test_context() as a:
            await a.put(1, wait=False)
            await _until(lambda: len(seen) == 1)
            await a.put(2, wait=False)
            await a.put(3, wait=False)
            await _until(lambda: len(seen) == 2)

    asyncio.run(run())
    assert [values for values, _, _ in seen] == [[1], [2, 3]]


def _gap_after_a_write(linger: float, work: float, second_after: float
                       ) -> tuple[list[int], list[int], float]:
    """Event 1; once its batch is taken and being written for ``work`` seconds, event 2
    ``second_after`` seconds later: both batches, and how long after that write ended
    the second batch was taken.

    Event 2 is sent only after event 1's batch was taken, so a slow start of the agent
    on a loaded machine cannot put both in one batch."""
    agent, seen, taken = _agent_taking(max_size=500, linger=linger, work_seconds=work)

    async def run() -> None:
        async with agent.test_context() as a:
            await a.put(1, wait=False)
            await _until(lambda: len(taken) == 1, timeout=20)
            await asyncio.sleep(second_after)
            await a.put(2, wait=False)
            await _until(lambda: len(seen) == 2, timeout=20)

    asyncio.run(run())
    (first, _, first_done), (second, second_taken, _) = seen
    return first, second, second_taken - first_done


def test_events_that_waited_during_a_write_go_as_soon_as_it_ends() -> None:
    # Faust's noack_take would wait the whole window again after the write; here the
    # window counts from the event's arrival, which was long before the write ended.
    linger = 0.5
    # event 2 comes 0.2 s into a 1.5 s write
    first, second, gap = _gap_after_a_write(linger, work=1.5, second_after=0.2)
    assert first == [1] and second == [2]
    # the second event had waited about 1.3 s when the write ended: far past the
    # linger, so its batch went straight away (allowing generous scheduling noise)
    assert gap < linger / 2


def test_a_batch_goes_at_its_first_event_plus_the_linger_even_while_events_trickle() -> None:
    linger = 0.3
    agent, seen = _agent(max_size=500, linger=linger)
    first_put = 0.0

    async def run() -> None:
        nonlocal first_put
        async with agent.test_context() as a:
            # an event first, so the agent is running when the clock starts
            await a.put(-1, wait=False)
            await _until(lambda: len(seen) == 1, timeout=20)
            seen.clear()
            first_put = _now()
            for i in range(12):  # one every linger / 3 for 1.2 s: never a quiet moment
                await a.put(i, wait=False)
                await asyncio.sleep(linger / 3)
            await _until(lambda: sum(len(v) for v, _, _ in seen) == 12)

    asyncio.run(run())
    (values, taken, _), *_ = seen
    assert values[0] == 0 and len(values) < 12
    assert taken - first_put < linger + 0.15  # not held back by the later arrivals
    assert [v for values, _, _ in seen for v in values] == list(range(12))


def test_an_event_that_came_shortly_before_a_write_ended_still_waits_its_linger() -> None:
    linger, work = 0.5, 1.0
    # 0.2 s before the write ends
    _, second, gap = _gap_after_a_write(linger, work, second_after=work - 0.2)
    assert second == [2]
    # it arrived about 0.2 s before the write ended, so it went about 0.3 s after:
    # neither at once nor a whole linger after the write
    assert 0.1 < gap < linger - 0.05


def test_more_than_a_batch_arriving_during_a_write_is_cut_at_max_size() -> None:
    agent, seen = _agent(max_size=3, linger=0.05, work_seconds=0.5)

    async def run() -> None:
        async with agent.test_context() as a:
            await a.put(0, wait=False)
            await asyncio.sleep(0.15)  # the first batch is being written
            for i in range(1, 11):
                await a.put(i, wait=False)
            await _until(lambda: sum(len(v) for v, _, _ in seen) == 11, timeout=20)

    asyncio.run(run())
    assert all(len(values) <= 3 for values, _, _ in seen)
    assert [v for values, _, _ in seen for v in values] == list(range(11))


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_size"):
        lingering_batches(object(), 0, 0.1)
