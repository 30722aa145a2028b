"""Faust's consumer hands each record to the agents' streams without four tasks a record.

For every record it fetches, faust-streaming 0.15's ``Consumer._drain_messages`` awaits
``self.wait_first(callback(record), self.suspend_flow.wait())``: mode's ``wait_first``
wraps the callback, the flow's event and the service's stopped and crashed events in a
task each, waits for the first with ``asyncio.wait`` and cancels the other three. The
callback (the conductor's ``on_message``) nearly always finishes without waiting at all:
it decodes the record and puts it in a stream buffer that has room. Measured alone
(mode's ``wait_first`` around a callback that returns at once, 50,000 times) the
machinery cost 25 µs a record against 0.1 µs for the callback itself; a Faust agent
doing nothing costs about 100 µs a record here, so a quarter of it was this.

:func:`hand_over_directly` gives the consumer a ``wait_first`` that first runs the
callback up to its first wait, in the caller's task. If it finished, that is the whole
answer (what ``wait_first`` returned then is not used by the drain loop either). If it
has to wait (a full stream buffer, flow control during a rebalance, a busy producer), it
goes on exactly as before, from where it stopped, inside mode's own ``wait_first``: a
rebalance that suspends the flow still cuts the wait short. Faust's drain loop already
gives the event loop a turn every 100 records, so the other tasks still run. The part
of the callback before its first wait now runs in the drain loop's task, with its
context variables: Faust's callback sets none (the stream's current event is set in
the agent's own task).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any


class Resumed:
    """A coroutine that has run up to its first wait, to be awaited from that point on:
    the future it waits for is handed to the task that awaits this, and whatever is
    sent or thrown in afterwards goes on to the coroutine."""

    __slots__ = ("coro", "waiting_for")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_for: Any) -> None:
        self.coro, self.waiting_for = coro, waiting_for

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.waiting_for
        while True:
            thrown: BaseException | None = None
            sent = None
            try:
                sent = yield pending
            except GeneratorExit:  # the awaiting task was destroyed: so is the coroutine
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the awaiting task: a cancellation
                thrown = exc
            # thrown in outside the handler above, so that the coroutine does not see
            # it as an exception already being handled (``sys.exc_info``, ``__context__``)
            try:
                pending = coro.send(sent) if thrown is None else coro.throw(thrown)
            except StopIteration as done:
                return done.value


def run_until_first_wait(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``coro`` in the caller's task until it finishes or first waits: (True, its
    result), or (False, a :class:`Resumed` to await for the rest). Its error is raised."""
    try:
        waiting_for = coro.send(None)
    except StopIteration as done:
        return True, done.value
    return False, Resumed(coro, waiting_for)


def hand_over_directly() -> None:
    """Give Faust's consumer the ``wait_first`` above (see the module's docstring);
    calling it again changes nothing."""
    from faust.transport.consumer import Consumer
    from mode.services import WaitResults

    real = getattr(Consumer, "_svmon_real_wait_first", Consumer.wait_first)

    async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
        first = coros[0] if coros else None
        if (timeout is None and asyncio.iscoroutine(first)
                and not self._stopped.is_set() and not self._crashed.is_set()):
            try:
                finished, value = run_until_first_wait(first)
            except BaseException:
                _close(coros[1:])
                raise
            if finished:
                _close(coros[1:])
                return WaitResults([first], [value], False)
            coros = (value, *coros[1:])
        return await real(self, *coros, timeout=timeout)

    Consumer.wait_first = wait_first  # type: ignore[method-assign]
    Consumer._svmon_real_wait_first = real  # type: ignore[attr-defined]


def _close(waitables: tuple[Any, ...]) -> None:
    """The other coroutines were never started: close them (no 'never awaited')."""
    for w in waitables:
        if asyncio.iscoroutine(w):
            w.close()
