"""The worker's fixes to faust-streaming 0.15, aiokafka and glibc, applied by
:func:`svmon.streams.app.faust_app` unless it is built ``tuned=False`` (the benchmarks'
stock anchors). Each replaces one behaviour of the library it names and nothing else;
with :mod:`svmon.streams.handoff` (the record hand-over) they are every change the
worker makes to Faust. Apart from the app because none of them is about contract
events: they are about how Faust's consumer waits and how the C library keeps memory.
"""

from __future__ import annotations

from typing import Any


def shorten_fetch_wait(max_wait_ms: int) -> None:
    """Make Faust's consumer ask the broker to hold a fetch at most ``max_wait_ms``.

    faust-streaming 0.15's aiokafka driver hard-codes ``fetch_max_wait_ms=1500`` and the
    embedded broker holds fetches that long when little data is waiting, so at a steady
    trickle every event waited about a second before the worker saw it
    (bench/alert_latency.py). The driver's reference to aiokafka is replaced by a copy
    whose consumer class caps the wait; nothing else in aiokafka changes.
    """
    import types

    from faust.transport.drivers import aiokafka as driver

    real = driver.aiokafka  # type: ignore[attr-defined]  # the driver's own import
    base = getattr(real, "_svmon_real_consumer", real.AIOKafkaConsumer)

    class Consumer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = min(kwargs.get("fetch_max_wait_ms", 500),
                                              max_wait_ms)
            super().__init__(*args, **kwargs)

    shim = types.ModuleType(real.__name__)
    shim.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
    shim.AIOKafkaConsumer = Consumer  # type: ignore[attr-defined]
    shim._svmon_real_consumer = base  # type: ignore[attr-defined]
    driver.aiokafka = shim  # type: ignore[attr-defined]


def resume_paused_partitions_promptly(within: float = 0.1) -> None:
    """Make Faust ask aiokafka for records at most ``within`` seconds at a time.

    When the agent falls behind, Faust stops asking for a partition whose stream
    buffer is full, and asks again once it has drained to half. But its fetcher asks
    aiokafka for the other partitions' records with a one-second wait
    (``Consumer._drain_messages``, faust-streaming 0.15), and that wait is not cut
    short when the paused partition is resumed: once the other partitions had
    reached the end of what was published, the resumed one sat buffered in aiokafka
    for up to a second. In a catch-up with the batch writer in its own process this
    happened every two to three seconds (bench/pipeline.py: 0.2-0.7 s without
    records each time, 2.0 s of an 8.6 s run; seen in aiokafka's fetcher log as
    empty fetches of the finished partitions while the resumed partition's records
    stayed buffered). With a shorter wait the resumed partition is asked for within
    ``within`` seconds; an idle worker asks ten times a second instead of once.
    """
    from faust.transport.consumer import Consumer

    real = getattr(Consumer, "_svmon_real_wait", Consumer._wait_next_records)

    async def wait_next_records(self: Any, timeout: float) -> Any:
        return await real(self, min(timeout, within))

    Consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
    Consumer._svmon_real_wait = real  # type: ignore[attr-defined]


M_ARENA_MAX = -8  # glibc's mallopt parameter number


def fewer_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (what ``MALLOC_ARENA_MAX=2`` does).

    glibc gives threads that allocate their own arenas, up to eight per core, and each
    keeps the memory freed in it. The worker's fold and writes run on executor
    threads and build large short-lived dicts there, so the freed space was spread
    over many arenas: after 1M events (bench/memory.py) the worker's RSS was 501 MB
    with the default and 468 MB with two arenas, for the same state. Returns whether
    the limit was set (False where the C library is not glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
