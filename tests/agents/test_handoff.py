"""``svmon.streams.handoff``: Faust's consumer runs a record's callback in the drain loop's
own task when the callback does not wait, and exactly as mode's ``wait_first`` did when
it does
(plain asyncio and a mode service; the broker-backed tests run the whole worker with
it)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from mode import Service

from svmon.streams.handoff import Resumed, hand_over_directly, run_until_first_wait


class _Drain(Service):
    """Stands in for Faust's consumer: a mode service given the patched ``wait_first``."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()

    async def hand(self, callback: Any) -> Any:
        hand_over_directly()
        return await Consumer.wait_first(self, callback, self.suspend_flow.wait())


def test_a_callback_that_does_not_wait_runs_in_the_callers_task_and_returns() -> None:
    async def main() -> None:
        ran_in: list[Any] = []

        async def callback() -> str:
            ran_in.append(asyncio.current_task())
            return "delivered"

        result = await _Drain().hand(callback())
        assert ran_in == [asyncio.current_task()]  # no task was made for it
        assert result.results == ["delivered"] and not result.stopped

    asyncio.run(main())


def test_a_callback_that_waits_finishes_in_its_own_task_with_what_it_waited_for() -> None:
    async def main() -> None:
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        steps: list[str] = []

        async def callback() -> int:
            steps.append("before")
            value = await gate  # a full stream buffer, say
            steps.append("after")
            return value * 2

        drain = _Drain()
        waiting = asyncio.ensure_future(drain.hand(callback()))
        await asyncio.sleep(0.01)
        assert steps == ["before"] and not waiting.done()
        gate.set_result(21)
        result = await asyncio.wait_for(waiting, 5)
        assert steps == ["before", "after"] and result.results == [42]

    asyncio.run(main())


def test_a_suspended_flow_still_cuts_a_waiting_callback_short_and_cancels_it() -> None:
    async def main() -> None:
        cancelled = asyncio.Event()

        async def callback() -> None:
            try:
                await asyncio.Event().wait()  # never set: blocked until cancelled
            except asyncio.CancelledError:
                cancelled.set()
                raise

        drain = _Drain()
        waiting = asyncio.ensure_future(drain.hand(callback()))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        drain.suspend_flow.set()  # a rebalance began
        await asyncio.wait_for(waiting, 5)
        await asyncio.wait_for(cancelled.wait(), 5)  # the callback saw its cancellation

    asyncio.run(main())


def test_a_callbacks_error_reaches_the_caller_before_and_after_a_wait() -> None:
    async def main() -> None:
        async def at_once() -> None:
            raise ValueError("bad record")

        with pytest.raises(ValueError, match="bad record"):
            await _Drain().hand(at_once())

        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def later() -> None:
            await gate
            raise KeyError("after the wait")

        waiting = asyncio.ensure_future(_Drain().hand(later()))
        await asyncio.sleep(0.01)
        gate.set_result(None)
        with pytest.raises(KeyError, match="after the wait"):
            await asyncio.wait_for(waiting, 5)

    asyncio.run(main())


def test_a_future_that_fails_raises_inside_the_resumed_coroutine() -> None:
    async def main() -> None:
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def coro() -> str:
            try:
                await gate
            except RuntimeError as err:
                handled = f"handled {err}"
            else:
                return "not reached"
            # as after ``yield from``: nothing is still being handled once caught here
            return handled if sys.exc_info() == (None, None, None) else "still handling"

        finished, rest = run_until_first_wait(coro())
        assert not finished and isinstance(rest, Resumed)
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        gate.set_exception(RuntimeError("broker gone"))
        assert await asyncio.wait_for(task, 5) == "handled broker gone"

    asyncio.run(main())


def test_patching_twice_keeps_one_layer() -> None:
    hand_over_directly()
    first = Consumer.wait_first
    hand_over_directly()
    assert Consumer.wait_first is not first  # a new function ...
    real = Consumer._svmon_real_wait_first  # type: ignore[attr-defined]
    assert real is Service.wait_first  # ... around mode's own, not around the first one


def test_the_worker_app_has_the_direct_hand_over_and_the_stock_app_has_not(tmp_path: Any
                                                                           ) -> None:
    """In fresh interpreters (the change is to a class, so for the whole process): the
    benchmarks' stock anchors must run Faust as it comes."""
    import subprocess

    probe = ("import sys; from pathlib import Path; from svmon.streams.app import faust_app; "
             "from svmon.settings import Settings; "
             "from faust.transport.consumer import Consumer; "
             "faust_app(Settings(data_dir=Path(sys.argv[2])), tuned=sys.argv[1] == 'tuned'); "
             "print(hasattr(Consumer, '_svmon_real_wait_first'))")
    seen = {how: subprocess.run([sys.executable, "-c", probe, how, str(tmp_path / how)],
                                capture_output=True, text=True, timeout=120, check=True
                                ).stdout.strip() for how in ("tuned", "stock")}
    assert seen == {"tuned": "True", "stock": "False"}


def test_a_cancelled_resumed_coroutine_handles_its_cancellation_as_after_yield_from() -> None:
    async def main() -> None:
        async def coro() -> str:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                handled = "cancelled"
            else:
                return "not reached"
            # nothing is still being handled once caught (as after ``yield from``)
            return handled if sys.exc_info() == (None, None, None) else "still handling"

        finished, rest = run_until_first_wait(coro())
        assert not finished
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        task.cancel()
        assert await asyncio.wait_for(task, 5) == "cancelled"

    asyncio.run(main())
