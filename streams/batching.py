"""Batches of stream events handed over by age, not by a window restarted after each.

Faust's ``Stream.noack_take(n, within)`` waits ``within`` seconds *after* the previous
batch was processed before it hands over the next one. At a steady 500 events/s an
event that arrived while a batch was being written therefore waited for that write,
then the whole window, then its own write: two thirds of the event-to-projection
latency was that waiting (bench/latency.py).

:func:`lingering_batches` counts the wait from the moment the oldest buffered event
arrived (the producer's ``linger.ms`` rule): a batch goes when it holds ``max_size``
events or its oldest event has waited ``linger`` seconds, so events that arrived
during a write go as soon as the write is done if they are old enough. Events arriving
while a batch is processed start the next one; a full buffer holds the stream until
it is taken (nothing is dropped). Events are never acknowledged here: the caller does
that after its commit, as with ``noack_take``.

It uses the stream's own hooks, as ``noack_take`` does: a processor that sees every
event, and Faust's passive drain of the stream (faust-streaming 0.15).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


def lingering_batches(stream: Any, max_size: int, linger: float) -> AsyncIterator[list[Any]]:
    """Batches of ``stream``'s events (not acknowledged); see the module's docstring."""
    if max_size < 1 or linger <= 0:
        raise ValueError(f"a batch needs max_size >= 1 and linger > 0, not {max_size}, "
                         f"{linger}")
    batches = _batches(stream, max_size, linger)
    # registered as Faust registers its own take(): stopping the stream closes it
    stream._active_agens.add(batches)
    return batches


async def _batches(stream: Any, max_size: int, linger: float) -> AsyncIterator[list[Any]]:
    loop = asyncio.get_running_loop()
    buffer: list[Any] = []
    ready = asyncio.Event()  # a batch may go: full, or its oldest event waited long enough
    room = asyncio.Event()  # the buffer has room again
    room.set()
    timer: asyncio.TimerHandle | None = None
    closed = False  # the batches ended while the stream goes on (an error in the caller)

    async def collect(value: Any) -> Any:
        nonlocal timer
        try:
            while len(buffer) >= max_size and not closed:  # hold the stream until taken
                room.clear()
                if await stream.wait_for_stopped(room):
                    return value  # not buffered, not acknowledged: it comes again
            if closed:
                return value
            event = stream.current_event
            if event is None:
                raise RuntimeError("a stream value arrived without its event")
            buffer.append(event)
            if len(buffer) == 1:  # the oldest event of the next batch: its wait starts now
                timer = loop.call_later(linger, ready.set)
            if len(buffer) >= max_size:
                ready.set()
        except Exception as exc:  # a failing processor would end the drain silently
            await stream.crash(exc)
        return value

    acks = stream.enable_acks
    stream.enable_acks = False  # the caller acknowledges after committing
    stream.add_processor(collect)
    stream._enable_passive(aiter(stream.channel))  # drains the stream through ``collect``
    try:
        while not stream.should_stop:
            # wake now and then without events too, to notice a stop
            await stream.wait_for_stopped(ready, timeout=max(linger, 1.0))
            if not ready.is_set():
                continue
            ready.clear()
            if timer is not None:
                timer.cancel()
                timer = None
            batch = buffer[:]  # never more than max_size: ``collect`` holds the stream
            buffer.clear()
            room.set()
            if batch:
                yield batch
    finally:
        closed = True  # anything buffered now is never acknowledged: it comes again
        buffer.clear()
        room.set()
        if timer is not None:
            timer.cancel()
        if collect in stream._processors:
            stream._processors.remove(collect)
        if stream.should_stop:  # a stream that goes on keeps acknowledging nothing
            stream.enable_acks = acks
